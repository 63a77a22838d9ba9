//! Long-polling uploads over `MAX_PAYLOAD_BYTES` get their 413, not a reset connection.
//!
//! engineioxide refuses a polling POST as soon as it has read more than the limit, answers 413
//! and drops the rest of the body. hyper then closes a connection with unread bytes in it, and
//! the kernel turns that close into a reset, which can reach the client before the 413 does
//! (the client sees "fetch failed", not 413). For a polling POST whose `Content-Length`
//! announces more than the limit, this layer reads the body to its end (bounded in size and
//! time), keeps only the first `limit + 1` bytes, and hands those to the Socket.IO layer, which
//! refuses them exactly as before. The connection is then clean when the 413 leaves.

use std::time::Duration;

use axum::{
    body::Body,
    extract::{Request, State},
    http::{Method, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use futures_util::StreamExt;

use super::handshake_copy::ENGINE_PATH;
use crate::error::AppError;

/// Most bytes read and discarded from one oversized upload; a larger one is left to the reset.
const DRAIN_MAX_BYTES: u64 = 16 * 1024 * 1024;
/// Longest an oversized upload may take to arrive before it is left to the reset.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Axum middleware (state: `MAX_PAYLOAD_BYTES`); see the module documentation.
pub async fn drain_oversized_polling(State(limit): State<usize>, req: Request, next: Next) -> Response {
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let oversized = req.method() == Method::POST
        && req.uri().path() == ENGINE_PATH
        && announced.is_some_and(|n| n > limit as u64 && n <= DRAIN_MAX_BYTES);
    if !oversized {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let mut kept = Vec::with_capacity(limit + 1);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, keep_head_of(body, &mut kept, limit + 1)).await;
    if drained.is_err() && kept.len() <= limit {
        // Too slow to even reach the limit: refused here, the connection left to close.
        return AppError::PayloadTooLarge.into_response();
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    next.run(Request::from_parts(parts, Body::from(kept))).await
}

/// Reads `body` to its end, keeping its first `keep` bytes in `kept`.
async fn keep_head_of(body: Body, kept: &mut Vec<u8>, keep: usize) {
    let mut stream = body.into_data_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        let room = keep - kept.len();
        kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keeps_only_the_head() {
        let mut kept = Vec::new();
        keep_head_of(Body::from(vec![7u8; 100_000]), &mut kept, 65_537).await;
        assert_eq!(kept.len(), 65_537);
    }
}
