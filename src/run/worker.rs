//! Worker processes: past what one process may hold, `squall run` starts
//! itself again as `squall run FILE --worker [--shard I/N] --part J/M ...`,
//! once per part. A worker runs the engine on part J of M of its parent's
//! shard (the whole run without `--shard`) against the parent's target, with
//! the parent's origin, and writes NDJSON on stdout: one `{"snapshot": ...}` a
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
    /// The shard the parent runs (`--shard`, or 1/1): whole topics.
    pub shard: Shard,
    /// Workers to start; each takes an equal part of `shard`'s connections.
    pub count: u32,
    /// Whether the parent may load a remote target (the scenario's
    /// `allow_remote` and its `--allow-remote`): workers get `--allow-remote`
    /// only then, so that a worker's engine refuses a remote target exactly
    /// when its parent's would.
    pub allow_remote: bool,
}

impl WorkerSpec {
    /// The command line of worker `i` (0-based): the parent's shard, and
    /// part `i` of `count` of its connections.
    pub fn args(&self, i: u32, origin: Origin) -> Vec<String> {
        let mut args = vec![
            "run".to_string(),
            self.file.display().to_string(),
            "--worker".to_string(),
            "--no-tui".to_string(),
            "--shard".to_string(),
            format!("{}/{}", self.shard.index + 1, self.shard.count),
            "--part".to_string(),
            format!("{}/{}", i + 1, self.count),
            "--origin-ns".to_string(),
            origin.as_mono_ns().to_string(),
        ];
        if self.allow_remote {
            args.push("--allow-remote".to_string());
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(allow_remote: bool) -> WorkerSpec {
        WorkerSpec {
            exe: "squall".into(),
            file: "s.toml".into(),
            sets: vec!["load.rate=10".into()],
            urls: vec!["ws://127.0.0.1:9/ws".into()],
            shard: Shard { index: 0, count: 1 },
            count: 2,
            allow_remote,
        }
    }

    #[test]
    fn workers_get_allow_remote_only_when_their_parent_had_it() {
        let origin = Origin::from_mono_ns(7);
        let args = spec(false).args(1, origin);
        assert!(!args.iter().any(|a| a == "--allow-remote"), "{args:?}");
        assert!(args.windows(2).any(|w| w == ["--shard", "1/1"]), "{args:?}");
        assert!(args.windows(2).any(|w| w == ["--part", "2/2"]), "{args:?}");
        let args = spec(true).args(1, origin);
        assert!(args.iter().any(|a| a == "--allow-remote"), "{args:?}");
        // The worker's own command line parses, the flag included.
        use clap::Parser as _;
        let mut argv = vec!["squall".to_string()];
        argv.extend(args);
        let cli = crate::cmd::Cli::try_parse_from(argv).unwrap();
        let crate::cmd::Command::Run(run) = cli.command else {
            panic!("not a run command");
        };
        assert!(run.worker && run.allow_remote);
        assert_eq!(run.part, Some(Shard { index: 1, count: 2 }));
    }
}
