//! Notification delivery on one node, exactly once and in id order per socket, through faults.
//!
//! A live notification (stored here, or announced by another node over Redis) reaches each
//! local socket of its user through the socket's gate
//! ([`Session::deliver`](crate::node::session::Session::deliver)), which sends it only when it
//! directly follows what the socket has. Anything else — a gap in the live
//! stream, an emit that failed on a full send buffer, a message Redis lost — leaves the socket
//! *behind*, and the repair loop ([`run`]) reads what it lacks from the database and sends it
//! in order before anything newer.
//!
//! With several nodes the loop also polls: once a second one query reads the newest id of
//! every user who got a notification lately, so a notification that another node stored while
//! Redis was away or slow, or just before it died, reaches this node's sockets about a second
//! later without Redis. The poll looks back [`LOOKBACK`] past its previous run, which covers
//! commits that took a while and nodes whose clocks differ by less than that.

use std::time::Duration;

use socketioxide::{SocketIo, adapter::Adapter};

use crate::{
    db::{
        id_floor_at,
        notifications::{self, Notification},
    },
    node::AppState,
    node::session::{Handed, SessionRef, user_room},
    service::default_ns,
    telemetry,
};

/// How often a node of a cluster polls for notifications it may not have heard of.
pub const POLL_EVERY: Duration = Duration::from_secs(1);
/// How far before its previous run a poll looks (commit delays, clock differences).
pub const LOOKBACK: Duration = Duration::from_secs(5);
/// Users repaired per query.
const REPAIR_BATCH: usize = 32;
/// Notifications read per user per repair query; more are read on the next round.
const REPAIR_PAGE: u32 = 100;
/// Pause between repair rounds, so that a burst of requests is served by one query and a
/// socket that stays unable to take packets does not spin the loop.
const REPAIR_PAUSE: Duration = Duration::from_millis(50);

/// Hands a notification, whose user's previous one is `prev`, to each local socket of its
/// user, and asks for a repair where a socket could not take it in order. Returns how many
/// sockets took it (sent, or held while they register).
pub fn deliver<A: Adapter>(st: &AppState, io: &SocketIo<A>, n: &Notification, prev: Option<&str>) -> usize {
    st.summaries.note_user(&n.user_id);
    let Some(ns) = default_ns(io) else { return 0 };
    let mut took = 0;
    let mut behind = false;
    for s in ns.local().within(user_room(&n.user_id)).sockets() {
        let Some(ses) = s.extensions.get::<SessionRef>() else {
            continue;
        };
        match ses.deliver(&s, n, prev) {
            Handed::Sent | Handed::Held => took += 1,
            Handed::Duplicate => {}
            Handed::Behind => behind = true,
        }
    }
    if behind {
        telemetry::record_delivery_gap();
        st.repairs.request(&n.user_id);
    }
    took
}

/// The repair loop of this node; runs until the server closes. One task per node.
pub async fn run<A: Adapter>(io: SocketIo<A>, st: AppState) {
    let polling = st.cluster.is_some();
    let mut poll = tokio::time::interval(POLL_EVERY);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first poll looks back from the start: a node that just started has heard nothing.
    let mut last_poll = crate::clock::unix_millis();
    let mut poll_failing = false;
    loop {
        tokio::select! {
            () = st.repairs.requested() => tokio::time::sleep(REPAIR_PAUSE).await,
            _ = poll.tick(), if polling => {
                let started = crate::clock::unix_millis();
                let floor = id_floor_at(last_poll.saturating_sub(LOOKBACK.as_millis() as u64));
                match notifications::heads_since(&st.db, &floor).await {
                    Ok(heads) => {
                        last_poll = started;
                        if poll_failing {
                            tracing::info!("notification poll works again");
                            poll_failing = false;
                        }
                        for (user, head) in heads {
                            st.summaries.note_user(&user);
                            if lags(&io, &user, &head) {
                                st.repairs.request(&user);
                            }
                        }
                    }
                    Err(e) => {
                        telemetry::record_repair_poll_failed();
                        if !poll_failing {
                            tracing::warn!(cause = %e, "notification poll failed; retrying every second");
                            poll_failing = true;
                        }
                    }
                }
            }
        }
        if default_ns(&io).is_none() {
            return;
        }
        repair(&io, &st).await;
    }
}

/// Whether a registered local socket of `user` lacks the notification `head`.
fn lags<A: Adapter>(io: &SocketIo<A>, user: &str, head: &str) -> bool {
    let Some(ns) = default_ns(io) else { return false };
    ns.local().within(user_room(user)).sockets().iter().any(|s| {
        s.extensions
            .get::<SessionRef>()
            .and_then(|ses| ses.delivery_cursor())
            .is_some_and(|cursor| cursor.as_deref() < Some(head))
    })
}

/// The oldest cursor among the registered local sockets of `user` (`Some(None)`: one has no
/// notification yet); `None` when no socket of the user is registered here.
fn oldest_cursor<A: Adapter>(io: &SocketIo<A>, user: &str) -> Option<Option<String>> {
    let ns = default_ns(io)?;
    ns.local()
        .within(user_room(user))
        .sockets()
        .iter()
        .filter_map(|s| s.extensions.get::<SessionRef>().and_then(|ses| ses.delivery_cursor()))
        .min()
}

/// Serves the waiting repair requests: per batch of users, one query for what their oldest
/// socket lacks, then each socket gets the part past its own cursor, in order.
async fn repair<A: Adapter>(io: &SocketIo<A>, st: &AppState) {
    let users = st.repairs.take();
    for batch in users.chunks(REPAIR_BATCH) {
        let cursors: Vec<(String, Option<String>)> = batch
            .iter()
            .filter_map(|user| oldest_cursor(io, user).map(|c| (user.clone(), c)))
            .collect();
        let rows = match notifications::after_each(&st.db, &cursors, REPAIR_PAGE).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(cause = %e, users = cursors.len(), "repair read failed; retrying");
                for (user, _) in &cursors {
                    st.repairs.request(user);
                }
                continue;
            }
        };
        for (user, _) in &cursors {
            let start = rows.partition_point(|n| n.user_id.as_str() < user.as_str());
            let end = rows.partition_point(|n| n.user_id.as_str() <= user.as_str());
            let mine = &rows[start..end];
            let complete = mine.len() <= REPAIR_PAGE as usize;
            let mine = &mine[..mine.len().min(REPAIR_PAGE as usize)];
            if !send_missing(io, user, mine, complete) {
                st.repairs.request(user);
            }
        }
    }
}

/// Sends each registered local socket of `user` the part of `rows` past its cursor. Returns
/// whether every socket is now up to date.
fn send_missing<A: Adapter>(io: &SocketIo<A>, user: &str, rows: &[Notification], complete: bool) -> bool {
    let Some(ns) = default_ns(io) else { return true };
    let mut up_to_date = true;
    for s in ns.local().within(user_room(user)).sockets() {
        let Some(ses) = s.extensions.get::<SessionRef>() else {
            continue;
        };
        let (sent, behind) = ses.repair(&s, rows, complete);
        if sent > 0 {
            telemetry::record_notifications_repaired(sent);
        }
        up_to_date &= !behind;
    }
    up_to_date
}
