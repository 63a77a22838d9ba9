// Contract section 5 (v1.2), issue 12: "a socket that stays connected receives every
// notification of its user that was answered 201 — exactly once, in id order — also while Redis
// is unreachable or restarting, while a node is too busy to publish or receive in time, and when
// another node dies". The quick variant of bench/faults.mjs: 3 real nodes, a private
// redis-server, 20 users × 2 careful tabs (socket.io-client, reconnecting with their cursor
// through a simulated load balancer), 20 notifications/s round-robin over the nodes while the
// faults are played. Each run must report 100 % delivered, 0 missing, 0 duplicates, 0 out of order.
//
// Needs the redis-server binary, and PostgreSQL with the psql CLI (TEST_POSTGRES_URL, else
// postgres://postgres@127.0.0.1:5432/postgres); a missing one fails with what to install.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { runFaults, formatTable } from "../bench/faults.mjs";

// Runs one quick scenario and asserts the promise, showing the whole report when it fails.
async function assertNoLoss(db, faults) {
  const progress = [];
  const r = await runFaults({ db, faults, quick: true, log: (m) => progress.push(m) });
  const report = `\n${formatTable(r)}\n${JSON.stringify({ missing: r.missingExamples, duplicates: r.duplicateExamples, outOfOrder: r.outOfOrderExamples })}`;
  assert.ok(r.answered201 > 0, `nothing was answered 201${report}`);
  assert.equal(r.missing, 0, `missing deliveries${report}`);
  assert.equal(r.duplicates, 0, `duplicate deliveries${report}`);
  assert.equal(r.outOfOrder, 0, `deliveries out of id order${report}`);
  assert.equal(r.deliveredPct, 100, report);
}

describe("delivery under faults (bench/faults.mjs --quick)", () => {
  it("sqlite: Redis SIGKILLed for 5 s and restarted, then a node SIGKILLed", async () => {
    await assertNoLoss("sqlite", ["redis-kill", "node-kill"]);
  });

  it("postgres: Redis SIGKILLed for 5 s and restarted", async () => {
    await assertNoLoss("postgres", ["redis-kill"]);
  });

  it("sqlite: Redis delayed by 2 s per packet for a while, then one node saturated by a burst", async () => {
    await assertNoLoss("sqlite", ["redis-slow", "overload"]);
  });
});
