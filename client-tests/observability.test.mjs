// Observability conventions (issue 16, point 4), against the release binary: every series has
// a HELP line and exists from the start at zero, process metrics and sio_build_info are exported,
// the HTTP access log (tower-http's TraceLayer) names method, path and status but never a query
// string or an Authorization header, fatal start errors follow LOG_FORMAT=json, a Redis outage
// is one warning per heartbeat and one line when Redis is back (with its own series), and every
// series the Grafana dashboard in docs/ queries is exported.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import {
  describe, it, before, after, BIN, startGateway, connectAndRegistered, ack, until, sleep, uid,
} from "./fixture.mjs";
import { RedisServer, stablePort, requireRedis, redisUrl, deleteRedisPrefix, postNotification } from "./cluster-fixture.mjs";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const SECRET = "w".repeat(48);

async function scrape(gw) {
  const res = await fetch(`${gw.url}/metrics`, { signal: AbortSignal.timeout(5000) });
  assert.equal(res.status, 200);
  return res.text();
}

// name{labels} value → [{ name, labels, value }]; and the HELP / TYPE lines by name.
function parseMetrics(text) {
  const samples = [];
  const help = new Set();
  const types = new Map();
  for (const line of text.split("\n")) {
    if (line.startsWith("# HELP ")) help.add(line.split(" ")[2]);
    else if (line.startsWith("# TYPE ")) types.set(line.split(" ")[2], line.split(" ")[3]);
    else if (line.trim() && !line.startsWith("#")) {
      const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/);
      assert.ok(m, `a sample line that does not parse: ${line}`);
      samples.push({ name: m[1], labels: m[2] ?? "", value: Number(m[3]) });
    }
  }
  return { samples, help, types };
}

const value = (parsed, name, labels = "") =>
  parsed.samples.find((s) => s.name === name && (labels === "" ? s.labels === "" : s.labels.includes(labels)))?.value;

// The JSON log lines of a gateway's output (LOG_FORMAT=json).
const jsonLines = (text) =>
  text
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l));

describe("metrics from the start", () => {
  let gw;
  before(async () => {
    gw = await startGateway();
  });
  after(() => gw?.stop());

  it("every series has HELP and TYPE, label-free ones are at zero, process and build info are there", async () => {
    const parsed = parseMetrics(await scrape(gw));
    for (const name of parsed.types.keys()) assert.ok(parsed.help.has(name), `${name} has no HELP line`);
    for (const name of [
      "sio_connections", "sio_connects_total", "sio_disconnects_total", "sio_notifications_created_total",
      "sio_notifications_delivered_total", "sio_notification_gaps_total", "sio_notifications_repaired_total",
      "sio_repair_poll_failures_total", "sio_admin_events_dropped_total", "sio_webhooks_pending",
    ]) {
      assert.equal(value(parsed, name), 0, `${name} 0 before anything happened`);
      assert.ok(parsed.help.has(name), `${name} HELP`);
    }
    for (const reason of ["missing_token", "invalid_token", "token_expired", "too_many_connections", "too_many_user_connections"]) {
      assert.equal(value(parsed, "sio_connect_refusals_total", `reason="${reason}"`), 0, reason);
    }
    for (const event of ["joinRoom", "sendMessage", "markRead"]) {
      assert.equal(value(parsed, "sio_events_total", `event="${event}",outcome="ok"`), 0, event);
    }
    // No Redis configured: no Redis series (an absent Redis is not a Redis that is down).
    assert.equal(value(parsed, "sio_redis_up"), undefined);
    // Process metrics.
    assert.ok(value(parsed, "process_resident_memory_bytes") > 1e6, "resident memory");
    assert.ok(value(parsed, "process_open_fds") > 0, "open fds");
    assert.ok(value(parsed, "process_threads") >= 1, "threads");
    assert.ok(Math.abs(value(parsed, "process_start_time_seconds") - Date.now() / 1000) < 600, "start time");
    assert.ok(parsed.samples.some((s) => s.name === "process_cpu_seconds_total"));
    // Build info: the crate's version and the commit the binary was built from.
    const version = fs.readFileSync(path.join(repo, "Cargo.toml"), "utf8").match(/^version = "([^"]+)"/m)[1];
    const commit = execFileSync("git", ["rev-parse", "--short=12", "HEAD"], { cwd: repo, encoding: "utf8" }).trim();
    const info = parsed.samples.find((s) => s.name === "sio_build_info");
    assert.ok(info, "sio_build_info");
    assert.equal(info.value, 1);
    assert.match(info.labels, new RegExp(`version="${version.replaceAll(".", "\\.")}"`));
    assert.match(info.labels, new RegExp(`git_commit="${commit}"`), `built from HEAD (${commit}); rebuild if stale`);
  });
});

describe("logs", () => {
  it("the access log names method, path, status and latency, never a query string or a header", async () => {
    const gw = await startGateway({ LOG_FORMAT: "json" });
    try {
      const marker = `SEKRET${uid()}`;
      await fetch(`${gw.url}/healthz?token=${marker}q`, { headers: { authorization: `Bearer ${marker}h` } });
      await fetch(`${gw.url}/api/notifications?key=${marker}k`, {
        method: "POST",
        headers: { authorization: `Bearer ${marker}a`, "content-type": "application/json" },
        body: "{}",
      });
      // A polling handshake with a token in the query (legacy clients do this).
      await fetch(`${gw.url}/socket.io/?EIO=4&transport=polling&token=${marker}p`);
      await until(() => jsonLines(gw.logs()).filter((l) => l.target === "tower_http::trace::on_response").length >= 3,
        5000, "three access log lines");
      const lines = jsonLines(gw.logs()).filter((l) => l.target === "tower_http::trace::on_response");
      const health = lines.find((l) => l.span?.path === "/healthz");
      assert.ok(health, `a line for /healthz: ${JSON.stringify(lines)}`);
      assert.equal(health.level, "INFO");
      assert.equal(health.span.method, "GET");
      assert.equal(health.status, 200);
      assert.match(String(health.latency), /\d/);
      const refused = lines.find((l) => l.span?.path === "/api/notifications");
      assert.equal(refused.status, 401);
      assert.ok(lines.some((l) => l.span?.path === "/socket.io/"), "the polling handshake");
      assert.ok(!gw.logs().includes(marker), "no query string or header value in any log line");
    } finally {
      await gw.stop();
    }
  });

  it("fatal start errors follow LOG_FORMAT=json (configuration: exit 2; port in use: exit 1)", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sio-obs-"));
    const env = { PATH: process.env.PATH, HOME: process.env.HOME, LOG_FORMAT: "json", JWT_SECRET: SECRET, DATABASE_URL: `sqlite://${path.join(dir, "g.db")}` };
    try {
      const bad = spawnSync(BIN, ["serve"], { cwd: dir, env: { ...env, PORT: "not-a-port" }, encoding: "utf8", timeout: 10000 });
      assert.equal(bad.status, 2);
      const [line, ...rest] = bad.stderr.trim().split("\n");
      assert.deepEqual(rest, [], "one line");
      const fatal = JSON.parse(line);
      assert.equal(fatal.level, "ERROR");
      assert.match(fatal.message, /PORT/);
      assert.match(fatal.timestamp, /^\d{4}-\d\d-\d\dT/);
      // The text form stays as it was.
      const text = spawnSync(BIN, ["serve"], { cwd: dir, env: { ...env, LOG_FORMAT: "text", PORT: "not-a-port" }, encoding: "utf8", timeout: 10000 });
      assert.equal(text.status, 2);
      assert.match(text.stderr, /^sio-gateway: configuration error: PORT/);

      const holder = http.createServer();
      await new Promise((r) => holder.listen(0, "127.0.0.1", r));
      try {
        const busy = spawnSync(BIN, ["serve"], {
          cwd: dir, env: { ...env, HOST: "127.0.0.1", PORT: String(holder.address().port) }, encoding: "utf8", timeout: 20000,
        });
        assert.equal(busy.status, 1, busy.stderr);
        const last = jsonLines(busy.stderr).at(-1);
        assert.equal(last.level, "ERROR");
        assert.match(last.message, /cannot listen/);
        for (const l of busy.stderr.trim().split("\n")) assert.doesNotThrow(() => JSON.parse(l), `a JSON line: ${l}`);
      } finally {
        holder.close();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("a Redis outage", () => {
  let redis;
  let gw;
  before(async () => {
    redis = new RedisServer(await stablePort());
    await redis.start();
    gw = await startGateway({
      REDIS_URL: redis.url, REDIS_PREFIX: `sio-obs-${uid()}`, LOG_FORMAT: "json", EVENT_RATE_PER_SEC: "1000", EVENT_BURST: "1000",
    });
  });
  after(async () => {
    await gw?.stop();
    await redis?.stop("SIGKILL");
  });

  it("is one warning per heartbeat and one line when Redis is back, with its own series", async () => {
    const start = parseMetrics(await scrape(gw));
    assert.equal(value(start, "sio_redis_up"), 1);
    assert.equal(value(start, "sio_redis_reconnects_total"), 0);
    assert.equal(value(start, "sio_redis_heartbeat_failures_total"), 0);
    for (const name of ["sio_redis_up", "sio_redis_reconnects_total", "sio_redis_heartbeat_failures_total", "sio_redis_messages_lost_total"]) {
      assert.ok(start.help.has(name), `${name} HELP`);
    }
    const room = `obs-${uid()}`;
    const { socket } = await connectAndRegistered(gw, { auth: { token: gw.token("alice") } });
    assert.equal((await ack(socket, "joinRoom", { roomId: room })).ok, true);

    const before = gw.logs().length;
    await redis.stop("SIGKILL");
    const outageStart = Date.now();
    // Six seconds of traffic that publishes (messages) and asks the cluster (members).
    let sent = 0;
    while (Date.now() - outageStart < 6000) {
      const res = await ack(socket, "sendMessage", { roomId: room, text: `m${sent}` }, 8000);
      assert.equal(res.ok, true, JSON.stringify(res));
      sent++;
      if (sent % 5 === 0) await ack(socket, "getRoomMembers", { roomId: room }, 8000);
      await sleep(100);
    }
    await until(async () => value(parseMetrics(await scrape(gw)), "sio_redis_up") === 0, 5000, "sio_redis_up 0");
    await redis.start();
    const outageSecs = (Date.now() - outageStart) / 1000;
    await until(() => gw.logs().slice(before).includes("redis answers again"), 10000, "the line saying Redis is back");
    const lines = jsonLines(gw.logs().slice(before));
    const warnings = lines.filter((l) => l.level === "WARN");
    const heartbeats = Math.ceil(outageSecs / 2) + 2;
    assert.ok(sent >= 30, `traffic during the outage: ${sent} messages`);
    assert.ok(warnings.length >= 1, "the outage is said");
    assert.ok(warnings.length <= heartbeats, `${warnings.length} warnings for ${sent} messages over ${outageSecs} s: ${JSON.stringify(warnings)}`);
    assert.ok(warnings.every((w) => w.message.startsWith("redis does not answer")), JSON.stringify(warnings));
    assert.ok(warnings.some((w) => w.local_only_answers > 0), "the questions answered locally are counted in the warning");
    assert.equal(lines.filter((l) => l.message === "redis answers again").length, 1);
    const end = parseMetrics(await scrape(gw));
    assert.equal(value(end, "sio_redis_up"), 1);
    assert.equal(value(end, "sio_redis_reconnects_total"), 1);
    assert.ok(value(end, "sio_redis_heartbeat_failures_total") >= 1);
    assert.ok(value(end, "sio_redis_heartbeat_failures_total") <= heartbeats);
    socket.close();
  });
});

describe("the Grafana dashboard (docs/grafana-dashboard.json)", () => {
  let gw;
  let hooks;
  let backend;
  const prefix = `sio-obs-dash-${uid()}`;
  before(async () => {
    await requireRedis();
    // A webhook receiver and a proxy backend that accept everything (this test is about series).
    hooks = http.createServer((req, res) => req.resume().on("end", () => res.writeHead(200).end("{}")));
    backend = http.createServer((req, res) => req.resume().on("end", () => {
      res.writeHead(200, { "content-type": "application/json" }).end('{"data":{"ok":true}}');
    }));
    await Promise.all([hooks, backend].map((s) => new Promise((r) => s.listen(0, "127.0.0.1", r))));
    gw = await startGateway({
      REDIS_URL: redisUrl(), REDIS_PREFIX: prefix,
      WEBHOOK_URL: `http://127.0.0.1:${hooks.address().port}/hooks`, WEBHOOK_SECRET: SECRET,
      PROXY_URL: `http://127.0.0.1:${backend.address().port}/events`, PROXY_SECRET: createHmac("sha256", "k").update(randomBytes(8)).digest("hex"),
      PROXY_EVENTS: "order.place",
    });
  });
  after(async () => {
    await gw?.stop();
    hooks?.close();
    backend?.close();
    await deleteRedisPrefix(redisUrl(), prefix);
  });

  it("queries only series the gateway exports", async () => {
    const dash = JSON.parse(fs.readFileSync(path.join(repo, "docs", "grafana-dashboard.json"), "utf8"));
    const exprs = [];
    const walk = (panels) => {
      for (const p of panels) {
        for (const t of p.targets ?? []) exprs.push(t.expr);
        walk(p.panels ?? []);
      }
    };
    walk(dash.panels);
    assert.ok(exprs.length >= 20, `${exprs.length} queries`);
    const names = new Set();
    for (const e of exprs) {
      for (const m of e.matchAll(/\b((?:sio|http|process)_[a-z_]+)\b/g)) names.add(m[1]);
    }
    assert.ok(names.size >= 20, [...names].join(" "));

    // Some traffic, so that the series whose labels come with their first use exist.
    const room = `dash-${uid()}`;
    const { socket } = await connectAndRegistered(gw, { auth: { token: gw.token("dana") } });
    assert.equal((await ack(socket, "joinRoom", { roomId: room })).ok, true);
    assert.equal((await ack(socket, "sendMessage", { roomId: room, text: "hi" })).ok, true);
    assert.equal((await ack(socket, "order.place", { sku: "x" })).ok, true);
    assert.equal((await postNotification(gw, { userId: "dana", type: "t", title: "T", message: "m" })).status, 201);
    let parsed;
    await until(async () => {
      parsed = parseMetrics(await scrape(gw));
      return value(parsed, "sio_webhook_deliveries_total", 'outcome="delivered"') > 0;
    }, 10000, "a webhook delivered");
    const exported = new Set(parsed.samples.map((s) => s.name.replace(/_(bucket|sum|count)$/, "")));
    for (const s of parsed.samples) exported.add(s.name);
    const missing = [...names].filter((n) => !exported.has(n));
    assert.deepEqual(missing, [], `queried by the dashboard but not exported: ${missing.join(", ")}`);
    for (const n of names) {
      const family = parsed.help.has(n) ? n : n.replace(/_(bucket|sum|count)$/, "");
      assert.ok(parsed.help.has(family), `${n} has a HELP line`);
    }
    socket.close();
  });
});
