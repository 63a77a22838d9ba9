//! The server side of the official Socket.IO admin UI (`@socket.io/admin-ui`), on the
//! `/admin` namespace when `ADMIN_USERNAME` and `ADMIN_PASSWORD_HASH` (bcrypt) are set.
//!
//! It speaks the package's protocol: `session` and `config` on connect, `all_sockets`,
//! `server_stats` every two seconds from every node, `socket_connected`,
//! `socket_disconnected`, `room_joined` and `room_left` as they happen, and the commands
//! `emit`, `join`, `leave` and `_disconnect`. Events from the rest of the gateway reach this
//! module through [`AdminHub::send`], a channel that costs nothing when the UI is off.

pub mod commands;
pub mod serialize;

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde::Serialize;
use socketioxide::{
    SocketIo,
    adapter::Adapter,
    extract::{SocketRef, State, TryData},
    handler::ConnectHandler,
};
use socketioxide_core::adapter::DefinedAdapter;
use tokio::sync::mpsc;

use crate::{secrets::random_hex, service::default_ns, state::AppState};
pub use serialize::SerializedSocket;

/// The namespace the admin UI connects to.
pub const ADMIN_NS: &str = "/admin";

/// Credentials and sessions of the admin UI.
pub struct AdminAuth {
    username: String,
    password_hash: String,
    sessions: Mutex<HashSet<String>>,
}

impl AdminAuth {
    /// Credentials from `ADMIN_USERNAME` and `ADMIN_PASSWORD_HASH`.
    pub fn new(username: String, password_hash: String) -> Self {
        Self {
            username,
            password_hash,
            sessions: Mutex::default(),
        }
    }

    async fn check(&self, auth: &serde_json::Value) -> Option<Option<String>> {
        if let Some(session) = auth.get("sessionId").and_then(|v| v.as_str())
            && self
                .sessions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(session)
        {
            return Some(None);
        }
        let user = auth.get("username").and_then(|v| v.as_str())?;
        let password = auth.get("password").and_then(|v| v.as_str())?.to_string();
        if user != self.username {
            return None;
        }
        let hash = self.password_hash.clone();
        // bcrypt is slow on purpose; keep it off the async workers.
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
            .await
            .unwrap_or(false);
        if !ok {
            return None;
        }
        let session = random_hex(16);
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(session.clone());
        Some(Some(session))
    }
}

/// Something the admin UI should hear about.
#[derive(Debug)]
pub enum AdminEvent {
    /// A socket finished connecting.
    Connected(Box<SerializedSocket>),
    /// A socket left.
    Disconnected {
        /// Its namespace.
        nsp: String,
        /// Its id.
        id: String,
        /// Socket.IO's disconnect reason.
        reason: String,
    },
    /// A socket joined a room.
    RoomJoined {
        /// Its namespace.
        nsp: String,
        /// The room.
        room: String,
        /// The socket id.
        id: String,
    },
    /// A socket left a room.
    RoomLeft {
        /// Its namespace.
        nsp: String,
        /// The room.
        room: String,
        /// The socket id.
        id: String,
    },
}

/// Where the gateway sends [`AdminEvent`]s.
pub struct AdminHub {
    tx: mpsc::UnboundedSender<AdminEvent>,
}

impl AdminHub {
    /// Queues an event for the admin namespace.
    pub fn send(&self, event: AdminEvent) {
        let _ = self.tx.send(event);
    }
}

/// Registers `/admin` and starts the task that forwards events and stats to it. Returns the
/// adapter's initialisation of the namespace (a future to await for Redis).
pub fn start<A: Adapter + DefinedAdapter>(io: &SocketIo<A>, st: &AppState) -> A::InitRes {
    let (tx, rx) = mpsc::unbounded_channel();
    let _ = st.admin_hub.set(AdminHub { tx });
    tokio::spawn(forward(io.clone(), rx));
    io.ns(ADMIN_NS, on_connect::<A>.with(authenticate::<A>))
}

/// The session id to announce, kept from the middleware to the connect handler.
#[derive(Clone)]
struct NewSession(String);

/// Why an admin connection was refused; `Display` is the `connect_error` message.
#[derive(Debug, thiserror::Error)]
#[error("invalid credentials")]
pub struct InvalidCredentials;

async fn authenticate<A: Adapter>(
    s: SocketRef<A>,
    TryData(auth): TryData<serde_json::Value>,
    State(st): State<AppState>,
) -> Result<(), InvalidCredentials> {
    let admin = st.admin.as_ref().ok_or(InvalidCredentials)?;
    let auth = auth.unwrap_or(serde_json::Value::Null);
    match admin.check(&auth).await {
        Some(Some(session)) => {
            s.extensions.insert(NewSession(session));
            commands::register(&s);
            Ok(())
        }
        Some(None) => {
            commands::register(&s);
            Ok(())
        }
        None => {
            tracing::info!(sid = %s.id, "admin UI login refused");
            Err(InvalidCredentials)
        }
    }
}

/// Features this server supports, as the UI expects them named.
const FEATURES: [&str; 7] = ["EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT"];

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Features {
    supported_features: [&'static str; 7],
}

async fn on_connect<A: Adapter>(s: SocketRef<A>, io: SocketIo<A>, State(st): State<AppState>) {
    if let Some(NewSession(session)) = s.extensions.get::<NewSession>() {
        let _ = s.emit("session", &session);
    }
    let _ = s.emit(
        "config",
        &Features {
            supported_features: FEATURES,
        },
    );
    let sockets = serialize::all_sockets(&io, &st).await;
    let _ = s.emit("all_sockets", &sockets);
    tracing::info!(sid = %s.id, "admin UI connected");
}

/// `server_stats`: what one node reports every two seconds.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ServerStats {
    server_id: String,
    hostname: String,
    pid: u32,
    uptime: f64,
    clients_count: usize,
    polling_clients_count: usize,
    aggregated_events: [(); 0],
    namespaces: Vec<NamespaceStats>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NamespaceStats {
    name: &'static str,
    sockets_count: usize,
}

fn now_iso() -> String {
    crate::db::format_time(time::OffsetDateTime::now_utc())
}

async fn forward<A: Adapter>(io: SocketIo<A>, mut rx: mpsc::UnboundedReceiver<AdminEvent>) {
    let started = Instant::now();
    let hostname = hostname::get()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".into());
    let server_id = format!("{hostname}#{}", std::process::id());
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            event = rx.recv() => {
                let Some(event) = event else { return };
                let Some(admin) = io.of(ADMIN_NS) else { continue };
                let sent = match event {
                    AdminEvent::Connected(socket) => admin.emit("socket_connected", &(socket, now_iso())).await,
                    AdminEvent::Disconnected { nsp, id, reason } => {
                        admin.emit("socket_disconnected", &(nsp, id, reason, now_iso())).await
                    }
                    AdminEvent::RoomJoined { nsp, room, id } => admin.emit("room_joined", &(nsp, room, id, now_iso())).await,
                    AdminEvent::RoomLeft { nsp, room, id } => admin.emit("room_left", &(nsp, room, id, now_iso())).await,
                };
                if let Err(e) = sent {
                    tracing::debug!(cause = %e, "admin event not sent");
                }
            }
            _ = tick.tick() => {
                let (Some(admin), Some(main)) = (io.of(ADMIN_NS), default_ns(&io)) else { continue };
                let main_sockets = main.local().sockets();
                let admin_count = admin.clone().local().sockets().len();
                let polling = main_sockets
                    .iter()
                    .filter(|s| matches!(s.transport_type(), socketioxide::TransportType::Polling))
                    .count();
                let stats = ServerStats {
                    server_id: server_id.clone(),
                    hostname: hostname.clone(),
                    pid: std::process::id(),
                    uptime: started.elapsed().as_secs_f64(),
                    clients_count: main_sockets.len() + admin_count,
                    polling_clients_count: polling,
                    aggregated_events: [],
                    namespaces: vec![
                        NamespaceStats { name: "/", sockets_count: main_sockets.len() },
                        NamespaceStats { name: ADMIN_NS, sockets_count: admin_count },
                    ],
                };
                let _ = admin.emit("server_stats", &stats).await;
            }
        }
    }
}

/// Socket.IO's name for a disconnect reason, as the admin UI shows it.
pub fn reason_name(reason: socketioxide::socket::DisconnectReason) -> &'static str {
    use socketioxide::socket::DisconnectReason::*;
    match reason {
        TransportClose => "transport close",
        MultipleHttpPollingError | PacketParsingError => "parse error",
        TransportError => "transport error",
        HeartbeatTimeout => "ping timeout",
        ClientNSDisconnect => "client namespace disconnect",
        ServerNSDisconnect => "server namespace disconnect",
        ClosingServer => "server shutting down",
    }
}

/// Convenience for the rest of the gateway: queues `event` if the admin UI is on.
pub fn notify(st: &AppState, event: impl FnOnce() -> AdminEvent) {
    if let Some(hub) = st.admin_hub.get() {
        hub.send(event());
    }
}

/// Shared handle type stored in [`AppState`].
pub type AdminRef = Arc<AdminAuth>;
