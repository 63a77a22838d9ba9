// The browser demo (issue 6.1), rewritten on the client package (issue 17): the gateway serves
// the demo at /demo (DEMO_DIR), bundled by the test from examples/browser/src against the
// packed sio-gateway-client tarball; headless Chromium (Debian's chromium, driven by
// playwright-core) opens two pages as two users, checks that a message and a notification
// arrive and that marking read clears the unread badge, and saves a screenshot for the README
// (docs/demo.png). client-package-browser.test.mjs covers reloads, restarts and token refresh.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { launchChromium } from "./chromium.mjs";
import { buildDemo } from "./client-package-fixture.mjs";
import { after, before, describe, it, startGateway } from "./fixture.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

describe("browser demo in headless Chromium", () => {
  let gw;
  let browser;
  before(async () => {
    const demoDir = await buildDemo();
    browser = await launchChromium();
    gw = await startGateway({ DEMO_DIR: demoDir });
  });
  after(async () => {
    await browser?.close();
    await gw?.stop();
  });

  async function logIn(user) {
    const page = await browser.newPage({ viewport: { width: 900, height: 560 } });
    await page.goto(`${gw.url}/demo/`);
    await page.fill("#user", user);
    await page.click("#login button");
    await page.waitForSelector(`#status:text("signed in as ${user}")`, { timeout: 10000 });
    await page.fill("#room", "general");
    await page.click("#join button");
    await page.waitForSelector("#rooms button.current", { timeout: 5000 });
    return page;
  }

  it("two users chat, a notification raises the badge, marking read clears it", async () => {
    const alice = await logIn("alice");
    const bob = await logIn("bob");

    await alice.fill("#text", "hello bob, from the browser");
    await alice.click("#send button");
    await bob.waitForSelector('#messages li:has-text("hello bob, from the browser")', { timeout: 5000 });
    assert.equal(await bob.textContent("#messages li .who"), "alice");

    const res = await fetch(`${gw.url}/api/notifications`, {
      method: "POST",
      headers: { authorization: `Bearer ${gw.apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({ userId: "bob", type: "demo", title: "Invoice paid", message: "#1042 was paid" }),
    });
    assert.equal(res.status, 201);
    await bob.waitForSelector('#notifications li.unread:has-text("Invoice paid")', { timeout: 5000 });
    assert.equal(await bob.textContent("#badge"), "1");
    assert.equal(await alice.textContent("#badge"), "0", "alice got bob's notification");

    fs.mkdirSync(path.join(root, "docs"), { recursive: true });
    await bob.screenshot({ path: path.join(root, "docs", "demo.png") });

    await bob.click("#markAll");
    await bob.waitForSelector('#badge:text("0")', { timeout: 5000 });
    assert.equal(await bob.locator("#notifications li.unread").count(), 0);
  });
});
