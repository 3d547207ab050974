//! `squall run` and `squall validate`: scenario → target → load → snapshots
//! to every consumer → results, thresholds and exit code. The harness never
//! waits past the run's deadline (duration + drain + 10 s), whatever the
//! target does, and Ctrl-C still writes what was measured.

pub mod chaos;
pub mod live;
pub mod load;
pub mod metrics;
pub mod progress;
pub mod start;
pub mod timeline;
pub mod worker;

use crate::exit::{Exit, Failure};
use crate::results::file::{self, RunFiles};
use crate::results::time::Utc;
use crate::results::{Parts, Results, summary};
use crate::scenario::plan::{self, Plan};
use crate::target::{Target, TargetError};
use live::Live;
use squall_loadgen::{LoadReport, Origin, Phase, Shard};
use std::path::{Path, PathBuf};
use std::time::Duration;
use timeline::Timeline;
use tokio::sync::watch;

/// `squall validate FILE...`: every check `run` makes before it starts the
/// target (the overrides, the guard on remote targets included), one line per
/// file; exit 0 when all are valid, else 2 with every error.
pub fn validate(files: &[PathBuf], sets: &[String], allow_remote: bool) -> Result<Exit, Failure> {
    let mut errors = Vec::new();
    for file in files {
        let checked = plan::load(file, sets)
            .map_err(|e| e.to_string())
            .map(|p| p.for_run(None, allow_remote))
            .and_then(|p| {
                p.check_remote()
                    .map_err(|e| format!("{}: {e}", file.display()))
                    .map(|()| p)
            });
        match checked {
            Ok(plan) => {
                let l = &plan.load;
                crate::output::print(&format!(
                    "{}: ok: {} connections over {:?}, {} publishers at {} msg/s for {:?}, {} threshold(s)\n",
                    file.display(),
                    l.peak_connections(),
                    l.ramp,
                    l.publishers,
                    l.rate,
                    l.duration,
                    plan.thresholds.len()
                ));
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(Exit::Passed)
    } else {
        Err(Failure::usage(errors.join("\n")))
    }
}

/// What `squall run` was asked beyond the scenario file: the command
/// line's choices, as `src/cmd` hands them over (no clap type past there).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The scenario file.
    pub file: PathBuf,
    /// `KEY=VALUE` overrides, applied to the file before it is parsed.
    pub sets: Vec<String>,
    /// Directory for the results, the timeline and hang diagnostics.
    pub out: PathBuf,
    /// Show the live TUI; otherwise one progress line a second on stderr.
    pub tui: bool,
    /// Also write the thresholds as JUnit XML to this file.
    pub junit: Option<PathBuf>,
    /// Also write the HTML report next to the results.
    pub report: bool,
    /// Run only this shard of the connections.
    pub shard: Option<Shard>,
    /// The user allows a remote target (the scenario must allow it too).
    pub allow_remote: bool,
    /// Run as a worker process of another `squall run`.
    pub worker: Option<WorkerRole>,
    /// Start at this wall-clock instant, as every shard of the run does.
    pub start_at: Option<start::StartAt>,
    /// Serve live figures to Prometheus.
    pub metrics: Option<metrics::MetricsOptions>,
}

/// A worker's part in its parent's run.
#[derive(Debug, Clone)]
pub struct WorkerRole {
    /// The parent's origin.
    pub origin: Origin,
    /// The parent's target URLs.
    pub urls: Vec<String>,
    /// This worker's part of the parent's shard.
    pub part: Shard,
}

/// `squall run FILE ...`.
pub fn run(opts: &RunOptions) -> Result<Exit, Failure> {
    let plan = plan::load(&opts.file, &opts.sets)
        .map_err(|e| Failure::usage(e.to_string()))?
        .for_run(opts.shard, opts.allow_remote);
    // A shard owns whole topics (`LoadPlan::group`), so one that starts a
    // target of its own still measures every delivery it owes.
    plan.check_shard()
        .map_err(|e| Failure::usage(format!("{}: {e}", opts.file.display())))?;
    if let Some(at) = &opts.start_at {
        at.lead().map_err(|e| Failure::usage(e.to_string()))?;
    }
    let runtime = crate::cmd::runtime("squall")?;
    if let Some(role) = &opts.worker {
        let load = plan
            .load_for(role.urls.clone())
            .shard(role.part.index, role.part.count);
        return runtime
            .block_on(worker::serve(load, role.origin))
            .map(|()| Exit::Passed)
            .map_err(Failure::harness);
    }
    plan.check_remote()
        .map_err(|e| Failure::usage(e.to_string()))?;
    let target = Target::start(&plan.target).map_err(|e| match e {
        // A target that dies or never gets ready cannot be tested (exit 5);
        // anything else is squall's own failure (exit 1).
        TargetError::Exited { .. } | TargetError::NotReady { .. } => {
            Failure::untestable(format!("could not test the target: {e}"))
        }
        _ => Failure::harness(e.to_string()),
    })?;
    let mut target = target;
    if target.uses_tls() && target.tls.insecure {
        crate::output::note(
            "squall: WARNING: tls_insecure = true: the target's TLS certificate is NOT verified \
             (the results file records it)",
        );
    }
    let outcome = runtime.block_on(drive(&plan, opts, &mut target));
    for how in target.stop() {
        if how.was_killed() {
            crate::output::note(&format!("squall: the target had to be {how}"));
        }
    }
    runtime.shutdown_timeout(Duration::from_secs(2));
    outcome
}

/// Runs the load against a started target and writes the results.
async fn drive(plan: &Plan, opts: &RunOptions, target: &mut Target) -> Result<Exit, Failure> {
    let shard = plan.load.group;
    let sharded = (shard.count > 1).then(|| format!("{}/{}", shard.index + 1, shard.count));
    let live_metrics = metrics::Metrics::new(&plan.name, sharded.clone(), &target.describe());
    let server = match &opts.metrics {
        Some(m) => {
            let server = metrics::server::Server::start(m, live_metrics.clone())
                .await
                .map_err(|e| Failure::usage(e.to_string()))?;
            crate::output::note(&format!(
                "squall: live metrics at {}",
                metrics::url(server.addr)
            ));
            Some(server)
        }
        None => None,
    };
    // Shards of one run wait for the agreed instant and take their origin
    // then: one t = 0 on every machine.
    let started = match &opts.start_at {
        Some(at) => {
            if let Ok(lead) = at.lead() {
                crate::output::note(&format!(
                    "squall: waiting {:.1} s for --start-at {}",
                    lead.as_secs_f64(),
                    at.text
                ));
            }
            at.wait(stop_signal()).await.map_err(|e| match e {
                start::StartAtError::Stopped(_) => Failure::harness(e.to_string()),
                _ => Failure::usage(e.to_string()),
            })?;
            at.utc()
        }
        None => Utc::now(),
    };
    // Shards write side by side (a shared volume): each name says its shard.
    let stem = match &sharded {
        Some(_) => format!("{}-shard{}of{}", plan.name, shard.index + 1, shard.count),
        None => plan.name.clone(),
    };
    let files = RunFiles::reserve(&opts.out, &stem, &started)
        .map_err(|e| Failure::harness(format!("{}: {e}", opts.out.display())))?;
    let origin = Origin::now();
    let run_name = files
        .results
        .file_stem()
        .map_or_else(|| plan.name.clone(), |s| s.to_string_lossy().into_owned());
    let (mut side, urls) = chaos::ChaosSide::start(
        plan,
        target,
        origin,
        &opts.out,
        &run_name,
        plan.allow_remote,
    )
    .await
    .inspect_err(|_| {
        // Nothing ran: leave no empty timeline behind.
        let _ = std::fs::remove_file(&files.timeline);
    })?;
    let (stop_tx, stop) = watch::channel(false);
    let on_signal = stop_tx.clone();
    tokio::spawn(async move {
        let name = stop_signal().await;
        crate::output::note(&format!(
            "squall: stopping early ({name}); the results will say \"complete\": false"
        ));
        let _ = on_signal.send(true);
    });
    let mut load = start_load(plan, opts, urls, origin, stop.clone()).inspect_err(|_| {
        let _ = std::fs::remove_file(&files.timeline);
    })?;
    let tui = opts.tui;
    let (ui_tx, ui_rx) = watch::channel(None);
    let ui = tui.then(|| {
        let stop_tx = stop_tx.clone();
        tokio::task::spawn_blocking(move || {
            crate::tui::run_live(ui_rx, move || {
                let _ = stop_tx.send(true);
            })
        })
    });

    // Every consumer gets the same snapshot once a second: the timeline,
    // then the progress line or the TUI.
    let mut live = Live::new(
        &plan.name,
        &target.describe(),
        plan.duration().as_secs_f64(),
        &plan.thresholds,
    );
    let mut timeline = Timeline::new(files.timeline_file);
    let left = plan
        .deadline()
        .saturating_sub(Duration::from_nanos(origin.elapsed_ns()));
    let deadline = tokio::time::sleep(left);
    tokio::pin!(deadline);
    // A process squall owns that ends is noticed within this, not after the
    // watchdog's probe timeouts.
    let mut exit_checks = tokio::time::interval(Duration::from_millis(250));
    let mut exited = false;
    loop {
        tokio::select! {
            s = load.snapshots.recv() => match s {
                Some(s) => {
                    if s.phase == Phase::Done {
                        // The drain is over: squall now closes its own
                        // sockets, which is no longer the target's doing.
                        side.stop_watchdog().await;
                    } else {
                        side.note_progress(&s, &plan.load);
                    }
                    let snap = live.next(&s, side.watchdog(), side.events(), side.proxy_cut());
                    live_metrics.observe(&snap);
                    timeline.write(&snap);
                    if !tui {
                        crate::output::progress(&progress::line(&snap));
                    }
                    let _ = ui_tx.send(Some(snap));
                }
                None => break,
            },
            _ = exit_checks.tick(), if !exited => {
                if let Some(how) = target.exited() {
                    exited = true;
                    side.target_exited(how.to_string());
                }
            }
            () = &mut deadline => {
                crate::output::note(&format!("squall: the run passed its deadline ({:?}); ending it", plan.deadline()));
                let _ = stop_tx.send(true);
                break;
            }
        }
    }
    let report = load.final_report().await;
    drop(ui_tx);
    if let Some(ui) = ui
        && let Err(why) = crate::tui::join(ui).await
    {
        crate::output::note(&format!("squall: {why}"));
    }
    let record = side.finish(Duration::from_secs(2)).await;
    let harness_error = report.as_ref().err().cloned();
    if let Some(e) = &harness_error {
        crate::output::note(&format!("squall: error: {e}"));
    }
    let results = Results::build(Parts {
        scenario: plan.name.clone(),
        file: plan.file.display().to_string(),
        started_at: opts
            .start_at
            .as_ref()
            .map_or_else(|| started.rfc3339(), |at| at.text.clone()),
        planned_s: plan.duration().as_secs_f64(),
        target: target.describe(),
        tls: target.uses_tls().then(|| crate::results::TlsUse {
            insecure: target.tls.insecure,
            ca_file: target.tls.ca_file.as_ref().map(|p| p.display().to_string()),
        }),
        settings: crate::merge::shard_settings(
            &plan.settings,
            sharded.is_some().then_some(shard),
            opts.start_at.as_ref().map(|at| at.text.as_str()),
        ),
        thresholds: plan.thresholds.clone(),
        report: report.unwrap_or_else(|_| LoadReport::default()),
        hangs: record.hangs.into_iter().map(Into::into).collect(),
        chaos: record.steps.into_iter().map(Into::into).collect(),
        proxy_cut: record.proxy_cut,
        timeline: timeline
            .error()
            .is_none()
            .then(|| files.timeline.display().to_string()),
        worst_window_p99_ms: live.worst_window_p99_ms(),
        harness_failed: harness_error.is_some(),
    });
    live_metrics.finish(&results);
    let exit = write(&results, &files.results, opts);
    if let (Some(m), Some(_)) = (&opts.metrics, &server) {
        // The final figures stay up for one more scrape.
        let mut stop = stop;
        if !m.linger.is_zero() && !*stop.borrow() {
            tokio::select! {
                () = tokio::time::sleep(m.linger) => {}
                _ = stop.changed() => {}
            }
        }
    }
    exit
}

/// Waits for Ctrl-C (SIGINT), SIGTERM (a CI job's timeout) or SIGHUP (the
/// terminal of a soak test closed) and names it: each ends the run early
/// with its results written.
pub async fn stop_signal() -> &'static str {
    use tokio::signal::unix::{Signal, SignalKind, signal};
    async fn recv(s: &mut Option<Signal>) -> Option<()> {
        match s {
            Some(s) => s.recv().await,
            None => None,
        }
    }
    let mut term = signal(SignalKind::terminate()).ok();
    let mut hup = signal(SignalKind::hangup()).ok();
    // A signal whose handler cannot be installed never fires.
    tokio::select! {
        Ok(()) = tokio::signal::ctrl_c() => "Ctrl-C",
        Some(()) = recv(&mut term) => "SIGTERM",
        Some(()) = recv(&mut hup) => "SIGHUP: the terminal went away",
        else => std::future::pending().await,
    }
}

/// Starts the engine in this process, or in worker processes when the load
/// holds more sockets than one process may open.
fn start_load(
    plan: &Plan,
    opts: &RunOptions,
    urls: Vec<String>,
    origin: Origin,
    stop: watch::Receiver<bool>,
) -> Result<load::LoadRun, Failure> {
    let processes = plan.processes();
    if processes <= 1 {
        return Ok(load::in_process(plan.load_for(urls), origin, stop));
    }
    crate::output::note(&format!(
        "squall: {} sockets: running the load in {processes} worker processes",
        plan.load.peak_connections()
    ));
    let spec = worker::WorkerSpec {
        exe: crate::target::current_exe().map_err(|e| Failure::harness(e.to_string()))?,
        file: plan.file.clone(),
        sets: opts.sets.clone(),
        urls,
        shard: plan.load.group,
        count: processes,
        allow_remote: plan.load.allow_remote,
    };
    load::in_workers(spec, origin, stop, plan.deadline()).map_err(Failure::harness)
}

/// Writes the results (and the JUnit file if asked) and prints the summary.
fn write(results: &Results, path: &Path, opts: &RunOptions) -> Result<Exit, Failure> {
    file::write_json_atomic(path, results)
        .map_err(|e| Failure::harness(format!("{}: {e}", path.display())))?;
    crate::output::print(&summary::render(results, Some(&path.display().to_string())));
    if opts.report {
        let html = path.with_extension("html");
        crate::report::write_html(path, &html)
            .map_err(|e| Failure::harness(format!("{}: {e}", html.display())))?;
        crate::output::print(&format!("  report: {}\n", html.display()));
    }
    if let Some(junit) = &opts.junit {
        file::write_atomic(junit, crate::junit::render(results).as_bytes())
            .map_err(|e| Failure::harness(format!("{}: {e}", junit.display())))?;
    }
    Ok(results.exit())
}
