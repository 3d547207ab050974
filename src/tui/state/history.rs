//! Bounded histories of a run: the latency chart over the whole run (halved
//! in resolution whenever it fills, keeping the worst value of each merged
//! pair so a spike never disappears) and the last few minutes of throughput
//! for the sparklines. A soak runs for hours; memory stays flat.

use std::collections::VecDeque;

/// Most points the latency chart keeps; far more than a terminal is wide.
const CHART_POINTS: usize = 2048;

/// How many seconds of throughput the sparklines remember.
const RECENT_SECONDS: usize = 300;

/// p50 and p99 per interval over the whole run, at a resolution that halves
/// whenever `CHART_POINTS` fill up.
#[derive(Debug, Clone, Default)]
pub struct LatencyHistory {
    p50: Vec<(f64, f64)>,
    p99: Vec<(f64, f64)>,
    /// Samples merged into one point.
    stride: usize,
    /// The point being merged, with how many samples it holds.
    pending: Option<(f64, f64, f64, usize)>,
}

impl LatencyHistory {
    /// Adds one interval's p50 and p99 (ms) ending at `t_s`.
    pub fn push(&mut self, t_s: f64, p50: f64, p99: f64) {
        let stride = self.stride.max(1);
        let (p50_max, p99_max, samples) = match self.pending.take() {
            Some((_, a, b, n)) => (a.max(p50), b.max(p99), n + 1),
            None => (p50, p99, 1),
        };
        if samples < stride {
            self.pending = Some((t_s, p50_max, p99_max, samples));
            return;
        }
        self.p50.push((t_s, p50_max));
        self.p99.push((t_s, p99_max));
        if self.p50.len() >= CHART_POINTS {
            halve(&mut self.p50);
            halve(&mut self.p99);
            self.stride = stride * 2;
        }
    }

    /// p50 points `(t_s, ms)`, oldest first.
    pub fn p50(&self) -> &[(f64, f64)] {
        &self.p50
    }

    /// p99 points `(t_s, ms)`, oldest first.
    pub fn p99(&self) -> &[(f64, f64)] {
        &self.p99
    }
}

/// Merges neighbouring points, keeping the later time and the larger value.
fn halve(points: &mut Vec<(f64, f64)>) {
    *points = points
        .chunks(2)
        .map(|pair| {
            let last = pair[pair.len() - 1];
            (last.0, pair.iter().map(|p| p.1).fold(f64::MIN, f64::max))
        })
        .collect();
}

/// The most recent per-second values of one rate, newest last.
#[derive(Debug, Clone, Default)]
pub struct Recent {
    values: VecDeque<u64>,
}

impl Recent {
    /// Adds the newest value, forgetting the oldest beyond `RECENT_SECONDS`.
    pub fn push(&mut self, value: f64) {
        if self.values.len() == RECENT_SECONDS {
            self.values.pop_front();
        }
        self.values.push_back(if value.is_finite() && value > 0.0 {
            value.round() as u64
        } else {
            0
        });
    }

    /// The newest `n` values, oldest first.
    pub fn last(&self, n: usize) -> Vec<u64> {
        let skip = self.values.len().saturating_sub(n);
        self.values.iter().skip(skip).copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_history_stays_bounded_and_keeps_spikes() {
        let mut history = LatencyHistory::default();
        for i in 0..10_000 {
            let p99 = if i == 7_777 { 900.0 } else { 5.0 };
            history.push(i as f64, 1.0, p99);
        }
        assert!(history.p99().len() < CHART_POINTS);
        assert!(history.p99().len() > CHART_POINTS / 4);
        assert!(history.p99().iter().any(|p| p.1 == 900.0));
        assert!(history.p99().windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn recent_keeps_the_newest() {
        let mut recent = Recent::default();
        for i in 0..1000 {
            recent.push(i as f64);
        }
        assert_eq!(recent.last(3), vec![997, 998, 999]);
        assert_eq!(recent.last(10_000).len(), RECENT_SECONDS);
    }
}
