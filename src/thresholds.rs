//! Thresholds: the scenario's pass/fail gates, evaluated live (each second,
//! for the snapshot) and at the end (for the results and the exit code).
//! A breach makes the exit code 3.

use crate::scenario::raw::RawThresholds;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use squall_loadgen::histogram::{LatencyHistogram, MAX_US};
use std::collections::VecDeque;

/// A threshold and how the run fared against it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ThresholdResult {
    /// e.g. `p99_ms`, `p99_ms_window(10s)`.
    pub name: String,
    /// The limit from the scenario.
    pub limit: f64,
    /// The value measured.
    pub actual: f64,
    /// `actual <= limit` (`actual >= limit` for a floor).
    pub passed: bool,
    /// The limit is a floor (`min_received`), not a ceiling.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub floor: bool,
}

/// The measured values thresholds compare against.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Measured {
    /// p50 latency over the run, ms.
    pub p50_ms: f64,
    /// p99 latency over the run, ms.
    pub p99_ms: f64,
    /// p99.9 latency over the run, ms.
    pub p999_ms: f64,
    /// lost / expected.
    pub loss_ratio: f64,
    /// Duplicated deliveries.
    pub duplicated: u64,
    /// Hangs detected.
    pub hangs: u64,
    /// failed / attempted connections.
    pub connect_error_ratio: f64,
    /// The largest p99 of any window so far, ms.
    pub worst_window_p99_ms: f64,
    /// Sockets the target ended on its own.
    pub target_disconnects: u64,
    /// Stamped deliveries received.
    pub received: u64,
    /// Publishes the relay refused (Nostr `OK false`).
    pub rejected: u64,
}

/// What a threshold limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// p50 latency over the run, ms.
    P50Ms,
    /// p99 latency over the run, ms.
    P99Ms,
    /// p99.9 latency over the run, ms.
    P999Ms,
    /// lost / expected.
    LossRatio,
    /// Duplicated deliveries.
    Duplicated,
    /// Hangs detected.
    Hangs,
    /// failed / attempted connections.
    ConnectErrorRatio,
    /// Sockets the target ended on its own.
    TargetDisconnects,
    /// Deliveries received (a floor, not a ceiling).
    MinReceived,
    /// Publishes the relay refused (Nostr `OK false`).
    Rejected,
    /// The largest p99 of any window of this many whole seconds, ms.
    P99MsWindow {
        /// The window's length in seconds (at least 1).
        seconds: u64,
    },
}

impl Metric {
    /// The name in results, JUnit and the TUI (`p99_ms`, `p99_ms_window(10s)`).
    pub fn name(self) -> String {
        match self {
            Metric::P99MsWindow { seconds } => format!("p99_ms_window({seconds}s)"),
            other => other.key().to_string(),
        }
    }

    /// The key under `[thresholds]` in a scenario file.
    pub fn key(self) -> &'static str {
        match self {
            Metric::P50Ms => "p50_ms",
            Metric::P99Ms => "p99_ms",
            Metric::P999Ms => "p999_ms",
            Metric::LossRatio => "loss_ratio",
            Metric::Duplicated => "duplicated",
            Metric::Hangs => "hangs",
            Metric::ConnectErrorRatio => "connect_error_ratio",
            Metric::TargetDisconnects => "target_disconnects",
            Metric::MinReceived => "min_received",
            Metric::Rejected => "rejected",
            Metric::P99MsWindow { .. } => "p99_ms_window",
        }
    }

    /// The measured value this metric reads.
    fn actual(self, m: &Measured) -> f64 {
        match self {
            Metric::P50Ms => m.p50_ms,
            Metric::P99Ms => m.p99_ms,
            Metric::P999Ms => m.p999_ms,
            Metric::LossRatio => m.loss_ratio,
            Metric::Duplicated => m.duplicated as f64,
            Metric::Hangs => m.hangs as f64,
            Metric::ConnectErrorRatio => m.connect_error_ratio,
            Metric::TargetDisconnects => m.target_disconnects as f64,
            Metric::MinReceived => m.received as f64,
            Metric::Rejected => m.rejected as f64,
            Metric::P99MsWindow { .. } => m.worst_window_p99_ms,
        }
    }

    /// Whether the limit is a floor (`actual >= limit`) rather than a ceiling.
    pub fn is_floor(self) -> bool {
        matches!(self, Metric::MinReceived)
    }
}

/// One gate: a metric and the largest value it may take.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    /// What is limited.
    pub metric: Metric,
    /// The largest value that passes (inclusive).
    pub limit: f64,
}

/// The scenario's thresholds, validated, in a fixed order; the defaults
/// `target_disconnects = 0` and `min_received = 1` are always among them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Thresholds(Vec<Threshold>);

/// Why a `[thresholds]` value was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ThresholdError {
    /// A limit that is negative, NaN or infinite.
    #[error("{0} is not a number >= 0")]
    NotANumber(f64),
    /// A ratio over 1.
    #[error("a ratio is at most 1")]
    RatioOverOne,
    /// A window that is not whole seconds, or shorter than one.
    #[error("must be whole seconds, at least 1s")]
    Window,
}

impl Thresholds {
    /// Validates the scenario's `[thresholds]`; an error comes with the key
    /// it is about (`thresholds.p99_ms`, `thresholds.p99_ms_window.window`).
    pub fn from_raw(t: &RawThresholds) -> Result<Thresholds, (String, ThresholdError)> {
        let mut out = Vec::new();
        let limits = [
            (Metric::P50Ms, t.p50_ms),
            (Metric::P99Ms, t.p99_ms),
            (Metric::P999Ms, t.p999_ms),
            (Metric::LossRatio, t.loss_ratio),
            (Metric::Duplicated, t.duplicated.map(|d| d as f64)),
            (Metric::Hangs, t.hangs.map(|h| h as f64)),
            (Metric::ConnectErrorRatio, t.connect_error_ratio),
            (Metric::Rejected, t.rejected.map(|r| r as f64)),
        ];
        for (metric, limit) in limits {
            let Some(limit) = limit else { continue };
            let key = || format!("thresholds.{}", metric.key());
            if !(limit.is_finite() && limit >= 0.0) {
                return Err((key(), ThresholdError::NotANumber(limit)));
            }
            if matches!(metric, Metric::LossRatio | Metric::ConnectErrorRatio) && limit > 1.0 {
                return Err((key(), ThresholdError::RatioOverOne));
            }
            out.push(Threshold { metric, limit });
        }
        if let Some(w) = &t.p99_ms_window {
            if !(w.limit.is_finite() && w.limit >= 0.0) {
                return Err((
                    "thresholds.p99_ms_window.limit".into(),
                    ThresholdError::NotANumber(w.limit),
                ));
            }
            if w.window.0 < std::time::Duration::from_secs(1) || w.window.0.subsec_nanos() != 0 {
                return Err((
                    "thresholds.p99_ms_window.window".into(),
                    ThresholdError::Window,
                ));
            }
            out.push(Threshold {
                metric: Metric::P99MsWindow {
                    seconds: w.window.0.as_secs(),
                },
                limit: w.limit,
            });
        }
        // The defaults come last, after what the scenario set.
        out.push(Threshold {
            metric: Metric::TargetDisconnects,
            limit: t.target_disconnects.unwrap_or(0) as f64,
        });
        out.push(Threshold {
            metric: Metric::MinReceived,
            limit: t.min_received.unwrap_or(1) as f64,
        });
        Ok(Thresholds(out))
    }

    /// The windowed p99's window in seconds, when one is set.
    pub fn window_seconds(&self) -> Option<u64> {
        self.0.iter().find_map(|t| match t.metric {
            Metric::P99MsWindow { seconds } => Some(seconds),
            _ => None,
        })
    }

    /// How many thresholds are set.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every threshold against `m`, in order.
    pub fn evaluate(&self, m: &Measured) -> Vec<ThresholdResult> {
        self.0
            .iter()
            .map(|t| {
                let actual = t.metric.actual(m);
                let floor = t.metric.is_floor();
                ThresholdResult {
                    name: t.metric.name(),
                    limit: t.limit,
                    actual,
                    passed: if floor {
                        actual >= t.limit
                    } else {
                        actual <= t.limit
                    },
                    floor,
                }
            })
            .collect()
    }
}

/// Whether every threshold holds.
pub fn all_passed(results: &[ThresholdResult]) -> bool {
    results.iter().all(|r| r.passed)
}

/// The p99 of every sliding window of whole seconds, fed one interval
/// histogram per second; keeps the worst. Holds the window's sum and each
/// second's recorded buckets (sparse), not a full histogram per second, so a
/// 5-minute window over a soak stays small.
#[derive(Debug, Clone)]
pub struct WindowedP99 {
    seconds: usize,
    recent: VecDeque<Vec<(u64, u64)>>,
    window: Histogram<u64>,
    worst_ms: f64,
}

impl WindowedP99 {
    /// Windows of `seconds` (at least 1).
    pub fn new(seconds: u64) -> WindowedP99 {
        let seconds = usize::try_from(seconds.max(1)).unwrap_or(usize::MAX);
        WindowedP99 {
            seconds,
            recent: VecDeque::new(),
            window: empty(),
            worst_ms: 0.0,
        }
    }

    /// Adds one second's latencies. A window counts once it holds samples;
    /// the first windows of a run are shorter than `seconds` (the run's own
    /// start), so a slow first second is not forgiven.
    pub fn push(&mut self, interval: &LatencyHistogram) {
        if self.recent.len() == self.seconds
            && let Some(old) = self.recent.pop_front()
        {
            let mut gone = empty();
            for (value, count) in old {
                gone.saturating_record_n(value, count);
            }
            self.window
                .subtract(&gone)
                .expect("the window holds every second it subtracts");
        }
        let buckets = interval
            .inner()
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect();
        self.recent.push_back(buckets);
        self.window
            .add(interval.inner())
            .expect("histograms of the same bounds always merge");
        if !self.window.is_empty() {
            let p99_ms = self.window.value_at_percentile(99.0) as f64 / 1000.0;
            self.worst_ms = self.worst_ms.max(p99_ms);
        }
    }

    /// The worst window p99 so far, in ms.
    pub fn worst_ms(&self) -> f64 {
        self.worst_ms
    }
}

/// A histogram with the engine's bounds (1 µs .. 60 s, 3 significant digits).
fn empty() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, 3).expect("static bounds are valid")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::duration::Dur;
    use crate::scenario::raw::RawWindow;

    #[test]
    fn only_set_thresholds_are_checked_and_limits_are_inclusive() {
        let t = RawThresholds {
            p99_ms: Some(50.0),
            loss_ratio: Some(0.0),
            hangs: Some(0),
            ..Default::default()
        };
        let m = Measured {
            p99_ms: 50.0,
            loss_ratio: 0.01,
            ..Default::default()
        };
        let r = Thresholds::from_raw(&t).unwrap().evaluate(&m);
        let names: Vec<&str> = r.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "p99_ms",
                "loss_ratio",
                "hangs",
                "target_disconnects",
                "min_received"
            ]
        );
        assert!(r[0].passed && !r[1].passed && r[2].passed && r[3].passed);
        assert!(!r[4].passed, "nothing received: the default floor breaks");
        assert!(!all_passed(&r));
    }

    #[test]
    fn a_slow_window_breaks_the_windowed_threshold_even_when_the_run_p99_holds() {
        let mut w = WindowedP99::new(2);
        let fast = hist(&[1_000; 1000]);
        let slow = hist(&[100_000; 30]);
        for _ in 0..5 {
            w.push(&fast);
        }
        w.push(&slow);
        for _ in 0..20 {
            w.push(&fast);
        }
        // 30 slow of 2,030 in the worst window: its p99 is the slow value.
        assert!((w.worst_ms() - 100.0).abs() < 0.2, "{}", w.worst_ms());
        let t = RawThresholds {
            p99_ms_window: Some(RawWindow {
                limit: 50.0,
                window: Dur::secs(2),
            }),
            ..Default::default()
        };
        let r = Thresholds::from_raw(&t).unwrap().evaluate(&Measured {
            worst_window_p99_ms: w.worst_ms(),
            ..Default::default()
        });
        let window = r.iter().find(|r| r.name == "p99_ms_window(2s)").unwrap();
        assert!(!window.passed);
    }

    fn hist(values_us: &[u64]) -> LatencyHistogram {
        let mut h = LatencyHistogram::new();
        for &v in values_us {
            h.record_us(v);
        }
        h
    }
}
