// Older and alternative clients (issue 6.5): socket.io-client 2.x (Socket.IO protocol v4,
// served through socketioxide's `v4` feature) and socket.io-msgpack-parser with the gateway
// started with PARSER=msgpack. Each connects, authenticates, joins, sends and receives.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { io } from "socket.io-client";
import msgpackParser from "socket.io-msgpack-parser";
import { after, assertError, before, describe, it, startGateway, waitFor } from "./fixture.mjs";

const require = createRequire(import.meta.url);
const ioV2 = require("socket.io-client-v2");

/** Emits with an ack callback (2.x has no emitWithAck). */
function call(socket, event, arg, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ack for ${event}`)), ms);
    socket.emit(event, arg, (res) => {
      clearTimeout(timer);
      resolve(res);
    });
  });
}

describe("socket.io-client 2.x (protocol v4)", () => {
  let gw;
  const sockets = [];
  before(async () => {
    gw = await startGateway();
  });
  after(async () => {
    for (const s of sockets) s.close();
    await gw.stop();
  });

  const connectV2 = async (user) => {
    // 2.x has no `auth`: the token travels in the query, the handshake's third source.
    const s = ioV2(gw.url, { query: { token: gw.token(user) }, transports: ["websocket"], forceNew: true, reconnection: false });
    sockets.push(s);
    const registered = waitFor(s, "registered");
    await waitFor(s, "connect");
    return { s, registered: await registered };
  };

  it("connects with ?token=, joins, sends and receives", async () => {
    const alice = await connectV2("alice-v2");
    const bob = await connectV2("bob-v2");
    assert.equal(alice.registered.userId, "alice-v2");
    assert.deepEqual(await call(alice.s, "joinRoom", { roomId: "legacy" }), { ok: true, data: { roomId: "legacy" } });
    assert.equal((await call(bob.s, "joinRoom", { roomId: "legacy" })).ok, true);
    const got = waitFor(bob.s, "newMessage");
    const sent = await call(alice.s, "sendMessage", { roomId: "legacy", text: "from 2.x" });
    assert.equal(sent.ok, true);
    assert.deepEqual(await got, sent.data);
    assertError(await call(alice.s, "sendMessage", { roomId: "nowhere", text: "x" }), "not_member");
  });

  it("a bad token is refused", async () => {
    const s = ioV2(gw.url, { query: { token: "nope" }, transports: ["websocket"], forceNew: true, reconnection: false });
    sockets.push(s);
    const err = await new Promise((resolve) => s.once("error", resolve));
    assert.equal(typeof err === "string" ? err : err?.message, "invalid_token");
  });
});

describe("socket.io-msgpack-parser (PARSER=msgpack)", () => {
  let gw;
  const sockets = [];
  before(async () => {
    gw = await startGateway({ PARSER: "msgpack" });
  });
  after(async () => {
    for (const s of sockets) s.close();
    await gw.stop();
  });

  const connectMsgpack = async (user, transports = ["websocket"]) => {
    const s = io(gw.url, { auth: { token: gw.token(user) }, parser: msgpackParser, transports, forceNew: true, reconnection: false });
    sockets.push(s);
    const registered = waitFor(s, "registered");
    await waitFor(s, "connect");
    return { s, registered: await registered };
  };

  for (const transports of [["websocket"], ["polling", "websocket"]]) {
    it(`connects, joins, sends and receives (${transports.join("+")})`, async () => {
      const room = `mp-${transports.length}`;
      const alice = await connectMsgpack("alice-mp", transports);
      const bob = await connectMsgpack("bob-mp", transports);
      assert.equal(alice.registered.userId, "alice-mp");
      assert.deepEqual(await alice.s.timeout(5000).emitWithAck("joinRoom", { roomId: room }), { ok: true, data: { roomId: room } });
      assert.equal((await bob.s.timeout(5000).emitWithAck("joinRoom", { roomId: room })).ok, true);
      const got = waitFor(bob.s, "newMessage");
      const sent = await alice.s.timeout(5000).emitWithAck("sendMessage", { roomId: room, text: "packed" });
      assert.equal(sent.ok, true);
      assert.deepEqual(await got, sent.data);
    });
  }

  it("a bad token is refused with the contract's message", async () => {
    const s = io(gw.url, { auth: { token: "nope" }, parser: msgpackParser, transports: ["websocket"], forceNew: true, reconnection: false });
    sockets.push(s);
    const err = await waitFor(s, "connect_error");
    assert.equal(err.message, "invalid_token");
  });
});
