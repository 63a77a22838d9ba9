//! The HTTP access log: one `info` line per request, through tower-http's `TraceLayer`
//! (target `tower_http::trace`; `RUST_LOG=tower_http=warn` turns it off). The line names the
//! method, the path, the status and the latency. The query string is left out (Socket.IO's
//! polling requests carry session ids there, and legacy clients their token) and so is every
//! header (`Authorization`, cookies).

use axum::{body::Body, http::Request};
use tower_http::{
    LatencyUnit,
    classify::{ServerErrorsAsFailures, SharedClassifier},
    trace::{DefaultOnBodyChunk, DefaultOnEos, DefaultOnFailure, DefaultOnResponse, MakeSpan, TraceLayer},
};
use tracing::{Level, Span};

/// The span of one request: method and path only.
#[derive(Debug, Clone, Copy)]
pub struct PathOnly;

impl MakeSpan<Body> for PathOnly {
    fn make_span(&mut self, req: &Request<Body>) -> Span {
        tracing::info_span!("request", method = %req.method(), path = %req.uri().path())
    }
}

/// The access log layer's type.
pub type AccessLog = TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    PathOnly,
    (),
    DefaultOnResponse,
    DefaultOnBodyChunk,
    DefaultOnEos,
    DefaultOnFailure,
>;

/// The access log layer: `info` per response, `warn` for a server error.
pub fn layer() -> AccessLog {
    TraceLayer::new_for_http()
        .make_span_with(PathOnly)
        .on_request(())
        .on_response(
            DefaultOnResponse::new()
                .level(Level::INFO)
                .latency_unit(LatencyUnit::Micros),
        )
        .on_failure(DefaultOnFailure::new().level(Level::WARN))
}
