// Section 5 (notifications) over the socket: delivery to every tab, listNotifications, markRead,
// registered's unreadCount and lastNotificationId, catch-up, exactly-once delivery during catch-up,
// and survival across a restart on the same database.
import assert from "node:assert/strict";
import fs from "node:fs";
import {
  describe, it, closeAfterTest, before, after, TRANSPORTS, startGateway, io, connect, connectAndRegistered, ack,
  waitFor, collect, noEvent, until, sleep, uid, assertOk, assertError, assertDetails, UUID_V7, ISO_MS,
} from "./fixture.mjs";

// ---------------------------------------------------------------------------
// Helpers of this file

// One HTTP request; resolves with { status, headers, text, body (parsed JSON or undefined) }.
async function api(gw, method, path, { auth, json } = {}) {
  const headers = {};
  if (auth) headers.authorization = `Bearer ${auth}`;
  let body;
  if (json !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(json);
  }
  const res = await fetch(gw.url + path, { method, headers, body, signal: AbortSignal.timeout(10000) });
  const text = await res.text();
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: res.status, headers: res.headers, text, body: parsed };
}

// POST /api/notifications with the service key; asserts 201 and resolves with the notification.
async function post(gw, userId, fields = {}) {
  const json = { userId, type: "test.kind", title: "Title", message: "Message", ...fields };
  const res = await api(gw, "POST", "/api/notifications", { auth: gw.apiKey, json });
  assert.equal(res.status, 201, `POST /api/notifications → ${res.status} ${res.text}`);
  return res.body;
}

// n notifications, one after the other (so their ids are in this order).
async function postMany(gw, userId, n, label = "n") {
  const out = [];
  for (let i = 0; i < n; i++) out.push(await post(gw, userId, { title: `${label} ${i}`, data: { i } }));
  return out;
}

// Opens a socket with every `notification` and `registered` logged in arrival order; the listeners
// are in place before the handshake starts, so nothing sent before `registered` is missed.
// onFirstNotification(): called when the first `notification` arrives.
function openLogged(gw, { token, transports = ["websocket"], auth = {}, onFirstNotification } = {}) {
  const socket = io(gw.url, {
    forceNew: true,
    reconnection: false,
    timeout: 5000,
    autoConnect: false,
    auth: { token, ...auth },
    transports,
  });
  closeAfterTest(socket);
  const log = [];
  socket.on("notification", (n) => {
    log.push({ event: "notification", n, at: performance.now() });
    if (log.filter((e) => e.event === "notification").length === 1) onFirstNotification?.();
  });
  socket.on("registered", (r) => log.push({ event: "registered", r, at: performance.now() }));
  const registered = waitFor(socket, "registered", 10000);
  registered.catch(() => {});
  socket.once("connect_error", (e) => log.push({ event: "connect_error", message: e.message }));
  socket.connect();
  return { socket, log, registered };
}

const notes = (log) => log.filter((e) => e.event === "notification").map((e) => e.n);
const ids = (list) => list.map((n) => n.id);
const indexOfRegistered = (log) => log.findIndex((e) => e.event === "registered");

// Fails naming every notification that arrived more than once, with its positions in the log.
function assertNoRepeats(log) {
  const seen = new Map();
  log.forEach((e, i) => {
    if (e.event !== "notification") return;
    if (!seen.has(e.n.id)) seen.set(e.n.id, []);
    seen.get(e.n.id).push(i);
  });
  const repeats = [...seen].filter(([, at]) => at.length > 1);
  if (repeats.length === 0) return;
  const title = (id) => log.find((e) => e.n?.id === id).n.title;
  const shown = repeats.map(([id, at]) => `${title(id)} (${id}) at log positions ${at.join(", ")}`).join("; ");
  assert.fail(`arrived more than once: ${shown}; registered at position ${indexOfRegistered(log)} of ${log.length}`);
}

function assertStrictlyIncreasing(list, what) {
  for (let i = 1; i < list.length; i++) {
    assert.ok(list[i - 1] < list[i], `${what}: ${list[i - 1]} then ${list[i]} at ${i} (not strictly increasing)`);
  }
}

// A syntactically valid UUIDv7 older than any notification the tests create, naming none.
const unknownId = "01900000-0000-7000-8000-000000000000";

// ---------------------------------------------------------------------------

let gw;
before(async () => {
  gw = await startGateway({ EVENT_RATE_PER_SEC: "1000", EVENT_BURST: "1000" });
});
after(async () => {
  await gw?.stop();
});

// "A notification: { id, userId, type, title, message, data, createdAt, read }. id … (UUIDv7) …
// createdAt is RFC 3339 UTC with milliseconds" / "Created through POST /api/notifications: stored first,
// then emitted as the event notification to the room user:<userId>"
// Posts a backlog of 150 for a fresh user, then connects with the backlog's entry `cursorIndex` as
// lastNotificationId while posting 15 more right after io() (in parallel with the handshake) and
// 15 more as soon as the first catch-up notification arrives (created while the catch-up is being
// sent, or after it). Resolves once all 30 are stored.
async function catchUpUnderLoad(gw, transports, cursorIndex) {
  const alice = `alice-${uid()}`;
  const backlog = await postMany(gw, alice, 150, "backlog");
  const early = [];
  const late = [];
  const fire = (into, k) => {
    for (let i = 0; i < 15; i++) into.push(post(gw, alice, { title: `${k} ${i}` }));
  };
  const s = openLogged(gw, {
    token: gw.token(alice),
    transports,
    auth: { lastNotificationId: backlog[cursorIndex].id },
    onFirstNotification: () => fire(late, "late"),
  });
  fire(early, "early");
  await s.registered;
  const earlyN = await Promise.all(early);
  await until(() => late.length === 15, 5000, "the first catch-up notification");
  const lateN = await Promise.all(late);
  return { backlog, s, earlyN, lateN };
}

describe("notification delivery", () => {
  it("POST /api/notifications answers 201 and every tab of the user gets it once; other users do not", async () => {
    const alice = `alice-${uid()}`;
    const bob = `bob-${uid()}`;
    const tabs = await Promise.all(
      [["websocket"], ["polling", "websocket"], ["polling"]].map((transports) =>
        connectAndRegistered(gw, { token: gw.token(alice), transports }).then((r) => r.socket),
      ),
    );
    const got = tabs.map((s) => collect(s, "notification"));
    const bobSocket = await connect(gw, { token: gw.token(bob) });
    const bobQuiet = noEvent(bobSocket, "notification", 500);

    const started = Date.now();
    const res = await api(gw, "POST", "/api/notifications", {
      auth: gw.apiKey,
      json: { userId: alice, type: "invoice.paid", title: "Invoice paid", message: "#1042 was paid", data: { invoice: 1042 } },
    });
    assert.equal(res.status, 201, res.text);
    const n = res.body;
    assert.deepEqual(Object.keys(n).sort(), ["createdAt", "data", "id", "message", "read", "title", "type", "userId"]);
    assert.match(n.id, UUID_V7);
    assert.equal(n.userId, alice);
    assert.equal(n.type, "invoice.paid");
    assert.equal(n.title, "Invoice paid");
    assert.equal(n.message, "#1042 was paid");
    assert.deepEqual(n.data, { invoice: 1042 });
    assert.equal(n.read, false);
    assert.match(n.createdAt, ISO_MS);
    const t = Date.parse(n.createdAt);
    assert.ok(t >= started - 2000 && t <= Date.now() + 2000, `createdAt ${n.createdAt} is now`);

    await until(() => got.every((l) => l.length >= 1), 5000, "the notification on all 3 tabs");
    await sleep(300); // a repeat would arrive by now
    for (const [i, list] of got.entries()) assert.deepEqual(list, [n], `tab ${i} got ${JSON.stringify(list)}`);
    assert.ok(await bobQuiet, "another user's socket received the notification");
  });

  // "data is any JSON value or null"
  for (const [label, data] of [
    ["an object", { a: 1, nested: { list: [1, "two", null, true] }, text: "héllo 😀" }],
    ["an array", [1, "two", { three: 3 }]],
    ["a string", "just text"],
    ["a number", 42.5],
    ["zero", 0],
    ["false", false],
    ["null", null],
    ["absent (→ null)", undefined],
  ]) {
    it(`data ${label} is stored and delivered as given`, async () => {
      const alice = `alice-${uid()}`;
      const { socket } = await connectAndRegistered(gw, { token: gw.token(alice) });
      const live = waitFor(socket, "notification");
      const fields = data === undefined ? {} : { data };
      const n = await post(gw, alice, fields);
      const expected = data === undefined ? null : data;
      assert.deepEqual(n.data, expected);
      assert.ok("data" in n, "data is present in the answer");
      assert.deepEqual(await live, n);
      const { notifications } = assertOk(await ack(socket, "listNotifications", {}));
      assert.deepEqual(notifications, [n]);
    });
  }

  // "id and message ids are time-ordered strings (UUIDv7), usable as cursors"
  it("notification ids are time-ordered", async () => {
    const alice = `alice-${uid()}`;
    const list = await postMany(gw, alice, 10);
    assert.equal(new Set(ids(list)).size, 10);
    assertStrictlyIncreasing(ids(list), "ids in creation order");
  });
});

for (const transports of TRANSPORTS) {
  const conn = (sub, auth = {}) => connectAndRegistered(gw, { token: gw.token(sub), transports, auth });

  // listNotifications: "{ limit? (1–100, default 50), before? (id), unreadOnly? } → { notifications, hasMore },
  // newest first"
  describe(`listNotifications [${transports}]`, () => {
    it("pages newest first with limit, before and hasMore", async () => {
      const alice = `alice-${uid()}`;
      const sent = await postMany(gw, alice, 5);
      const newestFirst = [...sent].reverse();
      const { socket } = await conn(alice);
      const list = async (arg) => assertOk(await ack(socket, "listNotifications", arg));
      assert.deepEqual(await list({}), { notifications: newestFirst, hasMore: false });
      assert.deepEqual(await list({ limit: 2 }), { notifications: newestFirst.slice(0, 2), hasMore: true });
      assert.deepEqual(await list({ limit: 2, before: sent[3].id }), { notifications: [sent[2], sent[1]], hasMore: true });
      assert.deepEqual(await list({ limit: 2, before: sent[1].id }), { notifications: [sent[0]], hasMore: false });
      assert.deepEqual(await list({ limit: 5 }), { notifications: newestFirst, hasMore: false });
      assert.deepEqual(await list({ before: sent[0].id }), { notifications: [], hasMore: false });
    });

    it("returns 50 by default and up to 100 with limit", async () => {
      const alice = `alice-${uid()}`;
      const sent = await postMany(gw, alice, 51);
      const { socket } = await conn(alice);
      const def = assertOk(await ack(socket, "listNotifications", {}));
      assert.equal(def.notifications.length, 50);
      assert.equal(def.hasMore, true);
      assert.deepEqual(ids(def.notifications), ids(sent.slice(1)).reverse());
      const all = assertOk(await ack(socket, "listNotifications", { limit: 100 }));
      assert.equal(all.notifications.length, 51);
      assert.equal(all.hasMore, false);
      const one = assertOk(await ack(socket, "listNotifications", { limit: 1 }));
      assert.deepEqual(one, { notifications: [sent[50]], hasMore: true });
    });

    it("unreadOnly lists only unread notifications", async () => {
      const alice = `alice-${uid()}`;
      const [n0, n1, n2, n3] = await postMany(gw, alice, 4);
      const { socket } = await conn(alice);
      assert.deepEqual(assertOk(await ack(socket, "markRead", { ids: [n1.id, n3.id] })), { updated: 2 });
      const list = async (arg) => assertOk(await ack(socket, "listNotifications", arg));
      assert.deepEqual(await list({ unreadOnly: true }), { notifications: [n2, n0], hasMore: false });
      assert.deepEqual(await list({ unreadOnly: true, limit: 1 }), { notifications: [n2], hasMore: true });
      assert.deepEqual(await list({ unreadOnly: true, before: n2.id }), { notifications: [n0], hasMore: false });
      const all = await list({ unreadOnly: false });
      assert.deepEqual(ids(all.notifications), [n3.id, n2.id, n1.id, n0.id]);
      assert.deepEqual(all.notifications.map((n) => n.read), [true, false, true, false]);
      assert.deepEqual(all.notifications[0], { ...n3, read: true });
    });

    // "Users only see their own"
    it("lists only the user's own notifications", async () => {
      const alice = `alice-${uid()}`;
      const bob = `bob-${uid()}`;
      const a = await post(gw, alice, { title: "for alice" });
      await post(gw, bob, { title: "for bob" });
      const b = await post(gw, bob, { title: "for bob again" });
      const { socket } = await conn(alice);
      assert.deepEqual(assertOk(await ack(socket, "listNotifications", {})), { notifications: [a], hasMore: false });
      const { socket: bobSocket } = await conn(bob);
      const bobs = assertOk(await ack(bobSocket, "listNotifications", { limit: 1 }));
      assert.deepEqual(bobs, { notifications: [b], hasMore: true });
    });

    // "not_found (a before cursor that names no message or notification of that room or user)"
    it("a before cursor naming another user's notification or no notification is not_found", async () => {
      const alice = `alice-${uid()}`;
      const bob = `bob-${uid()}`;
      const bobs = await post(gw, bob);
      await postMany(gw, alice, 2);
      const { socket } = await conn(alice);
      assertError(await ack(socket, "listNotifications", { before: bobs.id }), "not_found");
      assertError(await ack(socket, "listNotifications", { before: unknownId }), "not_found");
    });

    // "limit? (1–100, default 50)"; "validation_failed (with details: field → list of messages; a non-object
    // argument is reported under the field _)"
    for (const limit of [0, 101, "x", "5", 1.5, -1]) {
      it(`limit ${JSON.stringify(limit)} is validation_failed with details.limit`, async () => {
        const { socket } = await conn(`alice-${uid()}`);
        assertDetails(await ack(socket, "listNotifications", { limit }), "limit");
      });
    }

    it("a before that is not a string of 1–64 characters, or a non-boolean unreadOnly, is validation_failed", async () => {
      const { socket } = await conn(`alice-${uid()}`);
      assertDetails(await ack(socket, "listNotifications", { before: 42 }), "before");
      assertDetails(await ack(socket, "listNotifications", { before: "x".repeat(65) }), "before");
      assertDetails(await ack(socket, "listNotifications", { unreadOnly: "yes" }), "unreadOnly");
      assertDetails(await ack(socket, "listNotifications", "everything"), "_");
    });
  });

  // markRead: "{ ids: [id…] (1–100) } or { all: true } → { updated } (rows that went from unread to read) …
  // notificationsRead { ids } (those ids of the request that belong to the user) or { all: true } to every
  // socket in user:<sub>, the caller included"
  describe(`markRead [${transports}]`, () => {
    it("{ ids } counts rows that went unread→read and tells every socket of the user", async () => {
      const alice = `alice-${uid()}`;
      const bob = `bob-${uid()}`;
      const [a1, a2, a3] = await postMany(gw, alice, 3);
      const b1 = await post(gw, bob);
      const caller = (await conn(alice)).socket;
      const others = [
        (await connectAndRegistered(gw, { token: gw.token(alice), transports: ["websocket"] })).socket,
        (await connectAndRegistered(gw, { token: gw.token(alice), transports: ["polling"] })).socket,
      ];
      const bobSocket = (await conn(bob)).socket;
      const events = [caller, ...others].map((s) => collect(s, "notificationsRead"));
      const bobQuiet = noEvent(bobSocket, "notificationsRead", 500);

      const res = await ack(caller, "markRead", { ids: [a1.id, b1.id, a2.id, unknownId] });
      assert.deepEqual(res, { ok: true, data: { updated: 2 } });
      await until(() => events.every((l) => l.length >= 1), 5000, "notificationsRead on the 3 sockets");
      for (const [i, list] of events.entries()) {
        assert.equal(list.length, 1, `socket ${i}: ${JSON.stringify(list)}`);
        assert.deepEqual(Object.keys(list[0]), ["ids"]);
        assert.deepEqual([...list[0].ids].sort(), [a1.id, a2.id].sort(), `socket ${i}: only alice's ids`);
      }
      assert.ok(await bobQuiet, "bob received alice's notificationsRead");

      // The same ids again: nothing goes from unread to read.
      assert.deepEqual(await ack(caller, "markRead", { ids: [a1.id, a2.id] }), { ok: true, data: { updated: 0 } });

      const page = assertOk(await ack(caller, "listNotifications", {}));
      assert.deepEqual(page.notifications.map((n) => [n.id, n.read]), [[a3.id, false], [a2.id, true], [a1.id, true]]);
      // bob's notification is untouched.
      const bobs = assertOk(await ack(bobSocket, "listNotifications", {}));
      assert.deepEqual(bobs.notifications, [b1]);
    });

    it("{ all: true } marks everything read and tells every socket of the user { all: true }", async () => {
      const alice = `alice-${uid()}`;
      const bob = `bob-${uid()}`;
      const [a1] = await postMany(gw, alice, 4);
      const b1 = await post(gw, bob);
      const caller = (await conn(alice)).socket;
      const other = (await connectAndRegistered(gw, { token: gw.token(alice), transports: ["polling"] })).socket;
      assert.deepEqual(assertOk(await ack(caller, "markRead", { ids: [a1.id] })), { updated: 1 });
      await sleep(100); // let that notificationsRead pass before collecting
      const events = [caller, other].map((s) => collect(s, "notificationsRead"));

      assert.deepEqual(await ack(caller, "markRead", { all: true }), { ok: true, data: { updated: 3 } });
      await until(() => events.every((l) => l.length >= 1), 5000, "notificationsRead on both sockets");
      await sleep(200);
      for (const list of events) assert.deepEqual(list, [{ all: true }]);
      assert.deepEqual(assertOk(await ack(caller, "markRead", { all: true })), { updated: 0 });
      const page = assertOk(await ack(caller, "listNotifications", { unreadOnly: true }));
      assert.deepEqual(page, { notifications: [], hasMore: false });

      const bobSocket = (await conn(bob)).socket;
      assert.deepEqual(assertOk(await ack(bobSocket, "listNotifications", {})).notifications, [b1]);
    });

    it("an invalid argument is validation_failed", async () => {
      const { socket } = await conn(`alice-${uid()}`);
      assertDetails(await ack(socket, "markRead", { ids: [] }), "ids");
      assertDetails(await ack(socket, "markRead", { ids: Array.from({ length: 101 }, () => unknownId) }), "ids");
      assertDetails(await ack(socket, "markRead", { ids: "all" }), "ids");
      assertError(await ack(socket, "markRead", {}), "validation_failed");
      assertDetails(await ack(socket, "markRead", 7), "_");
    });

    it("100 ids are accepted", async () => {
      const { socket } = await conn(`alice-${uid()}`);
      const res = await ack(socket, "markRead", { ids: Array.from({ length: 100 }, () => unknownId) });
      assert.deepEqual(res, { ok: true, data: { updated: 0 } });
    });
  });

  // registered: "{ userId, socketId, rooms, unreadCount, lastNotificationId } … lastNotificationId is the id of
  // the user's newest notification at that moment (null if none)"
  describe(`registered counts [${transports}]`, () => {
    it("unreadCount and lastNotificationId follow posts and markRead", async () => {
      const alice = `alice-${uid()}`;
      const fresh = await conn(alice);
      assert.equal(fresh.registered.userId, alice);
      assert.equal(fresh.registered.unreadCount, 0);
      assert.equal(fresh.registered.lastNotificationId, null);
      fresh.socket.close();

      const [n1, n2, n3] = await postMany(gw, alice, 3);
      const second = await conn(alice);
      assert.equal(second.registered.unreadCount, 3);
      assert.equal(second.registered.lastNotificationId, n3.id);

      assertOk(await ack(second.socket, "markRead", { ids: [n1.id] }));
      second.socket.close();
      const third = await conn(alice);
      assert.equal(third.registered.unreadCount, 2);
      assert.equal(third.registered.lastNotificationId, n3.id);

      assertOk(await ack(third.socket, "markRead", { all: true }));
      third.socket.close();
      const fourth = await conn(alice);
      assert.equal(fourth.registered.unreadCount, 0);
      assert.equal(fourth.registered.lastNotificationId, n3.id, "reading does not move the cursor");
      assert.ok(n2.id < n3.id);
    });
  });

  // "Catch-up: a client that connects with auth: { token, lastNotificationId } first receives, as notification
  // events, oldest first, the notifications of that user created after that id (the oldest 100 of them at most;
  // the client reads the rest with listNotifications), then registered. An id that names no notification of
  // the user gives no catch-up."
  describe(`catch-up [${transports}]`, () => {
    it("a reconnect with lastNotificationId gets exactly the missed ones, oldest first, before registered", async () => {
      const alice = `alice-${uid()}`;
      const token = gw.token(alice);
      const first = openLogged(gw, { token, transports });
      const reg1 = await first.registered;
      assert.equal(reg1.lastNotificationId, null);
      const live = [await post(gw, alice, { title: "live 1" }), await post(gw, alice, { title: "live 2" })];
      await until(() => notes(first.log).length >= 2, 5000, "2 live notifications");
      assert.deepEqual(notes(first.log), live);
      const cursor = notes(first.log).at(-1).id;
      first.socket.disconnect();

      const missed = await postMany(gw, alice, 5, "missed");
      const second = openLogged(gw, { token, transports, auth: { lastNotificationId: cursor } });
      const reg2 = await second.registered;
      assert.deepEqual(
        second.log.map((e) => e.event),
        ["notification", "notification", "notification", "notification", "notification", "registered"],
      );
      assert.deepEqual(notes(second.log), missed);
      assert.equal(reg2.lastNotificationId, missed[4].id);
      assert.equal(reg2.unreadCount, 7);

      const later = await post(gw, alice, { title: "after registered" });
      await until(() => notes(second.log).length >= 6, 5000, "the live notification after registered");
      await sleep(300);
      assert.deepEqual(notes(second.log), [...missed, later], "no repeats, nothing else");
      assert.equal(second.log.at(-1).event, "notification");
    });

    it("more than 100 missed: the oldest 100 arrive before registered, the rest via listNotifications", async () => {
      const alice = `alice-${uid()}`;
      const [cursor] = await postMany(gw, alice, 1, "seen");
      const missed = await postMany(gw, alice, 130, "missed");
      const s = openLogged(gw, { token: gw.token(alice), transports, auth: { lastNotificationId: cursor.id } });
      const reg = await s.registered;
      await sleep(300); // anything else would arrive by now
      assert.equal(indexOfRegistered(s.log), 100, "100 notifications, then registered");
      assert.deepEqual(notes(s.log), missed.slice(0, 100));
      assert.equal(s.log.length, 101, "nothing after registered");
      assert.equal(reg.lastNotificationId, missed[129].id);
      assert.equal(reg.unreadCount, 131);

      const lastSeen = notes(s.log).at(-1).id;
      const page = assertOk(await ack(s.socket, "listNotifications", { limit: 100 }));
      assert.equal(page.notifications.length, 100);
      assert.equal(page.hasMore, true);
      const rest = page.notifications.filter((n) => n.id > lastSeen).reverse();
      assert.deepEqual(rest, missed.slice(100));
    });

    it("a lastNotificationId naming no notification gives no catch-up, and registered still comes", async () => {
      const alice = `alice-${uid()}`;
      const sent = await postMany(gw, alice, 2);
      for (const lastNotificationId of [unknownId, "not-an-id", "ffffffff-ffff-7fff-bfff-ffffffffffff"]) {
        const s = openLogged(gw, { token: gw.token(alice), transports, auth: { lastNotificationId } });
        const reg = await s.registered;
        assert.equal(reg.lastNotificationId, sent[1].id);
        assert.equal(reg.unreadCount, 2);
        await sleep(200);
        assert.deepEqual(notes(s.log), [], `cursor ${lastNotificationId} gave a catch-up`);
        s.socket.close();
      }
    });

    it("another user's notification id as cursor gives no catch-up", async () => {
      const alice = `alice-${uid()}`;
      const bob = `bob-${uid()}`;
      const bobs = await post(gw, bob);
      await postMany(gw, alice, 3); // all newer than bob's
      const s = openLogged(gw, { token: gw.token(alice), transports, auth: { lastNotificationId: bobs.id } });
      const reg = await s.registered;
      assert.equal(reg.unreadCount, 3);
      await sleep(200);
      assert.deepEqual(notes(s.log), []);
    });

    // "Each socket receives each notification exactly once and in id order, including one created while that
    // socket's catch-up is being sent (it must neither be skipped nor repeated)."
    it("exactly once, in id order: 130 behind the cursor and 30 created during the handshake", async (t) => {
      const { backlog, s, earlyN, lateN } = await catchUpUnderLoad(gw, transports, 19);

      // Every late one must arrive.
      const received = () => new Set(ids(notes(s.log)));
      await until(() => lateN.every((n) => received().has(n.id)), 5000, "all 15 notifications created during catch-up");
      await sleep(500); // repeats or stragglers arrive by now

      const got = notes(s.log);
      const gotIds = ids(got);
      t.diagnostic(`received ${got.length}; early ones received: ${earlyN.filter((n) => received().has(n.id)).length}/15`);
      assertNoRepeats(s.log);
      assertStrictlyIncreasing(gotIds, "received ids");
      assert.deepEqual(got.slice(0, 100), backlog.slice(20, 120), "the first 100 are the oldest 100 after the cursor");
      assert.ok(indexOfRegistered(s.log) >= 100, "registered came after the catch-up");
      for (const n of backlog.slice(120)) assert.ok(!received().has(n.id), "more than 100 of the backlog arrived");
      const concurrent = new Map([...earlyN, ...lateN].map((n) => [n.id, n]));
      for (const n of got.slice(100)) {
        assert.ok(concurrent.has(n.id), `unexpected notification ${n.title}`);
        assert.deepEqual(n, concurrent.get(n.id));
      }
      for (const n of lateN) assert.ok(received().has(n.id), `${n.title} (created during catch-up) was skipped`);
    });

    it("exactly once, in id order: 10 behind the cursor and 30 created during the handshake all arrive", async () => {
      const { backlog, s, earlyN, lateN } = await catchUpUnderLoad(gw, transports, 139);

      const expected = [...backlog.slice(140), ...[...earlyN, ...lateN].sort((a, b) => (a.id < b.id ? -1 : 1))];
      await until(() => notes(s.log).length >= expected.length, 5000, `${expected.length} notifications`);
      await sleep(500);
      const gotIds = ids(notes(s.log));
      assertNoRepeats(s.log);
      assertStrictlyIncreasing(gotIds, "received ids");
      assert.deepEqual(notes(s.log), expected);
      assert.ok(indexOfRegistered(s.log) >= 10, "registered came after the catch-up");
    });
  });
}

// Notifications are stored: a new gateway process on the same database serves them.
describe("restart", () => {
  it("notifications, unreadCount and catch-up survive a restart on the same database", async (t) => {
    const first = await startGateway();
    let second;
    t.after(async () => {
      await second?.stop();
      fs.rmSync(first.dir, { recursive: true, force: true });
    });
    const alice = `alice-${uid()}`;
    const sent = await postMany(first, alice, 3);
    await first.stop("SIGTERM", { keepDir: true });

    second = await startGateway({
      DATABASE_URL: first.env.DATABASE_URL,
      JWT_SECRET: first.env.JWT_SECRET,
      API_KEYS: first.env.API_KEYS,
    });
    const { socket, registered } = await connectAndRegistered(second, { token: second.token(alice) });
    assert.equal(registered.unreadCount, 3);
    assert.equal(registered.lastNotificationId, sent[2].id);
    const page = assertOk(await ack(socket, "listNotifications", {}));
    assert.deepEqual(page, { notifications: [...sent].reverse(), hasMore: false });

    const s = openLogged(second, { token: second.token(alice), auth: { lastNotificationId: sent[0].id } });
    await s.registered;
    assert.deepEqual(s.log.map((e) => e.event), ["notification", "notification", "registered"]);
    assert.deepEqual(notes(s.log), sent.slice(1));
  });
});
