//! The verdict of a run: what happened, in sentences a person can act on,
//! and the exit code that says it to a machine.
//!
//! Outcomes overlap, and the worst one names the exit code: the target could
//! not be tested (5) outranks a hang or death during the run (4), which
//! outranks breached thresholds (3), which outrank a run that stopped early
//! or whose harness failed (1). A target that dies also closes every socket:
//! that is said once, as its death, not again as disconnects.

use super::{Connections, Hang, Nostr};
use crate::exit::Exit;
use crate::thresholds::ThresholdResult;

/// What the verdict is judged from.
#[derive(Debug, Clone, Copy)]
pub struct Evidence<'a> {
    /// The target's URL(s), for the sentences.
    pub target: &'a str,
    /// Connection counts and failures by kind.
    pub connections: &'a Connections,
    /// What a Nostr relay answered (Nostr runs only).
    pub nostr: Option<&'a Nostr>,
    /// Every hang of the run.
    pub hangs: &'a [Hang],
    /// Every threshold with its outcome.
    pub thresholds: &'a [ThresholdResult],
    /// The run ran to its end.
    pub complete: bool,
    /// The harness itself failed.
    pub harness_failed: bool,
}

/// The exit code and the sentences behind it, worst first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The exit code.
    pub exit: Exit,
    /// One sentence per outcome; "passed: ..." alone when the run passed.
    pub sentences: Vec<String>,
}

/// Judges a run.
pub fn judge(e: &Evidence<'_>) -> Verdict {
    let untestable = untestable(e.target, e.connections);
    let died = e
        .hangs
        .iter()
        .any(|h| matches!(h.kind.as_str(), "exited" | "unreachable"));
    let breached: Vec<&ThresholdResult> = e
        .thresholds
        .iter()
        .filter(|t| !t.passed)
        // Once the target cannot be tested, or has died, what follows from
        // that (no deliveries, every socket closed) is not news.
        .filter(|t| !(untestable.is_some() && t.name == "min_received"))
        .filter(|t| !(died && t.name == "target_disconnects"))
        .collect();
    let exit = match Exit::of_run(
        untestable.is_some(),
        !e.hangs.is_empty(),
        !breached.is_empty(),
    ) {
        Exit::Passed if !e.complete || e.harness_failed => Exit::HarnessFailed,
        exit => exit,
    };
    let mut sentences = Vec::new();
    // A target never tested cannot have hung under load: its probes failed
    // for the same reason its sockets did.
    if untestable.is_none() {
        sentences.extend(e.hangs.iter().map(hang_sentence));
    }
    sentences.splice(0..0, untestable);
    sentences.extend(
        breached
            .iter()
            .map(|t| threshold_sentence(t, e.connections, e.nostr)),
    );
    if e.harness_failed {
        sentences.push(
            "the harness failed: the load engine did not report (see the errors above)".into(),
        );
    } else if !e.complete {
        sentences
            .push("the run was stopped before its end: its figures cover only what ran".into());
    }
    if sentences.is_empty() {
        let c = e.connections;
        sentences.push(if c.dropped_by_proxy > 0 {
            format!(
                "passed: the target held {} sockets but for the {} squall's fault proxy cut, and every threshold was met",
                c.established, c.dropped_by_proxy
            )
        } else {
            format!(
                "passed: {} sockets held and every threshold was met",
                c.established
            )
        });
    }
    Verdict { exit, sentences }
}

/// Why the target could not be tested, when no socket got through at all.
fn untestable(target: &str, c: &Connections) -> Option<String> {
    if c.attempted == 0 || c.established > 0 {
        return None;
    }
    let (kind, n) = c
        .errors
        .iter()
        .max_by_key(|(_, n)| **n)
        .map_or(("unknown", 0), |(k, n)| (k.as_str(), *n));
    let of = format!("{n} of {}", c.attempted);
    Some(if kind == "refused" {
        format!(
            "could not test the target: connection refused at {target} ({of} connects): nothing listens there"
        )
    } else if let Some(status) = kind.strip_prefix("http_") {
        let (name, hint) = http_status(status);
        format!("could not test the target: {of} upgrades answered {status} {name}{hint}")
    } else {
        format!("could not test the target: no connection got through ({of} failed with {kind})")
    })
}

/// An HTTP status's reason phrase and what to check.
fn http_status(status: &str) -> (&'static str, &'static str) {
    match status {
        "400" => ("Bad Request", ": is this a WebSocket endpoint?"),
        "401" => (
            "Unauthorized",
            ": check auth.secret (and auth.kind, auth.placement)",
        ),
        "403" => ("Forbidden", ": check the token's roles (auth.roles)"),
        "404" => ("Not Found", ": check target.url's path"),
        "426" => ("Upgrade Required", ""),
        "429" => ("Too Many Requests", ": the target rate-limits connects"),
        "431" => (
            "Request Header Fields Too Large",
            ": the token is too large",
        ),
        "503" => (
            "Service Unavailable",
            ": the target is at capacity or not ready",
        ),
        _ => ("", ""),
    }
}

fn hang_sentence(h: &Hang) -> String {
    let until = h
        .ended_s
        .map_or_else(|| "to the end".to_string(), |e| format!("until {e:.1}s"));
    let after = h
        .last_chaos
        .as_deref()
        .map_or(String::new(), |c| format!(", after {c}"));
    match h.kind.as_str() {
        "exited" => format!(
            "the target died at {:.1}s{}",
            h.started_s,
            h.exit
                .as_deref()
                .map_or(String::new(), |how| format!(": {how}"))
        ),
        "unreachable" => format!(
            "the target became unreachable at {:.1}s: its health URL and sockets refuse connections{after}",
            h.started_s
        ),
        "delivery-stall" => format!(
            "delivery stalled on {} from {:.1}s {until} while other topics delivered (detected {:.1}s{after})",
            if h.topics.is_empty() {
                "some topics".to_string()
            } else {
                format!("topic {}", h.topics.join(", "))
            },
            h.started_s,
            h.detected_s
        ),
        "accept-stall" => format!(
            "new connections could not complete an upgrade from {:.1}s {until} while existing sockets delivered (detected {:.1}s{after})",
            h.started_s, h.detected_s
        ),
        _ => format!(
            "the target hung from {:.1}s {until}: no probe answered and nothing was delivered while deliveries were due (detected {:.1}s{after})",
            h.started_s, h.detected_s
        ),
    }
}

fn threshold_sentence(t: &ThresholdResult, c: &Connections, nostr: Option<&Nostr>) -> String {
    match t.name.as_str() {
        "rejected" => {
            let n = nostr.cloned().unwrap_or_default();
            let reasons: Vec<String> = n
                .rejected_by_reason
                .iter()
                .map(|(reason, count)| match n.examples.get(reason) {
                    Some(e) => format!("{reason} ×{count}, e.g. {e:?}"),
                    None => format!("{reason} ×{count}"),
                })
                .collect();
            format!(
                "the relay refused {} of {} publishes ({}): refused events are never delivered, \
                 so their subscribers count them as lost (set thresholds.rejected to allow some)",
                num(t.actual),
                n.accepted + n.rejected + n.unanswered,
                reasons.join("; ")
            )
        }
        "min_received" => format!(
            "no deliveries received from a target that accepted {} sockets (set thresholds.min_received = 0 if none are expected)",
            c.established
        ),
        "target_disconnects" => {
            let causes: Vec<String> = c.dropped.iter().map(|(k, n)| format!("{k} ×{n}")).collect();
            let proxy = if c.dropped_by_proxy > 0 {
                format!(", besides {} the fault proxy cut", c.dropped_by_proxy)
            } else {
                String::new()
            };
            format!(
                "the target closed {} of its clients' sockets ({}{proxy}): what they were owed from then on counts as lost",
                t.actual,
                causes.join(", ")
            )
        }
        _ => {
            let side = if t.floor {
                "under the floor"
            } else {
                "over the limit"
            };
            format!("{} = {} is {side} {}", t.name, num(t.actual), num(t.limit))
        }
    }
}

/// A figure: integers plainly, ratios with enough digits.
fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.6}").trim_end_matches('0').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evidence<'a>(
        c: &'a Connections,
        hangs: &'a [Hang],
        t: &'a [ThresholdResult],
    ) -> Evidence<'a> {
        Evidence {
            target: "ws://127.0.0.1:9/ws",
            connections: c,
            nostr: None,
            hangs,
            thresholds: t,
            complete: true,
            harness_failed: false,
        }
    }

    fn failed(name: &str, actual: f64, limit: f64, floor: bool) -> ThresholdResult {
        ThresholdResult {
            name: name.into(),
            limit,
            actual,
            passed: false,
            floor,
        }
    }

    #[test]
    fn every_upgrade_refused_is_untestable_and_says_what_to_check() {
        let c = Connections {
            attempted: 1000,
            failed: 1000,
            errors: [("http_401".to_string(), 1000)].into(),
            ..Default::default()
        };
        let t = [failed("min_received", 0.0, 1.0, true)];
        let v = judge(&evidence(&c, &[], &t));
        assert_eq!(v.exit, Exit::Untestable);
        assert_eq!(
            v.sentences,
            [
                "could not test the target: 1000 of 1000 upgrades answered 401 Unauthorized: check auth.secret (and auth.kind, auth.placement)"
            ]
        );
        let c = Connections {
            attempted: 10,
            failed: 10,
            errors: [("refused".to_string(), 10)].into(),
            ..Default::default()
        };
        let v = judge(&evidence(&c, &[], &[]));
        assert_eq!(v.exit, Exit::Untestable);
        assert!(v.sentences[0].contains("connection refused"), "{v:?}");
    }

    #[test]
    fn a_death_outranks_the_disconnects_it_causes() {
        let c = Connections {
            attempted: 100,
            established: 100,
            dropped: [("eof".to_string(), 100)].into(),
            ..Default::default()
        };
        let hang = Hang {
            kind: "exited".into(),
            started_s: 6.2,
            exit: Some("exited with status 70".into()),
            ..Default::default()
        };
        let t = [failed("target_disconnects", 100.0, 0.0, false)];
        let v = judge(&evidence(&c, std::slice::from_ref(&hang), &t));
        assert_eq!(v.exit, Exit::Hung);
        assert_eq!(
            v.sentences,
            ["the target died at 6.2s: exited with status 70"]
        );
        let v = judge(&evidence(&c, &[], &t));
        assert_eq!(v.exit, Exit::Breached);
        assert!(
            v.sentences[0].starts_with("the target closed 100 of"),
            "{v:?}"
        );
    }

    #[test]
    fn a_relay_that_refuses_publishes_breaks_the_run_and_says_why() {
        // Issue 10: a Nostr relay answering `OK false` must not pass silently.
        let c = Connections {
            attempted: 50,
            established: 50,
            ..Default::default()
        };
        let nostr = Nostr {
            accepted: 0,
            rejected: 120,
            rejected_by_reason: [("invalid".to_string(), 120)].into(),
            examples: [("invalid".to_string(), "invalid: Bad signature".to_string())].into(),
            ..Default::default()
        };
        let t = [failed("rejected", 120.0, 0.0, false)];
        let mut e = evidence(&c, &[], &t);
        e.nostr = Some(&nostr);
        let v = judge(&e);
        assert_eq!(v.exit, Exit::Breached);
        assert_eq!(
            v.sentences,
            [
                "the relay refused 120 of 120 publishes (invalid ×120, e.g. \"invalid: Bad signature\"): \
                 refused events are never delivered, so their subscribers count them as lost \
                 (set thresholds.rejected to allow some)"
            ]
        );
    }

    #[test]
    fn a_clean_run_passes_and_says_so() {
        let c = Connections {
            attempted: 5,
            established: 5,
            ..Default::default()
        };
        let v = judge(&evidence(&c, &[], &[]));
        assert_eq!(v.exit, Exit::Passed);
        assert!(v.sentences[0].starts_with("passed"));
    }
}
