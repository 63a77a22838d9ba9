//! Room membership, one implementation for both fronts: a socket's own `joinRoom` and
//! `leaveRoom`, and the server API's joins, leaves and disconnects of all of a user's sockets
//! (contract section 10.1), on this node and, through the cluster, on every other.

use std::time::Duration;

use serde::Serialize;
use socketioxide::{SocketIo, adapter::Adapter, extract::SocketRef};

use super::default_ns;
use crate::{
    cluster::UserOp,
    error::{AppError, Result},
    node::session::{SessionRef, USER_ROOM_PREFIX, user_room},
    node::{AppState, activity::Activity},
};

/// `{ roomId }`, the data of several acks and events.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomRef {
    /// The room.
    pub room_id: String,
}

/// `userJoined` / `userLeft` / `typing`: `{ roomId, userId }`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomUser<'a> {
    /// The room.
    pub room_id: &'a str,
    /// Who joined, left or types.
    pub user_id: &'a str,
}

/// The rooms of a socket as clients see them: without the socket's own id.
pub fn visible_rooms<A: Adapter>(s: &SocketRef<A>) -> Vec<String> {
    let sid = s.id.to_string();
    let mut rooms: Vec<String> = s
        .rooms()
        .into_iter()
        .map(|r| r.to_string())
        .filter(|r| *r != sid)
        .collect();
    rooms.sort();
    rooms
}

/// The client rooms of a socket: its rooms minus `user:<sub>` and its own id.
pub fn client_rooms<A: Adapter>(s: &SocketRef<A>) -> Vec<String> {
    visible_rooms(s)
        .into_iter()
        .filter(|r| !r.starts_with(USER_ROOM_PREFIX))
        .collect()
}

/// Whether the socket is in `room`.
pub fn is_member<A: Adapter>(s: &SocketRef<A>, room: &str) -> bool {
    s.rooms().iter().any(|r| r == room)
}

/// How a join went for one socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joined {
    /// The socket joined; `joinedRoom` and `userJoined` were sent.
    Now,
    /// It was in the room already; nothing was sent.
    Already,
}

/// Joins one socket to a client room (the caller checked the room's name and any claim):
/// `joinedRoom` to the socket, `userJoined` to the room. `limit_exceeded` at
/// `MAX_ROOMS_PER_SOCKET`.
pub async fn join<A: Adapter>(st: &AppState, s: &SocketRef<A>, ses: &SessionRef, room: &str) -> Result<Joined> {
    // Check and join in one step per socket: two joins of one room must not both join it, and
    // joins of different rooms must not pass the bound together.
    let joined = ses.with_counted_rooms(|counted| -> Result<Option<usize>> {
        if ses.is_closing() {
            // The disconnect has taken (or is about to take) the counted rooms back.
            return Err(AppError::Unavailable("socket"));
        }
        if is_member(s, room) {
            return Ok(None);
        }
        if client_rooms(s).len() >= st.cfg.max_rooms_per_socket {
            return Err(AppError::LimitExceeded);
        }
        s.join(room.to_string());
        counted.push(room.to_string());
        Ok(Some(st.room_sizes.joined(room)))
    })?;
    let Some(size) = joined else {
        return Ok(Joined::Already);
    };
    record_room_event(st, "room.joined", room, &ses.user_id, s);
    st.activity.offer(|| Activity::RoomJoined {
        room: room.to_string(),
        sid: s.id,
    });
    let _ = s.emit(
        "joinedRoom",
        &RoomRef {
            room_id: room.to_string(),
        },
    );
    announce(s, st, room, size, "userJoined", &ses.user_id).await;
    Ok(Joined::Now)
}

/// Takes one socket out of a client room: `leftRoom` to the socket, `userLeft` to the room.
/// `not_member` if it is not in it.
pub async fn leave<A: Adapter>(st: &AppState, s: &SocketRef<A>, ses: &SessionRef, room: &str) -> Result<()> {
    // Check and leave in one step per socket, as joins do: two leaves announce once.
    let size = ses.with_counted_rooms(|counted| -> Result<usize> {
        if !is_member(s, room) {
            return Err(AppError::NotMember);
        }
        // Counted while the leaver is still in, as the join was: a room announces symmetrically.
        let size = st.room_sizes.size(room);
        s.leave(room.to_string());
        let before = counted.len();
        counted.retain(|r| r != room);
        if counted.len() != before {
            st.room_sizes.left(room);
        }
        Ok(size)
    })?;
    record_room_event(st, "room.left", room, &ses.user_id, s);
    announce(s, st, room, size, "userLeft", &ses.user_id).await;
    st.activity.offer(|| Activity::RoomLeft {
        room: room.to_string(),
        sid: s.id,
    });
    let _ = s.emit(
        "leftRoom",
        &RoomRef {
            room_id: room.to_string(),
        },
    );
    Ok(())
}

/// Records `room.joined` / `room.left` `{ roomId, userId, socketId }` for webhooks.
pub fn record_room_event<A: Adapter>(st: &AppState, kind: &'static str, room: &str, user_id: &str, s: &SocketRef<A>) {
    st.record_webhook(
        kind,
        || serde_json::json!({ "roomId": room, "userId": user_id, "socketId": s.id.to_string() }),
    );
}

/// Sends `event { roomId, userId }` to the other sockets of the room, while the room's `size`
/// (counted on this node, the socket included: see [`crate::node::room_sizes`]) is at most
/// `ROOM_EVENTS_MAX_MEMBERS`.
pub async fn announce<A: Adapter>(
    s: &SocketRef<A>,
    st: &AppState,
    room: &str,
    size: usize,
    event: &str,
    user_id: &str,
) {
    let max = st.cfg.room_events_max_members;
    if max == 0 || size > max {
        return;
    }
    if let Err(e) = s
        .to(room.to_string())
        .emit(event, &RoomUser { room_id: room, user_id })
        .await
    {
        tracing::debug!(cause = %e, event, "room announcement not sent");
    }
}

/// Applies a server API operation to all of a user's sockets on every node; the sum of what
/// each node answered (see [`apply_here`]).
pub async fn apply_everywhere<A: Adapter>(st: &AppState, io: &SocketIo<A>, op: UserOp) -> usize {
    let remote = async {
        match &st.cluster {
            Some(cluster) => cluster.ask_user_op(op.clone()).await,
            None => 0,
        }
    };
    let (here, there) = tokio::join!(apply_here(st, io, &op), remote);
    here + there
}

/// Applies a server API operation to the user's sockets on this node; how many it changed
/// (disconnected, in the room after a join, left), or for presence how many there are.
pub async fn apply_here<A: Adapter>(st: &AppState, io: &SocketIo<A>, op: &UserOp) -> usize {
    let Some(ns) = default_ns(io) else { return 0 };
    let sockets = ns.local().within(user_room(op.user())).sockets();
    let mut count = 0;
    for s in sockets {
        let Some(ses) = s.extensions.get::<SessionRef>() else {
            continue;
        };
        if ses.is_closing() {
            continue;
        }
        let changed = match op {
            UserOp::Presence { .. } => true,
            UserOp::Disconnect { .. } => disconnect(&s).await,
            // A socket at its room bound is skipped; one already in the room counts.
            UserOp::Join { room, .. } => join(st, &s, &ses, room).await.is_ok(),
            UserOp::Leave { room, .. } => leave(st, &s, &ses, room).await.is_ok(),
        };
        count += usize::from(changed);
    }
    count
}

/// Most 20 ms waits for room in a socket's send buffer before a server API disconnect gives
/// that socket up (engine.io's heartbeat closes a socket that stays full).
const DISCONNECT_TRIES: u32 = 50;

/// Disconnects a socket (`io server disconnect`), waiting a moment for room in a full send
/// buffer; whether it was disconnected.
async fn disconnect<A: Adapter>(s: &SocketRef<A>) -> bool {
    for _ in 0..DISCONNECT_TRIES {
        match s.clone().disconnect() {
            Ok(()) => return true,
            Err(socketioxide::SocketError::InternalChannelFull) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(_) => return false,
        }
    }
    false
}
