//! Connect-time summaries read in batches. Every connect needs the user's unread count and
//! newest notification id for `registered`; under a connect burst, one query answers the
//! users of every connect waiting at that moment, instead of one query (and one trip to the
//! database's thread or server) each. A request that finds the reader idle runs at once:
//! nothing waits for a batch to fill.
//!
//! Most connects need no query at all: the reader knows which users have any notification
//! (read once at start, then told of every notification this node stores, hears of from
//! another node, or sees in its poll), and answers "none, nothing unread" for the others from
//! memory. A user whose first notification another node stored a moment ago may be answered
//! "none" just before this node hears of it; the notification then follows `registered`
//! through the socket's delivery gate, as any live one does.

use std::{
    collections::HashSet,
    hash::{BuildHasher, BuildHasherDefault, DefaultHasher},
    sync::Mutex,
};

use tokio::sync::{mpsc, oneshot};

use super::{
    Db,
    notifications::{self, Summary},
};
use crate::error::{AppError, Result};

/// Most users one query reads (and most requests waiting in line before senders wait).
const MAX_BATCH: usize = 64;

type Request = (String, oneshot::Sender<Result<Summary>>);

/// Handle to the task that reads summaries; cheap to share.
pub struct SummaryReader {
    requests: mpsc::Sender<Request>,
    /// Hashes of the user ids that have at least one notification (8 bytes per such user; a
    /// collision only costs a query). `None` until loaded: every summary is read then.
    with_notifications: Mutex<Option<HashSet<u64>>>,
}

/// Hashes user ids the same way in every process (no random seed needed: a collision only
/// costs a query).
type UserHasher = BuildHasherDefault<DefaultHasher>;

fn user_hash(user_id: &str) -> u64 {
    UserHasher::default().hash_one(user_id)
}

impl SummaryReader {
    /// Starts the reading task on the current Tokio runtime; it ends when the reader is
    /// dropped.
    pub fn start(db: Db) -> Self {
        let (requests, rx) = mpsc::channel(MAX_BATCH * 4);
        tokio::spawn(read_batches(db, rx));
        Self {
            requests,
            with_notifications: Mutex::new(None),
        }
    }

    /// Learns from the database which users have notifications; from then on the others are
    /// answered from memory. Call once at start, before the node serves.
    pub async fn load_users(&self, db: &Db) -> Result<()> {
        let users = notifications::users_with_notifications(db).await?;
        *self.known() = Some(users.iter().map(|u| user_hash(u)).collect());
        Ok(())
    }

    /// Notes that `user_id` has a notification now.
    pub fn note_user(&self, user_id: &str) {
        if let Some(set) = self.known().as_mut() {
            set.insert(user_hash(user_id));
        }
    }

    fn known(&self) -> std::sync::MutexGuard<'_, Option<HashSet<u64>>> {
        self.with_notifications.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The unread count and newest notification id of `user_id`.
    pub async fn summary(&self, user_id: &str) -> Result<Summary> {
        if self
            .known()
            .as_ref()
            .is_some_and(|set| !set.contains(&user_hash(user_id)))
        {
            return Ok(Summary::default());
        }
        let (tx, rx) = oneshot::channel();
        self.requests
            .send((user_id.to_string(), tx))
            .await
            .map_err(|_| AppError::Unavailable("database"))?;
        rx.await.map_err(|_| AppError::Unavailable("database"))?
    }
}

/// Takes whatever requests are waiting (at most [`MAX_BATCH`]), answers them with one
/// query, and repeats.
async fn read_batches(db: Db, mut rx: mpsc::Receiver<Request>) {
    let mut batch: Vec<Request> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut users: Vec<&str> = batch.iter().map(|(user, _)| user.as_str()).collect();
        users.sort_unstable();
        users.dedup();
        match notifications::summaries(&db, &users).await {
            Ok(found) => {
                for (user, reply) in batch.drain(..) {
                    let _ = reply.send(Ok(found.get(&user).cloned().unwrap_or_default()));
                }
            }
            Err(e) => {
                tracing::warn!(cause = %e, users = users.len(), "reading notification summaries failed");
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(AppError::Unavailable("database")));
                }
            }
        }
    }
}
