//! What the chaos agent aims at: the target's WebSocket URL, how its sockets
//! authenticate, and what they send after the upgrade.

use serde::{Deserialize, Serialize};
use squall_proto::{Endpoint, EndpointError, LoopbackGuard, Scheme, TlsClient};
use std::sync::Arc;

/// Hands out a token for chaos socket number `i`, exactly as the load's
/// sockets get theirs; `None` means no token. The CLI provides it so that
/// chaos sockets authenticate like the load's (the standalone `squall chaos`
/// mints HS256 tokens from `--jwt-secret` instead).
pub type TokenSource = Arc<dyn Fn(u64) -> Option<String> + Send + Sync>;

/// Where a token goes in the upgrade request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenPlacement {
    /// `?token=...` in the request's query.
    #[default]
    Query,
    /// `Authorization: Bearer ...`.
    Header,
}

named_enum!(TokenPlacement, "placement", {
    Query => "query",
    Header => "header",
});

/// Everything a chaos step needs to know about the target.
#[derive(Clone)]
pub struct ChaosTarget {
    /// The target's WebSocket URL (`ws://127.0.0.1:PORT/ws`, or `wss://`),
    /// not the proxy's.
    pub ws_url: String,
    /// How a `wss://` target is trusted: the run's one TLS client (the
    /// load's settings, `tls_ca_file` / `tls_insecure`).
    pub tls: TlsClient,
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
    /// A target with no auth, no subscribe frames, the squall protocol, a
    /// loopback-only guard, and (for `wss://`) Mozilla's roots.
    pub fn new(ws_url: impl Into<String>) -> Self {
        Self {
            ws_url: ws_url.into(),
            tls: TlsClient::default(),
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
            .field("tls", &self.tls)
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

/// The schemes the chaos agent and the watchdog speak: `ws://` and `wss://`
/// for sockets, `http://` and `https://` for health and metrics. Over TLS
/// each fault still owns its TCP socket underneath (a reset is a reset).
pub const SCHEMES: &[Scheme] = &[Scheme::Ws, Scheme::Wss, Scheme::Http, Scheme::Https];

/// Parses a `ws://`, `wss://`, `http://` or `https://` URL, resolves its
/// host and checks it with `guard`.
pub fn endpoint(url: &str, guard: &LoopbackGuard) -> Result<Endpoint, EndpointError> {
    Endpoint::resolve(url, SCHEMES, "ws, wss, http or https", guard)
}

#[cfg(test)]
mod tests {
    use super::*;
    use squall_proto::UrlError;

    #[test]
    fn parses_urls_and_refuses_remote_ones() {
        let guard = LoopbackGuard::loopback_only();
        let e = endpoint("ws://127.0.0.1:9000/ws?x=1", &guard).unwrap();
        assert_eq!((e.url.port, e.path()), (9000, "/ws?x=1"));
        let e = endpoint("http://[::1]:81", &guard).unwrap();
        assert_eq!(
            (e.url.host.as_str(), e.url.port, e.path()),
            ("::1", 81, "/")
        );
        assert_eq!(e.host_header(), "[::1]:81");
        assert!(matches!(
            endpoint("ws://10.0.0.1:80/ws", &guard),
            Err(EndpointError::NotLoopback(_))
        ));
        // A name that is not loopback is refused before any lookup (issue
        // 8): `.invalid` never resolves, so a lookup would have said so.
        assert!(matches!(
            endpoint("ws://squall-remote.invalid:80/ws", &guard),
            Err(EndpointError::NotLoopback(_))
        ));
        let e = endpoint("wss://127.0.0.1/ws", &guard).unwrap();
        assert_eq!((e.url.scheme, e.url.port), (Scheme::Wss, 443));
        assert!(matches!(
            endpoint("ftp://127.0.0.1/", &guard),
            Err(EndpointError::Url(UrlError::Scheme { .. }))
        ));
    }

    #[test]
    fn placement_names_are_the_ones_serde_reads() {
        for placement in TokenPlacement::ALL {
            assert_eq!(serde_json::to_value(placement).unwrap(), placement.as_str());
            assert_eq!(placement.as_str().parse::<TokenPlacement>(), Ok(*placement));
        }
        assert!("cookie".parse::<TokenPlacement>().is_err());
    }
}
