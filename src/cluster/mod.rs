//! Scale-out over Redis: the `socketioxide-redis` adapter carries rooms and broadcasts, and
//! this module adds what the adapter has no verb for, on the same Redis connection:
//!
//! - notification fan-out: each node delivers a notification to its own sockets through
//!   their delivery gates (see [`crate::session::Session::deliver`]), so catch-up and live
//!   delivery stay exact on every node;
//! - `getRoomMembers` and the admin UI's socket list across nodes: a request on a shared
//!   channel, answered by each node with its local view;
//! - the per-user connection limit across nodes: one hash of counts per node, summed by a
//!   Lua script; a node's hash expires a few seconds after its heartbeats stop, so a killed
//!   node does not hold its users' slots.

pub mod driver;

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use socketioxide::{SocketIo, adapter::Adapter};
use socketioxide_redis::drivers::Driver;
use tokio::sync::{Mutex, mpsc};

use crate::{db::notifications::Notification, service};
pub use driver::ManagedDriver;

/// How often a node refreshes its liveness.
const HEARTBEAT: Duration = Duration::from_secs(2);
/// A node silent this long no longer counts.
const STALE_MS: u64 = 7_000;
/// How long a cross-node question (`getRoomMembers`, the admin UI's socket list) waits.
const MEMBERS_TIMEOUT: Duration = Duration::from_millis(1500);

/// Connection counts per user, as one node reports them for a room.
type MemberCounts = Vec<(String, usize)>;

/// This node's link to the others.
pub struct Cluster {
    node_id: String,
    prefix: String,
    driver: ManagedDriver,
    pending: Mutex<BTreeMap<u64, mpsc::Sender<serde_json::Value>>>,
    next_request: std::sync::atomic::AtomicU64,
    /// Slot releases that failed since the last heartbeat (reported there, once).
    failed_releases: std::sync::atomic::AtomicU64,
}

#[derive(Serialize, Deserialize)]
struct NotifyMsg {
    origin: String,
    notification: NotificationWire,
}

/// A notification as it travels between nodes.
#[derive(Serialize, Deserialize)]
struct NotificationWire {
    id: String,
    user_id: String,
    kind: String,
    title: String,
    message: String,
    data: serde_json::Value,
    created_at: String,
    read: bool,
}

impl From<&Notification> for NotificationWire {
    fn from(n: &Notification) -> Self {
        Self {
            id: n.id.clone(),
            user_id: n.user_id.clone(),
            kind: n.kind.clone(),
            title: n.title.clone(),
            message: n.message.clone(),
            data: n.data.clone(),
            created_at: n.created_at.clone(),
            read: n.read,
        }
    }
}

impl From<NotificationWire> for Notification {
    fn from(n: NotificationWire) -> Self {
        Self {
            id: n.id,
            user_id: n.user_id,
            kind: n.kind,
            title: n.title,
            message: n.message,
            data: n.data,
            created_at: n.created_at,
            read: n.read,
        }
    }
}

/// What one node asks the others; each answers with its local view.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
enum Query {
    /// Connection counts per user in a room (`getRoomMembers`).
    Members { room: String },
    /// Every local socket, serialised for the admin UI.
    Sockets,
}

#[derive(Serialize, Deserialize)]
struct Request {
    origin: String,
    id: u64,
    query: Query,
}

#[derive(Serialize, Deserialize)]
struct Response {
    id: u64,
    answer: serde_json::Value,
}

/// Adds one connection of `user` on this node if the sum over live nodes is under the limit.
/// KEYS[1] nodes zset, KEYS[2] this node's hash. ARGV: user, max, now_ms, stale_ms, node id,
/// hash prefix. Returns the new total, or -1 when refused.
const ACQUIRE_SCRIPT: &str = r#"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[3]) - tonumber(ARGV[4]))
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[5])
local nodes = redis.call('ZRANGE', KEYS[1], 0, -1)
local total = 0
for _, n in ipairs(nodes) do
  total = total + tonumber(redis.call('HGET', ARGV[6] .. n, ARGV[1]) or '0')
end
if total >= tonumber(ARGV[2]) then return -1 end
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return total + 1
"#;

/// Removes one connection of `user` on this node.
const RELEASE_SCRIPT: &str = r#"
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if n <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return n
"#;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Cluster {
    /// Connects to Redis; `prefix` separates deployments (and test runs) sharing one Redis.
    pub async fn connect(url: &str, prefix: &str) -> Result<Arc<Self>, redis::RedisError> {
        let driver = ManagedDriver::connect(url).await?;
        Ok(Arc::new(Self {
            node_id: crate::secrets::random_hex(8),
            prefix: prefix.to_string(),
            driver,
            pending: Mutex::default(),
            next_request: Default::default(),
            failed_releases: Default::default(),
        }))
    }

    /// The driver, for the Socket.IO adapter.
    pub fn driver(&self) -> ManagedDriver {
        self.driver.clone()
    }

    /// The adapter's channel prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn chan(&self, name: &str) -> String {
        format!("{}#gw#{name}", self.prefix)
    }

    fn nodes_key(&self) -> String {
        format!("{}:gw:nodes", self.prefix)
    }

    fn conns_prefix(&self) -> String {
        format!("{}:gw:conns:", self.prefix)
    }

    fn own_conns_key(&self) -> String {
        format!("{}{}", self.conns_prefix(), self.node_id)
    }

    /// Whether Redis answers.
    pub async fn ping(&self) -> bool {
        let mut conn = self.driver.conn();
        redis::cmd("PING").query_async::<String>(&mut conn).await.is_ok()
    }

    /// Counts one more connection of `user` across nodes. `Ok(false)` when the limit is
    /// reached; `Err` when Redis does not answer (the caller falls back to the local count).
    pub async fn acquire_user_slot(&self, user: &str, max: usize) -> Result<bool, redis::RedisError> {
        let mut conn = self.driver.conn();
        let total: i64 = redis::Script::new(ACQUIRE_SCRIPT)
            .key(self.nodes_key())
            .key(self.own_conns_key())
            .arg(user)
            .arg(max)
            .arg(now_ms())
            .arg(STALE_MS)
            .arg(&self.node_id)
            .arg(self.conns_prefix())
            .invoke_async(&mut conn)
            .await?;
        Ok(total >= 0)
    }

    /// Gives back a slot taken with [`Cluster::acquire_user_slot`].
    pub async fn release_user_slot(&self, user: &str) {
        let mut conn = self.driver.conn();
        let res: Result<i64, _> = redis::Script::new(RELEASE_SCRIPT)
            .key(self.own_conns_key())
            .arg(user)
            .invoke_async(&mut conn)
            .await;
        if let Err(e) = res {
            // A mass disconnect can time out thousands of these at once: counted here and
            // reported once per heartbeat instead of one warning per socket.
            self.failed_releases.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::debug!(cause = %e, "could not release a connection slot in redis");
        }
    }

    /// Tells the other nodes about a stored notification.
    pub async fn publish_notification(&self, n: &Notification) {
        let msg = NotifyMsg {
            origin: self.node_id.clone(),
            notification: n.into(),
        };
        if let Ok(body) = serde_json::to_vec(&msg) {
            let _ = self.driver.publish(self.chan("notify"), body).await;
        }
    }

    /// `getRoomMembers` from every other node, merged: user → connections.
    pub async fn remote_members(&self, room: &str) -> BTreeMap<String, usize> {
        let mut merged = BTreeMap::new();
        for answer in self.ask(Query::Members { room: room.to_string() }).await {
            let counts: MemberCounts = serde_json::from_value(answer).unwrap_or_default();
            for (user, n) in counts {
                *merged.entry(user).or_insert(0) += n;
            }
        }
        merged
    }

    /// The sockets of every other node, serialised for the admin UI.
    pub async fn remote_sockets(&self) -> Vec<crate::admin::SerializedSocket> {
        let mut all = Vec::new();
        for answer in self.ask(Query::Sockets).await {
            all.extend(serde_json::from_value::<Vec<crate::admin::SerializedSocket>>(answer).unwrap_or_default());
        }
        all
    }

    /// Publishes `query` and collects one answer from each other node, within a deadline.
    async fn ask(&self, query: Query) -> Vec<serde_json::Value> {
        let others = match self.driver.num_serv(&self.chan("req")).await {
            Ok(n) => usize::from(n).saturating_sub(1),
            Err(e) => {
                tracing::warn!(cause = %e, "redis unavailable: answering from this node only");
                return Vec::new();
            }
        };
        if others == 0 {
            return Vec::new();
        }
        let id = self.next_request.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, mut rx) = mpsc::channel(others);
        self.pending.lock().await.insert(id, tx);
        let req = Request {
            origin: self.node_id.clone(),
            id,
            query,
        };
        if let Ok(body) = serde_json::to_vec(&req) {
            let _ = self.driver.publish(self.chan("req"), body).await;
        }
        let deadline = tokio::time::Instant::now() + MEMBERS_TIMEOUT;
        let mut answers = Vec::with_capacity(others);
        while answers.len() < others {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(answer)) => answers.push(answer),
                _ => break,
            }
        }
        self.pending.lock().await.remove(&id);
        answers
    }

    /// Subscribes this node's channels and serves them until the process stops: remote
    /// notifications are delivered to local sockets, member requests answered, and the
    /// heartbeat keeps this node's connection counts alive.
    pub async fn run<A: Adapter>(self: Arc<Self>, io: SocketIo<A>) -> Result<(), driver::DriverError> {
        let mut notify = self.driver.subscribe(self.chan("notify"), 4096).await?;
        let mut reqs = self.driver.subscribe(self.chan("req"), 1024).await?;
        let mut responses = self
            .driver
            .subscribe(self.chan(&format!("res#{}", self.node_id)), 1024)
            .await?;
        let me = self.clone();
        tokio::spawn(async move {
            let mut beat = tokio::time::interval(HEARTBEAT);
            loop {
                tokio::select! {
                    Some((_, body)) = notify.next() => {
                        if let Ok(msg) = serde_json::from_slice::<NotifyMsg>(&body)
                            && msg.origin != me.node_id
                        {
                            let n: Notification = msg.notification.into();
                            let sockets = service::deliver_notification(&io, &n);
                            crate::telemetry::record_notification_delivered(sockets);
                        }
                    }
                    Some((_, body)) = reqs.next() => {
                        if let Ok(req) = serde_json::from_slice::<Request>(&body)
                            && req.origin != me.node_id
                        {
                            let answer = match req.query {
                                Query::Members { room } => {
                                    let counts: MemberCounts = service::room_members(&io, &room)
                                        .into_iter()
                                        .map(|m| (m.user_id, m.connections))
                                        .collect();
                                    serde_json::to_value(counts)
                                }
                                Query::Sockets => serde_json::to_value(crate::admin::serialize::local_sockets(&io)),
                            };
                            let res = Response { id: req.id, answer: answer.unwrap_or_default() };
                            if let Ok(body) = serde_json::to_vec(&res) {
                                let _ = me.driver.publish(me.chan(&format!("res#{}", req.origin)), body).await;
                            }
                        }
                    }
                    Some((_, body)) = responses.next() => {
                        if let Ok(res) = serde_json::from_slice::<Response>(&body) {
                            let tx = me.pending.lock().await.get(&res.id).cloned();
                            if let Some(tx) = tx {
                                let _ = tx.try_send(res.answer);
                            }
                        }
                    }
                    _ = beat.tick() => me.heartbeat().await,
                    else => break,
                }
            }
        });
        Ok(())
    }

    async fn heartbeat(&self) {
        let failed = self.failed_releases.swap(0, std::sync::atomic::Ordering::Relaxed);
        if failed > 0 {
            tracing::warn!(
                failed,
                "connection slot releases failed in redis (timed out or redis away): those users' \
                 per-user counts on this node may stay high until it restarts"
            );
        }
        let mut conn = self.driver.conn();
        let res: Result<(), _> = redis::pipe()
            .zadd(self.nodes_key(), &self.node_id, now_ms())
            .ignore()
            .pexpire(self.own_conns_key(), STALE_MS as i64)
            .ignore()
            .query_async(&mut conn)
            .await;
        if let Err(e) = res {
            tracing::debug!(cause = %e, "redis heartbeat failed");
        }
    }

    /// Removes this node's connection counts (graceful stop).
    pub async fn leave(&self) {
        let mut conn = self.driver.conn();
        let _: Result<(), _> = redis::pipe()
            .zrem(self.nodes_key(), &self.node_id)
            .ignore()
            .del(self.own_conns_key())
            .ignore()
            .query_async(&mut conn)
            .await;
    }
}
