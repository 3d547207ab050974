//! One step of a capacity search: the scenario at one level, as one run of
//! the load engine against the target the search started once.
//!
//! A step is a plain `squall run` of `ramp + step_duration` with the level
//! set as an override (`--set load.rate=R`), so that worker processes
//! (past one process's sockets) rebuild exactly the same plan from the file
//! and the same overrides, as `squall run`'s workers do. Its own watchdog
//! judges hangs from the step's own progress; no chaos runs.
//!
//! What is judged comes from the engine's once-a-second snapshots: latency
//! over the measured window (from the end of the warm-up; the deliveries of
//! the drain count too, since they belong to the window's messages), sends
//! and send lag over the window, and from the step's final report: loss
//! (known only once the drain is over), connections, disconnects. The step
//! fails if any objective breaks or the target hung; it measured the
//! generator, not the target, if the publishers sent under 90% of their
//! schedule or fell further behind it than `max_send_lag`.

use super::bisect::{Judged, Stage};
use super::results::Step;
use crate::exit::{Exit, Failure};
use crate::results::verdict::{self, Evidence};
use crate::results::{Hang, Latency, figures};
use crate::run::chaos::ChaosSide;
use crate::run::live::Live;
use crate::run::load::{self, LoadRun};
use crate::run::worker::WorkerSpec;
use crate::scenario::plan::{self, Plan};
use crate::snapshot::{Snapshot, WatchdogSnap};
use crate::target::Target;
use crate::thresholds::{Measured, WindowedP99};
use squall_loadgen::{LatencyHistogram, LoadReport, LoadSnapshot, Origin, Phase};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// A publisher sending less than this share of its schedule fell behind.
const MIN_SENT_RATIO: f64 = 0.9;

/// What every step of one search shares.
pub struct Env<'a> {
    /// The scenario, validated with the user's overrides.
    pub base: &'a Plan,
    /// The user's overrides (the search's flags among them).
    pub sets: &'a [String],
    /// The user allows a remote target.
    pub allow_remote: bool,
    /// Where hang files go.
    pub out: &'a Path,
    /// The search file's stem, which names hang files.
    pub run_name: &'a str,
    /// The target, started once for the whole search.
    pub target: &'a mut Target,
    /// Set when the whole search must stop (a signal).
    pub stop: watch::Receiver<bool>,
    /// When the whole search must end.
    pub deadline: tokio::time::Instant,
    /// When the search started.
    pub started: Instant,
    /// Where the step's lines go.
    pub notes: &'a super::Notes,
    /// The live screen's feed of the step's snapshots, when the TUI is on.
    pub screen: Option<&'a watch::Sender<Option<Snapshot>>>,
}

/// How a step ended, beyond its judgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepEnd {
    /// It ran to its end.
    Ran,
    /// A signal stopped it.
    Signal,
    /// The search's time limit stopped it.
    TimeLimit,
    /// The target died or became unreachable.
    Died,
    /// No connection got through.
    Untestable,
    /// squall failed (the engine did not report).
    Harness(String),
}

/// A step done.
#[derive(Debug)]
pub struct StepRun {
    /// Its record for the search file.
    pub step: Step,
    /// How it ended.
    pub end: StepEnd,
}

/// The overrides that make the scenario one step at `level`.
pub fn overrides(base: &Plan, sets: &[String], level: f64) -> Vec<String> {
    let s = &base.search;
    let mut out = sets.to_vec();
    match s.vary {
        super::plan::Vary::Rate => out.push(format!("load.rate={level}")),
        super::plan::Vary::Connections => {
            let n = level as u64;
            out.push(format!("load.connections={n}"));
            if base.load.publishers > n {
                out.push(format!("load.publishers={n}"));
            }
        }
    }
    let duration = base.load.ramp + s.step_duration;
    out.push(format!("duration={}ms", duration.as_millis()));
    out
}

/// Runs one step at `level`.
pub async fn run(
    env: &mut Env<'_>,
    index: u32,
    level: f64,
    stage: Stage,
) -> Result<StepRun, Failure> {
    let sets = overrides(env.base, env.sets, level);
    let mut plan = plan::load(&env.base.file, &sets)
        .map_err(|e| Failure::usage(format!("step {index} at {level}: {e}")))?
        .for_run(None, env.allow_remote);
    plan.chaos.clear();
    let started_s = env.started.elapsed().as_secs_f64();
    let origin = Origin::now();
    let ramp = plan.load.ramp.as_secs_f64();
    let publish_end = plan.duration().as_secs_f64();
    let from_s = ramp + env.base.search.warmup.as_secs_f64();
    let name = format!("{}-step-{index}", env.run_name);
    let (mut side, urls) =
        ChaosSide::start(&plan, env.target, origin, env.out, &name, plan.allow_remote).await?;
    let (step_stop_tx, step_stop) = watch::channel(false);
    let mut load = start_load(&plan, &sets, urls, origin, step_stop, env.notes)?;
    let mut window = Window::new(from_s, publish_end, env.base);
    // The screen's view of the step: its snapshots judged against the
    // objective as they come (the step's verdict is the window's, below).
    let mut live = env.screen.map(|_| {
        Live::new(
            &plan.name,
            &env.target.describe(),
            publish_end,
            &env.base.search.slo,
        )
    });
    let step_deadline = tokio::time::Instant::now() + plan.deadline();
    let mut exit_checks = tokio::time::interval(Duration::from_millis(250));
    let mut died = false;
    let mut end = StepEnd::Ran;
    let mut global_stop = env.stop.clone();
    let mut stopping = *global_stop.borrow();
    if stopping {
        end = StepEnd::Signal;
        let _ = step_stop_tx.send(true);
    }
    loop {
        tokio::select! {
            s = load.snapshots.recv() => match s {
                Some(s) => {
                    if s.phase == Phase::Done {
                        side.stop_watchdog().await;
                    } else {
                        side.note_progress(&s, &plan.load);
                    }
                    window.absorb(&s, &side.watchdog());
                    if let (Some(live), Some(screen)) = (&mut live, env.screen) {
                        screen.send_replace(Some(live.next(&s, side.watchdog(), Vec::new(), side.proxy_cut())));
                    }
                }
                None => break,
            },
            _ = exit_checks.tick(), if !died => {
                if let Some(how) = env.target.exited() {
                    died = true;
                    side.target_exited(how.to_string());
                }
            }
            changed = global_stop.changed(), if !stopping => {
                if changed.is_err() || *global_stop.borrow() {
                    stopping = true;
                    end = StepEnd::Signal;
                    let _ = step_stop_tx.send(true);
                }
            }
            () = tokio::time::sleep_until(env.deadline), if !stopping => {
                stopping = true;
                end = StepEnd::TimeLimit;
                let _ = step_stop_tx.send(true);
            }
            () = tokio::time::sleep_until(step_deadline) => {
                env.notes.say(&format!(
                    "squall: step {index} passed its deadline ({:?}); ending it",
                    plan.deadline()
                ));
                let _ = step_stop_tx.send(true);
                break;
            }
        }
    }
    let report = load.final_report().await;
    let record = side.finish(Duration::from_secs(2)).await;
    let duration_s = env.started.elapsed().as_secs_f64() - started_s;
    let hangs: Vec<Hang> = record.hangs.into_iter().map(Into::into).collect();
    let harness_error = report.as_ref().err().cloned();
    let report = report.unwrap_or_default();
    let measure = Measure {
        plan: &plan,
        base: env.base,
        target: env.target.describe(),
        report: &report,
        window: &window,
        hangs,
        proxy_cut: record.proxy_cut,
        harness_failed: harness_error.is_some(),
        stopped: end != StepEnd::Ran,
    };
    let (step, judged_end) = measure.judge(index, level, stage, started_s, duration_s);
    let end = match (end, harness_error) {
        (StepEnd::Ran, Some(e)) => StepEnd::Harness(e),
        (StepEnd::Ran, None) if died => StepEnd::Died,
        (StepEnd::Ran, None) => judged_end,
        (end, _) => end,
    };
    Ok(StepRun { step, end })
}

/// Starts the step's load in this process, or in worker processes past one
/// process's sockets (each rebuilds the step's plan from the same overrides).
fn start_load(
    plan: &Plan,
    sets: &[String],
    urls: Vec<String>,
    origin: Origin,
    stop: watch::Receiver<bool>,
    notes: &super::Notes,
) -> Result<LoadRun, Failure> {
    let processes = plan.processes();
    if processes <= 1 {
        return Ok(load::in_process(plan.load_for(urls), origin, stop));
    }
    notes.say(&format!(
        "squall: {} sockets: running the step in {processes} worker processes",
        plan.load.peak_connections()
    ));
    let spec = WorkerSpec {
        exe: crate::target::current_exe().map_err(|e| Failure::harness(e.to_string()))?,
        file: plan.file.clone(),
        sets: sets.to_vec(),
        urls,
        shard: plan.load.group,
        count: processes,
        allow_remote: plan.load.allow_remote,
    };
    load::in_workers(spec, origin, stop, plan.deadline()).map_err(Failure::harness)
}

/// What the snapshots of a step's measured window add up to.
#[derive(Debug)]
struct Window {
    from_s: f64,
    to_s: f64,
    latency: LatencyHistogram,
    windowed: Option<WindowedP99>,
    sent: u64,
    received: u64,
    seconds: f64,
    max_lag_ms: f64,
    probe_max_ms: Option<f64>,
    unanswered: u64,
    health_p99_ms: f64,
    /// The last second that received a delivery, and the end of the step.
    last_delivery_s: f64,
    end_s: f64,
}

impl Window {
    fn new(from_s: f64, to_s: f64, base: &Plan) -> Window {
        Window {
            from_s,
            to_s,
            latency: LatencyHistogram::new(),
            windowed: base.search.slo.window_seconds().map(WindowedP99::new),
            sent: 0,
            received: 0,
            seconds: 0.0,
            max_lag_ms: 0.0,
            probe_max_ms: None,
            unanswered: 0,
            health_p99_ms: 0.0,
            last_delivery_s: 0.0,
            end_s: 0.0,
        }
    }

    /// Adds one snapshot: a second wholly after the warm-up counts.
    fn absorb(&mut self, s: &LoadSnapshot, watchdog: &WatchdogSnap) {
        const EPS: f64 = 0.01;
        self.end_s = self.end_s.max(s.t_s);
        if s.messages.received_interval > 0 {
            self.last_delivery_s = s.t_s;
        }
        if s.t_s - s.interval_s + EPS < self.from_s {
            return;
        }
        self.latency.merge(&s.latency);
        if let Some(w) = &mut self.windowed {
            w.push(&s.latency);
        }
        if s.t_s <= self.to_s + EPS && s.phase != Phase::Done {
            self.sent += s.messages.sent_interval;
            self.received += s.messages.received_interval;
            self.seconds += s.interval_s;
            self.max_lag_ms = self.max_lag_ms.max(s.send_lag_ms);
            match watchdog.probe_ms {
                Some(ms) => self.probe_max_ms = Some(self.probe_max_ms.map_or(ms, |m| m.max(ms))),
                None if watchdog.state != "off" => self.unanswered += 1,
                None => {}
            }
        }
        if watchdog.state != "off" {
            self.health_p99_ms = watchdog.health_p99_ms;
        }
    }
}

/// Everything a step is judged from.
struct Measure<'a> {
    plan: &'a Plan,
    base: &'a Plan,
    target: String,
    report: &'a LoadReport,
    window: &'a Window,
    hangs: Vec<Hang>,
    /// Load sockets the fault proxy's toxics ended.
    proxy_cut: u64,
    harness_failed: bool,
    stopped: bool,
}

impl Measure<'_> {
    /// The step's record, and how it ends the search (if it does).
    fn judge(
        self,
        index: u32,
        level: f64,
        stage: Stage,
        started_s: f64,
        duration_s: f64,
    ) -> (Step, StepEnd) {
        let plan = self.plan;
        let w = self.window;
        let (connections, messages) =
            figures(self.report, plan.duration().as_secs_f64(), self.proxy_cut);
        let latency_ms = Latency::of(&w.latency);
        let lag = Latency::of(&self.report.send_lag);
        let measured = Measured {
            p50_ms: latency_ms.p50,
            p99_ms: latency_ms.p99,
            p999_ms: latency_ms.p999,
            loss_ratio: messages.loss_ratio,
            duplicated: messages.duplicated,
            hangs: self.hangs.len() as u64,
            connect_error_ratio: connections.error_ratio,
            worst_window_p99_ms: w.windowed.as_ref().map_or(0.0, WindowedP99::worst_ms),
            target_disconnects: connections.target_disconnects(),
            received: messages.received,
            rejected: self.report.nostr.as_ref().map_or(0, |n| n.rejected_total()),
        };
        let slo = self.base.search.slo.evaluate(&measured);
        let nostr = self.report.nostr.as_ref().map(crate::results::Nostr::of);
        let verdict = verdict::judge(&Evidence {
            target: &self.target,
            connections: &connections,
            nostr: nostr.as_ref(),
            hangs: &self.hangs,
            thresholds: &slo,
            complete: self.report.complete && !self.stopped,
            harness_failed: self.harness_failed,
        });
        let rate = plan.load.rate;
        let offered = rate * w.seconds;
        let sent_ratio = if offered > 0.0 {
            w.sent as f64 / offered
        } else {
            1.0
        };
        // Subscribers per topic, as planned (what was owed also depends on
        // when each subscription was acknowledged).
        let l = &plan.load;
        let topics = f64::from(l.topics.max(1));
        let fan_out = l.peak_connections() as f64
            * f64::from(l.subscriptions_per_connection.min(l.topics))
            / topics;
        let per_s = |n: u64| {
            if w.seconds > 0.0 {
                n as f64 / w.seconds
            } else {
                0.0
            }
        };
        // Each publisher's share is whole messages: allow one each.
        let slack = plan.load.publishers as f64;
        let max_lag_ms = self.base.search.max_send_lag.as_secs_f64() * 1000.0;
        // Sockets the target closed, or never let in, do not send: that is
        // the target's doing, judged by the objective, not the generator's.
        let all_there = connections.failed == 0 && connections.dropped.is_empty();
        let behind_rate = all_there && (w.sent as f64) + slack < MIN_SENT_RATIO * offered;
        let behind_lag = w.max_lag_ms > max_lag_ms;
        let drain_limit = plan.load.drain_limit().as_secs_f64();
        let drained = w.end_s < plan.duration().as_secs_f64() + drain_limit - 0.5;
        let mut reasons: Vec<String> = Vec::new();
        let (judged, end) = if self.stopped {
            reasons.push("stopped before its end: not judged".into());
            (None, StepEnd::Ran)
        } else if verdict.exit == Exit::Untestable {
            reasons.extend(verdict.sentences.iter().cloned());
            (Some(Judged::Fail), StepEnd::Untestable)
        } else if self
            .hangs
            .iter()
            .any(|h| matches!(h.kind.as_str(), "exited" | "unreachable"))
        {
            reasons.extend(verdict.sentences.iter().cloned());
            (Some(Judged::Fail), StepEnd::Died)
        } else if behind_rate || behind_lag {
            reasons.push(format!(
                "the publishers sent {:.0}% of their schedule, up to {} behind it (more than {} behind, or under {:.0}%, \
                 is the generator's limit, or a target that stops reading)",
                sent_ratio * 100.0,
                crate::report::format::ms(w.max_lag_ms),
                crate::report::format::ms(max_lag_ms),
                MIN_SENT_RATIO * 100.0
            ));
            (Some(Judged::Generator), StepEnd::Ran)
        } else if matches!(verdict.exit, Exit::Hung | Exit::Breached) {
            reasons.extend(verdict.sentences.iter().cloned());
            (Some(Judged::Fail), StepEnd::Ran)
        } else if verdict.exit == Exit::HarnessFailed {
            reasons.extend(verdict.sentences.iter().cloned());
            (
                None,
                StepEnd::Harness("the step's load did not complete".into()),
            )
        } else {
            (Some(Judged::Pass), StepEnd::Ran)
        };
        if !drained && judged.is_some() {
            reasons.push(format!(
                "deliveries were still arriving at the end of the drain ({}s)",
                crate::report::format::value(drain_limit)
            ));
        }
        let step = Step {
            index,
            stage: Some(stage),
            level,
            rate,
            planned_connections: plan.load.peak_connections(),
            judged,
            passed: judged == Some(Judged::Pass),
            reasons,
            started_s,
            duration_s,
            window_from_s: w.from_s,
            window_to_s: w.to_s,
            latency_ms,
            throughput: super::results::Throughput {
                offered_per_s: rate,
                sent_per_s: per_s(w.sent),
                sent_ratio,
                fan_out,
                expected_per_s: rate * fan_out,
                delivered_per_s: per_s(w.received),
            },
            messages,
            connections,
            send_lag_ms: super::results::SendLag {
                window_max: w.max_lag_ms,
                p50: lag.p50,
                p99: lag.p99,
                max: lag.max,
            },
            probe_ms: super::results::Probes {
                max: w.probe_max_ms,
                unanswered: w.unanswered,
                health_p99: w.health_p99_ms,
            },
            hangs: self.hangs,
            slo,
            drained,
            drain_s: (w.end_s - plan.duration().as_secs_f64()).max(0.0),
            complete: !self.stopped,
        };
        (step, end)
    }
}

/// Waits, after a step whose backlog was still arriving when its drain
/// ended, until the target answers its health check within 250 ms (at most
/// `bound`): the next step must not start on the last one's backlog.
pub async fn settle(
    health: Option<String>,
    tls: squall_proto::TlsClient,
    bound: Duration,
) -> Duration {
    let started = Instant::now();
    let Some(url) = health else {
        tokio::time::sleep(bound.min(Duration::from_secs(2))).await;
        return started.elapsed();
    };
    while started.elapsed() < bound {
        let (u, tls) = (url.clone(), tls.clone());
        let t = Instant::now();
        let ok = tokio::task::spawn_blocking(move || {
            crate::target::health::http_status(&u, &tls, Duration::from_millis(250))
        })
        .await
        .is_ok_and(|r| r == Ok(200));
        if ok && t.elapsed() < Duration::from_millis(250) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    started.elapsed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::source::Source;

    fn plan(text: &str) -> Plan {
        let source = Source::from_text(Path::new("s.toml"), text.to_string(), &[]);
        Plan::new(&source, source.parse().unwrap()).unwrap()
    }

    #[test]
    fn a_step_is_the_scenario_with_its_level_and_length_overridden() {
        let base = plan(
            "[load]\nconnections = 50\nramp = \"2s\"\npublishers = 20\nrate = 40\n\
             [search]\nstep_duration = \"6s\"\n[search.slo]\np99_ms = 50\n",
        );
        let sets = overrides(&base, &["load.topics=5".to_string()], 95.1);
        assert_eq!(sets, ["load.topics=5", "load.rate=95.1", "duration=8000ms"]);
        let base = plan(
            "[load]\nconnections = 50\nramp = \"1s\"\npublishers = 20\n\
             [search]\nvary = \"connections\"\n[search.slo]\np99_ms = 50\n",
        );
        // Fewer sockets than publishers: every socket publishes.
        let sets = overrides(&base, &[], 12.0);
        assert_eq!(
            sets,
            [
                "load.connections=12",
                "load.publishers=12",
                "duration=11000ms"
            ]
        );
        let source = Source::from_text(Path::new("s.toml"), String::new(), &sets);
        let step = Plan::new(&source, source.parse().unwrap()).unwrap();
        assert_eq!(step.load.connections, 12);
        assert_eq!(step.duration(), Duration::from_secs(11));
    }
}
