// Section 1 (transport), CORS of section 7, and graceful shutdown of section 8.
import assert from "node:assert/strict";
import {
  describe, it, before, after, startGateway, connect, ack, waitFor, uid, assertOk, joined, sleep,
} from "./fixture.mjs";

// Joins a fresh room with `socket` and a websocket peer, and exchanges one message each way.
async function chatWorks(gw, socket) {
  const roomId = `room-${uid()}`;
  assertOk(await ack(socket, "joinRoom", { roomId }));
  const peer = await joined(gw, "peer", roomId);
  const toSocket = waitFor(socket, "newMessage");
  assertOk(await ack(peer, "sendMessage", { roomId, text: "to you" }));
  assert.equal((await toSocket).text, "to you");
  const toPeer = waitFor(peer, "newMessage");
  const sent = assertOk(await ack(socket, "sendMessage", { roomId, text: "to peer" }));
  assert.deepEqual(await toPeer, sent);
}

describe("transports", () => {
  let gw;
  before(async () => {
    gw = await startGateway();
  });
  after(async () => {
    await gw?.stop();
  });

  // "Both transports: HTTP long-polling with upgrade, and WebSocket-only"
  it("long-polling upgrades to websocket", async () => {
    const socket = await connect(gw, { token: gw.token("alice"), transports: ["polling", "websocket"] });
    const engine = socket.io.engine;
    if (engine.transport.name !== "websocket") {
      assert.equal(engine.transport.name, "polling");
      await waitFor(engine, "upgrade", 5000);
    }
    assert.equal(engine.transport.name, "websocket");
    await chatWorks(gw, socket);
  });

  it("websocket-only works", async () => {
    const socket = await connect(gw, { token: gw.token("alice"), transports: ["websocket"] });
    assert.equal(socket.io.engine.transport.name, "websocket");
    await chatWorks(gw, socket);
  });

  it("polling-only works for join and send", async () => {
    const socket = await connect(gw, { token: gw.token("alice"), transports: ["polling"] });
    assert.equal(socket.io.engine.transport.name, "polling");
    await chatWorks(gw, socket);
    assert.equal(socket.io.engine.transport.name, "polling");
  });

  // "at path /socket.io/" — the Engine.IO v4 open packet over plain HTTP.
  it("the Engine.IO v4 handshake answers at /socket.io/", async () => {
    const res = await fetch(`${gw.url}/socket.io/?EIO=4&transport=polling`);
    assert.equal(res.status, 200);
    const body = await res.text();
    assert.equal(body[0], "0", body);
    const open = JSON.parse(body.slice(1));
    assert.equal(typeof open.sid, "string");
    assert.ok(open.upgrades.includes("websocket"));
  });

  // "CORS_ORIGINS (comma-separated; default *, with no credentials) applies to Socket.IO's polling requests
  // and to the HTTP API alike; preflights allow Authorization and Content-Type."
  it("CORS: default * on polling requests, preflight allows Authorization and Content-Type", async () => {
    const origin = "http://app.example";
    const res = await fetch(`${gw.url}/socket.io/?EIO=4&transport=polling`, { headers: { Origin: origin } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("access-control-allow-origin"), "*");
    assert.notEqual(res.headers.get("access-control-allow-credentials"), "true");
    const pre = await fetch(`${gw.url}/socket.io/?EIO=4&transport=polling`, {
      method: "OPTIONS",
      headers: {
        Origin: origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
      },
    });
    assert.ok(pre.status >= 200 && pre.status < 300, `preflight status ${pre.status}`);
    const allowed = (pre.headers.get("access-control-allow-headers") ?? "").toLowerCase();
    assert.ok(
      allowed === "*" || (allowed.includes("authorization") && allowed.includes("content-type")),
      `access-control-allow-headers: ${allowed}`,
    );
  });
});

// "SIGTERM/SIGINT: stop accepting, finish writes, close the sockets' transports (clients see transport close
// …), exit 0 within SHUTDOWN_TIMEOUT_SECS (default 10)."
describe("graceful shutdown", () => {
  for (const signal of ["SIGTERM", "SIGINT"]) {
    it(`${signal}: clients see transport close and the process exits 0`, async (t) => {
      const gw = await startGateway();
      t.after(() => gw.stop("SIGKILL"));
      const ws = await connect(gw, { token: gw.token("alice"), transports: ["websocket"] });
      const polling = await connect(gw, { token: gw.token("bob"), transports: ["polling"] });
      // Let the polling client settle into its steady state (a long-poll GET pending), as any idle
      // client is; right after connect it can be between two requests.
      await sleep(500);
      const wsGone = waitFor(ws, "disconnect", 12000);
      const pollingGone = waitFor(polling, "disconnect", 12000);
      const t0 = Date.now();
      const code = await gw.stop(signal);
      assert.equal(code, 0, "exit code");
      assert.ok(Date.now() - t0 < 10500, "exited within SHUTDOWN_TIMEOUT_SECS");
      assert.equal(await wsGone, "transport close");
      assert.equal(await pollingGone, "transport close");
    });
  }
});
