// The bad-input battery (issue 5.4; contract section 4 "Input the server cannot take as it is…"
// and section 7). Below socket.io-client, over a raw WebSocket and over raw long-polling, every
// input of the tables below is sent on a fresh authenticated connection, and for each one:
//   1. the offending connection gets an answer (an ack or `error` event with a code, a CONNECT
//      error, an HTTP status) or is closed, or the packet is dropped and the connection still
//      answers the next event (a probe) — it never hangs (every wait is bounded);
//   2. GET /healthz answers 200;
//   3. alice, a well-behaved socket.io-client connected through the whole battery, sends a
//      message to the room "control" with an ok ack, and bob receives that newMessage;
//   4. the gateway's resident memory (VmRSS) stays within baseline + 150 MB, and ends within
//      baseline + 60 MB.
// Every input is one row of a table; the battery reports how many it tried and keeps going after
// a failure, so one run lists every input the server mishandled. BATTERY_VERBOSE=1 prints the
// outcome of each input.
//
// Outcomes: "answered" (an answer to the bad input, connection still open), "closed" (the server
// closed the connection or disconnected the socket, with or without an answer first), "dropped"
// (no answer, and the probe sent after it was answered). An input lists the outcomes the contract
// allows; `code` is an answer code that must be among the answers, `codeIfAnswered` the only
// code acceptable if there is any answer (e.g. never `ok` for a refused input).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import WebSocket from "ws";
import {
  describe, it, startGateway, connect, ack, until, sleep, assertOk, BIN,
} from "./fixture.mjs";
import { RawWs, RawPolling, RS, findGatewayPid, rssBytes } from "./raw-client.mjs";

const MB = 1024 * 1024;
const MAX_PAYLOAD = 65536;
const PROBE_ID = 777777; // ack id of the probe sent after every input
const VERBOSE = process.env.BATTERY_VERBOSE === "1";

const ANY = ["answered", "closed", "dropped"];
const GONE_OR_DROPPED = ["closed", "dropped"];

// ---------------------------------------------------------------------------
// Building blocks of the inputs

// `42<id>[name, ...args]` (id "" for no ack).
const ev = (id, name, ...args) => `42${id}${JSON.stringify([name, ...args])}`;
// A placeholder for attachment `num`.
const ph = (num) => ({ _placeholder: true, num });
const bin = (n = 16) => randomBytes(n);
const nested = (depth, open = "[", close = "]", leaf = "0") => open.repeat(depth) + leaf + close.repeat(depth);
const nestedObj = (depth) => '{"a":'.repeat(depth) + "0" + "}".repeat(depth);
const numbers = (n) => `[${Array.from({ length: n }, (_, i) => i).join(",")}]`;

// Inputs sent on an authenticated connection that joined its own room `room` (so that
// membership never hides a validation). `packets(room, ctx)` returns the items to send: a string
// is an Engine.IO text packet, a Buffer a binary frame (base64 `b…` packet over polling),
// { textBytes } a text frame holding exactly those bytes. `only` restricts to one transport.
const PACKET_INPUTS = [
  // --- malformed Engine.IO packets
  { name: "empty text frame", only: "ws", packets: () => [""], expect: GONE_OR_DROPPED },
  { name: "Engine.IO type 9", packets: () => ["9"], expect: ANY },
  { name: "Engine.IO type x", packets: () => ["x"], expect: ANY },
  { name: "Engine.IO message with no payload (4)", packets: () => ["4"], expect: ANY },
  { name: "Engine.IO upgrade packet (5) on an open transport", packets: () => ["5"], expect: ANY },
  { name: "Engine.IO noop from the client (6)", packets: () => ["6"], expect: ANY },
  { name: "Engine.IO open from the client (0)", packets: () => ["0"], expect: ANY },
  { name: "Engine.IO open with a body (0{})", packets: () => ['0{"sid":"x"}'], expect: ANY },
  { name: "Engine.IO close (1)", packets: () => ["1"], expect: ["closed"] },
  { name: "Engine.IO ping from the client (2)", packets: () => ["2"], expect: ANY },
  { name: "unsolicited Engine.IO pong (3)", packets: () => ["3"], expect: ANY },
  { name: "ping probe out of an upgrade (2probe)", packets: () => ["2probe"], expect: ANY },
  { name: "random binary frame", packets: () => [bin(64)], expect: ANY },
  { name: "empty binary frame", only: "ws", packets: () => [Buffer.alloc(0)], expect: GONE_OR_DROPPED },
  {
    name: "text frame that is not UTF-8 (encoded surrogate ED A0 80)",
    only: "ws",
    packets: (r) => [{ textBytes: Buffer.concat([Buffer.from('421["sendMessage",{"roomId":"' + r + '","text":"'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}]')]) }],
    expect: GONE_OR_DROPPED,
  },
  { name: "text packet of 1000 NUL bytes", packets: () => ["\0".repeat(1000)], expect: ANY },

  // --- malformed Socket.IO packets
  { name: "42", packets: () => ["42"], expect: ANY },
  { name: "42[", packets: () => ["42["], expect: GONE_OR_DROPPED },
  { name: "42{}", packets: () => ["42{}"], expect: ANY },
  { name: "42[]", packets: () => ["42[]"], expect: ANY },
  { name: "421[]", packets: () => ["421[]"], expect: ANY },
  { name: "42[1]", packets: () => ["42[1]"], expect: ANY },
  { name: "42[null]", packets: () => ["42[null]"], expect: ANY },
  { name: '42"sendMessage"', packets: () => ['42"sendMessage"'], expect: ANY },
  { name: '42["sendMessage" (unterminated)', packets: () => ['42["sendMessage"'], expect: GONE_OR_DROPPED },
  {
    name: "421[sendMessage, {...} (unterminated, with ack id)",
    packets: (r) => [`421["sendMessage",{"roomId":"${r}","text":"x"}`],
    expect: GONE_OR_DROPPED,
  },
  { name: "invalid JSON: 42[\"sendMessage\",{roomId:1}]", packets: () => ['42["sendMessage",{roomId:1}]'], expect: GONE_OR_DROPPED },
  { name: "invalid JSON: single quotes", packets: () => ["421['sendMessage',{'roomId':'a'}]"], expect: GONE_OR_DROPPED },
  { name: "invalid JSON: trailing comma", packets: (r) => [`421["sendMessage",{"roomId":"${r}","text":"x",}]`], expect: GONE_OR_DROPPED },
  { name: "invalid JSON: NaN", packets: (r) => [`421["getMessages",{"roomId":"${r}","limit":NaN}]`], expect: GONE_OR_DROPPED },
  {
    name: "trailing garbage after the JSON",
    packets: (r) => [`421["sendMessage",{"roomId":"${r}","text":"x"}]garbage`],
    expect: ANY,
    codeIfAnswered: "validation_failed",
  },
  { name: "Socket.IO type 9 (499)", packets: () => ["499"], expect: GONE_OR_DROPPED },
  { name: "Socket.IO type 7", packets: () => ['47["x"]'], expect: GONE_OR_DROPPED },
  { name: "Socket.IO type x", packets: () => ['4x["x"]'], expect: GONE_OR_DROPPED },
  { name: "second CONNECT without auth (40)", packets: () => ["40"], expect: ANY },
  { name: "second CONNECT with a valid token", packets: (r, ctx) => [`40${JSON.stringify({ token: ctx.gw.token("second") })}`], expect: ANY },
  { name: "second CONNECT with a bad token", packets: () => ['40{"token":"garbage"}'], expect: ANY },
  { name: "CONNECT with a non-object auth", packets: () => ["40[1,2,3]"], expect: ANY },
  {
    // After a namespace disconnect the events are ignored, as in Socket.IO: nothing answers
    // them and nothing is stored. The client then CONNECTs again so the probe can be answered.
    name: "41 then events",
    packets: (r, ctx) => [
      "41",
      ev(1, "sendMessage", { roomId: r, text: "after 41" }),
      ev("", "joinRoom", { roomId: r }),
      `40${JSON.stringify({ token: ctx.gw.token("back-after-41") })}`,
    ],
    expect: ["answered", "dropped", "closed"],
    codeIfAnswered: "connect",
  },

  // --- parseable packets with arguments the DTOs refuse (the contract: validation_failed)
  { name: "roomId a number, with ack", packets: (r) => [ev(1, "sendMessage", { roomId: 1, text: "x" })], expect: ["answered"], code: "validation_failed" },
  { name: "roomId a number, no ack (error event)", packets: () => [ev("", "sendMessage", { roomId: 1 })], expect: ["answered"], code: "validation_failed" },
  { name: "no argument", packets: () => ['421["sendMessage"]'], expect: ["answered"], code: "validation_failed" },
  { name: "null argument", packets: () => ['421["sendMessage",null]'], expect: ["answered"], code: "validation_failed" },
  { name: "string argument", packets: () => ['421["joinRoom","lobby"]'], expect: ["answered"], code: "validation_failed" },
  { name: "operator object as roomId", packets: () => [ev(1, "joinRoom", { roomId: { $gt: "" } })], expect: ["answered"], code: "validation_failed" },
  { name: "markRead ids a string", packets: () => [ev(1, "markRead", { ids: "all" })], expect: ["answered"], code: "validation_failed" },
  { name: "refreshToken with a 50 KB token", packets: () => [ev(1, "refreshToken", { token: "x".repeat(50000) })], expect: ["answered"], code: ["invalid_token", "validation_failed"] },
  { name: "60 KB text (under MAX_PAYLOAD_BYTES)", packets: (r) => [ev(1, "sendMessage", { roomId: r, text: "x".repeat(60000) })], expect: ["answered"], code: "validation_failed" },
  { name: "60 KB roomId", packets: () => [ev(1, "joinRoom", { roomId: "r".repeat(60000) })], expect: ["answered"], code: "validation_failed" },
  { name: "60 KB event name", packets: () => [ev(1, "e".repeat(60000), {})], expect: ["answered"], code: "unknown_event" },
  { name: "text an array of 10 000 numbers", packets: (r) => [`421["sendMessage",{"roomId":"${r}","text":${numbers(10000)}}]`], expect: ["answered"], code: "validation_failed" },
  { name: "argument an array of 10 000 numbers", packets: () => [`421["sendMessage",${numbers(10000)}]`], expect: ["answered"], code: "validation_failed" },
  { name: "10 000 arguments", packets: () => [`421["sendMessage",${numbers(10000).slice(1)}`], expect: ["answered"], code: "validation_failed" },
  { name: "markRead with 10 000 ids", packets: () => [`421["markRead",{"ids":${numbers(10000)}}]`], expect: ["answered"], code: "validation_failed" },
  {
    name: "object with 5 000 unknown fields and an empty text",
    packets: (r) => [`421["sendMessage",{"roomId":"${r}","text":"",${Array.from({ length: 5000 }, (_, i) => `"f${i}":${i}`).join(",")}}]`],
    expect: ["answered"],
    code: "validation_failed",
  },

  // --- huge input over MAX_PAYLOAD_BYTES: the WebSocket is closed, a polling POST gets 413
  { name: "1 MB text (over MAX_PAYLOAD_BYTES)", packets: (r) => [ev(1, "sendMessage", { roomId: r, text: "x".repeat(MB) })], expect: ["closed"], pollingCode: "http_413" },
  { name: "70 KB packet (just over)", packets: (r) => [ev(1, "sendMessage", { roomId: r, text: "y".repeat(70000) })], expect: ["closed"], pollingCode: "http_413" },

  // --- deep nesting: refused, never stored ("JSON nested deeper than 128 levels")
  { name: "JSON nested 100 000 levels deep as the argument (200 KB, over the limit)", packets: () => [`421["sendMessage",${nested(100000)}]`], expect: ["closed"], pollingCode: "http_413" },
  { name: "JSON nested 30 000 levels deep as the argument (60 KB)", packets: () => [`421["sendMessage",${nested(30000)}]`], expect: ANY, codeIfAnswered: "validation_failed" },
  { name: "objects nested 10 000 levels deep (60 KB)", packets: () => [`421["sendMessage",${nestedObj(10000)}]`], expect: ANY, codeIfAnswered: "validation_failed" },
  { name: "60 000 unclosed [", packets: () => [`421["sendMessage",${"[".repeat(60000)}`], expect: GONE_OR_DROPPED },
  {
    name: "200 levels in an unknown field beside a valid message",
    packets: (r) => [`421["sendMessage",{"roomId":"${r}","text":"deep","extra":${nested(200)}}]`],
    expect: ANY,
    codeIfAnswered: "validation_failed",
  },
  {
    name: "nesting 30 000 levels as the event name",
    packets: () => [`421[${nested(30000)},{}]`],
    expect: ANY,
    codeIfAnswered: "unknown_event",
  },

  // --- lone surrogates ("strings holding lone UTF-16 surrogates")
  { name: "lone \\ud800 in text", packets: (r) => [`421["sendMessage",{"roomId":"${r}","text":"a\\ud800b"}]`], expect: ANY, codeIfAnswered: "validation_failed" },
  { name: "lone \\udfff in text", packets: (r) => [`421["sendMessage",{"roomId":"${r}","text":"\\udfff"}]`], expect: ANY, codeIfAnswered: "validation_failed" },
  { name: "high surrogate then \\u0041", packets: (r) => [`421["sendMessage",{"roomId":"${r}","text":"\\ud800\\u0041"}]`], expect: ANY, codeIfAnswered: "validation_failed" },
  { name: "lone surrogate in roomId", packets: () => ['421["joinRoom",{"roomId":"a\\ud800"}]'], expect: ANY, codeIfAnswered: "validation_failed" },
  { name: "lone surrogate in an unknown key beside a valid message", packets: (r) => [`421["sendMessage",{"roomId":"${r}","text":"ok?","\\ud800":1}]`], expect: ANY, codeIfAnswered: "validation_failed" },
  { name: "lone surrogate in the event name", packets: () => ['421["\\ud800",{}]'], expect: ANY, codeIfAnswered: "unknown_event" },
  { name: "lone surrogate, no ack", packets: (r) => [`42["sendMessage",{"roomId":"${r}","text":"\\ud800"}]`], expect: ANY, codeIfAnswered: "validation_failed" },

  // --- numbers out of range
  { name: "limit 1e400", packets: (r) => [`421["getMessages",{"roomId":"${r}","limit":1e400}]`], expect: ANY, codeIfAnswered: "validation_failed" },
  { name: "limit -1e400", packets: (r) => [`421["getMessages",{"roomId":"${r}","limit":-1e400}]`], expect: ANY, codeIfAnswered: "validation_failed" },
  { name: "limit 123456789012345678901234567890", packets: (r) => [`421["getMessages",{"roomId":"${r}","limit":123456789012345678901234567890}]`], expect: ANY, codeIfAnswered: "validation_failed" },
  { name: "limit 1e-400", packets: (r) => [`421["getMessages",{"roomId":"${r}","limit":1e-400}]`], expect: ANY, codeIfAnswered: "validation_failed" },
  { name: "1e400 in an unknown field beside a valid message", packets: (r) => [`421["sendMessage",{"roomId":"${r}","text":"num","n":1e400}]`], expect: ANY, codeIfAnswered: "validation_failed" },
  { name: "markRead ids [1e400]", packets: () => ['421["markRead",{"ids":[1e400]}]'], expect: ANY, codeIfAnswered: "validation_failed" },
  { name: "a 5 000-digit number", packets: (r) => [`421["getMessages",{"roomId":"${r}","limit":${"9".repeat(5000)}}]`], expect: ANY, codeIfAnswered: "validation_failed" },

  // --- binary attachments where JSON is expected, and placeholder tricks
  { name: "binary attachment as the whole argument", packets: () => [`451-1${JSON.stringify(["sendMessage", ph(0)])}`, bin()], expect: ["answered"], code: "validation_failed" },
  { name: "binary attachment as text", packets: (r) => [`451-1${JSON.stringify(["sendMessage", { roomId: r, text: ph(0) }])}`, bin()], expect: ["answered"], code: "validation_failed" },
  { name: "binary attachment as roomId", packets: () => [`451-1${JSON.stringify(["joinRoom", { roomId: ph(0) }])}`, bin()], expect: ["answered"], code: "validation_failed" },
  { name: "binary attachment, no ack", packets: () => [`451-${JSON.stringify(["sendMessage", ph(0)])}`, bin()], expect: ["answered"], code: "validation_failed" },
  { name: "binary frame with no announcing packet", packets: () => [bin(), bin()], expect: GONE_OR_DROPPED },
  { name: "placeholder num 99 (one attachment)", packets: () => [`451-1${JSON.stringify(["sendMessage", ph(99)])}`, bin()], expect: ANY, codeIfAnswered: "validation_failed" },
  { name: "placeholder num -1", packets: () => [`451-1${JSON.stringify(["sendMessage", ph(-1)])}`, bin()], expect: ANY, codeIfAnswered: "validation_failed" },
  { name: 'placeholder num "0"', packets: () => [`451-1${JSON.stringify(["sendMessage", ph("0")])}`, bin()], expect: ANY, codeIfAnswered: "validation_failed" },
  { name: "placeholder num 1.5", packets: () => [`451-1${JSON.stringify(["sendMessage", ph(1.5)])}`, bin()], expect: ANY, codeIfAnswered: "validation_failed" },
  { name: "placeholder without num", packets: () => [`451-1${JSON.stringify(["sendMessage", { _placeholder: true }])}`, bin()], expect: ANY, codeIfAnswered: "validation_failed" },
  { name: "placeholder num 2^64", packets: () => ['451-1["sendMessage",{"_placeholder":true,"num":18446744073709551616}]', bin()], expect: ANY, codeIfAnswered: "validation_failed" },
  { name: "placeholder in an event with no attachment announced (42)", packets: () => [ev(1, "sendMessage", ph(0))], expect: ["answered"], code: "validation_failed" },
  { name: "more attachments than announced (1 announced, 3 sent)", packets: () => [`451-1${JSON.stringify(["sendMessage", ph(0)])}`, bin(), bin(), bin()], expect: ANY, codeIfAnswered: "validation_failed" },
  { name: "0 attachments announced (450-)", packets: () => [`450-1${JSON.stringify(["sendMessage", {}])}`], expect: ANY, codeIfAnswered: "validation_failed" },
  { name: "no attachment count (45-)", packets: () => [`45-1${JSON.stringify(["sendMessage", ph(0)])}`, bin()], expect: GONE_OR_DROPPED },
  { name: "attachment count 2^64 + 1", packets: () => [`4518446744073709551617-1${JSON.stringify(["sendMessage", ph(0)])}`, bin()], expect: GONE_OR_DROPPED },
  { name: "attachment count 100 000", packets: () => [`45100000-1${JSON.stringify(["sendMessage", ph(0)])}`, bin()], expect: ANY },
  {
    name: "fewer attachments than announced, then 3 s of silence, then an event",
    packets: () => [`452-1${JSON.stringify(["sendMessage", [ph(0), ph(1)]])}`, bin()],
    settleMs: 3000,
    expect: ANY,
    codeIfAnswered: "validation_failed",
  },
  {
    name: "binary event whose attachments total 4.5 MB (100 x 45 KB, over MAX_PAYLOAD_BYTES)",
    packets: () => [
      `45100-1${JSON.stringify(["sendMessage", Array.from({ length: 100 }, (_, i) => ph(i))])}`,
      ...Array.from({ length: 100 }, () => Buffer.alloc(45000, 7)),
    ],
    expect: ["closed"],
    waitMs: 15000,
  },
  {
    name: "valid message carrying 4.5 MB of attachments in an unknown field (over MAX_PAYLOAD_BYTES)",
    packets: (r) => [
      `45100-1${JSON.stringify(["sendMessage", { roomId: r, text: "carried 4.5 MB", blobs: Array.from({ length: 100 }, (_, i) => ph(i)) }])}`,
      ...Array.from({ length: 100 }, () => Buffer.alloc(45000, 6)),
    ],
    expect: ["closed"],
    waitMs: 15000,
  },
  {
    name: "attachments announced 1000, 9 MB of them sent, then silence",
    packets: () => [
      `451000-1${JSON.stringify(["sendMessage", Array.from({ length: 1000 }, (_, i) => ph(i))])}`,
      ...Array.from({ length: 200 }, () => Buffer.alloc(45000, 8)),
    ],
    settleMs: 1000,
    expect: ["closed"],
    waitMs: 15000,
  },
  { name: "one 1 MB attachment", packets: () => [`451-1${JSON.stringify(["sendMessage", ph(0)])}`, Buffer.alloc(MB, 9)], expect: ["closed"], pollingCode: "http_413" },
  { name: "binary ack for an id never sent (461-999)", packets: () => [`461-999${JSON.stringify([ph(0)])}`, bin()], expect: GONE_OR_DROPPED },

  // --- unknown namespaces
  { name: "CONNECT to /nope with a token", packets: (r, ctx) => [`40/nope,${JSON.stringify({ token: ctx.gw.token("nope") })}`], expect: ANY },
  { name: "CONNECT to /nope without auth", packets: () => ["40/nope,"], expect: ANY },
  { name: "CONNECT to /nope without a comma", packets: () => ["40/nope"], expect: ANY },
  { name: "CONNECT to a 50 KB namespace", packets: () => [`40/${"n".repeat(50000)},`], expect: ANY },
  { name: "event to /nope", packets: (r) => [`42/nope,1${JSON.stringify(["sendMessage", { roomId: r, text: "nope" }])}`], expect: GONE_OR_DROPPED },
  { name: "DISCONNECT from /nope", packets: () => ["41/nope,"], expect: GONE_OR_DROPPED },
  { name: "binary event to /nope", packets: () => [`451-/nope,1${JSON.stringify(["sendMessage", ph(0)])}`, bin()], expect: GONE_OR_DROPPED },

  // --- acks for ids never sent
  { name: "43999[{}]", packets: () => ["43999[{}]"], expect: GONE_OR_DROPPED },
  { name: "4312345678901234567890[]", packets: () => ["4312345678901234567890[]"], expect: GONE_OR_DROPPED },
  { name: "430[{ok:true}]", packets: () => ['430[{"ok":true}]'], expect: GONE_OR_DROPPED },
  { name: "43 with no id", packets: () => ["43[{}]"], expect: GONE_OR_DROPPED },
  { name: "43999 with no data", packets: () => ["43999"], expect: GONE_OR_DROPPED },
  { name: "431[ (invalid JSON)", packets: () => ["431["], expect: GONE_OR_DROPPED },

  // --- event names that are not strings
  { name: "42[5,{}]", packets: () => ["421[5,{}]"], expect: ANY, codeIfAnswered: "unknown_event" },
  { name: '42[{"a":1}]', packets: () => ['421[{"a":1},{}]'], expect: ANY, codeIfAnswered: "unknown_event" },
  { name: "42[null,{}]", packets: () => ["421[null,{}]"], expect: ANY, codeIfAnswered: "unknown_event" },
  { name: "42[true]", packets: () => ["421[true]"], expect: ANY, codeIfAnswered: "unknown_event" },
  { name: '42[["sendMessage"],{}]', packets: () => ['421[["sendMessage"],{}]'], expect: ANY, codeIfAnswered: "unknown_event" },
  { name: "empty event name", packets: () => ['421["",{}]'], expect: ANY, codeIfAnswered: "unknown_event" },

  // --- reserved and odd event names from the client ("any other event: unknown_event")
  { name: 'reserved "connect"', packets: () => ['421["connect",{}]'], expect: ANY, codeIfAnswered: "unknown_event" },
  { name: 'reserved "disconnect" (no ack)', packets: () => ['42["disconnect"]'], expect: ANY, codeIfAnswered: "unknown_event" },
  { name: 'reserved "disconnecting"', packets: () => ['421["disconnecting",{}]'], expect: ANY, codeIfAnswered: "unknown_event" },
  { name: 'reserved "connect_error"', packets: () => ['421["connect_error",{}]'], expect: ANY, codeIfAnswered: "unknown_event" },
  { name: 'reserved "newListener"', packets: () => ['421["newListener",{}]'], expect: ANY, codeIfAnswered: "unknown_event" },
  { name: '"error" from the client', packets: () => ['421["error",{}]'], expect: ["answered"], code: "unknown_event" },
  { name: '"registered" from the client', packets: () => ['421["registered",{}]'], expect: ["answered"], code: "unknown_event" },
  { name: '"__proto__"', packets: () => ['421["__proto__",{}]'], expect: ["answered"], code: "unknown_event" },
  { name: '"constructor"', packets: () => ['421["constructor",{}]'], expect: ["answered"], code: "unknown_event" },
];

// Inputs over long-polling only: payload framing and the HTTP side of the transport. `run(c, room,
// ctx)` gets the open authenticated connection and returns { answers } (codes like "http_400").
const POLLING_INPUTS = [
  {
    name: "empty packet between separators",
    run: async (c, r) => ({ answers: [httpCode(await c.postRaw(`${ev(1, "typing", { roomId: r })}${RS}${RS}${ev(2, "typing", { roomId: r })}`))] }),
    expect: ANY,
    okAllowed: true,
  },
  { name: "leading separator", run: async (c, r) => ({ answers: [httpCode(await c.postRaw(`${RS}${ev(1, "typing", { roomId: r })}`))] }), expect: ANY,
    okAllowed: true },
  { name: "trailing separator", run: async (c, r) => ({ answers: [httpCode(await c.postRaw(`${ev(1, "typing", { roomId: r })}${RS}`))] }), expect: ANY,
    okAllowed: true },
  { name: "1000 separators only", run: async (c) => ({ answers: [httpCode(await c.postRaw(RS.repeat(1000)))] }), expect: ANY },
  { name: "empty body", run: async (c) => ({ answers: [httpCode(await c.postRaw(""))] }), expect: ANY },
  {
    name: "a bad packet between good ones",
    run: async (c, r) => ({ answers: [httpCode(await c.postRaw([ev(1, "typing", { roomId: r }), "x", ev(2, "typing", { roomId: r })].join(RS)))] }),
    expect: ANY,
    okAllowed: true,
  },
  { name: "Engine.IO v3 length-prefixed framing", run: async (c) => ({ answers: [httpCode(await c.postRaw('6:42["x"]'))] }), expect: ANY },
  { name: "bad base64 binary packet (b!!!)", run: async (c) => ({ answers: [httpCode(await c.postRaw("b!!!"))] }), expect: ANY },
  {
    name: "octet-stream body of random bytes",
    run: async (c) => ({ answers: [httpCode(await c.postRaw(bin(256), { headers: { "content-type": "application/octet-stream" } }))] }),
    expect: ANY,
  },
  {
    name: "POST over MAX_PAYLOAD_BYTES (70 000 bytes of valid packets)",
    run: async (c, r) => {
      const one = ev("", "typing", { roomId: r });
      const body = Array.from({ length: Math.ceil(70000 / (one.length + 1)) }, () => one).join(RS);
      return { answers: [httpCode(await c.postRaw(body))] };
    },
    expect: ANY,
    code: "http_413",
  },
  {
    name: "POST of 1 MB",
    run: async (c) => ({ answers: [httpCode(await c.postRaw(`42["x","${"z".repeat(MB)}"]`))] }),
    expect: ANY,
    code: "http_413",
  },
  {
    name: "second concurrent GET on the same sid",
    run: async (c) => {
      await until(() => (c.gets ?? 0) >= 1, 5000, "the first GET answered"); // a GET is pending now
      await sleep(100);
      const res = await fetch(c.url, { signal: AbortSignal.timeout(10000) });
      await res.text();
      return { answers: [`http_${res.status}`] };
    },
    expect: ANY,
    code: "http_400",
  },
  {
    name: "GET and POST on a closed session",
    run: async (c) => {
      await c.postRaw("1");
      await c.waitClosed(5000);
      const get = await fetch(c.url, { signal: AbortSignal.timeout(10000) });
      const post = await c.postRaw(ev(1, "typing", {}));
      return { answers: [`http_${get.status}`, httpCode(post)] };
    },
    expect: ["closed"],
    check: (answers) => answers.every((a) => /^http_4\d\d$/.test(a)),
  },
];

// Inputs with no authenticated connection of their own: plain HTTP on the Engine.IO path.
// `run(ctx)` returns { answers } and throws when the server answers wrongly.
const HTTP_INPUTS = [
  {
    name: "polling POST without sid",
    run: async (ctx) => httpAnswer(await rawFetch(`${ctx.gw.url}/socket.io/?EIO=4&transport=polling`, "POST", '42["x",{}]'), /^4\d\d$/),
  },
  {
    name: "polling POST with an unknown sid",
    run: async (ctx) => httpAnswer(await rawFetch(`${ctx.gw.url}/socket.io/?EIO=4&transport=polling&sid=AAAAAAAAAAAAAAAAAAAAAA`, "POST", '42["x",{}]'), /^400$/),
  },
  {
    name: "polling POST with a 10 KB sid",
    run: async (ctx) => httpAnswer(await rawFetch(`${ctx.gw.url}/socket.io/?EIO=4&transport=polling&sid=${"A".repeat(10000)}`, "POST", "40"), /^4\d\d$/),
  },
  {
    name: "polling GET with an unknown sid",
    run: async (ctx) => httpAnswer(await rawFetch(`${ctx.gw.url}/socket.io/?EIO=4&transport=polling&sid=AAAAAAAAAAAAAAAAAAAAAA`, "GET"), /^400$/),
  },
  {
    name: "handshake with EIO=5",
    run: async (ctx) => httpAnswer(await rawFetch(`${ctx.gw.url}/socket.io/?EIO=5&transport=polling`, "GET"), /^4\d\d$/),
  },
  {
    name: "handshake with EIO=x and transport=carrier-pigeon",
    run: async (ctx) => httpAnswer(await rawFetch(`${ctx.gw.url}/socket.io/?EIO=x&transport=carrier-pigeon`, "GET"), /^4\d\d$/),
  },
  {
    name: "websocket transport without an Upgrade",
    run: async (ctx) => httpAnswer(await rawFetch(`${ctx.gw.url}/socket.io/?EIO=4&transport=websocket`, "GET"), /^4\d\d$/),
  },
  {
    name: "websocket upgrade for an unknown sid",
    run: async (ctx) => {
      // A raw upgrade naming a sid the server never issued.
      const ws = new WebSocket(`${ctx.gw.url.replace(/^http/, "ws")}/socket.io/?EIO=4&transport=websocket&sid=AAAAAAAAAAAAAAAAAAAAAA`, { handshakeTimeout: 5000 });
      const result = await new Promise((resolve) => {
        const timer = setTimeout(() => resolve("hang"), 8000);
        ws.on("unexpected-response", (_req, res) => (clearTimeout(timer), resolve(`http_${res.statusCode}`)));
        ws.on("close", () => (clearTimeout(timer), resolve("closed")));
        ws.on("error", () => (clearTimeout(timer), resolve("closed")));
      });
      ws.terminate();
      if (result === "hang") throw new Error("no answer to an upgrade for an unknown sid within 8 s");
      return { answers: [result] };
    },
  },
];

// ---------------------------------------------------------------------------
// Helpers for the HTTP inputs

const httpCode = (r) => (r.status === 0 ? `no_answer(${r.body})` : r.status === 200 ? "http_200" : `http_${r.status}`);

async function rawFetch(url, method, body) {
  try {
    const res = await fetch(url, { method, body, headers: body ? { "content-type": "text/plain;charset=UTF-8" } : {}, signal: AbortSignal.timeout(10000) });
    return { status: res.status, body: await res.text() };
  } catch (e) {
    return { status: 0, body: e.message };
  }
}

function httpAnswer(r, statusPattern) {
  if (r.status === 0) throw new Error(`no answer within 10 s (${r.body})`);
  if (!statusPattern.test(String(r.status))) throw new Error(`status ${r.status} (${r.body.slice(0, 200)}), expected ${statusPattern}`);
  return { answers: [`http_${r.status}`] };
}

// ---------------------------------------------------------------------------
// The battery machinery

// What a frame answers, if anything: a code (ack error code, `ok`, `error` event code, CONNECT
// error message, "connect" for a CONNECT accepted) or "disconnect" for a Socket.IO DISCONNECT.
function answerOf(frame) {
  const p = frame.packet;
  if (!p || p.eio !== "4") return null;
  if (p.sio === "1" && p.ns === "/") return "disconnect";
  if (p.sio === "3") {
    if (p.id === 0 || p.id === PROBE_ID) return null; // the join and the probe
    const a = Array.isArray(p.data) ? p.data[0] : p.data;
    return a?.ok === true ? "ok" : a?.error?.code ?? `ack ${frame.text.slice(0, 80)}`;
  }
  if (p.sio === "2" && Array.isArray(p.data) && p.data[0] === "error") return p.data[1]?.code ?? "error event";
  if (p.sio === "4") return `connect_error ${p.ns === "/" ? "" : p.ns.slice(0, 20) + " "}${p.data?.message ?? frame.text.slice(0, 80)}`.trim();
  if (p.sio === "0" && frame.text.length > 2) return `connect ${p.ns === "/" ? "" : p.ns.slice(0, 20)}`.trim();
  return null;
}

// Opens an authenticated raw connection that joined `room`, retrying while the server refuses it
// for a connection limit (after a connection flood the slots come back as the sockets close).
async function openJoined(ctx, Kind, sub, room) {
  const end = Date.now() + 15000;
  for (;;) {
    const c = await Kind.open(ctx.gw.url);
    const r = await c.connectNs(ctx.gw.token(sub));
    if (r.ok) {
      const joined = await c.ack(0, "joinRoom", { roomId: room });
      if (joined?.ok !== true) {
        c.close();
        throw new Error(`joinRoom ${room} answered ${JSON.stringify(joined)}`);
      }
      return c;
    }
    c.close();
    if (!/^too_many/.test(r.message) || Date.now() > end) throw new Error(`could not connect ${sub}: ${r.message}`);
    await sleep(200);
  }
}

// Sends one packet input on a fresh connection and classifies the outcome.
async function runPacketInput(ctx, input, kind, n) {
  const Kind = kind === "ws" ? RawWs : RawPolling;
  const room = `bad-${ctx.tag}-${n}`;
  ctx.badRooms.push(room);
  const c = await openJoined(ctx, Kind, `bad${n}`, room);
  try {
    const from = c.frames.length;
    let extra = [];
    if (input.run) {
      extra = (await input.run(c, room, ctx)).answers;
    } else {
      const items = input.packets(room, ctx);
      const posted = await c.send(...items);
      if (Array.isArray(posted)) extra = posted.filter((r) => r.status !== 200).map(httpCode);
      await c.drain();
    }
    if (input.settleMs) await sleep(input.settleMs);
    const wait = input.waitMs ?? 5000;
    // The probe: an unknown event with an ack, right behind the input on the same connection.
    // Its answer shows the connection still serves.
    if (!c.closed) {
      if (kind === "ws") c.send(ev(PROBE_ID, "probe", {}));
      else c.postRaw(ev(PROBE_ID, "probe", {}));
    }
    const isProbeAck = (f) => f.packet?.sio === "3" && f.packet.id === PROBE_ID;
    const isDisconnect = (f) => answerOf(f) === "disconnect";
    await c.waitFrame((f) => isProbeAck(f) || isDisconnect(f), wait, from);
    // Answers to the bad input may come after the probe's (handlers run concurrently, and the
    // probe's unknown_event needs no database): a short wait for any answer, a longer one for
    // the answer the input must get.
    const wanted = codesOf(input, kind);
    const answersNow = () => [...extra, ...c.frames.slice(from).map(answerOf).filter(Boolean)];
    const isAnswer = (f) => answerOf(f) !== null;
    if (!c.closed && answersNow().length === 0) await c.waitFrame(isAnswer, 500, from);
    if (wanted.length && !answersNow().some((a) => wanted.includes(a))) {
      await c.waitFrame((f) => wanted.includes(answerOf(f)), 3000, from);
    }
    await sleep(100); // a close right after an answer counts as closed
    const answers = answersNow();
    const probed = c.frames.slice(from).some(isProbeAck);
    const closed = c.closed || answers.includes("disconnect");
    const bad = answers.filter((a) => a !== "disconnect" && a !== "http_200");
    const outcome = closed ? "closed" : bad.length ? "answered" : probed ? "dropped" : "hang";
    return { outcome, answers: bad, probed, closeReason: c.closeReason };
  } finally {
    c.close();
  }
}

// The answer codes of which one must be seen: `code` (a code or a list), or over polling `pollingCode`.
function codesOf(input, kind) {
  const code = input.code ?? (kind === "polling" ? input.pollingCode : undefined);
  return code === undefined ? [] : [code].flat();
}

// Checks a result against what the input allows; returns a list of problems.
function judge(input, kind, result) {
  const problems = [];
  const { outcome, answers } = result;
  if (outcome === "hang") problems.push("hang: no answer, no close, and the probe sent after it was not answered");
  else if (input.expect && !input.expect.includes(outcome)) problems.push(`outcome ${outcome}, expected ${input.expect.join("|")}`);
  const codes = codesOf(input, kind);
  if (codes.length && !answers.some((a) => codes.includes(a))) problems.push(`expected the answer ${codes.join(" or ")}, got [${answers.join(", ")}]`);
  if (input.codeIfAnswered) {
    const wrong = answers.filter((a) => a !== input.codeIfAnswered && !/^connect_error|^http_/.test(a));
    if (wrong.length) problems.push(`answered [${wrong.join(", ")}], only ${input.codeIfAnswered} is acceptable`);
  }
  if (answers.includes("ok") && !input.okAllowed) problems.push("a bad input was accepted (ok)");
  if (input.check && !input.check(answers)) problems.push(`answers [${answers.join(", ")}] fail the input's check`);
  return problems;
}

// A flood of `count` events as fast as possible on one connection: rate_limited must appear,
// every event is answered unless the connection is closed, and nothing hangs.
async function eventFlood(ctx, kind, n, count = 2000) {
  const Kind = kind === "ws" ? RawWs : RawPolling;
  const room = `bad-${ctx.tag}-${n}`;
  ctx.badRooms.push(room);
  const c = await openJoined(ctx, Kind, `bad${n}`, room);
  try {
    const from = c.frames.length;
    const packets = Array.from({ length: count }, (_, i) => ev(1000 + i, "typing", { roomId: room }));
    const t0 = Date.now();
    await c.send(...packets);
    await c.drain();
    const answered = () => c.frames.slice(from).filter((f) => f.packet?.sio === "3" && f.packet.id >= 1000).length;
    // Until every event is answered, or the connection closed, or no answer came for 1.5 s.
    let last = -1;
    let lastChange = Date.now();
    await until(
      () => {
        const now = answered();
        if (now !== last) [last, lastChange] = [now, Date.now()];
        return c.closed || now >= count || Date.now() - lastChange > 1500;
      },
      10000,
      `answers to ${count} events`,
    ).catch(() => {});
    const codes = {};
    for (const f of c.frames.slice(from)) {
      if (f.packet?.sio === "3" && f.packet.id >= 1000) {
        const a = f.packet.data?.[0];
        const code = a?.ok ? "ok" : a?.error?.code ?? "?";
        codes[code] = (codes[code] ?? 0) + 1;
      }
    }
    const got = answered();
    const problems = [];
    if (!codes.rate_limited) problems.push(`no rate_limited among ${got} answers (${JSON.stringify(codes)})`);
    if ((codes.ok ?? 0) > 40 + 20 * Math.ceil((Date.now() - t0) / 1000) + 5) problems.push(`more events allowed than the rate permits: ${JSON.stringify(codes)}`);
    // Not every event need be answered (the brief allows a flooder to lose answers: the server
    // drops what does not fit its per-socket send buffer), but the connection must not be stuck:
    // closed, or answering the next event once the flood is over.
    let probed = false;
    if (!c.closed) {
      await sleep(1000); // let the bucket refill a little
      const probe = await c.ack(PROBE_ID, "probe", {}, 5000);
      probed = probe !== null && probe !== "closed";
      if (probe === null) problems.push(`after the flood the connection neither answers an event nor is closed`);
    }
    const answers = Object.entries(codes).map(([k, v]) => `${k} x${v}`);
    if (got < count) answers.push(`unanswered x${count - got}`);
    const result = { outcome: c.closed ? "closed" : probed ? "answered" : "hang", answers, closeReason: c.closeReason };
    return { result, problems };
  } finally {
    c.close();
  }
}

// `sockets` connections each announce 1000 attachments and send 9 MB of them (200 x 45 KB
// frames, each under MAX_PAYLOAD_BYTES), then stay silent: each such packet is already over
// MAX_PAYLOAD_BYTES and must not be held ("over WebSocket the connection that sent it is
// closed"). The memory the server holds meanwhile is measured before they are closed.
async function heldAttachments(ctx, n, sockets) {
  const conns = [];
  try {
    for (let i = 0; i < sockets; i++) {
      const room = `bad-${ctx.tag}-${n}-${i}`;
      ctx.badRooms.push(room);
      conns.push(await openJoined(ctx, RawWs, `holder${i}`, room));
    }
    const before = rssBytes(ctx.pid);
    for (const c of conns) {
      c.send(`451000-1${JSON.stringify(["sendMessage", Array.from({ length: 1000 }, (_, i) => ph(i))])}`);
      for (let k = 0; k < 200; k++) c.send(Buffer.alloc(45000, k));
    }
    for (const c of conns) await c.drain(20000);
    await sleep(1000);
    const held = rssBytes(ctx.pid);
    ctx.peakRss = Math.max(ctx.peakRss, held);
    const open = conns.filter((c) => !c.closed).length;
    const problems = [];
    if (open) problems.push(`${open} of ${sockets} sockets still open, holding their unfinished packet; RSS grew by ${((held - before) / MB).toFixed(1)} MB meanwhile`);
    if (held > ctx.baseline + 150 * MB) problems.push(`RSS ${(held / MB).toFixed(1)} MB while held: more than baseline + 150 MB`);
    const answers = [`${sockets - open} closed`, `${open} open`, `RSS +${((held - before) / MB).toFixed(1)} MB while held`];
    return { result: { outcome: open ? "held" : "closed", answers }, problems };
  } finally {
    for (const c of conns) c.close();
  }
}

// `count` connections opened at once; each must be accepted, refused with too_many_*, or closed,
// within 20 s; none may hang. With SOCKET_MAX_TOTAL_CONNECTIONS=200 (alice and bob hold 2) and
// 20 of them for one user (per-user limit 10), the limits must hold under the rush: at most 198
// accepted, at most 10 for that user, and every other one refused with too_many_* or closed.
async function connectionFlood(ctx, kind, count) {
  const Kind = kind === "ws" ? RawWs : RawPolling;
  const conns = [];
  let flooderIn = 0;
  const results = await Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const sub = i < 20 ? `flooder-${kind}` : `flood-${kind}-${i}`;
      try {
        const c = await Kind.open(ctx.gw.url, 20000);
        conns.push(c);
        const r = await c.connectNs(ctx.gw.token(sub), 20000);
        if (r.ok && i < 20) flooderIn++;
        return r.ok ? "connected" : r.message;
      } catch (e) {
        return `transport refused (${e.message.slice(0, 60)})`;
      }
    }),
  );
  const tally = {};
  for (const r of results) tally[r] = (tally[r] ?? 0) + 1;
  const problems = [];
  const allowed = (r) => r === "connected" || r === "too_many_connections" || r === "too_many_user_connections" || /^closed|^transport refused/.test(r);
  const wrong = results.filter((r) => !allowed(r));
  if (wrong.length) problems.push(`${wrong.length} connections neither accepted nor refused nor closed: ${JSON.stringify(tally)}`);
  if (flooderIn > 10) problems.push(`${flooderIn} connections of one user accepted, SOCKET_MAX_CONNECTIONS_PER_USER is 10`);
  if ((tally.connected ?? 0) > 198) problems.push(`${tally.connected} connections accepted beside alice and bob, SOCKET_MAX_TOTAL_CONNECTIONS is 200`);
  if (!tally.too_many_user_connections && !tally.too_many_connections) problems.push(`no too_many_* refusal: ${JSON.stringify(tally)}`);
  for (const c of conns) c.close();
  const answers = [...Object.entries(tally).map(([k, v]) => `${k} x${v}`), `one user's accepted: ${flooderIn}`];
  return { result: { outcome: "answered", answers }, problems };
}

// alice sends one message to "control" with an ok ack; bob must receive it.
async function controlRound(ctx, label) {
  ctx.rounds++;
  const text = `round ${ctx.rounds} after ${label}`.slice(0, 200);
  try {
    assertOk(await ack(ctx.alice, "sendMessage", { roomId: "control", text }, 8000));
    await until(() => ctx.bobGot.some((m) => m.text === text), 8000, `bob receiving "${text}"`);
    ctx.delivered++;
    return [];
  } catch (e) {
    return [`control round: ${e.message}`];
  }
}

function checkRss(ctx) {
  const rss = rssBytes(ctx.pid);
  ctx.peakRss = Math.max(ctx.peakRss, rss);
  if (rss > ctx.baseline + 150 * MB) return [`RSS ${(rss / MB).toFixed(1)} MB, baseline ${(ctx.baseline / MB).toFixed(1)} MB: grew by more than 150 MB`];
  return [];
}

async function healthz(ctx) {
  try {
    const res = await fetch(`${ctx.gw.url}/healthz`, { signal: AbortSignal.timeout(5000) });
    return res.status === 200 ? [] : [`/healthz answered ${res.status}`];
  } catch (e) {
    return [`/healthz: ${e.message}`];
  }
}

// Runs every entry of `plan` ([{ label, run: async (n) => { result, problems } }]) with the checks.
async function runBattery(ctx, plan) {
  for (const step of plan) {
    if (!fs.existsSync(`/proc/${ctx.pid}`)) {
      ctx.failures.push({ input: step.label, problems: ["the gateway process is gone; battery stopped"] });
      break;
    }
    ctx.tried++;
    let result = { outcome: "error", answers: [] };
    let problems = [];
    try {
      ({ result, problems } = await step.run(ctx.tried));
    } catch (e) {
      problems = [`the input could not be run: ${e.message}`];
    }
    problems = [...problems, ...(await healthz(ctx)), ...(await controlRound(ctx, step.label)), ...checkRss(ctx)];
    const line = `${step.label} → ${result.outcome}${result.answers?.length ? ` [${result.answers.join(", ")}]` : ""}${result.outcome === "closed" && result.closeReason ? ` (${result.closeReason})` : ""}`;
    ctx.outcomes.push(line);
    if (VERBOSE) console.log(`  ${problems.length ? "FAIL" : "ok  "} ${line}`);
    if (problems.length) ctx.failures.push({ input: step.label, result: line, problems });
  }
}

function planFor(ctx, inputs, pollingInputs = [], httpInputs = [], floods = true) {
  const plan = [];
  for (const kind of ["ws", "polling"]) {
    for (const input of inputs) {
      if (input.only && input.only !== kind) continue;
      const label = `[${kind}] ${input.name}`;
      plan.push({
        label,
        run: async (n) => {
          const result = await runPacketInput(ctx, input, kind, n);
          return { result, problems: judge(input, kind, result) };
        },
      });
    }
  }
  for (const input of pollingInputs) {
    plan.push({
      label: `[polling] ${input.name}`,
      run: async (n) => {
        const result = await runPacketInput(ctx, input, "polling", n);
        return { result, problems: judge(input, "polling", result) };
      },
    });
  }
  for (const input of httpInputs) {
    plan.push({
      label: `[http] ${input.name}`,
      run: async () => ({ result: { outcome: "answered", ...(await input.run(ctx)) }, problems: [] }),
    });
  }
  if (floods) {
    plan.push({ label: "[ws] 10 sockets each holding 9 MB of attachments of an unfinished packet", run: (n) => heldAttachments(ctx, n, 10) });
    plan.push({ label: "[ws] flood of 2 000 events", run: (n) => eventFlood(ctx, "ws", n) });
    plan.push({ label: "[polling] flood of 2 000 events", run: (n) => eventFlood(ctx, "polling", n) });
    plan.push({ label: "[ws] flood of 300 connections at once", run: () => connectionFlood(ctx, "ws", 300) });
    plan.push({ label: "[polling] flood of 250 connections at once", run: () => connectionFlood(ctx, "polling", 250) });
  }
  return plan;
}

async function setup(gwEnv, tag) {
  const gw = await startGateway(gwEnv);
  const pid = findGatewayPid(gw, BIN);
  const alice = await connect(gw, { token: gw.token("alice"), transports: ["websocket"] });
  const bob = await connect(gw, { token: gw.token("bob"), transports: ["polling"] });
  assertOk(await ack(alice, "joinRoom", { roomId: "control" }));
  assertOk(await ack(bob, "joinRoom", { roomId: "control" }));
  const bobGot = [];
  bob.on("newMessage", (m) => bobGot.push(m));
  const ctx = { gw, pid, alice, bob, bobGot, tag, tried: 0, rounds: 0, delivered: 0, failures: [], outcomes: [], badRooms: [] };
  // Warm-up: a few rounds and one raw connection of each kind with a probe, before the baseline.
  for (let i = 0; i < 3; i++) {
    const p = await controlRound(ctx, "warm-up");
    assert.deepEqual(p, []);
  }
  for (const Kind of [RawWs, RawPolling]) {
    const c = await openJoined(ctx, Kind, "warmup", `warmup-${tag}`);
    assert.equal((await c.ack(1, "probe", {}))?.error?.code, "unknown_event");
    c.close();
  }
  await sleep(500);
  ctx.rounds = 0;
  ctx.delivered = 0;
  ctx.baseline = rssBytes(pid);
  ctx.peakRss = ctx.baseline;
  return ctx;
}

// After the battery: alice still works, no refused input was stored, memory came back, no panic.
async function finish(ctx, title) {
  const { gw } = ctx;
  // Nothing sent by the battery is a valid message: every bad room must be empty.
  const stored = [];
  for (let i = 0; i < ctx.badRooms.length; i += 15) {
    const checker = await connect(gw, { token: gw.token(`checker${i}`) });
    for (const roomId of ctx.badRooms.slice(i, i + 15)) {
      assertOk(await ack(checker, "joinRoom", { roomId }));
      const { messages } = assertOk(await ack(checker, "getMessages", { roomId, limit: 100 }));
      for (const m of messages) stored.push(`${roomId}: ${JSON.stringify(m.text).slice(0, 80)}`);
    }
    checker.close();
  }
  // Memory back within baseline + 60 MB (allocators return memory lazily: allow 15 s).
  let rss = rssBytes(ctx.pid);
  const end = Date.now() + 15000;
  while (rss > ctx.baseline + 60 * MB && Date.now() < end) {
    await sleep(500);
    rss = rssBytes(ctx.pid);
  }
  const logs = gw.logs();
  const panics = logs.split("\n").filter((l) => /panicked|panic/i.test(l));
  console.log(
    `battery (${title}): RSS baseline ${(ctx.baseline / MB).toFixed(1)} MB, peak ${(ctx.peakRss / MB).toFixed(1)} MB, end ${(rss / MB).toFixed(1)} MB`,
  );
  console.log(`battery: ${ctx.tried} inputs tried, ${ctx.delivered} control messages delivered`);
  if (ctx.failures.length) {
    console.log(`battery (${title}): ${ctx.failures.length} inputs mishandled:`);
    for (const f of ctx.failures) console.log(`  ✗ ${f.result ?? f.input}\n      ${f.problems.join("\n      ")}`);
  }
  // One assertion listing every problem, so that a run names all of them.
  const problems = ctx.failures.map((f) => `${f.result ?? f.input}: ${f.problems.join("; ")}`);
  for (const m of stored) problems.push(`refused input was stored: ${m}`);
  for (const l of panics) problems.push(`the gateway logged a panic: ${l.slice(0, 300)}`);
  if (rss > ctx.baseline + 60 * MB) problems.push(`RSS ${(rss / MB).toFixed(1)} MB at the end, baseline ${(ctx.baseline / MB).toFixed(1)} MB`);
  if (ctx.delivered !== ctx.rounds) problems.push(`control messages lost: ${ctx.delivered} of ${ctx.rounds} delivered`);
  assert.deepEqual(problems, [], `the battery (${title}) found problems`);
  assert.equal(ctx.rounds, ctx.tried);
  assert.equal(ctx.delivered, ctx.rounds);
}

describe("bad-input battery", () => {
  it("raw WebSocket and long-polling: the offender is answered or closed, everyone else is served", { timeout: 900000 }, async () => {
    // Low total limit so that the connection flood meets it; default rate limits and payload size.
    const ctx = await setup({ SOCKET_MAX_TOTAL_CONNECTIONS: "200" }, "a");
    try {
      await runBattery(ctx, planFor(ctx, PACKET_INPUTS, POLLING_INPUTS, HTTP_INPUTS));
      await finish(ctx, `MAX_PAYLOAD_BYTES=${MAX_PAYLOAD}`);
    } finally {
      ctx.alice.close();
      ctx.bob.close();
      await ctx.gw.stop();
    }
  });

  // 100 000 levels of nesting take 200 KB: under the default MAX_PAYLOAD_BYTES they are cut by
  // size before any parser sees them. With the limit raised, the parser itself meets them.
  it("deep JSON under a raised MAX_PAYLOAD_BYTES reaches the parser and is refused", { timeout: 300000 }, async () => {
    const ctx = await setup({ MAX_PAYLOAD_BYTES: String(2 * MB) }, "b");
    const deep = [
      { name: "arrays nested 100 000 levels as the argument", packets: () => [`421["sendMessage",${nested(100000)}]`], expect: ANY, codeIfAnswered: "validation_failed" },
      { name: "objects nested 100 000 levels as the argument", packets: () => [`421["sendMessage",${nestedObj(100000)}]`], expect: ANY, codeIfAnswered: "validation_failed" },
      { name: "arrays nested 100 000 levels beside a valid message", packets: (r) => [`421["sendMessage",{"roomId":"${r}","text":"deep","x":${nested(100000)}}]`], expect: ANY, codeIfAnswered: "validation_failed" },
      { name: "arrays nested 100 000 levels as the event name", packets: () => [`421[${nested(100000)},{}]`], expect: ANY, codeIfAnswered: "unknown_event" },
      { name: "arrays nested 100 000 levels in an ack", packets: () => [`43999${nested(100000)}`], expect: GONE_OR_DROPPED },
      { name: "arrays nested 100 000 levels in CONNECT auth", packets: () => [`40${nested(100000)}`], expect: ANY },
      { name: "500 000 unclosed [", packets: () => [`421["sendMessage",${"[".repeat(500000)}`], expect: GONE_OR_DROPPED },
      { name: "1.5 MB text (under the raised limit)", packets: (r) => [ev(1, "sendMessage", { roomId: r, text: "x".repeat(1.5 * MB) })], expect: ["answered"], code: "validation_failed" },
    ];
    try {
      await runBattery(ctx, planFor(ctx, deep, [], [], false));
      await finish(ctx, "MAX_PAYLOAD_BYTES=2 MiB");
    } finally {
      ctx.alice.close();
      ctx.bob.close();
      await ctx.gw.stop();
    }
  });
});
