//! The Socket.IO side: the handshake, the connect sequence, and the event handlers, one
//! module per group of events.
//!
//! A connection goes: [`authenticate`] (a connect middleware: token, limits, session) →
//! [`on_connect`] (handlers registered, `user:<sub>` joined, catch-up, `registered`) → events,
//! each answered through [`reply::Reply`] → `on_disconnect` (slot freed, `userLeft`).

pub mod messages;
pub mod notifications;
pub mod proxied;
pub mod reply;
pub mod rooms;
pub mod token;

use std::time::Duration;

use serde::Serialize;
use socketioxide::{
    SendError, SocketError, SocketIo,
    adapter::Adapter,
    extract::{SocketRef, State, TryData},
    handler::ConnectHandler,
    socket::DisconnectReason,
};
use socketioxide_core::adapter::DefinedAdapter;

use crate::{
    auth::{self, AuthError},
    db::notifications as store,
    error::AppError,
    node::limits::{LimitError, RateDecision, RateLimiter},
    node::session::{Session, SessionRef, user_room},
    node::{AppState, activity::Activity},
    service::rooms::{self as service_rooms, client_rooms, visible_rooms},
    telemetry,
};

/// How many 5 ms waits an event gives a socket that is not yet marked connected.
const CONNECT_SETTLE_TRIES: u32 = 20;

/// Most notifications sent as catch-up on connect; the rest are read with `listNotifications`.
pub const CATCH_UP_LIMIT: u32 = 100;

/// Registers the default namespace with its middleware and handlers. The result is the
/// adapter's initialisation: nothing for the in-memory adapter, a future to await for Redis.
pub fn register<A: Adapter + DefinedAdapter>(io: &SocketIo<A>) -> A::InitRes {
    telemetry::start_event_series(&EVENTS);
    io.ns("/", on_connect::<A>.with(authenticate::<A>))
}

/// Why a handshake was refused; `Display` is exactly the contract's `connect_error` message.
#[derive(Debug, thiserror::Error)]
pub enum ConnectRefusal {
    /// Token missing, invalid or expired.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A connection limit was reached.
    #[error(transparent)]
    Limit(#[from] LimitError),
}

/// Connect middleware: finds and verifies the token, takes a connection slot, stores the
/// [`Session`], registers the event handlers and joins `user:<sub>`. Nothing is emitted to the
/// client before this succeeds.
pub async fn authenticate<A: Adapter>(
    s: SocketRef<A>,
    TryData(auth): TryData<serde_json::Value>,
    State(st): State<AppState>,
) -> Result<(), ConnectRefusal> {
    let result = admit(&s, auth.ok().as_ref(), &st).await;
    if let Err(e) = &result {
        telemetry::record_refusal(&e.to_string());
        tracing::debug!(sid = %s.id, reason = %e, "handshake refused");
    }
    result
}

async fn admit<A: Adapter>(
    s: &SocketRef<A>,
    auth: Option<&serde_json::Value>,
    st: &AppState,
) -> Result<(), ConnectRefusal> {
    let claims = {
        let parts = s.req_parts();
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .map(|h| h.as_bytes());
        let token = auth::handshake_token(auth, header, parts.uri.query())?;
        st.verifier.verify(&token)?
    };
    let mut guard = st.limits.acquire(&claims.sub)?;
    if let Some(cluster) = &st.cluster {
        guard = guard.count_in_cluster(cluster, st.cfg.max_connections_per_user).await?;
    }
    if let Some(hooks) = st.webhooks_for("user.offline") {
        guard = guard.with_presence(hooks.clone());
    }
    if guard.is_first() {
        st.record_webhook("user.online", || serde_json::json!({ "userId": claims.sub }));
    }
    let rate = RateLimiter::new(st.cfg.event_rate_per_sec, st.cfg.event_burst, std::time::Instant::now());
    let user_id = claims.sub.clone();
    st.expiry.add(st.expiry_deadline(claims.exp), s.id);
    s.extensions.insert::<SessionRef>(Session::new(claims, guard, rate));
    // Everything an early event needs is in place before the CONNECT answer leaves: socketioxide
    // runs the connect handler in a task of its own, after CONNECT is sent, so handlers set
    // there could miss an event the client sends at once. Notifications for the user room are
    // held by the session's delivery gate until `registered` is out.
    register_handlers(s);
    s.join(user_room(&user_id));
    telemetry::record_connect();
    Ok(())
}

/// The client events of contract section 4, named once: the handlers are registered under
/// these names, and the metrics label an event by them (anything else is `unknown`).
pub const EVENTS: [&str; 9] = [
    "joinRoom",
    "leaveRoom",
    "getRoomMembers",
    "sendMessage",
    "getMessages",
    "typing",
    "listNotifications",
    "markRead",
    "refreshToken",
];

/// The metrics label of an event name: one of [`EVENTS`], or `unknown` (so clients cannot grow
/// the label set).
pub fn event_label(event: &str) -> &'static str {
    EVENTS.iter().find(|e| **e == event).copied().unwrap_or("unknown")
}

fn register_handlers<A: Adapter>(s: &SocketRef<A>) {
    let [join, leave, members, send, history, typing, list, mark_read, refresh] = EVENTS;
    s.on(join, rooms::join::<A>);
    s.on(leave, rooms::leave::<A>);
    s.on(members, rooms::members::<A>);
    s.on(send, messages::send::<A>);
    s.on(history, messages::history::<A>);
    s.on(typing, messages::typing::<A>);
    s.on(list, notifications::list::<A>);
    s.on(mark_read, notifications::mark_read::<A>);
    s.on(refresh, token::refresh::<A>);
    s.on_fallback(proxied::fallback::<A>);
    s.on_disconnect(on_disconnect::<A>);
}

/// The `registered` event.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Registered {
    /// The user id.
    pub user_id: String,
    /// This socket's id.
    pub socket_id: String,
    /// Rooms the socket is in, `user:<sub>` included, its own id not.
    pub rooms: Vec<String>,
    /// Unread notifications of the user.
    pub unread_count: i64,
    /// The user's newest notification id, or `null`.
    pub last_notification_id: Option<String>,
}

/// Connect handler: sends the catch-up and then `registered`, and opens live notification
/// delivery. (Handlers and the `user:<sub>` room were set up by [`authenticate`].)
///
/// `registered` announces the user's newest notification id at that moment, and the socket's
/// delivery cursor starts there; the catch-up reads up to that same id, so nothing between the
/// client's cursor and the announced one is skipped. While the database does not answer, the
/// reads are retried and `registered` waits: it is never sent on a guess.
pub async fn on_connect<A: Adapter>(
    s: SocketRef<A>,
    TryData(auth): TryData<serde_json::Value>,
    State(st): State<AppState>,
) {
    let Some(ses) = s.extensions.get::<SessionRef>() else {
        // Only reachable if the middleware did not run; never leave such a socket open.
        let _ = s.disconnect();
        return;
    };
    tracing::debug!(sid = %s.id, user = %ses.user_id, "connected");

    let cursor = auth
        .ok()
        .and_then(|a| a.get("lastNotificationId").and_then(|v| v.as_str()).map(str::to_string))
        .filter(|c| crate::dto::is_id(c));
    let Some((summary, missed)) = registration_reads(&s, &st, &ses.user_id, cursor.as_deref()).await else {
        return;
    };
    for n in &missed {
        if !emit_patiently(&s, "notification", n).await {
            return;
        }
    }
    let registered = Registered {
        user_id: ses.user_id.clone(),
        socket_id: s.id.to_string(),
        rooms: visible_rooms(&s),
        unread_count: summary.unread,
        last_notification_id: summary.latest_id.clone(),
    };
    if !emit_patiently(&s, "registered", &registered).await {
        return;
    }
    if ses.open_delivery(&s, summary.latest_id) {
        st.repairs.request(&ses.user_id);
    }
    st.activity.offer(|| Activity::Connected { sid: s.id });
}

/// Longest wait between two tries of the connect-time reads while the database is away.
const REGISTRATION_RETRY_MAX: Duration = Duration::from_secs(2);

/// What `registered` announces, and the catch-up after `cursor` up to it. Retried until they
/// succeed; `None` once the socket is gone.
async fn registration_reads<A: Adapter>(
    s: &SocketRef<A>,
    st: &AppState,
    user_id: &str,
    cursor: Option<&str>,
) -> Option<(store::Summary, Vec<store::Notification>)> {
    let mut wait = Duration::from_millis(100);
    loop {
        match read_registration(st, user_id, cursor).await {
            Ok(found) => return Some(found),
            Err(e) => {
                e.body();
                tracing::warn!(sid = %s.id, user = %user_id, "registration reads failed; retrying before `registered`");
            }
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(REGISTRATION_RETRY_MAX);
        if s.extensions.get::<SessionRef>().is_none_or(|ses| ses.is_closing()) {
            return None;
        }
    }
}

async fn read_registration(
    st: &AppState,
    user_id: &str,
    cursor: Option<&str>,
) -> Result<(store::Summary, Vec<store::Notification>), AppError> {
    let summary = st.summaries.summary(user_id).await?;
    let missed = match (cursor, summary.latest_id.as_deref()) {
        (Some(cursor), Some(latest)) => store::after(&st.db, user_id, cursor, latest, CATCH_UP_LIMIT)
            .await?
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    Ok((summary, missed))
}

/// Most 20 ms waits for room in a socket's send buffer before a connect-time emit gives up.
const EMIT_WAIT_TRIES: u32 = 250;

/// Emits, waiting a while for room when the socket's send buffer is full. `false` when the
/// packet could not be queued: the socket is gone, or stayed full for 5 s (it is disconnected
/// then; engine.io's heartbeat closes it anyway if it stays full).
async fn emit_patiently<A: Adapter, T: Serialize + ?Sized>(s: &SocketRef<A>, event: &str, data: &T) -> bool {
    for _ in 0..EMIT_WAIT_TRIES {
        match s.emit(event, data) {
            Ok(()) => return true,
            Err(SendError::Socket(SocketError::InternalChannelFull)) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(_) => return false,
        }
    }
    tracing::info!(sid = %s.id, "socket took no packet for 5 s while registering: disconnecting");
    let _ = s.clone().disconnect();
    false
}

/// The start of every event: the socket's session, after the rate limit. A socket over its
/// rate for too long is disconnected; a disconnecting socket's events do nothing.
pub async fn begin<A: Adapter>(s: &SocketRef<A>) -> Result<SessionRef, AppError> {
    let ses = s
        .extensions
        .get::<SessionRef>()
        .ok_or_else(|| AppError::Internal("socket without session".into()))?;
    // socketioxide marks a socket connected just after sending the CONNECT answer, and
    // unconnected again the moment it starts to disconnect. An event seen while it is not
    // connected is either racing the first step (wait a moment) or follows the client's own
    // namespace disconnect: that one changes nothing, and `Reply` drops its answer.
    if !s.connected() {
        for _ in 0..CONNECT_SETTLE_TRIES {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if s.connected() {
                break;
            }
        }
        if !s.connected() {
            ses.mark_closing();
        }
    }
    if ses.is_closing() {
        return Err(AppError::Unavailable("socket"));
    }
    match ses.check_rate() {
        RateDecision::Allow => Ok(ses),
        RateDecision::Refuse => Err(AppError::RateLimited),
        RateDecision::Disconnect => {
            tracing::info!(sid = %s.id, user = %ses.user_id, "disconnecting a socket that stayed over its event rate");
            let _ = s.clone().disconnect();
            Err(AppError::RateLimited)
        }
    }
}

/// Disconnect handler: frees the connection slot and tells each client room the user left.
async fn on_disconnect<A: Adapter>(s: SocketRef<A>, reason: DisconnectReason, State(st): State<AppState>) {
    telemetry::record_disconnect();
    let Some(ses) = s.extensions.get::<SessionRef>() else {
        return;
    };
    ses.mark_closing();
    let rooms = client_rooms(&s);
    depart(&st, &s, &ses, &rooms);
    st.expiry.remove(st.expiry_deadline(ses.expires_at()), s.id);
    st.activity.offer(|| Activity::Disconnected { sid: s.id, reason });
    for room in rooms {
        let size = st.room_sizes.size(&room);
        service_rooms::announce(&s, &st, &room, size, "userLeft", &ses.user_id).await;
    }
    for room in ses.take_counted_rooms() {
        st.room_sizes.left(&room);
    }
    tracing::debug!(sid = %s.id, user = %ses.user_id, "disconnected");
}

/// Records a socket's going, once, by whichever comes first (its disconnect handler or a
/// stopping server): `room.left` for each client room it was in, then its connection slot
/// back, which records `user.offline` when it was the user's last.
fn depart<A: Adapter>(st: &AppState, s: &SocketRef<A>, ses: &SessionRef, rooms: &[String]) {
    if !ses.first_departure() {
        return;
    }
    // The rooms joined are read from the session too: a stopping server clears the adapter's.
    let mut left = ses.with_counted_rooms(|counted| counted.clone());
    for room in rooms {
        if !left.contains(room) {
            left.push(room.clone());
        }
    }
    for room in &left {
        service_rooms::record_room_event(st, "room.left", room, &ses.user_id, s);
    }
    ses.release();
}

/// A stopping server: records the going of every socket of this node before the transports
/// close (socketioxide drops a closing server's sockets without running every disconnect
/// handler). Their later events are ignored.
pub fn depart_all<A: Adapter>(io: &SocketIo<A>, st: &AppState) {
    for s in io.sockets() {
        if let Some(ses) = s.extensions.get::<SessionRef>() {
            ses.mark_closing();
            depart(st, &s, &ses, &client_rooms(&s));
        }
    }
}

/// Disconnects sockets whose token expired (plus leeway) without a refresh, and, when
/// `IDLE_TIMEOUT_SECS` is set, sockets idle for longer. Runs until the server stops; one task
/// per node. Expiry looks only at the sockets the schedule says are due; the idle check has
/// to look at every socket, so it runs only when an idle timeout is configured.
pub async fn sweep<A: Adapter>(io: SocketIo<A>, st: AppState) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = crate::clock::unix_secs();
        let Some(ns) = crate::service::default_ns(&io) else {
            return;
        };
        for sid in st.expiry.take_due(now) {
            let Some(s) = ns.get_socket(sid) else {
                continue;
            };
            let Some(ses) = s.extensions.get::<SessionRef>() else {
                continue;
            };
            if st.expiry_deadline(ses.expires_at()) < now {
                tracing::debug!(sid = %s.id, user = %ses.user_id, "token expired: disconnecting");
                if s.clone().disconnect().is_err() {
                    // Its send buffer is full: try again on a later tick, never forget it.
                    st.expiry.add(now, sid);
                }
            }
        }
        let Some(limit) = st.cfg.idle_timeout else {
            continue;
        };
        for s in ns.sockets() {
            let Some(ses) = s.extensions.get::<SessionRef>() else {
                continue;
            };
            if ses.idle_for() >= limit {
                tracing::debug!(sid = %s.id, user = %ses.user_id, "idle: disconnecting");
                let _ = s.disconnect();
            }
        }
    }
}
