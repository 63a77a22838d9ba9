//! The server side of the official Socket.IO admin UI (`@socket.io/admin-ui`), on the
//! `/admin` namespace when `ADMIN_USERNAME` and `ADMIN_PASSWORD_HASH` (bcrypt) are set.
//!
//! It speaks the package's protocol: `session` and `config` on connect, `all_sockets`,
//! `server_stats` every two seconds from every node, `socket_connected`,
//! `socket_disconnected`, `room_joined` and `room_left` as they happen, and the commands
//! `emit`, `join`, `leave` and `_disconnect`. It sits on top of the gateway and observes: what
//! happens to sockets reaches it through the node's activity feed
//! ([`crate::node::activity`]: bounded, fed only while an admin client watches), and nothing
//! below calls into it. Logins, their sessions and their throttle are in [`login`].

pub mod commands;
pub mod login;
pub mod serialize;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
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

use crate::{
    node::{
        AppState,
        activity::{Activity, Watchers},
    },
    service::default_ns,
};
pub use login::AdminAuth;
use login::Login;
pub use serialize::SerializedSocket;

/// The namespace the admin UI connects to.
pub const ADMIN_NS: &str = "/admin";

/// Registers `/admin` and starts the task that forwards events and stats to it. Returns the
/// adapter's initialisation of the namespace (a future to await for Redis).
pub fn start<A: Adapter + DefinedAdapter>(io: &SocketIo<A>, st: &AppState) -> A::InitRes {
    match st.activity.take_receiver() {
        Some(rx) => {
            tokio::spawn(forward(io.clone(), rx, st.activity.watchers(), st.cluster.is_some()));
        }
        None => tracing::warn!("the activity feed is taken already: the admin UI gets no live events"),
    }
    io.ns(ADMIN_NS, on_connect::<A>.with(authenticate::<A>))
}

/// The session id to announce, kept from the middleware to the connect handler.
#[derive(Clone)]
struct NewSession(String);

/// Why an admin connection was refused; `Display` is the `connect_error` message.
#[derive(Debug, thiserror::Error)]
pub enum AdminRefusal {
    /// Wrong or missing credentials, or an unknown or expired session.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Too many failed logins on this node in the last minute (see [`login`]).
    #[error("too many failed logins, try again in a minute")]
    Throttled,
}

async fn authenticate<A: Adapter>(
    s: SocketRef<A>,
    TryData(auth): TryData<serde_json::Value>,
    State(admin): State<AdminRef>,
    State(st): State<AppState>,
) -> Result<(), AdminRefusal> {
    let auth = auth.unwrap_or(serde_json::Value::Null);
    match admin.check(&auth).await {
        Login::Issued(session) => {
            s.extensions.insert(NewSession(session));
        }
        Login::Resumed => {}
        Login::Refused => {
            tracing::info!(sid = %s.id, "admin UI login refused");
            return Err(AdminRefusal::InvalidCredentials);
        }
        Login::Throttled => {
            tracing::info!(sid = %s.id, "admin UI login refused without checking: too many failed logins in the last minute");
            return Err(AdminRefusal::Throttled);
        }
    }
    s.extensions.insert(st.activity.watch());
    commands::register(&s);
    Ok(())
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

/// Now, as the admin UI's events carry it.
fn now_iso() -> String {
    crate::clock::now_rfc3339_ms()
}

/// Forwards queued events to the admin namespace and sends `server_stats` every two seconds,
/// while someone watches. With several nodes it also checks, every two seconds, whether an
/// admin socket is connected to another node, so that this node feeds that one too.
async fn forward<A: Adapter>(
    io: SocketIo<A>,
    mut rx: mpsc::Receiver<Activity>,
    watchers: Arc<Watchers>,
    clustered: bool,
) {
    let checking = Arc::new(AtomicBool::new(false));
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
                    Activity::Connected { sid } => {
                        // Serialised now: a socket already gone is left to its disconnect event.
                        let Some(socket) = default_ns(&io).and_then(|ns| ns.get_socket(sid)) else { continue };
                        let socket = serialize::serialize(&socket, "/");
                        admin.emit("socket_connected", &(socket, now_iso())).await
                    }
                    Activity::Disconnected { sid, reason } => {
                        admin.emit("socket_disconnected", &("/", sid.to_string(), reason_name(reason), now_iso())).await
                    }
                    Activity::RoomJoined { room, sid } => {
                        admin.emit("room_joined", &("/", room, sid.to_string(), now_iso())).await
                    }
                    Activity::RoomLeft { room, sid } => {
                        admin.emit("room_left", &("/", room, sid.to_string(), now_iso())).await
                    }
                };
                if let Err(e) = sent {
                    tracing::debug!(cause = %e, "admin event not sent");
                }
            }
            _ = tick.tick() => {
                if clustered {
                    check_remote_watchers(&io, &watchers, &checking);
                }
                if !watchers.any() {
                    continue;
                }
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

/// Asks the cluster (in a task of its own, one at a time) whether another node has an admin
/// socket, and records the answer in `watchers`.
fn check_remote_watchers<A: Adapter>(io: &SocketIo<A>, watchers: &Arc<Watchers>, checking: &Arc<AtomicBool>) {
    let Some(admin) = io.of(ADMIN_NS) else { return };
    if checking.swap(true, Ordering::AcqRel) {
        return;
    }
    let (watchers, checking) = (watchers.clone(), checking.clone());
    tokio::spawn(async move {
        match admin.fetch_sockets().await {
            // The answer counts this node's admin sockets too.
            Ok(all) => watchers.set_remote(all.len() > watchers.local()),
            Err(e) => tracing::debug!(cause = %e, "admin: could not count the cluster's admin sockets"),
        }
        checking.store(false, Ordering::Release);
    });
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

/// The admin UI's credentials, shared by its handlers (a Socket.IO state of its own).
pub type AdminRef = Arc<AdminAuth>;

/// The admin UI's credentials from `ADMIN_USERNAME` and `ADMIN_PASSWORD_HASH`, when the
/// namespace is on; given to Socket.IO as a state of its own.
pub fn credentials(cfg: &crate::config::Config) -> Option<AdminRef> {
    cfg.admin
        .clone()
        .map(|(user, hash)| Arc::new(AdminAuth::new(user, hash)))
}
