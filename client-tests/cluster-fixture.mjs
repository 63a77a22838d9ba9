// Helpers for the scale-out and fault tests (cluster.test.mjs): real PostgreSQL and Redis,
// a fresh PostgreSQL database per run, a TCP proxy (to cut PostgreSQL off, or to play the load
// balancer in front of several nodes), a private redis-server, and small HTTP helpers.
//
// Services are found at the standard local addresses, or through TEST_POSTGRES_URL (else
// DATABASE_URL when it is postgres://…) and REDIS_URL. A missing service fails the tests with
// what to install; nothing is skipped.
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import net from "node:net";
import { startGateway, uid } from "./fixture.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------
// PostgreSQL (through the psql CLI, so no npm dependency)

export function postgresAdminUrl() {
  if (process.env.TEST_POSTGRES_URL) return process.env.TEST_POSTGRES_URL;
  const db = process.env.DATABASE_URL;
  if (db && /^postgres(ql)?:\/\//.test(db)) return db;
  return "postgres://postgres@127.0.0.1:5432/postgres";
}

// `base` with its database name replaced by `db` (query string kept).
export function withDatabase(base, db) {
  const u = new URL(base);
  u.pathname = `/${db}`;
  return u.toString();
}

// `base` pointed at another host and port (for the proxy).
export function withHostPort(base, host, port) {
  const u = new URL(base);
  u.hostname = host;
  u.port = String(port);
  return u.toString();
}

const masked = (url) => {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(unparseable URL)";
  }
};

// Runs one SQL command with psql; returns trimmed stdout (unaligned, tuples only) or throws.
export function psql(url, sql) {
  const r = spawnSync("psql", [url, "-X", "-v", "ON_ERROR_STOP=1", "-A", "-t", "-q", "-c", sql], {
    encoding: "utf8",
    timeout: 30000,
    env: { ...process.env, PGCONNECT_TIMEOUT: "5" },
  });
  if (r.error?.code === "ENOENT") {
    throw new Error(
      "the psql command is needed by these tests to create databases: install the PostgreSQL client " +
        "(Debian/Ubuntu: apt-get install postgresql-client)",
    );
  }
  if (r.error) throw new Error(`psql failed: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`psql ${masked(url)} -c "${sql}" exited ${r.status}: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

// Fails, naming what to install, unless PostgreSQL answers.
export function requirePostgres() {
  const url = postgresAdminUrl();
  try {
    psql(url, "SELECT 1");
  } catch (e) {
    throw new Error(
      `PostgreSQL is needed for the cluster tests but ${masked(url)} does not answer (${e.message}). ` +
        "Install and start it (Debian: apt-get install postgresql postgresql-client; pg_ctlcluster 15 main start) " +
        "or point TEST_POSTGRES_URL at a server.",
    );
  }
}

// A fresh, uniquely named database: { name, url, drop() }.
export function createDatabase() {
  const admin = postgresAdminUrl();
  const name = `sio_gw_ctest_${randomBytes(6).toString("hex")}`;
  psql(admin, `CREATE DATABASE ${name}`);
  let dropped = false;
  return {
    name,
    url: withDatabase(admin, name),
    drop() {
      if (dropped) return;
      dropped = true;
      psql(admin, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
  };
}

// ---------------------------------------------------------------------------
// Redis (a minimal RESP client: enough for PING and EVAL)

export function redisUrl() {
  return process.env.REDIS_URL || "redis://127.0.0.1:6379";
}

const encodeCommand = (args) =>
  `*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(String(a))}\r\n${a}\r\n`).join("");

// Parses one RESP reply from the start of buf: { value, rest } or null if incomplete.
function parseReply(buf) {
  const nl = buf.indexOf("\r\n");
  if (nl < 0) return null;
  const type = buf[0];
  const line = buf.slice(1, nl).toString();
  const after = buf.subarray(nl + 2);
  switch (String.fromCharCode(type)) {
    case "+":
      return { value: line, rest: after };
    case "-":
      return { value: new Error(line), rest: after };
    case ":":
      return { value: Number(line), rest: after };
    case "$": {
      const n = Number(line);
      if (n < 0) return { value: null, rest: after };
      if (after.length < n + 2) return null;
      return { value: after.subarray(0, n).toString(), rest: after.subarray(n + 2) };
    }
    case "*": {
      const n = Number(line);
      const items = [];
      let rest = after;
      for (let i = 0; i < n; i++) {
        const r = parseReply(rest);
        if (!r) return null;
        items.push(r.value);
        rest = r.rest;
      }
      return { value: items, rest };
    }
    default:
      return { value: new Error(`unexpected RESP reply: ${buf.toString().slice(0, 80)}`), rest: Buffer.alloc(0) };
  }
}

// Sends `args` (after AUTH/SELECT from the URL) and resolves with the reply (throws on -ERR).
export function redisCommand(url, args, timeoutMs = 3000) {
  const u = new URL(url);
  const cmds = [];
  if (u.password) cmds.push(u.username ? ["AUTH", decodeURIComponent(u.username), decodeURIComponent(u.password)] : ["AUTH", decodeURIComponent(u.password)]);
  const db = u.pathname.replace(/^\//, "");
  if (db) cmds.push(["SELECT", db]);
  cmds.push(args);
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(u.port || 6379), u.hostname || "127.0.0.1");
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no answer from Redis within ${timeoutMs} ms`));
    }, timeoutMs);
    let buf = Buffer.alloc(0);
    const replies = [];
    sock.on("connect", () => sock.write(cmds.map(encodeCommand).join("")));
    sock.on("data", (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const r = parseReply(buf);
        if (!r) break;
        replies.push(r.value);
        buf = r.rest;
      }
      if (replies.length === cmds.length) {
        clearTimeout(timer);
        sock.end();
        const err = replies.find((v) => v instanceof Error);
        if (err) reject(err);
        else resolve(replies[replies.length - 1]);
      }
    });
    sock.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

// Fails, naming what to install, unless Redis answers PING.
export async function requireRedis(url = redisUrl()) {
  try {
    const pong = await redisCommand(url, ["PING"]);
    if (pong !== "PONG") throw new Error(`PING answered ${JSON.stringify(pong)}`);
  } catch (e) {
    throw new Error(
      `Redis is needed for the cluster tests but ${masked(url)} does not answer (${e.message}). ` +
        "Install and start it (Debian: apt-get install redis-server; service redis-server start) " +
        "or point REDIS_URL at a server.",
    );
  }
}

// Deletes the keys a test run left under `prefix` (best effort).
export async function deleteRedisPrefix(url, prefix) {
  const script = "local n = 0 for _, k in ipairs(redis.call('KEYS', ARGV[1])) do n = n + redis.call('DEL', k) end return n";
  try {
    await redisCommand(url, ["EVAL", script, "0", `${prefix}*`]);
  } catch {
    // the keys expire or stay behind; not worth failing a test over
  }
}

// A redis-server of our own, on a fixed port so it can be restarted on the same address.
export class RedisServer {
  constructor(port) {
    this.port = port;
    this.url = `redis://127.0.0.1:${port}`;
    this.child = null;
    this.logs = "";
  }

  async start() {
    if (this.child) throw new Error("redis-server already running");
    const child = spawn(
      "redis-server",
      ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    this.child = child;
    child.stdout.on("data", (d) => (this.logs += d));
    child.stderr.on("data", (d) => (this.logs += d));
    child.exited = new Promise((resolve) => {
      child.on("exit", (code, signal) => resolve(code ?? signal));
      child.on("error", (e) => resolve(e));
    });
    for (let i = 0; i < 100; i++) {
      const early = await Promise.race([child.exited, sleep(50).then(() => undefined)]);
      if (early !== undefined) {
        this.child = null;
        if (early instanceof Error && early.code === "ENOENT") {
          throw new Error("the redis-server binary is needed by the Redis restart test: apt-get install redis-server");
        }
        throw new Error(`redis-server exited (${early}) on port ${this.port}:\n${this.logs}`);
      }
      try {
        if ((await redisCommand(this.url, ["PING"], 500)) === "PONG") return;
      } catch {
        // not up yet
      }
    }
    await this.stop("SIGKILL");
    throw new Error(`redis-server did not answer on port ${this.port} within 5 s:\n${this.logs}`);
  }

  // Resolves once the process has exited.
  async stop(signal = "SIGTERM") {
    const child = this.child;
    if (!child) return;
    child.kill(signal);
    const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
    await child.exited;
    clearTimeout(timer);
    this.child = null;
  }
}

// ---------------------------------------------------------------------------
// Ports

// A free port below the kernel's ephemeral range (32768+), so that while nothing listens on
// it no outgoing connection gets it as its local port (which would let a client connect to
// itself) and no freePort() of another test hands it out.
export async function stablePort() {
  for (let i = 0; i < 50; i++) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    const ok = await new Promise((resolve) => {
      const srv = net.createServer();
      srv.once("error", () => resolve(false));
      srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
    });
    if (ok) return port;
  }
  throw new Error("no free port found in 20000–32000");
}

// ---------------------------------------------------------------------------
// TCP proxy: forwards each connection to target() ({ host, port }, or null to drop it).
// stop() closes the listener AND destroys every live connection, as a dead host or a cut
// network link would; start() listens again on the same port.
export class TcpProxy {
  // `port` 0 takes any free port (read `port` after start()).
  constructor(port, target) {
    this.port = port;
    this.target = target;
    this.server = null;
    this.conns = new Set();
    this.accepted = 0;
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  // Copies `from` to `to`; subclasses change how (bench/faults.mjs delays every chunk).
  forward(from, to) {
    from.pipe(to);
  }

  // Resolves with the proxy once it listens.
  start() {
    if (this.server) throw new Error("proxy already listening");
    const server = net.createServer((client) => {
      this.accepted++;
      const to = this.target();
      if (!to) {
        client.destroy();
        return;
      }
      const upstream = net.connect(to.port, to.host ?? "127.0.0.1");
      this.conns.add(client);
      this.conns.add(upstream);
      const done = () => {
        client.destroy();
        upstream.destroy();
        this.conns.delete(client);
        this.conns.delete(upstream);
      };
      client.on("error", done);
      upstream.on("error", done);
      client.on("close", done);
      upstream.on("close", done);
      this.forward(client, upstream);
      this.forward(upstream, client);
    });
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.port, "127.0.0.1", () => {
        this.port = server.address().port;
        resolve(this);
      });
    });
  }

  async stop() {
    const server = this.server;
    if (!server) return;
    this.server = null;
    const closed = new Promise((resolve) => server.close(() => resolve()));
    for (const s of this.conns) s.destroy();
    this.conns.clear();
    await closed;
  }
}

// ---------------------------------------------------------------------------
// Several nodes

// Starts `n` gateway nodes sharing one database (`databaseUrl`), one Redis, one REDIS_PREFIX,
// one JWT secret and one API key (all passed explicitly, so nothing comes from the test
// runner's environment); `extra` goes to every node, `perNode[i]` to node i. stop() stops them
// and deletes the prefix's keys.
export async function startCluster(n, { databaseUrl, redis = redisUrl(), extra = {}, perNode = [] } = {}) {
  if (!databaseUrl) throw new Error("no database for the cluster (see the failure of the file's before hook)");
  const prefix = `sio-gw-test-${uid()}${uid()}`;
  const shared = {
    DATABASE_URL: databaseUrl,
    REDIS_URL: redis,
    REDIS_PREFIX: prefix,
    JWT_SECRET: randomBytes(24).toString("hex"),
    API_KEYS: `key-${randomBytes(16).toString("hex")}`,
    SHUTDOWN_TIMEOUT_SECS: "3",
    EVENT_RATE_PER_SEC: "1000",
    EVENT_BURST: "1000",
    ...extra,
  };
  const nodes = [];
  const cluster = {
    nodes,
    prefix,
    async stop() {
      await Promise.all(nodes.map((gw) => gw.stop()));
      await deleteRedisPrefix(redis, prefix);
    },
  };
  try {
    // One after the other: each applies the migrations on start.
    for (let i = 0; i < n; i++) nodes.push(await startGateway({ ...shared, ...(perNode[i] ?? {}) }));
  } catch (e) {
    await cluster.stop();
    throw e;
  }
  return cluster;
}

// ---------------------------------------------------------------------------
// HTTP helpers. Each resolves with { status, body } (body parsed as JSON when possible).

async function request(url, { method = "GET", headers = {}, body, timeoutMs = 15000 } = {}) {
  const res = await fetch(url, {
    method,
    headers: body === undefined ? headers : { "content-type": "application/json", ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  let parsed = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: res.status, body: parsed };
}

export function postNotification(gw, body, opts = {}) {
  return request(`${gw.url}/api/notifications`, {
    method: "POST",
    headers: { authorization: `Bearer ${gw.apiKey}` },
    body,
    ...opts,
  });
}

export function postEmit(gw, body, opts = {}) {
  return request(`${gw.url}/api/emit`, {
    method: "POST",
    headers: { authorization: `Bearer ${gw.apiKey}` },
    body,
    ...opts,
  });
}

export function readyz(gw, opts = {}) {
  return request(`${gw.url}/readyz`, opts);
}

// Every notification of `userId` (through GET /api/notifications with the user's token),
// newest first, following the `before` cursor (bounded).
export async function allNotifications(gw, userId) {
  const all = [];
  let before;
  for (let page = 0; page < 100; page++) {
    const q = new URLSearchParams({ limit: "100" });
    if (before) q.set("before", before);
    const res = await request(`${gw.url}/api/notifications?${q}`, {
      headers: { authorization: `Bearer ${gw.token(userId)}` },
    });
    if (res.status !== 200) throw new Error(`GET /api/notifications: ${res.status} ${JSON.stringify(res.body)}`);
    all.push(...res.body.notifications);
    if (!res.body.hasMore) return all;
    before = res.body.notifications.at(-1).id;
  }
  throw new Error("more than 10000 notifications");
}
