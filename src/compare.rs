//! `squall compare BASELINE.json RUN.json --max-regression 10%`: p99, p99.9,
//! throughput and loss of a run against a committed baseline; exit 3 when any
//! moved for the worse by more than the allowed share, with a table of what moved.

use crate::exit::{Exit, Failure};
use crate::results::{Results, file};
use std::fmt::Write;
use std::path::Path;

/// One compared figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// `p99_ms`, `p999_ms`, `throughput_per_s` or `loss_ratio`.
    pub metric: &'static str,
    /// The baseline's value.
    pub baseline: f64,
    /// The run's value.
    pub run: f64,
    /// Relative change, run against baseline (`None` when the baseline is 0).
    pub change: Option<f64>,
    /// Worse by more than allowed.
    pub regressed: bool,
}

/// Which way is worse.
#[derive(Clone, Copy)]
enum Worse {
    Higher,
    Lower,
}

/// Compares `run` with `baseline`. Latency and loss regress when they rise by
/// more than `max` (a share: 0.10 is 10 %), throughput when it falls by more.
/// A correct relay loses nothing, so against a loss-free baseline any loss is
/// a regression.
pub fn compare(baseline: &Results, run: &Results, max: f64) -> Vec<Row> {
    let figures = [
        (
            "p99_ms",
            baseline.latency_ms.p99,
            run.latency_ms.p99,
            Worse::Higher,
        ),
        (
            "p999_ms",
            baseline.latency_ms.p999,
            run.latency_ms.p999,
            Worse::Higher,
        ),
        (
            "throughput_per_s",
            baseline.messages.throughput_per_s,
            run.messages.throughput_per_s,
            Worse::Lower,
        ),
        (
            "loss_ratio",
            baseline.messages.loss_ratio,
            run.messages.loss_ratio,
            Worse::Higher,
        ),
    ];
    figures
        .into_iter()
        .map(|(metric, b, r, worse)| {
            let regressed = match worse {
                Worse::Higher => r > b * (1.0 + max),
                Worse::Lower => r < b * (1.0 - max),
            };
            Row {
                metric,
                baseline: b,
                run: r,
                change: (b != 0.0).then(|| (r - b) / b),
                regressed,
            }
        })
        .collect()
}

/// The table of a comparison.
pub fn table(rows: &[Row], max: f64) -> String {
    let mut out = format!(
        "  {:<18} {:>14} {:>14} {:>10}  verdict (max regression {:.1}%)\n",
        "metric",
        "baseline",
        "run",
        "change",
        max * 100.0
    );
    for r in rows {
        let change = r
            .change
            .map_or_else(|| "n/a".to_string(), |c| format!("{:+.1}%", c * 100.0));
        let verdict = if r.regressed {
            "✗ REGRESSED"
        } else {
            "✓ ok"
        };
        let _ = writeln!(
            out,
            "  {:<18} {:>14.4} {:>14.4} {:>10}  {verdict}",
            r.metric, r.baseline, r.run, change
        );
    }
    out
}

/// `squall compare`: exit 0, or 3 on a regression.
pub fn run(baseline: &Path, run: &Path, max: f64) -> Result<Exit, Failure> {
    let b = file::read(baseline).map_err(|e| Failure::usage(e.to_string()))?;
    let r = file::read(run).map_err(|e| Failure::usage(e.to_string()))?;
    let rows = compare(&b, &r, max);
    crate::output::print(&table(&rows, max));
    let regressed: Vec<&str> = rows
        .iter()
        .filter(|r| r.regressed)
        .map(|r| r.metric)
        .collect();
    if regressed.is_empty() {
        crate::output::print(&format!(
            "\n  no regression against {}\n",
            baseline.display()
        ));
        Ok(Exit::Passed)
    } else {
        crate::output::print(&format!("\n  regressed: {}\n", regressed.join(", ")));
        Ok(Exit::Breached)
    }
}
