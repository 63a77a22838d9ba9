// Section 3 (rooms) and the joinRoom / leaveRoom / getRoomMembers rows of section 4.
import assert from "node:assert/strict";
import {
  describe, it, before, after, TRANSPORTS, startGateway, connect, ack, waitFor, collect, noEvent, sleep,
  uid, assertOk, assertError, assertDetails, joined, NO_ARG,
} from "./fixture.mjs";

let gw; // defaults
let gwSmall; // MAX_ROOMS_PER_SOCKET=2, ROOM_EVENTS_MAX_MEMBERS=2
let gwClaim; // ROOMS_REQUIRE_CLAIM=true
let gwQuiet; // ROOM_EVENTS_MAX_MEMBERS=0

before(async () => {
  gw = await startGateway();
  gwSmall = await startGateway({ MAX_ROOMS_PER_SOCKET: "2", ROOM_EVENTS_MAX_MEMBERS: "2" });
  gwClaim = await startGateway({ ROOMS_REQUIRE_CLAIM: "true" });
  gwQuiet = await startGateway({ ROOM_EVENTS_MAX_MEMBERS: "0" });
});
after(async () => {
  await Promise.all([gw, gwSmall, gwClaim, gwQuiet].map((g) => g?.stop()));
});

for (const transports of TRANSPORTS) {
  const opts = { transports };
  const conn = (g, sub, extra = {}) => connect(g, { token: g.token(sub, extra), transports });

  describe(`rooms [${transports}]`, () => {
    // joinRoom: "{ roomId } → { roomId }; joinedRoom { roomId } to the socket; userJoined { roomId, userId } to
    // the other sockets in the room"
    it("joinRoom acks, emits joinedRoom to the socket and userJoined to the other members only", async () => {
      const roomId = `room-${uid()}`;
      const bob = await joined(gw, "bob", roomId, opts);
      const carol = await conn(gw, "carol"); // not in the room
      const alice = await conn(gw, "alice");
      const bobJoined = waitFor(bob, "userJoined");
      const aliceJoinedRoom = waitFor(alice, "joinedRoom");
      const aliceUserJoined = noEvent(alice, "userJoined");
      const carolUserJoined = noEvent(carol, "userJoined");
      const res = await ack(alice, "joinRoom", { roomId });
      assert.deepEqual(res, { ok: true, data: { roomId } });
      assert.deepEqual(await aliceJoinedRoom, { roomId });
      assert.deepEqual(await bobJoined, { roomId, userId: "alice" });
      assert.ok(await aliceUserJoined, "the joiner must not get userJoined");
      assert.ok(await carolUserJoined, "a non-member must not get userJoined");
    });

    // "joining a room the socket is already in succeeds and emits nothing"
    it("joining again succeeds and emits nothing", async () => {
      const roomId = `room-${uid()}`;
      const bob = await joined(gw, "bob", roomId, opts);
      const alice = await joined(gw, "alice", roomId, opts);
      await sleep(100); // let the first join's events arrive
      const aliceEvents = collect(alice, "joinedRoom");
      const bobEvents = collect(bob, "userJoined");
      assert.deepEqual(await ack(alice, "joinRoom", { roomId }), { ok: true, data: { roomId } });
      await sleep(300);
      assert.deepEqual(aliceEvents, []);
      assert.deepEqual(bobEvents, []);
    });

    // leaveRoom: "{ roomId } → { roomId }; leftRoom { roomId } to the socket; userLeft { roomId, userId } to
    // the other sockets in the room"
    it("leaveRoom acks, emits leftRoom to the socket and userLeft to the others", async () => {
      const roomId = `room-${uid()}`;
      const bob = await joined(gw, "bob", roomId, opts);
      const alice = await joined(gw, "alice", roomId, opts);
      await sleep(100);
      const bobLeft = waitFor(bob, "userLeft");
      const aliceLeftRoom = waitFor(alice, "leftRoom");
      const aliceUserLeft = noEvent(alice, "userLeft");
      assert.deepEqual(await ack(alice, "leaveRoom", { roomId }), { ok: true, data: { roomId } });
      assert.deepEqual(await aliceLeftRoom, { roomId });
      assert.deepEqual(await bobLeft, { roomId, userId: "alice" });
      assert.ok(await aliceUserLeft, "the leaver must not get userLeft");
      // Really gone: no more messages, and no more sending.
      const quiet = noEvent(alice, "newMessage");
      assertOk(await ack(bob, "sendMessage", { roomId, text: "after you left" }));
      assert.ok(await quiet, "a socket that left still receives newMessage");
      assertError(await ack(alice, "sendMessage", { roomId, text: "hi" }), "not_member");
    });

    // "not_member if the socket is not in it"
    it("leaving a room not joined is not_member", async () => {
      const alice = await conn(gw, "alice");
      assertError(await ack(alice, "leaveRoom", { roomId: `room-${uid()}` }), "not_member");
    });

    // "The prefix user: is reserved; joining it is forbidden." / leaveRoom: "forbidden for a user: room"
    it("joining or leaving a user: room is forbidden", async () => {
      const alice = await conn(gw, "alice");
      assertError(await ack(alice, "joinRoom", { roomId: "user:bob" }), "forbidden");
      assertError(await ack(alice, "joinRoom", { roomId: "user:alice" }), "forbidden");
      assertError(await ack(alice, "leaveRoom", { roomId: "user:bob" }), "forbidden");
      assertError(await ack(alice, "leaveRoom", { roomId: "user:alice" }), "forbidden");
    });

    // "Client rooms (roomId): 1 to 128 characters from [A-Za-z0-9_.:-]."
    for (const [label, roomId] of [
      ["empty", ""],
      ["of 129 characters", "r".repeat(129)],
      ["with a space", "a b"],
      ["non-ASCII", "é"],
      ["with @", "a@b"],
      ["a number", 42],
      ["null", null],
      ["missing", undefined],
    ]) {
      it(`a roomId ${label} is validation_failed with details.roomId`, async () => {
        const alice = await conn(gw, "alice");
        const arg = roomId === undefined ? {} : { roomId };
        assertDetails(await ack(alice, "joinRoom", arg), "roomId");
        assertDetails(await ack(alice, "leaveRoom", arg), "roomId");
        assertDetails(await ack(alice, "getRoomMembers", arg), "roomId");
      });
    }

    it("a roomId of 128 characters from the whole allowed set is accepted", async () => {
      const roomId = ("Az09_.:-" + uid()).repeat(16).slice(0, 128);
      assert.equal(roomId.length, 128);
      const alice = await conn(gw, "alice");
      assert.deepEqual(await ack(alice, "joinRoom", { roomId }), { ok: true, data: { roomId } });
    });

    // "a non-object argument is reported under the field _"
    for (const [label, arg] of [
      ["a string", "general"],
      ["an array", ["general"]],
      ["a number", 42],
      ["null", null],
      ["no argument", NO_ARG],
    ]) {
      it(`joinRoom with ${label} is validation_failed with details._`, async () => {
        const alice = await conn(gw, "alice");
        assertDetails(await ack(alice, "joinRoom", arg), "_");
      });
    }

    // "unknown fields are ignored"
    it("unknown fields are ignored", async () => {
      const roomId = `room-${uid()}`;
      const alice = await conn(gw, "alice");
      assert.deepEqual(await ack(alice, "joinRoom", { roomId, color: "blue" }), { ok: true, data: { roomId } });
    });

    // "If the token has a rooms claim (array of room names, where a trailing * matches any suffix), the socket
    // may join only matching rooms (forbidden otherwise)."
    it("a rooms claim limits the rooms a socket may join", async () => {
      const alice = await conn(gw, "alice", { rooms: ["chat-*", "lobby"] });
      assertOk(await ack(alice, "joinRoom", { roomId: "chat-1" }));
      assertOk(await ack(alice, "joinRoom", { roomId: "chat-general.x" }));
      assertOk(await ack(alice, "joinRoom", { roomId: "lobby" }));
      assertError(await ack(alice, "joinRoom", { roomId: "other" }), "forbidden");
      assertError(await ack(alice, "joinRoom", { roomId: "lobby2" }), "forbidden");
      assertError(await ack(alice, "joinRoom", { roomId: "xchat-1" }), "forbidden");
    });

    // "ROOMS_REQUIRE_CLAIM=true makes that claim mandatory for every join."
    it("ROOMS_REQUIRE_CLAIM=true: without a rooms claim every join is forbidden", async () => {
      const alice = await conn(gwClaim, "alice");
      assertError(await ack(alice, "joinRoom", { roomId: "lobby" }), "forbidden");
      const bob = await conn(gwClaim, "bob", { rooms: ["lobby"] });
      assertOk(await ack(bob, "joinRoom", { roomId: "lobby" }));
      assertError(await ack(bob, "joinRoom", { roomId: "other" }), "forbidden");
    });

    // "MAX_ROOMS_PER_SOCKET (default 100) bounds joined client rooms (limit_exceeded)."
    it("MAX_ROOMS_PER_SOCKET=2: the third join is limit_exceeded", async () => {
      const alice = await conn(gwSmall, "alice");
      const [a, b, c] = [`a-${uid()}`, `b-${uid()}`, `c-${uid()}`];
      assertOk(await ack(alice, "joinRoom", { roomId: a }));
      assertOk(await ack(alice, "joinRoom", { roomId: b }));
      assertError(await ack(alice, "joinRoom", { roomId: c }), "limit_exceeded");
      // Joining a room it is already in is still fine; after leaving one, a new join works.
      assertOk(await ack(alice, "joinRoom", { roomId: a }));
      assertOk(await ack(alice, "leaveRoom", { roomId: a }));
      assertOk(await ack(alice, "joinRoom", { roomId: c }));
      // The bound is per socket: another tab of alice can join.
      const alice2 = await conn(gwSmall, "alice");
      assertOk(await ack(alice2, "joinRoom", { roomId: a }));
    });

    // "A disconnect sends userLeft to each client room the socket was in"
    it("a disconnect sends userLeft to each client room the socket was in", async () => {
      const [r1, r2] = [`r1-${uid()}`, `r2-${uid()}`];
      const bob = await conn(gw, "bob");
      assertOk(await ack(bob, "joinRoom", { roomId: r1 }));
      assertOk(await ack(bob, "joinRoom", { roomId: r2 }));
      const alice = await conn(gw, "alice");
      assertOk(await ack(alice, "joinRoom", { roomId: r1 }));
      assertOk(await ack(alice, "joinRoom", { roomId: r2 }));
      await sleep(100);
      const left = collect(bob, "userLeft");
      alice.disconnect();
      await sleep(1000);
      const sorted = [...left].sort((x, y) => x.roomId.localeCompare(y.roomId));
      assert.deepEqual(sorted, [
        { roomId: r1, userId: "alice" },
        { roomId: r2, userId: "alice" },
      ]);
    });

    // "ROOM_EVENTS_MAX_MEMBERS: userJoined and userLeft are emitted only while the room has at most that many
    // sockets" (here 2; the count includes the joiner)
    it("ROOM_EVENTS_MAX_MEMBERS=2: no userJoined/userLeft once the room has more than 2 sockets", async () => {
      const roomId = `room-${uid()}`;
      const a = await joined(gwSmall, "a", roomId, opts);
      const aJoined = collect(a, "userJoined");
      const b = await joined(gwSmall, "b", roomId, opts); // 2 sockets: emitted
      await sleep(300);
      assert.deepEqual(aJoined, [{ roomId, userId: "b" }]);
      const bJoined = collect(b, "userJoined");
      const c = await joined(gwSmall, "c", roomId, opts); // 3 sockets: not emitted
      const d = await joined(gwSmall, "d", roomId, opts); // 4 sockets: not emitted
      await sleep(300);
      assert.deepEqual(aJoined, [{ roomId, userId: "b" }]);
      assert.deepEqual(bJoined, []);
      // A leave from 4 to 3 sockets: above the bound either way, not emitted.
      const aLeft = collect(a, "userLeft");
      assertOk(await ack(d, "leaveRoom", { roomId }));
      await sleep(300);
      assert.deepEqual(aLeft, []);
      assertOk(await ack(c, "leaveRoom", { roomId })); // 3 → 2: not asserted (the bound is ambiguous here)
      await sleep(200);
      aLeft.length = 0;
      // A leave from 2 to 1 socket: within the bound, emitted.
      assertOk(await ack(b, "leaveRoom", { roomId }));
      await sleep(300);
      assert.deepEqual(aLeft, [{ roomId, userId: "b" }]);
    });

    // "0 turns them off"
    it("ROOM_EVENTS_MAX_MEMBERS=0: no userJoined nor userLeft, joinedRoom/leftRoom still sent", async () => {
      const roomId = `room-${uid()}`;
      const a = await joined(gwQuiet, "a", roomId, opts);
      const events = [...["userJoined", "userLeft"].map((e) => collect(a, e))];
      const b = await conn(gwQuiet, "b");
      const bJoinedRoom = waitFor(b, "joinedRoom");
      assertOk(await ack(b, "joinRoom", { roomId }));
      assert.deepEqual(await bJoinedRoom, { roomId });
      const bLeftRoom = waitFor(b, "leftRoom");
      assertOk(await ack(b, "leaveRoom", { roomId }));
      assert.deepEqual(await bLeftRoom, { roomId });
      await sleep(300);
      assert.deepEqual(events, [[], []]);
    });

    // getRoomMembers: "{ members: [{ userId, connections }] }" (members only)
    it("getRoomMembers counts the connections of each user in the room", async () => {
      const roomId = `room-${uid()}`;
      const alice1 = await joined(gw, "alice", roomId, opts);
      await joined(gw, "alice", roomId, opts);
      await conn(gw, "alice"); // a third tab that did not join: not counted
      await joined(gw, "bob", roomId, opts);
      await conn(gw, "carol"); // not in the room
      const data = assertOk(await ack(alice1, "getRoomMembers", { roomId }));
      assert.ok(Array.isArray(data.members));
      const sorted = [...data.members].sort((x, y) => x.userId.localeCompare(y.userId));
      assert.deepEqual(sorted, [
        { userId: "alice", connections: 2 },
        { userId: "bob", connections: 1 },
      ]);
    });

    it("getRoomMembers by a non-member is not_member", async () => {
      const roomId = `room-${uid()}`;
      await joined(gw, "bob", roomId, opts);
      const alice = await conn(gw, "alice");
      assertError(await ack(alice, "getRoomMembers", { roomId }), "not_member");
    });

    // "Membership is per socket … Another tab of the same user that did not join is not a member."
    it("another tab of the same user that did not join is not a member", async () => {
      const roomId = `room-${uid()}`;
      const tab1 = await joined(gw, "alice", roomId, opts);
      const tab2 = await conn(gw, "alice");
      const tab1Got = waitFor(tab1, "newMessage");
      const tab2Quiet = noEvent(tab2, "newMessage", 500);
      const bob = await joined(gw, "bob", roomId, opts);
      assertOk(await ack(bob, "sendMessage", { roomId, text: "hi alice" }));
      assert.equal((await tab1Got).text, "hi alice");
      assert.ok(await tab2Quiet, "a tab that did not join received newMessage");
      assertError(await ack(tab2, "sendMessage", { roomId, text: "x" }), "not_member");
      assertError(await ack(tab2, "getRoomMembers", { roomId }), "not_member");
    });
  });
}
