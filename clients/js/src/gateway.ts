// The Gateway class: one socket.io-client socket, plus the careful code every client of
// sio-gateway needs (the notification cursor, token refresh, acknowledgements as promises).
import { io, type ManagerOptions, type Socket, type SocketOptions } from "socket.io-client";
import { Emitter, type EventMap } from "./emitter.js";
import { decodeJwt } from "./jwt.js";
import { memoryStore, type CursorStore } from "./stores.js";
import type {
  Ack,
  ClientToServerEvents,
  ConnectErrorCode,
  ErrorCode,
  ErrorDetails,
  ErrorEvent,
  Id,
  JoinedRoom,
  LeftRoom,
  ListNotificationsArgs,
  MarkReadArgs,
  MarkReadResult,
  Message,
  MessagesPage,
  Notification,
  NotificationsPage,
  NotificationsRead,
  Refreshed,
  Registered,
  RoomAck,
  RoomMembers,
  ServerToClientEvents,
  TypingAck,
  TypingEvent,
  UserJoined,
  UserLeft,
} from "./types.js";

/** Codes this package adds to the gateway's own. */
export type ClientErrorCode =
  /** No acknowledgement within the call's timeout. */
  | "timeout"
  /** A call made while the gateway is disconnected and will not reconnect by itself. */
  | "disconnected"
  /** `getToken()` threw or returned something that is not a string. */
  | "get_token_failed"
  /** `getToken()` threw an {@link UnauthorizedError}: the user is signed out. */
  | "unauthorized"
  /** An acknowledgement that is not `{ ok, data | error }`. */
  | "bad_ack"
  /** The cursor store threw (the notification is handed over all the same). */
  | "store_failed";

/** A failed call, a refused connection, or an `error` event of the gateway. */
export class GatewayError extends Error {
  /** `validation_failed`, `not_member`, …, a connect code, a proxy backend's code, or one of {@link ClientErrorCode}. */
  readonly code: ErrorCode | ConnectErrorCode | ClientErrorCode | (string & {});
  /** Field → messages, for `validation_failed`. */
  readonly details?: ErrorDetails;
  /** The event that failed, when one did. */
  readonly event?: string;

  constructor(code: string, message: string, details?: ErrorDetails, event?: string) {
    super(message);
    this.name = "GatewayError";
    this.code = code;
    if (details !== undefined) this.details = details;
    if (event !== undefined) this.event = event;
  }
}

/**
 * Throw it from `getToken()` when the user has no session any more: the gateway stops
 * reconnecting and emits `authError` with code `unauthorized` (centrifuge-js does the same).
 */
export class UnauthorizedError extends Error {
  constructor(message = "unauthorized") {
    super(message);
    this.name = "UnauthorizedError";
  }
}

/** Options of {@link Gateway}. */
export interface GatewayOptions {
  /**
   * Returns a token for the user: called before the first connect, before every reconnect,
   * and before the current token expires (the new one is sent with `refreshToken`).
   */
  getToken: () => string | Promise<string>;
  /** Where the notification cursor is kept: `memoryStore()` by default. */
  store?: CursorStore;
  /** Milliseconds a call waits for its acknowledgement: 10 000 by default. */
  timeout?: number;
  /**
   * Seconds before the token's `exp` at which a new one is fetched and sent: 30 by default,
   * and never more than a third of the token's remaining lifetime.
   */
  refreshMarginSecs?: number;
  /** Join again, after a reconnect, the rooms the socket was in: true by default. */
  rejoinRooms?: boolean;
  /** Options for socket.io-client's `io()`, except `auth` and `autoConnect` (the package's). */
  socket?: Partial<ManagerOptions & SocketOptions>;
}

/** The events of a {@link Gateway}. */
export interface GatewayEvents {
  /** The socket connected (before the catch-up and `registered`). */
  connect: () => void;
  /** The socket disconnected; `reason` is socket.io-client's. */
  disconnect: (reason: string) => void;
  /** A connection attempt failed (network, server down, or a refusal). */
  connect_error: (err: Error) => void;
  /**
   * After every connect, once every missed notification has been handed over and the rooms
   * have been joined again.
   */
  registered: (r: Registered) => void;
  /** A notification, each exactly once and in id order, across reconnects and reloads. */
  notification: (n: Notification) => void;
  notificationsRead: (e: NotificationsRead) => void;
  newMessage: (m: Message) => void;
  joinedRoom: (e: JoinedRoom) => void;
  leftRoom: (e: LeftRoom) => void;
  userJoined: (e: UserJoined) => void;
  userLeft: (e: UserLeft) => void;
  typing: (e: TypingEvent) => void;
  /** The token was refreshed; `exp` is the socket's new expiry (seconds since the epoch). */
  tokenRefreshed: (exp: number) => void;
  /**
   * The gateway refused the token (`missing_token`, `invalid_token`, `token_expired`) or
   * `getToken()` threw {@link UnauthorizedError} (`unauthorized`): no reconnect follows until
   * `connect()` is called again.
   */
  authError: (err: GatewayError) => void;
  /**
   * A failure no call can report: the `error` event of the gateway, a failed token refresh,
   * a failing store. Never thrown when nobody listens.
   */
  error: (err: GatewayError) => void;
}

const PASSED_THROUGH = [
  "notificationsRead",
  "newMessage",
  "joinedRoom",
  "leftRoom",
  "userJoined",
  "userLeft",
  "typing",
] as const;

const OWN_EVENTS = new Set<string>([
  "connect",
  "disconnect",
  "connect_error",
  "registered",
  "notification",
  "tokenRefreshed",
  "authError",
  "error",
  ...PASSED_THROUGH,
]);

const AUTH_CODES = new Set(["missing_token", "invalid_token", "token_expired"]);
const BUSY_CODES = new Set(["too_many_connections", "too_many_user_connections"]);

/** What `listNotifications` returns at most per page. */
const PAGE = 100;

/** Phases of one connection, for the notification stream. */
type Phase = "catchup" | "filling" | "live";

/** The socket.io-client socket, typed with the gateway's events. */
export type GatewaySocket = Socket<ServerToClientEvents, ClientToServerEvents>;

/**
 * A connection to sio-gateway. Extra server events (those a backend sends with
 * `POST /api/emit`) can be typed with the `Extra` parameter:
 * `new Gateway<{ "deploy.finished": (d: Deploy) => void }>(url, options)`.
 */
export class Gateway<Extra extends EventMap<Extra> = Record<never, never>> extends Emitter<GatewayEvents & Extra> {
  /** The underlying socket.io-client socket, for anything this class does not cover. */
  readonly socket: GatewaySocket;
  readonly url: string;

  #getToken: () => string | Promise<string>;
  #store: CursorStore;
  #timeout: number;
  #marginSecs: number;
  #rejoin: boolean;

  #exp: number | undefined;
  #userId: string | undefined;
  /** `undefined`: no baseline yet; `""`: from the user's first notification; else the last id handed over. */
  #cursor: string | undefined;
  #cursorKey: string | undefined;
  #phase: Phase = "catchup";
  #buffer: Notification[] = [];
  /** Bumped on every connect and disconnect, so work of an older connection stops. */
  #generation = 0;
  #rooms = new Set<string>();
  #queue: Promise<void> = Promise.resolve();
  #refreshTimer: ReturnType<typeof setTimeout> | undefined;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #busyRetries = 0;
  #stopped = true;
  #registered: Registered | undefined;
  #forwarded = new Set<string>();
  #dropped = 0;

  constructor(url: string, options: GatewayOptions) {
    super();
    if (typeof options?.getToken !== "function") throw new TypeError("Gateway: options.getToken is required");
    this.url = url;
    this.#getToken = options.getToken;
    this.#store = options.store ?? memoryStore();
    this.#timeout = options.timeout ?? 10_000;
    this.#marginSecs = options.refreshMarginSecs ?? 30;
    this.#rejoin = options.rejoinRooms ?? true;
    this.socket = io(url, {
      forceNew: true,
      ...options.socket,
      autoConnect: false,
      auth: (cb) => this.#handshake(cb),
    }) as GatewaySocket;
    this.#listen();
  }

  // -------------------------------------------------------------------------
  // State

  /** True while the socket is connected. */
  get connected(): boolean {
    return this.socket.connected;
  }

  /** The user id (`sub`) of the current token. */
  get userId(): string | undefined {
    return this.#userId;
  }

  /** The id of the last notification handed to the application (`null` before any). */
  get lastNotificationId(): Id | null {
    return this.#cursor || null;
  }

  /** The client rooms this gateway has joined (and joins again after a reconnect). */
  get rooms(): string[] {
    return [...this.#rooms];
  }

  /** The current token's `exp` (seconds since the epoch), as the gateway knows it. */
  get tokenExp(): number | undefined {
    return this.#exp;
  }

  /** Notifications received twice by the socket and not handed over again (for diagnostics). */
  get duplicatesDropped(): number {
    return this.#dropped;
  }

  // -------------------------------------------------------------------------
  // Lifecycle

  /**
   * Connects (reconnecting automatically afterwards) and resolves with `registered`, once the
   * missed notifications have been handed over; rejects with a {@link GatewayError} if the
   * gateway refuses the token.
   */
  connect(): Promise<Registered> {
    if (this.socket.connected && this.#registered && !this.#stopped) return Promise.resolve(this.#registered);
    const done = new Promise<Registered>((resolve, reject) => {
      // Typed as GatewayEvents: the Extra parameter cannot redefine these names.
      const own = this as unknown as Emitter<GatewayEvents>;
      const ok = (r: Registered) => {
        own.off("authError", ko);
        resolve(r);
      };
      const ko = (err: GatewayError) => {
        own.off("registered", ok);
        reject(err);
      };
      own.once("registered", ok);
      own.once("authError", ko);
    });
    this.#stopped = false;
    if (!this.socket.connected && !this.socket.active) this.socket.connect();
    return done;
  }

  /** Disconnects for good (until `connect()`): no reconnect, no refresh. */
  disconnect(): this {
    this.#stopped = true;
    this.#generation++;
    this.#clearTimers();
    this.socket.disconnect();
    return this;
  }

  override on<E extends keyof (GatewayEvents & Extra) & string>(event: E, listener: (GatewayEvents & Extra)[E]): this {
    this.#forward(event);
    return super.on(event, listener);
  }

  override once<E extends keyof (GatewayEvents & Extra) & string>(event: E, listener: (GatewayEvents & Extra)[E]): this {
    this.#forward(event);
    return super.once(event, listener);
  }

  // -------------------------------------------------------------------------
  // Calls

  /** Joins `roomId` (rejoined after reconnects). */
  async joinRoom(roomId: string): Promise<RoomAck> {
    const data = await this.#call<RoomAck>("joinRoom", { roomId });
    this.#rooms.add(roomId);
    return data;
  }

  /** Leaves `roomId`. */
  async leaveRoom(roomId: string): Promise<RoomAck> {
    const data = await this.#call<RoomAck>("leaveRoom", { roomId });
    this.#rooms.delete(roomId);
    return data;
  }

  /** Sends `text` to `roomId`; resolves with the stored message. */
  sendMessage(roomId: string, text: string): Promise<Message> {
    return this.#call("sendMessage", { roomId, text });
  }

  /** A page of `roomId`'s messages, newest first. */
  getMessages(roomId: string, page: { limit?: number; before?: Id } = {}): Promise<MessagesPage> {
    return this.#call("getMessages", { roomId, ...page });
  }

  /** The users in `roomId` and their connection counts, across nodes. */
  getRoomMembers(roomId: string): Promise<RoomMembers> {
    return this.#call("getRoomMembers", { roomId });
  }

  /** Tells the room's other sockets that this user is typing. */
  typing(roomId: string): Promise<TypingAck> {
    return this.#call("typing", { roomId });
  }

  /** A page of the user's notifications, newest first. */
  listNotifications(args: ListNotificationsArgs = {}): Promise<NotificationsPage> {
    return this.#call("listNotifications", args);
  }

  /** Marks notifications read: `markRead([id, …])`, `markRead({ ids })` or `markRead({ all: true })`. */
  markRead(what: Id[] | MarkReadArgs): Promise<MarkReadResult> {
    return this.#call("markRead", Array.isArray(what) ? { ids: what } : what);
  }

  /** Fetches a token now and sends it with `refreshToken`; resolves with the socket's new `exp`. */
  async refreshToken(): Promise<Refreshed> {
    const token = await this.#fetchToken();
    const data = await this.#call<Refreshed>("refreshToken", { token });
    this.#exp = data.exp;
    this.#emitAny("tokenRefreshed", data.exp);
    this.#scheduleRefresh();
    return data;
  }

  /**
   * Sends any event (one the event proxy forwards to a backend, section 10.2) and resolves
   * with the acknowledgement's `data`, or rejects with a {@link GatewayError}.
   */
  call<T = unknown>(event: string, data?: unknown, options: { timeout?: number } = {}): Promise<T> {
    return this.#call<T>(event, data ?? {}, options.timeout);
  }

  // -------------------------------------------------------------------------
  // Internals

  async #call<T>(event: string, arg: unknown, timeout = this.#timeout): Promise<T> {
    if (!this.socket.connected && !this.socket.active) {
      throw new GatewayError("disconnected", `${event}: not connected (call connect() first)`, undefined, event);
    }
    let res: Ack<T>;
    try {
      // The typed socket only knows the contract's events; proxied ones are any string.
      const timed = this.socket.timeout(timeout) as unknown as { emitWithAck(e: string, a: unknown): Promise<Ack<T>> };
      res = await timed.emitWithAck(event, arg);
    } catch {
      throw new GatewayError("timeout", `${event}: no acknowledgement within ${timeout} ms`, undefined, event);
    }
    if (!res || typeof res !== "object" || typeof res.ok !== "boolean") {
      throw new GatewayError("bad_ack", `${event}: unexpected acknowledgement ${JSON.stringify(res)}`, undefined, event);
    }
    if (res.ok) return (res.data ?? null) as T;
    const e = res.error ?? { code: "internal", message: "error without a body" };
    throw new GatewayError(e.code, e.message, e.details, event);
  }

  /** The `auth` callback: a fresh token and the cursor, before every (re)connect. */
  #handshake(cb: (auth: object) => void): void {
    const generation = this.#generation;
    (async () => {
      const token = await this.#fetchToken();
      const claims = decodeJwt(token);
      if (claims?.sub !== this.#userId) {
        // Another user (or the first token): their own cursor and no rooms of the previous one.
        this.#userId = claims?.sub;
        this.#rooms.clear();
        this.#cursorKey = undefined;
      }
      this.#exp = typeof claims?.exp === "number" ? claims.exp : undefined;
      const key = `sio-gateway:${this.url}:${this.#userId ?? ""}`;
      if (this.#cursorKey !== key) {
        const stored = await this.#store.get(key);
        this.#cursorKey = key;
        this.#cursor = typeof stored === "string" ? stored : undefined;
      }
      return { token, lastNotificationId: this.#cursor ? this.#cursor : null };
    })().then(
      (auth) => {
        if (!this.#stopped && generation === this.#generation) cb(auth);
      },
      (err: unknown) => {
        if (this.#stopped || generation !== this.#generation) return;
        if (err instanceof UnauthorizedError) {
          this.#stopped = true;
          this.socket.disconnect();
          this.#emitAny("authError", new GatewayError("unauthorized", err.message));
          return;
        }
        this.#fail(err instanceof GatewayError ? err : new GatewayError("get_token_failed", String(err)));
        // Close the transport: the manager reconnects with its backoff and asks again.
        this.socket.io.engine?.close();
      },
    );
  }

  async #fetchToken(): Promise<string> {
    let token: unknown;
    try {
      token = await this.#getToken();
    } catch (err) {
      if (err instanceof UnauthorizedError) throw err;
      throw new GatewayError("get_token_failed", `getToken() failed: ${(err as Error)?.message ?? String(err)}`);
    }
    if (typeof token !== "string" || token === "") {
      throw new GatewayError("get_token_failed", "getToken() did not return a token string");
    }
    return token;
  }

  #listen() {
    const s = this.socket;
    s.on("connect", () => {
      this.#generation++;
      this.#phase = "catchup";
      this.#buffer = [];
      this.#busyRetries = 0;
      this.#scheduleRefresh();
      this.#emitAny("connect");
    });
    s.on("disconnect", (reason) => {
      this.#generation++;
      this.#clearTimers();
      this.#emitAny("disconnect", reason);
      if (reason === "io server disconnect" && !this.#stopped) {
        // The gateway disconnects a socket whose token expired (a refresh came too late, e.g.
        // in a sleeping tab): reconnect with a fresh token. Any other server disconnect (the
        // backend's POST /api/users/{id}/disconnect) is meant: stay disconnected, as
        // socket.io-client does.
        if (this.#exp !== undefined && this.#exp * 1000 <= Date.now() + 1000) {
          this.#retryTimer = setTimeout(() => this.socket.connect(), this.socket.io.reconnectionDelay());
        } else {
          this.#stopped = true;
        }
      }
    });
    s.on("connect_error", (err) => {
      this.#emitAny("connect_error", err);
      if (s.active) return; // a network error: the manager retries by itself
      if (AUTH_CODES.has(err.message)) {
        // A token the gateway refuses will not get better by retrying: tell the application.
        this.#stopped = true;
        this.#emitAny("authError", new GatewayError(err.message, `the gateway refused the token: ${err.message}`));
      } else if (BUSY_CODES.has(err.message) && !this.#stopped) {
        // Connection limits are temporary: try again with the manager's backoff.
        const delay = Math.min(
          this.socket.io.reconnectionDelay() * 2 ** this.#busyRetries++,
          this.socket.io.reconnectionDelayMax(),
        );
        this.#retryTimer = setTimeout(() => this.socket.connect(), delay);
      }
    });
    s.on("notification", (n) => this.#onNotification(n));
    s.on("registered", (r) => void this.#onRegistered(r));
    s.on("error", (e: ErrorEvent) => this.#fail(new GatewayError(e.code, e.message, e.details, e.event)));
    s.on("joinedRoom", (e) => this.#rooms.add(e.roomId));
    s.on("leftRoom", (e) => this.#rooms.delete(e.roomId));
    for (const name of PASSED_THROUGH) {
      (s.on as (e: string, l: (p: unknown) => void) => void)(name, (payload) => this.#emitAny(name, payload));
    }
  }

  #onNotification(n: Notification) {
    if (this.#phase === "filling") this.#buffer.push(n);
    else this.#hand(n);
  }

  /** Hands `n` to the application unless it was handed before; the cursor is stored first. */
  #hand(n: Notification) {
    if (!n || typeof n.id !== "string") return;
    if (this.#cursor && n.id <= this.#cursor) {
      this.#dropped++;
      return;
    }
    this.#cursor = n.id;
    const key = this.#cursorKey;
    this.#enqueue(async () => {
      await this.#save(key, n.id);
      this.#emitAny("notification", n);
    });
  }

  async #save(key: string | undefined, value: string) {
    if (key === undefined) return;
    try {
      await this.#store.set(key, value);
    } catch (err) {
      this.#fail(new GatewayError("store_failed", `the cursor store failed: ${(err as Error)?.message ?? err}`));
    }
  }

  #enqueue(job: () => Promise<void> | void) {
    this.#queue = this.#queue.then(job).catch((err) => this.#fail(new GatewayError("internal", String(err))));
  }

  async #onRegistered(r: Registered) {
    const generation = this.#generation;
    const latest = r.lastNotificationId;
    try {
      if (this.#cursor === undefined) {
        // First connect with nothing stored: what exists now is history (listNotifications);
        // what comes after it is handed over.
        this.#cursor = latest ?? "";
        const key = this.#cursorKey;
        const value = this.#cursor;
        this.#enqueue(() => this.#save(key, value));
      } else if (this.#cursor && (latest === null || this.#cursor > latest)) {
        // A cursor the gateway never issued (another database): start again from its newest.
        this.#cursor = latest ?? "";
        const key = this.#cursorKey;
        const value = this.#cursor;
        this.#enqueue(() => this.#save(key, value));
      } else if (latest !== null && (this.#cursor === "" || this.#cursor < latest)) {
        // The catch-up stops after 100, gives nothing for an unknown cursor and nothing
        // without one: read the rest, while live notifications wait in the buffer.
        this.#phase = "filling";
        const missed = await this.#readBetween(this.#cursor, latest, generation);
        if (generation !== this.#generation) return;
        for (const n of missed) this.#hand(n);
      }
      this.#phase = "live";
      const waiting = this.#buffer.sort((a, b) => (a.id < b.id ? -1 : 1));
      this.#buffer = [];
      for (const n of waiting) this.#hand(n);

      if (this.#rejoin) await this.#rejoinRooms(r, generation);
      if (generation !== this.#generation) return;
      const rooms = [...new Set([...r.rooms, ...this.#rooms])];
      this.#enqueue(() => {
        if (generation !== this.#generation) return;
        this.#registered = { ...r, rooms };
        this.#emitAny("registered", this.#registered);
      });
    } catch (err) {
      if (generation !== this.#generation) return;
      // The missed notifications could not be read: reconnect (with the same cursor) and try again.
      this.#fail(err instanceof GatewayError ? err : new GatewayError("internal", String(err)));
      this.socket.io.engine?.close();
    }
  }

  /** The user's notifications with `after < id <= upTo` (`after` "" for no lower bound), oldest first. */
  async #readBetween(after: string, upTo: Id, generation: number): Promise<Notification[]> {
    const found: Notification[] = [];
    let before: Id | undefined;
    for (;;) {
      const page = await this.#call<NotificationsPage>("listNotifications", before ? { limit: PAGE, before } : { limit: PAGE });
      if (generation !== this.#generation) return [];
      for (const n of page.notifications) {
        if (n.id <= upTo && (after === "" || n.id > after)) found.push(n);
      }
      const oldest = page.notifications[page.notifications.length - 1];
      if (!page.hasMore || !oldest || (after !== "" && oldest.id <= after)) break;
      before = oldest.id;
    }
    return found.sort((a, b) => (a.id < b.id ? -1 : 1));
  }

  async #rejoinRooms(r: Registered, generation: number) {
    const missing = [...this.#rooms].filter((room) => !r.rooms.includes(room));
    await Promise.all(
      missing.map(async (roomId) => {
        try {
          await this.#call("joinRoom", { roomId });
        } catch (err) {
          if (generation !== this.#generation) return;
          this.#rooms.delete(roomId);
          this.#fail(err instanceof GatewayError ? err : new GatewayError("internal", String(err)));
        }
      }),
    );
  }

  #scheduleRefresh() {
    clearTimeout(this.#refreshTimer);
    if (this.#exp === undefined || this.#stopped) return;
    const left = this.#exp - Date.now() / 1000;
    const margin = Math.min(this.#marginSecs, Math.max(left / 3, 0));
    const delay = Math.min(Math.max(0, (left - margin) * 1000), 2 ** 31 - 1);
    this.#refreshTimer = setTimeout(() => void this.#refreshSoon(), delay);
  }

  async #refreshSoon() {
    if (!this.socket.connected) return; // the reconnect fetches a token anyway
    const generation = this.#generation;
    try {
      await this.refreshToken();
    } catch (err) {
      if (generation !== this.#generation || this.#stopped) return;
      this.#fail(err instanceof GatewayError ? err : new GatewayError("internal", String(err)));
      // Try again while the current token lasts; past it the gateway disconnects and the
      // reconnect asks for a token again.
      const left = (this.#exp ?? 0) - Date.now() / 1000;
      if (left > 1) this.#refreshTimer = setTimeout(() => void this.#refreshSoon(), Math.min(5000, (left * 1000) / 2));
    }
  }

  #clearTimers() {
    clearTimeout(this.#refreshTimer);
    clearTimeout(this.#retryTimer);
    this.#refreshTimer = undefined;
    this.#retryTimer = undefined;
  }

  #fail(err: GatewayError) {
    this.#emitAny("error", err);
  }

  /** Forwards a custom server event (one sent with POST /api/emit) once someone listens to it. */
  #forward(event: string) {
    if (OWN_EVENTS.has(event) || this.#forwarded.has(event)) return;
    this.#forwarded.add(event);
    (this.socket.on as (e: string, l: (...args: unknown[]) => void) => void)(event, (...args) =>
      this.#emitAny(event, ...args),
    );
  }

  #emitAny(event: string, ...args: unknown[]) {
    (this.emit as (e: string, ...a: unknown[]) => boolean)(event, ...args);
  }
}
