// The wire types of sio-gateway, named after the contract (CONTRACT.md sections 3, 4, 5 and
// 10). They type `io<ServerToClientEvents, ClientToServerEvents>()` for users of plain
// socket.io-client, and the Gateway class of this package uses them too.

/** A UUIDv7, time-ordered: usable as a cursor and comparable as a string. */
export type Id = string;

/** RFC 3339 UTC with milliseconds, e.g. `2026-11-22T10:00:00.123Z`. */
export type Timestamp = string;

/** Any JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

// ---------------------------------------------------------------------------
// Errors (section 4, section 2, section 10.2)

/** The codes of the acknowledgement envelope (section 4). */
export type ErrorCode =
  | "validation_failed"
  | "forbidden"
  | "not_member"
  | "limit_exceeded"
  | "rate_limited"
  | "unknown_event"
  | "not_found"
  | "invalid_token"
  | "token_expired"
  | "internal"
  | "unavailable";

/** The `err.message` of a refused handshake (`connect_error`, section 2). */
export type ConnectErrorCode =
  | "missing_token"
  | "invalid_token"
  | "token_expired"
  | "too_many_connections"
  | "too_many_user_connections";

/** Field → list of messages; a non-object argument is under `_`. */
export type ErrorDetails = Record<string, string[]>;

/**
 * `{ code, message, details? }`. `code` is one of {@link ErrorCode}, or, for a proxied event
 * (section 10.2), any code the backend chose (`^[a-z][a-z0-9_]{0,63}$`).
 */
export interface ErrorBody {
  code: ErrorCode | (string & {});
  message: string;
  details?: ErrorDetails;
}

/** The acknowledgement envelope: `{ ok: true, data }` or `{ ok: false, error }`. */
export type Ack<T> = { ok: true; data: T } | { ok: false; error: ErrorBody };

/** The `error` event: a failure of an event sent without an acknowledgement callback. */
export interface ErrorEvent extends ErrorBody {
  /** The event that failed. */
  event: string;
}

// ---------------------------------------------------------------------------
// Rooms, messages, notifications (sections 3, 4, 5)

/** `registered`, emitted after connect (and after the catch-up). */
export interface Registered {
  userId: string;
  socketId: string;
  /** The rooms the socket is in, `user:<sub>` included. */
  rooms: string[];
  unreadCount: number;
  /** The user's newest notification id at that moment, `null` if none. */
  lastNotificationId: Id | null;
}

/** A chat message. */
export interface Message {
  id: Id;
  roomId: string;
  userId: string;
  text: string;
  createdAt: Timestamp;
}

/** A notification (section 5). */
export interface Notification<D = Json> {
  id: Id;
  userId: string;
  type: string;
  title: string;
  message: string;
  data: D | null;
  createdAt: Timestamp;
  read: boolean;
}

/** The handshake's `auth` object (sections 2 and 5). */
export interface HandshakeAuth {
  token: string;
  lastNotificationId?: Id | null;
}

// Arguments of the client → server events.
export interface JoinRoomArgs {
  roomId: string;
}
export interface LeaveRoomArgs {
  roomId: string;
}
export interface SendMessageArgs {
  roomId: string;
  /** 1–4000 characters, not blank. */
  text: string;
}
export interface GetMessagesArgs {
  roomId: string;
  /** 1–100, default 50. */
  limit?: number;
  /** A message id: only older messages. */
  before?: Id;
}
export interface GetRoomMembersArgs {
  roomId: string;
}
export interface TypingArgs {
  roomId: string;
}
export interface ListNotificationsArgs {
  /** 1–100, default 50. */
  limit?: number;
  /** A notification id: only older notifications. */
  before?: Id;
  unreadOnly?: boolean;
}
/** `{ ids }` (1–100 ids) or `{ all: true }`. */
export type MarkReadArgs = { ids: Id[]; all?: never } | { all: true; ids?: never };
export interface RefreshTokenArgs {
  token: string;
}

// Acknowledgement data of the client → server events.
export interface RoomAck {
  roomId: string;
}
export interface MessagesPage {
  /** Newest first. */
  messages: Message[];
  hasMore: boolean;
}
export interface RoomMember {
  userId: string;
  /** Sockets of that user in the room, across all nodes. */
  connections: number;
}
export interface RoomMembers {
  members: RoomMember[];
}
export type TypingAck = Record<string, never>;
export interface NotificationsPage {
  /** Newest first. */
  notifications: Notification[];
  hasMore: boolean;
}
export interface MarkReadResult {
  /** Rows that went from unread to read. */
  updated: number;
}
export interface Refreshed {
  /** The socket's new expiry, seconds since the epoch. */
  exp: number;
}

// Payloads of the server → client events.
export interface JoinedRoom {
  roomId: string;
}
export interface LeftRoom {
  roomId: string;
}
export interface UserJoined {
  roomId: string;
  userId: string;
}
export interface UserLeft {
  roomId: string;
  userId: string;
}
export interface TypingEvent {
  roomId: string;
  userId: string;
}
/** `{ ids }` (those of the request that belong to the user) or `{ all: true }`. */
export type NotificationsRead = { ids: Id[]; all?: never } | { all: true; ids?: never };

// ---------------------------------------------------------------------------
// Event maps for socket.io-client: io<ServerToClientEvents, ClientToServerEvents>(url)

type AckFn<T> = (res: Ack<T>) => void;

/** What the gateway emits to a socket. */
export interface ServerToClientEvents {
  registered: (r: Registered) => void;
  notification: (n: Notification) => void;
  notificationsRead: (e: NotificationsRead) => void;
  newMessage: (m: Message) => void;
  joinedRoom: (e: JoinedRoom) => void;
  leftRoom: (e: LeftRoom) => void;
  userJoined: (e: UserJoined) => void;
  userLeft: (e: UserLeft) => void;
  typing: (e: TypingEvent) => void;
  error: (e: ErrorEvent) => void;
}

/** What a socket may send, each with its acknowledgement. */
export interface ClientToServerEvents {
  joinRoom: (arg: JoinRoomArgs, ack: AckFn<RoomAck>) => void;
  leaveRoom: (arg: LeaveRoomArgs, ack: AckFn<RoomAck>) => void;
  sendMessage: (arg: SendMessageArgs, ack: AckFn<Message>) => void;
  getMessages: (arg: GetMessagesArgs, ack: AckFn<MessagesPage>) => void;
  getRoomMembers: (arg: GetRoomMembersArgs, ack: AckFn<RoomMembers>) => void;
  typing: (arg: TypingArgs, ack: AckFn<TypingAck>) => void;
  listNotifications: (arg: ListNotificationsArgs, ack: AckFn<NotificationsPage>) => void;
  markRead: (arg: MarkReadArgs, ack: AckFn<MarkReadResult>) => void;
  refreshToken: (arg: RefreshTokenArgs, ack: AckFn<Refreshed>) => void;
}

/** The acknowledgement `data` of each client → server event. */
export type AckData<E extends keyof ClientToServerEvents> =
  Parameters<ClientToServerEvents[E]>[1] extends AckFn<infer T> ? T : never;

// ---------------------------------------------------------------------------
// Section 10: what a backend sees and answers (server API, event proxy, webhooks)

/** `POST /api/users/{userId}/disconnect` → 200. */
export interface DisconnectedResponse {
  disconnected: number;
}
/** `POST /api/rooms/{roomId}/join` and `/leave` → 200. */
export interface SocketsResponse {
  sockets: number;
}
/** `GET /api/rooms/{roomId}/members` → 200. */
export type RoomMembersResponse = RoomMembers;
/** `GET /api/users/{userId}/presence` → 200. */
export interface PresenceResponse {
  userId: string;
  online: boolean;
  connections: number;
}
/** `GET /api/rooms/{roomId}/messages` and `GET /api/notifications` pages. */
export type RoomMessagesResponse = MessagesPage;

/** The body the gateway POSTs to `PROXY_URL` for a proxied event (section 10.2). */
export interface ProxyRequest<D = Json> {
  event: string;
  userId: string;
  socketId: string;
  data: D;
}
/** What the proxy backend answers: 2xx `{ data }`, or 4xx `{ error }`. */
export type ProxyAnswer<T = Json> = { data?: T } | { error: ErrorBody };

/** The webhook types and their `data` (section 10.3). */
export interface WebhookData {
  "user.online": { userId: string };
  "user.offline": { userId: string };
  "room.joined": { roomId: string; userId: string; socketId: string };
  "room.left": { roomId: string; userId: string; socketId: string };
  "message.created": Message;
  "notifications.read": { userId: string; ids: Id[] } | { userId: string; all: true };
}
export type WebhookType = keyof WebhookData;

/** One webhook call's body: `{ id, type, createdAt, data }`, deduplicate by `id`. */
export type WebhookEvent = {
  [K in WebhookType]: { id: Id; type: K; createdAt: Timestamp; data: WebhookData[K] };
}[WebhookType];

/** `POST /api/notifications` body (section 6). */
export interface CreateNotification<D = Json> {
  userId: string;
  type: string;
  title: string;
  message: string;
  data?: D;
}
/** `POST /api/emit` body (section 6). */
export interface EmitRequest<D = Json> {
  event: string;
  data?: D;
  room?: string;
  userId?: string;
}
