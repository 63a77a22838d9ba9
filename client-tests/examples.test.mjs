// The Node examples in examples/node run as a user would run them (issue 6.2):
// worker.mjs posts notifications, listener.mjs prints them, catches up with --since,
// and resumes after the gateway restarts.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { runJsonLines } from "./child.mjs";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { deleteRedisPrefix, postgresAdminUrl, psql, redisUrl, requirePostgres, requireRedis } from "./cluster-fixture.mjs";
import { ack, assertOk, connectAndRegistered, describe, freePort, it, startGateway, uid, until } from "./fixture.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const examples = path.join(root, "examples", "node");

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

// The README's cluster section points to examples/two-nodes.sh: run as written, with a database,
// Redis prefix and ports of this run (the variables it takes for that).
describe("examples/two-nodes.sh", () => {
  it("starts two nodes on PostgreSQL and Redis; what it posts to node A, a client of node B reads", async () => {
    requirePostgres();
    await requireRedis(redisUrl());
    const db = `sio_gw_ctest_demo_${uid()}`;
    const prefix = `sio-gw-ctest-demo-${uid()}`;
    const [portA, portB] = [await freePort(), await freePort()];
    const env = { ...process.env, DEMO_DB: db, REDIS_PREFIX: prefix, PORT_A: String(portA), PORT_B: String(portB) };
    const script = spawn("bash", [path.join(root, "examples", "two-nodes.sh")], { cwd: root, env });
    let out = "";
    let err = "";
    script.stdout.on("data", (d) => (out += d));
    script.stderr.on("data", (d) => (err += d));
    const exited = new Promise((r) => script.on("exit", (code, signal) => r(code ?? signal)));
    const nodeB = { url: `http://127.0.0.1:${portB}` };
    try {
      // Its first step is `cargo build --release`: quick when the binary is current.
      await until(() => /^\{.*"posted to node A".*\}$/m.test(out), 180000, `the script's notification; stdout:\n${out}\nstderr:\n${err}`);
      const token = out.match(/^token for alice: (\S+)$/m)?.[1];
      assert.ok(token, out);
      const posted = JSON.parse(out.match(/^\{.*"posted to node A".*\}$/m)[0]);
      for (const port of [portA, portB]) {
        const ready = await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.json());
        assert.equal(ready.status, "ok", JSON.stringify(ready));
        assert.ok(ready.checks?.redis, `node on ${port} uses Redis: ${JSON.stringify(ready)}`);
      }
      const { socket, registered } = await connectAndRegistered(nodeB, { token });
      assert.equal(registered.userId, "alice");
      assert.equal(registered.unreadCount, 1);
      const { notifications } = assertOk(await ack(socket, "listNotifications", {}));
      assert.deepEqual(notifications.map((n) => [n.id, n.message]), [[posted.id, "posted to node A"]]);
      socket.close();
    } finally {
      script.kill("SIGTERM");
      const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r("still running"), 15000))]);
      if (code === "still running") script.kill("SIGKILL");
      psql(postgresAdminUrl(), `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
      await deleteRedisPrefix(redisUrl(), prefix);
      assert.equal(code, 130, `the script stops on SIGTERM; stderr:\n${err}`);
    }
    // Its trap stopped both nodes.
    for (const port of [portA, portB]) {
      await assert.rejects(fetch(`http://127.0.0.1:${port}/healthz`), `node on ${port} stopped`);
    }
  });
});
