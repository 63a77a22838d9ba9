//! The server API (contract section 10.1): a backend, with a service key, disconnects a
//! user's sockets, joins them to rooms or takes them out, and reads members, presence and
//! history, on every node. Each call goes through the same service functions as the socket
//! events.

use axum::{
    Json,
    extract::{FromRequestParts, Path, Query, State},
    http::request::Parts,
};
use serde::Serialize;
use socketioxide::adapter::Adapter;
use std::collections::HashMap;

use super::{
    HttpState,
    extract::{ApiKey, ValidatedJson, page_query},
};
use crate::{
    cluster::UserOp,
    dto::{self, GetMessagesArgs, UserArgs},
    error::{AppError, Result},
    node::session::USER_ROOM_PREFIX,
    service::{self, Member, messages::MessagePage, rooms},
};

/// A `{roomId}` path segment that names a client room: 422 under `roomId` when it breaks the
/// rules of room ids, 403 for a `user:` room.
pub struct RoomPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RoomPath {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, st: &S) -> Result<Self> {
        let room = segment(parts, st, "roomId").await?;
        if room.starts_with(USER_ROOM_PREFIX) {
            return Err(AppError::Forbidden);
        }
        dto::valid_room_id(&room).map_err(|e| AppError::field("roomId", e.to_string()))?;
        Ok(RoomPath(room))
    }
}

/// A `{userId}` path segment: 422 under `userId` when it is not a valid user id.
pub struct UserPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for UserPath {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, st: &S) -> Result<Self> {
        let user = segment(parts, st, "userId").await?;
        dto::valid_user_id(&user).map_err(|e| AppError::field("userId", e.to_string()))?;
        Ok(UserPath(user))
    }
}

/// The route's one path parameter, percent-decoded; a segment that does not decode to text is
/// a validation failure of `field`.
async fn segment<S: Send + Sync>(parts: &mut Parts, st: &S, field: &str) -> Result<String> {
    Path::<String>::from_request_parts(parts, st)
        .await
        .map(|Path(v)| v)
        .map_err(|_| AppError::field(field, "must be valid percent-encoded UTF-8"))
}

/// `{ disconnected }`.
#[derive(Debug, Serialize)]
pub struct Disconnected {
    /// Sockets disconnected, on every node.
    pub disconnected: usize,
}

/// `{ sockets }`.
#[derive(Debug, Serialize)]
pub struct Sockets {
    /// Sockets that joined (or were already in) the room, or that left it, on every node.
    pub sockets: usize,
}

/// `{ members }`.
#[derive(Debug, Serialize)]
pub struct Members {
    /// One entry per user, with the number of their sockets in the room, by user id.
    pub members: Vec<Member>,
}

/// `{ userId, online, connections }`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Presence {
    /// The user.
    pub user_id: String,
    /// Whether any socket of the user is connected, on any node.
    pub online: bool,
    /// How many, on every node.
    pub connections: usize,
}

/// `POST /api/users/{userId}/disconnect`.
pub async fn disconnect<A: Adapter>(
    State(st): State<HttpState<A>>,
    _key: ApiKey,
    UserPath(user): UserPath,
) -> Json<Disconnected> {
    let disconnected = rooms::apply_everywhere(&st.app, &st.io, UserOp::Disconnect { user }).await;
    Json(Disconnected { disconnected })
}

/// `POST /api/rooms/{roomId}/join` `{ userId }`: no `rooms` claim check; sockets at their
/// room bound are skipped.
pub async fn join<A: Adapter>(
    State(st): State<HttpState<A>>,
    _key: ApiKey,
    RoomPath(room): RoomPath,
    ValidatedJson(args): ValidatedJson<UserArgs>,
) -> Json<Sockets> {
    let user = args.user_id.unwrap_or_default();
    let sockets = rooms::apply_everywhere(&st.app, &st.io, UserOp::Join { user, room }).await;
    Json(Sockets { sockets })
}

/// `POST /api/rooms/{roomId}/leave` `{ userId }`.
pub async fn leave<A: Adapter>(
    State(st): State<HttpState<A>>,
    _key: ApiKey,
    RoomPath(room): RoomPath,
    ValidatedJson(args): ValidatedJson<UserArgs>,
) -> Json<Sockets> {
    let user = args.user_id.unwrap_or_default();
    let sockets = rooms::apply_everywhere(&st.app, &st.io, UserOp::Leave { user, room }).await;
    Json(Sockets { sockets })
}

/// `GET /api/rooms/{roomId}/members`.
pub async fn members<A: Adapter>(
    State(st): State<HttpState<A>>,
    _key: ApiKey,
    RoomPath(room): RoomPath,
) -> Json<Members> {
    Json(Members {
        members: service::all_room_members(&st.app, &st.io, &room).await,
    })
}

/// `GET /api/users/{userId}/presence`.
pub async fn presence<A: Adapter>(
    State(st): State<HttpState<A>>,
    _key: ApiKey,
    UserPath(user): UserPath,
) -> Json<Presence> {
    let connections = rooms::apply_everywhere(&st.app, &st.io, UserOp::Presence { user: user.clone() }).await;
    Json(Presence {
        user_id: user,
        online: connections > 0,
        connections,
    })
}

/// `GET /api/rooms/{roomId}/messages?limit&before`, as `getMessages`.
pub async fn messages<A: Adapter>(
    State(st): State<HttpState<A>>,
    _key: ApiKey,
    RoomPath(room): RoomPath,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<MessagePage>> {
    let args = history_args(&room, &q)?;
    Ok(Json(service::messages::page(&st.app, &room, &args).await?))
}

/// `getMessages`'s arguments from the path's room and the query's paging parameters.
fn history_args(room: &str, q: &HashMap<String, String>) -> Result<GetMessagesArgs> {
    let mut v = page_query(q)?;
    v.insert("roomId".into(), room.into());
    dto::parse(Some(serde_json::Value::Object(v)))
}
