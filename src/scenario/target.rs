//! `[target]` resolved: what to start (or reach), with its endpoints,
//! checked against the target's kind, and how its TLS is trusted.

use super::auth::beside;
use super::raw::{RawScenario, TargetKind};
use super::source::{ScenarioError, Source};
use crate::target::{Endpoints, TargetSettings, TargetSpec};
use squall_proto::{TlsClient, TlsSettings};
use std::path::PathBuf;

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
            let (args, cert) = relay_tls(source, &t.relay_args)?;
            relay_args.extend(args);
            if !(1..=MAX_RELAYS).contains(&t.relays) {
                return err("target.relays", "must be 1 to 64");
            }
            TargetSpec::Builtin {
                relay_args,
                relays: t.relays,
                tls: cert.is_some(),
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
        tls: tls_settings(source, raw, &spec)?,
        spec,
        startup_timeout: t.startup_timeout.0,
        stop_timeout: t.stop_timeout.0,
    })
}

/// The builtin relay's flags with the paths of `--tls-cert` and `--tls-key`
/// made relative to the scenario file (as `auth.key_file` is), checked now
/// (both given, and loadable), and the certificate's path when it serves TLS.
fn relay_tls(
    source: &Source,
    args: &[String],
) -> Result<(Vec<String>, Option<PathBuf>), ScenarioError> {
    let err = |message: String| Err(source.error("target.relay_args", message));
    let mut out = Vec::with_capacity(args.len());
    let (mut cert, mut key) = (None, None);
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag, Some(value.to_string())),
            None => (arg.as_str(), None),
        };
        if flag != "--tls-cert" && flag != "--tls-key" {
            out.push(arg.clone());
            continue;
        }
        let Some(value) = inline.or_else(|| iter.next().cloned()) else {
            return err(format!("{flag} needs a PEM file"));
        };
        let path = beside(source, std::path::Path::new(&value));
        out.extend([flag.to_string(), path.display().to_string()]);
        if flag == "--tls-cert" {
            cert = Some(path);
        } else {
            key = Some(path);
        }
    }
    match (&cert, &key) {
        (Some(c), Some(k)) => {
            if let Err(e) = squall_proto::tls::server_config(c, k) {
                return err(format!("--tls-cert/--tls-key: {e}"));
            }
        }
        (Some(_), None) => return err("--tls-cert needs --tls-key".into()),
        (None, Some(_)) => return err("--tls-key needs --tls-cert".into()),
        (None, None) => {}
    }
    Ok((out, cert))
}

/// `tls_ca_file` (relative to the scenario file) and `tls_insecure`,
/// checked: the CA file is read now, so that `squall validate` names it. A
/// builtin relay that serves TLS is trusted through its own certificate
/// when neither is set.
fn tls_settings(
    source: &Source,
    raw: &RawScenario,
    spec: &TargetSpec,
) -> Result<TlsSettings, ScenarioError> {
    let t = &raw.target;
    if t.tls_insecure && t.tls_ca_file.is_some() {
        return Err(source.error(
            "target.tls_insecure",
            "set `tls_ca_file` (verify with this CA) or `tls_insecure` (verify nothing), not both",
        ));
    }
    let own_cert = match spec {
        TargetSpec::Builtin { relay_args, .. } => relay_args
            .iter()
            .position(|a| a == "--tls-cert")
            .and_then(|i| relay_args.get(i + 1))
            .map(PathBuf::from),
        _ => None,
    };
    let settings = TlsSettings {
        ca_file: match &t.tls_ca_file {
            Some(path) => Some(beside(source, path)),
            None if !t.tls_insecure => own_cert,
            None => None,
        },
        insecure: t.tls_insecure,
    };
    if let Err(e) = TlsClient::new(&settings) {
        let key = if t.tls_ca_file.is_some() {
            "target.tls_ca_file"
        } else {
            "target.relay_args"
        };
        return Err(source.error(key, e.to_string()));
    }
    Ok(settings)
}
