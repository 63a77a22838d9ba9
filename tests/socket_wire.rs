//! The Socket.IO side on the wire: handshake, `registered`, rooms, chat, acks and errors.

mod common;

use std::time::Duration;

use common::{TestApp, token};
use serde_json::json;
use sio_gateway::auth::Signer;

/// The handshake refuses each bad token with the contract's exact `connect_error` message.
#[tokio::test]
async fn handshake_refusals_use_contract_codes() {
    let app = TestApp::spawn(&[]).await;
    assert_eq!(app.socket(json!({})).await.err().as_deref(), Some("missing_token"));
    assert_eq!(
        app.socket(json!({ "token": "" })).await.err().as_deref(),
        Some("missing_token")
    );
    assert_eq!(
        app.socket(json!({ "token": "garbage" })).await.err().as_deref(),
        Some("invalid_token")
    );
    let other = Signer::hmac(b"another-secret-another-secret-another")
        .sign("alice", 60, None)
        .unwrap();
    assert_eq!(
        app.socket(json!({ "token": other })).await.err().as_deref(),
        Some("invalid_token")
    );
    app.stop().await;
}

/// `?token=` is the last source and works on its own.
#[tokio::test]
async fn query_token_is_accepted() {
    let app = TestApp::spawn(&[]).await;
    let q = format!("&token={}", token("carol"));
    let mut s = common::RawSocket::connect(app.addr, json!({}), &q)
        .await
        .expect("connect with ?token=");
    let reg = s.event("registered").await.expect("registered");
    assert_eq!(reg["userId"], "carol");
    app.stop().await;
}

/// `registered` names the user, the socket, and the rooms without the socket's own id.
#[tokio::test]
async fn registered_after_connect() {
    let app = TestApp::spawn(&[]).await;
    let mut s = app.user("alice").await;
    let reg = s.event("registered").await.expect("registered");
    assert_eq!(reg["userId"], "alice");
    assert_eq!(reg["socketId"], s.sid.as_str());
    assert_eq!(reg["rooms"], json!(["user:alice"]));
    assert_eq!(reg["unreadCount"], 0);
    assert_eq!(reg["lastNotificationId"], json!(null));
    app.stop().await;
}

/// Join, send, receive, history: the ack envelope and `newMessage` to every member.
#[tokio::test]
async fn chat_round_trip() {
    let app = TestApp::spawn(&[]).await;
    let mut alice = app.user("alice").await;
    let mut bob = app.user("bob").await;
    assert_eq!(
        bob.call("joinRoom", json!({"roomId": "general"})).await,
        json!({"ok": true, "data": {"roomId": "general"}})
    );
    assert_eq!(alice.call("joinRoom", json!({"roomId": "general"})).await["ok"], true);
    assert_eq!(
        bob.event("userJoined").await.unwrap(),
        json!({"roomId": "general", "userId": "alice"})
    );
    let sent = alice
        .call("sendMessage", json!({"roomId": "general", "text": " hello "}))
        .await;
    assert_eq!(sent["ok"], true, "{sent}");
    assert_eq!(sent["data"]["text"], " hello ");
    let got = bob.event("newMessage").await.unwrap();
    assert_eq!(got, sent["data"]);
    assert_eq!(alice.event("newMessage").await.unwrap(), sent["data"]);
    let history = bob.call("getMessages", json!({"roomId": "general"})).await;
    assert_eq!(history["data"]["messages"][0]["id"], sent["data"]["id"]);
    assert_eq!(history["data"]["hasMore"], false);
    app.stop().await;
}

/// Failures: the ack envelope with the code, or the `error` event when there is no ack.
#[tokio::test]
async fn errors_by_ack_and_by_event() {
    let app = TestApp::spawn(&[]).await;
    let mut s = app.user("alice").await;
    let r = s.call("sendMessage", json!({"roomId": "nowhere", "text": "x"})).await;
    assert_eq!(r["error"]["code"], "not_member");
    let r = s.call("joinRoom", json!("general")).await;
    assert_eq!(r["error"]["code"], "validation_failed");
    assert!(r["error"]["details"]["_"].is_array());
    let r = s.call("joinRoom", json!({"roomId": "user:bob"})).await;
    assert_eq!(r["error"]["code"], "forbidden");
    let r = s.call("whatever", json!({})).await;
    assert_eq!(r["error"]["code"], "unknown_event");
    s.emit("leaveRoom", json!({"roomId": "general"})).await;
    let e = s.event("error").await.expect("error event");
    assert_eq!(e["code"], "not_member");
    assert_eq!(e["event"], "leaveRoom");
    app.stop().await;
}

/// A packet nested deeper than serde's limit is refused, and the server keeps serving.
#[tokio::test]
async fn deeply_nested_argument_does_not_break_the_server() {
    let app = TestApp::spawn(&[]).await;
    let mut bad = app.user("mallory").await;
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    bad.send_text(format!(r#"421["sendMessage",{{"roomId":"r","text":{deep}}}]"#))
        .await;
    // Either an error ack or a closed connection; never a crash.
    let _ = bad.next_frame(Duration::from_secs(2)).await;
    let mut good = app.user("alice").await;
    assert_eq!(good.call("joinRoom", json!({"roomId": "ok"})).await["ok"], true);
    app.stop().await;
}

/// A token that expires disconnects the socket with a Socket.IO disconnect packet.
#[tokio::test]
async fn expiry_disconnects() {
    let app = TestApp::spawn(&[("JWT_LEEWAY_SECS", "0")]).await;
    let short = Signer::hmac(common::SECRET.as_bytes()).sign("alice", 1, None).unwrap();
    let mut s = app.socket(json!({ "token": short })).await.unwrap();
    assert!(
        s.closed_within(Duration::from_secs(5)).await,
        "socket still open after its token expired"
    );
    app.stop().await;
}

/// The per-user limit refuses the extra connection, and a disconnect frees the slot at once.
#[tokio::test]
async fn per_user_limit_and_release() {
    let app = TestApp::spawn(&[("SOCKET_MAX_CONNECTIONS_PER_USER", "1")]).await;
    let first = app.user("alice").await;
    assert_eq!(
        app.socket(json!({"token": token("alice")})).await.err().as_deref(),
        Some("too_many_user_connections")
    );
    drop(first);
    let mut ok = false;
    for _ in 0..40 {
        if app.socket(json!({"token": token("alice")})).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "slot not freed after disconnect");
    app.stop().await;
}

/// An event whose name is written with a JSON escape (`"joinRoom\u0000"`) is an unknown event
/// like any other, answered `unknown_event` with its decoded name, and the connection stays
/// open (socketioxide used to close it as unparsable).
#[tokio::test]
async fn escaped_event_names_are_unknown_events() {
    let app = TestApp::spawn(&[]).await;
    let mut s = app.user("alice").await;
    s.send_text(r#"421["joinRoom\u0000",{"roomId":"r"}]"#.to_string()).await;
    let ack = s.ack(1).await;
    assert_eq!(ack["error"]["code"], "unknown_event", "{ack}");
    s.send_text(r#"42["a\"b",{}]"#.to_string()).await;
    let err = s.event("error").await.expect("error event");
    assert_eq!(
        (err["code"].as_str(), err["event"].as_str()),
        (Some("unknown_event"), Some("a\"b"))
    );
    s.send_text(r#"422["join\u0052oom",{"roomId":"r"}]"#.to_string()).await;
    assert_eq!(
        s.ack(2).await,
        json!({"ok": true, "data": {"roomId": "r"}}),
        "an escaped known name is that event"
    );
    assert_eq!(s.call("leaveRoom", json!({"roomId": "r"})).await["ok"], true);
    app.stop().await;
}
