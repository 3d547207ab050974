//! Thresholds: the scenario's pass/fail gates, evaluated live (each second,
//! for the snapshot) and at the end (for the results and the exit code).
//! A breach makes the exit code 3.

use crate::scenario::raw::RawThresholds;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use squall_loadgen::histogram::{LatencyHistogram, MAX_US};
use std::collections::VecDeque;

/// A threshold and how the run fared against it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdResult {
    /// e.g. `p99_ms`, `p99_ms_window(10s)`.
    pub name: String,
    /// The limit from the scenario.
    pub limit: f64,
    /// The value measured.
    pub actual: f64,
    /// `actual <= limit`.
    pub passed: bool,
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
}

/// Every threshold the scenario sets, against `m`, in a fixed order.
pub fn evaluate(t: &RawThresholds, m: &Measured) -> Vec<ThresholdResult> {
    let mut out = Vec::new();
    let mut check = |name: String, limit: Option<f64>, actual: f64| {
        if let Some(limit) = limit {
            out.push(ThresholdResult {
                name,
                limit,
                actual,
                passed: actual <= limit,
            });
        }
    };
    check("p50_ms".into(), t.p50_ms, m.p50_ms);
    check("p99_ms".into(), t.p99_ms, m.p99_ms);
    check("p999_ms".into(), t.p999_ms, m.p999_ms);
    check("loss_ratio".into(), t.loss_ratio, m.loss_ratio);
    check(
        "duplicated".into(),
        t.duplicated.map(|d| d as f64),
        m.duplicated as f64,
    );
    check("hangs".into(), t.hangs.map(|h| h as f64), m.hangs as f64);
    check(
        "connect_error_ratio".into(),
        t.connect_error_ratio,
        m.connect_error_ratio,
    );
    if let Some(w) = &t.p99_ms_window {
        check(
            format!("p99_ms_window({})", w.window),
            Some(w.limit),
            m.worst_window_p99_ms,
        );
    }
    out
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
        let r = evaluate(&t, &m);
        let names: Vec<&str> = r.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["p99_ms", "loss_ratio", "hangs"]);
        assert!(r[0].passed && !r[1].passed && r[2].passed);
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
        let r = evaluate(
            &t,
            &Measured {
                worst_window_p99_ms: w.worst_ms(),
                ..Default::default()
            },
        );
        assert_eq!(r[0].name, "p99_ms_window(2s)");
        assert!(!r[0].passed);
    }

    fn hist(values_us: &[u64]) -> LatencyHistogram {
        let mut h = LatencyHistogram::new();
        for &v in values_us {
            h.record_us(v);
        }
        h
    }
}
