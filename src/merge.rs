//! `squall merge A.json B.json ... -o OUT.json`: adds up the runs' engine
//! reports exactly (histograms, counters, per-publisher loss accounting, so a
//! publisher in one shard and its subscribers in another still count right),
//! then derives every figure, threshold and the exit code again.

use crate::exit::{Exit, Failure};
use crate::results::{Parts, Results, file, summary};
use crate::scenario::raw::RawThresholds;
use crate::thresholds::Thresholds;
use squall_loadgen::LoadReport;
use std::path::{Path, PathBuf};

/// Why results files could not be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// No file at all.
    #[error("nothing to merge")]
    Nothing,
    /// Files of different scenarios.
    #[error("these are runs of different scenarios ({0:?} and {1:?})")]
    DifferentScenarios(String, String),
    /// A file whose engine report is missing or unreadable.
    #[error("file {index} of the merge has no usable load_report: {source}")]
    LoadReport {
        /// 1-based position among the inputs.
        index: usize,
        /// What serde said.
        source: serde_json::Error,
    },
    /// The first file's recorded thresholds do not read.
    #[error("the first file's settings.thresholds: {0}")]
    Thresholds(String),
}

/// Merges results files into one.
pub fn merge(inputs: &[Results]) -> Result<Results, MergeError> {
    let first = inputs.first().ok_or(MergeError::Nothing)?;
    if let Some(other) = inputs.iter().find(|r| r.scenario != first.scenario) {
        return Err(MergeError::DifferentScenarios(
            first.scenario.clone(),
            other.scenario.clone(),
        ));
    }
    let mut reports = inputs.iter().enumerate().map(|(i, r)| {
        serde_json::from_value::<LoadReport>(r.load_report.clone()).map_err(|source| {
            MergeError::LoadReport {
                index: i + 1,
                source,
            }
        })
    });
    let mut report = reports.next().ok_or(MergeError::Nothing)??;
    for other in reports {
        report.merge(&other?);
    }
    let raw: RawThresholds = first
        .settings
        .get("thresholds")
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| MergeError::Thresholds(e.to_string()))?
        .unwrap_or_default();
    let thresholds = Thresholds::from_raw(&raw)
        .map_err(|(key, e)| MergeError::Thresholds(format!("{key}: {e}")))?;
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
        .map_err(|e| Failure::usage(e.to_string()))?;
    if inputs.iter().any(|r| r.target != inputs[0].target) {
        crate::output::note(
            "squall: warning: these runs loaded different targets; a message published to one \
             target never reached subscribers on another, so the merged loss counts those too",
        );
    }
    let merged = merge(&inputs).map_err(|e| Failure::usage(e.to_string()))?;
    file::write_json_atomic(out, &merged)
        .map_err(|e| Failure::harness(format!("{}: {e}", out.display())))?;
    crate::output::print(&summary::render(&merged, Some(&out.display().to_string())));
    Ok(merged.exit())
}
