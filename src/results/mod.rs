//! The results file of DESIGN.md, modelled once: what a run measured, how it
//! ended, and the engine's exact report so that runs and shards merge exactly
//! later.
//!
//! [`Results`] is both what `squall run` writes and what every reader
//! (`compare`, `merge`, `replay`, `report`) reads back. Reading is lenient
//! (every key has a serde default), so a run stopped by Ctrl-C, an older file
//! or one with keys this version does not know still loads; [`file::read`]
//! insists only on the `scenario` key that makes it a results file.
//!
//! The engines' own types stop at this boundary: hangs and chaos steps are
//! mapped into [`Hang`] and [`ChaosResult`] here, so the file format is
//! squall's, not whatever a library happens to serialize. The one exception
//! is `load_report`, the load engine's mergeable accounting, kept as the JSON
//! the engine wrote: squall never reads into it except to hand it back to
//! the engine in `squall merge`.

pub mod file;
pub mod recorded;
pub mod summary;
pub mod time;
pub mod verdict;

use crate::exit::Exit;
use crate::thresholds::{Measured, ThresholdResult, Thresholds};
use serde::{Deserialize, Serialize};
use squall_chaos::report::StepReport;
use squall_chaos::watchdog::HangRecord;
use squall_loadgen::histogram::LatencyHistogram;
use squall_loadgen::report::LoadReport;
use std::collections::BTreeMap;
use std::fmt;

/// One results file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Results {
    /// The scenario's name.
    pub scenario: String,
    /// The scenario file.
    pub file: String,
    /// squall's version.
    pub squall_version: String,
    /// Wall-clock start of the run, RFC 3339 UTC.
    pub started_at: String,
    /// Seconds from the origin to the end of the run (drain included).
    pub duration_s: f64,
    /// Seconds of publishing the scenario planned (drain excluded).
    pub planned_s: f64,
    /// False when the run was stopped early (Ctrl-C) or a shard is missing.
    pub complete: bool,
    /// True when the exit code is 0.
    pub passed: bool,
    /// The exit code of the run (DESIGN.md).
    pub exit_code: u8,
    /// What happened, one sentence per outcome, worst first (see
    /// [`verdict`]).
    pub verdict: Vec<String>,
    /// The target's URL(s).
    pub target: String,
    /// How squall trusted the target's TLS, when it spoke TLS to it
    /// (`wss://`, `https://`); absent for plain targets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsUse>,
    /// Shards (processes or `--shard` runs) merged into these figures.
    pub shards: u32,
    /// Connection counts.
    pub connections: Connections,
    /// Message counts and loss.
    pub messages: Messages,
    /// One-way latency, publish (scheduled) to delivery, in ms.
    pub latency_ms: Latency,
    /// Base64 of the HdrHistogram V2 (deflate) of latencies in µs.
    pub latency_hdr: String,
    /// How late messages left against their schedule, in ms (absent in
    /// files from before it was recorded).
    pub send_lag_ms: Option<Latency>,
    /// Latency of the deliveries that arrived after the drain (`messages.late`):
    /// how far behind the target was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub late_ms: Option<Latency>,
    /// What a Nostr relay answered (`[protocol] kind = "nostr"` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nostr: Option<Nostr>,
    /// Hangs the watchdog detected.
    pub hangs: Vec<Hang>,
    /// Chaos steps and what they did.
    pub chaos: Vec<ChaosResult>,
    /// Every threshold with its outcome.
    pub thresholds: Vec<ThresholdResult>,
    /// Path of the NDJSON timeline (one snapshot per second), if written.
    pub timeline: Option<String>,
    /// The scenario as it ran (defaults filled in, overrides applied).
    pub settings: serde_json::Value,
    /// The load engine's report as the engine serializes it: what `squall
    /// merge` hands back to [`LoadReport::merge`] to add shards up exactly.
    pub load_report: serde_json::Value,
}

/// How a run trusted its target's TLS: recorded so that a run made without
/// verifying the certificate says so wherever its results go.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TlsUse {
    /// `tls_insecure = true`: the certificate was NOT verified.
    pub insecure: bool,
    /// The PEM bundle trusted instead of Mozilla's roots (`tls_ca_file`, or
    /// the builtin relay's own certificate); `None`: Mozilla's roots (or
    /// nothing, when insecure).
    pub ca_file: Option<String>,
}

impl TlsUse {
    /// What the summary says about it, in words.
    pub fn describe(&self) -> String {
        match (&self.insecure, &self.ca_file) {
            (true, _) => "INSECURE: the certificate was NOT verified (tls_insecure = true)".into(),
            (false, Some(ca)) => format!("verified against {ca}"),
            (false, None) => "verified against Mozilla's roots (webpki-roots)".into(),
        }
    }
}

/// One hang of the target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Hang {
    /// `unresponsive`, `delivery-stall`, `accept-stall`, `exited` or
    /// `unreachable` (DESIGN.md, "Exit codes").
    pub kind: String,
    /// `delivery-stall`: the topics that stopped.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<String>,
    /// `exited`: how the process ended ("exited with status 70", "killed by
    /// signal 9").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit: Option<String>,
    /// What the watchdog saw, in words: the probes' errors, what the stalled
    /// topics owe, how the process ended.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// When the target stopped answering, seconds from the origin.
    pub started_s: f64,
    /// When the watchdog declared the hang.
    pub detected_s: f64,
    /// When it answered again; `None` if it never did.
    pub ended_s: Option<f64>,
    /// The last chaos action that started before the hang.
    pub last_chaos: Option<String>,
    /// Path of the hang file (stacks, `/proc`, sockets), or the text itself.
    pub diagnostics: Option<String>,
}

impl From<HangRecord> for Hang {
    fn from(h: HangRecord) -> Hang {
        let exited = h.kind == squall_chaos::watchdog::HangKind::Exited;
        Hang {
            kind: h.kind.to_string(),
            topics: h.topics,
            exit: exited.then(|| h.reason.clone()),
            reason: h.reason,
            started_s: h.started_s,
            detected_s: h.detected_s,
            ended_s: h.ended_s,
            last_chaos: h.last_chaos,
            diagnostics: h.diagnostics,
        }
    }
}

/// One chaos step of the scenario and what it did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChaosResult {
    /// When it was scheduled, seconds from the origin.
    pub at_s: f64,
    /// The action.
    pub action: String,
    /// How many it was asked to do (sockets, checks or toxics).
    pub count: u64,
    /// How many it did.
    pub done: u64,
    /// How many attempts failed (by kind in `errors`).
    pub failed: u64,
    /// `pending`, `running`, `finished` or `failed`.
    pub state: String,
    /// When it ended, seconds from the origin.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_s: Option<f64>,
    /// Failed attempts by kind (`refused`, `http_401`, `timeout`, ...).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<String, u64>,
    /// garbage, badauth: one conformance check per case and round.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<ConformanceCheck>,
    /// halfopen, vanish, slowloris: sockets the server closed before the hold ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_closed: Option<u64>,
    /// storm: ms from the drop until the last client was back and subscribed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconnect_all_ms: Option<f64>,
    /// storm: clients that were not back within the storm's bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_reconnected: Option<u64>,
    /// storm: Broadcast sequences missed across the reconnect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missed: Option<u64>,
    /// Faults per second achieved (reset, drop).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_s: Option<f64>,
    /// Why the step failed, or what to know about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One conformance check of a chaos step: what the target should have
/// answered and what it did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConformanceCheck {
    /// The case, e.g. `unmasked` or `alg_none`.
    pub case: String,
    /// The expected answer, e.g. `close 1002` or `http 401`.
    pub expected: String,
    /// The answer seen.
    pub seen: String,
    /// Whether they agree.
    pub passed: bool,
}

impl From<StepReport> for ChaosResult {
    fn from(s: StepReport) -> ChaosResult {
        ChaosResult {
            at_s: s.at_s,
            action: s.action,
            count: s.count,
            done: s.done,
            failed: s.failed,
            state: s.state.as_str().to_string(),
            finished_s: s.finished_s,
            errors: s.errors,
            checks: s
                .checks
                .into_iter()
                .map(|c| ConformanceCheck {
                    case: c.case,
                    expected: c.expected,
                    seen: c.seen,
                    passed: c.passed,
                })
                .collect(),
            server_closed: s.server_closed,
            reconnect_all_ms: s.reconnect_all_ms,
            not_reconnected: s.not_reconnected,
            missed: s.missed,
            per_s: s.per_s,
            note: s.note,
        }
    }
}

impl ChaosResult {
    /// Checks that did not pass.
    pub fn mismatches(&self) -> usize {
        self.checks.iter().filter(|c| !c.passed).count()
    }
}

/// The step as `squall chaos` prints it and the run's summary lists it: a
/// line of counts, then errors, checks and findings, one per line.
impl fmt::Display for ChaosResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}/{} done, {} failed, {}",
            self.action, self.done, self.count, self.failed, self.state
        )?;
        if let Some(per_s) = self.per_s {
            write!(f, ", {per_s:.0}/s")?;
        }
        writeln!(f)?;
        for (kind, n) in &self.errors {
            writeln!(f, "  error {kind}: {n}")?;
        }
        for check in &self.checks {
            let mark = if check.passed { "ok     " } else { "FINDING" };
            writeln!(
                f,
                "  {mark} {:<20} expected {:<16} seen {}",
                check.case, check.expected, check.seen
            )?;
        }
        let figures = [
            ("server closed", self.server_closed.map(|n| n.to_string())),
            (
                "reconnect all",
                self.reconnect_all_ms.map(|ms| format!("{ms:.1} ms")),
            ),
            (
                "not reconnected",
                self.not_reconnected.map(|n| n.to_string()),
            ),
            ("missed", self.missed.map(|n| n.to_string())),
            ("note", self.note.clone()),
        ];
        for (name, value) in figures {
            if let Some(value) = value {
                writeln!(f, "  {name}: {value}")?;
            }
        }
        Ok(())
    }
}

/// Connection counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Connections {
    /// Connection attempts.
    pub attempted: u64,
    /// Upgrades completed.
    pub established: u64,
    /// Attempts that failed.
    pub failed: u64,
    /// failed / attempted.
    pub error_ratio: f64,
    /// Failures and abnormal ends by kind.
    pub errors: BTreeMap<String, u64>,
    /// Handshake latency (TCP connect to upgrade done, TLS included), in ms.
    pub handshake_ms: Handshake,
    /// The TLS handshake alone (`wss://` targets), in ms; absent without TLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_handshake_ms: Option<Latency>,
    /// Sockets ended from the far side while squall did not end them, by
    /// cause: `close_<code>`, `reset`, `eof`.
    pub dropped: BTreeMap<String, u64>,
    /// Of `dropped`, those squall's own fault proxy ended (its
    /// `reset_peer`, `timeout` and `limit_data` toxics): the scenario's
    /// fault, not the target's. The rest is `target_disconnects`.
    pub dropped_by_proxy: u64,
    /// Reconnects after a drop (`[load] reconnect = true`).
    pub reconnects: u64,
    /// Time from a drop to the new subscription's acknowledgement, in ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconnect_ms: Option<Latency>,
}

impl Connections {
    /// Sockets the target ended: `dropped` but for the proxy's.
    pub fn target_disconnects(&self) -> u64 {
        target_disconnects(&self.dropped, self.dropped_by_proxy)
    }
}

/// Handshake latency percentiles in ms.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Handshake {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// Message counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Messages {
    /// Messages the schedule held.
    pub scheduled: u64,
    /// Messages published.
    pub sent: u64,
    /// Deliveries a correct relay had to make (see DESIGN.md, loss).
    pub expected: u64,
    /// Every stamped delivery, duplicates included.
    pub received: u64,
    /// Distinct expected deliveries that arrived (`expected - lost`).
    pub delivered: u64,
    /// Expected deliveries that never arrived.
    pub lost: u64,
    /// Deliveries of a message the subscriber already had.
    pub duplicated: u64,
    /// Deliveries that arrived after a later message of the same publisher.
    pub reordered: u64,
    /// lost / expected.
    pub loss_ratio: f64,
    /// Deliveries per second over the publishing period.
    pub throughput_per_s: f64,
    /// Deliveries that arrived after `drain` (while the target worked off a
    /// backlog, up to `drain_max`): counted as received, not lost.
    pub late: u64,
    /// Deliveries further behind than the 64-deep reorder window, where a
    /// duplicate cannot be told from a late arrival (counted distinct).
    pub out_of_window: u64,
    /// Deliveries from a publisher the subscriber did not subscribe to.
    pub unexpected: u64,
    /// Latencies over 60 s, recorded as 60 s.
    pub clamped: u64,
    /// Subscribers left out of loss accounting (not connected throughout).
    pub subscribers_excluded: u64,
    /// Publishers left out of loss accounting (see the engine's `Loss`).
    pub publishers_excluded: u64,
    /// Publishers that never heard their own messages back from a target
    /// that does not echo to the sender (not counted as loss).
    pub echo_absent: u64,
}

/// What a Nostr relay answered to the run's publishes and subscriptions
/// (NIP-01): every publish gets one `OK`, accepted or refused with a reason.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Nostr {
    /// Publishes the relay took (`OK true`).
    pub accepted: u64,
    /// Publishes it refused (`OK false`): never delivered, so their
    /// subscribers count them as lost.
    pub rejected: u64,
    /// `rejected` by the reason's NIP-01 prefix: `invalid`, `rate-limited`,
    /// `blocked`, `duplicate`, `pow`, `restricted`, `auth-required`,
    /// `error`, `other`.
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// Publishes without an `OK` by the end of their socket.
    pub unanswered: u64,
    /// `OK`s that named no publish of their socket.
    pub unmatched: u64,
    /// Acceptance latency: from each publish's scheduled send time to its
    /// `OK`, in ms.
    pub ok_ms: Latency,
    /// `NOTICE` frames.
    pub notices: u64,
    /// `CLOSED` frames (subscriptions the relay ended), by reason prefix.
    pub closed: BTreeMap<String, u64>,
    /// NIP-42 `AUTH` challenges answered.
    pub auth: u64,
    /// Of those answers, the ones the relay refused.
    pub auth_refused: u64,
    /// Events signed after their scheduled time (signing ahead fell
    /// behind); 0 unless the machine could not keep up.
    pub signed_late: u64,
    /// The first message the relay wrote of each kind: per rejection
    /// reason, `notice`, `closed`, `auth`.
    pub examples: BTreeMap<String, String>,
}

impl Nostr {
    /// The results' form of the engine's figures.
    pub fn of(n: &squall_loadgen::report::NostrStats) -> Nostr {
        Nostr {
            accepted: n.accepted,
            rejected: n.rejected_total(),
            rejected_by_reason: n.rejected.clone(),
            unanswered: n.unanswered,
            unmatched: n.unmatched,
            ok_ms: Latency::of(&n.ok_latency),
            notices: n.notices,
            closed: n.closed.clone(),
            auth: n.auth,
            auth_refused: n.auth_refused,
            signed_late: n.signed_late,
            examples: n.examples.clone(),
        }
    }
}

/// Latency summary in ms.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Latency {
    /// Samples.
    pub count: u64,
    /// Smallest.
    pub min: f64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

impl Latency {
    /// Summarizes a histogram.
    pub fn of(h: &LatencyHistogram) -> Latency {
        Latency {
            count: h.count(),
            min: h.min_ms(),
            mean: h.mean_ms(),
            p50: h.percentile_ms(50.0),
            p90: h.percentile_ms(90.0),
            p99: h.percentile_ms(99.0),
            p999: h.percentile_ms(99.9),
            max: h.max_ms(),
        }
    }
}

/// Sockets the target ended: every drop but those squall's fault proxy
/// caused (`proxy_cut`, as many as there are drops at most).
pub fn target_disconnects(dropped: &BTreeMap<String, u64>, proxy_cut: u64) -> u64 {
    let all: u64 = dropped.values().sum();
    all - proxy_cut.min(all)
}

/// The figures of a report, before thresholds and exit code are known;
/// `proxy_cut`: load sockets the fault proxy's toxics ended.
pub fn figures(report: &LoadReport, planned_s: f64, proxy_cut: u64) -> (Connections, Messages) {
    let c = &report.connections;
    let connections = Connections {
        attempted: c.attempted,
        established: c.established,
        failed: c.failed,
        error_ratio: ratio(c.failed, c.attempted),
        errors: c.errors.clone(),
        dropped: c.dropped.clone(),
        dropped_by_proxy: proxy_cut.min(c.dropped.values().sum()),
        reconnects: c.reconnects,
        reconnect_ms: (c.reconnects > 0).then(|| Latency::of(&c.reconnect)),
        handshake_ms: Handshake {
            p50: c.handshake.percentile_ms(50.0),
            p99: c.handshake.percentile_ms(99.0),
        },
        tls_handshake_ms: (c.tls_handshake.count() > 0).then(|| Latency::of(&c.tls_handshake)),
    };
    let m = &report.messages;
    let loss = report.loss();
    let publishing_s = planned_s.min(report.duration_s);
    let messages = Messages {
        scheduled: m.scheduled,
        sent: m.sent,
        expected: loss.expected,
        received: m.received,
        delivered: loss.received,
        lost: loss.lost,
        duplicated: m.duplicated,
        reordered: m.reordered,
        loss_ratio: loss.loss_ratio,
        throughput_per_s: if publishing_s > 0.0 {
            m.received as f64 / publishing_s
        } else {
            0.0
        },
        late: m.late,
        out_of_window: m.out_of_window,
        unexpected: m.unexpected,
        clamped: m.clamped,
        subscribers_excluded: m.subscribers_excluded,
        publishers_excluded: loss.publishers_excluded,
        echo_absent: m.echo_absent,
    };
    (connections, messages)
}

/// `num / den`, 0 when `den` is 0.
pub fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// What a results file is made of, before thresholds and the exit code.
#[derive(Debug, Clone)]
pub struct Parts {
    /// Load sockets the fault proxy's toxics ended (0 without a proxy).
    pub proxy_cut: u64,
    /// Scenario name.
    pub scenario: String,
    /// Scenario file.
    pub file: String,
    /// RFC 3339 start.
    pub started_at: String,
    /// Planned publishing time in seconds.
    pub planned_s: f64,
    /// Target URL(s).
    pub target: String,
    /// How the target's TLS was trusted, when squall spoke TLS to it.
    pub tls: Option<TlsUse>,
    /// The scenario as it ran.
    pub settings: serde_json::Value,
    /// The scenario's thresholds.
    pub thresholds: Thresholds,
    /// The engine's (merged) report.
    pub report: LoadReport,
    /// Hangs detected, mapped from the watchdog's records.
    pub hangs: Vec<Hang>,
    /// Chaos steps, mapped from the agent's reports.
    pub chaos: Vec<ChaosResult>,
    /// The timeline's path.
    pub timeline: Option<String>,
    /// The worst windowed p99, when the scenario sets one.
    pub worst_window_p99_ms: f64,
    /// The harness failed (the engine did not report): exit code 1.
    pub harness_failed: bool,
}

impl Results {
    /// Evaluates the thresholds and judges the run ([`verdict::judge`]): 5 if
    /// the target could not be tested, else 4 if it hung or died, else 3 if a
    /// threshold broke, else 1 if the run did not complete (Ctrl-C, a missing
    /// shard) or the harness failed, else 0.
    pub fn build(p: Parts) -> Results {
        let (connections, messages) = figures(&p.report, p.planned_s, p.proxy_cut);
        let latency_ms = Latency::of(&p.report.latency);
        let measured = Measured {
            p50_ms: latency_ms.p50,
            p99_ms: latency_ms.p99,
            p999_ms: latency_ms.p999,
            loss_ratio: messages.loss_ratio,
            duplicated: messages.duplicated,
            hangs: p.hangs.len() as u64,
            connect_error_ratio: connections.error_ratio,
            worst_window_p99_ms: p.worst_window_p99_ms,
            target_disconnects: connections.target_disconnects(),
            received: messages.received,
            rejected: p.report.nostr.as_ref().map_or(0, |n| n.rejected_total()),
        };
        let thresholds = p.thresholds.evaluate(&measured);
        let nostr = p.report.nostr.as_ref().map(Nostr::of);
        let complete = p.report.complete && !p.harness_failed;
        let verdict = verdict::judge(&verdict::Evidence {
            target: &p.target,
            connections: &connections,
            nostr: nostr.as_ref(),
            hangs: &p.hangs,
            thresholds: &thresholds,
            complete,
            harness_failed: p.harness_failed,
        });
        let exit = verdict.exit;
        Results {
            scenario: p.scenario,
            file: p.file,
            squall_version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: p.started_at,
            duration_s: p.report.duration_s,
            planned_s: p.planned_s,
            complete,
            passed: exit == Exit::Passed,
            exit_code: exit.code(),
            verdict: verdict.sentences,
            target: p.target,
            tls: p.tls,
            shards: p.report.shards,
            connections,
            messages,
            latency_ms,
            latency_hdr: p.report.latency.to_base64(),
            send_lag_ms: Some(Latency::of(&p.report.send_lag)),
            late_ms: (p.report.late_latency.count() > 0)
                .then(|| Latency::of(&p.report.late_latency)),
            nostr,
            hangs: p.hangs,
            chaos: p.chaos,
            thresholds,
            timeline: p.timeline,
            settings: p.settings,
            load_report: serde_json::to_value(&p.report).unwrap_or_default(),
        }
    }

    /// The exit code as an [`Exit`].
    pub fn exit(&self) -> Exit {
        match self.exit_code {
            0 => Exit::Passed,
            2 => Exit::Usage,
            3 => Exit::Breached,
            4 => Exit::Hung,
            5 => Exit::Untestable,
            _ => Exit::HarnessFailed,
        }
    }
}
