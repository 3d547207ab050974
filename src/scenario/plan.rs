//! The validated `Plan`: everything a run needs, checked once, so that nothing
//! downstream re-checks it. Built from a [`RawScenario`] and its [`Source`],
//! so every error still names the file, line and key.

use super::duration::Dur;
use super::raw::{AuthKind, Placement, ProtocolKind, RawScenario, RawThresholds, TargetKind};
use super::source::{ScenarioError, Source};
use crate::target::{Endpoints, TargetSettings, TargetSpec};
use squall_chaos::scenario::{ChaosStep, WatchdogSettings};
use squall_loadgen::plan::{self as lp, LoadPlan};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A scenario that can run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The run's name.
    pub name: String,
    /// The file it came from.
    pub file: PathBuf,
    /// The scenario allows a remote target (the user must also pass `--allow-remote`).
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
    pub thresholds: RawThresholds,
    /// The scenario as read (defaults filled in), for the results file.
    pub settings: RawScenario,
}

/// Most builtin relay processes one run starts.
const MAX_RELAYS: u32 = 64;

/// Reads, overrides and validates a scenario file.
pub fn load(path: &Path, sets: &[String]) -> Result<Plan, ScenarioError> {
    let source = Source::read(path, sets)?;
    let raw = source.parse()?;
    Plan::new(&source, raw)
}

impl Plan {
    /// Validates a raw scenario read from `source`.
    pub fn new(source: &Source, raw: RawScenario) -> Result<Plan, ScenarioError> {
        let err = |key: &str, message: String| source.error(key, message);
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
        let target = target_settings(source, &raw)?;
        let auth = auth(source, &raw)?;
        let target = with_relay_auth(source, &raw, target)?;
        let protocol = match raw.protocol.kind {
            ProtocolKind::Squall => lp::Protocol::Squall,
            ProtocolKind::Template => {
                let need = |key: &str, v: &Option<String>| {
                    v.clone().ok_or_else(|| {
                        err(
                            &format!("protocol.{key}"),
                            "required with kind = \"template\"".into(),
                        )
                    })
                };
                lp::Protocol::Template {
                    subscribe: need("subscribe", &raw.protocol.subscribe)?,
                    publish: need("publish", &raw.protocol.publish)?,
                    settle: raw.protocol.settle.0,
                }
            }
        };
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
        load.auth = auth;
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
        load.source_addrs = source_addrs;
        check_thresholds(source, &raw.thresholds)?;
        for (i, step) in raw.chaos.iter().enumerate() {
            step.validate().map_err(|e| err(&format!("chaos.{i}"), e))?;
            if step.at >= raw.duration.0 {
                return Err(err(
                    &format!("chaos.{i}.at"),
                    "comes after the end of the run".into(),
                ));
            }
        }
        raw.watchdog.validate().map_err(|e| err("watchdog", e))?;
        let plan = Plan {
            name,
            file: source.path.clone(),
            allow_remote: raw.allow_remote,
            target,
            load,
            sockets_per_process: l.sockets_per_process,
            chaos: raw.chaos.clone(),
            watchdog: raw.watchdog.clone(),
            thresholds: raw.thresholds.clone(),
            settings: raw,
        };
        plan.load_for(vec!["ws://127.0.0.1:1/ws".into()])
            .check()
            .map_err(|e| err(key_of_check(&e.0), e.0))?;
        Ok(plan)
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
            .div_ceil(u64::from(self.load.shard.count.max(1)));
        u32::try_from(per_shard.div_ceil(self.sockets_per_process).max(1)).unwrap_or(u32::MAX)
    }

    /// Planned length of the run, drain excluded.
    pub fn duration(&self) -> Duration {
        self.load.duration
    }

    /// The longest the run may take: duration + drain + 10 s. The harness
    /// never waits longer, whatever the target does.
    pub fn deadline(&self) -> Duration {
        self.load.duration + self.load.drain + Duration::from_secs(10)
    }
}

/// The key a failed `LoadPlan::check` is about, from its message (the
/// engine's check is the one validation of the load; this only points the
/// error at the right line).
fn key_of_check(message: &str) -> &'static str {
    const KEYS: [(&str, &str); 8] = [
        ("publishers but", "load.publishers"),
        ("at least one topic", "load.topics"),
        ("topics cannot cover", "load.topics"),
        ("rate ", "load.rate"),
        ("payload_bytes", "load.payload_bytes"),
        ("publish template", "protocol.publish"),
        ("subscribe template", "protocol.subscribe"),
        ("ramp and stages", "load.ramp"),
    ];
    if message.contains("256 key") || message.starts_with("JWT") {
        return "auth.key_file";
    }
    KEYS.iter()
        .find(|(text, _)| message.contains(text))
        .map_or("load", |(_, key)| key)
}

fn target_settings(source: &Source, raw: &RawScenario) -> Result<TargetSettings, ScenarioError> {
    let t = &raw.target;
    let err = |key: &str, message: &str| Err(source.error(key, message.to_string()));
    let urls = t.url.as_ref().map(|u| u.to_vec()).unwrap_or_default();
    let endpoints = |urls: Vec<String>| Endpoints {
        urls,
        health: t.health.clone(),
        metrics: t.metrics.clone(),
    };
    let spec = match t.kind {
        TargetKind::Builtin => {
            if !t.command.is_empty() || t.url.is_some() || t.health.is_some() {
                return err(
                    "target.kind",
                    "`command`, `url` and `health` do not apply to kind = \"builtin\"",
                );
            }
            let mut relay_args = Vec::new();
            for bug in &t.bugs {
                relay_args.extend(["--bug".to_string(), bug.clone()]);
            }
            relay_args.extend(t.relay_args.iter().cloned());
            if !(1..=MAX_RELAYS).contains(&t.relays) {
                return err("target.relays", "must be 1 to 64");
            }
            TargetSpec::Builtin {
                relay_args,
                relays: t.relays,
            }
        }
        TargetKind::Command => {
            if t.command.is_empty() {
                return err("target.command", "required with kind = \"command\"");
            }
            if !t.bugs.is_empty() || !t.relay_args.is_empty() || t.relays != 1 {
                return err(
                    "target.bugs",
                    "`bugs`, `relay_args` and `relays` apply to kind = \"builtin\" only",
                );
            }
            let urls = if urls.is_empty() {
                vec!["ws://127.0.0.1:{port}/ws".to_string()]
            } else {
                urls
            };
            TargetSpec::Command {
                argv: t.command.clone(),
                endpoints: endpoints(urls),
            }
        }
        TargetKind::Url => {
            if urls.is_empty() {
                return err("target.url", "required with kind = \"url\"");
            }
            if !t.command.is_empty()
                || !t.bugs.is_empty()
                || !t.relay_args.is_empty()
                || t.relays != 1
            {
                return err(
                    "target.kind",
                    "`command`, `bugs`, `relay_args` and `relays` do not apply to kind = \"url\"",
                );
            }
            TargetSpec::Url {
                endpoints: endpoints(urls),
            }
        }
    };
    if let TargetSpec::Command { endpoints, .. } | TargetSpec::Url { endpoints } = &spec {
        for (i, url) in endpoints.urls.iter().enumerate() {
            if let Err(e) = crate::target::url::Url::parse(&url.replace("{port}", "1")) {
                return Err(source.error(&format!("target.url.{i}"), e));
            }
        }
        for (key, url) in [
            ("health", &endpoints.health),
            ("metrics", &endpoints.metrics),
        ] {
            if let Some(url) = url
                && let Err(e) = crate::target::url::Url::parse(&url.replace("{port}", "1"))
            {
                return Err(source.error(&format!("target.{key}"), e));
            }
        }
    }
    Ok(TargetSettings {
        spec,
        startup_timeout: t.startup_timeout.0,
        stop_timeout: t.stop_timeout.0,
    })
}

fn auth(source: &Source, raw: &RawScenario) -> Result<lp::Auth, ScenarioError> {
    let a = &raw.auth;
    let err = |key: &str, message: String| source.error(key, message);
    if a.kind == AuthKind::None {
        return Ok(lp::Auth::None);
    }
    let pem = |key: &str| -> Result<String, ScenarioError> {
        let path = a.key_file.as_ref().ok_or_else(|| {
            err(
                key,
                format!("{} needs key_file (a PEM private key)", a.algorithm),
            )
        })?;
        let path = beside(source, path);
        std::fs::read_to_string(&path)
            .map_err(|e| err("auth.key_file", format!("{}: {e}", path.display())))
    };
    let key = match a.algorithm.as_str() {
        "HS256" => {
            if a.key_file.is_some() {
                return Err(err(
                    "auth.key_file",
                    "HS256 signs with a secret, not a key file".into(),
                ));
            }
            let secret = match (&a.secret, &a.secret_env) {
                (Some(_), Some(_)) => {
                    return Err(err(
                        "auth.secret_env",
                        "set `secret` or `secret_env`, not both".into(),
                    ));
                }
                (Some(s), None) => s.clone(),
                (None, Some(var)) => std::env::var(var).map_err(|_| {
                    err(
                        "auth.secret_env",
                        format!("the environment variable {var} is not set"),
                    )
                })?,
                (None, None) => "dev-secret".to_string(),
            };
            lp::JwtKey::HS256(secret)
        }
        "RS256" => lp::JwtKey::RS256(pem("auth.algorithm")?),
        "ES256" => lp::JwtKey::ES256(pem("auth.algorithm")?),
        other => {
            return Err(err(
                "auth.algorithm",
                format!("{other:?}: use HS256, RS256 or ES256"),
            ));
        }
    };
    let mut extra = serde_json::Map::new();
    for (k, v) in &a.claims {
        if k == "sub" || k == "exp" {
            return Err(err(
                &format!("auth.claims.{k}"),
                "`sub` and `exp` are set by squall".into(),
            ));
        }
        let v =
            serde_json::to_value(v).map_err(|e| err(&format!("auth.claims.{k}"), e.to_string()))?;
        extra.insert(k.clone(), v);
    }
    Ok(lp::Auth::Jwt(lp::JwtAuth {
        key,
        placement: match a.placement {
            Placement::Query => lp::Placement::Query,
            Placement::Header => lp::Placement::Header,
        },
        sub_pattern: a.sub.clone(),
        roles: a.roles.clone(),
        extra_claims: extra,
        ttl: a.ttl.0,
    }))
}

/// The builtin relay must accept the tokens squall mints: same secret or key.
fn with_relay_auth(
    source: &Source,
    raw: &RawScenario,
    mut t: TargetSettings,
) -> Result<TargetSettings, ScenarioError> {
    let TargetSpec::Builtin { relay_args, .. } = &mut t.spec else {
        return Ok(t);
    };
    let a = &raw.auth;
    let mut flags = Vec::new();
    match (a.kind, a.algorithm.as_str()) {
        (AuthKind::None, _) => flags.push("--no-auth".to_string()),
        (AuthKind::Jwt, "HS256") => {
            let secret = match (&a.secret, &a.secret_env) {
                (Some(s), _) => s.clone(),
                (None, Some(var)) => std::env::var(var).unwrap_or_default(),
                (None, None) => "dev-secret".to_string(),
            };
            flags.extend(["--jwt-secret".to_string(), secret]);
        }
        (AuthKind::Jwt, _) => {
            let key = a.public_key_file.as_ref().ok_or_else(|| {
                source.error(
                    "auth.public_key_file",
                    "the builtin relay needs the public key of key_file".to_string(),
                )
            })?;
            let key = beside(source, key);
            flags.extend(["--jwt-public-key".to_string(), key.display().to_string()]);
        }
    }
    flags.append(relay_args);
    *relay_args = flags;
    Ok(t)
}

/// A path from the scenario file, relative to the file's own directory.
fn beside(source: &Source, path: &Path) -> PathBuf {
    match source.path.parent() {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path.to_path_buf(),
    }
}

fn check_thresholds(source: &Source, t: &RawThresholds) -> Result<(), ScenarioError> {
    let limits = [
        ("p50_ms", t.p50_ms),
        ("p99_ms", t.p99_ms),
        ("p999_ms", t.p999_ms),
        ("loss_ratio", t.loss_ratio),
        ("connect_error_ratio", t.connect_error_ratio),
    ];
    for (key, limit) in limits {
        if let Some(v) = limit
            && !(v.is_finite() && v >= 0.0)
        {
            return Err(source.error(
                &format!("thresholds.{key}"),
                format!("{v} is not a number >= 0"),
            ));
        }
    }
    for (key, ratio) in [
        ("loss_ratio", t.loss_ratio),
        ("connect_error_ratio", t.connect_error_ratio),
    ] {
        if ratio.is_some_and(|r| r > 1.0) {
            return Err(source.error(&format!("thresholds.{key}"), "a ratio is at most 1"));
        }
    }
    if let Some(w) = &t.p99_ms_window {
        if !(w.limit.is_finite() && w.limit >= 0.0) {
            return Err(source.error(
                "thresholds.p99_ms_window.limit",
                format!("{} is not a number >= 0", w.limit),
            ));
        }
        if w.window < Dur::secs(1) || w.window.0.subsec_nanos() != 0 {
            return Err(source.error(
                "thresholds.p99_ms_window.window",
                "must be whole seconds, at least 1s",
            ));
        }
    }
    Ok(())
}
