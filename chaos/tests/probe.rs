//! The watchdog's WebSocket probe against a server with text keepalives,
//! as Socket.IO's `2` (answered `3`): a real server on loopback that drops
//! every socket leaving a keepalive unanswered. Given the protocol's
//! keepalive rule the probe answers them and keeps one connection for the
//! whole run; without it the server drops the probe again and again, which
//! the probe survives only by reconnecting.

use futures_util::{SinkExt, StreamExt};
use squall_chaos::target::TokenPlacement;
use squall_chaos::watchdog::probe::{Greeting, Keepalive, PingStyle, WsProber};
use squall_proto::{Endpoint, LoopbackGuard, Scheme, TlsClient};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// How often the server says `2`; a `2` still unanswered at the next tick
/// closes the socket (4000).
const KEEPALIVE: Duration = Duration::from_millis(100);

/// The server; counts the sockets it accepted.
async fn keepalive_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
                continue;
            };
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let (mut tx, mut rx) = ws.split();
                let mut ticks = tokio::time::interval(KEEPALIVE);
                let mut owed = false;
                loop {
                    tokio::select! {
                        _ = ticks.tick() => {
                            if owed {
                                let close = CloseFrame { code: CloseCode::Library(4000), reason: "ping timeout".into() };
                                let _ = tx.send(Message::Close(Some(close))).await;
                                return;
                            }
                            owed = true;
                            if tx.send(Message::text("2")).await.is_err() {
                                return;
                            }
                        }
                        msg = rx.next() => match msg {
                            Some(Ok(Message::Text(t))) if t.as_str() == "3" => owed = false,
                            // The pong tungstenite queued for a ping goes out now.
                            Some(Ok(Message::Ping(_))) => if tx.flush().await.is_err() { return },
                            Some(Ok(_)) => {}
                            _ => return,
                        },
                    }
                }
            });
        }
    });
    (addr, accepted)
}

/// Pings through a probe for `rounds` rounds, 50 ms apart; returns the
/// sockets the server accepted and the pings answered.
async fn probe(keepalive: Option<Keepalive>, rounds: u64) -> (usize, u64) {
    let (addr, accepted) = keepalive_server().await;
    let endpoint = Endpoint::resolve(
        &format!("ws://{addr}/"),
        &[Scheme::Ws],
        "ws",
        &LoopbackGuard::loopback_only(),
    )
    .unwrap();
    let prober = WsProber::spawn(
        endpoint,
        None,
        TokenPlacement::Query,
        PingStyle::Frame,
        TlsClient::default(),
        Greeting {
            keepalive,
            ..Greeting::default()
        },
        Duration::from_secs(2),
    );
    let mut answered = 0;
    for n in 0..rounds {
        if prober.ping(n, Duration::from_secs(2)).await.is_ok() {
            answered += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (accepted.load(Ordering::SeqCst), answered)
}

#[tokio::test]
async fn the_probe_answers_text_keepalives_and_keeps_its_one_connection() {
    let socket_io = Keepalive::new(|frame| (frame == "2").then(|| "3".to_string()));
    let (accepted, answered) = probe(Some(socket_io), 30).await;
    assert_eq!(accepted, 1, "one connection for the whole run");
    assert_eq!(answered, 30, "every ping answered");
}

#[tokio::test]
async fn without_the_rule_the_server_drops_the_probe_again_and_again() {
    let (accepted, _) = probe(None, 30).await;
    assert!(
        accepted >= 3,
        "1.5 s of 100 ms keepalives unanswered: dropped and reconnected, {accepted} sockets"
    );
}
