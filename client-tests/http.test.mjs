// Section 6 (the HTTP API) and the HTTP side of sections 4, 5 and 7: POST /api/notifications, POST /api/emit,
// GET /api/notifications, POST /api/notifications/read, errors, health, readiness and metrics, and the README's
// "Notifications for backend developers" story.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import {
  describe, it, closeAfterTest, before, after, startGateway, io, connect, connectAndRegistered, connectError, ack,
  waitFor, collect, noEvent, until, sleep, uid, nowSecs, assertOk, cliToken, UUID_V7, ISO_MS,
} from "./fixture.mjs";

// ---------------------------------------------------------------------------
// Helpers of this file

// One HTTP request; resolves with { status, headers, text, body (parsed JSON or undefined) }.
// json: sent as application/json; body: sent as is, with contentType if given.
async function api(gw, method, urlPath, { auth, json, body, contentType, headers = {} } = {}) {
  const h = { ...headers };
  if (auth) h.authorization = `Bearer ${auth}`;
  let payload = body;
  if (json !== undefined) {
    payload = JSON.stringify(json);
    h["content-type"] = contentType ?? "application/json";
  } else if (body !== undefined && contentType) {
    h["content-type"] = contentType;
  }
  const res = await fetch(gw.url + urlPath, { method, headers: h, body: payload, signal: AbortSignal.timeout(10000) });
  const text = await res.text();
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: res.status, headers: res.headers, text, body: parsed };
}

const show = (res) => `${res.status} [${res.headers.get("content-type")}] ${res.text.slice(0, 400)}`;

// "Errors are JSON { error: { code, message, details? } }, never a panic, never an HTML page."
function assertHttpError(res, status, code) {
  assert.equal(res.status, status, show(res));
  assert.match(res.headers.get("content-type") ?? "", /^application\/json\b/i, show(res));
  assert.doesNotMatch(res.text, /panicked|<html|<!doctype|<body/i, show(res));
  assert.ok(res.body && typeof res.body.error === "object" && res.body.error !== null, show(res));
  assert.equal(res.body.error.code, code, show(res));
  assert.equal(typeof res.body.error.message, "string", show(res));
  return res.body.error;
}

// 422 validation_failed with details[field] a non-empty list of strings.
function assertHttpDetails(res, field) {
  const err = assertHttpError(res, 422, "validation_failed");
  const list = err.details?.[field];
  assert.ok(Array.isArray(list) && list.length > 0 && list.every((m) => typeof m === "string"),
    `details.${field} in ${show(res)}`);
  return err;
}

// "over HTTP, 400 bad_request or 422"
function assertRefusedInput(res) {
  assert.ok(res.status === 400 || res.status === 422, show(res));
  assertHttpError(res, res.status, res.status === 400 ? "bad_request" : "validation_failed");
}

const notification = (userId, fields = {}) => ({ userId, type: "test.kind", title: "Title", message: "Message", ...fields });

// POST /api/notifications with the service key; asserts 201 and resolves with the notification.
async function post(gw, userId, fields = {}) {
  const res = await api(gw, "POST", "/api/notifications", { auth: gw.apiKey, json: notification(userId, fields) });
  assert.equal(res.status, 201, show(res));
  return res.body;
}

async function postMany(gw, userId, n) {
  const out = [];
  for (let i = 0; i < n; i++) out.push(await post(gw, userId, { title: `n ${i}` }));
  return out;
}

// GET /api/notifications as the user, with the query string given; asserts 200.
async function list(gw, userId, query = "") {
  const res = await api(gw, "GET", `/api/notifications${query}`, { auth: gw.token(userId) });
  assert.equal(res.status, 200, show(res));
  assert.match(res.headers.get("content-type") ?? "", /^application\/json\b/i);
  return res.body;
}

async function assertNothingStored(gw, userId) {
  assert.deepEqual(await list(gw, userId), { notifications: [], hasMore: false }, "a refused notification was stored");
}

const ids = (l) => l.map((n) => n.id);

// A syntactically valid UUIDv7 that names no notification.
const unknownId = "01900000-0000-7000-8000-000000000000";

// Parses Prometheus text into [{ name, labels, value }].
function parseMetrics(text) {
  const out = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const [, k, v] of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[k] = v;
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

function findSeries(samples, name, labels = {}) {
  return samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

// ---------------------------------------------------------------------------

let gw;
const secondKey = `second-key-${uid()}${uid()}`;
before(async () => {
  gw = await startGateway({
    API_KEYS: `first-key-${uid()}${uid()},${secondKey}`,
    EVENT_RATE_PER_SEC: "1000",
    EVENT_BURST: "1000",
  });
});
after(async () => {
  await gw?.stop();
});

// "POST /api/notifications | service | { userId, type (1–64), title (1–200), message (1–2000), data? (≤ 16 KiB) }
// | 201, the notification"
describe("POST /api/notifications", () => {
  it("answers 201 with the notification as JSON, and stores it", async () => {
    const alice = `alice-${uid()}`;
    const res = await api(gw, "POST", "/api/notifications", {
      auth: gw.apiKey,
      json: notification(alice, { data: { invoice: 1042 } }),
    });
    assert.equal(res.status, 201, show(res));
    assert.match(res.headers.get("content-type") ?? "", /^application\/json\b/i);
    const n = res.body;
    assert.deepEqual(Object.keys(n).sort(), ["createdAt", "data", "id", "message", "read", "title", "type", "userId"]);
    assert.match(n.id, UUID_V7);
    assert.match(n.createdAt, ISO_MS);
    assert.deepEqual({ ...n, id: 0, createdAt: 0 }, {
      id: 0, createdAt: 0, userId: alice, type: "test.kind", title: "Title", message: "Message", data: { invoice: 1042 }, read: false,
    });
    assert.deepEqual(await list(gw, alice), { notifications: [n], hasMore: false });
  });

  // "API_KEYS (comma-separated …)"
  it("any key of API_KEYS is accepted", async () => {
    const alice = `alice-${uid()}`;
    const res = await api(gw, "POST", "/api/notifications", { auth: secondKey, json: notification(alice) });
    assert.equal(res.status, 201, show(res));
  });

  // "unauthorized 401 (missing or wrong key or token)"
  it("without a key, with a wrong key or with a user token: 401 unauthorized, nothing stored", async () => {
    const alice = `alice-${uid()}`;
    const json = notification(alice);
    assertHttpError(await api(gw, "POST", "/api/notifications", { json }), 401, "unauthorized");
    assertHttpError(await api(gw, "POST", "/api/notifications", { json, auth: "wrong-key" }), 401, "unauthorized");
    assertHttpError(await api(gw, "POST", "/api/notifications", { json, auth: gw.apiKey.slice(0, -1) }), 401, "unauthorized");
    assertHttpError(await api(gw, "POST", "/api/notifications", { json, auth: `${gw.apiKey}x` }), 401, "unauthorized");
    assertHttpError(await api(gw, "POST", "/api/notifications", { json, auth: gw.token(alice) }), 401, "unauthorized");
    assertHttpError(
      await api(gw, "POST", "/api/notifications", { json, headers: { authorization: `Basic ${gw.apiKey}` } }),
      401,
      "unauthorized",
    );
    await assertNothingStored(gw, alice);
  });

  // "bad_request 400 (malformed JSON, wrong content type)"
  it("malformed JSON is 400 bad_request", async () => {
    const alice = `alice-${uid()}`;
    for (const body of ['{"userId":', "{userId: 'x'}", "", `{"userId":"${alice}","type":"t","title":"t","message":"m",}`]) {
      assertHttpError(
        await api(gw, "POST", "/api/notifications", { auth: gw.apiKey, body, contentType: "application/json" }),
        400,
        "bad_request",
      );
    }
    await assertNothingStored(gw, alice);
  });

  it("a wrong or missing content type is 400 bad_request", async () => {
    const alice = `alice-${uid()}`;
    const body = JSON.stringify(notification(alice));
    assertHttpError(
      await api(gw, "POST", "/api/notifications", { auth: gw.apiKey, body, contentType: "text/plain" }),
      400,
      "bad_request",
    );
    assertHttpError(
      await api(gw, "POST", "/api/notifications", {
        auth: gw.apiKey,
        body,
        contentType: "application/x-www-form-urlencoded",
      }),
      400,
      "bad_request",
    );
    // A Buffer body: fetch sends no Content-Type at all.
    assertHttpError(
      await api(gw, "POST", "/api/notifications", { auth: gw.apiKey, body: Buffer.from(body) }),
      400,
      "bad_request",
    );
    await assertNothingStored(gw, alice);
  });

  // "validation_failed 422 (with details)"
  const bad = [
    ["userId", "missing", undefined],
    ["userId", "empty", ""],
    ["userId", "with a space", "a b"],
    ["userId", "with a slash", "a/b"],
    ["userId", "of 129 characters", "u".repeat(129)],
    ["userId", "a number", 42],
    ["type", "missing", undefined],
    ["type", "empty", ""],
    ["type", "of 65 characters", "t".repeat(65)],
    ["title", "missing", undefined],
    ["title", "empty", ""],
    ["title", "of 201 characters", "t".repeat(201)],
    ["title", "of 201 emoji", "😀".repeat(201)],
    ["message", "missing", undefined],
    ["message", "empty", ""],
    ["message", "of 2001 characters", "m".repeat(2001)],
    ["message", "an object", { text: "hi" }],
    ["data", "over 16 KiB", { blob: "d".repeat(17 * 1024) }],
  ];
  for (const [field, label, value] of bad) {
    it(`${field} ${label} is 422 validation_failed with details.${field}, nothing stored`, async () => {
      const alice = `alice-${uid()}`;
      const json = notification(alice);
      if (value === undefined) delete json[field];
      else json[field] = value;
      assertHttpDetails(await api(gw, "POST", "/api/notifications", { auth: gw.apiKey, json }), field);
      if (field !== "userId") await assertNothingStored(gw, alice);
    });
  }

  it("several invalid fields are all named in details", async () => {
    const res = await api(gw, "POST", "/api/notifications", {
      auth: gw.apiKey,
      json: { userId: "no spaces allowed", type: "", title: "t".repeat(201) },
    });
    const err = assertHttpDetails(res, "userId");
    for (const f of ["type", "title", "message"]) assert.ok(Array.isArray(err.details[f]), `details.${f} in ${show(res)}`);
  });

  // Lengths count code points: the upper bounds, with emoji.
  it("the upper bounds are accepted: userId 128, type 64, title 200, message 2000, data under 16 KiB", async () => {
    const userId = ("Az09_.:@-" + "u".repeat(128)).slice(0, 128);
    const fields = {
      type: "t".repeat(64),
      title: "😀".repeat(200),
      message: "é".repeat(2000),
      data: { blob: "d".repeat(15 * 1024) },
    };
    const n = await post(gw, userId, fields);
    assert.equal(n.userId, userId);
    assert.equal(n.type, fields.type);
    assert.equal(n.title, fields.title);
    assert.equal(n.message, fields.message);
    assert.deepEqual(n.data, fields.data);
    assert.deepEqual((await list(gw, userId)).notifications, [n]);
  });

  it("text is stored unchanged, not trimmed", async () => {
    const alice = `alice-${uid()}`;
    const n = await post(gw, alice, { title: "  spaced  ", message: "\tline 1\nline 2 \u00a0" });
    assert.equal(n.title, "  spaced  ");
    assert.equal(n.message, "\tline 1\nline 2 \u00a0");
    assert.deepEqual((await list(gw, alice)).notifications, [n]);
  });

  // "Input the server cannot take as it is — JSON nested deeper than 128 levels, strings holding lone UTF-16
  // surrogates, numbers out of range — is refused and never stored: … over HTTP, 400 bad_request or 422."
  it("data nested 200 levels deep is refused, nothing stored", async () => {
    const alice = `alice-${uid()}`;
    const deep = "[".repeat(200) + "]".repeat(200);
    const body = `{"userId":"${alice}","type":"t","title":"t","message":"m","data":${deep}}`;
    assertRefusedInput(await api(gw, "POST", "/api/notifications", { auth: gw.apiKey, body, contentType: "application/json" }));
    const deepObj = '{"a":'.repeat(200) + "1" + "}".repeat(200);
    const body2 = `{"userId":"${alice}","type":"t","title":"t","message":"m","data":${deepObj}}`;
    assertRefusedInput(await api(gw, "POST", "/api/notifications", { auth: gw.apiKey, body: body2, contentType: "application/json" }));
    await assertNothingStored(gw, alice);
  });

  it("a lone surrogate escape is refused, nothing stored", async () => {
    const alice = `alice-${uid()}`;
    for (const [field, value] of [["title", '"\\ud800"'], ["message", '"x\\udc00y"'], ["data", '{"k":"\\ud800"}']]) {
      const fields = { userId: `"${alice}"`, type: '"t"', title: '"t"', message: '"m"', [field]: value };
      const body = `{${Object.entries(fields).map(([k, v]) => `"${k}":${v}`).join(",")}}`;
      assertRefusedInput(await api(gw, "POST", "/api/notifications", { auth: gw.apiKey, body, contentType: "application/json" }));
    }
    await assertNothingStored(gw, alice);
  });

  it("a number out of range is refused, nothing stored", async () => {
    const alice = `alice-${uid()}`;
    const body = `{"userId":"${alice}","type":"t","title":"t","message":"m","data":{"n":1e400}}`;
    assertRefusedInput(await api(gw, "POST", "/api/notifications", { auth: gw.apiKey, body, contentType: "application/json" }));
    await assertNothingStored(gw, alice);
  });

  it("a body that is not a JSON object is refused", async () => {
    for (const body of ["[1,2]", '"text"', "42", "null"]) {
      assertRefusedInput(await api(gw, "POST", "/api/notifications", { auth: gw.apiKey, body, contentType: "application/json" }));
    }
  });
});

// "POST /api/emit | service | { event (1–64 chars), data?, room? , userId? } — at most one target; none: everyone |
// 202 { ok: true }; Socket.IO's reserved names (connect, connect_error, disconnect, disconnecting, newListener,
// removeListener) and both targets at once are 422"
describe("POST /api/emit", () => {
  const emit = (json, auth = gw.apiKey) => api(gw, "POST", "/api/emit", { auth, json });

  it("to a room: only the sockets in the room get it", async () => {
    const room = `ops-${uid()}`;
    const alice = `alice-${uid()}`;
    const bob = `bob-${uid()}`;
    const aliceIn = await connect(gw, { token: gw.token(alice) });
    assertOk(await ack(aliceIn, "joinRoom", { roomId: room }));
    const aliceOut = await connect(gw, { token: gw.token(alice), transports: ["polling"] }); // same user, not joined
    const bobIn = await connect(gw, { token: gw.token(bob), transports: ["polling", "websocket"] });
    assertOk(await ack(bobIn, "joinRoom", { roomId: room }));
    const carol = await connect(gw, { token: gw.token(`carol-${uid()}`) });

    const got = [waitFor(aliceIn, "deploy.finished"), waitFor(bobIn, "deploy.finished")];
    const quiet = [noEvent(aliceOut, "deploy.finished", 500), noEvent(carol, "deploy.finished", 500)];
    const res = await emit({ event: "deploy.finished", data: { version: "1.2.3" }, room });
    assert.equal(res.status, 202, show(res));
    assert.deepEqual(res.body, { ok: true });
    assert.match(res.headers.get("content-type") ?? "", /^application\/json\b/i);
    for (const p of got) assert.deepEqual(await p, { version: "1.2.3" });
    assert.deepEqual(await Promise.all(quiet), [true, true], "a socket outside the room got the event");
  });

  it("to a userId: every tab of that user gets it, nobody else", async () => {
    const alice = `alice-${uid()}`;
    const tabs = [
      await connect(gw, { token: gw.token(alice) }),
      await connect(gw, { token: gw.token(alice), transports: ["polling", "websocket"] }),
      await connect(gw, { token: gw.token(alice), transports: ["polling"] }),
    ];
    const bob = await connect(gw, { token: gw.token(`bob-${uid()}`) });
    const lists = tabs.map((s) => collect(s, "ping.user"));
    const quiet = noEvent(bob, "ping.user", 500);
    const res = await emit({ event: "ping.user", data: [1, "two"], userId: alice });
    assert.equal(res.status, 202, show(res));
    assert.deepEqual(res.body, { ok: true });
    await until(() => lists.every((l) => l.length >= 1), 5000, "the event on every tab");
    await sleep(200);
    for (const l of lists) assert.deepEqual(l, [[1, "two"]], "an array arrives as one argument, once");
    assert.ok(await quiet, "another user got the event");
  });

  it("without a target: every socket gets it", async () => {
    const sockets = [
      await connect(gw, { token: gw.token(`alice-${uid()}`) }),
      await connect(gw, { token: gw.token(`bob-${uid()}`), transports: ["polling", "websocket"] }),
      await connect(gw, { token: gw.token(`carol-${uid()}`), transports: ["polling"] }),
    ];
    const got = sockets.map((s) => waitFor(s, "maintenance"));
    const res = await emit({ event: "maintenance", data: "at noon" });
    assert.equal(res.status, 202, show(res));
    for (const p of got) assert.equal(await p, "at noon");
  });

  // README: "POST /api/emit without data emits null as the event's argument."
  // `data?` is optional: without it the event has no argument, as io.emit("bare") sends;
  // an explicit null is passed on as null.
  it("without data the event has no argument; data: null is null", async () => {
    const alice = `alice-${uid()}`;
    const s = await connect(gw, { token: gw.token(alice) });
    const bare = new Promise((resolve) => s.once("bare", (...args) => resolve(args)));
    assert.equal((await emit({ event: "bare", userId: alice })).status, 202);
    assert.deepEqual(await bare, []);
    const nul = new Promise((resolve) => s.once("nul", (...args) => resolve(args)));
    assert.equal((await emit({ event: "nul", data: null, userId: alice })).status, 202);
    assert.deepEqual(await nul, [null]);
  });

  for (const event of ["connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"]) {
    it(`the reserved name ${event} is 422 validation_failed`, async () => {
      const alice = `alice-${uid()}`;
      const s = await connect(gw, { token: gw.token(alice) });
      const disconnected = noEvent(s, "disconnect", 300);
      assertHttpDetails(await emit({ event, data: { x: 1 }, userId: alice }), "event");
      assert.ok(await disconnected, "the socket was disconnected");
      assert.ok(s.connected);
    });
  }

  it("both room and userId is 422 validation_failed, nothing emitted", async () => {
    const room = `ops-${uid()}`;
    const alice = `alice-${uid()}`;
    const s = await connect(gw, { token: gw.token(alice) });
    assertOk(await ack(s, "joinRoom", { roomId: room }));
    const quiet = noEvent(s, "both", 500);
    assertHttpError(await emit({ event: "both", data: 1, room, userId: alice }), 422, "validation_failed");
    assert.ok(await quiet, "an emit refused with 422 was delivered");
  });

  for (const [label, event] of [["empty", ""], ["of 65 characters", "e".repeat(65)], ["missing", undefined], ["a number", 7]]) {
    it(`an event name ${label} is 422 with details.event`, async () => {
      const json = { data: 1 };
      if (event !== undefined) json.event = event;
      assertHttpDetails(await emit(json), "event");
    });
  }

  it("an event name of 64 characters is accepted", async () => {
    const alice = `alice-${uid()}`;
    const s = await connect(gw, { token: gw.token(alice) });
    const event = "e".repeat(64);
    const got = waitFor(s, event);
    const res = await emit({ event, data: { ok: 1 }, userId: alice });
    assert.equal(res.status, 202, show(res));
    assert.deepEqual(await got, { ok: 1 });
  });

  it("without a key or with a wrong one: 401, nothing emitted", async () => {
    const alice = `alice-${uid()}`;
    const s = await connect(gw, { token: gw.token(alice) });
    const quiet = noEvent(s, "sneaky", 500);
    assertHttpError(await emit({ event: "sneaky", userId: alice }, null), 401, "unauthorized");
    assertHttpError(await emit({ event: "sneaky", userId: alice }, "nope"), 401, "unauthorized");
    assertHttpError(await emit({ event: "sneaky", userId: alice }, gw.token(alice)), 401, "unauthorized");
    assert.ok(await quiet);
  });

  it("malformed JSON and a wrong content type are 400", async () => {
    assertHttpError(await api(gw, "POST", "/api/emit", { auth: gw.apiKey, body: "{", contentType: "application/json" }), 400, "bad_request");
    assertHttpError(
      await api(gw, "POST", "/api/emit", { auth: gw.apiKey, body: '{"event":"x"}', contentType: "text/plain" }),
      400,
      "bad_request",
    );
  });
});

// "GET /api/notifications | user | ?limit&before&unreadOnly | 200 { notifications, hasMore }"
describe("GET /api/notifications", () => {
  it("pages newest first with limit, before and hasMore", async () => {
    const alice = `alice-${uid()}`;
    const sent = await postMany(gw, alice, 5);
    const newestFirst = [...sent].reverse();
    assert.deepEqual(await list(gw, alice), { notifications: newestFirst, hasMore: false });
    assert.deepEqual(await list(gw, alice, "?limit=2"), { notifications: newestFirst.slice(0, 2), hasMore: true });
    assert.deepEqual(await list(gw, alice, `?limit=2&before=${sent[3].id}`), { notifications: [sent[2], sent[1]], hasMore: true });
    assert.deepEqual(await list(gw, alice, `?limit=2&before=${sent[1].id}`), { notifications: [sent[0]], hasMore: false });
    assert.deepEqual(await list(gw, alice, `?before=${sent[0].id}`), { notifications: [], hasMore: false });
  });

  it("returns 50 by default and up to 100 with limit", async () => {
    const alice = `alice-${uid()}`;
    const sent = await postMany(gw, alice, 101);
    const def = await list(gw, alice);
    assert.equal(def.notifications.length, 50);
    assert.equal(def.hasMore, true);
    assert.deepEqual(ids(def.notifications), ids(sent.slice(51)).reverse());
    const max = await list(gw, alice, "?limit=100");
    assert.equal(max.notifications.length, 100);
    assert.equal(max.hasMore, true);
    assert.deepEqual(await list(gw, alice, `?limit=100&before=${sent[1].id}`), { notifications: [sent[0]], hasMore: false });
  });

  it("unreadOnly=true lists only unread notifications", async () => {
    const alice = `alice-${uid()}`;
    const [n0, n1, n2] = await postMany(gw, alice, 3);
    const res = await api(gw, "POST", "/api/notifications/read", { auth: gw.token(alice), json: { ids: [n1.id] } });
    assert.deepEqual(res.body, { updated: 1 }, show(res));
    assert.deepEqual(await list(gw, alice, "?unreadOnly=true"), { notifications: [n2, n0], hasMore: false });
    assert.deepEqual(await list(gw, alice, "?unreadOnly=true&limit=1"), { notifications: [n2], hasMore: true });
    const all = await list(gw, alice, "?unreadOnly=false");
    assert.deepEqual(all.notifications.map((n) => n.read), [false, true, false]);
  });

  it("a user only sees their own", async () => {
    const alice = `alice-${uid()}`;
    const bob = `bob-${uid()}`;
    const a = await post(gw, alice);
    const b = await post(gw, bob);
    assert.deepEqual((await list(gw, alice)).notifications, [a]);
    assert.deepEqual((await list(gw, bob)).notifications, [b]);
  });

  // "not_found 404"; "not_found (a before cursor that names no message or notification of that room or user)"
  it("a before cursor of another user's notification, or of none, is 404 not_found", async () => {
    const alice = `alice-${uid()}`;
    const bobs = await post(gw, `bob-${uid()}`);
    await post(gw, alice);
    const get = (q) => api(gw, "GET", `/api/notifications${q}`, { auth: gw.token(alice) });
    assertHttpError(await get(`?before=${bobs.id}`), 404, "not_found");
    assertHttpError(await get(`?before=${unknownId}`), 404, "not_found");
  });

  for (const limit of ["0", "101", "x", "1.5", "-1", ""]) {
    it(`limit=${limit} is 422 validation_failed with details.limit`, async () => {
      const alice = `alice-${uid()}`;
      assertHttpDetails(await api(gw, "GET", `/api/notifications?limit=${limit}`, { auth: gw.token(alice) }), "limit");
    });
  }

  it("an unreadOnly that is not a boolean is 422 with details.unreadOnly", async () => {
    const alice = `alice-${uid()}`;
    assertHttpDetails(await api(gw, "GET", "/api/notifications?unreadOnly=maybe", { auth: gw.token(alice) }), "unreadOnly");
  });

  it("without a token, or with a bad, expired or foreign token, or the service key: 401", async () => {
    const alice = `alice-${uid()}`;
    await post(gw, alice);
    const get = (auth) => api(gw, "GET", "/api/notifications", { auth });
    assertHttpError(await get(undefined), 401, "unauthorized");
    assertHttpError(await get("not.a.jwt"), 401, "unauthorized");
    assertHttpError(await get(gw.token(alice, { secret: "another-secret-of-at-least-32-bytes!!" })), 401, "unauthorized");
    assertHttpError(await get(gw.token(alice, { exp: nowSecs() - 3600 })), 401, "unauthorized");
    assertHttpError(await get(gw.token(alice, { exp: null })), 401, "unauthorized");
    assertHttpError(await get(gw.apiKey), 401, "unauthorized");
  });
});

// "POST /api/notifications/read | user | { ids } or { all: true } | 200 { updated }, and notificationsRead as in
// section 4"
describe("POST /api/notifications/read", () => {
  const read = (userId, json, auth = gw.token(userId)) => api(gw, "POST", "/api/notifications/read", { auth, json });

  it("{ ids }: counts rows that went unread→read, and every socket of the user gets notificationsRead", async () => {
    const alice = `alice-${uid()}`;
    const bob = `bob-${uid()}`;
    const [a1, a2, a3] = await postMany(gw, alice, 3);
    const b1 = await post(gw, bob);
    const tabs = [
      await connect(gw, { token: gw.token(alice) }),
      await connect(gw, { token: gw.token(alice), transports: ["polling"] }),
    ];
    const bobSocket = await connect(gw, { token: gw.token(bob) });
    const events = tabs.map((s) => collect(s, "notificationsRead"));
    const bobQuiet = noEvent(bobSocket, "notificationsRead", 500);

    const res = await read(alice, { ids: [a1.id, a3.id, b1.id, unknownId] });
    assert.equal(res.status, 200, show(res));
    assert.deepEqual(res.body, { updated: 2 });
    await until(() => events.every((l) => l.length >= 1), 5000, "notificationsRead on both tabs");
    await sleep(200);
    for (const l of events) {
      assert.equal(l.length, 1, JSON.stringify(l));
      assert.deepEqual(Object.keys(l[0]), ["ids"]);
      assert.deepEqual([...l[0].ids].sort(), [a1.id, a3.id].sort());
    }
    assert.ok(await bobQuiet, "bob got alice's notificationsRead");

    assert.deepEqual((await read(alice, { ids: [a1.id, a3.id] })).body, { updated: 0 });
    assert.deepEqual((await list(gw, alice)).notifications.map((n) => [n.id, n.read]), [[a3.id, true], [a2.id, false], [a1.id, true]]);
    assert.deepEqual((await list(gw, bob)).notifications, [b1], "bob's notification was touched");
  });

  it("{ all: true }: marks everything and every socket gets { all: true }", async () => {
    const alice = `alice-${uid()}`;
    await postMany(gw, alice, 3);
    const { socket, registered } = await connectAndRegistered(gw, { token: gw.token(alice) });
    assert.equal(registered.unreadCount, 3);
    const got = waitFor(socket, "notificationsRead");
    const res = await read(alice, { all: true });
    assert.equal(res.status, 200, show(res));
    assert.deepEqual(res.body, { updated: 3 });
    assert.deepEqual(await got, { all: true });
    assert.deepEqual((await read(alice, { all: true })).body, { updated: 0 });
    assert.deepEqual(await list(gw, alice, "?unreadOnly=true"), { notifications: [], hasMore: false });
    const again = await connectAndRegistered(gw, { token: gw.token(alice) });
    assert.equal(again.registered.unreadCount, 0);
  });

  it("invalid bodies are 422 with details; bad tokens 401; malformed JSON 400", async () => {
    const alice = `alice-${uid()}`;
    assertHttpDetails(await read(alice, { ids: [] }), "ids");
    assertHttpDetails(await read(alice, { ids: Array.from({ length: 101 }, () => unknownId) }), "ids");
    assertHttpDetails(await read(alice, { ids: "all" }), "ids");
    assertHttpError(await read(alice, {}), 422, "validation_failed");
    assertHttpError(await read(alice, { all: true }, null), 401, "unauthorized");
    assertHttpError(await read(alice, { all: true }, gw.apiKey), 401, "unauthorized");
    assertHttpError(await read(alice, { all: true }, gw.token(alice, { exp: nowSecs() - 3600 })), 401, "unauthorized");
    assertHttpError(
      await api(gw, "POST", "/api/notifications/read", { auth: gw.token(alice), body: "{", contentType: "application/json" }),
      400,
      "bad_request",
    );
    assertHttpError(
      await api(gw, "POST", "/api/notifications/read", { auth: gw.token(alice), body: '{"all":true}', contentType: "text/plain" }),
      400,
      "bad_request",
    );
  });
});

describe("HTTP errors", () => {
  // "not_found 404"
  it("an unknown path under /api is 404 not_found", async () => {
    assertHttpError(await api(gw, "GET", "/api/nope"), 404, "not_found");
    assertHttpError(await api(gw, "GET", "/api/nope", { auth: gw.apiKey }), 404, "not_found");
    assertHttpError(await api(gw, "POST", "/api/notifications/unknown", { auth: gw.apiKey, json: {} }), 404, "not_found");
    assertHttpError(await api(gw, "GET", "/api"), 404, "not_found");
    assertHttpError(await api(gw, "GET", "/api/"), 404, "not_found");
    assertHttpError(await api(gw, "GET", "/nowhere"), 404, "not_found");
  });

  // "method_not_allowed 405"
  it("a wrong method is 405 method_not_allowed", async () => {
    const cases = [
      ["DELETE", "/api/notifications", gw.apiKey],
      ["PUT", "/api/notifications", gw.apiKey],
      ["GET", "/api/emit", gw.apiKey],
      ["GET", "/api/notifications/read", gw.token("alice")],
      ["PATCH", "/api/notifications/read", gw.token("alice")],
      ["POST", "/healthz", undefined],
      ["DELETE", "/metrics", undefined],
    ];
    for (const [method, p, auth] of cases) {
      const res = await api(gw, method, p, { auth });
      assert.equal(res.status, 405, `${method} ${p}: ${show(res)}`);
      assertHttpError(res, 405, "method_not_allowed");
    }
  });

  // "MAX_PAYLOAD_BYTES (default 65536) for one Socket.IO packet and one HTTP body"; "payload_too_large 413"
  it("a body over MAX_PAYLOAD_BYTES is 413 payload_too_large, nothing stored, the gateway keeps serving", async (t) => {
    const small = await startGateway({ MAX_PAYLOAD_BYTES: "4096" });
    t.after(() => small.stop());
    const alice = `alice-${uid()}`;
    const big = notification(alice, { data: "x".repeat(8 * 1024) });
    assertHttpError(await api(small, "POST", "/api/notifications", { auth: small.apiKey, json: big }), 413, "payload_too_large");
    assertHttpError(
      await api(small, "POST", "/api/emit", { auth: small.apiKey, json: { event: "x", data: "y".repeat(8 * 1024) } }),
      413,
      "payload_too_large",
    );
    await assertNothingStored(small, alice);
    const ok = await api(small, "POST", "/api/notifications", { auth: small.apiKey, json: notification(alice, { data: "x".repeat(2048) }) });
    assert.equal(ok.status, 201, show(ok));
  });
});

// "GET /healthz | anyone | 200 while the process serves"; "GET /readyz | anyone | 200 when the database (and Redis,
// if configured) answers"; "GET /metrics | anyone, or with METRICS_TOKEN set: Authorization: Bearer <token> |
// Prometheus text format"
describe("health and metrics", () => {
  it("GET /healthz is 200", async () => {
    const res = await api(gw, "GET", "/healthz");
    assert.equal(res.status, 200, show(res));
  });

  it("GET /readyz is 200 while the database answers", async () => {
    const res = await api(gw, "GET", "/readyz");
    assert.equal(res.status, 200, show(res));
  });

  it("GET /metrics is Prometheus text with the connection, event, notification and HTTP series", async () => {
    const alice = `alice-${uid()}`;
    const { socket } = await connectAndRegistered(gw, { token: gw.token(alice) });
    assertOk(await ack(socket, "joinRoom", { roomId: `metrics-${uid()}` }));
    const gone = await connect(gw, { token: gw.token(`bob-${uid()}`) });
    gone.disconnect();
    assert.equal(await connectError(gw, { token: "not.a.token" }), "invalid_token");
    const delivered = waitFor(socket, "notification");
    await post(gw, alice);
    await delivered;

    const wanted = [
      ["sio_connections", {}],
      ["sio_connects_total", {}],
      ["sio_disconnects_total", {}],
      ["sio_connect_refusals_total", { reason: "invalid_token" }],
      ["sio_events_total", { event: "joinRoom", outcome: "ok" }],
      ["sio_event_duration_seconds_bucket", {}],
      ["sio_notifications_created_total", {}],
      ["sio_notifications_delivered_total", {}],
      ["http_requests_total", { route: "/api/notifications", status: "201" }],
    ];
    let res;
    let missing = [];
    await until(async () => {
      res = await api(gw, "GET", "/metrics");
      if (res.status !== 200) return false;
      const samples = parseMetrics(res.text);
      missing = wanted.filter(([name, labels]) => {
        const found = findSeries(samples, name, labels);
        // Counters and the connection gauge have counted something by now.
        return found.length === 0 || (!name.endsWith("_bucket") && !found.some((s) => s.value > 0));
      });
      return missing.length === 0;
    }, 5000, "metrics series").catch(() => {
      assert.fail(`missing or zero: ${missing.map(([n, l]) => `${n}${JSON.stringify(l)}`).join(", ")}\n${res?.text?.slice(0, 3000)}`);
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain\b/i);
    assert.match(res.text, /^# (TYPE|HELP) /m);
  });

  it("with METRICS_TOKEN set, /metrics needs Authorization: Bearer <token>", async (t) => {
    const guarded = await startGateway({ METRICS_TOKEN: "abc" });
    t.after(() => guarded.stop());
    assertHttpError(await api(guarded, "GET", "/metrics"), 401, "unauthorized");
    assertHttpError(await api(guarded, "GET", "/metrics", { auth: "abd" }), 401, "unauthorized");
    assertHttpError(await api(guarded, "GET", "/metrics", { auth: guarded.apiKey }), 401, "unauthorized");
    const res = await api(guarded, "GET", "/metrics", { auth: "abc" });
    assert.equal(res.status, 200, show(res));
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain\b/i);
    // health endpoints stay open
    assert.equal((await api(guarded, "GET", "/healthz")).status, 200);
    assert.equal((await api(guarded, "GET", "/readyz")).status, 200);
  });
});

// The README's "Notifications for backend developers", step by step, on a zero-configuration gateway (the key
// from sio-gateway.api-key, tokens from `sio-gateway token`).
describe("README: notifications for backend developers", () => {
  it("post with curl, listen in Node with a cursor, reconnect, list and mark read", async (t) => {
    const gwz = await startGateway({ JWT_SECRET: null, API_KEYS: null });
    t.after(() => gwz.stop());
    const KEY = fs.readFileSync(path.join(gwz.dir, "sio-gateway.api-key"), "utf8").trim();
    const alice = `alice-${uid()}`;
    const ALICE = cliToken(gwz, ["--sub", alice]);

    // curl -s -X POST http://localhost:3000/api/notifications -H "Authorization: Bearer $KEY" …
    const res = await fetch(`${gwz.url}/api/notifications`, {
      method: "POST",
      headers: { Authorization: `Bearer ${KEY}`, "Content-Type": "application/json" },
      body: '{"userId":"' + alice + '","type":"invoice.paid","title":"Invoice paid","message":"#1042 was paid","data":{"invoice":1042}}',
    });
    assert.equal(res.status, 201);
    const first = await res.json();
    assert.match(first.id, UUID_V7);
    assert.equal(first.userId, alice);
    assert.equal(first.type, "invoice.paid");
    assert.match(first.createdAt, ISO_MS);
    assert.equal(first.read, false);

    // The Node listener of the README.
    const socket = io(gwz.url, { auth: { token: ALICE, lastNotificationId: null } });
    closeAfterTest(socket);
    const log = [];
    const unread = [];
    socket.on("registered", (r) => {
      socket.auth.lastNotificationId = r.lastNotificationId; // cursor for reconnects
      unread.push(r.unreadCount);
      log.push("registered");
    });
    socket.on("notification", (n) => {
      socket.auth.lastNotificationId = n.id;
      log.push(n.title);
    });
    await until(() => log.length === 1, 5000, "registered");
    assert.deepEqual(unread, [1]);
    assert.equal(socket.auth.lastNotificationId, first.id, "registered gives the cursor");

    const post = async (title) => {
      const r = await fetch(`${gwz.url}/api/notifications`, {
        method: "POST",
        headers: { Authorization: `Bearer ${KEY}`, "Content-Type": "application/json" },
        body: JSON.stringify({ userId: alice, type: "note", title, message: "…" }),
      });
      assert.equal(r.status, 201);
      return r.json();
    };
    const live = await post("live");
    await until(() => log.length === 2, 5000, "the live notification");
    assert.equal(socket.auth.lastNotificationId, live.id);

    // The connection drops; two are posted meanwhile; the automatic reconnect resumes from the cursor.
    socket.io.engine.close();
    const missedA = await post("missed A");
    const missedB = await post("missed B");
    await until(() => log.filter((e) => e === "registered").length === 2, 8000, "the reconnect's registered");
    await sleep(200);
    assert.deepEqual(log, ["registered", "live", "missed A", "missed B", "registered"]);
    assert.equal(socket.auth.lastNotificationId, missedB.id);
    assert.deepEqual(unread, [1, 4]);

    // const page = await socket.emitWithAck("listNotifications", { limit: 20, unreadOnly: true });
    const page = await socket.timeout(5000).emitWithAck("listNotifications", { limit: 20, unreadOnly: true });
    assert.deepEqual(ids(page.data.notifications), [missedB.id, missedA.id, live.id, first.id]);
    const readEvents = collect(socket, "notificationsRead");
    const marked = await socket.timeout(5000).emitWithAck("markRead", { ids: [page.data.notifications[0].id] });
    assert.deepEqual(marked, { ok: true, data: { updated: 1 } });

    // curl -s "http://localhost:3000/api/notifications?limit=20&unreadOnly=true" -H "Authorization: Bearer $ALICE"
    const listed = await (await fetch(`${gwz.url}/api/notifications?limit=20&unreadOnly=true`, {
      headers: { Authorization: `Bearer ${ALICE}` },
    })).json();
    assert.deepEqual(ids(listed.notifications), [missedA.id, live.id, first.id]);
    assert.equal(listed.hasMore, false);

    // curl -s -X POST http://localhost:3000/api/notifications/read … -d '{"all":true}'     # {"updated":3}
    const all = await fetch(`${gwz.url}/api/notifications/read`, {
      method: "POST",
      headers: { Authorization: `Bearer ${ALICE}`, "Content-Type": "application/json" },
      body: '{"all":true}',
    });
    assert.equal(all.status, 200);
    assert.deepEqual(await all.json(), { updated: 3 });
    await until(() => readEvents.length === 2, 5000, "notificationsRead twice");
    assert.deepEqual(readEvents, [{ ids: [missedB.id] }, { all: true }]);

    // {"event":"deploy.finished","data":{…},"room":"ops"}
    assert.deepEqual((await socket.timeout(5000).emitWithAck("joinRoom", { roomId: "ops" })).ok, true);
    const deploy = waitFor(socket, "deploy.finished");
    const emitted = await fetch(`${gwz.url}/api/emit`, {
      method: "POST",
      headers: { Authorization: `Bearer ${KEY}`, "Content-Type": "application/json" },
      body: JSON.stringify({ event: "deploy.finished", data: { version: "2.0" }, room: "ops" }),
    });
    assert.equal(emitted.status, 202);
    assert.deepEqual(await deploy, { version: "2.0" });
  });
});
