//! [`RelayConfig`]: everything a relay needs to run, constructible in code
//! (tests, other crates) or from the command line (`cli`).

use std::sync::Arc;
use std::time::Duration;

use squall_proto::tls::ServerConfig;

use crate::auth::AuthConfig;
use crate::bugs::Bugs;

/// The configuration of one relay. `Default` is an open relay (no auth) with
/// the documented defaults and no bugs.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Who may connect.
    pub auth: AuthConfig,
    /// Open WebSocket connections allowed at once; beyond it, HTTP 503.
    pub max_connections: Option<usize>,
    /// Frames each connection's outbound queue holds before the consumer is
    /// closed as slow (1013).
    pub queue_size: usize,
    /// How often the relay pings each client.
    pub ping_interval: Duration,
    /// A connection silent for this long is closed.
    pub idle_timeout: Duration,
    /// The largest frame or message accepted; beyond it, close 1009.
    pub max_frame_bytes: usize,
    /// Messages per second each connection may send (token bucket, burst of
    /// one second's worth).
    pub rate_limit: u32,
    /// Deliberate bugs (all off by default).
    pub bugs: Bugs,
    /// The request head must arrive within this time (slowloris defence);
    /// so must, before it, the TLS handshake of a TLS relay.
    pub head_timeout: Duration,
    /// On shutdown, connections get this long to finish their closing handshake.
    pub drain_timeout: Duration,
    /// Serve TLS (`wss://`, `https://` health and metrics) on the port with
    /// this configuration (`--tls-cert`, `--tls-key`); `None`: plain TCP.
    pub tls: Option<Arc<ServerConfig>>,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            auth: AuthConfig::open(),
            max_connections: None,
            queue_size: 1024,
            ping_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_frame_bytes: 64 * 1024,
            rate_limit: 1000,
            bugs: Bugs::default(),
            head_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(5),
            tls: None,
        }
    }
}
