//! Sockets as the admin UI shows them (`SerializedSocket` of `@socket.io/admin-ui`), with
//! credentials left out: no `Authorization` or `Cookie` header, no `token` query parameter.

use std::{collections::BTreeMap, net::SocketAddr};

use axum::extract::ConnectInfo;
use serde::{Deserialize, Serialize};
use socketioxide::{SocketIo, TransportType, adapter::Adapter, extract::SocketRef};

use super::ADMIN_NS;
use crate::{node::AppState, node::session::SessionRef};

/// One socket, as the admin UI lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SerializedSocket {
    /// The socket id.
    pub id: String,
    /// The connection id (the same as the socket id here).
    pub client_id: String,
    /// `websocket` or `polling`.
    pub transport: String,
    /// The namespace.
    pub nsp: String,
    /// `{ userId }` for gateway sockets.
    pub data: serde_json::Value,
    /// The handshake, without credentials.
    pub handshake: Handshake,
    /// The rooms the socket is in.
    pub rooms: Vec<String>,
}

/// The handshake part of [`SerializedSocket`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Handshake {
    /// The client address (or `X-Forwarded-For`).
    pub address: String,
    /// Request headers, credentials removed.
    pub headers: BTreeMap<String, String>,
    /// Query parameters, `token` removed.
    pub query: BTreeMap<String, String>,
    /// Connect time, milliseconds since the epoch.
    pub issued: u64,
    /// Whether the connection was TLS (never, behind a terminating proxy).
    pub secure: bool,
    /// Connect time, as text.
    pub time: String,
    /// The request path and query, `token` removed.
    pub url: String,
    /// Whether the request was cross-origin.
    pub xdomain: bool,
}

const HIDDEN_HEADERS: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];

/// Serialises one socket of namespace `nsp`.
pub fn serialize<A: Adapter>(s: &SocketRef<A>, nsp: &str) -> SerializedSocket {
    let parts = s.req_parts();
    let headers: BTreeMap<String, String> = parts
        .headers
        .iter()
        .filter(|(k, _)| !HIDDEN_HEADERS.contains(&k.as_str()))
        .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.to_string(), v.to_string())))
        .collect();
    let query: BTreeMap<String, String> = form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
        .filter(|(k, _)| k != "token")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let url = format!(
        "{}?{}",
        parts.uri.path(),
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(query.iter())
            .finish()
    );
    let address = headers
        .get("x-forwarded-for")
        .cloned()
        .or_else(|| {
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string())
        })
        .unwrap_or_default();
    let session = s.extensions.get::<SessionRef>();
    let issued = session
        .as_ref()
        .map(|ses| ses.connected_at_ms())
        .unwrap_or_else(crate::clock::unix_millis);
    let time = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(issued) * 1_000_000)
        .map(crate::clock::rfc3339_ms)
        .unwrap_or_default();
    let xdomain = headers.contains_key("origin");
    let data = match &session {
        Some(ses) => serde_json::json!({ "userId": ses.user_id }),
        None => serde_json::json!({}),
    };
    SerializedSocket {
        id: s.id.to_string(),
        client_id: s.id.to_string(),
        transport: match s.transport_type() {
            TransportType::Websocket => "websocket",
            TransportType::Polling => "polling",
        }
        .to_string(),
        nsp: nsp.to_string(),
        data,
        handshake: Handshake {
            address,
            headers,
            query,
            issued,
            secure: false,
            time,
            url,
            xdomain,
        },
        rooms: crate::service::rooms::visible_rooms(s),
    }
}

/// This node's sockets of `/` and `/admin`.
pub fn local_sockets<A: Adapter>(io: &SocketIo<A>) -> Vec<SerializedSocket> {
    let mut all = Vec::new();
    for nsp in ["/", ADMIN_NS] {
        if let Some(ns) = io.of(nsp) {
            all.extend(ns.local().sockets().iter().map(|s| serialize(s, nsp)));
        }
    }
    all
}

/// Every socket of every node.
pub async fn all_sockets<A: Adapter>(io: &SocketIo<A>, st: &AppState) -> Vec<SerializedSocket> {
    let mut all = local_sockets(io);
    if let Some(cluster) = &st.cluster {
        all.extend(
            cluster
                .remote_sockets()
                .await
                .into_iter()
                .filter_map(|s| serde_json::from_value::<SerializedSocket>(s).ok()),
        );
    }
    all
}
