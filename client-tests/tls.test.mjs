// Issue 16, point 1: TLS to PostgreSQL and Redis, for real. The test makes a private CA (and a
// second, unrelated one) with openssl, starts its own PostgreSQL cluster with ssl=on (and a
// pg_hba.conf that takes TLS connections only) and its own redis-server on a TLS port only, then:
// two gateway nodes on them (sslmode=verify-full + sslrootcert, rediss:// + REDIS_CA_FILE)
// deliver a notification across nodes; each server is refused at start when the CA given is the
// unrelated one; sslmode=require and verify-ca work; sslmode=require against a server without TLS
// fails at once.
//
// Needs openssl, PostgreSQL's server binaries (/usr/lib/postgresql/<version>/bin/initdb, as in
// Debian's postgresql package) and redis-server built with TLS (Debian's redis-server). When
// run as root, PostgreSQL runs as the `postgres` user (initdb refuses root). Everything lives in
// one temp dir, removed at the end with the servers stopped, also when a step fails.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";
import {
  describe, it, before, after, startGateway, spawnGateway, waitExit, connectAndRegistered, waitFor, uid, sleep, BIN,
} from "./fixture.mjs";
import { postNotification, readyz, stablePort } from "./cluster-fixture.mjs";

const PACKAGES = "Debian/Ubuntu: apt-get install openssl postgresql redis-server";

// Runs a setup command (bounded); throws with its output when it fails.
function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 60000, ...opts });
  if (r.error?.code === "ENOENT") throw new Error(`${cmd} is needed by the TLS tests: ${PACKAGES}`);
  if (r.error) throw new Error(`${cmd} ${args.join(" ")}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${r.status}:\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

// The bin folder of the newest PostgreSQL server installed, or the one on PATH.
function postgresBin() {
  const root = "/usr/lib/postgresql";
  const versions = fs.existsSync(root)
    ? fs.readdirSync(root).filter((v) => fs.existsSync(path.join(root, v, "bin", "initdb")))
    : [];
  versions.sort((a, b) => Number(b) - Number(a));
  if (versions.length) return path.join(root, versions[0], "bin");
  const onPath = spawnSync("sh", ["-c", "command -v initdb"], { encoding: "utf8" }).stdout.trim();
  if (onPath) return path.dirname(onPath);
  throw new Error(`PostgreSQL's initdb and postgres are needed by the TLS tests: ${PACKAGES}`);
}

// ---------------------------------------------------------------------------
// Certificates

// A self-signed CA: { pem, key } paths.
function makeCa(dir, name) {
  const pem = path.join(dir, `${name}.pem`);
  const key = path.join(dir, `${name}.key`);
  run("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
    "-subj", `/CN=sio-gateway test ${name}`, "-keyout", key, "-out", pem,
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  return { pem, key };
}

// A server certificate for 127.0.0.1 and localhost signed by `ca`: { pem, key } paths.
function makeServerCert(dir, ca) {
  const key = path.join(dir, "server.key");
  const csr = path.join(dir, "server.csr");
  const pem = path.join(dir, "server.pem");
  const ext = path.join(dir, "server.ext");
  fs.writeFileSync(
    ext,
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n" +
      "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
  );
  run("openssl", [
    "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
    "-subj", "/CN=localhost", "-keyout", key, "-out", csr,
  ]);
  run("openssl", [
    "x509", "-req", "-in", csr, "-CA", ca.pem, "-CAkey", ca.key, "-CAcreateserial", "-days", "2",
    "-extfile", ext, "-out", pem,
  ]);
  fs.chmodSync(key, 0o600);
  return { pem, key };
}

// ---------------------------------------------------------------------------
// Servers (each a child process we own: { child, exited, logs() })

function own(child) {
  let logs = "";
  child.stdout?.on("data", (d) => (logs += d));
  child.stderr?.on("data", (d) => (logs += d));
  const exited = new Promise((resolve) => {
    child.on("exit", (code, signal) => resolve(code ?? signal));
    child.on("error", (e) => resolve(e));
  });
  let done = false;
  exited.then(() => (done = true));
  return { child, exited, logs: () => logs, hasExited: () => done };
}

// Stops `proc` with `signal`, SIGKILL after 5 s; resolves once it has exited.
async function stop(proc, signal) {
  if (!proc || proc.hasExited()) return;
  proc.child.kill(signal);
  const timer = setTimeout(() => proc.child.kill("SIGKILL"), 5000);
  await proc.exited;
  clearTimeout(timer);
}

// Polls `ready()` every 100 ms for `ms`, failing early when `proc` exits.
async function waitReady(proc, what, ready, ms = 15000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (proc.hasExited()) throw new Error(`${what} exited (${await proc.exited}):\n${proc.logs()}`);
    if (await ready()) return;
    await sleep(100);
  }
  throw new Error(`${what} not ready within ${ms} ms:\n${proc.logs()}`);
}

// The uid and gid PostgreSQL runs as: ours, or the `postgres` user's when we are root.
function postgresUser() {
  if (process.getuid() !== 0) return {};
  const line = spawnSync("getent", ["passwd", "postgres"], { encoding: "utf8" }).stdout.trim();
  if (!line) throw new Error(`running as root, PostgreSQL needs a postgres user to run as: ${PACKAGES}`);
  const [, , uid, gid] = line.split(":");
  return { uid: Number(uid), gid: Number(gid) };
}

// A PostgreSQL cluster in `dir` on 127.0.0.1:`port`, TLS only, trusting every local user.
async function startPostgres(dir, port, cert) {
  const bin = postgresBin();
  const user = postgresUser();
  const data = path.join(dir, "data");
  // Its own copies of the certificate and key, owned by the user it runs as (key mode 0600).
  const certFile = path.join(dir, "server.pem");
  const keyFile = path.join(dir, "server.key");
  fs.copyFileSync(cert.pem, certFile);
  fs.copyFileSync(cert.key, keyFile);
  fs.chmodSync(keyFile, 0o600);
  if (user.uid !== undefined) {
    for (const p of [dir, certFile, keyFile]) fs.chownSync(p, user.uid, user.gid);
    fs.chmodSync(path.dirname(dir), 0o711); // the temp dir, so that `postgres` can reach `dir`
  }
  run(path.join(bin, "initdb"), ["-D", data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C"], {
    cwd: dir,
    ...user,
  });
  // hostssl only: a connection without TLS is refused, so the gateway's working proves TLS.
  fs.writeFileSync(path.join(data, "pg_hba.conf"), "local all all trust\nhostssl all all 127.0.0.1/32 trust\n");
  const proc = own(
    spawn(
      path.join(bin, "postgres"),
      [
        "-D", data, "-p", String(port), "-c", "listen_addresses=127.0.0.1", "-c", `unix_socket_directories=${dir}`,
        "-c", "ssl=on", "-c", `ssl_cert_file=${certFile}`, "-c", `ssl_key_file=${keyFile}`, "-c", "fsync=off",
      ],
      { cwd: dir, stdio: ["ignore", "pipe", "pipe"], ...user },
    ),
  );
  const isReady = path.join(bin, "pg_isready");
  await waitReady(proc, "postgres", async () =>
    spawnSync(isReady, ["-q", "-h", "127.0.0.1", "-p", String(port), "-t", "1"], { timeout: 3000 }).status === 0,
  );
  return proc;
}

// True if a TLS client trusting `ca` gets PONG from 127.0.0.1:`port`.
function tlsPing(port, ca) {
  return new Promise((resolve) => {
    const sock = tls.connect({ host: "127.0.0.1", port, ca: fs.readFileSync(ca), servername: "localhost" });
    const timer = setTimeout(() => sock.destroy(), 1000);
    let answer = "";
    sock.on("secureConnect", () => sock.write("PING\r\n"));
    sock.on("data", (d) => {
      answer += d;
      if (answer.includes("\r\n")) sock.end();
    });
    sock.on("error", () => {});
    sock.on("close", () => {
      clearTimeout(timer);
      resolve(answer.startsWith("+PONG"));
    });
  });
}

// A redis-server with TLS only (no plain port) on 127.0.0.1:`port`.
async function startRedis(dir, port, cert, ca) {
  const proc = own(
    spawn(
      "redis-server",
      [
        "--port", "0", "--tls-port", String(port), "--bind", "127.0.0.1", "--tls-cert-file", cert.pem,
        "--tls-key-file", cert.key, "--tls-ca-cert-file", ca.pem, "--tls-auth-clients", "no", "--save", "",
        "--appendonly", "no", "--dir", dir,
      ],
      { cwd: dir, stdio: ["ignore", "pipe", "pipe"] },
    ),
  );
  const early = await Promise.race([proc.exited, sleep(100)]);
  if (early instanceof Error && early.code === "ENOENT") throw new Error(`redis-server is needed by the TLS tests: ${PACKAGES}`);
  await waitReady(proc, "redis-server", () => tlsPing(port, ca.pem));
  return proc;
}

// ---------------------------------------------------------------------------

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sio-gateway-tls-"));
let ca; // the CA that signed both servers' certificates
let otherCa; // an unrelated CA
let postgres;
let redis;
let pgPort;
let redisPort;
const password = `pw-${randomBytes(6).toString("hex")}`; // in the refused URLs; must never be printed

// Kills the servers even when the runner exits without running `after` (synchronous, best effort).
process.on("exit", () => {
  for (const p of [postgres, redis]) if (p && !p.hasExited()) p.child.kill("SIGKILL");
  fs.rmSync(tmp, { recursive: true, force: true });
});

const pgUrl = (query, auth = "postgres") => `postgres://${auth}@127.0.0.1:${pgPort}/postgres?${query}`;
const verifyFull = (caFile) => pgUrl(`sslmode=verify-full&sslrootcert=${encodeURIComponent(caFile)}`);

// A gateway expected to refuse to start: { code, ms, logs }.
async function refusedStart(env) {
  const dir = fs.mkdtempSync(path.join(tmp, "gateway-"));
  const started = Date.now();
  const proc = spawnGateway({
    dir,
    env: {
      ...process.env,
      HOST: "127.0.0.1",
      PORT: "0",
      JWT_SECRET: randomBytes(24).toString("hex"),
      API_KEYS: `key-${uid()}`,
      REDIS_URL: "",
      REDIS_CA_FILE: "",
      NO_COLOR: "1",
      ...env,
    },
  });
  try {
    const code = await waitExit(proc, 15000);
    return { code, ms: Date.now() - started, logs: proc.logs() };
  } finally {
    if (!proc.hasExited()) proc.child.kill("SIGKILL");
  }
}

before(async () => {
  try {
    ca = makeCa(tmp, "ca");
    otherCa = makeCa(tmp, "other-ca");
    const cert = makeServerCert(tmp, ca);
    pgPort = await stablePort();
    do redisPort = await stablePort();
    while (redisPort === pgPort);
    const pgDir = path.join(tmp, "pg");
    fs.mkdirSync(pgDir);
    postgres = await startPostgres(pgDir, pgPort, cert);
    redis = await startRedis(tmp, redisPort, cert, ca);
  } catch (e) {
    await Promise.all([stop(postgres, "SIGINT"), stop(redis, "SIGTERM")]);
    throw e;
  }
});

after(async () => {
  // SIGINT is PostgreSQL's fast shutdown (SIGTERM would wait for its clients).
  await Promise.all([stop(postgres, "SIGINT"), stop(redis, "SIGTERM")]);
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe("TLS to PostgreSQL and Redis", () => {
  it("two nodes on PostgreSQL (verify-full) and Redis (rediss://) deliver a notification across nodes", async () => {
    const shared = {
      DATABASE_URL: verifyFull(ca.pem),
      REDIS_URL: `rediss://127.0.0.1:${redisPort}`,
      REDIS_CA_FILE: ca.pem,
      REDIS_PREFIX: `sio-gw-tls-${uid()}`,
      JWT_SECRET: randomBytes(24).toString("hex"),
      API_KEYS: `key-${randomBytes(16).toString("hex")}`,
      SHUTDOWN_TIMEOUT_SECS: "3",
    };
    const nodes = [];
    try {
      nodes.push(await startGateway(shared));
      nodes.push(await startGateway(shared));
      const [A, B] = nodes;
      for (const gw of nodes) {
        const ready = await readyz(gw);
        assert.deepEqual(ready.body.checks, { database: "ok", redis: "ok" }, JSON.stringify(ready.body));
      }
      const alice = `alice-${uid()}`;
      const { socket } = await connectAndRegistered(B, { token: B.token(alice) });
      const received = waitFor(socket, "notification", 5000);
      const res = await postNotification(A, { userId: alice, type: "test", title: "over TLS", message: "hello" });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      const n = await received;
      assert.equal(n.id, res.body.id);
      assert.equal(n.title, "over TLS");
    } finally {
      await Promise.all(nodes.map((gw) => gw.stop()));
    }
  });

  it("sslmode=require (encrypted, unchecked) and verify-ca (CA checked, not the name) work too; no TLS is refused", () => {
    const migrate = (url) =>
      spawnSync(BIN, ["migrate"], {
        cwd: tmp,
        env: { ...process.env, DATABASE_URL: url, JWT_SECRET: randomBytes(24).toString("hex"), NO_COLOR: "1" },
        encoding: "utf8",
        timeout: 20000,
      });
    for (const url of [
      pgUrl("sslmode=require"),
      pgUrl(`sslmode=verify-ca&sslrootcert=${encodeURIComponent(ca.pem)}`),
      `postgres://postgres@localhost:${pgPort}/postgres?sslmode=verify-full&sslrootcert=${encodeURIComponent(ca.pem)}`,
    ]) {
      const r = migrate(url);
      assert.equal(r.status, 0, `${url}: ${r.stderr}`);
    }
    // The server takes TLS connections only (hostssl), so the ones above were encrypted.
    const plain = migrate(pgUrl("sslmode=disable"));
    assert.notEqual(plain.status, 0, plain.stderr);
    assert.match(plain.stderr, /no encryption/, plain.stderr);
  });

  it("a PostgreSQL certificate from another CA refuses the start, naming DATABASE_URL, password masked", async () => {
    const url = verifyFull(otherCa.pem).replace("//postgres@", `//postgres:${password}@`);
    const r = await refusedStart({ DATABASE_URL: url });
    assert.notEqual(r.code, 0, r.logs);
    assert.ok(r.ms < 10000, `exited after ${r.ms} ms`);
    assert.match(r.logs, /DATABASE_URL postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:/, r.logs);
    assert.match(r.logs, /certificate is not trusted/, r.logs);
    assert.match(r.logs, /sslrootcert/, r.logs);
    assert.ok(!r.logs.includes(password), "the password is printed");
  });

  it("a Redis certificate from another CA refuses the start, naming REDIS_URL, password masked", async () => {
    const r = await refusedStart({
      DATABASE_URL: verifyFull(ca.pem),
      REDIS_URL: `rediss://:${password}@127.0.0.1:${redisPort}`,
      REDIS_CA_FILE: otherCa.pem,
    });
    assert.notEqual(r.code, 0, r.logs);
    assert.ok(r.ms < 10000, `exited after ${r.ms} ms`);
    assert.match(r.logs, /REDIS_URL rediss:\/\/:\*\*\*@127\.0\.0\.1:/, r.logs);
    assert.match(r.logs, /certificate is not trusted/, r.logs);
    assert.match(r.logs, /REDIS_CA_FILE/, r.logs);
    assert.ok(!r.logs.includes(password), "the password is printed");
  });

  it("a Redis certificate the system does not trust (no REDIS_CA_FILE) refuses the start", async () => {
    const r = await refusedStart({ DATABASE_URL: verifyFull(ca.pem), REDIS_URL: `rediss://127.0.0.1:${redisPort}` });
    assert.notEqual(r.code, 0, r.logs);
    assert.match(r.logs, /REDIS_URL rediss:\/\/127\.0\.0\.1:\d+: the server's TLS certificate is not trusted/, r.logs);
  });

  // A PostgreSQL without TLS answers the client's SSLRequest with a single "N"; this stand-in
  // answers exactly that (the machine's shared PostgreSQL may well have TLS on).
  it("sslmode=require against a server without TLS fails at once with a clear message", async () => {
    const server = net.createServer((sock) => {
      sock.on("error", () => {});
      sock.once("data", () => sock.write("N"));
    });
    await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = server.address();
      const r = await refusedStart({ DATABASE_URL: `postgres://app:${password}@127.0.0.1:${port}/app?sslmode=require` });
      assert.notEqual(r.code, 0, r.logs);
      assert.ok(r.ms < 10000, `exited after ${r.ms} ms`);
      assert.match(r.logs, /DATABASE_URL postgres:\/\/app:\*\*\*@127\.0\.0\.1:\d+\/app\?sslmode=require: .*server does not support TLS/, r.logs);
      assert.ok(!r.logs.includes(password), "the password is printed");
    } finally {
      server.close();
    }
  });
});
