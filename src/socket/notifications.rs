//! `listNotifications` and `markRead`: a user's notifications over the socket.

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
    db::notifications::{self, Notification},
    dto::{ListNotificationsArgs, MarkReadArgs, page_size, parse},
    error::Result,
    node::AppState,
    service,
};

/// A page of notifications, newest first.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationPage {
    /// Newest first.
    pub notifications: Vec<Notification>,
    /// Whether older ones remain.
    pub has_more: bool,
}

/// Reads one page of the user's notifications; shared with `GET /api/notifications`.
pub async fn page(st: &AppState, user_id: &str, args: ListNotificationsArgs) -> Result<NotificationPage> {
    let (notifications, has_more) = notifications::page(
        &st.db,
        user_id,
        args.cursor()?,
        page_size(args.limit),
        args.unread_only.unwrap_or(false),
    )
    .await?;
    Ok(NotificationPage {
        notifications,
        has_more,
    })
}

/// `listNotifications { limit?, before?, unreadOnly? }`.
pub async fn list<A: Adapter>(s: SocketRef<A>, Args(arg): Args, reply: Reply<A>, State(st): State<AppState>) {
    let result = async {
        let ses = begin(&s).await?;
        page(&st, &ses.user_id, parse(arg)?).await
    }
    .await;
    reply.send(&s, result);
}

/// `markRead`'s answer.
#[derive(Debug, Serialize)]
pub struct Updated {
    /// Rows that went from unread to read.
    pub updated: u64,
}

/// `markRead { ids }` or `{ all: true }`: then `notificationsRead` to all the user's sockets.
pub async fn mark_read<A: Adapter>(
    s: SocketRef<A>,
    Args(arg): Args,
    reply: Reply<A>,
    State(st): State<AppState>,
    io: SocketIo<A>,
) {
    let result = async {
        let ses = begin(&s).await?;
        let args: MarkReadArgs = parse(arg)?;
        let updated = service::mark_read(&st, &io, &ses.user_id, args.into_request()).await?;
        Ok(Updated { updated })
    }
    .await;
    reply.send(&s, result);
}
