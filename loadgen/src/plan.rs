//! The load plan: what the engine runs, fully resolved and validated by the
//! caller (the CLI turns a scenario file into it).
//!
//! Every field is public and the engine trusts it; [`LoadPlan::check`] is the
//! one validation, for the CLI to call while it validates a scenario, and
//! [`crate::run`] calls it again before anything goes on the network. A
//! failed check is a [`PlanError`] whose [`PlanError::field`] names the plan
//! field at fault, so that a caller maps it to its own configuration key with
//! a `match` rather than by reading the message. The plan is plain data
//! (`Clone + Debug + serde`) so that a parent process can hand it to worker
//! processes as JSON.
//!
//! Targets go through the [`LoopbackGuard`] of [`LoadPlan::guard`]: loopback
//! only (127.0.0.0/8, ::1) unless [`LoadPlan::allow_remote`] is set, which
//! the CLI does only when the scenario and the command line both allow it
//! (DESIGN.md, "Rules that hold everywhere"). The engine refuses a remote
//! target itself, in [`LoadPlan::check`], before any connection is attempted.
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

use crate::auth::AuthError;
use crate::script::{Script, ScriptError};
use serde::{Deserialize, Serialize};
use squall_proto::tls::TlsError;
use squall_proto::{Endpoint, EndpointError, LoopbackGuard, Scheme, TlsClient, TlsSettings};
use std::net::IpAddr;
use std::time::Duration;

/// The validated, fully resolved load of one run (or of one shard of it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadPlan {
    /// WebSocket URLs (`ws://host:port/path` or `wss://`), one or more;
    /// topics are spread over them whole. Loopback addresses only unless
    /// `allow_remote`.
    pub targets: Vec<String>,
    /// How `wss://` targets are trusted: Mozilla's roots by default, a CA
    /// file, or (insecure) any certificate. The rustls configuration is built
    /// from it once per run, when the plan is checked.
    #[serde(default)]
    pub tls: TlsSettings,
    /// Whether the targets may be other than loopback addresses. False by
    /// default; the CLI sets it only when the scenario's `allow_remote` and
    /// the user's `--allow-remote` are both given.
    #[serde(default)]
    pub allow_remote: bool,
    /// The wire protocol spoken to the target.
    pub protocol: Protocol,
    /// The socket under the protocol: WebSocket (the default) or
    /// Server-Sent Events with HTTP `POST` publishers.
    #[serde(default)]
    pub transport: Transport,
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
    /// still in flight. Deliveries that arrive later (see `drain_max`) are
    /// `late`, not lost.
    pub drain: Duration,
    /// The longest the drain may last. After `drain`, the engine keeps
    /// listening while deliveries still arrive, until none has arrived for
    /// `drain` (quiet) or `drain_max` after the end of publishing has passed;
    /// what arrives in that extension counts as `late`, with its latency, not
    /// as lost. A value below `drain` counts as `drain` (no extension).
    /// Default 10 s (a plan from before the field existed gets it too).
    #[serde(default = "default_drain_max")]
    pub drain_max: Duration,
    /// Whether and how a socket that the target ended reconnects
    /// (`None`, the default: it stays down, and what it was owed from then
    /// on is lost). See [`Reconnect`].
    #[serde(default)]
    pub reconnect: Option<Reconnect>,
    /// Which part of its topic group's connections this process runs (a
    /// contiguous part: worker processes of one machine split their
    /// machine's share this way).
    pub shard: Shard,
    /// Which topic group this process runs: the shard of a run over several
    /// machines (`squall run --shard I/N`). Connections, topics and
    /// publishers are dealt out to the groups in turn (see [`crate::layout`]),
    /// so that each group owns whole topics, with their publishers and every
    /// subscriber: each latency is then measured on one machine's clock, and
    /// a group can even load a target of its own. Default: one group.
    #[serde(default)]
    pub group: Shard,
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
    /// A text protocol described by its frames: subprotocol, connect-time
    /// steps, keepalive answers, subscribe frames and their
    /// acknowledgement, publish frames, error replies.
    Script(Script),
    /// Nostr (NIP-01): every message a signed event (the topic as a `t`
    /// tag, the stamp in `content`), signed ahead of its scheduled time;
    /// one `REQ` per topic, acknowledged by its `EOSE`; every publish's `OK`
    /// tracked; NIP-42 `AUTH` challenges answered ([`crate::nostr`]).
    Nostr(crate::nostr::Settings),
}

/// What carries a connection's frames.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Transport {
    /// One WebSocket per connection (`ws://` targets), for every protocol.
    #[default]
    Websocket,
    /// Server-Sent Events (`http://` targets), with [`Protocol::Template`]:
    /// a subscribing connection `GET`s the target URL as a
    /// `text/event-stream`, one stream per subscribed topic when the URL's
    /// path holds `{topic}` (a URL with `{topics}` gets one stream for all
    /// of them, comma-joined; one without either, one stream); the stream's
    /// `200` subscribes, and the subscription counts `settle` after it.
    /// Each event's data is a frame (a delivery when it holds a stamp). A
    /// publishing connection `POST`s the template's `publish` body over a
    /// keep-alive HTTP/1.1 connection of its own, one request in flight at
    /// a time.
    Sse(Sse),
}

/// The HTTP side of [`Transport::Sse`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sse {
    /// Path and query `POST`ed to publish, on the host and port of the
    /// connection's target; `{topic}` and `{conn}` are filled in.
    pub publish_path: String,
    /// The `Content-Type` of the `POST`s.
    pub content_type: String,
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

/// Reconnecting a socket that the target ended, as real clients do: after
/// a jittered exponential backoff (attempt `k` waits a random time between
/// half and all of `min(max, initial * 2^k)`), connect again, resubscribe,
/// and carry on: its (subscriber, publisher) pairs keep their duty, so only
/// the messages sent while it was away count as lost, and a publisher sends
/// what fell due meanwhile as soon as it is back (late, so its latency shows
/// the gap). Attempts stop at the end of the drain (the run's deadline
/// bounds every wait).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reconnect {
    /// The first backoff (more than zero).
    pub initial: Duration,
    /// The longest backoff (at least `initial`).
    pub max: Duration,
}

impl Default for Reconnect {
    /// 100 ms, doubling up to 5 s.
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
        }
    }
}

/// A part of a run: as [`LoadPlan::shard`], part `index` of `count` runs the
/// connections `index * n / count .. (index + 1) * n / count` of the `n` of
/// its group; as [`LoadPlan::group`], topic group `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// 0-based index of this shard.
    pub index: u32,
    /// Number of shards (at least 1).
    pub count: u32,
}

impl Default for Shard {
    /// The whole run: part 0 of 1.
    fn default() -> Self {
        Self { index: 0, count: 1 }
    }
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

/// The field of a [`LoadPlan`] that a failed check is about: what a caller
/// maps to its own configuration key (see [`PlanError::field`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// [`LoadPlan::targets`]: none, or a URL that is malformed, not `ws://`
    /// or `wss://`, or does not resolve.
    Targets,
    /// [`LoadPlan::tls`]: a CA file that cannot be read or holds no usable
    /// certificate.
    Tls,
    /// [`LoadPlan::allow_remote`]: a target is not a loopback address and
    /// remote targets are not allowed.
    AllowRemote,
    /// [`LoadPlan::shard`]: a shard that does not exist.
    Shard,
    /// [`LoadPlan::publishers`]: more publishers than connections.
    Publishers,
    /// [`LoadPlan::topics`]: none for the publishers, or fewer than targets.
    Topics,
    /// [`LoadPlan::rate`], or a stage's rate: not a finite number >= 0.
    Rate,
    /// [`LoadPlan::payload_bytes`]: below the stamp or over the frame limit.
    PayloadBytes,
    /// The `publish` template of [`Protocol::Template`]: no `{stamp}`.
    PublishTemplate,
    /// The `subscribe` template of [`Protocol::Template`]: no `{topic}`.
    SubscribeTemplate,
    /// [`LoadPlan::transport`]: SSE with a protocol other than
    /// [`Protocol::Template`].
    Transport,
    /// [`Sse::publish_path`]: not a path.
    PublishPath,
    /// [`Sse::content_type`]: not a header value.
    ContentType,
    /// A part of [`Protocol::Script`] (which one: [`crate::script::Part`]).
    Script(crate::script::Part),
    /// [`crate::nostr::Settings::event_kind`]: the authentication kind.
    NostrEventKind,
    /// [`crate::nostr::Settings::keys_file`]: it does not load.
    NostrKeysFile,
    /// The key of [`Auth::Jwt`]: it does not load or cannot sign.
    AuthKey,
    /// [`LoadPlan::sockets_per_source`]: zero.
    SocketsPerSource,
    /// [`LoadPlan::ramp`] (with the stages): longer than the duration.
    Ramp,
    /// [`LoadPlan::connections`], or a stage's connections: over
    /// [`MAX_CONNECTIONS`].
    Connections,
    /// [`LoadPlan::subscriptions_per_connection`]: over [`MAX_SUBSCRIPTIONS`].
    Subscriptions,
    /// [`LoadPlan::duration`]: over [`MAX_DURATION`].
    Duration,
    /// [`LoadPlan::drain`]: over [`MAX_DRAIN`].
    Drain,
    /// [`LoadPlan::drain_max`]: over [`MAX_DRAIN`].
    DrainMax,
    /// [`LoadPlan::reconnect`]: a zero or inverted backoff, or one over
    /// [`MAX_DRAIN`].
    Reconnect,
    /// One of [`LoadPlan::timeouts`]: over [`MAX_TIMEOUT`].
    Timeouts,
}

/// Most connections a plan may hold at once (all shards together): past
/// this, no machine or fleet of worker processes squall spawns carries it.
pub const MAX_CONNECTIONS: u64 = 10_000_000;
/// Highest rate in messages per second (all publishers together).
pub const MAX_RATE: f64 = 10_000_000.0;
/// Most topics.
pub const MAX_TOPICS: u32 = 1_000_000;
/// Most topics one connection subscribes to.
pub const MAX_SUBSCRIPTIONS: u32 = 10_000;
/// Longest run (30 days).
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);
/// Longest drain, `drain_max` and reconnect backoff (1 hour).
pub const MAX_DRAIN: Duration = Duration::from_secs(3600);
/// Longest timeout of a network step (1 hour).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// How long after `duration + max(drain, drain_max)` the run may still take
/// at most (closing handshakes, tasks that do not end): see
/// [`LoadPlan::deadline`].
pub const HARD_SLACK: Duration = Duration::from_secs(10);

/// Why a plan cannot run: one variant per check of [`LoadPlan::check`].
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// No target at all.
    #[error("no target URL")]
    NoTarget,
    /// A target URL that is malformed, not `ws://` or `wss://`, or does not
    /// resolve.
    #[error("target {url:?}: {source}")]
    Target {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        source: EndpointError,
    },
    /// A target that is not a loopback address, while remote targets are
    /// not allowed ([`LoadPlan::allow_remote`]).
    #[error("target {url:?}: {source}")]
    NotLoopback {
        /// The URL as given.
        url: String,
        /// The guard's refusal ([`EndpointError::NotLoopback`]).
        source: EndpointError,
    },
    /// A shard that does not exist.
    #[error("shard {}/{count} does not exist", index + 1)]
    Shard {
        /// The 0-based index asked for.
        index: u32,
        /// The number of shards.
        count: u32,
    },
    /// More publishers than the plan ever has connections.
    #[error("{publishers} publishers but at most {connections} connections")]
    TooManyPublishers {
        /// Publishers asked for.
        publishers: u64,
        /// The plan's peak connections.
        connections: u64,
    },
    /// Publishers but no topic to publish on.
    #[error("publishers need at least one topic")]
    NoTopic,
    /// Fewer topics than targets (a topic is kept whole on one target).
    #[error("{topics} topics cannot cover {targets} targets (topics are kept whole on one target)")]
    TooFewTopics {
        /// Topics asked for.
        topics: u32,
        /// Targets given.
        targets: usize,
    },
    /// Fewer topics than topic groups times targets: a shard of a run over
    /// several machines owns whole topics, at least one on each target.
    #[error(
        "{topics} topics cannot be shared by {shards} shards of {targets} target(s): each shard \
         owns whole topics, so load.topics must be at least {}",
        *shards as usize * targets
    )]
    TooFewTopicsForShards {
        /// Topics asked for.
        topics: u32,
        /// Topic groups (shards).
        shards: u32,
        /// Targets given.
        targets: usize,
    },
    /// A rate (the plan's or a stage's) that is negative, infinite or NaN.
    #[error("rate {rate} is not a finite number >= 0")]
    Rate {
        /// The rate as given.
        rate: f64,
        /// `None` for [`LoadPlan::rate`], `Some(i)` for stage `i`'s.
        stage: Option<usize>,
    },
    /// A payload too small to hold the stamp.
    #[error("payload_bytes {bytes} is below the stamp's {min} bytes")]
    PayloadTooSmall {
        /// The size asked for.
        bytes: usize,
        /// [`crate::stamp::MIN_PAYLOAD_BYTES`].
        min: usize,
    },
    /// A payload over [`MAX_PAYLOAD_BYTES`].
    #[error("payload_bytes {bytes} is over {max}")]
    PayloadTooLarge {
        /// The size asked for.
        bytes: usize,
        /// [`MAX_PAYLOAD_BYTES`].
        max: usize,
    },
    /// A publish template without `{stamp}`: nothing could be measured.
    #[error("the publish template has no {{stamp}}")]
    PublishTemplate,
    /// A subscribe template without `{topic}`.
    #[error("the subscribe template has no {{topic}}")]
    SubscribeTemplate,
    /// A script that cannot run.
    #[error(transparent)]
    Script(#[from] ScriptError),
    /// Nostr settings that cannot run.
    #[error(transparent)]
    Nostr(#[from] crate::nostr::SettingsError),
    /// SSE with a protocol other than the template.
    #[error("the SSE transport speaks the template protocol only (its `publish` is the POST body)")]
    SseProtocol,
    /// A publish path that does not start with `/` or holds blanks or
    /// control characters.
    #[error("publish path {0:?}: must start with `/` and hold no blanks or control characters")]
    PublishPath(String),
    /// A content type with control characters.
    #[error("content type {0:?}: holds control characters")]
    ContentType(String),
    /// A JWT key that does not load, or cannot sign.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The TLS settings of `wss://` targets: a CA file that cannot be read
    /// or holds no usable certificate.
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    /// `sockets_per_source` of zero.
    #[error("sockets_per_source must be at least 1")]
    SocketsPerSource,
    /// The ramp and the stages last longer than the run.
    #[error("ramp and stages last {ramp_and_stages:?}, longer than the duration {duration:?}")]
    TooLong {
        /// The ramp plus every stage.
        ramp_and_stages: Duration,
        /// [`LoadPlan::duration`].
        duration: Duration,
    },
    /// More connections (the plan's or a stage's) than [`MAX_CONNECTIONS`].
    #[error("{} {connections} is over the limit of {max}", stage_label(*stage, "connections"))]
    TooManyConnections {
        /// The count asked for.
        connections: u64,
        /// `None` for [`LoadPlan::connections`], `Some(i)` for stage `i`'s.
        stage: Option<usize>,
        /// [`MAX_CONNECTIONS`].
        max: u64,
    },
    /// A rate (the plan's or a stage's) over [`MAX_RATE`].
    #[error("{} {} msg/s is over the limit of {max} msg/s", stage_label(*stage, "rate"), readable(*rate))]
    RateTooHigh {
        /// The rate asked for.
        rate: f64,
        /// `None` for [`LoadPlan::rate`], `Some(i)` for stage `i`'s.
        stage: Option<usize>,
        /// [`MAX_RATE`].
        max: f64,
    },
    /// More topics than [`MAX_TOPICS`].
    #[error("topics {topics} is over the limit of {max}")]
    TooManyTopics {
        /// Topics asked for.
        topics: u32,
        /// [`MAX_TOPICS`].
        max: u32,
    },
    /// More subscriptions per connection than [`MAX_SUBSCRIPTIONS`].
    #[error("subscriptions per connection {subscriptions} is over the limit of {max}")]
    TooManySubscriptions {
        /// Subscriptions asked for.
        subscriptions: u32,
        /// [`MAX_SUBSCRIPTIONS`].
        max: u32,
    },
    /// A duration of the plan (`field`: [`Field::Duration`],
    /// [`Field::Drain`], [`Field::DrainMax`], [`Field::Reconnect`] or
    /// [`Field::Timeouts`]) over its limit.
    #[error("{} {value:?} is over the limit of {max:?}", field.name())]
    DurationOverLimit {
        /// The plan field.
        field: Field,
        /// The value asked for.
        value: Duration,
        /// The limit.
        max: Duration,
    },
    /// A reconnect backoff that starts at zero (reconnecting in a busy
    /// loop) or whose `max` is below its `initial`.
    #[error(
        "reconnect backoff {initial:?} up to {max:?}: initial must be above zero and at most max"
    )]
    Backoff {
        /// [`Reconnect::initial`].
        initial: Duration,
        /// [`Reconnect::max`].
        max: Duration,
    },
}

/// A number as a person reads it: `1e308`, not 309 digits.
fn readable(x: f64) -> String {
    if x.abs() >= 1e12 {
        format!("{x:e}")
    } else {
        x.to_string()
    }
}

/// `"connections"` or `"stage 2 connections"` (1-based, as a user counts).
fn stage_label(stage: Option<usize>, what: &str) -> String {
    match stage {
        None => what.to_string(),
        Some(i) => format!("stage {} {what}", i + 1),
    }
}

impl Field {
    /// The plan field's name, as [`LoadPlan`] spells it.
    pub fn name(self) -> &'static str {
        match self {
            Field::Targets => "targets",
            Field::Tls => "tls",
            Field::AllowRemote => "allow_remote",
            Field::Shard => "shard",
            Field::Publishers => "publishers",
            Field::Topics => "topics",
            Field::Rate => "rate",
            Field::PayloadBytes => "payload_bytes",
            Field::PublishTemplate => "protocol.publish",
            Field::SubscribeTemplate => "protocol.subscribe",
            Field::Transport => "transport",
            Field::PublishPath => "transport.publish_path",
            Field::ContentType => "transport.content_type",
            Field::Script(part) => part.name(),
            Field::NostrEventKind => "protocol.event_kind",
            Field::NostrKeysFile => "protocol.keys_file",
            Field::AuthKey => "auth.key",
            Field::SocketsPerSource => "sockets_per_source",
            Field::Ramp => "ramp",
            Field::Connections => "connections",
            Field::Subscriptions => "subscriptions_per_connection",
            Field::Duration => "duration",
            Field::Drain => "drain",
            Field::DrainMax => "drain_max",
            Field::Reconnect => "reconnect",
            Field::Timeouts => "timeouts",
        }
    }
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl PlanError {
    /// The plan field the failed check is about.
    pub fn field(&self) -> Field {
        match self {
            PlanError::NoTarget | PlanError::Target { .. } => Field::Targets,
            PlanError::NotLoopback { .. } => Field::AllowRemote,
            PlanError::Shard { .. } => Field::Shard,
            PlanError::TooManyPublishers { .. } => Field::Publishers,
            PlanError::NoTopic
            | PlanError::TooFewTopics { .. }
            | PlanError::TooFewTopicsForShards { .. } => Field::Topics,
            PlanError::Rate { .. } => Field::Rate,
            PlanError::PayloadTooSmall { .. } | PlanError::PayloadTooLarge { .. } => {
                Field::PayloadBytes
            }
            PlanError::PublishTemplate => Field::PublishTemplate,
            PlanError::SubscribeTemplate => Field::SubscribeTemplate,
            PlanError::SseProtocol => Field::Transport,
            PlanError::PublishPath(_) => Field::PublishPath,
            PlanError::ContentType(_) => Field::ContentType,
            PlanError::Script(e) => Field::Script(e.part()),
            PlanError::Nostr(crate::nostr::SettingsError::AuthKind) => Field::NostrEventKind,
            PlanError::Nostr(crate::nostr::SettingsError::Keys(_)) => Field::NostrKeysFile,
            PlanError::Auth(_) => Field::AuthKey,
            PlanError::Tls(_) => Field::Tls,
            PlanError::SocketsPerSource => Field::SocketsPerSource,
            PlanError::TooLong { .. } => Field::Ramp,
            PlanError::TooManyConnections { .. } => Field::Connections,
            PlanError::RateTooHigh { .. } => Field::Rate,
            PlanError::TooManyTopics { .. } => Field::Topics,
            PlanError::TooManySubscriptions { .. } => Field::Subscriptions,
            PlanError::DurationOverLimit { field, .. } => *field,
            PlanError::Backoff { .. } => Field::Reconnect,
        }
    }
}

impl LoadPlan {
    /// A plan against `targets` with the defaults of a scenario file:
    /// 1,000 connections over 5 s, 10 topics, 1 subscription each,
    /// 100 publishers, 1,000 msg/s, 256-byte payloads, 30 s, drain 2 s
    /// (extended up to 10 s while deliveries still arrive), no reconnect;
    /// 10,000 connections per source address (the kernel's ephemeral port
    /// search slows down markedly past about 12,000 to one destination).
    pub fn new(targets: Vec<String>) -> Self {
        Self {
            targets,
            tls: TlsSettings::default(),
            allow_remote: false,
            protocol: Protocol::Squall,
            transport: Transport::Websocket,
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
            drain_max: default_drain_max(),
            reconnect: None,
            shard: Shard { index: 0, count: 1 },
            group: Shard::default(),
            source_addrs: Vec::new(),
            sockets_per_source: 10_000,
            topic_prefix: "topic-".to_string(),
            echo: true,
            timeouts: Timeouts::default(),
        }
    }

    /// The same plan restricted to part `index` of `count` (0-based) of its
    /// group's connections. Every shard keeps the whole schedule, so shards
    /// run apart and merge exactly.
    pub fn shard(&self, index: u32, count: u32) -> Self {
        Self {
            shard: Shard { index, count },
            ..self.clone()
        }
    }

    /// The same plan restricted to topic group `index` of `count` (0-based):
    /// whole topics with their publishers and subscribers (see
    /// [`LoadPlan::group`](Self::group)'s field). Groups run apart, on
    /// machines of their own, and merge exactly.
    pub fn group(&self, index: u32, count: u32) -> Self {
        Self {
            group: Shard { index, count },
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

    /// The name of topic `k` (`{topic_prefix}{k}`), as the engine sends it
    /// and as [`crate::snapshot::LoadSnapshot::topics`] is indexed.
    pub fn topic_name(&self, k: u64) -> String {
        format!("{}{k}", self.topic_prefix)
    }

    /// The longest the drain may last: `max(drain, drain_max)`.
    pub fn drain_limit(&self) -> Duration {
        self.drain.max(self.drain_max)
    }

    /// The latest time, from the origin, by which [`crate::run`] returns,
    /// whatever the target does: `duration + max(drain, drain_max) + 10 s`
    /// ([`HARD_SLACK`]).
    pub fn deadline(&self) -> Duration {
        self.duration + self.drain_limit() + HARD_SLACK
    }

    /// The global connection numbers this process runs, in ascending order.
    pub fn shard_connections(&self) -> impl Iterator<Item = u64> + Clone + use<> {
        let (groups, group) = self.groups();
        self.local_connections().map(move |l| l * groups + group)
    }

    /// Whether this process runs connection `c`.
    pub fn runs_connection(&self, c: u64) -> bool {
        let (groups, group) = self.groups();
        c % groups == group && self.local_connections().contains(&(c / groups))
    }

    /// How many of the connections this process runs are among the first
    /// `n` of the run (those the plan wants open when it wants `n`).
    pub fn shard_share_of(&self, n: u64) -> u64 {
        let (groups, group) = self.groups();
        let local = self.local_connections();
        crate::layout::share(n, group, groups).clamp(local.start, local.end) - local.start
    }

    /// The number of topic groups and this process's group.
    fn groups(&self) -> (u64, u64) {
        (
            u64::from(self.group.count.max(1)),
            u64::from(self.group.index),
        )
    }

    /// The local numbers (within the group) of the connections this
    /// process runs: its contiguous part of the group's connections.
    fn local_connections(&self) -> std::ops::Range<u64> {
        let (groups, group) = self.groups();
        let n = u128::from(crate::layout::share(self.peak_connections(), group, groups));
        let count = u128::from(self.shard.count.max(1));
        let index = u128::from(self.shard.index);
        let at = |i: u128| (i * n / count) as u64;
        at(index)..at(index + 1)
    }

    /// The guard every target passes: loopback only unless
    /// [`allow_remote`](Self::allow_remote).
    pub fn guard(&self) -> LoopbackGuard {
        LoopbackGuard::new(self.allow_remote)
    }

    /// Parses and resolves every target through [`guard`](Self::guard).
    /// A name other than `localhost` is not even looked up while remote
    /// targets are refused.
    pub fn endpoints(&self) -> Result<Vec<Endpoint>, PlanError> {
        if self.targets.is_empty() {
            return Err(PlanError::NoTarget);
        }
        let guard = self.guard();
        let (schemes, expected) = match self.transport {
            Transport::Websocket => (&[Scheme::Ws, Scheme::Wss][..], "ws or wss"),
            Transport::Sse(_) => (
                &[Scheme::Http, Scheme::Https][..],
                "http or https (load.transport = \"sse\")",
            ),
        };
        self.targets
            .iter()
            .map(|url| {
                Endpoint::resolve(url, schemes, expected, &guard).map_err(|source| {
                    let url = url.clone();
                    if source.is_refused() {
                        PlanError::NotLoopback { url, source }
                    } else {
                        PlanError::Target { url, source }
                    }
                })
            })
            .collect()
    }

    /// Checks everything the engine relies on; the CLI calls it while
    /// validating a scenario, and [`crate::run`] refuses a plan that fails it
    /// before it opens a single socket (a remote target without
    /// [`allow_remote`](Self::allow_remote) included).
    pub fn check(&self) -> Result<(), PlanError> {
        self.check_and_resolve().map(drop)
    }

    /// [`check`](Self::check), returning the resolved targets for the engine,
    /// and the TLS client (built here, once) when a target is `wss://` or
    /// `https://`.
    pub(crate) fn check_and_resolve(
        &self,
    ) -> Result<(Vec<Endpoint>, Option<TlsClient>), PlanError> {
        let endpoints = self.endpoints()?;
        let tls = endpoints
            .iter()
            .any(|e| matches!(e.url.scheme, Scheme::Wss | Scheme::Https))
            .then(|| TlsClient::new(&self.tls))
            .transpose()?;
        for shard in [self.shard, self.group] {
            if shard.count == 0 || shard.index >= shard.count {
                return Err(PlanError::Shard {
                    index: shard.index,
                    count: shard.count,
                });
            }
        }
        if self.publishers > self.peak_connections() {
            return Err(PlanError::TooManyPublishers {
                publishers: self.publishers,
                connections: self.peak_connections(),
            });
        }
        if self.topics == 0 && self.publishers > 0 {
            return Err(PlanError::NoTopic);
        }
        if (self.topics as usize) < self.targets.len() && (self.topics > 0) {
            return Err(PlanError::TooFewTopics {
                topics: self.topics,
                targets: self.targets.len(),
            });
        }
        // Every group needs a topic on each of its targets.
        let groups = u64::from(self.group.count);
        if self.topics > 0 && u64::from(self.topics) < groups * self.targets.len() as u64 {
            return Err(PlanError::TooFewTopicsForShards {
                topics: self.topics,
                shards: self.group.count,
                targets: self.targets.len(),
            });
        }
        let rates = std::iter::once((None, self.rate)).chain(
            self.stages
                .iter()
                .enumerate()
                .filter_map(|(i, s)| Some((Some(i), s.rate?))),
        );
        for (stage, rate) in rates {
            if !rate.is_finite() || rate < 0.0 {
                return Err(PlanError::Rate { rate, stage });
            }
            if rate > MAX_RATE {
                return Err(PlanError::RateTooHigh {
                    rate,
                    stage,
                    max: MAX_RATE,
                });
            }
        }
        self.check_bounds()?;
        if self.payload_bytes < crate::stamp::MIN_PAYLOAD_BYTES {
            return Err(PlanError::PayloadTooSmall {
                bytes: self.payload_bytes,
                min: crate::stamp::MIN_PAYLOAD_BYTES,
            });
        }
        if self.payload_bytes > MAX_PAYLOAD_BYTES {
            return Err(PlanError::PayloadTooLarge {
                bytes: self.payload_bytes,
                max: MAX_PAYLOAD_BYTES,
            });
        }
        if let Protocol::Template {
            subscribe, publish, ..
        } = &self.protocol
        {
            if !publish.contains("{stamp}") {
                return Err(PlanError::PublishTemplate);
            }
            // Over SSE the stream's URL subscribes: there is no frame.
            if !subscribe.contains("{topic}") && self.transport == Transport::Websocket {
                return Err(PlanError::SubscribeTemplate);
            }
        }
        if let Transport::Sse(sse) = &self.transport {
            if !matches!(self.protocol, Protocol::Template { .. }) {
                return Err(PlanError::SseProtocol);
            }
            let path = &sse.publish_path;
            if !path.starts_with('/') || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(PlanError::PublishPath(path.clone()));
            }
            if sse.content_type.chars().any(char::is_control) {
                return Err(PlanError::ContentType(sse.content_type.clone()));
            }
        }
        if let Protocol::Script(script) = &self.protocol {
            script.check()?;
        }
        if let Protocol::Nostr(nostr) = &self.protocol {
            nostr.check()?;
        }
        if let Auth::Jwt(jwt) = &self.auth {
            crate::auth::Minter::new(jwt)?;
        }
        if self.sockets_per_source == 0 {
            return Err(PlanError::SocketsPerSource);
        }
        let stages: Duration = self.stages.iter().map(|s| s.duration).sum();
        if self.ramp + stages > self.duration {
            return Err(PlanError::TooLong {
                ramp_and_stages: self.ramp + stages,
                duration: self.duration,
            });
        }
        Ok((endpoints, tls))
    }
}

impl LoadPlan {
    /// The upper bounds: what no machine (or fleet of worker processes)
    /// carries, or what would keep a run from ending in reasonable time.
    fn check_bounds(&self) -> Result<(), PlanError> {
        let connections = std::iter::once((None, self.connections)).chain(
            self.stages
                .iter()
                .enumerate()
                .filter_map(|(i, s)| Some((Some(i), s.connections?))),
        );
        for (stage, connections) in connections {
            if connections > MAX_CONNECTIONS {
                return Err(PlanError::TooManyConnections {
                    connections,
                    stage,
                    max: MAX_CONNECTIONS,
                });
            }
        }
        if self.topics > MAX_TOPICS {
            return Err(PlanError::TooManyTopics {
                topics: self.topics,
                max: MAX_TOPICS,
            });
        }
        if self.subscriptions_per_connection > MAX_SUBSCRIPTIONS {
            return Err(PlanError::TooManySubscriptions {
                subscriptions: self.subscriptions_per_connection,
                max: MAX_SUBSCRIPTIONS,
            });
        }
        let t = &self.timeouts;
        let mut durations = vec![
            (Field::Duration, self.duration, MAX_DURATION),
            (Field::Drain, self.drain, MAX_DRAIN),
            (Field::DrainMax, self.drain_max, MAX_DRAIN),
        ];
        for timeout in [t.connect, t.send, t.subscribe_ack, t.close] {
            durations.push((Field::Timeouts, timeout, MAX_TIMEOUT));
        }
        if let Some(r) = &self.reconnect {
            durations.push((Field::Reconnect, r.max, MAX_DRAIN));
        }
        for (field, value, max) in durations {
            if value > max {
                return Err(PlanError::DurationOverLimit { field, value, max });
            }
        }
        if let Some(r) = &self.reconnect
            && (r.initial.is_zero() || r.initial > r.max)
        {
            return Err(PlanError::Backoff {
                initial: r.initial,
                max: r.max,
            });
        }
        Ok(())
    }
}

fn default_echo() -> bool {
    true
}

fn default_drain_max() -> Duration {
    Duration::from_secs(10)
}

/// Largest payload the engine publishes (the reference relay's frame limit is 64 KiB).
pub const MAX_PAYLOAD_BYTES: usize = 60 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_check_names_its_field() {
        let ok = LoadPlan::new(vec!["ws://127.0.0.1:9/ws".into()]);
        ok.check().unwrap();
        let field = |change: &dyn Fn(&mut LoadPlan)| {
            let mut plan = ok.clone();
            change(&mut plan);
            plan.check().unwrap_err().field()
        };
        assert_eq!(field(&|p| p.targets.clear()), Field::Targets);
        assert_eq!(
            field(&|p| p.targets = vec!["http://127.0.0.1/".into()]),
            Field::Targets
        );
        assert_eq!(
            field(&|p| p.targets = vec!["ws://10.0.0.1/".into()]),
            Field::AllowRemote
        );
        assert_eq!(
            field(&|p| p.shard = Shard { index: 2, count: 2 }),
            Field::Shard
        );
        assert_eq!(field(&|p| p.publishers = 5000), Field::Publishers);
        assert_eq!(field(&|p| p.topics = 0), Field::Topics);
        assert_eq!(field(&|p| p.rate = f64::NAN), Field::Rate);
        assert_eq!(field(&|p| p.payload_bytes = 1), Field::PayloadBytes);
        assert_eq!(field(&|p| p.payload_bytes = 1 << 20), Field::PayloadBytes);
        assert_eq!(
            field(&|p| p.sockets_per_source = 0),
            Field::SocketsPerSource
        );
        assert_eq!(field(&|p| p.ramp = Duration::from_secs(60)), Field::Ramp);
        let template = |subscribe: &str, publish: &str| Protocol::Template {
            subscribe: subscribe.into(),
            publish: publish.into(),
            settle: Duration::ZERO,
        };
        assert_eq!(
            field(&|p| p.protocol = template("{topic}", "x")),
            Field::PublishTemplate
        );
        assert_eq!(
            field(&|p| p.protocol = template("x", "{stamp}")),
            Field::SubscribeTemplate
        );
        let bad_key = Auth::Jwt(JwtAuth {
            key: JwtKey::RS256("not a pem".into()),
            placement: Placement::Query,
            sub_pattern: "u".into(),
            roles: Vec::new(),
            extra_claims: serde_json::Map::new(),
            ttl: Duration::from_secs(1),
        });
        assert_eq!(field(&|p| p.auth = bad_key.clone()), Field::AuthKey);
        // A wss:// target is a target; its CA file is read when checked.
        let mut wss = ok.clone();
        wss.targets = vec!["wss://127.0.0.1:9/ws".into()];
        wss.check().unwrap();
        let missing_ca = |p: &mut LoadPlan| {
            p.targets = vec!["wss://127.0.0.1:9/ws".into()];
            p.tls.ca_file = Some("/nonexistent/squall-ca.pem".into());
        };
        let e = {
            let mut plan = ok.clone();
            missing_ca(&mut plan);
            plan.check().unwrap_err()
        };
        assert_eq!(e.field(), Field::Tls);
        assert!(e.to_string().contains("squall-ca.pem"), "{e}");
    }

    /// Issue 11: topic groups, split further into parts, cover every
    /// connection exactly once, and each part knows its share of the first n.
    #[test]
    fn groups_and_parts_cover_every_connection_once() {
        let mut plan = LoadPlan::new(vec!["ws://127.0.0.1:9/ws".into()]);
        plan.connections = 103;
        plan.topics = 10;
        let mut seen = vec![0u32; 103];
        for g in 0..3 {
            for p in 0..2 {
                let part = plan.group(g, 3).shard(p, 2);
                part.check().unwrap();
                let mine: Vec<u64> = part.shard_connections().collect();
                assert!(mine.windows(2).all(|w| w[0] < w[1]), "ascending");
                for &c in &mine {
                    assert_eq!(c % 3, u64::from(g), "connection {c} in group {g}");
                    assert!(part.runs_connection(c));
                    seen[c as usize] += 1;
                }
                for n in [0, 1, 7, 50, 103] {
                    let first = mine.iter().filter(|&&c| c < n).count() as u64;
                    assert_eq!(
                        part.shard_share_of(n),
                        first,
                        "group {g} part {p} of first {n}"
                    );
                }
            }
        }
        assert!(seen.iter().all(|&n| n == 1), "{seen:?}");
        // Without groups, parts are contiguous as before.
        let part = plan.shard(1, 2);
        assert_eq!(
            part.shard_connections().collect::<Vec<_>>(),
            (51..103).collect::<Vec<_>>()
        );
        // Each group needs a topic of its own.
        let e = plan.group(0, 11).check().unwrap_err();
        assert_eq!(e.field(), Field::Topics);
        assert!(e.to_string().contains("at least 11"), "{e}");
        assert_eq!(plan.group(3, 3).check().unwrap_err().field(), Field::Shard);
    }

    #[test]
    fn upper_bounds_name_their_field_and_limit() {
        let ok = LoadPlan::new(vec!["ws://127.0.0.1:9/ws".into()]);
        let refused = |change: &dyn Fn(&mut LoadPlan)| {
            let mut plan = ok.clone();
            change(&mut plan);
            plan.check().unwrap_err()
        };
        let e = refused(&|p| p.rate = 1e308);
        assert_eq!(e.field(), Field::Rate);
        assert_eq!(
            e.to_string(),
            "rate 1e308 msg/s is over the limit of 10000000 msg/s"
        );
        assert_eq!(refused(&|p| p.rate = f64::INFINITY).field(), Field::Rate);
        let e = refused(&|p| p.connections = MAX_CONNECTIONS + 1);
        assert_eq!(e.field(), Field::Connections);
        assert!(e.to_string().contains("over the limit of 10000000"), "{e}");
        assert_eq!(
            refused(&|p| p.topics = MAX_TOPICS + 1).field(),
            Field::Topics
        );
        assert_eq!(
            refused(&|p| p.subscriptions_per_connection = MAX_SUBSCRIPTIONS + 1).field(),
            Field::Subscriptions
        );
        let long = MAX_DURATION + Duration::from_secs(1);
        assert_eq!(refused(&|p| p.duration = long).field(), Field::Duration);
        let hour = MAX_DRAIN + Duration::from_secs(1);
        assert_eq!(refused(&|p| p.drain = hour).field(), Field::Drain);
        let e = refused(&|p| p.drain_max = hour);
        assert_eq!(e.field(), Field::DrainMax);
        assert!(e.to_string().starts_with("drain_max "), "{e}");
        assert_eq!(
            refused(&|p| p.timeouts.connect = MAX_TIMEOUT * 2).field(),
            Field::Timeouts
        );
        let backoff = |initial, max| {
            move |p: &mut LoadPlan| {
                p.reconnect = Some(Reconnect {
                    initial: Duration::from_millis(initial),
                    max: Duration::from_millis(max),
                })
            }
        };
        assert_eq!(refused(&backoff(0, 100)).field(), Field::Reconnect);
        assert_eq!(refused(&backoff(200, 100)).field(), Field::Reconnect);
        assert_eq!(refused(&backoff(100, 4_000_000)).field(), Field::Reconnect);
        let mut plan = ok.clone();
        backoff(100, 100)(&mut plan);
        plan.connections = MAX_CONNECTIONS;
        plan.rate = MAX_RATE;
        plan.check().unwrap();
    }

    #[test]
    fn the_deadline_covers_the_longest_drain() {
        let mut plan = LoadPlan::new(vec!["ws://127.0.0.1:9/ws".into()]);
        plan.duration = Duration::from_secs(30);
        plan.drain = Duration::from_secs(2);
        assert_eq!(plan.drain_max, Duration::from_secs(10));
        assert_eq!(plan.deadline(), Duration::from_secs(30 + 10 + 10));
        plan.drain = Duration::from_secs(15);
        assert_eq!(plan.drain_limit(), Duration::from_secs(15));
        assert_eq!(plan.deadline(), Duration::from_secs(30 + 15 + 10));
        assert_eq!(plan.topic_name(7), "topic-7");
        // A plan from before issue 8: drain_max 10 s, no reconnect.
        let mut json = serde_json::to_value(&plan).unwrap();
        json.as_object_mut().unwrap().remove("drain_max");
        json.as_object_mut().unwrap().remove("reconnect");
        let old: LoadPlan = serde_json::from_value(json).unwrap();
        assert_eq!(old.drain_max, Duration::from_secs(10));
        assert_eq!(old.reconnect, None);
    }

    #[test]
    fn a_remote_target_passes_only_when_allowed() {
        let mut plan = LoadPlan::new(vec!["ws://10.0.0.1:9000/ws".into()]);
        let e = plan.check().unwrap_err();
        assert!(matches!(e, PlanError::NotLoopback { .. }), "{e}");
        assert!(e.to_string().contains("not a loopback address"), "{e}");
        // A name is refused before any lookup: no DNS query leaves the machine.
        plan.targets = vec!["ws://relay.example.invalid/ws".into()];
        assert_eq!(plan.check().unwrap_err().field(), Field::AllowRemote);
        // Allowed twice over by the caller: 10.0.0.1 is a valid target
        // (nothing is resolved or connected for an address).
        plan.targets = vec!["ws://10.0.0.1:9000/ws".into()];
        plan.allow_remote = true;
        plan.check().unwrap();
        // A plan from before the field existed is loopback-only.
        let mut json = serde_json::to_value(LoadPlan::new(vec![])).unwrap();
        json.as_object_mut().unwrap().remove("allow_remote");
        let old: LoadPlan = serde_json::from_value(json).unwrap();
        assert!(!old.allow_remote && !old.guard().allows_remote());
    }
}
