//! The `webhook_outbox` table: webhook events stored until a node has delivered them
//! (contract section 10.3; the delivery itself is `crate::webhooks`).
//!
//! Events are written in the transaction of the change that caused them where there is one
//! (`message.created`, `notifications.read`), else in batches. A node claims due rows with a
//! lease; on PostgreSQL `FOR UPDATE SKIP LOCKED` lets nodes claim side by side without waiting
//! for each other, on SQLite the single writer makes the claim atomic. A node that will deliver
//! an event at once stores it already leased to itself ([`Record::Leased`]), which saves the
//! claim; deliveries are marked done in batches ([`finish_all`]).

use std::sync::{Arc, LazyLock};

use sqlx::{AnyConnection, Row};

use super::{Backend, Db, Params, new_id_and_time, placeholders};
use crate::error::Result;

/// A stored event, as a node claimed it.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    /// The event's id (UUIDv7), the same on every try.
    pub id: String,
    /// Its type (`user.online`, `message.created`, …).
    pub kind: String,
    /// RFC 3339 UTC with milliseconds.
    pub created_at: String,
    /// The event's `data`, as JSON text.
    pub data: String,
    /// Tries before this one.
    pub attempts: i64,
    /// Until when the claim holds it (Unix milliseconds).
    pub lease_until_ms: i64,
}

/// A lease taken when an event is stored: the node `owner` delivers it, until `until_ms`.
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    /// The node's name in leases.
    pub owner: Arc<str>,
    /// Unix milliseconds.
    pub until_ms: i64,
}

/// How a change stores its webhook event.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Record {
    /// No event: webhooks are off, or this type is not wanted.
    #[default]
    Skip,
    /// Stored due, for the delivery loop of any node to claim.
    Due,
    /// Stored already leased to the node that stores it, which delivers it at once.
    Leased(Lease),
}

/// An event to store: its type and `data`.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The type.
    pub kind: &'static str,
    /// The `data` object, as JSON text.
    pub data: String,
    /// The event's id (UUIDv7) and `createdAt`, taken when it happened.
    pub id_and_time: (String, String),
    /// Stored leased to a node, or due for any.
    pub lease: Option<Lease>,
}

impl NewEvent {
    /// An event that happens now, stored due.
    pub fn now(kind: &'static str, data: serde_json::Value) -> Self {
        Self {
            kind,
            data: data.to_string(),
            id_and_time: new_id_and_time(),
            lease: None,
        }
    }
}

/// A stored event as its delivery takes it (no try yet), its text moved, not copied.
impl From<NewEvent> for Claimed {
    fn from(event: NewEvent) -> Self {
        let (id, created_at) = event.id_and_time;
        Claimed {
            id,
            kind: event.kind.to_string(),
            created_at,
            data: event.data,
            attempts: 0,
            lease_until_ms: event.lease.map_or(0, |l| l.until_ms),
        }
    }
}

/// The columns an insert sets, in the order of [`bind_event`].
const COLUMNS: &str =
    "INSERT INTO webhook_outbox (id, type, created_at, data, next_attempt_at, lease_owner, lease_until)";
/// Values bound per event.
const PER_EVENT: usize = 7;
/// A retried batch finds the rows it stored before its answer was lost: kept as they are.
const ON_CONFLICT: &str = "ON CONFLICT (id) DO NOTHING";
/// Most events in one insert statement (7 values each, far below both engines' limits).
const ROWS_PER_INSERT: usize = 256;

/// The statement storing one event, its values from `$first` on (so that it can follow other
/// statements in one SQLite script).
pub(crate) fn insert_sql(first: usize) -> String {
    format!("{COLUMNS} VALUES ({}) {ON_CONFLICT}", placeholders(first, PER_EVENT))
}

/// Binds the values of `event` in [`COLUMNS`] order.
pub(crate) fn bind_event<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    event: &'q NewEvent,
    now_ms: i64,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    let (owner, until) = match &event.lease {
        Some(lease) => (Some(lease.owner.to_string()), lease.until_ms),
        None => (None, 0),
    };
    query
        .bind(event.id_and_time.0.as_str())
        .bind(event.kind)
        .bind(event.id_and_time.1.as_str())
        .bind(event.data.as_str())
        .bind(now_ms)
        .bind(owner)
        .bind(until)
}

/// The statement storing one event on its own, written once.
static INSERT_ONE: LazyLock<String> = LazyLock::new(|| insert_sql(1));

/// Stores one event on `conn` (inside the caller's transaction).
pub async fn insert_in(conn: &mut AnyConnection, event: &NewEvent, now_ms: i64) -> Result<()> {
    bind_event(sqlx::query(&INSERT_ONE), event, now_ms)
        .execute(conn)
        .await?;
    Ok(())
}

/// The event a change stores, per `record`: `None` for [`Record::Skip`].
pub fn event_for(record: Record, kind: &'static str, data: serde_json::Value) -> Option<NewEvent> {
    let lease = match record {
        Record::Skip => return None,
        Record::Due => None,
        Record::Leased(lease) => Some(lease),
    };
    Some(NewEvent {
        lease,
        ..NewEvent::now(kind, data)
    })
}

/// Stores events, up to 256 in one statement (each statement is atomic; a
/// batch cut in two by a failure is retried whole, and the rows already stored are kept once).
pub async fn insert_all(db: &Db, events: &[NewEvent], now_ms: i64) -> Result<()> {
    for chunk in events.chunks(ROWS_PER_INSERT) {
        let mut params = Params::new(db.backend());
        let values: Vec<String> = (0..chunk.len())
            .map(|_| format!("({})", params.list(PER_EVENT)))
            .collect();
        let sql = format!("{COLUMNS} VALUES {} {ON_CONFLICT}", values.join(", "));
        let mut query = sqlx::query(&sql);
        for event in chunk {
            query = bind_event(query, event, now_ms);
        }
        query.execute(db.writer()).await?;
    }
    Ok(())
}

/// Claims up to `limit` due events for `owner` until `now_ms + lease_ms`: rows not done,
/// due, and not leased by a node whose lease still runs.
pub async fn claim(db: &Db, owner: &str, now_ms: i64, lease_ms: i64, limit: i64) -> Result<Vec<Claimed>> {
    let lock = match db.backend() {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let sql = format!(
        "UPDATE webhook_outbox SET lease_owner = $1, lease_until = $2 \
         WHERE id IN (SELECT id FROM webhook_outbox \
           WHERE done_at IS NULL AND next_attempt_at <= $3 AND lease_until <= $3 \
           ORDER BY next_attempt_at LIMIT $4{lock}) \
         RETURNING id, type, created_at, data, attempts"
    );
    let rows = sqlx::query(&sql)
        .bind(owner)
        .bind(now_ms + lease_ms)
        .bind(now_ms)
        .bind(limit)
        .fetch_all(db.writer())
        .await?;
    let mut claimed = rows
        .into_iter()
        .map(|r| {
            Ok(Claimed {
                id: r.try_get("id")?,
                kind: r.try_get("type")?,
                created_at: r.try_get("created_at")?,
                data: r.try_get("data")?,
                attempts: r.try_get("attempts")?,
                lease_until_ms: now_ms + lease_ms,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    // RETURNING gives no order; oldest first.
    claimed.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(claimed)
}

/// Marks a claimed event done (`delivered`, or `expired` when its tries ran out). `false` when
/// `owner` no longer held it (its lease ran out and another node took it).
pub async fn finish(db: &Db, id: &str, owner: &str, now_ms: i64, outcome: &str) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE webhook_outbox SET done_at = $1, outcome = $2, lease_owner = NULL, lease_until = 0 \
         WHERE id = $3 AND lease_owner = $4 AND done_at IS NULL",
    )
    .bind(now_ms)
    .bind(outcome)
    .bind(id)
    .bind(owner)
    .execute(db.writer())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks delivered the claimed events `ids` that `owner` still holds, in one statement; how
/// many it marked.
pub async fn finish_all(db: &Db, ids: &[String], owner: &str, now_ms: i64) -> Result<u64> {
    let set = "done_at = {value}, outcome = 'delivered', lease_owner = NULL, lease_until = 0";
    update_held(db, set, Some(now_ms), ids, owner).await
}

/// Gives back `owner`'s leases of the events `ids` (not tried after all), in one statement:
/// they are due again at once.
pub async fn release(db: &Db, ids: &[String], owner: &str) -> Result<u64> {
    update_held(db, "lease_owner = NULL, lease_until = 0", None, ids, owner).await
}

/// `UPDATE … SET <set>` of the pending events `ids` whose lease `owner` holds, with `value`
/// in place of `{value}` in `set` when given; how many rows it changed.
async fn update_held(db: &Db, set: &str, value: Option<i64>, ids: &[String], owner: &str) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut params = Params::new(db.backend());
    let set = match value {
        Some(_) => set.replace("{value}", &params.one()),
        None => set.to_string(),
    };
    let held_by = params.one();
    let list = params.list(ids.len());
    let sql =
        format!("UPDATE webhook_outbox SET {set} WHERE lease_owner = {held_by} AND done_at IS NULL AND id IN ({list})");
    let mut query = sqlx::query(&sql);
    if let Some(value) = value {
        query = query.bind(value);
    }
    query = query.bind(owner);
    for id in ids {
        query = query.bind(id.as_str());
    }
    Ok(query.execute(db.writer()).await?.rows_affected())
}

/// Schedules another try of a claimed event at `next_ms` and gives its lease back.
pub async fn retry_at(db: &Db, id: &str, owner: &str, next_ms: i64) -> Result<()> {
    sqlx::query(
        "UPDATE webhook_outbox SET attempts = attempts + 1, next_attempt_at = $1, lease_owner = NULL, lease_until = 0 \
         WHERE id = $2 AND lease_owner = $3 AND done_at IS NULL",
    )
    .bind(next_ms)
    .bind(id)
    .bind(owner)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// Gives back the leases `owner` holds (a graceful stop), so that the rows it had claimed are
/// due again at once instead of when their leases run out.
pub async fn release_leases(db: &Db, owner: &str) -> Result<()> {
    sqlx::query(
        "UPDATE webhook_outbox SET lease_owner = NULL, lease_until = 0 WHERE lease_owner = $1 AND done_at IS NULL",
    )
    .bind(owner)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// How many events wait for delivery.
pub async fn pending(db: &Db) -> Result<i64> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM webhook_outbox WHERE done_at IS NULL")
        .fetch_one(db.pool())
        .await?;
    Ok(row.try_get("n")?)
}

/// Deletes up to `limit` done events that happened before `before_ms` (their ids, UUIDv7,
/// sort below the first id of that millisecond); how many it deleted. They are found on a
/// reading connection, so that old rows still pending are passed over outside the writer's
/// lock, then deleted by id.
pub async fn prune(db: &Db, before_ms: i64, limit: i64) -> Result<u64> {
    let floor = super::id_floor_at(before_ms.max(0) as u64);
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT id FROM webhook_outbox WHERE id < $1 AND done_at IS NOT NULL ORDER BY id LIMIT $2")
            .bind(floor)
            .bind(limit)
            .fetch_all(db.pool())
            .await?;
    if ids.is_empty() {
        return Ok(0);
    }
    let mut params = Params::new(db.backend());
    let sql = format!(
        "DELETE FROM webhook_outbox WHERE done_at IS NOT NULL AND id IN ({})",
        params.list(ids.len())
    );
    let mut query = sqlx::query(&sql);
    for id in &ids {
        query = query.bind(id.as_str());
    }
    Ok(query.execute(db.writer()).await?.rows_affected())
}
