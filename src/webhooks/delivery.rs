//! The delivery loop of one node: claims due outbox rows with a lease, POSTs each as
//! `{ id, type, createdAt, data }` signed with `WEBHOOK_SECRET`, marks it delivered on a 2xx
//! and otherwise schedules the next try (1 s, 2 s, 4 s … at most 5 min apart), for at least
//! 24 hours. Delivered rows are pruned after an hour.

use std::{sync::Arc, time::Duration};

use tokio::{sync::Semaphore, task::JoinSet};

use super::Webhooks;
use crate::{
    clock::unix_millis,
    db::{
        Db,
        outbox::{self, Claimed},
    },
    outbound, telemetry,
};

/// Calls in flight at once per node. A row is claimed only when a call can start on it at
/// once, so every claimed row is tried well within its [`LEASE`].
const CONCURRENCY: usize = 32;
/// How long a claim holds a row: longer than a call may take, so that a live node keeps what
/// it works on, and short enough that a dead node's rows return soon.
const LEASE: Duration = Duration::from_secs(30);
/// Longest wait for the receiver's answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
// One call, and the writes around it, end within the lease.
const _: () = assert!(CALL_TIMEOUT.as_secs() * 2 < LEASE.as_secs());
/// Poll for due rows (retries, other nodes' events) at least this often.
const POLL: Duration = Duration::from_secs(1);
/// The longest pause between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Tries go on for at least this long after the event happened; then it is marked expired.
const KEEP_TRYING: Duration = Duration::from_secs(24 * 3600);
/// Done rows are deleted this long after they were done.
const KEEP_DONE: Duration = Duration::from_secs(3600);
/// How often done rows are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// How often the pending gauge is refreshed.
const COUNT_EVERY: Duration = Duration::from_secs(5);

/// The pause before try number `attempt + 1` (after `attempt` failed tries): 1 s, 2 s, 4 s …
pub fn backoff(attempts: i64) -> Duration {
    let exp = attempts.clamp(0, 16) as u32;
    Duration::from_secs(1u64 << exp).min(MAX_BACKOFF)
}

/// What one call needs; shared by the calls in flight.
struct Caller {
    hooks: Arc<Webhooks>,
    db: Db,
    client: reqwest::Client,
    url: reqwest::Url,
    /// This node's name in leases.
    owner: String,
}

/// Runs the loop until the process stops (aborting it aborts the calls in flight); `owner`
/// names this node in leases.
pub async fn run(hooks: Arc<Webhooks>, db: Db, owner: String) {
    let url = match reqwest::Url::parse(&hooks.config().url) {
        Ok(url) => url,
        Err(e) => {
            tracing::error!(cause = %e, "WEBHOOK_URL does not parse; no webhook is delivered");
            return;
        }
    };
    let client = match outbound::client(CALL_TIMEOUT) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(cause = %e, "webhooks: cannot build the HTTP client; no webhook is delivered");
            return;
        }
    };
    let caller = Arc::new(Caller {
        hooks,
        db,
        client,
        url,
        owner,
    });
    let slots = Arc::new(Semaphore::new(CONCURRENCY));
    let mut calls = JoinSet::new();
    let (mut last_prune, mut last_count) = (0u64, 0u64);
    loop {
        let now = unix_millis();
        if now.saturating_sub(last_prune) >= PRUNE_EVERY.as_millis() as u64 {
            last_prune = now;
            prune(&caller.db).await;
        }
        if now.saturating_sub(last_count) >= COUNT_EVERY.as_millis() as u64 {
            last_count = now;
            if let Ok(n) = outbox::pending(&caller.db).await {
                telemetry::record_webhooks_pending(n);
            }
        }
        while calls.try_join_next().is_some() {}
        // Wait for a free slot, then take every free one: as many rows are claimed.
        let Ok(first) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut free = vec![first];
        while let Ok(slot) = slots.clone().try_acquire_owned() {
            free.push(slot);
        }
        let asked = free.len();
        let now = unix_millis() as i64;
        let claimed = match outbox::claim(&caller.db, &caller.owner, now, LEASE.as_millis() as i64, asked as i64).await
        {
            Ok(rows) => rows,
            Err(e) => {
                e.body();
                tracing::debug!("webhooks: could not claim due events; retrying");
                drop(free);
                tokio::time::sleep(POLL).await;
                continue;
            }
        };
        let more_due = claimed.len() == asked;
        for (event, slot) in claimed.into_iter().zip(free.drain(..)) {
            let caller = caller.clone();
            calls.spawn(async move {
                caller.deliver(event).await;
                drop(slot);
            });
        }
        drop(free);
        if !more_due {
            // Nothing more is due: wait for new events or the next poll.
            let _ = tokio::time::timeout(POLL, caller.hooks.stored.notified()).await;
        }
    }
}

impl Caller {
    /// One try of one claimed event, and its bookkeeping.
    async fn deliver(&self, event: Claimed) {
        let data: serde_json::Value = serde_json::from_str(&event.data).unwrap_or(serde_json::Value::Null);
        let body = serde_json::json!({
            "id": event.id,
            "type": event.kind,
            "createdAt": event.created_at,
            "data": data,
        })
        .to_string();
        let res = outbound::signed_post(
            &self.client,
            self.url.clone(),
            &self.hooks.config().secret,
            body.into_bytes(),
        )
        .send()
        .await;
        let outcome = match &res {
            Ok(r) if r.status().is_success() => "delivered",
            Ok(r) if r.status().is_server_error() => "server_error",
            Ok(_) => "refused",
            Err(e) if e.is_timeout() => "timeout",
            Err(_) => "unreachable",
        };
        telemetry::record_webhook(&event.kind, outcome);
        let (db, owner, now) = (&self.db, self.owner.as_str(), unix_millis());
        let result = if outcome == "delivered" {
            outbox::finish(db, &event.id, owner, now as i64, "delivered")
                .await
                .map(|_| ())
        } else if expired(&event, now) {
            tracing::warn!(id = %event.id, kind = %event.kind, "webhook event given up after 24 hours of failed tries");
            outbox::finish(db, &event.id, owner, now as i64, "expired")
                .await
                .map(|_| ())
        } else {
            let next = now + backoff(event.attempts).as_millis() as u64;
            outbox::retry_at(db, &event.id, owner, next as i64).await
        };
        if let Err(e) = result {
            // The lease runs out and the event is tried again: at least once, never lost.
            e.body();
        }
    }
}

/// Whether the event's tries have gone on for [`KEEP_TRYING`].
fn expired(event: &Claimed, now_ms: u64) -> bool {
    let created = uuid::Uuid::parse_str(&event.id)
        .ok()
        .and_then(|id| id.get_timestamp())
        .map(|ts| {
            let (secs, nanos) = ts.to_unix();
            secs * 1000 + u64::from(nanos) / 1_000_000
        })
        .unwrap_or(now_ms);
    now_ms.saturating_sub(created) >= KEEP_TRYING.as_millis() as u64
}

/// Deletes done rows older than [`KEEP_DONE`], in bounded steps.
async fn prune(db: &Db) {
    let before = unix_millis().saturating_sub(KEEP_DONE.as_millis() as u64) as i64;
    while let Ok(n) = outbox::prune(db, before, 10_000).await {
        if n < 10_000 {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        let secs: Vec<u64> = (0..12).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(backoff(1_000).as_secs(), 300);
    }
}
