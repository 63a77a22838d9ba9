// The example webhook receivers (examples/webhook-receiver, contract 10.3) run as a user would
// run them: the real gateway POSTs its events to the receiver, signed with WEBHOOK_SECRET; the
// receiver verifies each signature, records each new event as one JSON line on stdout, and
// answers a repeated event id 200 without recording it again. Once with Node, once with Python.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import path from "node:path";
import { fileURLToPath } from "node:url";
import {
  describe, it, before, after, startGateway, freePort, connect, ack, until, nowSecs, sleep, assertOk,
  UUID_V7, ISO_MS,
} from "./fixture.mjs";

const EXAMPLES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "examples", "webhook-receiver");

const RECEIVERS = [
  { name: "node", cmd: process.execPath, script: "receiver.mjs" },
  // Standard library only: any python3 (PYTHON to choose another).
  { name: "python", cmd: process.env.PYTHON ?? "python3", script: "receiver.py" },
];

// Spawns the receiver; resolves once it printed {"listening": port}. `events()` parses the
// JSON lines it printed since (one per event it recorded).
function startReceiver({ cmd, script }, env) {
  const child = spawn(cmd, [path.join(EXAMPLES, script)], {
    cwd: EXAMPLES,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const receiver = { child, out: "", logs: "" };
  receiver.events = () =>
    receiver.out
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map((l) => JSON.parse(l))
      .filter((e) => e.listening === undefined);
  child.stderr.on("data", (d) => (receiver.logs += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${script} did not listen within 10 s:\n${receiver.logs}`)), 10000);
    child.stdout.on("data", (d) => {
      receiver.out += d;
      if (receiver.out.includes('"listening"')) {
        clearTimeout(timer);
        resolve(receiver);
      }
    });
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot start ${cmd} ${script}: ${e.message}`));
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited (${code}) before listening:\n${receiver.logs}`));
    });
  });
}

const sign = (secret, ts, body) => `sha256=${createHmac("sha256", secret).update(`${ts}.${body}`).digest("hex")}`;

// sio_webhook_deliveries_total by outcome, summed over the types.
async function deliveries(gw) {
  const text = await fetch(`${gw.url}/metrics`).then((r) => r.text());
  const out = {};
  for (const m of text.matchAll(/^sio_webhook_deliveries_total\{([^}]*)\}\s+(\S+)$/gm)) {
    const outcome = /outcome="([^"]*)"/.exec(m[1])[1];
    out[outcome] = (out[outcome] ?? 0) + Number(m[2]);
  }
  return out;
}

for (const kind of RECEIVERS) {
  describe(`examples/webhook-receiver/${kind.script}`, () => {
    const secret = randomBytes(32).toString("hex"); // 64 bytes
    let gw;
    let receiver;
    let receiverUrl;

    // A POST straight to the receiver, as an attacker (or a replaying proxy) would send it.
    const direct = async (headers, body) => {
      const res = await fetch(receiverUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json", ...headers },
        body,
        signal: AbortSignal.timeout(5000),
      });
      return { status: res.status, body: await res.json().catch(() => null) };
    };
    const ofType = (type) => receiver.events().filter((e) => e.type === type);

    before(async () => {
      const port = await freePort();
      receiverUrl = `http://127.0.0.1:${port}/webhooks`;
      receiver = await startReceiver(kind, { PORT: port, WEBHOOK_SECRET: secret });
      gw = await startGateway({ WEBHOOK_URL: receiverUrl, WEBHOOK_SECRET: secret });
    });
    after(async () => {
      receiver?.child.kill();
      await gw?.stop();
    });

    it("records the signed events of a user's life: online, joined, message, left, offline", async () => {
      const user = `alice-${kind.name}`;
      const roomId = `lobby-${kind.name}`;
      const socket = await connect(gw, { token: gw.token(user), transports: ["websocket"] });
      const socketId = socket.id;
      assertOk(await ack(socket, "joinRoom", { roomId }));
      const msg = assertOk(await ack(socket, "sendMessage", { roomId, text: "hello, backend" }));
      socket.close();
      // Delivery order is not guaranteed (calls run side by side): wait for all five.
      await until(() => receiver.events().length >= 5, 10000, `5 events at the receiver (${receiver.out}${receiver.logs})`);
      await sleep(300); // nothing more comes

      const events = receiver.events();
      const byType = Object.fromEntries(events.map((e) => [e.type, e]));
      assert.deepEqual(
        events.map((e) => e.type).sort(),
        ["message.created", "room.joined", "room.left", "user.offline", "user.online"],
        JSON.stringify(events),
      );
      for (const e of events) {
        assert.deepEqual(Object.keys(e).sort(), ["createdAt", "data", "id", "type"], JSON.stringify(e));
        assert.match(e.id, UUID_V7);
        assert.match(e.createdAt, ISO_MS);
      }
      assert.equal(new Set(events.map((e) => e.id)).size, events.length, "each event has its own id");
      assert.deepEqual(byType["user.online"].data, { userId: user });
      assert.deepEqual(byType["room.joined"].data, { roomId, userId: user, socketId });
      assert.deepEqual(byType["message.created"].data, msg, "the message as the sender's ack has it");
      assert.deepEqual(byType["room.left"].data, { roomId, userId: user, socketId });
      assert.deepEqual(byType["user.offline"].data, { userId: user });
      // Every call reached the receiver signed: none was refused.
      await until(async () => (await deliveries(gw)).delivered >= 5, 6000, "5 deliveries in /metrics");
      const counts = await deliveries(gw);
      assert.deepEqual(Object.keys(counts), ["delivered"], JSON.stringify(counts));
    });

    it("refuses a tampered signature, a tampered body, a stale timestamp and no headers with 401", async () => {
      const before = receiver.events().length;
      const ts = nowSecs();
      const body = JSON.stringify({
        id: "01936f0e-0000-7000-8000-000000000001",
        type: "user.online",
        createdAt: new Date().toISOString(),
        data: { userId: "mallory" },
      });
      const good = sign(secret, ts, body);
      const flipped = good.slice(0, -1) + (good.endsWith("0") ? "1" : "0");
      const refusals = {
        "tampered signature": [{ "X-Sio-Timestamp": String(ts), "X-Sio-Signature": flipped }, body],
        "wrong secret": [{ "X-Sio-Timestamp": String(ts), "X-Sio-Signature": sign("x".repeat(64), ts, body) }, body],
        "tampered body": [{ "X-Sio-Timestamp": String(ts), "X-Sio-Signature": good }, body.replace("mallory", "alice")],
        "timestamp not the signed one": [{ "X-Sio-Timestamp": String(ts + 1), "X-Sio-Signature": good }, body],
        "stale timestamp (6 minutes)": [
          { "X-Sio-Timestamp": String(ts - 360), "X-Sio-Signature": sign(secret, ts - 360, body) },
          body,
        ],
        "uppercase hex": [{ "X-Sio-Timestamp": String(ts), "X-Sio-Signature": good.toUpperCase() }, body],
        "no headers": [{}, body],
      };
      for (const [why, [headers, payload]] of Object.entries(refusals)) {
        const res = await direct(headers, payload);
        assert.equal(res.status, 401, `${why}: ${JSON.stringify(res.body)}`);
        assert.equal(res.body?.error?.code, "bad_signature", why);
      }
      await sleep(200);
      assert.equal(receiver.events().length, before, "a refused call records nothing");
    });

    it("an event id seen before is answered 200 and recorded once", async () => {
      // A gateway event the receiver already has, sent again, signed now (as a retry is).
      await until(() => ofType("user.online").length >= 1, 10000, "an event from the gateway");
      const [first] = ofType("user.online");
      const body = JSON.stringify(first);
      for (let i = 0; i < 3; i++) {
        const ts = nowSecs();
        const res = await direct({ "X-Sio-Timestamp": String(ts), "X-Sio-Signature": sign(secret, ts, body) }, body);
        assert.equal(res.status, 200, JSON.stringify(res.body));
      }
      // A new id with the same content is a new event: recorded.
      const fresh = JSON.stringify({ ...first, id: "01936f0e-0000-7000-8000-0000000000ff" });
      const ts = nowSecs();
      const res = await direct({ "X-Sio-Timestamp": String(ts), "X-Sio-Signature": sign(secret, ts, fresh) }, fresh);
      assert.equal(res.status, 200);
      await sleep(200);
      assert.equal(receiver.events().filter((e) => e.id === first.id).length, 1, receiver.out);
      assert.equal(receiver.events().filter((e) => e.id === "01936f0e-0000-7000-8000-0000000000ff").length, 1);
      assert.match(receiver.logs, new RegExp(`duplicate user.online ${first.id}`));
    });
  });
}
