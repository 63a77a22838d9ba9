// Secrets never reach the logs, at any level (issue 5.3): the gateway runs at trace level,
// takes tokens from all three handshake sources, a refresh, bad tokens, service keys and
// user tokens over HTTP, and its whole output is searched for each secret.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { ack, connect, connectError, describe, it, startGateway, token, waitFor } from "./fixture.mjs";

describe("no secret in the logs at trace level", () => {
  it("tokens, keys and the secret never appear in the output", async () => {
    const gw = await startGateway({ RUST_LOG: "trace" });
    try {
      const secrets = [gw.secret, gw.apiKey];
      const tokens = [];
      const mint = (sub, opts) => {
        const t = gw.token(sub, opts);
        tokens.push(t);
        return t;
      };
      // The three handshake sources.
      const a = await connect(gw, { token: mint("alice"), transports: ["websocket"] });
      const b = await connect(gw, { extraHeaders: { authorization: `Bearer ${mint("bob")}` }, transports: ["polling"] });
      const c = await connect(gw, { auth: {}, query: { token: mint("carol") }, transports: ["polling", "websocket"] });
      // A refresh, and a refused one.
      assert.equal((await ack(a, "refreshToken", { token: mint("alice", { ttlSecs: 7200 }) })).ok, true);
      assert.equal((await ack(a, "refreshToken", { token: mint("mallory") })).ok, false);
      // Bad tokens at the handshake.
      const forged = token("alice", { secret: randomBytes(32).toString("hex") });
      tokens.push(forged);
      assert.equal(await connectError(gw, { token: forged }), "invalid_token");
      // HTTP with the service key and a user token.
      const posted = await fetch(`${gw.url}/api/notifications`, {
        method: "POST",
        headers: { authorization: `Bearer ${gw.apiKey}`, "content-type": "application/json" },
        body: JSON.stringify({ userId: "alice", type: "t", title: "x", message: "y" }),
      });
      assert.equal(posted.status, 201);
      await waitFor(a, "notification");
      const listed = await fetch(`${gw.url}/api/notifications`, { headers: { authorization: `Bearer ${mint("alice")}` } });
      assert.equal(listed.status, 200);
      const wrongKey = `key-${randomBytes(16).toString("hex")}`;
      secrets.push(wrongKey);
      const refused = await fetch(`${gw.url}/api/emit`, {
        method: "POST",
        headers: { authorization: `Bearer ${wrongKey}`, "content-type": "application/json" },
        body: JSON.stringify({ event: "x" }),
      });
      assert.equal(refused.status, 401);
      for (const s of [a, b, c]) s.close();
      await gw.stop("SIGTERM", { keepDir: true });

      const logs = gw.logs();
      assert.ok(logs.length > 2000, "trace level produced output to search");
      for (const t of tokens) {
        const [, payload, signature] = t.split(".");
        assert.ok(!logs.includes(signature), "a token signature appears in the logs");
        assert.ok(!logs.includes(payload), "a token payload appears in the logs");
      }
      for (const s of secrets) assert.ok(!logs.includes(s), "a secret or key appears in the logs");
    } finally {
      await gw.stop();
    }
  });
});
