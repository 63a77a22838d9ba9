//! Webhooks (contract section 10.3): what happens on the gateway, POSTed to the backend's
//! `WEBHOOK_URL`, at least once, by one node of the cluster.
//!
//! Every event is stored in the outbox table first (`crate::db::outbox`): `message.created`
//! and `notifications.read` in the transaction of their change, presence and room events
//! through [`Recorder`], a batch writer off the hot path that a graceful stop drains. The
//! [`delivery`] loop of each node claims due rows with a lease, POSTs them signed, and on
//! anything but a 2xx tries again later with exponential backoff, with the same `id`.
//!
//! While the loop has room, a node stores its own new events already leased to itself and
//! hands them to its loop in memory ([`Webhooks::before_store`]), so that a new event costs
//! one write (its insert) plus a share of a batched "delivered" write, not a claim as well.
//!
//! While the database does not take the recorder's writes, its queue holds up to
//! `WebhookConfig::queue_max` events in memory; past that, new presence and room events are
//! dropped and counted (`sio_webhook_events_dropped_total`), with one warning per outage.

pub mod delivery;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering::Relaxed},
    },
    time::Duration,
};

use tokio::sync::{Notify, mpsc};

use crate::{
    config::WebhookConfig,
    db::{
        Db,
        outbox::{self, Claimed, Lease, NewEvent, Record},
    },
};

/// Most presence and room events written in one transaction.
const BATCH: usize = 256;
/// How long the recorder gathers events before it writes them: one transaction for what
/// arrives meanwhile, not one for every few (each costs SQLite its locks and whole pages of
/// log, whatever the number of rows).
const GATHER: Duration = Duration::from_millis(10);
/// Longest wait between two tries of a batch the database did not take.
const WRITE_RETRY_MAX: Duration = Duration::from_secs(5);

/// Events handed to the delivery loop in memory, at most; more are stored due and claimed.
const HANDED_MAX: usize = 256;

/// This node's webhooks: the filter, the recorder's queue, and the delivery loop's wake-up.
pub struct Webhooks {
    cfg: WebhookConfig,
    queue: std::sync::Mutex<Option<mpsc::Sender<NewEvent>>>,
    /// Set while the recorder's queue is full and events are dropped (one warning each time).
    dropping: AtomicBool,
    /// This node's name in leases.
    owner: Arc<str>,
    /// New events leased to this node, on their way to its delivery loop.
    handed: mpsc::Sender<Claimed>,
    /// Woken when events were stored, so delivery starts without waiting for its poll.
    pub stored: Notify,
    /// Set by the delivery loop while the receiver fails every call (it then probes with one
    /// event per pause); new events are stored due instead of handed over meanwhile.
    receiver_down: AtomicBool,
}

/// An event being stored in the transaction of a change; see [`Webhooks::before_store`].
pub struct Storing {
    hooks: Arc<Webhooks>,
    slot: Option<mpsc::OwnedPermit<Claimed>>,
    record: Record,
}

impl Storing {
    /// How the change stores its event.
    pub fn record(&self) -> Record {
        self.record.clone()
    }

    /// After the commit: the stored event (if the change stored one) goes to the delivery
    /// loop, in memory when it was leased to this node, else by waking the loop to claim it.
    pub fn stored(self, event: Option<NewEvent>) {
        let Some(event) = event else { return };
        match self.slot {
            Some(slot) if event.lease.is_some() => {
                slot.send(event.into());
            }
            _ => self.hooks.stored.notify_one(),
        }
    }
}

/// Records events into the recorder's queue; see [`Webhooks::sink`].
pub struct Sink {
    tx: mpsc::Sender<NewEvent>,
    hooks: Arc<Webhooks>,
}

impl Sink {
    /// Records an event of `kind` (its type already known to be wanted).
    pub fn record(&self, kind: &'static str, data: serde_json::Value) {
        self.hooks.enqueue(&self.tx, kind, data);
    }
}

/// The batch writer of presence and room events; [`Recorder::drain`] on stop.
pub struct Recorder {
    task: tokio::task::JoinHandle<()>,
}

impl Webhooks {
    /// The webhooks of `cfg`, named `owner` in leases, with their recorder writing to `db`;
    /// the receiving end of the hand-over is for [`delivery::start`].
    pub fn start(cfg: WebhookConfig, db: Db, owner: &str) -> (Arc<Self>, Recorder, mpsc::Receiver<Claimed>) {
        let wanted: Vec<&'static str> = crate::config::WEBHOOK_TYPES
            .into_iter()
            .filter(|kind| cfg.wants(kind))
            .collect();
        crate::telemetry::start_webhook_series(&wanted);
        crate::telemetry::record_webhook_receiver_down(false);
        let (tx, rx) = mpsc::channel(cfg.queue_max.max(1));
        let (handed, handed_rx) = mpsc::channel(HANDED_MAX);
        let hooks = Arc::new(Self {
            cfg,
            queue: std::sync::Mutex::new(Some(tx)),
            dropping: AtomicBool::new(false),
            owner: owner.into(),
            handed,
            stored: Notify::new(),
            receiver_down: Default::default(),
        });
        let task = tokio::spawn(write_batches(rx, db, hooks.clone()));
        (hooks, Recorder { task }, handed_rx)
    }

    /// This node's name in leases.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Whether the receiver counts as down (see [`delivery`]).
    pub fn receiver_down(&self) -> bool {
        self.receiver_down.load(Relaxed)
    }

    /// Says whether the receiver counts as down.
    fn set_receiver_down(&self, down: bool) {
        if self.receiver_down.swap(down, Relaxed) != down {
            crate::telemetry::record_webhook_receiver_down(down);
            if down {
                tracing::warn!("the webhook receiver fails every call: probing it with one event at a time");
            } else {
                tracing::info!("the webhook receiver answers again");
            }
        }
    }

    /// Before a change stores its event: leased to this node when its delivery loop has room
    /// for one more (the event is then handed over in memory), else stored due (also while
    /// the receiver is down).
    pub fn before_store(self: &Arc<Self>) -> Storing {
        let slot = if self.receiver_down() {
            None
        } else {
            self.handed.clone().try_reserve_owned().ok()
        };
        let record = match slot {
            Some(_) => Record::Leased(self.lease()),
            None => Record::Due,
        };
        Storing {
            hooks: self.clone(),
            slot,
            record,
        }
    }

    /// A lease of this node that starts now.
    fn lease(&self) -> Lease {
        Lease {
            owner: self.owner.clone(),
            until_ms: crate::clock::unix_millis() as i64 + delivery::LEASE.as_millis() as i64,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &WebhookConfig {
        &self.cfg
    }

    /// Whether events of `kind` are sent.
    pub fn wants(&self, kind: &str) -> bool {
        self.cfg.wants(kind)
    }

    /// Records a presence or room event (when its type is wanted), to be stored by the
    /// recorder within milliseconds. After [`Webhooks::close`] nothing more is taken.
    pub fn record(&self, kind: &'static str, data: serde_json::Value) {
        if !self.wants(kind) {
            return;
        }
        let queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = queue.as_ref() {
            self.enqueue(tx, kind, data);
        }
    }

    /// Puts an event in the recorder's queue, or drops and counts it when the queue is full
    /// (the database has not taken the recorder's writes for a while): its id and text are
    /// made only when there is room for it.
    fn enqueue(&self, tx: &mpsc::Sender<NewEvent>, kind: &'static str, data: serde_json::Value) {
        match tx.try_reserve() {
            Ok(slot) => slot.send(NewEvent::now(kind, data)),
            Err(mpsc::error::TrySendError::Closed(())) => {}
            Err(mpsc::error::TrySendError::Full(())) => self.dropped(kind),
        }
    }

    /// Counts a dropped event, with one warning when dropping starts.
    fn dropped(&self, kind: &'static str) {
        crate::telemetry::record_webhook_event_dropped(kind);
        if !self.dropping.swap(true, Relaxed) {
            tracing::warn!(
                held = self.cfg.queue_max,
                "the database has not taken webhook events for a while: new presence and room events are dropped"
            );
        }
    }

    /// A handle for recording an event later (after an await, in another task): the
    /// recorder stays open until the handle is dropped, so a graceful stop waits for it.
    /// `None` after [`Webhooks::close`].
    pub fn sink(self: &Arc<Self>) -> Option<Sink> {
        let queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        queue.as_ref().map(|tx| Sink {
            tx: tx.clone(),
            hooks: self.clone(),
        })
    }

    /// Takes no more events: the recorder writes what it has and ends.
    pub fn close(&self) {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

impl Recorder {
    /// Waits up to `budget` for the recorder to store what was recorded before
    /// [`Webhooks::close`] and through the [`Sink`]s still held then.
    pub async fn drain(self, budget: Duration) {
        if tokio::time::timeout(budget, self.task).await.is_err() {
            tracing::warn!("webhook events recorded before the stop were not all stored in time");
        }
    }
}

/// The recorder: stores queued events in batches, retrying while the database is away. As
/// many as the delivery loop has room for are stored leased to this node and handed over.
async fn write_batches(mut rx: mpsc::Receiver<NewEvent>, db: Db, hooks: Arc<Webhooks>) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut slots = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        gather_more(&mut batch, BATCH, GATHER, || rx.try_recv().ok()).await;
        while slots.len() < batch.len() && !hooks.receiver_down() {
            match hooks.handed.clone().try_reserve_owned() {
                Ok(slot) => slots.push(slot),
                Err(_) => break,
            }
        }
        let mut wait = Duration::from_millis(50);
        loop {
            // Leased from this try on: a batch the database took late still gets a full lease.
            let lease = hooks.lease();
            for event in batch.iter_mut().take(slots.len()) {
                event.lease = Some(lease.clone());
            }
            match outbox::insert_all(&db, &batch, crate::clock::unix_millis() as i64).await {
                Ok(()) => {
                    if hooks.dropping.swap(false, Relaxed) {
                        tracing::info!("the database takes webhook events again");
                    }
                    break;
                }
                Err(e) => {
                    e.body();
                    tracing::warn!(events = batch.len(), "could not store webhook events; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(WRITE_RETRY_MAX);
                }
            }
        }
        let handed = slots.len();
        for (event, slot) in batch.drain(..handed).zip(slots.drain(..)) {
            slot.send(event.into());
        }
        if !batch.is_empty() {
            hooks.stored.notify_one();
        }
        batch.clear();
    }
}

/// After a batch's first items: waits `wait`, then adds what arrived meanwhile (taken by
/// `next`), up to `max` (one write for what arrives within `wait`, not one for every few). A
/// full batch goes at once.
async fn gather_more<T>(batch: &mut Vec<T>, max: usize, wait: Duration, mut next: impl FnMut() -> Option<T>) {
    if batch.len() >= max {
        return;
    }
    tokio::time::sleep(wait).await;
    while batch.len() < max
        && let Some(item) = next()
    {
        batch.push(item);
    }
}
