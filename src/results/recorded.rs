//! A finished run as read back from disk: the results file and the NDJSON
//! timeline it names. `squall replay` and `squall report` both start here.
//!
//! The results file reads through the one lenient [`Results`] model; the
//! timeline is strict about what replay cannot do without: the `timeline`
//! key and its file.

use super::{Hang, Results};
use crate::snapshot::Snapshot;
use serde_json::Value;
use std::io::{self, BufRead};
use std::path::{Path, PathBuf};

/// A results file, its raw JSON (for keys the model does not know) and its
/// timeline.
#[derive(Debug, Clone)]
pub struct RecordedRun {
    /// The results file.
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
        let results = super::file::parse(raw.clone())
            .map_err(|e| invalid(format!("{}: {e}", results_json.display())))?;
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
        if let Some(named) = &hang.diagnostics {
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
        hang.diagnostics.clone().unwrap_or_default()
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
