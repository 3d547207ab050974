//! Each `--bug` switch, proven by the symptom it causes and, for the
//! known-answer bugs of issue 8, by the count the relay shows in `/metrics`.
//! The hang and the exit run in a child process (the real binary), so no hung
//! worker thread is left in the test binary and no exit ends it.

mod common;

use std::net::SocketAddr;
use std::num::NonZeroU64;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use serde_json::json;
use squall_proto::wire::CLOSE_POLICY;
use squall_relay::RelayConfig;
use squall_relay::bugs::{Bugs, EXIT_AFTER_STATUS, Kick, Stall};
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
        let bugs: &[&str] = if bugged { &["hang-on-reset"] } else { &[] };
        let mut relay = spawn_relay(dir.path(), bugs);
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

/// The real binary on a free port, open, with `bugs` (`--bug` values); its
/// address goes to `dir/ready`, its log to `dir/stderr`.
fn spawn_relay(dir: &Path, bugs: &[&str]) -> Child {
    let stderr = std::fs::File::create(dir.join("stderr")).expect("stderr file");
    let mut cmd = Command::new(relay_binary());
    cmd.args(["--addr", "127.0.0.1:0", "--no-auth", "--ready-file"])
        .arg(dir.join("ready"))
        .env("RUST_LOG", "warn")
        .env_remove("SQUALL_RELAY_BUGS")
        .stdout(Stdio::null())
        .stderr(stderr);
    for bug in bugs {
        cmd.args(["--bug", bug]);
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

/// Waits until the relay has run for `at` (its own uptime, from `/metrics`),
/// so a test acts after a bug's time without guessing the relay's clock.
async fn until_uptime(addr: SocketAddr, at: Duration) {
    metrics_until(addr, |m| {
        metric(m, "squall_relay_uptime_seconds") >= at.as_secs_f64()
    })
    .await;
}

/// Reads up to the Close frame; returns its code and reason (then reads on,
/// bounded, so the client's reply completes the handshake).
async fn close_frame(ws: &mut Client) -> (u16, String) {
    let frame = tokio::time::timeout(SOON, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(Some(frame)))) => {
                    return (u16::from(frame.code), frame.reason.to_string());
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a Close frame, got {other:?}"),
            }
        }
    })
    .await
    .expect("a Close frame in time");
    let _ = tokio::time::timeout(SOON, ws.next()).await;
    frame
}

#[tokio::test]
async fn kick_every_closes_every_nth_connection_once_and_counts_what_its_ghosts_miss() {
    let at = Duration::from_secs(4);
    let relay = start(with_bugs(Bugs {
        kick_every: Some(Kick {
            every: NonZeroU64::new(3).unwrap(),
            at,
        }),
        ..Bugs::default()
    }))
    .await;
    let addr = relay.local_addr();
    // Connection ids 1..=7 are the subscribers, 8 the publisher: the 1st,
    // 4th and 7th open connections (s0, s3, s6) are kicked.
    let mut subs = Vec::new();
    for i in 0..7 {
        let mut ws = connect(addr, &format!("s{i}")).await;
        subscribe(&mut ws, &["t"]).await;
        subs.push(ws);
    }
    let mut publisher = connect(addr, "pub").await;
    publish(&mut publisher, "t", 10).await;
    for ws in &mut subs {
        assert_eq!(collect_sequences(ws).await, (0..10).collect::<Vec<_>>());
    }
    let before = get(addr, "/metrics").await.1;
    assert_eq!(
        metric(&before, "squall_relay_kicked_total"),
        0.0,
        "the kick happens at {at:?}, not before"
    );

    let kicked = [0, 3, 6];
    for i in kicked {
        assert_eq!(
            close_frame(&mut subs[i]).await,
            (CLOSE_POLICY, "kicked".to_string()),
            "s{i} is kicked"
        );
    }
    metrics_until(addr, |m| metric(m, "squall_relay_kicked_total") == 3.0).await;
    publish(&mut publisher, "t", 10).await;
    for (i, ws) in subs.iter_mut().enumerate() {
        if !kicked.contains(&i) {
            assert_eq!(collect_sequences(ws).await, (10..20).collect::<Vec<_>>());
        }
    }
    let text = metrics_until(addr, |m| metric(m, "squall_relay_connections_open") == 5.0).await;
    assert_eq!(metric(&text, "squall_relay_kicked_total"), 3.0, "once");
    assert_eq!(
        metric(&text, "squall_relay_kicked_undelivered_total"),
        30.0,
        "3 ghosts x 10 deliveries"
    );
    assert_eq!(metric(&text, "squall_relay_ghost_subscriptions"), 3.0);
    assert_eq!(metric(&text, "squall_relay_subscriptions"), 4.0);
    assert_eq!(metric(&text, "squall_relay_deliveries_dropped_total"), 0.0);
    relay.shutdown().await;
}

/// The known answer under load: a kick in the middle of a stream of
/// Broadcasts, and every delivery is either received or counted as a ghost's.
#[tokio::test]
async fn kick_every_mid_stream_every_delivery_is_received_or_counted() {
    let relay = start(RelayConfig {
        queue_size: 1 << 20,
        ..with_bugs(Bugs {
            kick_every: Some(Kick {
                every: NonZeroU64::new(3).unwrap(),
                at: Duration::from_secs(2),
            }),
            ..Bugs::default()
        })
    })
    .await;
    let addr = relay.local_addr();
    let mut readers = Vec::new();
    for i in 0..10 {
        let mut ws = connect(addr, &format!("s{i}")).await;
        subscribe(&mut ws, &["t"]).await;
        // Counts deliveries until the last one (payload "end") or a Close.
        readers.push(tokio::spawn(async move {
            let mut got = 0u64;
            let ended = tokio::time::timeout(Duration::from_secs(60), async {
                loop {
                    match ws.next().await {
                        Some(Ok(Message::Text(t))) => {
                            got += 1;
                            if t.contains(r#""payload":"end""#) {
                                return false;
                            }
                        }
                        Some(Ok(Message::Close(frame))) => {
                            assert_eq!(frame.unwrap().reason, "kicked");
                            return true;
                        }
                        Some(Ok(_)) => continue,
                        other => panic!("s{i}: {other:?}"),
                    }
                }
            })
            .await
            .expect("the stream ends in time");
            (got, ended)
        }));
    }
    let mut publisher = connect(addr, "pub").await;
    let mut published = 0u64;
    let mut after_kick = None;
    // Bounded: at most 100,000 messages, about 5 a millisecond.
    while published < 100_000 && after_kick.is_none_or(|n| n < 500) {
        send(&mut publisher, broadcast("t", json!(published))).await;
        published += 1;
        if let Some(n) = after_kick.as_mut() {
            *n += 1;
        } else if published.is_multiple_of(100) {
            let text = get(addr, "/metrics").await.1;
            if metric(&text, "squall_relay_kicked_total") > 0.0 {
                after_kick = Some(0);
            }
        }
        if published.is_multiple_of(5) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    publish(&mut publisher, "t", 0).await;
    send(&mut publisher, broadcast("t", json!("end"))).await;
    published += 1;
    send(
        &mut publisher,
        json!({"type": "Ping", "data": {"timestamp": 2}}),
    )
    .await;
    assert_eq!(recv(&mut publisher).await["type"], "Pong");

    let mut received = 0;
    let mut kicked = 0;
    for reader in readers {
        let (got, was_kicked) = reader.await.unwrap();
        received += got;
        if was_kicked {
            kicked += 1;
            assert!(got < published, "kicked mid-stream: {got} of {published}");
        } else {
            assert_eq!(got, published);
        }
    }
    assert_eq!(kicked, 4, "s0, s3, s6 and s9 of 11 connections");
    // Every subscriber gone (a kicked writer counts its leftovers before
    // its connection leaves): only the publisher is open.
    let text = metrics_until(addr, |m| metric(m, "squall_relay_connections_open") == 1.0).await;
    assert_eq!(metric(&text, "squall_relay_kicked_total"), 4.0);
    assert_eq!(
        received as f64 + metric(&text, "squall_relay_kicked_undelivered_total"),
        10.0 * published as f64,
        "received + counted as undelivered = every delivery due"
    );
    assert_eq!(metric(&text, "squall_relay_deliveries_dropped_total"), 0.0);
    relay.shutdown().await;
}

#[tokio::test]
async fn kick_every_still_relays_what_a_kicked_publisher_sent_before_it_saw_the_close() {
    let relay = start(with_bugs(Bugs {
        kick_every: Some(Kick {
            every: NonZeroU64::new(2).unwrap(),
            at: Duration::from_secs(3),
        }),
        ..Bugs::default()
    }))
    .await;
    let addr = relay.local_addr();
    // Connection 1 (kicked) publishes, connection 2 listens.
    let mut publisher = connect(addr, "pub").await;
    let mut listener = connect(addr, "listener").await;
    subscribe(&mut listener, &["u"]).await;
    for i in 0..5 {
        send(&mut publisher, broadcast("u", json!(i))).await;
    }
    metrics_until(addr, |m| metric(m, "squall_relay_kicked_total") == 1.0).await;
    // Not reading, the publisher has not seen its Close frame yet: what it
    // sends now reaches the relay after the kick, and is still relayed.
    for i in 5..15 {
        send(&mut publisher, broadcast("u", json!(i))).await;
    }
    assert_eq!(
        close_frame(&mut publisher).await,
        (CLOSE_POLICY, "kicked".to_string())
    );
    for i in 0..15u64 {
        let frame = recv(&mut listener).await;
        assert_eq!(frame["data"]["payload"], i, "{frame}");
        assert_eq!(frame["data"]["sequence"], i, "{frame}");
    }
    assert!(collect_sequences(&mut listener).await.is_empty());
    let text = get(addr, "/metrics").await.1;
    assert_eq!(metric(&text, "squall_relay_kicked_total"), 1.0);
    assert_eq!(metric(&text, "squall_relay_kicked_undelivered_total"), 0.0);
    relay.shutdown().await;
}

#[tokio::test]
async fn stall_topic_withholds_the_first_topic_only_and_counts_it_under_its_name() {
    let at = Duration::from_secs(3);
    let relay = start(with_bugs(Bugs {
        stall_topic: Some(at),
        ..Bugs::default()
    }))
    .await;
    let addr = relay.local_addr();
    let mut first = connect(addr, "first").await;
    subscribe(&mut first, &["first"]).await;
    let mut other = connect(addr, "other").await;
    subscribe(&mut other, &["other"]).await;
    let mut both = connect(addr, "both").await;
    subscribe(&mut both, &["other", "first"]).await;
    let mut publisher = connect(addr, "pub").await;
    publish(&mut publisher, "first", 2).await;
    assert_eq!(collect_sequences(&mut first).await, [0, 1]);
    assert_eq!(collect_sequences(&mut both).await, [0, 1]);
    let before = get(addr, "/metrics").await.1;
    assert_eq!(
        metric(
            &before,
            r#"squall_relay_stalled_deliveries_total{topic="first"}"#
        ),
        0.0
    );

    until_uptime(addr, at).await;
    publish(&mut publisher, "first", 5).await;
    publish(&mut publisher, "other", 5).await;
    assert!(
        collect_sequences(&mut first).await.is_empty(),
        "Pong, nothing else"
    );
    assert_eq!(collect_sequences(&mut other).await, [0, 1, 2, 3, 4]);
    send(&mut both, json!({"type": "Ping", "data": {"timestamp": 1}})).await;
    for seq in 0..5 {
        let frame = recv(&mut both).await;
        assert_eq!(frame["data"]["topic"], "other", "{frame}");
        assert_eq!(frame["data"]["sequence"], seq, "{frame}");
    }
    assert_eq!(recv(&mut both).await["type"], "Pong");
    let (status, body) = get(addr, "/health").await;
    assert_eq!(status, 200, "{body}");
    let text = get(addr, "/metrics").await.1;
    assert_eq!(
        metric(
            &text,
            r#"squall_relay_stalled_deliveries_total{topic="first"}"#
        ),
        10.0,
        "5 broadcasts x 2 subscribers of the stalled topic"
    );
    assert_eq!(metric(&text, "squall_relay_deliveries_dropped_total"), 0.0);
    relay.shutdown().await;
}

#[tokio::test]
async fn accept_stall_leaves_new_upgrades_unanswered_and_everything_else_working() {
    let at = Duration::from_secs(3);
    let relay = start(with_bugs(Bugs {
        accept_stall: Some(at),
        ..Bugs::default()
    }))
    .await;
    let addr = relay.local_addr();
    let mut sub = connect(addr, "sub").await;
    subscribe(&mut sub, &["t"]).await;
    let mut publisher = connect(addr, "pub").await;

    until_uptime(addr, at).await;
    let url = format!("ws://{addr}/ws?token={}", token("late"));
    let attempt = tokio::time::timeout(
        Duration::from_secs(2),
        tokio_tungstenite::connect_async(url),
    )
    .await;
    assert!(attempt.is_err(), "the upgrade got an answer: {attempt:?}");
    // Byte level: the request is read, and not one byte comes back.
    let mut raw = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /ws?token={} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        token("raw")
    );
    raw.write_all(request.as_bytes()).await.unwrap();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(1), raw.read(&mut byte)).await;
    assert!(read.is_err(), "the held socket answered: {read:?}");

    let text = metrics_until(addr, |m| {
        metric(m, "squall_relay_stalled_upgrades_total") == 2.0
    })
    .await;
    assert_eq!(
        metric(&text, "squall_relay_connections_accepted_total"),
        2.0
    );
    assert_eq!(get(addr, "/health").await.0, 200);
    publish(&mut publisher, "t", 3).await;
    assert_eq!(collect_sequences(&mut sub).await, [0, 1, 2]);
    drop(raw);
    relay.shutdown().await;
}

#[tokio::test]
async fn slow_health_delays_health_only() {
    let delay = Duration::from_secs(3);
    let relay = start(with_bugs(Bugs {
        slow_health: Some(delay),
        ..Bugs::default()
    }))
    .await;
    let addr = relay.local_addr();
    let mut sub = connect(addr, "sub").await;
    subscribe(&mut sub, &["t"]).await;
    let mut publisher = connect(addr, "pub").await;
    let health = tokio::spawn(async move {
        let asked = Instant::now();
        let (status, body) = get(addr, "/health").await;
        (status, body, asked.elapsed())
    });
    // While /health waits: /metrics answers and messages flow.
    metrics_until(addr, |m| {
        metric(m, "squall_relay_health_delayed_total") == 1.0
    })
    .await;
    publish(&mut publisher, "t", 3).await;
    assert_eq!(collect_sequences(&mut sub).await, [0, 1, 2]);
    let (status, body, took) = health.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""status":"ok""#), "{body}");
    assert!(
        took >= delay,
        "/health answered after {took:?}, before {delay:?}"
    );
    let text = get(addr, "/metrics").await.1;
    assert_eq!(metric(&text, "squall_relay_health_delayed_total"), 1.0);
    assert_eq!(metric(&text, "squall_relay_health_checks_total"), 1.0);
    relay.shutdown().await;
}

#[test]
fn exit_after_ends_the_real_process_with_status_70_and_no_close_frame() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut relay = spawn_relay(dir.path(), &["exit-after=3s"]);
    let (gauge, ended_with) = runtime.block_on(async {
        let addr = wait_ready(&dir.path().join("ready"), &mut relay).await;
        let text = get(addr, "/metrics").await.1;
        let gauge = metric(&text, "squall_relay_exit_after_seconds");
        let mut ws = connect(addr, "sub").await;
        subscribe(&mut ws, &["t"]).await;
        // The exit comes at 3 s; the socket then ends without a Close frame.
        let ended_with = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(frame))) => return Err(frame),
                    other => return Ok(format!("{other:?}")),
                }
            }
        })
        .await
        .expect("the socket ends once the relay exits");
        (gauge, ended_with)
    });
    let mut status = None;
    for _ in 0..600 {
        status = relay.try_wait().unwrap();
        if status.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let Some(status) = status else {
        let _ = relay.kill();
        let _ = relay.wait();
        panic!("the relay did not exit");
    };
    let log = std::fs::read_to_string(dir.path().join("stderr")).unwrap();
    assert_eq!(status.code(), Some(EXIT_AFTER_STATUS), "{status:?}\n{log}");
    assert_eq!(gauge, 3.0);
    assert!(
        ended_with.is_ok(),
        "a crash sends no Close frame: {ended_with:?}"
    );
    assert!(
        log.contains("--bug exit-after"),
        "one line before the exit:\n{log}"
    );
}

#[tokio::test]
async fn cap_holds_deliveries_to_n_a_second_and_loses_none() {
    // 300 deliveries through a relay capped at 200 a second take at least
    // 1.4 s: a lower bound, which a loaded machine only makes longer.
    let relay = start(with_bugs(Bugs {
        cap: NonZeroU64::new(200),
        ..Bugs::default()
    }))
    .await;
    let mut sub = connect(relay.local_addr(), "sub").await;
    let mut publisher = connect(relay.local_addr(), "pub").await;
    subscribe(&mut sub, &["t"]).await;
    let started = Instant::now();
    for i in 0..300 {
        send(&mut publisher, broadcast("t", json!({"i": i}))).await;
    }
    let mut seqs = Vec::new();
    while seqs.len() < 300 {
        let frame = recv(&mut sub).await;
        seqs.push(frame["data"]["sequence"].as_u64().unwrap());
    }
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        seqs,
        (0..300).collect::<Vec<u64>>(),
        "all of them, in order"
    );
    relay.shutdown().await;
}
