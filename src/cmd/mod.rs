//! The command line of DESIGN.md (clap): one module per command that needs
//! more than a call, and [`main`], the one place where a command's outcome
//! becomes the process exit code. No clap type goes past this folder.

pub mod chaos;
pub mod proxy;
pub mod relay;

use crate::exit::{self, Exit, Failure};
use clap::{Args, Parser, Subcommand};
use squall_loadgen::Shard;
use std::path::PathBuf;
use std::process::ExitCode;

/// squall load-tests and chaos-tests WebSocket relays: honest p99, exact loss,
/// hang detection.
#[derive(Debug, Parser)]
#[command(name = "squall", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario file: exit 0 passed, 1 harness failed, 2 invalid
    /// scenario, 3 thresholds breached, 4 target hung.
    Run(RunArgs),
    /// Check a scenario file without running it.
    Validate {
        /// The scenario files.
        #[arg(required = true, num_args = 1..)]
        files: Vec<PathBuf>,
        /// Override a field, e.g. `load.connections=5000` (repeatable), as `run` does.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Allow a non-loopback target, as `run --allow-remote` does.
        #[arg(long)]
        allow_remote: bool,
    },
    /// Run the reference relay.
    Relay(relay::RelayArgs),
    /// Inject one fault now against a running relay (reset, drop, halfopen, ...).
    Chaos(chaos::ChaosArgs),
    /// A TCP fault proxy with Toxiproxy's toxics and an HTTP control API.
    Proxy(proxy::ProxyArgs),
    /// Compare a run with a baseline: exit 3 on a regression.
    Compare(CompareArgs),
    /// Merge results files (shards of one run) exactly.
    Merge(MergeArgs),
    /// Play a finished run's timeline in the TUI (arrow keys move through time).
    Replay {
        /// The results file.
        file: PathBuf,
    },
    /// Write a one-file HTML report of a finished run.
    Report {
        /// The results file.
        file: PathBuf,
        /// The HTML file to write (default: beside the results, `.html`).
        #[arg(short, long, value_name = "REPORT.html")]
        out: Option<PathBuf>,
    },
}

/// `squall run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The scenario file.
    pub file: PathBuf,
    /// Directory for the results, the timeline and hang diagnostics.
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    /// Show the live terminal UI (default when stdout is a terminal).
    #[arg(long, conflicts_with = "no_tui")]
    pub tui: bool,
    /// No TUI: one progress line a second on stderr.
    #[arg(long)]
    pub no_tui: bool,
    /// Override a field, e.g. `load.connections=5000` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Also write the thresholds as JUnit XML to this file.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Also write the HTML report next to the results.
    #[arg(long)]
    pub report: bool,
    /// Run only shard I of N of the connections (e.g. 2/4), to merge later.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    pub shard: Option<Shard>,
    /// Allow a non-loopback target (the scenario must also set allow_remote = true).
    #[arg(long)]
    pub allow_remote: bool,
    /// Internal: run as a worker of another `squall run` (NDJSON on stdout).
    #[arg(long, hide = true, requires_all = ["origin_ns", "worker_urls"])]
    pub worker: bool,
    /// Internal: the parent's origin (CLOCK_MONOTONIC ns).
    #[arg(long, hide = true)]
    pub origin_ns: Option<u64>,
    /// Internal: the parent's target URLs.
    #[arg(long = "worker-url", hide = true)]
    pub worker_urls: Vec<String>,
}

impl RunArgs {
    /// What the run needs of these flags, free of clap; the TUI is on when
    /// asked, or when stdout is a terminal and `--no-tui` was not given.
    pub fn into_options(self) -> crate::run::RunOptions {
        use std::io::IsTerminal;
        let worker = match (self.worker, self.origin_ns) {
            (true, Some(ns)) => Some(crate::run::WorkerRole {
                origin: squall_proto::Origin::from_mono_ns(ns),
                urls: self.worker_urls,
            }),
            _ => None,
        };
        crate::run::RunOptions {
            tui: self.tui || (!self.no_tui && std::io::stdout().is_terminal()),
            file: self.file,
            sets: self.sets,
            out: self.out,
            junit: self.junit,
            report: self.report,
            shard: self.shard,
            allow_remote: self.allow_remote,
            worker,
        }
    }
}

/// `squall compare`.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// The baseline results file.
    pub baseline: PathBuf,
    /// The results file to judge.
    pub run: PathBuf,
    /// Largest change allowed for the worse (e.g. `10%`).
    #[arg(long, default_value = "10%", value_parser = parse_percent)]
    pub max_regression: f64,
}

/// `squall merge`.
#[derive(Debug, Clone, Args)]
pub struct MergeArgs {
    /// Results files to merge (shards of one run).
    #[arg(required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// The merged results file.
    #[arg(short, long, value_name = "OUT.json")]
    pub out: PathBuf,
}

/// Runs a parsed command line and returns the process exit code: every
/// command's outcome becomes one in [`exit::finish`].
pub fn main(cli: Cli) -> ExitCode {
    let outcome = match cli.command {
        Command::Relay(args) => relay::run(args),
        Command::Chaos(args) => chaos::run(args),
        Command::Proxy(args) => proxy::run(args),
        Command::Run(args) => crate::run::run(&args.into_options()),
        Command::Validate {
            files,
            sets,
            allow_remote,
        } => crate::run::validate(&files, &sets, allow_remote),
        Command::Compare(args) => {
            crate::compare::run(&args.baseline, &args.run, args.max_regression)
        }
        Command::Merge(args) => crate::merge::run(&args.files, &args.out),
        Command::Replay { file } => crate::tui::replay(&file)
            .map(|()| Exit::Passed)
            .map_err(|e| io_failure(&file, e)),
        Command::Report { file, out } => {
            let out = out.unwrap_or_else(|| file.with_extension("html"));
            crate::report::write_html(&file, &out)
                .map(|()| {
                    crate::output::print(&format!("report: {}\n", out.display()));
                    Exit::Passed
                })
                .map_err(|e| io_failure(&file, e))
        }
    };
    exit::finish(outcome)
}

/// A multi-threaded tokio runtime for a command, its threads named `name`.
pub fn runtime(name: &str) -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name(name)
        .build()
        .map_err(|e| Failure::harness(format!("cannot start the runtime: {e}")))
}

/// A missing or unreadable input is a usage error (2); anything else failed
/// in the harness (1).
fn io_failure(file: &std::path::Path, e: std::io::Error) -> Failure {
    let message = format!("{}: {e}", file.display());
    match e.kind() {
        std::io::ErrorKind::NotFound
        | std::io::ErrorKind::InvalidData
        | std::io::ErrorKind::InvalidInput => Failure::usage(message),
        _ => Failure::harness(message),
    }
}

/// Parses `I/N` (1-based) into the engine's 0-based shard.
fn parse_shard(s: &str) -> Result<Shard, String> {
    let (i, n) = s.split_once('/').ok_or("expected I/N, e.g. 2/4")?;
    let i: u32 = i.trim().parse().map_err(|_| "I must be a number")?;
    let n: u32 = n.trim().parse().map_err(|_| "N must be a number")?;
    if n == 0 || i == 0 || i > n {
        return Err(format!("shard {i}/{n} does not exist: use 1..=N of N"));
    }
    Ok(Shard {
        index: i - 1,
        count: n,
    })
}

/// Parses `10%` (or `10`) into 0.10.
fn parse_percent(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("{s:?} is not a percentage"))?;
    if !(v.is_finite() && v >= 0.0) {
        return Err(format!("{s:?} is not a percentage >= 0"));
    }
    Ok(v / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_one_based_on_the_command_line() {
        assert_eq!(parse_shard("2/4"), Ok(Shard { index: 1, count: 4 }));
        assert!(parse_shard("0/4").is_err());
        assert!(parse_shard("5/4").is_err());
        assert!(parse_shard("4").is_err());
    }

    #[test]
    fn percentages() {
        assert_eq!(parse_percent("10%"), Ok(0.10));
        assert_eq!(parse_percent("2.5"), Ok(0.025));
        assert!(parse_percent("-1%").is_err());
    }
}
