//! Per-socket state, kept in the socket's extensions from the handshake to the disconnect:
//! who the user is, what the token allows, the connection slot, the event rate, and the
//! notification delivery gate that makes catch-up and live delivery meet without gaps or
//! repeats.

use std::{
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
    node::limits::{ConnectionGuard, RateDecision, RateLimiter},
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

/// Most live notifications held while a socket registers; past it they are dropped and read
/// back from the database once the gate opens (they are all stored).
const MAX_HELD: usize = 1024;

/// Where notification delivery to this socket stands.
enum Delivery {
    /// Catch-up (or the `registered` step) is running: live notifications wait here, each with
    /// the id of its predecessor. `overflowed` says some were dropped for space.
    Gated {
        held: Vec<(Notification, Option<String>)>,
        overflowed: bool,
    },
    /// Registered. `cursor` is the newest notification the socket has (or the user's newest
    /// when `registered` was sent); `behind` says it may lack newer ones (a gap in the live
    /// stream, or an emit that failed) until the repair loop reads them from the database.
    Open { cursor: Option<String>, behind: bool },
}

/// What became of a live notification handed to a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handed {
    /// Queued on the socket.
    Sent,
    /// Held until the socket has registered.
    Held,
    /// The socket already has it.
    Duplicate,
    /// Not sent: the socket misses something before it, or the emit failed. The repair loop
    /// must bring the socket up to date from the database.
    Behind,
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
    /// Set once the socket's going was recorded (see [`Session::first_departure`]).
    departed: std::sync::atomic::AtomicBool,
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
            delivery: Mutex::new(Delivery::Gated {
                held: Vec::new(),
                overflowed: false,
            }),
            last_event_ms: AtomicU64::new(0),
            epoch: now,
            connected_at_ms: crate::clock::unix_millis(),
            closing: std::sync::atomic::AtomicBool::new(false),
            departed: std::sync::atomic::AtomicBool::new(false),
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

    /// `true` the first time only: the socket's going is recorded once, by its disconnect
    /// handler or by a stopping server, whichever comes first.
    pub fn first_departure(&self) -> bool {
        !self.departed.swap(true, Ordering::AcqRel)
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

    /// Hands a live notification, whose user's previous notification is `prev`, to this
    /// socket: sent when it follows what the socket has, held while the socket registers,
    /// otherwise left to the repair loop ([`Handed::Behind`]). Never sends one after a newer one.
    pub fn deliver<A: Adapter>(&self, socket: &SocketRef<A>, n: &Notification, prev: Option<&str>) -> Handed {
        let mut d = self.delivery();
        match &mut *d {
            Delivery::Gated { held, overflowed } => {
                if held.len() < MAX_HELD {
                    held.push((n.clone(), prev.map(str::to_string)));
                } else {
                    *overflowed = true;
                }
                Handed::Held
            }
            Delivery::Open { cursor, .. } if has(cursor, n) => Handed::Duplicate,
            Delivery::Open { behind: true, .. } => Handed::Behind,
            Delivery::Open { cursor, behind } => {
                // Emitting only queues the packet on the socket; nothing awaits under the lock.
                if cursor.as_deref() == prev && send_next(socket, cursor, n) {
                    Handed::Sent
                } else {
                    *behind = true;
                    Handed::Behind
                }
            }
        }
    }

    /// Opens the gate once `registered` (announcing `cursor`, the user's newest id then) is
    /// out: the held notifications newer than `cursor` follow in id order as far as they
    /// continue it. Returns whether the socket is behind (the repair loop takes over).
    pub fn open_delivery<A: Adapter>(&self, socket: &SocketRef<A>, cursor: Option<String>) -> bool {
        let mut d = self.delivery();
        let gated = std::mem::replace(&mut *d, Delivery::Open { cursor, behind: false });
        let Delivery::Gated { mut held, overflowed } = gated else {
            return false;
        };
        let Delivery::Open { cursor, behind } = &mut *d else {
            return false;
        };
        *behind = overflowed;
        held.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        held.dedup_by(|a, b| a.0.id == b.0.id);
        for (n, prev) in held.iter().take_while(|_| !overflowed) {
            if has(cursor, n) {
                continue;
            }
            if cursor.as_deref() != prev.as_deref() || !send_next(socket, cursor, n) {
                *behind = true;
                break;
            }
        }
        *behind
    }

    /// The newest notification id this socket has, once it has registered (`Some(None)`: the
    /// user had none); `None` while it registers.
    pub fn delivery_cursor(&self) -> Option<Option<String>> {
        match &*self.delivery() {
            Delivery::Open { cursor, .. } => Some(cursor.clone()),
            Delivery::Gated { .. } => None,
        }
    }

    /// Brings the socket up to date from `rows`: the user's notifications after some id at or
    /// before this socket's cursor, oldest first, without gaps; `complete` says nothing newer
    /// existed when they were read. Sends those past the cursor in order; returns how many it
    /// sent and whether the socket is still behind (an emit failed, or more remain).
    pub fn repair<A: Adapter>(&self, socket: &SocketRef<A>, rows: &[Notification], complete: bool) -> (usize, bool) {
        let mut d = self.delivery();
        let Delivery::Open { cursor, behind } = &mut *d else {
            return (0, false);
        };
        let mut sent = 0;
        for n in rows {
            if has(cursor, n) {
                continue;
            }
            if !send_next(socket, cursor, n) {
                *behind = true;
                return (sent, true);
            }
            sent += 1;
        }
        *behind = !complete;
        (sent, *behind)
    }

    fn delivery(&self) -> std::sync::MutexGuard<'_, Delivery> {
        self.delivery.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Whether a socket whose newest notification is `cursor` already has `n`.
fn has(cursor: &Option<String>, n: &Notification) -> bool {
    cursor.as_deref().is_some_and(|c| n.id.as_str() <= c)
}

/// Queues `n` on the socket and moves `cursor` to it; `false` (cursor unchanged) when the
/// socket cannot take it.
fn send_next<A: Adapter>(socket: &SocketRef<A>, cursor: &mut Option<String>, n: &Notification) -> bool {
    let sent = socket.emit("notification", n).is_ok();
    if sent {
        *cursor = Some(n.id.clone());
    }
    sent
}

/// Users whose sockets on this node are behind (see [`Handed::Behind`]), waiting for the
/// repair loop; a set, so a burst of gaps for one user costs one repair.
#[derive(Default)]
pub struct RepairQueue {
    users: Mutex<std::collections::HashSet<String>>,
    wake: tokio::sync::Notify,
}

impl RepairQueue {
    /// Asks for `user_id`'s sockets to be brought up to date from the database.
    pub fn request(&self, user_id: &str) {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        if !users.contains(user_id) {
            users.insert(user_id.to_string());
        }
        drop(users);
        self.wake.notify_one();
    }

    /// Takes every waiting user.
    pub fn take(&self) -> Vec<String> {
        self.users.lock().unwrap_or_else(|e| e.into_inner()).drain().collect()
    }

    /// Resolves once a request is waiting (at once if one came since the last call).
    pub async fn requested(&self) {
        self.wake.notified().await;
    }
}
