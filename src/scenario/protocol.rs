//! `[protocol]` of a scenario turned into the engine's [`Protocol`]: which
//! keys each kind needs, which it refuses, and the script's steps.

use super::auth::beside;
use super::raw::{ProtocolKind, RawProtocol};
use super::source::{ScenarioError, Source};
use squall_loadgen::nostr;
use squall_loadgen::plan::Protocol;
use squall_loadgen::script::{Keepalive, Script, Step};
use std::time::Duration;

/// How long a script's `expect` step waits when the file names no timeout.
const DEFAULT_EXPECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The engine's protocol for `[protocol]`; the patterns are checked later,
/// with the rest of the load, by the engine's own check.
/// Over SSE (`sse`), the template needs no `subscribe`: the stream's URL
/// subscribes.
pub fn protocol(source: &Source, raw: &RawProtocol, sse: bool) -> Result<Protocol, ScenarioError> {
    let err = |key: &str, message: String| source.error(&format!("protocol.{key}"), message);
    let kind = match raw.kind {
        ProtocolKind::Squall => "squall",
        ProtocolKind::Template => "template",
        ProtocolKind::Script => "script",
        ProtocolKind::Nostr => "nostr",
    };
    let need = |key: &str, v: &Option<String>| {
        v.clone()
            .ok_or_else(|| err(key, format!("required with kind = \"{kind}\"")))
    };
    let script_only = [
        ("subprotocol", raw.subprotocol.is_some()),
        ("connect", !raw.connect.is_empty()),
        ("keepalive", !raw.keepalive.is_empty()),
        ("subscribed", raw.subscribed.is_some()),
        ("errors", !raw.errors.is_empty()),
    ];
    if raw.kind != ProtocolKind::Script
        && let Some((key, _)) = script_only.iter().find(|(_, set)| *set)
    {
        return Err(err(
            key,
            format!("only with kind = \"script\", not \"{kind}\""),
        ));
    }
    let nostr_only = [
        ("event_kind", raw.event_kind.is_some()),
        ("keys_file", raw.keys_file.is_some()),
        ("forge_signatures", raw.forge_signatures.is_some()),
    ];
    if raw.kind != ProtocolKind::Nostr
        && let Some((key, _)) = nostr_only.iter().find(|(_, set)| *set)
    {
        return Err(err(
            key,
            format!("only with kind = \"nostr\", not \"{kind}\""),
        ));
    }
    if raw.kind == ProtocolKind::Nostr
        && let Some(key) = [
            ("subscribe", raw.subscribe.is_some()),
            ("publish", raw.publish.is_some()),
        ]
        .iter()
        .find_map(|(key, set)| set.then_some(*key))
    {
        return Err(err(
            key,
            "not with kind = \"nostr\": squall builds and signs the Nostr frames itself".into(),
        ));
    }
    Ok(match raw.kind {
        ProtocolKind::Squall => Protocol::Squall,
        ProtocolKind::Nostr => {
            let defaults = nostr::Settings::default();
            Protocol::Nostr(nostr::Settings {
                event_kind: raw.event_kind.unwrap_or(defaults.event_kind),
                keys_file: raw.keys_file.as_deref().map(|path| beside(source, path)),
                forge: raw.forge_signatures.unwrap_or(defaults.forge),
            })
        }
        ProtocolKind::Template => Protocol::Template {
            subscribe: if sse {
                String::new()
            } else {
                need("subscribe", &raw.subscribe)?
            },
            publish: need("publish", &raw.publish)?,
            settle: raw.settle.0,
        },
        ProtocolKind::Script => {
            let connect = raw
                .connect
                .iter()
                .enumerate()
                .map(|(i, step)| {
                    match (&step.send, &step.expect) {
                    (Some(frame), None) if step.timeout.is_none() => Ok(Step::Send(frame.clone())),
                    (None, Some(pattern)) => Ok(Step::Expect {
                        pattern: pattern.clone(),
                        timeout: step.timeout.map_or(DEFAULT_EXPECT_TIMEOUT, |d| d.0),
                    }),
                    _ => Err(err(
                        &format!("connect.{i}"),
                        "a step is { send = \"frame\" } or { expect = \"regex\", timeout = \"5s\" }"
                            .into(),
                    )),
                }
                })
                .collect::<Result<_, _>>()?;
            Protocol::Script(Script {
                subprotocol: raw.subprotocol.clone(),
                connect,
                keepalive: raw
                    .keepalive
                    .iter()
                    .map(|k| Keepalive {
                        when: k.when.clone(),
                        reply: k.reply.clone(),
                    })
                    .collect(),
                subscribe: need("subscribe", &raw.subscribe)?,
                subscribed: raw.subscribed.clone(),
                settle: raw.settle.0,
                publish: need("publish", &raw.publish)?,
                errors: raw.errors.clone(),
            })
        }
    })
}
