//! `joinRoom`, `leaveRoom`, `getRoomMembers`, and the `userJoined`/`userLeft` announcements.

use serde::Serialize;
use socketioxide::{
    SocketIo,
    adapter::Adapter,
    extract::{SocketRef, State},
};

use super::{
    begin,
    reply::{Args, Reply},
};
use crate::{
    auth::room_allowed,
    dto::{RoomArgs, parse},
    error::{AppError, Result},
    node::AppState,
    node::session::{SessionRef, USER_ROOM_PREFIX},
    service::{
        self, Member,
        rooms::{self, RoomRef},
    },
};

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
    if rooms::is_member(s, room) {
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
    rooms::join(st, s, &ses, &room).await?;
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
    rooms::leave(st, s, &ses, &room).await?;
    Ok(RoomRef { room_id: room })
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
