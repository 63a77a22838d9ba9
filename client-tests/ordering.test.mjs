// Contract section 5 (v1.2): the ids of one user's notifications increase in the order they
// were stored, whichever node stored them; while Redis is down, cross-node notifications still
// arrive, at most 5 seconds late; `registered` is never sent on a failed read, and is exact
// under concurrent creates and mark-reads on two nodes.
//
// Needs PostgreSQL, Redis, psql and redis-server (see cluster-fixture.mjs); a missing one fails
// with what to install.
import assert from "node:assert/strict";
import {
  describe, it, before, after, startGateway, connectAndRegistered, collect, until, sleep, uid, waitFor, noEvent, io,
} from "./fixture.mjs";
import {
  requirePostgres, requireRedis, createDatabase, redisUrl, RedisServer, TcpProxy, stablePort, startCluster,
  postNotification, allNotifications, withHostPort,
} from "./cluster-fixture.mjs";

let pg;
before(async () => {
  requirePostgres();
  await requireRedis(redisUrl());
  pg = createDatabase();
});
after(() => pg?.drop());

const startNodes = (n, { redis = redisUrl() } = {}) => startCluster(n, { databaseUrl: pg?.url, redis });

async function created(gw, userId, title) {
  const res = await postNotification(gw, { userId, type: "t", title, message: "m" });
  assert.equal(res.status, 201, `POST on ${gw.url}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

async function markRead(gw, userId, ids) {
  const res = await fetch(`${gw.url}/api/notifications/read`, {
    method: "POST",
    headers: { authorization: `Bearer ${gw.token(userId)}`, "content-type": "application/json" },
    body: JSON.stringify({ ids }),
    signal: AbortSignal.timeout(10000),
  });
  assert.equal(res.status, 200);
}

const ids = (list) => list.map((n) => n.id);

// A socket whose `notification` and `registered` events are recorded, in arrival order, from
// before it connects.
function recordedSocket(gw, auth) {
  const socket = io(gw.url, { auth, transports: ["websocket"], reconnection: false, forceNew: true });
  const events = [];
  socket.on("notification", (n) => events.push(["notification", n.id]));
  socket.on("registered", (r) => events.push(["registered", r.lastNotificationId, r.unreadCount]));
  return { socket, events };
}
const strictlyIncreasing = (list) => list.every((id, i) => i === 0 || list[i - 1] < id);

describe("ordering across nodes (section 5, v1.2)", () => {
  it("two nodes storing for one user at once: every socket gets every id once, in increasing order", async () => {
    const cluster = await startNodes(2);
    try {
      const [a, b] = cluster.nodes;
      const user = `ord-${uid()}`;
      const onA = await connectAndRegistered(a, { auth: { token: a.token(user) } });
      const onB = await connectAndRegistered(b, { auth: { token: b.token(user) } });
      const gotA = collect(onA.socket, "notification");
      const gotB = collect(onB.socket, "notification");
      // 60 posts in flight at once, alternating nodes: many land in the same millisecond.
      const posted = await Promise.all(
        Array.from({ length: 60 }, (_, i) => created(i % 2 ? b : a, user, `n${i}`)),
      );
      await until(() => gotA.length >= 60 && gotB.length >= 60, 8000, "60 notifications on both sockets");
      await sleep(300);
      for (const got of [gotA, gotB]) {
        assert.equal(got.length, 60, "each exactly once");
        assert.ok(strictlyIncreasing(ids(got)), "in increasing id order");
        assert.deepEqual(new Set(ids(got)), new Set(ids(posted)));
      }
      const stored = ids(await allNotifications(a, user)).reverse();
      assert.deepEqual(ids(gotA), stored, "the order of delivery is the order of the ids in the store");
    } finally {
      await cluster.stop();
    }
  });

  it("while Redis is down, a notification stored on one node reaches a socket on another within 5 s", async () => {
    const redis = new RedisServer(await stablePort());
    await redis.start();
    const cluster = await startNodes(2, { redis: redis.url });
    try {
      const [a, b] = cluster.nodes;
      const user = `down-${uid()}`;
      const { socket } = await connectAndRegistered(b, { auth: { token: b.token(user) } });
      const got = collect(socket, "notification");
      await redis.stop("SIGKILL");
      const started = Date.now();
      const n1 = await created(a, user, "while redis is down");
      assert.ok(Date.now() - started < 1000, "the POST does not wait for Redis");
      await until(() => got.length >= 1, 5000, "the notification within 5 s without Redis");
      assert.equal(got[0].id, n1.id);
      await redis.start();
      const n2 = await created(a, user, "after the restart");
      await until(() => got.length >= 2, 5000, "the next one after Redis is back");
      await sleep(300);
      assert.deepEqual(ids(got), [n1.id, n2.id], "each once, in order");
    } finally {
      await cluster.stop();
      await redis.stop("SIGKILL");
    }
  });
});

describe("registered (section 3 and 5, v1.2)", () => {
  it("is not sent while the database does not answer; catch-up and registered follow once it does", async () => {
    const target = new URL(pg.url);
    const proxy = new TcpProxy(await stablePort(), () => ({ host: target.hostname, port: Number(target.port || 5432) }));
    await proxy.start();
    const gw = await startGateway({ DATABASE_URL: withHostPort(pg.url, "127.0.0.1", proxy.port) });
    try {
      const user = `dbcut-${uid()}`;
      const first = await created(gw, user, "first");
      const second = await created(gw, user, "second");
      await proxy.stop();
      const { socket, events } = recordedSocket(gw, { token: gw.token(user), lastNotificationId: first.id });
      try {
        await waitFor(socket, "connect", 6000);
        await noEvent(socket, "registered", 1500);
        assert.deepEqual(events, [], "nothing moves the client's cursor while the database is away");
        await proxy.start();
        await until(() => events.some((e) => e[0] === "registered"), 10000, "registered after the database is back");
        assert.deepEqual(events, [
          ["notification", second.id],
          ["registered", second.id, 2],
        ]);
      } finally {
        socket.close();
      }
    } finally {
      await gw.stop();
      await proxy.stop();
    }
  });

  it("is exact under concurrent creates and mark-reads on two nodes", async () => {
    const cluster = await startNodes(2);
    try {
      const [a, b] = cluster.nodes;
      const user = `exact-${uid()}`;
      // Churn: creates and mark-reads on both nodes, and connects on both in between.
      const stored = [];
      const churn = (async () => {
        for (let round = 0; round < 12; round++) {
          const made = await Promise.all([created(a, user, `a${round}`), created(b, user, `b${round}`)]);
          stored.push(...made);
          await Promise.all([markRead(b, user, [made[0].id]), markRead(a, user, [made[1].id])].slice(0, round % 3));
        }
      })();
      const seen = [];
      for (let i = 0; i < 10; i++) {
        const gw = i % 2 ? b : a;
        const { socket, registered } = await connectAndRegistered(gw, { auth: { token: gw.token(user) } });
        seen.push(registered);
        socket.close();
      }
      await churn;
      for (const r of seen) {
        assert.ok(r.lastNotificationId === null || stored.some((n) => n.id === r.lastNotificationId));
      }
      // At rest, each node announces exactly what the database holds.
      const all = await allNotifications(a, user);
      const unread = all.filter((n) => !n.read).length;
      for (const gw of [a, b]) {
        const { socket, registered } = await connectAndRegistered(gw, { auth: { token: gw.token(user) } });
        socket.close();
        assert.equal(registered.lastNotificationId, all[0].id, `newest id on ${gw.url}`);
        assert.equal(registered.unreadCount, unread, `unread count on ${gw.url}`);
      }
      // A user's first notification stored on A, and a connect on B right after: B either
      // announces it or sends it after `registered`; never neither.
      for (let i = 0; i < 5; i++) {
        const fresh = `fresh-${uid()}`;
        const n = await created(a, fresh, "first ever");
        const { socket, events } = recordedSocket(b, { token: b.token(fresh) });
        try {
          await until(() => events.some((e) => e[0] === "registered"), 6000, "registered");
          const registered = events.find((e) => e[0] === "registered");
          if (registered[1] !== n.id) {
            assert.equal(registered[1], null, "announced, or announced as none");
            await until(() => events.some((e) => e[0] === "notification"), 3000, "the notification after registered");
            assert.deepEqual(events, [["registered", null, 0], ["notification", n.id]]);
          }
        } finally {
          socket.close();
        }
      }
    } finally {
      await cluster.stop();
    }
  });
});
