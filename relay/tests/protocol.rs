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
