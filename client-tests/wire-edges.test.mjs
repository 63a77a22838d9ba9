// Below socket.io-client, over raw Engine.IO: two edges of the wire protocol.
//   - An event whose name is written with a JSON escape ("joinRoom\u0000") is an unknown event
//     (section 4: "any other event → unknown_event"), not a reason to close the connection.
//   - A connection whose namespace socket has gone (the client sent DISCONNECT `41`, or
//     something the parser reads as one, or the server disconnected the socket and the client
//     ignored it) is closed like a connection that never joined a namespace, within
//     socketioxide's connect timeout (45 s), even while it answers pings; one that connects to
//     the namespace again in time stays open.
import assert from "node:assert/strict";
import { after, before, describe, it, nowSecs, startGateway, sleep } from "./fixture.mjs";
import { RawPolling, RawWs, findGatewayPid, rssBytes } from "./raw-client.mjs";
import { BIN } from "./fixture.mjs";

const CONNECT_TIMEOUT_MS = 45000;

describe("wire edges", () => {
  let gw;
  before(async () => {
    gw = await startGateway();
  });
  after(() => gw.stop());

  it("an event name with a JSON escape is answered unknown_event and the connection stays open", async () => {
    const c = await RawWs.open(gw.url);
    try {
      assert.equal((await c.connectNs(gw.token("alice"))).ok, true);
      const answer = await c.ack(1, "joinRoom\u0000", { roomId: "r" });
      assert.equal(answer?.error?.code, "unknown_event", JSON.stringify(answer));
      assert.deepEqual(await c.ack(2, "joinRoom", { roomId: "r" }), { ok: true, data: { roomId: "r" } });
      assert.equal(c.closed, false);
    } finally {
      c.close();
    }
  });

  it("a connection left without a namespace is closed within the connect timeout; one that rejoins is not", { timeout: 120000 }, async () => {
    const opened = Date.now();
    const left = await RawWs.open(gw.url);
    const garbage = await RawWs.open(gw.url);
    const polling = await RawPolling.open(gw.url);
    const expiring = await RawWs.open(gw.url);
    const rejoined = await RawWs.open(gw.url);
    const all = [left, garbage, polling, expiring, rejoined];
    try {
      for (const c of [left, garbage, polling, rejoined]) assert.equal((await c.connectNs(gw.token("nobody"))).ok, true);
      // Section 2: past exp + leeway (5 s) the server disconnects the socket; this client ignores it.
      assert.equal((await expiring.connectNs(gw.token("nobody", { exp: nowSecs() + 1 }))).ok, true);
      left.send("41");
      garbage.send('41{"not":"a disconnect"}');
      await polling.send("41");
      rejoined.send("41");
      await sleep(200);
      assert.equal((await rejoined.connectNs(gw.token("nobody"))).ok, true, "CONNECT again after 41");

      const closedInTime = await Promise.all(
        [left, garbage, polling, expiring].map((c) => c.waitClosed(CONNECT_TIMEOUT_MS + 20000)),
      );
      const took = Date.now() - opened;
      assert.deepEqual(closedInTime, [true, true, true, true], `closed: ${all.map((c) => c.closeReason).join(" | ")}`);
      assert.ok(expiring.frames.some((f) => f.text === "41"), "the server disconnected the expired socket");
      assert.ok(took >= CONNECT_TIMEOUT_MS - 1000, `closed after ${took} ms, before the connect timeout`);
      const pings = left.frames.filter((f) => f.text === "2").length;
      assert.ok(pings >= 1, "the closed connection was answering pings");
      assert.equal(rejoined.closed, false, `the rejoined connection was closed (${rejoined.closeReason})`);
      assert.deepEqual(await rejoined.ack(1, "joinRoom", { roomId: "still-here" }), { ok: true, data: { roomId: "still-here" } });
    } finally {
      for (const c of all) c.close();
    }
  });
  it("connections that leave their namespace and close are freed at once, not after the connect timeout", { timeout: 120000 }, async () => {
    const pid = findGatewayPid(gw, BIN);
    assert.ok(pid, "the gateway's pid");
    // Connect, DISCONNECT the namespace (`41`, as socket.io-client's close() does), close.
    const churn = async (n) => {
      for (let done = 0; done < n; ) {
        const batch = Math.min(100, n - done);
        await Promise.all(
          Array.from({ length: batch }, async (_, i) => {
            const c = await RawWs.open(gw.url);
            try {
              assert.equal((await c.connectNs(gw.token(`churn${done + i}`))).ok, true);
              c.send("41");
              await sleep(20);
            } finally {
              c.close();
            }
          }),
        );
        done += batch;
      }
    };
    await churn(1500); // the allocator grows to its working size
    await sleep(1000);
    const before = rssBytes(pid);
    await churn(1500);
    await sleep(1000);
    const grown = rssBytes(pid) - before;
    // Each such connection used to stay in memory (~13 KiB) until the 45 s timeout fired.
    assert.ok(grown < 8 * 1024 * 1024, `RSS grew by ${(grown / 1048576).toFixed(1)} MiB over 1 500 closed connections`);
  });
});
