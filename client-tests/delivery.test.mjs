// Issue 12, points 3 and 4, from the outside:
// - "No silent loss on the way out": a tab whose client stops reading while thousands of
//   notifications are posted for its user must end up with every one of them, exactly once and
//   in order — the server either delivered them all, or disconnected the socket so the
//   reconnect's catch-up (auth.lastNotificationId, at most 100, the rest with
//   listNotifications, as contract section 5 says) recovers them. Never a silent gap.
// - "Redis latency never stalls HTTP": POST /api/notifications answers in well under a second
//   while every packet to and from Redis is delayed by 2 s.
//
// Needs the redis-server binary (a private one on a free port) for the second test.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it, startGateway, until, sleep, uid, io, waitFor } from "./fixture.mjs";
import { RedisServer, stablePort } from "./cluster-fixture.mjs";
import { CarefulTab, DelayProxy, postNotification } from "../bench/faults.mjs";

// Posts `count` notifications for `userId` with `inFlight` requests at a time; the 201 ids in
// creation order are returned (each must be 201).
async function postMany(gw, userId, count, { inFlight = 16, pad = 0 } = {}) {
  const created = [];
  let next = 0;
  const data = pad ? { pad: "x".repeat(pad) } : undefined;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < count) {
        const i = next++;
        const res = await postNotification(gw.url, gw.apiKey, { userId, type: "bulk", title: `n${i}`, message: `bulk ${i}`, data });
        assert.equal(res.status, 201, `POST /api/notifications #${i}: ${res.status || res.error} ${JSON.stringify(res.body)}`);
        created.push(res.body.id);
      }
    }),
  );
  return created.sort();
}

describe("a tab that stops reading (issue 12, point 3)", () => {
  it("gets all of 3000 notifications posted meanwhile, exactly once and in order, once it reads again", async (t) => {
    const gw = await startGateway();
    const user = `slow-${uid()}`;
    const tab = new CarefulTab({ label: "slow tab", user, token: gw.token(user), pickUrl: () => gw.url });
    try {
      await tab.connect();
      // ~10 KB each, 30 MB in all: far more than the kernel's socket buffers and the server's
      // send queue can hold while nobody reads.
      tab.pauseReading();
      const created = await postMany(gw, user, 3000, { pad: 9000 });
      tab.resumeReading();
      await until(() => created.every((id) => tab.have.has(id)), 30000, "every notification on the tab").catch((e) => {
        const missing = created.filter((id) => !tab.have.has(id));
        throw new Error(
          `${e.message}: ${missing.length} of ${created.length} missing (first ${missing[0]}); ` +
            `disconnects ${JSON.stringify(tab.disconnects)}, registrations ${tab.registrations}, ` +
            `events ${tab.events}, read with listNotifications ${tab.fetched}, cursor jumps ${tab.cursorJumps}`,
        );
      });
      await sleep(500); // a late duplicate still counts
      assert.equal(tab.duplicates, 0, `duplicates: ${tab.duplicateIds.join(", ")}`);
      assert.equal(tab.outOfOrder, 0, `out of order: ${JSON.stringify(tab.outOfOrderIds)}`);
      assert.equal(tab.have.size, created.length, "notifications the tab holds");
      // Which way the server took (both are fine): everything live, or a disconnect and catch-up.
      t.diagnostic(
        `events ${tab.events}, read with listNotifications ${tab.fetched}, sockets ${tab.sockets}, ` +
          `disconnects ${JSON.stringify(tab.disconnects)}`,
      );
    } finally {
      tab.close();
      await gw.stop();
    }
  });
});

describe("an expiry that finds the send buffer full (issue 12, point 3)", () => {
  it("is tried again, so the socket is disconnected once its buffer drains", async () => {
    const gw = await startGateway({ JWT_LEEWAY_SECS: "0" });
    const user = `expiring-${uid()}`;
    const ttlSecs = 12;
    const expiresAt = Date.now() + ttlSecs * 1000;
    const socket = io(gw.url, {
      auth: { token: gw.token(user, { ttlSecs }) },
      transports: ["websocket"],
      reconnection: false,
      forceNew: true,
    });
    try {
      await waitFor(socket, "registered", 6000);
      const reasons = [];
      socket.on("disconnect", (reason) => reasons.push(reason));
      socket.io.engine.transport.ws.pause();
      // Fill the kernel's buffers and the server's 1024-packet queue before the token expires.
      await postMany(gw, user, 3000, { pad: 9000 });
      assert.ok(Date.now() < expiresAt - 1000, "posting took too long: the buffer must be full before the expiry");
      await sleep(expiresAt - Date.now() + 1500);
      assert.deepEqual(reasons, [], "nothing reaches a client that does not read");
      socket.io.engine.transport.ws.resume();
      await until(() => reasons.length > 0, 8000, "a disconnect once the buffer drained");
      assert.equal(reasons[0], "io server disconnect", "the expiry's own disconnect, not a transport failure");
    } finally {
      socket.close();
      await gw.stop();
    }
  });
});

// Section 5: the catch-up is "the oldest 100 of them at most; the client reads the rest with
// listNotifications". This is the path the careful client of bench/faults.mjs takes when a
// server recovers a tab by disconnecting it, so it is checked on its own here.
describe("a tab that was offline while 250 notifications were created", () => {
  it("gets at most 100 as catch-up, reads the rest with listNotifications, each once and in order", async () => {
    const gw = await startGateway();
    const user = `offline-${uid()}`;
    const tab = new CarefulTab({ label: "offline tab", user, token: gw.token(user), pickUrl: () => gw.url });
    try {
      await tab.connect();
      // One notification first: a cursor of null asks for no catch-up (section 5).
      const [first] = await postMany(gw, user, 1);
      await until(() => tab.have.has(first), 5000, "the first notification");
      tab.socket.close(); // offline: a client-side close does not reconnect
      const events = tab.events;
      const created = await postMany(gw, user, 250, { inFlight: 8 });
      await tab.connect(); // back, with the cursor it had
      await until(() => created.every((id) => tab.have.has(id)), 10000, "every notification on the tab");
      await sleep(300);
      const caughtUp = tab.events - events;
      assert.ok(caughtUp <= 100, `catch-up sent ${caughtUp} notifications, at most 100 expected`);
      assert.equal(tab.fetched, created.length - caughtUp, "the rest read with listNotifications");
      assert.equal(tab.duplicates, 0);
      assert.equal(tab.outOfOrder, 0);
      assert.equal(tab.have.size, created.length + 1);
    } finally {
      tab.close();
      await gw.stop();
    }
  });
});

describe("POST /api/notifications while Redis is slow (issue 12, point 4)", () => {
  it("answers within 1 s while every packet to and from Redis is delayed by 2 s", async () => {
    const redis = new RedisServer(await stablePort());
    await redis.start();
    const proxy = await new DelayProxy(redis.port).start();
    let gw;
    const tab = { close() {} };
    try {
      gw = await startGateway({ REDIS_URL: proxy.url, REDIS_PREFIX: `sio-delivery-${randomBytes(6).toString("hex")}` });
      await until(async () => (await (await fetch(`${gw.url}/readyz`)).json()).status === "ok", 10000, "/readyz ok (Redis connected)");
      const user = `busy-${uid()}`;
      const live = new CarefulTab({ label: "tab", user, token: gw.token(user), pickUrl: () => gw.url });
      tab.close = () => live.close();
      await live.connect();

      proxy.delayMs = 2000;
      const times = [];
      const ids = [];
      for (let i = 0; i < 5; i++) {
        const res = await postNotification(gw.url, gw.apiKey, { userId: i % 2 ? user : `other-${uid()}`, type: "t", title: `slow ${i}`, message: "m" });
        assert.equal(res.status, 201, `POST #${i}: ${res.status || res.error} ${JSON.stringify(res.body)}`);
        times.push(Math.round(res.ms));
        if (i % 2) ids.push(res.body.id);
      }
      assert.ok(proxy.delayedChunks > 0, "the proxy delayed nothing: is the gateway talking to Redis through it?");
      assert.ok(Math.max(...times) < 1000, `POST /api/notifications took ${times.join(", ")} ms with Redis delayed by 2 s`);
      // The tab on the same node has its notifications without waiting for Redis either.
      await until(() => ids.every((id) => live.have.has(id)), 5000, "the local tab's notifications");
    } finally {
      proxy.delayMs = 0;
      tab.close();
      await gw?.stop();
      await proxy.stop();
      await redis.stop("SIGKILL");
    }
  });
});
