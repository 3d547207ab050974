//! `squall search`: the highest rate (or connection count) a relay sustains
//! within a service-level objective, as one command and as a CI gate
//! (issue 13).
//!
//! ```text
//! scenario + [search] + flags → validated Plan (plan.rs) → target started once
//!   → step after step (step.rs: one engine run per level, its own watchdog)
//!     judged against the objective over its measured window
//!   → the next level (bisect.rs: grow ×2 until a failure, then bisect to the precision)
//!   → the search file after every step (results.rs), the final line, the exit code
//! squall report / squall compare on a search file: report.rs, compare.rs
//! ```
//!
//! Why one engine run per step: the engine's schedule is a pure function of
//! its plan (that is what keeps loss exact across shards and worker
//! processes), and the next level depends on the last step's outcome, so a
//! step is one plan run to its end. Sockets therefore reconnect at each step
//! (the scenario's `ramp`, not measured); in exchange each step's accounting
//! is exact and independent, its drain waits for its own backlog, and worker
//! processes need nothing new. The target, though, is started once: a relay
//! that degrades over the search shows it.

pub mod bisect;
pub mod compare;
pub mod plan;
pub mod report;
pub mod results;
pub mod step;

use crate::exit::{Exit, Failure};
use crate::results::file;
use crate::results::time::Utc;
use crate::scenario::plan::Plan;
use crate::target::{Target, TargetError};
use bisect::{Search, Stage};
use results::{End, SearchResults};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use step::StepEnd;
use tokio::sync::watch;

/// What `squall search` was asked, free of clap: the search's own flags are
/// already `search.KEY=VALUE` overrides in `sets`.
#[derive(Debug, Clone, Default)]
pub struct SearchOptions {
    /// The scenario file.
    pub file: PathBuf,
    /// `KEY=VALUE` overrides: the user's `--set`s, then the search's flags.
    pub sets: Vec<String>,
    /// Where the search file (and hang files) go.
    pub out: PathBuf,
    /// Also write JUnit XML here.
    pub junit: Option<PathBuf>,
    /// Also write the HTML report next to the search file.
    pub report: bool,
    /// The user allows a remote target.
    pub allow_remote: bool,
}

/// `squall search FILE ...`.
pub fn run(opts: &SearchOptions) -> Result<Exit, Failure> {
    let plan = crate::scenario::plan::load(&opts.file, &opts.sets)
        .map_err(|e| Failure::usage(e.to_string()))?
        .for_run(None, opts.allow_remote);
    if !plan.search.slo_given {
        return Err(Failure::usage(format!(
            "{}: a search needs an objective: --slo p99_ms=50 (repeatable), or [search.slo] in the scenario",
            opts.file.display()
        )));
    }
    if !plan.load.stages.is_empty() {
        return Err(Failure::usage(format!(
            "{}: key `load.stages`: a search holds each level steady; remove [[load.stages]]",
            opts.file.display()
        )));
    }
    if !plan.chaos.is_empty() {
        crate::output::note(&format!(
            "squall: note: a search runs no chaos; the scenario's {} [[chaos]] step(s) are left out",
            plan.chaos.len()
        ));
    }
    plan.check_remote()
        .map_err(|e| Failure::usage(e.to_string()))?;
    let runtime = crate::cmd::runtime("squall")?;
    let mut target = Target::start(&plan.target).map_err(|e| match e {
        TargetError::Exited { .. } | TargetError::NotReady { .. } => {
            Failure::untestable(format!("could not test the target: {e}"))
        }
        _ => Failure::harness(e.to_string()),
    })?;
    let outcome = runtime.block_on(drive(&plan, opts, &mut target));
    for how in target.stop() {
        if how.was_killed() {
            crate::output::note(&format!("squall: the target had to be {how}"));
        }
    }
    runtime.shutdown_timeout(Duration::from_secs(2));
    outcome
}

/// Runs the steps against the started target and writes the search file.
async fn drive(plan: &Plan, opts: &SearchOptions, target: &mut Target) -> Result<Exit, Failure> {
    let started_at = Utc::now();
    let started = Instant::now();
    let path = results::reserve(&opts.out, &plan.name, &started_at)
        .map_err(|e| Failure::harness(format!("{}: {e}", opts.out.display())))?;
    let run_name = path
        .file_stem()
        .map_or_else(|| plan.name.clone(), |s| s.to_string_lossy().into_owned());
    let s = &plan.search;
    let mut search = Search::new(s.min, s.max, s.growth, s.precision, s.vary.whole());
    let mut results = SearchResults::new(plan, &started_at, target.describe());
    // Until it ends, the file says what a stopped search would.
    results.conclude(search.outcome(), Some(End::Signal), 0.0);
    write(&results, &path)?;

    let (stop_tx, stop) = watch::channel(false);
    let signal_name: Arc<Mutex<Option<&'static str>>> = Arc::default();
    let named = signal_name.clone();
    tokio::spawn(async move {
        let name = crate::run::stop_signal().await;
        crate::output::note(&format!(
            "squall: stopping the search ({name}); the steps done are kept, \"complete\": false"
        ));
        *named.lock().expect("signal name lock") = Some(name);
        let _ = stop_tx.send(true);
    });
    crate::output::note(&format!(
        "squall: searching the {} of {} from {} to {} within {} (precision {}%, steps of {} after a {} ramp, {} of it warm-up; results: {})",
        s.vary.noun(),
        target.describe(),
        results.level_text(s.min),
        results.level_text(s.max),
        slo_text(&results),
        crate::report::format::value(s.precision * 100.0),
        dur(s.step_duration),
        dur(plan.load.ramp),
        dur(s.warmup),
        path.display()
    ));
    let deadline = tokio::time::Instant::now() + s.time_limit;
    let mut end: Option<End> = None;
    let mut index = 0u32;
    let mut settle_before: Option<Duration> = None;
    while let Some((level, stage)) = search.next() {
        if *stop.borrow() {
            end = Some(End::Signal);
            break;
        }
        if let Some(bound) = settle_before.take() {
            let waited = step::settle(
                target.endpoints.health.clone(),
                target
                    .tls_client()
                    .map_err(|e| Failure::harness(e.to_string()))?,
                bound,
            )
            .await;
            crate::output::note(&format!(
                "squall: step {index}'s backlog was still arriving when its drain ended; waited {:.1}s \
                 (until the target's health check answered within 250 ms) before the next step",
                waited.as_secs_f64()
            ));
        }
        let needs = plan.load.ramp + s.step_duration + plan.load.drain;
        if tokio::time::Instant::now() + needs > deadline {
            end = Some(End::TimeLimit);
            break;
        }
        index += 1;
        crate::output::note(&format!(
            "squall: step {index} · {} · {} · {} ramp + {} ({} warm-up)",
            match stage {
                Stage::Grow => "grow",
                Stage::Bisect => "bisect",
            },
            results.level_text(level),
            dur(plan.load.ramp),
            dur(s.step_duration),
            dur(s.warmup)
        ));
        let mut env = step::Env {
            base: plan,
            sets: &opts.sets,
            allow_remote: opts.allow_remote,
            out: &opts.out,
            run_name: &run_name,
            target,
            stop: stop.clone(),
            deadline,
            started,
        };
        let done = step::run(&mut env, index, level, stage).await?;
        crate::output::note(&format!(
            "squall: {}",
            results::step_line(&results, &done.step)
        ));
        // A target that died, or could not be tested, failed no level: it
        // ends the search without bounding it.
        if let (Some(judged), StepEnd::Ran | StepEnd::Signal | StepEnd::TimeLimit) =
            (done.step.judged, &done.end)
        {
            search.record(level, judged);
        }
        if !done.step.drained && done.step.judged.is_some() {
            settle_before = Some(plan.load.drain_limit());
        }
        results.steps.push(done.step);
        end = match done.end {
            StepEnd::Ran => None,
            StepEnd::Signal => Some(End::Signal),
            StepEnd::TimeLimit => Some(End::TimeLimit),
            StepEnd::Died => Some(End::Died),
            StepEnd::Untestable => Some(End::Untestable),
            StepEnd::Harness(e) => {
                crate::output::note(&format!("squall: error: {e}"));
                Some(End::Harness)
            }
        };
        // The file holds every step done, whatever comes next.
        results.conclude(
            search.outcome(),
            end.or(Some(End::Signal)),
            started.elapsed().as_secs_f64(),
        );
        write(&results, &path)?;
        if end.is_some() {
            break;
        }
    }
    if end.is_none() && *stop.borrow() && !search.done() {
        end = Some(End::Signal);
    }
    results.conclude(search.outcome(), end, started.elapsed().as_secs_f64());
    write(&results, &path)?;
    finish(&results, &path, opts)
}

/// Prints the verdict and the final line; writes JUnit and the report if asked.
fn finish(results: &SearchResults, path: &Path, opts: &SearchOptions) -> Result<Exit, Failure> {
    let mut out = String::from("\n");
    for sentence in &results.verdict {
        out.push_str(&format!("  → {sentence}\n"));
    }
    out.push_str(&format!("  results: {}\n", path.display()));
    if opts.report {
        let html = path.with_extension("html");
        report::write_html(path, &html)
            .map_err(|e| Failure::harness(format!("{}: {e}", html.display())))?;
        out.push_str(&format!("  report: {}\n", html.display()));
    }
    out.push_str(&format!("{}\n", results.summary));
    crate::output::print(&out);
    if let Some(junit) = &opts.junit {
        file::write_atomic(junit, results.junit().as_bytes())
            .map_err(|e| Failure::harness(format!("{}: {e}", junit.display())))?;
    }
    Ok(match results.exit_code {
        0 => Exit::Passed,
        3 => Exit::Breached,
        4 => Exit::Hung,
        5 => Exit::Untestable,
        _ => Exit::HarnessFailed,
    })
}

fn write(results: &SearchResults, path: &Path) -> Result<(), Failure> {
    file::write_json_atomic(path, results)
        .map_err(|e| Failure::harness(format!("{}: {e}", path.display())))
}

/// A duration as scenario files write it: `2s`, `250ms`.
fn dur(d: Duration) -> String {
    crate::scenario::duration::Dur(d).to_string()
}

/// `p99_ms <= 100, loss_ratio <= 0.001, ...` (the defaults left out).
fn slo_text(r: &SearchResults) -> String {
    let parts: Vec<String> = r
        .slo
        .iter()
        .filter(|s| {
            !matches!(s.name.as_str(), "target_disconnects" | "min_received")
                || s.limit != if s.floor { 1.0 } else { 0.0 }
        })
        .map(|s| {
            format!(
                "{} {} {}",
                s.name,
                if s.floor { ">=" } else { "<=" },
                crate::report::format::value(s.limit)
            )
        })
        .collect();
    parts.join(", ")
}
