//! While the database does not take webhook events, a node holds at most
//! `WebhookConfig::queue_max` presence and room events in memory: the newest past that are
//! dropped and counted, the ones held are stored and delivered once the database is back.
//! The outage is real: PostgreSQL is reached through a TCP relay that the test cuts.

mod common;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{TestApp, relay::Relay, services::PgDatabase};
use serde_json::Value;
use tokio::net::TcpListener;

/// A webhook receiver on a free port: every body it is sent, answered 200.
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let store = seen.clone();
    let app = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move |body: axum::body::Bytes| {
            let store = store.clone();
            async move {
                if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                    store.lock().unwrap().push(v);
                }
                "{}"
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, seen)
}

/// The `(type, userId)` of every event received so far.
fn received(seen: &Mutex<Vec<Value>>) -> Vec<(String, String)> {
    seen.lock()
        .unwrap()
        .iter()
        .map(|e| {
            let kind = e["type"].as_str().unwrap_or_default().to_string();
            (kind, e["data"]["userId"].as_str().unwrap_or_default().to_string())
        })
        .collect()
}

/// `sio_webhook_events_dropped_total`, summed over the types.
async fn dropped(app: &TestApp) -> u64 {
    app.metrics()
        .await
        .lines()
        .filter(|l| l.starts_with("sio_webhook_events_dropped_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Polls `cond` every 100 ms for up to `secs` seconds.
async fn eventually(secs: u64, mut cond: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..secs * 10 {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn a_database_outage_holds_a_bounded_queue_and_counts_what_it_drops() {
    const HELD: usize = 8;
    const USERS: usize = 20;
    let pg = PgDatabase::create().await;
    let relay = Relay::to_postgres(&pg.url).await;
    let db_url = relay.url_for(&pg.url);
    let (hook_url, seen) = receiver().await;
    let secret = "w".repeat(32);
    let (mut cfg, dir) = TestApp::config(&[
        ("DATABASE_URL", db_url.as_str()),
        ("WEBHOOK_URL", hook_url.as_str()),
        ("WEBHOOK_SECRET", secret.as_str()),
        ("WEBHOOK_EVENTS", "user.online,user.offline"),
    ]);
    cfg.webhooks.as_mut().unwrap().queue_max = HELD;
    let app = TestApp::spawn_with(cfg, dir).await;

    // Before the outage: delivered as usual.
    let _alice = app.user("alice").await;
    let alice_online = || received(&seen).contains(&("user.online".into(), "alice".into()));
    assert!(
        eventually(10, async || alice_online()).await,
        "alice's user.online delivered"
    );
    assert_eq!(dropped(&app).await, 0);

    // The database goes away; 20 users come and go: 40 events for a queue of 8.
    relay.take_down();
    for i in 0..USERS {
        let user = app.user(&format!("u{i}")).await;
        drop(user);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let total = 2 * USERS as u64;
    // Every event is either held (queue or the batch being retried) or dropped and counted.
    assert!(
        eventually(10, async || dropped(&app).await >= total - 2 * HELD as u64).await,
        "at least {} of {total} events dropped while the database is away; counted {}",
        total - 2 * HELD as u64,
        dropped(&app).await
    );
    let r = app.http().get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200, "the node keeps serving");

    // The database is back: what was held is stored and delivered, nothing twice.
    relay.bring_back();
    let during = |seen: &Mutex<Vec<Value>>| -> Vec<(String, String)> {
        received(seen).into_iter().filter(|(_, u)| u.starts_with('u')).collect()
    };
    let drops = dropped(&app).await;
    let held = total - drops;
    assert!(
        eventually(30, async || during(&seen).len() as u64 >= held).await,
        "the {held} held events delivered after the outage; got {:?}",
        during(&seen)
    );
    tokio::time::sleep(Duration::from_secs(2)).await; // nothing more comes
    let got = during(&seen);
    eprintln!("{total} events during the outage: {held} held and delivered after it, {drops} dropped");
    assert_eq!(got.len() as u64, held, "held {held}, dropped {drops}: {got:?}");
    assert_eq!(dropped(&app).await, drops, "nothing dropped once the database is back");
    let mut unique = got.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), got.len(), "no event delivered twice: {got:?}");
    // The queue keeps the oldest: the first user's coming is there, the last one's going is not.
    assert!(got.contains(&("user.online".into(), "u0".into())), "{got:?}");
    let last = format!("u{}", USERS - 1);
    assert!(!got.contains(&("user.offline".into(), last)), "{got:?}");
    app.stop().await;
}
