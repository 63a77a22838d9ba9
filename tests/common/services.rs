//! Real PostgreSQL and Redis for tests: a uniquely named database per test, dropped at the
//! end, and a unique Redis prefix. A missing service fails the test with what to install.
#![allow(dead_code)]

use sqlx::{Connection, Executor, PgConnection};

/// The server tests use: `TEST_POSTGRES_URL`, else `DATABASE_URL` when it is PostgreSQL, else
/// the standard local address.
pub fn postgres_base() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .ok()
        .or_else(|| std::env::var("DATABASE_URL").ok().filter(|u| u.starts_with("postgres")))
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The Redis tests use: `REDIS_URL`, else the standard local address.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A fresh, uniquely named PostgreSQL database, dropped when this value is dropped.
pub struct PgDatabase {
    /// URL of the new database.
    pub url: String,
    admin: String,
    name: String,
}

fn with_db(base: &str, db: &str) -> String {
    let (head, tail) = match base.find('?') {
        Some(q) => (&base[..q], &base[q..]),
        None => (base, ""),
    };
    let cut = head
        .rfind('/')
        .filter(|i| *i > "postgres://".len())
        .unwrap_or(head.len());
    format!("{}/{}{}", &head[..cut], db, tail)
}

impl PgDatabase {
    /// Creates the database, or panics naming what to install.
    pub async fn create() -> Self {
        let admin = postgres_base();
        let name = format!("sio_gw_test_{}", sio_gateway::secrets::random_hex(6));
        let mut conn = PgConnection::connect(&admin).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is needed for this test but {admin} does not answer ({e}). \
                 Install and start it (Debian: apt-get install postgresql; pg_ctlcluster 15 main start) \
                 or point TEST_POSTGRES_URL at a server."
            )
        });
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create test database");
        let _ = conn.close().await;
        Self {
            url: with_db(&admin, &name),
            admin,
            name,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        // Drop runs outside async code: use a short-lived runtime on its own thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut conn = PgConnection::connect(&admin).await.ok()?;
                conn.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await
                    .ok()?;
                Some(())
            })
        })
        .join();
    }
}

/// Checks that Redis answers, or panics naming what to install.
pub async fn require_redis() -> String {
    let url = redis_url();
    let client = redis::Client::open(url.as_str()).expect("REDIS_URL");
    let ok = match tokio::time::timeout(
        std::time::Duration::from_secs(3),
        client.get_multiplexed_async_connection(),
    )
    .await
    {
        Ok(Ok(mut c)) => redis::cmd("PING").query_async::<String>(&mut c).await.is_ok(),
        _ => false,
    };
    assert!(
        ok,
        "Redis is needed for this test but {url} does not answer. Install and start it \
         (Debian: apt-get install redis-server) or point REDIS_URL at a server."
    );
    url
}

/// A prefix no other test run uses.
pub fn unique_prefix() -> String {
    format!("sio-gw-test-{}", sio_gateway::secrets::random_hex(6))
}
