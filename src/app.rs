//! Assembly of one node: keys, database, Socket.IO server and HTTP routes on one port, and
//! the graceful stop.

use std::{
    future::{Future, IntoFuture},
    net::SocketAddr,
    sync::Arc,
    time::Duration,
};

use axum::{
    extract::DefaultBodyLimit,
    http::{HeaderValue, Method, header},
    serve::ListenerExt,
};
use socketioxide::{
    ParserConfig, SocketIo, SocketIoBuilder,
    adapter::{Adapter, Emitter},
    layer::SocketIoLayer,
};
use socketioxide_redis::{CustomRedisAdapter, RedisAdapterConfig, RedisAdapterCtr};
use tokio::net::{TcpListener, TcpSocket};
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

use crate::{
    admin, auth,
    cluster::{self, Cluster, ManagedDriver},
    config::{Config, JwtKeySource, ParserKind},
    db::{Db, notifications::Notification, outbox::Claimed},
    http::handshake_copy,
    http::{self, HttpState},
    node::{AppState, BackendLinks},
    proxy::EventProxy,
    secrets, service,
    service::delivery,
    socket, telemetry,
    webhooks::{Recorder, Webhooks},
};

use tokio::sync::mpsc;

/// Boxed error for start-up failures; their messages name what to fix.
pub type StartError = Box<dyn std::error::Error + Send + Sync>;

/// Listen backlog: the default 128 drops SYNs under connect bursts.
const LISTEN_BACKLOG: u32 = 1024;

/// Binds `HOST:PORT` with a large listen backlog.
pub fn bind(host: &str, port: u16) -> Result<TcpListener, StartError> {
    let ip: std::net::IpAddr = if host == "localhost" {
        [127, 0, 0, 1].into()
    } else {
        host.parse()?
    };
    let addr = SocketAddr::new(ip, port);
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    Ok(socket.listen(LISTEN_BACKLOG)?)
}

/// The secrets a node runs with, generated into the data folder when not configured.
pub struct Keys {
    /// The HMAC secret, unless a public key verifies tokens.
    pub jwt_secret: Option<Vec<u8>>,
    /// Service keys for the HTTP API.
    pub api_keys: Vec<String>,
}

/// Loads or generates the JWT secret and API key as the configuration asks. Logs where
/// generated files are, never what they hold.
pub fn load_keys(cfg: &Config) -> Result<Keys, StartError> {
    let dir = cfg.data_dir();
    let jwt_secret = match &cfg.jwt_key {
        JwtKeySource::Secret(s) => Some(s.clone()),
        JwtKeySource::PublicKeyFile(_) => None,
        JwtKeySource::Generated => {
            let (secret, created) = secrets::load_or_create(&dir, secrets::SECRET_FILE)
                .map_err(|e| format!("cannot keep the generated JWT secret in {}: {e}", dir.display()))?;
            let path = secrets::path_of(&dir, secrets::SECRET_FILE);
            tracing::warn!(
                file = %path.display(),
                created,
                "JWT_SECRET is not set: using a generated secret kept in this file (set JWT_SECRET or JWT_PUBLIC_KEY_FILE in production)"
            );
            Some(secret.into_bytes())
        }
    };
    let api_keys = if cfg.api_keys.is_empty() {
        let (key, created) = secrets::load_or_create(&dir, secrets::API_KEY_FILE)
            .map_err(|e| format!("cannot keep the generated API key in {}: {e}", dir.display()))?;
        let path = secrets::path_of(&dir, secrets::API_KEY_FILE);
        tracing::warn!(file = %path.display(), created, "API_KEYS is not set: using a generated key kept in this file");
        vec![key]
    } else {
        cfg.api_keys.clone()
    };
    Ok(Keys { jwt_secret, api_keys })
}

/// Opens the database and applies its migrations, or with `MIGRATE_ON_START=false` checks
/// that they are applied (refusing the start, as a configuration error, when one is not).
pub async fn open_db(cfg: &Config) -> Result<Db, StartError> {
    let db = Db::connect_sized(&cfg.database_url, cfg.database_max_connections)
        .await
        .map_err(|e| format!("DATABASE_URL {}: {e}", crate::config::mask_url(&cfg.database_url)))?;
    if cfg.migrate_on_start {
        db.migrate().await.map_err(|e| format!("migrations failed: {e}"))?;
    } else {
        db.check_migrations()
            .await
            .map_err(|e| crate::config::ConfigError::invalid("MIGRATE_ON_START", e))?;
    }
    Ok(db)
}

/// Runs a node on `listener` until `shutdown` resolves, then stops gracefully within
/// `SHUTDOWN_TIMEOUT_SECS`.
pub async fn serve(
    cfg: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    telemetry::metrics_handle();
    let keys = load_keys(&cfg)?;
    let verifier = auth::verifier_for(&cfg, keys.jwt_secret.as_deref())?;
    // Before the database: a schema that does not compile refuses the start at once.
    let proxy = cfg.proxy.as_ref().map(EventProxy::new).transpose()?;
    let db = open_db(&cfg).await?;
    let cluster = match &cfg.redis_url {
        Some(url) => Some(
            Cluster::connect(
                url,
                cfg.redis_ca_file.as_deref().map(std::path::Path::new),
                &cfg.redis_prefix,
            )
            .await
            .map_err(|e| format!("REDIS_URL {}: {e}", crate::config::mask_url(url)))?,
        ),
        None => None,
    };
    let (webhooks, recorder) = match cfg.webhooks.clone() {
        Some(hooks) => {
            let (hooks, recorder, handed) = Webhooks::start(hooks, db.clone(), &secrets::random_hex(8));
            (Some(hooks), Some((recorder, handed)))
        }
        None => (None, None),
    };
    let backend = BackendLinks { proxy, webhooks };
    let state = AppState::new(cfg, db, verifier, keys.api_keys, cluster, keys.jwt_secret, backend);
    // Which users have notifications, so a connect of any other user needs no query. A node
    // that cannot read it reads every connect's summary instead.
    if let Err(e) = state.summaries.load_users(&state.db).await {
        tracing::warn!(cause = %e, "could not list the users with notifications; every connect reads its counts");
    }
    let admin = admin::credentials(&state.cfg);
    match state.cluster.clone() {
        None => {
            let (layer, io) = socket_io(&state, admin.clone()).build_layer();
            socket::register(&io);
            if admin.is_some() {
                admin::start(&io, &state);
            }
            finish(state, io, layer, listener, shutdown, recorder).await
        }
        Some(cluster) => {
            let ctr = RedisAdapterCtr::new_with_driver(
                cluster.driver(),
                RedisAdapterConfig::new().with_prefix(cluster.prefix().to_string()),
            );
            let (layer, io) = socket_io(&state, admin.clone())
                .with_adapter::<RedisAdapter>(ctr)
                .build_layer();
            socket::register(&io).await.map_err(|e| format!("redis adapter: {e}"))?;
            if admin.is_some() {
                admin::start(&io, &state)
                    .await
                    .map_err(|e| format!("redis adapter (/admin): {e}"))?;
            }
            let local = Arc::new(LocalView {
                io: io.clone(),
                state: state.clone(),
            });
            cluster
                .clone()
                .run(local)
                .await
                .map_err(|e| format!("redis subscribe: {e}"))?;
            finish(state, io, layer, listener, shutdown, recorder).await
        }
    }
}

/// What this node tells and takes from the others (see [`cluster::LocalNode`]).
struct LocalView<A: Adapter> {
    io: SocketIo<A>,
    state: AppState,
}

impl<A: Adapter> cluster::LocalNode for LocalView<A> {
    fn notification(&self, notification: Notification, prev: Option<String>) {
        let sockets = delivery::deliver(&self.state, &self.io, &notification, prev.as_deref());
        telemetry::record_notification_delivered(sockets);
    }

    fn room_members(&self, room: &str) -> cluster::MemberCounts {
        service::room_members(&self.io, room)
            .into_iter()
            .map(|m| (m.user_id, m.connections))
            .collect()
    }

    fn sockets(&self) -> Vec<serde_json::Value> {
        admin::serialize::local_sockets(&self.io)
            .iter()
            .filter_map(|s| serde_json::to_value(s).ok())
            .collect()
    }

    fn users_gone(&self, users: Vec<String>) {
        for user in users {
            self.state
                .record_webhook("user.offline", || serde_json::json!({ "userId": user }));
        }
    }

    fn apply(&self, op: cluster::UserOp) -> std::pin::Pin<Box<dyn Future<Output = usize> + Send>> {
        let (state, io) = (self.state.clone(), self.io.clone());
        Box::pin(async move { service::rooms::apply_here(&state, &io, &op).await })
    }
}

/// The Redis adapter over this crate's reconnecting driver.
type RedisAdapter = CustomRedisAdapter<Emitter, ManagedDriver>;

/// Packets a socket may have queued for sending before emits to it fail (acks included).
const SOCKET_SEND_BUFFER: usize = 1024;
/// Initial WebSocket read buffer per socket (engineioxide's default is 4 KiB). Client packets
/// are mostly small; a larger frame grows the buffer for as long as it is read.
const WS_READ_BUFFER: usize = 1024;
/// Most binary attachments one packet may announce.
const MAX_ATTACHMENTS: usize = 32;
/// How long a packet's announced attachments may take to arrive.
const ATTACHMENT_TIMEOUT: Duration = Duration::from_secs(10);

fn socket_io(state: &AppState, admin: Option<admin::AdminRef>) -> SocketIoBuilder {
    let cfg = &state.cfg;
    let mut builder = SocketIo::builder().with_state(state.clone());
    if let Some(admin) = admin {
        builder = builder.with_state(admin);
    }
    let builder = builder
        .max_payload(cfg.max_payload_bytes as u64)
        .ws_max_message_size(cfg.max_payload_bytes)
        .ws_max_frame_size(cfg.max_payload_bytes)
        .max_buffer_size(SOCKET_SEND_BUFFER)
        .ws_read_buffer_size(WS_READ_BUFFER);
    match cfg.parser {
        ParserKind::Msgpack => builder.with_parser(ParserConfig::msgpack()),
        // MAX_PAYLOAD_BYTES bounds a packet with its attachments too, not each frame alone;
        // a packet whose attachments exceed it, or stop arriving, closes the connection.
        ParserKind::Common => builder.with_parser(
            ParserConfig::common()
                .max_incoming_binary_buf_size(cfg.max_payload_bytes)
                .max_incoming_binaries(MAX_ATTACHMENTS)
                .packet_completion_timeout(ATTACHMENT_TIMEOUT),
        ),
    }
}

async fn finish<A: Adapter>(
    state: AppState,
    io: SocketIo<A>,
    layer: SocketIoLayer<A>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    recorder: Option<(Recorder, mpsc::Receiver<Claimed>)>,
) -> Result<(), StartError> {
    let router = http::router(HttpState {
        app: state.clone(),
        io: io.clone(),
    })
    .layer(layer)
    .layer(axum::middleware::from_fn_with_state(
        state.cfg.max_payload_bytes,
        http::oversized_body::drain_oversized_polling,
    ))
    .layer(axum::middleware::map_request(handshake_copy::detach_handshake))
    .layer(DefaultBodyLimit::max(state.cfg.max_payload_bytes))
    .layer(axum::middleware::from_fn(http::header_limit::refuse_large_headers))
    .layer(cors(&state.cfg)?)
    .layer(http::access_log::layer());
    let sweeper = tokio::spawn(socket::sweep(io.clone(), state.clone()));
    let repairs = tokio::spawn(delivery::run(io.clone(), state.clone()));
    let checkpoints = state.db.start_checkpoints();
    let (recorder, mut webhook_delivery) = match (state.webhooks.clone(), recorder) {
        (Some(hooks), Some((recorder, handed))) => (
            Some(recorder),
            Some(crate::webhooks::delivery::start(hooks, state.db.clone(), handed)),
        ),
        _ => (None, None),
    };
    let addr = listener.local_addr()?;
    tracing::info!(%addr, database = ?state.db.backend(), "sio-gateway listening");

    // The stop, in order: close every Socket.IO transport (clients see `transport close` and
    // reconnect elsewhere; bounded to a third of the budget, at most 3 s), stop accepting, let
    // in-flight HTTP requests finish their writes, then close the adapter link and the pool.
    // Every step is bounded by what is left of SHUTDOWN_TIMEOUT_SECS.
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<tokio::task::JoinHandle<()>>();
    let close_budget = (state.cfg.shutdown_timeout / 3).min(Duration::from_secs(3));
    let departing = state.clone();
    let graceful = async move {
        shutdown.await;
        // Each socket's webhook events first: a closing server's disconnect handlers may not
        // run before it stops.
        socket::depart_all(&io, &departing);
        let closing = tokio::spawn(async move { io.close().await });
        // Let the transports close while their connections still answer: a polling client
        // collects its close packet with its pending GET, and sees `transport close`.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let watcher = tokio::spawn(async move {
            let _ = closing.await;
            let _ = tx.send(());
        });
        let _ = tokio::time::timeout(close_budget, rx).await;
        let _ = stopping_tx.send(watcher);
    };
    let mut server = tokio::spawn(
        axum::serve(
            // Small packets (acks, pings) go out at once: without TCP_NODELAY, Nagle's
            // algorithm holds them for up to ~40 ms waiting for the peer's ACK.
            listener.tap_io(|tcp| {
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!(cause = %e, "could not set TCP_NODELAY");
                }
            }),
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(graceful)
        .into_future(),
    );
    // Once the stop began, the server may end at the same moment: the stop's steps below
    // still run (biased: the stop is looked at first).
    let closing = tokio::select! {
        biased;
        closing = stopping_rx => closing.ok(),
        res = &mut server => { res??; None }
    };
    if let Some(checkpoints) = checkpoints {
        checkpoints.abort();
    }
    if let Some(closing) = closing {
        let deadline =
            tokio::time::Instant::now() + state.cfg.shutdown_timeout.saturating_sub(Duration::from_millis(250));
        if tokio::time::timeout_at(deadline, &mut server).await.is_err() {
            tracing::warn!("HTTP requests still running at SHUTDOWN_TIMEOUT_SECS; stopping anyway");
            server.abort();
        }
        let _ = tokio::time::timeout_at(deadline, closing).await;
        // The disconnects above recorded their presence and room events: stored before the
        // pool closes (an event being delivered keeps its row, and is tried again later).
        if let (Some(hooks), Some(recorder)) = (&state.webhooks, recorder) {
            hooks.close();
            recorder
                .drain(deadline.saturating_duration_since(tokio::time::Instant::now()))
                .await;
        }
        // Calls in flight are abandoned; their rows are due again at once, for the next node
        // (or this one restarted) to deliver.
        if let Some(delivery) = webhook_delivery.take() {
            delivery.stop(deadline).await;
        }
        if let Some(cluster) = &state.cluster {
            let _ = tokio::time::timeout_at(deadline, cluster.leave()).await;
        }
        let _ = tokio::time::timeout_at(deadline, state.db.close()).await;
    } else {
        state.db.close().await;
    }
    sweeper.abort();
    repairs.abort();
    if let Some(delivery) = webhook_delivery {
        delivery.abort();
    }
    tracing::info!("stopped");
    Ok(())
}

fn cors(cfg: &Config) -> Result<CorsLayer, StartError> {
    let origin = match &cfg.cors_origins {
        None => AllowOrigin::from(Any),
        Some(list) => {
            let values = list
                .iter()
                .map(|o| HeaderValue::from_str(o).map_err(|_| format!("CORS_ORIGINS: `{o}` is not a valid origin")))
                .collect::<Result<Vec<_>, _>>()?;
            AllowOrigin::list(values)
        }
    };
    Ok(CorsLayer::new()
        .allow_origin(origin)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE]))
}
