// The client package (issue 17) in headless Chromium, through the browser demo
// (examples/browser/src, bundled against the packed tarball): a reload in the middle of a
// burst of notifications loses none and shows none twice (the cursor is in localStorage), a
// gateway restart is survived the same way, and a token that lives 20 s keeps the page
// connected for a minute (refreshed before exp). The demo writes `console.debug` lines for
// what the package hands it ("demo loaded", "registered", "notification <id>", "disconnect",
// "token refreshed until"); the tests read them across reloads from the tab's sessionStorage,
// where an init script copies each line as it is written (console events of a page that is
// being navigated away can be dropped by the browser's protocol; sessionStorage writes cannot).
import assert from "node:assert/strict";
import { launchChromium } from "./chromium.mjs";
import { buildDemo, notify } from "./client-package-fixture.mjs";
import { after, before, describe, it, sleep, startGateway, until } from "./fixture.mjs";

let demoDir;
let browser;

before(async () => {
  demoDir = await buildDemo();
  browser = await launchChromium();
});
after(async () => browser?.close());

/** Copies every console.debug line into sessionStorage["test-log"] (kept across reloads of the tab). */
function recordDebugLines() {
  const original = console.debug.bind(console);
  console.debug = (...args) => {
    const log = JSON.parse(sessionStorage.getItem("test-log") ?? "[]");
    log.push(args.join(" "));
    sessionStorage.setItem("test-log", JSON.stringify(log));
    original(...args);
  };
}

/**
 * Opens the demo as `user` (a fresh browser context: its own localStorage); resolves with
 * { page, context, log, errors }: `await log()` reads the lines recorded so far.
 */
async function openDemo(gw, user, { route } = {}) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (err) => errors.push(err.message));
  await page.addInitScript(recordDebugLines);
  if (route) await page.route("**/demo/token", route);
  let last = [];
  // While the page is between two documents, evaluate fails: keep the last lines read.
  const log = async () => {
    try {
      last = await page.evaluate(() => JSON.parse(sessionStorage.getItem("test-log") ?? "[]"));
    } catch {
      // navigating
    }
    return last;
  };
  await page.goto(`${gw.url}/demo/`);
  await page.fill("#user", user);
  await page.click("#login button");
  await page.waitForSelector(`#status:text("signed in as ${user}")`, { timeout: 10000 });
  await until(async () => (await log()).some((l) => l.startsWith("registered")), 10000, `${user} registered`);
  return { page, log, context, errors };
}

const ids = (lines) => lines.filter((l) => l.startsWith("notification ")).map((l) => l.split(" ")[1]);
const count = (lines, prefix) => lines.filter((l) => l.startsWith(prefix)).length;

// Three independent gateways and pages; run side by side so the minute of the token test is
// spent while the others run.
describe("client package in headless Chromium", { concurrency: true }, () => {
  it("a reload in the middle of a burst of notifications: nothing lost, nothing repeated", async () => {
    const gw = await startGateway({ DEMO_DIR: demoDir });
    try {
      const { page, log, context, errors } = await openDemo(gw, "rita");
      const posted = [];
      let reloaded = false;
      for (let i = 0; i < 80; i++) {
        posted.push((await notify(gw, "rita", `burst ${i}`)).id);
        if (!reloaded && ids(await log()).length >= 15) {
          reloaded = true;
          page.reload().catch(() => {}); // not awaited: the burst goes on while the page is away
        }
        await sleep(20);
      }
      assert.ok(reloaded, "the page was reloaded during the burst");
      await until(async () => ids(await log()).length >= posted.length, 15000, `${posted.length} notifications`).catch(async (e) => {
        const got = new Set(ids(await log()));
        throw new Error(`${e.message}; missing: ${posted.map((id, i) => (got.has(id) ? "" : i)).filter(String)}`);
      });
      await sleep(500);
      const lines = await log();
      assert.deepEqual(ids(lines), posted, "each notification handed to the page exactly once, in order, across the reload");
      // The second page started from the stored cursor: it was handed what came while the
      // page was away before its `registered` (catch-up), then the rest live.
      const loads = lines.flatMap((l, i) => (l === "demo loaded" ? [i] : []));
      assert.equal(loads.length, 2, lines.join("\n"));
      const afterReload = lines.slice(loads[1]);
      const regAt = afterReload.findIndex((l) => l.startsWith("registered"));
      const caughtUp = count(afterReload.slice(0, regAt), "notification ");
      assert.ok(caughtUp > 0, `no catch-up after the reload:\n${afterReload.slice(0, regAt + 1).join("\n")}`);
      assert.ok(ids(lines.slice(0, loads[1])).length >= 15);
      assert.deepEqual(errors, []);
      // The page shows the burst once: its badge counts all 80 unread.
      await page.waitForSelector(`#badge:text("80")`, { timeout: 5000 });
      await context.close();
    } finally {
      await gw.stop();
    }
  });

  it("a gateway restart: the page reconnects and gets what was posted meanwhile, once", async () => {
    const gw = await startGateway({ DEMO_DIR: demoDir });
    try {
      const { page, log, context, errors } = await openDemo(gw, "sam");
      const first = await notify(gw, "sam", "before restart");
      await until(async () => ids(await log()).length === 1, 5000, "first notification");
      await gw.restart();
      const second = await notify(gw, "sam", "during reconnect");
      await until(async () => count(await log(), "registered") === 2, 15000, "registered again");
      const third = await notify(gw, "sam", "after reconnect");
      await until(async () => ids(await log()).length >= 3, 5000, "three notifications");
      await sleep(300);
      const lines = await log();
      assert.deepEqual(ids(lines), [first.id, second.id, third.id]);
      assert.ok(count(lines, "disconnect ") > 0, "the restart was seen as a disconnect");
      assert.deepEqual(errors, []);
      await page.waitForSelector(`#status:text("signed in as sam")`, { timeout: 5000 });
      await page.waitForSelector(`#badge:text("3")`, { timeout: 5000 });
      assert.equal(await page.locator("#notifications li").count(), 3);
      await context.close();
    } finally {
      await gw.stop();
    }
  });

  it("a token that lives 20 s keeps the page connected for a minute", { timeout: 120000 }, async () => {
    const gw = await startGateway({ DEMO_DIR: demoDir, JWT_LEEWAY_SECS: 0 });
    try {
      let fetched = 0;
      // The page's getToken asks /demo/token; answer it as an auth service with a short lifetime would.
      const route = (r) => {
        fetched++;
        return r.fulfill({ json: { token: gw.token("tess", { ttlSecs: 20 }) } });
      };
      const { page, log, context, errors } = await openDemo(gw, "tess", { route });
      await page.fill("#room", "long");
      await page.click("#join button");
      await page.waitForSelector("#rooms button.current", { timeout: 5000 });
      await sleep(60000);
      const lines = await log();
      const refreshes = count(lines, "token refreshed until");
      assert.deepEqual(lines.filter((l) => l.startsWith("disconnect")), [], "never disconnected");
      assert.ok(refreshes >= 3, `${refreshes} refreshes in a minute`);
      assert.equal(fetched, 1 + refreshes, "one token for the connect, one per refresh");
      assert.deepEqual(errors, []);
      await page.fill("#text", "a minute later");
      await page.click("#send button");
      await page.waitForSelector('#messages li:has-text("a minute later")', { timeout: 5000 });
      const n = await notify(gw, "tess", "still connected");
      await until(async () => ids(await log()).includes(n.id), 5000, "notification after a minute");
      await context.close();
    } finally {
      await gw.stop();
    }
  });
});
