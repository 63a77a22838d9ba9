//! Webhooks (contract section 10.3): what happens on the gateway, POSTed to the backend's
//! `WEBHOOK_URL`, at least once, by one node of the cluster.
//!
//! Every event is stored in the outbox table first (`crate::db::outbox`): `message.created`
//! and `notifications.read` in the transaction of their change, presence and room events
//! through [`Recorder`], a batch writer off the hot path that a graceful stop drains. The
//! [`delivery`] loop of each node claims due rows with a lease, POSTs them signed, and on
//! anything but a 2xx tries again later with exponential backoff, with the same `id`.

pub mod delivery;

use std::time::Duration;

use tokio::sync::{Notify, mpsc};

use crate::{
    config::WebhookConfig,
    db::{
        Db,
        outbox::{self, NewEvent},
    },
};

/// Most presence and room events written in one transaction.
const BATCH: usize = 256;
/// Longest wait between two tries of a batch the database did not take.
const WRITE_RETRY_MAX: Duration = Duration::from_secs(5);

/// This node's webhooks: the filter, the recorder's queue, and the delivery loop's wake-up.
pub struct Webhooks {
    cfg: WebhookConfig,
    queue: std::sync::Mutex<Option<mpsc::UnboundedSender<NewEvent>>>,
    /// Woken when events were stored, so delivery starts without waiting for its poll.
    pub stored: Notify,
}

/// Records events into the recorder's queue; see [`Webhooks::sink`].
pub struct Sink {
    tx: mpsc::UnboundedSender<NewEvent>,
}

impl Sink {
    /// Records an event of `kind` (its type already known to be wanted).
    pub fn record(&self, kind: &'static str, data: serde_json::Value) {
        let _ = self.tx.send(NewEvent::now(kind, data));
    }
}

/// The batch writer of presence and room events; [`Recorder::drain`] on stop.
pub struct Recorder {
    task: tokio::task::JoinHandle<()>,
}

impl Webhooks {
    /// The webhooks of `cfg`, with their recorder writing to `db`.
    pub fn start(cfg: WebhookConfig, db: Db) -> (std::sync::Arc<Self>, Recorder) {
        let (tx, rx) = mpsc::unbounded_channel();
        let hooks = std::sync::Arc::new(Self {
            cfg,
            queue: std::sync::Mutex::new(Some(tx)),
            stored: Notify::new(),
        });
        let task = tokio::spawn(write_batches(rx, db, hooks.clone()));
        (hooks, Recorder { task })
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
            let _ = tx.send(NewEvent::now(kind, data));
        }
    }

    /// A handle for recording an event later (after an await, in another task): the
    /// recorder stays open until the handle is dropped, so a graceful stop waits for it.
    /// `None` after [`Webhooks::close`].
    pub fn sink(&self) -> Option<Sink> {
        let queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        queue.as_ref().map(|tx| Sink { tx: tx.clone() })
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

/// The recorder: stores queued events in batches, retrying while the database is away.
async fn write_batches(mut rx: mpsc::UnboundedReceiver<NewEvent>, db: Db, hooks: std::sync::Arc<Webhooks>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut wait = Duration::from_millis(50);
        loop {
            match outbox::insert_all(&db, &batch, crate::clock::unix_millis() as i64).await {
                Ok(()) => break,
                Err(e) => {
                    e.body();
                    tracing::warn!(events = batch.len(), "could not store webhook events; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(WRITE_RETRY_MAX);
                }
            }
        }
        batch.clear();
        hooks.stored.notify_one();
    }
}
