//! `[target]` resolved: what to start (or reach), with its endpoints,
//! checked against the target's kind.

use super::raw::{RawScenario, TargetKind};
use super::source::{ScenarioError, Source};
use crate::target::{Endpoints, TargetSettings, TargetSpec};

/// Most builtin relay processes one run starts.
const MAX_RELAYS: u32 = 64;

/// Whether the `[target]` key `key` applies to targets of kind `kind`
/// (`builtin`, `command`, `url`); keys common to all kinds, and any kind
/// name this does not know, say yes (the checks below then speak).
pub fn applies_to(key: &str, kind: &str) -> bool {
    let kinds: &[&str] = match key {
        "command" => &["command"],
        "bugs" | "relay_args" | "relays" => &["builtin"],
        "url" | "health" | "metrics" => &["command", "url"],
        _ => return true,
    };
    !matches!(kind, "builtin" | "command" | "url") || kinds.contains(&kind)
}

/// The target settings of a scenario.
pub fn settings(source: &Source, raw: &RawScenario) -> Result<TargetSettings, ScenarioError> {
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
            if let Err(e) = squall_proto::Url::parse(&url.replace("{port}", "1")) {
                return Err(source.error(&format!("target.url.{i}"), e.to_string()));
            }
        }
        for (key, url) in [
            ("health", &endpoints.health),
            ("metrics", &endpoints.metrics),
        ] {
            if let Some(url) = url
                && let Err(e) = squall_proto::Url::parse(&url.replace("{port}", "1"))
            {
                return Err(source.error(&format!("target.{key}"), e.to_string()));
            }
        }
    }
    Ok(TargetSettings {
        spec,
        startup_timeout: t.startup_timeout.0,
        stop_timeout: t.stop_timeout.0,
    })
}
