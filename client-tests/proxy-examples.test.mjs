// The event proxy's example backends (examples/proxy-backend, contract 10.2 and 10.1) run as a
// user would run them: the real gateway forwards `order.*` events to the backend, signed with
// PROXY_SECRET; the backend verifies the signature, answers `order.place`, and joins the user
// to the order's room through the server API. Once with the Node backend, once with Python.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import path from "node:path";
import { fileURLToPath } from "node:url";
import {
  describe, it, before, after, startGateway, freePort, connectAndRegistered, ack, waitFor, nowSecs,
  assertOk, assertError,
} from "./fixture.mjs";

const EXAMPLES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "examples", "proxy-backend");

const BACKENDS = [
  { name: "node", cmd: process.execPath, script: "backend.mjs" },
  // Standard library only: any python3 (PYTHON to choose another).
  { name: "python", cmd: process.env.PYTHON ?? "python3", script: "backend.py" },
];

// Spawns the backend; resolves once it printed {"listening": port}.
function startBackend({ cmd, script }, env) {
  const child = spawn(cmd, [path.join(EXAMPLES, script)], {
    cwd: EXAMPLES,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const backend = { child, logs: "" };
  child.stderr.on("data", (d) => (backend.logs += d));
  backend.ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${script} did not listen within 10 s:\n${backend.logs}`)), 10000);
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      backend.logs += d;
      if (out.includes('"listening"')) {
        clearTimeout(timer);
        resolve(backend);
      }
    });
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot start ${cmd} ${script}: ${e.message}`));
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited (${code}) before listening:\n${backend.logs}`));
    });
  });
  return backend.ready;
}

const sign = (secret, ts, body) => `sha256=${createHmac("sha256", secret).update(`${ts}.${body}`).digest("hex")}`;

for (const kind of BACKENDS) {
  describe(`examples/proxy-backend/${kind.script}`, () => {
    const secret = randomBytes(32).toString("hex"); // 64 bytes
    let gw;
    let backend;
    let backendUrl;

    // A POST straight to the backend, as an attacker (or a misconfigured gateway) would send it.
    const direct = async (headers, body) => {
      const res = await fetch(backendUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json", ...headers },
        body,
        signal: AbortSignal.timeout(5000),
      });
      return { status: res.status, body: await res.json().catch(() => null) };
    };
    const call = JSON.stringify({ event: "order.place", userId: "zed", socketId: "direct", data: { item: "pen", qty: 1 } });

    before(async () => {
      const port = await freePort();
      backendUrl = `http://127.0.0.1:${port}/socket-events`;
      gw = await startGateway({ PROXY_URL: backendUrl, PROXY_SECRET: secret, PROXY_EVENTS: "order.*" });
      backend = await startBackend(kind, { PORT: port, PROXY_SECRET: secret, GATEWAY_URL: gw.url, API_KEY: gw.apiKey });
    });
    after(async () => {
      backend?.child.kill();
      await gw?.stop();
    });

    it("order.place gets the backend's { ok: true, data }; the server API joined every tab to the order's room", async () => {
      const { socket: tab1 } = await connectAndRegistered(gw, { token: gw.token("alice") });
      const { socket: tab2 } = await connectAndRegistered(gw, { token: gw.token("alice") });
      const joined1 = waitFor(tab1, "joinedRoom");
      const joined2 = waitFor(tab2, "joinedRoom");
      const res = await ack(tab1, "order.place", { item: "book", qty: 2 });
      const data = assertOk(res);
      assert.match(data.orderId, /^o-[0-9a-f]{12}$/, backend.logs);
      assert.deepEqual(
        { item: data.item, qty: data.qty, userId: data.userId, roomId: data.roomId, sockets: data.sockets },
        { item: "book", qty: 2, userId: "alice", roomId: `order.${data.orderId}`, sockets: 2 },
      );
      assert.deepEqual(Object.keys(res).sort(), ["data", "ok"]);
      assert.deepEqual((await joined1).roomId, data.roomId);
      assert.deepEqual((await joined2).roomId, data.roomId);
      const members = await fetch(`${gw.url}/api/rooms/${data.roomId}/members`, {
        headers: { Authorization: `Bearer ${gw.apiKey}` },
      }).then((r) => r.json());
      assert.deepEqual(members, { members: [{ userId: "alice", connections: 2 }] });
    });

    it("qty > 10 gets the backend's { ok: false, error: { code: out_of_stock } }, also as the error event", async () => {
      const { socket } = await connectAndRegistered(gw, { token: gw.token("bob") });
      const err = assertError(await ack(socket, "order.place", { item: "book", qty: 11 }), "out_of_stock");
      assert.match(err.message, /10/);
      const errorEvent = waitFor(socket, "error");
      socket.emit("order.place", { item: "book", qty: 12 }); // no ack callback
      const e = await errorEvent;
      assert.deepEqual({ code: e.code, event: e.event }, { code: "out_of_stock", event: "order.place" });
      // The backend's own validation passes through as given, details included.
      const bad = assertError(await ack(socket, "order.place", { item: "book", qty: 0 }), "validation_failed");
      assert.deepEqual(bad.details, { qty: ["a positive integer"] });
    });

    it("an event outside PROXY_EVENTS is not sent: unknown_event", async () => {
      const { socket } = await connectAndRegistered(gw, { token: gw.token("carol") });
      assertError(await ack(socket, "cart.add", { item: "book" }), "unknown_event");
    });

    it("the backend refuses a call with a wrong signature, a stale timestamp or no headers (401)", async () => {
      const ts = nowSecs();
      // Control: the same request signed correctly is answered, so the 401s below are the check's.
      const good = await direct({ "X-Sio-Timestamp": String(ts), "X-Sio-Signature": sign(secret, ts, call) }, call);
      assert.equal(good.status, 200, JSON.stringify(good.body) + backend.logs);
      assert.equal(good.body.data.userId, "zed");

      const refusals = {
        "wrong secret": [{ "X-Sio-Timestamp": String(ts), "X-Sio-Signature": sign("x".repeat(64), ts, call) }, call],
        "tampered body": [
          { "X-Sio-Timestamp": String(ts), "X-Sio-Signature": sign(secret, ts, call) },
          call.replace('"qty":1', '"qty":2'),
        ],
        "timestamp not the signed one": [{ "X-Sio-Timestamp": String(ts + 1), "X-Sio-Signature": sign(secret, ts, call) }, call],
        "stale timestamp (6 minutes)": [
          { "X-Sio-Timestamp": String(ts - 360), "X-Sio-Signature": sign(secret, ts - 360, call) },
          call,
        ],
        "uppercase hex": [{ "X-Sio-Timestamp": String(ts), "X-Sio-Signature": sign(secret, ts, call).toUpperCase() }, call],
        "signature without sha256=": [
          { "X-Sio-Timestamp": String(ts), "X-Sio-Signature": sign(secret, ts, call).slice("sha256=".length) },
          call,
        ],
        "no headers": [{}, call],
      };
      for (const [why, [headers, body]] of Object.entries(refusals)) {
        const res = await direct(headers, body);
        assert.equal(res.status, 401, `${why}: ${JSON.stringify(res.body)}`);
        assert.equal(res.body?.error?.code, "bad_signature", why);
      }
    });
  });
}
