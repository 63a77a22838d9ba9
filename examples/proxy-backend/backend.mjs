// A backend for the gateway's event proxy (contract 10.2), with node:http and node:crypto only.
// It checks each call's signature, answers the event `order.place`, and calls the gateway's
// server API (10.1) to put the user in the order's room.
//
//   PROXY_SECRET=… PORT=8080 GATEWAY_URL=http://127.0.0.1:3000 API_KEY=… node backend.mjs
//
// The gateway then runs with PROXY_URL=http://127.0.0.1:8080/ and the same PROXY_SECRET.
import http from "node:http";
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

const SECRET = process.env.PROXY_SECRET ?? "";
const PORT = Number(process.env.PORT ?? 8080);
const GATEWAY_URL = process.env.GATEWAY_URL ?? "http://127.0.0.1:3000";
const API_KEY = process.env.API_KEY ?? "";
const MAX_SKEW_SECS = 300;
if (Buffer.byteLength(SECRET) < 32) throw new Error("PROXY_SECRET: at least 32 bytes, the gateway's own");

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

// The server API: every socket of `userId`, on every node, joins `roomId`. Resolves with { sockets }.
async function joinRoom(roomId, userId) {
  const res = await fetch(`${GATEWAY_URL}/api/rooms/${encodeURIComponent(roomId)}/join`, {
    method: "POST",
    headers: { Authorization: `Bearer ${API_KEY}`, "Content-Type": "application/json" },
    body: JSON.stringify({ userId }),
    signal: AbortSignal.timeout(2000),
  });
  if (!res.ok) throw new Error(`server API join: ${res.status} ${await res.text()}`);
  return res.json();
}

// One proxied event → [status, answer]. 2xx { data } is the client's { ok: true, data };
// 4xx { error: { code, message, details? } } its { ok: false, error }.
async function handle({ event, userId, data }) {
  if (event !== "order.place") return [404, { error: { code: "unknown_event", message: `no handler for ${event}` } }];
  const { item, qty } = data;
  if (typeof item !== "string" || !Number.isInteger(qty) || qty < 1) {
    return [422, { error: { code: "validation_failed", message: "bad order", details: { qty: ["a positive integer"] } } }];
  }
  if (qty > 10) return [409, { error: { code: "out_of_stock", message: `only 10 ${item} left` } }];
  const orderId = `o-${randomBytes(6).toString("hex")}`;
  const roomId = `order.${orderId}`; // the user's sockets get `joinedRoom` before this ack
  const { sockets } = await joinRoom(roomId, userId);
  return [200, { data: { orderId, item, qty, userId, roomId, sockets } }];
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", async () => {
    const rawBody = Buffer.concat(chunks); // verify the bytes as received, before parsing
    const send = (status, body) => {
      res.writeHead(status, { "Content-Type": "application/json" }).end(JSON.stringify(body));
    };
    if (req.method !== "POST") return send(405, { error: { code: "method_not_allowed", message: "POST only" } });
    if (!verified(req, rawBody)) return send(401, { error: { code: "bad_signature", message: "signature or timestamp refused" } });
    try {
      send(...(await handle(JSON.parse(rawBody))));
    } catch (e) {
      console.error(e);
      send(500, { error: { code: "internal", message: "backend failure" } }); // the client sees `unavailable`
    }
  });
});
// Longer than the gateway's 60 s idle keep-alive, so Node never closes a connection the
// gateway is about to reuse.
server.keepAliveTimeout = 65_000;
server.listen(PORT, "127.0.0.1", () => console.log(JSON.stringify({ listening: server.address().port })));
