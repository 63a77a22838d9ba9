//! A database that stops answering is `unavailable` on both transports: 503 over HTTP, the
//! same code in the socket's acknowledgement.

mod common;

use std::time::Duration;

use common::{TestApp, relay::Relay, services::PgDatabase, token};
use serde_json::json;

/// With PostgreSQL cut off, `listNotifications` acks `unavailable` and `GET
/// /api/notifications` answers 503 `unavailable`: the two transports agree.
#[tokio::test]
async fn an_unreachable_database_is_unavailable_on_both_transports() {
    let pg = PgDatabase::create().await;
    let relay = Relay::to_postgres(&pg.url).await;
    let url = relay.url_for(&pg.url);
    let app = TestApp::spawn(&[("DATABASE_URL", url.as_str())]).await;
    let mut alice = app.user("alice").await;
    assert_eq!(alice.call("listNotifications", json!({})).await["ok"], true);

    relay.take_down();
    let ack = alice
        .call_within("listNotifications", json!({}), Duration::from_secs(15))
        .await;
    assert_eq!(ack["error"]["code"], "unavailable", "{ack}");
    let r = app
        .http()
        .get(app.url("/api/notifications"))
        .header("authorization", format!("Bearer {}", token("alice")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    drop(alice);
    app.stop().await;
}
