//! The search file, `<out>/<name>-search-<time>.json`: the capacity found
//! (`max_rate` or `max_connections`), the objective, and every step with its
//! full figures, written atomically after every step (so Ctrl-C, or a
//! kill, leaves the steps done), read back by `squall report` and
//! `squall compare`. Reading is lenient (every key has a default), like the
//! run's results file; `"kind": "search"` is what tells the two apart.
//!
//! Also here: the verdict and exit code of a search, its final line, and its
//! JUnit XML.

use super::bisect::{Judged, Outcome, Stage};
use super::plan::{SearchSettings, Vary};
use crate::exit::Exit;
use crate::report::format::{ms, percent, value};
use crate::results::time::Utc;
use crate::results::{Connections, Hang, Latency, Messages};
use crate::thresholds::ThresholdResult;
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};

/// The value of the `kind` key of a search file.
pub const KIND: &str = "search";

/// One search file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SearchResults {
    /// Always `"search"`: what tells a search file from a run's results.
    pub kind: String,
    /// The scenario's name.
    pub scenario: String,
    /// The scenario file.
    pub file: String,
    /// squall's version.
    pub squall_version: String,
    /// Wall-clock start, RFC 3339 UTC.
    pub started_at: String,
    /// Seconds from the start to the end of the search.
    pub duration_s: f64,
    /// False while the search runs, and when it was stopped (Ctrl-C, the
    /// time limit) or the target died before it could end.
    pub complete: bool,
    /// True when the exit code is 0.
    pub passed: bool,
    /// The exit code (DESIGN.md), 3 when the capacity is below
    /// `min_capacity`.
    pub exit_code: u8,
    /// What happened, one sentence per outcome, worst first.
    pub verdict: Vec<String>,
    /// The final line: `max rate: R msg/s (p99 X ms, loss Y) — first failing: …`.
    pub summary: String,
    /// The target's URL(s).
    pub target: String,
    /// What was varied.
    pub vary: Vary,
    /// The unit of every level (`msg/s` or `connections`).
    pub unit: String,
    /// The highest rate (msg/s published, before fan-out) that met the
    /// objective, when the rate was varied (`null` when none did).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_rate: Option<f64>,
    /// The highest connection count that met the objective, when the
    /// connections were varied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<f64>,
    /// The lowest level that failed because of the target (never one the
    /// generator could not send).
    pub first_failing: Option<f64>,
    /// How the search ended (see [`OutcomeKind`]).
    pub outcome: OutcomeKind,
    /// The CI gate, when set.
    pub min_capacity: Option<f64>,
    /// The search's own settings.
    pub search: SearchFigures,
    /// The objective every step was judged by.
    pub slo: Vec<Slo>,
    /// Every step in the order run.
    pub steps: Vec<Step>,
    /// The scenario as it ran (defaults filled in, overrides applied).
    pub settings: serde_json::Value,
}

/// How a search ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    /// The knee, to the precision: `max_rate` passed, `first_failing` failed.
    Found,
    /// Every level up to `--max` passed: `max_rate` is `--max`, a lower bound.
    NotFoundBelowMax,
    /// `--min` already failed: no `max_rate`.
    BelowMin,
    /// The generator could not send a level: `max_rate` is a lower bound.
    GeneratorLimited,
    /// Still running, or stopped by a signal: `max_rate` is what passed so far.
    #[default]
    Stopped,
    /// The time limit ended it: `max_rate` is what passed so far.
    TimeLimit,
    /// The target died (or became unreachable) during a step.
    TargetDied,
    /// The target could not be tested at all (exit 5).
    Untestable,
    /// squall itself failed (exit 1).
    HarnessFailed,
}

impl OutcomeKind {
    /// The name in the file (`found`, `not_found_below_max`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::Found => "found",
            OutcomeKind::NotFoundBelowMax => "not_found_below_max",
            OutcomeKind::BelowMin => "below_min",
            OutcomeKind::GeneratorLimited => "generator_limited",
            OutcomeKind::Stopped => "stopped",
            OutcomeKind::TimeLimit => "time_limit",
            OutcomeKind::TargetDied => "target_died",
            OutcomeKind::Untestable => "untestable",
            OutcomeKind::HarnessFailed => "harness_failed",
        }
    }

    /// Whether the capacity is a measured knee, not only a lower bound.
    pub fn is_measured(self) -> bool {
        matches!(self, OutcomeKind::Found | OutcomeKind::BelowMin)
    }
}

/// The search's settings as it ran.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SearchFigures {
    /// The first level.
    pub min: f64,
    /// The highest level.
    pub max: f64,
    /// Relative precision asked for.
    pub precision: f64,
    /// Factor between growing steps.
    pub growth: f64,
    /// Publishing time of a step after its ramp, in seconds.
    pub step_duration_s: f64,
    /// The unmeasured warm-up at its start, in seconds.
    pub warmup_s: f64,
    /// The bound of the whole search, in seconds.
    pub time_limit_s: f64,
    /// Send lag past which a step measured the generator, in ms.
    pub max_send_lag_ms: f64,
}

impl SearchFigures {
    /// The figures of validated settings.
    pub fn of(s: &SearchSettings) -> SearchFigures {
        SearchFigures {
            min: s.min,
            max: s.max,
            precision: s.precision,
            growth: s.growth,
            step_duration_s: s.step_duration.as_secs_f64(),
            warmup_s: s.warmup.as_secs_f64(),
            time_limit_s: s.time_limit.as_secs_f64(),
            max_send_lag_ms: s.max_send_lag.as_secs_f64() * 1000.0,
        }
    }
}

/// One objective.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Slo {
    /// The threshold key (`p99_ms`, `loss_ratio`, ...).
    pub name: String,
    /// Its limit.
    pub limit: f64,
    /// The limit is a floor (`min_received`), not a ceiling.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub floor: bool,
}

/// One step: one level, run to its end, and how it was judged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Step {
    /// 1-based.
    pub index: u32,
    /// Growing or bisecting.
    pub stage: Option<Stage>,
    /// The level tried, in the search's unit.
    pub level: f64,
    /// The step's publish rate (msg/s in all, before fan-out).
    pub rate: f64,
    /// The step's connection count.
    pub planned_connections: u64,
    /// `pass`, `fail` or `generator`; `null` when the step was stopped
    /// before it could be judged.
    pub judged: Option<Judged>,
    /// Judged `pass`.
    pub passed: bool,
    /// Why it failed (or what else happened), one sentence each.
    pub reasons: Vec<String>,
    /// When it started, seconds from the start of the search.
    pub started_s: f64,
    /// How long it took, ramp and drain included, in seconds.
    pub duration_s: f64,
    /// The measured window, seconds from the step's own origin: from the end
    /// of the warm-up to the end of publishing (latency also counts the
    /// deliveries of the drain that follows).
    pub window_from_s: f64,
    /// End of the measured window.
    pub window_to_s: f64,
    /// Latency of the window's deliveries, in ms.
    pub latency_ms: Latency,
    /// Rates in the window.
    pub throughput: Throughput,
    /// The step's message counts (the whole step: loss is known only after
    /// the drain).
    pub messages: Messages,
    /// The step's sockets.
    pub connections: Connections,
    /// How far the publishers fell behind their schedule.
    pub send_lag_ms: SendLag,
    /// The watchdog's probes during the window.
    pub probe_ms: Probes,
    /// Hangs the watchdog detected during the step.
    pub hangs: Vec<Hang>,
    /// Every objective against the window.
    pub slo: Vec<ThresholdResult>,
    /// The drain ended because deliveries stopped (not at `drain_max`).
    pub drained: bool,
    /// Seconds from the end of publishing to the end of the drain.
    pub drain_s: f64,
    /// The step ran to its end (not stopped by a signal or the time limit).
    pub complete: bool,
}

/// Rates in a step's measured window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Throughput {
    /// The rate the schedule asked for, msg/s.
    pub offered_per_s: f64,
    /// The rate sent, msg/s.
    pub sent_per_s: f64,
    /// `sent / offered` over the window.
    pub sent_ratio: f64,
    /// Deliveries owed per message: subscribers per topic, as planned.
    pub fan_out: f64,
    /// Deliveries per second the offered rate owes (`offered × fan_out`).
    pub expected_per_s: f64,
    /// Deliveries received per second.
    pub delivered_per_s: f64,
}

/// Send lag of a step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SendLag {
    /// The largest lag of the window.
    pub window_max: f64,
    /// Percentiles over the whole step (every message).
    pub p50: f64,
    /// 99th percentile over the step.
    pub p99: f64,
    /// Largest over the step.
    pub max: f64,
}

/// The watchdog's probe latency in a step's window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Probes {
    /// The slowest probe round that answered, ms.
    pub max: Option<f64>,
    /// Probe rounds that did not answer.
    pub unanswered: u64,
    /// The health check's p99 so far at the end of the step, ms.
    pub health_p99: f64,
}

impl SearchResults {
    /// A search file for a search that is starting.
    pub fn new(plan: &crate::scenario::plan::Plan, started: &Utc, target: String) -> SearchResults {
        let s = &plan.search;
        SearchResults {
            kind: KIND.to_string(),
            scenario: plan.name.clone(),
            file: plan.file.display().to_string(),
            squall_version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: started.rfc3339(),
            target,
            vary: s.vary,
            unit: s.vary.unit().to_string(),
            min_capacity: s.min_capacity,
            search: SearchFigures::of(s),
            slo: slo_of(s),
            settings: plan.settings.clone(),
            exit_code: Exit::HarnessFailed.code(),
            ..Default::default()
        }
    }

    /// The capacity found: `max_rate` or `max_connections`.
    pub fn capacity(&self) -> Option<f64> {
        match self.vary {
            Vary::Rate => self.max_rate,
            Vary::Connections => self.max_connections,
        }
    }

    /// Fills in the outcome, the verdict, the exit code and the final line.
    pub fn conclude(&mut self, outcome: Outcome, end: Option<End>, duration_s: f64) {
        self.duration_s = duration_s;
        let (kind, capacity, first_failing) = match (end, outcome) {
            (Some(End::Untestable), _) => (OutcomeKind::Untestable, None, None),
            (Some(End::Died), o) => (OutcomeKind::TargetDied, at_least(o), below(o)),
            (Some(End::Harness), o) => (OutcomeKind::HarnessFailed, at_least(o), below(o)),
            (Some(End::Signal), o) => (OutcomeKind::Stopped, at_least(o), below(o)),
            (Some(End::TimeLimit), o) => (OutcomeKind::TimeLimit, at_least(o), below(o)),
            (None, Outcome::Found { max, first_failing }) => {
                (OutcomeKind::Found, Some(max), Some(first_failing))
            }
            (None, Outcome::NotFoundBelowMax { max }) => {
                (OutcomeKind::NotFoundBelowMax, Some(max), None)
            }
            (None, Outcome::BelowMin { min }) => (OutcomeKind::BelowMin, None, Some(min)),
            (None, Outcome::GeneratorLimited { at_least, .. }) => {
                (OutcomeKind::GeneratorLimited, at_least, None)
            }
            (None, o @ Outcome::Partial { .. }) => (OutcomeKind::Stopped, at_least(o), below(o)),
        };
        self.outcome = kind;
        self.complete = end.is_none() && !matches!(outcome, Outcome::Partial { .. });
        match self.vary {
            Vary::Rate => self.max_rate = capacity,
            Vary::Connections => self.max_connections = capacity,
        }
        self.first_failing = first_failing;
        let could_not_send = match outcome {
            Outcome::GeneratorLimited { could_not_send, .. } => Some(could_not_send),
            _ => None,
        };
        let (exit, verdict) = self.judge(could_not_send);
        self.exit_code = exit.code();
        self.passed = exit == Exit::Passed;
        self.verdict = verdict;
        self.summary = self.final_line(could_not_send);
    }

    /// The exit code and the sentences behind it: 5 untestable, 4 the
    /// target died, 3 under `--min-capacity` (or no level met the objective),
    /// 1 stopped early or out of time, else 0.
    fn judge(&self, could_not_send: Option<f64>) -> (Exit, Vec<String>) {
        let mut sentences = Vec::new();
        let last_reasons = || {
            self.steps
                .last()
                .map(|s| s.reasons.clone())
                .unwrap_or_default()
        };
        let unit = self.unit.as_str();
        let mut breached = false;
        let mut incomplete = !self.complete;
        match self.outcome {
            OutcomeKind::Untestable => {
                sentences.extend(last_reasons());
                return (Exit::Untestable, sentences);
            }
            OutcomeKind::TargetDied => {
                sentences.extend(last_reasons());
                sentences.push("the search ended when the target died".into());
                return (Exit::Hung, sentences);
            }
            OutcomeKind::BelowMin => {
                breached = true;
                sentences.push(format!(
                    "the objective broke already at --min, {} {unit}: the capacity is below it",
                    value(self.search.min)
                ));
            }
            OutcomeKind::GeneratorLimited => {
                // Nothing measured at all: squall did not do its job.
                incomplete |= self.capacity().is_none();
                sentences.push(format!(
                    "the generator could not send {} {unit}: the target's capacity was not reached{}; \
                     add publishers, or more worker processes (load.sockets_per_process)",
                    could_not_send.map_or("-".into(), value),
                    self.capacity()
                        .map_or(String::new(), |c| format!(" (it held {} {unit})", value(c)))
                ));
            }
            OutcomeKind::NotFoundBelowMax => sentences.push(format!(
                "capacity not found below --max: the target held {} {unit} within the objective",
                value(self.search.max)
            )),
            OutcomeKind::Found => {}
            OutcomeKind::Stopped => {
                incomplete = true;
                sentences
                    .push("the search was stopped before its end: the steps done are kept".into());
            }
            OutcomeKind::TimeLimit => {
                incomplete = true;
                sentences.push(format!(
                    "the search reached its time limit ({}s) before the precision: the steps done are kept",
                    value(self.search.time_limit_s)
                ));
            }
            OutcomeKind::HarnessFailed => {
                incomplete = true;
                sentences.extend(last_reasons());
                sentences.push("the harness failed during a step (see the errors above)".into());
            }
        }
        let mut harness = false;
        if let Some(gate) = self.min_capacity {
            let capacity = self.capacity().unwrap_or(0.0);
            let known_below = self.first_failing.is_some_and(|f| f <= gate)
                && self.outcome != OutcomeKind::GeneratorLimited;
            if self.outcome.is_measured() && capacity < gate || known_below {
                breached = true;
                sentences.insert(
                    0,
                    format!(
                        "capacity {} {unit} is below --min-capacity {} {unit}",
                        value(capacity),
                        value(gate)
                    ),
                );
            } else if capacity < gate {
                // Stopped, out of time, or limited by the generator below
                // the gate: squall could not show the capacity either way.
                harness = true;
                sentences.insert(
                    0,
                    format!(
                        "squall could not tell whether the capacity reaches --min-capacity {} {unit}: \
                         it held {} {unit}, and nothing above was measured",
                        value(gate),
                        value(capacity)
                    ),
                );
            } else {
                sentences.push(format!(
                    "capacity {} {unit} meets --min-capacity {} {unit}",
                    value(capacity),
                    value(gate)
                ));
            }
        }
        let exit = if breached {
            Exit::Breached
        } else if incomplete || harness {
            Exit::HarnessFailed
        } else {
            Exit::Passed
        };
        if sentences.is_empty() {
            sentences.push(format!(
                "capacity {} {unit} within the objective, to {}%",
                self.capacity().map_or("-".into(), value),
                value(self.search.precision * 100.0)
            ));
        }
        (exit, sentences)
    }

    /// `max rate: R msg/s (p99 X ms, loss Y) — first failing: R2 (p99 …)`.
    fn final_line(&self, could_not_send: Option<f64>) -> String {
        let noun = self.vary.noun();
        let at = |level: f64| self.figures_at(level);
        let level = |v: f64| self.level_text(v);
        match self.outcome {
            OutcomeKind::Found => format!(
                "max {noun}: {}{} — first failing: {}{}",
                level(self.capacity().unwrap_or(0.0)),
                at(self.capacity().unwrap_or(0.0)),
                level(self.first_failing.unwrap_or(0.0)),
                at(self.first_failing.unwrap_or(0.0))
            ),
            OutcomeKind::NotFoundBelowMax => format!(
                "max {noun}: not found below --max: {} held{}",
                level(self.search.max),
                at(self.search.max)
            ),
            OutcomeKind::BelowMin => format!(
                "max {noun}: below --min: {} already failed{}",
                level(self.search.min),
                at(self.search.min)
            ),
            OutcomeKind::GeneratorLimited => {
                let held = self.capacity().map_or_else(
                    || "none measured".to_string(),
                    |c| format!("at least {}{}", level(c), at(c)),
                );
                format!(
                    "max {noun}: {held} — the generator could not send {}: the target's capacity was not reached",
                    could_not_send.map_or("-".into(), level)
                )
            }
            OutcomeKind::Untestable => format!("max {noun}: none: the target could not be tested"),
            _ => {
                let held = self.capacity().map_or_else(
                    || "none measured".to_string(),
                    |c| format!("at least {}{}", level(c), at(c)),
                );
                let failing = self.first_failing.map_or(String::new(), |f| {
                    format!(" — first failing: {}{}", level(f), at(f))
                });
                format!(
                    "max {noun}: {held}{failing} ({})",
                    match self.outcome {
                        OutcomeKind::TimeLimit => "time limit reached before the precision",
                        OutcomeKind::TargetDied => "the target died",
                        OutcomeKind::HarnessFailed => "the harness failed",
                        _ => "stopped before the precision",
                    }
                )
            }
        }
    }

    /// `180 msg/s`, `5000 connections`.
    pub fn level_text(&self, v: f64) -> String {
        format!("{} {}", value(v), self.unit)
    }

    /// ` (p99 X ms, loss Y)` of the last judged step at `level`.
    fn figures_at(&self, level: f64) -> String {
        self.steps
            .iter()
            .rev()
            .find(|s| s.level == level && s.judged.is_some())
            .map_or(String::new(), |s| {
                format!(
                    " (p99 {}, loss {})",
                    ms(s.latency_ms.p99),
                    loss_text(s.messages.loss_ratio)
                )
            })
    }

    /// The search's JUnit XML: the gate, the search's completion and the
    /// target's survival as test cases, the steps as the suite's output.
    pub fn junit(&self) -> String {
        let mut cases: Vec<(String, Option<String>)> = Vec::new();
        if let Some(gate) = self.min_capacity {
            let capacity = self.capacity();
            let failure = (self.exit_code == Exit::Breached.code()
                || capacity.is_none_or(|c| c < gate))
            .then(|| {
                self.verdict
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "the capacity is below the gate".into())
            });
            cases.push((
                format!("min_capacity >= {} {}", value(gate), self.unit),
                failure,
            ));
        }
        let below_min = (self.outcome == OutcomeKind::BelowMin).then(|| self.summary.clone());
        cases.push(("some_level_meets_the_slo".into(), below_min));
        let died = matches!(
            self.outcome,
            OutcomeKind::TargetDied | OutcomeKind::Untestable
        )
        .then(|| self.verdict.join("; "));
        cases.push(("target_survived".into(), died));
        let incomplete = (!self.complete).then(|| self.summary.clone());
        cases.push(("search_complete".into(), incomplete));
        let mut out = format!("{}\n", self.summary);
        for s in &self.steps {
            let _ = writeln!(out, "{}", step_line(self, s));
        }
        crate::junit::suite(
            &crate::junit::Suite {
                name: &format!("{}-search", self.scenario),
                classname: &format!("squall.search.{}", self.scenario),
                time_s: self.duration_s,
                timestamp: &self.started_at,
                output: Some(&out),
            },
            &cases,
        )
    }
}

/// How a search ended before the search logic said so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Ctrl-C, SIGTERM or SIGHUP.
    Signal,
    /// The time limit.
    TimeLimit,
    /// The target died or became unreachable.
    Died,
    /// No connection got through.
    Untestable,
    /// squall failed.
    Harness,
}

fn at_least(o: Outcome) -> Option<f64> {
    match o {
        Outcome::Found { max, .. } => Some(max),
        Outcome::NotFoundBelowMax { max } => Some(max),
        Outcome::GeneratorLimited { at_least, .. } | Outcome::Partial { at_least, .. } => at_least,
        Outcome::BelowMin { .. } => None,
    }
}

fn below(o: Outcome) -> Option<f64> {
    match o {
        Outcome::Found { first_failing, .. } => Some(first_failing),
        Outcome::BelowMin { min } => Some(min),
        Outcome::Partial { below, .. } => below,
        _ => None,
    }
}

/// The objective as the file lists it.
fn slo_of(s: &SearchSettings) -> Vec<Slo> {
    s.slo
        .evaluate(&Default::default())
        .into_iter()
        .map(|t| Slo {
            name: t.name,
            limit: t.limit,
            floor: t.floor,
        })
        .collect()
}

/// A loss ratio: `0` when none, else a percentage.
pub fn loss_text(ratio: f64) -> String {
    if ratio == 0.0 {
        "0".into()
    } else {
        percent(ratio)
    }
}

/// One step as the live line and the JUnit output show it.
pub fn step_line(r: &SearchResults, s: &Step) -> String {
    let verdict = match s.judged {
        Some(Judged::Pass) => "pass".to_string(),
        Some(Judged::Fail) => format!("FAIL: {}", s.reasons.join("; ")),
        Some(Judged::Generator) => format!(
            "the generator could not send this rate: {}",
            s.reasons.join("; ")
        ),
        None => "stopped (not judged)".into(),
    };
    format!(
        "step {} · {} · {verdict} · p99 {} · loss {} · sent {}/s · delivered {}/s of {}/s · send lag {}",
        s.index,
        r.level_text(s.level),
        ms(s.latency_ms.p99),
        loss_text(s.messages.loss_ratio),
        value(s.throughput.sent_per_s.round()),
        value(s.throughput.delivered_per_s.round()),
        value(s.throughput.expected_per_s.round()),
        ms(s.send_lag_ms.window_max)
    )
}

/// Reserves `<dir>/<name>-search-<time>[-N].json` (created empty, so that
/// two searches in the same second get different names).
pub fn reserve(dir: &Path, name: &str, started: &Utc) -> io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let stamp = started.compact();
    for n in 1..1000 {
        let stem = if n == 1 {
            format!("{name}-search-{stamp}")
        } else {
            format!("{name}-search-{stamp}-{n}")
        };
        let path = dir.join(format!("{stem}.json"));
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(_) => return Ok(path),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(format!(
        "no free name for {name}-search-{stamp} in {}",
        dir.display()
    )))
}

/// Whether a JSON document is a search file.
pub fn is_search(value: &serde_json::Value) -> bool {
    value.get("kind").and_then(serde_json::Value::as_str) == Some(KIND)
}

/// Why a search file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// Not JSON, or a key of the wrong type.
    #[error("{path}: not a squall search file: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: serde_json::Error,
    },
    /// JSON without `"kind": "search"`.
    #[error("{path}: not a squall search file (no \"kind\": \"search\")")]
    NotSearch {
        /// The file.
        path: PathBuf,
    },
}

/// Reads a file's JSON, if it is JSON at all.
pub fn read_json(path: &Path) -> Result<serde_json::Value, ReadError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| ReadError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a search file.
pub fn read(path: &Path) -> Result<SearchResults, ReadError> {
    let value = read_json(path)?;
    if !is_search(&value) {
        return Err(ReadError::NotSearch {
            path: path.to_path_buf(),
        });
    }
    serde_json::from_value(value).map_err(|source| ReadError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// Whether the file at `path` is a search file (false when unreadable).
pub fn is_search_file(path: &Path) -> bool {
    read_json(path).is_ok_and(|v| is_search(&v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(index: u32, level: f64, judged: Judged, p99: f64) -> Step {
        Step {
            index,
            level,
            rate: level,
            judged: Some(judged),
            passed: judged == Judged::Pass,
            latency_ms: Latency {
                p99,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn results(steps: Vec<Step>, gate: Option<f64>) -> SearchResults {
        SearchResults {
            kind: KIND.into(),
            scenario: "cap".into(),
            vary: Vary::Rate,
            unit: "msg/s".into(),
            min_capacity: gate,
            search: SearchFigures {
                min: 50.0,
                max: 800.0,
                precision: 0.1,
                ..Default::default()
            },
            steps,
            ..Default::default()
        }
    }

    #[test]
    fn the_final_line_names_the_capacity_and_the_first_failing_level() {
        let mut r = results(
            vec![
                step(1, 50.0, Judged::Pass, 2.0),
                step(2, 100.0, Judged::Fail, 812.0),
                step(3, 95.0, Judged::Pass, 45.2),
            ],
            None,
        );
        r.conclude(
            Outcome::Found {
                max: 95.0,
                first_failing: 100.0,
            },
            None,
            60.0,
        );
        assert_eq!(
            r.summary,
            "max rate: 95 msg/s (p99 45.2 ms, loss 0) — first failing: 100 msg/s (p99 812 ms, loss 0)"
        );
        assert_eq!((r.exit_code, r.complete), (0, true));
        assert_eq!(r.max_rate, Some(95.0));
        // The gate: below it is exit 3, and JUnit fails its case.
        let mut gated = r.clone();
        gated.min_capacity = Some(120.0);
        gated.conclude(
            Outcome::Found {
                max: 95.0,
                first_failing: 100.0,
            },
            None,
            60.0,
        );
        assert_eq!(gated.exit_code, 3);
        assert!(
            gated.verdict[0].contains("below --min-capacity 120"),
            "{:?}",
            gated.verdict
        );
        let xml = gated.junit();
        assert!(xml.contains("failures=\"1\""), "{xml}");
        assert!(xml.contains("min_capacity &gt;= 120 msg/s"), "{xml}");
    }

    #[test]
    fn lower_bounds_are_said_as_such() {
        let mut r = results(vec![step(1, 800.0, Judged::Pass, 1.0)], None);
        r.conclude(Outcome::NotFoundBelowMax { max: 800.0 }, None, 5.0);
        assert!(
            r.summary
                .starts_with("max rate: not found below --max: 800 msg/s held"),
            "{}",
            r.summary
        );
        assert_eq!(r.exit_code, 0);
        let mut r = results(
            vec![
                step(1, 50.0, Judged::Pass, 1.0),
                step(2, 100.0, Judged::Generator, 1.0),
            ],
            Some(80.0),
        );
        r.conclude(
            Outcome::GeneratorLimited {
                at_least: Some(50.0),
                could_not_send: 100.0,
            },
            None,
            5.0,
        );
        assert!(
            r.summary.contains("the generator could not send 100 msg/s"),
            "{}",
            r.summary
        );
        assert_eq!(r.first_failing, None, "never the target's failure");
        assert_eq!(r.exit_code, 1, "squall could not tell: {:?}", r.verdict);
    }

    #[test]
    fn a_stopped_search_keeps_its_steps_and_says_what_it_knows() {
        let mut r = results(vec![step(1, 50.0, Judged::Pass, 1.0)], None);
        r.conclude(
            Outcome::Partial {
                at_least: Some(50.0),
                below: None,
            },
            Some(End::Signal),
            5.0,
        );
        assert_eq!((r.exit_code, r.complete), (1, false));
        assert_eq!(r.outcome, OutcomeKind::Stopped);
        assert!(
            r.summary.starts_with("max rate: at least 50 msg/s"),
            "{}",
            r.summary
        );
        let json = serde_json::to_value(&r).unwrap();
        assert!(is_search(&json));
        let back: SearchResults = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
    }
}
