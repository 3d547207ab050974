//! `squall run --metrics-addr ADDR`: the run's live figures in the
//! Prometheus text format at `/metrics`, so that a soak test can be graphed
//! (Grafana over a cluster's Prometheus) while it runs.
//!
//! Like the TUI and the timeline, this is a consumer of the once-a-second
//! [`Snapshot`] and never reaches into the engine: [`Metrics::observe`] takes
//! each snapshot, and [`Metrics::finish`] the final [`Results`], so that the
//! last scrape says exactly what the results file says. Every name starts
//! with `squall_`; counters only grow during a run (the final figures are the
//! results file's, which include everything the snapshots counted).
//!
//! The HTTP side ([`server`]) runs on its own task and only ever reads the
//! figures under a short lock: a slow scraper cannot slow the run down.

pub mod server;

use crate::results::Results;
use crate::snapshot::Snapshot;
use squall_loadgen::LatencyHistogram;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Upper bounds of the latency histogram's buckets, in seconds: from half a
/// millisecond (a relay on the same host) to a minute (the histograms'
/// ceiling), roughly 1-2.5-5 per decade as Prometheus client libraries do.
pub const LATENCY_BUCKETS_S: [f64; 17] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0,
    30.0, 60.0,
];

/// Every state the hang watchdog reports, so that each is a series (0 or 1).
const HANG_STATES: [&str; 4] = ["ok", "degraded", "hung", "off"];
/// Every phase of a run, likewise.
const PHASES: [&str; 5] = ["starting", "ramp", "steady", "drain", "done"];

/// What `--metrics-addr` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsOptions {
    /// Where to listen.
    pub addr: SocketAddr,
    /// May `addr` be other than loopback (`--allow-remote` or
    /// `--metrics-allow-remote`)?
    pub allow_remote: bool,
    /// How long to keep serving the final figures after the results are
    /// written, so that a scraper sees them (`--metrics-linger`).
    pub linger: Duration,
}

/// The figures the endpoint serves, updated once a second.
#[derive(Debug, Clone, Default)]
struct Figures {
    /// `squall_run_info` labels.
    info: BTreeMap<&'static str, String>,
    phase: String,
    elapsed_s: f64,
    exit_code: u8,
    complete: bool,
    sent: u64,
    received: u64,
    overdue: u64,
    lost: u64,
    duplicated: u64,
    reordered: u64,
    latency: LatencyHistogram,
    open: u64,
    wanted: u64,
    attempted: u64,
    failed: u64,
    errors: BTreeMap<String, u64>,
    dropped: BTreeMap<String, u64>,
    hang_state: String,
    hangs: u64,
    probe_s: Option<f64>,
    /// Chaos steps by (at_s as text, action): (count, done, state).
    chaos: BTreeMap<(String, String), (u64, u64, String)>,
}

/// The live figures of one run, shared with the HTTP task.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// A `std` mutex: every holder only copies numbers in or renders text
    /// out, never awaits while holding it, and the critical sections are
    /// microseconds, so an async lock would only add overhead.
    figures: Arc<Mutex<Figures>>,
}

impl Metrics {
    /// Figures for a run of `scenario` (its shard `shard` when sharded).
    pub fn new(scenario: &str, shard: Option<String>, target: &str) -> Metrics {
        let mut info = BTreeMap::new();
        info.insert("scenario", scenario.to_string());
        info.insert("target", target.to_string());
        info.insert("shard", shard.unwrap_or_default());
        info.insert("version", env!("CARGO_PKG_VERSION").to_string());
        Metrics {
            figures: Arc::new(Mutex::new(Figures {
                info,
                phase: "starting".into(),
                hang_state: "off".into(),
                ..Figures::default()
            })),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Figures) -> T) -> T {
        let mut guard = self.figures.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    /// Takes the latest snapshot: totals so far, and the interval's
    /// latencies added to the run's histogram.
    pub fn observe(&self, s: &Snapshot) {
        // Decoded outside the lock.
        let interval = (!s.latency_hdr.is_empty())
            .then(|| LatencyHistogram::from_base64(&s.latency_hdr).ok())
            .flatten();
        self.with(|f| {
            f.phase = s.phase.clone();
            f.elapsed_s = s.t_s;
            f.exit_code = s.exit_code;
            let m = &s.messages;
            f.sent = f.sent.max(m.sent);
            f.received = f.received.max(m.received);
            f.overdue = m.overdue;
            f.lost = m.lost;
            f.duplicated = f.duplicated.max(m.duplicated);
            f.reordered = f.reordered.max(m.reordered);
            if let Some(h) = &interval {
                f.latency.merge(h);
            }
            let c = &s.connections;
            f.open = c.open;
            f.wanted = c.target;
            f.attempted = f.attempted.max(c.attempted);
            f.failed = f.failed.max(c.failed);
            grow(&mut f.errors, &c.errors);
            grow(&mut f.dropped, &c.dropped);
            f.hang_state = s.watchdog.state.clone();
            f.hangs = f.hangs.max(s.watchdog.hangs);
            f.probe_s = s.watchdog.probe_ms.map(|ms| ms / 1000.0);
            for e in &s.chaos {
                f.chaos.insert(
                    (format!("{}", e.at_s), e.action.clone()),
                    (e.count, e.done, e.state.clone()),
                );
            }
        });
    }

    /// Takes the final results: from now on the endpoint says exactly what
    /// the results file says, and `squall_run_complete` is 1.
    pub fn finish(&self, r: &Results) {
        let latency = LatencyHistogram::from_base64(&r.latency_hdr).ok();
        self.with(|f| {
            f.phase = "done".into();
            f.elapsed_s = r.duration_s;
            f.exit_code = r.exit_code;
            f.complete = true;
            let m = &r.messages;
            f.sent = m.sent;
            f.received = m.received;
            f.overdue = 0;
            f.lost = m.lost;
            f.duplicated = m.duplicated;
            f.reordered = m.reordered;
            if let Some(h) = latency {
                f.latency = h;
            }
            let c = &r.connections;
            f.open = 0;
            f.wanted = 0;
            f.attempted = c.attempted;
            f.failed = c.failed;
            f.errors.clone_from(&c.errors);
            f.dropped.clone_from(&c.dropped);
            f.hangs = r.hangs.len() as u64;
            for step in &r.chaos {
                f.chaos.insert(
                    (format!("{}", step.at_s), step.action.clone()),
                    (step.count, step.done, step.state.clone()),
                );
            }
        });
    }

    /// The Prometheus text exposition (format 0.0.4) of the figures now.
    pub fn render(&self) -> String {
        self.with(|f| render(f))
    }
}

/// Raises every counter of `into` to at least its value in `from`.
fn grow(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (k, v) in from {
        let e = into.entry(k.clone()).or_default();
        *e = (*e).max(*v);
    }
}

/// A label value, escaped as the text format requires.
fn label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// One metric family: its HELP and TYPE lines, then `samples`.
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, String)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

/// A sample without labels.
fn plain(v: impl ToString) -> Vec<(String, String)> {
    vec![(String::new(), v.to_string())]
}

/// Samples of a map, one label each.
fn by(key: &str, map: &BTreeMap<String, u64>) -> Vec<(String, String)> {
    map.iter()
        .map(|(k, v)| (format!("{key}=\"{}\"", label(k)), v.to_string()))
        .collect()
}

/// A float as Prometheus writes it.
fn float(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        format!("{v}")
    }
}

fn render(f: &Figures) -> String {
    let mut out = String::new();
    let info: Vec<String> = f
        .info
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", label(v)))
        .collect();
    family(
        &mut out,
        "squall_run_info",
        "gauge",
        "The run: scenario, shard (I/N, empty when not sharded), target, squall's version.",
        &[(info.join(","), "1".into())],
    );
    let phases: Vec<(String, String)> = PHASES
        .iter()
        .map(|p| {
            (
                format!("phase=\"{p}\""),
                u8::from(f.phase == *p).to_string(),
            )
        })
        .collect();
    family(
        &mut out,
        "squall_run_phase",
        "gauge",
        "1 for the run's phase now.",
        &phases,
    );
    family(
        &mut out,
        "squall_run_elapsed_seconds",
        "gauge",
        "Seconds since the run's origin (its first connection attempt).",
        &plain(float(f.elapsed_s)),
    );
    family(
        &mut out,
        "squall_run_exit_code",
        "gauge",
        "The exit code the run would end with if it ended now (its real one once complete).",
        &plain(f.exit_code),
    );
    family(
        &mut out,
        "squall_run_complete",
        "gauge",
        "1 once the results file is written: the figures are final.",
        &plain(u8::from(f.complete)),
    );
    let counters: [(&str, &str, u64); 4] = [
        (
            "squall_messages_sent_total",
            "Messages published so far.",
            f.sent,
        ),
        (
            "squall_messages_received_total",
            "Stamped deliveries received so far (duplicates included).",
            f.received,
        ),
        (
            "squall_messages_duplicated_total",
            "Deliveries of a message the subscriber already had.",
            f.duplicated,
        ),
        (
            "squall_messages_reordered_total",
            "Deliveries that arrived after a later message of the same publisher.",
            f.reordered,
        ),
    ];
    for (name, help, v) in counters {
        family(&mut out, name, "counter", help, &plain(v));
    }
    family(
        &mut out,
        "squall_messages_overdue",
        "gauge",
        "Owed deliveries scheduled more than 2 s ago that have not arrived: loss as it happens.",
        &plain(f.overdue),
    );
    family(
        &mut out,
        "squall_messages_lost",
        "gauge",
        "Deliveries known lost so far (gaps); once complete, the results' exact loss.",
        &plain(f.lost),
    );
    latency(&mut out, &f.latency);
    family(
        &mut out,
        "squall_connections",
        "gauge",
        "Sockets by state: open now, and wanted open now by the load plan.",
        &[
            ("state=\"open\"".into(), f.open.to_string()),
            ("state=\"wanted\"".into(), f.wanted.to_string()),
        ],
    );
    family(
        &mut out,
        "squall_connections_attempted_total",
        "counter",
        "Connection attempts so far.",
        &plain(f.attempted),
    );
    family(
        &mut out,
        "squall_connections_failed_total",
        "counter",
        "Connection attempts that failed so far.",
        &plain(f.failed),
    );
    family(
        &mut out,
        "squall_connection_errors_total",
        "counter",
        "Failed attempts and abnormal ends by kind (refused, timeout, http_401, reset, ...).",
        &by("kind", &f.errors),
    );
    family(
        &mut out,
        "squall_connections_dropped_total",
        "counter",
        "Sockets the target ended on its own, by cause (close_<code>, reset, eof).",
        &by("cause", &f.dropped),
    );
    let states: Vec<(String, String)> = HANG_STATES
        .iter()
        .map(|s| {
            (
                format!("state=\"{s}\""),
                u8::from(f.hang_state == *s).to_string(),
            )
        })
        .collect();
    family(
        &mut out,
        "squall_hang_state",
        "gauge",
        "1 for the hang watchdog's state now (ok, degraded, hung, off).",
        &states,
    );
    family(
        &mut out,
        "squall_hangs_total",
        "counter",
        "Hangs the watchdog detected so far.",
        &plain(f.hangs),
    );
    if let Some(p) = f.probe_s {
        family(
            &mut out,
            "squall_probe_seconds",
            "gauge",
            "Latency of the watchdog's last probe round.",
            &plain(float(p)),
        );
    }
    let mut done = Vec::new();
    let mut planned = Vec::new();
    let mut running = Vec::new();
    for ((at, action), (count, n, state)) in &f.chaos {
        let labels = format!("action=\"{}\",at_s=\"{}\"", label(action), label(at));
        done.push((labels.clone(), n.to_string()));
        planned.push((labels.clone(), count.to_string()));
        running.push((
            format!("{labels},state=\"{}\"", label(state)),
            "1".to_string(),
        ));
    }
    family(
        &mut out,
        "squall_chaos_done_total",
        "counter",
        "What each chaos step did so far (sockets reset, checks made, ...), by action and start.",
        &done,
    );
    family(
        &mut out,
        "squall_chaos_planned",
        "gauge",
        "How many each chaos step was asked to do.",
        &planned,
    );
    family(
        &mut out,
        "squall_chaos_step_state",
        "gauge",
        "1 for each chaos step's state (running, finished, failed).",
        &running,
    );
    out
}

/// The latency histogram family, cumulative as Prometheus wants it. Counts
/// come from the run's HdrHistogram (3 significant digits: a sample within
/// 0.1% of a bound may land in the next bucket); `_count` is exact, `_sum`
/// is the histogram's mean times its count.
fn latency(out: &mut String, h: &LatencyHistogram) {
    let inner = h.inner();
    let mut samples: Vec<(String, String)> = LATENCY_BUCKETS_S
        .iter()
        .map(|&le| {
            let us = (le * 1e6) as u64;
            let n = if h.count() == 0 {
                0
            } else {
                inner.count_between(0, us)
            };
            (format!("le=\"{}\"", float(le)), n.to_string())
        })
        .collect();
    samples.push(("le=\"+Inf\"".into(), h.count().to_string()));
    let _ = writeln!(
        out,
        "# HELP squall_latency_seconds One-way latency, scheduled send to delivery (coordinated omission corrected)."
    );
    let _ = writeln!(out, "# TYPE squall_latency_seconds histogram");
    for (labels, v) in samples {
        let _ = writeln!(out, "squall_latency_seconds_bucket{{{labels}}} {v}");
    }
    let sum = h.mean_ms() / 1000.0 * h.count() as f64;
    let _ = writeln!(out, "squall_latency_seconds_sum {}", float(sum));
    let _ = writeln!(out, "squall_latency_seconds_count {}", h.count());
}

/// The address a scraper reaches, for messages.
pub fn url(addr: SocketAddr) -> String {
    format!("http://{addr}/metrics")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{ChaosEventSnap, ConnectionsSnap, MessagesSnap, WatchdogSnap};

    fn snap(sent: u64, latencies_us: &[u64]) -> Snapshot {
        let mut h = LatencyHistogram::new();
        for &us in latencies_us {
            h.record_us(us);
        }
        Snapshot {
            phase: "steady".into(),
            t_s: 3.0,
            messages: MessagesSnap {
                sent,
                received: sent * 2,
                overdue: 1,
                ..Default::default()
            },
            connections: ConnectionsSnap {
                open: 10,
                target: 12,
                attempted: 12,
                failed: 2,
                errors: [("http_401".to_string(), 2)].into(),
                ..Default::default()
            },
            watchdog: WatchdogSnap {
                state: "degraded".into(),
                ..Default::default()
            },
            chaos: vec![ChaosEventSnap {
                at_s: 2.0,
                action: "reset".into(),
                count: 5,
                done: 3,
                state: "running".into(),
            }],
            latency_hdr: h.to_base64(),
            ..Default::default()
        }
    }

    fn value(text: &str, series: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
            .parse()
            .unwrap()
    }

    #[test]
    fn snapshots_become_prometheus_families_prefixed_squall() {
        let m = Metrics::new("smoke", Some("2/3".into()), "ws://127.0.0.1:1/ws");
        m.observe(&snap(100, &[800, 3_000, 40_000]));
        m.observe(&snap(150, &[2_000_000]));
        let text = m.render();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("squall_"), "{line}");
        }
        assert_eq!(value(&text, "squall_messages_sent_total"), 150.0);
        assert_eq!(value(&text, "squall_messages_received_total"), 300.0);
        assert_eq!(value(&text, "squall_messages_overdue"), 1.0);
        assert_eq!(value(&text, "squall_latency_seconds_count"), 4.0);
        assert_eq!(
            value(&text, "squall_latency_seconds_bucket{le=\"0.001\"}"),
            1.0
        );
        assert_eq!(
            value(&text, "squall_latency_seconds_bucket{le=\"0.05\"}"),
            3.0
        );
        assert_eq!(
            value(&text, "squall_latency_seconds_bucket{le=\"+Inf\"}"),
            4.0
        );
        assert_eq!(value(&text, "squall_connections{state=\"open\"}"), 10.0);
        assert_eq!(
            value(&text, "squall_connection_errors_total{kind=\"http_401\"}"),
            2.0
        );
        assert_eq!(value(&text, "squall_hang_state{state=\"degraded\"}"), 1.0);
        assert_eq!(value(&text, "squall_hang_state{state=\"ok\"}"), 0.0);
        assert_eq!(
            value(
                &text,
                "squall_chaos_done_total{action=\"reset\",at_s=\"2\"}"
            ),
            3.0
        );
        assert!(text.contains("shard=\"2/3\""), "{text}");
        assert_eq!(value(&text, "squall_run_complete"), 0.0);
        // Every family has its HELP and TYPE, once.
        let types = text.lines().filter(|l| l.starts_with("# TYPE")).count();
        let helps = text.lines().filter(|l| l.starts_with("# HELP")).count();
        assert_eq!(types, helps);
    }

    #[test]
    fn the_final_figures_are_the_results_files() {
        let m = Metrics::new("smoke", None, "t");
        m.observe(&snap(100, &[800]));
        let mut h = LatencyHistogram::new();
        h.record_us(900);
        h.record_us(1_100);
        let r = Results {
            duration_s: 9.0,
            exit_code: 3,
            latency_hdr: h.to_base64(),
            messages: crate::results::Messages {
                sent: 120,
                received: 240,
                lost: 4,
                ..Default::default()
            },
            ..Default::default()
        };
        m.finish(&r);
        let text = m.render();
        assert_eq!(value(&text, "squall_messages_sent_total"), 120.0);
        assert_eq!(value(&text, "squall_messages_lost"), 4.0);
        assert_eq!(value(&text, "squall_latency_seconds_count"), 2.0);
        assert_eq!(value(&text, "squall_run_complete"), 1.0);
        assert_eq!(value(&text, "squall_run_exit_code"), 3.0);
        assert_eq!(value(&text, "squall_run_phase{phase=\"done\"}"), 1.0);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
