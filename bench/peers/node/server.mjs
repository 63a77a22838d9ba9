// Node socket.io 4.8 peer of sio-gateway, for the benchmarks.
//
// Serves the same slice of the public contract (shared CONTRACT.md) as the gateway, with all
// state in memory: JWT handshake, `registered`, rooms, chat messages, typing, notifications,
// and the HTTP API (`/healthz`, `/api/emit`, `/api/notifications`). Written the way a Node
// developer would write such a service: one process, node's http module, socket.io's default
// in-memory adapter, plain checks instead of a validation library.

import { createServer } from "node:http";
import { createHash, randomFillSync, timingSafeEqual } from "node:crypto";
import jwt from "jsonwebtoken";
import { Server } from "socket.io";

// ---------------------------------------------------------------------------------------------
// Configuration

const env = process.env;
const intEnv = (name, dflt) => {
  const v = env[name];
  if (v === undefined || v === "") return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) {
    console.error(`${name} must be a non-negative integer, got ${JSON.stringify(v)}`);
    process.exit(1);
  }
  return n;
};

const config = {
  port: intEnv("PORT", 3000),
  host: env.HOST || "127.0.0.1",
  jwtSecret: env.JWT_SECRET || "",
  jwtLeewaySecs: intEnv("JWT_LEEWAY_SECS", 5),
  jwtIssuer: env.JWT_ISSUER || undefined,
  jwtAudience: env.JWT_AUDIENCE || undefined,
  apiKeys: (env.API_KEYS || "").split(",").map((k) => k.trim()).filter(Boolean),
  maxPayloadBytes: intEnv("MAX_PAYLOAD_BYTES", 65536),
  maxRoomsPerSocket: intEnv("MAX_ROOMS_PER_SOCKET", 100),
  roomEventsMaxMembers: intEnv("ROOM_EVENTS_MAX_MEMBERS", 100),
  roomsRequireClaim: env.ROOMS_REQUIRE_CLAIM === "true",
  corsOrigins: env.CORS_ORIGINS ? env.CORS_ORIGINS.split(",").map((o) => o.trim()) : "*",
};

if (Buffer.byteLength(config.jwtSecret) < 32) {
  console.error("JWT_SECRET must be set and at least 32 bytes long");
  process.exit(1);
}
if (config.apiKeys.length === 0) {
  console.warn("API_KEYS is not set: the service endpoints will refuse every request");
}

const USER_ROOM_PREFIX = "user:";
const MAX_TEXT_CHARS = 4000;
const MAX_PAGE = 100;
const DEFAULT_PAGE = 50;
const CATCH_UP_LIMIT = 100;
const MAX_NOTIFICATION_DATA_BYTES = 16 * 1024;
const RESERVED_EVENTS = new Set([
  "connect",
  "connect_error",
  "disconnect",
  "disconnecting",
  "newListener",
  "removeListener",
]);

// ---------------------------------------------------------------------------------------------
// Errors and validation

const MESSAGES = {
  validation_failed: "validation failed",
  forbidden: "forbidden",
  not_member: "not a member of the room",
  limit_exceeded: "limit exceeded",
  rate_limited: "rate limited",
  unknown_event: "unknown event",
  not_found: "not found",
  invalid_token: "invalid token",
  token_expired: "token expired",
  unauthorized: "unauthorized",
  bad_request: "bad request",
  method_not_allowed: "method not allowed",
  payload_too_large: "payload too large",
  internal: "internal error",
};

const HTTP_STATUS = {
  validation_failed: 422,
  forbidden: 403,
  not_member: 403,
  limit_exceeded: 429,
  rate_limited: 429,
  unknown_event: 400,
  bad_request: 400,
  not_found: 404,
  invalid_token: 401,
  token_expired: 401,
  unauthorized: 401,
  method_not_allowed: 405,
  payload_too_large: 413,
  internal: 500,
};

class AppError extends Error {
  constructor(code, details, message) {
    super(message || MESSAGES[code] || code);
    this.code = code;
    this.details = details;
  }

  body() {
    const body = { code: this.code, message: this.message };
    if (this.details) body.details = this.details;
    return body;
  }
}

/** Collects field errors; `check()` throws `validation_failed` when there are any. */
class Checker {
  constructor(arg) {
    this.details = null;
    if (arg === null || typeof arg !== "object" || Array.isArray(arg)) {
      this.add("_", "expected one object argument");
      this.check();
    }
    this.arg = arg;
  }

  add(field, message) {
    this.details ??= {};
    (this.details[field] ??= []).push(message);
  }

  check() {
    if (this.details) throw new AppError("validation_failed", this.details);
  }

  /** A required (or optional) string of `min`..`max` code points. */
  string(field, { min = 1, max, optional = false, pattern, patternMessage } = {}) {
    const v = this.arg?.[field];
    if (v === undefined || v === null) {
      if (!optional) this.add(field, "is required");
      return undefined;
    }
    if (typeof v !== "string") {
      this.add(field, "must be a string");
      return undefined;
    }
    if (!v.isWellFormed()) {
      this.add(field, "must not contain lone surrogates");
      return undefined;
    }
    if (pattern) {
      if (!pattern.test(v)) this.add(field, patternMessage);
      return v;
    }
    if (!lengthWithin(v, min, max)) this.add(field, `must be ${min} to ${max} characters`);
    if (v.includes("\0")) this.add(field, "must not contain the NUL character");
    return v;
  }

  roomId(field = "roomId", optional = false) {
    return this.string(field, {
      optional,
      pattern: ROOM_ID,
      patternMessage: "must be 1 to 128 characters from A-Z a-z 0-9 _ . : -",
    });
  }

  userId(field = "userId", optional = false) {
    return this.string(field, {
      optional,
      pattern: USER_ID,
      patternMessage: "must be 1 to 128 characters from A-Z a-z 0-9 _ . : @ -",
    });
  }

  limit() {
    const v = this.arg.limit;
    if (v === undefined || v === null) return DEFAULT_PAGE;
    if (!Number.isInteger(v) || v < 1 || v > MAX_PAGE) {
      this.add("limit", "must be an integer from 1 to 100");
      return DEFAULT_PAGE;
    }
    return v;
  }

  cursor(field = "before") {
    const v = this.arg[field];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "string" || v.length === 0 || v.length > 64) {
      this.add(field, "must be an id of 1 to 64 characters");
      return undefined;
    }
    return v;
  }

  bool(field) {
    const v = this.arg[field];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "boolean") {
      this.add(field, "must be a boolean");
      return undefined;
    }
    return v;
  }
}

const ROOM_ID = /^[A-Za-z0-9_.:-]{1,128}$/;
const USER_ID = /^[A-Za-z0-9_.:@-]{1,128}$/;

/** Whether `s` has `min`..`max` Unicode code points (counted only when UTF-16 length can't tell). */
function lengthWithin(s, min, max) {
  if (s.length < min) return false; // code points <= UTF-16 units
  if (s.length <= max && Math.ceil(s.length / 2) >= min) return true; // code points >= units / 2
  let n = 0;
  for (const _ of s) {
    if (++n > max) return false;
  }
  return n >= min;
}

function isBlank(s) {
  return s.trim().length === 0;
}

// ---------------------------------------------------------------------------------------------
// Ids: UUIDv7, time-ordered and monotonic within this process (usable as cursors).

const idBytes = Buffer.alloc(16);
let lastIdMs = 0;
let idSeq = 0;

function uuidv7() {
  let ms = Date.now();
  if (ms <= lastIdMs) {
    ms = lastIdMs;
    idSeq++;
    if (idSeq > 0xfff) {
      ms = ++lastIdMs;
      idSeq = 0;
    }
  } else {
    idSeq = 0;
  }
  lastIdMs = ms;
  randomFillSync(idBytes, 8, 8);
  idBytes.writeUIntBE(ms, 0, 6);
  idBytes[6] = 0x70 | (idSeq >> 8);
  idBytes[7] = idSeq & 0xff;
  idBytes[8] = 0x80 | (idBytes[8] & 0x3f);
  const h = idBytes.toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

// ---------------------------------------------------------------------------------------------
// In-memory stores

/** roomId → messages, oldest first. */
const messagesByRoom = new Map();

/** userId → { list (oldest first), byId, unread } */
const notificationsByUser = new Map();

function userNotifications(userId, create) {
  let entry = notificationsByUser.get(userId);
  if (!entry && create) {
    entry = { list: [], byId: new Map(), unread: 0 };
    notificationsByUser.set(userId, entry);
  }
  return entry;
}

function createNotification({ userId, type, title, message, data }) {
  const n = {
    id: uuidv7(),
    userId,
    type,
    title,
    message,
    data: data === undefined ? null : data,
    createdAt: new Date().toISOString(),
    read: false,
  };
  const entry = userNotifications(userId, true);
  entry.list.push(n);
  entry.byId.set(n.id, n);
  entry.unread++;
  return n;
}

/** Newest first, older than `before` (an id that must belong to `list`), `limit` of them. */
function pageNewestFirst(list, { limit, before, filter }) {
  let end = list.length;
  if (before !== undefined) {
    end = list.findLastIndex((x) => x.id === before);
    if (end < 0) throw new AppError("not_found");
  }
  const page = [];
  let i = end - 1;
  for (; i >= 0 && page.length < limit; i--) {
    if (!filter || filter(list[i])) page.push(list[i]);
  }
  let hasMore = false;
  for (; i >= 0; i--) {
    if (!filter || filter(list[i])) {
      hasMore = true;
      break;
    }
  }
  return { page, hasMore };
}

function listNotifications(userId, arg) {
  const c = new Checker(arg);
  const limit = c.limit();
  const before = c.cursor();
  const unreadOnly = c.bool("unreadOnly") === true;
  c.check();
  const entry = userNotifications(userId, false);
  if (!entry) {
    if (before !== undefined) throw new AppError("not_found");
    return { notifications: [], hasMore: false };
  }
  const { page, hasMore } = pageNewestFirst(entry.list, {
    limit,
    before,
    filter: unreadOnly ? (n) => !n.read : null,
  });
  return { notifications: page, hasMore };
}

function markRead(userId, arg) {
  const c = new Checker(arg);
  let ids;
  if (arg.ids !== undefined && arg.ids !== null) {
    if (!Array.isArray(arg.ids) || arg.ids.length < 1 || arg.ids.length > 100) {
      c.add("ids", "must hold 1 to 100 ids");
    } else if (!arg.ids.every((id) => typeof id === "string" && id.length >= 1 && id.length <= 64)) {
      c.add("ids", "must be an id of 1 to 64 characters");
    } else {
      ids = arg.ids;
    }
  }
  const all = c.bool("all");
  c.check();
  if (ids && all === true) c.add("all", "give either ids or all, not both");
  else if (!ids && all === false) c.add("all", "must be true when no ids are given");
  else if (!ids && all === undefined) c.add("ids", "give ids or all: true");
  c.check();

  const entry = userNotifications(userId, false);
  let updated = 0;
  let event;
  if (ids) {
    const mine = [];
    for (const id of new Set(ids)) {
      const n = entry?.byId.get(id);
      if (!n) continue;
      mine.push(id);
      if (!n.read) {
        n.read = true;
        updated++;
      }
    }
    event = { ids: mine };
  } else {
    for (const n of entry?.list ?? []) {
      if (!n.read) {
        n.read = true;
        updated++;
      }
    }
    event = { all: true };
  }
  if (entry) entry.unread -= updated;
  io.to(USER_ROOM_PREFIX + userId).emit("notificationsRead", event);
  return { updated };
}

// ---------------------------------------------------------------------------------------------
// Tokens

const verifyOptions = {
  algorithms: ["HS256", "HS384", "HS512"],
  clockTolerance: config.jwtLeewaySecs,
  issuer: config.jwtIssuer,
  audience: config.jwtAudience,
};

/** Verified claims, or throws an AppError `invalid_token` / `token_expired`. */
function verifyToken(token) {
  let claims;
  try {
    claims = jwt.verify(token, config.jwtSecret, verifyOptions);
  } catch (e) {
    throw new AppError(e.name === "TokenExpiredError" ? "token_expired" : "invalid_token");
  }
  if (
    typeof claims !== "object" ||
    typeof claims.exp !== "number" ||
    typeof claims.sub !== "string" ||
    !USER_ID.test(claims.sub)
  ) {
    throw new AppError("invalid_token");
  }
  if (claims.rooms !== undefined && !(Array.isArray(claims.rooms) && claims.rooms.every((r) => typeof r === "string"))) {
    throw new AppError("invalid_token");
  }
  return claims;
}

/** The handshake's token: `auth.token`, then `Authorization: Bearer`, then `?token=`. */
function handshakeToken(handshake) {
  const t = handshake.auth?.token;
  if (t !== undefined && t !== null && t !== "") {
    if (typeof t !== "string") throw new AppError("invalid_token");
    return t;
  }
  const bearer = bearerToken(handshake.headers.authorization);
  if (bearer) return bearer;
  const q = handshake.query?.token;
  if (typeof q === "string" && q !== "") return q;
  throw new AppError("missing_token");
}

function bearerToken(header) {
  if (typeof header !== "string") return undefined;
  const h = header.trim();
  const sp = h.indexOf(" ");
  if (sp < 0 || h.slice(0, sp).toLowerCase() !== "bearer") return undefined;
  return h.slice(sp + 1).trim() || undefined;
}

function roomAllowed(patterns, room) {
  return patterns.some((p) => (p.endsWith("*") ? room.startsWith(p.slice(0, -1)) : p === room));
}

// ---------------------------------------------------------------------------------------------
// Socket.IO

const httpServer = createServer(handleHttp);
const io = new Server(httpServer, {
  serveClient: false,
  maxHttpBufferSize: config.maxPayloadBytes,
  cors: { origin: config.corsOrigins, credentials: false },
});

io.use((socket, next) => {
  try {
    const claims = verifyToken(handshakeToken(socket.handshake));
    socket.data.userId = claims.sub;
    socket.data.exp = claims.exp;
    socket.data.roomsClaim = claims.rooms;
    next();
  } catch (e) {
    next(new Error(e instanceof AppError ? e.code : "invalid_token"));
  }
});

/** Client rooms of a socket: neither its own id nor its `user:` room. */
function clientRooms(socket) {
  const rooms = [];
  for (const r of socket.rooms) {
    if (r !== socket.id && !r.startsWith(USER_ROOM_PREFIX)) rooms.push(r);
  }
  return rooms;
}

function roomSize(room) {
  return io.sockets.adapter.rooms.get(room)?.size ?? 0;
}

/** `userJoined` / `userLeft` to the others, while the room (socket included) is small enough. */
function announce(socket, room, event) {
  const max = config.roomEventsMaxMembers;
  if (max === 0 || roomSize(room) > max) return;
  socket.to(room).emit(event, { roomId: room, userId: socket.data.userId });
}

function clientRoom(arg) {
  const c = new Checker(arg);
  const room = c.roomId();
  c.check();
  if (room.startsWith(USER_ROOM_PREFIX)) throw new AppError("forbidden");
  return room;
}

function requireMember(socket, room) {
  if (!socket.rooms.has(room)) throw new AppError("not_member");
}

const handlers = {
  joinRoom(socket, arg) {
    const room = clientRoom(arg);
    const { roomsClaim } = socket.data;
    if (roomsClaim ? !roomAllowed(roomsClaim, room) : config.roomsRequireClaim) {
      throw new AppError("forbidden");
    }
    if (socket.rooms.has(room)) return { roomId: room };
    if (clientRooms(socket).length >= config.maxRoomsPerSocket) throw new AppError("limit_exceeded");
    socket.join(room);
    socket.emit("joinedRoom", { roomId: room });
    announce(socket, room, "userJoined");
    return { roomId: room };
  },

  leaveRoom(socket, arg) {
    const room = clientRoom(arg);
    requireMember(socket, room);
    announce(socket, room, "userLeft");
    socket.leave(room);
    socket.emit("leftRoom", { roomId: room });
    return { roomId: room };
  },

  sendMessage(socket, arg) {
    const c = new Checker(arg);
    const roomId = c.roomId();
    const text = c.string("text", { max: MAX_TEXT_CHARS });
    if (typeof text === "string" && !c.details?.text && isBlank(text)) c.add("text", "must not be only white space");
    c.check();
    if (roomId.startsWith(USER_ROOM_PREFIX)) throw new AppError("forbidden");
    requireMember(socket, roomId);
    const message = {
      id: uuidv7(),
      roomId,
      userId: socket.data.userId,
      text,
      createdAt: new Date().toISOString(),
    };
    let list = messagesByRoom.get(roomId);
    if (!list) messagesByRoom.set(roomId, (list = []));
    list.push(message);
    io.to(roomId).emit("newMessage", message);
    return message;
  },

  getMessages(socket, arg) {
    const c = new Checker(arg);
    const roomId = c.roomId();
    const limit = c.limit();
    const before = c.cursor();
    c.check();
    if (roomId.startsWith(USER_ROOM_PREFIX)) throw new AppError("forbidden");
    requireMember(socket, roomId);
    const { page, hasMore } = pageNewestFirst(messagesByRoom.get(roomId) ?? [], { limit, before });
    return { messages: page, hasMore };
  },

  getRoomMembers(socket, arg) {
    const room = clientRoom(arg);
    requireMember(socket, room);
    const counts = new Map();
    for (const sid of io.sockets.adapter.rooms.get(room) ?? []) {
      const userId = io.sockets.sockets.get(sid)?.data.userId;
      if (userId) counts.set(userId, (counts.get(userId) ?? 0) + 1);
    }
    return { members: [...counts].map(([userId, connections]) => ({ userId, connections })) };
  },

  typing(socket, arg) {
    const room = clientRoom(arg);
    requireMember(socket, room);
    socket.to(room).volatile.emit("typing", { roomId: room, userId: socket.data.userId });
    return {};
  },

  listNotifications(socket, arg) {
    return listNotifications(socket.data.userId, arg);
  },

  markRead(socket, arg) {
    return markRead(socket.data.userId, arg);
  },

  refreshToken(socket, arg) {
    const token = arg !== null && typeof arg === "object" ? arg.token : undefined;
    if (typeof token !== "string" || token === "") throw new AppError("invalid_token");
    const claims = verifyToken(token);
    if (claims.sub !== socket.data.userId) throw new AppError("invalid_token");
    socket.data.exp = claims.exp;
    socket.data.roomsClaim = claims.rooms;
    return { exp: claims.exp };
  },
};

/** Runs one event and answers it: the ack envelope, or (without a callback) `error` on failure. */
function dispatch(socket, event, args) {
  const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
  let reply;
  try {
    const handler = Object.hasOwn(handlers, event) ? handlers[event] : null;
    if (!handler) throw new AppError("unknown_event");
    reply = { ok: true, data: handler(socket, args[0]) };
  } catch (e) {
    let err = e;
    if (!(e instanceof AppError)) {
      console.error(`event ${event} failed:`, e);
      err = new AppError("internal");
    }
    if (!ack) {
      socket.emit("error", { ...err.body(), event });
      return;
    }
    reply = { ok: false, error: err.body() };
  }
  if (ack) ack(reply);
}

io.on("connection", (socket) => {
  const { userId } = socket.data;
  socket.join(USER_ROOM_PREFIX + userId);
  socket.onAny((event, ...args) => dispatch(socket, event, args));
  socket.on("disconnecting", () => {
    for (const room of clientRooms(socket)) announce(socket, room, "userLeft");
  });

  // Catch-up after the client's cursor (oldest first, at most 100), then `registered`.
  const entry = userNotifications(userId, false);
  const cursor = socket.handshake.auth?.lastNotificationId;
  if (entry && typeof cursor === "string" && cursor !== "") {
    const at = entry.list.findLastIndex((n) => n.id === cursor);
    if (at >= 0) {
      for (const n of entry.list.slice(at + 1, at + 1 + CATCH_UP_LIMIT)) socket.emit("notification", n);
    }
  }
  socket.emit("registered", {
    userId,
    socketId: socket.id,
    rooms: [...socket.rooms].filter((r) => r !== socket.id),
    unreadCount: entry?.unread ?? 0,
    lastNotificationId: entry?.list.at(-1)?.id ?? null,
  });
});

// Sockets whose token expired (plus the leeway) without a `refreshToken` are disconnected.
setInterval(() => {
  const now = Date.now() / 1000;
  for (const socket of io.sockets.sockets.values()) {
    if (socket.data.exp + config.jwtLeewaySecs < now) socket.disconnect(true);
  }
}, 1000).unref();

// ---------------------------------------------------------------------------------------------
// HTTP API

const apiKeyDigests = config.apiKeys.map((k) => createHash("sha256").update(k).digest());

function isServiceKey(req) {
  const key = bearerToken(req.headers.authorization);
  if (!key) return false;
  const digest = createHash("sha256").update(key).digest();
  let ok = false;
  for (const d of apiKeyDigests) ok = timingSafeEqual(d, digest) || ok;
  return ok;
}

function userFromToken(req) {
  const token = bearerToken(req.headers.authorization);
  if (!token) throw new AppError("unauthorized");
  try {
    return verifyToken(token).sub;
  } catch {
    throw new AppError("unauthorized");
  }
}

function sendJson(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

function sendError(res, err) {
  sendJson(res, HTTP_STATUS[err.code] ?? 500, { error: err.body() });
}

/** The request's JSON body, within MAX_PAYLOAD_BYTES. */
async function readJson(req) {
  const type = req.headers["content-type"] ?? "";
  if (!/^application\/json\s*(;|$)/i.test(type)) {
    throw new AppError("bad_request", undefined, "bad request: expected content-type application/json");
  }
  const declared = Number(req.headers["content-length"]);
  if (declared > config.maxPayloadBytes) throw new AppError("payload_too_large");
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > config.maxPayloadBytes) throw new AppError("payload_too_large");
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString("utf8");
  try {
    return JSON.parse(text);
  } catch {
    throw new AppError("bad_request", undefined, "bad request: malformed JSON");
  }
}

function postEmit(body) {
  const c = new Checker(body);
  const event = c.string("event", { max: 64 });
  if (typeof event === "string" && !c.details?.event) {
    if (RESERVED_EVENTS.has(event)) c.add("event", "is a reserved Socket.IO event name");
    // eslint-disable-next-line no-control-regex
    else if (/[\u0000-\u001f\u007f-\u009f]/.test(event)) c.add("event", "must not contain control characters");
  }
  const room = c.roomId("room", true);
  const userId = c.userId("userId", true);
  c.check();
  if (room !== undefined && userId !== undefined) c.add("userId", "give room or userId, not both");
  c.check();
  const target = room !== undefined ? io.to(room) : userId !== undefined ? io.to(USER_ROOM_PREFIX + userId) : io;
  if ("data" in body) target.emit(event, body.data);
  else target.emit(event);
}

function postNotification(body) {
  const c = new Checker(body);
  const userId = c.userId();
  const type = c.string("type", { max: 64 });
  const title = c.string("title", { max: 200 });
  const message = c.string("message", { max: 2000 });
  if (body.data !== undefined && Buffer.byteLength(JSON.stringify(body.data)) > MAX_NOTIFICATION_DATA_BYTES) {
    c.add("data", "must be at most 16 KiB of JSON");
  }
  c.check();
  const n = createNotification({ userId, type, title, message, data: body.data });
  io.to(USER_ROOM_PREFIX + userId).emit("notification", n);
  return n;
}

const routes = {
  "/healthz": {
    GET: async (req, res) => sendJson(res, 200, { status: "ok" }),
  },
  "/api/emit": {
    POST: async (req, res) => {
      if (!isServiceKey(req)) throw new AppError("unauthorized");
      postEmit(await readJson(req));
      sendJson(res, 202, { ok: true });
    },
  },
  "/api/notifications": {
    POST: async (req, res) => {
      if (!isServiceKey(req)) throw new AppError("unauthorized");
      sendJson(res, 201, postNotification(await readJson(req)));
    },
    GET: async (req, res, url) => {
      const userId = userFromToken(req);
      const q = url.searchParams;
      const arg = {};
      if (q.has("limit")) arg.limit = /^\d+$/.test(q.get("limit")) ? Number(q.get("limit")) : q.get("limit");
      if (q.has("before")) arg.before = q.get("before");
      if (q.has("unreadOnly")) {
        const v = q.get("unreadOnly");
        arg.unreadOnly = v === "true" || v === "1" ? true : v === "false" || v === "0" ? false : v;
      }
      sendJson(res, 200, listNotifications(userId, arg));
    },
  },
  "/api/notifications/read": {
    POST: async (req, res) => {
      const userId = userFromToken(req);
      sendJson(res, 200, markRead(userId, await readJson(req)));
    },
  },
};

function corsHeaders(req, res) {
  const origin = req.headers.origin;
  if (!origin) return;
  if (config.corsOrigins === "*") res.setHeader("access-control-allow-origin", "*");
  else if (config.corsOrigins.includes(origin)) {
    res.setHeader("access-control-allow-origin", origin);
    res.setHeader("vary", "Origin");
  }
}

async function handleHttp(req, res) {
  try {
    const url = new URL(req.url, "http://localhost");
    corsHeaders(req, res);
    const route = routes[url.pathname];
    if (!route) throw new AppError("not_found");
    if (req.method === "OPTIONS") {
      res.writeHead(204, {
        "access-control-allow-methods": Object.keys(route).join(", "),
        "access-control-allow-headers": "Authorization, Content-Type",
        "access-control-max-age": "600",
      });
      res.end();
      return;
    }
    const handler = route[req.method] ?? (req.method === "HEAD" ? route.GET : undefined);
    if (!handler) {
      res.setHeader("allow", Object.keys(route).join(", "));
      throw new AppError("method_not_allowed");
    }
    await handler(req, res, url);
  } catch (e) {
    let err = e;
    if (!(e instanceof AppError)) {
      console.error(`${req.method} ${req.url} failed:`, e);
      err = new AppError("internal");
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (err.code === "payload_too_large") res.setHeader("connection", "close");
    sendError(res, err);
  }
}

// ---------------------------------------------------------------------------------------------
// Start and stop

httpServer.listen(config.port, config.host, () => {
  console.log(`listening on ${httpServer.address().port}`);
});

let stopping = false;
function shutdown() {
  if (stopping) return;
  stopping = true;
  setTimeout(() => process.exit(0), 10_000).unref();
  io.close(() => process.exit(0));
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
