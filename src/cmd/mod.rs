//! The command line of DESIGN.md (clap): one module per command that needs
//! more than a call, and [`main`], the one place where a command's outcome
//! becomes the process exit code. No clap type goes past this folder.

pub mod chaos;
pub mod k8s;
pub mod proxy;
pub mod relay;
pub mod search;

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
    /// Search the highest rate (or connections) the target sustains within
    /// an objective: exit 3 under --min-capacity.
    Search(search::SearchArgs),
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
    /// Merge the shards of one run exactly and gate on the scenario's
    /// thresholds: exit codes as `run`'s.
    Merge(MergeArgs),
    /// Render Kubernetes manifests for a run over N machines (an Indexed Job
    /// of shards and a merge Job that gates on them).
    K8s(k8s::K8sArgs),
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
    /// Run only shard I of N (e.g. 2/4), to merge later: whole topics, with
    /// their publishers and subscribers.
    #[arg(long, value_name = "I/N", value_parser = parse_shard, conflicts_with = "shard_index_from_env")]
    pub shard: Option<Shard>,
    /// Take the shard's 0-based index from this environment variable (e.g.
    /// JOB_COMPLETION_INDEX in a Kubernetes Indexed Job); needs --shards.
    #[arg(long, value_name = "VAR", requires = "shards")]
    pub shard_index_from_env: Option<String>,
    /// The number of shards, with --shard-index-from-env.
    #[arg(long, value_name = "N", requires = "shard_index_from_env")]
    pub shards: Option<u32>,
    /// Start at this wall-clock instant (RFC 3339 UTC, e.g.
    /// 2026-11-24T11:15:00Z), as every shard of the run does; refused once past.
    #[arg(long, value_name = "RFC3339", value_parser = k8s::parse_start_at)]
    pub start_at: Option<crate::run::start::StartAt>,
    /// Serve live figures in the Prometheus text format at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Let --metrics-addr be a non-loopback address (squall's own traffic
    /// stays under --allow-remote).
    #[arg(long, requires = "metrics_addr")]
    pub metrics_allow_remote: bool,
    /// Keep serving the final figures this long after the results are written.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "0s",
        requires = "metrics_addr"
    )]
    pub metrics_linger: crate::scenario::duration::Dur,
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
    /// Internal: a worker's part J/M of its parent's shard.
    #[arg(long, hide = true, value_parser = parse_shard, requires = "worker")]
    pub part: Option<Shard>,
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
                part: self.part.unwrap_or_default(),
            }),
            _ => None,
        };
        let metrics = self
            .metrics_addr
            .map(|addr| crate::run::metrics::MetricsOptions {
                addr,
                allow_remote: self.metrics_allow_remote || self.allow_remote,
                linger: self.metrics_linger.0,
            });
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
            start_at: self.start_at,
            metrics,
        }
    }

    /// `--shard-index-from-env VAR --shards N`: the shard from the
    /// environment (0-based there, as Kubernetes counts), into `--shard`.
    pub fn resolve_shard(mut self) -> Result<RunArgs, Failure> {
        if let (Some(var), Some(n)) = (&self.shard_index_from_env, self.shards) {
            let value = std::env::var(var).map_err(|_| {
                Failure::usage(format!("--shard-index-from-env {var}: {var} is not set"))
            })?;
            let index: u32 = value.trim().parse().map_err(|_| {
                Failure::usage(format!(
                    "--shard-index-from-env {var}: {var}={value:?} is not a 0-based index"
                ))
            })?;
            self.shard = Some(
                parse_shard(&format!("{}/{n}", u64::from(index) + 1))
                    .map_err(|e| Failure::usage(format!("--shard-index-from-env {var}: {e}")))?,
            );
        }
        Ok(self)
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
    /// Also write the merged run's thresholds as JUnit XML to this file.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Wait up to this long for input files that do not exist yet (shards
    /// still running).
    #[arg(long, value_name = "DURATION")]
    pub wait: Option<crate::scenario::duration::Dur>,
}

/// Runs a parsed command line and returns the process exit code: every
/// command's outcome becomes one in [`exit::finish`].
pub fn main(cli: Cli) -> ExitCode {
    let outcome = match cli.command {
        Command::Relay(args) => relay::run(args),
        Command::Chaos(args) => chaos::run(args),
        Command::Proxy(args) => proxy::run(args),
        Command::Run(args) => args
            .resolve_shard()
            .and_then(|args| crate::run::run(&args.into_options())),
        Command::Search(args) => search::run(args),
        Command::Validate {
            files,
            sets,
            allow_remote,
        } => crate::run::validate(&files, &sets, allow_remote),
        Command::Compare(args) => {
            crate::compare::run(&args.baseline, &args.run, args.max_regression)
        }
        Command::Merge(args) => crate::merge::run(&crate::merge::MergeOptions {
            files: args.files,
            out: args.out,
            junit: args.junit,
            wait: args.wait.map(|d| d.0),
        }),
        Command::K8s(args) => k8s::run(args),
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

    /// Issue 11: an Indexed Job's pod finds its shard in the environment
    /// (0-based there, 1-based on the command line).
    #[test]
    fn the_shard_index_comes_from_the_environment() {
        let parse = |args: &[&str]| {
            let mut argv = vec!["squall", "run", "s.toml"];
            argv.extend_from_slice(args);
            let Command::Run(run) = Cli::try_parse_from(argv).unwrap().command else {
                panic!("not run");
            };
            run
        };
        // SAFETY: no other test reads or writes this variable.
        unsafe { std::env::set_var("SQUALL_TEST_SHARD_INDEX", "2") };
        let run = parse(&[
            "--shard-index-from-env",
            "SQUALL_TEST_SHARD_INDEX",
            "--shards",
            "3",
        ]);
        let run = run.resolve_shard().unwrap();
        assert_eq!(run.shard, Some(Shard { index: 2, count: 3 }));
        let run = parse(&[
            "--shard-index-from-env",
            "SQUALL_TEST_SHARD_INDEX",
            "--shards",
            "2",
        ]);
        assert_eq!(run.resolve_shard().unwrap_err().exit, Exit::Usage);
        let run = parse(&[
            "--shard-index-from-env",
            "SQUALL_TEST_NO_SUCH_VAR",
            "--shards",
            "2",
        ]);
        let e = run.resolve_shard().unwrap_err();
        assert!(e.message.contains("is not set"), "{e}");
        assert!(Cli::try_parse_from(["squall", "run", "s.toml", "--shards", "2"]).is_err());
        assert!(
            Cli::try_parse_from([
                "squall",
                "run",
                "s.toml",
                "--shard",
                "1/2",
                "--shard-index-from-env",
                "X",
                "--shards",
                "2"
            ])
            .is_err()
        );
        let run = parse(&[
            "--start-at",
            "2026-11-24T11:15:00Z",
            "--metrics-addr",
            "127.0.0.1:9464",
        ]);
        let opts = run.into_options();
        assert_eq!(opts.start_at.unwrap().text, "2026-11-24T11:15:00Z");
        assert!(!opts.metrics.unwrap().allow_remote);
        assert!(
            Cli::try_parse_from(["squall", "run", "s.toml", "--start-at", "tomorrow"]).is_err()
        );
    }

    #[test]
    fn percentages() {
        assert_eq!(parse_percent("10%"), Ok(0.10));
        assert_eq!(parse_percent("2.5"), Ok(0.025));
        assert!(parse_percent("-1%").is_err());
    }
}
