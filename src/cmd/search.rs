//! `squall search`'s flags. Each search flag becomes a `--set search.KEY=VALUE`
//! override after the user's own `--set`s, so that a flag and the scenario's
//! `[search]` key are validated in one place (`search::plan`) and an error
//! names the flag.

use crate::exit::{Exit, Failure};
use crate::search::plan::{Vary, slo_override};
use clap::Args;
use std::path::PathBuf;

/// `squall search`.
#[derive(Debug, Clone, Args)]
pub struct SearchArgs {
    /// The scenario file.
    pub file: PathBuf,
    /// An objective every step must meet: a threshold key and its limit
    /// (p99_ms=50, p999_ms, loss_ratio=0.001, connect_error_ratio, hangs, ...); repeatable.
    #[arg(long = "slo", value_name = "KEY=LIMIT")]
    pub slo: Vec<String>,
    /// What to vary: `rate` (load.rate, msg/s published before fan-out) or `connections`.
    #[arg(long, value_enum)]
    pub vary: Option<VaryArg>,
    /// The first level (default: the scenario's own load.rate or load.connections).
    #[arg(long, value_name = "X")]
    pub min: Option<f64>,
    /// The highest level (default: 64 × min).
    #[arg(long, value_name = "X")]
    pub max: Option<f64>,
    /// Publishing time of each step after its ramp, warm-up included (default 10s).
    #[arg(long, value_name = "D")]
    pub step_duration: Option<String>,
    /// The unmeasured start of each step (default 30% of the step, at least 1s).
    #[arg(long, value_name = "D")]
    pub warmup: Option<String>,
    /// Stop when the first failing level is within this of the last passing one (default 10%).
    #[arg(long, value_name = "P", value_parser = parse_precision)]
    pub precision: Option<f64>,
    /// Exit 3 when the capacity found is below this (in the varied unit).
    #[arg(long, value_name = "X")]
    pub min_capacity: Option<f64>,
    /// The whole search ends by then, keeping what it found (default 15m).
    #[arg(long, value_name = "D")]
    pub time_limit: Option<String>,
    /// Directory for the search file (and hang files).
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    /// Also write JUnit XML (the gate, completion, the target's survival) to this file.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Also write the HTML report next to the search file.
    #[arg(long)]
    pub report: bool,
    /// Show the live terminal UI: every step so far and the running one
    /// (default when stdout is a terminal).
    #[arg(long, conflicts_with = "no_tui")]
    pub tui: bool,
    /// No TUI: a line on stderr when each step starts and when it is judged.
    #[arg(long)]
    pub no_tui: bool,
    /// Override a field, e.g. `load.connections=500` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Allow a non-loopback target (the scenario must also set allow_remote = true).
    #[arg(long)]
    pub allow_remote: bool,
}

/// `--vary`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VaryArg {
    /// load.rate.
    Rate,
    /// load.connections.
    Connections,
}

impl SearchArgs {
    /// The search's options: the flags as overrides after the user's; the
    /// TUI is on when asked, or when stdout is a terminal and `--no-tui` was
    /// not given.
    pub fn into_options(self) -> Result<crate::search::SearchOptions, Failure> {
        use std::io::IsTerminal;
        let tui = self.tui || (!self.no_tui && std::io::stdout().is_terminal());
        let mut sets = self.sets;
        for slo in &self.slo {
            sets.push(slo_override(slo).map_err(|e| Failure::usage(e.to_string()))?);
        }
        if let Some(v) = self.vary {
            let v = match v {
                VaryArg::Rate => Vary::Rate,
                VaryArg::Connections => Vary::Connections,
            };
            sets.push(format!("search.vary={}", v.noun()));
        }
        let numbers = [
            ("min", self.min),
            ("max", self.max),
            ("precision", self.precision),
            ("min_capacity", self.min_capacity),
        ];
        for (key, v) in numbers {
            if let Some(v) = v {
                if !v.is_finite() {
                    return Err(Failure::usage(format!(
                        "--{}: {v} is not a number",
                        key.replace('_', "-")
                    )));
                }
                sets.push(format!("search.{key}={v:?}"));
            }
        }
        let durations = [
            ("step_duration", self.step_duration),
            ("warmup", self.warmup),
            ("time_limit", self.time_limit),
        ];
        for (key, d) in durations {
            if let Some(d) = d {
                sets.push(format!("search.{key}=\"{}\"", d.trim()));
            }
        }
        Ok(crate::search::SearchOptions {
            file: self.file,
            sets,
            out: self.out,
            junit: self.junit,
            report: self.report,
            allow_remote: self.allow_remote,
            tui,
        })
    }
}

/// `squall search ...`.
pub fn run(args: SearchArgs) -> Result<Exit, Failure> {
    crate::search::run(&args.into_options()?)
}

/// `10%` or a fraction `0.1`.
fn parse_precision(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let (number, percent) = match t.strip_suffix('%') {
        Some(n) => (n, true),
        None => (t, false),
    };
    let v: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a precision: use 10% or 0.1"))?;
    let v = if percent { v / 100.0 } else { v };
    if !(v.is_finite() && v > 0.0 && v <= 1.0) {
        return Err(format!(
            "{s:?} is not a precision: use 10% or 0.1 (at most 100%)"
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[test]
    fn flags_become_search_overrides_after_the_users_own() {
        let cli = crate::cmd::Cli::try_parse_from([
            "squall",
            "search",
            "s.toml",
            "--slo",
            "p99_ms=50",
            "--vary",
            "connections",
            "--min",
            "100",
            "--precision",
            "5%",
            "--step-duration",
            "4s",
            "--set",
            "load.rate=10",
        ])
        .unwrap();
        let crate::cmd::Command::Search(args) = cli.command else {
            panic!("not a search");
        };
        let opts = args.into_options().unwrap();
        assert_eq!(
            opts.sets,
            [
                "load.rate=10",
                "search.slo.p99_ms=50",
                "search.vary=connections",
                "search.min=100.0",
                "search.precision=0.05",
                "search.step_duration=\"4s\""
            ]
        );
        assert_eq!(parse_precision("0.1"), Ok(0.1));
        assert!(parse_precision("10").is_err());
    }
}
