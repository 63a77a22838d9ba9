//! Storage: one pool for SQLite (the embedded default) or PostgreSQL (clusters), chosen by
//! the scheme of `DATABASE_URL`, with the migrations of that backend applied on start.
//!
//! Queries are written once, in SQL both backends accept (`$1` placeholders, text ids, integer
//! flags), and run through sqlx's `Any` driver. Each table has its own module.
//!
//! SQLite takes one writer at a time. Its writes go through a pool of their own with a single
//! connection, so writers queue inside the process (in order, without sleeping) instead of
//! contending for the file's write lock and backing off in SQLite's busy handler; reads keep
//! the shared pool and run beside the writer (write-ahead log). On PostgreSQL both are one pool.

pub mod messages;
pub mod notifications;
pub mod outbox;
pub mod summary_reader;

use std::{str::FromStr, time::Duration};

use sqlx::{
    AnyPool, Executor,
    any::{AnyConnectOptions, AnyPoolOptions},
    migrate::Migrator,
};

/// How often SQLite's write-ahead log is checkpointed in the background. Often, so that each
/// checkpoint is small: a checkpoint first syncs the log, and while the disk writes the log's
/// last block back, the writer's next append into that block waits for it (a frame is a page
/// plus a 24-byte header, so appends straddle blocks). The wait grows with what the sync has
/// to write: once a second it cost `sendMessage` tens of milliseconds at p99 on a slow disk,
/// every 100 ms a few (see BENCHMARKS.md, webhooks). A checkpoint with nothing to copy is a
/// no-op.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// Which database engine a pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// A cheap, cloneable handle to the database.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    /// Where writes go: a one-connection pool on SQLite, `pool` itself on PostgreSQL.
    writer: AnyPool,
    backend: Backend,
}

impl Db {
    /// Opens a pool for `url` (`sqlite://…` is created if missing; `postgres://…`).
    /// Migrations are not applied here: call [`Db::migrate`].
    pub async fn connect(url: &str) -> Result<Self, sqlx::Error> {
        Self::connect_sized(url, None).await
    }

    /// [`Db::connect`] with a pool of `max_connections` (`DATABASE_MAX_CONNECTIONS`); `None`
    /// keeps the default: 10 for PostgreSQL, 4 readers for SQLite (plus its one writer).
    pub async fn connect_sized(url: &str, max_connections: Option<u32>) -> Result<Self, sqlx::Error> {
        sqlx::any::install_default_drivers();
        // sqlx checks a certificate against `sslrootcert` with rustls's default provider.
        crate::outbound::install_crypto();
        if let Some(path) = crate::config::sqlite_path(url)
            && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        {
            // "Created on first start": the folder too, not only the file.
            std::fs::create_dir_all(dir).map_err(sqlx::Error::Io)?;
        }
        let (backend, url) = if url.starts_with("sqlite:") {
            let url = if url.contains("mode=") {
                url.to_string()
            } else if url.contains('?') {
                format!("{url}&mode=rwc")
            } else {
                format!("{url}?mode=rwc")
            };
            (Backend::Sqlite, url)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            check_root_cert(url)?;
            (Backend::Postgres, url.to_string())
        } else {
            return Err(sqlx::Error::Configuration(
                "DATABASE_URL must start with sqlite:// or postgres://".into(),
            ));
        };
        let opts = AnyConnectOptions::from_str(&url)?;
        let size = max_connections.unwrap_or(match backend {
            Backend::Sqlite => 4,
            Backend::Postgres => 10,
        });
        let pool = pool_options(backend, size)
            .connect_with(opts.clone())
            .await
            .map_err(explain_certificate_error)?;
        let writer = match backend {
            Backend::Sqlite => pool_options(backend, 1).connect_with(opts).await?,
            Backend::Postgres => pool.clone(),
        };
        Ok(Self { pool, writer, backend })
    }

    /// Applies the pending migrations of this backend. Nodes sharing one SQLite file may
    /// start together; SQLite has no migration lock, so a node that loses the race retries
    /// and then finds the migrations applied by the other.
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        let mut attempt = 0;
        loop {
            match migrator.run(&self.writer).await {
                Ok(()) => return Ok(()),
                Err(e) if self.backend == Backend::Sqlite && attempt < 5 => {
                    attempt += 1;
                    tracing::debug!(cause = %e, attempt, "migration raced another node; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Checks, without changing anything, that every migration of this backend is applied
    /// (`MIGRATE_ON_START=false`: a database user that may only read and write rows). `Err`
    /// names the first one missing, or says why the applied ones could not be read.
    pub async fn check_migrations(&self) -> Result<(), String> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        let applied: Vec<i64> = match sqlx::query_scalar::<_, i64>(
            "SELECT version FROM _sqlx_migrations WHERE success = TRUE ORDER BY version",
        )
        .fetch_all(&self.pool)
        .await
        {
            Ok(v) => v,
            // No migration table (PostgreSQL's undefined_table, SQLite's "no such table"):
            // nothing was ever applied. Any other error (no right to read it) is said as is.
            Err(sqlx::Error::Database(e))
                if e.code().as_deref() == Some("42P01") || e.message().contains("no such table") =>
            {
                Vec::new()
            }
            Err(e) => return Err(format!("cannot read the applied migrations: {e}")),
        };
        match migrator
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
            .find(|m| !applied.contains(&m.version))
        {
            Some(m) => Err(format!(
                "migration {} ({}) is not applied; run `sio-gateway migrate` with a user that may change the schema, or set MIGRATE_ON_START=true",
                m.version, m.description
            )),
            None => Ok(()),
        }
    }

    /// SQLite only: copies the write-ahead log back into the database file every
    /// [`CHECKPOINT_EVERY`], on a pool connection of its own, so that no request pays for a
    /// checkpoint (with `synchronous = NORMAL` a checkpoint is the only step that waits for
    /// the disk). A passive checkpoint takes no lock writers or readers wait for (the disk
    /// is another matter: see [`CHECKPOINT_EVERY`]). `None` for PostgreSQL.
    pub fn start_checkpoints(&self) -> Option<tokio::task::JoinHandle<()>> {
        if self.backend != Backend::Sqlite {
            return None;
        }
        let pool = self.pool.clone();
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if pool.is_closed() {
                    return;
                }
                if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await {
                    tracing::debug!(cause = %e, "background checkpoint failed; the next one retries");
                }
            }
        }))
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// The engine behind this handle.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool for reads, for the table modules.
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The pool for writes (and reads inside a writing transaction), for the table modules.
    pub(crate) fn writer(&self) -> &AnyPool {
        &self.writer
    }

    /// SQLite only: runs `query`, several statements in one text between `BEGIN IMMEDIATE` and
    /// `COMMIT`, in one round trip to the writer connection. The write lock is then held for
    /// the statements' own time, not across the awaits of a task that sends them one by one
    /// (on a busy runtime each await may wait its turn, while every other writer waits). On an
    /// error the transaction is rolled back.
    pub(crate) async fn sqlite_script<'q>(
        &self,
        query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> Result<(), sqlx::Error> {
        let mut conn = self.writer.acquire().await?;
        match query.execute(&mut *conn).await {
            Ok(_) => Ok(()),
            Err(e) => {
                // No transaction may stay open on the writer; if even the rollback fails, the
                // connection is closed rather than returned to the pool.
                if sqlx::query("ROLLBACK").execute(&mut *conn).await.is_err() {
                    drop(conn.detach());
                }
                Err(e)
            }
        }
    }

    /// Waits for in-flight queries and closes every connection.
    pub async fn close(&self) {
        tokio::join!(self.pool.close(), self.writer.close());
    }
}

/// Refuses a `sslrootcert` that is not a file, which sqlx would only report on connecting as
/// "No such file or directory".
fn check_root_cert(url: &str) -> Result<(), sqlx::Error> {
    let Some((_, query)) = url.split_once('?') else {
        return Ok(());
    };
    match form_urlencoded::parse(query.as_bytes()).find(|(key, _)| key == "sslrootcert") {
        Some((_, path)) if !std::path::Path::new(path.as_ref()).is_file() => Err(sqlx::Error::Configuration(
            format!("sslrootcert `{path}` is not an existing file").into(),
        )),
        _ => Ok(()),
    }
}

/// Says in words that the server's TLS certificate was refused and where its CA goes; rustls
/// only names the check that failed ("invalid peer certificate: UnknownIssuer").
fn explain_certificate_error(e: sqlx::Error) -> sqlx::Error {
    let text = e.to_string();
    let Some(at) = text.find("invalid peer certificate") else {
        return e;
    };
    sqlx::Error::Tls(
        format!(
            "the server's certificate is not trusted ({}): name the CA that signed it with sslrootcert=/path/ca.pem",
            &text[at..]
        )
        .into(),
    )
}

/// The options of a pool of `size` connections to `backend`.
fn pool_options(backend: Backend, size: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(Duration::from_secs(5))
        // A ping before each use costs a round trip to the connection's thread (SQLite)
        // or to the server (PostgreSQL). A SQLite file does not go away under an open
        // connection, so SQLite skips it; PostgreSQL keeps it to survive server restarts.
        .test_before_acquire(backend == Backend::Postgres)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    // WAL lets readers run beside the one writer; several nodes may share
                    // the file, so writers wait for each other instead of failing.
                    // Checkpoints run in the background (see `start_checkpoints`). A busy
                    // node writes more than SQLite's default 1 000 pages of log a second, and
                    // then every commit past that mark would checkpoint (and fsync) itself;
                    // the mark is raised so that only a background checkpoint that falls
                    // behind leaves the work to a commit.
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000; \
                         PRAGMA wal_autocheckpoint = 16384;",
                    )
                    .await?;
                }
                Ok(())
            })
        })
}

/// A new time-ordered id (UUIDv7) and the matching `createdAt` (RFC 3339 UTC, milliseconds).
/// Ids made by one process are strictly increasing, even within one millisecond.
pub fn new_id_and_time() -> (String, String) {
    let id = uuid::Uuid::now_v7();
    (id.to_string(), created_at_of(id))
}

/// The next id of a sequence whose newest id is `prev`: a fresh UUIDv7, or, when the clock
/// has not moved past `prev` (another node stored it in the same millisecond, or its clock is
/// ahead), the smallest UUIDv7 above `prev`. Either way the result sorts after `prev`, as text
/// too (lowercase hex of equal length).
pub fn next_id_after(prev: Option<&str>) -> uuid::Uuid {
    let now = uuid::Uuid::now_v7();
    match prev.and_then(|p| uuid::Uuid::parse_str(p).ok()) {
        Some(p) if now <= p => successor(p),
        _ => now,
    }
}

/// The smallest UUIDv7 above `id`: its 74 counter bits (`rand_a`, `rand_b`) plus one,
/// carrying into the millisecond timestamp.
fn successor(id: uuid::Uuid) -> uuid::Uuid {
    const RAND_B_BITS: u32 = 62;
    let v = id.as_u128();
    let millis = v >> 80;
    let rand_a = (v >> 64) & 0xfff;
    let rand_b = v & ((1u128 << RAND_B_BITS) - 1);
    let mut counter = ((rand_a << RAND_B_BITS) | rand_b) + 1;
    let mut millis = millis;
    if counter >> 74 != 0 {
        counter = 0;
        millis += 1;
    }
    let v = ((millis & 0xffff_ffff_ffff) << 80)
        | (0x7 << 76)
        | ((counter >> RAND_B_BITS) << 64)
        | (0b10 << RAND_B_BITS)
        | (counter & ((1u128 << RAND_B_BITS) - 1));
    uuid::Uuid::from_u128(v)
}

/// The smallest UUIDv7 of millisecond `unix_ms`: every id made at or after that moment sorts
/// above it, so it serves as a lower bound in `id > $1` scans.
pub fn id_floor_at(unix_ms: u64) -> String {
    uuid::Builder::from_unix_timestamp_millis(unix_ms, &[0; 10])
        .into_uuid()
        .to_string()
}

/// `createdAt` of a UUIDv7: its timestamp as RFC 3339 UTC with milliseconds.
pub fn created_at_of(id: uuid::Uuid) -> String {
    let created = id
        .get_timestamp()
        .map(|ts| {
            let (secs, nanos) = ts.to_unix();
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(secs) * 1_000_000_000 + i128::from(nanos))
                .unwrap_or_else(|_| time::OffsetDateTime::now_utc())
        })
        .unwrap_or_else(time::OffsetDateTime::now_utc);
    crate::clock::rfc3339_ms(created)
}

/// `$first, $first+1, …`: `n` placeholders of a statement of fixed length.
pub(crate) fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The placeholders of a statement with lists of values (an `IN (…)` list, rows of
/// `VALUES`), numbered in the order of the text: `$1, $2 …` on PostgreSQL, `?` on SQLite; the
/// values are bound in the same order. SQLite finds a named parameter (`$n`) by scanning the
/// statement's names, once when it parses the text and once when a value is bound, so a
/// list of `n` named parameters costs n² steps; `?` costs n.
pub(crate) struct Params {
    sqlite: bool,
    bound: usize,
}

impl Params {
    /// The placeholders of one statement for `backend`.
    pub(crate) fn new(backend: Backend) -> Self {
        Self {
            sqlite: backend == Backend::Sqlite,
            bound: 0,
        }
    }

    /// The next placeholder.
    pub(crate) fn one(&mut self) -> String {
        self.bound += 1;
        if self.sqlite {
            "?".to_string()
        } else {
            format!("${}", self.bound)
        }
    }

    /// The next `n` placeholders, comma-separated.
    pub(crate) fn list(&mut self, n: usize) -> String {
        (0..n).map(|_| self.one()).collect::<Vec<_>>().join(", ")
    }
}

/// Page size plus one, to learn `hasMore` without a count.
pub(crate) fn probe_limit(limit: u32) -> i64 {
    i64::from(limit) + 1
}

/// Cuts a page fetched with [`probe_limit`] to `limit` and says whether more remained.
pub(crate) fn finish_page<T>(mut rows: Vec<T>, limit: u32) -> (Vec<T>, bool) {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    (rows, more)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_v7_and_time_ordered() {
        let (a, t) = new_id_and_time();
        let (b, _) = new_id_and_time();
        assert_eq!(uuid::Uuid::parse_str(&a).unwrap().get_version_num(), 7);
        assert!(a < b, "{a} {b}");
        assert_eq!(t.len(), "2026-11-22T10:00:00.123Z".len());
        assert!(t.ends_with('Z'));
    }

    #[test]
    fn next_id_sorts_after_a_future_or_equal_prev() {
        let future = uuid::Uuid::from_u128(uuid::Uuid::now_v7().as_u128() + (10_000u128 << 80)).to_string();
        let next = next_id_after(Some(&future)).to_string();
        assert!(next > future, "{next} <= {future}");
        assert_eq!(uuid::Uuid::parse_str(&next).unwrap().get_version_num(), 7);
        assert_eq!(
            uuid::Uuid::parse_str(&next).unwrap().get_timestamp(),
            uuid::Uuid::parse_str(&future).unwrap().get_timestamp()
        );
        // An older prev: a fresh id, also above it.
        let old = id_floor_at(1_000);
        assert!(next_id_after(Some(&old)).to_string() > old);
        // Counter overflow carries into the timestamp and stays a valid v7.
        let max_counter =
            uuid::Uuid::from_u128((5u128 << 80) | (0x7 << 76) | (0xfff << 64) | (0b10 << 62) | ((1 << 62) - 1));
        let carried = successor(max_counter);
        assert!(carried > max_counter);
        assert_eq!(carried.as_u128() >> 80, 6);
        assert_eq!(carried.get_version_num(), 7);
    }

    /// A script that fails halfway leaves nothing behind and no transaction open on the writer.
    #[tokio::test]
    async fn a_failed_sqlite_script_is_rolled_back() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}", dir.path().join("s.db").display()))
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (k INTEGER PRIMARY KEY)")
            .execute(db.writer())
            .await
            .unwrap();
        let script = "BEGIN IMMEDIATE; INSERT INTO t VALUES ($1); INSERT INTO t VALUES ($2); COMMIT;";
        let failed = db.sqlite_script(sqlx::query(script).bind(1_i64).bind(1_i64)).await;
        assert!(failed.is_err(), "the second insert repeats the key");
        let count = |db: Db| async move {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM t")
                .fetch_one(db.pool())
                .await
                .unwrap()
        };
        assert_eq!(count(db.clone()).await, 0, "the first insert was rolled back");
        db.sqlite_script(sqlx::query(script).bind(1_i64).bind(2_i64))
            .await
            .unwrap();
        assert_eq!(count(db.clone()).await, 2, "committed, and visible to the readers");
        db.close().await;
    }

    #[test]
    fn id_floor_is_below_ids_of_that_millisecond() {
        let id = uuid::Uuid::now_v7();
        let ms = id.get_timestamp().unwrap().to_unix();
        let ms = ms.0 * 1000 + u64::from(ms.1) / 1_000_000;
        assert!(id_floor_at(ms) <= id.to_string());
        assert!(id_floor_at(ms + 1) > id.to_string());
    }
}
