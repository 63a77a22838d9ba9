//! Per-socket state, kept in the socket's extensions from the handshake to the disconnect:
//! who the user is, what the token allows, the connection slot, the event rate, and the
//! notification delivery gate that makes catch-up and live delivery meet without gaps or
//! repeats.

use std::{
    collections::HashSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use socketioxide::{adapter::Adapter, extract::SocketRef};

use crate::{
    auth::Claims,
    db::notifications::Notification,
    limits::{ConnectionGuard, RateDecision, RateLimiter},
};

/// The room every socket of a user joins.
pub fn user_room(user_id: &str) -> String {
    format!("user:{user_id}")
}

/// Prefix of the reserved per-user rooms.
pub const USER_ROOM_PREFIX: &str = "user:";

/// What the current token grants; replaced by `refreshToken`.
#[derive(Debug, Clone)]
pub struct Grant {
    /// Expiry of the token, seconds since the epoch.
    pub exp: u64,
    /// The `rooms` claim, if the token had one.
    pub rooms: Option<Vec<String>>,
}

/// Where notification delivery to this socket stands.
enum Delivery {
    /// Catch-up (or the `registered` step) is running: live notifications wait here.
    Gated(Vec<Notification>),
    /// Live notifications go straight to the socket, except those the catch-up already sent
    /// (sorted ids, at most the catch-up's 100): a notification stored just before the
    /// catch-up query can have its live delivery arrive after the gate opened.
    Open(Vec<String>),
}

/// Everything the gateway knows about one connected socket.
pub struct Session {
    /// The user id (`sub`).
    pub user_id: String,
    grant: Mutex<Grant>,
    guard: ConnectionGuard,
    rate: Mutex<RateLimiter>,
    delivery: Mutex<Delivery>,
    /// Milliseconds since `epoch` of the last event, for the idle timeout.
    last_event_ms: AtomicU64,
    epoch: Instant,
    /// Connect time, milliseconds since the Unix epoch (for the admin UI).
    connected_at_ms: u64,
    /// Set when the disconnect began; later events are dropped.
    closing: std::sync::atomic::AtomicBool,
    /// Client rooms this socket joined through `joinRoom` (counted in `RoomSizes`).
    counted_rooms: Mutex<Vec<String>>,
}

/// The shared handle stored in socket extensions.
pub type SessionRef = Arc<Session>;

impl Session {
    /// A session for a verified token holding a connection slot.
    pub fn new(claims: Claims, guard: ConnectionGuard, rate: RateLimiter) -> SessionRef {
        let now = Instant::now();
        Arc::new(Self {
            user_id: claims.sub,
            grant: Mutex::new(Grant {
                exp: claims.exp,
                rooms: claims.rooms,
            }),
            guard,
            rate: Mutex::new(rate),
            delivery: Mutex::new(Delivery::Gated(Vec::new())),
            last_event_ms: AtomicU64::new(0),
            epoch: now,
            connected_at_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            closing: std::sync::atomic::AtomicBool::new(false),
            counted_rooms: Mutex::new(Vec::new()),
        })
    }

    /// The current grant.
    pub fn grant(&self) -> Grant {
        self.grant.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Expiry of the current token, seconds since the epoch (without cloning the grant).
    pub fn expires_at(&self) -> u64 {
        self.grant.lock().unwrap_or_else(|e| e.into_inner()).exp
    }

    /// Replaces the grant after a successful `refreshToken`.
    pub fn refresh(&self, claims: &Claims) {
        *self.grant.lock().unwrap_or_else(|e| e.into_inner()) = Grant {
            exp: claims.exp,
            rooms: claims.rooms.clone(),
        };
    }

    /// Runs `f` on the client rooms this socket joined through `joinRoom` (those counted in
    /// `RoomSizes`), holding this socket's room lock: a join's or leave's check and change
    /// happen as one step, so concurrent events of one socket cannot join a room twice or
    /// pass `MAX_ROOMS_PER_SOCKET` together. `f` must not block or await.
    pub fn with_counted_rooms<R>(&self, f: impl FnOnce(&mut Vec<String>) -> R) -> R {
        f(&mut self.counted_rooms.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Takes every counted room (at the disconnect).
    pub fn take_counted_rooms(&self) -> Vec<String> {
        std::mem::take(&mut *self.counted_rooms.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Connect time, milliseconds since the Unix epoch.
    pub fn connected_at_ms(&self) -> u64 {
        self.connected_at_ms
    }

    /// Marks the socket as disconnecting: its later events do nothing and get no answer.
    pub fn mark_closing(&self) {
        self.closing.store(true, Ordering::Release);
    }

    /// Whether the disconnect has begun.
    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Gives the connection slot back (on disconnect).
    pub fn release(&self) {
        self.guard.release();
    }

    /// Counts one event against the rate limit, and notes the activity for the idle timeout.
    pub fn check_rate(&self) -> RateDecision {
        let now = Instant::now();
        self.last_event_ms
            .store(now.duration_since(self.epoch).as_millis() as u64, Ordering::Relaxed);
        self.rate.lock().unwrap_or_else(|e| e.into_inner()).check(now)
    }

    /// Time since the last event (or since connect).
    pub fn idle_for(&self) -> std::time::Duration {
        let last = std::time::Duration::from_millis(self.last_event_ms.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(last)
    }

    /// Hands a live notification to this socket: sent now, or held while the gate is closed.
    pub fn deliver<A: Adapter>(&self, socket: &SocketRef<A>, n: &Notification) -> bool {
        let mut d = self.delivery.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *d {
            Delivery::Gated(held) => {
                held.push(n.clone());
                true
            }
            Delivery::Open(caught_up) if caught_up.binary_search(&n.id).is_ok() => true,
            // Emitting only queues the packet on the socket; nothing awaits under the lock.
            Delivery::Open(_) => socket.emit("notification", n).is_ok(),
        }
    }

    /// Opens the gate: sends the held notifications that catch-up did not already send, in id
    /// order, then lets live ones through.
    pub fn open_delivery<A: Adapter>(&self, socket: &SocketRef<A>, already_sent: &HashSet<String>) {
        let mut caught_up: Vec<String> = already_sent.iter().cloned().collect();
        caught_up.sort_unstable();
        let mut d = self.delivery.lock().unwrap_or_else(|e| e.into_inner());
        if let Delivery::Gated(held) = std::mem::replace(&mut *d, Delivery::Open(caught_up)) {
            let mut held = held;
            held.sort_by(|a, b| a.id.cmp(&b.id));
            held.dedup_by(|a, b| a.id == b.id);
            for n in held.iter().filter(|n| !already_sent.contains(&n.id)) {
                let _ = socket.emit("notification", n);
            }
        }
    }
}
