//! The results file of DESIGN.md: what a run measured, how it ended, and the
//! engine's exact report so that runs and shards merge exactly later.

pub mod file;
pub mod summary;
pub mod time;

use crate::exit::Exit;
use crate::scenario::raw::RawThresholds;
use crate::thresholds::{self, Measured, ThresholdResult};
use serde::{Deserialize, Serialize};
use squall_chaos::report::StepReport;
use squall_chaos::watchdog::HangRecord;
use squall_loadgen::histogram::LatencyHistogram;
use squall_loadgen::report::LoadReport;
use std::collections::BTreeMap;

/// One results file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// The scenario's name.
    pub scenario: String,
    /// The scenario file.
    pub file: String,
    /// squall's version.
    pub squall_version: String,
    /// Wall-clock start of the run, RFC 3339 UTC.
    pub started_at: String,
    /// Seconds from the origin to the end of the run (drain included).
    pub duration_s: f64,
    /// Seconds of publishing the scenario planned (drain excluded).
    pub planned_s: f64,
    /// False when the run was stopped early (Ctrl-C) or a shard is missing.
    pub complete: bool,
    /// True when the exit code is 0.
    pub passed: bool,
    /// The exit code of the run (DESIGN.md).
    pub exit_code: u8,
    /// The target's URL(s).
    pub target: String,
    /// Shards (processes or `--shard` runs) merged into these figures.
    pub shards: u32,
    /// Connection counts.
    pub connections: Connections,
    /// Message counts and loss.
    pub messages: Messages,
    /// One-way latency, publish (scheduled) to delivery, in ms.
    pub latency_ms: Latency,
    /// Base64 of the HdrHistogram V2 (deflate) of latencies in µs.
    pub latency_hdr: String,
    /// How late messages left against their schedule, in ms.
    pub send_lag_ms: Latency,
    /// Hangs the watchdog detected.
    pub hangs: Vec<HangRecord>,
    /// Chaos steps and what they did.
    pub chaos: Vec<StepReport>,
    /// Every threshold with its outcome.
    pub thresholds: Vec<ThresholdResult>,
    /// Path of the NDJSON timeline (one snapshot per second), if written.
    pub timeline: Option<String>,
    /// The scenario as it ran (defaults filled in, overrides applied).
    pub settings: serde_json::Value,
    /// The engine's raw report: what `squall merge` adds up exactly.
    pub load_report: LoadReport,
}

/// Connection counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Connections {
    /// Connection attempts.
    pub attempted: u64,
    /// Upgrades completed.
    pub established: u64,
    /// Attempts that failed.
    pub failed: u64,
    /// failed / attempted.
    pub error_ratio: f64,
    /// Failures and abnormal ends by kind.
    pub errors: BTreeMap<String, u64>,
    /// Handshake latency (TCP connect to upgrade done), in ms.
    pub handshake_ms: Handshake,
}

/// Handshake latency percentiles in ms.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Handshake {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// Message counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Messages {
    /// Messages the schedule held.
    pub scheduled: u64,
    /// Messages published.
    pub sent: u64,
    /// Deliveries a correct relay had to make (see DESIGN.md, loss).
    pub expected: u64,
    /// Every stamped delivery, duplicates included.
    pub received: u64,
    /// Distinct expected deliveries that arrived (`expected - lost`).
    pub delivered: u64,
    /// Expected deliveries that never arrived.
    pub lost: u64,
    /// Deliveries of a message the subscriber already had.
    pub duplicated: u64,
    /// Deliveries that arrived after a later message of the same publisher.
    pub reordered: u64,
    /// lost / expected.
    pub loss_ratio: f64,
    /// Deliveries per second over the publishing period.
    pub throughput_per_s: f64,
    /// Deliveries too late to tell apart from duplicates (counted distinct).
    pub late: u64,
    /// Deliveries from a publisher the subscriber did not subscribe to.
    pub unexpected: u64,
    /// Latencies over 60 s, recorded as 60 s.
    pub clamped: u64,
    /// Subscribers left out of loss accounting (not connected throughout).
    pub subscribers_excluded: u64,
    /// Publishers left out of loss accounting (see the engine's `Loss`).
    pub publishers_excluded: u64,
    /// Publishers that never heard their own messages back from a target
    /// that does not echo to the sender (not counted as loss).
    #[serde(default)]
    pub echo_absent: u64,
}

/// Latency summary in ms.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Samples.
    pub count: u64,
    /// Smallest.
    pub min: f64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

impl Latency {
    /// Summarizes a histogram.
    pub fn of(h: &LatencyHistogram) -> Latency {
        Latency {
            count: h.count(),
            min: h.min_ms(),
            mean: h.mean_ms(),
            p50: h.percentile_ms(50.0),
            p90: h.percentile_ms(90.0),
            p99: h.percentile_ms(99.0),
            p999: h.percentile_ms(99.9),
            max: h.max_ms(),
        }
    }
}

/// The figures of a report, before thresholds and exit code are known.
pub fn figures(report: &LoadReport, planned_s: f64) -> (Connections, Messages) {
    let c = &report.connections;
    let connections = Connections {
        attempted: c.attempted,
        established: c.established,
        failed: c.failed,
        error_ratio: ratio(c.failed, c.attempted),
        errors: c.errors.clone(),
        handshake_ms: Handshake {
            p50: c.handshake.percentile_ms(50.0),
            p99: c.handshake.percentile_ms(99.0),
        },
    };
    let m = &report.messages;
    let loss = report.loss();
    let publishing_s = planned_s.min(report.duration_s);
    let messages = Messages {
        scheduled: m.scheduled,
        sent: m.sent,
        expected: loss.expected,
        received: m.received,
        delivered: loss.received,
        lost: loss.lost,
        duplicated: m.duplicated,
        reordered: m.reordered,
        loss_ratio: loss.loss_ratio,
        throughput_per_s: if publishing_s > 0.0 {
            m.received as f64 / publishing_s
        } else {
            0.0
        },
        late: m.late,
        unexpected: m.unexpected,
        clamped: m.clamped,
        subscribers_excluded: m.subscribers_excluded,
        publishers_excluded: loss.publishers_excluded,
        echo_absent: m.echo_absent,
    };
    (connections, messages)
}

/// `num / den`, 0 when `den` is 0.
pub fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// What a results file is made of, before thresholds and the exit code.
#[derive(Debug, Clone)]
pub struct Parts {
    /// Scenario name.
    pub scenario: String,
    /// Scenario file.
    pub file: String,
    /// RFC 3339 start.
    pub started_at: String,
    /// Planned publishing time in seconds.
    pub planned_s: f64,
    /// Target URL(s).
    pub target: String,
    /// The scenario as it ran.
    pub settings: serde_json::Value,
    /// The scenario's thresholds.
    pub thresholds: RawThresholds,
    /// The engine's (merged) report.
    pub report: LoadReport,
    /// Hangs detected.
    pub hangs: Vec<HangRecord>,
    /// Chaos steps.
    pub chaos: Vec<StepReport>,
    /// The timeline's path.
    pub timeline: Option<String>,
    /// The worst windowed p99, when the scenario sets one.
    pub worst_window_p99_ms: f64,
    /// The harness failed (the engine did not report): exit code 1.
    pub harness_failed: bool,
}

impl Results {
    /// Evaluates the thresholds and decides the exit code: 4 if the target
    /// hung, else 3 if a threshold broke, else 1 if the run did not complete
    /// (Ctrl-C, a missing shard) or the harness failed, else 0.
    pub fn build(p: Parts) -> Results {
        let (connections, messages) = figures(&p.report, p.planned_s);
        let latency_ms = Latency::of(&p.report.latency);
        let measured = Measured {
            p50_ms: latency_ms.p50,
            p99_ms: latency_ms.p99,
            p999_ms: latency_ms.p999,
            loss_ratio: messages.loss_ratio,
            duplicated: messages.duplicated,
            hangs: p.hangs.len() as u64,
            connect_error_ratio: connections.error_ratio,
            worst_window_p99_ms: p.worst_window_p99_ms,
        };
        let thresholds = thresholds::evaluate(&p.thresholds, &measured);
        let complete = p.report.complete && !p.harness_failed;
        let exit = match Exit::of_run(!p.hangs.is_empty(), !thresholds::all_passed(&thresholds)) {
            Exit::Passed if !complete || p.harness_failed => Exit::HarnessFailed,
            exit => exit,
        };
        Results {
            scenario: p.scenario,
            file: p.file,
            squall_version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: p.started_at,
            duration_s: p.report.duration_s,
            planned_s: p.planned_s,
            complete,
            passed: exit == Exit::Passed,
            exit_code: exit.code(),
            target: p.target,
            shards: p.report.shards,
            connections,
            messages,
            latency_ms,
            latency_hdr: p.report.latency.to_base64(),
            send_lag_ms: Latency::of(&p.report.send_lag),
            hangs: p.hangs,
            chaos: p.chaos,
            thresholds,
            timeline: p.timeline,
            settings: p.settings,
            load_report: p.report,
        }
    }

    /// The exit code as an [`Exit`].
    pub fn exit(&self) -> Exit {
        match self.exit_code {
            0 => Exit::Passed,
            2 => Exit::Usage,
            3 => Exit::Breached,
            4 => Exit::Hung,
            _ => Exit::HarnessFailed,
        }
    }
}
