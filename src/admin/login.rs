//! Admin UI logins: credentials checked with bcrypt, sessions that expire, and a throttle on
//! failed attempts.
//!
//! A login with credentials costs a bcrypt run (tens of milliseconds of CPU, on purpose).
//! Once [`MAX_FAILURES_PER_MINUTE`] logins with credentials have failed on this node within a
//! minute (attempts still running count too), further ones are refused at once, without
//! bcrypt, until the oldest failure is a minute old. Resuming a session (`sessionId`) is never
//! throttled, and an attempt without credentials is refused without being counted, so a UI
//! already logged in keeps working while someone guesses passwords. A successful login issues
//! a session id valid for [`SESSION_TTL`]; at most [`MAX_SESSIONS`] are kept, the one closest
//! to expiry dropped first.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::secrets::random_hex;

/// How long an admin session id stays valid.
pub const SESSION_TTL: Duration = Duration::from_secs(24 * 3600);
/// Most admin sessions kept at once (per node).
pub const MAX_SESSIONS: usize = 64;
/// Failed credential logins per minute (per node) before logins are refused without bcrypt.
pub const MAX_FAILURES_PER_MINUTE: usize = 5;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// Credentials and sessions of the admin UI.
pub struct AdminAuth {
    username: String,
    password_hash: String,
    state: Mutex<LoginState>,
}

/// What an admin login attempt came to.
#[derive(Debug, PartialEq)]
pub enum Login {
    /// A valid `sessionId` was given.
    Resumed,
    /// The credentials were right: a new session id.
    Issued(String),
    /// Wrong or missing credentials.
    Refused,
    /// Too many failed logins in the last minute: refused without checking.
    Throttled,
}

#[derive(Default)]
struct LoginState {
    /// Session id → when it expires.
    sessions: HashMap<String, Instant>,
    /// When the failed logins of the last minute happened, oldest first.
    failures: VecDeque<Instant>,
    /// Credential checks running now (each may become a failure).
    checking: usize,
}

impl AdminAuth {
    /// Credentials from `ADMIN_USERNAME` and `ADMIN_PASSWORD_HASH`.
    pub fn new(username: String, password_hash: String) -> Self {
        Self {
            username,
            password_hash,
            state: Mutex::default(),
        }
    }

    /// Checks the `auth` of an `/admin` handshake: `{ sessionId }` or `{ username, password }`.
    pub async fn check(&self, auth: &serde_json::Value) -> Login {
        if let Some(id) = auth.get("sessionId").and_then(|v| v.as_str())
            && self.lock().session_valid(id, Instant::now())
        {
            return Login::Resumed;
        }
        let user = auth.get("username").and_then(|v| v.as_str());
        let password = auth.get("password").and_then(|v| v.as_str()).map(str::to_string);
        let (Some(user), Some(password)) = (user, password) else {
            // No credentials (a stale session after a restart, say): nothing to check or count.
            return Login::Refused;
        };
        if !self.lock().start_check(Instant::now()) {
            return Login::Throttled;
        }
        let ok = user == self.username && {
            let hash = self.password_hash.clone();
            // bcrypt is slow on purpose; keep it off the async workers.
            tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false)
        };
        let mut state = self.lock();
        state.end_check(ok, Instant::now());
        if ok {
            Login::Issued(state.issue(Instant::now()))
        } else {
            Login::Refused
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LoginState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl LoginState {
    /// Whether `id` is a session that has not expired; an expired one is forgotten.
    fn session_valid(&mut self, id: &str, now: Instant) -> bool {
        match self.sessions.get(id) {
            Some(expires) if *expires > now => true,
            Some(_) => {
                self.sessions.remove(id);
                false
            }
            None => false,
        }
    }

    /// Admits one credential check unless the last minute's failures, with the checks still
    /// running, reach the bound.
    fn start_check(&mut self, now: Instant) -> bool {
        while self
            .failures
            .front()
            .is_some_and(|t| now.duration_since(*t) >= FAILURE_WINDOW)
        {
            self.failures.pop_front();
        }
        if self.failures.len() + self.checking >= MAX_FAILURES_PER_MINUTE {
            return false;
        }
        self.checking += 1;
        true
    }

    fn end_check(&mut self, ok: bool, now: Instant) {
        self.checking = self.checking.saturating_sub(1);
        if !ok {
            self.failures.push_back(now);
        }
    }

    /// A new session id, valid for [`SESSION_TTL`]; expired sessions are dropped, and the
    /// one closest to expiry when [`MAX_SESSIONS`] are kept.
    fn issue(&mut self, now: Instant) -> String {
        self.sessions.retain(|_, expires| *expires > now);
        if self.sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = self
                .sessions
                .iter()
                .min_by_key(|(_, expires)| **expires)
                .map(|(id, _)| id.clone())
        {
            self.sessions.remove(&oldest);
        }
        let id = random_hex(16);
        self.sessions.insert(id.clone(), now + SESSION_TTL);
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Sessions end after [`SESSION_TTL`], and no more than [`MAX_SESSIONS`] are kept.
    #[test]
    fn sessions_expire_and_are_capped() {
        let mut state = LoginState::default();
        let t0 = Instant::now();
        let first = state.issue(t0);
        assert!(state.session_valid(&first, t0 + SESSION_TTL - Duration::from_secs(1)));
        assert!(!state.session_valid(&first, t0 + SESSION_TTL));
        assert!(!state.session_valid(&first, t0), "an expired session is forgotten");

        let ids: Vec<String> = (0..MAX_SESSIONS + 10)
            .map(|i| state.issue(t0 + Duration::from_secs(i as u64)))
            .collect();
        assert_eq!(state.sessions.len(), MAX_SESSIONS);
        assert!(!state.session_valid(&ids[0], t0), "the oldest went first");
        assert!(state.session_valid(ids.last().unwrap(), t0));
    }

    /// Five failures within a minute close credential logins until the first is a minute old;
    /// checks still running count against the bound.
    #[test]
    fn failures_throttle_for_a_minute() {
        let mut state = LoginState::default();
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES_PER_MINUTE as u64 {
            assert!(state.start_check(t0 + Duration::from_secs(i)));
            state.end_check(false, t0 + Duration::from_secs(i));
        }
        assert!(!state.start_check(t0 + Duration::from_secs(59)));
        assert!(
            state.start_check(t0 + Duration::from_secs(60)),
            "the first failure has aged out"
        );
        state.end_check(true, t0 + Duration::from_secs(60));

        let mut fresh = LoginState::default();
        for _ in 0..MAX_FAILURES_PER_MINUTE {
            assert!(fresh.start_check(t0));
        }
        assert!(!fresh.start_check(t0), "running checks count");
    }

    /// Through the real check: after five wrong passwords even the right one is refused
    /// without bcrypt, while a session issued before still resumes.
    #[tokio::test]
    async fn a_throttled_node_still_resumes_sessions() {
        let auth = AdminAuth::new("admin".into(), bcrypt::hash("right", 4).unwrap());
        let Login::Issued(session) = auth.check(&json!({"username": "admin", "password": "right"})).await else {
            panic!("the right password was refused");
        };
        for _ in 0..MAX_FAILURES_PER_MINUTE {
            let wrong = auth.check(&json!({"username": "admin", "password": "wrong"})).await;
            assert_eq!(wrong, Login::Refused);
        }
        let right = json!({"username": "admin", "password": "right"});
        assert_eq!(auth.check(&right).await, Login::Throttled);
        assert_eq!(auth.check(&json!({ "sessionId": session })).await, Login::Resumed);
        assert_eq!(auth.check(&json!({"sessionId": "nope"})).await, Login::Refused);
    }
}
