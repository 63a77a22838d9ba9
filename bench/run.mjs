#!/usr/bin/env node
// bench/run.mjs — the benchmark orchestrator (Node 20, no npm dependencies).
//
// One command runs every scenario against every target, interleaved (A B C, C B A, …), with
// a fresh server per run pinned to core 0 and the load generator pinned to core 1, repeats
// rounds, and prints medians with [min–max] and the ratios the project cares about.
// Every wait is bounded; the whole run stops by itself; Ctrl-C kills the child processes.
// See "## The orchestrator" in bench/README.md.

import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.dirname(BENCH);
const rel = (p) => {
  const r = path.relative(process.cwd(), p);
  return r.startsWith('..') ? p : r || '.';
};

const SECRET = 'benchsecret-benchsecret-benchsecret-0123';
const API_KEY = 'benchkey';
const LOADGEN = path.join(BENCH, 'loadgen/target/release/loadgen');
const BARE_DIR = path.join(BENCH, 'peers/bare');
const NODE_DIR = path.join(BENCH, 'peers/node');

// ---------------------------------------------------------------------------------------------
// Scenarios: loadgen arguments (full and --quick), the headline metric, and a hard time limit
// for one run (the load generator bounds itself well inside it; this catches a hang).

const SCENARIOS = [
  {
    name: 'hold',
    args: ['hold', '--sockets', '10000', '--ramp-per-sec', '2000', '--hold-secs', '3'],
    quick: ['hold', '--sockets', '300', '--ramp-per-sec', '1000', '--hold-secs', '1'],
    metric: ['kib_per_socket'], unit: 'KiB/socket', better: 'lower', limit: 150, quickLimit: 60,
  },
  {
    name: 'connect_rate',
    args: ['connect-rate', '--total', '10000', '--in-flight', '200'],
    quick: ['connect-rate', '--total', '500', '--in-flight', '50'],
    metric: ['connects_per_sec'], unit: 'connects/s', better: 'higher', limit: 240, quickLimit: 90,
  },
  {
    name: 'fanout_1k',
    args: ['fanout', '--members', '1000', '--messages', '1000', '--size', '128'],
    quick: ['fanout', '--members', '100', '--messages', '100', '--size', '128'],
    metric: ['deliveries_per_sec'], unit: 'deliveries/s', better: 'higher', limit: 180, quickLimit: 90,
  },
  {
    name: 'fanout_10k_cpu',
    args: ['fanout', '--members', '10000', '--messages', '100', '--size', '128'],
    quick: ['fanout', '--members', '500', '--messages', '20', '--size', '128'],
    metric: ['server_cpu_us_per_delivery'], unit: 'µs CPU/delivery', better: 'lower', limit: 240, quickLimit: 90,
  },
  {
    name: 'fanout_light',
    args: ['fanout', '--members', '1000', '--messages', '200', '--rate', '20', '--size', '128'],
    quick: ['fanout', '--members', '100', '--messages', '40', '--rate', '20', '--size', '128'],
    metric: ['latency', 'p99_ms'], unit: 'p99 ms', better: 'lower', limit: 180, quickLimit: 90,
  },
  {
    name: 'typing_ack',
    args: ['ack-rtt', '--sockets', '1000', '--rate', '2000', '--secs', '10', '--event', 'typing'],
    quick: ['ack-rtt', '--sockets', '100', '--rate', '200', '--secs', '2', '--event', 'typing'],
    metric: ['rtt', 'p99_ms'], unit: 'p99 ms', better: 'lower', limit: 150, quickLimit: 90,
  },
  {
    name: 'send_ack',
    args: ['ack-rtt', '--sockets', '1000', '--rate', '2000', '--secs', '10', '--event', 'sendMessage'],
    quick: ['ack-rtt', '--sockets', '100', '--rate', '200', '--secs', '2', '--event', 'sendMessage'],
    metric: ['rtt', 'p99_ms'], unit: 'p99 ms', better: 'lower', limit: 150, quickLimit: 90,
  },
  {
    name: 'notify',
    args: ['notify-latency', '--users', '100', '--rate', '200', '--secs', '10'],
    quick: ['notify-latency', '--users', '20', '--rate', '50', '--secs', '2'],
    metric: ['latency', 'p99_ms'], unit: 'p99 ms', better: 'lower', limit: 150, quickLimit: 90,
  },
];
const SCENARIO = Object.fromEntries(SCENARIOS.map((s) => [s.name, s]));

// ---------------------------------------------------------------------------------------------
// Targets. `start(port, dir)` gives the command (run as `taskset -c 0 <cmd…>`, so the spawned
// pid is the server's own) and its extra environment; `missing()` says why it cannot run.

const TARGETS = [
  {
    name: 'gateway',
    // SIO_GATEWAY_BIN measures another build (say, the previous commit's) under the same name.
    bin: process.env.SIO_GATEWAY_BIN ?? path.join(ROOT, 'target/release/sio-gateway'),
    missing() { return exists(this.bin) ? null : `${rel(this.bin)} not built (cargo build --release)`; },
    start(port, dir) {
      return {
        cmd: [this.bin],
        env: {
          RUST_LOG: 'warn',
          DATABASE_URL: `sqlite://${dir}/gw.db?mode=rwc`,
          EVENT_RATE_PER_SEC: '1000000',
          EVENT_BURST: '1000000',
          SOCKET_MAX_CONNECTIONS_PER_USER: '100000',
          SOCKET_MAX_TOTAL_CONNECTIONS: '1000000',
          IDLE_TIMEOUT_SECS: '0', // off (the default), stated so nothing inherited turns it on
        },
      };
    },
  },
  {
    name: 'node',
    script: path.join(NODE_DIR, 'server.mjs'),
    missing() {
      if (!exists(this.script)) return `${rel(this.script)} does not exist`;
      if (!exists(path.join(NODE_DIR, 'node_modules'))) return `${rel(NODE_DIR)}/node_modules missing (npm ci)`;
      return null;
    },
    start() { return { cmd: [process.execPath, this.script], env: { NODE_ENV: 'production' } }; },
  },
  {
    name: 'bare',
    bin: path.join(BARE_DIR, 'target/release/bare-peer'),
    missing() { return exists(this.bin) ? null : `${rel(this.bin)} not built`; },
    start() { return { cmd: [this.bin], env: { RUST_LOG: 'warn' } }; },
  },
  {
    name: 'plain',
    bin: path.join(BARE_DIR, 'target/release/plain-ws'),
    only: ['hold', 'connect_rate'],
    missing() { return exists(this.bin) ? null : `${rel(this.bin)} not built`; },
    start() { return { cmd: [this.bin], env: { RUST_LOG: 'warn' } }; },
  },
];
const TARGET = Object.fromEntries(TARGETS.map((t) => [t.name, t]));

// The ratios the project cares about: num/den of a scenario's headline metric, and the goal.
const RATIOS = [
  { label: 'memory gateway (KiB/socket)', scenario: 'hold', num: 'gateway', abs: true, op: '<=', goal: 10 },
  { label: 'memory gateway/plain', scenario: 'hold', num: 'gateway', den: 'plain', op: '<=', goal: 1.5 },
  { label: 'memory gateway/node', scenario: 'hold', num: 'gateway', den: 'node' }, // no goal: context
  { label: 'connect rate gateway/bare', scenario: 'connect_rate', num: 'gateway', den: 'bare', op: '>=', goal: 0.9 },
  { label: 'CPU per delivery gateway/bare', scenario: 'fanout_10k_cpu', num: 'gateway', den: 'bare', op: '<=', goal: 1.1 },
  { label: 'light fan-out p99 gateway/node', scenario: 'fanout_light', num: 'gateway', den: 'node', op: '<=', goal: 1.0 },
  { label: 'typing ack p99 gateway/node', scenario: 'typing_ack', num: 'gateway', den: 'node', op: '<=', goal: 0.6 },
  { label: 'send ack p99 gateway/node', scenario: 'send_ack', num: 'gateway', den: 'node', op: '<=', goal: 1.0 },
  { label: 'notify p99 gateway/node', scenario: 'notify', num: 'gateway', den: 'node', op: '<=', goal: 1.0 },
];

// ---------------------------------------------------------------------------------------------
// Options

const USAGE = `usage: node bench/run.mjs [options]
  --rounds N          rounds (default 3); targets forward on even rounds, reversed on odd ones
  --targets a,b       of ${TARGETS.map((t) => t.name).join(',')} (default: all; missing ones skipped)
  --scenarios a,b     of ${SCENARIOS.map((s) => s.name).join(',')} (default: all)
  --quick             much smaller sizes, to try the orchestrator (a few minutes)
  --smoke             --quick, 1 round, unpinned, and exit 1 if any run lost or refused anything
                      (the test command runs this so the harness cannot rot; speed is never checked)
  --no-build          skip the cargo builds and npm ci
  --no-pin            do not pin with taskset (not comparable with pinned figures)
  --out FILE          results JSON (default bench/results/<timestamp>.json; bench/results/ is git-ignored)
  --base-port N       first server port (default 21100; one new port per run)
  --keep-logs         keep every run's server log folder (default: only failed runs')`;

function parseArgs(argv) {
  const o = {
    rounds: 3, targets: null, scenarios: null, quick: false, smoke: false, build: true, pin: true,
    out: null, basePort: 21100, keepLogs: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const val = () => {
      if (inline !== undefined) return inline;
      if (i + 1 >= argv.length) die(`${flag} needs a value\n${USAGE}`);
      return argv[++i];
    };
    const list = () => val().split(',').map((s) => s.trim()).filter(Boolean);
    switch (flag) {
      case '--rounds': o.rounds = int(val(), flag, 1, 100); break;
      case '--targets': o.targets = list(); break;
      case '--scenarios': o.scenarios = list(); break;
      case '--quick': o.quick = true; break;
      case '--smoke': o.smoke = true; o.quick = true; o.rounds = 1; o.pin = false; break;
      case '--no-build': o.build = false; break;
      case '--no-pin': o.pin = false; break;
      case '--out': o.out = path.resolve(val()); break;
      case '--base-port': o.basePort = int(val(), flag, 1024, 60000); break;
      case '--keep-logs': o.keepLogs = true; break;
      case '-h': case '--help': console.log(USAGE); process.exit(0);
      default: die(`unknown option ${a}\n${USAGE}`);
    }
  }
  for (const t of o.targets ?? []) if (!TARGET[t]) die(`unknown target ${t} (known: ${Object.keys(TARGET).join(', ')})`);
  for (const s of o.scenarios ?? []) if (!SCENARIO[s]) die(`unknown scenario ${s} (known: ${Object.keys(SCENARIO).join(', ')})`);
  if (o.targets?.length === 0 || o.scenarios?.length === 0) die('--targets and --scenarios need at least one name');
  return o;
}

function int(s, flag, lo, hi) {
  const n = Number(s);
  if (!Number.isInteger(n) || n < lo || n > hi) die(`${flag} must be an integer in ${lo}..${hi}, got ${s}`);
  return n;
}

function die(msg) {
  console.error(`bench/run: ${msg}`);
  process.exit(2);
}

function exists(p) {
  try { fs.accessSync(p); return true; } catch { return false; }
}

const log = (msg) => console.error(`[bench] ${msg}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Child processes: every one is tracked, so Ctrl-C (or any exit) kills what is left.

const live = new Set();
let stopping = false;

function track(child) {
  live.add(child);
  child.on('exit', () => live.delete(child));
  return child;
}

function killAll(signal = 'SIGKILL') {
  for (const c of live) {
    try { c.kill(signal); } catch { /* already gone */ }
  }
}

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    if (stopping) return;
    stopping = true;
    log(`${sig}: killing ${live.size} child process(es) and stopping`);
    killAll('SIGKILL');
    // Give the exit handlers a moment, then leave (results so far are already on disk).
    setTimeout(() => process.exit(130), 300).unref();
  });
}
process.on('exit', () => killAll('SIGKILL'));

/** Waits for `child` to exit, at most `ms`; resolves to the exit info or null on timeout. */
function waitExit(child, ms) {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve) => {
    const t = setTimeout(() => { child.off('exit', on); resolve(null); }, ms);
    const on = (code, signal) => { clearTimeout(t); resolve({ code, signal }); };
    child.once('exit', on);
  });
}

/** Keeps the last `max` characters written to it. */
function tail(max = 4000) {
  let s = '';
  return {
    push(chunk) { s = (s + chunk).slice(-max); },
    get text() { return s; },
  };
}

/** Runs a command to completion (bounded); output goes to our stderr. */
async function runStep(cmd, args, { cwd = ROOT, limitMs = 45 * 60_000 } = {}) {
  if (stopping) return false;
  log(`$ ${[cmd, ...args].join(' ')}${cwd !== ROOT ? `   (in ${rel(cwd)})` : ''}`);
  const child = track(spawn(cmd, args, { cwd, stdio: ['ignore', 2, 2] }));
  const spawnErr = new Promise((r) => child.once('error', (e) => r(e)));
  const res = await Promise.race([waitExit(child, limitMs), spawnErr]);
  if (res instanceof Error) { log(`  could not start: ${res.message}`); return false; }
  if (res === null) {
    child.kill('SIGKILL');
    await waitExit(child, 5000);
    log(`  timed out after ${limitMs / 60_000} min`);
    return false;
  }
  if (res.code !== 0) log(`  failed (${res.signal ?? `exit ${res.code}`})`);
  return res.code === 0;
}

// ---------------------------------------------------------------------------------------------
// Build

async function build(opts, targets) {
  const nice = (args) => ['nice', ['-n', '10', ...args]];
  const want = new Set(targets);
  const failed = new Set();
  const steps = [];
  if (want.has('gateway')) steps.push({ for: ['gateway'], run: nice(['cargo', 'build', '--release']) });
  steps.push({ for: ['loadgen'], run: nice(['cargo', 'build', '--release', '--manifest-path', path.join(BENCH, 'loadgen/Cargo.toml')]) });
  const bare = ['bare', 'plain'].filter((t) => want.has(t));
  if (bare.length) {
    if (exists(path.join(BARE_DIR, 'Cargo.toml'))) {
      steps.push({ for: bare, run: nice(['cargo', 'build', '--release', '--manifest-path', path.join(BARE_DIR, 'Cargo.toml')]) });
    } else log(`${rel(BARE_DIR)}/Cargo.toml does not exist: not building ${bare.join(', ')}`);
  }
  if (want.has('node')) {
    if (!exists(path.join(NODE_DIR, 'package.json'))) log(`${rel(NODE_DIR)}/package.json does not exist: not installing node`);
    else if (exists(path.join(NODE_DIR, 'node_modules'))) log(`${rel(NODE_DIR)}/node_modules present: npm ci skipped`);
    else steps.push({ for: ['node'], run: nice(['npm', 'ci', '--no-audit', '--no-fund']), cwd: NODE_DIR });
  }
  for (const s of steps) {  // sequential: a 2-core machine
    const ok = await runStep(s.run[0], s.run[1], { cwd: s.cwd ?? ROOT });
    if (stopping) process.exit(130);
    if (!ok) for (const t of s.for) failed.add(t);
  }
  return failed;
}

// ---------------------------------------------------------------------------------------------
// One run: fresh server, readiness, pinned load generator, stop, port free again.

function portFree(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host: '0.0.0.0', exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

async function waitPortFree(port, ms) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await portFree(port)) return true;
    await sleep(100);
  }
  return false;
}

let nextPort = 0;
async function pickPort(base) {
  for (let tries = 0; tries < 200; tries++) {
    const port = base + (nextPort++ % 2000);
    if (await portFree(port)) return port;
  }
  throw new Error(`no free port in ${base}..${base + 1999}`);
}

function healthz(port) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/healthz', agent: false, timeout: 1000, headers: { connection: 'close' } }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

function readText(p) {
  try { return fs.readFileSync(p, 'utf8'); } catch { return ''; }
}

function readProc(pid, file) {
  return readText(`/proc/${pid}/${file}`) || null;
}

function get(obj, keys) {
  let v = obj;
  for (const k of keys) v = v == null ? undefined : v[k];
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

const MIN_ENV = () => {
  const env = {};
  for (const k of ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TMPDIR']) if (process.env[k] !== undefined) env[k] = process.env[k];
  return env;
};

async function runOne(ctx, target, scenario) {
  const sc = SCENARIO[scenario];
  const t = TARGET[target];
  const run = { round: ctx.round, scenario, target, started: new Date().toISOString() };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `sio-bench-${target}-`));
  const port = await pickPort(ctx.opts.basePort);
  run.port = port;
  const { cmd, env } = t.start(port, dir);
  const pin = (cpu, argv) => (ctx.pin ? ['taskset', ['-c', String(cpu), ...argv]] : [argv[0], argv.slice(1)]);

  // 1. The server, fresh, in its own folder, output to a log file there.
  const logFd = fs.openSync(path.join(dir, 'server.log'), 'a');
  const [scmd, sargs] = pin(0, cmd);
  const server = track(spawn(scmd, sargs, {
    cwd: dir,
    env: { ...MIN_ENV(), ...env, PORT: String(port), JWT_SECRET: SECRET, API_KEYS: API_KEY },
    stdio: ['ignore', logFd, logFd],
  }));
  fs.closeSync(logFd);
  let serverExit = null;
  server.once('exit', (code, signal) => { serverExit = { code, signal }; });
  server.once('error', (e) => { serverExit = { error: e.message }; });
  run.server_pid = server.pid;
  const t0 = Date.now();
  const fail = (why) => { run.ok = false; run.error = why; run.secs ??= +((Date.now() - t0) / 1000).toFixed(1); };

  try {
    // 2. Ready = GET /healthz answers 200 (every 50 ms, at most 30 s).
    let ready = false;
    const deadline = Date.now() + 30_000;
    while (!ready && !serverExit && !stopping && Date.now() < deadline) {
      ready = await healthz(port);
      if (!ready) await sleep(50);
    }
    run.ready_ms = Date.now() - t0;
    if (!ready) {
      fail(serverExit ? `server exited before ready (${fmtExit(serverExit)})` : 'server not ready within 30 s');
      return run;
    }
    // The pid must be the server itself (taskset execs), pinned where we asked.
    const comm = readProc(server.pid, 'comm')?.trim();
    const cpus = /Cpus_allowed_list:\s*(\S+)/.exec(readProc(server.pid, 'status') ?? '')?.[1];
    run.server_comm = comm;
    run.server_cpus = cpus;
    if (comm === 'taskset') { fail('server pid is taskset, not the server'); return run; }

    // 3. The load generator, pinned to the other core, with a hard time limit.
    const limit = (ctx.opts.quick ? sc.quickLimit : sc.limit) * 1000;
    const lgArgs = [...(ctx.opts.quick ? sc.quick : sc.args),
      '--url', `http://127.0.0.1:${port}`, '--secret', SECRET, '--api-key', API_KEY, '--pid', String(server.pid)];
    run.loadgen_args = lgArgs.map((a) => (a === SECRET ? '<secret>' : a));
    const [lcmd, largs] = pin(1, [LOADGEN, ...lgArgs]);
    const lg = track(spawn(lcmd, largs, { cwd: dir, env: MIN_ENV(), stdio: ['ignore', 'pipe', 'pipe'] }));
    let out = '';
    const err = tail(2000);
    lg.stdout.on('data', (d) => { if (out.length < 1_000_000) out += d; });
    lg.stderr.on('data', (d) => err.push(d));
    const lgErr = new Promise((r) => lg.once('error', (e) => r(e)));
    const res = await Promise.race([waitExit(lg, limit), lgErr]);
    run.secs = +((Date.now() - t0) / 1000).toFixed(1);
    if (res instanceof Error) { fail(`loadgen could not start: ${res.message}`); return run; }
    if (res === null) {
      lg.kill('SIGKILL');
      await waitExit(lg, 5000);
      fail(`loadgen killed after the ${limit / 1000} s limit`);
      run.loadgen_stderr = err.text;
      return run;
    }
    await Promise.race([new Promise((r) => (lg.stdout.readableEnded ? r() : lg.stdout.once('end', r))), sleep(5000)]);
    if (err.text.trim()) run.loadgen_stderr = err.text;
    run.loadgen_exit = res.code ?? res.signal;
    const line = out.trim().split('\n').reverse().find((l) => l.trim().startsWith('{'));
    let result = null;
    try { result = line ? JSON.parse(line) : null; } catch { /* not JSON */ }
    if (!result) { fail(`no JSON from loadgen (${fmtExit(res)}): ${err.text.trim().split('\n').pop() ?? ''}`); return run; }
    run.result = result;
    run.lossless = result.lossless === true;
    run.value = get(result, sc.metric);
    if (typeof result.loadgen_cpu_ms === 'number' && result.wall_ms > 0) {
      run.loadgen_busy = +(result.loadgen_cpu_ms / result.wall_ms).toFixed(2);
    }
    if (serverExit) { fail(`server exited during the run (${fmtExit(serverExit)})`); return run; }
    if (run.value === null) { fail(`no ${sc.metric.join('.')} in the result`); return run; }
    run.ok = true;
    return run;
  } finally {
    // 4. Stop: SIGTERM, SIGKILL after 10 s; then the port must be free again (at most 10 s).
    if (!serverExit) {
      server.kill('SIGTERM');
      if (!(await waitExit(server, 10_000))) {
        run.stop = 'SIGKILL after 10 s';
        server.kill('SIGKILL');
        await waitExit(server, 5000);
      }
    }
    if (!(await waitPortFree(port, 10_000))) run.port_still_busy = true;
    const logText = fs.readFileSync(path.join(dir, 'server.log'), 'utf8');
    if (!run.ok) run.server_log_tail = logText.slice(-3000);
    if ((run.ok || stopping) && !ctx.opts.keepLogs) fs.rmSync(dir, { recursive: true, force: true });
    else run.dir = dir;
  }
}

function fmtExit(e) {
  if (!e) return '?';
  if (e.error) return e.error;
  return e.signal ? `signal ${e.signal}` : `exit ${e.code}`;
}

// ---------------------------------------------------------------------------------------------
// Statistics and the tables

function stats(values) {
  if (!values.length) return null;
  const v = [...values].sort((a, b) => a - b);
  const m = v.length >> 1;
  const median = v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
  return { median, min: v[0], max: v[v.length - 1], n: v.length };
}

function fmt(x) {
  if (x === null || x === undefined || !Number.isFinite(x)) return '—';
  const a = Math.abs(x);
  if (a >= 1000) return Math.round(x).toLocaleString('en-US');
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  if (a >= 1) return x.toFixed(2);
  return x.toFixed(3);
}

function summarize(runs, targets, scenarios) {
  const sum = {};
  for (const s of scenarios) {
    sum[s] = {};
    for (const t of targets) {
      const rs = runs.filter((r) => r.scenario === s && r.target === t);
      if (!rs.length) continue;
      const good = rs.filter((r) => r.ok);
      sum[s][t] = {
        ...stats(good.map((r) => r.value)),
        runs: rs.length,
        failed: rs.length - good.length,
        lossy: rs.filter((r) => r.result && !r.lossless).length,
        loadgen_bound: rs.filter((r) => r.loadgen_busy >= 0.9).length,
        values: rs.map((r) => (r.ok ? r.value : null)),
      };
    }
  }
  return sum;
}

function cell(c) {
  if (!c) return 'n/a';
  let s = c.n ? (c.n > 1 ? `${fmt(c.median)} [${fmt(c.min)}–${fmt(c.max)}]` : fmt(c.median)) : 'failed';
  if (c.lossy) s += ' †';
  if (c.loadgen_bound) s += ' ‡';
  if (c.failed && c.n) s += ` (${c.failed} failed)`;
  return s;
}

function ratios(sum, runs) {
  return RATIOS.map((q) => {
    const a = sum[q.scenario]?.[q.num];
    const b = q.den ? sum[q.scenario]?.[q.den] : null;
    const row = { label: q.label, scenario: q.scenario, goal: q.goal ?? null, op: q.op ?? null, value: null, per_round: [] };
    if (!a?.n || (q.den && !b?.n)) return { ...row, result: 'n/a' };
    row.value = q.abs ? a.median : a.median / b.median;
    if (q.den) {  // the same ratio within each round (both runs of that round succeeded)
      const rounds = new Set(runs.map((r) => r.round));
      for (const r of rounds) {
        const x = runs.find((u) => u.ok && u.round === r && u.scenario === q.scenario && u.target === q.num);
        const y = runs.find((u) => u.ok && u.round === r && u.scenario === q.scenario && u.target === q.den);
        if (x && y && y.value !== 0) row.per_round.push(x.value / y.value);
      }
    }
    row.lossy = Boolean(a.lossy || b?.lossy);
    if (q.goal === undefined) row.result = 'info';
    else row.result = (q.op === '<=' ? row.value <= q.goal : row.value >= q.goal) ? 'pass' : 'MISS';
    return row;
  });
}

function printTables(opts, targets, scenarios, sum, rat, info) {
  const lines = [];
  const p = (s = '') => lines.push(s);
  p(`## sio-gateway benchmark — ${info.date}`);
  p();
  p(`${opts.quick ? '**--quick sizes (not comparable)**, ' : ''}${opts.rounds} round(s), median [min–max] over rounds; ` +
    `${info.nproc} cores, Linux ${info.kernel}, node ${info.node}, ${info.rustc}; ` +
    `${opts.pin && info.pinned ? 'server on core 0, load generator on core 1' : '**not pinned**'}.`);
  p();
  p(`| scenario | metric | ${targets.join(' | ')} |`);
  p(`|---|---|${targets.map(() => '---:').join('|')}|`);
  for (const s of scenarios) {
    const sc = SCENARIO[s];
    p(`| ${s} | ${sc.unit} (${sc.better} is better) | ${targets.map((t) => cell(sum[s][t])).join(' | ')} |`);
  }
  p();
  p('| ratio | value [per round] | goal | |');
  p('|---|---:|---:|---|');
  for (const r of rat) {
    const range = r.per_round.length > 1 ? ` [${fmt(Math.min(...r.per_round))}–${fmt(Math.max(...r.per_round))}]` : '';
    const val = r.value === null ? '—' : `${fmt(r.value)}${r.label.includes('KiB') ? '' : '×'}${range}`;
    const goal = r.goal === null ? '—' : `${r.op === '<=' ? '≤' : '≥'} ${r.goal}${r.label.includes('KiB') ? ' KiB' : '×'}`;
    p(`| ${r.label} | ${val} | ${goal} | ${r.result}${r.lossy ? ' †' : ''} |`);
  }
  p();
  p('† a run lost or refused something ("lossless": false) — still counted, look at the raw JSON.  ' +
    '‡ the load generator was busy ≥ 90 % of the wall time: it may be the bottleneck.  ' +
    'n/a: target skipped or scenario not supported; failed: no usable result.');
  console.log(lines.join('\n'));
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Machine info

function sh(cmd, args) {
  try { return execFileSync(cmd, args, { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'ignore'] }).trim(); } catch { return null; }
}

function works(cmd, args) {
  try { execFileSync(cmd, args, { timeout: 10_000, stdio: 'ignore' }); return true; } catch { return false; }
}

function machineInfo() {
  const cpu = /model name\s*:\s*(.*)/.exec(readText('/proc/cpuinfo'))?.[1];
  return {
    date: new Date().toISOString(),
    nproc: Number(sh('nproc', [])) || os.availableParallelism(),
    kernel: sh('uname', ['-r']) ?? os.release(),
    cpu_model: cpu ?? null,
    mem_total_kib: Number(/MemTotal:\s*(\d+)/.exec(readText('/proc/meminfo'))?.[1]) || null,
    ulimit_n: Number(sh('sh', ['-c', 'ulimit -n'])) || null,
    node: process.version,
    rustc: sh('rustc', ['--version']),
    git_commit: sh('git', ['-C', ROOT, 'rev-parse', 'HEAD']),
    git_dirty: (sh('git', ['-C', ROOT, 'status', '--porcelain']) ?? '') !== '',
  };
}

// ---------------------------------------------------------------------------------------------
// Main

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const explicit = opts.targets !== null;
  let targets = opts.targets ?? TARGETS.map((t) => t.name);
  targets = TARGETS.map((t) => t.name).filter((t) => targets.includes(t)); // gateway first
  const scenarios = opts.scenarios ?? SCENARIOS.map((s) => s.name);

  const info = machineInfo();
  info.pinned = false;
  if (opts.pin) {
    if (!works('taskset', ['-c', '0', 'true'])) {
      log('taskset not found or not working: running unpinned (--no-pin to silence)');
    } else if (info.nproc < 2) {
      log(`only ${info.nproc} core: running unpinned`);
    } else info.pinned = true;
  }

  if (opts.build) {
    const failed = await build(opts, targets);
    if (failed.has('loadgen')) die('the load generator did not build');
    for (const t of targets) {
      if (failed.has(t) && explicit) die(`target ${t} did not build`);
    }
  }
  if (!exists(LOADGEN)) die(`${rel(LOADGEN)} missing: build it (cargo build --release --manifest-path bench/loadgen/Cargo.toml) or drop --no-build`);

  const skipped = {};
  for (const t of targets) {
    const why = TARGET[t].missing();
    if (why) {
      if (explicit) die(`target ${t} asked for but unavailable: ${why}`);
      skipped[t] = why;
      log(`skipping target ${t}: ${why}`);
    }
  }
  targets = targets.filter((t) => !skipped[t]);
  if (!targets.length) die('no target available');

  const stamp = info.date.replace(/[:.]/g, '-').replace(/-\d+Z$/, 'Z');
  const out = opts.out ?? path.join(BENCH, 'results', `${stamp}.json`);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  if (!opts.out) {  // the default folder ignores itself
    const gi = path.join(BENCH, 'results', '.gitignore');
    if (!exists(gi)) fs.writeFileSync(gi, '*\n');
  }

  // The plan: rounds × scenarios × targets, reversed on odd rounds (both orders), bounded.
  const plan = [];
  for (let r = 0; r < opts.rounds; r++) {
    const ts = r % 2 ? [...targets].reverse() : targets;
    const ss = r % 2 ? [...scenarios].reverse() : scenarios;
    for (const s of ss) for (const t of ts) if (!TARGET[t].only || TARGET[t].only.includes(s)) plan.push({ round: r, s, t });
  }
  const worst = plan.reduce((a, x) => a + (opts.quick ? SCENARIO[x.s].quickLimit : SCENARIO[x.s].limit) + 60, 0);
  log(`${plan.length} runs: ${opts.rounds} round(s) × [${scenarios.join(', ')}] × [${targets.join(', ')}]; ` +
    `results → ${rel(out)}; hard bound ${Math.ceil(worst / 60)} min`);

  const doc = {
    machine: info,
    options: { rounds: opts.rounds, quick: opts.quick, pinned: info.pinned, targets, scenarios, skipped },
    scenarios: Object.fromEntries(scenarios.map((s) => [s, {
      loadgen_args: opts.quick ? SCENARIO[s].quick : SCENARIO[s].args,
      metric: SCENARIO[s].metric.join('.'), unit: SCENARIO[s].unit, better: SCENARIO[s].better,
    }])),
    runs: [],
  };
  const save = () => fs.writeFileSync(out, JSON.stringify(doc, null, 2) + '\n');
  save();

  const ctx = { opts, pin: info.pinned, round: 0 };
  for (let i = 0; i < plan.length && !stopping; i++) {
    const { round, s, t } = plan[i];
    ctx.round = round;
    const run = await runOne(ctx, t, s);
    if (stopping) break;
    doc.runs.push(run);
    save();
    const sc = SCENARIO[s];
    const what = run.ok
      ? `${sc.metric.join('.')} = ${fmt(run.value)}${run.lossless ? '' : '  † lossless: false'}${run.loadgen_busy >= 0.9 ? '  ‡ loadgen busy' : ''}`
      : `FAILED: ${run.error}${run.dir ? ` (logs in ${run.dir})` : ''}`;
    log(`[${i + 1}/${plan.length}] round ${round + 1} ${s} × ${t}: ${what}  (${run.secs ?? '?'} s)`);
    if (!run.lossless && run.result) log(`    ${lossSummary(run.result)}`);
    await sleep(500);
  }
  if (stopping) return;

  const sum = summarize(doc.runs, targets, scenarios);
  const rat = ratios(sum, doc.runs);
  doc.finished = new Date().toISOString();
  doc.summary = sum;
  doc.ratios = rat;
  console.log();
  doc.table = printTables(opts, targets, scenarios, sum, rat, info);
  save();
  log(`results: ${rel(out)}`);
  const failures = doc.runs.filter((r) => !r.ok).length;
  if (failures) log(`${failures} run(s) failed`);
  // The smoke check: every run must have delivered everything it sent (never a speed check).
  const lossy = opts.smoke ? doc.runs.filter((r) => r.ok && !r.lossless).length : 0;
  if (lossy) log(`smoke: ${lossy} run(s) lost or refused something`);
  process.exitCode = failures || lossy ? 1 : 0;
}

/** The fields that say what was lost, for the progress line. */
function lossSummary(r) {
  const keys = ['connect_errors', 'died_while_held', 'errors', 'timed_out', 'member_errors', 'post_errors', 'lost', 'extra',
    'malformed', 'sockets_dropped', 'socket_errors', 'acks_failed', 'acks_missing', 'missing', 'duplicates', 'unexpected'];
  const bad = keys.filter((k) => r[k]).map((k) => `${k}=${r[k]}`);
  const first = r.first_error ?? r.first_post_error ?? r.first_failure;
  return `${bad.join(' ') || 'lossless: false'}${first ? `; first: ${String(first).slice(0, 200)}` : ''}`;
}

main().catch((e) => {
  console.error(e);
  killAll('SIGKILL');
  process.exit(1);
});
