// Section 7 (limits and abuse) and the bad-input rules of section 4.
import assert from "node:assert/strict";
import {
  describe, it, before, after, TRANSPORTS, startGateway, connect, connectError, ack, waitFor, sleep, uid,
  assertOk, assertError, assertDetails, joined,
} from "./fixture.mjs";

// Retries connect for up to `ms` (the server may need a moment to count the disconnect).
async function connectWithin(gw, sub, ms = 2000) {
  const end = Date.now() + ms;
  for (;;) {
    try {
      return await connect(gw, { token: gw.token(sub) });
    } catch (e) {
      if (Date.now() >= end) throw e;
      await sleep(100);
    }
  }
}

// "SOCKET_MAX_TOTAL_CONNECTIONS (default 100000, per node) and SOCKET_MAX_CONNECTIONS_PER_USER (default 10)."
describe("connection limits", () => {
  it("SOCKET_MAX_CONNECTIONS_PER_USER=2: a third connection of the user is too_many_user_connections", async (t) => {
    const gw = await startGateway({ SOCKET_MAX_CONNECTIONS_PER_USER: "2" });
    t.after(() => gw.stop());
    const a1 = await connect(gw, { token: gw.token("alice") });
    await connect(gw, { token: gw.token("alice") });
    assert.equal(await connectError(gw, { token: gw.token("alice") }), "too_many_user_connections");
    await connect(gw, { token: gw.token("bob") }); // other users are not affected
    a1.disconnect();
    const again = await connectWithin(gw, "alice");
    assert.ok(again.connected);
    assert.equal(await connectError(gw, { token: gw.token("alice") }), "too_many_user_connections");
  });

  it("SOCKET_MAX_TOTAL_CONNECTIONS=2: a third connection is too_many_connections", async (t) => {
    const gw = await startGateway({ SOCKET_MAX_TOTAL_CONNECTIONS: "2" });
    t.after(() => gw.stop());
    const a = await connect(gw, { token: gw.token("alice") });
    await connect(gw, { token: gw.token("bob") });
    assert.equal(await connectError(gw, { token: gw.token("carol") }), "too_many_connections");
    a.disconnect();
    assert.ok((await connectWithin(gw, "carol")).connected);
  });

  // "When both are reached, too_many_connections wins."
  it("when both limits are reached, too_many_connections wins", async (t) => {
    const gw = await startGateway({ SOCKET_MAX_TOTAL_CONNECTIONS: "3", SOCKET_MAX_CONNECTIONS_PER_USER: "2" });
    t.after(() => gw.stop());
    await connect(gw, { token: gw.token("alice") });
    await connect(gw, { token: gw.token("alice") });
    // Only the per-user limit is reached.
    assert.equal(await connectError(gw, { token: gw.token("alice") }), "too_many_user_connections");
    await connect(gw, { token: gw.token("bob") });
    // Now both are reached for alice.
    assert.equal(await connectError(gw, { token: gw.token("alice") }), "too_many_connections");
    assert.equal(await connectError(gw, { token: gw.token("carol") }), "too_many_connections");
  });

  it("a refused handshake does not count against the limits", async (t) => {
    const gw = await startGateway({ SOCKET_MAX_TOTAL_CONNECTIONS: "2" });
    t.after(() => gw.stop());
    for (let i = 0; i < 5; i++) assert.equal(await connectError(gw, { token: "bad" }), "invalid_token");
    await connect(gw, { token: gw.token("alice") });
    await connect(gw, { token: gw.token("bob") });
  });
});

// "Input the server cannot take as it is … is refused and never stored: validation_failed where the packet
// could be parsed, otherwise the packet is dropped (the connection may be closed)"
// "MAX_PAYLOAD_BYTES (default 65536) … A larger packet is never processed: over WebSocket the connection that
// sent it is closed, over long-polling the request gets 413; the server keeps serving everyone else."
describe("bad input", () => {
  let gw;
  before(async () => {
    gw = await startGateway();
  });
  after(async () => {
    await gw?.stop();
  });

  // Resolves with "disconnected" (this socket was closed), "no-ack" (the packet was dropped and the socket
  // is still connected), or the ack value.
  function outcome(socket, event, arg, ms = 5000) {
    return new Promise((resolve) => {
      socket.once("disconnect", () => resolve("disconnected"));
      ack(socket, event, arg, ms).then(resolve, () => resolve(socket.connected ? "no-ack" : "disconnected"));
    });
  }

  // Checks that a neighbour still sends and receives, that nothing bad was stored, and /healthz.
  async function neighbourStillWorks(roomId, transports, forbiddenText) {
    const n1 = await joined(gw, "n1", roomId, { transports });
    const n2 = await joined(gw, "n2", roomId, { transports });
    const got = waitFor(n2, "newMessage");
    assertOk(await ack(n1, "sendMessage", { roomId, text: "still here" }));
    assert.equal((await got).text, "still here");
    const { messages } = assertOk(await ack(n1, "getMessages", { roomId }));
    assert.deepEqual(messages.map((m) => m.text), ["still here"], "a refused message was stored");
    if (forbiddenText !== undefined) assert.ok(!messages.some((m) => m.text === forbiddenText));
    assert.equal((await fetch(`${gw.url}/healthz`)).status, 200);
  }

  for (const transports of TRANSPORTS) {
    it(`wrong types are validation_failed [${transports}]`, async () => {
      const roomId = `room-${uid()}`;
      const alice = await joined(gw, "alice", roomId, { transports });
      assertDetails(await ack(alice, "joinRoom", { roomId: { nested: true } }), "roomId");
      assertDetails(await ack(alice, "joinRoom", { roomId: ["a"] }), "roomId");
      assertDetails(await ack(alice, "sendMessage", { roomId, text: 123 }), "text");
      assertDetails(await ack(alice, "sendMessage", { roomId, text: ["hello"] }), "text");
      assertDetails(await ack(alice, "sendMessage", { roomId, text: null }), "text");
      assertDetails(await ack(alice, "sendMessage", [roomId, "hello"]), "_");
      assertDetails(await ack(alice, "getMessages", { roomId, before: 12 }), "before");
      assertDetails(await ack(alice, "typing", "room"), "_");
      const { messages } = assertOk(await ack(alice, "getMessages", { roomId }));
      assert.deepEqual(messages, []);
    });

    it(`a 1 MB text is refused or closes that socket only [${transports}]`, async () => {
      const roomId = `room-${uid()}`;
      const alice = await joined(gw, "alice", roomId, { transports });
      const big = "x".repeat(1024 * 1024);
      const result = await outcome(alice, "sendMessage", { roomId, text: big });
      // Never processed: either refused, or the connection that sent it is closed.
      if (result !== "disconnected") assertError(result, "validation_failed");
      await neighbourStillWorks(roomId, transports, big);
    });

    it(`JSON nested deeper than 128 levels is refused [${transports}]`, async () => {
      const roomId = `room-${uid()}`;
      const alice = await joined(gw, "alice", roomId, { transports });
      let deep = "deep";
      for (let i = 0; i < 200; i++) deep = [deep];
      const result = await outcome(alice, "sendMessage", { roomId, text: "nested", extra: deep });
      if (result !== "disconnected" && result !== "no-ack") assertError(result, "validation_failed");
      await neighbourStillWorks(roomId, transports, "nested");
    });

    it(`a lone UTF-16 surrogate is refused and never stored [${transports}]`, async () => {
      const roomId = `room-${uid()}`;
      const alice = await joined(gw, "alice", roomId, { transports });
      const text = "bad \uD800 text";
      const result = await outcome(alice, "sendMessage", { roomId, text });
      if (result !== "disconnected" && result !== "no-ack") assertError(result, "validation_failed");
      await neighbourStillWorks(roomId, transports, text);
    });
  }
});

// "EVENT_RATE_PER_SEC (default 20) and EVENT_BURST (default 40) per socket: over it, rate_limited; a socket
// that keeps being rate limited for 10 seconds (at least one refusal in every second) is disconnected."
describe("rate limits", () => {
  let gw;
  before(async () => {
    gw = await startGateway({ EVENT_RATE_PER_SEC: "1", EVENT_BURST: "3" });
  });
  after(async () => {
    await gw?.stop();
  });

  it("events over the burst are rate_limited, and allowed again after a pause", async () => {
    const roomId = `room-${uid()}`;
    const alice = await connect(gw, { token: gw.token("alice") });
    const results = [];
    for (let i = 0; i < 5; i++) results.push(await ack(alice, "joinRoom", { roomId }));
    for (const r of results.slice(0, 3)) assertOk(r);
    assertError(results[3], "rate_limited");
    assertError(results[4], "rate_limited");
    // The limit is per socket.
    const bob = await connect(gw, { token: gw.token("bob") });
    assertOk(await ack(bob, "joinRoom", { roomId }));
    await sleep(1500);
    assertOk(await ack(alice, "joinRoom", { roomId }));
  });

  it("a socket rate limited in every second for 10 s is disconnected", async () => {
    const alice = await connect(gw, { token: gw.token("alice") });
    const t0 = Date.now();
    let reason = null;
    alice.on("disconnect", (r) => (reason = r));
    const roomId = `room-${uid()}`;
    while (reason === null && Date.now() - t0 < 15000) {
      alice.emit("joinRoom", { roomId }, () => {});
      await sleep(100);
    }
    const elapsed = Date.now() - t0;
    assert.notEqual(reason, null, "still connected after 15 s of refusals");
    assert.ok(elapsed >= 8000, `disconnected after only ${elapsed} ms`);
  });
});

// "IDLE_TIMEOUT_SECS (default 0, off): a socket that sends no event for that long is disconnected."
describe("idle timeout", () => {
  let gw;
  before(async () => {
    gw = await startGateway({ IDLE_TIMEOUT_SECS: "2" });
  });
  after(async () => {
    await gw?.stop();
  });

  it("an idle socket is disconnected, an active one is not", async () => {
    const roomId = `room-${uid()}`;
    const idle = await connect(gw, { token: gw.token("idle") });
    const busy = await joined(gw, "busy", roomId);
    let busyReason = null;
    busy.on("disconnect", (r) => (busyReason = r));
    const idleGone = waitFor(idle, "disconnect", 6000);
    const t0 = Date.now();
    while (Date.now() - t0 < 4500) {
      assertOk(await ack(busy, "typing", { roomId }));
      await sleep(500);
    }
    await idleGone;
    assert.equal(busyReason, null, "an active socket was disconnected");
  });
});
