//! What happens on this node, for an observer above it (the admin UI): a bounded queue of
//! [`Activity`] events that the socket handlers offer and the observer takes. It is fed only
//! while someone watches (an admin client on this node, or, as last checked, on another node
//! of the cluster), so a gateway without an admin UI open builds no event at all. When the
//! queue is full (the observer is behind), events are dropped and counted
//! (`sio_admin_events_dropped_total`): the observer may miss a live update, the handlers never
//! wait.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
};

use socketioxide::socket::{DisconnectReason, Sid};
use tokio::sync::mpsc;

use crate::telemetry;

/// Events the queue holds before new ones are dropped.
pub const QUEUE_CAPACITY: usize = 1024;

/// Something that happened to a socket of the default namespace.
#[derive(Debug)]
pub enum Activity {
    /// The socket finished connecting (it has registered).
    Connected {
        /// The socket.
        sid: Sid,
    },
    /// The socket left.
    Disconnected {
        /// The socket.
        sid: Sid,
        /// Why, as Socket.IO tells it.
        reason: DisconnectReason,
    },
    /// The socket joined a room.
    RoomJoined {
        /// The room.
        room: String,
        /// The socket.
        sid: Sid,
    },
    /// The socket left a room.
    RoomLeft {
        /// The room.
        room: String,
        /// The socket.
        sid: Sid,
    },
}

/// Who watches: admin sockets of this node, and whether another node has one.
#[derive(Default)]
pub struct Watchers {
    local: AtomicUsize,
    remote: AtomicBool,
    dropped: AtomicU64,
}

impl Watchers {
    /// Whether any admin client is connected, here or (as last checked) on another node.
    pub fn any(&self) -> bool {
        self.local.load(Ordering::Relaxed) > 0 || self.remote.load(Ordering::Relaxed)
    }

    /// Admin sockets connected to this node.
    pub fn local(&self) -> usize {
        self.local.load(Ordering::Relaxed)
    }

    /// Records whether another node has an admin socket (the forwarding task checks).
    pub fn set_remote(&self, watching: bool) {
        self.remote.store(watching, Ordering::Relaxed);
    }
}

/// The queue of [`Activity`] events and who watches it.
pub struct ActivityFeed {
    tx: mpsc::Sender<Activity>,
    rx: Mutex<Option<mpsc::Receiver<Activity>>>,
    watchers: Arc<Watchers>,
}

impl ActivityFeed {
    /// A feed whose queue holds `capacity` events; its receiving end waits for
    /// [`ActivityFeed::take_receiver`].
    pub fn new(capacity: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity);
        Self {
            tx,
            rx: Mutex::new(Some(rx)),
            watchers: Arc::default(),
        }
    }

    /// The receiving end, for the one observer (`None` once taken).
    pub fn take_receiver(&self) -> Option<mpsc::Receiver<Activity>> {
        self.rx.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Queues the event `make` builds, if someone watches; builds nothing otherwise.
    /// A full queue drops the event and counts it.
    pub fn offer(&self, make: impl FnOnce() -> Activity) {
        if !self.watchers.any() {
            return;
        }
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(make()) {
            self.watchers.dropped.fetch_add(1, Ordering::Relaxed);
            telemetry::record_admin_event_dropped();
        }
    }

    /// Events dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.watchers.dropped.load(Ordering::Relaxed)
    }

    /// The watcher counts, shared with the forwarding task.
    pub fn watchers(&self) -> Arc<Watchers> {
        self.watchers.clone()
    }

    /// Counts one watcher (an admin socket) of this node until the guard (kept in the socket's
    /// extensions) is dropped with the socket.
    pub fn watch(&self) -> WatchGuard {
        self.watchers.local.fetch_add(1, Ordering::Relaxed);
        WatchGuard {
            _watching: Arc::new(Watching(self.watchers.clone())),
        }
    }
}

/// Keeps an admin socket counted as watching while it lives (cheap to clone).
#[derive(Clone)]
pub struct WatchGuard {
    _watching: Arc<Watching>,
}

/// Gives the count back when the last clone of a [`WatchGuard`] is dropped.
pub struct Watching(Arc<Watchers>);

impl Drop for Watching {
    fn drop(&mut self) {
        self.0.local.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(i: usize) -> Activity {
        Activity::RoomJoined {
            room: format!("r{i}"),
            sid: Sid::new(),
        }
    }

    /// Nothing is built or queued while nobody watches; a full queue drops and counts.
    #[test]
    fn fed_only_while_watched_and_bounded() {
        let hub = ActivityFeed::new(2);
        let mut rx = hub.take_receiver().unwrap();
        assert!(hub.take_receiver().is_none(), "one observer");
        hub.offer(|| unreachable!("built although nobody watches"));
        assert!(rx.try_recv().is_err());

        let guard = hub.watch();
        for i in 0..5 {
            hub.offer(|| joined(i));
        }
        assert_eq!(hub.dropped(), 3);
        assert!(rx.try_recv().is_ok() && rx.try_recv().is_ok() && rx.try_recv().is_err());

        let copy = guard.clone();
        drop(guard);
        assert!(hub.watchers().any(), "a clone still watches");
        drop(copy);
        assert!(!hub.watchers().any());
        hub.offer(|| unreachable!("built after the last watcher left"));

        hub.watchers().set_remote(true);
        hub.offer(|| joined(9));
        assert!(rx.try_recv().is_ok(), "a watcher on another node counts");
    }
}
