//! The `notifications` table: what backends posted for a user, and its read state.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{
    Backend, Db, Params, created_at_of, finish_page, next_id_after,
    outbox::{self, NewEvent, Record},
    probe_limit,
};
use crate::error::{AppError, Result};

/// A stored notification, as clients and backends see it (and as it travels between nodes).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// UUIDv7, usable as a cursor.
    pub id: String,
    /// The user it is for.
    pub user_id: String,
    /// Free-form kind chosen by the backend.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short title.
    pub title: String,
    /// Body text.
    pub message: String,
    /// Any JSON value, or `null`.
    pub data: serde_json::Value,
    /// RFC 3339 UTC with milliseconds.
    pub created_at: String,
    /// Whether the user marked it read.
    pub read: bool,
}

/// What a backend posts; checked before it gets here.
#[derive(Debug, Clone)]
pub struct NewNotification {
    /// The recipient.
    pub user_id: String,
    /// Free-form kind.
    pub kind: String,
    /// Short title.
    pub title: String,
    /// Body text.
    pub message: String,
    /// Any JSON value, or `null`.
    pub data: serde_json::Value,
}

const COLUMNS: &str = "id, user_id, type, title, message, data, created_at, is_read";

fn from_row(r: sqlx::any::AnyRow) -> Result<Notification, sqlx::Error> {
    let data: Option<String> = r.try_get("data")?;
    let data = match data {
        Some(text) => serde_json::from_str(&text).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        None => serde_json::Value::Null,
    };
    Ok(Notification {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        kind: r.try_get("type")?,
        title: r.try_get("title")?,
        message: r.try_get("message")?,
        data,
        created_at: r.try_get("created_at")?,
        read: r.try_get::<i64, _>("is_read")? != 0,
    })
}

fn from_rows(rows: Vec<sqlx::any::AnyRow>) -> Result<Vec<Notification>> {
    Ok(rows.into_iter().map(from_row).collect::<Result<Vec<_>, _>>()?)
}

/// A notification just stored, with the id of the user's notification before it.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The notification.
    pub notification: Notification,
    /// The user's newest notification before this one (`None`: it is the user's first).
    /// Receivers compare it with what a socket has to see that nothing lies between.
    pub prev: Option<String>,
}

/// How often [`insert`] tries again when another writer stored a newer notification of the
/// same user between its read and its write (SQLite only; PostgreSQL holds a lock).
const INSERT_ATTEMPTS: usize = 20;

/// Stores a notification (unread) and returns it with its predecessor.
///
/// The ids of one user increase in the order they are stored, whichever node stores them:
/// the id is chosen above the user's newest id at the moment of the write. On PostgreSQL a
/// transaction-scoped advisory lock per user serialises the read and the write (and makes
/// commit order equal id order, so a reader never sees a newer id before an older one). On
/// SQLite the write is one statement that inserts only if nothing newer than the id read
/// exists (the database's write lock makes that check and the insert one step); when the
/// check fails the insert is tried again with a fresh read.
pub async fn insert(db: &Db, n: NewNotification) -> Result<Stored> {
    let data = (!n.data.is_null()).then(|| n.data.to_string());
    for _ in 0..INSERT_ATTEMPTS {
        let stored = match db.backend() {
            Backend::Postgres => {
                let mut tx = db.writer().begin().await?;
                sqlx::query("SELECT 1 FROM (SELECT pg_advisory_xact_lock(hashtextextended($1, 7))) AS locked")
                    .bind(&n.user_id)
                    .execute(&mut *tx)
                    .await?;
                let stored = insert_after_newest(&mut tx, &n, data.as_deref()).await?;
                tx.commit().await?;
                stored
            }
            // No transaction: a deferred one would read first and could not take the write
            // lock afterwards once another writer committed; the insert's own check suffices.
            Backend::Sqlite => insert_after_newest(&mut *db.writer().acquire().await?, &n, data.as_deref()).await?,
        };
        if let Some(stored) = stored {
            return Ok(stored);
        }
    }
    Err(AppError::Internal(format!(
        "could not order a notification of one user after {INSERT_ATTEMPTS} attempts"
    )))
}

/// Reads the user's newest id and inserts the notification above it, unless a newer one was
/// stored in between (`None` then).
async fn insert_after_newest(
    conn: &mut sqlx::AnyConnection,
    n: &NewNotification,
    data: Option<&str>,
) -> Result<Option<Stored>> {
    let prev: Option<String> = sqlx::query("SELECT MAX(id) AS last FROM notifications WHERE user_id = $1")
        .bind(&n.user_id)
        .fetch_one(&mut *conn)
        .await?
        .try_get("last")?;
    let id = next_id_after(prev.as_deref());
    let created_at = created_at_of(id);
    let id = id.to_string();
    let inserted = sqlx::query(
        "INSERT INTO notifications (id, user_id, type, title, message, data, created_at, is_read) \
         SELECT $1, $2, $3, $4, $5, $6, $7, 0 \
         WHERE NOT EXISTS (SELECT 1 FROM notifications WHERE user_id = $2 AND id > $8)",
    )
    .bind(&id)
    .bind(&n.user_id)
    .bind(&n.kind)
    .bind(&n.title)
    .bind(&n.message)
    .bind(data)
    .bind(&created_at)
    .bind(prev.as_deref().unwrap_or(""))
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Ok(None);
    }
    let notification = Notification {
        id,
        user_id: n.user_id.clone(),
        kind: n.kind.clone(),
        title: n.title.clone(),
        message: n.message.clone(),
        data: n.data.clone(),
        created_at,
        read: false,
    };
    Ok(Some(Stored { notification, prev }))
}

/// Whether `id` names a notification of `user_id`.
async fn belongs(db: &Db, user_id: &str, id: &str) -> Result<bool> {
    let row = sqlx::query("SELECT 1 FROM notifications WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(user_id)
        .fetch_optional(db.pool())
        .await?;
    Ok(row.is_some())
}

/// One page of a user's notifications, newest first. A `before` that names no notification
/// of this user is [`AppError::NotFound`].
pub async fn page(
    db: &Db,
    user_id: &str,
    before: Option<&str>,
    limit: u32,
    unread_only: bool,
) -> Result<(Vec<Notification>, bool)> {
    if let Some(b) = before
        && !belongs(db, user_id, b).await?
    {
        return Err(AppError::NotFound);
    }
    let unread = if unread_only { " AND is_read = 0" } else { "" };
    let sql = match before {
        Some(_) => format!(
            "SELECT {COLUMNS} FROM notifications WHERE user_id = $1 AND id < $2{unread} ORDER BY id DESC LIMIT $3"
        ),
        None => format!("SELECT {COLUMNS} FROM notifications WHERE user_id = $1{unread} ORDER BY id DESC LIMIT $2"),
    };
    let mut q = sqlx::query(&sql).bind(user_id);
    if let Some(b) = before {
        q = q.bind(b);
    }
    let rows = q.bind(probe_limit(limit)).fetch_all(db.pool()).await?;
    Ok(finish_page(from_rows(rows)?, limit))
}

/// The user's notifications created after `last_id` and not after `up_to` (the newest id
/// the caller will announce), oldest first, at most `limit`. `None` when `last_id` names no
/// notification of the user (no catch-up then).
pub async fn after(
    db: &Db,
    user_id: &str,
    last_id: &str,
    up_to: &str,
    limit: u32,
) -> Result<Option<Vec<Notification>>> {
    if !belongs(db, user_id, last_id).await? {
        return Ok(None);
    }
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM notifications WHERE user_id = $1 AND id > $2 AND id <= $3 ORDER BY id ASC LIMIT $4"
    ))
    .bind(user_id)
    .bind(last_id)
    .bind(up_to)
    .bind(i64::from(limit))
    .fetch_all(db.pool())
    .await?;
    Ok(Some(from_rows(rows)?))
}

/// For each `(user, cursor)`, that user's notifications after `cursor` (`None`: all of them),
/// oldest first, at most `limit + 1` each (one more than asked, so the caller learns that more
/// remain), in one query. The result is sorted by user, then id.
pub async fn after_each(db: &Db, cursors: &[(String, Option<String>)], limit: u32) -> Result<Vec<Notification>> {
    if cursors.is_empty() {
        return Ok(Vec::new());
    }
    let parts: Vec<String> = (0..cursors.len())
        .map(|i| {
            format!(
                "SELECT * FROM (SELECT {COLUMNS} FROM notifications WHERE user_id = ${} AND id > ${} \
                 ORDER BY id ASC LIMIT {}) AS r{i}",
                2 * i + 1,
                2 * i + 2,
                probe_limit(limit)
            )
        })
        .collect();
    let sql = parts.join(" UNION ALL ");
    let mut q = sqlx::query(&sql);
    for (user, cursor) in cursors {
        q = q.bind(user.as_str()).bind(cursor.as_deref().unwrap_or(""));
    }
    let mut rows = from_rows(q.fetch_all(db.pool()).await?)?;
    rows.sort_by(|a, b| (a.user_id.as_str(), a.id.as_str()).cmp(&(b.user_id.as_str(), b.id.as_str())));
    Ok(rows)
}

/// Every user that has at least one notification (read once at start; see
/// [`super::summary_reader::SummaryReader::load_users`]).
pub async fn users_with_notifications(db: &Db) -> Result<Vec<String>> {
    let rows = sqlx::query("SELECT DISTINCT user_id FROM notifications")
        .fetch_all(db.pool())
        .await?;
    rows.into_iter()
        .map(|r| Ok(r.try_get::<String, _>("user_id")?))
        .collect()
}

/// The newest notification id of every user who got one with an id above `floor`, in one
/// query over the primary key (the nodes' safety net: see `crate::repair`).
pub async fn heads_since(db: &Db, floor: &str) -> Result<Vec<(String, String)>> {
    let rows = sqlx::query("SELECT user_id, MAX(id) AS head FROM notifications WHERE id > $1 GROUP BY user_id")
        .bind(floor)
        .fetch_all(db.pool())
        .await?;
    rows.into_iter()
        .map(|r| Ok((r.try_get::<String, _>("user_id")?, r.try_get::<String, _>("head")?)))
        .collect()
}

/// Marks the given ids of the user read. Returns how many went from unread to read, and
/// which of the ids belong to the user (in request order, without repeats). When `record`
/// asks for it and any changed, a `notifications.read` webhook event is stored in the same
/// transaction, and returned.
pub async fn mark_read(
    db: &Db,
    user_id: &str,
    ids: &[String],
    record: Record,
) -> Result<(u64, Vec<String>, Option<NewEvent>)> {
    if ids.is_empty() {
        // `IN ()` is not SQL everywhere; nothing to mark either way.
        return Ok((0, Vec::new(), None));
    }
    let mut ids_unique: Vec<&String> = Vec::with_capacity(ids.len());
    for id in ids {
        if !ids_unique.contains(&id) {
            ids_unique.push(id);
        }
    }
    // The user's placeholder, then the list: the same numbering in both statements.
    let mut params = Params::new(db.backend());
    let (user, list) = (params.one(), params.list(ids_unique.len()));

    let mut tx = db.writer().begin().await?;
    let select_sql = format!("SELECT id FROM notifications WHERE user_id = {user} AND id IN ({list})");
    let mut owned_q = sqlx::query(&select_sql).bind(user_id);
    for id in &ids_unique {
        owned_q = owned_q.bind(id.as_str());
    }
    let owned: Vec<String> = owned_q
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|r| r.try_get::<String, _>("id"))
        .collect::<Result<_, _>>()?;
    let update_sql =
        format!("UPDATE notifications SET is_read = 1 WHERE user_id = {user} AND is_read = 0 AND id IN ({list})");
    let mut update = sqlx::query(&update_sql).bind(user_id);
    for id in &ids_unique {
        update = update.bind(id.as_str());
    }
    let updated = update.execute(&mut *tx).await?.rows_affected();
    let owned_in_order: Vec<String> = ids_unique
        .into_iter()
        .filter(|id| owned.contains(id))
        .cloned()
        .collect();
    let mut event = None;
    if updated > 0 {
        let data = serde_json::json!({ "userId": user_id, "ids": owned_in_order });
        event = record_read(&mut tx, record, data).await?;
    }
    tx.commit().await?;
    Ok((updated, owned_in_order, event))
}

/// Marks every notification of the user read; returns how many changed. When `record` asks
/// for it and any did, a `notifications.read` webhook event is stored in the same
/// transaction, and returned.
pub async fn mark_all_read(db: &Db, user_id: &str, record: Record) -> Result<(u64, Option<NewEvent>)> {
    let mut tx = db.writer().begin().await?;
    let done = sqlx::query("UPDATE notifications SET is_read = 1 WHERE user_id = $1 AND is_read = 0")
        .bind(user_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let mut event = None;
    if done > 0 {
        event = record_read(&mut tx, record, serde_json::json!({ "userId": user_id, "all": true })).await?;
    }
    tx.commit().await?;
    Ok((done, event))
}

/// Stores a `notifications.read` webhook event in the transaction of its change, as `record`
/// says.
async fn record_read(
    tx: &mut sqlx::AnyConnection,
    record: Record,
    data: serde_json::Value,
) -> Result<Option<NewEvent>> {
    let Some(event) = outbox::event_for(record, "notifications.read", data) else {
        return Ok(None);
    };
    outbox::insert_in(tx, &event, crate::clock::unix_millis() as i64).await?;
    Ok(Some(event))
}

/// What `registered` tells about a user's notifications.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// How many are unread.
    pub unread: i64,
    /// The id of the newest one, if any.
    pub latest_id: Option<String>,
}

/// The unread count and newest id of one user.
pub async fn summary(db: &Db, user_id: &str) -> Result<Summary> {
    let mut found = summaries(db, &[user_id]).await?;
    Ok(found.remove(user_id).unwrap_or_default())
}

/// The unread count and newest id of each of `users` (at most a few dozen), in one query;
/// users without notifications are absent from the map.
pub async fn summaries(db: &Db, users: &[&str]) -> Result<HashMap<String, Summary>> {
    if users.is_empty() {
        return Ok(HashMap::new());
    }
    let values: Vec<String> = (1..=users.len()).map(|i| format!("(${i})")).collect();
    let sql = format!(
        "SELECT u.column1 AS user_id, \
                (SELECT COUNT(*) FROM notifications WHERE user_id = u.column1 AND is_read = 0) AS unread, \
                (SELECT id FROM notifications WHERE user_id = u.column1 ORDER BY id DESC LIMIT 1) AS latest \
         FROM (VALUES {}) AS u",
        values.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for user in users {
        query = query.bind(*user);
    }
    let rows = query.fetch_all(db.pool()).await?;
    let mut found = HashMap::with_capacity(rows.len());
    for row in rows {
        let latest_id = row.try_get::<Option<String>, _>("latest")?;
        let unread = row.try_get::<i64, _>("unread")?;
        if latest_id.is_some() {
            found.insert(row.try_get::<String, _>("user_id")?, Summary { unread, latest_id });
        }
    }
    Ok(found)
}
