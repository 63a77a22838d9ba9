//! `sendMessage`, `getMessages` and `typing`: chat in client rooms.

use serde::Serialize;
use socketioxide::{
    adapter::Adapter,
    extract::{SocketRef, State},
};

use super::{
    begin,
    reply::{Args, Reply},
    rooms::{client_room, require_member},
};
use crate::{
    db::messages::{self, Message},
    dto::{GetMessagesArgs, RoomArgs, SendMessageArgs, parse},
    error::{AppError, Result},
    node::AppState,
    service::{self, messages::MessagePage, rooms::RoomUser},
};

/// `sendMessage { roomId, text }`: stored, then `newMessage` to the whole room.
pub async fn send<A: Adapter>(s: SocketRef<A>, Args(arg): Args, reply: Reply<A>, State(st): State<AppState>) {
    let result = send_message(&s, arg, &st).await;
    reply.send(&s, result);
}

async fn send_message<A: Adapter>(s: &SocketRef<A>, arg: Option<serde_json::Value>, st: &AppState) -> Result<Message> {
    let ses = begin(s).await?;
    let args: SendMessageArgs = parse(arg)?;
    let room = client_room(RoomArgs { room_id: args.room_id })?;
    require_member(s, &room)?;
    let text = args.text.ok_or_else(|| AppError::field("text", "is required"))?;
    let storing = st.webhooks_for("message.created").map(|hooks| hooks.before_store());
    let record = storing.as_ref().map(|s| s.record()).unwrap_or_default();
    let (msg, event) = messages::insert(&st.db, &room, &ses.user_id, &text, record).await?;
    if let Some(storing) = storing {
        storing.stored(event);
    }
    if let Err(e) = s.within(room).emit("newMessage", &msg).await {
        tracing::warn!(cause = %e, "newMessage broadcast failed");
    }
    Ok(msg)
}

/// `getMessages { roomId, limit?, before? }`: members only.
pub async fn history<A: Adapter>(s: SocketRef<A>, Args(arg): Args, reply: Reply<A>, State(st): State<AppState>) {
    let result = get_messages(&s, arg, &st).await;
    reply.send(&s, result);
}

async fn get_messages<A: Adapter>(
    s: &SocketRef<A>,
    arg: Option<serde_json::Value>,
    st: &AppState,
) -> Result<MessagePage> {
    begin(s).await?;
    let args: GetMessagesArgs = parse(arg)?;
    let room = client_room(RoomArgs {
        room_id: args.room_id.clone(),
    })?;
    require_member(s, &room)?;
    service::messages::page(st, &room, &args).await
}

/// `typing { roomId }`: a volatile `typing` to the other sockets of the room; not stored.
pub async fn typing<A: Adapter>(s: SocketRef<A>, Args(arg): Args, reply: Reply<A>) {
    let result = send_typing(&s, arg).await;
    reply.send(&s, result);
}

/// The empty object of `typing`'s ack.
#[derive(Debug, Serialize)]
pub struct Empty {}

async fn send_typing<A: Adapter>(s: &SocketRef<A>, arg: Option<serde_json::Value>) -> Result<Empty> {
    let ses = begin(s).await?;
    let room = client_room(parse(arg)?)?;
    require_member(s, &room)?;
    let payload = RoomUser {
        room_id: &room,
        user_id: &ses.user_id,
    };
    if let Err(e) = s.to(room.clone()).volatile().emit("typing", &payload).await {
        tracing::debug!(cause = %e, "typing not sent");
    }
    Ok(Empty {})
}
