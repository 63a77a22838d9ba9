//! A database that stops answering is `unavailable` on both transports: 503 over HTTP, the
//! same code in the socket's acknowledgement.

mod common;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{TestApp, services::PgDatabase, token};
use serde_json::json;
use tokio::{net::TcpListener, task::JoinHandle};

/// A TCP relay to PostgreSQL that the test can cut: every connection it carries, and its
/// listener, end at once.
struct Relay {
    addr: SocketAddr,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Relay {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tasks: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let conns = tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                let relay = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                conns.lock().unwrap().push(relay);
            }
        });
        tasks.lock().unwrap().push(accept);
        Self { addr, tasks }
    }

    fn cut(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

/// `postgres://user@host:port/db` with the host and port replaced by `addr`.
fn through(url: &str, addr: SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (authority, path) = rest.split_once('/').unwrap();
    let user = authority
        .rsplit_once('@')
        .map(|(u, _)| format!("{u}@"))
        .unwrap_or_default();
    format!("{scheme}://{user}{addr}/{path}")
}

fn host_port(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    let authority = rest.split_once('/').map(|(a, _)| a).unwrap_or(rest);
    let host = authority.rsplit_once('@').map(|(_, h)| h).unwrap_or(authority);
    if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:5432")
    }
}

/// With PostgreSQL cut off, `listNotifications` acks `unavailable` and `GET
/// /api/notifications` answers 503 `unavailable`: the two transports agree.
#[tokio::test]
async fn an_unreachable_database_is_unavailable_on_both_transports() {
    let pg = PgDatabase::create().await;
    let relay = Relay::start(host_port(&pg.url)).await;
    let url = through(&pg.url, relay.addr);
    let app = TestApp::spawn(&[("DATABASE_URL", url.as_str())]).await;
    let mut alice = app.user("alice").await;
    assert_eq!(alice.call("listNotifications", json!({})).await["ok"], true);

    relay.cut();
    let ack = alice
        .call_within("listNotifications", json!({}), Duration::from_secs(15))
        .await;
    assert_eq!(ack["error"]["code"], "unavailable", "{ack}");
    let r = app
        .http()
        .get(app.url("/api/notifications"))
        .header("authorization", format!("Bearer {}", token("alice")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    drop(alice);
    app.stop().await;
}
