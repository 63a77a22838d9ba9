//! Scale-out over Redis: the `socketioxide-redis` adapter carries rooms and broadcasts, and
//! this module adds what the adapter has no verb for, on the same Redis connection:
//!
//! - notification fan-out: each stored notification travels with the id of its user's previous
//!   one, so a receiving node can tell whether anything lies between (what it missed, it reads
//!   from the database: `crate::service::delivery`);
//! - `getRoomMembers` and the admin UI's socket list across nodes: a request on a shared
//!   channel, answered by each node with its local view;
//! - the per-user connection limit across nodes: one hash of counts per node, summed by a
//!   Lua script; a node silent for a few seconds no longer counts, and the first live node to
//!   notice takes its counts away and learns which users went offline with it.

pub mod driver;

use std::{collections::BTreeMap, future::Future, pin::Pin, sync::Arc, time::Duration};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use socketioxide_redis::drivers::Driver;
use tokio::sync::mpsc;

use crate::db::notifications::{Notification, Stored};
pub use driver::{LossCounts, ManagedDriver};

/// How often a node refreshes its liveness.
const HEARTBEAT: Duration = Duration::from_secs(2);
/// A node silent this long no longer counts.
const STALE_MS: u64 = 7_000;
/// How long a cross-node question (`getRoomMembers`, the admin UI's socket list) waits.
const MEMBERS_TIMEOUT: Duration = Duration::from_millis(1500);

/// Connection counts per user, as one node reports them for a room.
pub type MemberCounts = Vec<(String, usize)>;

/// What the layers above answer and take from the other nodes; the cluster link itself knows
/// nothing of sockets, the delivery rules or the admin UI.
pub trait LocalNode: Send + Sync + 'static {
    /// A notification stored by another node; `prev` is its user's previous one.
    fn notification(&self, notification: Notification, prev: Option<String>);
    /// Connection counts per user in `room`, on this node.
    fn room_members(&self, room: &str) -> MemberCounts;
    /// This node's sockets, as the admin UI lists them (one value each).
    fn sockets(&self) -> Vec<serde_json::Value>;
    /// Applies a server API operation to the user's sockets on this node; how many sockets it
    /// changed (for [`UserOp::Presence`], how many there are).
    fn apply(&self, op: UserOp) -> Pin<Box<dyn Future<Output = usize> + Send>>;
    /// Users who had connections only on nodes that died: they are offline now.
    fn users_gone(&self, users: Vec<String>);
}

/// A server API operation on all of one user's sockets (contract section 10.1), applied by
/// every node to its own.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum UserOp {
    /// Disconnect them.
    Disconnect {
        /// The user.
        user: String,
    },
    /// Join them to a client room.
    Join {
        /// The user.
        user: String,
        /// The room.
        room: String,
    },
    /// Take them out of a client room.
    Leave {
        /// The user.
        user: String,
        /// The room.
        room: String,
    },
    /// Count them.
    Presence {
        /// The user.
        user: String,
    },
}

impl UserOp {
    /// The user whose sockets the operation is about.
    pub fn user(&self) -> &str {
        match self {
            Self::Disconnect { user } | Self::Presence { user } => user,
            Self::Join { user, .. } | Self::Leave { user, .. } => user,
        }
    }
}

/// One page of an answer, and whether it was the answering node's last.
type Page = (serde_json::Value, bool);

/// Answers waiting for a cross-node question, by request id.
type Pending = std::sync::Mutex<BTreeMap<u64, mpsc::Sender<Page>>>;

/// This node's link to the others.
pub struct Cluster {
    node_id: String,
    prefix: String,
    driver: ManagedDriver,
    pending: Pending,
    next_request: std::sync::atomic::AtomicU64,
    /// Slot releases that failed since the last heartbeat (reported there, once).
    failed_releases: std::sync::atomic::AtomicU64,
    /// When the current outage began (the first heartbeat that failed); `None` while the last
    /// heartbeat reached Redis.
    down_since: std::sync::Mutex<Option<std::time::Instant>>,
    /// Cluster questions answered from this node only since the last heartbeat (Redis away).
    local_only_answers: std::sync::atomic::AtomicU64,
}

/// A question's entry in [`Pending`], removed when the asker stops waiting, whether it got
/// its answers, timed out, or was cancelled.
struct PendingEntry<'a> {
    pending: &'a Pending,
    id: u64,
}

impl<'a> PendingEntry<'a> {
    fn insert(pending: &'a Pending, id: u64, tx: mpsc::Sender<Page>) -> Self {
        pending.lock().unwrap_or_else(|e| e.into_inner()).insert(id, tx);
        Self { pending, id }
    }
}

impl Drop for PendingEntry<'_> {
    fn drop(&mut self) {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.id);
    }
}

#[derive(Serialize, Deserialize)]
struct NotifyMsg {
    origin: String,
    /// The user's notification before this one.
    prev: Option<String>,
    notification: Notification,
}

/// What one node asks the others; each answers with its local view.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
enum Query {
    /// Connection counts per user in a room (`getRoomMembers`).
    Members { room: String },
    /// Every local socket, serialised for the admin UI.
    Sockets,
    /// A server API operation; each node answers how many of its sockets it changed.
    User { op: UserOp },
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
    /// Whether this is the node's last page of its answer.
    last: bool,
}

/// Most sockets in one page of an answer to [`Query::Sockets`], so no Redis message grows
/// with the size of a node.
const SOCKETS_PAGE: usize = 500;
/// Most pages waiting for the asker; pages past it are dropped (the list comes out short).
const PENDING_PAGES: usize = 1024;

/// Adds one connection of `user` on this node if the sum over live nodes is under the limit.
/// KEYS[1] nodes zset, KEYS[2] this node's hash. ARGV: user, max, now_ms, stale_ms, node id,
/// hash prefix. Returns the new total, or -1 when refused.
const ACQUIRE_SCRIPT: &str = r#"
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[5])
local nodes = redis.call('ZRANGEBYSCORE', KEYS[1], tonumber(ARGV[3]) - tonumber(ARGV[4]), '+inf')
local total = 0
for _, n in ipairs(nodes) do
  total = total + tonumber(redis.call('HGET', ARGV[6] .. n, ARGV[1]) or '0')
end
if total >= tonumber(ARGV[2]) then return -1 end
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
redis.call('PEXPIRE', KEYS[2], ARGV[7])
return total + 1
"#;

/// Takes the nodes silent for longer than stale_ms out of the count, and returns the users
/// they held who have no connection left on a live node (they went offline with the node).
/// Atomic: of several nodes running it, one gets each dead node's users. KEYS[1] nodes zset.
/// ARGV: now_ms, stale_ms, hash prefix.
const REAP_SCRIPT: &str = r#"
local cutoff = tonumber(ARGV[1]) - tonumber(ARGV[2])
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. cutoff)
if #dead == 0 then return {} end
local users = {}
for _, n in ipairs(dead) do
  for _, u in ipairs(redis.call('HKEYS', ARGV[3] .. n)) do users[u] = true end
  redis.call('DEL', ARGV[3] .. n)
  redis.call('ZREM', KEYS[1], n)
end
local live = redis.call('ZRANGEBYSCORE', KEYS[1], cutoff, '+inf')
local gone = {}
for u, _ in pairs(users) do
  local total = 0
  for _, n in ipairs(live) do total = total + tonumber(redis.call('HGET', ARGV[3] .. n, u) or '0') end
  if total == 0 then table.insert(gone, u) end
end
return gone
"#;

/// How long a node's connection counts outlive its last heartbeat: long enough for a live
/// node to reap them (see `REAP_SCRIPT`), bounded so that a cluster that stopped entirely
/// leaves nothing behind.
const COUNTS_TTL_MS: u64 = 120_000;

/// Removes one connection of `user` on this node. KEYS[1] this node's hash, KEYS[2] nodes
/// zset. ARGV: user, now_ms, stale_ms, hash prefix. Returns the user's connections left on the
/// live nodes.
const RELEASE_SCRIPT: &str = r#"
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if n <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
local live = redis.call('ZRANGEBYSCORE', KEYS[2], tonumber(ARGV[2]) - tonumber(ARGV[3]), '+inf')
local total = 0
for _, node in ipairs(live) do
  total = total + tonumber(redis.call('HGET', ARGV[4] .. node, ARGV[1]) or '0')
end
return total
"#;

impl Cluster {
    /// Connects to Redis (trusting the CA certificates of `ca_file` for `rediss://`, see
    /// [`ManagedDriver::connect`]); `prefix` separates deployments (and test runs) sharing one
    /// Redis.
    pub async fn connect(
        url: &str,
        ca_file: Option<&std::path::Path>,
        prefix: &str,
    ) -> Result<Arc<Self>, redis::RedisError> {
        let driver = ManagedDriver::connect(url, ca_file).await?;
        crate::telemetry::start_redis_series();
        crate::telemetry::record_redis_up(true);
        Ok(Arc::new(Self {
            node_id: crate::secrets::random_hex(8),
            prefix: prefix.to_string(),
            driver,
            pending: Pending::default(),
            next_request: Default::default(),
            failed_releases: Default::default(),
            down_since: Default::default(),
            local_only_answers: Default::default(),
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

    /// Counts one more connection of `user` across nodes: the user's connections in the
    /// cluster with this one, or `Ok(None)` when the limit is reached; `Err` when Redis does
    /// not answer (the caller falls back to the local count).
    pub async fn acquire_user_slot(&self, user: &str, max: usize) -> Result<Option<usize>, redis::RedisError> {
        let mut conn = self.driver.conn();
        let total: i64 = redis::Script::new(ACQUIRE_SCRIPT)
            .key(self.nodes_key())
            .key(self.own_conns_key())
            .arg(user)
            .arg(max)
            .arg(crate::clock::unix_millis())
            .arg(STALE_MS)
            .arg(&self.node_id)
            .arg(self.conns_prefix())
            .arg(COUNTS_TTL_MS)
            .invoke_async(&mut conn)
            .await?;
        Ok(usize::try_from(total).ok())
    }

    /// Gives back a slot taken with [`Cluster::acquire_user_slot`]: the user's connections
    /// left in the cluster, or `None` when Redis did not answer.
    pub async fn release_user_slot(&self, user: &str) -> Option<usize> {
        let mut conn = self.driver.conn();
        let res: Result<i64, _> = redis::Script::new(RELEASE_SCRIPT)
            .key(self.own_conns_key())
            .key(self.nodes_key())
            .arg(user)
            .arg(crate::clock::unix_millis())
            .arg(STALE_MS)
            .arg(self.conns_prefix())
            .invoke_async(&mut conn)
            .await;
        match res {
            Ok(left) => return Some(usize::try_from(left).unwrap_or(0)),
            Err(e) => {
                // A mass disconnect can time out thousands of these at once: counted here and
                // reported once per heartbeat instead of one warning per socket.
                self.failed_releases.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::debug!(cause = %e, "could not release a connection slot in redis");
            }
        }
        None
    }

    /// Tells the other nodes about a stored notification; never waits for Redis.
    pub fn publish_notification(&self, stored: &Stored) {
        let msg = NotifyMsg {
            origin: self.node_id.clone(),
            prev: stored.prev.clone(),
            notification: stored.notification.clone(),
        };
        if let Ok(body) = serde_json::to_vec(&msg) {
            self.driver.enqueue(self.chan("notify"), body);
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

    /// What every other node answered with [`LocalNode::sockets`], one value per socket.
    pub async fn remote_sockets(&self) -> Vec<serde_json::Value> {
        let mut all = Vec::new();
        for page in self.ask(Query::Sockets).await {
            if let serde_json::Value::Array(sockets) = page {
                all.extend(sockets);
            }
        }
        all
    }

    /// Applies `op` on every other node; the sum of their counts.
    pub async fn ask_user_op(&self, op: UserOp) -> usize {
        self.ask(Query::User { op })
            .await
            .iter()
            .filter_map(serde_json::Value::as_u64)
            .map(|n| n as usize)
            .sum()
    }

    /// Publishes `query` and collects the answer of each other node (one or more pages),
    /// within a deadline.
    async fn ask(&self, query: Query) -> Vec<serde_json::Value> {
        let others = match self.driver.num_serv(&self.chan("req")).await {
            Ok(n) => usize::from(n).saturating_sub(1),
            Err(e) => {
                // Counted, and said once per heartbeat (not once per question).
                tracing::debug!(cause = %e, "redis unavailable: answering from this node only");
                self.local_only_answers
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return Vec::new();
            }
        };
        if others == 0 {
            return Vec::new();
        }
        let id = self.next_request.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, mut rx) = mpsc::channel(PENDING_PAGES);
        let _entry = PendingEntry::insert(&self.pending, id, tx);
        let req = Request {
            origin: self.node_id.clone(),
            id,
            query,
        };
        if let Ok(body) = serde_json::to_vec(&req) {
            self.driver.enqueue(self.chan("req"), body);
        }
        let deadline = tokio::time::Instant::now() + MEMBERS_TIMEOUT;
        let mut pages = Vec::with_capacity(others);
        let mut finished = 0;
        while finished < others {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some((page, last))) => {
                    pages.push(page);
                    finished += usize::from(last);
                }
                _ => break,
            }
        }
        pages
    }

    /// Subscribes this node's channels and serves them until the process stops: remote
    /// notifications go to `local`, questions are answered from it, and the heartbeat keeps
    /// this node's connection counts alive. Nothing in the loop waits for Redis or for another
    /// node: answers are queued like every publish.
    pub async fn run(self: Arc<Self>, local: Arc<dyn LocalNode>) -> Result<(), driver::DriverError> {
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
                            local.notification(msg.notification, msg.prev);
                        }
                    }
                    Some((_, body)) = reqs.next() => {
                        if let Ok(req) = serde_json::from_slice::<Request>(&body)
                            && req.origin != me.node_id
                        {
                            // Answered beside the loop: a server API operation emits and
                            // disconnects, and nothing here may wait for it.
                            let (me, local) = (me.clone(), local.clone());
                            tokio::spawn(async move {
                                let pages = answer_pages(req.query, local.as_ref()).await;
                                let count = pages.len();
                                for (i, answer) in pages.into_iter().enumerate() {
                                    me.answer(&req.origin, req.id, answer, i + 1 == count);
                                }
                            });
                        }
                    }
                    Some((_, body)) = responses.next() => {
                        if let Ok(res) = serde_json::from_slice::<Response>(&body) {
                            let tx = me.pending.lock().unwrap_or_else(|e| e.into_inner()).get(&res.id).cloned();
                            if let Some(tx) = tx {
                                let _ = tx.try_send((res.answer, res.last));
                            }
                        }
                    }
                    _ = beat.tick() => {
                        // The heartbeat waits for Redis; run it beside the loop so a slow Redis
                        // never holds up incoming messages.
                        let (me, local) = (me.clone(), local.clone());
                        tokio::spawn(async move { me.heartbeat(local.as_ref()).await });
                    }
                    else => break,
                }
            }
        });
        Ok(())
    }

    /// Queues one page of an answer to `origin`'s question `id`.
    fn answer(&self, origin: &str, id: u64, answer: serde_json::Value, last: bool) {
        if let Ok(body) = serde_json::to_vec(&Response { id, answer, last }) {
            self.driver.enqueue(self.chan(&format!("res#{origin}")), body);
        }
    }

    /// Takes dead nodes out of the per-user counts; the users who went offline with them are
    /// told to `local` (for `user.offline`).
    async fn reap(&self, local: &dyn LocalNode) {
        let mut conn = self.driver.conn();
        let gone: Result<Vec<String>, _> = redis::Script::new(REAP_SCRIPT)
            .key(self.nodes_key())
            .arg(crate::clock::unix_millis())
            .arg(STALE_MS)
            .arg(self.conns_prefix())
            .invoke_async(&mut conn)
            .await;
        match gone {
            Ok(users) if !users.is_empty() => {
                tracing::info!(
                    users = users.len(),
                    "a node stopped answering: its users without another connection are offline"
                );
                local.users_gone(users);
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(cause = %e, "could not reap silent nodes"),
        }
    }

    /// Every [`HEARTBEAT`]: marks this node alive, reaps dead ones, and says how Redis is. A
    /// Redis outage is one warning per heartbeat (with what it cost since the last one) and
    /// one line when Redis answers again, never a line per publish or question.
    async fn heartbeat(&self, local: &dyn LocalNode) {
        use std::sync::atomic::Ordering::Relaxed;
        let mut conn = self.driver.conn();
        let res: Result<(), _> = redis::pipe()
            .zadd(self.nodes_key(), &self.node_id, crate::clock::unix_millis())
            .ignore()
            .pexpire(self.own_conns_key(), COUNTS_TTL_MS as i64)
            .ignore()
            .query_async(&mut conn)
            .await;
        if res.is_ok() {
            self.reap(local).await;
        }
        let losses = self.driver.take_losses();
        crate::telemetry::record_redis_losses(losses.queue_full, losses.publish_failed, losses.inbound_dropped);
        let failed_releases = self.failed_releases.swap(0, Relaxed);
        let local_only = self.local_only_answers.swap(0, Relaxed);
        crate::telemetry::record_redis_up(res.is_ok());
        let mut down_since = self.down_since.lock().unwrap_or_else(|e| e.into_inner());
        match res {
            Err(e) => {
                crate::telemetry::record_redis_heartbeat_failed();
                let since = *down_since.get_or_insert_with(std::time::Instant::now);
                tracing::warn!(
                    cause = %e,
                    down_secs = since.elapsed().as_secs(),
                    publishes_lost = losses.queue_full + losses.publish_failed,
                    local_only_answers = local_only,
                    failed_releases,
                    "redis does not answer: this node serves its own sockets; notifications reach \
                     the other nodes' sockets from the database"
                );
                return;
            }
            Ok(()) if down_since.is_some() => {
                let since = down_since.take();
                crate::telemetry::record_redis_reconnect();
                // The outage's last losses go with this line, not in a warning of their own.
                tracing::info!(
                    down_secs = since.map(|t| t.elapsed().as_secs()).unwrap_or(0),
                    publishes_lost = losses.queue_full + losses.publish_failed,
                    local_only_answers = local_only,
                    failed_releases,
                    "redis answers again"
                );
                return;
            }
            Ok(()) => {}
        }
        if losses != LossCounts::default() {
            tracing::warn!(
                queue_full = losses.queue_full,
                publish_failed = losses.publish_failed,
                inbound_dropped = losses.inbound_dropped,
                "redis messages lost since the last heartbeat (redis slow, or this node \
                 overloaded); notifications among them are read from the database"
            );
        }
        if failed_releases > 0 {
            tracing::warn!(
                failed = failed_releases,
                "connection slot releases failed in redis (timed out or redis away): those users' \
                 per-user counts on this node may stay high until it restarts"
            );
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

/// This node's answer to `query`, in pages (at least one).
async fn answer_pages(query: Query, local: &dyn LocalNode) -> Vec<serde_json::Value> {
    match query {
        Query::Members { room } => vec![serde_json::to_value(local.room_members(&room)).unwrap_or_default()],
        Query::User { op } => vec![serde_json::Value::from(local.apply(op).await)],
        Query::Sockets => {
            let sockets = local.sockets();
            let mut pages: Vec<serde_json::Value> = sockets.chunks(SOCKETS_PAGE).map(|p| p.to_vec().into()).collect();
            if pages.is_empty() {
                pages.push(serde_json::Value::Array(Vec::new()));
            }
            pages
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Many(usize);

    impl LocalNode for Many {
        fn notification(&self, _: Notification, _: Option<String>) {}
        fn room_members(&self, room: &str) -> MemberCounts {
            vec![(room.to_string(), self.0)]
        }
        fn sockets(&self) -> Vec<serde_json::Value> {
            (0..self.0).map(|i| serde_json::json!({ "id": i })).collect()
        }
        fn apply(&self, _: UserOp) -> Pin<Box<dyn Future<Output = usize> + Send>> {
            Box::pin(std::future::ready(self.0))
        }
        fn users_gone(&self, _: Vec<String>) {}
    }

    #[tokio::test]
    async fn a_socket_list_travels_in_pages() {
        async fn sizes(n: usize) -> Vec<usize> {
            answer_pages(Query::Sockets, &Many(n))
                .await
                .iter()
                .map(|p| p.as_array().unwrap().len())
                .collect()
        }
        assert_eq!(sizes(1201).await, vec![500, 500, 201]);
        assert_eq!(
            sizes(0).await,
            vec![0],
            "an empty node still answers, with one empty page"
        );
        assert_eq!(
            answer_pages(Query::Members { room: "r".into() }, &Many(3)).await.len(),
            1
        );
    }

    #[test]
    fn a_user_operation_travels_tagged() {
        let op = UserOp::Join {
            user: "alice".into(),
            room: "lobby".into(),
        };
        let req = Request {
            origin: "n1".into(),
            id: 3,
            query: Query::User { op },
        };
        let wire = serde_json::to_value(&req).unwrap();
        assert_eq!(
            wire["query"],
            serde_json::json!({ "kind": "user", "op": { "op": "join", "user": "alice", "room": "lobby" } })
        );
        let back: Request = serde_json::from_value(wire).unwrap();
        let Query::User { op } = back.query else {
            panic!("not a user op")
        };
        assert_eq!(op.user(), "alice");
    }

    #[tokio::test]
    async fn a_cancelled_question_leaves_no_pending_entry() {
        let pending = Pending::default();
        let asking = async {
            let (tx, mut rx) = mpsc::channel(1);
            let _entry = PendingEntry::insert(&pending, 7, tx);
            rx.recv().await
        };
        // The asker gives up (its HTTP request or socket event was dropped) before an answer.
        assert!(tokio::time::timeout(Duration::from_millis(20), asking).await.is_err());
        assert!(pending.lock().unwrap().is_empty());
    }
}
