//! Memory: detach a Socket.IO handshake request from hyper's read buffer.
//!
//! hyper parses a request without copying: its URI and header values are slices of the
//! connection's read buffer (8–16 KiB). engineioxide keeps the handshake request's parts for
//! the whole life of the socket (they are `socket.req_parts()`), and with them that whole
//! buffer: about a third of an idle WebSocket's memory. Copying the URI (also axum's
//! `OriginalUri` extension) and the header values into allocations of their own, before the
//! Socket.IO layer sees the request, lets the buffer go once the upgraded connection reads
//! its first frame.

use axum::{
    extract::{OriginalUri, Request},
    http::{HeaderMap, HeaderValue, Uri},
};

/// Where the Socket.IO layer listens (socketioxide's default engine path).
pub(crate) const ENGINE_PATH: &str = "/socket.io/";

/// Axum `map_request` middleware: copies the parts of every request that may open a
/// Socket.IO session (engine path, no `sid` yet); other requests pass untouched.
pub async fn detach_handshake(mut req: Request) -> Request {
    if opens_session(req.uri()) {
        let owned_uri = req.uri().to_string().parse::<Uri>();
        if let Ok(uri) = owned_uri {
            // Axum's router keeps a clone of the URI as an extension: a slice of the buffer too.
            if req.extensions().get::<OriginalUri>().is_some() {
                req.extensions_mut().insert(OriginalUri(uri.clone()));
            }
            *req.uri_mut() = uri;
        }
        let owned_headers = owned_copy(req.headers());
        *req.headers_mut() = owned_headers;
    }
    req
}

/// A request to the engine path without a session id: a polling handshake or a direct
/// WebSocket — the requests whose parts engineioxide keeps.
fn opens_session(uri: &Uri) -> bool {
    uri.path().starts_with(ENGINE_PATH)
        && !uri
            .query()
            .is_some_and(|q| q.split('&').any(|pair| pair.starts_with("sid=")))
}

/// The same headers, each value in an allocation of its own (names are either static or
/// already owned by the `http` crate).
fn owned_copy(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let Ok(mut copy) = HeaderValue::from_bytes(value.as_bytes()) else {
            continue;
        };
        copy.set_sensitive(value.is_sensitive());
        out.append(name.clone(), copy);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_session_opening_requests_are_copied() {
        let handshake: Uri = "/socket.io/?EIO=4&transport=websocket".parse().unwrap();
        let upgrade: Uri = "/socket.io/?EIO=4&transport=websocket&sid=abc".parse().unwrap();
        let api: Uri = "/api/emit".parse().unwrap();
        assert!(opens_session(&handshake));
        assert!(!opens_session(&upgrade));
        assert!(!opens_session(&api));
    }

    #[test]
    fn the_copy_keeps_every_value_and_its_sensitivity() {
        let mut headers = HeaderMap::new();
        headers.append("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        headers.append("x-forwarded-for", HeaderValue::from_static("10.0.0.2"));
        let mut auth = HeaderValue::from_static("Bearer abc");
        auth.set_sensitive(true);
        headers.insert("authorization", auth);
        let copy = owned_copy(&headers);
        assert_eq!(copy.get_all("x-forwarded-for").iter().count(), 2);
        assert_eq!(copy["authorization"], "Bearer abc");
        assert!(copy["authorization"].is_sensitive());
    }
}
