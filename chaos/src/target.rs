//! What the chaos agent aims at: the target's WebSocket URL, how its sockets
//! authenticate, and what they send after the upgrade.

use crate::{Error, LoopbackGuard};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;

/// Hands out a token for chaos socket number `i`, exactly as the load's
/// sockets get theirs; `None` means no token. The CLI provides it so that
/// chaos sockets authenticate like the load's (the standalone `squall chaos`
/// mints HS256 tokens from `--jwt-secret` instead).
pub type TokenSource = Arc<dyn Fn(u64) -> Option<String> + Send + Sync>;

/// Where a token goes in the upgrade request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TokenPlacement {
    /// `?token=...` in the request's query.
    #[default]
    Query,
    /// `Authorization: Bearer ...`.
    Header,
}

/// Everything a chaos step needs to know about the target.
#[derive(Clone)]
pub struct ChaosTarget {
    /// The target's WebSocket URL (`ws://127.0.0.1:PORT/ws`), not the proxy's.
    pub ws_url: String,
    /// Tokens for the chaos sockets; `None` when the target needs no auth.
    pub tokens: Option<TokenSource>,
    /// Where tokens go.
    pub placement: TokenPlacement,
    /// Text frames to send right after the upgrade; socket `i` sends
    /// `subscribe_frames[i % len]`. Empty: send nothing. For the squall
    /// protocol, build them with [`squall_subscribe`].
    pub subscribe_frames: Vec<String>,
    /// Whether the target speaks DESIGN.md's wire protocol: then `storm`
    /// counts missed Broadcast sequences and `garbage` expects an `Error`
    /// reply to bad JSON.
    pub squall_protocol: bool,
    /// The HS256 secret, if known: `badauth` then signs its expired token
    /// correctly, so that only the expiry is wrong.
    pub jwt_secret: Option<String>,
    /// Refuses addresses outside loopback.
    pub guard: LoopbackGuard,
}

impl ChaosTarget {
    /// A target with no auth, no subscribe frames, the squall protocol and a
    /// loopback-only guard.
    pub fn new(ws_url: impl Into<String>) -> Self {
        Self {
            ws_url: ws_url.into(),
            tokens: None,
            placement: TokenPlacement::Query,
            subscribe_frames: Vec::new(),
            squall_protocol: true,
            jwt_secret: None,
            guard: LoopbackGuard::loopback_only(),
        }
    }

    /// The token for chaos socket `i`.
    pub fn token(&self, i: u64) -> Option<String> {
        self.tokens.as_ref().and_then(|source| source(i))
    }

    /// The subscribe frame for chaos socket `i`, if any.
    pub fn subscribe_frame(&self, i: u64) -> Option<&str> {
        let n = self.subscribe_frames.len() as u64;
        (n > 0).then(|| self.subscribe_frames[(i % n) as usize].as_str())
    }
}

impl std::fmt::Debug for ChaosTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChaosTarget")
            .field("ws_url", &self.ws_url)
            .field("tokens", &self.tokens.is_some())
            .field("placement", &self.placement)
            .field("subscribe_frames", &self.subscribe_frames)
            .field("squall_protocol", &self.squall_protocol)
            .field("jwt_secret", &self.jwt_secret.as_ref().map(|_| "<set>"))
            .field("guard", &self.guard)
            .finish()
    }
}

/// The squall protocol's Subscribe frame for one topic.
pub fn squall_subscribe(topic: &str) -> String {
    serde_json::json!({"type": "Subscribe", "data": {"topics": [topic]}}).to_string()
}

/// A `ws://` or `http://` URL taken apart and passed through the guard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The host as written (for the `Host` header).
    pub host: String,
    /// The port (80 when the URL names none).
    pub port: u16,
    /// Path and query, at least `/`.
    pub path: String,
    /// The resolved address, accepted by the guard.
    pub addr: SocketAddr,
}

impl Endpoint {
    /// Parses `ws://host[:port][/path][?query]` (or `http://`), resolves the
    /// host and checks it with `guard`. TLS (`wss://`, `https://`) is refused:
    /// the chaos agent speaks plain TCP so that it can own every socket.
    pub fn parse(url: &str, guard: &LoopbackGuard) -> Result<Self, Error> {
        let rest = url
            .strip_prefix("ws://")
            .or_else(|| url.strip_prefix("http://"))
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "{url:?}: only ws:// and http:// URLs are supported"
                ))
            })?;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'?' => (&rest[..i], format!("/{}", &rest[i..])),
            Some(i) => (&rest[..i], rest[i..].to_string()),
            None => (rest, "/".to_string()),
        };
        let (host, port) = split_host_port(authority)
            .ok_or_else(|| Error::Invalid(format!("{url:?}: bad host or port")))?;
        let addr = guard.resolve(host, port)?;
        Ok(Self {
            host: host.to_string(),
            port,
            path,
            addr,
        })
    }

    /// The value of the `Host` header.
    pub fn host_header(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

fn split_host_port(authority: &str) -> Option<(&str, u16)> {
    if authority.is_empty() {
        return None;
    }
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => 80,
            None => return None,
        };
        return Some((host, port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host, port.parse().ok()?)),
        None => Some((authority, 80)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls_and_refuses_remote_ones() {
        let guard = LoopbackGuard::loopback_only();
        let e = Endpoint::parse("ws://127.0.0.1:9000/ws?x=1", &guard).unwrap();
        assert_eq!((e.port, e.path.as_str()), (9000, "/ws?x=1"));
        let e = Endpoint::parse("http://[::1]:81", &guard).unwrap();
        assert_eq!((e.host.as_str(), e.port, e.path.as_str()), ("::1", 81, "/"));
        assert_eq!(e.host_header(), "[::1]:81");
        assert!(matches!(
            Endpoint::parse("ws://10.0.0.1:80/ws", &guard),
            Err(Error::Refused(_))
        ));
        assert!(matches!(
            Endpoint::parse("wss://127.0.0.1/ws", &guard),
            Err(Error::Invalid(_))
        ));
    }
}
