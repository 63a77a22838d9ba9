//! A minimal Engine.IO v4 / Socket.IO v5 client over WebSocket (text packets only).
//!
//! Cheap on purpose: one task per socket, a 4 KiB read buffer, no per-socket channels.

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{EncodingKey, Header};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::{WebSocketStream, client_async_with_config};

pub type Ws = WebSocketStream<TcpStream>;

static START: OnceLock<Instant> = OnceLock::new();

/// Microseconds since the process's own epoch (used as send timestamps in payloads).
pub fn now_us() -> u64 {
    START.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// Where the gateway is and how to authenticate.
pub struct Target {
    /// `host:port`
    pub addr: String,
    /// `http://host:port`
    pub http_base: String,
    pub key: EncodingKey,
}

impl Target {
    pub fn new(url: &str, secret: &str) -> Result<Target, String> {
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("ws://"))
            .ok_or_else(|| format!("--url must be http://host:port, got {url}"))?;
        let addr = rest.trim_end_matches('/').to_string();
        if addr.is_empty() || addr.contains('/') {
            return Err(format!("--url must be http://host:port, got {url}"));
        }
        Ok(Target {
            http_base: format!("http://{addr}"),
            addr,
            key: EncodingKey::from_secret(secret.as_bytes()),
        })
    }

    pub fn token(&self, sub: &str) -> String {
        #[derive(serde::Serialize)]
        struct Claims<'a> {
            sub: &'a str,
            exp: u64,
        }
        let exp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 3600;
        jsonwebtoken::encode(&Header::default(), &Claims { sub, exp }, &self.key).expect("jwt")
    }
}

/// A packet the scenario cares about.
pub enum In {
    /// `42…["name",…]`: the whole text and the event name's byte range.
    Event(Utf8Bytes, std::ops::Range<usize>),
    /// `43<id>[…]`: ack id and the whole text.
    Ack(u64, Utf8Bytes),
    /// Handled here (ping) or irrelevant.
    Nothing,
}

impl In {
    pub fn is_event(&self, name: &str) -> Option<&str> {
        match self {
            In::Event(t, r) if &t.as_str()[r.clone()] == name => Some(t.as_str()),
            _ => None,
        }
    }
}

pub struct Sock {
    pub ws: Ws,
}

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_write_buffer_size(1 << 20)
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20))
}

/// Skip an optional `/nsp,` and return (ack id, rest) for the text after the 2-char type.
fn split_id(s: &str) -> (Option<u64>, &str) {
    let mut s = s;
    if s.starts_with('/') {
        match s.find(',') {
            Some(i) => s = &s[i + 1..],
            None => return (None, ""),
        }
    }
    let digits = s.bytes().take_while(|b| b.is_ascii_digit()).count();
    let id = if digits > 0 { s[..digits].parse().ok() } else { None };
    (id, &s[digits..])
}

/// Find `"key":<unsigned integer>` in a JSON text (cheap; keys must be unambiguous).
pub fn find_u64(s: &str, key: &str) -> Option<u64> {
    let pat = format!("\"{key}\":");
    let i = s.find(&pat)? + pat.len();
    let rest = s[i..].trim_start();
    let n = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
    rest[..n].parse().ok()
}

impl Sock {
    /// WebSocket + Engine.IO open + Socket.IO CONNECT with `{token}` + wait for `registered`.
    pub async fn connect(t: &Target, user: &str) -> Result<Sock, String> {
        let token = t.token(user);
        let tcp = TcpStream::connect(&t.addr).await.map_err(|e| format!("tcp: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let url = format!("ws://{}/socket.io/?EIO=4&transport=websocket", t.addr);
        let (ws, _) = client_async_with_config(url, tcp, Some(ws_config()))
            .await
            .map_err(|e| format!("ws: {e}"))?;
        let mut s = Sock { ws };
        // Engine.IO open packet.
        loop {
            let t = s.next_text().await?;
            if t.starts_with('0') {
                break;
            }
        }
        s.send(format!("40{{\"token\":\"{token}\"}}")).await?;
        let mut connected = false;
        loop {
            let t = s.next_text().await?;
            if let Some(rest) = t.strip_prefix("40") {
                if rest.contains("\"sid\"") {
                    connected = true;
                }
            } else if let Some(rest) = t.strip_prefix("44") {
                return Err(format!("connect_error {rest}"));
            } else if t.starts_with("42")
                && connected
                && let In::Event(txt, r) = classify(t)
                && &txt.as_str()[r] == "registered"
            {
                return Ok(s);
            }
        }
    }

    /// Next text packet, answering pings on the way.
    async fn next_text(&mut self) -> Result<Utf8Bytes, String> {
        loop {
            match self.ws.next().await {
                None => return Err("closed".into()),
                Some(Err(e)) => return Err(format!("ws: {e}")),
                Some(Ok(Message::Text(t))) => {
                    if t.as_str() == "2" {
                        self.send_static("3").await?;
                        continue;
                    }
                    if t.as_str() == "1" {
                        return Err("engine.io close".into());
                    }
                    return Ok(t);
                }
                Some(Ok(Message::Close(_))) => return Err("closed".into()),
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Turn one frame read by the caller (`sock.ws.next()`, cancel-safe in `select!`) into a
    /// packet; answers pings. `Err` means the socket is gone.
    pub async fn handle(
        &mut self,
        frame: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) -> Result<In, String> {
        match frame {
            None => Err("closed".into()),
            Some(Err(e)) => Err(format!("ws: {e}")),
            Some(Ok(Message::Text(t))) => {
                let s = t.as_str();
                if s == "2" {
                    self.send_static("3").await?;
                    return Ok(In::Nothing);
                }
                if s == "1" || s.starts_with("41") {
                    return Err("disconnected by server".into());
                }
                Ok(classify(t))
            }
            Some(Ok(Message::Close(_))) => Err("closed".into()),
            Some(Ok(_)) => Ok(In::Nothing),
        }
    }

    /// Wait for the next packet (no timers around it).
    pub async fn recv(&mut self) -> Result<In, String> {
        let f = self.ws.next().await;
        self.handle(f).await
    }

    pub async fn send(&mut self, text: String) -> Result<(), String> {
        self.ws
            .send(Message::text(text))
            .await
            .map_err(|e| format!("send: {e}"))
    }

    async fn send_static(&mut self, text: &'static str) -> Result<(), String> {
        self.ws
            .send(Message::Text(Utf8Bytes::from_static(text)))
            .await
            .map_err(|e| format!("send: {e}"))
    }

    /// Send an event with an ack id and wait (bounded) for that ack; other packets are dropped.
    pub async fn call(&mut self, id: u64, event: &str, arg: &str, within: Duration) -> Result<Utf8Bytes, String> {
        self.send(format!("42{id}[\"{event}\",{arg}]")).await?;
        let fut = async {
            loop {
                if let In::Ack(got, t) = self.recv().await?
                    && got == id
                {
                    return Ok(t);
                }
            }
        };
        tokio::time::timeout(within, fut)
            .await
            .map_err(|_| format!("{event}: no ack"))?
    }

    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            let _ = self.send_static("41").await;
            let _ = self.ws.close(None).await;
        })
        .await;
    }
}

/// Classify a text packet that is not a ping.
pub fn classify(t: Utf8Bytes) -> In {
    let s = t.as_str();
    if let Some(rest) = s.strip_prefix("42") {
        let (_, json) = split_id(rest);
        let off = s.len() - json.len();
        // json = ["name",...]
        if let Some(after) = json.strip_prefix("[\"")
            && let Some(end) = after.find('"')
        {
            let start = off + 2;
            return In::Event(t.clone(), start..start + end);
        }
        return In::Nothing;
    }
    if let Some(rest) = s.strip_prefix("43")
        && let (Some(id), _) = split_id(rest)
    {
        return In::Ack(id, t.clone());
    }
    In::Nothing
}

/// Is this ack payload `[{"ok":true,…}]`?
pub fn ack_ok(t: &str) -> bool {
    t.contains("\"ok\":true")
}
