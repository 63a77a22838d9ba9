//! `joinRoom`, `leaveRoom`, `getRoomMembers`, and the `userJoined`/`userLeft` announcements.

use serde::Serialize;
use socketioxide::{
    SocketIo,
    adapter::Adapter,
    extract::{SocketRef, State},
};

use super::{
    begin, client_rooms,
    reply::{Args, Reply},
};
use crate::{
    auth::room_allowed,
    dto::{RoomArgs, parse},
    error::{AppError, Result},
    node::session::{SessionRef, USER_ROOM_PREFIX},
    node::{AppState, activity::Activity},
    service::{self, Member},
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

/// The checked room of a room event; `user:` rooms are never a client's to use.
pub fn client_room(args: RoomArgs) -> Result<String> {
    let room = args.room_id.ok_or_else(|| AppError::field("roomId", "is required"))?;
    if room.starts_with(USER_ROOM_PREFIX) {
        return Err(AppError::Forbidden);
    }
    Ok(room)
}

/// Refuses unless the socket is in `room`.
pub fn require_member<A: Adapter>(s: &SocketRef<A>, room: &str) -> Result<()> {
    if s.rooms().iter().any(|r| r == room) {
        Ok(())
    } else {
        Err(AppError::NotMember)
    }
}

/// `joinRoom { roomId }`.
pub async fn join<A: Adapter>(s: SocketRef<A>, Args(arg): Args, reply: Reply<A>, State(st): State<AppState>) {
    let result = join_room(&s, arg, &st).await;
    reply.send(&s, result);
}

async fn join_room<A: Adapter>(s: &SocketRef<A>, arg: Option<serde_json::Value>, st: &AppState) -> Result<RoomRef> {
    let ses = begin(s).await?;
    let room = client_room(parse(arg)?)?;
    check_claim(&ses, st, &room)?;
    // Check and join in one step per socket: two joins of one room must not both join it, and
    // joins of different rooms must not pass the bound together.
    let joined = ses.with_counted_rooms(|counted| -> Result<Option<usize>> {
        if ses.is_closing() {
            // The disconnect has taken (or is about to take) the counted rooms back.
            return Err(AppError::Unavailable("socket"));
        }
        if s.rooms().iter().any(|r| *r == room) {
            return Ok(None);
        }
        if client_rooms(s).len() >= st.cfg.max_rooms_per_socket {
            return Err(AppError::LimitExceeded);
        }
        s.join(room.clone());
        counted.push(room.clone());
        Ok(Some(st.room_sizes.joined(&room)))
    })?;
    let Some(size) = joined else {
        return Ok(RoomRef { room_id: room });
    };
    st.activity.offer(|| Activity::RoomJoined {
        room: room.clone(),
        sid: s.id,
    });
    let _ = s.emit("joinedRoom", &RoomRef { room_id: room.clone() });
    announce(s, st, &room, size, "userJoined", &ses.user_id).await;
    Ok(RoomRef { room_id: room })
}

fn check_claim(ses: &SessionRef, st: &AppState, room: &str) -> Result<()> {
    match ses.grant().rooms {
        Some(patterns) if !room_allowed(&patterns, room) => Err(AppError::Forbidden),
        None if st.cfg.rooms_require_claim => Err(AppError::Forbidden),
        _ => Ok(()),
    }
}

/// `leaveRoom { roomId }`.
pub async fn leave<A: Adapter>(s: SocketRef<A>, Args(arg): Args, reply: Reply<A>, State(st): State<AppState>) {
    let result = leave_room(&s, arg, &st).await;
    reply.send(&s, result);
}

async fn leave_room<A: Adapter>(s: &SocketRef<A>, arg: Option<serde_json::Value>, st: &AppState) -> Result<RoomRef> {
    let ses = begin(s).await?;
    let room = client_room(parse(arg)?)?;
    // Check and leave in one step per socket, as joins do: two leaves announce once.
    let size = ses.with_counted_rooms(|counted| -> Result<usize> {
        require_member(s, &room)?;
        // Counted while the leaver is still in, as the join was: a room announces symmetrically.
        let size = st.room_sizes.size(&room);
        s.leave(room.clone());
        let before = counted.len();
        counted.retain(|r| *r != room);
        if counted.len() != before {
            st.room_sizes.left(&room);
        }
        Ok(size)
    })?;
    announce(s, st, &room, size, "userLeft", &ses.user_id).await;
    st.activity.offer(|| Activity::RoomLeft {
        room: room.clone(),
        sid: s.id,
    });
    let _ = s.emit("leftRoom", &RoomRef { room_id: room.clone() });
    Ok(RoomRef { room_id: room })
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

/// `getRoomMembers` answer.
#[derive(Debug, Serialize)]
pub struct Members {
    /// One entry per user, with the number of their sockets in the room.
    pub members: Vec<Member>,
}

/// `getRoomMembers { roomId }`: members on every node, with their connection counts.
pub async fn members<A: Adapter>(
    s: SocketRef<A>,
    Args(arg): Args,
    reply: Reply<A>,
    io: SocketIo<A>,
    State(st): State<AppState>,
) {
    let result = room_members(&s, arg, &io, &st).await;
    reply.send(&s, result);
}

async fn room_members<A: Adapter>(
    s: &SocketRef<A>,
    arg: Option<serde_json::Value>,
    io: &SocketIo<A>,
    st: &AppState,
) -> Result<Members> {
    begin(s).await?;
    let room = client_room(parse(arg)?)?;
    require_member(s, &room)?;
    Ok(Members {
        members: service::all_room_members(st, io, &room).await,
    })
}
