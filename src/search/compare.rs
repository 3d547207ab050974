//! `squall compare BASELINE.json RUN.json` on two search files: the
//! capacity's change in percent, exit 3 when it fell by more than
//! `--max-regression`. A capacity that is only a lower bound (not found
//! below `--max`, limited by the generator, a search cut short) is said to
//! be one, since a change against it means less.

use super::results::{self, SearchResults};
use crate::exit::{Exit, Failure};
use crate::report::format::value;
use std::fmt::Write;
use std::path::Path;

/// The comparison of two searches.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The baseline's capacity (0 when none passed).
    pub baseline: f64,
    /// The run's capacity (0 when none passed).
    pub run: f64,
    /// `(run - baseline) / baseline`; `None` when the baseline is 0.
    pub change: Option<f64>,
    /// Fell by more than allowed.
    pub regressed: bool,
}

/// Compares two searches' capacities; `max` is a share (0.10 is 10%).
pub fn compare(baseline: &SearchResults, run: &SearchResults, max: f64) -> Change {
    let b = baseline.capacity().unwrap_or(0.0);
    let r = run.capacity().unwrap_or(0.0);
    Change {
        baseline: b,
        run: r,
        change: (b != 0.0).then(|| (r - b) / b),
        regressed: r < b * (1.0 - max),
    }
}

/// What `squall compare` does when either file is a search file: `None`
/// when neither is (the run comparison goes on), else its outcome.
pub fn if_search(baseline: &Path, run: &Path, max: f64) -> Option<Result<Exit, Failure>> {
    let a = results::is_search_file(baseline);
    let b = results::is_search_file(run);
    if !a && !b {
        return None;
    }
    if a != b {
        let (search, other) = if a { (baseline, run) } else { (run, baseline) };
        return Some(Err(Failure::usage(format!(
            "{} is a search file and {} is not: compare two searches, or two runs",
            search.display(),
            other.display()
        ))));
    }
    Some(run_files(baseline, run, max))
}

fn run_files(baseline: &Path, run: &Path, max: f64) -> Result<Exit, Failure> {
    let b = results::read(baseline).map_err(|e| Failure::usage(e.to_string()))?;
    let r = results::read(run).map_err(|e| Failure::usage(e.to_string()))?;
    if b.vary != r.vary {
        return Err(Failure::usage(format!(
            "the searches varied different things ({} vs {}): nothing to compare",
            b.vary, r.vary
        )));
    }
    let mut notes = Vec::new();
    if b.slo != r.slo {
        notes.push("the two searches had different objectives".to_string());
    }
    let differ = crate::compare::settings_that_differ(&b.settings, &r.settings);
    if !differ.is_empty() {
        notes.push(format!("the scenarios differ ({})", differ.join(", ")));
    }
    for (which, s) in [("baseline", &b), ("run", &r)] {
        if !s.outcome.is_measured() {
            notes.push(format!(
                "the {which}'s capacity is a lower bound ({})",
                s.outcome.as_str()
            ));
        }
    }
    for note in &notes {
        crate::output::note(&format!(
            "squall: warning: {note}; the comparison may not be like for like"
        ));
    }
    let c = compare(&b, &r, max);
    let noun = format!("max_{}", b.vary.noun());
    let mut out = format!(
        "  {:<18} {:>14} {:>14} {:>10}  verdict (max regression {:.1}%)\n",
        "metric",
        "baseline",
        "run",
        "change",
        max * 100.0
    );
    let change = c
        .change
        .map_or_else(|| "n/a".to_string(), |x| format!("{:+.1}%", x * 100.0));
    let verdict = if c.regressed {
        "✗ REGRESSED"
    } else {
        "✓ ok"
    };
    let _ = writeln!(
        out,
        "  {:<18} {:>14} {:>14} {:>10}  {verdict}",
        noun,
        value(c.baseline),
        value(c.run),
        change
    );
    let _ = writeln!(
        out,
        "\n  baseline: {}\n  run:      {}",
        b.summary, r.summary
    );
    if c.regressed {
        let _ = writeln!(
            out,
            "\n  regressed: capacity {change} ({} → {} {})",
            value(c.baseline),
            value(c.run),
            b.unit
        );
    } else {
        let _ = writeln!(
            out,
            "\n  no regression against {} (capacity {change})",
            baseline.display()
        );
    }
    crate::output::print(&out);
    Ok(if c.regressed {
        Exit::Breached
    } else {
        Exit::Passed
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::plan::Vary;

    fn with(capacity: Option<f64>) -> SearchResults {
        SearchResults {
            vary: Vary::Rate,
            max_rate: capacity,
            ..Default::default()
        }
    }

    #[test]
    fn a_capacity_that_fell_past_the_allowance_regressed() {
        let c = compare(&with(Some(200.0)), &with(Some(170.0)), 0.1);
        assert_eq!(c.change, Some(-0.15));
        assert!(c.regressed);
        let c = compare(&with(Some(200.0)), &with(Some(190.0)), 0.1);
        assert!(!c.regressed);
        let c = compare(&with(Some(200.0)), &with(None), 0.1);
        assert!(c.regressed, "nothing passed: a regression");
        let c = compare(&with(Some(200.0)), &with(Some(300.0)), 0.1);
        assert!(!c.regressed && c.change == Some(0.5));
    }
}
