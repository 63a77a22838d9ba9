//! A Rust client of sio-gateway with the `rust_socketio` crate: connects with a token, waits
//! for `registered`, joins a room, sends a message, and prints what the room and the user's
//! notification stream deliver, one JSON line per event.
//!
//! Usage: cargo run -- <gateway-url> <token> <room> <text> [--wait-notification]

use std::time::Duration;

use futures_util::FutureExt;
use rust_socketio::{
    Payload,
    asynchronous::{Client, ClientBuilder},
};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// The first JSON argument of an event.
fn first(payload: Payload) -> Value {
    match payload {
        Payload::Text(mut values) if !values.is_empty() => values.remove(0),
        _ => Value::Null,
    }
}

/// Emits with an acknowledgement and waits for it.
async fn call(client: &Client, event: &str, arg: Value) -> Result<Value, String> {
    let (tx, mut rx) = mpsc::channel(1);
    client
        .emit_with_ack(event, arg, Duration::from_secs(5), move |payload: Payload, _| {
            let tx = tx.clone();
            async move {
                // rust_socketio hands an ack's arguments over as one array.
                let value = match first(payload) {
                    Value::Array(mut args) if args.len() == 1 => args.remove(0),
                    other => other,
                };
                let _ = tx.send(value).await;
            }
            .boxed()
        })
        .await
        .map_err(|e| e.to_string())?;
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .map_err(|_| format!("no ack for {event}"))?
        .ok_or_else(|| format!("no ack for {event}"))
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, token, room, text, rest @ ..] = args.as_slice() else {
        return Err("usage: <gateway-url> <token> <room> <text> [--wait-notification]".into());
    };
    let wait_notification = rest.iter().any(|a| a == "--wait-notification");

    let (events_tx, mut events) = mpsc::unbounded_channel::<(String, Value)>();
    let mut builder = ClientBuilder::new(url.as_str()).auth(json!({ "token": token }));
    for name in ["registered", "newMessage", "notification", "error"] {
        let tx = events_tx.clone();
        builder = builder.on(name, move |payload: Payload, _| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((name.to_string(), first(payload)));
            }
            .boxed()
        });
    }
    let client = builder.connect().await.map_err(|e| format!("connect: {e}"))?;

    let next = async |events: &mut mpsc::UnboundedReceiver<(String, Value)>, want: &str| -> Result<Value, String> {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
                Ok(Some((name, value))) if name == want => return Ok(value),
                Ok(Some(_)) => continue,
                _ => return Err(format!("no {want} event")),
            }
        }
    };
    let registered = next(&mut events, "registered").await?;
    println!("{}", json!({ "event": "registered", "data": registered }));

    let joined = call(&client, "joinRoom", json!({ "roomId": room })).await?;
    println!("{}", json!({ "event": "joinRoom:ack", "data": joined }));
    let sent = call(&client, "sendMessage", json!({ "roomId": room, "text": text })).await?;
    println!("{}", json!({ "event": "sendMessage:ack", "data": sent }));
    let message = next(&mut events, "newMessage").await?;
    println!("{}", json!({ "event": "newMessage", "data": message }));
    if wait_notification {
        let n = next(&mut events, "notification").await?;
        println!("{}", json!({ "event": "notification", "data": n }));
    }
    client.disconnect().await.map_err(|e| e.to_string())?;
    Ok(())
}
