//! Logs and metrics.
//!
//! Logs go through `tracing` (human-readable by default, one JSON object per line with
//! `LOG_FORMAT=json`; level from `RUST_LOG`, default `info`). No log line carries a token, key
//! or secret: handlers log user ids and socket ids only.
//!
//! Metrics use the `metrics` facade with the Prometheus exporter, rendered at `/metrics`.
//! Every series is listed in [`SERIES`] (and in the README): each has a `# HELP` line and exists
//! from the start, at zero. Process metrics (`process_*`, from `metrics-process`) and
//! `sio_build_info{version, git_commit}` come with them.

use std::{sync::OnceLock, time::Duration};

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Starts logging. `json` selects one JSON object per line: `timestamp`, `level`, `target`,
/// `message`, and the event's fields (`sid` and `user` where known).
pub fn init_logging(json: bool) {
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // These crates print handshake auth data and raw packets (tokens included) at debug and
    // trace; they are held at info whatever RUST_LOG says, so no level ever logs a token.
    for quiet in QUIET_DEPENDENCIES {
        if let Ok(directive) = quiet.parse() {
            filter = filter.add_directive(directive);
        }
    }
    let registry = tracing_subscriber::registry().with(filter);
    let result = if json {
        registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(std::io::stderr)
                    // The access log's method and path live in its request span.
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .try_init()
    } else {
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
        registry
            .with(fmt::layer().with_writer(std::io::stderr).with_ansi(ansi))
            .try_init()
    };
    // A second call (tests start several servers in one process) keeps the first subscriber.
    let _ = result;
}

/// Dependencies whose verbose levels can print secrets.
const QUIET_DEPENDENCIES: [&str; 10] = [
    "socketioxide=info",
    "socketioxide_core=info",
    "socketioxide_redis=info",
    "engineioxide=info",
    "engineioxide_core=info",
    "tungstenite=info",
    "tokio_tungstenite=info",
    "hyper=info",
    "hyper_util=info",
    "redis=info",
];

/// What kind of series a [`SERIES`] entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations in buckets.
    Histogram,
}

/// How a series exists before anything happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// At zero, without labels.
    Zero,
    /// At zero, once for each of these labels.
    ZeroWith(&'static [(&'static str, &'static str)]),
    /// Its labels are known only when it happens (described, then present once used; client
    /// events are started by [`start_event_series`]).
    Used,
}

/// One series: name, kind, how it starts, help text.
pub type Series = (&'static str, Kind, Start, &'static str);

/// Every series of the gateway.
pub const SERIES: &[Series] = &[
    (
        "sio_connections",
        Kind::Gauge,
        Start::Zero,
        "Sockets connected to this node.",
    ),
    ("sio_connects_total", Kind::Counter, Start::Zero, "Handshakes accepted."),
    (
        "sio_disconnects_total",
        Kind::Counter,
        Start::Zero,
        "Sockets disconnected.",
    ),
    (
        "sio_connect_refusals_total",
        Kind::Counter,
        Start::ZeroWith(&[
            ("reason", "missing_token"),
            ("reason", "invalid_token"),
            ("reason", "token_expired"),
            ("reason", "too_many_connections"),
            ("reason", "too_many_user_connections"),
            ("reason", "other"),
        ]),
        "Handshakes refused, by the connect_error message.",
    ),
    (
        "sio_events_total",
        Kind::Counter,
        Start::Used,
        "Client events handled, by event and outcome.",
    ),
    (
        "sio_event_duration_seconds",
        Kind::Histogram,
        Start::Used,
        "Time from a client event's receipt to its answer.",
    ),
    (
        "sio_notifications_created_total",
        Kind::Counter,
        Start::Zero,
        "Notifications stored by this node.",
    ),
    (
        "sio_notifications_delivered_total",
        Kind::Counter,
        Start::Zero,
        "Notification deliveries to sockets of this node.",
    ),
    (
        "sio_notification_gaps_total",
        Kind::Counter,
        Start::Zero,
        "Live notifications a socket could not take in order (repaired from the database).",
    ),
    (
        "sio_notifications_repaired_total",
        Kind::Counter,
        Start::Zero,
        "Notifications sent by the repair loop.",
    ),
    (
        "sio_repair_poll_failures_total",
        Kind::Counter,
        Start::Zero,
        "Failed polls of recent notification ids (database away).",
    ),
    (
        "sio_admin_events_dropped_total",
        Kind::Counter,
        Start::Zero,
        "Admin UI live events dropped (queue full).",
    ),
    (
        "sio_proxy_calls_total",
        Kind::Counter,
        Start::Used,
        "Proxied events, by event label and outcome.",
    ),
    (
        "sio_proxy_call_duration_seconds",
        Kind::Histogram,
        Start::Used,
        "Backend call time of proxied events that reached the backend.",
    ),
    (
        "sio_webhook_deliveries_total",
        Kind::Counter,
        Start::Used,
        "Webhook calls (one per try), by type and outcome.",
    ),
    (
        "sio_webhook_events_dropped_total",
        Kind::Counter,
        Start::Used,
        "Presence and room webhook events dropped, by type: the database did not take them and the node's queue was full.",
    ),
    (
        "sio_webhooks_pending",
        Kind::Gauge,
        Start::Zero,
        "Webhook events not yet delivered or expired, all nodes' (read from the database every 5 s).",
    ),
    (
        "sio_webhook_receiver_down",
        Kind::Gauge,
        Start::Used,
        "1 while this node's webhook calls all fail and it probes the receiver with one event per pause.",
    ),
    (
        "http_requests_total",
        Kind::Counter,
        Start::Used,
        "HTTP requests, by route template and status.",
    ),
    (
        "http_request_duration_seconds",
        Kind::Histogram,
        Start::Used,
        "HTTP request time, by route template.",
    ),
    (
        "sio_build_info",
        Kind::Gauge,
        Start::Used,
        "Always 1; the labels say which build runs (version, git_commit).",
    ),
];

/// The series of a node with Redis (`REDIS_URL`), started by [`start_redis_series`].
pub const REDIS_SERIES: &[Series] = &[
    (
        "sio_redis_up",
        Kind::Gauge,
        Start::Zero,
        "1 when the last heartbeat reached Redis, else 0.",
    ),
    (
        "sio_redis_reconnects_total",
        Kind::Counter,
        Start::Zero,
        "Times Redis answered again after heartbeats had failed.",
    ),
    (
        "sio_redis_heartbeat_failures_total",
        Kind::Counter,
        Start::Zero,
        "Heartbeats (every 2 s) that did not reach Redis.",
    ),
    (
        "sio_redis_messages_lost_total",
        Kind::Counter,
        Start::ZeroWith(&[
            ("cause", "queue_full"),
            ("cause", "publish_failed"),
            ("cause", "inbound_dropped"),
        ]),
        "Redis messages this node could not pass on, by cause.",
    ),
];

/// The git commit the binary was built from (`build.rs`), or `unknown`.
pub const GIT_COMMIT: &str = env!("SIO_GIT_COMMIT");

static PROMETHEUS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
static PROCESS: OnceLock<metrics_process::Collector> = OnceLock::new();

/// Installs the Prometheus recorder once per process, with every series of [`SERIES`] described
/// and at zero, and returns its handle.
pub fn metrics_handle() -> Option<&'static PrometheusHandle> {
    PROMETHEUS
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("duration_seconds".into()),
                    &[
                        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                    ],
                )
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            start_series(SERIES);
            gauge!("sio_build_info", "version" => env!("CARGO_PKG_VERSION"), "git_commit" => GIT_COMMIT).set(1.0);
            PROCESS.get_or_init(metrics_process::Collector::default).describe();
            Some(handle)
        })
        .as_ref()
}

/// The Prometheus text of every series, with the process metrics read now.
pub fn render() -> Option<String> {
    let handle = metrics_handle()?;
    if let Some(process) = PROCESS.get() {
        process.collect();
    }
    Some(handle.render())
}

/// Describes the Redis series and makes them exist, at zero on a first start (a node with `REDIS_URL`).
pub fn start_redis_series() {
    start_series(REDIS_SERIES);
}

fn start_series(series: &[Series]) {
    for &(name, kind, start, help) in series {
        match kind {
            Kind::Counter => describe_counter!(name, help),
            Kind::Gauge => describe_gauge!(name, help),
            Kind::Histogram => describe_histogram!(name, help),
        }
        let label_sets: Vec<Vec<metrics::Label>> = match start {
            Start::Used => Vec::new(),
            Start::Zero => vec![Vec::new()],
            Start::ZeroWith(labels) => labels.iter().map(|&(k, v)| vec![metrics::Label::new(k, v)]).collect(),
        };
        for labels in label_sets {
            match kind {
                // Adding zero makes the series exist without resetting it, should a process
                // start a second server (the tests do).
                Kind::Counter => counter!(name, labels).increment(0),
                Kind::Gauge => gauge!(name, labels).increment(0.0),
                Kind::Histogram => {}
            }
        }
    }
}

/// Starts `sio_webhook_deliveries_total{type, outcome="delivered"}` at zero for each type sent,
/// and `sio_webhook_events_dropped_total{type}` for each presence and room type sent (the
/// others are stored with their change, never queued).
pub fn start_webhook_series(types: &[&'static str]) {
    for &kind in types {
        counter!("sio_webhook_deliveries_total", "type" => kind, "outcome" => "delivered").increment(0);
        if kind.starts_with("user.") || kind.starts_with("room.") {
            counter!("sio_webhook_events_dropped_total", "type" => kind).increment(0);
        }
    }
}

/// Starts `sio_events_total{event, outcome="ok"}` at zero for each client event name.
pub fn start_event_series(events: &[&'static str]) {
    for &event in events {
        counter!("sio_events_total", "event" => event, "outcome" => "ok").increment(0);
    }
}

/// One event handled, by its label (a known event name, or `unknown`), with its outcome
/// (`ok` or an error code) and duration.
pub fn record_event(event: &'static str, outcome: &'static str, took: Duration) {
    counter!("sio_events_total", "event" => event, "outcome" => outcome).increment(1);
    histogram!("sio_event_duration_seconds", "event" => event).record(took.as_secs_f64());
}

/// A socket connected.
pub fn record_connect() {
    counter!("sio_connects_total").increment(1);
    gauge!("sio_connections").increment(1.0);
}

/// A socket disconnected.
pub fn record_disconnect() {
    counter!("sio_disconnects_total").increment(1);
    gauge!("sio_connections").decrement(1.0);
}

/// A handshake refused, by its `connect_error` message.
pub fn record_refusal(reason: &str) {
    let reason = match reason {
        "missing_token" => "missing_token",
        "invalid_token" => "invalid_token",
        "token_expired" => "token_expired",
        "too_many_connections" => "too_many_connections",
        "too_many_user_connections" => "too_many_user_connections",
        _ => "other",
    };
    counter!("sio_connect_refusals_total", "reason" => reason).increment(1);
}

/// A notification stored.
pub fn record_notification_created() {
    counter!("sio_notifications_created_total").increment(1);
}

/// A notification handed to `n` sockets.
pub fn record_notification_delivered(n: usize) {
    counter!("sio_notifications_delivered_total").increment(n as u64);
}

/// An admin UI event dropped because its queue was full.
pub fn record_admin_event_dropped() {
    counter!("sio_admin_events_dropped_total").increment(1);
}

/// One HTTP request, by route template and status.
pub fn record_http(route: &str, status: u16, took: Duration) {
    let status = status.to_string();
    counter!("http_requests_total", "route" => route.to_string(), "status" => status).increment(1);
    histogram!("http_request_duration_seconds", "route" => route.to_string()).record(took.as_secs_f64());
}

/// A live notification that could not be sent in order (a gap, or a failed emit): the
/// sockets of its user are brought up to date from the database.
pub fn record_delivery_gap() {
    counter!("sio_notification_gaps_total").increment(1);
}

/// Notifications sent to sockets by the repair loop, read from the database.
pub fn record_notifications_repaired(n: usize) {
    counter!("sio_notifications_repaired_total").increment(n as u64);
    counter!("sio_notifications_delivered_total").increment(n as u64);
}

/// The repair loop's poll of recent notification ids failed (database away).
pub fn record_repair_poll_failed() {
    counter!("sio_repair_poll_failures_total").increment(1);
}

/// Redis messages this node could not pass on since the last heartbeat: publishes that did
/// not fit in the queue, publishes Redis did not take, incoming messages dropped.
pub fn record_redis_losses(queue_full: u64, publish_failed: u64, inbound_dropped: u64) {
    counter!("sio_redis_messages_lost_total", "cause" => "queue_full").increment(queue_full);
    counter!("sio_redis_messages_lost_total", "cause" => "publish_failed").increment(publish_failed);
    counter!("sio_redis_messages_lost_total", "cause" => "inbound_dropped").increment(inbound_dropped);
}

/// Whether the last heartbeat reached Redis (1) or not (0).
pub fn record_redis_up(up: bool) {
    gauge!("sio_redis_up").set(if up { 1.0 } else { 0.0 });
}

/// A heartbeat that did not reach Redis.
pub fn record_redis_heartbeat_failed() {
    counter!("sio_redis_heartbeat_failures_total").increment(1);
}

/// Redis answers again after failed heartbeats.
pub fn record_redis_reconnect() {
    counter!("sio_redis_reconnects_total").increment(1);
}

/// One proxied event (`crate::proxy`), by its label and outcome; `took` is the backend call's
/// duration, for the events that reached the backend.
pub fn record_proxy_call(event: String, outcome: &'static str, took: Option<Duration>) {
    counter!("sio_proxy_calls_total", "event" => event.clone(), "outcome" => outcome).increment(1);
    if let Some(took) = took {
        histogram!("sio_proxy_call_duration_seconds", "event" => event).record(took.as_secs_f64());
    }
}

/// One webhook call, by event type and outcome (`delivered`, `refused`, `server_error`,
/// `timeout`, `unreachable`).
pub fn record_webhook(kind: &str, outcome: &'static str) {
    counter!("sio_webhook_deliveries_total", "type" => kind.to_string(), "outcome" => outcome).increment(1);
}

/// A presence or room webhook event dropped because the recorder's queue was full.
pub fn record_webhook_event_dropped(kind: &'static str) {
    counter!("sio_webhook_events_dropped_total", "type" => kind).increment(1);
}

/// Whether this node's webhook delivery counts the receiver as down (1) or not (0).
pub fn record_webhook_receiver_down(down: bool) {
    gauge!("sio_webhook_receiver_down").set(if down { 1.0 } else { 0.0 });
}

/// Webhook events waiting in the outbox (all nodes'; read from the database).
pub fn record_webhooks_pending(n: i64) {
    gauge!("sio_webhooks_pending").set(n as f64);
}
