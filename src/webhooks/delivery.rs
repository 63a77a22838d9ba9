//! The delivery loop of one node: takes the events this node stored leased to itself, and
//! claims other due outbox rows with a lease; POSTs each as `{ id, type, createdAt, data }`
//! signed with `WEBHOOK_SECRET`; marks it delivered on a 2xx (in batches) and otherwise
//! schedules the next try (1 s, 2 s, 4 s … at most 5 min apart), for at least 24 hours.
//! Done rows (delivered or expired) are pruned once their event is an hour old.
//!
//! The loop and its calls run on a [`Background`] runtime (a thread of lower priority), so
//! that a node busy with its clients delivers with the CPU they leave instead of slowing
//! them; its database calls are made on the main runtime, where the pool lives.

use std::{sync::Arc, time::Duration};

use tokio::{
    sync::{Semaphore, mpsc},
    task::{JoinHandle, JoinSet},
    time::Instant,
};

use super::Webhooks;
use crate::{
    background::Background,
    clock::unix_millis,
    db::{
        Db,
        outbox::{self, Claimed},
    },
    error::AppError,
    outbound, telemetry,
};

/// Calls in flight at once per node. A row is claimed only when a call can start on it at
/// once, so every claimed row is tried well within its [`LEASE`].
const CONCURRENCY: usize = 32;
/// How long a claim holds a row: longer than a call may take, so that a live node keeps what
/// it works on, and short enough that a dead node's rows return soon.
pub const LEASE: Duration = Duration::from_secs(30);
/// Longest wait for the receiver's answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// A call starts only while at least this much of its lease is left: the call, and the writes
/// after it, end before the lease does. A handed-over event that waited longer is left to be
/// claimed again when its lease runs out.
const LEASE_LEFT_TO_CALL: Duration = Duration::from_secs(CALL_TIMEOUT.as_secs() * 2);
const _: () = assert!(LEASE_LEFT_TO_CALL.as_secs() < LEASE.as_secs());
/// Failed calls in a row (unreachable, timeout, 5xx) after which the receiver counts as down:
/// the loop then tries one due event per pause instead of every due row, so that a long
/// outage with a large backlog does not keep a core busy with calls that fail at once.
const DOWN_AFTER: u32 = 16;
/// The first pause between two probes of a receiver that is down; it doubles up to
/// [`PROBE_MAX`].
const PROBE_MIN: Duration = Duration::from_secs(1);
/// The longest pause between two probes: how late, at most, delivery notices the receiver is
/// back.
const PROBE_MAX: Duration = Duration::from_secs(10);
/// A claim waits for at least this many free call slots (or for [`CLAIM_GATHER`]), so that a
/// backlog is claimed in batches, not one row per claim as calls end one by one.
const CLAIM_MIN: usize = CONCURRENCY / 4;
/// The longest a claim waits for [`CLAIM_MIN`] free slots.
const CLAIM_GATHER: Duration = Duration::from_millis(10);
/// Poll for due rows (retries, other nodes' events) at least this often.
const POLL: Duration = Duration::from_secs(1);
/// How long the settler gathers deliveries before it marks them done (their rows stay leased
/// meanwhile, so nothing else tries them).
const SETTLE_GATHER: Duration = Duration::from_millis(20);
/// Most deliveries marked done in one statement.
const SETTLE_BATCH: usize = 256;
/// The longest pause between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Tries go on for at least this long after the event happened; then it is marked expired.
const KEEP_TRYING: Duration = Duration::from_secs(24 * 3600);
/// Done rows are deleted once their event happened this long ago (pruned by id: UUIDv7).
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
    /// The main runtime, where the database calls run.
    main: tokio::runtime::Handle,
    client: reqwest::Client,
    url: reqwest::Url,
    /// Ids delivered, for the settler to mark done.
    delivered: mpsc::UnboundedSender<String>,
    /// Calls failed in a row (see [`DOWN_AFTER`]).
    failing: std::sync::atomic::AtomicU32,
}

/// The running delivery of one node; [`Delivery::stop`] ends it.
pub struct Delivery {
    calls: JoinHandle<()>,
    settler: JoinHandle<()>,
    housekeeping: JoinHandle<()>,
    /// The runtime of the calls; dropped last.
    background: Background,
    hooks: Arc<Webhooks>,
    db: Db,
}

/// Starts the delivery of this node: the loop of calls (fed by `handed`, the events this node
/// stored leased to itself, and by claims) on the background runtime, the settler that marks
/// deliveries done, and the housekeeping (pending gauge, pruning). Call within the main
/// runtime.
pub fn start(hooks: Arc<Webhooks>, db: Db, handed: mpsc::Receiver<Claimed>) -> Delivery {
    let (delivered, delivered_rx) = mpsc::unbounded_channel();
    let settler = tokio::spawn(settle(db.clone(), hooks.owner().to_string(), delivered_rx));
    let housekeeping = tokio::spawn(keep_house(db.clone()));
    let background = Background::start("sio-webhooks");
    let main = background.main().clone();
    let calls = background.spawn(run(hooks.clone(), db.clone(), main, handed, delivered));
    Delivery {
        calls,
        settler,
        housekeeping,
        background,
        hooks,
        db,
    }
}

impl Delivery {
    /// Stops by `deadline`: calls in flight are abandoned, the deliveries already answered are
    /// marked done, and the leases this node still holds are given back, so that its rows are
    /// due again at once for the next node (or this one restarted).
    pub async fn stop(self, deadline: Instant) {
        self.housekeeping.abort();
        self.calls.abort();
        let _ = self.calls.await;
        drop(self.background);
        let _ = tokio::time::timeout_at(deadline, self.settler).await;
        let release = outbox::release_leases(&self.db, self.hooks.owner());
        if let Ok(Err(e)) = tokio::time::timeout_at(deadline, release).await {
            e.body();
        }
    }

    /// Ends every task at once (the process stops without a graceful stop).
    pub fn abort(self) {
        self.housekeeping.abort();
        self.calls.abort();
        self.settler.abort();
    }
}

/// The loop of calls, until aborted (which aborts the calls in flight).
async fn run(
    hooks: Arc<Webhooks>,
    db: Db,
    main: tokio::runtime::Handle,
    mut handed: mpsc::Receiver<Claimed>,
    delivered: mpsc::UnboundedSender<String>,
) {
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
        main,
        client,
        url,
        delivered,
        failing: Default::default(),
    });
    let slots = Arc::new(Semaphore::new(CONCURRENCY));
    let mut calls = JoinSet::new();
    let mut last_claim = Instant::now();
    // Claim at once on start: rows left by a stop or by other nodes.
    let mut claim_due = true;
    let mut probe_pause = PROBE_MIN;
    loop {
        while calls.try_join_next().is_some() {}
        if caller.hooks.receiver_down() {
            // Events handed over meanwhile are not tried: their leases are given back, and
            // they wait their turn as probes.
            let untried: Vec<String> = std::iter::from_fn(|| handed.try_recv().ok()).map(|e| e.id).collect();
            let owner = caller.hooks.owner().to_string();
            if let Err(e) = caller
                .on_main(|db| async move { outbox::release(&db, &untried, &owner).await })
                .await
            {
                e.body();
            }
            caller.probe().await;
            if caller.hooks.receiver_down() {
                tokio::time::sleep(probe_pause).await;
                probe_pause = (probe_pause * 2).min(PROBE_MAX);
            } else {
                probe_pause = PROBE_MIN;
            }
            continue;
        }
        let Ok(first) = slots.clone().acquire_owned().await else {
            return;
        };
        // Due rows are claimed when some were stored due, when the last claim filled every
        // slot, and at least once per POLL (retries, other nodes' events); otherwise the
        // events this node stored for itself (leased already) are all there is to call.
        if !claim_due && last_claim.elapsed() < POLL {
            let event = match handed.try_recv() {
                Ok(event) => Some(event),
                Err(_) => tokio::select! {
                    Some(event) = handed.recv() => Some(event),
                    _ = caller.hooks.stored.notified() => {
                        claim_due = true;
                        None
                    }
                    _ = tokio::time::sleep_until(last_claim + POLL) => None,
                },
            };
            if let Some(event) = event {
                caller.clone().spawn_call(&mut calls, event, first);
            }
            continue;
        }
        // Take every free slot, waiting a little for CLAIM_MIN: as many rows are claimed.
        let mut free = vec![first];
        let gather_until = Instant::now() + CLAIM_GATHER;
        while free.len() < CONCURRENCY {
            match slots.clone().try_acquire_owned() {
                Ok(slot) => free.push(slot),
                Err(_) if free.len() >= CLAIM_MIN => break,
                Err(_) => match tokio::time::timeout_at(gather_until, slots.clone().acquire_owned()).await {
                    Ok(Ok(slot)) => free.push(slot),
                    _ => break,
                },
            }
        }
        let asked = free.len();
        last_claim = Instant::now();
        let claimed = match caller.claim(asked).await {
            Ok(rows) => rows,
            Err(e) => {
                e.body();
                tracing::debug!("webhooks: could not claim due events; retrying");
                drop(free);
                tokio::time::sleep(POLL).await;
                continue;
            }
        };
        claim_due = claimed.len() == asked;
        for (event, slot) in claimed.into_iter().zip(free.drain(..)) {
            caller.clone().spawn_call(&mut calls, event, slot);
        }
    }
}

/// Marks delivered events done, a batch per statement (what arrives within SETTLE_GATHER). A batch
/// the database refuses is tried twice more; after that its rows return when their leases run
/// out and are delivered again (at least once).
async fn settle(db: Db, owner: String, mut delivered: mpsc::UnboundedReceiver<String>) {
    let mut ids = Vec::with_capacity(SETTLE_BATCH);
    while delivered.recv_many(&mut ids, SETTLE_BATCH).await > 0 {
        // One write for the deliveries of SETTLE_GATHER, not one each.
        super::gather_more(&mut ids, SETTLE_BATCH, SETTLE_GATHER, || delivered.try_recv().ok()).await;
        for attempt in 1..=3u64 {
            match outbox::finish_all(&db, &ids, &owner, unix_millis() as i64).await {
                Ok(_) => break,
                Err(e) => {
                    e.body();
                    tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                }
            }
        }
        ids.clear();
    }
}

/// Refreshes the pending gauge and prunes done rows, beside the calls (a hanging receiver
/// does not pause it).
async fn keep_house(db: Db) {
    let mut tick = tokio::time::interval(COUNT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_prune: Option<Instant> = None;
    loop {
        tick.tick().await;
        if let Ok(n) = outbox::pending(&db).await {
            telemetry::record_webhooks_pending(n);
        }
        if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
            last_prune = Some(Instant::now());
            prune(&db).await;
        }
    }
}

impl Caller {
    /// Runs a database call on the main runtime (where the pool's connections are driven).
    async fn on_main<T, F, Fut>(&self, call: F) -> Result<T, AppError>
    where
        F: FnOnce(Db) -> Fut,
        Fut: Future<Output = Result<T, AppError>> + Send + 'static,
        T: Send + 'static,
    {
        match self.main.spawn(call(self.db.clone())).await {
            Ok(result) => result,
            Err(_) => Err(AppError::Unavailable("database")),
        }
    }

    /// Claims up to `limit` due rows for this node.
    async fn claim(&self, limit: usize) -> Result<Vec<Claimed>, AppError> {
        let owner = self.hooks.owner().to_string();
        let now = unix_millis() as i64;
        self.on_main(
            move |db| async move { outbox::claim(&db, &owner, now, LEASE.as_millis() as i64, limit as i64).await },
        )
        .await
    }

    /// While the receiver is down: one try of the oldest due event, if one is due.
    async fn probe(&self) {
        match self.claim(1).await {
            Ok(rows) => {
                for event in rows {
                    self.deliver(event).await;
                }
            }
            Err(e) => {
                e.body();
            }
        }
    }

    /// Starts one try of `event` on `slot`, unless too little of its lease is left.
    fn spawn_call(self: Arc<Self>, calls: &mut JoinSet<()>, event: Claimed, slot: tokio::sync::OwnedSemaphorePermit) {
        let left = event.lease_until_ms - unix_millis() as i64;
        if left < LEASE_LEFT_TO_CALL.as_millis() as i64 {
            tracing::debug!(id = %event.id, "webhook event waited too long for a call; it is tried after its lease");
            return;
        }
        calls.spawn(async move {
            self.deliver(event).await;
            drop(slot);
        });
    }

    /// One try of one claimed event, and its bookkeeping.
    async fn deliver(&self, event: Claimed) {
        let body = body_of(&event);
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
        self.count_failures(outcome);
        let (owner, now) = (self.hooks.owner().to_string(), unix_millis());
        let result = if outcome == "delivered" {
            // The settler marks it done; if it has stopped, the lease runs out instead.
            let _ = self.delivered.send(event.id);
            Ok(())
        } else if expired(&event, now) {
            tracing::warn!(id = %event.id, kind = %event.kind, "webhook event given up after 24 hours of failed tries");
            self.on_main(move |db| async move {
                outbox::finish(&db, &event.id, &owner, now as i64, "expired")
                    .await
                    .map(|_| ())
            })
            .await
        } else {
            let next = now + backoff(event.attempts).as_millis() as u64;
            self.on_main(move |db| async move { outbox::retry_at(&db, &event.id, &owner, next as i64).await })
                .await
        };
        if let Err(e) = result {
            // The lease runs out and the event is tried again: at least once, never lost.
            e.body();
        }
    }
}

impl Caller {
    /// Counts failed calls in a row; [`DOWN_AFTER`] of them mark the receiver down, and an
    /// answer (a 2xx, or a 4xx: the receiver is up, it refuses) marks it up again.
    fn count_failures(&self, outcome: &str) {
        use std::sync::atomic::Ordering::Relaxed;
        match outcome {
            "delivered" | "refused" => {
                self.failing.store(0, Relaxed);
                self.hooks.set_receiver_down(false);
            }
            _ => {
                if self.failing.fetch_add(1, Relaxed) + 1 >= DOWN_AFTER {
                    self.hooks.set_receiver_down(true);
                }
            }
        }
    }
}

/// The body of one call: `{ id, type, createdAt, data }`, with `data` as stored (JSON text,
/// checked but not rebuilt; `null` if it were not JSON).
fn body_of(event: &Claimed) -> String {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Body<'a> {
        id: &'a str,
        #[serde(rename = "type")]
        kind: &'a str,
        created_at: &'a str,
        data: &'a serde_json::value::RawValue,
    }
    let null = serde_json::value::RawValue::NULL;
    let data = serde_json::from_str::<&serde_json::value::RawValue>(&event.data).unwrap_or(null);
    serde_json::to_string(&Body {
        id: &event.id,
        kind: &event.kind,
        created_at: &event.created_at,
        data,
    })
    .unwrap_or_default()
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

/// Deletes done rows of events older than [`KEEP_DONE`], in bounded steps.
async fn prune(db: &Db) {
    const STEP: i64 = 1_000;
    let before = unix_millis().saturating_sub(KEEP_DONE.as_millis() as u64) as i64;
    while let Ok(n) = outbox::prune(db, before, STEP).await {
        if n < STEP as u64 {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_carries_data_as_stored() {
        let event = Claimed {
            id: "0190-\"x".into(),
            kind: "message.created".into(),
            created_at: "2026-12-07T05:00:00.000Z".into(),
            data: r#"{"text":"a \"quote\" and é","n":1}"#.into(),
            attempts: 0,
            lease_until_ms: 0,
        };
        let body: serde_json::Value = serde_json::from_str(&body_of(&event)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "id": "0190-\"x",
                "type": "message.created",
                "createdAt": "2026-12-07T05:00:00.000Z",
                "data": { "text": "a \"quote\" and é", "n": 1 },
            })
        );
        let broken = Claimed {
            data: "{not json".into(),
            ..event
        };
        let body: serde_json::Value = serde_json::from_str(&body_of(&broken)).unwrap();
        assert_eq!(body["data"], serde_json::Value::Null);
    }

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        let secs: Vec<u64> = (0..12).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(backoff(1_000).as_secs(), 300);
    }
}
