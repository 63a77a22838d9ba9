// Contract 10.1 (server API) and 10.2 (event proxy) against the release binary and a real
// local HTTP backend: one node, and two nodes on Redis sharing a SQLite file.
import assert from "node:assert/strict";
import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import { createHmac, randomBytes } from "node:crypto";
import {
  describe, it, before, after, startGateway, connectAndRegistered, ack, waitFor, noEvent, until,
  sleep, uid, assertError, assertDetails, assertOk, spawnGateway, waitExit,
} from "./fixture.mjs";
import { requireRedis, redisUrl, startCluster } from "./cluster-fixture.mjs";

const SECRET = randomBytes(24).toString("hex");

// A backend that records every call and answers with `answer(call)` → { status, body, delayMs }.
async function startBackend(answer = () => ({ status: 200, body: { data: { ok: 1 } } })) {
  const calls = [];
  const server = http.createServer((req, res) => {
    let raw = "";
    req.on("data", (c) => (raw += c));
    req.on("end", async () => {
      const call = { headers: req.headers, raw, body: JSON.parse(raw) };
      calls.push(call);
      const a = await answer(call);
      if (a.delayMs) await sleep(a.delayMs);
      res.statusCode = a.status;
      res.setHeader("content-type", "application/json");
      res.end(typeof a.body === "string" ? a.body : JSON.stringify(a.body));
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${server.address().port}/events`;
  return { url, calls, close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }) };
}

function api(gw, method, p, body, key = gw.apiKey) {
  const headers = key ? { authorization: `Bearer ${key}` } : {};
  if (body !== undefined) headers["content-type"] = "application/json";
  return fetch(`${gw.url}${p}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
    .then(async (r) => ({ status: r.status, body: await r.json() }));
}

// An HTTP 422 with `details` naming `field`.
function httpDetails(res, field) {
  assert.equal(res.status, 422, JSON.stringify(res.body));
  assert.equal(res.body.error.code, "validation_failed");
  assert.ok(Array.isArray(res.body.error.details?.[field]), JSON.stringify(res.body));
}

const proxyEnv = (backend, extra = {}) => ({ PROXY_URL: backend.url, PROXY_SECRET: SECRET, ...extra });

describe("server API on one node", () => {
  let gw;
  before(async () => { gw = await startGateway({ MAX_ROOMS_PER_SOCKET: "2", ROOMS_REQUIRE_CLAIM: "true" }); });
  after(async () => { await gw.stop(); });

  it("joins every socket of a user (no claim check), skips full sockets, counts joined ones", async () => {
    const u = `u${uid()}`;
    const a = await connectAndRegistered(gw, { auth: { token: gw.token(u) } });
    const b = await connectAndRegistered(gw, { auth: { token: gw.token(u) } });
    const other = await connectAndRegistered(gw, { auth: { token: gw.token(`o${uid()}`) } });
    assertError(await ack(other.socket, "joinRoom", { roomId: "lobby" }), "forbidden"); // claim required
    await api(gw, "POST", "/api/rooms/lobby/join", { userId: other.registered.userId });
    const seenA = waitFor(a.socket, "joinedRoom"), seenB = waitFor(b.socket, "joinedRoom");
    const announced = waitFor(other.socket, "userJoined");
    const res = await api(gw, "POST", "/api/rooms/lobby/join", { userId: u });
    assert.deepEqual(res, { status: 200, body: { sockets: 2 } });
    assert.deepEqual(await seenA, { roomId: "lobby" });
    await seenB;
    assert.deepEqual(await announced, { roomId: "lobby", userId: u });
    // Already in: counted, no second joinedRoom.
    const again = noEvent(a.socket, "joinedRoom");
    assert.equal((await api(gw, "POST", "/api/rooms/lobby/join", { userId: u })).body.sockets, 2);
    await again;
    // b fills up to MAX_ROOMS_PER_SOCKET=2; the next join skips it.
    await api(gw, "POST", "/api/rooms/r2/join", { userId: u });
    assert.equal((await api(gw, "POST", "/api/rooms/r3/join", { userId: u })).body.sockets, 0);
    const members = await api(gw, "GET", "/api/rooms/lobby/members");
    assert.deepEqual(members.body.members, [
      { userId: other.registered.userId, connections: 1 }, { userId: u, connections: 2 },
    ].sort((x, y) => (x.userId < y.userId ? -1 : 1)));
    // Leave: both sockets, leftRoom each, userLeft to the rest.
    const left = waitFor(a.socket, "leftRoom"), userLeft = waitFor(other.socket, "userLeft");
    assert.deepEqual((await api(gw, "POST", "/api/rooms/lobby/leave", { userId: u })).body, { sockets: 2 });
    assert.deepEqual(await left, { roomId: "lobby" });
    assert.deepEqual(await userLeft, { roomId: "lobby", userId: u });
    assert.equal((await api(gw, "POST", "/api/rooms/lobby/leave", { userId: u })).body.sockets, 0);
    // Later sockets are not joined.
    const c = await connectAndRegistered(gw, { auth: { token: gw.token(u) } });
    assert.ok(!c.registered.rooms.includes("r2"));
  });

  it("presence and disconnect across the user's sockets", async () => {
    const u = `p${uid()}`;
    assert.deepEqual((await api(gw, "GET", `/api/users/${u}/presence`)).body, { userId: u, online: false, connections: 0 });
    const a = await connectAndRegistered(gw, { auth: { token: gw.token(u) } });
    const b = await connectAndRegistered(gw, { auth: { token: gw.token(u) } });
    assert.deepEqual((await api(gw, "GET", `/api/users/${u}/presence`)).body, { userId: u, online: true, connections: 2 });
    const reasons = [waitFor(a.socket, "disconnect"), waitFor(b.socket, "disconnect")];
    assert.deepEqual((await api(gw, "POST", `/api/users/${u}/disconnect`)).body, { disconnected: 2 });
    assert.deepEqual(await Promise.all(reasons), ["io server disconnect", "io server disconnect"]);
    await until(async () => (await api(gw, "GET", `/api/users/${u}/presence`)).body.connections === 0);
  });

  it("room history pages like getMessages", async () => {
    const u = `h${uid()}`, room = `hist${uid()}`;
    const { socket } = await connectAndRegistered(gw, { auth: { token: gw.token(u, { rooms: [room] }) } });
    assertOk(await ack(socket, "joinRoom", { roomId: room }));
    for (let i = 0; i < 3; i++) assertOk(await ack(socket, "sendMessage", { roomId: room, text: `m${i}` }));
    const p1 = await api(gw, "GET", `/api/rooms/${room}/messages?limit=2`);
    assert.equal(p1.status, 200);
    assert.deepEqual(p1.body.messages.map((m) => m.text), ["m2", "m1"]);
    assert.equal(p1.body.hasMore, true);
    const p2 = await api(gw, "GET", `/api/rooms/${room}/messages?limit=2&before=${p1.body.messages[1].id}`);
    assert.deepEqual(p2.body.messages.map((m) => m.text), ["m0"]);
    assert.equal(p2.body.hasMore, false);
    const foreign = await api(gw, "GET", `/api/rooms/other${uid()}/messages?before=${p1.body.messages[0].id}`);
    assert.equal(foreign.status, 404);
    httpDetails(await api(gw, "GET", `/api/rooms/${room}/messages?limit=0`), "limit");
  });

  it("refuses bad paths, bodies and keys in the HTTP API's shapes", async () => {
    assert.equal((await api(gw, "GET", "/api/rooms/lobby/members", undefined, null)).status, 401);
    assert.equal((await api(gw, "GET", "/api/rooms/lobby/members", undefined, "wrong")).status, 401);
    const userRoom = await api(gw, "GET", "/api/rooms/user:alice/members");
    assert.equal(userRoom.status, 403);
    assert.equal(userRoom.body.error.code, "forbidden");
    const badRoom = await api(gw, "POST", "/api/rooms/a%20b/join", { userId: "x" });
    httpDetails(badRoom, "roomId");
    const badUser = await api(gw, "GET", "/api/users/bad%20user/presence");
    httpDetails(badUser, "userId");
    const badBody = await api(gw, "POST", "/api/rooms/lobby/join", { userId: "" });
    httpDetails(badBody, "userId");
    const noType = await fetch(`${gw.url}/api/rooms/lobby/join`, {
      method: "POST", headers: { authorization: `Bearer ${gw.apiKey}` }, body: "{}",
    });
    assert.equal(noType.status, 400);
  });
});

describe("event proxy on one node", () => {
  let gw, backend, schemas;
  const answers = new Map(); // event → answer
  before(async () => {
    backend = await startBackend((call) => answers.get(call.body.event)?.(call) ?? { status: 200, body: { data: { echo: call.body.data } } });
    schemas = fs.mkdtempSync(path.join(process.env.TMPDIR ?? "/tmp", "sio-schemas-"));
    fs.writeFileSync(path.join(schemas, "order.place.json"), JSON.stringify({
      type: "object", required: ["items"],
      properties: { items: { type: "array", items: { type: "object", required: ["qty"], properties: { qty: { type: "integer", minimum: 1 } } } } },
    }));
    gw = await startGateway(proxyEnv(backend, {
      PROXY_EVENTS: "order.place,game.*,slow", PROXY_TIMEOUT_MS: "500", PROXY_MAX_IN_FLIGHT: "2",
      EVENT_SCHEMAS_DIR: schemas, EVENT_RATE_PER_SEC: "1000", EVENT_BURST: "1000",
    }));
  });
  after(async () => { await gw.stop(); await backend.close(); fs.rmSync(schemas, { recursive: true, force: true }); });

  it("posts a signed call without the token and acks with the backend's data", async () => {
    const u = `x${uid()}`;
    const tok = gw.token(u);
    const { socket } = await connectAndRegistered(gw, { auth: { token: tok } });
    const res = await ack(socket, "game.move", { x: 1 });
    assert.deepEqual(res, { ok: true, data: { echo: { x: 1 } } });
    const call = backend.calls.at(-1);
    assert.deepEqual(call.body, { event: "game.move", userId: u, socketId: socket.id, data: { x: 1 } });
    const ts = call.headers["x-sio-timestamp"];
    assert.match(ts, /^\d+$/);
    assert.ok(Math.abs(Number(ts) - Date.now() / 1000) < 10);
    const expected = "sha256=" + createHmac("sha256", SECRET).update(`${ts}.${call.raw}`).digest("hex");
    assert.equal(call.headers["x-sio-signature"], expected);
    assert.equal(call.headers["content-type"], "application/json");
    assert.ok(!JSON.stringify(call.headers).includes(tok) && !call.raw.includes(tok));
  });

  it("maps each kind of answer to the ack", async () => {
    const { socket } = await connectAndRegistered(gw, { auth: { token: gw.token(`m${uid()}`) } });
    const cases = [
      [{ status: 201, body: {} }, (r) => assert.deepEqual(r, { ok: true, data: null })],
      [{ status: 200, body: "not json" }, (r) => assertError(r, "unavailable")],
      [{ status: 200, body: [1] }, (r) => assertError(r, "unavailable")],
      [{ status: 409, body: { error: { code: "out_of_stock", message: "none left", details: { qty: ["0 left"] } } } },
        (r) => assert.deepEqual(r, { ok: false, error: { code: "out_of_stock", message: "none left", details: { qty: ["0 left"] } } })],
      [{ status: 400, body: { error: { code: "Bad Code", message: "x" } } }, (r) => assertError(r, "internal")],
      [{ status: 404, body: { nope: 1 } }, (r) => assertError(r, "unavailable")],
      [{ status: 503, body: { data: 1 } }, (r) => assertError(r, "unavailable")],
      [{ status: 200, body: { data: 1 }, delayMs: 1500 }, (r) => assertError(r, "unavailable")], // timeout 500 ms
    ];
    for (const [a, check] of cases) {
      answers.set("game.case", () => a);
      check(await ack(socket, "game.case", { n: 1 }));
    }
    answers.delete("game.case");
    // Without a callback: the error event.
    answers.set("game.noack", () => ({ status: 422, body: { error: { code: "nope", message: "no" } } }));
    const err = waitFor(socket, "error");
    socket.emit("game.noack", {});
    assert.deepEqual(await err, { code: "nope", message: "no", event: "game.noack" });
  });

  it("filters events, validates the argument and its schema before the backend", async () => {
    const { socket } = await connectAndRegistered(gw, { auth: { token: gw.token(`f${uid()}`) } });
    const before = backend.calls.length;
    assertError(await ack(socket, "cart.add", { a: 1 }), "unknown_event");
    assertError(await ack(socket, "game", { a: 1 }), "unknown_event");
    assertDetails(await ack(socket, "game.move", [1, 2]), "_");
    assertDetails(await ack(socket, "game.move", "text"), "_");
    const bad = await ack(socket, "order.place", { items: [{ qty: 2 }, { qty: 0 }] });
    assertDetails(bad, "items.1.qty");
    assertDetails(await ack(socket, "order.place", {}), "_");
    assertOk(await ack(socket, "joinRoom", { roomId: "r" })); // a contract event: never proxied
    assert.equal(backend.calls.length, before, "nothing refused reached the backend");
    assertOk(await ack(socket, "order.place", { items: [{ qty: 3 }] }));
    assert.equal(backend.calls.length, before + 1);
  });

  it("refuses hostile arguments before the backend, and keeps serving", async () => {
    const { socket } = await connectAndRegistered(gw, { auth: { token: gw.token(`z${uid()}`) } });
    const before = backend.calls.length;
    let deep = { leaf: 1 };
    for (let i = 0; i < 200; i++) deep = { d: deep };
    assertDetails(await ack(socket, "game.deep", deep), "_");
    assertDetails(await ack(socket, "game.text", { text: "a\uD800b" }), "_");
    assert.equal(backend.calls.length, before, "a hostile argument reached the backend");
    // Over MAX_PAYLOAD_BYTES: the connection is closed, the backend never sees it.
    const closed = waitFor(socket, "disconnect");
    socket.emit("game.huge", { items: new Array(40000).fill(12345) });
    assert.equal(await closed, "transport close");
    assert.equal(backend.calls.length, before);
    const again = await connectAndRegistered(gw, { auth: { token: gw.token(`z${uid()}`) } });
    assertOk(await ack(again.socket, "game.after", { ok: 1 }));
  });

  it("answers unavailable past PROXY_MAX_IN_FLIGHT, and a slow backend blocks nothing else", async () => {
    const { socket } = await connectAndRegistered(gw, { auth: { token: gw.token(`s${uid()}`, { rooms: ["r*"] }) } });
    answers.set("slow", () => ({ status: 200, body: { data: "late" }, delayMs: 400 }));
    const slow = [ack(socket, "slow", {}), ack(socket, "slow", {})];
    await sleep(50);
    assertError(await ack(socket, "slow", {}), "unavailable"); // third call while two wait
    const t0 = Date.now();
    assertOk(await ack(socket, "joinRoom", { roomId: "r1" })); // same socket, not held up
    assert.ok(Date.now() - t0 < 300, "joinRoom waited for the slow backend");
    const results = await Promise.all(slow);
    assert.deepEqual(results.map((r) => r.data), ["late", "late"]);
    answers.delete("slow");
  });

  it("shows proxied calls on /metrics", async () => {
    const text = await (await fetch(`${gw.url}/metrics`)).text();
    assert.match(text, /sio_proxy_calls_total\{event="order\.place",outcome="ok"\} \d+/);
    assert.match(text, /sio_proxy_calls_total\{event="game\.\*",outcome="rejected"\} \d+/);
    assert.match(text, /sio_proxy_calls_total\{event="order\.place",outcome="invalid"\} \d+/);
    assert.match(text, /sio_proxy_calls_total\{event="slow",outcome="saturated"\} \d+/);
    assert.match(text, /sio_proxy_call_duration_seconds_count\{event="game\.\*"\} \d+/);
  });
});

describe("event proxy edges", () => {
  it("a refused connection is unavailable, and the rate limit counts proxied events", async () => {
    const gone = await startBackend();
    await gone.close(); // its port now refuses
    const gw = await startGateway(proxyEnv(gone, { EVENT_RATE_PER_SEC: "1", EVENT_BURST: "2" }));
    try {
      const { socket } = await connectAndRegistered(gw, { auth: { token: gw.token(`r${uid()}`) } });
      assertError(await ack(socket, "any.thing", {}), "unavailable");
      assertError(await ack(socket, "any.thing", {}), "unavailable");
      assertError(await ack(socket, "any.thing", {}), "rate_limited");
    } finally {
      await gw.stop();
    }
  });

  it("SIGTERM while a call hangs exits 0 in time", async () => {
    const hang = await startBackend(() => new Promise(() => {}));
    const gw = await startGateway(proxyEnv(hang, { SHUTDOWN_TIMEOUT_SECS: "3" }));
    try {
      const { socket } = await connectAndRegistered(gw, { auth: { token: gw.token(`t${uid()}`) } });
      socket.emit("hang.me", {}, () => {});
      await until(() => hang.calls.length === 1);
      const t0 = Date.now();
      assert.equal(await gw.stop("SIGTERM"), 0);
      assert.ok(Date.now() - t0 < 4500, `took ${Date.now() - t0} ms`);
    } finally {
      await hang.close();
    }
  });

  it("refuses to start without a long secret, with a bad URL or a broken schema (exit 2, named)", async () => {
    const dir = fs.mkdtempSync(path.join(process.env.TMPDIR ?? "/tmp", "sio-bad-"));
    fs.writeFileSync(path.join(dir, "broken.json"), "{ nope");
    const base = { DATABASE_URL: `sqlite://${path.join(dir, "g.db")}`, JWT_SECRET: SECRET, PORT: "0", HOST: "127.0.0.1" };
    const cases = [
      [{ PROXY_URL: "http://127.0.0.1:9/e" }, "PROXY_SECRET"],
      [{ PROXY_URL: "http://127.0.0.1:9/e", PROXY_SECRET: "short" }, "PROXY_SECRET"],
      [{ PROXY_URL: "ftp://x", PROXY_SECRET: SECRET }, "PROXY_URL"],
      [{ PROXY_URL: "http://127.0.0.1:9/e", PROXY_SECRET: SECRET, EVENT_SCHEMAS_DIR: dir }, "broken.json"],
    ];
    try {
      for (const [env, named] of cases) {
        const proc = spawnGateway({ env: { ...base, ...env }, dir });
        assert.equal(await waitExit(proc), 2, proc.logs());
        assert.ok(proc.logs().includes(named), `${named} not named: ${proc.logs()}`);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("server API and proxy across two nodes on Redis", () => {
  let cluster, backend, dir;
  before(async () => {
    await requireRedis(redisUrl());
    dir = fs.mkdtempSync(path.join(process.env.TMPDIR ?? "/tmp", "sio-2n-"));
    // The backend answers a proxied `team.join` by calling node A's server API.
    backend = await startBackend(async (call) => {
      const a = cluster.nodes[0];
      const r = await api(a, "POST", `/api/rooms/${call.body.data.roomId}/join`, { userId: call.body.userId });
      return { status: 200, body: { data: { sockets: r.body.sockets } } };
    });
    cluster = await startCluster(2, { databaseUrl: `sqlite://${path.join(dir, "shared.db")}`, extra: proxyEnv(backend) });
  });
  after(async () => { await cluster?.stop(); await backend?.close(); fs.rmSync(dir, { recursive: true, force: true }); });

  it("operations sum over both nodes, from either node", async () => {
    const [a, b] = cluster.nodes;
    const u = `c${uid()}`;
    const onA = await connectAndRegistered(a, { auth: { token: a.token(u) } });
    const onB = await connectAndRegistered(b, { auth: { token: b.token(u) } });
    assert.deepEqual((await api(b, "GET", `/api/users/${u}/presence`)).body, { userId: u, online: true, connections: 2 });
    const joinedB = waitFor(onB.socket, "joinedRoom");
    assert.equal((await api(a, "POST", "/api/rooms/team1/join", { userId: u })).body.sockets, 2);
    assert.deepEqual(await joinedB, { roomId: "team1" });
    assert.deepEqual((await api(b, "GET", "/api/rooms/team1/members")).body.members, [{ userId: u, connections: 2 }]);
    assert.equal((await api(b, "POST", "/api/rooms/team1/leave", { userId: u })).body.sockets, 2);
    const gone = [waitFor(onA.socket, "disconnect"), waitFor(onB.socket, "disconnect")];
    assert.equal((await api(b, "POST", `/api/users/${u}/disconnect`)).body.disconnected, 2);
    assert.deepEqual(await Promise.all(gone), ["io server disconnect", "io server disconnect"]);
  });

  it("a proxied event on node B, answered by a backend that joins the user through node A", async () => {
    const [a, b] = cluster.nodes;
    const u = `d${uid()}`;
    const onA = await connectAndRegistered(a, { auth: { token: a.token(u) } });
    const onB = await connectAndRegistered(b, { auth: { token: b.token(u) } });
    const res = await ack(onB.socket, "team.join", { roomId: "squad" });
    assert.deepEqual(res, { ok: true, data: { sockets: 2 } });
    assert.deepEqual(backend.calls.at(-1).body, { event: "team.join", userId: u, socketId: onB.socket.id, data: { roomId: "squad" } });
    const members = await ack(onA.socket, "getRoomMembers", { roomId: "squad" });
    assert.deepEqual(members.data.members, [{ userId: u, connections: 2 }]);
  });
});
