//! HS256 tokens for the standalone `squall chaos` (from `--jwt-secret`) and
//! the deliberately broken tokens of `badauth`. In a `squall run`, chaos
//! sockets take their tokens from the CLI's [`TokenSource`] instead.

use crate::target::TokenSource;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header, encode};
use squall_proto::wire::Claims;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch.
fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Signs `claims` with HS256.
pub fn sign_hs256(secret: &str, claims: &Claims) -> String {
    encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HS256 signing cannot fail")
}

/// A token for `sub` valid for `ttl` from now.
pub fn mint_hs256(secret: &str, sub: &str, ttl: Duration) -> String {
    sign_hs256(
        secret,
        &Claims {
            sub: sub.to_string(),
            exp: now_s() + ttl.as_secs(),
            roles: Vec::new(),
        },
    )
}

/// Claims for `sub` that expired `ago` before now.
pub fn expired_claims(sub: &str, ago: Duration) -> Claims {
    Claims {
        sub: sub.to_string(),
        exp: now_s().saturating_sub(ago.as_secs()),
        roles: Vec::new(),
    }
}

/// A token source minting `chaos-<i>` tokens valid for an hour.
pub fn hs256_source(secret: String) -> TokenSource {
    Arc::new(move |i| {
        Some(mint_hs256(
            &secret,
            &format!("chaos-{i}"),
            Duration::from_secs(3600),
        ))
    })
}

/// An unsigned token (`alg: none`) with valid-looking claims.
pub fn alg_none(sub: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let claims = serde_json::to_vec(&Claims {
        sub: sub.to_string(),
        exp: now_s() + 3600,
        roles: Vec::new(),
    })
    .expect("claims always serialize");
    format!("{header}.{}.", URL_SAFE_NO_PAD.encode(claims))
}
