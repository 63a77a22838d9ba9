//! Connect-time summaries read in batches. Every connect needs the user's unread count and
//! newest notification id for `registered`; under a connect burst, one query answers the
//! users of every connect waiting at that moment, instead of one query (and one trip to the
//! database's thread or server) each. A request that finds the reader idle runs at once:
//! nothing waits for a batch to fill.

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
}

impl SummaryReader {
    /// Starts the reading task on the current Tokio runtime; it ends when the reader is
    /// dropped.
    pub fn start(db: Db) -> Self {
        let (requests, rx) = mpsc::channel(MAX_BATCH * 4);
        tokio::spawn(read_batches(db, rx));
        Self { requests }
    }

    /// The unread count and newest notification id of `user_id`.
    pub async fn summary(&self, user_id: &str) -> Result<Summary> {
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
