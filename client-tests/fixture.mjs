// Shared helpers for the black-box client tests of sio-gateway.
// Each test file starts its own gateway process(es) on a free port in a fresh temp dir,
// talks to it with the real socket.io-client, and stops it afterwards.
import { spawn, spawnSync } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as nodeTest from "node:test";
import { io } from "socket.io-client";

export { io };
export { describe, before, after, beforeEach, afterEach } from "node:test";

const here = path.dirname(fileURLToPath(import.meta.url));

// The binary under test: SIO_GATEWAY_BIN, else <repo>/target/release/sio-gateway.
export const BIN = process.env.SIO_GATEWAY_BIN
  ? path.resolve(process.env.SIO_GATEWAY_BIN)
  : path.resolve(here, "..", "target", "release", "sio-gateway");

// Loop tests over both transports (section 1: long-polling with upgrade, and WebSocket-only).
export const TRANSPORTS = [["websocket"], ["polling", "websocket"]];

// Pass as `arg` to ack() to emit the event with no argument at all.
export const NO_ARG = Symbol("no argument");

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const uid = () => randomBytes(4).toString("hex");
export const nowSecs = () => Math.floor(Date.now() / 1000);

// ---------------------------------------------------------------------------
// Logs on failure: every gateway started (and not yet stopped before the current
// test began) has its logs printed when a test wrapped by it() fails.

const liveGateways = new Set();
let gatewaysOfThisTest = new Set();

function printLogs(err) {
  for (const gw of gatewaysOfThisTest) {
    const logs = gw.logs();
    const tail = logs.length > 6000 ? "…" + logs.slice(-6000) : logs;
    console.error(`\n----- gateway ${gw.url} logs (test failed: ${err?.message}) -----\n${tail}\n-----`);
  }
}

// Sockets opened through connect()/connectAndRegistered() are closed after every test.
const openSockets = new Set();
export function closeAllSockets() {
  for (const s of openSockets) s.close();
  openSockets.clear();
}

// Closes `socket` (opened some other way than connect()) after the current test too.
export function closeAfterTest(socket) {
  openSockets.add(socket);
  return socket;
}

// it(name, [options], fn): node:test's it, printing gateway logs when the test fails
// and closing the sockets the test opened.
export function it(name, optsOrFn, maybeFn) {
  const fn = typeof optsOrFn === "function" ? optsOrFn : maybeFn;
  const opts = typeof optsOrFn === "function" ? {} : optsOrFn;
  return nodeTest.it(name, opts, async (t) => {
    gatewaysOfThisTest = new Set(liveGateways);
    try {
      return await fn(t);
    } catch (err) {
      printLogs(err);
      throw err;
    } finally {
      closeAllSockets();
    }
  });
}

// ---------------------------------------------------------------------------
// Gateway process

export async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// Builds the environment: process.env, then the defaults, then the caller's values
// (null deletes a variable).
function buildEnv(base, overrides) {
  const env = { ...process.env, ...base };
  for (const [k, v] of Object.entries(overrides)) {
    if (v === null || v === undefined) delete env[k];
    else env[k] = String(v);
  }
  return env;
}

// Spawns `<bin> serve` and collects its output; no waiting.
export function spawnGateway({ env, dir, args = ["serve"] }) {
  let logs = "";
  const child = spawn(BIN, args, { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] });
  child.stdout.on("data", (d) => (logs += d));
  child.stderr.on("data", (d) => (logs += d));
  const exited = new Promise((resolve) => {
    child.on("exit", (code, signal) => resolve(code ?? signal));
    child.on("error", (e) => {
      logs += `\nspawn error: ${e.message}`;
      resolve(`spawn error: ${e.message}`);
    });
  });
  let exitValue;
  exited.then((v) => (exitValue = v));
  return {
    child,
    exited,
    hasExited: () => exitValue !== undefined,
    logs: () => logs,
  };
}

// Waits until the process exits (bounded); resolves with its exit code, or throws.
export async function waitExit(proc, ms = 10000) {
  let timer;
  const timeout = new Promise((_, rej) => {
    timer = setTimeout(() => rej(new Error(`process still running after ${ms} ms\n${proc.logs()}`)), ms);
  });
  try {
    return await Promise.race([proc.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function waitHealthy(url, proc) {
  for (let i = 0; i < 100; i++) {
    if (proc.hasExited()) break;
    try {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  await sleep(50);
  const why = proc.hasExited() ? `exited (${await proc.exited})` : "did not answer /healthz 200 within 10 s";
  proc.child.kill("SIGKILL");
  throw new Error(`gateway ${why}; logs:\n${proc.logs()}`);
}

export async function startGateway(overrides = {}) {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sio-gateway-test-"));
  const defaults = {
    PORT: String(port),
    HOST: "127.0.0.1",
    DATABASE_URL: `sqlite://${path.join(dir, "gateway.db")}`, // absolute → sqlite:///…
    JWT_SECRET: randomBytes(24).toString("hex"), // 48 hex chars
    API_KEYS: `key-${randomBytes(16).toString("hex")}`,
    RUST_LOG: process.env.SIO_TEST_RUST_LOG ?? "info", // SIO_TEST_RUST_LOG=debug for more detail
    NO_COLOR: "1",
  };
  const env = buildEnv(defaults, overrides);
  const url = `http://127.0.0.1:${port}`;
  let proc;

  const gw = {
    url,
    port,
    dir,
    env,
    secret: env.JWT_SECRET ?? null,
    apiKey: env.API_KEYS ? env.API_KEYS.split(",")[0] : null,
    logs: () => (gw._previousLogs ?? "") + (proc ? proc.logs() : ""),
    token: (sub, opts = {}) => {
      const secret = opts.secret ?? gw.secret;
      if (!secret) throw new Error("this gateway has no JWT_SECRET known to the tests");
      return token(sub, { ...opts, secret });
    },
    // Resolves with the exit code; SIGKILL after 10 s. Removes the temp dir unless keepDir.
    stop: async (signal = "SIGTERM", { keepDir = false } = {}) => {
      liveGateways.delete(gw);
      if (!proc.hasExited()) {
        proc.child.kill(signal);
        const timer = setTimeout(() => proc.child.kill("SIGKILL"), 10000);
        await proc.exited;
        clearTimeout(timer);
      }
      if (!keepDir) fs.rmSync(dir, { recursive: true, force: true });
      return proc.exited;
    },
    // Stops the process and starts it again with the same dir, port and environment.
    restart: async () => {
      await gw.stop("SIGTERM", { keepDir: true });
      gw._previousLogs = gw.logs() + "\n----- restart -----\n";
      proc = spawnGateway({ env, dir });
      liveGateways.add(gw);
      gatewaysOfThisTest.add(gw);
      await waitHealthy(url, proc);
    },
  };

  proc = spawnGateway({ env, dir });
  liveGateways.add(gw);
  gatewaysOfThisTest.add(gw);
  try {
    await waitHealthy(url, proc);
  } catch (e) {
    liveGateways.delete(gw);
    throw e;
  }
  return gw;
}

// ---------------------------------------------------------------------------
// JWTs

const b64url = (obj) => Buffer.from(JSON.stringify(obj)).toString("base64url");

// Raw HMAC signing of any header/payload (for bad tokens: alg none, wrong secret, …).
// The signature uses the hash named by header.alg when it is HS256/384/512, else SHA-256.
export function signJwt(header, payload, secret) {
  const input = `${b64url(header)}.${b64url(payload)}`;
  const bits = { HS256: "sha256", HS384: "sha384", HS512: "sha512" }[header.alg] ?? "sha256";
  const sig = createHmac(bits, secret).update(input).digest("base64url");
  return `${input}.${sig}`;
}

// True if the HS256/384/512 signature of `jwt` checks with `secret`.
export function verifyJwt(jwt, secret) {
  const [h, p, sig] = jwt.split(".");
  const { header } = decodeJwt(jwt);
  const bits = { HS256: "sha256", HS384: "sha384", HS512: "sha512" }[header.alg];
  if (!bits) return false;
  return createHmac(bits, secret).update(`${h}.${p}`).digest("base64url") === sig;
}

export function decodeJwt(jwt) {
  const [h, p] = jwt.split(".");
  return {
    header: JSON.parse(Buffer.from(h, "base64url").toString()),
    payload: JSON.parse(Buffer.from(p, "base64url").toString()),
  };
}

// token(sub, { ttlSecs, rooms, iss, aud, nbf, exp, alg, secret, extra }).
// exp: null leaves the claim out; sub: undefined leaves it out.
export function token(sub, { ttlSecs = 3600, rooms, iss, aud, nbf, exp, alg = "HS256", secret, extra } = {}) {
  const iat = nowSecs();
  const payload = {};
  if (sub !== undefined) payload.sub = sub;
  payload.iat = iat;
  if (exp !== null) payload.exp = exp ?? iat + ttlSecs;
  if (rooms !== undefined) payload.rooms = rooms;
  if (iss !== undefined) payload.iss = iss;
  if (aud !== undefined) payload.aud = aud;
  if (nbf !== undefined) payload.nbf = nbf;
  Object.assign(payload, extra);
  return signJwt({ alg, typ: "JWT" }, payload, secret);
}

// `<bin> token …` with the gateway's environment and working directory; trimmed stdout.
export function cliToken(gw, args) {
  const r = spawnSync(BIN, ["token", ...args], { cwd: gw.dir, env: gw.env, encoding: "utf8", timeout: 20000 });
  if (r.status !== 0) {
    throw new Error(`sio-gateway token ${args.join(" ")} exited ${r.status}: ${r.stderr}${r.stdout}`);
  }
  return r.stdout.trim();
}

// ---------------------------------------------------------------------------
// Socket.IO client helpers

function makeSocket(gw, { token: tok, transports = ["websocket"], auth = {}, ...opts } = {}) {
  const socket = io(gw.url, {
    forceNew: true,
    reconnection: false,
    timeout: 5000,
    autoConnect: false,
    auth: { token: tok, ...auth },
    transports,
    ...opts,
  });
  openSockets.add(socket);
  return socket;
}

function connectSocket(socket, timeoutMs) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error(`no connect nor connect_error within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once("connect", () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once("connect_error", (err) => {
      clearTimeout(timer);
      socket.close();
      reject(new Error(err.message));
    });
    socket.connect();
  });
}

// Resolves with the connected socket, or rejects with Error(connect_error's message).
export function connect(gw, opts = {}, timeoutMs = 6000) {
  return connectSocket(makeSocket(gw, opts), timeoutMs);
}

// Resolves with { socket, registered } once the `registered` event arrived.
export async function connectAndRegistered(gw, opts = {}, timeoutMs = 6000) {
  const socket = makeSocket(gw, opts);
  const registered = waitFor(socket, "registered", timeoutMs); // before connecting
  registered.catch(() => {});
  await connectSocket(socket, timeoutMs);
  return { socket, registered: await registered };
}

// Resolves with the connect_error message; fails if the connection was accepted.
export async function connectError(gw, opts = {}) {
  try {
    await connect(gw, opts);
  } catch (e) {
    return e.message;
  }
  throw new Error("connection was accepted, expected a connect_error");
}

// Emits `event` with `arg` and resolves with the acknowledgement (bounded).
export function ack(socket, event, arg, timeoutMs = 5000) {
  const s = socket.timeout(timeoutMs);
  const p = arg === NO_ARG ? s.emitWithAck(event) : s.emitWithAck(event, arg);
  return p.catch((e) => {
    const shown = arg === NO_ARG ? "(no argument)" : String(JSON.stringify(arg)).slice(0, 200);
    throw new Error(`no ack for ${event} ${shown} within ${timeoutMs} ms (${e.message}; connected: ${socket.connected})`);
  });
}

// First payload of `event` (bounded).
export function waitFor(socket, event, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const handler = (payload) => {
      clearTimeout(timer);
      resolve(payload);
    };
    const timer = setTimeout(() => {
      socket.off(event, handler);
      reject(new Error(`no '${event}' event within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once(event, handler);
  });
}

// Array of payloads that fills as the events arrive.
export function collect(socket, event) {
  const list = [];
  socket.on(event, (payload) => list.push(payload));
  return list;
}

// True if no `event` arrived within ms.
export function noEvent(socket, event, ms = 300) {
  return new Promise((resolve) => {
    const handler = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      socket.off(event, handler);
      resolve(true);
    }, ms);
    socket.once(event, handler);
  });
}

// Waits until `cond()` is true, polling every 20 ms (bounded).
export async function until(cond, timeoutMs = 5000, what = "condition") {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await cond()) return;
    await sleep(20);
  }
  throw new Error(`${what} not met within ${timeoutMs} ms`);
}

// Asserts the error envelope { ok: false, error: { code, message, details? } }.
export function assertError(res, code) {
  if (!res || res.ok !== false || !res.error || res.error.code !== code || typeof res.error.message !== "string") {
    throw new Error(`expected { ok: false, error: { code: "${code}", message } }, got ${JSON.stringify(res)}`);
  }
  return res.error;
}

// Asserts that details[field] is a non-empty array of strings.
export function assertDetails(res, field) {
  const err = assertError(res, "validation_failed");
  const list = err.details?.[field];
  if (!Array.isArray(list) || list.length === 0 || !list.every((m) => typeof m === "string")) {
    throw new Error(`expected error.details.${field} to be a non-empty array of strings, got ${JSON.stringify(res)}`);
  }
  return err;
}

// Asserts { ok: true, data } and returns data.
export function assertOk(res) {
  if (!res || res.ok !== true || typeof res.data !== "object" || res.data === null) {
    throw new Error(`expected { ok: true, data }, got ${JSON.stringify(res)}`);
  }
  return res.data;
}

// Connects and joins `roomId`; resolves with the socket.
export async function joined(gw, sub, roomId, opts = {}) {
  const socket = await connect(gw, { token: gw.token(sub), ...opts });
  assertOk(await ack(socket, "joinRoom", { roomId }));
  return socket;
}

export const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;
export const ISO_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
