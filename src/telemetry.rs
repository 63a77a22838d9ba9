//! Logs and metrics.
//!
//! Logs go through `tracing` (human-readable by default, one JSON object per line with
//! `LOG_FORMAT=json`; level from `RUST_LOG`, default `info`). No log line carries a token, key
//! or secret: handlers log user ids and socket ids only.
//!
//! Metrics use the `metrics` facade with the Prometheus exporter, rendered at `/metrics`.
//! Series names are listed in the README.

use std::{sync::OnceLock, time::Duration};

use metrics::{counter, gauge, histogram};
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
                    .with_current_span(false)
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

static PROMETHEUS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder once per process and returns its handle.
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
            Some(handle)
        })
        .as_ref()
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

/// Webhook events waiting in the outbox (all nodes'; read from the database).
pub fn record_webhooks_pending(n: i64) {
    gauge!("sio_webhooks_pending").set(n as f64);
}
