//! Test harness: a real gateway on a free port with a fresh SQLite file, a raw Engine.IO /
//! Socket.IO client over WebSocket, and token helpers.
#![allow(dead_code)]

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sio_gateway::{Config, auth::Signer};
use tokio::{net::TcpStream, sync::oneshot, task::JoinHandle};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::Message as WsMessage};

/// The secret every test server uses.
pub const SECRET: &str = "integration-test-secret-0123456789abcdef";
/// The service key every test server accepts.
pub const API_KEY: &str = "test-api-key";

/// One running gateway.
pub struct TestApp {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its data folder (kept alive while the app runs).
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestApp {
    /// Starts a gateway with the test secret and key, plus `env` overrides.
    pub async fn spawn(env: &[(&str, &str)]) -> Self {
        let (cfg, dir) = Self::config(env);
        Self::spawn_with(cfg, dir).await
    }

    /// The configuration [`TestApp::spawn`] starts with, and the data folder it uses, for a
    /// test that changes what no variable sets.
    pub fn config(env: &[(&str, &str)]) -> (Config, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = format!("sqlite://{}", dir.path().join("gateway.db").display());
        let mut vars: HashMap<String, String> = HashMap::from([
            ("JWT_SECRET".into(), SECRET.into()),
            ("API_KEYS".into(), API_KEY.into()),
            ("DATABASE_URL".into(), db),
        ]);
        for (k, v) in env {
            vars.insert(k.to_string(), v.to_string());
        }
        let cfg = Config::from_lookup(|k| vars.get(k).cloned()).expect("config");
        (cfg, dir)
    }

    /// Starts a gateway with a prepared configuration.
    pub async fn spawn_with(cfg: Config, dir: tempfile::TempDir) -> Self {
        let listener = sio_gateway::bind("127.0.0.1", 0).expect("bind");
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            sio_gateway::serve(cfg, listener, async move {
                let _ = rx.await;
            })
            .await
            .expect("gateway failed");
        });
        let app = Self {
            addr,
            dir,
            stop: Some(tx),
            task: Some(task),
        };
        for _ in 0..100 {
            if let Ok(r) = app.http().get(app.url("/healthz")).send().await
                && r.status() == 200
            {
                return app;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("gateway did not answer /healthz within 5 s");
    }

    /// Stops the gateway and waits for it to finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(15), task)
                .await
                .expect("stop in time")
                .expect("clean stop");
        }
    }

    /// `http://addr<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A plain HTTP client.
    pub fn http(&self) -> reqwest::Client {
        sio_gateway::outbound::install_crypto();
        reqwest::Client::new()
    }

    /// The text of `GET /metrics`.
    pub async fn metrics(&self) -> String {
        let r = self
            .http()
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics");
        r.text().await.expect("metrics text")
    }

    /// Opens a raw Socket.IO connection with `auth` as the CONNECT payload.
    pub async fn socket(&self, auth: Value) -> Result<RawSocket, String> {
        RawSocket::connect(self.addr, auth, "").await
    }

    /// Opens a connection with a fresh token for `sub`.
    pub async fn user(&self, sub: &str) -> RawSocket {
        self.socket(json!({ "token": token(sub) })).await.expect("connect")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// An HS256 token for `sub`, valid for an hour.
pub fn token(sub: &str) -> String {
    Signer::hmac(SECRET.as_bytes()).sign(sub, 3600, None).unwrap()
}

/// A raw Engine.IO v4 / Socket.IO v5 client over WebSocket: enough to check the wire.
pub struct RawSocket {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_ack: u64,
    /// Events received while waiting for something else.
    pub backlog: Vec<(String, Value)>,
    /// The socket id from the CONNECT answer.
    pub sid: String,
}

impl RawSocket {
    /// Opens the WebSocket, reads the Engine.IO open packet, sends CONNECT with `auth`.
    /// Err carries the `connect_error` message.
    pub async fn connect(addr: SocketAddr, auth: Value, query: &str) -> Result<Self, String> {
        let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket{query}");
        let (ws, _) = tokio_tungstenite::connect_async(url).await.map_err(|e| e.to_string())?;
        let mut s = Self {
            ws,
            next_ack: 0,
            backlog: Vec::new(),
            sid: String::new(),
        };
        let open = s.recv_text().await.ok_or("no open packet")?;
        assert!(open.starts_with('0'), "expected open packet, got {open}");
        s.send_text(format!("40{auth}")).await;
        loop {
            let p = s.recv_text().await.ok_or("closed before CONNECT answer")?;
            if let Some(body) = p.strip_prefix("40") {
                let v: Value = serde_json::from_str(body).unwrap();
                s.sid = v["sid"].as_str().unwrap_or_default().to_string();
                return Ok(s);
            }
            if let Some(body) = p.strip_prefix("44") {
                let v: Value = serde_json::from_str(body).unwrap();
                return Err(v["message"].as_str().unwrap_or_default().to_string());
            }
        }
    }

    /// Sends a raw Engine.IO text frame.
    pub async fn send_text(&mut self, text: String) {
        self.ws.send(WsMessage::text(text)).await.expect("send");
    }

    /// Sends raw Engine.IO text frames in one write, so the server reads them as one burst.
    pub async fn send_burst(&mut self, texts: Vec<String>) {
        for t in texts {
            self.ws.feed(WsMessage::text(t)).await.expect("send");
        }
        self.ws.flush().await.expect("send");
    }

    /// Next text frame, answering pings; `None` when closed or after 5 s of silence.
    pub async fn recv_text(&mut self) -> Option<String> {
        match self.next_frame(Duration::from_secs(5)).await {
            Frame::Text(t) => Some(t),
            Frame::Closed | Frame::Silent => None,
        }
    }

    /// Next text frame within `wait`, answering pings.
    pub async fn next_frame(&mut self, wait: Duration) -> Frame {
        loop {
            let msg = match tokio::time::timeout(wait, self.ws.next()).await {
                Err(_) => return Frame::Silent,
                Ok(None) | Ok(Some(Err(_))) => return Frame::Closed,
                Ok(Some(Ok(m))) => m,
            };
            match msg {
                WsMessage::Text(t) if t.as_str() == "2" => self.send_text("3".into()).await,
                WsMessage::Text(t) => return Frame::Text(t.to_string()),
                WsMessage::Close(_) => return Frame::Closed,
                _ => {}
            }
        }
    }

    /// Emits an event without an ack.
    pub async fn emit(&mut self, event: &str, arg: Value) {
        self.send_text(format!("42{}", json!([event, arg]))).await;
    }

    /// Emits an event with an ack and waits for the ack's first argument.
    pub async fn call(&mut self, event: &str, arg: Value) -> Value {
        self.next_ack += 1;
        let id = self.next_ack;
        self.send_text(format!("42{id}{}", json!([event, arg]))).await;
        self.ack(id).await
    }

    /// Emits an event with an ack and waits up to `wait` for the ack's first argument.
    pub async fn call_within(&mut self, event: &str, arg: Value, wait: Duration) -> Value {
        self.next_ack += 1;
        let id = self.next_ack;
        self.send_text(format!("42{id}{}", json!([event, arg]))).await;
        self.ack_within(id, wait).await
    }

    /// Waits for the ack with `id`, keeping other events in the backlog.
    pub async fn ack(&mut self, id: u64) -> Value {
        self.ack_within(id, Duration::from_secs(5)).await
    }

    /// Waits for the ack with `id` with `wait` of silence at most, keeping other events in the
    /// backlog.
    pub async fn ack_within(&mut self, id: u64, wait: Duration) -> Value {
        let prefix = format!("43{id}");
        loop {
            let p = match self.next_frame(wait).await {
                Frame::Text(t) => t,
                other => panic!("no ack {id}: {other:?}"),
            };
            if let Some(body) = p.strip_prefix(&prefix) {
                let v: Value = serde_json::from_str(body).unwrap();
                return v[0].clone();
            }
            self.keep(&p);
        }
    }

    fn keep(&mut self, p: &str) {
        if let Some(body) = p.strip_prefix("42") {
            let v: Value = serde_json::from_str(body).unwrap();
            self.backlog.push((
                v[0].as_str().unwrap_or_default().to_string(),
                v.get(1).cloned().unwrap_or(Value::Null),
            ));
        }
    }

    /// Waits for `event` (looking in the backlog first) and returns its argument.
    pub async fn event(&mut self, event: &str) -> Option<Value> {
        if let Some(i) = self.backlog.iter().position(|(e, _)| e == event) {
            return Some(self.backlog.remove(i).1);
        }
        loop {
            let p = self.recv_text().await?;
            if let Some(body) = p.strip_prefix("42") {
                let v: Value = serde_json::from_str(body).unwrap();
                if v[0] == event {
                    return Some(v.get(1).cloned().unwrap_or(Value::Null));
                }
            }
            self.keep(&p);
        }
    }

    /// Whether the server closed the connection (or sent a Socket.IO disconnect) within `wait`.
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_frame(left).await {
                Frame::Closed => return true,
                Frame::Silent => return false,
                Frame::Text(p) if p == "41" => return true,
                Frame::Text(p) => self.keep(&p),
            }
        }
    }
}

/// What the WebSocket produced next.
#[derive(Debug, PartialEq)]
pub enum Frame {
    /// A text frame (pings already answered).
    Text(String),
    /// The connection ended.
    Closed,
    /// Nothing arrived in time.
    Silent,
}
pub mod relay;
pub mod services;
