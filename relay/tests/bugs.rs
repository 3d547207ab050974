//! Each `--bug` switch, proven by the symptom it causes. The hang runs in a
//! child process (the real binary), killed at the end, so no hung worker
//! thread is left in the test binary.

mod common;

use std::net::SocketAddr;
use std::num::NonZeroU64;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use serde_json::json;
use squall_relay::RelayConfig;
use squall_relay::bugs::{Bugs, Stall};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

fn with_bugs(bugs: Bugs) -> RelayConfig {
    RelayConfig {
        bugs,
        rate_limit: 0,
        ..secured()
    }
}

/// Publishes `n` messages on `topic`, then waits for the publisher's Pong, so
/// every delivery is queued before the function returns.
async fn publish(publisher: &mut Client, topic: &str, n: u64) {
    for i in 0..n {
        send(publisher, broadcast(topic, json!({"i": i}))).await;
    }
    send(publisher, json!({"type": "Ping", "data": {"timestamp": 0}})).await;
    assert_eq!(recv(publisher).await["type"], "Pong");
}

/// Every delivery queued to `ws` so far: pings it and collects frames up to the Pong.
async fn collect_sequences(ws: &mut Client) -> Vec<u64> {
    send(ws, json!({"type": "Ping", "data": {"timestamp": 1}})).await;
    let mut seqs = Vec::new();
    loop {
        let frame = recv(ws).await;
        if frame["type"] == "Pong" {
            return seqs;
        }
        seqs.push(frame["data"]["sequence"].as_u64().unwrap());
    }
}

/// Publishes 100 Broadcasts on one topic through a relay with `bugs` and
/// returns the sequences one subscriber received.
async fn sequences_of_100_broadcasts(bugs: Bugs) -> Vec<u64> {
    let relay = start(with_bugs(bugs)).await;
    let mut sub = connect(relay.local_addr(), "sub").await;
    let mut publisher = connect(relay.local_addr(), "pub").await;
    subscribe(&mut sub, &["t"]).await;
    publish(&mut publisher, "t", 100).await;
    let got = collect_sequences(&mut sub).await;
    relay.shutdown().await;
    got
}

#[tokio::test]
async fn drop_every_n_drops_exactly_every_nth_delivery() {
    let got = sequences_of_100_broadcasts(Bugs {
        drop_every: NonZeroU64::new(5),
        ..Bugs::default()
    })
    .await;
    let expected: Vec<u64> = (0..100).filter(|s| (s + 1) % 5 != 0).collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn dup_every_n_delivers_every_nth_delivery_twice() {
    let got = sequences_of_100_broadcasts(Bugs {
        dup_every: NonZeroU64::new(10),
        ..Bugs::default()
    })
    .await;
    let expected: Vec<u64> = (0..100)
        .flat_map(|s| {
            if (s + 1) % 10 == 0 {
                vec![s, s]
            } else {
                vec![s]
            }
        })
        .collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn stall_holds_deliveries_periodically() {
    let stall = Stall {
        hold: Duration::from_millis(400),
        every: Duration::from_secs(1),
    };
    let relay = start(with_bugs(Bugs {
        stall: Some(stall),
        ..Bugs::default()
    }))
    .await;
    let mut sub = connect(relay.local_addr(), "sub").await;
    let mut publisher = connect(relay.local_addr(), "pub").await;
    subscribe(&mut sub, &["t"]).await;
    // One message every 50 ms for 2 s: some fall inside a stall window.
    let origin = Instant::now();
    let sender = tokio::spawn(async move {
        for i in 0..40u64 {
            let at = origin.elapsed().as_micros() as u64;
            send(&mut publisher, broadcast("t", json!({"i": i, "at": at}))).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        publisher
    });
    let mut worst = Duration::ZERO;
    for _ in 0..40 {
        let frame = recv(&mut sub).await;
        let sent = Duration::from_micros(frame["data"]["payload"]["at"].as_u64().unwrap());
        worst = worst.max(origin.elapsed().saturating_sub(sent));
    }
    assert!(
        worst >= Duration::from_millis(250),
        "worst delivery delay {worst:?}: no stall seen"
    );
    drop(sender.await.unwrap());
    relay.shutdown().await;
}

#[tokio::test]
async fn leak_on_reset_leaves_connections_and_subscriptions_behind() {
    let relay = start(with_bugs(Bugs {
        leak_on_reset: true,
        ..Bugs::default()
    }))
    .await;
    let addr = relay.local_addr();
    for i in 0..20 {
        reset_after_subscribing(addr, &format!("u{i}")).await;
    }
    let text = metrics_until(addr, |m| {
        metric(
            m,
            r#"squall_relay_connections_ended_without_close_total{reason="reset"}"#,
        ) == 20.0
    })
    .await;
    assert_eq!(metric(&text, "squall_relay_connections_open"), 20.0);
    assert_eq!(metric(&text, "squall_relay_subscriptions"), 20.0);
    relay.shutdown().await;
}

#[tokio::test]
async fn unbounded_queue_never_disconnects_a_slow_consumer_and_grows() {
    let relay = start(RelayConfig {
        queue_size: 16,
        ..with_bugs(Bugs {
            unbounded_queue: true,
            ..Bugs::default()
        })
    })
    .await;
    let addr = relay.local_addr();
    let _slow = never_reading_subscriber(addr, "t").await;
    let mut publisher = connect(addr, "pub").await;
    let payload = "x".repeat(16 * 1024);
    for _ in 0..2000 {
        send(&mut publisher, broadcast("t", json!(payload))).await;
    }
    let text = metrics_until(addr, |m| metric(m, "squall_relay_outbound_queued") > 160.0).await;
    assert_eq!(
        metric(&text, "squall_relay_slow_consumers_disconnected_total"),
        0.0
    );
    assert_eq!(metric(&text, "squall_relay_connections_open"), 2.0);
    relay.shutdown().await;
}

#[test]
fn hang_on_reset_hangs_health_after_one_reset_and_not_without_it() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for bugged in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut relay = spawn_relay(dir.path(), bugged);
        let outcome = runtime.block_on(async {
            let addr = wait_ready(&dir.path().join("ready"), &mut relay).await;
            assert!(health_answers(addr).await, "health before any reset");
            let mut other = connect(addr, "other").await;
            subscribe(&mut other, &["t"]).await;
            reset_after_subscribing(addr, "victim").await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            (
                message_path_answers(&mut other).await,
                health_answers(addr).await,
            )
        });
        let alive = relay.try_wait().unwrap().is_none();
        let _ = relay.kill();
        let _ = relay.wait();
        assert!(alive, "the relay process stays up (bugged: {bugged})");
        assert_eq!(
            outcome,
            (!bugged, !bugged),
            "(message path, health) answered after the reset (bugged: {bugged})"
        );
    }
}

fn spawn_relay(dir: &Path, hang: bool) -> Child {
    let mut cmd = Command::new(relay_binary());
    cmd.args(["--addr", "127.0.0.1:0", "--no-auth", "--ready-file"])
        .arg(dir.join("ready"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if hang {
        cmd.args(["--bug", "hang-on-reset"]);
    }
    cmd.spawn().expect("spawn squall-relay")
}

async fn wait_ready(file: &Path, child: &mut Child) -> SocketAddr {
    for _ in 0..400 {
        if let Ok(text) = std::fs::read_to_string(file) {
            return text.trim().parse().expect("an address in the ready file");
        }
        assert!(child.try_wait().unwrap().is_none(), "relay exited early");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("relay never became ready");
}

/// True if a Broadcast on `t` and then a Ping are answered within 3 s.
async fn message_path_answers(ws: &mut Client) -> bool {
    let exchange = async {
        send(ws, broadcast("t", json!("after the reset"))).await;
        send(ws, json!({"type": "Ping", "data": {"timestamp": 9}})).await;
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) if t.contains("Pong") => return true,
                Some(Ok(_)) => continue,
                _ => return false,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(3), exchange)
        .await
        .unwrap_or(false)
}

/// True if `/health` answers 200 within 3 s.
async fn health_answers(addr: SocketAddr) -> bool {
    let probe = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .ok()?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.ok()?;
        Some(answer.starts_with(b"HTTP/1.1 200"))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(3), probe).await,
        Ok(Some(true))
    )
}

/// A subscriber that never reads again after its subscription is confirmed.
async fn never_reading_subscriber(addr: SocketAddr, topic: &str) -> Client {
    let mut ws = connect(addr, "slow").await;
    subscribe(&mut ws, &[topic]).await;
    ws
}
