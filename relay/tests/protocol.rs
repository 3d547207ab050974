//! Every protocol message and its reply, over real sockets on loopback.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn subscribe_broadcast_unsubscribe_and_sequences() {
    let relay = start(secured()).await;
    let addr = relay.local_addr();
    let mut alice = connect(addr, "alice").await;
    let mut bob = connect(addr, "bob").await;
    subscribe(&mut alice, &["a", "b"]).await;
    subscribe(&mut bob, &["a"]).await;

    for i in 0..3 {
        send(
            &mut alice,
            broadcast("a", json!({"n": i, "nested": [1, "x"]})),
        )
        .await;
    }
    for ws in [&mut alice, &mut bob] {
        for i in 0..3 {
            let got = recv(ws).await;
            assert_eq!(
                got,
                json!({"type": "Broadcast", "data": {"topic": "a", "payload": {"n": i, "nested": [1, "x"]}, "sequence": i, "from": "alice"}})
            );
        }
    }
    // Sequences are per topic.
    send(&mut bob, broadcast("b", json!("hi"))).await;
    let got = recv(&mut alice).await;
    assert_eq!(
        (
            got["data"]["sequence"].as_u64(),
            got["data"]["from"].as_str()
        ),
        (Some(0), Some("bob"))
    );

    send(
        &mut bob,
        json!({"type": "Unsubscribe", "data": {"topics": ["a"]}}),
    )
    .await;
    assert_eq!(
        recv(&mut bob).await,
        json!({"type": "Status", "data": {"status": "unsubscribed", "details": {"topics": ["a"]}}})
    );
    send(&mut alice, broadcast("a", json!(4))).await;
    assert_eq!(recv(&mut alice).await["data"]["sequence"], 3);
    // Bob gets nothing more: his next frame is the Pong to this Ping.
    send(&mut bob, json!({"type": "Ping", "data": {"timestamp": 99}})).await;
    assert_eq!(
        recv(&mut bob).await,
        json!({"type": "Pong", "data": {"timestamp": 99}})
    );
    relay.shutdown().await;
}

#[tokio::test]
async fn the_subscribed_status_lists_the_topics() {
    let relay = start(secured()).await;
    let mut ws = connect(relay.local_addr(), "carol").await;
    send(
        &mut ws,
        json!({"type": "Subscribe", "data": {"topics": ["x", "y"]}}),
    )
    .await;
    assert_eq!(
        recv(&mut ws).await,
        json!({"type": "Status", "data": {"status": "subscribed", "details": {"topics": ["x", "y"]}}})
    );
    relay.shutdown().await;
}

#[tokio::test]
async fn direct_reaches_every_socket_of_the_user_only() {
    let relay = start(secured()).await;
    let addr = relay.local_addr();
    let mut alice = connect(addr, "alice").await;
    let mut bob1 = connect(addr, "bob").await;
    let mut bob2 = connect(addr, "bob").await;
    let mut carol = connect(addr, "carol").await;
    send(
        &mut alice,
        json!({"type": "Direct", "data": {"to": "bob", "payload": {"secret": 1}}}),
    )
    .await;
    for ws in [&mut bob1, &mut bob2] {
        assert_eq!(
            recv(ws).await,
            json!({"type": "Direct", "data": {"from": "alice", "payload": {"secret": 1}}})
        );
    }
    send(
        &mut carol,
        json!({"type": "Ping", "data": {"timestamp": 1}}),
    )
    .await;
    assert_eq!(recv(&mut carol).await["type"], "Pong");
    send(
        &mut alice,
        json!({"type": "Direct", "data": {"to": "nobody", "payload": 1}}),
    )
    .await;
    assert_eq!(recv(&mut alice).await["data"]["code"], "unknown_recipient");
    relay.shutdown().await;
}

#[tokio::test]
async fn recoverable_problems_get_an_error_and_the_socket_stays() {
    let relay = start(secured()).await;
    let mut ws = connect(relay.local_addr(), "dave").await;
    for (frame, code) in [
        ("{not json", "bad_json"),
        (r#"{"type":"Shout","data":{}}"#, "unknown_type"),
        (r#"{"type":"Subscribe","data":{"topics":"a"}}"#, "bad_data"),
    ] {
        ws.send(tokio_tungstenite::tungstenite::Message::text(frame))
            .await
            .unwrap();
        let got = recv(&mut ws).await;
        assert_eq!(got["type"], "Error");
        assert_eq!(got["data"]["code"], code, "{got}");
        assert!(
            got["data"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    send(&mut ws, json!({"type": "Ping", "data": {"timestamp": 5}})).await;
    assert_eq!(recv(&mut ws).await["data"]["timestamp"], 5);
    relay.shutdown().await;
}

use futures_util::SinkExt;

#[tokio::test]
async fn health_and_metrics_describe_the_traffic() {
    let relay = start(secured()).await;
    let addr = relay.local_addr();
    let mut ws = connect(addr, "meter").await;
    subscribe(&mut ws, &["m"]).await;
    send(&mut ws, broadcast("m", json!({"x": 1}))).await;
    recv(&mut ws).await;
    let (status, body) = get(addr, "/health").await;
    assert_eq!(status, 200);
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (health["status"].as_str(), health["connections"].as_u64()),
        (Some("ok"), Some(1))
    );
    let text = get(addr, "/metrics").await.1;
    assert_eq!(metric(&text, "squall_relay_connections_open"), 1.0);
    assert_eq!(metric(&text, "squall_relay_topics"), 1.0);
    assert_eq!(metric(&text, "squall_relay_subscriptions"), 1.0);
    assert_eq!(metric(&text, "squall_relay_messages_in_total"), 2.0);
    assert_eq!(metric(&text, "squall_relay_messages_out_total"), 2.0); // Status + delivery
    assert!(metric(&text, "squall_relay_bytes_in_total") > 0.0);
    assert!(metric(&text, "squall_relay_bytes_out_total") > 0.0);
    for series in [
        "deliveries_dropped_total",
        "slow_consumers_disconnected_total",
        "rate_limited_total",
    ] {
        assert_eq!(
            metric(&text, &format!("squall_relay_{series}")),
            0.0,
            "{series}"
        );
    }
    assert!(text.contains("# TYPE squall_relay_connections_rejected_total counter"));
    let (status, _) = get(addr, "/nope").await;
    assert_eq!(status, 400, "a plain GET elsewhere is not an upgrade");
    relay.shutdown().await;
}
