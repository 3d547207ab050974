//! The once-a-second `Snapshot` of a run: the one stream that every consumer
//! reads (the TUI, the headless progress line, the NDJSON timeline writer,
//! `squall replay`). Consumers never reach into the engine; they read this.
//!
//! One line of the timeline file is one `Snapshot` as JSON. Interval figures
//! cover the second that ended at `t_s`; totals cover the run so far.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Everything a consumer may show about a run at one instant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Scenario name.
    pub scenario: String,
    /// Seconds since the run's origin (the first connection attempt).
    pub t_s: f64,
    /// Planned length of the run in seconds (duration, without drain).
    pub duration_s: f64,
    /// `starting`, `ramp`, `steady`, `drain`, `done`.
    pub phase: String,
    /// The target's URL(s), for display.
    pub target: String,
    /// Socket counts.
    pub connections: ConnectionsSnap,
    /// Message counts and rates.
    pub messages: MessagesSnap,
    /// Latency of deliveries received in this interval.
    pub latency_ms: LatencySnap,
    /// Latency over the run so far.
    pub latency_total_ms: LatencySnap,
    /// Base64 HdrHistogram V2 (deflate) of this interval's latencies in µs.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub latency_hdr: String,
    /// Hang watchdog state.
    pub watchdog: WatchdogSnap,
    /// Chaos actions that started, progressed or finished in this interval
    /// (the same action again, keyed by `at_s` and `action`, updates it).
    #[serde(default)]
    pub chaos: Vec<ChaosEventSnap>,
    /// Every threshold with its value so far.
    #[serde(default)]
    pub thresholds: Vec<ThresholdSnap>,
    /// The exit code the run would end with if it ended now.
    pub exit_code: u8,
}

/// Socket counts at the end of the interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConnectionsSnap {
    /// Sockets open now.
    pub open: u64,
    /// Sockets the load plan wants open now.
    pub target: u64,
    /// Connection attempts so far.
    pub attempted: u64,
    /// Failed attempts so far.
    pub failed: u64,
    /// Failures and abnormal ends by kind (`refused`, `http_401`, `reset`, ...).
    #[serde(default)]
    pub errors: BTreeMap<String, u64>,
    /// Sockets the target ended (not squall) so far, by cause.
    #[serde(default)]
    pub dropped: BTreeMap<String, u64>,
}

/// Message counts: totals so far and rates over the interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessagesSnap {
    /// Published so far.
    pub sent: u64,
    /// Delivered so far.
    pub received: u64,
    /// Published in this interval, per second.
    pub sent_per_s: f64,
    /// Delivered in this interval, per second.
    pub received_per_s: f64,
    /// Known lost so far (gaps already past the reorder window).
    pub lost: u64,
    /// Duplicates so far.
    pub duplicated: u64,
    /// Out-of-order deliveries so far.
    pub reordered: u64,
    /// lost / expected so far.
    pub loss_ratio: f64,
    /// How far the publishers are behind their schedule, in ms (0 when on time).
    pub send_lag_ms: f64,
    /// Deliveries owed for more than 2 s that have not arrived: loss (or
    /// lateness) as it happens.
    #[serde(default)]
    pub overdue: u64,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySnap {
    /// Number of samples.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest sample.
    pub max: f64,
}

/// What the hang watchdog sees, mapped from the chaos watchdog's status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WatchdogSnap {
    /// `ok`, `degraded` (slow or failing probes while the target still
    /// delivers), `hung`, `off`.
    pub state: String,
    /// Latency of the last probe round, in ms; `None` when it did not answer.
    pub probe_ms: Option<f64>,
    /// The last round's health GET, in ms; `None` when it did not answer.
    pub health_ms: Option<f64>,
    /// The last round's ping on the watchdog's socket, in ms.
    pub ping_ms: Option<f64>,
    /// The last round's fresh WebSocket upgrade, in ms.
    pub accept_ms: Option<f64>,
    /// The kind of the current hang, when hung.
    pub hang_kind: Option<String>,
    /// p99 of health probe latency so far, in ms.
    pub health_p99_ms: f64,
    /// How long the current hang has lasted, when hung.
    pub hang_for_s: Option<f64>,
    /// Hangs detected so far.
    pub hangs: u64,
    /// The last chaos action before the current hang, if hung.
    pub last_chaos: Option<String>,
}

impl From<squall_chaos::watchdog::WatchdogStatus> for WatchdogSnap {
    fn from(w: squall_chaos::watchdog::WatchdogStatus) -> WatchdogSnap {
        WatchdogSnap {
            state: w.state,
            probe_ms: w.probe_ms,
            health_ms: w.health_ms,
            ping_ms: w.ping_ms,
            accept_ms: w.accept_ms,
            hang_kind: w.hang_kind.map(|k| k.to_string()),
            health_p99_ms: w.health_p99_ms,
            hang_for_s: w.hang_for_s,
            hangs: w.hangs,
            last_chaos: w.last_chaos,
        }
    }
}

/// A chaos action's progress.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChaosEventSnap {
    /// When it was scheduled, seconds from the origin.
    pub at_s: f64,
    /// The action (`reset`, `halfopen`, ...).
    pub action: String,
    /// How many it was asked to do.
    pub count: u64,
    /// How many it has done.
    pub done: u64,
    /// `running` or `finished`.
    pub state: String,
}

/// A threshold and where the run stands against it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ThresholdSnap {
    /// e.g. `p99_ms`.
    pub name: String,
    /// The limit from the scenario.
    pub limit: f64,
    /// The value so far.
    pub actual: f64,
    /// Whether it holds so far.
    pub passed: bool,
    /// The limit is a floor (`min_received`): it holds when actual >= limit.
    #[serde(default)]
    pub floor: bool,
}
