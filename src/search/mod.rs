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
//! the live screen (TUI): snapshot.rs, the search's side of it, and each
//! step's own once-a-second Snapshot
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
pub mod snapshot;
pub mod step;

use crate::exit::{Exit, Failure};
use crate::results::file;
use crate::results::time::Utc;
use crate::scenario::plan::Plan;
use crate::snapshot::Snapshot;
use crate::target::{Target, TargetError};
use bisect::{Search, Stage};
use results::{End, SearchResults};
use snapshot::{CurrentStep, SearchSnap};
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
    /// Show the live TUI; otherwise a line on stderr when each step starts
    /// and when it is judged.
    pub tui: bool,
}

/// Where the search's lines go: stderr, or, while the TUI holds the
/// terminal, a list printed once it has let go (a line written under the
/// TUI would tear its screen, and be lost when it redraws).
#[derive(Debug, Default)]
pub struct Notes {
    /// The lines held back while the TUI runs; `None` without a TUI and
    /// once they are released. Locked only to push or take, never across I/O.
    held: Mutex<Option<Vec<String>>>,
}

impl Notes {
    /// Lines for a search with the TUI on (`held`) or off.
    pub fn new(held: bool) -> Notes {
        Notes {
            held: Mutex::new(held.then(Vec::new)),
        }
    }

    /// Writes `line` to stderr, or keeps it while the TUI runs.
    pub fn say(&self, line: &str) {
        if let Some(held) = self.held.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            held.push(line.to_string());
            return;
        }
        crate::output::note(line);
    }

    /// Writes the lines kept so far to stderr, in order; from now on every
    /// line goes straight there.
    pub fn release(&self) {
        let lines = self.held.lock().unwrap_or_else(|e| e.into_inner()).take();
        for line in lines.unwrap_or_default() {
            crate::output::note(&line);
        }
    }
}

/// The live screen's two feeds: the search (when a step starts and when it
/// is judged) and the running step's once-a-second snapshot.
#[derive(Debug)]
pub struct Screen {
    /// The search so far.
    pub search: watch::Sender<SearchSnap>,
    /// The running step's latest snapshot; `None` between steps.
    pub step: watch::Sender<Option<Snapshot>>,
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

    let notes = Arc::new(Notes::new(opts.tui));
    let (stop_tx, stop) = watch::channel(false);
    let on_signal = stop_tx.clone();
    let signalled = notes.clone();
    tokio::spawn(async move {
        let name = crate::run::stop_signal().await;
        signalled.say(&format!(
            "squall: stopping the search ({name}); the steps done are kept, \"complete\": false"
        ));
        let _ = on_signal.send(true);
    });
    let (screen, ui) = if opts.tui {
        let (search_tx, search_rx) =
            watch::channel(SearchSnap::of(&results, search.bracket(), None, 0.0));
        let (step_tx, step_rx) = watch::channel(None);
        let quit = notes.clone();
        let ui = tokio::task::spawn_blocking(move || {
            crate::tui::run_search(search_rx, step_rx, move || {
                // The screen is given back before this is called: what
                // it held, and what follows, can be printed at once.
                quit.release();
                quit.say(
                    "squall: stopping the search (q pressed); the steps done are kept, \"complete\": false",
                );
                let _ = stop_tx.send(true);
            })
        });
        (
            Some(Screen {
                search: search_tx,
                step: step_tx,
            }),
            Some(ui),
        )
    } else {
        (None, None)
    };
    notes.say(&format!(
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
            notes.say(&format!(
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
        if let Some(screen) = &screen {
            // The last step's figures go before the new step is named, so
            // the screen never folds them into the new one.
            screen.step.send_replace(None);
            screen.search.send_replace(SearchSnap::of(
                &results,
                search.bracket(),
                Some(CurrentStep {
                    index,
                    stage,
                    level,
                    window_from_s: (plan.load.ramp + s.warmup).as_secs_f64(),
                    window_to_s: (plan.load.ramp + s.step_duration).as_secs_f64(),
                }),
                started.elapsed().as_secs_f64(),
            ));
        }
        notes.say(&format!(
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
            notes: &notes,
            screen: screen.as_ref().map(|s| &s.step),
        };
        let done = step::run(&mut env, index, level, stage).await?;
        notes.say(&format!(
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
        if let Some(screen) = &screen {
            screen.search.send_replace(SearchSnap::of(
                &results,
                search.bracket(),
                None,
                started.elapsed().as_secs_f64(),
            ));
        }
        end = match done.end {
            StepEnd::Ran => None,
            StepEnd::Signal => Some(End::Signal),
            StepEnd::TimeLimit => Some(End::TimeLimit),
            StepEnd::Died => Some(End::Died),
            StepEnd::Untestable => Some(End::Untestable),
            StepEnd::Harness(e) => {
                notes.say(&format!("squall: error: {e}"));
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
    // The screen closes when its feeds do; then the lines it held are
    // printed, and the final line after them.
    drop(screen);
    if let Some(ui) = ui
        && let Err(why) = crate::tui::join(ui).await
    {
        notes.say(&format!("squall: {why}"));
    }
    notes.release();
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
