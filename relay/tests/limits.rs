//! The limits that keep the relay from hanging or bloating: frame size,
//! UTF-8, rate limit, connection cap, idle timeout and the slow-consumer policy.

mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use squall_proto::wire::{
    CLOSE_INVALID_PAYLOAD, CLOSE_POLICY, CLOSE_TOO_BIG, CLOSE_TRY_AGAIN_LATER,
};
use squall_relay::RelayConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

#[tokio::test]
async fn a_frame_over_the_limit_is_closed_with_1009() {
    let relay = start(RelayConfig {
        max_frame_bytes: 1024,
        ..secured()
    })
    .await;
    let mut ws = connect(relay.local_addr(), "big").await;
    send(&mut ws, broadcast("t", json!("x".repeat(900)))).await; // under the limit: fine
    send(&mut ws, json!({"type": "Ping", "data": {"timestamp": 1}})).await;
    assert_eq!(recv(&mut ws).await["type"], "Pong");
    send(&mut ws, broadcast("t", json!("x".repeat(2000)))).await;
    assert_eq!(close_code(&mut ws).await, CLOSE_TOO_BIG);
    relay.shutdown().await;
}

#[tokio::test]
async fn invalid_utf8_is_closed_with_1007() {
    let relay = start(secured()).await;
    let mut ws = connect(relay.local_addr(), "bytes").await;
    let bad = Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
    ws.send(Message::Frame(bad)).await.unwrap();
    assert_eq!(close_code(&mut ws).await, CLOSE_INVALID_PAYLOAD);
    relay.shutdown().await;
}

#[tokio::test]
async fn over_the_rate_limit_gets_rate_limited_then_1008() {
    let relay = start(RelayConfig {
        rate_limit: 5,
        ..secured()
    })
    .await;
    let mut ws = connect(relay.local_addr(), "fast").await;
    // Far faster than 5/s, however slow the box: a burst of 5 passes, the
    // next are refused with an Error, and persisting gets a 1008 close.
    for i in 0..30 {
        let ping = json!({"type": "Ping", "data": {"timestamp": i}}).to_string();
        if ws.send(Message::text(ping)).await.is_err() {
            break;
        }
    }
    let (mut pongs, mut refused) = (0, 0);
    let code = tokio::time::timeout(SOON, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    let frame: serde_json::Value = serde_json::from_str(&t).unwrap();
                    match (frame["type"].as_str(), frame["data"]["code"].as_str()) {
                        (Some("Pong"), _) => pongs += 1,
                        (Some("Error"), Some("rate_limited")) => refused += 1,
                        other => panic!("unexpected {other:?}"),
                    }
                }
                Some(Ok(Message::Close(Some(frame)))) => return u16::from(frame.code),
                Some(Ok(_)) => continue,
                other => panic!("no close frame: {other:?}"),
            }
        }
    })
    .await
    .expect("closed in time");
    assert!(pongs >= 5, "the burst passes: {pongs} pongs");
    assert!(refused >= 1, "refusals come before the close: {refused}");
    assert_eq!(code, CLOSE_POLICY);
    relay.shutdown().await;
}

#[tokio::test]
async fn at_max_connections_the_next_gets_503() {
    let relay = start(RelayConfig {
        max_connections: Some(2),
        ..secured()
    })
    .await;
    let addr = relay.local_addr();
    let a = connect(addr, "a").await;
    let _b = connect(addr, "b").await;
    let refused =
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws?token={}", token("c"))).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503)
        }
        other => panic!("expected 503, got {other:?}"),
    }
    // A slot frees up once a connection leaves.
    drop(a);
    let mut admitted = None;
    for _ in 0..100 {
        if let Ok((ws, _)) =
            tokio_tungstenite::connect_async(format!("ws://{addr}/ws?token={}", token("c"))).await
        {
            admitted = Some(ws);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(admitted.is_some(), "a freed slot is reused");
    relay.shutdown().await;
}

#[tokio::test]
async fn pings_keep_a_reading_client_alive() {
    let config = RelayConfig {
        ping_interval: Duration::from_millis(200),
        idle_timeout: Duration::from_millis(1000),
        ..secured()
    };
    let relay = start(config).await;
    let mut reading = connect(relay.local_addr(), "reader").await;
    // Reading answers the relay's pings (tungstenite pongs automatically).
    let mut pings = 0;
    let until = tokio::time::Instant::now() + Duration::from_millis(2500);
    while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(until, reading.next()).await {
        pings += usize::from(matches!(frame, Message::Ping(_)));
    }
    assert!(pings >= 3, "saw {pings} pings");
    send(
        &mut reading,
        json!({"type": "Ping", "data": {"timestamp": 1}}),
    )
    .await;
    assert_eq!(
        recv(&mut reading).await["type"],
        "Pong",
        "the reading client is still served"
    );
    relay.shutdown().await;
}

#[tokio::test]
async fn a_silent_client_is_closed_after_the_idle_timeout() {
    let config = RelayConfig {
        idle_timeout: Duration::from_millis(500),
        ..secured()
    };
    let relay = start(config).await;
    let addr = relay.local_addr();
    let mut silent = connect(addr, "silent").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(close_code(&mut silent).await, CLOSE_POLICY);
    let text = metrics_until(addr, |m| {
        metric(
            m,
            r#"squall_relay_connections_ended_without_close_total{reason="timeout"}"#,
        ) == 1.0
    })
    .await;
    assert_eq!(metric(&text, "squall_relay_connections_open"), 0.0);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_closed_with_1013_and_the_others_get_everything() {
    let relay = start(RelayConfig {
        queue_size: 64,
        rate_limit: 0,
        ..secured()
    })
    .await;
    let addr = relay.local_addr();
    let mut slow = connect(addr, "slow").await;
    subscribe(&mut slow, &["t"]).await;
    let mut fast = connect(addr, "fast").await;
    subscribe(&mut fast, &["t"]).await;
    let mut publisher = connect(addr, "pub").await;
    // Once the relay has given up on it, the slow one reads what was sent to
    // it before and finds a 1013 close at the end.
    let slow_close = tokio::spawn(async move {
        metrics_until(addr, |m| {
            metric(m, "squall_relay_slow_consumers_disconnected_total") == 1.0
        })
        .await;
        tokio::time::timeout(SOON, async {
            loop {
                match slow.next().await {
                    Some(Ok(Message::Close(Some(frame)))) => return Some(u16::from(frame.code)),
                    Some(Ok(_)) => continue,
                    _ => return None,
                }
            }
        })
        .await
        .expect("the slow consumer's stream ends in time")
    });
    let payload = "p".repeat(16 * 1024);
    let mut next = 0u64;
    for _round in 0..40 {
        for _ in 0..50 {
            send(&mut publisher, broadcast("t", json!(payload))).await;
        }
        for _ in 0..50 {
            let frame = recv(&mut fast).await;
            assert_eq!(
                frame["data"]["sequence"], next,
                "the fast subscriber gets every message in order"
            );
            next += 1;
        }
    }
    assert_eq!(slow_close.await.unwrap(), Some(CLOSE_TRY_AGAIN_LATER));
    let text = get(addr, "/metrics").await.1;
    assert_eq!(
        metric(&text, "squall_relay_slow_consumers_disconnected_total"),
        1.0
    );
    relay.shutdown().await;
}
