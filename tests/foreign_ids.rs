//! Ids a client sends (`before` cursors, `markRead` ids, `lastNotificationId`) that cannot be
//! ids never reach a query: on SQLite and on PostgreSQL (which refuses NUL in a text
//! parameter, so such an id used to answer 500 `internal`) they name nothing.

mod common;

use common::{API_KEY, TestApp, services::PgDatabase, token};
use serde_json::{Value, json};

/// Runs one check against a gateway on SQLite and one on a fresh PostgreSQL database.
macro_rules! on_both {
    ($name:ident, $check:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let app = super::TestApp::spawn(&[]).await;
                super::$check(&app).await;
                app.stop().await;
            }

            #[tokio::test]
            async fn postgres() {
                let pg = super::PgDatabase::create().await;
                let app = super::TestApp::spawn(&[("DATABASE_URL", pg.url.as_str())]).await;
                super::$check(&app).await;
                app.stop().await;
            }
        }
    };
}

on_both!(ids_that_cannot_be_ids, check_ids_that_cannot_be_ids);

async fn notify(app: &TestApp, user: &str) -> Value {
    let r = app
        .http()
        .post(app.url("/api/notifications"))
        .header("authorization", format!("Bearer {API_KEY}"))
        .header("content-type", "application/json")
        .body(json!({"userId": user, "type": "t", "title": "x", "message": "m"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

async fn check_ids_that_cannot_be_ids(app: &TestApp) {
    let n = notify(app, "alice").await;
    let alice_token = token("alice");
    let http = app.http();

    // HTTP: a NUL cursor names nothing (404), a NUL id among the ids to mark is ignored.
    let r = http
        .get(app.url("/api/notifications?before=%00"))
        .header("authorization", format!("Bearer {alice_token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "not_found");
    let r = http
        .post(app.url("/api/notifications/read"))
        .header("authorization", format!("Bearer {alice_token}"))
        .header("content-type", "application/json")
        .body(json!({"ids": ["\u{0}"]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"updated": 0}));

    // Socket: the same for listNotifications, markRead and getMessages.
    let mut s = app.user("alice").await;
    let ack = s.call("listNotifications", json!({"before": "\u{0}"})).await;
    assert_eq!(ack["error"]["code"], "not_found", "{ack}");
    let ack = s.call("markRead", json!({"ids": ["\u{0}", n["id"], "x"]})).await;
    assert_eq!(ack, json!({"ok": true, "data": {"updated": 1}}));
    assert_eq!(s.call("joinRoom", json!({"roomId": "r"})).await["ok"], true);
    let ack = s.call("getMessages", json!({"roomId": "r", "before": "a\u{0}"})).await;
    assert_eq!(ack["error"]["code"], "not_found", "{ack}");

    // Handshake: a NUL lastNotificationId gives no catch-up; `registered` still comes.
    let mut late = app
        .socket(json!({"token": alice_token, "lastNotificationId": "\u{0}"}))
        .await
        .expect("connect");
    let reg = late.event("registered").await.expect("registered");
    assert_eq!(reg["lastNotificationId"], n["id"]);
    assert!(
        late.backlog.iter().all(|(e, _)| e != "notification"),
        "{:?}",
        late.backlog
    );
}
