//! A pub/sub driver for `socketioxide-redis` over redis-rs's `ConnectionManager`.
//!
//! The stock driver holds one multiplexed connection that stays dead after Redis restarts.
//! This one reconnects by itself and re-subscribes its channels, so cross-node delivery comes
//! back without a restart of the gateway. Publishing never blocks local delivery: while Redis
//! is away, a publish fails fast (short response timeout) and is logged.

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, RwLock},
    time::Duration,
};

use redis::{
    AsyncCommands, FromRedisValue, PushInfo, PushKind,
    aio::{ConnectionManager, ConnectionManagerConfig},
};
use socketioxide_redis::drivers::{ChanItem, Driver, MessageStream};
use tokio::sync::mpsc;

/// A Redis error, as the adapter sees it.
#[derive(Debug)]
pub struct DriverError(pub redis::RedisError);

impl fmt::Display for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for DriverError {}

impl From<redis::RedisError> for DriverError {
    fn from(e: redis::RedisError) -> Self {
        Self(e)
    }
}

type Handlers = Arc<RwLock<HashMap<String, mpsc::Sender<ChanItem>>>>;

/// Reconnecting Redis pub/sub driver shared by the adapter and the gateway's own channels.
#[derive(Clone)]
pub struct ManagedDriver {
    conn: ConnectionManager,
    handlers: Handlers,
}

/// How long one Redis command may take before it counts as failed.
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(1500);

impl ManagedDriver {
    /// Connects to `url` (RESP3 is required for pub/sub on one connection and is added to the
    /// URL when missing).
    pub async fn connect(url: &str) -> Result<Self, redis::RedisError> {
        let url = if url.to_ascii_lowercase().contains("protocol=") {
            url.to_string()
        } else if url.contains('?') {
            format!("{url}&protocol=resp3")
        } else {
            format!("{url}?protocol=resp3")
        };
        let client = redis::Client::open(url)?;
        let handlers: Handlers = Arc::default();
        let (tx, mut rx) = mpsc::unbounded_channel::<PushInfo>();
        let config = ConnectionManagerConfig::new()
            .set_push_sender(tx)
            .set_automatic_resubscription()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_max_delay(Duration::from_secs(2))
            .set_number_of_retries(2);
        let conn = ConnectionManager::new_with_config(client, config).await?;
        let routes = handlers.clone();
        tokio::spawn(async move {
            while let Some(push) = rx.recv().await {
                route(push, &routes);
            }
        });
        Ok(Self { conn, handlers })
    }

    /// A connection for plain commands (shares the multiplexed link).
    pub fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }
}

fn route(push: PushInfo, handlers: &Handlers) {
    if !matches!(push.kind, PushKind::Message | PushKind::SMessage) || push.data.len() < 2 {
        return;
    }
    let mut data = push.data.into_iter();
    let (Some(chan), Some(body)) = (data.next(), data.next()) else {
        return;
    };
    let (Ok(chan), Ok(body)) = (String::from_redis_value(chan), Vec::<u8>::from_redis_value(body)) else {
        return;
    };
    let tx = handlers.read().unwrap_or_else(|e| e.into_inner()).get(&chan).cloned();
    if let Some(tx) = tx
        && let Err(e) = tx.try_send((chan, body))
    {
        tracing::warn!(cause = %e, "redis pub/sub handler is full; message dropped");
    }
}

impl Driver for ManagedDriver {
    type Error = DriverError;

    /// Publishes, and never fails: the adapter delivers locally only after a successful
    /// publish, and local delivery must go on while Redis is away. The loss is logged.
    async fn publish(&self, chan: String, val: Vec<u8>) -> Result<(), DriverError> {
        if let Err(e) = self.conn.clone().publish::<_, _, redis::Value>(chan, val).await {
            tracing::warn!(cause = %e, "redis publish failed; other nodes miss this message");
        }
        Ok(())
    }

    async fn subscribe(&self, chan: String, size: usize) -> Result<MessageStream<ChanItem>, DriverError> {
        let (tx, rx) = mpsc::channel(size);
        self.handlers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(chan.clone(), tx);
        self.conn.clone().subscribe(chan.as_str()).await?;
        Ok(MessageStream::new(rx))
    }

    async fn unsubscribe(&self, chan: String) -> Result<(), DriverError> {
        self.handlers.write().unwrap_or_else(|e| e.into_inner()).remove(&chan);
        self.conn.clone().unsubscribe(chan).await?;
        Ok(())
    }

    async fn num_serv(&self, chan: &str) -> Result<u16, DriverError> {
        let (_, count): (String, u16) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(chan)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(count)
    }
}
