//! One node's own state, below the services and the two fronts: the shared [`AppState`]
//! (configuration, database, cluster link, counters), and one module per kind of bookkeeping.

pub mod activity;
pub mod expiry;
pub mod limits;
pub mod room_sizes;
pub mod session;

use std::{ops::Deref, sync::Arc};

use crate::{
    auth::Verifier,
    cluster::Cluster,
    config::Config,
    db::{Db, summary_reader::SummaryReader},
    proxy::EventProxy,
    webhooks::Webhooks,
};
use activity::ActivityFeed;
use expiry::ExpirySchedule;
use limits::ConnectionLimits;
use room_sizes::RoomSizes;
use session::RepairQueue;

/// Number of stripes of the per-user notification lock.
const CREATE_LOCK_STRIPES: usize = 64;

/// The node's links to the backend, each on when configured.
#[derive(Default)]
pub struct BackendLinks {
    /// The event proxy (`PROXY_URL`).
    pub proxy: Option<EventProxy>,
    /// Webhooks (`WEBHOOK_URL`).
    pub webhooks: Option<Arc<Webhooks>>,
}

/// What every socket event and HTTP request may need.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// The fields behind [`AppState`].
pub struct Inner {
    /// The validated configuration.
    pub cfg: Config,
    /// The database.
    pub db: Db,
    /// Token verification.
    pub verifier: Verifier,
    /// Reads `registered`'s notification counts, batched under connect bursts.
    pub summaries: SummaryReader,
    /// Sockets of this node per client room, for the announcement threshold.
    pub room_sizes: RoomSizes,
    /// When this node's sockets' tokens run out.
    pub expiry: ExpirySchedule,
    /// Users whose sockets wait for notifications from the database (`crate::service::delivery`).
    pub repairs: RepairQueue,
    /// Connection counters of this node.
    pub limits: Arc<ConnectionLimits>,
    /// Service keys accepted by the HTTP API.
    pub api_keys: Vec<String>,
    /// The link to other nodes, when `REDIS_URL` is set.
    pub cluster: Option<Arc<Cluster>>,
    /// The HMAC secret, kept only when the browser demo (`DEMO_DIR`) may sign tokens.
    pub demo_secret: Option<Vec<u8>>,
    /// What happens to sockets, for an observer (the admin UI) while one watches.
    pub activity: ActivityFeed,
    /// The event proxy, when `PROXY_URL` is set.
    pub proxy: Option<EventProxy>,
    /// Webhooks, when `WEBHOOK_URL` is set.
    pub webhooks: Option<Arc<Webhooks>>,
    /// Serialises notification creation per user on this node, so that this node hands a
    /// user's notifications to its sockets in the order they were stored, without a repair (the
    /// order itself comes from the store; a striped lock: bounded memory, no map to clean).
    create_locks: Vec<tokio::sync::Mutex<()>>,
}

impl AppState {
    /// Assembles the state.
    pub fn new(
        cfg: Config,
        db: Db,
        verifier: Verifier,
        api_keys: Vec<String>,
        cluster: Option<Arc<Cluster>>,
        jwt_secret: Option<Vec<u8>>,
        backend: BackendLinks,
    ) -> Self {
        let demo_secret = cfg.demo_dir.as_ref().and(jwt_secret);
        // With several nodes the per-user bound is counted in Redis, not here.
        let per_user = if cluster.is_some() {
            usize::MAX
        } else {
            cfg.max_connections_per_user
        };
        let limits = ConnectionLimits::new(cfg.max_total_connections, per_user);
        let create_locks = (0..CREATE_LOCK_STRIPES).map(|_| tokio::sync::Mutex::new(())).collect();
        let summaries = SummaryReader::start(db.clone());
        Self(Arc::new(Inner {
            cfg,
            db,
            verifier,
            summaries,
            room_sizes: RoomSizes::default(),
            expiry: ExpirySchedule::default(),
            repairs: RepairQueue::default(),
            limits,
            api_keys,
            cluster,
            demo_secret,
            activity: ActivityFeed::new(activity::QUEUE_CAPACITY),
            proxy: backend.proxy,
            webhooks: backend.webhooks,
            create_locks,
        }))
    }

    /// When a token expiring at `exp` stops being accepted: `exp` plus the leeway.
    pub fn expiry_deadline(&self, exp: u64) -> u64 {
        exp.saturating_add(self.verifier.leeway_secs())
    }

    /// Webhooks, when events of `kind` are sent.
    pub fn webhooks_for(&self, kind: &str) -> Option<&Arc<Webhooks>> {
        self.webhooks.as_ref().filter(|w| w.wants(kind))
    }

    /// Records a presence or room webhook event, when webhooks send its type.
    pub fn record_webhook(&self, kind: &'static str, data: impl FnOnce() -> serde_json::Value) {
        if let Some(hooks) = self.webhooks_for(kind) {
            hooks.record(kind, data());
        }
    }

    /// The lock stripe guarding notification creation for `user_id`.
    pub fn create_lock(&self, user_id: &str) -> &tokio::sync::Mutex<()> {
        // FNV-1a: stable and cheap; only the spread matters here.
        let hash = user_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        &self.0.create_locks[(hash % CREATE_LOCK_STRIPES as u64) as usize]
    }
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
