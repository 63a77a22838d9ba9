// A receiver for the gateway's webhooks (contract 10.3), with node:http and node:crypto only.
// It checks each call's signature, answers a repeated event id 200 without handling it again,
// and records each new event as one JSON line on stdout.
//
//   WEBHOOK_SECRET=… PORT=8090 node receiver.mjs
//
// The gateway then runs with WEBHOOK_URL=http://127.0.0.1:8090/webhooks and the same
// WEBHOOK_SECRET.
import http from "node:http";
import { createHmac, timingSafeEqual } from "node:crypto";

const SECRET = process.env.WEBHOOK_SECRET ?? "";
const PORT = Number(process.env.PORT ?? 8090);
const MAX_SKEW_SECS = 300;
const MAX_BODY_BYTES = 1 << 20;
// The gateway stops trying an event 24 h after it happened (plus at most one 5-minute pause):
// an id remembered for 25 h covers every retry.
const KEEP_IDS_MS = 25 * 3600 * 1000;
if (Buffer.byteLength(SECRET) < 32) throw new Error("WEBHOOK_SECRET: at least 32 bytes, the gateway's own");

// True when X-Sio-Signature is sha256=HMAC-SHA256(secret, "<X-Sio-Timestamp>.<raw body>")
// and the timestamp is at most 5 minutes away from now.
function verified(req, rawBody) {
  const ts = String(req.headers["x-sio-timestamp"] ?? "");
  const given = Buffer.from(String(req.headers["x-sio-signature"] ?? ""));
  if (!/^\d{1,12}$/.test(ts) || Math.abs(Date.now() / 1000 - Number(ts)) > MAX_SKEW_SECS) return false;
  const hmac = createHmac("sha256", SECRET).update(`${ts}.`).update(rawBody).digest("hex");
  const expected = Buffer.from(`sha256=${hmac}`);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

// The ids already handled, oldest first (a Map keeps insertion order), each with when it came.
// In memory, so a restart forgets them: a real receiver keeps them where it keeps the effects
// (a unique key on the event id, written in the same transaction).
const seen = new Map();
function forgetOld(now) {
  for (const [id, at] of seen) {
    if (now - at < KEEP_IDS_MS) break;
    seen.delete(id);
  }
}

// Handles a new event: here, one JSON line on stdout. Keep this quick (store, enqueue); the
// gateway waits at most 10 s for the answer and tries again when it gets none.
function record(event) {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

const server = http.createServer((req, res) => {
  const send = (status, body) => {
    res.writeHead(status, { "Content-Type": "application/json" }).end(JSON.stringify(body));
  };
  if (req.method !== "POST") {
    req.resume();
    return send(405, { error: { code: "method_not_allowed", message: "POST only" } });
  }
  const chunks = [];
  let size = 0;
  req.on("data", (c) => {
    size += c.length;
    if (size <= MAX_BODY_BYTES) chunks.push(c);
  });
  req.on("end", () => {
    if (size > MAX_BODY_BYTES) return send(413, { error: { code: "payload_too_large", message: "1 MiB at most" } });
    const rawBody = Buffer.concat(chunks); // verify the bytes as received, before parsing
    if (!verified(req, rawBody)) {
      return send(401, { error: { code: "bad_signature", message: "signature or timestamp refused" } });
    }
    let event;
    try {
      event = JSON.parse(rawBody);
    } catch {
      event = null;
    }
    if (typeof event?.id !== "string" || typeof event.type !== "string") {
      return send(400, { error: { code: "bad_request", message: "expected { id, type, createdAt, data }" } });
    }
    const now = Date.now();
    forgetOld(now);
    if (seen.has(event.id)) {
      // A retry of an event already handled (its answer was lost, or came too late): say so.
      console.error(`duplicate ${event.type} ${event.id}: already handled`);
      return send(200, { duplicate: true });
    }
    record(event);
    seen.set(event.id, now);
    send(200, { ok: true });
  });
});
// Longer than the gateway's 60 s idle keep-alive, so Node never closes a connection the
// gateway is about to reuse.
server.keepAliveTimeout = 65_000;
server.listen(PORT, "127.0.0.1", () => console.log(JSON.stringify({ listening: server.address().port })));
