//! A finished run as read back from disk: the results file (DESIGN.md,
//! "Results file") and the NDJSON timeline it names. `squall replay` and
//! `squall report` both start here.
//!
//! Reading is lenient about keys it does not need (a run stopped by Ctrl-C
//! may lack some, and newer writers may add more) and strict about what it
//! cannot do without: the `timeline` key and its file.

use crate::snapshot::Snapshot;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{self, BufRead};
use std::path::{Path, PathBuf};

/// The keys of a results file that replay and the report read.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Results {
    /// Scenario name.
    pub scenario: String,
    /// When the run started (as written, usually RFC 3339 UTC).
    pub started_at: Value,
    /// How long the run lasted, seconds.
    pub duration_s: f64,
    /// False when the run was stopped early.
    pub complete: bool,
    /// Whether every threshold held and nothing hung.
    pub passed: bool,
    /// The run's exit code.
    pub exit_code: i32,
    /// Socket counts.
    pub connections: Connections,
    /// Message counts.
    pub messages: Messages,
    /// Latency over the whole run.
    pub latency_ms: Latency,
    /// How late publishers sent against their schedule, if recorded.
    pub send_lag_ms: Option<Latency>,
    /// Every hang the watchdog saw.
    pub hangs: Vec<Hang>,
    /// Every chaos action of the scenario.
    pub chaos: Vec<Chaos>,
    /// Every threshold with its verdict.
    pub thresholds: Vec<Threshold>,
    /// Path of the NDJSON timeline.
    pub timeline: Option<String>,
}

/// `connections` of the results file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Connections {
    /// Connection attempts.
    pub attempted: u64,
    /// Attempts that completed the handshake.
    pub established: u64,
    /// Attempts that failed.
    pub failed: u64,
    /// Failures and abnormal ends by kind.
    pub errors: BTreeMap<String, u64>,
    /// Handshake latency, `p50` and `p99`.
    pub handshake_ms: BTreeMap<String, f64>,
}

/// `messages` of the results file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Messages {
    /// Published.
    pub sent: u64,
    /// Deliveries a correct relay had to make.
    pub expected: u64,
    /// Deliveries made.
    pub received: u64,
    /// Deliveries missing.
    pub lost: u64,
    /// Deliveries made twice.
    pub duplicated: u64,
    /// Deliveries out of order.
    pub reordered: u64,
    /// lost / expected.
    pub loss_ratio: f64,
}

/// `latency_ms` of the results file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Latency {
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

/// One hang of the target.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Hang {
    /// When the target stopped answering, seconds from the origin.
    pub started_s: f64,
    /// When the watchdog declared the hang.
    pub detected_s: f64,
    /// When it answered again; `None` if it never did.
    pub ended_s: Option<f64>,
    /// The last chaos action before the hang (text or an object).
    pub last_chaos: Value,
    /// What the watchdog gathered (text or an object).
    pub diagnostics: Value,
}

/// One chaos action of the scenario.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Chaos {
    /// When it was scheduled, seconds from the origin.
    pub at_s: f64,
    /// The action.
    pub action: String,
    /// How many it was asked to do.
    pub count: u64,
    /// How many it did.
    pub done: u64,
    /// How many attempts failed, if recorded.
    pub failed: u64,
}

/// One threshold with its verdict.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Threshold {
    /// e.g. `p99_ms`.
    pub name: String,
    /// The limit from the scenario.
    pub limit: f64,
    /// The measured value.
    pub actual: f64,
    /// Whether it held.
    pub passed: bool,
}

/// A results file, its raw JSON (for keys this module does not know, such
/// as the run's settings) and its timeline.
#[derive(Debug, Clone)]
pub struct RecordedRun {
    /// The keys replay and the report read.
    pub results: Results,
    /// The whole results file.
    pub raw: Value,
    /// One snapshot per second, in order, without their histograms.
    pub timeline: Vec<Snapshot>,
    /// Where the timeline was read from.
    pub timeline_path: PathBuf,
    /// Where the results file was read from.
    pub results_path: PathBuf,
}

impl RecordedRun {
    /// Reads a results file and the timeline it names. Errors say which file
    /// and, for a bad timeline line, which line.
    pub fn load(results_json: &Path) -> io::Result<Self> {
        let text = std::fs::read_to_string(results_json)
            .map_err(|e| context(e, &format!("reading {}", results_json.display())))?;
        let raw: Value = serde_json::from_str(&text).map_err(|e| {
            invalid(format!(
                "{} is not a results file: {e}",
                results_json.display()
            ))
        })?;
        let results: Results = serde_json::from_value(raw.clone()).map_err(|e| {
            invalid(format!(
                "{} is not a results file: {e}",
                results_json.display()
            ))
        })?;
        let named = results.timeline.as_deref().ok_or_else(|| {
            invalid(format!(
                "{} has no `timeline` key naming its snapshot file",
                results_json.display()
            ))
        })?;
        let timeline_path = resolve(results_json, named);
        let timeline = read_timeline(&timeline_path)?;
        Ok(Self {
            results,
            raw,
            timeline,
            timeline_path,
            results_path: results_json.to_path_buf(),
        })
    }

    /// A hang's diagnostics as text. When they are the path of a file (the
    /// watchdog writes stacks and socket tables to one beside the results),
    /// the file's text, cut at `MAX_DIAGNOSTICS` bytes; otherwise the value
    /// itself, strings as written and the rest as indented JSON.
    pub fn diagnostics(&self, hang: &Hang) -> String {
        if let Value::String(named) = &hang.diagnostics {
            let path = resolve(&self.results_path, named);
            if let Ok(bytes) = std::fs::read(&path) {
                let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_DIAGNOSTICS)]);
                let cut = if bytes.len() > MAX_DIAGNOSTICS {
                    format!("\n… cut at {MAX_DIAGNOSTICS} of {} bytes", bytes.len())
                } else {
                    String::new()
                };
                return format!("{}\n\n{text}{cut}", path.display());
            }
        }
        match &hang.diagnostics {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => serde_json::to_string_pretty(other).unwrap_or_default(),
        }
    }
}

/// Most of a diagnostics file the report embeds.
const MAX_DIAGNOSTICS: usize = 512 * 1024;

/// A path the results file names: absolute as written, else relative to the
/// results file's directory; a relative path that only exists from the
/// working directory (a writer that recorded it that way) is accepted too.
fn resolve(results_json: &Path, named: &str) -> PathBuf {
    let named = Path::new(named);
    if named.is_absolute() {
        return named.to_path_buf();
    }
    let beside = results_json
        .parent()
        .unwrap_or_else(|| Path::new(""))
        .join(named);
    if !beside.exists() && named.exists() {
        named.to_path_buf()
    } else {
        beside
    }
}

/// Reads one snapshot per line. Blank lines are skipped, and so is a
/// malformed last line: a run killed mid-write leaves one. Each interval's
/// histogram (`latency_hdr`) is dropped on reading: replay and the report
/// use the percentiles, and a day of histograms is hundreds of megabytes.
fn read_timeline(path: &Path) -> io::Result<Vec<Snapshot>> {
    let file = std::fs::File::open(path)
        .map_err(|e| context(e, &format!("reading timeline {}", path.display())))?;
    let mut snapshots = Vec::new();
    let mut pending_error: Option<io::Error> = None;
    for (index, line) in io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| context(e, &format!("reading {}", path.display())))?;
        if line.trim().is_empty() {
            continue;
        }
        if let Some(error) = pending_error.take() {
            return Err(error);
        }
        match serde_json::from_str::<Snapshot>(&line) {
            Ok(snapshot) => snapshots.push(Snapshot {
                latency_hdr: String::new(),
                ..snapshot
            }),
            Err(e) => {
                pending_error = Some(invalid(format!(
                    "{} line {}: not a snapshot: {e}",
                    path.display(),
                    index + 1
                )))
            }
        }
    }
    Ok(snapshots)
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

fn context(error: io::Error, what: &str) -> io::Error {
    io::Error::new(error.kind(), format!("{what}: {error}"))
}

/// A JSON value as one line of text: strings bare, `null` empty, the rest
/// as compact JSON.
pub fn value_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
