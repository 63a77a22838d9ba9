// The client package (clients/js, `sio-gateway-client`, issue 17) in Node, as an application
// uses it: installed from the packed tarball, against the release binary. Calls resolve with
// `data` or reject with GatewayError; notifications reach the application exactly once across
// reconnects, process restarts (file store), catch-ups longer than the gateway's 100 and a
// gateway restart; tokens are fetched for every connect and refreshed before `exp` (a 20 s
// token lives a minute); refused tokens are an event, not a loop; the types check with tsc.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { runJsonLines } from "./child.mjs";
import { installPackage, notify, root } from "./client-package-fixture.mjs";
import { after, before, connectAndRegistered, describe, it, sleep, startGateway, token, until, waitFor } from "./fixture.mjs";

let pkg; // the installed package's exports
let nodeEntry; // sio-gateway-client/node
let installDir;
let tgzPath; // the tarball installed

const gateways = new Set();

/** A Gateway of the package with a counting getToken; closed after the file. */
function client(gw, sub, { tokens, ...options } = {}) {
  const calls = { getToken: 0 };
  const g = new pkg.Gateway(gw.url, {
    getToken: () => {
      calls.getToken++;
      return tokens ? tokens(calls.getToken) : gw.token(sub);
    },
    timeout: 5000,
    socket: { transports: ["websocket"], reconnectionDelay: 100, reconnectionDelayMax: 500 },
    ...options,
  });
  g.calls = calls;
  g.seen = [];
  g.errors = [];
  g.registrations = [];
  g.on("notification", (n) => g.seen.push(n.id));
  g.on("registered", (r) => g.registrations.push(r));
  g.on("error", (e) => g.errors.push(e));
  gateways.add(g);
  return g;
}

/** The GatewayError a promise rejects with (fails if it resolves). */
async function rejection(promise) {
  try {
    const value = await promise;
    assert.fail(`expected a rejection, got ${JSON.stringify(value)}`);
  } catch (err) {
    if (err instanceof assert.AssertionError) throw err;
    assert.ok(err instanceof pkg.GatewayError, `not a GatewayError: ${err}`);
    return err;
  }
}

const once = (g, event, ms = 5000) =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no '${event}' within ${ms} ms`)), ms);
    g.once(event, (v) => {
      clearTimeout(timer);
      resolve(v);
    });
  });

before(async () => {
  const mod = await installPackage();
  pkg = mod.pkg;
  nodeEntry = mod.node;
  installDir = mod.dir;
  tgzPath = mod.tgz;
});

after(() => {
  for (const g of gateways) g.disconnect();
});

describe("client package: the tarball", () => {
  it("is ESM with type declarations, socket.io-client 4 as its only peer and no runtime dependency", () => {
    const meta = JSON.parse(fs.readFileSync(path.join(installDir, "node_modules", "sio-gateway-client", "package.json"), "utf8"));
    assert.equal(meta.type, "module");
    assert.deepEqual(Object.keys(meta.dependencies ?? {}), []);
    assert.match(meta.peerDependencies["socket.io-client"], /^\^4\./);
    for (const f of ["index.js", "index.d.ts", "node.js", "node.d.ts", "types.d.ts"]) {
      assert.ok(fs.existsSync(path.join(installDir, "node_modules", "sio-gateway-client", "dist", f)), `dist/${f} missing`);
    }
    // Only the build and the README ship: no sources, no tests, no node_modules.
    const listing = execFileSync("tar", ["-tzf", tgzPath], { encoding: "utf8" }).split("\n").filter(Boolean);
    assert.ok(listing.every((f) => /^package\/(dist\/[\w.-]+|package\.json|README\.md)$/.test(f)), listing.join("\n"));
    assert.equal(typeof pkg.Gateway, "function");
    assert.equal(typeof nodeEntry.fileStore, "function");
  });

  it("type-checks a typed example with tsc --noEmit, and the types refuse wrong code", () => {
    const work = fs.mkdtempSync(path.join(installDir, "tsc-"));
    const example = fs.readFileSync(path.join(root, "clients", "js", "examples", "listener.ts"), "utf8");
    fs.writeFileSync(path.join(work, "listener.ts"), example);
    fs.writeFileSync(
      path.join(work, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: { target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", strict: true, noEmit: true, types: ["node"] },
        include: ["*.ts"],
      }),
    );
    const tsc = path.join(installDir, "node_modules", "typescript", "bin", "tsc");
    const ok = spawnSync(process.execPath, [tsc, "-p", work], { encoding: "utf8" });
    assert.equal(ok.status, 0, ok.stdout + ok.stderr);
    // The same file without its @ts-expect-error lines must not compile: the types are real.
    const expected = example.split("\n").filter((l) => l.includes("@ts-expect-error")).length;
    assert.ok(expected >= 5);
    fs.writeFileSync(path.join(work, "listener.ts"), example.replaceAll("// @ts-expect-error", "//"));
    const bad = spawnSync(process.execPath, [tsc, "-p", work], { encoding: "utf8" });
    assert.notEqual(bad.status, 0);
    assert.equal((bad.stdout.match(/error TS\d+/g) ?? []).length, expected, bad.stdout);
    fs.rmSync(work, { recursive: true, force: true });
  });
});

describe("client package: calls", () => {
  let gw;
  let backend;
  before(async () => {
    // A real proxy backend (section 10.2): answers order.place, refuses order.fail with its
    // own code, and never answers order.slow.
    backend = http.createServer((req, res) => {
      let body = "";
      req.on("data", (d) => (body += d));
      req.on("end", () => {
        const { event, userId, data } = JSON.parse(body);
        if (event === "order.slow") return; // left hanging
        res.setHeader("content-type", "application/json");
        if (event === "order.fail") {
          res.statusCode = 409;
          res.end(JSON.stringify({ error: { code: "out_of_stock", message: "none left", details: { qty: ["too many"] } } }));
        } else {
          res.end(JSON.stringify({ data: { orderId: "o-1", userId, item: data.item } }));
        }
      });
    });
    await new Promise((r) => backend.listen(0, "127.0.0.1", r));
    gw = await startGateway({
      PROXY_URL: `http://127.0.0.1:${backend.address().port}/`,
      PROXY_SECRET: "s".repeat(40),
      PROXY_EVENTS: "order.*",
      PROXY_TIMEOUT_MS: 20000,
    });
  });
  after(async () => {
    await gw?.stop();
    backend?.closeAllConnections();
    backend?.close();
  });

  it("resolve with the acknowledgement's data and emit the room's events", async () => {
    const alice = client(gw, "alice");
    const bob = client(gw, "bob");
    const reg = await alice.connect();
    assert.equal(reg.userId, "alice");
    assert.ok(reg.rooms.includes("user:alice"));
    await bob.connect();
    assert.deepEqual(await alice.joinRoom("general"), { roomId: "general" });
    const joined = once(alice, "userJoined");
    await bob.joinRoom("general");
    assert.deepEqual(await joined, { roomId: "general", userId: "bob" });
    assert.deepEqual(alice.rooms, ["general"]);

    const arrived = once(bob, "newMessage");
    const sent = await alice.sendMessage("general", "hello bob");
    assert.equal(sent.text, "hello bob");
    assert.equal(sent.userId, "alice");
    assert.deepEqual(await arrived, sent);

    const page = await bob.getMessages("general", { limit: 10 });
    assert.deepEqual(page, { messages: [sent], hasMore: false });
    const members = await bob.getRoomMembers("general");
    assert.deepEqual(members.members.map((m) => m.userId).sort(), ["alice", "bob"]);
    assert.deepEqual(await alice.typing("general"), {});
    assert.deepEqual(await alice.leaveRoom("general"), { roomId: "general" });
    assert.deepEqual(alice.rooms, []);

    const n = await notify(gw, "bob", "for bob");
    const list = await bob.listNotifications({ unreadOnly: true });
    assert.deepEqual(list.notifications.map((x) => x.id), [n.id]);
    const read = once(bob, "notificationsRead");
    assert.deepEqual(await bob.markRead([n.id]), { updated: 1 });
    assert.deepEqual(await read, { ids: [n.id] });
    assert.deepEqual(await bob.markRead({ all: true }), { updated: 0 });
  });

  it("reject with GatewayError { code, message, details } and event", async () => {
    const carol = client(gw, "carol");
    await carol.connect();
    let err = await rejection(carol.sendMessage("general", "not a member"));
    assert.equal(err.code, "not_member");
    assert.equal(err.event, "sendMessage");
    assert.equal(typeof err.message, "string");
    err = await rejection(carol.joinRoom("user:bob"));
    assert.equal(err.code, "forbidden");
    await carol.joinRoom("general");
    err = await rejection(carol.sendMessage("general", "   "));
    assert.equal(err.code, "validation_failed");
    assert.ok(Array.isArray(err.details.text) && err.details.text.length > 0, JSON.stringify(err.details));
    err = await rejection(carol.markRead([]));
    assert.equal(err.code, "validation_failed");
    assert.ok(err.details.ids);
    err = await rejection(carol.getMessages("general", { before: "00000000-0000-7000-8000-000000000000" }));
    assert.equal(err.code, "not_found");
    err = await rejection(carol.call("no.such.event", {}));
    assert.equal(err.code, "unknown_event");
    assert.ok(err instanceof Error && err.name === "GatewayError");
    assert.deepEqual(carol.rooms, ["general"], "a failed join is not remembered");
  });

  it("call() proxies an event: the backend's data, the backend's error, and a timeout", async () => {
    const dave = client(gw, "dave");
    await dave.connect();
    assert.deepEqual(await dave.call("order.place", { item: "book" }), { orderId: "o-1", userId: "dave", item: "book" });
    let err = await rejection(dave.call("order.fail", { item: "book" }));
    assert.equal(err.code, "out_of_stock");
    assert.equal(err.message, "none left");
    assert.deepEqual(err.details, { qty: ["too many"] });
    const started = Date.now();
    err = await rejection(dave.call("order.slow", {}, { timeout: 400 }));
    assert.equal(err.code, "timeout");
    assert.equal(err.event, "order.slow");
    assert.ok(Date.now() - started < 2000);
    dave.disconnect();
    err = await rejection(dave.joinRoom("general"));
    assert.equal(err.code, "disconnected");
  });

  it("forwards events a backend emits with POST /api/emit (typed with the Extra parameter in TS)", async () => {
    const erin = client(gw, "erin");
    await erin.connect();
    const got = once(erin, "deploy.finished");
    const res = await fetch(`${gw.url}/api/emit`, {
      method: "POST",
      headers: { authorization: `Bearer ${gw.apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({ event: "deploy.finished", data: { version: "1.2.3" }, userId: "erin" }),
    });
    assert.equal(res.status, 202);
    assert.deepEqual(await got, { version: "1.2.3" });
  });
});

describe("client package: notifications exactly once", () => {
  let gw;
  before(async () => {
    gw = await startGateway();
  });
  after(async () => gw?.stop());

  it("a dropped connection reconnects with the cursor: the missed ones once, in order", async () => {
    const g = client(gw, "frank");
    await g.connect();
    const n1 = await notify(gw, "frank", "one");
    await until(() => g.seen.length === 1, 5000, "first notification");
    // Drop the transport: socket.io-client reconnects by itself after its delay.
    const down = once(g, "disconnect");
    g.socket.io.engine.close();
    assert.equal(typeof (await down), "string");
    const n2 = await notify(gw, "frank", "two"); // created while the socket is away
    await once(g, "registered", 5000);
    const n3 = await notify(gw, "frank", "three");
    await until(() => g.seen.length >= 3, 5000, "three notifications");
    await sleep(200);
    assert.deepEqual(g.seen, [n1.id, n2.id, n3.id]);
    assert.equal(g.lastNotificationId, n3.id);
    assert.ok(g.calls.getToken >= 2, "getToken is asked again for the reconnect");
  });

  it("a new instance with the same file store resumes: nothing lost, nothing repeated", async () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "sio-cursor-")), "cursor.json");
    const first = client(gw, "gina", { store: nodeEntry.fileStore(file) });
    await first.connect();
    const a = await notify(gw, "gina", "a");
    const b = await notify(gw, "gina", "b");
    await until(() => first.seen.length === 2, 5000, "two notifications");
    first.disconnect();
    const c = await notify(gw, "gina", "c");
    const d = await notify(gw, "gina", "d");
    const stored = JSON.parse(fs.readFileSync(file, "utf8"));
    assert.deepEqual(Object.values(stored), [b.id], "the file holds the last id handed over");

    const second = client(gw, "gina", { store: nodeEntry.fileStore(file) });
    const reg = await second.connect();
    assert.deepEqual(second.seen, [c.id, d.id], "missed ones handed over before registered");
    assert.equal(reg.lastNotificationId, d.id);
    const e = await notify(gw, "gina", "e");
    await until(() => second.seen.length === 3, 5000, "live notification");
    assert.deepEqual([...first.seen, ...second.seen], [a, b, c, d, e].map((n) => n.id));
  });

  it("a process stopped in the middle of a burst and started again hands each one over once", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sio-listener-"));
    const script = path.join(installDir, "client-package-listener.mjs");
    fs.copyFileSync(path.join(root, "client-tests", "client-package-listener.mjs"), script);
    const cursorFile = path.join(dir, "cursor.json");
    const run = () => runJsonLines(process.execPath, [script, gw.url, gw.token("hank"), cursorFile], { cwd: installDir, timeoutMs: 60000 });
    const kind = (out, k) => out.lines.filter((l) => l.kind === k);

    const first = run();
    await until(() => kind(first, "registered").length === 1, 8000, "first listener registered");
    const posted = [];
    let stopped = false;
    let second;
    const burst = (async () => {
      for (let i = 0; i < 60; i++) {
        posted.push((await notify(gw, "hank", `burst ${i}`)).id);
        if (i === 20) {
          first.child.kill("SIGTERM");
          stopped = true;
        }
        if (i === 35) second = run(); // created while no listener runs: 21..35 come as catch-up
        await sleep(5);
      }
    })();
    await burst;
    assert.ok(stopped);
    assert.equal(await first.exited, 0, first.stderr);
    await until(() => kind(second, "notification").length + kind(first, "notification").length >= 60, 10000, "every notification");
    await sleep(300);
    second.child.kill("SIGTERM");
    assert.equal(await second.exited, 0, second.stderr);
    const handed = [...kind(first, "notification"), ...kind(second, "notification")].map((l) => l.id);
    assert.ok(kind(first, "notification").length > 0 && kind(first, "notification").length < 60);
    assert.deepEqual(handed, posted, "each notification exactly once, in order, across the two processes");
    assert.deepEqual(kind(second, "error"), []);
  });

  it("a catch-up longer than the gateway's 100 is completed with listNotifications, in order", async () => {
    const store = pkg.memoryStore();
    const first = client(gw, "ivan", { store });
    await first.connect();
    const before = await notify(gw, "ivan", "before");
    await until(() => first.seen.length === 1, 5000, "first one");
    first.disconnect();
    const missed = [];
    for (let i = 0; i < 130; i++) missed.push((await notify(gw, "ivan", `missed ${i}`)).id);

    const second = client(gw, "ivan", { store });
    const order = [];
    second.on("notification", () => order.push("notification"));
    second.on("registered", () => order.push("registered"));
    await second.connect();
    assert.deepEqual(second.seen, missed, "all 130, oldest first, none twice");
    assert.equal(order.at(-1), "registered", "registered comes after the missed ones");
    assert.equal(order.indexOf("registered"), 130);
    const live = await notify(gw, "ivan", "live");
    await until(() => second.seen.length === 131, 5000, "live one");
    assert.equal(second.seen.at(-1), live.id);
    assert.equal(first.seen[0], before.id);
  });

  it("a user who had none when the cursor was set still gets what came while away", async () => {
    const store = pkg.memoryStore();
    const first = client(gw, "jill", { store });
    const reg = await first.connect();
    assert.equal(reg.lastNotificationId, null);
    first.disconnect();
    // The gateway gives no catch-up without a cursor (README): the package reads them.
    const ids = [];
    for (const t of ["x", "y", "z"]) ids.push((await notify(gw, "jill", t)).id);
    const second = client(gw, "jill", { store });
    await second.connect();
    assert.deepEqual(second.seen, ids);
  });

  it("a plain socket.io-client beside it sees the same stream (the package adds no event of its own on the wire)", async () => {
    const g = client(gw, "kate");
    await g.connect();
    const { socket } = await connectAndRegistered(gw, { token: gw.token("kate") });
    const plain = waitFor(socket, "notification");
    const n = await notify(gw, "kate", "both");
    assert.equal((await plain).id, n.id);
    await until(() => g.seen.length === 1, 5000, "package got it");
    assert.equal(g.seen[0], n.id);
  });
});

describe("client package: tokens", () => {
  it("a 20 s token is refreshed before exp and the socket lives a minute (JWT_LEEWAY_SECS=0)", { timeout: 90000 }, async () => {
    const gw = await startGateway({ JWT_LEEWAY_SECS: 0 });
    try {
      const g = client(gw, "lena", { tokens: () => gw.token("lena", { ttlSecs: 20 }) });
      const refreshed = [];
      const disconnects = [];
      g.on("tokenRefreshed", (exp) => refreshed.push(exp));
      g.on("disconnect", (r) => disconnects.push(r));
      await g.connect();
      await g.joinRoom("long");
      const firstSocket = g.socket.id;
      await sleep(60000);
      assert.deepEqual(disconnects, [], "the socket was never disconnected");
      assert.equal(g.socket.id, firstSocket, "still the first connection");
      assert.ok(refreshed.length >= 3, `refreshed ${refreshed.length} times in 60 s`);
      assert.ok(refreshed.every((exp, i) => i === 0 || exp > refreshed[i - 1]), "each refresh moves exp on");
      assert.equal(g.calls.getToken, 1 + refreshed.length, "one token per connect and per refresh");
      assert.deepEqual(g.errors, []);
      assert.equal((await g.sendMessage("long", "still here")).text, "still here");
      const n = await notify(gw, "lena", "after a minute");
      await until(() => g.seen.includes(n.id), 5000, "notification after a minute");
    } finally {
      await gw.stop();
    }
  });

  it("a failed refresh ends in the gateway's expiry disconnect, and the package reconnects with a new token", async () => {
    const gw = await startGateway({ JWT_LEEWAY_SECS: 0 });
    try {
      let mode = "good";
      const g = client(gw, "mona", {
        tokens: () => (mode === "good" ? gw.token("mona", { ttlSecs: 3 }) : gw.token("someone-else", { ttlSecs: 60 })),
        refreshMarginSecs: 1,
      });
      const reasons = [];
      g.on("disconnect", (r) => {
        reasons.push(r);
        mode = "good"; // the reconnect gets a good token again
      });
      await g.connect();
      mode = "bad"; // the refresh gets a token of another user: invalid_token
      const failed = await once(g, "error", 5000);
      assert.equal(failed.code, "invalid_token");
      assert.equal(failed.event, "refreshToken");
      await once(g, "registered", 8000);
      assert.ok(reasons.includes("io server disconnect"), JSON.stringify(reasons));
      assert.ok(g.connected);
    } finally {
      await gw.stop();
    }
  });

  it("a refused token is one authError, not a reconnect loop; connect() rejects with its code", async () => {
    const gw = await startGateway();
    try {
      const bad = client(gw, "nina", { tokens: () => token("nina", { secret: "x".repeat(40) }) });
      const errors = [];
      bad.on("authError", (e) => errors.push(e.code));
      const err = await rejection(bad.connect());
      assert.equal(err.code, "invalid_token");
      const expired = client(gw, "nina", { tokens: () => gw.token("nina", { exp: Math.floor(Date.now() / 1000) - 3600 }) });
      assert.equal((await rejection(expired.connect())).code, "token_expired");
      const out = client(gw, "nina", {
        tokens: () => {
          throw new pkg.UnauthorizedError("signed out");
        },
      });
      assert.equal((await rejection(out.connect())).code, "unauthorized");
      await sleep(1500);
      assert.deepEqual(errors, ["invalid_token"]);
      assert.equal(bad.calls.getToken, 1, "no retry with a refused token");
      assert.equal(expired.calls.getToken, 1);
      assert.equal(out.calls.getToken, 1);
      assert.ok(!bad.socket.active && !expired.socket.active);
    } finally {
      await gw.stop();
    }
  });

  it("a getToken() that throws is an error event and a retry, not a dead client", async () => {
    const gw = await startGateway();
    try {
      const g = client(gw, "oscar", {
        tokens: (n) => {
          if (n === 1) throw new Error("auth service down");
          return gw.token("oscar");
        },
      });
      const reg = await g.connect();
      assert.equal(reg.userId, "oscar");
      assert.equal(g.calls.getToken, 2);
      assert.equal(g.errors[0]?.code, "get_token_failed");
      assert.match(g.errors[0].message, /auth service down/);
    } finally {
      await gw.stop();
    }
  });

  it("a backend's disconnect of the user is respected: no reconnect", async () => {
    const gw = await startGateway();
    try {
      const g = client(gw, "olga");
      await g.connect();
      const down = once(g, "disconnect");
      const res = await fetch(`${gw.url}/api/users/olga/disconnect`, {
        method: "POST",
        headers: { authorization: `Bearer ${gw.apiKey}` },
      });
      assert.equal(res.status, 200);
      assert.equal(await down, "io server disconnect");
      await sleep(1000);
      assert.equal(g.connected, false);
      assert.equal(g.calls.getToken, 1);
    } finally {
      await gw.stop();
    }
  });
});

describe("client package: a gateway restart", () => {
  it("reconnects with a new token, rejoins its rooms, and misses no notification", async () => {
    const gw = await startGateway();
    try {
      const g = client(gw, "paul");
      const other = client(gw, "quinn");
      await g.connect();
      await other.connect();
      await g.joinRoom("ops");
      await other.joinRoom("ops");
      const n1 = await notify(gw, "paul", "before restart");
      await until(() => g.seen.length === 1, 5000, "first notification");
      const registeredAgain = once(g, "registered", 15000);
      await gw.restart();
      const n2 = await notify(gw, "paul", "while reconnecting");
      const reg = await registeredAgain;
      assert.ok(reg.rooms.includes("ops"), `rooms after restart: ${reg.rooms}`);
      const n3 = await notify(gw, "paul", "after reconnect");
      await until(() => g.seen.length >= 3, 5000, "three notifications");
      await sleep(200);
      assert.deepEqual(g.seen, [n1.id, n2.id, n3.id]);
      assert.ok(g.calls.getToken >= 2);
      // The room was joined again on the new connection: messages flow without a new joinRoom.
      await until(() => other.registrations.length === 2, 10000, "the other client registered again");
      const arrived = once(other, "newMessage", 5000);
      await g.sendMessage("ops", "back");
      assert.equal((await arrived).text, "back");
    } finally {
      await gw.stop();
    }
  });
});
