//! How the rest of the gateway tells the admin UI what happens: a bounded queue of
//! [`AdminEvent`]s, fed only while an admin client watches (on this node, or on another node
//! of the cluster), so a gateway without an admin UI open does no admin work at all. When the
//! queue is full (the forwarding task is behind), events are dropped and counted
//! (`sio_admin_events_dropped_total`): the UI may miss a live update, the gateway never waits.

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
};

use tokio::sync::mpsc;

use super::SerializedSocket;
use crate::telemetry;

/// Events the queue holds before new ones are dropped.
pub const QUEUE_CAPACITY: usize = 1024;

/// Something the admin UI should hear about.
#[derive(Debug)]
pub enum AdminEvent {
    /// A socket finished connecting.
    Connected(Box<SerializedSocket>),
    /// A socket left.
    Disconnected {
        /// Its namespace.
        nsp: String,
        /// Its id.
        id: String,
        /// Socket.IO's disconnect reason.
        reason: String,
    },
    /// A socket joined a room.
    RoomJoined {
        /// Its namespace.
        nsp: String,
        /// The room.
        room: String,
        /// The socket id.
        id: String,
    },
    /// A socket left a room.
    RoomLeft {
        /// Its namespace.
        nsp: String,
        /// The room.
        room: String,
        /// The socket id.
        id: String,
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

/// Where the gateway sends [`AdminEvent`]s.
pub struct AdminHub {
    tx: mpsc::Sender<AdminEvent>,
    watchers: Arc<Watchers>,
}

impl AdminHub {
    /// A hub whose queue holds `capacity` events, and the receiving end of that queue.
    pub fn new(capacity: usize) -> (Self, mpsc::Receiver<AdminEvent>) {
        let (tx, rx) = mpsc::channel(capacity);
        let hub = Self {
            tx,
            watchers: Arc::default(),
        };
        (hub, rx)
    }

    /// Queues the event `make` builds, if an admin client watches; builds nothing otherwise.
    /// A full queue drops the event and counts it.
    pub fn offer(&self, make: impl FnOnce() -> AdminEvent) {
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

    /// Counts one admin socket of this node as watching until the guard (kept in the socket's
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

    fn joined(i: usize) -> AdminEvent {
        AdminEvent::RoomJoined {
            nsp: "/".into(),
            room: format!("r{i}"),
            id: "s".into(),
        }
    }

    /// Nothing is built or queued while nobody watches; a full queue drops and counts.
    #[test]
    fn fed_only_while_watched_and_bounded() {
        let (hub, mut rx) = AdminHub::new(2);
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
