#!/usr/bin/env node
// bench/scale.mjs: the scale scenario. N gateway nodes (default 5) on one Redis, each with
// up to ~19 000 live authenticated sockets (one `loadgen fanout-recv` per node), all in one
// room; K `POST /api/emit` to node 1 only, so the other nodes get every tick through Redis.
// Reports sockets live, RSS per node (idle, with sockets, after the fan-out) and KiB per
// socket, and deliveries/s across the cluster. Node 20, no npm dependencies. See
// bench/README.md, "Scale: 5 nodes on one Redis".
//
//   node bench/scale.mjs --quick            # 5 × 500 sockets, 20 ticks: a try-out
//   node bench/scale.mjs                    # 5 × 19 000 sockets, 50 ticks
//   node bench/scale.mjs --help

import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
let GATEWAY = path.join(ROOT, 'target/release/sio-gateway');
const LOADGEN = path.join(ROOT, 'bench/loadgen/target/release/loadgen');

const HELP = `usage: node bench/scale.mjs [options]

  --quick                 5 nodes × 500 sockets, 20 ticks (a try-out, ~30 s)
  --nodes N               gateway nodes (default 5)
  --per-node S            sockets per node (default 19000; at most ~19 000 with ulimit -n 20000)
  --messages K            POST /api/emit to node 1 (default 50; each reaches every socket)
  --size B                padding bytes in each tick (default 128)
  --post-in-flight C      POSTs in flight (default 4)
  --rate R                POSTs per second (default 0: as fast as they are accepted)
  --ramp-per-sec R        new connections per second, per load generator (default 1000)
  --connect-in-flight C   handshakes in flight, per load generator (default 200)
  --base-port P           node i listens on P+i-1 (default 3301)
  --redis-url URL         (default redis://127.0.0.1:6379)
  --pin none|alternate    none (default): the scheduler spreads everything over the cores;
                          alternate: node i on core (i-1) mod ncpu, its load generator on the next
  --drain-secs T          after the last POST, how long deliveries may take (default 120)
  --quiet-secs T          ... and stop waiting sooner when no tick arrived anywhere for T s (default 15)
  --out FILE              results JSON (default: $TMPDIR/sio-scale-<time>.json)
  --no-build              use the existing release binaries
  --gateway-bin PATH      run this gateway binary (implies no gateway build)
  --keep                  keep the temporary folder (logs, database)
`;

// ---------------------------------------------------------------------------------------------
// options

function parseArgs(argv) {
  const o = {
    nodes: 5, perNode: 19000, messages: 50, size: 128, postInFlight: 4, rate: 0,
    rampPerSec: 1000, connectInFlight: 200, basePort: 3301, redisUrl: 'redis://127.0.0.1:6379',
    pin: 'none', drainSecs: 120, quietSecs: 15, out: null, build: true, keep: false, quick: false, gatewayBin: null,
  };
  const num = (k, v) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) die(`${k}: expected a number, got ${v}`);
    return n;
  };
  const given = new Set();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) die(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case '-h': case '--help': process.stdout.write(HELP); process.exit(0);
      case '--quick': o.quick = true; break;
      case '--no-build': o.build = false; break;
      case '--keep': o.keep = true; break;
      case '--nodes': o.nodes = num(a, val()); break;
      case '--per-node': o.perNode = num(a, val()); break;
      case '--messages': o.messages = num(a, val()); break;
      case '--size': o.size = num(a, val()); break;
      case '--post-in-flight': o.postInFlight = Math.max(1, num(a, val())); break;
      case '--rate': o.rate = num(a, val()); break;
      case '--ramp-per-sec': o.rampPerSec = num(a, val()); break;
      case '--connect-in-flight': o.connectInFlight = Math.max(1, num(a, val())); break;
      case '--base-port': o.basePort = num(a, val()); break;
      case '--redis-url': o.redisUrl = val(); break;
      case '--pin': o.pin = val(); break;
      case '--drain-secs': o.drainSecs = num(a, val()); break;
      case '--quiet-secs': o.quietSecs = num(a, val()); break;
      case '--out': o.out = val(); break;
      case '--gateway-bin': o.gatewayBin = path.resolve(val()); break;
      default: die(`unknown option ${a} (see --help)`);
    }
    given.add(a);
  }
  if (o.quick) {
    if (!given.has('--per-node')) o.perNode = 500;
    if (!given.has('--messages')) o.messages = 20;
    if (!given.has('--ramp-per-sec')) o.rampPerSec = 500;
  }
  if (!['none', 'alternate'].includes(o.pin)) die('--pin: none or alternate');
  if (o.nodes < 1 || o.perNode < 1 || o.messages < 1) die('--nodes, --per-node and --messages must be at least 1');
  return o;
}

function die(msg) {
  process.stderr.write(`scale: ${msg}\n`);
  process.exit(2);
}

const log = (msg) => process.stderr.write(`[scale ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** Wall-clock microseconds since the Unix epoch (the load generators use the same clock). */
const nowUs = () => Math.round((performance.timeOrigin + performance.now()) * 1000);

/** The commit of the working tree, and whether the gateway's sources differ from it. */
function gitState() {
  const git = (...args) => spawnSync('git', args, { cwd: ROOT, encoding: 'utf8' });
  const head = git('rev-parse', 'HEAD');
  const dirty = git('status', '--porcelain', '--', 'src', 'Cargo.toml', 'Cargo.lock', 'migrations');
  return {
    commit: head.status === 0 ? head.stdout.trim() : null,
    sources_dirty: dirty.status === 0 ? dirty.stdout.trim().length > 0 : null,
  };
}

// ---------------------------------------------------------------------------------------------
// /proc

function rssKib(pid) {
  try {
    const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+)/m);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** utime + stime in ms (CLK_TCK 100). */
function cpuMs(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return null;
  }
}

function openFilesLimit() {
  const m = fs.readFileSync('/proc/self/limits', 'utf8').match(/^Max open files\s+(\d+|unlimited)/m);
  return !m || m[1] === 'unlimited' ? Infinity : Number(m[1]);
}

function ephemeralPorts() {
  try {
    const [lo, hi] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    return hi - lo + 1;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// a minimal RESP client (PING, SCAN, DEL)

class Redis {
  static connect(host, port, ms = 2000) {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host, port });
      const timer = setTimeout(() => { sock.destroy(); reject(new Error(`no answer within ${ms} ms`)); }, ms);
      sock.once('error', (e) => { clearTimeout(timer); reject(e); });
      sock.once('connect', () => { clearTimeout(timer); resolve(new Redis(sock)); });
    });
  }

  constructor(sock) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.waiting = [];
    sock.on('data', (d) => { this.buf = Buffer.concat([this.buf, d]); this.drain(); });
    const fail = (e) => { for (const w of this.waiting.splice(0)) w.reject(e || new Error('redis connection closed')); };
    sock.on('error', fail);
    sock.on('close', () => fail());
  }

  /** Parses one reply at `i`; returns [value, next index] or null when incomplete. */
  parse(i) {
    const eol = this.buf.indexOf('\r\n', i);
    if (eol < 0) return null;
    const line = this.buf.toString('utf8', i + 1, eol);
    const type = String.fromCharCode(this.buf[i]);
    const next = eol + 2;
    if (type === '+') return [line, next];
    if (type === '-') return [new Error(line), next];
    if (type === ':') return [Number(line), next];
    if (type === '$') {
      const n = Number(line);
      if (n < 0) return [null, next];
      if (this.buf.length < next + n + 2) return null;
      return [this.buf.toString('utf8', next, next + n), next + n + 2];
    }
    if (type === '*') {
      const n = Number(line);
      if (n < 0) return [null, next];
      const arr = [];
      let j = next;
      for (let k = 0; k < n; k++) {
        const r = this.parse(j);
        if (!r) return null;
        arr.push(r[0]);
        j = r[1];
      }
      return [arr, j];
    }
    throw new Error(`redis: unexpected reply type ${type}`);
  }

  drain() {
    while (this.waiting.length && this.buf.length) {
      const r = this.parse(0);
      if (!r) return;
      this.buf = this.buf.subarray(r[1]);
      const w = this.waiting.shift();
      r[0] instanceof Error ? w.reject(r[0]) : w.resolve(r[0]);
    }
  }

  cmd(...args) {
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      let out = `*${args.length}\r\n`;
      for (const a of args.map(String)) out += `$${Buffer.byteLength(a)}\r\n${a}\r\n`;
      this.sock.write(out);
    });
  }

  /** Every key starting with `prefix`. */
  async keys(prefix) {
    const found = [];
    let cursor = '0';
    do {
      const [next, batch] = await this.cmd('SCAN', cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      found.push(...batch);
      cursor = next;
    } while (cursor !== '0');
    return found;
  }

  close() {
    this.sock.destroy();
  }
}

function redisAddr(url) {
  const m = url.match(/^redis:\/\/(?:[^@/]*@)?([^:/]+)(?::(\d+))?/);
  if (!m) die(`--redis-url: expected redis://host:port, got ${url}`);
  return { host: m[1], port: Number(m[2] || 6379) };
}

// ---------------------------------------------------------------------------------------------
// processes: every child is started here, killed by its own pid at the end

const children = [];
const SETPRIV_PDEATHSIG = (() => {
  // Children die with this script even when it is SIGKILLed (setpriv execs: same pid).
  const r = spawnSync('setpriv', ['--help'], { encoding: 'utf8' });
  return r.status === 0 && /--pdeathsig/.test(r.stdout);
})();

function startChild(name, bin, args, { env, cwd, core, logFile, captureStdout = false, onStderrLine }) {
  let cmd = bin;
  let argv = args;
  if (core != null) [cmd, argv] = ['taskset', ['-c', String(core), cmd, ...argv]];
  if (SETPRIV_PDEATHSIG) [cmd, argv] = ['setpriv', ['--pdeathsig', 'KILL', '--', cmd, ...argv]];
  const logFd = fs.openSync(logFile, 'a');
  const child = spawn(cmd, argv, {
    env, cwd,
    stdio: ['ignore', captureStdout ? 'pipe' : logFd, onStderrLine ? 'pipe' : logFd],
  });
  const c = { name, child, pid: child.pid, stdout: '', exited: false, code: null, logFile };
  c.done = new Promise((resolve) => {
    child.once('exit', (code, signal) => { c.exited = true; c.code = code ?? signal; resolve(); });
    child.once('error', (e) => { c.exited = true; c.code = `spawn error: ${e.message}`; resolve(); });
  });
  if (captureStdout) child.stdout.on('data', (d) => { c.stdout += d; });
  if (onStderrLine) {
    let rest = '';
    child.stderr.on('data', (d) => {
      fs.appendFileSync(logFile, d);
      rest += d;
      const lines = rest.split('\n');
      rest = lines.pop();
      for (const l of lines) onStderrLine(l);
    });
  }
  child.once('exit', () => fs.closeSync(logFd));
  children.push(c);
  return c;
}

async function stopChild(c, signal = 'SIGTERM', graceMs = 8000) {
  if (c.exited) return;
  try { c.child.kill(signal); } catch { /* already gone */ }
  if (await Promise.race([c.done.then(() => true), sleep(graceMs).then(() => false)])) return;
  try { c.child.kill('SIGKILL'); } catch { /* already gone */ }
  await Promise.race([c.done, sleep(2000)]);
}

function tail(file, n = 15) {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-n).join('\n');
  } catch {
    return '(no log)';
  }
}

// ---------------------------------------------------------------------------------------------
// cleanup: on success, error, Ctrl-C

const run = { tmp: null, prefix: null, redis: null, keep: false };
let cleaning = null;

function cleanup() {
  cleaning ??= (async () => {
    // Load generators first (their sockets close), then the nodes (graceful: each removes its
    // own Redis keys), then whatever keys of this run remain.
    const lgs = children.filter((c) => c.name.startsWith('loadgen'));
    const gws = children.filter((c) => !c.name.startsWith('loadgen'));
    await Promise.all(lgs.map((c) => stopChild(c, 'SIGTERM', 3000)));
    await Promise.all(gws.map((c) => stopChild(c, 'SIGTERM', 8000)));
    if (run.redis && run.prefix) {
      try {
        const keys = await run.redis.keys(run.prefix);
        for (let i = 0; i < keys.length; i += 500) await run.redis.cmd('DEL', ...keys.slice(i, i + 500));
        const left = await run.redis.keys(run.prefix);
        log(`redis: deleted ${keys.length} key(s) under ${run.prefix}*${left.length ? `, ${left.length} left` : ''}`);
      } catch (e) {
        log(`redis: could not delete the keys under ${run.prefix}*: ${e.message}`);
      }
      run.redis.close();
    }
    if (run.tmp) {
      if (run.keep) log(`kept ${run.tmp}`);
      else fs.rmSync(run.tmp, { recursive: true, force: true });
    }
  })();
  return cleaning;
}

let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    interrupted = true;
    log(`${sig}: stopping everything`);
    cleanup().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------------------------------------
// HTTP

async function httpGet(url, ms = 2000) {
  const r = await fetch(url, { signal: AbortSignal.timeout(ms) });
  return { status: r.status, text: await r.text() };
}

async function waitReady(node, ms = 30000) {
  const deadline = Date.now() + ms;
  let last = '';
  while (Date.now() < deadline) {
    if (node.proc.exited) throw new Error(`${node.name} exited (${node.proc.code}):\n${tail(node.proc.logFile)}`);
    try {
      const r = await httpGet(`${node.base}/readyz`, 1000);
      if (r.status === 200) return;
      last = `${r.status} ${r.text}`;
    } catch (e) {
      last = e.message;
    }
    await sleep(200);
  }
  throw new Error(`${node.name} not ready within ${ms / 1000} s (last: ${last}):\n${tail(node.proc.logFile)}`);
}

async function serverConnections(node) {
  try {
    const r = await httpGet(`${node.base}/metrics`, 5000);
    const m = r.text.match(/^sio_connections(?:\{[^}]*\})? ([0-9.e+]+)/m);
    return m ? Math.round(Number(m[1])) : null;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// the run

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const ncpu = os.availableParallelism?.() ?? os.cpus().length;

  // Limits: each process (node, load generator) holds per-node sockets + a few files.
  const nofile = openFilesLimit();
  if (o.perNode + 200 > nofile) {
    die(`--per-node ${o.perNode} needs more open files than this process may have (ulimit -n ${nofile}); ` +
      `use --per-node ${Math.max(1, nofile - 1000)} or raise ulimit -n`);
  }
  const ports = ephemeralPorts();
  if (ports != null && o.perNode + 500 > ports) {
    log(`warning: ${ports} ephemeral ports (net.ipv4.ip_local_port_range) for ${o.perNode} sockets per node port`);
  }

  // Build.
  if (o.gatewayBin) GATEWAY = o.gatewayBin;
  if (o.build) {
    for (const [what, args] of [
      ...(o.gatewayBin ? [] : [['gateway', ['build', '--release']]]),
      ['loadgen', ['build', '--release', '--manifest-path', 'bench/loadgen/Cargo.toml']],
    ]) {
      log(`building the ${what} (nice -n 10 cargo ${args.join(' ')})`);
      const r = spawnSync('nice', ['-n', '10', 'cargo', ...args], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
      if (r.status !== 0) die(`cargo ${args.join(' ')} failed`);
    }
  }
  // What the gateway was built from (with --no-build: presumably; unknown with --gateway-bin).
  const gwGit = o.gatewayBin ? { commit: null, note: 'given with --gateway-bin' } : gitState();
  for (const bin of [GATEWAY, LOADGEN]) {
    if (!fs.existsSync(bin)) die(`${path.relative(ROOT, bin)} is missing (run without --no-build)`);
  }

  // Redis.
  const { host: redisHost, port: redisPort } = redisAddr(o.redisUrl);
  try {
    run.redis = await Redis.connect(redisHost, redisPort);
    const pong = await Promise.race([run.redis.cmd('PING'), sleep(2000).then(() => { throw new Error('no PONG within 2 s'); })]);
    if (pong !== 'PONG') throw new Error(`PING answered ${pong}`);
  } catch (e) {
    run.redis?.close();
    run.redis = null;
    die(`Redis does not answer at ${redisHost}:${redisPort} (${e.message}). This scenario needs a Redis server: ` +
      `install and start redis-server (e.g. apt-get install redis-server && redis-server --daemonize yes), ` +
      `or point --redis-url at one.`);
  }

  const runId = `${process.pid}-${crypto.randomBytes(3).toString('hex')}`;
  run.prefix = `sio-scale-${runId}`;
  run.keep = o.keep;
  run.tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sio-scale-'));
  const secret = crypto.randomBytes(32).toString('hex');
  const apiKey = crypto.randomBytes(24).toString('hex');
  const room = `scale-${runId}`;
  const total = o.nodes * o.perNode;
  log(`${o.nodes} nodes × ${o.perNode} sockets = ${total}, ${o.messages} ticks to node 1; ` +
    `redis ${redisHost}:${redisPort} prefix ${run.prefix}; pin ${o.pin}; folder ${run.tmp}`);

  // Gateway nodes: one shared SQLite file (the README's setup for nodes on one machine);
  // /api/emit does not touch it, the connects read it.
  const baseEnv = { PATH: process.env.PATH, HOME: process.env.HOME ?? run.tmp };
  const gwEnv = (port) => ({
    ...baseEnv,
    JWT_SECRET: secret,
    API_KEYS: apiKey,
    HOST: '127.0.0.1',
    PORT: String(port),
    RUST_LOG: 'warn',
    DATABASE_URL: `sqlite://${run.tmp}/gw.db?mode=rwc`,
    REDIS_URL: o.redisUrl,
    REDIS_PREFIX: run.prefix,
    EVENT_RATE_PER_SEC: '100000',
    EVENT_BURST: '100000',
    SOCKET_MAX_CONNECTIONS_PER_USER: '1000',
    SOCKET_MAX_TOTAL_CONNECTIONS: '1000000',
    SHUTDOWN_TIMEOUT_SECS: '5',
  });
  const nodes = [];
  for (let i = 1; i <= o.nodes; i++) {
    const port = o.basePort + i - 1;
    nodes.push({ i, name: `node${i}`, port, base: `http://127.0.0.1:${port}`, core: o.pin === 'alternate' ? (i - 1) % ncpu : null });
  }
  for (const n of nodes) {
    try {
      await httpGet(`${n.base}/healthz`, 500);
      throw new Error(`port ${n.port} is already in use (choose --base-port)`);
    } catch (e) {
      if (e.message.includes('already in use')) throw e;
    }
  }
  const startNode = (n) => {
    n.proc = startChild(n.name, GATEWAY, [], { env: gwEnv(n.port), cwd: run.tmp, core: n.core, logFile: path.join(run.tmp, `${n.name}.log`) });
    n.pid = n.proc.pid;
  };
  // Node 1 first (it creates the database), then the others together.
  startNode(nodes[0]);
  await waitReady(nodes[0]);
  nodes.slice(1).forEach(startNode);
  await Promise.all(nodes.slice(1).map((n) => waitReady(n)));
  log(`nodes ready: ${nodes.map((n) => `${n.name} pid ${n.pid} :${n.port}`).join(', ')}`);
  await sleep(1000);
  for (const n of nodes) n.rssIdle = rssKib(n.pid);

  // Load generators: one per node, on that node's port.
  const setupBound = 60 + Math.ceil(o.perNode / Math.max(1, o.rampPerSec)) + Math.ceil(o.perNode / 100);
  const stopFile = path.join(run.tmp, 'stop');
  const lgEnv = { ...baseEnv, JWT_SECRET: secret };
  for (const n of nodes) {
    n.readyFile = path.join(run.tmp, `ready-${n.i}.json`);
    n.progress = '';
    n.lg = startChild(`loadgen${n.i}`, LOADGEN, [
      '--url', n.base,
      '--user-prefix', `u${runId}-n${n.i}-`,
      '--connect-in-flight', String(o.connectInFlight),
      'fanout-recv',
      '--members', String(o.perNode),
      '--room', room,
      '--expect', String(o.messages),
      '--ramp-per-sec', String(o.rampPerSec),
      '--ready-file', n.readyFile,
      '--stop-file', stopFile,
      '--setup-timeout-secs', String(setupBound),
      '--timeout-secs', String(setupBound + o.drainSecs + 120),
    ], {
      env: lgEnv, cwd: run.tmp,
      core: o.pin === 'alternate' ? n.i % ncpu : null,
      logFile: path.join(run.tmp, `loadgen${n.i}.log`),
      captureStdout: true,
      onStderrLine: (l) => {
        if (l.startsWith('fanout-recv: connected')) n.progress = l.slice(13);
        const m = l.match(/^fanout-recv: received (\d+) /);
        if (m) n.receivedSoFar = Number(m[1]);
      },
    });
  }

  // Wait for every ready marker (bounded).
  const t0 = Date.now();
  const readyDeadline = t0 + (setupBound + 30) * 1000;
  let lastReport = Date.now();
  while (!nodes.every((n) => n.ready)) {
    for (const n of nodes) {
      if (!n.ready && fs.existsSync(n.readyFile)) n.ready = JSON.parse(fs.readFileSync(n.readyFile, 'utf8'));
      if (!n.ready && n.lg.exited) throw new Error(`loadgen${n.i} exited (${n.lg.code}) before it was ready:\n${tail(n.lg.logFile)}`);
      if (n.proc.exited) throw new Error(`${n.name} exited (${n.proc.code}):\n${tail(n.proc.logFile)}`);
    }
    if (Date.now() > readyDeadline) throw new Error(`load generators not ready within ${setupBound + 30} s`);
    if (Date.now() - lastReport >= 10000) {
      lastReport = Date.now();
      log(`setting up: ${nodes.map((n) => `${n.name} ${n.ready ? `ready ${n.ready.members}` : n.progress || '…'}`).join(' | ')}`);
    }
    await sleep(100);
  }
  const setupSecs = (Date.now() - t0) / 1000;
  const members = nodes.reduce((s, n) => s + n.ready.members, 0);
  log(`all ready in ${setupSecs.toFixed(1)} s: ${members} of ${total} sockets joined` +
    (members < total ? ` (first error: ${nodes.map((n) => n.ready.first_error).find(Boolean)})` : ''));

  // Memory with every socket connected (after 2 s to settle, as `loadgen hold`).
  await sleep(2000);
  for (const n of nodes) {
    n.rssSockets = rssKib(n.pid);
    n.serverConnections = await serverConnections(n);
  }

  // The fan-out: K POST /api/emit to node 1.
  for (const n of nodes) n.cpu0 = cpuMs(n.pid);
  const emitNode = nodes[0];
  const pad = 'x'.repeat(o.size);
  let next = 0;
  let accepted = 0;
  const postErrors = [];
  const firstPostUs = nowUs();
  const startMs = performance.now();
  const worker = async () => {
    while (next < o.messages) {
      const seq = next++;
      if (o.rate > 0) {
        const wait = startMs + (seq * 1000) / o.rate - performance.now();
        if (wait > 0) await sleep(wait);
      }
      const body = `{"event":"tick","room":${JSON.stringify(room)},"data":{"seq":${seq},"t":${nowUs()},"pad":"${pad}"}}`;
      try {
        const r = await fetch(`${emitNode.base}/api/emit`, {
          method: 'POST',
          headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
          body,
          signal: AbortSignal.timeout(10000),
        });
        const text = await r.text();
        if (r.status === 202) accepted++;
        else postErrors.push(`${r.status} ${text.slice(0, 200)}`);
      } catch (e) {
        postErrors.push(e.message);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(o.postInFlight, o.messages) }, worker));
  const postsDoneUs = nowUs();
  log(`posted ${accepted}/${o.messages} in ${((postsDoneUs - firstPostUs) / 1e6).toFixed(2)} s` +
    (postErrors.length ? `; ${postErrors.length} failed, first: ${postErrors[0]}` : ''));

  // Deliveries: each load generator prints its result once every member has every tick, and
  // keeps its sockets open until the stop file; bounded.
  const hasResult = (n) => n.lg.stdout.includes('\n') || n.lg.exited;
  const drainDeadline = Date.now() + o.drainSecs * 1000;
  const receivedSoFar = () => nodes.reduce((a, n) => a + (n.receivedSoFar ?? 0), 0);
  let seen = receivedSoFar();
  let lastChange = Date.now();
  let stalled = false;
  while (!nodes.every(hasResult) && Date.now() < drainDeadline) {
    await sleep(20);
    const now = receivedSoFar();
    if (now !== seen) [seen, lastChange] = [now, Date.now()];
    if (Date.now() - lastChange >= o.quietSecs * 1000) {
      stalled = true;
      break;
    }
  }
  for (const n of nodes) n.cpu1 = cpuMs(n.pid);
  if (!nodes.every(hasResult)) {
    log(stalled
      ? `no tick arrived for ${o.quietSecs} s and some are missing: stopping the count`
      : `deliveries still missing after ${o.drainSecs} s: stopping the count`);
    fs.writeFileSync(stopFile, '');
    const until = Date.now() + 15000;
    while (!nodes.every(hasResult) && Date.now() < until) await sleep(50);
  }
  for (const n of nodes) {
    n.rssAfter = rssKib(n.pid);
    n.serverConnectionsAfter = await serverConnections(n);
  }
  // Teardown: the load generators close their sockets and exit.
  let teardownUs = nowUs();
  fs.writeFileSync(stopFile, '');
  await Promise.race([Promise.all(nodes.map((n) => n.lg.done)), sleep(20000)]);
  for (const n of nodes) {
    if (!n.lg.exited) await stopChild(n.lg, 'SIGKILL', 2000);
    try {
      n.result = JSON.parse(n.lg.stdout.trim().split('\n')[0]);
    } catch {
      n.result = null;
      log(`loadgen${n.i} printed no result (${n.lg.code}):\n${tail(n.lg.logFile)}`);
    }
    // A load generator that stopped counting without completing closed its sockets then.
    if (n.result && n.result.stopped_by !== 'complete') teardownUs = Math.min(teardownUs, n.result.counting_end_us);
  }

  // Node warnings: those logged before the load generators began closing their sockets
  // count; later ones are teardown (e.g. `userLeft` broadcasts reaching closed sockets).
  for (const n of nodes) {
    const lines = fs.readFileSync(n.proc.logFile, 'utf8').replace(/\x1b\[[0-9;]*m/g, '').split('\n')
      .filter((l) => /\b(WARN|ERROR)\b/.test(l));
    const during = lines.filter((l) => {
      const t = Date.parse(l.slice(0, 30).split(/\s/)[0]);
      return !(Number.isFinite(t) && t * 1000 >= teardownUs);
    });
    n.warnings = during.length;
    n.teardownWarnings = lines.length - during.length;
    n.firstWarning = during[0]?.slice(0, 300) ?? null;
    n.alive = !n.proc.exited;
  }

  // Figures.
  const r = (x, d = 2) => (x == null || !Number.isFinite(x) ? null : Number(x.toFixed(d)));
  const perNode = nodes.map((n) => {
    const res = n.result ?? {};
    const socks = n.ready.members;
    const expected = socks * accepted;
    const received = res.received ?? 0;
    const last = res.last_arrival_us ?? null;
    const secs = last ? (last - firstPostUs) / 1e6 : null;
    const cpu = n.cpu0 != null && n.cpu1 != null ? n.cpu1 - n.cpu0 : null;
    return {
      node: n.i,
      port: n.port,
      pid: n.pid,
      core: n.core,
      emits_here: n === emitNode,
      sockets: socks,
      socket_errors: n.ready.errors,
      first_socket_error: n.ready.first_error,
      server_connections: n.serverConnections,
      server_connections_after: n.serverConnectionsAfter,
      setup_secs: n.ready.setup_secs,
      rss_idle_kib: n.rssIdle,
      rss_sockets_kib: n.rssSockets,
      rss_after_fanout_kib: n.rssAfter,
      kib_per_socket: socks > 0 && n.rssSockets != null && n.rssIdle != null ? r((n.rssSockets - n.rssIdle) / socks) : null,
      expected,
      received,
      lost: Math.max(0, expected - received),
      extra: (res.extra ?? 0) + (res.duplicates ?? 0),
      sockets_dropped: res.sockets_dropped ?? null,
      sockets_incomplete: res.sockets_incomplete ?? null,
      missing_seqs: res.missing_seqs ?? null,
      stopped_by: res.stopped_by ?? null,
      first_arrival_ms: res.first_arrival_us ? r((res.first_arrival_us - firstPostUs) / 1000) : null,
      last_arrival_ms: last ? r((last - firstPostUs) / 1000) : null,
      deliveries_per_sec: secs > 0 ? Math.round(received / secs) : null,
      latency: res.latency ?? null,
      server_cpu_ms: cpu,
      server_cpu_us_per_delivery: cpu != null && received > 0 ? r((cpu * 1000) / received, 3) : null,
      loadgen_cpu_ms_counting: res.loadgen_cpu_ms_counting ?? null,
      loadgen_rss_kib: res.loadgen_rss_kib_ready ?? null,
      warnings: n.warnings,
      first_warning: n.firstWarning,
      teardown_warnings: n.teardownWarnings,
      alive_at_end: n.alive,
    };
  });
  const sum = (k) => perNode.reduce((s, x) => s + (x[k] ?? 0), 0);
  const lastAll = Math.max(...nodes.map((n) => n.result?.last_arrival_us ?? 0));
  const received = sum('received');
  const expected = sum('expected');
  const spanSecs = lastAll > 0 ? (lastAll - firstPostUs) / 1e6 : null;
  const remote = perNode.filter((x) => !x.emits_here);
  const lost = Math.max(0, expected - received);
  const lossless = members === total && accepted === o.messages && lost === 0 && sum('extra') === 0 &&
    sum('sockets_dropped') === 0 && perNode.every((x) => x.alive_at_end);
  const summary = {
    scenario: 'scale',
    date: new Date().toISOString(),
    host: { cpus: ncpu, nofile_limit: nofile, memory_mib: Math.round(os.totalmem() / 2 ** 20) },
    gateway: { binary: GATEWAY, ...gwGit },
    options: {
      nodes: o.nodes, per_node: o.perNode, messages: o.messages, size: o.size, post_in_flight: o.postInFlight,
      rate: o.rate, ramp_per_sec: o.rampPerSec, connect_in_flight: o.connectInFlight, pin: o.pin,
      redis: `${redisHost}:${redisPort}`, quick: o.quick,
    },
    sockets_requested: total,
    sockets_live: members,
    setup_secs: r(setupSecs),
    posted: accepted,
    post_errors: postErrors.length,
    first_post_error: postErrors[0] ?? null,
    post_secs: r((postsDoneUs - firstPostUs) / 1e6),
    expected,
    received,
    lost,
    delivery_secs: r(spanSecs, 3),
    deliveries_per_sec: spanSecs > 0 ? Math.round(received / spanSecs) : null,
    cross_node_received: remote.reduce((s, x) => s + x.received, 0),
    cross_node_deliveries_per_sec: (() => {
      const lastRemote = Math.max(...nodes.filter((n) => n !== emitNode).map((n) => n.result?.last_arrival_us ?? 0));
      const rec = remote.reduce((s, x) => s + x.received, 0);
      return lastRemote > firstPostUs ? Math.round(rec / ((lastRemote - firstPostUs) / 1e6)) : null;
    })(),
    rss_total_with_sockets_mib: r(sum('rss_sockets_kib') / 1024, 1),
    kib_per_socket_mean: members > 0 ? r((sum('rss_sockets_kib') - sum('rss_idle_kib')) / members) : null,
    server_cpu_us_per_delivery: received > 0 ? r((sum('server_cpu_ms') * 1000) / received, 3) : null,
    node_warnings: sum('warnings'),
    node_teardown_warnings: sum('teardown_warnings'),
    lossless,
    nodes: perNode,
  };

  // Report.
  const mib = (k) => (k == null ? '–' : (k / 1024).toFixed(1));
  const ms = (x) => (x == null ? '–' : x.toFixed(1));
  const rows = [
    '| node | sockets (server) | RSS idle MiB | RSS with sockets MiB | KiB/socket | RSS after fan-out MiB | received | lost | deliveries/s | latency p50 / p99 ms | CPU µs/delivery |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
    ...perNode.map((x) => `| ${x.node}${x.emits_here ? ' (emits)' : ''} | ${x.sockets} (${x.server_connections ?? '?'}) | ${mib(x.rss_idle_kib)} | ${mib(x.rss_sockets_kib)} | ` +
      `${x.kib_per_socket ?? '–'} | ${mib(x.rss_after_fanout_kib)} | ${x.received} | ${x.lost} | ${x.deliveries_per_sec ?? '–'} | ` +
      `${ms(x.latency?.p50_ms)} / ${ms(x.latency?.p99_ms)} | ${x.server_cpu_us_per_delivery ?? '–'} |`),
    `| **all** | **${members}** | ${mib(sum('rss_idle_kib'))} | ${mib(sum('rss_sockets_kib'))} | ${summary.kib_per_socket_mean ?? '–'} | ` +
      `${mib(sum('rss_after_fanout_kib'))} | **${received}** | **${lost}** | **${summary.deliveries_per_sec ?? '–'}** | | ${summary.server_cpu_us_per_delivery ?? '–'} |`,
  ];
  const out = o.out ?? path.join(os.tmpdir(), `sio-scale-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  fs.writeFileSync(out, JSON.stringify(summary, null, 2) + '\n');
  process.stdout.write(`\n${rows.join('\n')}\n\n` +
    `sockets live ${members}/${total} (set up in ${summary.setup_secs} s); ${accepted} ticks posted to node 1 in ${summary.post_secs} s` +
    `${postErrors.length ? ` (${postErrors.length} POSTs failed, first: ${postErrors[0]})` : ''}; ` +
    `${received}/${expected} deliveries in ${summary.delivery_secs} s = ${summary.deliveries_per_sec} /s ` +
    `(cross-node ${summary.cross_node_deliveries_per_sec} /s); lost ${lost}; node warnings ${summary.node_warnings} (+${summary.node_teardown_warnings} while closing); ` +
    `lossless ${lossless}\nresults: ${out}\n`);
  for (const x of perNode.filter((y) => y.lost > 0 && y.missing_seqs?.length)) {
    log(`node${x.node}: missing ticks (seq: members without it): ${x.missing_seqs.map(([q, k]) => `${q}: ${k}`).join(', ')}`);
  }
  if (summary.node_warnings) {
    for (const x of perNode.filter((y) => y.first_warning)) log(`node${x.node}: ${x.warnings} warning(s), first: ${x.first_warning}`);
  }
  return lossless ? 0 : 1;
}

let code = 1;
try {
  code = await main();
} catch (e) {
  if (!interrupted) {
    log(`failed: ${e.stack || e.message}`);
    run.keep = true; // the logs explain it
  }
  code = 1;
} finally {
  await cleanup();
}
process.exit(code);
