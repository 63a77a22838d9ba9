//! A pub/sub driver for `socketioxide-redis` over redis-rs's `ConnectionManager`.
//!
//! The stock driver holds one multiplexed connection that stays dead after Redis restarts.
//! This one reconnects by itself and re-subscribes its channels, so cross-node delivery comes
//! back without a restart of the gateway. Publishing never waits for Redis: a publish joins a
//! bounded queue that one task sends in pipelined batches, in order. While Redis is away or
//! slow, what cannot be sent (or does not fit in the queue) is counted, not waited for; the
//! notifications among it are read from the database by the other nodes (`crate::service::delivery`).

use std::{
    collections::HashMap,
    fmt,
    path::Path,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use redis::{
    FromRedisValue, PushInfo, PushKind,
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
    outbox: mpsc::Sender<ChanItem>,
    losses: Arc<Losses>,
}

/// Messages this node could not pass on, since the last [`ManagedDriver::take_losses`].
#[derive(Default)]
pub struct Losses {
    /// Publishes that did not fit in the outgoing queue.
    pub queue_full: AtomicU64,
    /// Publishes Redis did not accept (away, or slower than the response timeout).
    pub publish_failed: AtomicU64,
    /// Incoming messages dropped because their channel's reader was full.
    pub inbound_dropped: AtomicU64,
}

/// The counts of [`Losses`], taken.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LossCounts {
    /// Publishes that did not fit in the outgoing queue.
    pub queue_full: u64,
    /// Publishes Redis did not accept.
    pub publish_failed: u64,
    /// Incoming messages dropped.
    pub inbound_dropped: u64,
}

/// How long one Redis command may take before it counts as failed.
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(1500);
/// Publishes waiting to be sent; past it they are dropped (and counted).
const OUTBOX_CAPACITY: usize = 8192;
/// Most publishes sent in one pipelined round trip.
const PUBLISH_BATCH: usize = 256;

impl ManagedDriver {
    /// Connects to `url` (RESP3 is required for pub/sub on one connection and is added to the
    /// URL when missing). A `rediss://` URL speaks TLS: the server's certificate must chain to
    /// the PEM CA certificates of `ca_file` (`REDIS_CA_FILE`, and only those) when given, else
    /// to the system's.
    pub async fn connect(url: &str, ca_file: Option<&Path>) -> Result<Self, redis::RedisError> {
        // redis-rs builds its TLS configuration with the process's default provider.
        crate::outbound::install_crypto();
        let url = if url.to_ascii_lowercase().contains("protocol=") {
            url.to_string()
        } else if url.contains('?') {
            format!("{url}&protocol=resp3")
        } else {
            format!("{url}?protocol=resp3")
        };
        let client = match ca_file {
            Some(path) => {
                let certs = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(read_ca_file(path)?),
                };
                redis::Client::build_with_tls(url.as_str(), certs)?
            }
            None => redis::Client::open(url.as_str())?,
        };
        let handlers: Handlers = Arc::default();
        let (tx, mut rx) = mpsc::unbounded_channel::<PushInfo>();
        let config = ConnectionManagerConfig::new()
            .set_push_sender(tx)
            .set_automatic_resubscription()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_max_delay(Duration::from_secs(2))
            .set_number_of_retries(2);
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| explain_tls_error(e, &url, ca_file))?;
        let losses = Arc::new(Losses::default());
        let routes = handlers.clone();
        let inbound_losses = losses.clone();
        tokio::spawn(async move {
            while let Some(push) = rx.recv().await {
                route(push, &routes, &inbound_losses);
            }
        });
        let (outbox, queued) = mpsc::channel(OUTBOX_CAPACITY);
        tokio::spawn(send_published(conn.clone(), queued, losses.clone()));
        Ok(Self {
            conn,
            handlers,
            outbox,
            losses,
        })
    }

    /// A connection for plain commands (shares the multiplexed link).
    pub fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Takes the loss counts gathered since the last call (reported once per heartbeat).
    pub fn take_losses(&self) -> LossCounts {
        LossCounts {
            queue_full: self.losses.queue_full.swap(0, Ordering::Relaxed),
            publish_failed: self.losses.publish_failed.swap(0, Ordering::Relaxed),
            inbound_dropped: self.losses.inbound_dropped.swap(0, Ordering::Relaxed),
        }
    }

    /// Queues a publish; never waits. A full queue drops the message and counts it.
    pub fn enqueue(&self, chan: String, body: Vec<u8>) {
        if self.outbox.try_send((chan, body)).is_err() {
            self.losses.queue_full.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The PEM text of `path`, which must hold at least one certificate.
fn read_ca_file(path: &Path) -> Result<Vec<u8>, redis::RedisError> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let invalid = |why: String| {
        let message = format!("REDIS_CA_FILE {}: {why}", path.display());
        redis::RedisError::from(std::io::Error::new(std::io::ErrorKind::InvalidInput, message))
    };
    let pem = std::fs::read(path).map_err(|e| invalid(e.to_string()))?;
    if !CertificateDer::pem_slice_iter(&pem).any(|c| c.is_ok()) {
        return Err(invalid("no PEM certificate in it".into()));
    }
    Ok(pem)
}

/// Says in words that the server's TLS certificate was refused and where its CA goes; rustls
/// only names the check that failed ("invalid peer certificate: UnknownIssuer"). A TLS
/// handshake with a server that does not speak TLS ends in a bare timeout: that gets a hint.
fn explain_tls_error(e: redis::RedisError, url: &str, ca_file: Option<&Path>) -> redis::RedisError {
    let text = e.to_string();
    let tls = url.to_ascii_lowercase().starts_with("rediss://");
    if tls && e.is_timeout() {
        let message = format!("{text}: no TLS handshake within the connect timeout (does this port speak TLS?)");
        return redis::RedisError::from(std::io::Error::new(std::io::ErrorKind::TimedOut, message));
    }
    let Some(at) = text.find("invalid peer certificate") else {
        return e;
    };
    let hint = match ca_file {
        Some(path) => format!("it must be signed by a CA of REDIS_CA_FILE ({})", path.display()),
        None => "its CA is not among the system's; name a private CA in REDIS_CA_FILE".to_string(),
    };
    let message = format!("the server's TLS certificate is not trusted ({}): {hint}", &text[at..]);
    redis::RedisError::from(std::io::Error::new(std::io::ErrorKind::InvalidData, message))
}

/// Sends queued publishes in order, as many per round trip as are waiting.
async fn send_published(mut conn: ConnectionManager, mut queued: mpsc::Receiver<ChanItem>, losses: Arc<Losses>) {
    let mut batch = Vec::with_capacity(PUBLISH_BATCH);
    while queued.recv_many(&mut batch, PUBLISH_BATCH).await > 0 {
        let mut pipe = redis::pipe();
        for (chan, body) in batch.drain(..) {
            pipe.publish(chan, body).ignore();
        }
        if let Err(e) = pipe.query_async::<()>(&mut conn).await {
            losses
                .publish_failed
                .fetch_add(pipe.cmd_iter().count() as u64, Ordering::Relaxed);
            tracing::debug!(cause = %e, "redis publish failed; other nodes miss these messages");
        }
    }
}

fn route(push: PushInfo, handlers: &Handlers, losses: &Losses) {
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
        && tx.try_send((chan, body)).is_err()
    {
        losses.inbound_dropped.fetch_add(1, Ordering::Relaxed);
    }
}

impl Driver for ManagedDriver {
    type Error = DriverError;

    /// Queues the publish and never fails: the adapter delivers locally only after a
    /// successful publish, and local delivery must go on while Redis is away or slow.
    async fn publish(&self, chan: String, val: Vec<u8>) -> Result<(), DriverError> {
        self.enqueue(chan, val);
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
