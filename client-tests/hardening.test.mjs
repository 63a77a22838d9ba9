// Room security and CORS lists (issue 5.1 and 5.2): no client reaches a user: room or a room
// it is not in, a socket that left stops receiving, and only listed origins get CORS headers.
import assert from "node:assert/strict";
import {
  ack,
  after,
  assertError,
  assertOk,
  before,
  connect,
  describe,
  it,
  joined,
  noEvent,
  startGateway,
  waitFor,
} from "./fixture.mjs";

describe("room security", () => {
  let gw;
  before(async () => {
    gw = await startGateway({ EVENT_RATE_PER_SEC: "1000", EVENT_BURST: "1000" });
  });
  after(() => gw.stop());

  // "The prefix user: is reserved" — no client may send to, read, list or type in one, its own included.
  it("user: rooms cannot be sent to, read, listed or typed in, even one's own", async () => {
    const alice = await connect(gw, { token: gw.token("alice") });
    const bob = await connect(gw, { token: gw.token("bob") });
    const bobGotNothing = noEvent(bob, "newMessage", 500);
    for (const roomId of ["user:alice", "user:bob"]) {
      assertError(await ack(alice, "sendMessage", { roomId, text: "psst" }), "forbidden");
      assertError(await ack(alice, "getMessages", { roomId }), "forbidden");
      assertError(await ack(alice, "getRoomMembers", { roomId }), "forbidden");
      assertError(await ack(alice, "typing", { roomId }), "forbidden");
    }
    assert.ok(await bobGotNothing, "bob received a message sent to his user room");
  });

  // "sender must be a member (not_member)"; getMessages, getRoomMembers, typing: "members only".
  it("a non-member can neither send to, read, list nor type in a room", async () => {
    const member = await joined(gw, "carol", "secret-room");
    assertOk(await ack(member, "sendMessage", { roomId: "secret-room", text: "hidden" }));
    const outsider = await connect(gw, { token: gw.token("dave") });
    const memberGotNothing = noEvent(member, "newMessage", 500);
    assertError(await ack(outsider, "sendMessage", { roomId: "secret-room", text: "hi" }), "not_member");
    assertError(await ack(outsider, "getMessages", { roomId: "secret-room" }), "not_member");
    assertError(await ack(outsider, "getRoomMembers", { roomId: "secret-room" }), "not_member");
    assertError(await ack(outsider, "typing", { roomId: "secret-room" }), "not_member");
    assert.ok(await memberGotNothing, "a non-member's message reached the room");
  });

  // "Membership is per socket": a socket that left a room no longer receives it.
  it("a socket that left a room no longer receives it", async () => {
    const stays = await joined(gw, "erin", "lobby-x");
    const leaves = await joined(gw, "frank", "lobby-x");
    assertOk(await ack(leaves, "leaveRoom", { roomId: "lobby-x" }));
    const silent = noEvent(leaves, "newMessage", 500);
    const delivered = waitFor(stays, "newMessage");
    assertOk(await ack(stays, "sendMessage", { roomId: "lobby-x", text: "after leave" }));
    assert.equal((await delivered).text, "after leave");
    assert.ok(await silent, "the socket that left still received the room");
    assertError(await ack(leaves, "getMessages", { roomId: "lobby-x" }), "not_member");
  });
});

// "CORS_ORIGINS (comma-separated …) applies to Socket.IO's polling requests and to the HTTP API alike."
describe("CORS_ORIGINS list", () => {
  let gw;
  before(async () => {
    gw = await startGateway({ CORS_ORIGINS: "https://app.example, https://admin.example" });
  });
  after(() => gw.stop());

  for (const path of ["/socket.io/?EIO=4&transport=polling", "/healthz", "/api/notifications"]) {
    it(`an allowed origin gets the header, another does not (${path.split("?")[0]})`, async () => {
      const allowed = await fetch(`${gw.url}${path}`, { headers: { Origin: "https://admin.example" } });
      assert.equal(allowed.headers.get("access-control-allow-origin"), "https://admin.example");
      const other = await fetch(`${gw.url}${path}`, { headers: { Origin: "https://evil.example" } });
      assert.equal(other.headers.get("access-control-allow-origin"), null);
      const pre = await fetch(`${gw.url}${path}`, {
        method: "OPTIONS",
        headers: {
          Origin: "https://app.example",
          "Access-Control-Request-Method": "POST",
          "Access-Control-Request-Headers": "authorization,content-type",
        },
      });
      assert.equal(pre.headers.get("access-control-allow-origin"), "https://app.example");
      const headers = (pre.headers.get("access-control-allow-headers") ?? "").toLowerCase();
      assert.ok(headers.includes("authorization") && headers.includes("content-type"), headers);
    });
  }
});
