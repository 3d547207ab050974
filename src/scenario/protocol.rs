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

#[cfg(test)]
mod tests {
    use super::super::plan::Plan;
    use super::*;
    use std::path::Path;

    fn plan(path: &Path, text: &str) -> Result<Plan, ScenarioError> {
        let source = Source::from_text(path, text.to_string(), &[]);
        Plan::new(&source, source.parse()?)
    }

    const NOSTR: &str = "[target]\nkind = \"url\"\nurl = \"ws://127.0.0.1:7/\"\n\
                         [auth]\nkind = \"none\"\n[protocol]\nkind = \"nostr\"\n";

    #[test]
    fn nostr_keys_resolve_beside_the_file_and_gate_refusals_by_default() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("pub.keys"),
            format!("{}3\n", "0".repeat(63)),
        )
        .unwrap();
        let text = format!("{NOSTR}event_kind = 20001\nkeys_file = \"pub.keys\"\n");
        let plan = plan(&dir.path().join("n.toml"), &text).unwrap();
        assert_eq!(
            plan.load.protocol,
            Protocol::Nostr(nostr::Settings {
                event_kind: 20001,
                keys_file: Some(dir.path().join("pub.keys")),
                forge: false,
            })
        );
        assert_eq!(plan.settings["thresholds"]["rejected"], 0);
        let text = format!("{NOSTR}[thresholds]\nrejected = 5\n");
        let plan = plan_at(&text);
        assert_eq!(plan.settings["thresholds"]["rejected"], 5);
    }

    fn plan_at(text: &str) -> Plan {
        plan(Path::new("n.toml"), text).unwrap()
    }

    #[test]
    fn nostr_errors_name_file_line_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("bad.keys");
        std::fs::write(&keys, "# keys\nnot-hex\n").unwrap();
        let file = dir.path().join("n.toml");
        let e = plan(&file, &format!("{NOSTR}keys_file = \"bad.keys\"\n")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("protocol.keys_file"), "{e}");
        assert!(e.to_string().contains("bad.keys:2:"), "{e}");
        let e = plan(&file, &format!("{NOSTR}event_kind = 22242\n")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("protocol.event_kind"), "{e}");
        assert_eq!(e.position.map(|p| p.0), Some(8), "{e}");
        let e = plan(&file, &format!("{NOSTR}publish = '{{stamp}}'\n")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("protocol.publish"), "{e}");
        let e = plan(
            &file,
            "[protocol]\nkind = \"squall\"\nforge_signatures = true\n",
        )
        .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("protocol.forge_signatures"), "{e}");
        assert!(e.message.contains("only with kind = \"nostr\""), "{e}");
    }
}
