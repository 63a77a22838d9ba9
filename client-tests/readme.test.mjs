// The README followed literally works (issue 16, point 5). Every shell block (```sh, ```bash,
// ```shell, ```console) of README.md and of every README under examples/ and clients/js/ is read
// from the file as it stands and run with bash, in document order, as a reader at a terminal
// runs it:
//
// - Each file is one reader's session. Blocks run in a working directory that stands for the
//   repository root (for clients/js/README.md, for clients/js): a temporary folder of symlinks
//   to the repository's entries, so that what the commands create (sio-gateway.db, the generated
//   secret and key, npm's output) stays out of the shared tree. Its target/release/sio-gateway
//   is the binary under test (SIO_GATEWAY_BIN); clients/js is a copy. Only `cargo build` runs in
//   the repository itself (cargo would rebuild in another folder).
// - Shell variables a block sets are kept for the next blocks of the file (as in one terminal):
//   exported ones reach the programs started later, unexported ones do not. Each block runs with
//   `set -e`: every command in it must succeed, and the block must end within its time.
// - A block that runs a server in the foreground (the gateway, a receiver, a backend) runs in
//   the background here, is waited for until it answers, and is stopped when the next such
//   block starts or the file ends; processes a block leaves running with `&` are stopped then
//   too. What each block should have done is checked (RULES below): the gateway's answers, the
//   tokens, what a client receives, what a receiver prints.
// - The ports the READMEs name (3000, 3001, 3002, 8080, 8090) are replaced by free ports, in the
//   block's text and in PORT (the gateway's default port 3000 is taken from it); the database
//   the cluster block creates gets a unique name, Redis keys a unique REDIS_PREFIX, and both are
//   removed afterwards. The gateway's variables of .env.example are removed from the
//   environment, as in a reader's fresh terminal. These are the only changes to a block.
// - A line `X.mjs … # or: python3 X.py` is run a second time with the alternative.
// - A block the table does not know is run like any other and must succeed: a new block that
//   does not run fails this test. Blocks not run (the full test command, the fuzzer, the
//   command-line synopsis, console output) are listed with the reason, and what can be checked
//   of them without running them is checked.
//
// Needs the machine's PostgreSQL (127.0.0.1:5432, user postgres, trust) and Redis
// (127.0.0.1:6379), curl, openssl, createdb and python3, like the READMEs do. Never runs
// scripts/test.sh (it runs this file).
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, it, before, after } from "node:test";
import { BIN, freePort, io, sleep, decodeJwt, UUID_V7, ISO_MS } from "./fixture.mjs";
import { psql, deleteRedisPrefix, requireRedis } from "./cluster-fixture.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, "..");
const SHELL_LANGS = new Set(["sh", "bash", "shell", "console"]);
const README_PORTS = ["3000", "3001", "3002", "8080", "8090"];
const RUN_TIMEOUT_MS = 60000;
// The services the cluster block names, exactly.
const POSTGRES = "postgres://postgres@127.0.0.1:5432/postgres";
const REDIS = "redis://127.0.0.1:6379";
const READY_TIMEOUT_MS = 20000;

// ---------------------------------------------------------------------------
// The READMEs and their blocks

function readmes() {
  const found = ["README.md"];
  const walk = (dir) => {
    for (const e of fs.readdirSync(path.join(REPO, dir), { withFileTypes: true })) {
      if (e.name.startsWith(".") || ["node_modules", "target", "dist", "pack"].includes(e.name)) continue;
      const rel = path.join(dir, e.name);
      if (e.isDirectory()) walk(rel);
      else if (e.name === "README.md") found.push(rel);
    }
  };
  walk("examples");
  walk(path.join("clients", "js"));
  return found;
}

// Fenced blocks of a Markdown file: { lang, line (of the opening fence), text }.
function fencedBlocks(markdown) {
  const blocks = [];
  let open = null;
  markdown.split("\n").forEach((line, i) => {
    const fence = /^(\s*)(`{3,}|~{3,})\s*([\w+-]*)/.exec(line);
    if (!open) {
      if (fence) open = { indent: fence[1].length, fence: fence[2], lang: fence[3].toLowerCase(), line: i + 1, body: [] };
      return;
    }
    const close = /^\s*(`{3,}|~{3,})\s*$/.exec(line);
    if (close && close[1][0] === open.fence[0] && close[1].length >= open.fence.length) {
      blocks.push({ lang: open.lang, line: open.line, text: open.body.join("\n") });
      open = null;
      return;
    }
    const lead = /^\s*/.exec(line)[0].length;
    open.body.push(line.slice(Math.min(lead, open.indent)));
  });
  return blocks;
}

// The shell blocks of `rel`, each with its "# or:" variants after it.
function shellBlocks(rel) {
  const out = [];
  for (const b of fencedBlocks(fs.readFileSync(path.join(REPO, rel), "utf8"))) {
    if (!SHELL_LANGS.has(b.lang)) continue;
    const block = { ...b, file: rel, label: `${rel}:${b.line}` };
    if (b.lang === "console") {
      // `$ ` lines are commands, the rest is their output.
      const commands = b.text.split("\n").filter((l) => l.startsWith("$ ")).map((l) => l.slice(2));
      block.text = commands.join("\n");
      block.outputOnly = commands.length === 0;
    }
    out.push(block);
    const lines = block.text.split("\n");
    lines.forEach((l, i) => {
      const alt = /\bnode\s+(\S+\.mjs)(.*?)#\s*or:\s*(python3\s+\S+\.py)\s*$/.exec(l);
      if (!alt) return;
      const variant = [...lines];
      variant[i] = l.slice(0, alt.index) + alt[3] + alt[2].trimEnd();
      out.push({ ...block, text: variant.join("\n"), label: `${block.label} (its alternative: ${alt[3]})` });
    });
  }
  return out;
}

const firstCommand = (text) =>
  (text.split("\n").find((l) => l.trim() && !l.trim().startsWith("#")) ?? "").trim().slice(0, 70);

// ---------------------------------------------------------------------------
// Processes

// Pids of the live (not zombie) processes of process group `pgid`.
function groupMembers(pgid) {
  const pids = [];
  for (const d of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    let stat;
    try {
      stat = fs.readFileSync(`/proc/${d}/stat`, "utf8");
    } catch {
      continue;
    }
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" "); // state ppid pgrp …
    if (Number(f[2]) === pgid && f[0] !== "Z") pids.push(Number(d));
  }
  return pids;
}

const allGroups = new Set(); // every process group started here, for the exit handler
process.on("exit", () => {
  for (const g of allGroups) {
    try {
      process.kill(-g, "SIGKILL");
    } catch {
      // gone
    }
  }
});

// Runs `bash <script>` in its own process group; output collected.
function spawnBash(script, { cwd, env }) {
  const child = spawn("bash", [script], { cwd, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  const p = { child, pgid: child.pid, out: "", err: "", code: undefined };
  allGroups.add(p.pgid);
  child.stdout.on("data", (d) => (p.out += d));
  child.stderr.on("data", (d) => (p.err += d));
  p.exited = new Promise((resolve) => {
    child.on("exit", (code, signal) => resolve((p.code = code ?? signal)));
    child.on("error", (e) => resolve((p.code = `spawn error: ${e.message}`)));
  });
  p.stdoutEnded = new Promise((resolve) => child.stdout.on("end", resolve));
  return p;
}

// SIGTERM to the whole group, SIGKILL after 10 s.
async function stopGroup(p) {
  const signal = (s) => {
    try {
      process.kill(-p.pgid, s);
    } catch {
      // already gone
    }
  };
  signal("SIGTERM");
  const end = Date.now() + 10000;
  while (groupMembers(p.pgid).length > 0 && Date.now() < end) await sleep(50);
  if (groupMembers(p.pgid).length > 0) signal("SIGKILL");
  allGroups.delete(p.pgid);
}

const tail = (s, n = 3000) => (s.length > n ? "…" + s.slice(-n) : s);
const shown = (p) => `--- stdout ---\n${tail(p.out)}\n--- stderr ---\n${tail(p.err)}`;

// Parses the JSON values written one after another (curl prints bodies without newlines).
function jsonValues(text) {
  const values = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
    } else if (c === '"' && depth > 0) inString = true;
    else if (c === "{" || c === "[") {
      if (depth++ === 0) start = i;
    } else if ((c === "}" || c === "]") && depth > 0 && --depth === 0) {
      values.push(JSON.parse(text.slice(start, i + 1)));
    }
  }
  return values;
}

async function httpOk(url) {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
    return res.status === 200;
  } catch {
    return false;
  }
}

// A socket.io-client socket, connected and registered (bounded).
async function clientOf(url, token) {
  const socket = io(url, { auth: { token }, transports: ["websocket"], forceNew: true, reconnection: false, timeout: 5000 });
  const registered = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no registered from ${url} within 6 s`)), 6000);
    socket.once("registered", (r) => {
      clearTimeout(timer);
      resolve(r);
    });
    socket.once("connect_error", (e) => {
      clearTimeout(timer);
      reject(new Error(`connect_error from ${url}: ${e.message}`));
    });
  });
  return { socket, registered };
}

const once = (socket, event, ms = 5000) =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms);
    socket.once(event, (payload) => {
      clearTimeout(timer);
      resolve(payload);
    });
  });

async function waitUntil(cond, ms, what, proc) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return;
    await sleep(50);
  }
  throw new Error(`${what} not within ${ms} ms${proc ? `\n${shown(proc)}` : ""}`);
}

// ---------------------------------------------------------------------------
// One reader's session over one README

// The state dump run after each block: every shell variable but bash's own and read-only ones.
const DUMP = String.raw`
__readme_dump() {
  local __v __d
  for __v in $(compgen -v); do
    case $__v in
      __*|BASH*|EUID|UID|PPID|SHELLOPTS|PWD|OLDPWD|SHLVL|PIPESTATUS|LINENO|SECONDS|RANDOM|SRANDOM|GROUPS|FUNCNAME|DIRSTACK|HISTCMD|EPOCHSECONDS|EPOCHREALTIME|_|COMP_*|OPTIND|OPTARG|OPTERR|IFS|PS1|PS2|PS4) continue ;;
    esac
    __d=$(declare -p "$__v" 2>/dev/null) || continue
    [[ $__d =~ ^declare\ -[a-zA-Z]*r ]] && continue
    printf '%s\n' "$__d"
  done
}`;

const q = (s) => `'${s.replace(/'/g, `'\\''`)}'`;

class Session {
  constructor(rel) {
    this.rel = rel;
    this.servers = []; // running process groups: servers and what blocks left running
    this.failed = null;
    this.seq = 0;
  }

  async setup() {
    this.root = fs.mkdtempSync(path.join(os.tmpdir(), "sio-readme-"));
    this.repo = path.join(this.root, "repo");
    this.tmp = path.join(this.root, "tmp");
    fs.mkdirSync(this.tmp);
    this.buildMirror();
    this.ports = {};
    for (const p of README_PORTS) this.ports[p] = String(await freePort());
    const id = randomBytes(5).toString("hex");
    this.database = `sio_gw_readme_${id}`;
    this.redisPrefix = `sio-gw-readme-${id}`;
    this.state = path.join(this.root, "state.sh");
    fs.writeFileSync(this.state, "");
    const env = { ...process.env };
    const example = fs.readFileSync(path.join(REPO, ".env.example"), "utf8");
    for (const m of example.matchAll(/^#?\s*([A-Z][A-Z0-9_]*)=/gm)) delete env[m[1]];
    for (const k of ["SIO_GATEWAY_BIN", "TEST_POSTGRES_URL", "NODE_TEST_CONTEXT"]) delete env[k];
    Object.assign(env, { PORT: this.ports["3000"], REDIS_PREFIX: this.redisPrefix, TMPDIR: this.tmp, NO_COLOR: "1" });
    this.env = env;
    this.cwd = this.rel.startsWith(path.join("clients", "js") + path.sep) ? path.join(this.repo, "clients", "js") : this.repo;
  }

  // The stand-in for the repository root: symlinks to its entries, the binary under test,
  // and a copy of clients/js without what npm builds there.
  buildMirror() {
    fs.mkdirSync(this.repo);
    const generated = /^(\.git|\.env|target|clients|node_modules|sio-gateway\.(secret|api-key)|.*\.db(-wal|-shm)?)$/;
    for (const e of fs.readdirSync(REPO)) {
      if (!generated.test(e)) fs.symlinkSync(path.join(REPO, e), path.join(this.repo, e));
    }
    fs.mkdirSync(path.join(this.repo, "target", "release"), { recursive: true });
    fs.symlinkSync(BIN, path.join(this.repo, "target", "release", "sio-gateway"));
    fs.mkdirSync(path.join(this.repo, "clients"));
    for (const e of fs.readdirSync(path.join(REPO, "clients"))) {
      if (e !== "js") fs.symlinkSync(path.join(REPO, "clients", e), path.join(this.repo, "clients", e));
    }
    fs.cpSync(path.join(REPO, "clients", "js"), path.join(this.repo, "clients", "js"), {
      recursive: true,
      filter: (src) => !/[/\\](node_modules|dist|pack)$|\.tgz$/.test(src),
    });
  }

  port(p) {
    return this.ports[String(p)];
  }
  url(p) {
    return `http://127.0.0.1:${this.port(p)}`;
  }

  // The block as run: the README's ports (and database name) replaced, nothing else.
  prepare(block, rule) {
    let text = block.text.replace(/\b(3000|3001|3002|8080|8090)\b/g, (p) => this.ports[p]);
    if (rule.database) text = text.replace(new RegExp(`\\b${rule.database}\\b`, "g"), this.database);
    return text;
  }

  // Writes the script for a block: the earlier blocks' variables, `set -e`, the block, the dump.
  script(text, { dump }) {
    const file = path.join(this.root, `block-${++this.seq}.sh`);
    const parts = [DUMP, `source ${q(this.state)}`, "set -e", text];
    if (dump) parts.push(`__readme_dump > ${q(this.state + ".next")}`);
    fs.writeFileSync(file, parts.join("\n") + "\n");
    return file;
  }

  // A variable as the shell of the session has it ("" when unset).
  variable(name) {
    const r = spawnSync("bash", ["-c", `source ${q(this.state)}; printf %s "\${${name}-}"`], { env: this.env, encoding: "utf8" });
    return r.stdout;
  }
  exported(name) {
    const r = spawnSync("bash", ["-c", `source ${q(this.state)}; env`], { env: this.env, encoding: "utf8" });
    return r.stdout.split("\n").some((l) => l.startsWith(`${name}=`));
  }

  // `sio-gateway <args>` in the session's directory (the secret the gateway generated there).
  bin(args, env = {}) {
    const r = spawnSync(BIN, args, { cwd: this.repo, env: { ...this.env, ...env }, encoding: "utf8", timeout: 20000 });
    assert.equal(r.status, 0, `sio-gateway ${args.join(" ")}: ${r.stderr}`);
    return r.stdout.trim();
  }

  async stopServers() {
    const running = this.servers;
    this.servers = [];
    await Promise.all(running.map(stopGroup));
  }

  async runBlock(block, rule, t) {
    const ctx = { session: this, block, t };
    if (rule.kind === "skip" || block.outputOnly) {
      const reason = block.outputOnly ? "console output only, no command" : rule.reason;
      t.diagnostic(`not run: ${reason}`);
      if (rule.check) await rule.check(ctx);
      return;
    }
    if (rule.requires) await rule.requires(ctx);
    const text = this.prepare(block, rule);
    if (rule.kind === "server") {
      await this.stopServers(); // the previous server takes the same ports
      const proc = spawnBash(this.script(text, { dump: false }), { cwd: this.cwd, env: this.env });
      this.servers.push(proc);
      ctx.proc = proc;
      const end = Date.now() + READY_TIMEOUT_MS;
      for (;;) {
        if (proc.code !== undefined) throw new Error(`${block.label} exited (${proc.code}) before it was up\n${shown(proc)}`);
        if (await rule.ready(ctx)) break;
        if (Date.now() > end) throw new Error(`${block.label} was not up within ${READY_TIMEOUT_MS} ms\n${shown(proc)}`);
        await sleep(100);
      }
    } else {
      if (rule.before) await rule.before(ctx);
      const cwd = rule.cwd === "repo" ? REPO : this.cwd;
      const proc = spawnBash(this.script(text, { dump: true }), { cwd, env: this.env });
      ctx.proc = proc;
      const limit = rule.timeoutMs ?? RUN_TIMEOUT_MS;
      let timer;
      const timedOut = new Promise((resolve) => (timer = setTimeout(() => resolve("timeout"), limit)));
      const code = await Promise.race([proc.exited, timedOut]);
      clearTimeout(timer);
      if (code === "timeout") {
        await stopGroup(proc);
        throw new Error(
          `${block.label} did not finish within ${limit} ms (a block that starts a server in the foreground must be ` +
            `a "server" rule of readme.test.mjs)\n${shown(proc)}`,
        );
      }
      await Promise.race([proc.stdoutEnded, sleep(300)]);
      if (groupMembers(proc.pgid).length > 0) this.servers.push(proc); // what it left running with &
      else allGroups.delete(proc.pgid);
      assert.equal(code, 0, `${block.label} exited ${code}\n${shown(proc)}`);
      fs.renameSync(this.state + ".next", this.state);
    }
    if (rule.check) await rule.check(ctx);
  }

  async cleanup() {
    await this.stopServers();
    if (this.usedPostgres) {
      try {
        psql(POSTGRES, `DROP DATABASE IF EXISTS ${this.database} WITH (FORCE)`);
      } catch (e) {
        console.error(`could not drop ${this.database}: ${e.message}`);
      }
    }
    if (this.usedRedis) await deleteRedisPrefix(REDIS, this.redisPrefix);
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------
// What each block must do. A block is matched by its file (`files`, any when absent) and a
// regular expression on its text. kind: "run" (the default: must exit 0 within its time),
// "server" (runs until stopped; `ready` says when it is up), "skip" (not run: `reason`).
// `check` asserts what the block should have done.

const gatewayUp = (ctx) => httpOk(`${ctx.session.url(3000)}/healthz`);
const printed = (ctx, re) => re.test(ctx.proc.out);
const jsonLines = (text) =>
  text
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => {
      try {
        return JSON.parse(l);
      } catch {
        return null;
      }
    })
    .filter(Boolean);

// The README's walk-through script (the ```js block reading ALICE and BOB), run with node in the
// environment the shell block gave it.
async function runWalkthrough(ctx) {
  const { session } = ctx;
  const js = fencedBlocks(fs.readFileSync(path.join(REPO, "README.md"), "utf8")).find(
    (b) => b.lang === "js" && b.text.includes("process.env.ALICE"),
  );
  assert.ok(js, "README.md has no walk-through script reading process.env.ALICE");
  const dir = path.join(session.tmp, "walkthrough");
  fs.mkdirSync(dir, { recursive: true });
  fs.symlinkSync(path.join(HERE, "node_modules"), path.join(dir, "node_modules")); // npm install socket.io-client
  const text = js.text.replace(/\b3000\b/g, session.port(3000));
  fs.writeFileSync(path.join(dir, "walkthrough.mjs"), text);
  const script = path.join(dir, "run.sh");
  fs.writeFileSync(script, `source ${q(session.state)}\nexec node walkthrough.mjs\n`);
  const proc = spawnBash(script, { cwd: dir, env: session.env });
  try {
    await waitUntil(
      () => /alice in general: hello/.test(proc.out) && /ok: true/.test(proc.out),
      10000,
      "the walk-through printing the ack and bob's line",
      proc,
    );
    assert.match(proc.out, /userId: 'alice'/, shown(proc));
    assert.match(proc.out, /text: 'hello'/, shown(proc));
  } finally {
    await stopGroup(proc);
  }
}

// Connects alice, joins a room, sends a message and leaves: the receiver must print the five
// events of her visit.
async function webhookVisit(ctx) {
  const { session, proc } = ctx;
  const token = session.bin(["token", "--sub", "alice"]);
  const visitStart = Date.now() - 50;
  const { socket } = await clientOf(session.url(3000), token);
  const room = `lobby-${randomBytes(3).toString("hex")}`;
  assert.equal((await socket.timeout(5000).emitWithAck("joinRoom", { roomId: room })).ok, true);
  const sent = await socket.timeout(5000).emitWithAck("sendMessage", { roomId: room, text: "hi" });
  assert.equal(sent.ok, true, JSON.stringify(sent));
  socket.close();
  const wanted = ["user.online", "room.joined", "message.created", "room.left", "user.offline"];
  const events = () =>
    jsonLines(proc.out).filter(
      (e) => e.type && Date.parse(e.createdAt) >= visitStart && (e.data?.userId === "alice" || e.data?.roomId === room),
    );
  await waitUntil(() => wanted.every((type) => events().some((e) => e.type === type)), 15000, `the receiver printing ${wanted}`, proc);
  for (const e of events()) {
    assert.match(e.id, UUID_V7, JSON.stringify(e));
    assert.match(e.createdAt, ISO_MS, JSON.stringify(e));
  }
  assert.equal(events().find((e) => e.type === "message.created").data.text, "hi");
  assert.equal(events().find((e) => e.type === "room.joined").data.roomId, room);
}

// The example backend answers order.place through the gateway, and joins alice's socket to the
// order's room first.
async function proxyOrder(ctx) {
  const { session } = ctx;
  const token = session.bin(["token", "--sub", "alice"]);
  const { socket } = await clientOf(session.url(3000), token);
  try {
    const joined = [];
    socket.on("joinedRoom", (j) => joined.push(j.roomId));
    const ok = await socket.timeout(10000).emitWithAck("order.place", { item: "book", qty: 2 });
    assert.equal(ok.ok, true, JSON.stringify(ok));
    assert.match(ok.data.orderId, /^o-/);
    assert.deepEqual(
      { item: ok.data.item, qty: ok.data.qty, userId: ok.data.userId, roomId: ok.data.roomId, sockets: ok.data.sockets },
      { item: "book", qty: 2, userId: "alice", roomId: `order.${ok.data.orderId}`, sockets: 1 },
    );
    assert.deepEqual(joined, [ok.data.roomId], "joinedRoom before the ack");
    const refused = await socket.timeout(10000).emitWithAck("order.place", { item: "book", qty: 11 });
    assert.equal(refused.ok, false, JSON.stringify(refused));
    assert.equal(refused.error.code, "out_of_stock");
  } finally {
    socket.close();
  }
}

const RULES = [
  {
    name: "build",
    files: ["README.md"],
    match: /^cargo build --release\s*$/,
    cwd: "repo", // cargo builds the repository's target/, only there
    timeoutMs: 600000,
    check: () => assert.ok(fs.existsSync(path.join(REPO, "target", "release", "sio-gateway"))),
  },
  {
    name: "quick start: the gateway",
    files: ["README.md"],
    match: /^\.\/target\/release\/sio-gateway\s+# 1\./m,
    kind: "server",
    ready: gatewayUp,
    check: async ({ session, proc }) => {
      const index = await (await fetch(`${session.url(3000)}/`)).json();
      assert.equal(index.name, "sio-gateway", JSON.stringify(index));
      assert.equal(index.links?.healthz, "/healthz", JSON.stringify(index));
      for (const f of ["sio-gateway.db", "sio-gateway.secret", "sio-gateway.api-key"]) {
        assert.ok(fs.existsSync(path.join(session.repo, f)), `${f} was not created in the working directory`);
      }
      for (const f of ["sio-gateway.secret", "sio-gateway.api-key"]) {
        const file = path.join(session.repo, f);
        assert.equal(fs.statSync(file).mode & 0o077, 0, `${f} is not owner-only`);
        const value = fs.readFileSync(file, "utf8").trim();
        assert.ok(value.length >= 32, `${f} is short`);
        assert.ok(!proc.out.includes(value) && !proc.err.includes(value), `the log shows what ${f} holds`);
      }
    },
  },
  {
    name: "quick start: the full test command",
    files: ["README.md"],
    match: /^bash scripts\/test\.sh\b/m,
    kind: "skip",
    reason: "scripts/test.sh runs every test, this file included (it would run itself); CI runs it",
    check: () => {
      const r = spawnSync("bash", ["-n", path.join(REPO, "scripts", "test.sh")], { encoding: "utf8" });
      assert.equal(r.status, 0, `scripts/test.sh does not parse: ${r.stderr}`);
    },
  },
  {
    name: "walk-through: tokens",
    files: ["README.md"],
    match: /^(export )?ALICE=\$\(/m,
    check: async (ctx) => {
      const { session } = ctx;
      for (const [name, sub, ttl] of [["ALICE", "alice", 3600], ["BOB", "bob", 900]]) {
        assert.ok(session.exported(name), `${name} is not exported: the Node script reads process.env.${name}`);
        const { payload } = decodeJwt(session.variable(name));
        assert.equal(payload.sub, sub);
        assert.equal(payload.exp - payload.iat, ttl, `${name}'s lifetime`);
      }
      await runWalkthrough(ctx);
    },
  },
  {
    name: "notifications: post one with the service key",
    files: ["README.md"],
    match: /^KEY=\$\(cat sio-gateway\.api-key\)/m,
    check: ({ proc }) => {
      const [n] = jsonValues(proc.out);
      assert.ok(n, `no JSON answer: ${proc.out}`);
      assert.match(n.id, UUID_V7, proc.out);
      assert.match(n.createdAt, ISO_MS, proc.out);
      assert.deepEqual(
        { userId: n.userId, type: n.type, title: n.title, data: n.data, read: n.read },
        { userId: "alice", type: "invoice.paid", title: "Invoice paid", data: { invoice: 1042 }, read: false },
      );
    },
  },
  {
    name: "notifications: read back and mark read over HTTP",
    files: ["README.md"],
    match: /\/api\/notifications\/read/,
    check: ({ proc }) => {
      const [page, marked] = jsonValues(proc.out);
      assert.ok(Array.isArray(page?.notifications), `no page of notifications: ${proc.out}`);
      assert.equal(page.hasMore, false);
      assert.ok(page.notifications.some((n) => n.type === "invoice.paid" && n.read === false), proc.out);
      assert.ok(Number.isInteger(marked?.updated) && marked.updated >= 1, `no { updated }: ${proc.out}`);
    },
  },
  {
    name: "server API: join a user's sockets to a room",
    files: ["README.md"],
    match: /\/api\/rooms\/order\.o-42\/join/,
    before: async (ctx) => {
      ctx.alice = await clientOf(ctx.session.url(3000), ctx.session.variable("ALICE"));
      ctx.joined = once(ctx.alice.socket, "joinedRoom");
      ctx.joined.catch(() => {});
    },
    check: async (ctx) => {
      try {
        assert.deepEqual(jsonValues(ctx.proc.out), [{ sockets: 1 }], ctx.proc.out);
        assert.deepEqual(await ctx.joined, { roomId: "order.o-42" });
      } finally {
        ctx.alice.socket.close();
      }
    },
  },
  {
    name: "webhooks: a receiver and the gateway",
    match: /WEBHOOK_URL=http:\/\/127\.0\.0\.1:8090\/webhooks/,
    kind: "server",
    ready: async (ctx) => printed(ctx, new RegExp(`"listening":\\s*${ctx.session.port(8090)}\\b`)) && (await gatewayUp(ctx)),
    check: webhookVisit,
  },
  {
    name: "event proxy: the gateway and an example backend",
    match: /PROXY_EVENTS='order\.\*'/,
    kind: "server",
    ready: async (ctx) => printed(ctx, new RegExp(`"listening":\\s*${ctx.session.port(8080)}\\b`)) && (await gatewayUp(ctx)),
    check: proxyOrder,
  },
  {
    name: "two nodes on PostgreSQL and Redis",
    files: ["README.md"],
    match: /createdb -h 127\.0\.0\.1 -U postgres sio_gateway/,
    database: "sio_gateway",
    requires: async ({ session }) => {
      try {
        psql(POSTGRES, "SELECT 1");
      } catch (e) {
        throw new Error(`this block needs PostgreSQL on 127.0.0.1:5432 letting user postgres in (${e.message})`);
      }
      await requireRedis(REDIS);
      session.usedPostgres = session.usedRedis = true;
    },
    check: async ({ session, proc }) => {
      const posted = jsonValues(proc.out).at(-1);
      assert.match(posted?.id ?? "", UUID_V7, `no notification in the answer: ${proc.out}`);
      assert.equal(posted.userId, "alice");
      assert.equal(posted.message, "from A");
      // "a socket of alice connected to :3002 receives it": it is there for her on node B, and
      // the next one posted to node A reaches her socket on node B live.
      const { socket, registered } = await clientOf(session.url(3002), session.variable("TOKEN"));
      try {
        assert.equal(registered.unreadCount, 1);
        assert.equal(registered.lastNotificationId, posted.id);
        const live = once(socket, "notification", 5000);
        const res = await fetch(`${session.url(3001)}/api/notifications`, {
          method: "POST",
          headers: { authorization: `Bearer ${session.variable("API_KEYS")}`, "content-type": "application/json" },
          body: JSON.stringify({ userId: "alice", type: "t", title: "again", message: "from A, live" }),
        });
        assert.equal(res.status, 201);
        assert.equal((await live).title, "again");
      } finally {
        socket.close();
      }
    },
  },
  {
    name: "fuzzing",
    files: ["README.md"],
    match: /cargo fuzz run event_args/,
    kind: "skip",
    reason: "installs cargo-fuzz from crates.io (minutes of building) and fuzzes for 10 minutes",
    check: () => {
      assert.ok(fs.existsSync(path.join(REPO, "fuzz", "fuzz_targets", "event_args.rs")), "fuzz target event_args is gone");
      assert.match(fs.readFileSync(path.join(REPO, "fuzz", "Cargo.toml"), "utf8"), /name\s*=\s*"event_args"/);
    },
  },
  {
    name: "the command line (a synopsis)",
    files: ["README.md"],
    match: /^sio-gateway \[serve\]/m,
    kind: "skip",
    reason: "a synopsis ([optional] parts; its first line runs the gateway until stopped): its commands and options are checked against --help",
    check: ({ block }) => {
      const help = spawnSync(BIN, ["--help"], { encoding: "utf8" }).stdout;
      const tokenHelp = spawnSync(BIN, ["token", "--help"], { encoding: "utf8" }).stdout;
      for (const line of block.text.split("\n").filter((l) => l.startsWith("sio-gateway"))) {
        const command = /^sio-gateway \[?(\w+)/.exec(line)[1];
        assert.match(help, new RegExp(`^\\s+${command}\\s`, "m"), `${command} is not in sio-gateway --help`);
        if (command === "token") {
          for (const opt of line.split("#")[0].match(/--[a-z-]+/g)) assert.ok(tokenHelp.includes(opt), `token ${opt} is not in its --help`);
          for (const ttl of line.split("#")[1].match(/\d+[smhd]\b/g)) {
            const r = spawnSync(BIN, ["token", "--sub", "alice", "--ttl", ttl], { encoding: "utf8", env: { ...process.env, JWT_SECRET: "s".repeat(48) } });
            assert.equal(r.status, 0, `token --ttl ${ttl}: ${r.stderr}`);
          }
        }
      }
    },
  },
  {
    name: "the client package: pack and install",
    files: [path.join("clients", "js", "README.md")],
    match: /npm ci && npm pack/,
    timeoutMs: 240000,
    check: ({ session, proc }) => {
      assert.equal(proc.out.trim().split("\n").at(-1), "function", `the installed package has no Gateway\n${shown(proc)}`);
      assert.ok(fs.existsSync(path.join(session.cwd, "sio-gateway-client-0.1.0.tgz")));
    },
  },
];

const DEFAULT_RULE = { name: "(not in the table)", kind: "run" };

function ruleFor(block) {
  const matching = RULES.filter((r) => (!r.files || r.files.includes(block.file)) && r.match.test(block.text));
  assert.ok(matching.length <= 1, `${block.label} matches several rules: ${matching.map((r) => r.name)}`);
  return matching[0] ?? DEFAULT_RULE;
}

// ---------------------------------------------------------------------------

const FILES = readmes();
const BLOCKS = FILES.flatMap(shellBlocks);

describe("the table of blocks", () => {
  it("every rule still matches a block of the READMEs", () => {
    const unused = RULES.filter((r) => !BLOCKS.some((b) => ruleFor(b) === r)).map((r) => r.name);
    assert.deepEqual(unused, [], "rules that match no block: update them with the READMEs");
  });
});

for (const rel of FILES) {
  const blocks = BLOCKS.filter((b) => b.file === rel);
  if (blocks.length === 0) continue;
  describe(`${rel}, followed literally`, () => {
    const session = new Session(rel);
    before(() => session.setup());
    after(() => session.cleanup());
    for (const block of blocks) {
      const rule = ruleFor(block);
      const kind = block.outputOnly ? "skip" : rule.kind ?? "run";
      const what = kind === "skip" ? `not run: ${block.outputOnly ? "output only" : rule.reason}` : kind === "server" ? "server" : "runs";
      const timeout = (rule.timeoutMs ?? RUN_TIMEOUT_MS) + 60000;
      it(`${block.label} \`${firstCommand(block.text)}\` (${what})`, { timeout }, async (t) => {
        if (session.failed) return t.skip(`an earlier block failed: ${session.failed}`);
        try {
          await session.runBlock(block, rule, t);
        } catch (e) {
          session.failed = block.label;
          const running = session.servers.map((p) => shown(p)).join("\n");
          if (running) e.message += `\n--- servers running ---\n${running}`;
          throw e;
        }
      });
    }
  });
}
