//! The scenario file as the user wrote it: serde structs that mirror the TOML
//! one to one, with every default of DESIGN.md and no unknown key accepted.
//! Nothing here is checked beyond its type; [`super::plan`] turns this into a
//! validated `Plan` that nothing downstream has to re-check.

use super::duration::Dur;
use serde::{Deserialize, Serialize};
use squall_chaos::scenario::{ChaosStep, WatchdogSettings};
use std::path::PathBuf;

/// A whole scenario file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawScenario {
    /// The run's name; results are `results/<name>-<time>.json`. Default: the file's stem.
    pub name: Option<String>,
    /// How long the load runs, ramp included, drain excluded.
    pub duration: Dur,
    /// How long receivers keep listening after the last publish.
    pub drain: Dur,
    /// The longest they keep listening while deliveries still arrive: what
    /// comes after `drain` but before this is late, not lost.
    pub drain_max: Dur,
    /// Allows a non-loopback target, if `--allow-remote` is also given.
    pub allow_remote: bool,
    /// What to load.
    pub target: RawTarget,
    /// What to speak.
    pub protocol: RawProtocol,
    /// How sockets authenticate.
    pub auth: RawAuth,
    /// The load's shape.
    pub load: RawLoad,
    /// Faults injected during the run (the chaos crate's own type).
    pub chaos: Vec<ChaosStep>,
    /// The hang watchdog (the chaos crate's own type).
    pub watchdog: WatchdogSettings,
    /// Pass/fail gates.
    pub thresholds: RawThresholds,
    /// `squall search`'s settings (ignored by `squall run`).
    pub search: crate::search::plan::RawSearch,
}

impl Default for RawScenario {
    fn default() -> Self {
        RawScenario {
            name: None,
            duration: Dur::secs(30),
            drain: Dur::secs(2),
            drain_max: Dur::secs(10),
            allow_remote: false,
            target: RawTarget::default(),
            protocol: RawProtocol::default(),
            auth: RawAuth::default(),
            load: RawLoad::default(),
            chaos: Vec::new(),
            watchdog: WatchdogSettings::default(),
            thresholds: RawThresholds::default(),
            search: Default::default(),
        }
    }
}

/// `[target]`: what squall loads.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawTarget {
    /// `builtin`, `command` or `url`.
    pub kind: TargetKind,
    /// `command`: the program and its arguments; `{port}` and `{squall}` are substituted.
    pub command: Vec<String>,
    /// `command`/`url`: the WebSocket URL(s); `{port}` is substituted.
    pub url: Option<OneOrMany>,
    /// `command`/`url`: the health URL probed for readiness and by the watchdog.
    pub health: Option<String>,
    /// `command`/`url`: the Prometheus metrics URL the watchdog scrapes, so
    /// that a hang file holds the last scrape before the hang.
    pub metrics: Option<String>,
    /// `builtin`: `--bug` switches of the reference relay (`drop-every=100`).
    pub bugs: Vec<String>,
    /// `builtin`: more flags for the reference relay.
    pub relay_args: Vec<String>,
    /// `builtin`: how many relay processes to start (topics are spread over
    /// them whole), to load more sockets than one process may hold.
    pub relays: u32,
    /// `wss://` and `https://`: trust the certificates of this PEM file
    /// (relative to the scenario file) instead of Mozilla's roots: a private
    /// CA, or the server's self-signed certificate. A builtin relay with
    /// `--tls-cert` trusts its own certificate when neither this nor
    /// `tls_insecure` is set.
    pub tls_ca_file: Option<PathBuf>,
    /// `wss://` and `https://`: accept any certificate, unverified (a
    /// self-signed staging server). The summary and the results say so.
    pub tls_insecure: bool,
    /// How long the target may take to become ready.
    pub startup_timeout: Dur,
    /// How long the target gets after SIGTERM before SIGKILL.
    pub stop_timeout: Dur,
}

impl Default for RawTarget {
    fn default() -> Self {
        RawTarget {
            kind: TargetKind::Builtin,
            command: Vec::new(),
            url: None,
            health: None,
            metrics: None,
            bugs: Vec::new(),
            relay_args: Vec::new(),
            relays: 1,
            tls_ca_file: None,
            tls_insecure: false,
            startup_timeout: Dur::secs(10),
            stop_timeout: Dur::secs(5),
        }
    }
}

/// The kinds of target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// The reference relay as squall's own child process.
    Builtin,
    /// Any program, spawned and stopped by squall.
    Command,
    /// A relay that is already running.
    Url,
}

/// One string or a list of strings (`url = "ws://..."` or `url = [...]`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// A single value.
    One(String),
    /// Several values.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The values as a list.
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// `[protocol]`: what the sockets speak.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawProtocol {
    /// `squall` (the reference wire protocol), `template`, `script` or `nostr`.
    pub kind: ProtocolKind,
    /// `template`/`script`: the frame sent to subscribe, with `{topic}` and `{conn}`
    /// (`script`: also `{seq}`, `{uuid}`, `{now_ms}`).
    pub subscribe: Option<String>,
    /// `template`/`script`: the frame sent to publish, with `{topic}`, `{conn}`
    /// and `{stamp}` (`script`: also `{seq}`, `{uuid}`, `{now_ms}`).
    pub publish: Option<String>,
    /// `template`/`script`: how long after its subscribe frame a subscription
    /// counts as acknowledged when no acknowledgement comes.
    pub settle: Dur,
    /// `script`: the `Sec-WebSocket-Protocol` asked for at the upgrade.
    pub subprotocol: Option<String>,
    /// `script`: steps after the upgrade and before subscribing.
    pub connect: Vec<RawStep>,
    /// `script`: frames answered at once (`{ when = regex, reply = frame }`).
    pub keepalive: Vec<RawKeepalive>,
    /// `script`: a regex matching one acknowledgement per subscribe frame.
    pub subscribed: Option<String>,
    /// `script`: regexes of replies counted as relay errors.
    pub errors: Vec<String>,
    /// `nostr`: the kind of the published events (1 by default;
    /// 20000–29999 are ephemeral).
    pub event_kind: Option<u16>,
    /// `nostr`: a file of hex secret keys, one per line, relative to the
    /// scenario file (default: fresh keys every run).
    pub keys_file: Option<std::path::PathBuf>,
    /// `nostr`: sign every event wrongly on purpose (tests: the relay must
    /// refuse them all).
    pub forge_signatures: Option<bool>,
    /// `load.transport = "sse"`: the path (and query) publishers `POST`
    /// their `publish` body to, on the target's host and port, with
    /// `{topic}` and `{conn}`.
    pub publish_path: Option<String>,
    /// `load.transport = "sse"`: the `Content-Type` of those `POST`s
    /// (default `text/plain; charset=utf-8`).
    pub content_type: Option<String>,
}

impl Default for RawProtocol {
    fn default() -> Self {
        RawProtocol {
            kind: ProtocolKind::Squall,
            subscribe: None,
            publish: None,
            settle: Dur::millis(500),
            subprotocol: None,
            connect: Vec::new(),
            keepalive: Vec::new(),
            subscribed: None,
            errors: Vec::new(),
            event_kind: None,
            keys_file: None,
            forge_signatures: None,
            publish_path: None,
            content_type: None,
        }
    }
}

/// One connect-time step of `kind = "script"`: `{ send = "frame" }` or
/// `{ expect = "regex", timeout = "5s" }`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    /// A frame to send.
    pub send: Option<String>,
    /// A regex a frame must match.
    pub expect: Option<String>,
    /// How long `expect` waits (default 5s).
    pub timeout: Option<Dur>,
}

/// A keepalive rule of `kind = "script"`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawKeepalive {
    /// A regex matching the server's frame.
    pub when: String,
    /// The frame sent back.
    pub reply: String,
}

/// The protocols squall speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProtocolKind {
    /// The reference relay's JSON protocol.
    Squall,
    /// Subscribe and publish frames from templates.
    Template,
    /// A text protocol described by its frames (connect steps, keepalives,
    /// acknowledgements, errors).
    Script,
    /// Nostr (NIP-01): signed events, `REQ`/`EOSE`, `OK` per publish.
    Nostr,
}

/// `[auth]`: how sockets authenticate at the upgrade.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawAuth {
    /// `jwt` or `none`.
    pub kind: AuthKind,
    /// HS256 secret; default `dev-secret` when neither `secret_env` nor `key_file` is set.
    pub secret: Option<String>,
    /// Name of an environment variable holding the HS256 secret.
    pub secret_env: Option<String>,
    /// `HS256`, `RS256` or `ES256`.
    pub algorithm: String,
    /// RS256/ES256: the PEM private key that signs the tokens.
    pub key_file: Option<PathBuf>,
    /// RS256/ES256 with a `builtin` target: the PEM public key the relay checks with.
    pub public_key_file: Option<PathBuf>,
    /// `query` (`?token=`) or `header` (`Authorization: Bearer`).
    pub placement: Placement,
    /// The `sub` claim; `{conn}` is the connection's index.
    pub sub: String,
    /// The `roles` claim.
    pub roles: Vec<String>,
    /// More claims, copied into every token.
    pub claims: toml::Table,
    /// How long a token is valid.
    pub ttl: Dur,
}

impl Default for RawAuth {
    fn default() -> Self {
        RawAuth {
            kind: AuthKind::Jwt,
            secret: None,
            secret_env: None,
            algorithm: "HS256".into(),
            key_file: None,
            public_key_file: None,
            placement: Placement::Query,
            sub: "user-{conn}".into(),
            roles: Vec::new(),
            claims: toml::Table::new(),
            ttl: Dur::secs(3600),
        }
    }
}

/// Authentication kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthKind {
    /// A JWT minted per connection.
    Jwt,
    /// No credentials.
    None,
}

/// Where the token goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    /// `?token=...` in the URL.
    Query,
    /// `Authorization: Bearer ...`.
    Header,
}

/// `[load]`: the load's shape.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawLoad {
    /// Sockets held open.
    pub connections: u64,
    /// Time over which they are opened, at a steady connect rate.
    pub ramp: Dur,
    /// Topics the sockets spread over.
    pub topics: u64,
    /// Topics each socket subscribes to.
    pub subscriptions: u64,
    /// Sockets that publish.
    pub publishers: u64,
    /// Messages per second in all, on a fixed schedule (open model).
    pub rate: f64,
    /// Size of each published payload.
    pub payload_bytes: u64,
    /// Optional stages (ramp-up, steady state, ramp-down), replacing `rate`/`connections` over time.
    pub stages: Vec<RawStage>,
    /// Local source addresses to spread sockets over (`127.0.0.2`, ...).
    pub source_addrs: Vec<String>,
    /// Sockets from one source address before the next one is used;
    /// default: the engine's (10,000).
    pub sockets_per_source: Option<u64>,
    /// Most sockets one process holds before the load moves to worker processes.
    pub sockets_per_process: u64,
    /// Reconnect a socket the target ended (jittered exponential backoff,
    /// then resubscribe), as real clients do: only the gap counts as lost.
    pub reconnect: bool,
    /// The first reconnect delay; it doubles up to `reconnect_max`.
    pub reconnect_initial: Dur,
    /// The longest reconnect delay.
    pub reconnect_max: Dur,
    /// What carries the sockets: `websocket`, or `sse` (Server-Sent Events
    /// streams for subscribers, HTTP `POST`s for publishers).
    pub transport: TransportKind,
}

/// The transports squall speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// One WebSocket per connection.
    Websocket,
    /// Server-Sent Events to subscribe, HTTP `POST` to publish.
    Sse,
}

impl Default for RawLoad {
    fn default() -> Self {
        RawLoad {
            connections: 1000,
            ramp: Dur::secs(5),
            topics: 10,
            subscriptions: 1,
            publishers: 100,
            rate: 1000.0,
            payload_bytes: 256,
            stages: Vec::new(),
            source_addrs: Vec::new(),
            sockets_per_source: None,
            sockets_per_process: 18_000,
            reconnect: false,
            reconnect_initial: Dur::millis(100),
            reconnect_max: Dur::secs(5),
            transport: TransportKind::Websocket,
        }
    }
}

/// One `[[load.stages]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawStage {
    /// How long the stage lasts.
    pub duration: Dur,
    /// The publish rate the stage moves to (linearly); default: unchanged.
    pub rate: Option<f64>,
    /// The socket count the stage moves to (linearly); default: unchanged.
    pub connections: Option<u64>,
}

/// `[thresholds]`: any subset; a breach makes the exit code 3.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawThresholds {
    /// Largest p50 latency over the run, in ms.
    pub p50_ms: Option<f64>,
    /// Largest p99 latency over the run, in ms.
    pub p99_ms: Option<f64>,
    /// Largest p99.9 latency over the run, in ms.
    pub p999_ms: Option<f64>,
    /// Largest lost / expected.
    pub loss_ratio: Option<f64>,
    /// Most duplicated deliveries.
    pub duplicated: Option<u64>,
    /// Most hangs detected.
    pub hangs: Option<u64>,
    /// Most sockets the target may end on its own (any close code, reset or
    /// FIN on a socket squall did not fault). Default 0: a relay that kicks
    /// its clients fails, since it could hide loss that way.
    pub target_disconnects: Option<u64>,
    /// Fewest deliveries the run must receive. Default 1: a target that
    /// accepts every socket and delivers nothing fails; set 0 when the
    /// scenario expects no deliveries.
    pub min_received: Option<u64>,
    /// Largest failed / attempted connections.
    pub connect_error_ratio: Option<f64>,
    /// Most publishes the relay may refuse (Nostr: `OK false`). Default 0
    /// with `[protocol] kind = "nostr"`: refused events are not delivered,
    /// and a run that only measured refusals must not pass.
    pub rejected: Option<u64>,
    /// Largest p99 of any window of the run.
    pub p99_ms_window: Option<RawWindow>,
}

/// A windowed threshold: `{ limit = 50, window = "10s" }`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawWindow {
    /// The limit every window must stay under.
    pub limit: f64,
    /// The window's length (whole seconds).
    pub window: Dur,
}
