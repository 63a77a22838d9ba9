// The README story, step by step: start the gateway, mint tokens with `sio-gateway token`, connect two
// clients with `io(url, { auth: { token } })`, join "general", and say hello.
import assert from "node:assert/strict";
import { describe, it, before, after, startGateway, cliToken, io, waitFor } from "./fixture.mjs";

describe("walkthrough", () => {
  let gw;
  const sockets = [];
  before(async () => {
    gw = await startGateway();
  });
  after(async () => {
    for (const s of sockets) s.close();
    await gw?.stop();
  });

  it("alice says hello to bob in general", async () => {
    const aliceToken = cliToken(gw, ["--sub", "alice"]);
    const bobToken = cliToken(gw, ["--sub", "bob"]);

    // Plain client options, as in the README.
    const alice = io(gw.url, { auth: { token: aliceToken } });
    const bob = io(gw.url, { auth: { token: bobToken } });
    sockets.push(alice, bob);
    await Promise.all([waitFor(alice, "connect"), waitFor(bob, "connect")]);

    const aliceJoin = await alice.timeout(5000).emitWithAck("joinRoom", { roomId: "general" });
    const bobJoin = await bob.timeout(5000).emitWithAck("joinRoom", { roomId: "general" });
    assert.deepEqual(aliceJoin, { ok: true, data: { roomId: "general" } });
    assert.deepEqual(bobJoin, { ok: true, data: { roomId: "general" } });

    const received = waitFor(bob, "newMessage");
    const sent = await alice.timeout(5000).emitWithAck("sendMessage", { roomId: "general", text: "hello" });
    assert.equal(sent.ok, true);
    const msg = await received;
    assert.equal(msg.text, "hello");
    assert.equal(msg.userId, "alice");
    assert.equal(msg.roomId, "general");
    assert.deepEqual(msg, sent.data);
  });
});
