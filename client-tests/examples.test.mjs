// The Node examples in examples/node run as a user would run them (issue 6.2):
// worker.mjs posts notifications, listener.mjs prints them, catches up with --since,
// and resumes after the gateway restarts.
import assert from "node:assert/strict";
import { runJsonLines } from "./child.mjs";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, it, startGateway, until } from "./fixture.mjs";

const examples = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "examples", "node");

function run(script, args) {
  assert.ok(
    fs.existsSync(path.join(examples, "node_modules", "socket.io-client")),
    "examples/node has no node_modules: run `npm ci` in examples/node (scripts/test.sh does)",
  );
  // The listener runs until the test stops it; no time limit of its own.
  return runJsonLines(process.execPath, [path.join(examples, script), ...args], { cwd: examples, timeoutMs: 120000 });
}

async function post(gw, userId, title) {
  const worker = run("worker.mjs", [gw.url, gw.apiKey, userId, title, `body of ${title}`]);
  assert.equal(await worker.exited, 0, worker.stderr);
  return worker.lines[0];
}

const kinds = (out, kind) => out.lines.filter((l) => l.kind === kind);

describe("examples/node", () => {
  it("worker posts, listener prints each notification once", async () => {
    const gw = await startGateway();
    try {
      const listener = run("listener.mjs", [gw.url, gw.token("alice"), "--exit-after", "2"]);
      await until(() => kinds(listener, "registered").length === 1, 8000, "listener registered");
      const a = await post(gw, "alice", "first");
      const b = await post(gw, "alice", "second");
      assert.equal(await listener.exited, 0, listener.stderr);
      assert.deepEqual(kinds(listener, "notification").map((n) => n.id), [a.id, b.id]);
    } finally {
      await gw.stop();
    }
  });

  it("listener --since catches up on what it missed, oldest first", async () => {
    const gw = await startGateway();
    try {
      const posted = [];
      for (const t of ["n1", "n2", "n3"]) posted.push(await post(gw, "bob", t));
      const listener = run("listener.mjs", [gw.url, gw.token("bob"), "--since", posted[0].id, "--exit-after", "2"]);
      assert.equal(await listener.exited, 0, listener.stderr);
      assert.deepEqual(kinds(listener, "notification").map((n) => n.title), ["n2", "n3"]);
    } finally {
      await gw.stop();
    }
  });

  it("listener resumes after a gateway restart without losing or repeating", async () => {
    const gw = await startGateway();
    const listener = run("listener.mjs", [gw.url, gw.token("carol")]);
    try {
      await until(() => kinds(listener, "registered").length === 1, 8000, "listener registered");
      const first = await post(gw, "carol", "before restart");
      await until(() => kinds(listener, "notification").length === 1, 5000, "first notification");
      await gw.restart();
      // Posted before the listener is back: it arrives as catch-up on reconnect.
      const second = await post(gw, "carol", "while reconnecting");
      await until(() => kinds(listener, "registered").length === 2, 10000, "listener reconnected");
      const third = await post(gw, "carol", "after reconnect");
      await until(() => kinds(listener, "notification").length >= 3, 5000, "three notifications");
      assert.deepEqual(kinds(listener, "notification").map((n) => n.id), [first.id, second.id, third.id]);
    } finally {
      listener.child.kill();
      await gw.stop();
    }
  });
});
