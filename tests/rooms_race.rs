//! `joinRoom` and `leaveRoom` fired many at a time by one socket, without waiting for the
//! acks: each room is joined once, announced once and counted once, and the bound on rooms
//! per socket holds.
//!
//! A race needs two of a socket's events in the same few microseconds on two threads, so
//! each test makes many chances for one in one burst (the runtime has several workers).

mod common;

use std::{collections::HashMap, time::Duration};

use common::{Frame, RawSocket, TestApp};
use serde_json::{Value, json};

/// Rooms per burst, and events per room.
const ROOMS: usize = 50;
const PER_ROOM: usize = 8;

/// The rate limit out of the way of a burst.
const UNLIMITED: [(&str, &str); 2] = [("EVENT_RATE_PER_SEC", "100000"), ("EVENT_BURST", "100000")];

/// Sends `event` once per argument with ack ids 1000, 1001, … (all four digits), without
/// waiting; then returns the acks (which may come in any order) in the order sent. Events
/// that arrive meanwhile go to the backlog.
async fn fire(s: &mut RawSocket, event: &str, args: &[Value]) -> Vec<Value> {
    let frames: Vec<String> = args
        .iter()
        .enumerate()
        .map(|(i, arg)| format!("42{}{}", 1000 + i, json!([event, arg])))
        .collect();
    s.send_burst(frames).await;
    let mut acks = vec![Value::Null; args.len()];
    let mut missing = args.len();
    while missing > 0 {
        let Frame::Text(p) = s.next_frame(Duration::from_secs(5)).await else {
            panic!("{missing} acks missing");
        };
        if let Some(body) = p.strip_prefix("43") {
            let id: usize = body[..4].parse().unwrap();
            acks[id - 1000] = serde_json::from_str::<Value>(&body[4..]).unwrap()[0].clone();
            missing -= 1;
        } else if let Some(body) = p.strip_prefix("42") {
            let v: Value = serde_json::from_str(body).unwrap();
            s.backlog
                .push((v[0].as_str().unwrap_or_default().to_string(), v[1].clone()));
        }
    }
    acks
}

/// Every event `s` receives until it has been silent for 500 ms (its backlog first).
async fn drain(s: &mut RawSocket) -> Vec<(String, Value)> {
    let mut events = std::mem::take(&mut s.backlog);
    while let Frame::Text(p) = s.next_frame(Duration::from_millis(500)).await {
        if let Some(body) = p.strip_prefix("42") {
            let v: Value = serde_json::from_str(body).unwrap();
            events.push((v[0].as_str().unwrap_or_default().to_string(), v[1].clone()));
        }
    }
    events
}

/// How many `name` events arrived per room, for the rooms that got any.
fn per_room(events: &[(String, Value)], name: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for (_, v) in events.iter().filter(|(e, _)| e == name) {
        *counts.entry(v["roomId"].as_str().unwrap().to_string()).or_default() += 1;
    }
    counts
}

fn room(i: usize) -> Value {
    json!({ "roomId": format!("r{i}") })
}

/// A burst of `PER_ROOM` copies of each room's argument, one room after the other.
fn burst() -> Vec<Value> {
    (0..ROOMS).flat_map(|i| vec![room(i); PER_ROOM]).collect()
}

fn once_each(counts: &HashMap<String, usize>, what: &str) {
    assert_eq!(counts.len(), ROOMS, "{what}: {counts:?}");
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "{what} more than once: {twice:?}");
}

/// Joins of one room at once all succeed with one `joinedRoom` and one `userJoined`; leaves
/// at once give one `userLeft`; and afterwards the room is counted without the leaver (with
/// `ROOM_EVENTS_MAX_MEMBERS=2`, a count one too high would silence carol's `userJoined`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_joins_of_one_room_join_once() {
    let app = TestApp::spawn(&[UNLIMITED[0], UNLIMITED[1], ("ROOM_EVENTS_MAX_MEMBERS", "2")]).await;
    let mut bob = app.user("bob").await;
    let mut alice = app.user("alice").await;
    for i in 0..ROOMS {
        assert_eq!(bob.call("joinRoom", room(i)).await["ok"], true);
    }
    drain(&mut bob).await;
    drain(&mut alice).await;

    let acks = fire(&mut alice, "joinRoom", &burst()).await;
    assert!(acks.iter().all(|a| a["ok"] == true), "{acks:?}");
    once_each(&per_room(&drain(&mut alice).await, "joinedRoom"), "joinedRoom");
    once_each(&per_room(&drain(&mut bob).await, "userJoined"), "userJoined");

    let acks = fire(&mut alice, "leaveRoom", &burst()).await;
    assert_eq!(acks.iter().filter(|a| a["ok"] == true).count(), ROOMS, "{acks:?}");
    assert!(
        acks.iter()
            .all(|a| a["ok"] == true || a["error"]["code"] == "not_member")
    );
    once_each(&per_room(&drain(&mut bob).await, "userLeft"), "userLeft");

    let mut carol = app.user("carol").await;
    for i in 0..ROOMS {
        assert_eq!(carol.call("joinRoom", room(i)).await["ok"], true);
    }
    once_each(
        &per_room(&drain(&mut bob).await, "userJoined"),
        "userJoined after the leave",
    );
    app.stop().await;
}

/// Joins of different rooms at once with `MAX_ROOMS_PER_SOCKET=3`, by several sockets:
/// exactly three succeed per socket, the rest are `limit_exceeded`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_joins_respect_the_room_bound() {
    let app = TestApp::spawn(&[UNLIMITED[0], UNLIMITED[1], ("MAX_ROOMS_PER_SOCKET", "3")]).await;
    let rooms: Vec<Value> = (0..ROOMS).map(room).collect();
    for user in 0..20 {
        let mut s = app.user(&format!("u{user}")).await;
        let acks = fire(&mut s, "joinRoom", &rooms).await;
        assert_eq!(acks.iter().filter(|a| a["ok"] == true).count(), 3, "{acks:?}");
        assert!(
            acks.iter()
                .all(|a| a["ok"] == true || a["error"]["code"] == "limit_exceeded")
        );
    }
    app.stop().await;
}
