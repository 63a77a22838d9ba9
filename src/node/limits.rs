//! Abuse limits: connection counters (per node and per user) and the per-socket event rate.
//!
//! A connection takes a [`ConnectionGuard`] in the handshake; the guard gives its slot back
//! when the socket disconnects (or, as a fallback, when it is dropped), so a closed tab frees
//! its place at once.

use crate::{
    cluster::Cluster,
    webhooks::{Sink, Webhooks},
};
use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

/// Why a connection was refused. `Display` is the wire code of `connect_error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// `SOCKET_MAX_TOTAL_CONNECTIONS` reached on this node.
    #[error("too_many_connections")]
    TooManyConnections,
    /// `SOCKET_MAX_CONNECTIONS_PER_USER` reached for this user.
    #[error("too_many_user_connections")]
    TooManyUserConnections,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_user: HashMap<String, usize>,
}

/// Connection counters of one node.
pub struct ConnectionLimits {
    max_total: usize,
    max_per_user: usize,
    counts: Mutex<Counts>,
}

/// One connection's slot; gives it back on [`ConnectionGuard::release`] or drop.
pub struct ConnectionGuard {
    limits: Arc<ConnectionLimits>,
    user_id: String,
    released: AtomicBool,
    /// Set when the slot is also counted in Redis (several nodes).
    cluster: Option<Arc<Cluster>>,
    /// Whether this is the user's first connection (in the cluster, when counted there).
    first: bool,
    /// Set when webhooks record `user.offline`: told when the user's last slot goes.
    presence: Option<Arc<Webhooks>>,
}

impl ConnectionLimits {
    /// Counters with the given bounds.
    pub fn new(max_total: usize, max_per_user: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_user,
            counts: Mutex::default(),
        })
    }

    /// Takes a slot for `user_id`. When both bounds are reached, the total one is reported.
    pub fn acquire(self: &Arc<Self>, user_id: &str) -> Result<ConnectionGuard, LimitError> {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if c.total >= self.max_total {
            return Err(LimitError::TooManyConnections);
        }
        let mine = c.per_user.get(user_id).copied().unwrap_or(0);
        if mine >= self.max_per_user {
            return Err(LimitError::TooManyUserConnections);
        }
        c.total += 1;
        *c.per_user.entry(user_id.to_string()).or_insert(0) += 1;
        Ok(ConnectionGuard {
            limits: self.clone(),
            user_id: user_id.to_string(),
            released: AtomicBool::new(false),
            cluster: None,
            first: mine == 0,
            presence: None,
        })
    }

    /// Connections open on this node.
    pub fn total(&self) -> usize {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).total
    }

    /// Connections open on this node for `user_id`.
    pub fn of_user(&self, user_id: &str) -> usize {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .per_user
            .get(user_id)
            .copied()
            .unwrap_or(0)
    }

    /// Gives one slot of `user_id` back; the user's connections left on this node.
    fn release(&self, user_id: &str) -> usize {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.total = c.total.saturating_sub(1);
        match c.per_user.get_mut(user_id) {
            Some(n) => {
                *n -= 1;
                let left = *n;
                if left == 0 {
                    c.per_user.remove(user_id);
                }
                left
            }
            None => 0,
        }
    }
}

impl ConnectionGuard {
    /// Gives the slot back (here and, when counted there, in Redis); later calls do nothing.
    pub fn release(&self) {
        if self.released.swap(true, Ordering::AcqRel) {
            return;
        }
        let left_here = self.limits.release(&self.user_id);
        // Taken now: a graceful stop that closed the webhooks after this point still stores
        // what the task below records.
        let presence = self.presence.as_ref().and_then(|hooks| hooks.sink());
        let user = self.user_id.clone();
        match self.cluster.clone() {
            Some(cluster) => {
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    rt.spawn(async move {
                        // The user's connections left in the cluster; this node's own count
                        // when Redis does not answer.
                        let left = cluster.release_user_slot(&user).await.unwrap_or(left_here);
                        if left == 0 {
                            record_offline(presence.as_ref(), &user);
                        }
                    });
                }
            }
            None if left_here == 0 => record_offline(presence.as_ref(), &user),
            None => {}
        }
    }

    /// Whether this was the user's first connection (in the whole cluster when counted
    /// there): the moment of `user.online`.
    pub fn is_first(&self) -> bool {
        self.first
    }

    /// Records `user.offline` with `hooks` when the user's last connection goes.
    pub fn with_presence(mut self, hooks: Arc<Webhooks>) -> Self {
        self.presence = Some(hooks);
        self
    }

    /// Counts this slot across nodes too: refused when the user's connections on all live
    /// nodes reach `max`. If Redis does not answer, this node's own count decides.
    pub async fn count_in_cluster(mut self, cluster: &Arc<Cluster>, max: usize) -> Result<Self, LimitError> {
        match cluster.acquire_user_slot(&self.user_id, max).await {
            Ok(Some(total)) => {
                self.cluster = Some(cluster.clone());
                self.first = total == 1;
                Ok(self)
            }
            Ok(None) => Err(LimitError::TooManyUserConnections),
            Err(e) => {
                tracing::warn!(cause = %e, "redis unavailable: per-user limit checked on this node only");
                if self.limits.of_user(&self.user_id) > max {
                    Err(LimitError::TooManyUserConnections)
                } else {
                    Ok(self)
                }
            }
        }
    }
}

/// `user.offline { userId }`.
fn record_offline(presence: Option<&Sink>, user: &str) {
    if let Some(sink) = presence {
        sink.record("user.offline", serde_json::json!({ "userId": user }));
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.release();
    }
}

/// What the rate limiter decided for one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// Go ahead.
    Allow,
    /// Refuse with `rate_limited`.
    Refuse,
    /// Refuse, and the socket has been refused in every second for 10 seconds: disconnect it.
    Disconnect,
}

/// How long a socket may stay over its rate (refused at least once a second) before it is cut.
pub const RATE_LIMIT_GRACE: Duration = Duration::from_secs(10);

/// A token bucket per socket, plus the streak of seconds in which it refused.
#[derive(Debug)]
pub struct RateLimiter {
    rate_per_sec: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
    streak_start: Option<Instant>,
    last_refusal: Option<Instant>,
}

impl RateLimiter {
    /// A full bucket of `burst` tokens refilled at `rate_per_sec`.
    pub fn new(rate_per_sec: u32, burst: u32, now: Instant) -> Self {
        Self {
            rate_per_sec: f64::from(rate_per_sec),
            burst: f64::from(burst),
            tokens: f64::from(burst),
            last: now,
            streak_start: None,
            last_refusal: None,
        }
    }

    /// Takes a token for one event at `now`.
    pub fn check(&mut self, now: Instant) -> RateDecision {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate_per_sec).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return RateDecision::Allow;
        }
        let continues = self
            .last_refusal
            .is_some_and(|t| now.saturating_duration_since(t) <= Duration::from_secs(1));
        if !continues {
            self.streak_start = Some(now);
        }
        self.last_refusal = Some(now);
        match self.streak_start {
            Some(start) if now.saturating_duration_since(start) >= RATE_LIMIT_GRACE => RateDecision::Disconnect,
            _ => RateDecision::Refuse,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_user_then_total_and_release_frees_at_once() {
        let l = ConnectionLimits::new(3, 2);
        let a1 = l.acquire("a").unwrap();
        let _a2 = l.acquire("a").unwrap();
        assert_eq!(l.acquire("a").err(), Some(LimitError::TooManyUserConnections));
        let _b1 = l.acquire("b").unwrap();
        // Both bounds reached for `a`: the total one wins.
        assert_eq!(l.acquire("a").err(), Some(LimitError::TooManyConnections));
        a1.release();
        a1.release();
        assert_eq!(l.total(), 2);
        assert!(l.acquire("a").is_ok());
    }

    #[test]
    fn guard_drop_releases() {
        let l = ConnectionLimits::new(10, 1);
        drop(l.acquire("a").unwrap());
        assert_eq!(l.of_user("a"), 0);
        assert!(l.acquire("a").is_ok());
    }

    #[test]
    fn bucket_allows_burst_then_rate() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(20, 40, t0);
        for _ in 0..40 {
            assert_eq!(r.check(t0), RateDecision::Allow);
        }
        assert_eq!(r.check(t0), RateDecision::Refuse);
        // 100 ms later, two tokens are back.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(r.check(t1), RateDecision::Allow);
        assert_eq!(r.check(t1), RateDecision::Allow);
        assert_eq!(r.check(t1), RateDecision::Refuse);
    }

    #[test]
    fn ten_seconds_of_refusals_disconnect() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(1, 1, t0);
        assert_eq!(r.check(t0), RateDecision::Allow);
        let mut last = RateDecision::Allow;
        // Five events a second, for eleven seconds: always over the rate.
        for i in 1..=55 {
            last = r.check(t0 + Duration::from_millis(i * 200));
            if last == RateDecision::Disconnect {
                assert!(i * 200 >= 10_000, "cut after {} ms", i * 200);
                break;
            }
        }
        assert_eq!(last, RateDecision::Disconnect);
    }

    #[test]
    fn a_quiet_second_resets_the_streak() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(1, 1, t0);
        r.check(t0);
        assert_eq!(r.check(t0), RateDecision::Refuse);
        // Refused again 9 s later, after quiet seconds in between: a new streak, no cut.
        assert_eq!(r.check(t0 + Duration::from_millis(9_500)), RateDecision::Allow);
        assert_eq!(r.check(t0 + Duration::from_millis(9_600)), RateDecision::Refuse);
        assert_eq!(r.check(t0 + Duration::from_millis(10_000)), RateDecision::Refuse);
    }
}
