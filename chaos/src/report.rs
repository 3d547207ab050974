//! What a chaos step reports: its progress for the once-a-second snapshot
//! and its outcome for the results file.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Where a step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepState {
    /// Its `at` has not come yet.
    Pending,
    /// Under way.
    Running,
    /// Done (its outcome may still hold mismatches: see [`StepReport::mismatches`]).
    Finished,
    /// Could not run at all (see `note`).
    Failed,
}

impl StepState {
    /// The state as the snapshot writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Pending => "pending",
            StepState::Running => "running",
            StepState::Finished => "finished",
            StepState::Failed => "failed",
        }
    }
}

/// One conformance check: what the target should have answered and what it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// The case, e.g. `unmasked` or `alg_none`.
    pub case: String,
    /// The expected answer, e.g. `close 1002` or `http 401`.
    pub expected: String,
    /// The answer seen.
    pub seen: String,
    /// Whether they agree.
    pub passed: bool,
}

/// A step's progress and outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// When it was scheduled, seconds from the origin.
    pub at_s: f64,
    /// The action.
    pub action: String,
    /// How many it was asked to do: sockets, checks (garbage and badauth:
    /// rounds × cases) or toxics (proxy); see [`crate::scenario::ChaosStep::planned`].
    pub count: u64,
    /// How many it has done.
    pub done: u64,
    /// How many attempts failed (by kind in `errors`).
    pub failed: u64,
    /// Where it stands.
    pub state: StepState,
    /// When it ended, seconds from the origin.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_s: Option<f64>,
    /// Failed attempts by kind (`refused`, `http_401`, `timeout`, ...).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<String, u64>,
    /// garbage, badauth: one entry per case and round.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
    /// halfopen, vanish, slowloris: how many sockets the server closed
    /// before the hold ended (a server with a ping or header deadline should).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_closed: Option<u64>,
    /// storm: ms from the drop until the last client was back and subscribed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconnect_all_ms: Option<f64>,
    /// storm: clients that were not back within the storm's bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_reconnected: Option<u64>,
    /// storm: Broadcast sequences missed between the drop and the first
    /// delivery after the reconnect (squall protocol only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missed: Option<u64>,
    /// Faults per second achieved (reset, drop).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_s: Option<f64>,
    /// Why the step failed, or what to know about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl StepReport {
    /// A pending report for a step.
    pub fn pending(at_s: f64, action: &str, count: u64) -> Self {
        Self {
            at_s,
            action: action.to_string(),
            count,
            done: 0,
            failed: 0,
            state: StepState::Pending,
            finished_s: None,
            errors: BTreeMap::new(),
            checks: Vec::new(),
            server_closed: None,
            reconnect_all_ms: None,
            not_reconnected: None,
            missed: None,
            per_s: None,
            note: None,
        }
    }

    /// Checks that did not pass.
    pub fn mismatches(&self) -> usize {
        self.checks.iter().filter(|c| !c.passed).count()
    }
}

/// Live counters a running fault updates and the snapshot reads.
#[derive(Debug, Default)]
pub struct Progress {
    done: AtomicU64,
    failed: AtomicU64,
    /// Failed attempts by kind. Guards only this map: the counts themselves
    /// are atomics, and the map changes only when an attempt fails, a rare
    /// and short event next to the sockets' own work. A `std::sync::Mutex`
    /// is right here: the critical sections are one map entry bumped or one
    /// small clone (once a second, for the snapshot), no `.await` happens
    /// while it is held (the workspace denies clippy::await_holding_lock),
    /// and no other lock is taken under it.
    errors: Mutex<BTreeMap<String, u64>>,
}

impl Progress {
    /// One more done.
    pub fn done(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    /// One more failed, of `kind`.
    pub fn fail(&self, kind: &str) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        *self
            .errors
            .lock()
            .expect("progress lock")
            .entry(kind.to_string())
            .or_default() += 1;
    }

    /// Copies the counters into `report`.
    pub fn fill(&self, report: &mut StepReport) {
        report.done = self.done.load(Ordering::Relaxed);
        report.failed = self.failed.load(Ordering::Relaxed);
        report.errors = self.errors.lock().expect("progress lock").clone();
    }

    /// How many are done.
    pub fn done_count(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }
}

/// What a finished fault found, beyond its counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Findings {
    /// See [`StepReport::checks`].
    pub checks: Vec<Check>,
    /// See [`StepReport::server_closed`].
    pub server_closed: Option<u64>,
    /// See [`StepReport::reconnect_all_ms`].
    pub reconnect_all_ms: Option<f64>,
    /// See [`StepReport::not_reconnected`].
    pub not_reconnected: Option<u64>,
    /// See [`StepReport::missed`].
    pub missed: Option<u64>,
    /// See [`StepReport::per_s`].
    pub per_s: Option<f64>,
    /// See [`StepReport::note`].
    pub note: Option<String>,
}

impl Findings {
    /// Copies the findings into `report`.
    pub fn fill(self, report: &mut StepReport) {
        report.checks = self.checks;
        report.server_closed = self.server_closed;
        report.reconnect_all_ms = self.reconnect_all_ms;
        report.not_reconnected = self.not_reconnected;
        report.missed = self.missed;
        report.per_s = self.per_s;
        report.note = self.note;
    }
}
