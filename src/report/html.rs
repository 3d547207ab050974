//! The report page: summary, thresholds, charts, hangs, chaos, errors and
//! settings, with its stylesheet inline so the file stands alone (the
//! frame and the rules every squall page shares are `frame`'s).

use super::format::{self, escape};
use super::frame;
use super::svg::{Chart, Series};
use crate::results::recorded::{RecordedRun, value_text};
use crate::snapshot::Snapshot;
use serde_json::Value;
use std::fmt::Write;

/// Keys of the results file shown in their own sections, not as settings.
const SHOWN_KEYS: &[&str] = &[
    "scenario",
    "started_at",
    "duration_s",
    "complete",
    "passed",
    "exit_code",
    "connections",
    "messages",
    "latency_ms",
    "latency_hdr",
    "hangs",
    "chaos",
    "thresholds",
    "timeline",
    "settings",
];

/// Longer strings at the top level are data (histograms), not settings.
const MAX_SETTING_CHARS: usize = 200;

/// This page's own rules, after `frame`'s.
const STYLE: &str = r#"
.cards{display:grid;grid-template-columns:repeat(4,1fr);gap:12px}
.card{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:10px 14px}
.card h3{margin:0 0 6px;font-size:13px;color:#5b6475;text-transform:uppercase;letter-spacing:.04em}
.card dl{display:grid;grid-template-columns:auto 1fr;gap:2px 12px;margin:0}
.card dd{margin:0;text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#1f8f4e;font-weight:700}.bad{color:#c62828;font-weight:700}
svg .hang{fill:#e53935;fill-opacity:.16}
svg .chaos line{stroke:#8e24aa;stroke-dasharray:4 3;stroke-width:1.2}
svg .chaos text{font-size:11px;fill:#8e24aa}
pre{white-space:pre-wrap;margin:0;font-size:12px}
#settings{table-layout:fixed}#settings th{width:35%;font-weight:500}
#settings td{overflow-wrap:anywhere;font-family:ui-monospace,monospace;font-size:13px}
#settings tr.section th{background:#eef1f5;font-weight:700;text-transform:uppercase;font-size:12px;letter-spacing:.04em}
.empty{color:#5b6475}
"#;

/// The whole page for `run`.
pub fn page(run: &RecordedRun) -> String {
    let r = &run.results;
    let title = format!("squall report: {}", r.scenario);
    let mut html = String::new();
    frame::open(&mut html, &title, STYLE);
    let _ = write!(
        html,
        "<h1>{t}</h1><div class=\"meta\">{verdict} exit code {code} ({meaning}) · started {started} · ran {ran}{partial}</div>",
        t = escape(&title),
        verdict = frame::verdict(r.passed),
        code = r.exit_code,
        meaning = format::exit_code_meaning(r.exit_code),
        started = escape(&r.started_at),
        ran = format::clock(r.duration_s),
        partial = if r.complete {
            ""
        } else {
            " · <b>stopped early: partial results</b>"
        },
    );
    summary(&mut html, run);
    thresholds(&mut html, run);
    charts(&mut html, run);
    hangs(&mut html, run);
    chaos(&mut html, run);
    errors(&mut html, run);
    settings(&mut html, &run.raw);
    frame::close(&mut html);
    html
}

fn card(html: &mut String, title: &str, rows: &[(&str, String)]) {
    let _ = write!(html, "<div class=\"card\"><h3>{}</h3><dl>", escape(title));
    for (name, value) in rows {
        let _ = write!(html, "<dt>{}</dt><dd>{}</dd>", escape(name), escape(value));
    }
    html.push_str("</dl></div>");
}

fn summary(html: &mut String, run: &RecordedRun) {
    let r = &run.results;
    html.push_str("<section class=\"cards\">");
    let l = &r.latency_ms;
    let mut latency = vec![
        ("p50", format::ms(l.p50)),
        ("p90", format::ms(l.p90)),
        ("p99", format::ms(l.p99)),
        ("p99.9", format::ms(l.p999)),
        ("max", format::ms(l.max)),
    ];
    if let Some(lag) = &r.send_lag_ms {
        latency.push(("send lag p99", format::ms(lag.p99)));
    }
    card(html, "latency", &latency);
    let m = &r.messages;
    card(
        html,
        "messages",
        &[
            ("sent", m.sent.to_string()),
            ("expected", m.expected.to_string()),
            ("received", m.received.to_string()),
            (
                "lost",
                format!("{} ({})", m.lost, format::percent(m.loss_ratio)),
            ),
            ("duplicated", m.duplicated.to_string()),
            ("reordered", m.reordered.to_string()),
        ],
    );
    let c = &r.connections;
    let mut conn = vec![
        ("attempted", c.attempted.to_string()),
        ("established", c.established.to_string()),
        ("failed", c.failed.to_string()),
    ];
    conn.push(("handshake p50", format::ms(c.handshake_ms.p50)));
    conn.push(("handshake p99", format::ms(c.handshake_ms.p99)));
    if let Some(tls) = &c.tls_handshake_ms {
        conn.push(("TLS handshake p50", format::ms(tls.p50)));
        conn.push(("TLS handshake p99", format::ms(tls.p99)));
    }
    if let Some(tls) = r.tls.as_ref().filter(|t| t.insecure) {
        conn.push(("TLS", tls.describe()));
    }
    card(html, "connections", &conn);
    let failed = r.thresholds.iter().filter(|t| !t.passed).count();
    card(
        html,
        "verdict",
        &[
            ("hangs", r.hangs.len().to_string()),
            ("chaos actions", r.chaos.len().to_string()),
            (
                "thresholds",
                format!("{} of {} failed", failed, r.thresholds.len()),
            ),
            ("complete", r.complete.to_string()),
        ],
    );
    html.push_str("</section>");
}

fn thresholds(html: &mut String, run: &RecordedRun) {
    html.push_str("<h2>Thresholds</h2>");
    if run.results.thresholds.is_empty() {
        html.push_str("<p class=\"empty\">No thresholds were set.</p>");
        return;
    }
    html.push_str("<table id=\"thresholds\"><thead><tr><th>threshold</th><th>limit</th><th>actual</th><th>result</th></tr></thead><tbody>");
    for t in &run.results.thresholds {
        let (row, verdict) = if t.passed {
            ("", "<span class=\"ok\">pass</span>")
        } else {
            (" class=\"failed\"", "<span class=\"bad\">FAIL</span>")
        };
        let _ = write!(
            html,
            "<tr{row}><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{verdict}</td></tr>",
            escape(&t.name),
            format::value(t.limit),
            format::value(t.actual)
        );
    }
    html.push_str("</tbody></table>");
}

/// A series from one field of every snapshot.
fn series(
    timeline: &[Snapshot],
    name: &'static str,
    color: &'static str,
    pick: impl Fn(&Snapshot) -> Option<f64>,
) -> Series {
    Series {
        name,
        color,
        points: timeline.iter().map(|s| (s.t_s, pick(s))).collect(),
    }
}

fn charts(html: &mut String, run: &RecordedRun) {
    let r = &run.results;
    let tl = &run.timeline;
    let x_max = tl.iter().map(|s| s.t_s).fold(r.duration_s, f64::max);
    let hangs: Vec<(f64, f64)> = r
        .hangs
        .iter()
        .map(|h| (h.started_s, h.ended_s.unwrap_or(x_max)))
        .collect();
    let chaos: Vec<(f64, String)> = r
        .chaos
        .iter()
        .map(|c| (c.at_s, format!("{} ×{}", c.action, c.count)))
        .collect();
    // Percentiles of an interval with no deliveries are not zero: leave a gap.
    let lat = |f: fn(&Snapshot) -> f64| move |s: &Snapshot| (s.latency_ms.count > 0).then(|| f(s));
    let mut charts = vec![
        (
            "Latency percentiles per second",
            "ms",
            false,
            vec![
                series(tl, "p50", "#1e88e5", lat(|s| s.latency_ms.p50)),
                series(tl, "p90", "#43a047", lat(|s| s.latency_ms.p90)),
                series(tl, "p99", "#fb8c00", lat(|s| s.latency_ms.p99)),
                series(tl, "p99.9", "#d81b60", lat(|s| s.latency_ms.p999)),
            ],
        ),
        (
            "Throughput",
            "messages per second",
            false,
            vec![
                series(tl, "sent/s", "#43a047", |s| Some(s.messages.sent_per_s)),
                series(tl, "received/s", "#1e88e5", |s| {
                    Some(s.messages.received_per_s)
                }),
            ],
        ),
        (
            "Connections",
            "sockets",
            true,
            vec![
                series(tl, "target", "#9e9e9e", |s| {
                    Some(s.connections.target as f64)
                }),
                series(tl, "open", "#1e88e5", |s| Some(s.connections.open as f64)),
                series(tl, "failed (total)", "#e53935", |s| {
                    Some(s.connections.failed as f64)
                }),
            ],
        ),
        (
            "Loss as it happens: overdue (owed > 2 s, not arrived), lost, duplicates, reorders",
            "messages",
            true,
            vec![
                series(tl, "overdue", "#b71c1c", |s| {
                    Some(s.messages.overdue as f64)
                }),
                series(tl, "lost", "#e53935", |s| Some(s.messages.lost as f64)),
                series(tl, "duplicated", "#fb8c00", |s| {
                    Some(s.messages.duplicated as f64)
                }),
                series(tl, "reordered", "#8e24aa", |s| {
                    Some(s.messages.reordered as f64)
                }),
            ],
        ),
    ];
    let probed = tl.iter().any(|s| s.watchdog.probe_ms.is_some());
    if probed {
        let mut probes = vec![series(tl, "probe", "#00897b", |s| s.watchdog.probe_ms)];
        for (name, color, pick) in [
            (
                "health",
                "#43a047",
                (|s: &Snapshot| s.watchdog.health_ms) as fn(&Snapshot) -> Option<f64>,
            ),
            ("ping", "#1e88e5", |s: &Snapshot| s.watchdog.ping_ms),
            ("fresh upgrade", "#f4511e", |s: &Snapshot| {
                s.watchdog.accept_ms
            }),
        ] {
            if tl.iter().any(|s| pick(s).is_some()) {
                probes.push(series(tl, name, color, pick));
            }
        }
        charts.push((
            "Probe latency (slow or missing probes while deliveries flow: degraded, not hung)",
            "ms (gaps: no answer)",
            false,
            probes,
        ));
    }
    html.push_str("<h2>Over time</h2>");
    if tl.is_empty() {
        html.push_str("<p class=\"empty\">The timeline is empty: no charts.</p>");
        return;
    }
    html.push_str(
        "<p class=\"meta\">Red bands: the target hung. Dashed purple lines: chaos actions.</p>",
    );
    for (title, unit, whole, series) in charts {
        let chart = Chart {
            title,
            unit,
            series,
            x_max,
            hangs: &hangs,
            chaos: &chaos,
            whole,
        };
        let _ = write!(
            html,
            "<figure><figcaption>{}</figcaption>{}</figure>",
            escape(title),
            chart.to_svg()
        );
    }
    if !probed {
        html.push_str("<p class=\"empty\">No health probe answered (the watchdog was off or the target never answered): no probe chart.</p>");
    }
}

fn hangs(html: &mut String, run: &RecordedRun) {
    html.push_str("<h2>Hangs</h2>");
    if run.results.hangs.is_empty() {
        html.push_str("<p class=\"empty\">The target never hung.</p>");
        return;
    }
    html.push_str("<table id=\"hangs\"><thead><tr><th>started</th><th>detected</th><th>ended</th><th>last chaos</th><th>diagnostics</th></tr></thead><tbody>");
    let at = |s: f64| format!("{s:.1} s");
    for h in &run.results.hangs {
        let ended = h.ended_s.map_or_else(|| "never".to_string(), at);
        let diagnostics = run.diagnostics(h);
        let summary = diagnostics
            .lines()
            .find(|l| l.starts_with("classification:"))
            .unwrap_or("show");
        let _ = write!(
            html,
            "<tr class=\"failed\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><details><summary>{}</summary><pre>{}</pre></details></td></tr>",
            at(h.started_s),
            at(h.detected_s),
            ended,
            escape(h.last_chaos.as_deref().unwrap_or_default()),
            escape(summary),
            escape(&diagnostics)
        );
    }
    html.push_str("</tbody></table>");
}

fn chaos(html: &mut String, run: &RecordedRun) {
    html.push_str("<h2>Chaos</h2>");
    if run.results.chaos.is_empty() {
        html.push_str("<p class=\"empty\">No chaos actions.</p>");
        return;
    }
    html.push_str("<table id=\"chaos\"><thead><tr><th>at</th><th>action</th><th>asked</th><th>done</th><th>failed</th></tr></thead><tbody>");
    for c in &run.results.chaos {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            format::clock(c.at_s),
            escape(&c.action),
            c.count,
            c.done,
            c.failed
        );
    }
    html.push_str("</tbody></table>");
}

fn errors(html: &mut String, run: &RecordedRun) {
    let errors = &run.results.connections.errors;
    if errors.is_empty() {
        return;
    }
    html.push_str("<h2>Connection errors</h2><table id=\"errors\"><thead><tr><th>kind</th><th>count</th></tr></thead><tbody>");
    let mut kinds: Vec<_> = errors.iter().collect();
    kinds.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (kind, n) in kinds {
        let _ = write!(
            html,
            "<tr><td>{}</td><td class=\"num\">{n}</td></tr>",
            escape(kind)
        );
    }
    html.push_str("</tbody></table>");
}

/// The run's other facts (top-level scalars the writer added: the
/// scenario file, versions, the target...) and the scenario's settings as
/// the run used them (`settings`, flattened to dotted names; unset values
/// left out).
fn settings(html: &mut String, raw: &Value) {
    let mut run_rows = Vec::new();
    if let Value::Object(map) = raw {
        for (key, value) in map {
            let scalar = matches!(value, Value::Bool(_) | Value::Number(_))
                || matches!(value, Value::String(s) if s.len() <= MAX_SETTING_CHARS);
            if scalar && !SHOWN_KEYS.contains(&key.as_str()) {
                run_rows.push((key.clone(), value_text(value)));
            }
        }
    }
    let mut scenario_rows = Vec::new();
    if let Some(Value::Object(map)) = raw.get("settings") {
        for (key, value) in map {
            flatten(key, value, &mut scenario_rows);
        }
    }
    html.push_str("<h2>Settings</h2>");
    if run_rows.is_empty() && scenario_rows.is_empty() {
        html.push_str("<p class=\"empty\">The results file records no settings.</p>");
        return;
    }
    html.push_str("<table id=\"settings\"><tbody>");
    for (section, rows) in [("run", run_rows), ("scenario", scenario_rows)] {
        if rows.is_empty() {
            continue;
        }
        let _ = write!(
            html,
            "<tr class=\"section\"><th colspan=\"2\">{section}</th></tr>"
        );
        for (key, value) in rows {
            let _ = write!(
                html,
                "<tr><th>{}</th><td>{}</td></tr>",
                escape(&key),
                escape(&value)
            );
        }
    }
    html.push_str("</tbody></table>");
}

/// Adds `value` under `prefix`, objects key by key; unset values (null,
/// empty lists and tables) are left out.
fn flatten(prefix: &str, value: &Value, rows: &mut Vec<(String, String)>) {
    match value {
        Value::Null => {}
        Value::Array(items) if items.is_empty() => {}
        Value::Object(map) => {
            for (key, inner) in map {
                flatten(&format!("{prefix}.{key}"), inner, rows);
            }
        }
        other => rows.push((prefix.to_string(), value_text(other))),
    }
}
