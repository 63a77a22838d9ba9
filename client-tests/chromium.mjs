// Headless Chromium for the browser tests: Debian's chromium (no browser download), driven by
// playwright-core from examples/browser, with the flags this closed network needs.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const playwrightPath = path.join(root, "examples", "browser", "node_modules", "playwright-core", "index.mjs");

/** Launches headless Chromium, or fails naming what to install. */
export async function launchChromium() {
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} not found: install Debian's chromium (apt-get install chromium)`);
  assert.ok(fs.existsSync(playwrightPath), "playwright-core is missing: npm ci in examples/browser");
  const { chromium } = await import(playwrightPath);
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}
