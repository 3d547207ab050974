//! `squall compare BASELINE.json RUN.json --max-regression 10%`: p99, p99.9,
//! throughput and loss of a run against a committed baseline; exit 3 when any
//! moved for the worse by more than the allowed share, with a table of what moved.

use crate::exit::{Exit, Failure};
use crate::results::{Results, file};
use serde_json::Value;
use std::collections::BTreeSet;
use std::fmt::Write;
use std::path::Path;

/// One compared figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// `p99_ms`, `p999_ms`, `throughput_per_s`, `loss_ratio`,
    /// `connect_error_ratio` or `hangs`.
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
        (
            "connect_error_ratio",
            baseline.connections.error_ratio,
            run.connections.error_ratio,
            Worse::Higher,
        ),
        (
            "hangs",
            baseline.hangs.len() as f64,
            run.hangs.len() as f64,
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

/// The settings, as dotted keys with both values, in which two runs differ
/// (`load.connections: 1000 vs 5000`). The scenario's name is left out.
pub fn settings_that_differ(a: &Value, b: &Value) -> Vec<String> {
    fn walk(prefix: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    if path == "name" {
                        continue;
                    }
                    let (va, vb) = (
                        x.get(k).unwrap_or(&Value::Null),
                        y.get(k).unwrap_or(&Value::Null),
                    );
                    walk(&path, va, vb, out);
                }
            }
            _ if a != b => out.push(format!("{prefix}: {a} vs {b}")),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk("", a, b, &mut out);
    out
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
    if let Some(outcome) = crate::search::compare::if_search(baseline, run, max) {
        return outcome;
    }
    let b = file::read(baseline).map_err(|e| Failure::usage(e.to_string()))?;
    let r = file::read(run).map_err(|e| Failure::usage(e.to_string()))?;
    let differ = settings_that_differ(&b.settings, &r.settings);
    if !differ.is_empty() {
        crate::output::note(&format!(
            "squall: warning: the two runs were not set up alike ({}); the comparison may not be like for like",
            differ.join(", ")
        ));
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_the_settings_that_differ_but_not_the_name() {
        let a = json!({"name": "a", "load": {"connections": 1000, "rate": 10}, "drain": "2s"});
        let b = json!({"name": "b", "load": {"connections": 5000, "rate": 10}});
        assert_eq!(
            settings_that_differ(&a, &b),
            ["drain: \"2s\" vs null", "load.connections: 1000 vs 5000"]
        );
        assert!(settings_that_differ(&a, &a).is_empty());
    }

    #[test]
    fn a_hang_and_connect_errors_are_regressions_against_a_clean_baseline() {
        let clean = Results::default();
        let mut bad = Results::default();
        bad.hangs.push(Default::default());
        bad.connections.error_ratio = 0.2;
        let rows = compare(&clean, &bad, 0.1);
        let regressed: Vec<&str> = rows
            .iter()
            .filter(|r| r.regressed)
            .map(|r| r.metric)
            .collect();
        assert_eq!(regressed, ["connect_error_ratio", "hangs"]);
    }
}
