//! A bound on request headers: 16 KiB, as Node's HTTP server has by default.
//!
//! hyper reads headers up to its read buffer's limit (about 400 KiB). A Socket.IO handshake
//! keeps its request's headers for the whole life of the socket (see
//! [`crate::http::handshake_copy`]), so a client could pin that much memory per connection, and
//! every token in an `Authorization` header would be verified at that size. Requests whose
//! start line and headers exceed the bound are answered 431 before any other layer sees them.

use axum::{extract::Request, middleware::Next, response::Response};

use crate::error::AppError;

/// Most bytes of a request's start line and headers, counted as on the wire.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Axum middleware: 431 `headers_too_large` when a request's head is over [`MAX_HEADER_BYTES`].
pub async fn refuse_large_headers(req: Request, next: Next) -> Response {
    if head_bytes(&req) > MAX_HEADER_BYTES {
        return axum::response::IntoResponse::into_response(AppError::HeadersTooLarge);
    }
    next.run(req).await
}

/// `METHOD URI HTTP/1.1\r\n` plus `name: value\r\n` for each header.
fn head_bytes(req: &Request) -> usize {
    let target = req.uri().path_and_query().map_or(1, |p| p.as_str().len());
    let start = req.method().as_str().len() + " ".len() + target + " HTTP/1.1\r\n".len();
    req.headers().iter().fold(start, |sum, (name, value)| {
        sum + name.as_str().len() + value.len() + ": \r\n".len()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_is_counted_as_on_the_wire() {
        let req = Request::builder()
            .uri("/socket.io/?EIO=4")
            .header("authorization", "Bearer abc")
            .body(axum::body::Body::empty())
            .unwrap();
        let wire = "GET /socket.io/?EIO=4 HTTP/1.1\r\nauthorization: Bearer abc\r\n";
        assert_eq!(head_bytes(&req), wire.len());
    }
}
