//! Auth at the upgrade: every bad token gets HTTP 401 with a one-line reason
//! before any upgrade, a missing role 403, and the relay keeps serving.

mod common;

use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use squall_proto::wire::Claims;
use squall_relay::RelayConfig;
use squall_relay::auth::AuthConfig;
use std::net::SocketAddr;

const RSA_PRIVATE: &[u8] = include_bytes!("keys/rsa_private.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("keys/rsa_public.pem");
const EC_PRIVATE: &[u8] = include_bytes!("keys/ec_private.pem");
const EC_PUBLIC: &[u8] = include_bytes!("keys/ec_public.pem");

fn upgrade_request(query: &str, extra_header: &str) -> String {
    format!(
        "GET /ws{query} HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra_header}\r\n"
    )
}

async fn upgrade_with_token(addr: SocketAddr, token: &str) -> (u16, String) {
    http(addr, &upgrade_request(&format!("?token={token}"), "")).await
}

fn signed(alg: Algorithm, key: &EncodingKey, exp: u64) -> String {
    let claims = Claims {
        sub: "kim".into(),
        exp,
        roles: vec![],
    };
    jsonwebtoken::encode(&Header::new(alg), &claims, key).unwrap()
}

/// A valid client still gets through and is served.
async fn still_serves(addr: SocketAddr) {
    let mut ws = connect(addr, "ok").await;
    send(&mut ws, json!({"type": "Ping", "data": {"timestamp": 1}})).await;
    assert_eq!(recv(&mut ws).await["type"], "Pong");
}

#[tokio::test]
async fn every_bad_token_gets_401_with_a_reason_and_the_relay_keeps_serving() {
    let relay = start(secured()).await;
    let addr = relay.local_addr();
    let none_alg = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJldmUiLCJleHAiOjk5OTk5OTk5OTl9.";
    let rs256 = signed(
        Algorithm::RS256,
        &EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap(),
        now_s() + 3600,
    );
    let cases = [
        ("missing", upgrade_request("", ""), "missing token"),
        (
            "malformed",
            upgrade_request("?token=not.a.jwt", ""),
            "malformed",
        ),
        (
            "alg none",
            upgrade_request(&format!("?token={none_alg}"), ""),
            "alg none",
        ),
        (
            "other algorithm",
            upgrade_request(&format!("?token={rs256}"), ""),
            "not accepted",
        ),
        (
            "wrong signature",
            upgrade_request(
                &format!("?token={}", token_with("eve", now_s() + 60, &[], "wrong")),
                "",
            ),
            "signature",
        ),
        (
            "expired",
            upgrade_request(
                &format!("?token={}", token_with("eve", now_s() - 120, &[], SECRET)),
                "",
            ),
            "expired",
        ),
        (
            "bad header",
            upgrade_request("", "Authorization: Bearer garbage\r\n"),
            "malformed",
        ),
    ];
    for (name, request, reason) in cases {
        let (status, body) = http(addr, &request).await;
        assert_eq!(status, 401, "{name}: {body}");
        assert!(body.contains(reason), "{name}: {body:?} lacks {reason:?}");
        assert_eq!(
            body.trim_end().lines().count(),
            1,
            "{name}: one line: {body:?}"
        );
        still_serves(addr).await;
    }
    let metrics = get(addr, "/metrics").await.1;
    assert_eq!(
        metric(
            &metrics,
            r#"squall_relay_connections_rejected_total{reason="expired"}"#
        ),
        1.0
    );
    assert_eq!(
        metric(
            &metrics,
            r#"squall_relay_connections_rejected_total{reason="wrong_algorithm"}"#
        ),
        2.0
    );
    relay.shutdown().await;
}

#[tokio::test]
async fn a_token_in_the_authorization_header_works_and_leeway_is_60s() {
    let relay = start(secured()).await;
    let addr = relay.local_addr();
    let request = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{addr}/ws"),
    )
    .map(|mut r| {
        let bearer = format!("Bearer {}", token_with("hdr", now_s() - 30, &[], SECRET));
        r.headers_mut()
            .insert("authorization", bearer.parse().unwrap());
        r
    })
    .unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("header token accepted");
    send(&mut ws, json!({"type": "Ping", "data": {"timestamp": 3}})).await;
    assert_eq!(recv(&mut ws).await["data"]["timestamp"], 3);
    relay.shutdown().await;
}

#[tokio::test]
async fn a_valid_token_without_the_role_gets_403() {
    let auth = AuthConfig::hs256(SECRET.as_bytes()).with_required_role("publisher");
    let relay = start(RelayConfig {
        auth,
        ..RelayConfig::default()
    })
    .await;
    let addr = relay.local_addr();
    let (status, body) = upgrade_with_token(
        addr,
        &token_with("norole", now_s() + 60, &["reader"], SECRET),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("publisher"));
    let url = format!(
        "ws://{addr}/ws?token={}",
        token_with("pub", now_s() + 60, &["reader", "publisher"], SECRET)
    );
    let mut ws = connect_url(&url).await;
    send(&mut ws, json!({"type": "Ping", "data": {"timestamp": 4}})).await;
    assert_eq!(recv(&mut ws).await["type"], "Pong");
    relay.shutdown().await;
}

#[tokio::test]
async fn rs256_and_es256_with_public_keys() {
    for (public, private, alg) in [
        (RSA_PUBLIC, RSA_PRIVATE, Algorithm::RS256),
        (EC_PUBLIC, EC_PRIVATE, Algorithm::ES256),
    ] {
        let auth = AuthConfig::default().with_public_key_pem(public).unwrap();
        let relay = start(RelayConfig {
            auth,
            ..RelayConfig::default()
        })
        .await;
        let addr = relay.local_addr();
        let key = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(private).unwrap(),
            _ => EncodingKey::from_ec_pem(private).unwrap(),
        };
        let mut ws = connect_url(&format!(
            "ws://{addr}/ws?token={}",
            signed(alg, &key, now_s() + 60)
        ))
        .await;
        send(&mut ws, json!({"type": "Ping", "data": {"timestamp": 5}})).await;
        assert_eq!(recv(&mut ws).await["type"], "Pong");
        // An HS256 token is refused: that algorithm is not configured.
        let (status, body) = upgrade_with_token(addr, &token("hs")).await;
        assert_eq!(status, 401, "{alg:?}: {body}");
        relay.shutdown().await;
    }
}

#[tokio::test]
async fn an_open_relay_needs_no_token() {
    let relay = start(RelayConfig::default()).await;
    let mut ws = connect_url(&relay.ws_url()).await;
    subscribe(&mut ws, &["t"]).await;
    send(&mut ws, broadcast("t", json!(1))).await;
    assert_eq!(recv(&mut ws).await["data"]["from"], "anonymous");
    relay.shutdown().await;
}
