//! Storage: pagination, read state and catch-up ordering, each on a real SQLite file and on a
//! fresh PostgreSQL database.

mod common;

use common::services::PgDatabase;
use sio_gateway::{
    db::{
        Db, messages,
        notifications::{self, NewNotification},
    },
    error::AppError,
};

/// Keeps a test database alive: a temp folder for SQLite, a database dropped at the end for
/// PostgreSQL.
#[allow(dead_code)]
enum Guard {
    Sqlite(tempfile::TempDir),
    Postgres(PgDatabase),
}

async fn sqlite() -> (Db, Guard) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
        .await
        .unwrap();
    db.migrate().await.unwrap();
    (db, Guard::Sqlite(dir))
}

async fn postgres() -> (Db, Guard) {
    let pg = PgDatabase::create().await;
    let db = Db::connect(&pg.url).await.unwrap();
    db.migrate().await.unwrap();
    (db, Guard::Postgres(pg))
}

/// Runs one store check against SQLite and against PostgreSQL.
macro_rules! on_both {
    ($name:ident, $check:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let (db, guard) = super::sqlite().await;
                super::$check(&db).await;
                db.close().await;
                drop(guard);
            }

            #[tokio::test]
            async fn postgres() {
                let (db, guard) = super::postgres().await;
                super::$check(&db).await;
                db.close().await;
                drop(guard);
            }
        }
    };
}

on_both!(message_pages, check_message_pages);
on_both!(notification_read_state, check_notification_read_state);
on_both!(catch_up_order, check_catch_up_order);
on_both!(message_with_event, check_message_with_event);

fn note(user: &str, title: &str) -> NewNotification {
    NewNotification {
        user_id: user.into(),
        kind: "k".into(),
        title: title.into(),
        message: "m".into(),
        data: serde_json::Value::Null,
    }
}

/// Messages page newest first, with `before` and `hasMore`; a foreign cursor is not found.
async fn check_message_pages(db: &Db) {
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            messages::insert(db, "r", "u", &format!("m{i}"), Default::default())
                .await
                .unwrap()
                .0
                .id,
        );
    }
    messages::insert(db, "other", "u", "x", Default::default())
        .await
        .unwrap();
    let (page, more) = messages::page(db, "r", None, 2).await.unwrap();
    assert_eq!(page.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(), ["m4", "m3"]);
    assert!(more);
    let (page, more) = messages::page(db, "r", Some(&page[1].id), 10).await.unwrap();
    assert_eq!(
        page.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(),
        ["m2", "m1", "m0"]
    );
    assert!(!more);
    assert!(matches!(
        messages::page(db, "other", Some(&ids[0]), 10).await,
        Err(AppError::NotFound)
    ));
}

/// A message stored with its `message.created` event (one round trip on both engines): both
/// rows are there, the event's data is the message, and a leased event is not claimable.
async fn check_message_with_event(db: &Db) {
    use sio_gateway::db::outbox::{self, Lease, Record};
    let (msg, event) = messages::insert(db, "r", "u", "hello", Record::Due).await.unwrap();
    let event = event.expect("an event was asked for");
    assert_eq!(event.kind, "message.created");
    let (page, _) = messages::page(db, "r", None, 10).await.unwrap();
    assert_eq!(
        page.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        [msg.id.as_str()]
    );
    assert_eq!(outbox::pending(db).await.unwrap(), 1);
    let now = sio_gateway::clock::unix_millis() as i64;
    let claimed = outbox::claim(db, "a", now, 30_000, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, event.id_and_time.0);
    let data: serde_json::Value = serde_json::from_str(&claimed[0].data).unwrap();
    assert_eq!(data["id"], msg.id.as_str());
    assert_eq!(data["text"], "hello");

    let lease = Lease {
        owner: "b".into(),
        until_ms: now + 30_000,
    };
    let (_, leased) = messages::insert(db, "r", "u", "again", Record::Leased(lease))
        .await
        .unwrap();
    assert!(leased.unwrap().lease.is_some());
    assert_eq!(outbox::pending(db).await.unwrap(), 2);
    assert!(
        outbox::claim(db, "c", now, 30_000, 10).await.unwrap().is_empty(),
        "a's and b's leases"
    );
    let (_, none) = messages::insert(db, "r", "u", "quiet", Record::Skip).await.unwrap();
    assert!(none.is_none());
    assert_eq!(outbox::pending(db).await.unwrap(), 2);
    assert_eq!(messages::page(db, "r", None, 10).await.unwrap().0.len(), 3);
}

/// Notifications: pages, unread filter, mark by ids (only the owner's) and all, counts.
async fn check_notification_read_state(db: &Db) {
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(
            notifications::insert(db, note("alice", &format!("n{i}")))
                .await
                .unwrap()
                .notification
                .id,
        );
    }
    let bobs = notifications::insert(db, note("bob", "b"))
        .await
        .unwrap()
        .notification
        .id;
    let alice = notifications::summary(db, "alice").await.unwrap();
    assert_eq!((alice.unread, alice.latest_id.as_deref()), (4, Some(ids[3].as_str())));
    let nobody = notifications::summary(db, "nobody").await.unwrap();
    assert_eq!((nobody.unread, nobody.latest_id), (0, None));
    let many = notifications::summaries(db, &["alice", "bob", "nobody"]).await.unwrap();
    assert_eq!(many.len(), 2, "a user without notifications is absent");
    assert_eq!(
        (many["alice"].unread, many["alice"].latest_id.as_deref()),
        (4, Some(ids[3].as_str()))
    );
    assert_eq!(
        (many["bob"].unread, many["bob"].latest_id.as_deref()),
        (1, Some(bobs.as_str()))
    );

    let (updated, owned, _) = notifications::mark_read(
        db,
        "alice",
        &[ids[0].clone(), bobs.clone(), ids[0].clone()],
        Default::default(),
    )
    .await
    .unwrap();
    assert_eq!((updated, owned), (1, vec![ids[0].clone()]));
    let (again, _, _) = notifications::mark_read(db, "alice", std::slice::from_ref(&ids[0]), Default::default())
        .await
        .unwrap();
    assert_eq!(again, 0, "already read rows do not count");
    assert_eq!(
        notifications::summary(db, "bob").await.unwrap().unread,
        1,
        "bob's stays unread"
    );

    let (unread, more) = notifications::page(db, "alice", None, 10, true).await.unwrap();
    assert_eq!(unread.len(), 3);
    assert!(!more);
    assert!(unread.iter().all(|n| !n.read));
    let (all, _) = notifications::page(db, "alice", None, 10, false).await.unwrap();
    assert_eq!(all.last().unwrap().id, ids[0]);
    assert!(all.last().unwrap().read);

    assert_eq!(
        notifications::mark_all_read(db, "alice", Default::default())
            .await
            .unwrap()
            .0,
        3
    );
    assert_eq!(notifications::summary(db, "alice").await.unwrap().unread, 0);
    assert!(matches!(
        notifications::page(db, "alice", Some(&bobs), 10, false).await,
        Err(AppError::NotFound)
    ));
}

/// Catch-up returns what came after the cursor, oldest first, bounded; an unknown cursor none.
async fn check_catch_up_order(db: &Db) {
    let mut ids = Vec::new();
    for i in 0..120 {
        ids.push(
            notifications::insert(db, note("alice", &format!("n{i}")))
                .await
                .unwrap()
                .notification
                .id,
        );
    }
    let newest = ids[119].as_str();
    let missed = notifications::after(db, "alice", &ids[9], newest, 100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(missed.len(), 100);
    assert_eq!(missed[0].id, ids[10]);
    assert!(
        missed.windows(2).all(|w| w[0].id < w[1].id),
        "oldest first, strictly increasing"
    );
    assert_eq!(missed[99].id, ids[109]);
    assert!(
        notifications::after(db, "bob", &ids[0], newest, 100)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        notifications::after(db, "alice", "nope", newest, 100)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        notifications::after(db, "alice", &ids[119], newest, 100)
            .await
            .unwrap()
            .unwrap()
            .is_empty()
    );
    let bounded = notifications::after(db, "alice", &ids[9], &ids[14], 100)
        .await
        .unwrap()
        .unwrap();
    let bounded: Vec<&str> = bounded.iter().map(|n| n.id.as_str()).collect();
    let expected: Vec<&str> = ids[10..=14].iter().map(String::as_str).collect();
    assert_eq!(bounded, expected, "catch-up stops at the id `registered` announces");
}

/// Two nodes (two pools on one database) storing for the same user at the same moment: every
/// id is above the one stored before it, and each notification names its exact predecessor,
/// so the stored ids form one chain in the order they were stored.
async fn check_ids_ordered_across_writers(url: &str) {
    let node_a = Db::connect(url).await.unwrap();
    let node_b = Db::connect(url).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..60 {
        let db = if i % 2 == 0 { node_a.clone() } else { node_b.clone() };
        tasks.push(tokio::spawn(async move {
            notifications::insert(&db, note("carol", &format!("n{i}")))
                .await
                .unwrap()
        }));
    }
    let mut stored = Vec::new();
    for t in tasks {
        stored.push(t.await.unwrap());
    }
    stored.sort_by(|a, b| a.notification.id.cmp(&b.notification.id));
    assert_eq!(stored[0].prev, None, "the first notification has no predecessor");
    for pair in stored.windows(2) {
        assert!(pair[0].notification.id < pair[1].notification.id, "ids are distinct");
        assert_eq!(
            pair[1].prev.as_deref(),
            Some(pair[0].notification.id.as_str()),
            "each names the one stored just before it"
        );
    }
    for n in &stored {
        let id = uuid::Uuid::parse_str(&n.notification.id).unwrap();
        assert_eq!(id.get_version_num(), 7, "ids stay UUIDv7");
    }
    // The repair reads: per-user heads since a floor, and the rows after each cursor.
    let heads = notifications::heads_since(&node_a, &sio_gateway::db::id_floor_at(0))
        .await
        .unwrap();
    assert_eq!(heads, vec![("carol".to_string(), stored[59].notification.id.clone())]);
    let dave = notifications::insert(&node_b, note("dave", "d")).await.unwrap();
    let rows = notifications::after_each(
        &node_a,
        &[
            ("carol".into(), Some(stored[54].notification.id.clone())),
            ("dave".into(), None),
        ],
        3,
    )
    .await
    .unwrap();
    let got: Vec<&str> = rows.iter().map(|n| n.id.as_str()).collect();
    let mut expected: Vec<&str> = stored[55..59].iter().map(|s| s.notification.id.as_str()).collect();
    expected.push(dave.notification.id.as_str());
    assert_eq!(got, expected, "at most limit + 1 per user, sorted by user then id");
    node_a.close().await;
    node_b.close().await;
}

mod ids_ordered_across_writers {
    #[tokio::test]
    async fn sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let db = sio_gateway::db::Db::connect(&url).await.unwrap();
        db.migrate().await.unwrap();
        super::check_ids_ordered_across_writers(&url).await;
        db.close().await;
    }

    #[tokio::test]
    async fn postgres() {
        let pg = super::PgDatabase::create().await;
        let db = sio_gateway::db::Db::connect(&pg.url).await.unwrap();
        db.migrate().await.unwrap();
        super::check_ids_ordered_across_writers(&pg.url).await;
        db.close().await;
        drop(pg);
    }
}

on_both!(outbox_leases, outbox_leases_check);

/// The webhook outbox: a claimed row is skipped by other nodes while its lease runs, comes
/// back when it ends or is given back, is finished only by its holder, and a retry waits for
/// its time.
async fn outbox_leases_check(db: &Db) {
    use sio_gateway::db::outbox::{self, NewEvent};
    let events: Vec<NewEvent> = (0..3)
        .map(|i| NewEvent::now("user.online", serde_json::json!({ "userId": format!("u{i}") })))
        .collect();
    outbox::insert_all(db, &events, 1_000).await.unwrap();
    // Stored twice (a batch retried after a lost answer): kept once.
    outbox::insert_all(db, &events[..1], 1_000).await.unwrap();
    assert_eq!(outbox::pending(db).await.unwrap(), 3);
    let ids = |rows: &[outbox::Claimed]| rows.iter().map(|r| r.id.clone()).collect::<Vec<_>>();

    let a = outbox::claim(db, "a", 1_000, 30_000, 2).await.unwrap();
    assert_eq!(a.len(), 2);
    assert!(a.iter().all(|r| r.attempts == 0 && r.kind == "user.online"));
    let b = outbox::claim(db, "b", 1_000, 30_000, 10).await.unwrap();
    assert_eq!(b.len(), 1, "rows leased by a are skipped");
    assert!(!ids(&a).contains(&b[0].id));
    assert!(outbox::claim(db, "b", 2_000, 30_000, 10).await.unwrap().is_empty());

    let (first, second) = (a[0].id.clone(), a[1].id.clone());
    assert!(
        !outbox::finish(db, &first, "b", 2_000, "delivered").await.unwrap(),
        "not b's lease"
    );
    assert!(outbox::finish(db, &first, "a", 2_000, "delivered").await.unwrap());
    outbox::retry_at(db, &second, "a", 5_000).await.unwrap();
    assert!(
        outbox::claim(db, "c", 2_000, 30_000, 10).await.unwrap().is_empty(),
        "not due yet"
    );

    outbox::release_leases(db, "b").await.unwrap();
    let c = outbox::claim(db, "c", 2_000, 30_000, 10).await.unwrap();
    assert_eq!(ids(&c), ids(&b), "a lease given back is claimable at once");

    // Later: the retry is due (one attempt counted) and c's lease has run out.
    let d = outbox::claim(db, "d", 40_000, 30_000, 10).await.unwrap();
    let mut expected = vec![second.clone(), c[0].id.clone()];
    expected.sort();
    assert_eq!(ids(&d), expected);
    assert_eq!(d.iter().find(|r| r.id == second).unwrap().attempts, 1);
    assert_eq!(outbox::pending(db).await.unwrap(), 2);
    // Pruned by id: done rows of events that happened before the given moment.
    let made_ms = sio_gateway::clock::unix_millis() as i64;
    assert_eq!(
        outbox::prune(db, made_ms - 3_600_000, 100).await.unwrap(),
        0,
        "too recent"
    );
    assert_eq!(
        outbox::prune(db, made_ms + 1_000, 100).await.unwrap(),
        1,
        "the delivered row"
    );
    assert_eq!(outbox::prune(db, made_ms + 1_000, 100).await.unwrap(), 0);
    assert_eq!(outbox::pending(db).await.unwrap(), 2, "pending rows are kept");

    // Stored already leased to the node that stores it (and will deliver it at once): no other
    // node claims it while the lease runs; batched "delivered" marks only the holder's rows.
    let lease = outbox::Lease {
        owner: "e".into(),
        until_ms: 70_000,
    };
    let leased: Vec<NewEvent> = (0..2)
        .map(|i| {
            outbox::event_for(
                outbox::Record::Leased(lease.clone()),
                "room.joined",
                serde_json::json!({ "i": i }),
            )
            .unwrap()
        })
        .collect();
    assert!(outbox::event_for(outbox::Record::Skip, "room.joined", serde_json::json!({})).is_none());
    outbox::insert_all(db, &leased, 41_000).await.unwrap();
    assert!(
        outbox::claim(db, "f", 41_000, 30_000, 10).await.unwrap().is_empty(),
        "leased at insert"
    );
    let leased_ids: Vec<String> = leased.iter().map(|e| e.id_and_time.0.clone()).collect();
    assert_eq!(outbox::Claimed::from(leased[0].clone()).lease_until_ms, 70_000);
    assert_eq!(
        outbox::finish_all(db, &leased_ids, "f", 42_000).await.unwrap(),
        0,
        "not f's"
    );
    assert_eq!(outbox::finish_all(db, &leased_ids, "e", 42_000).await.unwrap(), 2);
    assert_eq!(
        outbox::finish_all(db, &leased_ids, "e", 42_000).await.unwrap(),
        0,
        "done once"
    );
    // Leases given back by id: due again at once, for any node.
    let more: Vec<NewEvent> = (0..2)
        .map(|i| {
            outbox::event_for(
                outbox::Record::Leased(lease.clone()),
                "room.left",
                serde_json::json!({ "i": i }),
            )
            .unwrap()
        })
        .collect();
    outbox::insert_all(db, &more, 41_000).await.unwrap();
    let more_ids: Vec<String> = more.iter().map(|e| e.id_and_time.0.clone()).collect();
    assert_eq!(outbox::release(db, &more_ids, "f").await.unwrap(), 0, "not f's leases");
    assert_eq!(outbox::release(db, &more_ids[..1], "e").await.unwrap(), 1);
    let g = outbox::claim(db, "g", 42_000, 30_000, 10).await.unwrap();
    assert_eq!(
        g.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        more_ids[..1].to_vec(),
        "the released one only"
    );
    outbox::finish_all(db, &more_ids[..1], "g", 43_000).await.unwrap();
    outbox::finish_all(db, &more_ids[1..], "e", 43_000).await.unwrap();
    assert_eq!(outbox::pending(db).await.unwrap(), 2, "d's two rows only");
}
