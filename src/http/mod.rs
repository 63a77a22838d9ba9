//! The HTTP API: notifications, emits and the server API for backends, notifications for
//! users, and the health and metrics endpoints. Every error is JSON `{ error: { code, message, details? } }`.

pub mod access_log;
pub mod demo;
pub mod emit;
pub mod extract;
pub mod handshake_copy;
pub mod header_limit;
pub mod health;
pub mod notifications;
pub mod oversized_body;
pub mod server_api;

use std::time::{Duration, Instant};

use axum::{
    Router,
    extract::{MatchedPath, Request},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use socketioxide::{SocketIo, adapter::Adapter};

use crate::{error::AppError, node::AppState, telemetry};

/// State of the HTTP handlers: the node's state and the Socket.IO handle to emit with.
pub struct HttpState<A: Adapter> {
    /// Shared node state.
    pub app: AppState,
    /// Emits to sockets (through the adapter, so to every node).
    pub io: SocketIo<A>,
}

impl<A: Adapter> Clone for HttpState<A> {
    fn clone(&self) -> Self {
        Self {
            app: self.app.clone(),
            io: self.io.clone(),
        }
    }
}

/// All HTTP routes, with JSON answers for unknown paths and wrong methods.
pub fn router<A: Adapter>(state: HttpState<A>) -> Router {
    let mut extra = match &state.app.cfg.demo_dir {
        Some(dir) => demo::router::<A>(dir),
        None => Router::new(),
    };
    if let Some(dir) = &state.app.cfg.admin_ui_dir {
        extra = extra.nest_service(
            "/admin-ui/",
            tower_http::services::ServeDir::new(dir).append_index_html_on_directories(true),
        );
    }
    Router::new()
        .merge(extra)
        .route(
            "/api/notifications",
            post(notifications::create::<A>).get(notifications::list::<A>),
        )
        .route("/api/notifications/read", post(notifications::mark_read::<A>))
        .route("/api/emit", post(emit::emit::<A>))
        .route("/api/users/{userId}/disconnect", post(server_api::disconnect::<A>))
        .route("/api/users/{userId}/presence", get(server_api::presence::<A>))
        .route("/api/rooms/{roomId}/join", post(server_api::join::<A>))
        .route("/api/rooms/{roomId}/leave", post(server_api::leave::<A>))
        .route("/api/rooms/{roomId}/members", get(server_api::members::<A>))
        .route("/api/rooms/{roomId}/messages", get(server_api::messages::<A>))
        .route("/", get(health::index::<A>))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz::<A>))
        .route("/metrics", get(health::metrics::<A>))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(time_limit))
        .layer(middleware::from_fn(record))
        .with_state(state)
}

async fn not_found() -> AppError {
    AppError::NotFound
}

async fn method_not_allowed() -> AppError {
    AppError::MethodNotAllowed
}

/// Longest an HTTP API request may take before it is answered 503 `unavailable` (Socket.IO's
/// long-polling requests do not pass here: the Socket.IO layer answers them before the router).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Answers 503 `unavailable` when a request takes longer than [`REQUEST_TIMEOUT`], so a slow
/// dependency never holds a backend's request open without bound.
async fn time_limit(req: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(res) => res,
        Err(_) => AppError::Unavailable("request timed out").into_response(),
    }
}

/// Counts each request by route template and status.
async fn record(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string());
    let started = Instant::now();
    let res = next.run(req).await;
    let route = route.unwrap_or_else(|| "unmatched".into());
    telemetry::record_http(&route, res.status().as_u16(), started.elapsed());
    res
}

impl IntoResponse for crate::socket::ConnectRefusal {
    fn into_response(self) -> Response {
        AppError::Unauthorized.into_response()
    }
}
