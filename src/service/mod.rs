//! Operations shared by the Socket.IO events and the HTTP API, so both transports behave the
//! same: store first, then emit.

pub mod delivery;
pub mod messages;
pub mod rooms;

use std::collections::BTreeMap;

use serde::Serialize;
use socketioxide::{SocketIo, adapter::Adapter, operators::BroadcastOperators};

use crate::{
    db::notifications::{self, NewNotification, Notification},
    dto::{EmitArgs, MarkRead},
    error::{AppError, Result},
    node::AppState,
    node::session::{SessionRef, user_room},
    telemetry,
};

/// The default namespace, or `None` once the server is closing (`SocketIo::to` and friends
/// panic then; a request still finishing during a graceful stop must not).
pub fn default_ns<A: Adapter>(io: &SocketIo<A>) -> Option<BroadcastOperators<A>> {
    io.of("/")
}

/// Stores a notification, then delivers it to every socket of the user on this node and
/// queues it for the other nodes (without waiting for Redis).
///
/// Creation is serialised per user on this node, so this node's sockets usually see ids in
/// order without a repair; the store's ordering rule makes it exact across nodes.
pub async fn create_notification<A: Adapter>(
    st: &AppState,
    io: &SocketIo<A>,
    new: NewNotification,
) -> Result<Notification> {
    let stored = {
        let _order = st.create_lock(&new.user_id).lock().await;
        let stored = notifications::insert(&st.db, new).await?;
        let sockets = delivery::deliver(st, io, &stored.notification, stored.prev.as_deref());
        telemetry::record_notification_delivered(sockets);
        stored
    };
    telemetry::record_notification_created();
    if let Some(cluster) = &st.cluster {
        cluster.publish_notification(&stored);
    }
    Ok(stored.notification)
}

/// The payload of `notificationsRead`.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ReadEvent {
    /// These ids of the request belong to the user.
    Ids {
        /// The ids.
        ids: Vec<String>,
    },
    /// Everything was marked read.
    All {
        /// Always `true`.
        all: bool,
    },
}

/// Marks notifications read and tells every socket of the user. Returns the rows changed.
pub async fn mark_read<A: Adapter>(st: &AppState, io: &SocketIo<A>, user_id: &str, req: MarkRead) -> Result<u64> {
    let storing = st.webhooks_for("notifications.read").map(|hooks| hooks.before_store());
    let record = storing.as_ref().map(|s| s.record()).unwrap_or_default();
    let (updated, event, stored) = match req {
        MarkRead::Ids(ids) => {
            let (updated, owned, stored) = notifications::mark_read(&st.db, user_id, &ids, record).await?;
            (updated, ReadEvent::Ids { ids: owned }, stored)
        }
        MarkRead::All => {
            let (updated, stored) = notifications::mark_all_read(&st.db, user_id, record).await?;
            (updated, ReadEvent::All { all: true }, stored)
        }
    };
    if let Some(storing) = storing {
        storing.stored(stored);
    }
    let Some(ns) = default_ns(io) else { return Ok(updated) };
    if let Err(e) = ns.within(user_room(user_id)).emit("notificationsRead", &event).await {
        tracing::warn!(cause = %e, "notificationsRead broadcast failed");
    }
    Ok(updated)
}

/// Emits a backend's event to a room, a user, or everyone.
pub async fn emit<A: Adapter>(io: &SocketIo<A>, args: EmitArgs) -> Result<()> {
    let event = args.event.ok_or_else(|| AppError::field("event", "is required"))?;
    let ns = default_ns(io).ok_or(AppError::Unavailable("socket.io server"))?;
    let op = match (args.room, args.user_id) {
        (Some(room), _) => ns.within(room),
        (None, Some(user)) => ns.within(user_room(&user)),
        (None, None) => ns,
    };
    // No `data` means an event with no argument, as `io.emit("event")` sends in Socket.IO.
    let sent = match &args.data {
        Some(data) => op.emit(&event, data).await,
        None => op.emit(&event, &NO_ARGUMENTS).await,
    };
    sent.map_err(|e| AppError::Internal(format!("emit failed: {e}")))
}

/// An empty argument list (socketioxide sends the elements of a tuple as the arguments).
const NO_ARGUMENTS: [u8; 0] = [];

/// One entry of `getRoomMembers`.
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// The user.
    pub user_id: String,
    /// How many of the user's sockets are in the room.
    pub connections: usize,
}

/// The members of a room on every node, with their connection counts, sorted by user id.
pub async fn all_room_members<A: Adapter>(st: &AppState, io: &SocketIo<A>, room: &str) -> Vec<Member> {
    let local = room_members(io, room);
    let Some(cluster) = &st.cluster else { return local };
    let mut merged = cluster.remote_members(room).await;
    for m in local {
        *merged.entry(m.user_id).or_insert(0) += m.connections;
    }
    merged
        .into_iter()
        .map(|(user_id, connections)| Member { user_id, connections })
        .collect()
}

/// The members of a room on this node, with their connection counts, sorted by user id.
pub fn room_members<A: Adapter>(io: &SocketIo<A>, room: &str) -> Vec<Member> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let Some(ns) = default_ns(io) else { return Vec::new() };
    for s in ns.local().within(room.to_string()).sockets() {
        if let Some(ses) = s.extensions.get::<SessionRef>() {
            *counts.entry(ses.user_id.clone()).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .map(|(user_id, connections)| Member { user_id, connections })
        .collect()
}
