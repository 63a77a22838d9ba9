// Section 2 (authentication) and the `registered` event of section 3.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { randomBytes } from "node:crypto";
import {
  describe, it, before, after, TRANSPORTS, startGateway, spawnGateway, waitExit, token, signJwt,
  decodeJwt, verifyJwt, cliToken, connect, connectAndRegistered, connectError, ack, waitFor, sleep, nowSecs,
  uid, assertOk, assertError, assertDetails, NO_ARG,
} from "./fixture.mjs";

describe("handshake", () => {
  let gw;
  before(async () => {
    gw = await startGateway();
  });
  after(async () => {
    await gw?.stop();
  });

  for (const transports of TRANSPORTS) {
    // "After connect the server emits `registered` { userId, socketId, rooms, unreadCount, lastNotificationId }"
    it(`auth.token is accepted and registered is emitted [${transports}]`, async () => {
      const { socket, registered } = await connectAndRegistered(gw, { token: gw.token("alice"), transports });
      assert.equal(registered.userId, "alice");
      assert.equal(registered.socketId, socket.id);
      assert.ok(Array.isArray(registered.rooms), "rooms is an array");
      // "rooms lists the rooms the socket is in (user:<sub> included, the socket's own id not)"
      assert.ok(registered.rooms.includes("user:alice"), `rooms ${JSON.stringify(registered.rooms)}`);
      assert.ok(!registered.rooms.includes(socket.id), "rooms must not include the socket id");
      assert.equal(registered.unreadCount, 0);
      // "lastNotificationId … (null if none)"
      assert.equal(registered.lastNotificationId, null);
    });

    // "Also accepted, in this order after auth.token: header Authorization: Bearer <jwt>"
    it(`Authorization: Bearer header is accepted [${transports}]`, async () => {
      const { registered } = await connectAndRegistered(gw, {
        transports,
        extraHeaders: { Authorization: `Bearer ${gw.token("hdr-user")}` },
      });
      assert.equal(registered.userId, "hdr-user");
    });

    // "then query ?token=<jwt>"
    it(`?token= query is accepted [${transports}]`, async () => {
      const { registered } = await connectAndRegistered(gw, { transports, query: { token: gw.token("q-user") } });
      assert.equal(registered.userId, "q-user");
    });
  }

  // "The first source present is the one used … a bad token there is refused, never retried from a later source."
  it("good auth.token wins over a garbage header", async () => {
    const { registered } = await connectAndRegistered(gw, {
      token: gw.token("alice"),
      transports: ["polling", "websocket"],
      extraHeaders: { Authorization: "Bearer garbage.garbage.garbage" },
    });
    assert.equal(registered.userId, "alice");
  });

  it("garbage auth.token with a good header is invalid_token", async () => {
    const msg = await connectError(gw, {
      token: "garbage.garbage.garbage",
      transports: ["polling", "websocket"],
      extraHeaders: { Authorization: `Bearer ${gw.token("alice")}` },
    });
    assert.equal(msg, "invalid_token");
  });

  it("garbage header with a good ?token= query is invalid_token", async () => {
    const msg = await connectError(gw, {
      transports: ["websocket"],
      extraHeaders: { Authorization: "Bearer garbage" },
      query: { token: gw.token("alice") },
    });
    assert.equal(msg, "invalid_token");
  });

  // "(an empty string counts as absent)"
  it("empty auth.token falls back to the header", async () => {
    const { registered } = await connectAndRegistered(gw, {
      token: "",
      transports: ["polling", "websocket"],
      extraHeaders: { Authorization: `Bearer ${gw.token("bob")}` },
    });
    assert.equal(registered.userId, "bob");
  });

  it("empty auth.token falls back to the query", async () => {
    const { registered } = await connectAndRegistered(gw, { token: "", query: { token: gw.token("carol") } });
    assert.equal(registered.userId, "carol");
  });

  // "err.message is exactly one of: missing_token, invalid_token, token_expired, …"
  it("no token at all is missing_token", async () => {
    assert.equal(await connectError(gw, {}), "missing_token");
  });

  it("empty auth.token and nothing else is missing_token", async () => {
    assert.equal(await connectError(gw, { token: "" }), "missing_token");
  });

  it("a token signed with another secret is invalid_token", async () => {
    const other = randomBytes(32).toString("hex");
    assert.equal(await connectError(gw, { token: token("alice", { secret: other }) }), "invalid_token");
  });

  it("a tampered payload is invalid_token", async () => {
    const [h, , s] = gw.token("alice").split(".");
    const forged = Buffer.from(JSON.stringify({ sub: "admin", exp: nowSecs() + 3600 })).toString("base64url");
    assert.equal(await connectError(gw, { token: `${h}.${forged}.${s}` }), "invalid_token");
  });

  it("a malformed token is invalid_token", async () => {
    assert.equal(await connectError(gw, { token: "not-a-jwt" }), "invalid_token");
  });

  // "JWT_LEEWAY_SECS (default 5)"
  it("a token expired beyond the leeway is token_expired", async () => {
    assert.equal(await connectError(gw, { token: gw.token("alice", { exp: nowSecs() - 60 }) }), "token_expired");
  });

  it("a token expired 2 s ago (within the 5 s leeway) is accepted", async () => {
    const { registered } = await connectAndRegistered(gw, { token: gw.token("alice", { exp: nowSecs() - 2 }) });
    assert.equal(registered.userId, "alice");
  });

  // "nbf is honoured (a future nbf is invalid_token)"
  it("a future nbf is invalid_token", async () => {
    assert.equal(await connectError(gw, { token: gw.token("alice", { nbf: nowSecs() + 60 }) }), "invalid_token");
  });

  it("a past nbf is accepted", async () => {
    const { registered } = await connectAndRegistered(gw, { token: gw.token("alice", { nbf: nowSecs() - 60 }) });
    assert.equal(registered.userId, "alice");
  });

  // "exp is required"
  it("a token without exp is invalid_token", async () => {
    assert.equal(await connectError(gw, { token: gw.token("alice", { exp: null }) }), "invalid_token");
  });

  // "alg: none … refused"
  it("alg none is invalid_token", async () => {
    const h = Buffer.from(JSON.stringify({ alg: "none", typ: "JWT" })).toString("base64url");
    const p = Buffer.from(JSON.stringify({ sub: "alice", exp: nowSecs() + 3600 })).toString("base64url");
    assert.equal(await connectError(gw, { token: `${h}.${p}.` }), "invalid_token");
  });

  it("alg none with an HMAC signature is invalid_token", async () => {
    const t = signJwt({ alg: "none", typ: "JWT" }, { sub: "alice", exp: nowSecs() + 3600 }, gw.secret);
    assert.equal(await connectError(gw, { token: t }), "invalid_token");
  });

  // "Accepted algorithms: HS256/384/512 with a secret"
  for (const alg of ["HS384", "HS512"]) {
    it(`${alg} tokens are accepted`, async () => {
      const { registered } = await connectAndRegistered(gw, { token: gw.token("alice", { alg }) });
      assert.equal(registered.userId, "alice");
    });
  }

  // "sub is the user id: a non-empty string of at most 128 characters from [A-Za-z0-9_.:@-]"
  for (const [label, sub] of [
    ["with a space", "a b"],
    ["empty", ""],
    ["of 129 characters", "a".repeat(129)],
    ["non-ASCII", "élise"],
    ["with a slash", "a/b"],
    ["a number", 42],
  ]) {
    it(`a sub ${label} is invalid_token`, async () => {
      assert.equal(await connectError(gw, { token: gw.token(sub) }), "invalid_token");
    });
  }

  it("a token without sub is invalid_token", async () => {
    assert.equal(await connectError(gw, { token: gw.token(undefined) }), "invalid_token");
  });

  it("a sub of 128 characters from the whole allowed set is accepted", async () => {
    const sub = ("Az09_.:@-".repeat(15)).slice(0, 128);
    assert.equal(sub.length, 128);
    const { registered } = await connectAndRegistered(gw, { token: gw.token(sub) });
    assert.equal(registered.userId, sub);
    assert.ok(registered.rooms.includes(`user:${sub}`));
  });

  // "The server never logs a token."
  it("tokens never appear in the logs", async () => {
    const good = gw.token("log-user");
    const bad = token("log-user", { secret: randomBytes(32).toString("hex") });
    const s = await connect(gw, { token: good });
    await connectError(gw, { token: bad });
    const fresh = gw.token("log-user", { ttlSecs: 7200 });
    await ack(s, "refreshToken", { token: fresh });
    await sleep(300);
    const logs = gw.logs();
    for (const t of [good, bad, fresh]) {
      assert.ok(!logs.includes(t.split(".")[2]), "a token signature appears in the logs");
      assert.ok(!logs.includes(t.split(".")[1]), "a token payload appears in the logs");
    }
  });

  // refreshToken (section 4): "{ token } → { exp } (invalid_token if the token is bad or its sub differs,
  // token_expired if it has expired)"
  it("refreshToken with another user's token is invalid_token and the identity is kept", async () => {
    const s = await connect(gw, { token: gw.token("alice") });
    assertError(await ack(s, "refreshToken", { token: gw.token("bob") }), "invalid_token");
    const room = `r-${uid()}`;
    assertOk(await ack(s, "joinRoom", { roomId: room }));
    const msg = assertOk(await ack(s, "sendMessage", { roomId: room, text: "who am i" }));
    assert.equal(msg.userId, "alice");
  });

  it("refreshToken with a badly signed token is invalid_token", async () => {
    const s = await connect(gw, { token: gw.token("alice") });
    const bad = token("alice", { secret: randomBytes(32).toString("hex") });
    assertError(await ack(s, "refreshToken", { token: bad }), "invalid_token");
  });

  it("refreshToken with an expired token is token_expired", async () => {
    const s = await connect(gw, { token: gw.token("alice") });
    assertError(await ack(s, "refreshToken", { token: gw.token("alice", { exp: nowSecs() - 60 }) }), "token_expired");
  });

  // Section 4 (v1.2): "validation_failed if token is missing, not a string or empty, as for every DTO".
  it("refreshToken with a token missing, not a string or empty is validation_failed naming token", async () => {
    const s = await connect(gw, { token: gw.token("alice") });
    for (const arg of [{}, { token: null }, { token: "" }, { token: 5 }, { token: ["x"] }, { token: { t: 1 } }]) {
      assertDetails(await ack(s, "refreshToken", arg), "token");
    }
    assertDetails(await ack(s, "refreshToken", NO_ARG), "_");
  });

  // "its rooms claim governs later joins"
  it("after refreshToken, the new token's rooms claim governs joins", async () => {
    const s = await connect(gw, { token: gw.token("alice") });
    assertOk(await ack(s, "joinRoom", { roomId: `free-${uid()}` }));
    const data = assertOk(await ack(s, "refreshToken", { token: gw.token("alice", { rooms: ["chat-*"] }) }));
    assert.equal(typeof data.exp, "number");
    assertOk(await ack(s, "joinRoom", { roomId: `chat-${uid()}` }));
    assertError(await ack(s, "joinRoom", { roomId: `free-${uid()}` }), "forbidden");
  });
});

// "When the token's exp plus the leeway passes, the server disconnects the socket (reason seen by the
// client: io server disconnect …) unless the client has sent refreshToken …"
describe("token expiry (JWT_LEEWAY_SECS=0)", () => {
  let gw;
  before(async () => {
    gw = await startGateway({ JWT_LEEWAY_SECS: "0" });
  });
  after(async () => {
    await gw?.stop();
  });

  it("the socket is disconnected with io server disconnect when the token expires", async () => {
    const exp = nowSecs() + 3;
    const s = await connect(gw, { token: gw.token("alice", { exp }) });
    const t0 = Date.now();
    const reason = await waitFor(s, "disconnect", 8000);
    assert.equal(reason, "io server disconnect");
    // exp is in whole seconds: at least ~2 s must have passed, not an immediate disconnect.
    assert.ok(Date.now() - t0 >= 1500, `disconnected too early (${Date.now() - t0} ms)`);
    assert.ok(Date.now() / 1000 >= exp - 0.5, "disconnected before exp");
  });

  it("refreshToken with a valid token of the same sub keeps the socket past the old expiry", async () => {
    const s = await connect(gw, { token: gw.token("alice", { exp: nowSecs() + 3 }) });
    const newExp = nowSecs() + 3600;
    const res = await ack(s, "refreshToken", { token: gw.token("alice", { exp: newExp }) });
    assert.deepEqual(res, { ok: true, data: { exp: newExp } });
    let disconnected = null;
    s.on("disconnect", (r) => (disconnected = r));
    await sleep(5000);
    assert.equal(disconnected, null, "socket was disconnected despite refreshToken");
    assert.ok(s.connected);
    assertOk(await ack(s, "joinRoom", { roomId: `r-${uid()}` }));
  });

  it("a failed refreshToken does not extend the expiry", async () => {
    const s = await connect(gw, { token: gw.token("alice", { exp: nowSecs() + 3 }) });
    assertError(await ack(s, "refreshToken", { token: gw.token("bob") }), "invalid_token");
    assert.equal(await waitFor(s, "disconnect", 8000), "io server disconnect");
  });

  it("with leeway 0, a token expired 2 s ago is token_expired", async () => {
    assert.equal(await connectError(gw, { token: gw.token("alice", { exp: nowSecs() - 2 }) }), "token_expired");
  });
});

// "JWT_ISSUER and JWT_AUDIENCE are checked when set"
describe("JWT_ISSUER and JWT_AUDIENCE", () => {
  let gw;
  before(async () => {
    gw = await startGateway({ JWT_ISSUER: "https://issuer.test", JWT_AUDIENCE: "sio-gateway-test" });
  });
  after(async () => {
    await gw?.stop();
  });

  const iss = "https://issuer.test";
  const aud = "sio-gateway-test";

  it("right iss and aud are accepted", async () => {
    const { registered } = await connectAndRegistered(gw, { token: gw.token("alice", { iss, aud }) });
    assert.equal(registered.userId, "alice");
  });

  for (const [label, claims] of [
    ["wrong iss", { iss: "https://evil.test", aud }],
    ["missing iss", { aud }],
    ["wrong aud", { iss, aud: "someone-else" }],
    ["missing aud", { iss }],
  ]) {
    it(`${label} is invalid_token`, async () => {
      assert.equal(await connectError(gw, { token: gw.token("alice", claims) }), "invalid_token");
    });
  }
});

// "Zero configuration: with neither JWT_SECRET nor JWT_PUBLIC_KEY_FILE set, the gateway generates a secret
// on first start and keeps it in an owner-only file beside the SQLite database (sio-gateway.secret), warning
// in the log; sio-gateway token uses the same one. Likewise … sio-gateway.api-key. The log says where these
// files are, never what they hold."
describe("zero configuration", () => {
  let gw;
  before(async () => {
    gw = await startGateway({ JWT_SECRET: null, API_KEYS: null });
  });
  after(async () => {
    await gw?.stop();
  });

  it("generates owner-only secret and api-key files beside the database", () => {
    for (const name of ["sio-gateway.secret", "sio-gateway.api-key"]) {
      const file = path.join(gw.dir, name);
      assert.ok(fs.existsSync(file), `${file} exists`);
      assert.equal(fs.statSync(file).mode & 0o777, 0o600, `${name} mode`);
      assert.ok(fs.readFileSync(file, "utf8").trim().length > 0, `${name} is not empty`);
    }
  });

  it("the log says where the files are, never what they hold", () => {
    const logs = gw.logs();
    assert.ok(logs.includes(path.join(gw.dir, "sio-gateway.secret")), "logs mention the secret file path");
    assert.ok(logs.includes(path.join(gw.dir, "sio-gateway.api-key")), "logs mention the api-key file path");
    for (const name of ["sio-gateway.secret", "sio-gateway.api-key"]) {
      const content = fs.readFileSync(path.join(gw.dir, name), "utf8").trim();
      assert.ok(!logs.includes(content), `logs contain the content of ${name}`);
    }
  });

  it("a token from `sio-gateway token` connects", async () => {
    const t = cliToken(gw, ["--sub", "alice"]);
    const { registered } = await connectAndRegistered(gw, { token: t });
    assert.equal(registered.userId, "alice");
  });

  it("the generated secret is kept across a restart", async () => {
    const secretBefore = fs.readFileSync(path.join(gw.dir, "sio-gateway.secret"), "utf8");
    const t = cliToken(gw, ["--sub", "alice"]);
    await gw.restart();
    assert.equal(fs.readFileSync(path.join(gw.dir, "sio-gateway.secret"), "utf8"), secretBefore);
    const { registered } = await connectAndRegistered(gw, { token: t });
    assert.equal(registered.userId, "alice");
  });
});

// "JWT_SECRET (HMAC, at least 32 bytes; the server refuses to start with a shorter one)"
describe("configuration errors", () => {
  it("a JWT_SECRET shorter than 32 bytes makes the process exit non-zero", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sio-gateway-test-"));
    const env = {
      ...process.env,
      PORT: "0",
      HOST: "127.0.0.1",
      DATABASE_URL: `sqlite://${path.join(dir, "gateway.db")}`,
      JWT_SECRET: "x".repeat(31),
      API_KEYS: "k",
      RUST_LOG: "info",
    };
    const proc = spawnGateway({ env, dir });
    let code;
    try {
      code = await waitExit(proc, 10000);
    } finally {
      proc.child.kill("SIGKILL"); // no-op once it exited
    }
    fs.rmSync(dir, { recursive: true, force: true });
    assert.notEqual(code, 0, "exit code");
    assert.ok(proc.logs().includes("JWT_SECRET"), `the message names JWT_SECRET; output:\n${proc.logs()}`);
  });
});

// "sio-gateway token --sub <id> [--ttl 1h] [--rooms a,b*]: print a signed token made with the configured
// secret … --ttl takes 90s, 15m, 1h, 7d (default 1h)."
describe("sio-gateway token", () => {
  let gw;
  before(async () => {
    gw = await startGateway();
  });
  after(async () => {
    await gw?.stop();
  });

  it("--rooms and --ttl go into the token, which connects", async () => {
    const t = cliToken(gw, ["--sub", "alice", "--ttl", "15m", "--rooms", "a,b*"]);
    const { payload } = decodeJwt(t);
    assert.equal(payload.sub, "alice");
    assert.deepEqual(payload.rooms, ["a", "b*"]);
    assert.ok(Math.abs(payload.exp - (nowSecs() + 900)) <= 10, `exp ${payload.exp}`);
    const s = await connect(gw, { token: t });
    assertOk(await ack(s, "joinRoom", { roomId: "b-1" }));
    assertOk(await ack(s, "joinRoom", { roomId: "a" }));
    assertError(await ack(s, "joinRoom", { roomId: "c" }), "forbidden");
  });

  for (const [ttl, secs] of [[null, 3600], ["90s", 90], ["1h", 3600], ["7d", 7 * 86400]]) {
    it(`--ttl ${ttl ?? "(default)"} gives exp ≈ now + ${secs}`, () => {
      const args = ["--sub", "bob", ...(ttl ? ["--ttl", ttl] : [])];
      const { payload } = decodeJwt(cliToken(gw, args));
      assert.equal(payload.sub, "bob");
      assert.ok(Math.abs(payload.exp - (nowSecs() + secs)) <= 10, `exp ${payload.exp}, now ${nowSecs()}`);
    });
  }

  it("the token is signed with the configured JWT_SECRET", () => {
    const t = cliToken(gw, ["--sub", "alice"]);
    assert.ok(verifyJwt(t, gw.secret), "HMAC signature checks with JWT_SECRET");
    assert.ok(!verifyJwt(t, gw.secret + "x"), "and not with another secret");
  });
});
