// Section 4: sendMessage, getMessages, typing, unknown events, and the `error` event without an ack.
import assert from "node:assert/strict";
import {
  describe, it, before, after, TRANSPORTS, startGateway, connect, ack, waitFor, collect, noEvent, sleep,
  uid, assertOk, assertError, assertDetails, joined, UUID_V7, ISO_MS,
} from "./fixture.mjs";

let gw;
before(async () => {
  // A generous rate limit: some tests send more than the default burst of 40 events.
  gw = await startGateway({ EVENT_RATE_PER_SEC: "1000", EVENT_BURST: "1000" });
});
after(async () => {
  await gw?.stop();
});

// A syntactically valid UUIDv7 that names no message.
const unknownId = "01900000-0000-7000-8000-000000000000";

for (const transports of TRANSPORTS) {
  const opts = { transports };
  const conn = (sub) => connect(gw, { token: gw.token(sub), transports });

  describe(`messages [${transports}]`, () => {
    // sendMessage: "the message … newMessage (the message) to every socket in the room, the sender included"
    // "A message: { id, roomId, userId, text, createdAt }"; ids are UUIDv7; createdAt RFC 3339 UTC with ms.
    it("sendMessage returns the message and emits newMessage to every member, sender included", async () => {
      const roomId = `room-${uid()}`;
      const alice = await joined(gw, "alice", roomId, opts);
      const bob = await joined(gw, "bob", roomId, opts);
      const carol = await conn("carol");
      const toAlice = waitFor(alice, "newMessage");
      const toBob = waitFor(bob, "newMessage");
      const toCarol = noEvent(carol, "newMessage", 500);
      const before = Date.now();
      const msg = assertOk(await ack(alice, "sendMessage", { roomId, text: "hello" }));
      assert.deepEqual(Object.keys(msg).sort(), ["createdAt", "id", "roomId", "text", "userId"]);
      assert.match(msg.id, UUID_V7);
      assert.equal(msg.roomId, roomId);
      assert.equal(msg.userId, "alice");
      assert.equal(msg.text, "hello");
      assert.match(msg.createdAt, ISO_MS);
      const t = Date.parse(msg.createdAt);
      assert.ok(t >= before - 2000 && t <= Date.now() + 2000, `createdAt ${msg.createdAt} is now`);
      assert.deepEqual(await toAlice, msg);
      assert.deepEqual(await toBob, msg);
      assert.ok(await toCarol, "a non-member received newMessage");
    });

    it("message ids are time-ordered", async () => {
      const roomId = `room-${uid()}`;
      const alice = await joined(gw, "alice", roomId, opts);
      const ids = [];
      for (let i = 0; i < 5; i++) ids.push(assertOk(await ack(alice, "sendMessage", { roomId, text: `m${i}` })).id);
      assert.deepEqual([...ids].sort(), ids);
      assert.equal(new Set(ids).size, 5);
    });

    // "sender must be a member (not_member)"
    it("sendMessage by a non-member is not_member and nothing is delivered", async () => {
      const roomId = `room-${uid()}`;
      const bob = await joined(gw, "bob", roomId, opts);
      const quiet = noEvent(bob, "newMessage", 500);
      const alice = await conn("alice");
      assertError(await ack(alice, "sendMessage", { roomId, text: "let me in" }), "not_member");
      assert.ok(await quiet, "a refused message was delivered");
    });

    // "(text 1–4000 chars, not blank)"
    for (const [label, text] of [
      ["empty", ""],
      ["blank", "   \n"],
      ["of 4001 characters", "x".repeat(4001)],
      ["of 4001 emoji", "😀".repeat(4001)],
      ["a number", 42],
      ["missing", undefined],
    ]) {
      it(`text ${label} is validation_failed with details.text`, async () => {
        const roomId = `room-${uid()}`;
        const alice = await joined(gw, "alice", roomId, opts);
        const arg = text === undefined ? { roomId } : { roomId, text };
        assertDetails(await ack(alice, "sendMessage", arg), "text");
        const data = assertOk(await ack(alice, "getMessages", { roomId }));
        assert.deepEqual(data.messages, [], "a refused message was stored");
      });
    }

    it("an invalid roomId in sendMessage is validation_failed with details.roomId", async () => {
      const alice = await conn("alice");
      assertDetails(await ack(alice, "sendMessage", { roomId: "a b", text: "hi" }), "roomId");
      assertDetails(await ack(alice, "sendMessage", { text: "hi" }), "roomId");
    });

    // "Text lengths count Unicode characters (code points); text is stored and returned unchanged"
    it("4000 emoji (4000 code points) are accepted and returned unchanged", async () => {
      const roomId = `room-${uid()}`;
      const alice = await joined(gw, "alice", roomId, opts);
      const text = "😀".repeat(4000);
      const msg = assertOk(await ack(alice, "sendMessage", { roomId, text }));
      assert.equal(msg.text, text);
      const { messages } = assertOk(await ack(alice, "getMessages", { roomId }));
      assert.equal(messages[0].text, text);
    });

    it("4000 ASCII characters are accepted", async () => {
      const roomId = `room-${uid()}`;
      const alice = await joined(gw, "alice", roomId, opts);
      const text = "y".repeat(4000);
      assert.equal(assertOk(await ack(alice, "sendMessage", { roomId, text })).text, text);
    });

    // "not trimmed"
    it("leading and trailing white space is kept", async () => {
      const roomId = `room-${uid()}`;
      const alice = await joined(gw, "alice", roomId, opts);
      const text = "  hi there \n\t";
      const msg = assertOk(await ack(alice, "sendMessage", { roomId, text }));
      assert.equal(msg.text, text);
      const { messages } = assertOk(await ack(alice, "getMessages", { roomId }));
      assert.equal(messages[0].text, text);
    });

    it("unknown fields are ignored", async () => {
      const roomId = `room-${uid()}`;
      const alice = await joined(gw, "alice", roomId, opts);
      const msg = assertOk(await ack(alice, "sendMessage", { roomId, text: "x", userId: "mallory", extra: 1 }));
      assert.equal(msg.userId, "alice");
      assert.equal(msg.extra, undefined);
    });

    // getMessages: "{ roomId, limit? (1–100, default 50), before? (message id) } → { messages, hasMore }, newest first"
    it("getMessages pages newest first with limit, before and hasMore", async () => {
      const roomId = `room-${uid()}`;
      const alice = await joined(gw, "alice", roomId, opts);
      const sent = [];
      for (let i = 0; i < 5; i++) sent.push(assertOk(await ack(alice, "sendMessage", { roomId, text: `m${i}` })));
      const newestFirst = [...sent].reverse();

      assert.deepEqual(assertOk(await ack(alice, "getMessages", { roomId })), { messages: newestFirst, hasMore: false });
      assert.deepEqual(assertOk(await ack(alice, "getMessages", { roomId, limit: 2 })), {
        messages: newestFirst.slice(0, 2),
        hasMore: true,
      });
      assert.deepEqual(assertOk(await ack(alice, "getMessages", { roomId, limit: 2, before: sent[3].id })), {
        messages: [sent[2], sent[1]],
        hasMore: true,
      });
      assert.deepEqual(assertOk(await ack(alice, "getMessages", { roomId, limit: 2, before: sent[1].id })), {
        messages: [sent[0]],
        hasMore: false,
      });
      assert.deepEqual(assertOk(await ack(alice, "getMessages", { roomId, limit: 5 })), {
        messages: newestFirst,
        hasMore: false,
      });
      assert.deepEqual(assertOk(await ack(alice, "getMessages", { roomId, before: sent[0].id })), {
        messages: [],
        hasMore: false,
      });
    });

    it("getMessages returns at most 50 by default, and 100 at most", async () => {
      const roomId = `room-${uid()}`;
      const alice = await joined(gw, "alice", roomId, opts);
      for (let i = 0; i < 51; i++) assertOk(await ack(alice, "sendMessage", { roomId, text: `n${i}` }));
      const def = assertOk(await ack(alice, "getMessages", { roomId }));
      assert.equal(def.messages.length, 50);
      assert.equal(def.hasMore, true);
      assert.equal(def.messages[0].text, "n50");
      const all = assertOk(await ack(alice, "getMessages", { roomId, limit: 100 }));
      assert.equal(all.messages.length, 51);
      assert.equal(all.hasMore, false);
    });

    it("getMessages only returns the room's own messages", async () => {
      const [r1, r2] = [`r1-${uid()}`, `r2-${uid()}`];
      const alice = await joined(gw, "alice", r1, opts);
      assertOk(await ack(alice, "joinRoom", { roomId: r2 }));
      const m1 = assertOk(await ack(alice, "sendMessage", { roomId: r1, text: "one" }));
      const m2 = assertOk(await ack(alice, "sendMessage", { roomId: r2, text: "two" }));
      assert.deepEqual(assertOk(await ack(alice, "getMessages", { roomId: r1 })).messages, [m1]);
      assert.deepEqual(assertOk(await ack(alice, "getMessages", { roomId: r2 })).messages, [m2]);
    });

    // "not_found (a before cursor that names no message … of that room …)"
    it("a before cursor naming an unknown message is not_found", async () => {
      const roomId = `room-${uid()}`;
      const alice = await joined(gw, "alice", roomId, opts);
      assertOk(await ack(alice, "sendMessage", { roomId, text: "x" }));
      assertError(await ack(alice, "getMessages", { roomId, before: unknownId }), "not_found");
    });

    it("a before cursor naming a message of another room is not_found", async () => {
      const [r1, r2] = [`r1-${uid()}`, `r2-${uid()}`];
      const alice = await joined(gw, "alice", r1, opts);
      assertOk(await ack(alice, "joinRoom", { roomId: r2 }));
      const other = assertOk(await ack(alice, "sendMessage", { roomId: r2, text: "elsewhere" }));
      assertOk(await ack(alice, "sendMessage", { roomId: r1, text: "here" }));
      assertError(await ack(alice, "getMessages", { roomId: r1, before: other.id }), "not_found");
    });

    // "limit? (1–100 …)"
    for (const limit of [0, 101, "5", 1.5, -1]) {
      it(`getMessages limit ${JSON.stringify(limit)} is validation_failed with details.limit`, async () => {
        const roomId = `room-${uid()}`;
        const alice = await joined(gw, "alice", roomId, opts);
        assertDetails(await ack(alice, "getMessages", { roomId, limit }), "limit");
      });
    }

    // "(members only)"
    it("getMessages by a non-member is not_member", async () => {
      const roomId = `room-${uid()}`;
      const bob = await joined(gw, "bob", roomId, opts);
      assertOk(await ack(bob, "sendMessage", { roomId, text: "secret" }));
      const alice = await conn("alice");
      assertError(await ack(alice, "getMessages", { roomId }), "not_member");
    });

    // typing: "{ roomId } → {}; volatile typing { roomId, userId } to the other sockets in the room; not stored;
    // members only (not_member)"
    it("typing acks {} and reaches the other members, not the sender", async () => {
      const roomId = `room-${uid()}`;
      const alice = await joined(gw, "alice", roomId, opts);
      const bob = await joined(gw, "bob", roomId, opts);
      const toBob = waitFor(bob, "typing");
      const toAlice = noEvent(alice, "typing");
      assert.deepEqual(await ack(alice, "typing", { roomId }), { ok: true, data: {} });
      assert.deepEqual(await toBob, { roomId, userId: "alice" });
      assert.ok(await toAlice, "the sender received its own typing");
      assert.deepEqual(assertOk(await ack(alice, "getMessages", { roomId })).messages, [], "typing was stored");
    });

    it("typing by a non-member is not_member", async () => {
      const roomId = `room-${uid()}`;
      const bob = await joined(gw, "bob", roomId, opts);
      const quiet = noEvent(bob, "typing");
      const alice = await conn("alice");
      assertError(await ack(alice, "typing", { roomId }), "not_member");
      assert.ok(await quiet);
    });

    // "any other event → unknown_event"
    it("an unknown event is unknown_event", async () => {
      const alice = await conn("alice");
      assertError(await ack(alice, "deleteEverything", { roomId: "x" }), "unknown_event");
    });

    // "If the client sent no acknowledgement callback, a failure is emitted to that socket as the event error
    // { code, message, event, details? }; a success is silent apart from the events listed below."
    it("a failure without an ack is emitted as the event error", async () => {
      const alice = await conn("alice");
      const err = waitFor(alice, "error");
      alice.emit("sendMessage", { roomId: `room-${uid()}`, text: "x" });
      const e = await err;
      assert.equal(e.code, "not_member");
      assert.equal(e.event, "sendMessage");
      assert.equal(typeof e.message, "string");
    });

    it("a validation failure without an ack carries details", async () => {
      const alice = await conn("alice");
      const err = waitFor(alice, "error");
      alice.emit("joinRoom", { roomId: "" });
      const e = await err;
      assert.equal(e.code, "validation_failed");
      assert.equal(e.event, "joinRoom");
      assert.ok(Array.isArray(e.details?.roomId), JSON.stringify(e));
    });

    it("an unknown event without an ack is emitted as error unknown_event", async () => {
      const alice = await conn("alice");
      const err = waitFor(alice, "error");
      alice.emit("deleteEverything", {});
      const e = await err;
      assert.equal(e.code, "unknown_event");
      assert.equal(e.event, "deleteEverything");
    });

    it("a success without an ack emits no error", async () => {
      const roomId = `room-${uid()}`;
      const alice = await conn("alice");
      const errors = collect(alice, "error");
      const joinedRoom = waitFor(alice, "joinedRoom");
      alice.emit("joinRoom", { roomId });
      assert.deepEqual(await joinedRoom, { roomId });
      const got = waitFor(alice, "newMessage");
      alice.emit("sendMessage", { roomId, text: "quiet" });
      assert.equal((await got).text, "quiet");
      alice.emit("typing", { roomId });
      await sleep(300);
      assert.deepEqual(errors, []);
    });
  });
}
