#!/usr/bin/env node
// bench/webhooks.mjs: what webhooks (contract 10.3) cost, measured from the outside.
//
// (a) Overhead. Rounds alternate webhooks off, on, off, on … (a fresh gateway and database per
//     round, same binary, same machine). Each round measures
//       connect rate   N handshakes (TCP + WebSocket + CONNECT with a JWT + `registered`), K in
//                      flight, each socket closed once registered: with webhooks on, every
//                      handshake is a `user.online` and every close a `user.offline`;
//       sendMessage    S sockets in rooms of G, R `sendMessage`/s for T s, ack round trip
//                      (with webhooks on, each message also stores `message.created` in its
//                      transaction, and the delivery loop POSTs it);
//     with the gateway's CPU time per connect and per message. "On" points WEBHOOK_URL at a
//     local node:http receiver (a child process) that checks every signature and answers 200.
// (b) Backlog drain. With the receiver down, B events wait in the outbox (rows inserted into
//     the SQLite table `webhook_outbox` by python3's sqlite3, as the gateway writes them, due
//     an hour later); the receiver comes up, every row is made due at once, and the time until
//     the receiver has all B is measured (events/s), with sio_webhooks_pending sampled from
//     /metrics. With --outage-secs S the rows are due at once instead while the receiver is
//     down, so the gateway fails and reschedules them (1 s, 2 s, 4 s …) for S seconds before
//     the receiver comes back: the drain then includes waiting for the backoff.
//
// The client speaks Engine.IO v4 / Socket.IO v5 over WebSocket itself, on node:net (lighter
// than socket.io-client or `ws`, so more of its core is left to load the gateway). Pinned like
// the other scripts: the gateway on CPU 0, this client and the receiver on CPU 1 (--no-pin: unpinned).
// The receiver stands for a backend on other machines: it runs at nice 19, so that it takes
// the CPU the client leaves rather than a share of the client's (--receiver-nice 0: a share).
// Only 2 cores: the output gives each process's CPU use per phase, so a phase limited by the
// client can be told apart from one limited by the gateway.
//
//   node bench/webhooks.mjs                       # 3 rounds × (off, on), then a drain of 100 000
//   node bench/webhooks.mjs --quick               # smoke: small sizes, 1 round, drain of 2 000
//   node bench/webhooks.mjs --skip-drain --rounds 5
//   node bench/webhooks.mjs --skip-overhead --backlog 100000 --outage-secs 60
//   node bench/webhooks.mjs --help
//
// Needs `npm ci` in client-tests/ (its fixture signs the JWTs) and python3 (its
// sqlite3 module) for the drain. The gateway binary is SIO_GATEWAY_BIN, default
// target/release/sio-gateway. 127.0.0.1 only. Prints one JSON line, then tables. Exit status 1
// when an ack was not ok, a handshake failed, or the receiver saw a bad signature or did not get
// every event of the drain; 2 when the run could not be set up.

import { spawn, execFileSync } from 'node:child_process';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.dirname(HERE);
const CLIENT_TESTS = path.join(ROOT, 'client-tests');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => performance.now();

// ---------------------------------------------------------------------------------------------
// The receiver child: `node bench/webhooks.mjs --receiver` with PORT and WEBHOOK_SECRET.
// Verifies each signature (the cost a real receiver pays), counts new events and repeated ids,
// answers RECEIVER_STATUS (200) with RECEIVER_BODY ('{}'). GET /stats, POST /reset.

function receiverChild() {
  const secret = process.env.WEBHOOK_SECRET;
  const status = Number(process.env.RECEIVER_STATUS ?? 200);
  const answer = process.env.RECEIVER_BODY ?? '{}';
  const delayMs = Number(process.env.RECEIVER_DELAY_MS ?? 0);
  let seen = new Set();
  const fresh = () => ({ calls: 0, events: 0, duplicates: 0, bad_signatures: 0, connections: 0, by_type: {}, last_at_ms: null });
  let stats = fresh();
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      if (req.method === 'GET') {
        res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(stats));
        return;
      }
      if (req.url === '/reset') {
        stats = fresh();
        seen = new Set();
        res.writeHead(200).end('{}');
        return;
      }
      stats.calls++;
      const raw = Buffer.concat(chunks);
      const ts = String(req.headers['x-sio-timestamp'] ?? '');
      const given = Buffer.from(String(req.headers['x-sio-signature'] ?? ''));
      const mac = createHmac('sha256', secret).update(`${ts}.`).update(raw).digest('hex');
      const expected = Buffer.from(`sha256=${mac}`);
      if (given.length !== expected.length || !timingSafeEqual(given, expected) || Math.abs(Date.now() / 1000 - Number(ts)) > 300) {
        stats.bad_signatures++;
        res.writeHead(401, { 'Content-Type': 'application/json' }).end('{"error":{"code":"bad_signature","message":"refused"}}');
        return;
      }
      const event = JSON.parse(raw);
      if (seen.has(event.id)) stats.duplicates++;
      else {
        seen.add(event.id);
        stats.events++;
        stats.by_type[event.type] = (stats.by_type[event.type] ?? 0) + 1;
      }
      stats.last_at_ms = Date.now();
      const reply = () => res.writeHead(status, { 'Content-Type': 'application/json' }).end(answer);
      if (delayMs > 0) setTimeout(reply, delayMs);
      else reply();
    });
  });
  server.on('connection', () => stats.connections++);
  server.keepAliveTimeout = 65_000; // longer than the gateway's 60 s idle pool timeout
  server.listen(Number(process.env.PORT), '127.0.0.1', () => console.log(JSON.stringify({ listening: server.address().port })));
}

// ---------------------------------------------------------------------------------------------
// Options

function usage() {
  return `usage: node bench/webhooks.mjs [options]

  --quick                 smoke: 1 round, 500 connects, 100 sockets at 200/s for 3 s, drain of 2 000
  --rounds N              pairs of rounds (off, on) (default 3)
  --connects N            handshakes per round (default 20000: a phase of a few seconds; one of 1 s on a shared 2-core VM swings ±30 %)
  --in-flight K           handshakes in flight (default 100)
  --sockets S             sockets of the sendMessage phase (default 1000)
  --room-size G           sockets per room (default 10)
  --rate R                sendMessage/s, all sockets together (default 1000)
  --secs T                seconds of the sendMessage phase (default 10)
  --backlog B             events of the drain (default 100000)
  --outage-secs S         drain after S seconds of failed tries instead of all due at once (default 0)
  --receiver-status N     the receiver's answer status (default 200)
  --receiver-body TEXT    the receiver's answer body (default '{}'; '' for none)
  --receiver-delay-ms MS  the receiver answers after MS (default 0; 10000 or more: the gateway's
                          calls time out, so the "on" rounds measure storing the events without
                          their delivery; the rounds then do not wait for deliveries)
  --gateway-env K=V       an extra variable for every gateway started (repeatable; e.g.
                          DATABASE_MAX_CONNECTIONS=1)
  --skip-overhead         only the drain
  --skip-drain            only the overhead rounds
  --no-pin                do not pin with taskset
  --receiver-cpu N        the CPU the receiver is pinned to (default 1, beside this client; 0: beside the gateway)
  --receiver-nice N       start the receiver at nice N (default 19): it stands for a backend on
                          other machines, so it uses only the CPU the client and the gateway
                          leave instead of taking a share of theirs (0: an equal share)
  --json-only             print only the JSON line

  SIO_GATEWAY_BIN         the gateway binary (default target/release/sio-gateway)
`;
}

function parseArgs(argv) {
  const o = {
    quick: false, rounds: 3, connects: 20000, inFlight: 100, sockets: 1000, roomSize: 10, rate: 1000, secs: 10,
    backlog: 100000, outageSecs: 0, receiverStatus: 200, receiverBody: '{}', receiverDelayMs: 0, gatewayEnv: {}, overhead: true, drain: true, pin: true, receiverCpu: 1, receiverNice: 19,
    jsonOnly: false,
  };
  const set = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = (min = 1) => {
      const n = Number(argv[++i]);
      if (!Number.isFinite(n) || n < min) throw new Error(`${a}: expected a number ≥ ${min}`);
      return n;
    };
    switch (a) {
      case '-h': case '--help': o.help = true; break;
      case '--quick': o.quick = true; break;
      case '--rounds': set.rounds = Math.floor(num()); break;
      case '--connects': set.connects = Math.floor(num()); break;
      case '--in-flight': set.inFlight = Math.floor(num()); break;
      case '--sockets': set.sockets = Math.floor(num()); break;
      case '--room-size': set.roomSize = Math.floor(num()); break;
      case '--rate': set.rate = num(); break;
      case '--secs': set.secs = num(); break;
      case '--backlog': set.backlog = Math.floor(num()); break;
      case '--outage-secs': set.outageSecs = num(0); break;
      case '--receiver-status': o.receiverStatus = Math.floor(num(100)); break;
      case '--receiver-body': o.receiverBody = argv[++i] ?? ''; break;
      case '--receiver-delay-ms': o.receiverDelayMs = num(0); break;
      case '--gateway-env': {
        const kv = argv[++i] ?? '';
        if (!kv.includes('=')) throw new Error('--gateway-env: expected K=V');
        o.gatewayEnv[kv.slice(0, kv.indexOf('='))] = kv.slice(kv.indexOf('=') + 1);
        break;
      }
      case '--skip-overhead': o.overhead = false; break;
      case '--skip-drain': o.drain = false; break;
      case '--no-pin': o.pin = false; break;
      case '--receiver-cpu': set.receiverCpu = num(0); break;
      case '--receiver-nice': set.receiverNice = num(0); break;
      case '--json-only': o.jsonOnly = true; break;
      default: throw new Error(`unknown option ${a} (see --help)`);
    }
  }
  if (o.quick) Object.assign(o, { rounds: 1, connects: 500, inFlight: 50, sockets: 100, rate: 200, secs: 3, backlog: 2000 });
  return Object.assign(o, set); // explicit values win over --quick
}

// ---------------------------------------------------------------------------------------------
// Processes: killed when this process exits, however it exits.

const children = new Set();
process.on('exit', () => {
  for (const c of children) {
    try { c.kill('SIGKILL'); } catch { /* gone */ }
  }
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

function start(cmd, args, { env, cpu, pin, logFile, nice = 0 }) {
  const niced = nice > 0 ? ['nice', ['-n', String(nice), cmd, ...args]] : [cmd, args];
  const [file, argv] = pin ? ['taskset', ['-c', String(cpu), ...niced.flat()]] : niced;
  const child = spawn(file, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const proc = { child, out: '', exited: null };
  const log = logFile ? fs.createWriteStream(logFile) : null;
  child.stdout.on('data', (d) => { proc.out = (proc.out + d).slice(-20000); log?.write(d); });
  child.stderr.on('data', (d) => { proc.out = (proc.out + d).slice(-20000); log?.write(d); });
  proc.exited = new Promise((r) => child.on('exit', (code, signal) => { children.delete(child); r(code ?? signal); }));
  child.on('error', (e) => { proc.out += `\nspawn error: ${e.message}`; });
  return proc;
}

async function stop(proc, ms = 10000) {
  if (!children.has(proc.child)) return proc.exited;
  proc.child.kill('SIGTERM');
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), ms);
  const v = await proc.exited;
  clearTimeout(timer);
  return v;
}

async function until(cond, ms, what, proc) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (proc && !children.has(proc.child)) break;
    if (await cond()) return;
    await sleep(50);
  }
  throw new Error(`${what} not within ${ms} ms${proc ? `; output:\n${proc.out.slice(-4000)}` : ''}`);
}

// User+system CPU seconds of a process (/proc/<pid>/stat, clock ticks of 1/100 s).
function cpuSecs(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime (fields 14, 15)
  } catch {
    return null;
  }
}
const selfCpuSecs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

function sh(cmd, args) {
  try { return execFileSync(cmd, args, { encoding: 'utf8', timeout: 10000, stdio: ['ignore', 'pipe', 'ignore'] }).trim(); } catch { return null; }
}

// CPU use of several processes over a stretch of time, as % of one core.
function cpuMeter(pids) {
  const t0 = now();
  const c0 = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, pid === 'self' ? selfCpuSecs() : cpuSecs(pid)]));
  return () => {
    const secs = (now() - t0) / 1000;
    const out = { secs: r3(secs) };
    for (const [k, pid] of Object.entries(pids)) {
      const c1 = pid === 'self' ? selfCpuSecs() : cpuSecs(pid);
      out[k] = c0[k] == null || c1 == null ? null : { cpu_secs: r3(c1 - c0[k]), percent: Math.round(((c1 - c0[k]) / secs) * 1000) / 10 };
    }
    return out;
  };
}

const r3 = (x) => Math.round(x * 1000) / 1000;

// The 1-minute load average: other work on the machine during a phase shows here.
const loadavg = () => Number(fs.readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);

function latency(samples) {
  if (samples.length === 0) return { count: 0, p50_ms: null, p90_ms: null, p99_ms: null, max_ms: null, mean_ms: null };
  const s = Float64Array.from(samples).sort();
  const q = (p) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))];
  let sum = 0;
  for (const x of s) sum += x;
  return { count: s.length, p50_ms: r3(q(0.5)), p90_ms: r3(q(0.9)), p99_ms: r3(q(0.99)), max_ms: r3(s[s.length - 1]), mean_ms: r3(sum / s.length) };
}

const median = (xs) => {
  const s = xs.filter((x) => x != null).sort((a, b) => a - b);
  if (s.length === 0) return null;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

// The gateway's Prometheus text: webhook series.
async function webhookMetrics(url) {
  const out = { pending: null, deliveries: {} };
  try {
    const text = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(3000) }).then((r) => r.text());
    for (const line of text.split('\n')) {
      let m = /^sio_webhooks_pending\s+(\S+)/.exec(line);
      if (m) out.pending = Number(m[1]);
      m = /^sio_webhook_deliveries_total\{([^}]*)\}\s+(\S+)/.exec(line);
      if (m) {
        const outcome = /outcome="([^"]*)"/.exec(m[1])?.[1] ?? '?';
        out.deliveries[outcome] = (out.deliveries[outcome] ?? 0) + Number(m[2]);
      }
    }
  } catch { /* metrics unavailable: leave empty */ }
  return out;
}

// The gateway's own histogram of sendMessage handling time (receipt to ack): cumulative
// bucket counts by upper bound (seconds).
async function sendMessageBuckets(url) {
  const buckets = new Map();
  try {
    const text = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(3000) }).then((r) => r.text());
    for (const line of text.split('\n')) {
      const m = /^sio_event_duration_seconds_bucket\{([^}]*)\}\s+(\S+)/.exec(line);
      if (m && m[1].includes('event="sendMessage"')) buckets.set(/le="([^"]*)"/.exec(m[1])[1], Number(m[2]));
    }
  } catch { /* metrics unavailable */ }
  return buckets;
}

// p50 / p99 of the handling time between two scrapes, as the upper bound of the bucket each
// falls in ("≤ X ms"; the buckets are 0.1, 0.25, 0.5, 1, 2.5, 5, 10 … ms).
function bucketQuantiles(before, after) {
  const rows = [...after.entries()].map(([le, n]) => [le === '+Inf' ? Infinity : Number(le), n - (before.get(le) ?? 0)])
    .sort((a, b) => a[0] - b[0]);
  const total = rows.at(-1)?.[1] ?? 0;
  const q = (p) => {
    const hit = rows.find(([, n]) => n >= p * total);
    return hit ? (hit[0] === Infinity ? 'more' : r3(hit[0] * 1000)) : null;
  };
  return { count: total, p50_le_ms: q(0.5), p99_le_ms: q(0.99) };
}

// ---------------------------------------------------------------------------------------------
// A Socket.IO v5 client over one WebSocket, written on node:net: the HTTP upgrade, frames and
// Engine.IO packets by hand (handshake with a JWT, `registered`, pings, acks): about half the
// client CPU per handshake of the `ws` package (~440 µs against ~900 µs here), so that the one
// core the client has loads the gateway as far as it can. Frames from the client are
// masked with a zero key (the payload goes as is); the server's are read unmasked, unfragmented.

const WS_KEY = 'dGhlIHNhbXBsZSBub25jZQ=='; // any 16 bytes; the answer's accept key is not checked

function frame(text, opcode = 0x1) {
  const payload = Buffer.from(text);
  const n = payload.length;
  let head;
  if (n < 126) {
    head = Buffer.alloc(6);
    head[1] = 0x80 | n;
  } else if (n < 65536) {
    head = Buffer.alloc(8);
    head[1] = 0x80 | 126;
    head.writeUInt16BE(n, 2);
  } else {
    head = Buffer.alloc(14);
    head[1] = 0x80 | 127;
    head.writeBigUInt64BE(BigInt(n), 2);
  }
  head[0] = 0x80 | opcode;
  return Buffer.concat([head, payload]);
}
const CLOSE_FRAME = frame('', 0x8);

function openSocket(target, token, onEvent) {
  return new Promise((resolve, reject) => {
    const conn = net.connect({ host: target.host, port: target.port, noDelay: true });
    const sock = { conn, acks: new Map(), nextId: 1, closed: false };
    let buf = null;
    let upgraded = false;
    let settled = false;
    const fail = (e) => {
      if (!settled) {
        settled = true;
        clearTimeout(timer);
        reject(e);
      }
      conn.destroy();
    };
    const timer = setTimeout(() => fail(new Error('handshake timed out (20 s)')), 20000);
    const onText = (t) => {
      if (t === '2') return conn.write(frame('3'));
      if (t.startsWith('43')) {
        let i = 2;
        while (t.charCodeAt(i) >= 48 && t.charCodeAt(i) <= 57) i++;
        const id = Number(t.slice(2, i));
        const cb = sock.acks.get(id);
        if (cb) {
          sock.acks.delete(id);
          cb(JSON.parse(t.slice(i))[0]);
        }
        return;
      }
      if (t[0] === '0') return conn.write(frame(`40${JSON.stringify({ token })}`));
      if (t.startsWith('44')) return fail(new Error(`connect_error ${t.slice(2)}`));
      if (t.startsWith('42["registered"')) {
        if (!settled) {
          settled = true;
          clearTimeout(timer);
          resolve(sock);
        }
        return;
      }
      if (t.startsWith('42')) onEvent?.(t);
    };
    conn.on('connect', () => {
      conn.write(`GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: ${target.host}:${target.port}\r\n`
        + `Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    });
    conn.on('data', (chunk) => {
      buf = buf ? Buffer.concat([buf, chunk]) : chunk;
      if (!upgraded) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        if (!/^HTTP\/1\.1 101/.test(buf.toString('latin1', 0, 12))) return fail(new Error(`upgrade refused: ${buf.toString('latin1', 0, 40)}`));
        upgraded = true;
        buf = buf.subarray(end + 4);
      }
      while (buf.length >= 2) {
        const opcode = buf[0] & 0x0f;
        let len = buf[1] & 0x7f;
        let off = 2;
        if (len === 126) {
          if (buf.length < 4) break;
          len = buf.readUInt16BE(2);
          off = 4;
        } else if (len === 127) {
          if (buf.length < 10) break;
          len = Number(buf.readBigUInt64BE(2));
          off = 10;
        }
        if (buf.length < off + len) break;
        const text = opcode === 0x1 ? buf.toString('utf8', off, off + len) : null;
        buf = buf.subarray(off + len);
        if (text !== null) onText(text);
        else if (opcode === 0x8) conn.end();
      }
    });
    conn.on('error', (e) => fail(e));
    conn.on('close', () => {
      sock.closed = true;
      fail(new Error('closed before registered'));
      for (const cb of sock.acks.values()) cb({ ok: false, error: { code: 'closed' } });
      sock.acks.clear();
    });
  });
}

function emitWithAck(sock, event, arg, cb) {
  const id = sock.nextId++;
  sock.acks.set(id, cb);
  sock.conn.write(frame(`42${id}${JSON.stringify([event, arg])}`));
}

// Closes the WebSocket (a close frame, then the end of the TCP stream).
function closeSocket(sock) {
  if (!sock.closed) sock.conn.end(CLOSE_FRAME);
}

// ---------------------------------------------------------------------------------------------
// Phases

// N handshakes, K in flight; each socket closes once registered.
async function connectRate(ctx, { total, inFlight, tag }) {
  const tokens = Array.from({ length: total }, (_, i) => ctx.token(`c${tag}-${i}`));
  const lat = [];
  let failures = 0;
  let firstFailure = null;
  let next = 0;
  const meter = cpuMeter(ctx.pids);
  const t0 = now();
  const worker = async () => {
    while (next < total) {
      const i = next++;
      const t = now();
      try {
        const s = await openSocket(ctx.target, tokens[i]);
        lat.push(now() - t);
        closeSocket(s);
      } catch (e) {
        failures++;
        firstFailure ??= e.message;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, total) }, worker));
  const wall = (now() - t0) / 1000;
  const cpu = meter();
  return {
    total, in_flight: inFlight, ok: lat.length, failures, first_failure: firstFailure,
    wall_secs: r3(wall),
    connects_per_sec: Math.round(lat.length / wall),
    handshake: latency(lat),
    cpu,
    gateway_cpu_us_per_connect: cpu.gateway ? Math.round((cpu.gateway.cpu_secs * 1e6) / Math.max(1, lat.length)) : null,
  };
}

// S sockets in rooms of G; R sendMessage/s for T s; ack round trips.
async function sendPhase(ctx, sockets, { rate, secs, name }) {
  const total = Math.max(1, Math.round(rate * secs));
  const rtts = [];
  const codes = {};
  let sent = 0;
  let acked = 0;
  let ok = 0;
  let maxLagMs = 0;
  let allAcked;
  const done = new Promise((r) => (allAcked = r));
  const meter = cpuMeter(ctx.pids);
  const t0 = now();
  let next = 0;
  let lastSendAt = t0;
  await new Promise((resolve) => {
    const tick = () => {
      const t = now();
      const due = Math.min(total, Math.floor(((t - t0) / 1000) * rate) + 1);
      if (due > sent) maxLagMs = Math.max(maxLagMs, t - (t0 + (sent / rate) * 1000));
      while (sent < due) {
        const s = sockets[next];
        next = (next + 1) % sockets.length;
        const at = now();
        emitWithAck(s, 'sendMessage', { roomId: s.roomId, text: `bench ${sent}` }, (res) => {
          acked++;
          if (res?.ok === true) {
            ok++;
            rtts.push(now() - at);
          } else {
            const code = res?.error?.code ?? 'malformed';
            codes[code] = (codes[code] ?? 0) + 1;
          }
          if (acked === total) allAcked();
        });
        sent++;
      }
      lastSendAt = now();
      if (sent < total) setTimeout(tick, 1);
      else resolve();
    };
    tick();
  });
  const sendSecs = (lastSendAt - t0) / 1000;
  const drained = await Promise.race([done.then(() => true), sleep(10000).then(() => false)]);
  const cpu = meter();
  return {
    phase: name, sockets: sockets.length, target_rate: rate, secs, sent,
    achieved_send_rate: Math.round(sent / Math.max(sendSecs, 1e-3)),
    max_send_lag_ms: Math.round(maxLagMs * 10) / 10,
    acked, ok, errors: codes, not_acked: drained ? 0 : total - acked,
    rtt: latency(rtts),
    cpu,
    gateway_cpu_us_per_message: cpu.gateway ? Math.round((cpu.gateway.cpu_secs * 1e6) / Math.max(1, ok)) : null,
  };
}

// Waits until the receiver's count stops growing and the gateway reports nothing pending (the
// gauge is refreshed every 5 s), bounded; resolves with what it saw.
async function settleWebhooks(ctx, ms = 60000) {
  if (!ctx.receiverUrl || ctx.undeliverable) return null;
  const t0 = now();
  let last = -1;
  let stableSince = now();
  let stats;
  let metrics;
  while (now() - t0 < ms) {
    stats = await fetch(`${ctx.receiverUrl}/stats`).then((r) => r.json());
    metrics = await webhookMetrics(ctx.url);
    if (stats.events !== last) {
      last = stats.events;
      stableSince = now();
    }
    if (metrics.pending === 0 && now() - stableSince > 1500) break;
    await sleep(250);
  }
  return { waited_secs: r3((now() - t0) / 1000), receiver_events: stats.events, pending_gauge: metrics.pending };
}

// ---------------------------------------------------------------------------------------------
// The gateway

function gatewayEnv(o, dir, port, jwtSecret, webhooks) {
  const env = {
    ...o.baseEnv,
    PORT: String(port),
    HOST: '127.0.0.1',
    DATABASE_URL: `sqlite://${dir}/gw.db?mode=rwc`,
    JWT_SECRET: jwtSecret,
    API_KEYS: 'benchkey',
    RUST_LOG: 'warn',
    NO_COLOR: '1',
    EVENT_RATE_PER_SEC: '1000000',
    EVENT_BURST: '1000000',
    SOCKET_MAX_CONNECTIONS_PER_USER: '100000',
    SOCKET_MAX_TOTAL_CONNECTIONS: '1000000',
    IDLE_TIMEOUT_SECS: '0',
    ...o.gatewayEnv,
  };
  if (webhooks) Object.assign(env, { WEBHOOK_URL: webhooks.url, WEBHOOK_SECRET: webhooks.secret });
  return env;
}

async function startGateway(o, fx, { webhooks, label }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `sio-bench-webhooks-${label}-`));
  const port = await fx.freePort();
  const jwtSecret = randomBytes(24).toString('hex');
  const url = `http://127.0.0.1:${port}`;
  const gw = start(fx.BIN, ['serve'], {
    env: gatewayEnv(o, dir, port, jwtSecret, webhooks), cpu: 0, pin: o.pin, logFile: path.join(dir, 'gateway.log'),
  });
  await until(
    () => fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) }).then((r) => r.status === 200, () => false),
    15000, 'gateway /healthz 200', gw,
  );
  return { proc: gw, dir, url, target: { host: '127.0.0.1', port }, jwtSecret, db: path.join(dir, 'gw.db') };
}

async function startReceiver(o, port, secret) {
  const rec = start(process.execPath, [fileURLToPath(import.meta.url), '--receiver'], {
    env: {
      ...o.baseEnv, PORT: String(port), WEBHOOK_SECRET: secret,
      RECEIVER_STATUS: String(o.receiverStatus), RECEIVER_BODY: o.receiverBody, RECEIVER_DELAY_MS: String(o.receiverDelayMs),
    },
    cpu: o.receiverCpu, pin: o.pin, nice: o.receiverNice,
  });
  await until(() => rec.out.includes('"listening"'), 10000, 'receiver listening', rec);
  return rec;
}

// ---------------------------------------------------------------------------------------------
// (a) one round: a fresh gateway, webhooks off or on.

async function overheadRound(o, fx, { webhooks, receiver, round }) {
  const label = webhooks ? 'on' : 'off';
  const gw = await startGateway(o, fx, { webhooks: webhooks && { url: webhooks.url, secret: webhooks.secret }, label });
  const pids = { gateway: gw.proc.child.pid, client: 'self' };
  if (receiver) pids.receiver = receiver.child.pid;
  const ctx = {
    url: gw.url, target: gw.target, pids, receiverUrl: webhooks ? webhooks.base : null,
    undeliverable: o.receiverDelayMs >= 10000,
    token: (sub) => fx.token(sub, { secret: gw.jwtSecret, ttlSecs: 3600 }),
  };
  const sockets = [];
  const loadStart = loadavg();
  try {
    if (webhooks) await fetch(`${webhooks.base}/reset`, { method: 'POST' });
    const tag = `${round}${label}${randomBytes(2).toString('hex')}`;
    // A short warm-up (allocator, connection pools, the receiver's JIT), then the measure.
    await connectRate(ctx, { total: Math.min(200, o.connects), inFlight: o.inFlight, tag: `${tag}w` });
    await settleWebhooks(ctx);
    const connect = await connectRate(ctx, { total: o.connects, inFlight: o.inFlight, tag });
    const connectSettle = await settleWebhooks(ctx);

    // sendMessage: S sockets, rooms of G.
    for (let i = 0; i < o.sockets; i += 100) {
      const batch = [];
      for (let j = i; j < Math.min(o.sockets, i + 100); j++) {
        batch.push(openSocket(ctx.target, ctx.token(`s${tag}-${j}`)).then((s) => {
          s.roomId = `bench-${tag}-${Math.floor(j / o.roomSize)}`;
          return s;
        }));
      }
      sockets.push(...(await Promise.all(batch)));
    }
    for (let i = 0; i < sockets.length; i += 100) {
      await Promise.all(sockets.slice(i, i + 100).map((s) => new Promise((resolve, reject) => {
        emitWithAck(s, 'joinRoom', { roomId: s.roomId }, (res) => (res?.ok ? resolve() : reject(new Error(`joinRoom: ${JSON.stringify(res)}`))));
      })));
    }
    await settleWebhooks(ctx);
    await sleep(500);
    await sendPhase(ctx, sockets, { rate: Math.min(o.rate, 500), secs: 1, name: 'warmup' });
    await settleWebhooks(ctx);
    const bucketsBefore = await sendMessageBuckets(gw.url);
    const send = await sendPhase(ctx, sockets, { rate: o.rate, secs: o.secs, name: 'sendMessage' });
    send.gateway_time = bucketQuantiles(bucketsBefore, await sendMessageBuckets(gw.url));
    const sendSettle = await settleWebhooks(ctx);
    const metrics = await webhookMetrics(gw.url);
    const receiverStats = webhooks ? await fetch(`${webhooks.base}/stats`).then((r) => r.json()) : null;
    return {
      round, webhooks: label, loadavg_start: loadStart, loadavg_end: loadavg(),
      connect, connect_settle: connectSettle, send, send_settle: sendSettle,
      webhook_deliveries: metrics.deliveries, receiver: receiverStats,
    };
  } finally {
    for (const s of sockets) s.conn.destroy();
    await sleep(200);
    await stop(gw.proc);
    fs.rmSync(gw.dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// (b) the drain

// Inserts `count` rows into webhook_outbox as the gateway writes them (message.created, a
// UUIDv7 id, RFC 3339 createdAt), due at `dueMs`, in one transaction; resolves with the time it took.
function insertBacklog(db, count, dueMs) {
  const py = `
import json, os, sqlite3, sys, time
db, count, due = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def uuid7(ms):
    r = int.from_bytes(os.urandom(10), "big")
    v = (ms << 80) | (0x7 << 76) | ((r >> 68) & 0xFFF) << 64 | (0b10 << 62) | (r & ((1 << 62) - 1))
    h = f"{v:032x}"
    return f"{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"
def iso(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"
con = sqlite3.connect(db, timeout=30)
t0 = time.time()
now = int(time.time() * 1000)
rows = []
for i in range(count):
    ms = now - count + i  # distinct, increasing times in the past
    mid = uuid7(ms)
    data = json.dumps({"id": mid, "roomId": "bench-drain", "userId": f"u{i % 1000}", "text": f"backlog message {i}", "createdAt": iso(ms)}, separators=(",", ":"))
    rows.append((uuid7(ms), "message.created", iso(ms), data, due))
with con:
    con.executemany("INSERT INTO webhook_outbox (id, type, created_at, data, next_attempt_at) VALUES (?, ?, ?, ?, ?)", rows)
print(json.dumps({"inserted": count, "secs": round(time.time() - t0, 3)}))
`;
  const out = execFileSync('python3', ['-c', py, db, String(count), String(dueMs)], { encoding: 'utf8', timeout: 600000 });
  return JSON.parse(out.trim().split('\n').pop());
}

function sqlite(db, sql) {
  const py = `
import sqlite3, sys, json, time
con = sqlite3.connect(sys.argv[1], timeout=30)
t0 = time.time()
with con:
    cur = con.execute(sys.argv[2])
    rows = cur.fetchall()
print(json.dumps({"rows": rows, "changes": con.total_changes, "secs": round(time.time() - t0, 3)}))
`;
  return JSON.parse(execFileSync('python3', ['-c', py, db, sql], { encoding: 'utf8', timeout: 600000 }).trim());
}

async function drain(o, fx) {
  const secret = randomBytes(32).toString('hex');
  const port = await fx.freePort();
  const base = `http://127.0.0.1:${port}`;
  const gw = await startGateway(o, fx, { webhooks: { url: `${base}/webhooks`, secret }, label: 'drain' });
  let receiver = null;
  try {
    const B = o.backlog;
    const loadStart = loadavg();
    // The outage: the receiver is down; B events wait.
    const outage = o.outageSecs > 0;
    const inserted = insertBacklog(gw.db, B, outage ? Date.now() : Date.now() + 3600_000);
    let outageInfo = null;
    if (outage) {
      const meter = cpuMeter({ gateway: gw.proc.child.pid });
      await sleep(o.outageSecs * 1000);
      const attempts = sqlite(gw.db, 'SELECT attempts, COUNT(*) FROM webhook_outbox WHERE done_at IS NULL GROUP BY attempts ORDER BY attempts').rows;
      outageInfo = { secs: o.outageSecs, cpu: meter(), attempts_histogram: Object.fromEntries(attempts), deliveries: (await webhookMetrics(gw.url)).deliveries };
    }
    await sleep(5500); // the pending gauge is refreshed every 5 s
    const before = await webhookMetrics(gw.url);
    receiver = await startReceiver(o, port, secret);
    const pids = { gateway: gw.proc.child.pid, receiver: receiver.child.pid };
    const meter = cpuMeter(pids);
    const t0 = now();
    let made = null;
    if (!outage) made = sqlite(gw.db, `UPDATE webhook_outbox SET next_attempt_at = ${Date.now()} WHERE done_at IS NULL`);
    const samples = [];
    let stats = { events: 0 };
    let lastSample = -1e9;
    const limitMs = Math.max(120000, B * 5 + o.outageSecs * 1000 + 330000);
    while (now() - t0 < limitMs) {
      stats = await fetch(`${base}/stats`).then((r) => r.json());
      if (now() - lastSample >= 1000) {
        lastSample = now();
        samples.push({ t_secs: r3((now() - t0) / 1000), received: stats.events, pending_gauge: (await webhookMetrics(gw.url)).pending });
      }
      if (stats.events >= B) break;
      await sleep(50);
    }
    const secs = (now() - t0) / 1000;
    const cpu = meter();
    await sleep(5500);
    const after = await webhookMetrics(gw.url);
    return {
      loadavg_start: loadStart, loadavg_end: loadavg(),
      backlog: B, mode: outage ? `after ${o.outageSecs} s of failed tries` : 'all due at once',
      insert: inserted, made_due: made && { secs: made.secs },
      outage: outageInfo,
      pending_gauge_before: before.pending,
      received: stats.events, duplicates: stats.duplicates, bad_signatures: stats.bad_signatures, calls: stats.calls,
      receiver_connections: stats.connections,
      secs: r3(secs), events_per_sec: Math.round(stats.events / secs),
      cpu,
      gateway_cpu_us_per_event: cpu.gateway ? Math.round((cpu.gateway.cpu_secs * 1e6) / Math.max(1, stats.events)) : null,
      pending_gauge_after: after.pending,
      deliveries: after.deliveries,
      samples,
    };
  } finally {
    if (receiver) await stop(receiver);
    await stop(gw.proc);
    fs.rmSync(gw.dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Main

async function main() {
  let o;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error(`${e.message}\n\n${usage()}`);
    process.exit(2);
  }
  if (o.help) {
    console.log(usage());
    return;
  }
  const log = (...a) => { if (!o.jsonOnly) console.error(...a); };

  let fx;
  try {
    fx = await import(path.join(CLIENT_TESTS, 'fixture.mjs'));
  } catch (e) {
    console.error(`bench/webhooks.mjs uses client-tests/ (the JWT signer, free ports): run \`npm ci\` in ${CLIENT_TESTS} first (${e.message})`);
    process.exit(2);
  }
  if (!fs.existsSync(fx.BIN)) {
    console.error(`${fx.BIN} not found: cargo build --release, or set SIO_GATEWAY_BIN`);
    process.exit(2);
  }
  if (o.drain && sh('python3', ['-c', 'import sqlite3']) === null) {
    console.error('the drain needs python3 with its sqlite3 module (or --skip-drain)');
    process.exit(2);
  }
  if (o.pin && sh('taskset', ['-c', '0', 'true']) === null) {
    log('taskset not working: running unpinned');
    o.pin = false;
  }
  const ncpu = os.availableParallelism?.() ?? os.cpus().length;
  if (o.pin && ncpu < 2) {
    log('fewer than 2 CPUs: running unpinned');
    o.pin = false;
  }
  if (o.pin) sh('taskset', ['-a', '-p', '-c', '1', String(process.pid)]); // this client on CPU 1
  o.baseEnv = {};
  for (const k of ['PATH', 'HOME', 'LANG', 'TMPDIR']) if (process.env[k] !== undefined) o.baseEnv[k] = process.env[k];

  const cpuModel = /model name\s*:\s*(.*)/.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? null;
  const result = {
    bench: 'webhooks',
    date: new Date().toISOString(),
    binary: fx.BIN,
    binary_mtime: fs.statSync(fx.BIN).mtime.toISOString(),
    git_commit: sh('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']),
    git_dirty_src: (sh('git', ['-C', ROOT, 'status', '--porcelain', '--', 'src', 'migrations', 'Cargo.toml', 'Cargo.lock']) ?? '') !== '',
    machine: {
      cpus: ncpu, cpu_model: cpuModel, node: process.version,
      pinning: o.pin ? `gateway on CPU 0; client (this process) on CPU 1; receiver on CPU ${o.receiverCpu}${o.receiverNice ? ` at nice ${o.receiverNice}` : ''}` : `none (--no-pin)${o.receiverNice ? `; receiver at nice ${o.receiverNice}` : ''}`,
    },
    config: {
      rounds: o.rounds, connects: o.connects, in_flight: o.inFlight, sockets: o.sockets, room_size: o.roomSize,
      rate: o.rate, secs: o.secs, backlog: o.backlog, outage_secs: o.outageSecs, gateway_env: o.gatewayEnv,
      receiver: `node:http, verifies the signature, answers ${o.receiverStatus} ${JSON.stringify(o.receiverBody)}${o.receiverDelayMs ? ` after ${o.receiverDelayMs} ms` : ''}`,
      quick: o.quick,
    },
    rounds: [],
    summary: null,
    drain: null,
  };
  let failed = false;
  const rec = { receiver: null };
  try {
    if (o.overhead) {
      const secret = randomBytes(32).toString('hex');
      const port = await fx.freePort();
      const base = `http://127.0.0.1:${port}`;
      rec.receiver = await startReceiver(o, port, secret);
      const webhooks = { url: `${base}/webhooks`, base, secret };
      for (let r = 0; r < o.rounds; r++) {
        for (const on of [false, true]) {
          log(`round ${r + 1}/${o.rounds}, webhooks ${on ? 'on' : 'off'}…`);
          const res = await overheadRound(o, fx, { webhooks: on ? webhooks : null, receiver: on ? rec.receiver : null, round: r + 1 });
          log(`  connect ${res.connect.connects_per_sec}/s (p99 ${res.connect.handshake.p99_ms} ms, gateway ${res.connect.gateway_cpu_us_per_connect} µs/connect, client ${res.connect.cpu.client?.percent}% CPU); `
            + `sendMessage p50 ${res.send.rtt.p50_ms} p99 ${res.send.rtt.p99_ms} ms (gateway ${res.send.gateway_cpu_us_per_message} µs/message; `
          + `its own handling time p50 ≤ ${res.send.gateway_time?.p50_le_ms} p99 ≤ ${res.send.gateway_time?.p99_le_ms} ms)`);
          result.rounds.push(res);
          if (res.connect.failures > 0 || res.send.ok !== res.send.sent) failed = true;
          if (res.receiver?.bad_signatures) failed = true;
        }
      }
      await stop(rec.receiver);
      result.summary = summarize(result.rounds);
    }
    if (o.drain) {
      log(`drain: ${o.backlog} events${o.outageSecs ? ` after ${o.outageSecs} s of outage` : ', all due at once'}…`);
      result.drain = await drain(o, fx);
      log(`  ${result.drain.received}/${result.drain.backlog} in ${result.drain.secs} s: ${result.drain.events_per_sec} events/s`);
      if (result.drain.received < result.drain.backlog || result.drain.bad_signatures) failed = true;
    }
  } catch (e) {
    console.error(`setup or run failed: ${e.stack ?? e.message}`);
    console.log(JSON.stringify(result));
    process.exit(2);
  } finally {
    if (rec.receiver) await stop(rec.receiver);
  }
  console.log(JSON.stringify(result));
  if (!o.jsonOnly) printTables(result);
  process.exit(failed ? 1 : 0);
}

function summarize(rounds) {
  const pick = (mode, f) => rounds.filter((r) => r.webhooks === mode).map(f);
  const metrics = {
    connects_per_sec: (r) => r.connect.connects_per_sec,
    handshake_p99_ms: (r) => r.connect.handshake.p99_ms,
    gateway_cpu_us_per_connect: (r) => r.connect.gateway_cpu_us_per_connect,
    client_cpu_percent_connect: (r) => r.connect.cpu.client?.percent,
    send_p50_ms: (r) => r.send.rtt.p50_ms,
    send_p99_ms: (r) => r.send.rtt.p99_ms,
    gateway_cpu_us_per_message: (r) => r.send.gateway_cpu_us_per_message,
  };
  const out = {};
  for (const [k, f] of Object.entries(metrics)) {
    const off = pick('off', f);
    const on = pick('on', f);
    const m = (xs) => (median(xs) == null ? null : r3(median(xs)));
    out[k] = { off: m(off), on: m(on), off_rounds: off, on_rounds: on };
  }
  out.connect_rate_on_over_off = out.connects_per_sec.off ? r3(out.connects_per_sec.on / out.connects_per_sec.off) : null;
  out.send_p99_on_minus_off_ms = out.send_p99_ms.on != null && out.send_p99_ms.off != null ? r3(out.send_p99_ms.on - out.send_p99_ms.off) : null;
  out.send_p50_on_minus_off_ms = out.send_p50_ms.on != null && out.send_p50_ms.off != null ? r3(out.send_p50_ms.on - out.send_p50_ms.off) : null;
  return out;
}

function table(headers, rows) {
  const cells = [headers, ...rows.map((r) => r.map((v) => String(v ?? '—')))];
  const widths = headers.map((_, i) => Math.max(...cells.map((c) => c[i].length)));
  const line = (c) => `| ${c.map((v, i) => v.padEnd(widths[i])).join(' | ')} |`;
  return [line(cells[0]), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...cells.slice(1).map(line)].join('\n');
}

function printTables(r) {
  console.log('');
  console.log(`webhooks benchmark: ${r.machine.cpus} cores (${r.machine.pinning}); ${r.git_commit}${r.git_dirty_src ? ' (src dirty)' : ''}`);
  if (r.rounds.length) {
    console.log('');
    console.log(table(
      ['round', 'webhooks', 'load', 'connects/s', 'handshake p50 / p99 ms', 'gw µs/connect', 'gw % / client % (connect)', 'send p50 / p99 ms', 'gw µs/message', 'gw % / client % (send)', 'delivered'],
      r.rounds.map((x) => [
        x.round, x.webhooks, `${x.loadavg_start}→${x.loadavg_end}`, x.connect.connects_per_sec, `${x.connect.handshake.p50_ms} / ${x.connect.handshake.p99_ms}`,
        x.connect.gateway_cpu_us_per_connect, `${x.connect.cpu.gateway?.percent} / ${x.connect.cpu.client?.percent}`,
        `${x.send.rtt.p50_ms} / ${x.send.rtt.p99_ms}`, x.send.gateway_cpu_us_per_message,
        `${x.send.cpu.gateway?.percent} / ${x.send.cpu.client?.percent}`,
        x.receiver ? x.receiver.events : '—',
      ]),
    ));
    const s = r.summary;
    console.log('');
    console.log(table(
      ['median', 'off', 'on', 'on/off'],
      [
        ['connects/s', s.connects_per_sec.off, s.connects_per_sec.on, s.connect_rate_on_over_off],
        ['handshake p99 ms', s.handshake_p99_ms.off, s.handshake_p99_ms.on, ''],
        ['gateway µs CPU / connect', s.gateway_cpu_us_per_connect.off, s.gateway_cpu_us_per_connect.on, s.gateway_cpu_us_per_connect.off ? r3(s.gateway_cpu_us_per_connect.on / s.gateway_cpu_us_per_connect.off) : ''],
        ['sendMessage p50 ms', s.send_p50_ms.off, s.send_p50_ms.on, `${s.send_p50_on_minus_off_ms} ms`],
        ['sendMessage p99 ms', s.send_p99_ms.off, s.send_p99_ms.on, `${s.send_p99_on_minus_off_ms} ms`],
        ['gateway µs CPU / message', s.gateway_cpu_us_per_message.off, s.gateway_cpu_us_per_message.on, s.gateway_cpu_us_per_message.off ? r3(s.gateway_cpu_us_per_message.on / s.gateway_cpu_us_per_message.off) : ''],
      ],
    ));
  }
  if (r.drain) {
    const d = r.drain;
    console.log('');
    console.log(`drain (${d.mode}): ${d.received}/${d.backlog} events in ${d.secs} s = ${d.events_per_sec} events/s; `
      + `gateway ${d.cpu.gateway?.percent}% CPU (${d.gateway_cpu_us_per_event} µs/event), receiver ${d.cpu.receiver?.percent}%; `
      + `${d.calls} calls over ${d.receiver_connections} connections, ${d.duplicates} duplicates; pending gauge ${d.pending_gauge_before} → ${d.pending_gauge_after}`);
  }
}

// ---------------------------------------------------------------------------------------------

if (process.argv[2] === '--receiver') receiverChild();
else await main();
