//! `POST /api/notifications` (service), `GET /api/notifications` and
//! `POST /api/notifications/read` (user).

use std::collections::HashMap;

use axum::{
    Json,
    extract::{Query, State},
    http::StatusCode,
};
use socketioxide::adapter::Adapter;

use super::{
    HttpState,
    extract::{ApiKey, UserAuth, ValidatedJson, page_query},
};
use crate::{
    db::notifications::{NewNotification, Notification},
    dto::{self, CreateNotificationArgs, ListNotificationsArgs, MarkReadArgs},
    error::{AppError, Result},
    service,
    socket::notifications::{NotificationPage, Updated, page},
};

/// Stores a notification, then pushes it to the user's sockets: 201 with the notification.
pub async fn create<A: Adapter>(
    State(st): State<HttpState<A>>,
    _key: ApiKey,
    ValidatedJson(args): ValidatedJson<CreateNotificationArgs>,
) -> Result<(StatusCode, Json<Notification>)> {
    let new = NewNotification {
        user_id: args.user_id.unwrap_or_default(),
        kind: args.kind.unwrap_or_default(),
        title: args.title.unwrap_or_default(),
        message: args.message.unwrap_or_default(),
        data: args.data.unwrap_or(serde_json::Value::Null),
    };
    let n = service::create_notification(&st.app, &st.io, new).await?;
    Ok((StatusCode::CREATED, Json(n)))
}

/// The caller's notifications, newest first: `?limit&before&unreadOnly`.
pub async fn list<A: Adapter>(
    State(st): State<HttpState<A>>,
    UserAuth(user): UserAuth,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<NotificationPage>> {
    let args = list_args(&q)?;
    Ok(Json(page(&st.app, &user, args).await?))
}

/// Query strings are text: numbers and booleans are read here, then checked like the socket's.
fn list_args(q: &HashMap<String, String>) -> Result<ListNotificationsArgs> {
    let mut v = page_query(q)?;
    if let Some(u) = q.get("unreadOnly") {
        // `?unreadOnly` alone (or empty) means true, as a flag does.
        let flag = match u.to_ascii_lowercase().as_str() {
            "" | "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            _ => return Err(AppError::field("unreadOnly", "must be true or false")),
        };
        v.insert("unreadOnly".into(), flag.into());
    }
    dto::parse(Some(serde_json::Value::Object(v)))
}

/// Marks the caller's notifications read: 200 `{ updated }`, and `notificationsRead` to every
/// socket of the user.
pub async fn mark_read<A: Adapter>(
    State(st): State<HttpState<A>>,
    UserAuth(user): UserAuth,
    ValidatedJson(args): ValidatedJson<MarkReadArgs>,
) -> Result<Json<Updated>> {
    let updated = service::mark_read(&st.app, &st.io, &user, args.into_request()).await?;
    Ok(Json(Updated { updated }))
}
