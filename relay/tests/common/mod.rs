//! Helpers shared by the relay's integration tests: start a relay on
//! loopback, mint tokens, speak WebSocket and plain HTTP over real sockets.
#![allow(dead_code)] // each test binary uses a different subset

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use squall_proto::wire::Claims;
use squall_relay::auth::AuthConfig;
use squall_relay::{RelayConfig, RelayHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The HS256 secret of the test relays.
pub const SECRET: &str = "test-secret";
/// Generous bound for anything that should happen "soon" on a loaded box.
pub const SOON: Duration = Duration::from_secs(10);

pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A relay config with HS256 auth and the test secret.
pub fn secured() -> RelayConfig {
    RelayConfig {
        auth: AuthConfig::hs256(SECRET.as_bytes()),
        ..RelayConfig::default()
    }
}

pub async fn start(config: RelayConfig) -> RelayHandle {
    squall_relay::start_loopback(config)
        .await
        .expect("bind loopback")
}

pub fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An HS256 token for `sub`, valid for an hour.
pub fn token(sub: &str) -> String {
    token_with(sub, now_s() + 3600, &[], SECRET)
}

pub fn token_with(sub: &str, exp: u64, roles: &[&str], secret: &str) -> String {
    let claims = Claims {
        sub: sub.into(),
        exp,
        roles: roles.iter().map(|r| r.to_string()).collect(),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// Connects as `sub` with a token in the query.
pub async fn connect(addr: SocketAddr, sub: &str) -> Client {
    connect_url(&format!("ws://{addr}/ws?token={}", token(sub))).await
}

pub async fn connect_url(url: &str) -> Client {
    let (ws, _) = tokio::time::timeout(SOON, tokio_tungstenite::connect_async(url))
        .await
        .expect("connect in time")
        .expect("connect");
    ws
}

pub async fn send(ws: &mut Client, value: Value) {
    ws.send(Message::text(value.to_string()))
        .await
        .expect("send");
}

/// The next text frame as JSON (skipping pings), within [`SOON`].
pub async fn recv(ws: &mut Client) -> Value {
    tokio::time::timeout(SOON, async {
        loop {
            match ws.next().await.expect("stream open").expect("frame") {
                Message::Text(t) => return serde_json::from_str(&t).expect("JSON"),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected frame {other:?}"),
            }
        }
    })
    .await
    .expect("a frame in time")
}

/// Waits for the Close frame and returns its code.
pub async fn close_code(ws: &mut Client) -> u16 {
    tokio::time::timeout(SOON, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(Some(frame)))) => return u16::from(frame.code),
                Some(Ok(Message::Close(None))) => panic!("close without a code"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("error before the close frame: {e}"),
                None => panic!("stream ended without a close frame"),
            }
        }
    })
    .await
    .expect("a close frame in time")
}

pub async fn subscribe(ws: &mut Client, topics: &[&str]) {
    send(
        ws,
        serde_json::json!({"type": "Subscribe", "data": {"topics": topics}}),
    )
    .await;
    let status = recv(ws).await;
    assert_eq!(status["data"]["status"], "subscribed", "{status}");
}

pub fn broadcast(topic: &str, payload: Value) -> Value {
    serde_json::json!({"type": "Broadcast", "data": {"topic": topic, "payload": payload}})
}

/// A raw HTTP/1.1 request; returns (status, body).
pub async fn http(addr: SocketAddr, request: &str) -> (u16, String) {
    tokio::time::timeout(SOON, async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.expect("read");
        let text = String::from_utf8_lossy(&answer).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    })
    .await
    .expect("an HTTP answer in time")
}

pub async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    http(addr, &format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")).await
}

/// One sample's value from the Prometheus text, e.g.
/// `metric(&text, "squall_relay_connections_open")`.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            line.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .unwrap_or_else(|| panic!("no {series} in metrics"))
        .trim()
        .parse()
        .unwrap()
}

/// Polls `/metrics` until `check` holds (bounded), returning the last text.
pub async fn metrics_until(addr: SocketAddr, check: impl Fn(&str) -> bool) -> String {
    let mut text = String::new();
    for _ in 0..200 {
        text = get(addr, "/metrics").await.1;
        if check(&text) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("metrics never satisfied the check:\n{text}");
}

/// Connects (open relay or the test secret), subscribes to `t`, then ends
/// the socket with a TCP reset and no Close frame.
pub async fn reset_after_subscribing(addr: SocketAddr, sub: &str) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let url = format!("ws://{addr}/ws?token={}", token(sub));
    let (mut ws, _) = tokio_tungstenite::client_async(url, tcp)
        .await
        .expect("handshake");
    send_raw(
        &mut ws,
        json!({"type": "Subscribe", "data": {"topics": ["t"]}}),
    )
    .await;
    let status = recv_raw(&mut ws).await;
    assert_eq!(status["data"]["status"], "subscribed");
    ws.get_ref().set_zero_linger().unwrap();
    drop(ws);
}

pub type RawClient = tokio_tungstenite::WebSocketStream<TcpStream>;

pub async fn send_raw(ws: &mut RawClient, value: Value) {
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::text(
        value.to_string(),
    ))
    .await
    .unwrap();
}

pub async fn recv_raw(ws: &mut RawClient) -> Value {
    use futures_util::StreamExt;
    let frame = tokio::time::timeout(SOON, ws.next())
        .await
        .expect("reply in time")
        .unwrap()
        .unwrap();
    serde_json::from_str(frame.to_text().unwrap()).unwrap()
}

/// The `squall-relay` binary, which the `squall` package builds (its flags
/// live in the CLI): built once per test process with the same cargo and
/// target directory as the tests.
pub fn relay_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let status = Command::new(env!("CARGO"))
                .args(["build", "-p", "squall", "--bin", "squall-relay"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("run cargo build");
            assert!(status.success(), "cargo build --bin squall-relay failed");
            // tests run from target/debug/deps/<test>; the binary is in target/debug.
            let exe = std::env::current_exe().unwrap();
            let dir = exe.parent().and_then(Path::parent).expect("target/debug");
            let binary = dir.join("squall-relay");
            assert!(binary.exists(), "{} missing", binary.display());
            binary
        })
        .clone()
}
