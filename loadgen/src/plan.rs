//! The load plan: what the engine runs, fully resolved and validated by the
//! caller (the CLI turns a scenario file into it).
//!
//! Every field is public and the engine trusts it; [`LoadPlan::check`] is the
//! one validation, for the CLI to call while it validates a scenario. The plan
//! is plain data (`Clone + Debug + serde`) so that a parent process can hand it
//! to worker processes as JSON.
//!
//! Shape of the load (all pure functions of the plan, so every shard computes
//! the same schedule):
//! - Connections are numbered `0..peak_connections()`. Connection `c` goes to
//!   target `c % targets.len()`; topic `k` lives on target `k % targets.len()`,
//!   so a topic is always whole on one target.
//! - Connections open over `ramp` at a steady rate (`connections / ramp`),
//!   then each stage moves the wanted count linearly to its own
//!   `connections`. When the wanted count falls, the highest-numbered sockets
//!   close first; a connection opens at most once.
//! - `rate` messages per second in all, shared evenly by the publishers, each
//!   on a fixed schedule that starts when its socket is due to open (open
//!   model). Stages move the rate linearly to their own `rate`.

use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::time::Duration;

/// The validated, fully resolved load of one run (or of one shard of it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadPlan {
    /// WebSocket URLs (`ws://host:port/path`), one or more; topics are spread
    /// over them whole.
    pub targets: Vec<String>,
    /// The wire protocol spoken to the target.
    pub protocol: Protocol,
    /// How each connection authenticates.
    pub auth: Auth,
    /// Sockets open after the initial ramp.
    pub connections: u64,
    /// Time over which the first `connections` sockets open, at a steady rate.
    /// Zero opens them as fast as possible.
    pub ramp: Duration,
    /// Number of topics.
    pub topics: u32,
    /// Topics each connection subscribes to (capped at the topics of its target).
    pub subscriptions_per_connection: u32,
    /// Connections that publish (spread evenly over the connections and topics).
    pub publishers: u64,
    /// Messages per second in all publishers together (open model).
    pub rate: f64,
    /// Size of each published payload in bytes (the stamp plus padding).
    pub payload_bytes: usize,
    /// Changes of rate and connections after the initial ramp, in order.
    pub stages: Vec<Stage>,
    /// Length of the run: nothing is published at or after it.
    pub duration: Duration,
    /// Time after `duration` during which sockets stay open to receive what is
    /// still in flight; only subscribers connected until its end count for loss.
    pub drain: Duration,
    /// Which part of the connections this process runs.
    pub shard: Shard,
    /// Extra local source addresses used, in turn, once one address holds
    /// `sockets_per_source` sockets (so as not to run short of ephemeral
    /// ports: the kernel's port search slows down long before they run out).
    /// Empty: 127.0.0.2, 127.0.0.3, ... for an IPv4 loopback target.
    pub source_addrs: Vec<IpAddr>,
    /// Connections per source address (all targets together) before the
    /// next address is used: connection `c` uses address number
    /// `c / sockets_per_source`, 0 being the system's choice.
    pub sockets_per_source: u64,
    /// Prefix of topic names: topic `k` is `{topic_prefix}{k}`.
    pub topic_prefix: String,
    /// Whether the target delivers a publisher's messages to the publisher's
    /// own socket when it is subscribed to the topic (the squall protocol
    /// does; many chat relays do not). True: they are owed, unless not one
    /// of them ever comes back while others' messages do (then the target
    /// evidently does not echo: counted in `messages.echo_absent`, not as
    /// loss). False: never owed. Either way they count as received if they come.
    #[serde(default = "default_echo")]
    pub echo: bool,
    /// Timeouts of every network step.
    pub timeouts: Timeouts,
}

/// The wire protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Protocol {
    /// The reference relay's JSON protocol (DESIGN.md); a subscription counts
    /// from the moment its `subscribed` Status arrives.
    Squall,
    /// Any relay that forwards payloads verbatim: text frames built from
    /// templates with `{topic}`, `{conn}` and (publish only) `{stamp}`.
    /// `{stamp}` expands to squall's stamp plus padding up to `payload_bytes`,
    /// using only characters that need no escaping inside a JSON string.
    Template {
        /// Sent once per subscribed topic after the upgrade.
        subscribe: String,
        /// Sent for each published message.
        publish: String,
        /// Such a relay sends no acknowledgement: a subscription counts as
        /// acknowledged `settle` after its frame was sent.
        settle: Duration,
    },
}

/// How connections authenticate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Auth {
    /// No token.
    None,
    /// A JWT minted per connection.
    Jwt(JwtAuth),
}

/// JWT minting: one token per connection, made just before it connects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JwtAuth {
    /// The signing key and algorithm.
    pub key: JwtKey,
    /// Where the token goes.
    pub placement: Placement,
    /// The `sub` claim; `{conn}` becomes the global connection number
    /// (default `user-{conn}`).
    pub sub_pattern: String,
    /// The `roles` claim (omitted when empty).
    pub roles: Vec<String>,
    /// More claims, added as they are (they cannot replace `sub` or `exp`).
    pub extra_claims: serde_json::Map<String, serde_json::Value>,
    /// `exp` = now + `ttl`.
    pub ttl: Duration,
}

/// A signing key with its algorithm.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "alg", content = "key")]
pub enum JwtKey {
    /// HMAC-SHA256 with a shared secret.
    HS256(String),
    /// RSA-SHA256 with a PEM private key.
    RS256(String),
    /// ECDSA P-256 with a PEM private key.
    ES256(String),
}

impl std::fmt::Debug for JwtKey {
    /// Never prints key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let alg = match self {
            Self::HS256(_) => "HS256",
            Self::RS256(_) => "RS256",
            Self::ES256(_) => "ES256",
        };
        write!(f, "JwtKey::{alg}(<redacted>)")
    }
}

/// Where a token goes in the upgrade request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// `?token=...` appended to the URL.
    Query,
    /// `Authorization: Bearer ...`.
    Header,
}

/// One change of the load over time; `None` keeps the previous value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    /// How long the change takes (linear from the previous values).
    pub duration: Duration,
    /// Messages per second in all at the end of the stage.
    pub rate: Option<f64>,
    /// Sockets wanted at the end of the stage.
    pub connections: Option<u64>,
}

/// A part of the connections: shard `index` of `count` runs the connections
/// `index * peak / count .. (index + 1) * peak / count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// 0-based index of this shard.
    pub index: u32,
    /// Number of shards (at least 1).
    pub count: u32,
}

/// Timeouts of every network step; nothing waits longer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timeouts {
    /// TCP connect plus WebSocket upgrade.
    pub connect: Duration,
    /// Writing one frame (a stuck socket counts as `timeout` and is closed).
    pub send: Duration,
    /// Waiting for the `subscribed` Status (squall protocol).
    pub subscribe_ack: Duration,
    /// The closing handshake at the end of the run.
    pub close: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            send: Duration::from_secs(5),
            subscribe_ack: Duration::from_secs(10),
            close: Duration::from_secs(2),
        }
    }
}

/// Why a plan cannot run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError(pub String);

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PlanError {}

impl LoadPlan {
    /// A plan against `targets` with the defaults of a scenario file:
    /// 1,000 connections over 5 s, 10 topics, 1 subscription each,
    /// 100 publishers, 1,000 msg/s, 256-byte payloads, 30 s, drain 2 s;
    /// 10,000 connections per source address (the kernel's ephemeral port
    /// search slows down markedly past about 12,000 to one destination).
    pub fn new(targets: Vec<String>) -> Self {
        Self {
            targets,
            protocol: Protocol::Squall,
            auth: Auth::None,
            connections: 1000,
            ramp: Duration::from_secs(5),
            topics: 10,
            subscriptions_per_connection: 1,
            publishers: 100,
            rate: 1000.0,
            payload_bytes: 256,
            stages: Vec::new(),
            duration: Duration::from_secs(30),
            drain: Duration::from_secs(2),
            shard: Shard { index: 0, count: 1 },
            source_addrs: Vec::new(),
            sockets_per_source: 10_000,
            topic_prefix: "topic-".to_string(),
            echo: true,
            timeouts: Timeouts::default(),
        }
    }

    /// The same plan restricted to shard `index` of `count` (0-based). Every
    /// shard keeps the whole schedule, so shards run apart and merge exactly.
    pub fn shard(&self, index: u32, count: u32) -> Self {
        Self {
            shard: Shard { index, count },
            ..self.clone()
        }
    }

    /// The most sockets the plan ever wants open at once (all shards).
    pub fn peak_connections(&self) -> u64 {
        self.stages
            .iter()
            .filter_map(|s| s.connections)
            .fold(self.connections, u64::max)
    }

    /// The global connection numbers this shard runs.
    pub fn shard_connections(&self) -> std::ops::Range<u64> {
        let peak = u128::from(self.peak_connections());
        let count = u128::from(self.shard.count.max(1));
        let index = u128::from(self.shard.index);
        let at = |i: u128| (i * peak / count) as u64;
        at(index)..at(index + 1)
    }

    /// Checks everything the engine relies on; the CLI calls it while
    /// validating a scenario, and [`crate::run`] refuses a plan that fails it.
    pub fn check(&self) -> Result<(), PlanError> {
        let fail = |m: String| Err(PlanError(m));
        if self.targets.is_empty() {
            return fail("no target URL".into());
        }
        for url in &self.targets {
            crate::target::Target::parse(url).map_err(PlanError)?;
        }
        if self.shard.count == 0 || self.shard.index >= self.shard.count {
            return fail(format!(
                "shard {}/{} does not exist",
                self.shard.index + 1,
                self.shard.count
            ));
        }
        if self.publishers > self.peak_connections() {
            return fail(format!(
                "{} publishers but at most {} connections",
                self.publishers,
                self.peak_connections()
            ));
        }
        if self.topics == 0 && self.publishers > 0 {
            return fail("publishers need at least one topic".into());
        }
        if (self.topics as usize) < self.targets.len() && (self.topics > 0) {
            return fail(format!(
                "{} topics cannot cover {} targets (topics are kept whole on one target)",
                self.topics,
                self.targets.len()
            ));
        }
        let rates = std::iter::once(self.rate).chain(self.stages.iter().filter_map(|s| s.rate));
        for rate in rates {
            if !rate.is_finite() || rate < 0.0 {
                return fail(format!("rate {rate} is not a finite number >= 0"));
            }
        }
        if self.payload_bytes < crate::stamp::MIN_PAYLOAD_BYTES {
            return fail(format!(
                "payload_bytes {} is below the stamp's {} bytes",
                self.payload_bytes,
                crate::stamp::MIN_PAYLOAD_BYTES
            ));
        }
        if self.payload_bytes > MAX_PAYLOAD_BYTES {
            return fail(format!(
                "payload_bytes {} is over {MAX_PAYLOAD_BYTES}",
                self.payload_bytes
            ));
        }
        if let Protocol::Template {
            subscribe, publish, ..
        } = &self.protocol
        {
            if !publish.contains("{stamp}") {
                return fail("the publish template has no {stamp}".into());
            }
            if !subscribe.contains("{topic}") {
                return fail("the subscribe template has no {topic}".into());
            }
        }
        if let Auth::Jwt(jwt) = &self.auth {
            crate::auth::Minter::new(jwt).map_err(PlanError)?;
        }
        if self.sockets_per_source == 0 {
            return fail("sockets_per_source must be at least 1".into());
        }
        let stages: Duration = self.stages.iter().map(|s| s.duration).sum();
        if self.ramp + stages > self.duration {
            return fail(format!(
                "ramp and stages last {:?}, longer than the duration {:?}",
                self.ramp + stages,
                self.duration
            ));
        }
        Ok(())
    }
}

fn default_echo() -> bool {
    true
}

/// Largest payload the engine publishes (the reference relay's frame limit is 64 KiB).
pub const MAX_PAYLOAD_BYTES: usize = 60 * 1024;
