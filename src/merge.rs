//! `squall merge A.json B.json ... -o OUT.json`: adds up the runs' engine
//! reports exactly (histograms, counters, per-publisher loss accounting, so a
//! publisher in one shard and its subscribers in another still count right),
//! then derives every figure, threshold and the exit code again.

use crate::exit::{Exit, Failure};
use crate::results::{Parts, Results, file, summary};
use crate::scenario::raw::RawThresholds;
use std::path::{Path, PathBuf};

/// Merges results files into one.
pub fn merge(inputs: &[Results]) -> Result<Results, String> {
    let first = inputs.first().ok_or("nothing to merge")?;
    if let Some(other) = inputs.iter().find(|r| r.scenario != first.scenario) {
        return Err(format!(
            "these are runs of different scenarios ({:?} and {:?})",
            first.scenario, other.scenario
        ));
    }
    let mut report = first.load_report.clone();
    for r in &inputs[1..] {
        report.merge(&r.load_report);
    }
    let thresholds: RawThresholds = first
        .settings
        .get("thresholds")
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| format!("the first file's settings.thresholds: {e}"))?
        .unwrap_or_default();
    let mut targets: Vec<&str> = Vec::new();
    for r in inputs {
        if !targets.contains(&r.target.as_str()) {
            targets.push(&r.target);
        }
    }
    Ok(Results::build(Parts {
        scenario: first.scenario.clone(),
        file: first.file.clone(),
        started_at: inputs
            .iter()
            .map(|r| r.started_at.clone())
            .min()
            .unwrap_or_default(),
        planned_s: inputs.iter().map(|r| r.planned_s).fold(0.0, f64::max),
        target: targets.join(", "),
        settings: first.settings.clone(),
        thresholds,
        report,
        hangs: inputs
            .iter()
            .flat_map(|r| r.hangs.iter().cloned())
            .collect(),
        chaos: inputs
            .iter()
            .flat_map(|r| r.chaos.iter().cloned())
            .collect(),
        timeline: None,
        // The p99 of a union never exceeds the largest p99 of its parts: the
        // worst window of any input bounds the merged one from above.
        worst_window_p99_ms: inputs
            .iter()
            .flat_map(|r| &r.thresholds)
            .filter(|t| t.name.starts_with("p99_ms_window"))
            .map(|t| t.actual)
            .fold(0.0, f64::max),
        // A run whose harness failed carries an incomplete report, and the
        // merge of an incomplete report stays incomplete (exit code 1).
        harness_failed: false,
    }))
}

/// `squall merge`: writes the merged file and prints its summary.
pub fn run(files: &[PathBuf], out: &Path) -> Result<Exit, Failure> {
    let inputs = files
        .iter()
        .map(|f| file::read(f))
        .collect::<Result<Vec<_>, _>>()
        .map_err(Failure::usage)?;
    if inputs.iter().any(|r| r.target != inputs[0].target) {
        eprintln!(
            "squall: warning: these runs loaded different targets; a message published to one \
             target never reached subscribers on another, so the merged loss counts those too"
        );
    }
    let merged = merge(&inputs).map_err(Failure::usage)?;
    file::write_json_atomic(out, &merged)
        .map_err(|e| Failure::harness(format!("{}: {e}", out.display())))?;
    crate::output::print(&summary::render(&merged, Some(&out.display().to_string())));
    Ok(merged.exit())
}
