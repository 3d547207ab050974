//! Worker processes: past what one process may hold, `squall run` starts
//! itself again as `squall run FILE --worker --shard I/N ...`, once per shard.
//! A worker runs the engine on its shard against the parent's target, with the
//! parent's origin, and writes NDJSON on stdout: one `{"snapshot": ...}` a
//! second, then `{"report": ...}`. The parent merges them exactly.

use serde::{Deserialize, Serialize};
use squall_loadgen::{LoadPlan, LoadReport, LoadSnapshot, Origin, Shard};
use std::io::Write;
use std::path::PathBuf;
use tokio::sync::{mpsc, watch};

/// One line of a worker's stdout.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerLine {
    /// Its latest second.
    Snapshot(Box<LoadSnapshot>),
    /// Its final report.
    Report(Box<LoadReport>),
}

/// How to start the workers of a run.
#[derive(Debug, Clone)]
pub struct WorkerSpec {
    /// squall's own binary.
    pub exe: String,
    /// The scenario file.
    pub file: PathBuf,
    /// The `--set` overrides, passed on unchanged.
    pub sets: Vec<String>,
    /// The running target's URLs.
    pub urls: Vec<String>,
    /// The shard the whole run covers (`--shard`, or 1/1).
    pub shard: Shard,
    /// Workers to start; each takes an equal part of `shard`.
    pub count: u32,
}

impl WorkerSpec {
    /// The command line of worker `i` (0-based). Sub-shard `i` of `count`
    /// within shard `u` of `n` is global shard `u * count + i` of `n * count`:
    /// the same connections, since shard bounds are `index * peak / count`.
    pub fn args(&self, i: u32, origin: Origin) -> Vec<String> {
        let index = self.shard.index * self.count + i;
        let total = self.shard.count * self.count;
        let mut args = vec![
            "run".to_string(),
            self.file.display().to_string(),
            "--worker".to_string(),
            "--no-tui".to_string(),
            "--shard".to_string(),
            format!("{}/{total}", index + 1),
            "--origin-ns".to_string(),
            origin.as_mono_ns().to_string(),
        ];
        for url in &self.urls {
            args.extend(["--worker-url".to_string(), url.clone()]);
        }
        for set in &self.sets {
            args.extend(["--set".to_string(), set.clone()]);
        }
        args
    }
}

/// The worker side: runs `plan` and streams its snapshots and report on
/// stdout. SIGINT stops it early (the report then says `complete: false`).
pub async fn serve(plan: LoadPlan, origin: Origin) -> Result<(), String> {
    let (stop_tx, stop) = watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = stop_tx.send(true);
        }
    });
    let (tx, mut rx) = mpsc::unbounded_channel();
    let engine = tokio::spawn(squall_loadgen::run(plan, origin, stop, tx));
    while let Some(s) = rx.recv().await {
        emit(&WorkerLine::Snapshot(Box::new(s)))?;
    }
    let report = engine
        .await
        .map_err(|e| format!("the engine panicked: {e}"))?
        .map_err(|e| e.to_string())?;
    emit(&WorkerLine::Report(Box::new(report)))
}

fn emit(line: &WorkerLine) -> Result<(), String> {
    let mut text = serde_json::to_string(line).map_err(|e| e.to_string())?;
    text.push('\n');
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| format!("stdout: {e}"))
}
