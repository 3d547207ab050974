//! The human summary at the end of a run, like k6's end-of-test summary:
//! one dotted line per figure, thresholds with ✓ and ✗.

use super::Results;
use std::fmt::Write;

/// Renders the summary of a results file.
pub fn render(r: &Results, path: Option<&str>) -> String {
    let mut out = String::new();
    let verdict = if r.passed { "PASSED" } else { "FAILED" };
    let complete = if r.complete {
        "complete"
    } else {
        "INCOMPLETE (stopped early)"
    };
    let _ = writeln!(
        out,
        "\n  squall · {} · {complete} · {verdict} (exit {})",
        r.scenario, r.exit_code
    );
    for sentence in &r.verdict {
        let _ = writeln!(out, "  → {sentence}");
    }
    if r.tls.as_ref().is_some_and(|t| t.insecure) {
        let _ = writeln!(
            out,
            "  ⚠ TLS INSECURE: tls_insecure = true, the target's certificate was NOT verified: \
             anyone in the path could have posed as it"
        );
    }
    out.push('\n');
    let mut line = |name: &str, value: String| {
        let dots = ".".repeat(22usize.saturating_sub(name.len()));
        let _ = writeln!(out, "  {name} {dots} {value}");
    };
    line("target", r.target.clone());
    if let Some(tls) = &r.tls {
        line("tls", tls.describe());
    }
    line(
        "duration",
        format!(
            "{:.1}s ({} planned, then drain)",
            r.duration_s,
            secs(r.planned_s)
        ),
    );
    let c = &r.connections;
    line(
        "connections",
        format!(
            "{} attempted, {} established, {} failed",
            c.attempted, c.established, c.failed
        ),
    );
    if !c.errors.is_empty() {
        let kinds: Vec<String> = c.errors.iter().map(|(k, n)| format!("{k}={n}")).collect();
        line("connection errors", kinds.join(" "));
    }
    line(
        "handshake",
        format!(
            "p50={} p99={}",
            ms(c.handshake_ms.p50),
            ms(c.handshake_ms.p99)
        ),
    );
    if let Some(tls) = &c.tls_handshake_ms {
        line(
            "tls handshake",
            format!(
                "p50={} p99={} max={} ({} full handshakes, part of the handshake above)",
                ms(tls.p50),
                ms(tls.p99),
                ms(tls.max),
                tls.count
            ),
        );
    }
    let m = &r.messages;
    line(
        "messages",
        format!(
            "{} sent, {} received ({:.1}/s)",
            m.sent, m.received, m.throughput_per_s
        ),
    );
    line(
        "loss",
        format!(
            "{} lost of {} expected ({:.4}%), {} duplicated, {} reordered",
            m.lost,
            m.expected,
            m.loss_ratio * 100.0,
            m.duplicated,
            m.reordered
        ),
    );
    if let Some(late) = &r.late_ms {
        line(
            "late",
            format!(
                "{} deliveries arrived after the drain (not lost): the target was up to {} behind (p50 {})",
                m.late,
                ms(late.max),
                ms(late.p50)
            ),
        );
    }
    let dropped: u64 = c.dropped.values().sum();
    if dropped > 0 {
        let causes: Vec<String> = c.dropped.iter().map(|(k, n)| format!("{k}={n}")).collect();
        let by_target = dropped - c.dropped_by_proxy;
        let whose = match (by_target, c.dropped_by_proxy) {
            (_, 0) => "ended by the target".to_string(),
            (0, _) => "ended by squall's fault proxy (its toxics)".to_string(),
            (_, proxy) => {
                format!("ended, {proxy} by squall's fault proxy, {by_target} by the target")
            }
        };
        line(
            "dropped",
            format!("{dropped} sockets {whose}: {}", causes.join(" ")),
        );
    }
    if let Some(rc) = &c.reconnect_ms {
        line(
            "reconnects",
            format!("{} (p50={} p99={})", c.reconnects, ms(rc.p50), ms(rc.p99)),
        );
    }
    if m.echo_absent > 0 {
        line(
            "no echo",
            format!(
                "{} publishers never got their own messages back: the target does not echo \
                 to the sender, so those were not counted as owed",
                m.echo_absent
            ),
        );
    }
    if let Some(n) = &r.nostr {
        let reasons: Vec<String> = n
            .rejected_by_reason
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let refused = if reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", reasons.join(" "))
        };
        line(
            "nostr OK",
            format!(
                "{} accepted, {} rejected{refused}, {} unanswered",
                n.accepted, n.rejected, n.unanswered
            ),
        );
        line(
            "nostr OK latency",
            format!(
                "p50={} p99={} max={}",
                ms(n.ok_ms.p50),
                ms(n.ok_ms.p99),
                ms(n.ok_ms.max)
            ),
        );
        let closed: u64 = n.closed.values().sum();
        if n.notices + closed + n.auth + n.unmatched + n.signed_late > 0 {
            let kinds: Vec<String> = n.closed.iter().map(|(k, v)| format!("{k}={v}")).collect();
            line(
                "nostr relay said",
                format!(
                    "{} NOTICE, {closed} CLOSED{}, {} AUTH answered ({} refused), \
                     {} OK for no publish, {} signed late",
                    n.notices,
                    if kinds.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", kinds.join(" "))
                    },
                    n.auth,
                    n.auth_refused,
                    n.unmatched,
                    n.signed_late
                ),
            );
        }
        for (kind, text) in &n.examples {
            line(&format!("nostr {kind}"), format!("{text:?}"));
        }
    }
    let l = &r.latency_ms;
    line(
        "latency",
        format!(
            "min={} mean={} p50={} p90={} p99={} p99.9={} max={}",
            ms(l.min),
            ms(l.mean),
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.p999),
            ms(l.max)
        ),
    );
    if let Some(lag) = &r.send_lag_ms {
        line(
            "send lag",
            format!("p99={} max={}", ms(lag.p99), ms(lag.max)),
        );
    }
    if r.hangs.is_empty() {
        line("hangs", "none".into());
    }
    for h in &r.hangs {
        let ended = h
            .ended_s
            .map_or_else(|| "never ended".to_string(), |e| format!("ended {e:.1}s"));
        let before = h
            .last_chaos
            .as_deref()
            .map_or(String::new(), |c| format!(", after {c}"));
        line(
            "HANG",
            format!(
                "from {:.1}s, detected {:.1}s, {ended}{before}",
                h.started_s, h.detected_s
            ),
        );
        if let Some(d) = &h.diagnostics {
            line("diagnostics", d.clone());
        }
    }
    for step in &r.chaos {
        line(
            "chaos",
            step.to_string().trim_end().replace('\n', "\n      "),
        );
    }
    if !r.thresholds.is_empty() {
        let _ = writeln!(out, "  thresholds");
        for t in &r.thresholds {
            let mark = if t.passed { "✓" } else { "✗" };
            let dots = ".".repeat(24usize.saturating_sub(t.name.len()));
            let cmp = if t.floor { ">=" } else { "<=" };
            let _ = writeln!(
                out,
                "    {mark} {} {dots} {} {cmp} {}",
                t.name,
                num(t.actual),
                num(t.limit)
            );
        }
    }
    if let Some(path) = path {
        let _ = writeln!(out, "\n  results: {path}");
    }
    if let Some(timeline) = &r.timeline {
        let _ = writeln!(out, "  timeline: {timeline}");
    }
    out
}

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}ms")
    } else {
        format!("{v:.2}ms")
    }
}

fn secs(v: f64) -> String {
    format!("{v:.0}s")
}

/// A limit or measure: integers plainly, ratios with enough digits.
fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.6}").trim_end_matches('0').to_string()
    }
}
