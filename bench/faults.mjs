#!/usr/bin/env node
// bench/faults.mjs: the delivery promise under faults (contract section 5, v1.2; issue 12),
// measured from the outside. Three gateway nodes (the release binary) on one private
// redis-server and one shared database; U users × 2 tabs (socket.io-client 4.x, WebSocket)
// spread over the nodes; notifications posted round-robin to the nodes at a steady rate while
// faults are played in phases: Redis SIGKILLed and restarted, Redis made slow by a delaying
// TCP proxy, one node saturated by a burst, one node SIGKILLed. Every tab is a careful client:
// it keeps `auth.lastNotificationId` current from `registered` and every `notification`
// (through an `auth` callback, so each reconnect sends the cursor it has then), reads the rest
// with `listNotifications` when a catch-up was cut at 100, and reconnects through a simulated
// load balancer (same node while it lives, else the next one alive).
//
// Afterwards, per tab: expected = every notification of its user answered 201 (id from the
// 201 body); delivered, missing, duplicates (the same id twice on one tab, across its
// successive sockets) and out-of-order (an id lower than one already received on that tab).
// Prints one JSON line and a table; exit status 1 when anything is missing, duplicated or out
// of order, 2 when the scenario could not be set up.
//
//   node bench/faults.mjs                                   # sqlite, redis-kill then node-kill
//   node bench/faults.mjs --db postgres --fault all
//   node bench/faults.mjs --quick --fault redis-slow
//   node bench/faults.mjs --help
//
// Needs: `npm ci` in client-tests/ (socket.io-client, and the fixtures reused from there), the
// redis-server binary, and for --db postgres a PostgreSQL server plus the psql CLI. The gateway
// binary is SIO_GATEWAY_BIN, default target/release/sio-gateway. Talks to 127.0.0.1 only.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CLIENT_TESTS = path.resolve(HERE, '..', 'client-tests');

// socket.io-client, the JWT signer and the process/service helpers come from client-tests/
// (its fixtures resolve socket.io-client from client-tests/node_modules).
let fx;
let cf;
try {
  fx = await import(path.join(CLIENT_TESTS, 'fixture.mjs'));
  cf = await import(path.join(CLIENT_TESTS, 'cluster-fixture.mjs'));
} catch (e) {
  throw new Error(
    `bench/faults.mjs reuses client-tests/ (socket.io-client and its fixtures): run \`npm ci\` in ${CLIENT_TESTS} first (${e.message})`,
  );
}
const { io, token: signToken, spawnGateway, freePort, BIN } = fx;
const { RedisServer, stablePort, createDatabase, requirePostgres } = cf;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => performance.now();

/** Most notifications a connect's catch-up sends (contract section 5); the rest are listed. */
export const CATCH_UP_LIMIT = 100;

export const FAULTS = ['redis-kill', 'redis-slow', 'overload', 'node-stall', 'node-kill'];

// ---------------------------------------------------------------------------------------------
// Options

/** The sizes of a run: `full` is the issue's scenario, `quick` the test command's. */
export const PRESETS = {
  full: {
    users: 60, tabs: 2, rate: 40, warmSecs: 3, outageSecs: 5, recoverSecs: 5, slowSecs: 8,
    slowDelayMs: 2000, burst: 2000, burstInFlight: 64, crowd: 400, stallSecs: 3, afterKillSecs: 6, settleSecs: 8,
  },
  quick: {
    users: 20, tabs: 2, rate: 20, warmSecs: 2, outageSecs: 5, recoverSecs: 3, slowSecs: 4,
    slowDelayMs: 2000, burst: 500, burstInFlight: 32, crowd: 100, stallSecs: 3, afterKillSecs: 3, settleSecs: 8,
  },
};

const HELP = `usage: node bench/faults.mjs [options]

  --db sqlite|postgres   one SQLite file shared by the nodes (default), or a fresh PostgreSQL
                         database on TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres)
  --fault LIST           comma-separated, played in this order: redis-kill, redis-slow,
                         overload, node-stall, node-kill; "all"; or "none" (a control run)
                           redis-kill  Redis SIGKILLed for 5 s, restarted on its port
                           redis-slow  every packet to/from Redis delayed by 2 s for a while
                           overload    2000 POSTs as fast as accepted + 400 sockets at once on one node
                           node-stall  one node SIGSTOPped for 3 s (too busy to publish or receive)
                           node-kill   one node SIGKILLed; its tabs reconnect to another
                         (default: redis-kill,node-kill, the issue's story)
  --quick                20 users × 2 tabs, 20/s, shorter phases (a run stays under a minute)
  --users N --tabs N --rate R   override the preset
  --keep                 keep the run folder (node logs, SQLite file)
  --json-only            print only the JSON line

  SIO_GATEWAY_BIN        the gateway binary (default target/release/sio-gateway)
  SIO_FAULTS_RUST_LOG    the nodes' RUST_LOG (default info)
`;

export function parseArgs(argv) {
  const o = { db: 'sqlite', faults: ['redis-kill', 'node-kill'], quick: false, keep: false, jsonOnly: false, overrides: {} };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    const num = () => {
      const n = Number(val());
      if (!Number.isFinite(n) || n <= 0) throw new Error(`${a}: expected a positive number`);
      return n;
    };
    switch (a) {
      case '-h': case '--help': o.help = true; break;
      case '--db': o.db = val(); break;
      case '--fault': case '--faults': o.faults = parseFaults(val()); break;
      case '--quick': o.quick = true; break;
      case '--keep': o.keep = true; break;
      case '--json-only': o.jsonOnly = true; break;
      case '--users': o.overrides.users = num(); break;
      case '--tabs': o.overrides.tabs = num(); break;
      case '--rate': o.overrides.rate = num(); break;
      default: throw new Error(`unknown option ${a} (see --help)`);
    }
  }
  if (!['sqlite', 'postgres'].includes(o.db)) throw new Error(`--db: sqlite or postgres, not ${o.db}`);
  return o;
}

export function parseFaults(text) {
  if (text === 'none') return []; // a control run: posting only
  const list = text === 'all' ? [...FAULTS] : text.split(',').map((s) => s.trim()).filter(Boolean);
  for (const f of list) if (!FAULTS.includes(f)) throw new Error(`unknown fault ${f} (one of ${FAULTS.join(', ')}, or all)`);
  // Always played in the canonical order, whatever order they were named in.
  return FAULTS.filter((f) => list.includes(f));
}

// ---------------------------------------------------------------------------------------------
// Children are killed when this process exits, however it exits (the 'exit' handler is
// synchronous: SIGKILL and a synchronous psql DROP DATABASE are all it can do).

const liveChildren = new Set();
const exitCleanups = new Set();
process.on('exit', () => {
  for (const c of liveChildren) {
    try { c.kill('SIGKILL'); } catch { /* already gone */ }
  }
  for (const f of exitCleanups) {
    try { f(); } catch { /* best effort */ }
  }
});

function track(child) {
  liveChildren.add(child);
  child.on('exit', () => liveChildren.delete(child));
  return child;
}

// ---------------------------------------------------------------------------------------------
// A TCP proxy that can delay every chunk, in both directions, by `delayMs` (0: pass-through).
// Order is kept per direction: a chunk is never released before the one before it, also when
// the delay shrinks. stop() destroys every connection.

export class DelayProxy extends cf.TcpProxy {
  constructor(targetPort, { host = '127.0.0.1' } = {}) {
    super(0, () => ({ host, port: targetPort }));
    this.delayMs = 0;
    this.chunks = 0;
    this.delayedChunks = 0;
  }

  get url() {
    return `redis://127.0.0.1:${this.port}`;
  }

  forward(from, to) {
    const queue = []; // [{ at, data }], release times non-decreasing
    let timer = null;
    let lastAt = 0;
    const drain = () => {
      timer = null;
      const t = now();
      while (queue.length && queue[0].at <= t) {
        const { data } = queue.shift();
        if (!to.destroyed) to.write(data);
      }
      if (queue.length) timer = setTimeout(drain, Math.max(1, queue[0].at - t));
    };
    from.on('data', (data) => {
      this.chunks++;
      if (this.delayMs <= 0 && queue.length === 0) {
        to.write(data);
        return;
      }
      if (this.delayMs > 0) this.delayedChunks++;
      lastAt = Math.max(lastAt, now() + this.delayMs);
      queue.push({ at: lastAt, data });
      if (!timer) timer = setTimeout(drain, Math.max(1, queue[0].at - now()));
    });
    from.on('end', () => {
      // Half-close once everything queued is out (bounded: the queue only drains).
      const finish = () => (queue.length ? setTimeout(finish, 20) : to.end());
      finish();
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Gateway nodes

/** Spawns `<bin> serve` with exactly `env` in a folder of its own; waits for /readyz 200. */
export async function startNode({ name, env, dir, readyMs = 20000 }) {
  if (!fs.existsSync(BIN)) {
    throw new Error(`gateway binary ${BIN} not found: cargo build --release, or set SIO_GATEWAY_BIN`);
  }
  fs.mkdirSync(dir, { recursive: true });
  const proc = spawnGateway({ env, dir });
  track(proc.child);
  const url = `http://127.0.0.1:${env.PORT}`;
  const node = {
    name, url, env, dir, proc, alive: true,
    logs: () => proc.logs(),
    async kill(signal = 'SIGKILL') {
      node.alive = false;
      if (proc.hasExited()) return;
      proc.child.kill(signal);
      const timer = setTimeout(() => proc.child.kill('SIGKILL'), 10000);
      await proc.exited;
      clearTimeout(timer);
    },
  };
  const end = Date.now() + readyMs;
  let last = 'no answer';
  while (Date.now() < end && !proc.hasExited()) {
    try {
      const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(1000) });
      last = `${res.status} ${await res.text()}`;
      if (res.status === 200) return node;
    } catch (e) {
      last = e.message;
    }
    await sleep(100);
  }
  await node.kill();
  throw new Error(`${name} (${url}) not ready within ${readyMs} ms (last: ${last}); logs:\n${proc.logs().slice(-4000)}`);
}

/** The environment of a node: nothing inherited but PATH/HOME/TMPDIR/LANG, so runs are reproducible. */
export function nodeEnv(values) {
  const env = {};
  for (const k of ['PATH', 'HOME', 'TMPDIR', 'LANG']) if (process.env[k]) env[k] = process.env[k];
  return { RUST_LOG: process.env.SIO_FAULTS_RUST_LOG ?? 'info', NO_COLOR: '1', ...env, ...values };
}

// ---------------------------------------------------------------------------------------------
// HTTP

/** POST /api/notifications: { status, body, ms } (status 0 with `error` when no answer). */
export async function postNotification(url, apiKey, body, timeoutMs = 10000) {
  const t0 = now();
  try {
    const res = await fetch(`${url}/api/notifications`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    let parsed = text;
    try { parsed = JSON.parse(text); } catch { /* not JSON */ }
    return { status: res.status, body: parsed, ms: now() - t0 };
  } catch (e) {
    return { status: 0, error: e.name === 'TimeoutError' ? 'timeout' : e.cause?.code ?? e.message, ms: now() - t0 };
  }
}

// ---------------------------------------------------------------------------------------------
// A careful client tab. Its successive sockets share one record, so duplicates and order are
// judged across reconnects. `pickUrl()` plays the load balancer (called for every new socket).
//
// What is counted:
//   events      every `notification` event as it arrived (id, time)
//   duplicates  an event whose id this tab already had as an event
//   outOfOrder  an event whose id is lower than one this tab already had as an event
//   have        ids the tab holds: from events, or read with listNotifications after a
//               catch-up that was cut at 100 (the contract's way to read the rest)

export class CarefulTab {
  constructor({ label, user, token, pickUrl, onLog = () => {} }) {
    this.label = label;
    this.user = user;
    this.token = token;
    this.pickUrl = pickUrl;
    this.onLog = onLog;
    this.cursor = null;
    this.socket = null;
    this.url = null;
    this.closed = false;
    this.have = new Map(); // id -> receipt time (performance.now())
    this.eventIds = new Set();
    this.maxEventId = '';
    this.events = 0;
    this.duplicates = 0;
    this.outOfOrder = 0;
    this.duplicateIds = [];
    this.outOfOrderIds = [];
    this.fetched = 0;
    this.fetchFailures = 0;
    this.sockets = 0;
    this.registrations = 0;
    this.disconnects = {}; // reason -> count
    this.connectErrors = {}; // message -> count
    this.cursorJumps = 0; // `registered` moved the cursor past ids this tab never had
    this.history = []; // [{ url, t }] per registration
    this.attempt = 0;
    this.reconnectTimer = null;
  }

  get reconnected() {
    return this.registrations > 1 || Object.keys(this.disconnects).length > 0;
  }

  /** Connects a socket through the load balancer; resolves on its first `registered` (bounded). */
  connect(timeoutMs = 10000) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.label}: no registered within ${timeoutMs} ms`)), timeoutMs);
      this.onFirstRegistered = () => {
        clearTimeout(timer);
        resolve();
      };
      this.onFirstError = (msg) => {
        clearTimeout(timer);
        reject(new Error(`${this.label}: connect_error ${msg}`));
      };
      this.#open();
    });
  }

  #open() {
    if (this.closed) return;
    this.url = this.pickUrl();
    this.sockets++;
    const s = io(this.url, {
      forceNew: true,
      reconnection: false, // the tab reconnects itself, through the load balancer
      transports: ['websocket'],
      timeout: 5000,
      // Called at every connect attempt: the cursor is read when the CONNECT packet leaves.
      auth: (cb) => cb({ token: this.token, lastNotificationId: this.cursor }),
    });
    this.socket = s;
    let caughtUp = 0; // notifications before `registered`: the catch-up
    let registered = false;
    let pending = null; // live notifications held while the rest of a cut catch-up is read

    s.on('notification', (n) => {
      this.#recordEvent(n.id);
      if (!registered) caughtUp++;
      if (pending) pending.push(n);
      else this.#take(n.id);
    });
    s.on('registered', async (r) => {
      registered = true;
      this.registrations++;
      this.attempt = 0;
      this.history.push({ url: this.url, t: now() });
      this.onFirstRegistered?.();
      this.onFirstRegistered = this.onFirstError = null;
      const last = r.lastNotificationId;
      if (caughtUp >= CATCH_UP_LIMIT && last && last > (this.cursor ?? '')) {
        // The catch-up was cut: read what lies between it and `registered` with listNotifications.
        pending = [];
        try {
          for (const id of await this.#listBetween(s, this.cursor, last)) this.#take(id, true);
        } catch (e) {
          // The socket went away mid-read: the cursor stayed before the gap, so the next
          // connect's catch-up resumes there. What arrived live meanwhile is dropped (it comes again).
          this.fetchFailures++;
          this.onLog(`${this.label}: listNotifications failed (${e.message})`);
          pending = null;
          return;
        }
        const held = pending;
        pending = null;
        for (const n of held) this.#take(n.id);
      } else if (last) {
        // As the README's client does: the cursor becomes the user's newest id.
        if (last > (this.cursor ?? '') && !this.have.has(last)) this.cursorJumps++;
        if (last > (this.cursor ?? '')) this.cursor = last;
      }
    });
    s.on('connect_error', (err) => {
      this.connectErrors[err.message] = (this.connectErrors[err.message] ?? 0) + 1;
      s.close();
      if (this.onFirstError) this.onFirstError(err.message);
      else this.#scheduleReconnect();
    });
    s.on('disconnect', (reason) => {
      this.disconnects[reason] = (this.disconnects[reason] ?? 0) + 1;
      if (reason === 'io client disconnect') return;
      s.close();
      // Also after `io server disconnect`: a careful app reconnects then too (with its cursor).
      this.#scheduleReconnect();
    });
  }

  #scheduleReconnect() {
    if (this.closed || this.reconnectTimer) return;
    // socket.io-client's own defaults: 1 s doubling to 5 s, ±50 % randomisation.
    const base = Math.min(5000, 1000 * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 10);
    const delay = base * (0.5 + Math.random());
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.#open();
    }, delay);
  }

  #recordEvent(id) {
    this.events++;
    if (this.eventIds.has(id)) {
      this.duplicates++;
      if (this.duplicateIds.length < 20) this.duplicateIds.push(id);
    } else {
      this.eventIds.add(id);
    }
    if (id < this.maxEventId) {
      this.outOfOrder++;
      if (this.outOfOrderIds.length < 20) this.outOfOrderIds.push({ id, after: this.maxEventId });
    } else {
      this.maxEventId = id;
    }
  }

  #take(id, fetched = false) {
    if (!this.have.has(id)) {
      this.have.set(id, now());
      if (fetched) this.fetched++;
    }
    if (id > (this.cursor ?? '')) this.cursor = id;
  }

  // The user's ids in (after, upTo], oldest first, read newest-first page by page (bounded).
  async #listBetween(s, after, upTo) {
    const ids = [];
    let before;
    for (let page = 0; page < 500; page++) {
      const args = before ? { limit: 100, before } : { limit: 100 };
      const res = await s.timeout(10000).emitWithAck('listNotifications', args);
      if (!res?.ok) throw new Error(`listNotifications: ${JSON.stringify(res?.error)}`);
      const list = res.data.notifications;
      let reached = false;
      for (const n of list) {
        if (after && n.id <= after) { reached = true; break; }
        if (n.id <= upTo) ids.push(n.id);
      }
      if (reached || !res.data.hasMore || list.length === 0) return ids.reverse();
      before = list.at(-1).id;
    }
    throw new Error('more than 500 pages of notifications');
  }

  /** Pauses / resumes reading the socket's WebSocket (the TCP socket under it). */
  pauseReading() {
    const ws = this.socket?.io?.engine?.transport?.ws;
    if (!ws?.pause) throw new Error(`${this.label}: no WebSocket to pause`);
    ws.pause();
  }

  resumeReading() {
    this.socket?.io?.engine?.transport?.ws?.resume?.();
  }

  /** The url this tab was registered on at time t (performance.now()). */
  urlAt(t) {
    let url = this.history[0]?.url;
    for (const h of this.history) if (h.t <= t) url = h.url;
    return url;
  }

  close() {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    this.socket?.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Measurement

const quantile = (sorted, q) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : null);
const round = (x) => (x == null ? null : Math.round(x));
const countBy = (items, key) => items.reduce((m, x) => ((m[key(x)] = (m[key(x)] ?? 0) + 1), m), {});

/**
 * Per tab: expected = the 201-answered notifications of its user. `created` is
 * [{ id, user, t201, phase, node }]. Returns the totals and a few examples.
 */
export function measure(tabs, created) {
  const byUser = new Map();
  for (const c of created) {
    if (!byUser.has(c.user)) byUser.set(c.user, []);
    byUser.get(c.user).push(c);
  }
  let expected = 0;
  let delivered = 0;
  let missingStaying = 0;
  let missingReconnected = 0;
  let unexpected = 0;
  const lateness = [];
  const latenessByPhase = {};
  const missingByPhase = {};
  let missingCrossNode = 0;
  const examples = [];
  for (const tab of tabs) {
    const mine = byUser.get(tab.user) ?? [];
    const ids = new Set(mine.map((c) => c.id));
    for (const c of mine) {
      expected++;
      const got = tab.have.get(c.id);
      if (got !== undefined) {
        delivered++;
        const late = Math.max(0, got - c.t201);
        lateness.push(late);
        latenessByPhase[c.phase] = Math.max(latenessByPhase[c.phase] ?? 0, late);
      } else {
        if (tab.reconnected) missingReconnected++;
        else missingStaying++;
        missingByPhase[c.phase] = (missingByPhase[c.phase] ?? 0) + 1;
        if (tab.urlAt(c.t201) !== c.node) missingCrossNode++;
        if (examples.length < 10) examples.push({ tab: tab.label, id: c.id, phase: c.phase, postedTo: c.node, tabOn: tab.urlAt(c.t201) });
      }
    }
    for (const id of tab.have.keys()) if (!ids.has(id)) unexpected++;
  }
  lateness.sort((a, b) => a - b);
  const duplicates = tabs.reduce((n, t) => n + t.duplicates, 0);
  const outOfOrder = tabs.reduce((n, t) => n + t.outOfOrder, 0);
  const missing = expected - delivered;
  return {
    expected,
    delivered,
    deliveredPct: expected ? Math.round((10000 * delivered) / expected) / 100 : 100,
    missing,
    missingOnStayingTabs: missingStaying,
    missingOnReconnectedTabs: missingReconnected,
    missingCrossNode,
    missingByPhase,
    duplicates,
    outOfOrder,
    unexpected,
    latenessMs: { p50: round(quantile(lateness, 0.5)), p99: round(quantile(lateness, 0.99)), max: round(lateness.at(-1)) },
    maxLatenessByPhaseMs: Object.fromEntries(Object.entries(latenessByPhase).map(([k, v]) => [k, round(v)])),
    tabsReconnected: tabs.filter((t) => t.reconnected).length,
    tabsWithLoss: tabs.filter((t) => (byUser.get(t.user) ?? []).some((c) => !t.have.has(c.id))).length,
    fetchedWithList: tabs.reduce((n, t) => n + t.fetched, 0),
    cursorJumps: tabs.reduce((n, t) => n + t.cursorJumps, 0),
    disconnectReasons: sumMaps(tabs.map((t) => t.disconnects)),
    connectErrors: sumMaps(tabs.map((t) => t.connectErrors)),
    missingExamples: examples,
    duplicateExamples: tabs.flatMap((t) => t.duplicateIds.map((id) => ({ tab: t.label, id }))).slice(0, 5),
    outOfOrderExamples: tabs.flatMap((t) => t.outOfOrderIds.map((o) => ({ tab: t.label, ...o }))).slice(0, 5),
  };
}

function sumMaps(maps) {
  const out = {};
  for (const m of maps) for (const [k, v] of Object.entries(m)) out[k] = (out[k] ?? 0) + v;
  return out;
}

/** WARN and ERROR lines of a node's log, counted by message (timestamps and ids stripped). */
export function logSummary(logs) {
  const lines = logs.split('\n').filter((l) => /\b(WARN|ERROR)\b/.test(l));
  const key = (l) =>
    l
      .replace(/^\S+\s+/, '') // timestamp
      .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, '<id>')
      .replace(/\b(sid|user|id)=\S+/g, '$1=…')
      .replace(/\d+(\.\d+)?(ms|s|µs)\b/g, 'N$2')
      .replace(/=\d+\b/g, '=N')
      .slice(0, 200);
  const counts = countBy(lines, key);
  const top = Object.entries(counts).sort((a, b) => b[1] - a[1]).slice(0, 6).map(([line, n]) => ({ n, line }));
  return {
    warn: lines.filter((l) => /\bWARN\b/.test(l)).length,
    error: lines.filter((l) => /\bERROR\b/.test(l)).length,
    top,
  };
}

// ---------------------------------------------------------------------------------------------
// The scenario

/**
 * Runs one fault scenario and resolves with its result object (never throws for losses; throws
 * when the scenario cannot be set up). Options: { db, faults, quick, keep, log, ...preset overrides }.
 */
export async function runFaults(options = {}) {
  const preset = { ...(options.quick ? PRESETS.quick : PRESETS.full), ...(options.overrides ?? {}) };
  const db = options.db ?? 'sqlite';
  const faults = options.faults ?? ['redis-kill', 'node-kill'];
  const log = options.log ?? ((m) => console.error(m));
  const t0 = now();
  const elapsed = () => ((now() - t0) / 1000).toFixed(1);
  const say = (m) => log(`[faults ${elapsed()}s] ${m}`);

  const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sio-faults-'));
  const resources = []; // async cleanups, run in reverse order
  const tabs = [];
  const crowd = [];
  const nodes = [];
  let keepDir = !!options.keep;
  try {
    // Services: a private redis-server (restartable on its port), maybe a delaying proxy, the database.
    const redis = new RedisServer(await stablePort());
    await redis.start();
    track(redis.child);
    resources.push(() => redis.stop('SIGKILL'));

    let proxy = null;
    if (faults.includes('redis-slow')) {
      proxy = await new DelayProxy(redis.port).start();
      resources.push(() => proxy.stop());
    }

    let databaseUrl;
    if (db === 'postgres') {
      requirePostgres();
      const pg = createDatabase();
      exitCleanups.add(pg.drop);
      resources.push(() => {
        pg.drop();
        exitCleanups.delete(pg.drop);
      });
      databaseUrl = pg.url;
    } else {
      databaseUrl = `sqlite://${path.join(runDir, 'shared.db')}`; // absolute: sqlite:///…
    }

    const secret = randomBytes(24).toString('hex');
    const apiKey = `key-${randomBytes(16).toString('hex')}`;
    const shared = {
      HOST: '127.0.0.1',
      DATABASE_URL: databaseUrl,
      REDIS_URL: proxy ? proxy.url : redis.url,
      REDIS_PREFIX: `sio-faults-${randomBytes(6).toString('hex')}`,
      JWT_SECRET: secret,
      API_KEYS: apiKey,
      SHUTDOWN_TIMEOUT_SECS: '3',
    };
    // One after the other: each applies the migrations on start.
    resources.push(() => Promise.all(nodes.map((n) => n.kill())));
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      const node = await startNode({ name: `node${i + 1}`, env: nodeEnv({ ...shared, PORT: String(port) }), dir: path.join(runDir, `node${i + 1}`) });
      nodes.push(node);
    }
    say(`3 nodes up (${BIN}), ${db}, Redis ${shared.REDIS_URL}${proxy ? ' (through the delaying proxy)' : ''}`);

    // The load balancer: a tab stays on its node while that node lives, else takes the next one alive.
    const pickFrom = (home) => () => {
      for (let k = 0; k < nodes.length; k++) {
        const n = nodes[(home + k) % nodes.length];
        if (n.alive) return n.url;
      }
      return nodes[home].url;
    };

    // Tabs: user u's tab k on node (u + k) mod 3, so one user's tabs are on different nodes.
    const users = Array.from({ length: preset.users }, (_, u) => `u${u}-${randomBytes(3).toString('hex')}`);
    for (let u = 0; u < users.length; u++) {
      const tok = signToken(users[u], { secret, ttlSecs: 4 * 3600 });
      for (let k = 0; k < preset.tabs; k++) {
        tabs.push(new CarefulTab({ label: `${users[u]}#${k}`, user: users[u], token: tok, pickUrl: pickFrom((u + k) % 3), onLog: say }));
      }
    }
    for (let i = 0; i < tabs.length; i += 20) await Promise.all(tabs.slice(i, i + 20).map((t) => t.connect()));
    say(`${tabs.length} tabs registered`);

    // Posting: `rate` per second, round-robin over the nodes alive, users in turn. The node
    // moves on by one more after each round over the users, so that every user's notifications
    // come from every node (with U a multiple of 3, plain i mod 3 would tie each user to one node).
    const created = [];
    const posts = []; // { phase, status, ms, node }
    let phase = 'warm-up';
    const phases = [{ name: phase, start: now() }];
    const enter = (name) => {
      phase = name;
      phases.push({ name, start: now() });
      say(`phase ${name}`);
    };
    const inFlight = new Set();
    const post = (node, user, seq) => {
      const p = (async () => {
        const ph = phase;
        const body = { userId: user, type: 'fault-test', title: `n${seq}`, message: `notification ${seq} (${ph})` };
        const res = await postNotification(node.url, apiKey, body);
        posts.push({ phase: ph, status: res.status || res.error, ms: res.ms, node: node.url });
        if (res.status === 201) created.push({ id: res.body.id, user, t201: now(), phase: ph, node: node.url });
      })();
      inFlight.add(p);
      p.finally(() => inFlight.delete(p));
      return p;
    };
    let seq = 0;
    let posting = true;
    const poster = (async () => {
      const start = now();
      const interval = 1000 / preset.rate;
      for (let i = 0; posting && i < preset.rate * 900; i++) {
        const wait = start + i * interval - now();
        if (wait > 0) await sleep(wait);
        if (!posting) break;
        const alive = nodes.filter((n) => n.alive);
        const node = alive[(seq + Math.floor(seq / users.length)) % alive.length];
        if (inFlight.size < 1000) post(node, users[seq % users.length], seq++);
      }
    })();

    // Faults, in their canonical order.
    await sleep(preset.warmSecs * 1000);
    const extra = {};
    if (faults.includes('redis-kill')) {
      enter('redis-down');
      await redis.stop('SIGKILL');
      await sleep(preset.outageSecs * 1000);
      await redis.start();
      track(redis.child);
      enter('redis-back');
      await sleep(preset.recoverSecs * 1000);
    }
    if (faults.includes('redis-slow')) {
      enter('redis-slow');
      proxy.delayMs = preset.slowDelayMs;
      await sleep(preset.slowSecs * 1000);
      proxy.delayMs = 0;
      enter('redis-fast');
      await sleep(preset.recoverSecs * 1000);
      extra.proxyDelayedChunks = proxy.delayedChunks;
    }
    if (faults.includes('overload')) {
      enter('overload');
      const target = nodes.find((n) => n.alive);
      const burstStart = now();
      // Many sockets at once on the same node (users of their own, not measured) ...
      const crowdDone = (async () => {
        const results = await Promise.allSettled(
          Array.from({ length: preset.crowd }, (_, i) => {
            const tab = new CarefulTab({ label: `crowd${i}`, user: `crowd${i}`, token: signToken(`crowd-${i}-${randomBytes(3).toString('hex')}`, { secret }), pickUrl: () => target.url });
            crowd.push(tab);
            return tab.connect(20000);
          }),
        );
        return countBy(results, (r) => (r.status === 'fulfilled' ? 'registered' : r.reason.message.replace(/^crowd\d+: /, '')));
      })();
      // ... and a burst of notifications for the measured users, as fast as they are accepted.
      let next = 0;
      const workers = Array.from({ length: preset.burstInFlight }, async () => {
        while (next < preset.burst && now() - burstStart < 120000) {
          next++;
          await post(target, users[seq % users.length], seq++);
        }
      });
      await Promise.all(workers);
      extra.burstMs = round(now() - burstStart);
      extra.crowd = await crowdDone;
      for (const c of crowd) c.close();
      say(`burst of ${preset.burst} to ${target.name} took ${extra.burstMs} ms; crowd ${JSON.stringify(extra.crowd)}`);
      enter('overload-over');
      await sleep(preset.recoverSecs * 1000);
    }
    if (faults.includes('node-stall')) {
      // A node that cannot run for a while: its Redis subscription, its sockets and the POSTs
      // sent to it all wait, as they would behind a long GC pause or a starved CPU.
      const frozen = nodes.filter((n) => n.alive)[1];
      enter('node-stalled');
      frozen.proc.child.kill('SIGSTOP');
      await sleep(preset.stallSecs * 1000);
      frozen.proc.child.kill('SIGCONT');
      say(`${frozen.name} stopped for ${preset.stallSecs} s`);
      enter('node-resumed');
      await sleep(preset.recoverSecs * 1000);
    }
    if (faults.includes('node-kill')) {
      const victim = nodes.filter((n) => n.alive).at(-1);
      enter('node-killed');
      await victim.kill('SIGKILL');
      say(`${victim.name} SIGKILLed`);
      await sleep(preset.afterKillSecs * 1000);
    }

    // Stop posting, let in-flight POSTs answer, then wait (bounded) for every tab to be complete.
    posting = false;
    await poster;
    await Promise.race([Promise.allSettled([...inFlight]), sleep(15000)]);
    enter('settle');
    const byUser = new Map();
    for (const c of created) byUser.set(c.user, [...(byUser.get(c.user) ?? []), c.id]);
    const complete = () => tabs.every((t) => (byUser.get(t.user) ?? []).every((id) => t.have.has(id)));
    const settleEnd = now() + preset.settleSecs * 1000;
    while (now() < settleEnd && !complete()) await sleep(200);
    await sleep(500); // a late duplicate still counts
    const settledMs = round(now() - phases.at(-1).start);

    const m = measure(tabs, created);
    const postStats = {};
    const postsByPhase = {};
    for (const p of posts) (postsByPhase[p.phase] ??= []).push(p);
    for (const [ph, list] of Object.entries(postsByPhase)) {
      const ms = list.map((p) => p.ms).sort((a, b) => a - b);
      postStats[ph] = { count: list.length, status: countBy(list, (p) => p.status), p50Ms: round(quantile(ms, 0.5)), p99Ms: round(quantile(ms, 0.99)), maxMs: round(ms.at(-1)) };
    }
    const pass = m.missing === 0 && m.duplicates === 0 && m.outOfOrder === 0;
    keepDir ||= !pass; // a failed run keeps its node logs for a look
    const result = {
      scenario: { db, faults, quick: !!options.quick, nodes: 3, users: preset.users, tabsPerUser: preset.tabs, rate: preset.rate, bin: BIN },
      pass,
      posted: posts.length,
      answered201: created.length,
      ...m,
      settledMs,
      phases: phases.map((p, i) => ({ name: p.name, fromS: +((p.start - t0) / 1000).toFixed(1), toS: +(((phases[i + 1]?.start ?? now()) - t0) / 1000).toFixed(1) })),
      posts: postStats,
      ...extra,
      nodeLogs: Object.fromEntries(nodes.map((n) => [n.name, logSummary(n.logs())])),
      runDir: keepDir ? runDir : null,
      durationS: +((now() - t0) / 1000).toFixed(1),
    };
    for (const n of nodes) fs.writeFileSync(path.join(runDir, `${n.name}.log`), n.logs());
    return result;
  } finally {
    for (const t of [...tabs, ...crowd]) t.close();
    for (const f of resources.reverse()) {
      try { await f(); } catch (e) { log(`cleanup: ${e.message}`); }
    }
    if (!keepDir) fs.rmSync(runDir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Output

export function formatTable(r) {
  const s = r.scenario;
  const lines = [];
  lines.push(`fault scenario: ${s.faults.join(' + ')} on ${s.db}; 3 nodes, ${s.users} users × ${s.tabsPerUser} tabs, ${s.rate}/s${s.quick ? ' (quick)' : ''}`);
  lines.push(`  phases: ${r.phases.map((p) => `${p.name} ${p.fromS}–${p.toS}s`).join(', ')}`);
  lines.push(`  posted ${r.posted}, answered 201: ${r.answered201}`);
  const row = (k, v) => lines.push(`  ${k.padEnd(24)} ${v}`);
  row('delivered', `${r.deliveredPct} %  (${r.delivered} of ${r.expected})`);
  row('missing', `${r.missing}  (tabs that stayed: ${r.missingOnStayingTabs}, reconnected tabs: ${r.missingOnReconnectedTabs}; cross-node: ${r.missingCrossNode})`);
  row('duplicates', r.duplicates);
  row('out of order', r.outOfOrder);
  row('unexpected (no 201)', r.unexpected);
  row('lateness ms', `p50 ${r.latenessMs.p50}, p99 ${r.latenessMs.p99}, max ${r.latenessMs.max}`);
  row('max lateness by phase', JSON.stringify(r.maxLatenessByPhaseMs));
  if (r.missing) row('missing by phase', JSON.stringify(r.missingByPhase));
  row('tabs reconnected', `${r.tabsReconnected}; with a loss: ${r.tabsWithLoss}; read with list: ${r.fetchedWithList}`);
  row('disconnect reasons', JSON.stringify(r.disconnectReasons));
  if (Object.keys(r.connectErrors).length) row('connect errors', JSON.stringify(r.connectErrors));
  lines.push('  POST /api/notifications per phase:');
  for (const [ph, p] of Object.entries(r.posts)) {
    lines.push(`    ${ph.padEnd(14)} ${String(p.count).padStart(5)}  p50 ${p.p50Ms} ms, p99 ${p.p99Ms} ms, max ${p.maxMs} ms  ${JSON.stringify(p.status)}`);
  }
  for (const [name, l] of Object.entries(r.nodeLogs)) {
    lines.push(`  ${name} log: ${l.warn} WARN, ${l.error} ERROR${l.top.length ? '; most frequent:' : ''}`);
    for (const t of l.top) lines.push(`    ${String(t.n).padStart(5)} × ${t.line}`);
  }
  if (r.runDir) lines.push(`  node logs kept in ${r.runDir}`);
  lines.push(`  => ${r.pass ? 'PASS' : 'FAIL'}: ${r.deliveredPct} % delivered, ${r.missing} missing, ${r.duplicates} duplicates, ${r.outOfOrder} out of order (${r.durationS} s)`);
  return lines.join('\n');
}

async function main() {
  let o;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error(e.message);
    process.exit(2);
  }
  if (o.help) {
    process.stdout.write(HELP);
    return;
  }
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130)); // 'exit' kills the children
  let r;
  try {
    r = await runFaults({ db: o.db, faults: o.faults, quick: o.quick, keep: o.keep, overrides: o.overrides, log: o.jsonOnly ? () => {} : undefined });
  } catch (e) {
    console.error(`fault scenario could not run: ${e.message}`);
    process.exit(2);
  }
  console.log(JSON.stringify(r));
  if (!o.jsonOnly) console.error(formatTable(r));
  process.exit(r.pass ? 0 : 1);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
