//! `bare-peer`: the contract's core slice on bare socketioxide + axum, with in-memory state.
//!
//! What a user gets following socketioxide's examples: a connect middleware checks the token,
//! handlers answer with the contract's ack envelope, `axum::serve` runs it all. The only
//! tuning is the gateway's own: a listen backlog of 1024 and TCP_NODELAY.

use std::{
    collections::{HashMap, VecDeque},
    convert::Infallible,
    sync::{Arc, Mutex},
};

use axum::{
    Json, Router,
    extract::{State as Http, rejection::JsonRejection},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
    serve::ListenerExt,
};
use bare_peer::{Config, TokenError, Verifier, bind, valid_room_id, valid_user_id};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use socketioxide::{
    SocketIo,
    adapter::Adapter,
    extract::{AckSender, Event, Extension, SocketRef, State, TryData},
    handler::{ConnectHandler, FromMessageParts},
    socket::Socket,
};

const USER_ROOM_PREFIX: &str = "user:";
const MAX_ROOMS_PER_SOCKET: usize = 100;
const ROOM_EVENTS_MAX_MEMBERS: usize = 100;
const MAX_TEXT_CHARS: usize = 4000;
/// Messages kept per room (the newest; the contract's history reads at most 100 at once).
const MESSAGES_KEPT: usize = 100;

struct App {
    verifier: Verifier,
    api_keys: Vec<String>,
    messages: Mutex<HashMap<String, VecDeque<Message>>>,
    /// Per user, oldest first. A tokio mutex: held across the emit, so every socket gets a
    /// user's notifications in id order.
    notifications: tokio::sync::Mutex<HashMap<String, Vec<Notification>>>,
}

type AppRef = Arc<App>;

/// The authenticated user of a socket (set by the connect middleware).
#[derive(Clone)]
struct User(Arc<str>);

#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Message {
    id: String,
    room_id: String,
    user_id: String,
    text: String,
    created_at: String,
}

#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Notification {
    id: String,
    user_id: String,
    #[serde(rename = "type")]
    kind: String,
    title: String,
    message: String,
    data: Value,
    created_at: String,
    read: bool,
}

/// Time-ordered id (UUIDv7) and RFC 3339 UTC time with milliseconds.
fn id_and_time() -> (String, String) {
    const FORMAT: &[time::format_description::FormatItem<'static>] =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    let now = time::OffsetDateTime::now_utc();
    let at = now.format(FORMAT).unwrap_or_default();
    (uuid::Uuid::now_v7().to_string(), at)
}

// ---------------------------------------------------------------------------------------------
// Socket.IO

/// An event's failure, answered as `{ ok: false, error }` (or the `error` event without ack).
enum Fail {
    Validation(&'static str, &'static str),
    Forbidden,
    NotMember,
    LimitExceeded,
    UnknownEvent,
}

impl Fail {
    fn body(&self) -> Value {
        let (code, message) = match self {
            Fail::Validation(..) => ("validation_failed", "invalid arguments"),
            Fail::Forbidden => ("forbidden", "not allowed"),
            Fail::NotMember => ("not_member", "not a member of this room"),
            Fail::LimitExceeded => ("limit_exceeded", "too many rooms"),
            Fail::UnknownEvent => ("unknown_event", "unknown event"),
        };
        match self {
            Fail::Validation(field, msg) => {
                json!({ "code": code, "message": message, "details": { *field: [msg] } })
            }
            _ => json!({ "code": code, "message": message }),
        }
    }
}

/// Whether the client asked for an acknowledgement.
struct HasAck(bool);

impl<A: Adapter> FromMessageParts<A> for HasAck {
    type Error = Infallible;
    fn from_message_parts(
        _: &Arc<Socket<A>>,
        _: &mut socketioxide::handler::Value,
        ack: &Option<i64>,
    ) -> Result<Self, Infallible> {
        Ok(HasAck(ack.is_some()))
    }
}

/// Answers an event: the ack envelope, or on failure without ack the `error` event.
fn reply<T: Serialize>(s: &SocketRef, ack: AckSender, HasAck(has_ack): HasAck, event: &str, result: Result<T, Fail>) {
    match (result, has_ack) {
        (Ok(data), true) => {
            let _ = ack.send(&json!({ "ok": true, "data": data }));
        }
        (Err(e), true) => {
            let _ = ack.send(&json!({ "ok": false, "error": e.body() }));
        }
        (Ok(_), false) => {}
        (Err(e), false) => {
            let mut body = e.body();
            body["event"] = event.into();
            let _ = s.emit("error", &body);
        }
    }
}

/// The `roomId` of an event argument, checked.
fn room_arg(arg: &Result<Value, impl Sized>) -> Result<String, Fail> {
    let Ok(Value::Object(obj)) = arg else {
        return Err(Fail::Validation("_", "must be an object"));
    };
    match obj.get("roomId") {
        Some(Value::String(r)) if valid_room_id(r) => Ok(r.clone()),
        Some(_) => Err(Fail::Validation(
            "roomId",
            "must be 1-128 characters from [A-Za-z0-9_.:-]",
        )),
        None => Err(Fail::Validation("roomId", "is required")),
    }
}

fn is_member(s: &SocketRef, room: &str) -> bool {
    s.rooms().iter().any(|r| r == room)
}

/// `userJoined` / `userLeft` to the other sockets of the room while it is small enough.
async fn announce(s: &SocketRef, room: &str, event: &str, user: &str) {
    if s.within(room.to_string()).sockets().len() <= ROOM_EVENTS_MAX_MEMBERS {
        let _ = s
            .to(room.to_string())
            .emit(event, &json!({ "roomId": room, "userId": user }))
            .await;
    }
}

/// Connect middleware: verifies `auth.token`; a refusal becomes `connect_error`.
async fn authenticate(
    s: SocketRef,
    TryData(auth): TryData<Value>,
    State(app): State<AppRef>,
) -> Result<(), TokenError> {
    let auth = auth.ok();
    let token = auth.as_ref().and_then(|a| a.get("token")).and_then(Value::as_str);
    let user = app.verifier.verify(token)?;
    // Joined and handlers set before CONNECT goes out (socketioxide runs the connect handler
    // in a task of its own afterwards), so an event sent right after `connect` is answered.
    s.join(format!("{USER_ROOM_PREFIX}{user}"));
    s.extensions.insert(User(user.into()));
    s.on("joinRoom", join_room);
    s.on("leaveRoom", leave_room);
    s.on("sendMessage", send_message);
    s.on("typing", typing);
    s.on_fallback(unknown_event);
    s.on_disconnect(on_disconnect);
    Ok(())
}

async fn on_connect(s: SocketRef, Extension(user): Extension<User>, State(app): State<AppRef>) {
    let (unread, last) = {
        let all = app.notifications.lock().await;
        match all.get(&*user.0) {
            Some(list) => (
                list.iter().filter(|n| !n.read).count(),
                list.last().map(|n| n.id.clone()),
            ),
            None => (0, None),
        }
    };
    let rooms: Vec<String> = s
        .rooms()
        .into_iter()
        .map(|r| r.to_string())
        .filter(|r| *r != s.id.as_str())
        .collect();
    let _ = s.emit(
        "registered",
        &json!({
            "userId": &*user.0,
            "socketId": s.id.as_str(),
            "rooms": rooms,
            "unreadCount": unread,
            "lastNotificationId": last,
        }),
    );
}

async fn join_room(
    s: SocketRef,
    TryData(arg): TryData<Value>,
    Extension(user): Extension<User>,
    ack: AckSender,
    has_ack: HasAck,
) {
    let result = async {
        let room = room_arg(&arg)?;
        if room.starts_with(USER_ROOM_PREFIX) {
            return Err(Fail::Forbidden);
        }
        let rooms = s.rooms();
        if rooms.iter().any(|r| *r == room) {
            return Ok(json!({ "roomId": room }));
        }
        let client_rooms = rooms
            .iter()
            .filter(|r| !r.starts_with(USER_ROOM_PREFIX) && **r != s.id.as_str())
            .count();
        if client_rooms >= MAX_ROOMS_PER_SOCKET {
            return Err(Fail::LimitExceeded);
        }
        s.join(room.clone());
        let _ = s.emit("joinedRoom", &json!({ "roomId": room }));
        announce(&s, &room, "userJoined", &user.0).await;
        Ok(json!({ "roomId": room }))
    }
    .await;
    reply(&s, ack, has_ack, "joinRoom", result);
}

async fn leave_room(
    s: SocketRef,
    TryData(arg): TryData<Value>,
    Extension(user): Extension<User>,
    ack: AckSender,
    has_ack: HasAck,
) {
    let result = async {
        let room = room_arg(&arg)?;
        if room.starts_with(USER_ROOM_PREFIX) {
            return Err(Fail::Forbidden);
        }
        if !is_member(&s, &room) {
            return Err(Fail::NotMember);
        }
        announce(&s, &room, "userLeft", &user.0).await;
        s.leave(room.clone());
        let _ = s.emit("leftRoom", &json!({ "roomId": room }));
        Ok(json!({ "roomId": room }))
    }
    .await;
    reply(&s, ack, has_ack, "leaveRoom", result);
}

async fn send_message(
    s: SocketRef,
    TryData(arg): TryData<Value>,
    Extension(user): Extension<User>,
    State(app): State<AppRef>,
    ack: AckSender,
    has_ack: HasAck,
) {
    let result = async {
        let room = room_arg(&arg)?;
        let text = match arg.as_ref().ok().and_then(|a| a.get("text")) {
            Some(Value::String(t)) => t,
            Some(_) => return Err(Fail::Validation("text", "must be a string")),
            None => return Err(Fail::Validation("text", "is required")),
        };
        let chars = text.chars().count();
        if chars == 0 || chars > MAX_TEXT_CHARS || text.trim().is_empty() {
            return Err(Fail::Validation(
                "text",
                "must be 1-4000 characters, not only white space",
            ));
        }
        if !is_member(&s, &room) {
            return Err(Fail::NotMember);
        }
        let (id, created_at) = id_and_time();
        let msg = Message {
            id,
            room_id: room.clone(),
            user_id: user.0.to_string(),
            text: text.clone(),
            created_at,
        };
        {
            let mut all = app.messages.lock().unwrap();
            let kept = all.entry(room.clone()).or_default();
            if kept.len() >= MESSAGES_KEPT {
                kept.pop_front();
            }
            kept.push_back(msg.clone());
        }
        let _ = s.within(room).emit("newMessage", &msg).await;
        Ok(msg)
    }
    .await;
    reply(&s, ack, has_ack, "sendMessage", result);
}

async fn typing(
    s: SocketRef,
    TryData(arg): TryData<Value>,
    Extension(user): Extension<User>,
    ack: AckSender,
    has_ack: HasAck,
) {
    let result = async {
        let room = room_arg(&arg)?;
        if !is_member(&s, &room) {
            return Err(Fail::NotMember);
        }
        let _ = s
            .to(room.clone())
            .volatile()
            .emit("typing", &json!({ "roomId": room, "userId": &*user.0 }))
            .await;
        Ok(json!({}))
    }
    .await;
    reply(&s, ack, has_ack, "typing", result);
}

async fn unknown_event(s: SocketRef, Event(event): Event, ack: AckSender, has_ack: HasAck) {
    reply::<Value>(&s, ack, has_ack, &event, Err(Fail::UnknownEvent));
}

/// `userLeft` to each client room the socket was in.
async fn on_disconnect(s: SocketRef, Extension(user): Extension<User>) {
    for room in s.rooms() {
        if !room.starts_with(USER_ROOM_PREFIX) && room != s.id.as_str() {
            announce(&s, &room, "userLeft", &user.0).await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP

#[derive(Clone)]
struct HttpState {
    app: AppRef,
    io: SocketIo,
}

/// An HTTP error: `{ "error": { code, message, details? } }`.
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Option<Value>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    /// 422 `validation_failed` naming one field.
    fn invalid(field: &str, message: &str) -> ApiError {
        ApiError {
            details: Some(json!({ field: [message] })),
            ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", "invalid body")
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut err = json!({ "code": self.code, "message": self.message });
        if let Some(d) = self.details {
            err["details"] = d;
        }
        (self.status, Json(json!({ "error": err }))).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> ApiError {
        match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(e.status(), "payload_too_large", e.body_text()),
            StatusCode::UNPROCESSABLE_ENTITY => ApiError::invalid("_", &e.body_text()),
            _ => ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.body_text()),
        }
    }
}

/// A service request: `Authorization: Bearer <one of API_KEYS>` (compared in constant time).
fn check_key(app: &App, headers: &HeaderMap) -> Result<(), ApiError> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or("");
    let matches =
        |k: &String| k.len() == given.len() && k.bytes().zip(given.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
    if !given.is_empty() && app.api_keys.iter().any(matches) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong key",
        ))
    }
}

fn chars_between(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.chars().count())
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EmitArgs {
    event: String,
    data: Option<Value>,
    room: Option<String>,
    user_id: Option<String>,
}

const RESERVED: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// An empty argument list (socketioxide sends a tuple's elements as the arguments).
const NO_ARGUMENTS: [u8; 0] = [];

async fn emit(
    Http(st): Http<HttpState>,
    headers: HeaderMap,
    args: Result<Json<EmitArgs>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    check_key(&st.app, &headers)?;
    let Json(args) = args?;
    if !chars_between(&args.event, 1, 64) || RESERVED.contains(&args.event.as_str()) {
        return Err(ApiError::invalid(
            "event",
            "must be 1-64 characters and not a reserved name",
        ));
    }
    let op = match (args.room, args.user_id) {
        (Some(_), Some(_)) => return Err(ApiError::invalid("_", "at most one of room and userId")),
        (Some(room), None) => st.io.within(room),
        (None, Some(user)) => st.io.within(format!("{USER_ROOM_PREFIX}{user}")),
        (None, None) => st.io.broadcast(),
    };
    let sent = match &args.data {
        Some(data) => op.emit(&args.event, data).await,
        None => op.emit(&args.event, &NO_ARGUMENTS).await,
    };
    sent.map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "emit failed"))?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "ok": true }))))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NotificationArgs {
    user_id: String,
    #[serde(rename = "type")]
    kind: String,
    title: String,
    message: String,
    data: Option<Value>,
}

async fn create_notification(
    Http(st): Http<HttpState>,
    headers: HeaderMap,
    args: Result<Json<NotificationArgs>, JsonRejection>,
) -> Result<(StatusCode, Json<Notification>), ApiError> {
    check_key(&st.app, &headers)?;
    let Json(a) = args?;
    if !valid_user_id(&a.user_id) {
        return Err(ApiError::invalid(
            "userId",
            "must be 1-128 characters from [A-Za-z0-9_.:@-]",
        ));
    }
    if !chars_between(&a.kind, 1, 64) {
        return Err(ApiError::invalid("type", "must be 1-64 characters"));
    }
    if !chars_between(&a.title, 1, 200) {
        return Err(ApiError::invalid("title", "must be 1-200 characters"));
    }
    if !chars_between(&a.message, 1, 2000) {
        return Err(ApiError::invalid("message", "must be 1-2000 characters"));
    }
    let data = a.data.unwrap_or(Value::Null);
    if serde_json::to_vec(&data).map_or(true, |d| d.len() > 16 * 1024) {
        return Err(ApiError::invalid("data", "must be at most 16 KiB of JSON"));
    }
    // Stored, then emitted, under the lock: ids are taken and sent in one order.
    let mut all = st.app.notifications.lock().await;
    let (id, created_at) = id_and_time();
    let n = Notification {
        id,
        user_id: a.user_id,
        kind: a.kind,
        title: a.title,
        message: a.message,
        data,
        created_at,
        read: false,
    };
    all.entry(n.user_id.clone()).or_default().push(n.clone());
    let _ = st
        .io
        .within(format!("{USER_ROOM_PREFIX}{}", n.user_id))
        .emit("notification", &n)
        .await;
    drop(all);
    Ok((StatusCode::CREATED, Json(n)))
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

#[tokio::main]
async fn main() {
    let cfg = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bare-peer: {e}");
            std::process::exit(2);
        }
    };
    let app: AppRef = Arc::new(App {
        verifier: Verifier::new(&cfg.secret),
        api_keys: cfg.api_keys,
        messages: Mutex::default(),
        notifications: tokio::sync::Mutex::default(),
    });
    // The same per-socket send buffer as the gateway (socketioxide's default is 128 packets):
    // with the default, saturating fan-outs overflow it and the comparison would count drops.
    let (layer, io) = SocketIo::builder()
        .with_state(app.clone())
        .max_buffer_size(1024)
        .build_layer();
    io.ns("/", on_connect.with(authenticate));

    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/api/emit", post(emit))
        .route("/api/notifications", post(create_notification))
        .fallback(not_found)
        .with_state(HttpState { app, io })
        .layer(layer);

    let listener = match bind(cfg.port) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("bare-peer: cannot listen on 127.0.0.1:{}: {e}", cfg.port);
            std::process::exit(1);
        }
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(cfg.port);
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    println!("listening on {port}");
    if let Err(e) = axum::serve(listener, router).await {
        eprintln!("bare-peer: {e}");
        std::process::exit(1);
    }
}
