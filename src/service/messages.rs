//! Reading a room's message history, for `getMessages` and the server API alike.

use serde::Serialize;

use crate::{
    db::messages::{self, Message},
    dto::{GetMessagesArgs, page_size},
    error::Result,
    node::AppState,
};

/// `getMessages` answer, and `GET /api/rooms/{roomId}/messages`'s.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessagePage {
    /// Newest first.
    pub messages: Vec<Message>,
    /// Whether older messages remain.
    pub has_more: bool,
}

/// One page of `room`'s messages, newest first, older than `args.before` when given
/// (`not_found` when it names no message of the room).
pub async fn page(st: &AppState, room: &str, args: &GetMessagesArgs) -> Result<MessagePage> {
    let (messages, has_more) = messages::page(&st.db, room, args.cursor()?, page_size(args.limit)).await?;
    Ok(MessagePage { messages, has_more })
}
