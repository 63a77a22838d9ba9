// The Socket.IO admin UI (issue 8): the gateway serves the server side of @socket.io/admin-ui
// on /admin when ADMIN_USERNAME and ADMIN_PASSWORD_HASH are set. The official UI, installed
// from npm and served from ADMIN_UI_DIR, is driven in headless Chromium: it lists the test
// sockets with their user ids and rooms, and its disconnect button really disconnects.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { launchChromium } from "./chromium.mjs";
import { deleteRedisPrefix, redisUrl, requireRedis } from "./cluster-fixture.mjs";
import { after, ack, before, connect, describe, io, it, startGateway, until, waitFor } from "./fixture.mjs";

const require = createRequire(import.meta.url);
const bcrypt = require("bcryptjs");
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const uiDir = path.join(path.dirname(require.resolve("@socket.io/admin-ui/package.json")), "ui", "dist");
const PASSWORD = "admin-test-password";
const ADMIN_ENV = { ADMIN_USERNAME: "admin", ADMIN_PASSWORD_HASH: bcrypt.hashSync(PASSWORD, 8) };

/** Connects to /admin; resolves with the socket and the first payload of each startup event. */
function adminConnect(gw, auth) {
  return new Promise((resolve, reject) => {
    const s = io(`${gw.url}/admin`, { auth, forceNew: true, reconnection: false, transports: ["websocket"] });
    const got = {};
    s.onAny((event, ...args) => (got[event] ??= args));
    s.on("connect_error", (err) => reject(err));
    const timer = setTimeout(() => reject(new Error("admin: no all_sockets within 5 s")), 5000);
    s.on("all_sockets", () => {
      clearTimeout(timer);
      resolve({ s, got });
    });
  });
}

describe("admin namespace", () => {
  it("does not exist when ADMIN_USERNAME and ADMIN_PASSWORD_HASH are unset", async () => {
    const gw = await startGateway();
    try {
      await assert.rejects(adminConnect(gw, { username: "admin", password: PASSWORD }), /Invalid namespace/);
    } finally {
      await gw.stop();
    }
  });

  it("refuses wrong credentials with connect_error, accepts the right ones and a session id", async () => {
    const gw = await startGateway(ADMIN_ENV);
    try {
      await assert.rejects(adminConnect(gw, { username: "admin", password: "wrong" }), /invalid credentials/);
      await assert.rejects(adminConnect(gw, { username: "root", password: PASSWORD }), /invalid credentials/);
      const { s, got } = await adminConnect(gw, { username: "admin", password: PASSWORD });
      const [session] = got.session;
      assert.match(session, /^[0-9a-f]{32}$/);
      assert.ok(got.config[0].supportedFeatures.includes("DISCONNECT"));
      s.close();
      const again = await adminConnect(gw, { sessionId: session });
      again.s.close();
    } finally {
      await gw.stop();
    }
  });

  // README, admin UI: "after five failed logins within a minute a node refuses further logins
  // at once, without bcrypt … a session id keeps working".
  it("after five failed logins the node refuses logins for a minute; a session id still works", async () => {
    const gw = await startGateway(ADMIN_ENV);
    try {
      const { s, got } = await adminConnect(gw, { username: "admin", password: PASSWORD });
      const [session] = got.session;
      s.close();
      for (let i = 0; i < 5; i++) {
        await assert.rejects(adminConnect(gw, { username: "admin", password: `wrong-${i}` }), /invalid credentials/);
      }
      await assert.rejects(adminConnect(gw, { username: "admin", password: PASSWORD }), /too many failed logins/);
      const again = await adminConnect(gw, { sessionId: session });
      again.s.close();
    } finally {
      await gw.stop();
    }
  });

  it("follows sockets and rooms, and obeys join, leave and _disconnect", async () => {
    const gw = await startGateway(ADMIN_ENV);
    try {
      const { s: admin, got } = await adminConnect(gw, { username: "admin", password: PASSWORD });
      assert.ok(Array.isArray(got.all_sockets[0]));
      const connected = waitFor(admin, "socket_connected");
      const alice = await connect(gw, { token: gw.token("alice"), transports: ["websocket"] });
      const [serialized] = await new Promise((r) => admin.once("socket_connected", (...a) => r(a)));
      await connected;
      assert.equal(serialized.id, alice.id);
      assert.deepEqual(serialized.data, { userId: "alice" });
      assert.ok(serialized.rooms.includes("user:alice"));
      assert.equal(serialized.handshake.headers.authorization, undefined);

      const joined = new Promise((r) => admin.once("room_joined", (...a) => r(a)));
      await ack(alice, "joinRoom", { roomId: "room-a" });
      const [nsp, room, id] = await joined;
      assert.deepEqual([nsp, room, id], ["/", "room-a", alice.id]);

      const joinedByAdmin = new Promise((r) => admin.once("room_joined", (...a) => r(a)));
      admin.emit("join", "/", "ops", alice.id);
      assert.equal((await joinedByAdmin)[1], "ops");
      const members = await ack(alice, "getRoomMembers", { roomId: "ops" });
      assert.deepEqual(members.data.members, [{ userId: "alice", connections: 1 }]);

      const aliceId = alice.id; // the client forgets its id once disconnected
      const gone = waitFor(alice, "disconnect");
      const reported = new Promise((r) => admin.once("socket_disconnected", (...a) => r(a)));
      admin.emit("_disconnect", "/", false, aliceId);
      assert.equal(await gone, "io server disconnect");
      assert.equal((await reported)[1], aliceId);
      admin.close();
    } finally {
      await gw.stop();
    }
  });
});

describe("admin UI across nodes (Redis)", () => {
  let a;
  let b;
  let prefix;
  let dir;
  before(async () => {
    await requireRedis();
    prefix = `sio-gw-admin-${randomBytes(4).toString("hex")}`;
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "sio-gateway-admin-"));
    const shared = {
      ...ADMIN_ENV,
      REDIS_URL: redisUrl(),
      REDIS_PREFIX: prefix,
      DATABASE_URL: `sqlite://${path.join(dir, "shared.db")}`,
      JWT_SECRET: randomBytes(24).toString("hex"),
      API_KEYS: `key-${randomBytes(8).toString("hex")}`,
    };
    a = await startGateway(shared);
    b = await startGateway(shared);
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
    await deleteRedisPrefix(redisUrl(), prefix);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("an admin on node A sees node B's sockets and both nodes' stats", async () => {
    const onB = await connect(b, { token: b.token("bob"), transports: ["websocket"] });
    const { s: admin, got } = await adminConnect(a, { username: "admin", password: PASSWORD });
    const ids = got.all_sockets[0].map((s) => s.id);
    assert.ok(ids.includes(onB.id), "node B's socket is listed on node A");
    const servers = new Set();
    admin.on("server_stats", (stats) => servers.add(stats.serverId));
    await until(() => servers.size >= 2, 8000, "server_stats from both nodes");
    const gone = waitFor(onB, "disconnect");
    admin.emit("_disconnect", "/", false, onB.id);
    // (onB.id is read before the disconnect happens)
    assert.equal(await gone, "io server disconnect", "a disconnect from node A reaches a socket on node B");
    admin.close();
  });
});

describe("the official admin UI in headless Chromium", () => {
  let gw;
  let browser;
  before(async () => {
    assert.ok(fs.existsSync(path.join(uiDir, "index.html")), "@socket.io/admin-ui is missing: npm ci in client-tests");
    browser = await launchChromium();
    gw = await startGateway({ ...ADMIN_ENV, ADMIN_UI_DIR: uiDir });
  });
  after(async () => {
    await browser?.close();
    await gw?.stop();
  });

  it("logs in, lists the sockets with user ids and rooms, and disconnects one", async () => {
    const alice = await connect(gw, { token: gw.token("alice"), transports: ["websocket"] });
    const bob = await connect(gw, { token: gw.token("bob"), transports: ["polling"] });
    await ack(alice, "joinRoom", { roomId: "room-a" });

    const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
    await page.goto(`${gw.url}/admin-ui/`);
    await page.getByLabel("Server URL").fill(gw.url);
    await page.getByLabel("Username").fill("admin");
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Connect" }).click();
    await page.getByText("Sockets", { exact: true }).first().click();
    await page.getByText(alice.id).waitFor({ timeout: 10000 });
    await page.getByText(bob.id).waitFor({ timeout: 5000 });

    await page.getByText(alice.id).click();
    const details = page.locator("main");
    await details.getByText('"userId": "alice"').waitFor({ timeout: 5000 });
    await details.getByText("room-a", { exact: true }).waitFor({ timeout: 5000 });
    await details.getByText("user:alice", { exact: true }).waitFor({ timeout: 5000 });
    fs.mkdirSync(path.join(root, "docs"), { recursive: true });
    await page.waitForTimeout(800); // let the page transition finish before the picture
    await page.screenshot({ path: path.join(root, "docs", "admin-ui.png") });

    // The disconnect button beside the socket's status (an icon button: the icon font comes
    // from a CDN this machine cannot reach, so it is found by its row).
    const gone = waitFor(alice, "disconnect", 8000);
    await details.locator("tr", { hasText: "Status" }).locator("button").first().click();
    assert.equal(await gone, "io server disconnect");
    await details.getByText("disconnected", { exact: true }).first().waitFor({ timeout: 5000 });
    assert.ok(bob.connected, "only the chosen socket was disconnected");
  });
});

// "LOG_FORMAT=json gives one JSON object per log line (time, level, target, message, and
// socket id / user id where known), for log shippers; the default stays human-readable."
describe("LOG_FORMAT=json", () => {
  it("prints one JSON object per line, with socket and user ids where known", async () => {
    const gw = await startGateway({ LOG_FORMAT: "json", RUST_LOG: "sio_gateway=debug,info" });
    try {
      const alice = await connect(gw, { token: gw.token("alice"), transports: ["websocket"] });
      await ack(alice, "joinRoom", { roomId: "logs" });
      alice.close();
      await until(() => gw.logs().includes('"disconnected"'), 5000, "disconnect logged");
    } finally {
      await gw.stop();
    }
    const lines = gw.logs().split("\n").filter((l) => l.trim());
    assert.ok(lines.length >= 3, "some log lines");
    const records = lines.map((l) => JSON.parse(l));
    for (const r of records) {
      assert.equal(typeof r.timestamp, "string");
      assert.match(r.level, /^(TRACE|DEBUG|INFO|WARN|ERROR)$/);
      assert.equal(typeof r.target, "string");
      assert.equal(typeof r.message, "string");
    }
    const connected = records.find((r) => r.message === "connected");
    assert.ok(connected, "a connect line");
    assert.equal(connected.user, "alice");
    assert.match(connected.sid, /^[A-Za-z0-9_-]{16}$/);
  });

  it("the default stays human-readable", async () => {
    const gw = await startGateway();
    await gw.stop();
    const first = gw.logs().split("\n").find((l) => l.includes("listening"));
    assert.ok(first && !first.trim().startsWith("{"), first);
  });
});
