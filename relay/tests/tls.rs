//! The relay serving TLS (`--tls-cert`, issue 10): wss:// upgrades and
//! https:// health on the same port, and a TLS handshake that stalls or is
//! reset costs its own task only, never the accept loop.

mod common;

use common::{SECRET, SOON, token};
use futures_util::{SinkExt, StreamExt};
use squall_proto::tls::{self, Stream, TlsClient, TlsSettings};
use squall_relay::RelayConfig;
use squall_relay::auth::AuthConfig;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

/// A self-signed certificate for 127.0.0.1 in a fresh directory: (dir, cert, key).
fn certificate(name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("squall-relay-tls-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    (dir, cert, key)
}

/// A TLS relay with HS256 auth and a short head timeout.
async fn tls_relay(cert: &Path, key: &Path) -> squall_relay::RelayHandle {
    common::start(RelayConfig {
        auth: AuthConfig::hs256(SECRET.as_bytes()),
        head_timeout: Duration::from_secs(2),
        tls: Some(tls::server_config(cert, key).unwrap()),
        ..RelayConfig::default()
    })
    .await
}

fn client(ca: &Path) -> TlsClient {
    TlsClient::new(&TlsSettings {
        ca_file: Some(ca.to_path_buf()),
        insecure: false,
    })
    .unwrap()
}

async fn https_get(tls: &TlsClient, addr: SocketAddr, path: &str) -> String {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut s = tls.handshake("127.0.0.1", tcp).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    timeout(SOON, s.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    answer
}

async fn wss(tls: &TlsClient, addr: SocketAddr) -> tokio_tungstenite::WebSocketStream<Stream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let s = tls.handshake("127.0.0.1", tcp).await.unwrap();
    let url = format!("wss://{addr}/ws?token={}", token("alice"));
    let (ws, _) = timeout(SOON, tokio_tungstenite::client_async(url, s))
        .await
        .unwrap()
        .unwrap();
    ws
}

#[tokio::test]
async fn serves_wss_and_https_on_one_port() {
    let (dir, cert, key) = certificate("serve");
    let relay = tls_relay(&cert, &key).await;
    assert!(relay.ws_url().starts_with("wss://"), "{}", relay.ws_url());
    let tls = client(&cert);
    let health = https_get(&tls, relay.local_addr(), "/health").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let mut ws = wss(&tls, relay.local_addr()).await;
    ws.send(Message::text(
        r#"{"type":"Subscribe","data":{"topics":["t"]}}"#,
    ))
    .await
    .unwrap();
    ws.send(Message::text(
        r#"{"type":"Broadcast","data":{"topic":"t","payload":"over tls"}}"#,
    ))
    .await
    .unwrap();
    let mut got = String::new();
    while !got.contains("over tls") {
        let frame = timeout(SOON, ws.next()).await.unwrap().unwrap().unwrap();
        got = frame.into_text().unwrap().to_string();
    }
    // A plain-text client gets no answer but a failed handshake.
    let mut plain = TcpStream::connect(relay.local_addr()).await.unwrap();
    plain
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = timeout(SOON, plain.read_to_end(&mut buf)).await.unwrap();
    assert!(
        !buf.starts_with(b"HTTP/1.1 200"),
        "plain HTTP answered over a TLS port"
    );
    relay.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_or_reset_handshake_does_not_hang_the_accept_loop() {
    let (dir, cert, key) = certificate("stall");
    let relay = tls_relay(&cert, &key).await;
    let addr = relay.local_addr();
    let tls = client(&cert);
    // 50 sockets that connect and say nothing, 50 that send half a
    // ClientHello, 50 that send a whole one and reset.
    let mut held = Vec::new();
    let hello = tls.client_hello("127.0.0.1").unwrap();
    for i in 0..150 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        match i / 50 {
            0 => {}
            1 => s.write_all(&hello[..hello.len() / 2]).await.unwrap(),
            _ => {
                s.write_all(&hello).await.unwrap();
                s.set_zero_linger().unwrap();
                drop(s);
                continue;
            }
        }
        held.push(s);
    }
    // Meanwhile a real client is served at once.
    let started = std::time::Instant::now();
    let health = https_get(&tls, addr, "/health").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let _ws = wss(&tls, addr).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "served after {:?}",
        started.elapsed()
    );
    // The stalled ones are dropped after the head timeout and counted.
    let mut ended = 0;
    for mut s in held {
        let mut buf = [0u8; 64];
        if timeout(SOON, s.read(&mut buf)).await.is_ok() {
            ended += 1;
        }
    }
    assert_eq!(ended, 100, "every stalled handshake was ended by the relay");
    let metrics = https_get(&tls, addr, "/metrics").await;
    let line = metrics
        .lines()
        .find(|l| l.contains("reason=\"tls_handshake\""))
        .unwrap_or_else(|| panic!("{metrics}"));
    let n: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 100.0, "{line}");
    relay.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}
