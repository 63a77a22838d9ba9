#!/usr/bin/env node
// bench/proxy.mjs: the event proxy (contract 10.2) under load, measured from the outside.
//
// Starts the release gateway with PROXY_URL at a local node:http backend (a child process that
// checks each call's signature and answers 200 {"data":{}} at once), connects N sockets
// (socket.io-client 4.x, WebSocket; one user each; rooms of 10) and measures the ack round trip
// of two events sent at the same aggregate rate, one after the other:
//   proxied   `bench.echo` {i}    gateway → signed POST to the backend → answer → ack
//   typing    `typing` {roomId}   answered by the gateway itself (volatile `typing` to 9 others)
// so the difference is what the proxy hop costs. With --ramp, then raises the proxied rate
// step by step (1000, 2000, 4000, 8000 … /s) until more than 1 % of the acks of a step are
// `unavailable` or time out, and reports the last rate that held.
//
// Only 2 cores here: the client (this Node process), the backend (one Node process) and the
// gateway share them. Pinned by default: the gateway on CPU 0, client and backend together on
// CPU 1 (--no-pin: unpinned). The output says so and gives each process's CPU use per phase,
// so a step limited by the client or the backend rather than the gateway can be told apart.
//
//   node bench/proxy.mjs                 # 1000 sockets, 1000 events/s, 20 s per event
//   node bench/proxy.mjs --ramp          # … then the step mode (10 s per step)
//   node bench/proxy.mjs --quick         # smoke: 100 sockets, 5 s per event, ramp of two 2 s steps (1000, 2000/s)
//   node bench/proxy.mjs --help
//
// Needs `npm ci` in client-tests/ (socket.io-client and the JWT signer come from there). The
// gateway binary is SIO_GATEWAY_BIN, default target/release/sio-gateway. 127.0.0.1 only.
// Prints one JSON line, then a table. Exit status 1 when an ack of the fixed-rate phases was
// not ok or the backend saw a bad signature, 2 when the run could not be set up; the ramp's
// failures are its stopping rule, not an error.

import { spawn, execFileSync } from 'node:child_process';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.dirname(HERE);
const CLIENT_TESTS = path.join(ROOT, 'client-tests');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => performance.now();

// ---------------------------------------------------------------------------------------------
// The backend child: `node bench/proxy.mjs --backend` with PORT and PROXY_SECRET. Verifies each
// signature (the cost a real backend pays), answers 200 {"data":{}} at once; GET /stats.

function backendChild() {
  const secret = process.env.PROXY_SECRET;
  const stats = { calls: 0, bad_signatures: 0 };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      if (req.method === 'GET') {
        res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(stats));
        return;
      }
      stats.calls++;
      const ts = String(req.headers['x-sio-timestamp'] ?? '');
      const given = Buffer.from(String(req.headers['x-sio-signature'] ?? ''));
      const mac = createHmac('sha256', secret).update(`${ts}.`).update(Buffer.concat(chunks)).digest('hex');
      const expected = Buffer.from(`sha256=${mac}`);
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
        stats.bad_signatures++;
        res.writeHead(401, { 'Content-Type': 'application/json' })
          .end('{"error":{"code":"bad_signature","message":"refused"}}');
        return;
      }
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"data":{}}');
    });
  });
  server.keepAliveTimeout = 65_000; // longer than the gateway's 60 s idle pool timeout
  server.listen(Number(process.env.PORT), '127.0.0.1', () => console.log(JSON.stringify({ listening: server.address().port })));
}

// ---------------------------------------------------------------------------------------------
// Options

function usage() {
  return `usage: node bench/proxy.mjs [options]

  --quick               smoke: 100 sockets, 5 s per event, and a ramp of two 2 s steps (1000, 2000/s)
  --ramp                after the fixed-rate phases, the step mode (rates doubling from --rate)
  --sockets N           sockets (default 1000)
  --rate R              events/s, all sockets together, for the fixed phases (default 1000)
  --secs S              seconds per fixed phase (default 20)
  --step-secs S         seconds per ramp step (default 10)
  --max-rate R          highest ramp step (default 256000)
  --max-in-flight N     the gateway's PROXY_MAX_IN_FLIGHT (default: unset, the gateway's 1000)
  --ack-timeout-ms MS   the client's ack timeout (default 6000; the gateway's PROXY_TIMEOUT_MS is 5000)
  --no-pin              do not pin with taskset
  --json-only           print only the JSON line

  SIO_GATEWAY_BIN       the gateway binary (default target/release/sio-gateway)
`;
}

function parseArgs(argv) {
  const o = {
    quick: false, ramp: false, sockets: 1000, rate: 1000, secs: 20, stepSecs: 10, maxRate: 256000,
    maxInFlight: null, ackTimeoutMs: 6000, pin: true, jsonOnly: false,
  };
  const set = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = () => {
      const n = Number(argv[++i]);
      if (!Number.isFinite(n) || n <= 0) throw new Error(`${a}: expected a positive number`);
      return n;
    };
    switch (a) {
      case '-h': case '--help': o.help = true; break;
      case '--quick': o.quick = true; break;
      case '--ramp': o.ramp = true; break;
      case '--sockets': set.sockets = Math.floor(num()); break;
      case '--rate': set.rate = num(); break;
      case '--secs': set.secs = num(); break;
      case '--step-secs': set.stepSecs = num(); break;
      case '--max-rate': set.maxRate = num(); break;
      case '--max-in-flight': o.maxInFlight = Math.floor(num()); break;
      case '--ack-timeout-ms': o.ackTimeoutMs = num(); break;
      case '--no-pin': o.pin = false; break;
      case '--json-only': o.jsonOnly = true; break;
      default: throw new Error(`unknown option ${a} (see --help)`);
    }
  }
  if (o.quick) Object.assign(o, { sockets: 100, secs: 5, ramp: true, stepSecs: 2, maxRate: 2000 });
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

function start(cmd, args, { env, cpu, pin, logFile }) {
  const [file, argv] = pin ? ['taskset', ['-c', String(cpu), cmd, ...args]] : [cmd, args];
  const child = spawn(file, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const proc = { child, out: '', exited: null };
  const log = logFile ? fs.createWriteStream(logFile) : null;
  child.stdout.on('data', (d) => { proc.out += d; log?.write(d); });
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

// ---------------------------------------------------------------------------------------------
// Measuring

function latency(samples) {
  if (samples.length === 0) return { count: 0, p50_ms: null, p90_ms: null, p99_ms: null, max_ms: null, mean_ms: null };
  const s = Float64Array.from(samples).sort();
  const q = (p) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))];
  const r = (x) => Math.round(x * 1000) / 1000;
  let sum = 0;
  for (const x of s) sum += x;
  return { count: s.length, p50_ms: r(q(0.5)), p90_ms: r(q(0.9)), p99_ms: r(q(0.99)), max_ms: r(s[s.length - 1]), mean_ms: r(sum / s.length) };
}

// sio_proxy_calls_total by outcome (summed over the event label).
async function proxyCalls(url) {
  const out = {};
  try {
    const text = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(3000) }).then((r) => r.text());
    for (const line of text.split('\n')) {
      const m = /^sio_proxy_calls_total\{([^}]*)\}\s+(\S+)/.exec(line);
      if (!m) continue;
      const outcome = /outcome="([^"]*)"/.exec(m[1])?.[1] ?? '?';
      out[outcome] = (out[outcome] ?? 0) + Number(m[2]);
    }
  } catch { /* metrics unavailable: leave empty */ }
  return out;
}

const diff = (after, before) => Object.fromEntries(
  Object.entries(after).map(([k, v]) => [k, v - (before[k] ?? 0)]).filter(([, v]) => v !== 0),
);

/**
 * Sends `rate` events/s in total for `secs`, round-robin over `sockets`, each with an ack
 * callback bounded by `ackTimeoutMs`; resolves when every ack came or timed out.
 */
async function phase(ctx, { name, event, argOf, rate, secs }) {
  const { sockets, ackTimeoutMs, gwPid, backendPid, url } = ctx;
  const total = Math.max(1, Math.round(rate * secs));
  const rtts = [];
  const codes = {};
  let sent = 0;
  let acked = 0;
  let ok = 0;
  let timeouts = 0;
  let lastSendAt = 0;
  let maxLagMs = 0;
  const metricsBefore = await proxyCalls(url);
  const cpu0 = { gw: cpuSecs(gwPid), backend: cpuSecs(backendPid), client: selfCpuSecs() };
  const t0 = now();
  let allAcked;
  const done = new Promise((r) => (allAcked = r));
  const onAck = (sentAt) => (err, res) => {
    acked++;
    if (err) timeouts++;
    else if (res?.ok === true) {
      ok++;
      rtts.push(now() - sentAt);
    } else {
      const code = res?.error?.code ?? 'malformed';
      codes[code] = (codes[code] ?? 0) + 1;
    }
    if (acked === total) allAcked();
  };
  let next = 0;
  await new Promise((resolve) => {
    const tick = () => {
      const t = now();
      const due = Math.min(total, Math.floor(((t - t0) / 1000) * rate) + 1);
      if (due > sent) maxLagMs = Math.max(maxLagMs, t - (t0 + (sent / rate) * 1000));
      while (sent < due) {
        const s = sockets[next];
        next = (next + 1) % sockets.length;
        const at = now();
        s.timeout(ackTimeoutMs).emit(event, argOf(s, sent), onAck(at));
        sent++;
      }
      lastSendAt = now();
      if (sent < total) setTimeout(tick, 1);
      else resolve();
    };
    tick();
  });
  const sendSecs = (lastSendAt - t0) / 1000;
  // Every ack comes or times out within ackTimeoutMs; the extra second is slack.
  const drained = await Promise.race([done.then(() => true), sleep(ackTimeoutMs + 1000).then(() => false)]);
  const wallSecs = (now() - t0) / 1000;
  const cpu1 = { gw: cpuSecs(gwPid), backend: cpuSecs(backendPid), client: selfCpuSecs() };
  const pct = (k) => (cpu0[k] == null || cpu1[k] == null ? null : Math.round(((cpu1[k] - cpu0[k]) / wallSecs) * 1000) / 10);
  const unavailable = codes.unavailable ?? 0;
  return {
    phase: name,
    event,
    sockets: sockets.length,
    target_rate: rate,
    secs,
    sent,
    achieved_send_rate: Math.round(sent / Math.max(sendSecs, 1e-3)),
    max_send_lag_ms: Math.round(maxLagMs * 10) / 10,
    acked,
    ok,
    ok_per_sec: Math.round(ok / Math.max(sendSecs, 1e-3)),
    unavailable,
    timeouts,
    other_errors: Object.fromEntries(Object.entries(codes).filter(([c]) => c !== 'unavailable')),
    not_acked_at_end: drained ? 0 : total - acked,
    unavailable_or_timeout_fraction: Math.round(((unavailable + timeouts + (total - acked)) / total) * 1e5) / 1e5,
    rtt: latency(rtts),
    cpu_percent_of_one_core: { gateway: pct('gw'), backend: pct('backend'), client: pct('client') },
    proxy_calls: event === 'typing' ? undefined : diff(await proxyCalls(url), metricsBefore),
  };
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
    console.error(`bench/proxy.mjs uses client-tests/ (socket.io-client, the JWT signer): run \`npm ci\` in ${CLIENT_TESTS} first (${e.message})`);
    process.exit(2);
  }
  const { io, token, freePort, BIN } = fx;
  if (!fs.existsSync(BIN)) {
    console.error(`${BIN} not found: cargo build --release, or set SIO_GATEWAY_BIN`);
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

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sio-bench-proxy-'));
  const secret = randomBytes(32).toString('hex');
  const jwtSecret = randomBytes(24).toString('hex');
  const [gwPort, backendPort] = [await freePort(), await freePort()];
  const url = `http://127.0.0.1:${gwPort}`;
  const baseEnv = {};
  for (const k of ['PATH', 'HOME', 'LANG', 'TMPDIR']) if (process.env[k] !== undefined) baseEnv[k] = process.env[k];

  let backend;
  let gw;
  const sockets = [];
  let result;
  try {
    backend = start(process.execPath, [fileURLToPath(import.meta.url), '--backend'], {
      env: { ...baseEnv, PORT: String(backendPort), PROXY_SECRET: secret },
      cpu: 1, pin: o.pin,
    });
    await until(() => backend.out.includes('"listening"'), 10000, 'backend listening', backend);

    const gwEnv = {
      ...baseEnv,
      PORT: String(gwPort),
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
      PROXY_URL: `http://127.0.0.1:${backendPort}/events`,
      PROXY_SECRET: secret,
      PROXY_EVENTS: 'bench.*',
    };
    if (o.maxInFlight) gwEnv.PROXY_MAX_IN_FLIGHT = String(o.maxInFlight);
    gw = start(BIN, ['serve'], { env: gwEnv, cpu: 0, pin: o.pin, logFile: path.join(dir, 'gateway.log') });
    await until(
      () => fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) }).then((r) => r.status === 200, () => false),
      15000, 'gateway /healthz 200', gw,
    );

    // Connect (50 handshakes in flight), then join rooms of 10 for `typing`.
    log(`connecting ${o.sockets} sockets…`);
    const tag = randomBytes(3).toString('hex');
    const connectOne = (i) => new Promise((resolve, reject) => {
      const s = io(url, {
        forceNew: true, reconnection: false, transports: ['websocket'], timeout: 20000,
        auth: { token: token(`pb${tag}-${i}`, { secret: jwtSecret, ttlSecs: 3600 }) },
      });
      s.roomId = `bench-${tag}-${Math.floor(i / 10)}`;
      s.once('connect', () => resolve(s));
      s.once('connect_error', (e) => { s.close(); reject(new Error(`socket ${i}: connect_error ${e.message}`)); });
    });
    for (let i = 0; i < o.sockets; i += 50) {
      const batch = [];
      for (let j = i; j < Math.min(o.sockets, i + 50); j++) batch.push(connectOne(j));
      sockets.push(...(await Promise.all(batch)));
    }
    for (let i = 0; i < sockets.length; i += 100) {
      await Promise.all(sockets.slice(i, i + 100).map(async (s) => {
        const res = await s.timeout(10000).emitWithAck('joinRoom', { roomId: s.roomId });
        if (res?.ok !== true) throw new Error(`joinRoom: ${JSON.stringify(res)}`);
      }));
    }
    await sleep(1000); // let the joins' events pass

    const ctx = { sockets, ackTimeoutMs: o.ackTimeoutMs, gwPid: gw.child.pid, backendPid: backend.child.pid, url };
    const proxied = (rate, secs, name) => ({ name, event: 'bench.echo', argOf: (_s, i) => ({ i }), rate, secs });
    const typing = (rate, secs) => ({ name: 'typing', event: 'typing', argOf: (s) => ({ roomId: s.roomId }), rate, secs });

    // A short warm-up so connection pools and JIT are past their first calls.
    await phase(ctx, proxied(Math.min(o.rate, 500), 1, 'warmup'));
    await sleep(500);
    log(`proxied: ${o.rate}/s for ${o.secs} s…`);
    const p = await phase(ctx, proxied(o.rate, o.secs, 'proxied'));
    await sleep(1000);
    log(`typing: ${o.rate}/s for ${o.secs} s…`);
    const t = await phase(ctx, typing(o.rate, o.secs));

    let ramp = null;
    if (o.ramp) {
      ramp = { step_secs: o.stepSecs, steps: [], stopped_by: null, throughput_events_per_sec: null };
      for (let rate = o.rate; rate <= o.maxRate; rate *= 2) {
        await sleep(1000);
        log(`ramp: ${rate}/s for ${o.stepSecs} s…`);
        const step = await phase(ctx, proxied(rate, o.stepSecs, `ramp ${rate}/s`));
        ramp.steps.push(step);
        if (step.unavailable_or_timeout_fraction > 0.01) {
          ramp.stopped_by = `more than 1% unavailable or timed out at ${rate}/s`;
          break;
        }
        ramp.throughput_events_per_sec = step.ok_per_sec;
        if (step.achieved_send_rate < rate * 0.9) {
          ramp.stopped_by = `the client could send only ${step.achieved_send_rate}/s of ${rate}/s (client-bound, not a gateway limit)`;
          break;
        }
      }
      ramp.stopped_by ??= `reached --max-rate ${o.maxRate}/s without failures`;
    }

    const stats = await fetch(`http://127.0.0.1:${backendPort}/stats`).then((r) => r.json()).catch(() => null);
    const cpuModel = /model name\s*:\s*(.*)/.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? null;
    result = {
      bench: 'proxy',
      date: new Date().toISOString(),
      binary: BIN,
      git_commit: sh('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']),
      machine: {
        cpus: ncpu,
        cpu_model: cpuModel,
        node: process.version,
        pinning: o.pin ? 'gateway on CPU 0; client (this process) and backend on CPU 1' : 'none (--no-pin)',
        note: `${ncpu} cores shared by the client (socket.io-client, one Node process), the backend (one Node process) and the gateway; RTTs include the client's own event-loop time. Not comparable with BENCHMARKS.md's loadgen figures.`,
      },
      config: {
        sockets: sockets.length, room_size: 10, rate: o.rate, secs: o.secs, ack_timeout_ms: o.ackTimeoutMs,
        proxy_max_in_flight: o.maxInFlight ?? 'default (1000)', proxy_timeout_ms: 'default (5000)',
        backend: 'node:http, verifies the signature, answers 200 {"data":{}} at once',
        quick: o.quick,
      },
      proxied: p,
      typing: t,
      proxy_hop_p50_ms: p.rtt.p50_ms != null && t.rtt.p50_ms != null ? Math.round((p.rtt.p50_ms - t.rtt.p50_ms) * 1000) / 1000 : null,
      ramp,
      backend: stats,
    };
  } catch (e) {
    console.error(`setup or run failed: ${e.stack ?? e.message}\n(run folder kept: ${dir})`);
    if (gw) console.error(`gateway output (tail):\n${gw.out.slice(-4000)}`);
    if (backend) console.error(`backend output (tail):\n${backend.out.slice(-2000)}`);
    for (const s of sockets) s.close();
    if (gw) await stop(gw);
    if (backend) await stop(backend);
    process.exit(2);
  }

  for (const s of sockets) s.close();
  await sleep(200);
  const gwExit = await stop(gw);
  await stop(backend);
  result.gateway_exit = gwExit;
  fs.rmSync(dir, { recursive: true, force: true });

  console.log(JSON.stringify(result));
  if (!o.jsonOnly) printTable(result);
  const fixedOk = [result.proxied, result.typing].every((r) => r.ok === r.sent);
  process.exit(fixedOk && (result.backend?.bad_signatures ?? 0) === 0 ? 0 : 1);
}

function printTable(r) {
  const rows = [r.proxied, r.typing, ...(r.ramp?.steps ?? [])];
  const cols = [
    ['phase', (x) => x.phase],
    ['target/s', (x) => x.target_rate],
    ['sent/s', (x) => x.achieved_send_rate],
    ['ok', (x) => x.ok],
    ['unavail', (x) => x.unavailable],
    ['timeout', (x) => x.timeouts + x.not_acked_at_end],
    ['p50 ms', (x) => x.rtt.p50_ms],
    ['p99 ms', (x) => x.rtt.p99_ms],
    ['max ms', (x) => x.rtt.max_ms],
    ['cpu gw%', (x) => x.cpu_percent_of_one_core.gateway],
    ['cpu backend%', (x) => x.cpu_percent_of_one_core.backend],
    ['cpu client%', (x) => x.cpu_percent_of_one_core.client],
  ];
  const cells = [cols.map(([h]) => h), ...rows.map((x) => cols.map(([, f]) => String(f(x) ?? '—')))];
  const widths = cols.map((_, i) => Math.max(...cells.map((c) => c[i].length)));
  const line = (c) => c.map((v, i) => (i === 0 ? v.padEnd(widths[i]) : v.padStart(widths[i]))).join('  ');
  console.log('');
  console.log(`event proxy benchmark: ${r.config.sockets} sockets, ${r.machine.cpus} cores (${r.machine.pinning})`);
  console.log(r.machine.note);
  console.log('');
  console.log(line(cells[0]));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const c of cells.slice(1)) console.log(line(c));
  console.log('');
  console.log(`proxy hop (p50 proxied − p50 typing): ${r.proxy_hop_p50_ms ?? '—'} ms`);
  if (r.ramp) console.log(`ramp: throughput ${r.ramp.throughput_events_per_sec ?? '—'} proxied acks/s; stopped: ${r.ramp.stopped_by}`);
  if (r.backend) console.log(`backend: ${r.backend.calls} calls, ${r.backend.bad_signatures} bad signatures`);
}

// ---------------------------------------------------------------------------------------------

if (process.argv[2] === '--backend') backendChild();
else await main();
