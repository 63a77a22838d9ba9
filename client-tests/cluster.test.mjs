// Section 8 (scale-out) and issue 4: several real gateway processes on one Redis and one
// PostgreSQL database, and the faults: a node killed, Redis restarted, PostgreSQL unreachable,
// a graceful stop under load, and `sio-gateway migrate`.
//
// Needs PostgreSQL (TEST_POSTGRES_URL, else postgres://postgres@127.0.0.1:5432/postgres), Redis
// (REDIS_URL, else redis://127.0.0.1:6379), the psql CLI and the redis-server binary. A missing
// one fails the tests with what to install. One fresh PostgreSQL database per run of this file
// (dropped at the end); one REDIS_PREFIX per group of nodes.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  describe, it, before, after, startGateway, connect, connectAndRegistered, connectError, ack, waitFor,
  collect, noEvent, until, sleep, uid, assertOk, joined, io, BIN,
} from "./fixture.mjs";
import {
  requirePostgres, requireRedis, createDatabase, redisUrl, RedisServer, TcpProxy, stablePort, startCluster,
  postNotification, postEmit, readyz, allNotifications, postgresAdminUrl, withHostPort, psql,
} from "./cluster-fixture.mjs";

const REDIS = redisUrl();
let pg; // this run's database: { name, url, drop() }

before(async () => {
  requirePostgres();
  await requireRedis(REDIS);
  pg = createDatabase();
});
after(() => {
  pg?.drop();
});

// `n` nodes on this run's database and the shared Redis (see startCluster).
const startNodes = (n, { extra, perNode, redis = REDIS } = {}) =>
  startCluster(n, { databaseUrl: pg?.url, redis, extra, perNode });

const notificationBody = (userId, title) => ({ userId, type: "test", title, message: `message ${title}` });

async function created(gw, userId, title) {
  const res = await postNotification(gw, notificationBody(userId, title));
  assert.equal(res.status, 201, `POST /api/notifications on ${gw.url}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

// Waits until every list holds `expected.length` items, then a little longer, and checks that
// each holds exactly `expected` (so a late duplicate is caught).
async function exactlyOnce(lists, expected, what, timeoutMs = 5000) {
  await until(() => lists.every((l) => l.length >= expected.length), timeoutMs, what);
  await sleep(500);
  lists.forEach((l, i) => assert.deepEqual(l, expected, `${what} (receiver #${i})`));
}

const byUser = (members) => [...members].sort((x, y) => x.userId.localeCompare(y.userId));

// ---------------------------------------------------------------------------

describe("two nodes on one Redis and one PostgreSQL", () => {
  let cluster;
  let A;
  let B;
  before(async () => {
    cluster = await startNodes(2);
    [A, B] = cluster.nodes;
  });
  after(async () => {
    await cluster?.stop();
  });

  // Section 5: "stored first, then emitted as the event notification to the room user:<userId>, on every node";
  // "Each socket receives each notification exactly once and in id order".
  it("a notification posted to A reaches the user's tabs on A and on B exactly once each", async () => {
    const alice = `alice-${uid()}`;
    const tabs = [];
    for (const gw of [A, A, B]) tabs.push((await connectAndRegistered(gw, { token: gw.token(alice) })).socket);
    const lists = tabs.map((s) => collect(s, "notification"));
    const bob = await connect(B, { token: B.token(`bob-${uid()}`) });
    const bobQuiet = noEvent(bob, "notification", 1500);

    const n1 = await created(A, alice, "from A");
    await exactlyOnce(lists, [n1], "the notification posted to A on every tab");
    const n2 = await created(B, alice, "from B");
    await exactlyOnce(lists, [n1, n2], "the notification posted to B on every tab, after the first");
    assert.ok(await bobQuiet, "another user received alice's notification");
  });

  // Issue 4: "a sendMessage from a socket on A reaches room members on B";
  // section 4: "newMessage (the message) to every socket in the room, the sender included".
  it("sendMessage on A reaches a room member on B, and the sender, exactly once", async () => {
    const roomId = `room-${uid()}`;
    const alice = await joined(A, `alice-${uid()}`, roomId);
    const bob = await joined(B, `bob-${uid()}`, roomId);
    const carol = await connect(B, { token: B.token(`carol-${uid()}`) }); // not a member
    const toAlice = collect(alice, "newMessage");
    const toBob = collect(bob, "newMessage");
    const carolQuiet = noEvent(carol, "newMessage", 1500);

    const m1 = assertOk(await ack(alice, "sendMessage", { roomId, text: "hello from A" }));
    await exactlyOnce([toAlice, toBob], [m1], "newMessage from A");
    const m2 = assertOk(await ack(bob, "sendMessage", { roomId, text: "hello from B" }));
    await exactlyOnce([toAlice, toBob], [m1, m2], "newMessage from B");
    assert.ok(await carolQuiet, "a non-member on B received newMessage");
  });

  // Section 4: getRoomMembers "{ members: [{ userId, connections }] }, across all nodes".
  it("getRoomMembers on either node lists the members of both nodes with their connection counts", async () => {
    const roomId = `room-${uid()}`;
    const alice = `alice-${uid()}`;
    const bob = `bob-${uid()}`;
    const carol = `carol-${uid()}`;
    await joined(A, alice, roomId);
    await joined(A, alice, roomId);
    await joined(B, alice, roomId); // alice: 2 tabs on A + 1 on B
    await connect(B, { token: B.token(alice) }); // a 4th tab that did not join: not a member
    const onB = await joined(B, bob, roomId);
    const onA = await joined(A, carol, roomId);
    const expected = byUser([
      { userId: alice, connections: 3 },
      { userId: bob, connections: 1 },
      { userId: carol, connections: 1 },
    ]);
    assert.deepEqual(byUser(assertOk(await ack(onB, "getRoomMembers", { roomId })).members), expected, "asked on B");
    assert.deepEqual(byUser(assertOk(await ack(onA, "getRoomMembers", { roomId })).members), expected, "asked on A");
  });

  // Section 6: POST /api/emit "none: everyone" → 202 { ok: true }; section 8: nodes share broadcasts.
  it("POST /api/emit with no target on A reaches sockets on A and on B exactly once", async () => {
    const event = `announce${uid()}`;
    const sockets = [
      await connect(A, { token: A.token(`u-${uid()}`) }),
      await connect(B, { token: B.token(`u-${uid()}`) }),
      await connect(B, { token: B.token(`u-${uid()}`) }),
    ];
    const lists = sockets.map((s) => collect(s, event));
    const res = await postEmit(A, { event, data: { hello: "everyone" } });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    assert.deepEqual(res.body, { ok: true });
    await exactlyOnce(lists, [{ hello: "everyone" }], "the emitted event on every node");
  });

  // Section 4: joinRoom → "userJoined { roomId, userId } to the other sockets in the room".
  it("userJoined from a join on B reaches a member on A", async () => {
    const roomId = `room-${uid()}`;
    const alice = await joined(A, `alice-${uid()}`, roomId);
    const events = collect(alice, "userJoined");
    const bobId = `bob-${uid()}`;
    const bob = await connect(B, { token: B.token(bobId) });
    const bobQuiet = noEvent(bob, "userJoined", 1500);
    assertOk(await ack(bob, "joinRoom", { roomId }));
    await exactlyOnce([events], [{ roomId, userId: bobId }], "userJoined on A");
    assert.ok(await bobQuiet, "the joining socket received its own userJoined");
  });
});

describe("per-user connection limit across nodes", () => {
  let cluster;
  before(async () => {
    cluster = await startNodes(2, { extra: { SOCKET_MAX_CONNECTIONS_PER_USER: "2" } });
  });
  after(async () => {
    await cluster?.stop();
  });

  // Section 7: "With Redis configured, the per-user limit holds across all nodes."
  it("SOCKET_MAX_CONNECTIONS_PER_USER=2 holds across nodes and frees a slot on disconnect", async () => {
    const [A, B] = cluster.nodes;
    const alice = `alice-${uid()}`;
    const tok = A.token(alice);
    await connect(A, { token: tok });
    const onB = await connect(B, { token: tok });
    assert.equal(await connectError(A, { token: tok }), "too_many_user_connections", "third connection on A");
    assert.equal(await connectError(B, { token: tok }), "too_many_user_connections", "third connection on B");
    await connect(B, { token: B.token(`bob-${uid()}`) }); // another user is not affected

    onB.close();
    // "after one disconnects, a new one succeeds within a few seconds"
    const end = Date.now() + 5000;
    const refusals = [];
    let fresh;
    while (!fresh && Date.now() < end) {
      try {
        fresh = await connect(A, { token: tok });
      } catch (e) {
        refusals.push(e.message);
        assert.equal(e.message, "too_many_user_connections");
        await sleep(200);
      }
    }
    assert.ok(fresh, `no new connection within 5 s of a disconnect (refusals: ${refusals.join(", ")})`);
    // And the limit still holds with the freed slot taken again.
    assert.equal(await connectError(B, { token: tok }), "too_many_user_connections", "again full");
  });
});

describe("three nodes", () => {
  let cluster;
  before(async () => {
    cluster = await startNodes(3);
  });
  after(async () => {
    await cluster?.stop();
  });

  // Issue 4: "a notification posted to node A reaches the user's tabs on node B and C".
  it("a notification posted to A reaches the user's tabs on B and C exactly once", async () => {
    const [A, B, C] = cluster.nodes;
    const alice = `alice-${uid()}`;
    const tabs = [];
    for (const gw of [A, B, C, C]) tabs.push((await connectAndRegistered(gw, { token: gw.token(alice) })).socket);
    const lists = tabs.map((s) => collect(s, "notification"));
    const n1 = await created(A, alice, "one");
    await exactlyOnce(lists, [n1], "notification from A on A, B and C");
    const n2 = await created(C, alice, "two");
    await exactlyOnce(lists, [n1, n2], "notification from C on A, B and C");
  });
});

// ---------------------------------------------------------------------------
// Faults

describe("a node killed with SIGKILL", () => {
  let cluster;
  let lb;
  let backend = null; // the node the load balancer sends new connections to (null: none)
  before(async () => {
    // Limit 1: alice's slot on the killed node must expire, or she stays locked out.
    cluster = await startNodes(2, { extra: { SOCKET_MAX_CONNECTIONS_PER_USER: "1" } });
    backend = cluster.nodes[0];
    lb = new TcpProxy(await stablePort(), () => backend && { host: "127.0.0.1", port: backend.port });
    await lb.start();
  });
  after(async () => {
    await lb?.stop();
    await cluster?.stop();
  });

  // Issue 4: "a node killed with SIGKILL — its clients reconnect to another node with their
  // lastNotificationId and get every notification posted meanwhile, exactly once".
  // Section 5: "A client keeps socket.auth.lastNotificationId current (from registered and from each
  // notification), so automatic reconnects resume where it left off."
  //
  // As deployed: the client knows one URL, the load balancer's (here a TCP proxy, WebSocket-only so no
  // sticky sessions are involved). When node A dies, the balancer's health check takes it out and new
  // connections go to B; the client's own automatic reconnection (socket.io-client, small delays) gets
  // there with the auth object it keeps current. A refusal by a middleware (too_many_user_connections)
  // stops socket.io-client's automatic reconnection, so the client retries it itself, as the
  // socket.io-client docs advise (`if (!socket.active) socket.connect()`).
  it("the client reconnects through the load balancer to B and gets every notification exactly once, in order", async (t) => {
    const [A, B] = cluster.nodes;
    const alice = `alice-${uid()}`;
    const got = [];
    const registrations = [];
    const connectErrors = [];
    const disconnects = [];
    let closed = false;
    const socket = io(lb.url, {
      forceNew: true,
      transports: ["websocket"],
      reconnection: true,
      reconnectionDelay: 100,
      reconnectionDelayMax: 500,
      randomizationFactor: 0,
      timeout: 3000,
      auth: { token: A.token(alice) },
    });
    socket.on("registered", (r) => {
      registrations.push(r);
      socket.auth.lastNotificationId = r.lastNotificationId;
    });
    socket.on("notification", (n) => {
      got.push(n.id);
      socket.auth.lastNotificationId = n.id;
    });
    socket.on("disconnect", (reason) => disconnects.push(reason));
    socket.on("connect_error", (err) => {
      connectErrors.push(err.message);
      if (!socket.active && !closed) setTimeout(() => !closed && socket.connect(), 300);
    });
    const state = () =>
      `received ${JSON.stringify(got)}, posted ${JSON.stringify(posted)}, registrations ${registrations.length}, ` +
      `disconnects ${JSON.stringify(disconnects)}, connect errors ${JSON.stringify(connectErrors.slice(-10))} ` +
      `(${connectErrors.length} in all)`;
    const posted = [];
    const post = async (gw, title) => posted.push((await created(gw, alice, title)).id);
    try {
      await until(() => registrations.length === 1, 6000, "registered on A");
      assert.equal(registrations[0].lastNotificationId, null);
      await post(A, "before 1");
      await post(A, "before 2");
      await until(() => got.length === 2, 5000, "the first two notifications");

      assert.equal(await A.stop("SIGKILL"), "SIGKILL");
      const killedAt = Date.now();
      backend = null; // the health check takes A out of the pool
      await until(() => disconnects.length === 1, 5000, "the client noticing that A is gone");
      for (let i = 1; i <= 5; i++) await post(B, `away ${i}`); // posted while alice has no connection
      backend = B;
      // More while alice comes back (she may be refused until her slot on A expires, and these can
      // land while her catch-up is being sent).
      for (let i = 1; i <= 5; i++) {
        await post(B, `back ${i}`);
        await sleep(250);
      }
      await until(() => socket.connected && registrations.length === 2, Math.max(1000, killedAt + 15000 - Date.now()),
        "alice connected again within 15 s of the kill (her slot on the dead node must expire)").catch((e) => {
        throw new Error(`${e.message}; ${state()}`);
      });
      await until(() => got.length >= posted.length, 5000, "every notification").catch((e) => {
        throw new Error(`${e.message}; ${state()}`);
      });
      t.diagnostic(`back ${Date.now() - killedAt} ms after the kill; connect errors: ${JSON.stringify(connectErrors)}`);
      await sleep(500);
      assert.deepEqual(got, posted, `exactly once and in order; ${state()}`);
      // The limit still holds on B: a second connection of alice is refused.
      assert.equal(await connectError(B, { token: B.token(alice) }), "too_many_user_connections");
    } finally {
      closed = true;
      socket.close();
    }
  });
});

describe("Redis restarted", () => {
  let redis;
  let cluster;
  before(async () => {
    redis = new RedisServer(await stablePort());
    await redis.start();
    cluster = await startNodes(2, { redis: redis.url });
  });
  after(async () => {
    await cluster?.stop();
    await redis?.stop("SIGKILL");
  });

  // Issue 4: "Redis restarted — local delivery on each node never stops, cross-node delivery comes back by
  // itself within a few seconds, and /readyz reports Redis as failing while it is down".
  it("local delivery goes on while Redis is down, /readyz says so, and cross-node delivery comes back", async (t) => {
    const [A, B] = cluster.nodes;
    const alice = `alice-${uid()}`;
    const aliceA = (await connectAndRegistered(A, { token: A.token(alice) })).socket;
    const aliceB = (await connectAndRegistered(B, { token: B.token(alice) })).socket;
    const onA = collect(aliceA, "notification");
    const onB = collect(aliceB, "notification");
    const roomId = `room-${uid()}`;
    const bobA = await joined(A, `bob-${uid()}`, roomId);
    const carolA = await joined(A, `carol-${uid()}`, roomId);
    const daveB = await joined(B, `dave-${uid()}`, roomId);
    const erinB = await joined(B, `erin-${uid()}`, roomId);
    const has = (list, id) => list.some((n) => n.id === id);

    // Redis up: cross-node delivery works.
    const n0 = await created(A, alice, "redis up");
    await until(() => has(onB, n0.id), 5000, "notification from A on B while Redis is up");
    let toDave = waitFor(daveB, "newMessage");
    const m0 = assertOk(await ack(bobA, "sendMessage", { roomId, text: "redis up" }));
    assert.deepEqual(await toDave, m0);

    await redis.stop("SIGTERM");

    // /readyz: "503 with which one failed" (READYZ_REQUIRE_REDIS=false makes it 200 degraded;
    // operator.test.mjs).
    for (const gw of [A, B]) {
      const r = await readyz(gw);
      assert.equal(r.status, 503, `readyz on ${gw.url} while Redis is down: ${JSON.stringify(r.body)}`);
      assert.equal(r.body?.checks?.redis, "failing", JSON.stringify(r.body));
      assert.equal(r.body?.checks?.database, "ok", JSON.stringify(r.body));
    }

    // Local delivery on each node goes on.
    const nA = await created(A, alice, "redis down, to A");
    await until(() => has(onA, nA.id), 5000, "notification posted to A on alice's tab on A while Redis is down");
    const nB = await created(B, alice, "redis down, to B");
    await until(() => has(onB, nB.id), 5000, "notification posted to B on alice's tab on B while Redis is down");
    const toCarol = waitFor(carolA, "newMessage", 5000);
    const mA = assertOk(await ack(bobA, "sendMessage", { roomId, text: "redis down, on A" }));
    assert.deepEqual(await toCarol, mA, "sendMessage on A to a member on A while Redis is down");
    const toErin = waitFor(erinB, "newMessage", 5000);
    const mB = assertOk(await ack(daveB, "sendMessage", { roomId, text: "redis down, on B" }));
    assert.deepEqual(await toErin, mB, "sendMessage on B to a member on B while Redis is down");

    await redis.start(); // the same port
    const restartedAt = Date.now();

    // Cross-node delivery comes back by itself (bounded: 10 s).
    let back = false;
    for (let i = 0; !back && Date.now() - restartedAt < 10000; i++) {
      const probe = await created(A, alice, `probe ${i}`);
      const end = Date.now() + 1000;
      while (!back && Date.now() < end) {
        back = has(onB, probe.id);
        await sleep(50);
      }
    }
    assert.ok(back, "a notification posted to A did not reach alice on B within 10 s of Redis restarting");
    t.diagnostic(`notifications across nodes again ${Date.now() - restartedAt} ms after the restart`);
    let messagesBack = false;
    while (!messagesBack && Date.now() - restartedAt < 12000) {
      const seen = collect(daveB, "newMessage");
      const m = assertOk(await ack(bobA, "sendMessage", { roomId, text: "probe" }));
      const end = Date.now() + 1000;
      while (!messagesBack && Date.now() < end) {
        messagesBack = seen.some((x) => x.id === m.id);
        await sleep(50);
      }
      daveB.off("newMessage");
    }
    assert.ok(messagesBack, "a sendMessage on A did not reach a member on B within 12 s of Redis restarting");
    for (const gw of [A, B]) {
      await until(async () => (await readyz(gw)).body?.status === "ok", 5000, `readyz ok on ${gw.url} once Redis is back`);
    }
    // Exactly once after the reconnection (no doubled subscription).
    const before = onB.length;
    const nLast = await created(A, alice, "after restart");
    await until(() => has(onB, nLast.id), 5000, "notification after the restart");
    await sleep(500);
    assert.deepEqual(onB.slice(before).map((n) => n.id), [nLast.id], "delivered exactly once on B after the restart");
    toDave = collect(daveB, "newMessage");
    const mLast = assertOk(await ack(bobA, "sendMessage", { roomId, text: "after restart" }));
    await exactlyOnce([toDave], [mLast], "newMessage on B after the restart");
  });
});

describe("PostgreSQL unreachable", () => {
  let proxy;
  let gw;
  before(async () => {
    if (!pg) throw new Error("no PostgreSQL database (see the failure of the file's before hook)");
    const target = new URL(postgresAdminUrl());
    proxy = new TcpProxy(await stablePort(), () => ({ host: target.hostname, port: Number(target.port || 5432) }));
    await proxy.start();
    gw = await startGateway({
      DATABASE_URL: withHostPort(pg.url, "127.0.0.1", proxy.port),
      REDIS_URL: null,
      SHUTDOWN_TIMEOUT_SECS: "3",
    });
  });
  after(async () => {
    await gw?.stop();
    await proxy?.stop();
  });

  // Issue 4: "PostgreSQL unreachable — POST /api/notifications answers 503, nothing half-written, and the
  // same request succeeds once it is back". Section 6: unavailable 503; /readyz "503 with which one failed".
  it("POST /api/notifications answers 503 while the database is cut off, and succeeds once it is back", async (t) => {
    const alice = `alice-${uid()}`;
    const acked = [];
    const first = await postNotification(gw, notificationBody(alice, "before the cut"));
    assert.equal(first.status, 201, JSON.stringify(first.body));
    acked.push(first.body.id);

    await proxy.stop(); // listener closed, every live connection destroyed

    const t0 = Date.now();
    const during = await postNotification(gw, notificationBody(alice, "the same request"), { timeoutMs: 20000 });
    const took = Date.now() - t0;
    assert.equal(during.status, 503, `while cut off: ${during.status} ${JSON.stringify(during.body)}`);
    assert.equal(during.body?.error?.code, "unavailable", JSON.stringify(during.body));
    assert.ok(took < 12000, `the 503 took ${took} ms`);
    t.diagnostic(`503 after ${took} ms`);

    const ready = await readyz(gw, { timeoutMs: 20000 });
    assert.equal(ready.status, 503, JSON.stringify(ready.body));
    assert.equal(ready.body?.checks?.database, "failing", JSON.stringify(ready.body));

    await proxy.start(); // the same port
    const end = Date.now() + 20000;
    const outcomes = [];
    let again;
    while (!again && Date.now() < end) {
      const r = await postNotification(gw, notificationBody(alice, "the same request"), { timeoutMs: 20000 });
      outcomes.push(r.status);
      if (r.status === 201) again = r.body;
      else {
        assert.equal(r.status, 503, `after the database came back: ${r.status} ${JSON.stringify(r.body)}`);
        await sleep(250);
      }
    }
    assert.ok(again, `no 201 within 20 s of the database coming back (answers: ${outcomes.join(", ")})`);
    t.diagnostic(`answers once the proxy was back: ${outcomes.join(", ")}`);
    acked.push(again.id);
    assert.equal(again.title, "the same request");

    // Nothing half-written: exactly the acknowledged notifications are stored.
    const stored = await allNotifications(gw, alice);
    assert.deepEqual(stored.map((n) => n.id), [...acked].reverse());
    assert.equal((await readyz(gw)).status, 200);
  });
});

describe("graceful stop under load", () => {
  let cluster;
  before(async () => {
    cluster = await startNodes(2, { perNode: [{ SHUTDOWN_TIMEOUT_SECS: "5" }] });
  });
  after(async () => {
    await cluster?.stop();
  });

  // Section 8: "SIGTERM/SIGINT: stop accepting, finish writes, close the sockets' transports (clients see
  // transport close …), exit 0 within SHUTDOWN_TIMEOUT_SECS". Issue 4: "A notification posted during
  // shutdown is either stored and answered 201, or refused — never acknowledged and lost."
  it("SIGTERM: clients see transport close, exit 0 within 6 s, and every 201 during the stop is stored", async (t) => {
    const [A, B] = cluster.nodes;
    const ws = await connect(A, { token: A.token(`ws-${uid()}`), transports: ["websocket"] });
    const polling = await connect(A, { token: A.token(`poll-${uid()}`), transports: ["polling"] });
    await sleep(600); // the polling client is in its steady state (a long-poll pending)
    const wsGone = waitFor(ws, "disconnect", 8000);
    const pollingGone = waitFor(polling, "disconnect", 8000);

    const alice = `alice-${uid()}`;
    const results = [];
    let stopBurst = false;
    const inflight = [];
    let sent = 0;
    const fire = () => {
      const i = sent++;
      inflight.push(
        postNotification(A, notificationBody(alice, `burst ${i}`), { timeoutMs: 15000 }).then(
          (r) => results.push({ i, status: r.status, body: r.body }),
          (e) => results.push({ i, error: e.cause?.code ?? e.cause?.message ?? e.message }),
        ),
      );
    };
    const burst = (async () => {
      while (!stopBurst && sent < 3000) {
        fire();
        await sleep(5);
      }
    })();

    await sleep(200); // some requests before the signal
    for (let k = 0; k < 20; k++) fire(); // and a volley in flight when it comes
    await sleep(5);
    const t0 = Date.now();
    const code = await A.stop("SIGTERM", { keepDir: true });
    const took = Date.now() - t0;
    await sleep(300); // a few more against the stopped node
    stopBurst = true;
    await burst;
    await Promise.all(inflight);

    assert.equal(code, 0, "exit code");
    assert.ok(took < 6000, `exited ${took} ms after SIGTERM (SHUTDOWN_TIMEOUT_SECS=5)`);
    assert.equal(await wsGone, "transport close");
    assert.equal(await pollingGone, "transport close");

    const stored = new Set((await allNotifications(B, alice)).map((n) => n.id));
    const ok = results.filter((r) => r.status === 201);
    const outcomes = {};
    for (const r of results) outcomes[r.status ?? r.error] = (outcomes[r.status ?? r.error] ?? 0) + 1;
    t.diagnostic(`exit after ${took} ms; ${stored.size} stored; outcomes ${JSON.stringify(outcomes)}`);
    assert.ok(ok.length > 0, "no request was answered 201 (the burst should start before the signal)");
    const lost = ok.filter((r) => !stored.has(r.body.id));
    assert.deepEqual(lost.map((r) => r.i), [], "answered 201 but not in the database");
    const odd = results.filter((r) => r.status !== undefined && r.status !== 201 && r.status >= 200 && r.status < 300);
    assert.deepEqual(odd, [], "answered 2xx without being 201");
    assert.ok(results.length > ok.length, "no request was refused: the burst did not reach the stop");
    // Section 6: errors are JSON, "never a panic".
    const logs = A.logs();
    const panic = logs.indexOf("panicked");
    assert.equal(panic, -1, `node A panicked during the stop:\n${logs.slice(Math.max(0, logs.lastIndexOf("\n", panic - 2)), panic + 200)}`);
    // "either stored and answered 201, or refused": a request the client saw fail was not stored.
    const acked = new Set(ok.map((r) => r.body.id));
    const storedButRefused = [...stored].filter((id) => !acked.has(id));
    assert.deepEqual(storedButRefused, [], `${storedButRefused.length} stored although their request failed`);
  });
});

describe("sio-gateway migrate", () => {
  // Section 9: "sio-gateway migrate: apply migrations and exit"; issue 4: "migrations exist for both and
  // run on start and with sio-gateway migrate".
  it("migrate on a fresh PostgreSQL database exits 0, a node then works, and a second migrate is a no-op", async (t) => {
    if (!pg) throw new Error("no PostgreSQL database (see the failure of the file's before hook)");
    const db = createDatabase();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sio-gateway-migrate-"));
    t.after(() => {
      db.drop();
      fs.rmSync(dir, { recursive: true, force: true });
    });
    const secrets = { JWT_SECRET: randomBytes(24).toString("hex"), API_KEYS: `key-${randomBytes(16).toString("hex")}` };
    const migrate = () => {
      const env = { ...process.env, ...secrets, DATABASE_URL: db.url, RUST_LOG: "info", NO_COLOR: "1" };
      delete env.REDIS_URL;
      const r = spawnSync(BIN, ["migrate"], { cwd: dir, env, encoding: "utf8", timeout: 60000 });
      return { code: r.status ?? r.signal ?? r.error?.message, out: `${r.stdout}${r.stderr}` };
    };
    const tables = () =>
      Number(psql(db.url, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"));
    const columns = () =>
      psql(
        db.url,
        "SELECT table_name || '.' || column_name || ':' || data_type FROM information_schema.columns " +
          "WHERE table_schema = 'public' ORDER BY 1",
      );

    assert.equal(tables(), 0, "the fresh database has no tables");
    const first = migrate();
    assert.equal(first.code, 0, `first migrate:\n${first.out}`);
    assert.ok(tables() > 0, "migrate created no table");
    const schema = columns();

    const alice = `alice-${uid()}`;
    let gw = await startGateway({ ...secrets, DATABASE_URL: db.url, REDIS_URL: null });
    let n;
    try {
      n = await created(gw, alice, "after migrate");
      const { registered } = await connectAndRegistered(gw, { token: gw.token(alice) });
      assert.equal(registered.lastNotificationId, n.id);
      assert.equal(registered.unreadCount, 1);
    } finally {
      await gw.stop();
    }

    const second = migrate();
    assert.equal(second.code, 0, `second migrate:\n${second.out}`);
    assert.equal(columns(), schema, "the second migrate changed the schema");
    gw = await startGateway({ ...secrets, DATABASE_URL: db.url, REDIS_URL: null });
    try {
      assert.deepEqual((await allNotifications(gw, alice)).map((x) => x.id), [n.id], "data kept");
    } finally {
      await gw.stop();
    }
  });
});
