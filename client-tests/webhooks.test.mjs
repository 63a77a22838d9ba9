// Contract 10.3 (webhooks) against the release binary and a real local HTTP receiver: the life
// of a user (online once over tabs, room events, messages, reads, offline once), the signature,
// the type filter, retries with the same id, a restart while the receiver is down, the outbox
// counted on /metrics, start refusals; then two nodes on Redis and PostgreSQL (presence across
// the cluster, every event delivered by one node) and SIGKILL of the node that held pending
// events (delivered by the other node, also when the dead node held them under a lease).
//
// The cluster part needs PostgreSQL, Redis and psql (see cluster-fixture.mjs); a missing one
// fails with what to install.
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { createHmac, randomBytes } from "node:crypto";
import {
  describe, it, before, after, startGateway, connectAndRegistered, ack, until, sleep, uid, assertOk, spawnGateway,
  waitExit, UUID_V7, ISO_MS,
} from "./fixture.mjs";
import {
  requirePostgres, requireRedis, createDatabase, redisUrl, stablePort, startCluster, postNotification, psql,
} from "./cluster-fixture.mjs";

const SECRET = randomBytes(24).toString("hex"); // 48 bytes

// A webhook receiver on a fixed port, so that it can be down (nothing listening: the gateway's
// calls are refused) and come back on the same URL. Every call is kept with its parsed body,
// its arrival time and whether its signature checks; `answer(call)` gives the status, or
// "hang" to never answer.
class Receiver {
  constructor(port) {
    this.port = port;
    this.url = `http://127.0.0.1:${port}/hooks`;
    this.calls = [];
    this.answer = () => 200;
    this.server = null;
  }

  async start() {
    this.server = http.createServer((req, res) => {
      let raw = "";
      req.on("data", (c) => (raw += c));
      req.on("end", () => {
        const ts = req.headers["x-sio-timestamp"];
        const expected = "sha256=" + createHmac("sha256", SECRET).update(`${ts}.${raw}`).digest("hex");
        const call = {
          at: Date.now(),
          raw,
          body: JSON.parse(raw),
          contentType: req.headers["content-type"],
          timestamp: Number(ts),
          signed: req.headers["x-sio-signature"] === expected,
        };
        this.calls.push(call);
        const status = this.answer(call);
        if (status === "hang") return;
        res.statusCode = status;
        res.end("{}");
      });
    });
    await new Promise((r) => this.server.listen(this.port, "127.0.0.1", r));
  }

  async stop() {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
    this.server = null;
  }

  // The calls (every try) of events of `type` (and `pred` on the body).
  of(type, pred = () => true) {
    return this.calls.filter((c) => c.body.type === type && pred(c.body));
  }

  // Waits until `count` calls of `type` matching `pred` arrived (bounded).
  async waitFor(type, pred = () => true, { count = 1, timeoutMs = 10000 } = {}) {
    await until(() => this.of(type, pred).length >= count, timeoutMs, `${count} '${type}' webhook call(s)`);
    return this.of(type, pred);
  }
}

const hookEnv = (receiver, extra = {}) => ({ WEBHOOK_URL: receiver.url, WEBHOOK_SECRET: SECRET, ...extra });
const forUser = (u) => (b) => b.data.userId === u;

async function metricsText(gw) {
  const res = await fetch(`${gw.url}/metrics`, { signal: AbortSignal.timeout(5000) });
  return res.text();
}

// The value of the series `name{labels}` on /metrics (0 when absent).
async function metric(gw, name, labels = {}) {
  const text = await metricsText(gw);
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const m = line.match(/^(\w+)(\{[^}]*\})?\s+(\S+)$/);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return 0;
}

// ---------------------------------------------------------------------------

describe("webhooks on one node", () => {
  let gw, receiver;
  before(async () => {
    receiver = new Receiver(await stablePort());
    await receiver.start();
    gw = await startGateway(hookEnv(receiver));
  });
  after(async () => {
    await gw?.stop();
    await receiver?.stop();
  });

  it("the life of a user: online once over two tabs, room and message events, reads, offline once", async () => {
    const u = `u${uid()}`;
    const tab1 = (await connectAndRegistered(gw, { auth: { token: gw.token(u) } })).socket;
    const [online] = await receiver.waitFor("user.online", forUser(u));
    const tab2 = (await connectAndRegistered(gw, { auth: { token: gw.token(u) } })).socket;

    assertOk(await ack(tab1, "joinRoom", { roomId: "lobby" }));
    const [joined] = await receiver.waitFor("room.joined", forUser(u));
    assert.deepEqual(joined.body.data, { roomId: "lobby", userId: u, socketId: tab1.id });

    const message = assertOk(await ack(tab1, "sendMessage", { roomId: "lobby", text: "hello hooks" }));
    const [created] = await receiver.waitFor("message.created", (b) => b.data.id === message.id);
    assert.deepEqual(created.body.data, message, "message.created carries the message as the ack does");

    // Reads: by ids, then all; a read that changes nothing records nothing.
    const n1 = (await postNotification(gw, { userId: u, type: "t", title: "one", message: "m" })).body;
    assert.equal(assertOk(await ack(tab2, "markRead", { ids: [n1.id] })).updated, 1);
    const [readIds] = await receiver.waitFor("notifications.read", forUser(u));
    assert.deepEqual(readIds.body.data, { userId: u, ids: [n1.id] });
    assert.equal(assertOk(await ack(tab2, "markRead", { ids: [n1.id] })).updated, 0);
    await postNotification(gw, { userId: u, type: "t", title: "two", message: "m" });
    assertOk(await ack(tab2, "markRead", { all: true }));
    const reads = await receiver.waitFor("notifications.read", forUser(u), { count: 2 });
    assert.deepEqual(reads[1].body.data, { userId: u, all: true });

    assertOk(await ack(tab1, "leaveRoom", { roomId: "lobby" }));
    const [left] = await receiver.waitFor("room.left", forUser(u));
    assert.deepEqual(left.body.data, { roomId: "lobby", userId: u, socketId: tab1.id });

    // One tab closes: still online. The last closes: its room is left, then the user is offline.
    assertOk(await ack(tab2, "joinRoom", { roomId: "r2" }));
    const tab2Id = tab2.id;
    tab1.close();
    await sleep(800);
    assert.equal(receiver.of("user.offline", forUser(u)).length, 0, "offline while a tab is open");
    tab2.close();
    const [offline] = await receiver.waitFor("user.offline", forUser(u));
    const [leftOnClose] = await receiver.waitFor("room.left", (b) => b.data.userId === u && b.data.roomId === "r2");
    assert.deepEqual(leftOnClose.body.data, { roomId: "r2", userId: u, socketId: tab2Id });
    assert.ok(leftOnClose.body.id < offline.body.id, "the room is left before the user goes offline");
    assert.ok(online.body.createdAt <= offline.body.createdAt);
    await sleep(500);
    assert.equal(receiver.of("user.online", forUser(u)).length, 1, "online once for two tabs");
    assert.equal(receiver.of("user.offline", forUser(u)).length, 1);

    // Every call: one JSON object { id, type, createdAt, data }, signed with WEBHOOK_SECRET now,
    // a distinct UUIDv7 per event, and no token anywhere.
    const mine = receiver.calls.filter((c) => c.body.data.userId === u);
    // online, joined, created, read ids, read all, left, joined r2, left r2, offline
    assert.equal(mine.length, 9, mine.map((c) => c.body.type).join(","));
    assert.equal(new Set(mine.map((c) => c.body.id)).size, mine.length);
    for (const c of mine) {
      assert.deepEqual(Object.keys(c.body).sort(), ["createdAt", "data", "id", "type"]);
      assert.match(c.body.id, UUID_V7);
      assert.match(c.body.createdAt, ISO_MS);
      assert.ok(c.signed, `signature of ${c.raw}`);
      assert.match(c.contentType, /^application\/json/);
      assert.ok(Math.abs(c.timestamp - Date.now() / 1000) < 10, `timestamp ${c.timestamp}`);
      assert.ok(!c.raw.includes("eyJ"), "no token in a webhook");
    }
    assert.ok((await metric(gw, "sio_webhook_deliveries_total", { type: "user.online", outcome: "delivered" })) >= 1);
  });

  it("a receiver that fails gets the same event again after 1 s, then 2 s, until a 2xx", async () => {
    const u = `r${uid()}`;
    const answers = [500, 404, 200];
    let tries = 0;
    receiver.answer = (call) => (call.body.type === "user.online" && call.body.data.userId === u ? answers[tries++] ?? 200 : 200);
    try {
      const before = await metric(gw, "sio_webhook_deliveries_total", { type: "user.online", outcome: "server_error" });
      await connectAndRegistered(gw, { auth: { token: gw.token(u) } });
      const calls = await receiver.waitFor("user.online", forUser(u), { count: 3, timeoutMs: 15000 });
      await sleep(1500);
      assert.equal(receiver.of("user.online", forUser(u)).length, 3, "nothing more after the 2xx");
      assert.equal(new Set(calls.map((c) => c.body.id)).size, 1, "the same id on every try");
      assert.ok(calls.every((c) => JSON.stringify(c.body) === JSON.stringify(calls[0].body)), "the same body");
      assert.ok(calls.every((c) => c.signed));
      const gaps = [calls[1].at - calls[0].at, calls[2].at - calls[1].at];
      assert.ok(gaps[0] >= 900 && gaps[0] < 2500, `first pause ${gaps[0]} ms (1 s expected)`);
      assert.ok(gaps[1] >= 1900 && gaps[1] < 3500, `second pause ${gaps[1]} ms (2 s expected)`);
      const after = await metric(gw, "sio_webhook_deliveries_total", { type: "user.online", outcome: "server_error" });
      assert.equal(after - before, 1);
      assert.ok((await metric(gw, "sio_webhook_deliveries_total", { type: "user.online", outcome: "refused" })) >= 1);
    } finally {
      receiver.answer = () => 200;
    }
  });

  it("WEBHOOK_EVENTS sends only the listed types", async () => {
    const other = new Receiver(await stablePort());
    await other.start();
    const filtered = await startGateway(hookEnv(other, { WEBHOOK_EVENTS: "message.created, user.offline" }));
    try {
      const u = `f${uid()}`;
      const { socket } = await connectAndRegistered(filtered, { auth: { token: filtered.token(u) } });
      assertOk(await ack(socket, "joinRoom", { roomId: "f" }));
      const m = assertOk(await ack(socket, "sendMessage", { roomId: "f", text: "x" }));
      socket.close();
      await other.waitFor("user.offline", forUser(u));
      await other.waitFor("message.created", (b) => b.data.id === m.id);
      await sleep(1200);
      assert.deepEqual([...new Set(other.calls.map((c) => c.body.type))].sort(), ["message.created", "user.offline"]);
    } finally {
      await filtered.stop();
      await other.stop();
    }
  });
});

describe("webhooks through a receiver outage and a restart", () => {
  it("events of a node restarted while the receiver was down are all delivered when it comes back; the outbox is on /metrics", async () => {
    const receiver = new Receiver(await stablePort()); // not listening yet: calls are refused
    const gw = await startGateway(hookEnv(receiver, { SHUTDOWN_TIMEOUT_SECS: "5" }));
    try {
      const u = `d${uid()}`;
      const { socket } = await connectAndRegistered(gw, { auth: { token: gw.token(u) } });
      assertOk(await ack(socket, "joinRoom", { roomId: "down" }));
      const sent = [];
      for (let i = 0; i < 30; i++) sent.push(assertOk(await ack(socket, "sendMessage", { roomId: "down", text: `m${i}` })).id);
      // Tried and refused until the receiver counts as down (16 failures in a row; then one
      // probe per pause); counted as pending (the gauge is refreshed every 5 s).
      await until(async () => (await metric(gw, "sio_webhook_deliveries_total", { type: "message.created", outcome: "unreachable" })) >= 16, 10000, "16 unreachable tries");
      await until(async () => (await metric(gw, "sio_webhook_receiver_down")) === 1, 10000, "the receiver counted as down");
      await until(async () => (await metric(gw, "sio_webhooks_pending")) >= 32, 12000, "sio_webhooks_pending >= 32");

      // A graceful restart with the socket still open: its room.left and user.offline are
      // recorded at the stop, and stored before the process exits.
      await gw.restart();
      await receiver.start();
      for (const type of ["user.online", "room.joined", "room.left", "user.offline"]) {
        await receiver.waitFor(type, forUser(u), { timeoutMs: 30000 });
      }
      await until(() => sent.every((id) => receiver.of("message.created", (b) => b.data.id === id).length > 0), 30000, "every message.created");
      assert.ok(receiver.calls.every((c) => c.signed));
      await until(async () => (await metric(gw, "sio_webhooks_pending")) === 0, 12000, "sio_webhooks_pending back to 0");
    } finally {
      await gw.stop();
      await receiver.stop();
    }
  });

  it("a receiver that stays down is probed with one event at a time, not called for every due event", async () => {
    const receiver = new Receiver(await stablePort()); // not listening yet: calls are refused
    const gw = await startGateway(hookEnv(receiver, { EVENT_RATE_PER_SEC: "1000", EVENT_BURST: "1000" }));
    try {
      const u = `p${uid()}`;
      const { socket } = await connectAndRegistered(gw, { auth: { token: gw.token(u) } });
      assertOk(await ack(socket, "joinRoom", { roomId: "probe" }));
      const sent = [];
      for (let i = 0; i < 100; i++) sent.push(assertOk(await ack(socket, "sendMessage", { roomId: "probe", text: `m${i}` })).id);
      await until(async () => (await metric(gw, "sio_webhook_receiver_down")) === 1, 10000, "the receiver counted as down");
      assert.match(gw.logs(), /the webhook receiver fails every call/);
      const tries = async () => {
        let n = 0;
        for (const outcome of ["unreachable", "timeout", "server_error"]) {
          for (const type of ["user.online", "room.joined", "message.created"]) {
            n += await metric(gw, "sio_webhook_deliveries_total", { type, outcome });
          }
        }
        return n;
      };
      const atDown = await tries();
      await sleep(12000);
      const during = (await tries()) - atDown;
      // Without the probe: 102 events each tried again after 1, 2, 4 and 8 s, some 400 calls
      // in these 12 s; probing: one call per pause (1, 2, 4, 8 s …).
      assert.ok(during <= 8, `${during} calls in 12 s while the receiver was down (${atDown} before it counted as down)`);
      assert.ok(atDown <= 102, `${atDown} calls before the receiver counted as down`);

      await receiver.start();
      await until(() => sent.every((id) => receiver.of("message.created", (b) => b.data.id === id).length > 0), 40000, "every message.created once the receiver is back");
      await until(async () => (await metric(gw, "sio_webhook_receiver_down")) === 0, 5000, "the receiver counted as up");
      assert.match(gw.logs(), /the webhook receiver answers again/);
      await until(async () => (await metric(gw, "sio_webhooks_pending")) === 0, 12000, "sio_webhooks_pending back to 0");
      socket.close();
    } finally {
      await gw.stop();
      await receiver.stop();
    }
  });

  it("a start is refused, naming the variable, without a long enough secret or with an unknown type", async () => {
    const cases = [
      [{ WEBHOOK_URL: "http://127.0.0.1:9/h" }, "WEBHOOK_SECRET"],
      [{ WEBHOOK_URL: "http://127.0.0.1:9/h", WEBHOOK_SECRET: "short-secret" }, "WEBHOOK_SECRET"],
      [{ WEBHOOK_URL: "http://127.0.0.1:9/h", WEBHOOK_SECRET: SECRET, WEBHOOK_EVENTS: "user.online,user.typing" }, "WEBHOOK_EVENTS"],
      [{ WEBHOOK_URL: "ftp://127.0.0.1/h", WEBHOOK_SECRET: SECRET }, "WEBHOOK_URL"],
    ];
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sio-hooks-bad-"));
    try {
      for (const [vars, name] of cases) {
        const env = { ...process.env, PORT: "0", HOST: "127.0.0.1", JWT_SECRET: SECRET, API_KEYS: "k", ...vars };
        env.DATABASE_URL = `sqlite://${path.join(dir, "g.db")}`;
        const proc = spawnGateway({ env, dir });
        assert.equal(await waitExit(proc), 2, proc.logs());
        assert.ok(proc.logs().includes(name), `${name} not named: ${proc.logs()}`);
        assert.ok(!proc.logs().includes(SECRET), "the secret is not logged");
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------------------
// Two nodes on Redis and PostgreSQL

describe("webhooks on two nodes", () => {
  let pg, receiver;
  before(async () => {
    requirePostgres();
    await requireRedis(redisUrl());
    pg = createDatabase();
    receiver = new Receiver(await stablePort());
    await receiver.start();
  });
  after(async () => {
    await receiver?.stop();
    pg?.drop();
  });

  it("presence is cluster-wide and every event is delivered by one node, once", async () => {
    const cluster = await startCluster(2, { databaseUrl: pg.url, extra: hookEnv(receiver) });
    const [A, B] = cluster.nodes;
    try {
      const u = `c${uid()}`;
      const onA = (await connectAndRegistered(A, { auth: { token: A.token(u) } })).socket;
      const onB = (await connectAndRegistered(B, { auth: { token: B.token(u) } })).socket;
      await receiver.waitFor("user.online", forUser(u));
      assertOk(await ack(onA, "joinRoom", { roomId: "both" }));
      assertOk(await ack(onB, "joinRoom", { roomId: "both" }));
      const ids = [];
      for (let i = 0; i < 60; i++) {
        const s = i % 2 ? onB : onA;
        ids.push(assertOk(await ack(s, "sendMessage", { roomId: "both", text: `n${i}` })).id);
      }
      onA.close();
      await sleep(1000);
      assert.equal(receiver.of("user.offline", forUser(u)).length, 0, "offline while a tab is open on B");
      onB.close();
      await receiver.waitFor("user.offline", forUser(u));
      await until(() => ids.every((id) => receiver.of("message.created", (b) => b.data.id === id).length > 0), 15000, "every message.created");
      await sleep(2000); // a second delivery, if any, would come within this
      assert.equal(receiver.of("user.online", forUser(u)).length, 1, "online once for two tabs on two nodes");
      assert.equal(receiver.of("user.offline", forUser(u)).length, 1, "offline once");
      const mine = receiver.calls.filter((c) => c.body.data.userId === u);
      const distinct = new Set(mine.map((c) => c.body.id));
      assert.equal(mine.length, distinct.size, "no event delivered twice");
      assert.equal(distinct.size, 1 + 2 + 60 + 2 + 1); // online, 2 joins, messages, 2 lefts, offline
      // Both nodes deliver (claims are shared), and what they count adds up to what arrived.
      const delivered = async (gw) => {
        let n = 0;
        for (const t of ["user.online", "user.offline", "room.joined", "room.left", "message.created"]) {
          n += await metric(gw, "sio_webhook_deliveries_total", { type: t, outcome: "delivered" });
        }
        return n;
      };
      assert.equal((await delivered(A)) + (await delivered(B)), receiver.calls.length);
    } finally {
      await cluster.stop();
    }
  });

  it("events pending on a node killed with SIGKILL are delivered by the other node, with their ids; its users go offline", async () => {
    const down = new Receiver(await stablePort()); // refuses calls until started
    const cluster = await startCluster(2, { databaseUrl: pg.url, extra: hookEnv(down) });
    const [A, B] = cluster.nodes;
    try {
      const u = `k${uid()}`;
      const { socket } = await connectAndRegistered(A, { auth: { token: A.token(u) } });
      assertOk(await ack(socket, "joinRoom", { roomId: "kill" }));
      const ids = [];
      for (let i = 0; i < 20; i++) ids.push(assertOk(await ack(socket, "sendMessage", { roomId: "kill", text: `k${i}` })).id);
      await sleep(300); // the presence and room events are stored (batched, within milliseconds)
      assert.equal(await A.stop("SIGKILL"), "SIGKILL");
      await down.start();
      await until(() => ids.every((id) => down.of("message.created", (b) => b.data.id === id).length > 0), 30000, "every message.created");
      await down.waitFor("user.online", forUser(u), { timeoutMs: 10000 });
      await down.waitFor("room.joined", forUser(u), { timeoutMs: 10000 });
      // A's heartbeats stopped: B reaps its counts and records user.offline.
      await down.waitFor("user.offline", forUser(u), { timeoutMs: 20000 });
      assert.ok(down.calls.every((c) => c.signed));
    } finally {
      await cluster.stop();
      await down.stop();
    }
  });

  it("events a killed node held under a lease (its calls hanging) are delivered by another node once the lease ends", async () => {
    const hanging = new Receiver(await stablePort());
    hanging.answer = () => "hang";
    await hanging.start();
    const first = await startCluster(1, { databaseUrl: pg.url, extra: hookEnv(hanging) });
    const A = first.nodes[0];
    let B;
    try {
      const u = `l${uid()}`;
      const { socket } = await connectAndRegistered(A, { auth: { token: A.token(u) } });
      assertOk(await ack(socket, "joinRoom", { roomId: "lease" }));
      const ids = [];
      for (let i = 0; i < 10; i++) ids.push(assertOk(await ack(socket, "sendMessage", { roomId: "lease", text: `l${i}` })).id);
      await until(() => ids.every((id) => hanging.of("message.created", (b) => b.data.id === id).length > 0), 10000, "A's first tries");
      const leased = Number(psql(pg.url, `SELECT count(*) FROM webhook_outbox WHERE done_at IS NULL AND lease_owner IS NOT NULL AND data LIKE '%${u}%'`));
      assert.equal(leased, 12, "rows leased by A (online, joined, 10 messages)");
      assert.equal(await A.stop("SIGKILL"), "SIGKILL");
      const killedAt = Date.now();
      hanging.answer = () => 200;
      const env = { ...A.env };
      delete env.PORT;
      B = await startGateway(env);
      const againAfterKill = (id) => hanging.calls.some((c) => c.at > killedAt && c.body.data.id === id);
      await until(() => ids.every(againAfterKill), 45000, "every message.created again after the kill");
      const waited = Date.now() - killedAt;
      assert.ok(waited > 15000, `delivered ${waited} ms after the kill: before the lease ended?`);
      await hanging.waitFor("user.offline", forUser(u), { timeoutMs: 20000 });
      assert.equal(Number(psql(pg.url, `SELECT count(*) FROM webhook_outbox WHERE done_at IS NULL AND data LIKE '%${u}%'`)), 0);
    } finally {
      await B?.stop();
      await first.stop();
      await hanging.stop();
    }
  });
});
