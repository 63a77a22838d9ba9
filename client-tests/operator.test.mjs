// What an operator meets (issue 16, points 2, 3 and 5): start-up refusals that name the
// variable (exit 2), `.env` read from the working directory only and refused when a line does
// not parse, the DEMO_DIR warning, MIGRATE_ON_START=false, DATABASE_MAX_CONNECTIONS, `token`
// where no secret exists, `sio-gateway config` with secrets masked, the `/` index, and
// /readyz: a Redis outage is 503 naming it (200 degraded with READYZ_REQUIRE_REDIS=false), and a
// hanging database is 503 within a second.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, it, before, after, BIN, spawnGateway, waitExit, startGateway, until, sleep } from "./fixture.mjs";
import {
  requirePostgres, createDatabase, postgresAdminUrl, RedisServer, TcpProxy, stablePort, withHostPort, psql, readyz,
} from "./cluster-fixture.mjs";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const SECRET = "s".repeat(48);
const tmpDir = (prefix) => fs.mkdtempSync(path.join(os.tmpdir(), prefix));

// Runs `<bin> args` in `cwd` with exactly `env` (plus PATH and HOME), bounded.
function run(args, { cwd, env = {} }) {
  const r = spawnSync(BIN, args, {
    cwd,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    encoding: "utf8",
    timeout: 20000,
  });
  return { status: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

// Parses `NAME=value` lines of `sio-gateway config`.
function parseConfig(stdout) {
  return Object.fromEntries(
    stdout
      .split("\n")
      .filter((l) => l.includes("="))
      .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );
}

describe("start-up refusals (exit 2, the variable named)", () => {
  let dir;
  before(() => {
    dir = tmpDir("sio-op-");
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("a CORS origin with a path, a zero per-user limit, missing folders and a bad pool size are refused", async () => {
    const base = { DATABASE_URL: `sqlite://${path.join(dir, "g.db")}`, JWT_SECRET: SECRET, PORT: "0", HOST: "127.0.0.1" };
    const missing = path.join(dir, "no-such-folder");
    const cases = [
      [{ CORS_ORIGINS: "https://app.example.com/" }, "CORS_ORIGINS"],
      [{ CORS_ORIGINS: "https://ok.example, app.example.com" }, "CORS_ORIGINS"],
      [{ SOCKET_MAX_CONNECTIONS_PER_USER: "0" }, "SOCKET_MAX_CONNECTIONS_PER_USER"],
      [{ DEMO_DIR: missing }, "DEMO_DIR"],
      [{ ADMIN_UI_DIR: missing }, "ADMIN_UI_DIR"],
      [{ DATABASE_MAX_CONNECTIONS: "0" }, "DATABASE_MAX_CONNECTIONS"],
      [{ DATABASE_MAX_CONNECTIONS: "ten" }, "DATABASE_MAX_CONNECTIONS"],
      [{ MIGRATE_ON_START: "perhaps" }, "MIGRATE_ON_START"],
      [{ READYZ_REQUIRE_REDIS: "perhaps" }, "READYZ_REQUIRE_REDIS"],
    ];
    for (const [env, named] of cases) {
      const t0 = Date.now();
      const proc = spawnGateway({ env: { PATH: process.env.PATH, ...base, ...env }, dir });
      assert.equal(await waitExit(proc), 2, `${JSON.stringify(env)}: ${proc.logs()}`);
      assert.match(proc.logs(), new RegExp(`configuration error: ${named}`), `${named} not named: ${proc.logs()}`);
      assert.ok(Date.now() - t0 < 5000, `${named}: took ${Date.now() - t0} ms`);
    }
    // Nothing was served or created on the way out.
    assert.ok(!fs.existsSync(path.join(dir, "g.db")), "the database was opened before the refusal");
  });

  it("a .env line that does not parse is refused naming the file and the line", async () => {
    const cwd = tmpDir("sio-op-env-");
    try {
      fs.writeFileSync(path.join(cwd, ".env"), `# settings\nPORT=0\nJWT_SECRET ${SECRET}\nHOST=127.0.0.1\n`);
      const proc = spawnGateway({ env: { PATH: process.env.PATH, DATABASE_URL: `sqlite://${path.join(cwd, "g.db")}` }, dir: cwd });
      assert.equal(await waitExit(proc), 2, proc.logs());
      assert.match(proc.logs(), /\.env: line 3 does not parse/, proc.logs());
      assert.ok(!fs.existsSync(path.join(cwd, "sio-gateway.secret")), "a secret was generated anyway");
    } finally {
      fs.rmSync(cwd, { recursive: true, force: true });
    }
  });

  it(".env is read from the working directory only, not from a parent folder", () => {
    const parent = tmpDir("sio-op-parent-");
    try {
      const child = path.join(parent, "child");
      fs.mkdirSync(child);
      fs.writeFileSync(path.join(parent, ".env"), "REDIS_PREFIX=from-the-parent\n");
      let r = run(["config"], { cwd: child });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(parseConfig(r.stdout).REDIS_PREFIX, "sio-gateway", r.stdout);
      fs.writeFileSync(path.join(child, ".env"), "REDIS_PREFIX=from-here\n");
      r = run(["config"], { cwd: child });
      assert.equal(parseConfig(r.stdout).REDIS_PREFIX, "from-here", r.stdout);
      // The environment still wins over the file.
      r = run(["config"], { cwd: child, env: { REDIS_PREFIX: "from-env" } });
      assert.equal(parseConfig(r.stdout).REDIS_PREFIX, "from-env", r.stdout);
    } finally {
      fs.rmSync(parent, { recursive: true, force: true });
    }
  });
});

describe("the command line", () => {
  it("`token` where no secret exists says so, exits non-zero and creates none", () => {
    const cwd = tmpDir("sio-op-token-");
    try {
      const r = run(["token", "--sub", "alice"], { cwd, env: { DATABASE_URL: `sqlite://${path.join(cwd, "g.db")}` } });
      assert.notEqual(r.status, 0, r.stdout);
      assert.equal(r.stdout, "", "no token printed");
      assert.match(r.stderr, /no JWT secret/);
      assert.match(r.stderr, /JWT_SECRET/);
      assert.deepEqual(fs.readdirSync(cwd), [], "token created files");
    } finally {
      fs.rmSync(cwd, { recursive: true, force: true });
    }
  });

  it("`config` prints every variable with secrets masked, and --help points to it", () => {
    const secrets = {
      JWT_SECRET: "jwtsecret-".repeat(4),
      API_KEYS: "apikey-one,apikey-two",
      DATABASE_URL: "postgres://gw:dbpassword@db.internal:5432/gw",
      REDIS_URL: "redis://:redispassword@cache.internal:6379",
      PROXY_URL: "http://backend.internal/events",
      PROXY_SECRET: "proxysecret-".repeat(3),
      WEBHOOK_URL: "http://backend.internal/hooks",
      WEBHOOK_SECRET: "webhooksecret-".repeat(3),
      METRICS_TOKEN: "metricstoken-1",
    };
    const cwd = tmpDir("sio-op-config-");
    try {
      const r = run(["config"], { cwd, env: { ...secrets, DATABASE_MAX_CONNECTIONS: "17", PORT: "4100" } });
      assert.equal(r.status, 0, r.stderr);
      for (const [name, value] of Object.entries(secrets)) {
        for (const part of value.split(/[,:@/]/).filter((p) => /secret|password|apikey|token/.test(p))) {
          assert.ok(!r.stdout.includes(part), `${name}'s ${part} printed:\n${r.stdout}`);
        }
      }
      const shown = parseConfig(r.stdout);
      assert.equal(shown.JWT_SECRET, "***");
      assert.equal(shown.API_KEYS, "***,***");
      assert.equal(shown.DATABASE_URL, "postgres://gw:***@db.internal:5432/gw");
      assert.equal(shown.REDIS_URL, "redis://:***@cache.internal:6379");
      assert.equal(shown.PROXY_SECRET, "***");
      assert.equal(shown.WEBHOOK_SECRET, "***");
      assert.equal(shown.METRICS_TOKEN, "***");
      assert.equal(shown.DATABASE_MAX_CONNECTIONS, "17");
      assert.equal(shown.PORT, "4100");
      assert.equal(shown.MIGRATE_ON_START, "true");
      assert.equal(shown.READYZ_REQUIRE_REDIS, "true");
      // Every variable of .env.example is listed.
      const documented = [...fs.readFileSync(path.join(repo, ".env.example"), "utf8").matchAll(/^# ([A-Z][A-Z0-9_]+)=/gm)]
        .map((m) => m[1])
        .filter((n) => n !== "RUST_LOG");
      for (const name of documented) assert.ok(name in shown, `${name} missing from config:\n${r.stdout}`);
      const help = run(["--help"], { cwd });
      assert.equal(help.status, 0);
      assert.match(help.stdout, /sio-gateway config/);
      assert.match(help.stdout, /\bconfig\b.*effective configuration/i);
    } finally {
      fs.rmSync(cwd, { recursive: true, force: true });
    }
  });
});

describe("serving", () => {
  it("GET / is a JSON index; the demo link and a loud warning only with DEMO_DIR", async () => {
    const version = fs.readFileSync(path.join(repo, "Cargo.toml"), "utf8").match(/^version = "([^"]+)"/m)[1];
    const plain = await startGateway();
    const demoDir = tmpDir("sio-op-demo-");
    let demo;
    try {
      const res = await fetch(`${plain.url}/`);
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), {
        name: "sio-gateway",
        version,
        links: { healthz: "/healthz", readyz: "/readyz", metrics: "/metrics" },
      });
      assert.doesNotMatch(plain.logs(), /DEMO_DIR is set/);
      demo = await startGateway({ DEMO_DIR: demoDir, ADMIN_UI_DIR: demoDir });
      const body = await (await fetch(`${demo.url}/`)).json();
      assert.equal(body.links.demo, "/demo/");
      assert.equal(body.links.admin, "/admin-ui/");
      await until(() => /DEMO_DIR is set.*ANY user.*never set DEMO_DIR in production/.test(demo.logs()), 3000, "the DEMO_DIR warning");
      assert.match(demo.logs(), /WARN/);
    } finally {
      await plain.stop();
      await demo?.stop();
      fs.rmSync(demoDir, { recursive: true, force: true });
    }
  });

  it("MIGRATE_ON_START=false refuses an unmigrated database naming the migration, and runs on a migrated one", async () => {
    const cwd = tmpDir("sio-op-migrate-");
    const env = {
      PATH: process.env.PATH,
      DATABASE_URL: `sqlite://${path.join(cwd, "g.db")}`,
      JWT_SECRET: SECRET,
      API_KEYS: "key-for-the-migration-test",
      HOST: "127.0.0.1",
      PORT: "0",
      MIGRATE_ON_START: "false",
    };
    try {
      const proc = spawnGateway({ env, dir: cwd });
      assert.equal(await waitExit(proc), 2, proc.logs());
      assert.match(proc.logs(), /MIGRATE_ON_START: migration 1 \(init\) is not applied/, proc.logs());
      const m = run(["migrate"], { cwd, env });
      assert.equal(m.status, 0, m.stderr);
      const { PORT: _port, HOST: _host, ...rest } = env;
      const gw = await startGateway(rest);
      try {
        assert.equal((await readyz(gw)).status, 200);
        assert.equal((await fetch(`${gw.url}/api/notifications?limit=1`, { headers: { authorization: "Bearer nope" } })).status, 401);
      } finally {
        await gw.stop();
      }
    } finally {
      fs.rmSync(cwd, { recursive: true, force: true });
    }
  });
});

describe("MIGRATE_ON_START=false on PostgreSQL", () => {
  it("refuses before `migrate`, then runs as a user that may only read and write rows", async () => {
    requirePostgres();
    const pg = createDatabase();
    const role = `sio_rw_${randomBytes(4).toString("hex")}`;
    const env = {
      PATH: process.env.PATH,
      DATABASE_URL: pg.url,
      JWT_SECRET: SECRET,
      API_KEYS: "key-for-the-postgres-migration-test",
      HOST: "127.0.0.1",
      PORT: "0",
      MIGRATE_ON_START: "false",
    };
    let gw;
    try {
      const proc = spawnGateway({ env, dir: os.tmpdir() });
      assert.equal(await waitExit(proc), 2, proc.logs());
      assert.match(proc.logs(), /MIGRATE_ON_START: migration 1 \(init\) is not applied/, proc.logs());
      assert.equal(psql(pg.url, "SELECT to_regclass('_sqlx_migrations') IS NULL"), "t", "the check created the migration table");
      // `migrate` applies them whatever MIGRATE_ON_START says.
      const m = run(["migrate"], { cwd: os.tmpdir(), env });
      assert.equal(m.status, 0, m.stderr);
      psql(
        pg.url,
        `CREATE ROLE ${role} LOGIN PASSWORD 'rw-only'; GRANT CONNECT ON DATABASE ${pg.name} TO ${role}; ` +
          `GRANT USAGE ON SCHEMA public TO ${role}; ` +
          `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${role}; ` +
          `GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO ${role}; REVOKE CREATE ON SCHEMA public FROM PUBLIC`,
      );
      const url = new URL(pg.url);
      url.username = role;
      url.password = "rw-only";
      gw = await startGateway({ DATABASE_URL: url.toString(), MIGRATE_ON_START: "false" });
      assert.equal((await readyz(gw)).status, 200);
      const res = await fetch(`${gw.url}/api/notifications`, {
        method: "POST",
        headers: { authorization: `Bearer ${gw.apiKey}`, "content-type": "application/json" },
        body: JSON.stringify({ userId: "rw", type: "t", title: "rows only", message: "stored" }),
      });
      assert.equal(res.status, 201, await res.text());
    } finally {
      await gw?.stop();
      pg.drop();
      psql(postgresAdminUrl(), `DROP ROLE IF EXISTS ${role}`);
    }
  });
});

describe("readiness", () => {
  it("Redis down: 503 naming redis by default; 200 degraded with READYZ_REQUIRE_REDIS=false; ok again once back", async () => {
    const redis = new RedisServer(await stablePort());
    await redis.start();
    const dir = tmpDir("sio-op-ready-");
    const common = { REDIS_URL: redis.url, REDIS_PREFIX: `sio-op-${path.basename(dir)}`, DATABASE_URL: `sqlite://${path.join(dir, "shared.db")}` };
    const lenient = await startGateway({ ...common, READYZ_REQUIRE_REDIS: "false" });
    const strict = await startGateway(common);
    try {
      for (const gw of [lenient, strict]) {
        const r = await readyz(gw);
        assert.equal(r.status, 200, JSON.stringify(r.body));
        assert.deepEqual(r.body, { status: "ok", checks: { database: "ok", redis: "ok" } });
      }
      await redis.stop();
      const t0 = Date.now();
      const degraded = await readyz(lenient);
      assert.ok(Date.now() - t0 < 1000, `took ${Date.now() - t0} ms`);
      assert.equal(degraded.status, 200, JSON.stringify(degraded.body));
      assert.deepEqual(degraded.body, { status: "degraded", checks: { database: "ok", redis: "failing" }, failing: ["redis"] });
      const refused = await readyz(strict);
      assert.equal(refused.status, 503, JSON.stringify(refused.body));
      assert.equal(refused.body.error.code, "unavailable");
      assert.equal(refused.body.error.message, "redis unavailable");
      assert.deepEqual(refused.body.checks, { database: "ok", redis: "failing" });
      await redis.start();
      for (const gw of [lenient, strict]) {
        await until(async () => (await readyz(gw)).body.status === "ok", 10000, `${gw.url} ready once Redis is back`);
      }
    } finally {
      await lenient.stop();
      await strict.stop();
      await redis.stop("SIGKILL");
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a hanging database is 503 within a second, and ready again once it answers", async () => {
    requirePostgres();
    const pg = createDatabase();
    const target = new URL(pg.url);
    const proxy = new HoldingProxy(await stablePort(), () => ({ host: target.hostname, port: Number(target.port || 5432) }));
    await proxy.start();
    const gw = await startGateway({ DATABASE_URL: withHostPort(pg.url, "127.0.0.1", proxy.port) });
    try {
      assert.equal((await readyz(gw)).status, 200);
      proxy.hold();
      for (let i = 0; i < 3; i++) {
        const t0 = Date.now();
        const r = await readyz(gw, { timeoutMs: 5000 });
        const took = Date.now() - t0;
        assert.ok(took < 1000, `readyz took ${took} ms while the database hangs`);
        assert.equal(r.status, 503, JSON.stringify(r.body));
        assert.equal(r.body.checks.database, "failing");
        assert.deepEqual(r.body.error.details, { database: ["no answer within 800 ms"] });
      }
      proxy.release();
      await until(async () => (await readyz(gw)).status === 200, 15000, "readyz 200 once the database answers");
    } finally {
      await gw.stop();
      await proxy.stop();
      pg.drop();
    }
  });

  it("DATABASE_MAX_CONNECTIONS bounds the PostgreSQL pool (default 10)", async () => {
    requirePostgres();
    const pg = createDatabase();
    const target = new URL(pg.url);
    // Connections the pool opens while the database hangs and 30 requests wait for one: as
    // many as the pool may hold, since none comes back.
    const poolSize = async (extra) => {
      const proxy = new HoldingProxy(await stablePort(), () => ({ host: target.hostname, port: Number(target.port || 5432) }));
      await proxy.start();
      const gw = await startGateway({ DATABASE_URL: withHostPort(pg.url, "127.0.0.1", proxy.port), ...extra });
      try {
        proxy.hold();
        const requests = Array.from({ length: 30 }, (_, i) =>
          fetch(`${gw.url}/api/notifications`, {
            method: "POST",
            headers: { authorization: `Bearer ${gw.apiKey}`, "content-type": "application/json" },
            body: JSON.stringify({ userId: `pool${i}`, type: "t", title: "pool", message: `n${i}` }),
            signal: AbortSignal.timeout(15000),
          }).then((r) => r.status, (e) => e.name),
        );
        await sleep(2000);
        const links = proxy.conns.size / 2;
        proxy.release();
        await Promise.all(requests);
        return links;
      } finally {
        await gw.stop();
        await proxy.stop();
      }
    };
    try {
      assert.equal(await poolSize({ DATABASE_MAX_CONNECTIONS: "2" }), 2);
      assert.equal(await poolSize({ DATABASE_MAX_CONNECTIONS: "13" }), 13);
      assert.equal(await poolSize({}), 10);
    } finally {
      pg.drop();
    }
  });
});

// A TCP proxy that can hold every byte in both directions (a database that hangs: its
// connections stay open, nothing answers) and let them through later in order.
class HoldingProxy extends TcpProxy {
  holding = false;
  held = [];

  forward(from, to) {
    from.on("data", (chunk) => {
      if (this.holding) this.held.push([to, chunk]);
      else if (!to.destroyed) to.write(chunk);
    });
    from.on("end", () => to.end());
  }

  hold() {
    this.holding = true;
  }

  release() {
    const held = this.held;
    this.held = [];
    for (const [to, chunk] of held) if (!to.destroyed) to.write(chunk);
    this.holding = false;
  }
}
