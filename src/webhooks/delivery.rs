//! The delivery loop of one node: claims due outbox rows with a lease, POSTs each as
//! `{ id, type, createdAt, data }` signed with `WEBHOOK_SECRET`, marks it delivered on a 2xx
//! and otherwise schedules the next try (1 s, 2 s, 4 s … at most 5 min apart), for at least
//! 24 hours. Delivered rows are pruned after an hour.

use std::{sync::Arc, time::Duration};

use futures_util::{StreamExt, stream};

use super::Webhooks;
use crate::{
    clock::unix_millis,
    db::{
        Db,
        outbox::{self, Claimed},
    },
    outbound, telemetry,
};

/// Rows claimed at once.
const CLAIM: i64 = 128;
/// Calls in flight at once per node.
const CONCURRENCY: usize = 32;
/// How long a claim holds a row: longer than a call may take, so that a live node keeps what
/// it works on, and short enough that a dead node's rows return soon.
const LEASE: Duration = Duration::from_secs(30);
/// Longest wait for the receiver's answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
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

/// Runs the loop until the process stops; `owner` names this node in leases.
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
    let (mut last_prune, mut last_count) = (0u64, 0u64);
    loop {
        let now = unix_millis();
        if now.saturating_sub(last_prune) >= PRUNE_EVERY.as_millis() as u64 {
            last_prune = now;
            prune(&db).await;
        }
        if now.saturating_sub(last_count) >= COUNT_EVERY.as_millis() as u64 {
            last_count = now;
            if let Ok(n) = outbox::pending(&db).await {
                telemetry::record_webhooks_pending(n);
            }
        }
        let claimed = match outbox::claim(&db, &owner, now as i64, LEASE.as_millis() as i64, CLAIM).await {
            Ok(rows) => rows,
            Err(e) => {
                e.body();
                tracing::debug!("webhooks: could not claim due events; retrying");
                tokio::time::sleep(POLL).await;
                continue;
            }
        };
        let full = claimed.len() as i64 == CLAIM;
        stream::iter(claimed)
            .for_each_concurrent(CONCURRENCY, |event| deliver(&hooks, &db, &client, &url, &owner, event))
            .await;
        if !full {
            // Nothing more is due: wait for new events or the next poll.
            let _ = tokio::time::timeout(POLL, hooks.stored.notified()).await;
        }
    }
}

/// One try of one claimed event, and its bookkeeping.
async fn deliver(hooks: &Webhooks, db: &Db, client: &reqwest::Client, url: &reqwest::Url, owner: &str, event: Claimed) {
    let data: serde_json::Value = serde_json::from_str(&event.data).unwrap_or(serde_json::Value::Null);
    let body = serde_json::json!({
        "id": event.id,
        "type": event.kind,
        "createdAt": event.created_at,
        "data": data,
    })
    .to_string();
    let res = outbound::signed_post(client, url.clone(), &hooks.config().secret, body.into_bytes())
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
    let now = unix_millis();
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
