//! The `messages` table: chat messages of client rooms.

use std::sync::LazyLock;

use serde::Serialize;
use sqlx::Row;

use super::{Backend, Db, finish_page, new_id_and_time, outbox, probe_limit};
use crate::error::{AppError, Result};

/// A stored chat message, as clients see it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// UUIDv7, usable as a `before` cursor.
    pub id: String,
    /// The room it was sent to.
    pub room_id: String,
    /// The sender.
    pub user_id: String,
    /// The text, unchanged.
    pub text: String,
    /// RFC 3339 UTC with milliseconds.
    pub created_at: String,
}

fn from_row(r: sqlx::any::AnyRow) -> Result<Message, sqlx::Error> {
    Ok(Message {
        id: r.try_get("id")?,
        room_id: r.try_get("room_id")?,
        user_id: r.try_get("user_id")?,
        text: r.try_get("text")?,
        created_at: r.try_get("created_at")?,
    })
}

/// The insert of one message.
const INSERT: &str = "INSERT INTO messages (id, room_id, user_id, text, created_at) VALUES ($1, $2, $3, $4, $5)";
/// A message and its event in one round trip, all or nothing, on SQLite: a script in a
/// transaction. Written once, not per message.
static WITH_EVENT_SQLITE: LazyLock<String> =
    LazyLock::new(|| format!("BEGIN IMMEDIATE; {INSERT}; {}; COMMIT;", outbox::insert_sql(6)));
/// The same on PostgreSQL: one statement, the message's insert as a `WITH` clause.
static WITH_EVENT_POSTGRES: LazyLock<String> =
    LazyLock::new(|| format!("WITH message AS ({INSERT}) {}", outbox::insert_sql(6)));

/// Stores a message and returns it, with its `message.created` webhook event when `record`
/// asks for one (stored in the same transaction).
pub async fn insert(
    db: &Db,
    room_id: &str,
    user_id: &str,
    text: &str,
    record: outbox::Record,
) -> Result<(Message, Option<outbox::NewEvent>)> {
    let (id, created_at) = new_id_and_time();
    let msg = Message {
        id,
        room_id: room_id.into(),
        user_id: user_id.into(),
        text: text.into(),
        created_at,
    };
    let Some(event) = outbox::event_for(
        record,
        "message.created",
        serde_json::to_value(&msg).unwrap_or_default(),
    ) else {
        bind_message(sqlx::query(INSERT), &msg).execute(db.writer()).await?;
        return Ok((msg, None));
    };
    let sql: &'static str = match db.backend() {
        Backend::Sqlite => &WITH_EVENT_SQLITE,
        Backend::Postgres => &WITH_EVENT_POSTGRES,
    };
    let now_ms = crate::clock::unix_millis() as i64;
    let both = outbox::bind_event(bind_message(sqlx::query(sql), &msg), &event, now_ms);
    match db.backend() {
        Backend::Sqlite => db.sqlite_script(both).await?,
        Backend::Postgres => {
            both.execute(db.writer()).await?;
        }
    }
    Ok((msg, Some(event)))
}

/// Binds the values of [`INSERT`] (`$1` to `$5`).
fn bind_message<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    msg: &'q Message,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    query
        .bind(msg.id.as_str())
        .bind(msg.room_id.as_str())
        .bind(msg.user_id.as_str())
        .bind(msg.text.as_str())
        .bind(msg.created_at.as_str())
}

/// One page of a room's messages, newest first, older than `before` when given.
/// A `before` that names no message of this room is [`AppError::NotFound`].
pub async fn page(db: &Db, room_id: &str, before: Option<&str>, limit: u32) -> Result<(Vec<Message>, bool)> {
    let rows = match before {
        Some(before) => {
            let exists = sqlx::query("SELECT 1 FROM messages WHERE id = $1 AND room_id = $2")
                .bind(before)
                .bind(room_id)
                .fetch_optional(db.pool())
                .await?;
            if exists.is_none() {
                return Err(AppError::NotFound);
            }
            sqlx::query(
                "SELECT id, room_id, user_id, text, created_at FROM messages \
                 WHERE room_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
            )
            .bind(room_id)
            .bind(before)
            .bind(probe_limit(limit))
            .fetch_all(db.pool())
            .await?
        }
        None => {
            sqlx::query(
                "SELECT id, room_id, user_id, text, created_at FROM messages \
                 WHERE room_id = $1 ORDER BY id DESC LIMIT $2",
            )
            .bind(room_id)
            .bind(probe_limit(limit))
            .fetch_all(db.pool())
            .await?
        }
    };
    let rows = rows.into_iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    Ok(finish_page(rows, limit))
}
