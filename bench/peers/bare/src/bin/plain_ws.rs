//! `plain-ws`: the memory floor. Plain tokio-tungstenite on a `TcpListener` (no hyper), one
//! task per socket, speaking just enough Engine.IO v4 / Socket.IO v5 for the load
//! generator's `hold` and `connect-rate`: open packet, CONNECT with a verified JWT,
//! `registered`, a ping every 25 s. Everything else the client sends is read and ignored.
//! `GET /healthz` on the same port answers 200.

use std::time::Duration;

use bare_peer::{Config, Verifier, bind};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tokio_tungstenite::{
    WebSocketStream, accept_hdr_async_with_config,
    tungstenite::{
        Message,
        handshake::server::{ErrorResponse, Request, Response},
        http::StatusCode,
        protocol::WebSocketConfig,
    },
};

const PING_INTERVAL: Duration = Duration::from_secs(25);
/// How long a client has to send its CONNECT packet after the open packet.
const CONNECT_WITHIN: Duration = Duration::from_secs(45);

fn sid() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// Small buffers: this server measures what a WebSocket itself costs, not a framework.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(Some(1_000_000))
        .max_frame_size(Some(1_000_000))
}

/// Only `GET /socket.io/?EIO=4&transport=websocket` is upgraded.
#[allow(clippy::result_large_err)] // the callback signature tungstenite requires
fn check_path(req: &Request, resp: Response) -> Result<Response, ErrorResponse> {
    let uri = req.uri();
    let query = uri.query().unwrap_or("");
    let has = |p: &str| query.split('&').any(|kv| kv == p);
    if uri.path() == "/socket.io/" && has("EIO=4") && has("transport=websocket") {
        Ok(resp)
    } else {
        let mut err = ErrorResponse::new(Some("not found".into()));
        *err.status_mut() = StatusCode::NOT_FOUND;
        Err(err)
    }
}

/// Is the request on this connection `GET /healthz`? Peeks, reads nothing.
async fn is_healthz(tcp: &TcpStream) -> bool {
    const LINE: &[u8] = b"GET /healthz";
    let mut buf = [0u8; 13];
    for _ in 0..50 {
        match tcp.peek(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) if n > LINE.len() || !LINE.starts_with(&buf[..n]) => {
                return n > LINE.len() && buf.starts_with(LINE) && matches!(buf[LINE.len()], b' ' | b'?');
            }
            // A request line split over segments: wait for the rest.
            Ok(_) => tokio::time::sleep(Duration::from_millis(2)).await,
        }
    }
    false
}

async fn healthz(mut tcp: TcpStream) {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 512];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
        match tcp.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let body = r#"{"status":"ok"}"#;
    let resp = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tcp.write_all(resp.as_bytes()).await;
    let _ = tcp.shutdown().await;
}

/// The token of a CONNECT packet to the default namespace: `40` or `40{…}`.
fn connect_token(packet: &str) -> Option<Option<String>> {
    let rest = packet.strip_prefix("40")?;
    if rest.is_empty() {
        return Some(None);
    }
    let auth: Value = serde_json::from_str(rest).ok()?;
    Some(auth.get("token").and_then(Value::as_str).map(String::from))
}

async fn next_text(ws: &mut WebSocketStream<TcpStream>) -> Option<String> {
    loop {
        match ws.next().await? {
            Ok(Message::Text(t)) => return Some(t.as_str().to_owned()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// Upgrade, open packet, CONNECT with a verified token, `registered`. `None`: the
/// connection is done (refused, closed, or not a WebSocket).
async fn handshake(tcp: TcpStream, verifier: &Verifier) -> Option<WebSocketStream<TcpStream>> {
    let mut ws = accept_hdr_async_with_config(tcp, check_path, Some(ws_config()))
        .await
        .ok()?;
    let open = format!(
        r#"0{{"sid":"{}","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}}"#,
        sid()
    );
    ws.send(Message::text(open)).await.ok()?;
    let packet = tokio::time::timeout(CONNECT_WITHIN, next_text(&mut ws)).await.ok()??;
    // Anything but a CONNECT to "/" ends the connection: nothing else is spoken here.
    let token = connect_token(&packet)?;
    let user = match verifier.verify(token.as_deref()) {
        Ok(u) => u,
        Err(e) => {
            let _ = ws.send(Message::text(format!(r#"44{{"message":"{e}"}}"#))).await;
            let _ = ws.close(None).await;
            return None;
        }
    };
    let socket_id = sid();
    let registered = json!(["registered", {
        "userId": user,
        "socketId": socket_id,
        "rooms": [format!("user:{user}")],
        "unreadCount": 0,
        "lastNotificationId": null,
    }]);
    ws.send(Message::text(format!(r#"40{{"sid":"{socket_id}"}}"#)))
        .await
        .ok()?;
    ws.send(Message::text(format!("42{registered}"))).await.ok()?;
    Some(ws)
}

/// The connected socket: a ping every 25 s, whatever comes in is read and ignored.
async fn hold(mut ws: WebSocketStream<TcpStream>) {
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_INTERVAL, PING_INTERVAL);
    loop {
        tokio::select! {
            frame = ws.next() => match frame {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {} // pongs and everything else: ignored
            },
            _ = ping.tick() => if ws.send(Message::text("2")).await.is_err() { return },
        }
    }
}

#[tokio::main]
async fn main() {
    let cfg = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("plain-ws: {e}");
            std::process::exit(2);
        }
    };
    let verifier: &'static Verifier = Box::leak(Box::new(Verifier::new(&cfg.secret)));
    let listener = match bind(cfg.port) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("plain-ws: cannot listen on 127.0.0.1:{}: {e}", cfg.port);
            std::process::exit(1);
        }
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(cfg.port);
    println!("listening on {port}");
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                eprintln!("plain-ws: accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        tokio::spawn(async move {
            // The handshake's state is boxed and freed once done: only the connection
            // itself stays resident in the task while it is held.
            if is_healthz(&tcp).await {
                healthz(tcp).await;
            } else if let Some(ws) = Box::pin(handshake(tcp, verifier)).await {
                hold(ws).await;
            }
        });
    }
}
