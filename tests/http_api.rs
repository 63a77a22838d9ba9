//! The HTTP API: auth, JSON errors with the contract's codes and statuses, health, metrics.

mod common;

use common::{API_KEY, TestApp, token};
use serde_json::{Value, json};

async fn post(app: &TestApp, path: &str, key: &str, body: &str) -> (u16, Value) {
    let r = app
        .http()
        .post(app.url(path))
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// 201 with the notification, shaped as the contract says.
#[tokio::test]
async fn create_notification() {
    let app = TestApp::spawn(&[]).await;
    let (status, n) = post(
        &app,
        "/api/notifications",
        API_KEY,
        r#"{"userId":"alice","type":"t","title":"Hi","message":"m","data":{"x":[1]}}"#,
    )
    .await;
    assert_eq!(status, 201, "{n}");
    assert_eq!(n["userId"], "alice");
    assert_eq!(n["type"], "t");
    assert_eq!(n["data"], json!({"x": [1]}));
    assert_eq!(n["read"], false);
    let id = uuid::Uuid::parse_str(n["id"].as_str().unwrap()).unwrap();
    assert_eq!(id.get_version_num(), 7);
    let created = n["createdAt"].as_str().unwrap();
    assert!(created.ends_with('Z') && created.len() == 24, "{created}");
    app.stop().await;
}

/// Each failure answers JSON with the right code and status.
#[tokio::test]
async fn errors_are_json_with_contract_codes() {
    let app = TestApp::spawn(&[("MAX_PAYLOAD_BYTES", "2048")]).await;
    let (s, b) = post(&app, "/api/notifications", "wrong", "{}").await;
    assert_eq!((s, b["error"]["code"].as_str()), (401, Some("unauthorized")));
    let (s, b) = post(&app, "/api/notifications", API_KEY, "{not json").await;
    assert_eq!((s, b["error"]["code"].as_str()), (400, Some("bad_request")));
    let (s, b) = post(
        &app,
        "/api/notifications",
        API_KEY,
        r#"{"userId":"a b","type":"t","title":"x","message":"m"}"#,
    )
    .await;
    assert_eq!((s, b["error"]["code"].as_str()), (422, Some("validation_failed")));
    assert!(b["error"]["details"]["userId"].is_array(), "{b}");
    let big = format!(
        r#"{{"userId":"a","type":"t","title":"x","message":"{}"}}"#,
        "m".repeat(4000)
    );
    let (s, b) = post(&app, "/api/notifications", API_KEY, &big).await;
    assert_eq!((s, b["error"]["code"].as_str()), (413, Some("payload_too_large")));
    let (s, b) = post(&app, "/api/emit", API_KEY, r#"{"event":"disconnect"}"#).await;
    assert_eq!((s, b["error"]["code"].as_str()), (422, Some("validation_failed")));
    let r = app.http().get(app.url("/api/nothing")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "not_found");
    let r = app.http().delete(app.url("/api/emit")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "method_not_allowed");
    let r = app
        .http()
        .post(app.url("/api/emit"))
        .header("authorization", format!("Bearer {API_KEY}"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "no content type");
    app.stop().await;
}

/// Users read and mark their notifications with their JWT.
#[tokio::test]
async fn user_reads_and_marks() {
    let app = TestApp::spawn(&[]).await;
    for i in 0..3 {
        let body = format!(r#"{{"userId":"alice","type":"t","title":"n{i}","message":"m"}}"#);
        assert_eq!(post(&app, "/api/notifications", API_KEY, &body).await.0, 201);
    }
    let alice = token("alice");
    let page: Value = app
        .http()
        .get(app.url("/api/notifications?limit=2"))
        .header("authorization", format!("Bearer {alice}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["notifications"][0]["title"], "n2");
    assert_eq!(page["hasMore"], true);
    let (s, b) = post(&app, "/api/notifications/read", &alice, r#"{"all":true}"#).await;
    assert_eq!((s, b["updated"].as_u64()), (200, Some(3)));
    let (s, _) = post(&app, "/api/notifications/read", &token("bob"), r#"{"ids":[]}"#).await;
    assert_eq!(s, 422);
    let r = app.http().get(app.url("/api/notifications")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    app.stop().await;
}

/// `/healthz`, `/readyz` and `/metrics` answer; metrics carry the contract's series.
#[tokio::test]
async fn health_and_metrics() {
    let app = TestApp::spawn(&[]).await;
    assert_eq!(app.http().get(app.url("/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(app.http().get(app.url("/readyz")).send().await.unwrap().status(), 200);
    let mut s = app.user("alice").await;
    s.call("joinRoom", json!({"roomId": "m"})).await;
    let text = app.metrics().await;
    for series in [
        "sio_connects_total",
        "sio_events_total",
        "sio_event_duration_seconds_bucket",
        "http_requests_total",
    ] {
        assert!(text.contains(series), "missing {series} in\n{text}");
    }
    app.stop().await;
}

/// `POST /demo/token` answers every bad body in the JSON error shape, like the other routes.
#[tokio::test]
async fn demo_token_errors_are_json() {
    let demo = tempfile::tempdir().unwrap();
    let app = TestApp::spawn(&[("DEMO_DIR", demo.path().to_str().unwrap())]).await;
    let send = |body: &'static str, content_type: &'static str| {
        app.http()
            .post(app.url("/demo/token"))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    for (body, content_type, status, code) in [
        ("{not json", "application/json", 400, "bad_request"),
        (r#"{"userId":"bob"}"#, "text/plain", 400, "bad_request"),
        ("{}", "application/json", 422, "validation_failed"),
        (r#"{"userId":5}"#, "application/json", 422, "validation_failed"),
        (r#"{"userId":"a b"}"#, "application/json", 422, "validation_failed"),
    ] {
        let r = send(body, content_type).await.unwrap();
        assert_eq!(r.status(), status, "{body}");
        let b: Value = r.json().await.expect("a JSON body");
        assert_eq!(b["error"]["code"], code, "{body}: {b}");
        if status == 422 {
            assert!(b["error"]["details"]["userId"].is_array(), "{b}");
        }
    }
    let r = send(r#"{"userId":"bob"}"#, "application/json").await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.json::<Value>().await.unwrap()["token"].is_string());
    app.stop().await;
}

/// Request headers are bounded at 16 KiB, as in Node: a larger head is 431 before any route
/// or the Socket.IO layer sees it, so a validly signed 100 KiB token cannot open a socket.
#[tokio::test]
async fn request_headers_over_16_kib_are_431() {
    use tokio_tungstenite::tungstenite::{client::IntoClientRequest, http::HeaderValue};
    let app = TestApp::spawn(&[]).await;
    let get = |name: &'static str, size: usize| {
        app.http()
            .get(app.url("/healthz"))
            .header(name, "x".repeat(size))
            .send()
    };
    assert_eq!(get("x-pad", 15 * 1024).await.unwrap().status(), 200);
    let r = get("x-pad", 17 * 1024).await.unwrap();
    assert_eq!(r.status(), 431);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "headers_too_large");

    let rooms: Vec<String> = (0..10_000).map(|i| format!("room-{i:05}")).collect();
    let big = sio_gateway::auth::Signer::hmac(common::SECRET.as_bytes())
        .sign("alice", 3600, Some(rooms))
        .unwrap();
    assert!(big.len() > 100 * 1024);
    let mut req = format!("ws://{}/socket.io/?EIO=4&transport=websocket", app.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {big}")).unwrap(),
    );
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => assert_eq!(res.status(), 431),
        other => panic!("expected 431, got {:?}", other.map(|(_, res)| res.status())),
    }
    app.stop().await;
}
