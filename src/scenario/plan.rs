//! The validated `Plan`: everything a run needs, checked once, so that nothing
//! downstream re-checks it. Built from a [`RawScenario`] and its [`Source`],
//! so every error still names the file, line and key.

use super::raw::RawScenario;
use super::source::{ScenarioError, Source};
use crate::target::{TargetSettings, TargetSpec};
use crate::thresholds::Thresholds;
use squall_chaos::scenario::{ChaosStep, WatchdogSettings};
use squall_loadgen::plan::{self as lp, LoadPlan};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The most load processes one `squall run` starts on one machine: 32 of
/// 18,000 sockets is past what one machine's ephemeral ports and memory carry.
pub const MAX_PROCESSES: u32 = 32;

/// A scenario that can run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The run's name.
    pub name: String,
    /// The file it came from.
    pub file: PathBuf,
    /// A remote target is allowed: the scenario's `allow_remote`, and after
    /// [`Plan::for_run`] also the user's `--allow-remote`.
    pub allow_remote: bool,
    /// How to start the target.
    pub target: TargetSettings,
    /// The load, with placeholder target URLs until the target is up
    /// (see [`Plan::load_for`]).
    pub load: LoadPlan,
    /// Most sockets one process holds; beyond, the load runs in worker processes.
    pub sockets_per_process: u64,
    /// Faults to inject, checked.
    pub chaos: Vec<ChaosStep>,
    /// The hang watchdog, checked.
    pub watchdog: WatchdogSettings,
    /// Pass/fail gates, checked.
    pub thresholds: Thresholds,
    /// `squall search`'s settings, checked (`[search]`).
    pub search: crate::search::plan::SearchSettings,
    /// The scenario as it runs (defaults filled in, overrides applied, the
    /// JWT secret redacted), for the results file.
    pub settings: serde_json::Value,
}

/// Reads, overrides and validates a scenario file.
pub fn load(path: &Path, sets: &[String]) -> Result<Plan, ScenarioError> {
    let source = Source::read(path, sets)?;
    let raw = source.parse()?;
    Plan::new(&source, raw)
}

impl Plan {
    /// Validates a raw scenario read from `source`.
    pub fn new(source: &Source, mut raw: RawScenario) -> Result<Plan, ScenarioError> {
        let err = |key: &str, message: String| source.error(key, message);
        if raw.protocol.kind == super::raw::ProtocolKind::Nostr {
            // A relay that refuses publishes fails a Nostr run unless the
            // scenario allows it (`[thresholds] rejected = N`).
            raw.thresholds.rejected.get_or_insert(0);
        }
        let name = match &raw.name {
            Some(n) => n.clone(),
            None => source.path.file_stem().map_or_else(
                || "scenario".to_string(),
                |s| s.to_string_lossy().into_owned(),
            ),
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(err(
                "name",
                format!(
                    "{name:?}: use letters, digits, `-`, `_` and `.` (it names the results file)"
                ),
            ));
        }
        if raw.duration.0.is_zero() {
            return Err(err("duration", "must be more than 0s".into()));
        }
        let target = super::target::settings(source, &raw)?;
        let auth = super::auth::auth(source, &raw)?;
        let target = super::auth::with_relay_auth(source, &raw, target)?;
        let transport = super::transport::transport(source, &raw)?;
        let sse = matches!(transport, lp::Transport::Sse(_));
        let protocol = super::protocol::protocol(source, &raw.protocol, sse)?;
        let l = &raw.load;
        let topics =
            u32::try_from(l.topics).map_err(|_| err("load.topics", "too many topics".into()))?;
        let subscriptions = u32::try_from(l.subscriptions)
            .map_err(|_| err("load.subscriptions", "too many subscriptions".into()))?;
        let payload_bytes = usize::try_from(l.payload_bytes)
            .map_err(|_| err("load.payload_bytes", "too large".into()))?;
        let mut source_addrs = Vec::new();
        for (i, a) in l.source_addrs.iter().enumerate() {
            let ip: std::net::IpAddr = a.parse().map_err(|_| {
                err(
                    &format!("load.source_addrs.{i}"),
                    format!("{a:?} is not an IP address"),
                )
            })?;
            source_addrs.push(ip);
        }
        if l.sockets_per_process == 0 {
            return Err(err("load.sockets_per_process", "must be at least 1".into()));
        }
        let mut load = LoadPlan::new(Vec::new());
        load.protocol = protocol;
        load.transport = transport;
        load.auth = auth;
        load.tls = target.tls.clone();
        load.connections = l.connections;
        load.ramp = l.ramp.0;
        load.topics = topics;
        load.subscriptions_per_connection = subscriptions;
        load.publishers = l.publishers;
        load.rate = l.rate;
        load.payload_bytes = payload_bytes;
        load.stages = l
            .stages
            .iter()
            .map(|s| lp::Stage {
                duration: s.duration.0,
                rate: s.rate,
                connections: s.connections,
            })
            .collect();
        load.duration = raw.duration.0;
        load.drain = raw.drain.0;
        load.drain_max = raw.drain_max.0;
        load.reconnect = l.reconnect.then_some(lp::Reconnect {
            initial: l.reconnect_initial.0,
            max: l.reconnect_max.0,
        });
        load.source_addrs = source_addrs;
        if let Some(n) = l.sockets_per_source {
            load.sockets_per_source = n;
        }
        let thresholds =
            Thresholds::from_raw(&raw.thresholds).map_err(|(key, e)| err(&key, e.to_string()))?;
        for (i, step) in raw.chaos.iter().enumerate() {
            step.validate()
                .map_err(|e| err(&format!("chaos.{i}"), e.to_string()))?;
            if step.at >= raw.duration.0 {
                return Err(err(
                    &format!("chaos.{i}.at"),
                    "comes after the end of the run".into(),
                ));
            }
        }
        raw.watchdog
            .validate()
            .map_err(|e| err("watchdog", e.to_string()))?;
        // The engine's own check first: a search's defaults derive from the
        // load, whose errors should name the load's keys.
        LoadPlan {
            targets: vec![super::transport::placeholder_url(&load.transport, 1)],
            ..load.clone()
        }
        .check()
        .map_err(|e| err(key_of_check(&e), e.to_string()))?;
        let search = crate::search::plan::settings(&raw.search, l.rate, l.connections)
            .map_err(|(key, e)| err(&key, e.to_string()))?;
        let plan = Plan {
            name,
            file: source.path.clone(),
            allow_remote: raw.allow_remote,
            target,
            load,
            sockets_per_process: l.sockets_per_process,
            chaos: raw.chaos.clone(),
            watchdog: raw.watchdog.clone(),
            thresholds,
            search,
            settings: settings_for_results(raw),
        };
        if plan.processes() > MAX_PROCESSES {
            return Err(err(
                "load.connections",
                format!(
                    "{} sockets need {} processes of {} sockets; one machine runs at most {MAX_PROCESSES} \
                     (shard the run over machines with --shard I/N)",
                    plan.load.peak_connections(),
                    plan.processes(),
                    plan.sockets_per_process
                ),
            ));
        }
        Ok(plan)
    }

    /// The plan as one `squall run` runs it: only `shard` of the run (when
    /// given; a shard owns whole topics, see `LoadPlan::group`), and remote
    /// targets allowed only if the scenario and the user (`allow_remote`)
    /// both allow them; the engine enforces it too.
    pub fn for_run(mut self, shard: Option<lp::Shard>, allow_remote: bool) -> Plan {
        if let Some(shard) = shard {
            self.load.group = shard;
        }
        self.allow_remote &= allow_remote;
        self.load.allow_remote = self.allow_remote;
        self
    }

    /// Checks what `--shard` asks of the load (each shard owns whole topics,
    /// so there must be a topic for every shard): the engine's own check,
    /// run before anything starts.
    pub fn check_shard(&self) -> Result<(), lp::PlanError> {
        let targets = match &self.target.spec {
            TargetSpec::Builtin { relays, .. } => *relays as usize,
            TargetSpec::Url { endpoints } | TargetSpec::Command { endpoints, .. } => {
                endpoints.urls.len()
            }
        };
        let urls = (0..targets.max(1))
            .map(|i| super::transport::placeholder_url(&self.load.transport, i + 1))
            .collect();
        let mut load = self.load_for(urls);
        load.allow_remote = true;
        load.check()
    }

    /// Refuses a `url` or `command` target outside loopback unless remote
    /// targets are allowed (see [`Plan::for_run`]). No name is looked up.
    pub fn check_remote(&self) -> Result<(), squall_proto::EndpointError> {
        let (TargetSpec::Url { endpoints } | TargetSpec::Command { endpoints, .. }) =
            &self.target.spec
        else {
            return Ok(());
        };
        let guard = squall_proto::LoopbackGuard::new(self.allow_remote);
        for url in endpoints.all() {
            let u = squall_proto::Url::parse(&url.replace("{port}", "1"))?;
            guard.check_host(&u.host)?;
        }
        Ok(())
    }

    /// The load plan against the target's real URLs.
    pub fn load_for(&self, urls: Vec<String>) -> LoadPlan {
        LoadPlan {
            targets: urls,
            ..self.load.clone()
        }
    }

    /// How many processes the load needs (1 unless it holds more sockets than
    /// one process may open).
    pub fn processes(&self) -> u32 {
        let per_shard = self
            .load
            .peak_connections()
            .div_ceil(u64::from(self.load.group.count.max(1)));
        u32::try_from(per_shard.div_ceil(self.sockets_per_process).max(1)).unwrap_or(u32::MAX)
    }

    /// Planned length of the run, drain excluded.
    pub fn duration(&self) -> Duration {
        self.load.duration
    }

    /// The longest the run may take: duration + max(drain, drain_max) + 10 s,
    /// the engine's own deadline (`LoadPlan::deadline`). The harness never
    /// waits longer, whatever the target does.
    pub fn deadline(&self) -> Duration {
        self.load.deadline()
    }
}

/// The scenario key a failed `LoadPlan::check` is about, from the plan
/// field it names (the engine's check is the one validation of the load; this
/// only points the error at the right line). A new field in the engine fails
/// to compile here until it has a key.
fn key_of_check(e: &lp::PlanError) -> &'static str {
    use lp::Field;
    match e.field() {
        Field::Targets => "target",
        Field::Tls => "target.tls_ca_file",
        Field::AllowRemote => "allow_remote",
        // The shard comes from `--shard`, not from the file.
        Field::Shard => "load",
        Field::Publishers => "load.publishers",
        Field::Topics => "load.topics",
        Field::Rate => "load.rate",
        Field::PayloadBytes => "load.payload_bytes",
        Field::PublishTemplate => "protocol.publish",
        Field::SubscribeTemplate => "protocol.subscribe",
        Field::Transport => "load.transport",
        Field::PublishPath => "protocol.publish_path",
        Field::ContentType => "protocol.content_type",
        Field::Script(part) => part.name(),
        Field::NostrEventKind => "protocol.event_kind",
        Field::NostrKeysFile => "protocol.keys_file",
        Field::AuthKey => "auth.key_file",
        Field::SocketsPerSource => "load.sockets_per_source",
        Field::Ramp => "load.ramp",
        Field::Connections => "load.connections",
        Field::Subscriptions => "load.subscriptions",
        Field::Duration => "duration",
        Field::Drain => "drain",
        Field::DrainMax => "drain_max",
        Field::Reconnect => "load.reconnect",
        // The engine's own timeouts are not scenario keys.
        Field::Timeouts => "load",
    }
}

/// The scenario as it runs, for the results file, with the JWT secret
/// redacted (results files and reports get shared).
fn settings_for_results(mut raw: RawScenario) -> serde_json::Value {
    if raw.auth.secret.is_some() {
        raw.auth.secret = Some("<redacted>".to_string());
    }
    serde_json::to_value(&raw).unwrap_or_default()
}
