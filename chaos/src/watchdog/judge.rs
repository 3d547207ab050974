//! The verdict: from probe rounds, the load's progress feed and the CLI's
//! word that the target process ended, whether the target is hung, of what
//! kind, and when that began and ended. Pure logic (no sockets, no clock of
//! its own: every call passes `now_s`), so that the rules are tested on
//! numbers; the runner feeds it on the watchdog's thread and
//! [`super::Watchdog::target_exited`] on the CLI's, both under the
//! watchdog's one lock.
//!
//! # The rules
//!
//! * **No feed yet** (or a feed gone stale for [`FEED_STALE_S`]): probes
//!   alone, as before the feed existed; but when the caller said it will
//!   feed progress, the first seconds before two samples are judged as a
//!   quiet phase (below), so that a slow health check at the start of a run
//!   is no hang. `failures_before_hang` failed rounds
//!   in a row (health GET and WebSocket ping) make an `unresponsive` hang,
//!   `unreachable` when every probe of the deciding round was refused.
//! * **Deliveries flow** (the feed's `received` grew in its latest sample):
//!   never `unresponsive`; failing or slow probes are `degraded`.
//! * **Deliveries starve** (`received` did not grow while `due` or
//!   `overdue` did): failing rounds make the hang as without a feed.
//! * **Nothing due** (`received`, `due` and `overdue` all still): only
//!   rounds in which no probe answered at all count, so that a slow health
//!   endpoint while the socket answers is `degraded` in a quiet phase too,
//!   and a dead target is still caught.
//! * **accept-stall**: the fresh upgrade of each round failed in
//!   `failures_before_hang` rounds in a row while the watchdog's existing
//!   socket answered its ping, and the feed does not show the load's own
//!   upgrades completing (a target that accepts slowly during a fast ramp
//!   is `degraded`, not stalled). It ends when an upgrade completes again.
//! * **delivery-stall**: a topic with subscribers on which nothing arrived
//!   for [`STALL_AFTER_S`] (two samples of the once-a-second feed: about
//!   2 s) although messages published since its last delivery are owed,
//!   while another topic received in the latest sample. The owed messages
//!   must be old enough: seen two samples ago, or seen a sample ago with
//!   the topic still publishing (a stream that goes on and nothing comes),
//!   so that a topic publishing less than once a second whose deliveries
//!   take more than a second is not taken for a stalled one. It names the
//!   topics and ends when none of them is stalled.
//! * **exited**: recorded at once when the CLI says so, and never ends.
//!
//! One stall is one hang: while a hang is open no second one is recorded (a
//! worse kind turns the open one into that kind: delivery-stall <
//! accept-stall < unresponsive < unreachable < exited), and a hang of the
//! same kind that begins within [`REJOIN_S`] of the end of the last one
//! reopens it rather than counting again (flapping probes).

use super::probe::ProbeError;
use super::{HangKind, HangRecord, Progress};
use crate::agent::LastChaos;
use std::time::Duration;

/// A feed sample older than this (by when it arrived) says nothing: the
/// verdict falls back on probes alone.
pub const FEED_STALE_S: f64 = 3.0;
/// A topic is stalled when nothing arrived on it for this long (with the
/// once-a-second feed: two samples) although messages are owed.
pub const STALL_AFTER_S: f64 = 1.5;
/// A hang of the same kind that begins (by its `started_s`) within this long
/// after the last one ended is the same stall: it reopens that record.
pub const REJOIN_S: f64 = 3.0;

/// One probe round's results; `None` for a probe not configured.
#[derive(Debug)]
pub(super) struct Round {
    /// Its number, in launch order.
    pub n: u64,
    /// When it was launched, seconds from the origin.
    pub launched_s: f64,
    /// The health GET.
    pub health: Option<Result<Duration, ProbeError>>,
    /// The ping on the watchdog's own WebSocket.
    pub ping: Option<Result<Duration, ProbeError>>,
    /// The fresh WebSocket upgrade.
    pub accept: Option<Result<Duration, ProbeError>>,
}

impl Round {
    /// The health and ping errors: what makes a round fail.
    fn errors(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if let Some(Err(e)) = &self.health {
            errors.push(format!("health: {e}"));
        }
        if let Some(Err(e)) = &self.ping {
            errors.push(format!("ws ping: {e}"));
        }
        errors
    }

    /// Whether every failed health or ping probe was refused (and one failed).
    fn all_refused(&self) -> bool {
        let failed: Vec<&ProbeError> = [&self.health, &self.ping]
            .into_iter()
            .filter_map(|r| r.as_ref()?.as_ref().err())
            .collect();
        !failed.is_empty() && failed.iter().all(|e| e.is_refused())
    }

    /// Whether any probe of the round answered.
    fn any_answered(&self) -> bool {
        [&self.health, &self.ping, &self.accept]
            .into_iter()
            .any(|r| matches!(r, Some(Ok(_))))
    }

    /// The latency shown for the round: its health probe, else its ping.
    pub(super) fn latency(&self) -> Option<Duration> {
        let ok = |r: &Option<Result<Duration, ProbeError>>| r.as_ref()?.as_ref().ok().copied();
        ok(&self.health).or_else(|| ok(&self.ping))
    }
}

/// A hang just recorded, for the hang file.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Declared {
    /// Its index in the hangs.
    pub index: usize,
    /// What the watchdog saw (probe errors, stalled topics, the exit).
    pub evidence: Vec<String>,
    /// How the target process ended, for an `exited` hang.
    pub exited: Option<String>,
}

/// Consecutive failures of one kind.
#[derive(Debug, Default)]
struct Streak {
    failures: u32,
    started_s: f64,
    errors: Vec<String>,
}

impl Streak {
    fn fail(&mut self, at_s: f64, errors: Vec<String>) {
        if self.failures == 0 {
            self.started_s = at_s;
            self.errors = errors;
        }
        self.failures += 1;
    }
}

/// What the feed says about deliveries now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flow {
    /// No feed, a single sample, or a stale one.
    Unknown,
    /// Deliveries arrived in the latest sample.
    Flowing,
    /// None arrived while more became due or overdue.
    Starved,
    /// None arrived and none became due.
    Idle,
}

/// One feed sample's totals.
#[derive(Debug, Clone, Copy)]
struct Sample {
    seen_s: f64,
    due: u64,
    received: u64,
    overdue: u64,
    established: u64,
}

/// One topic's deliveries, as the feed tells them.
#[derive(Debug, Clone)]
struct Topic {
    name: String,
    /// Its `received` in the latest sample.
    received: u64,
    /// Its `sent` in the latest sample.
    sent: u64,
    /// The feed time of its last delivery (or of the moment it gained
    /// subscribers): the stall clock starts here.
    mark_s: f64,
    /// Its `sent` at `mark_s`.
    mark_sent: u64,
    /// The feed time of the first sample after `mark_s` that showed more
    /// published than `mark_sent`: the owed messages are at least this old.
    owed_since: Option<f64>,
    /// Received in the latest sample.
    fresh: bool,
    /// Stalled as of the latest sample.
    stalled: bool,
}

/// The load's progress, as fed.
#[derive(Debug, Default)]
struct Feed {
    latest: Option<Sample>,
    previous: Option<Sample>,
    topics: Vec<Topic>,
}

impl Feed {
    fn note(&mut self, p: &Progress, seen_s: f64) {
        self.previous = self.latest.take();
        self.latest = Some(Sample {
            seen_s,
            due: p.due,
            received: p.received,
            overdue: p.overdue,
            established: p.established,
        });
        let same_topics = self.topics.len() == p.topics.len()
            && self
                .topics
                .iter()
                .zip(&p.topics)
                .all(|(a, b)| a.name == b.name);
        if !same_topics {
            self.topics = p
                .topics
                .iter()
                .map(|t| Topic {
                    name: t.name.clone(),
                    received: t.received,
                    sent: t.sent,
                    mark_s: p.at_s,
                    mark_sent: t.sent,
                    owed_since: None,
                    fresh: false,
                    stalled: false,
                })
                .collect();
            return;
        }
        for (topic, now) in self.topics.iter_mut().zip(&p.topics) {
            let publishing = now.sent > topic.sent;
            topic.fresh = now.received > topic.received;
            if topic.fresh || now.subscribers == 0 {
                // A delivery, or no one to deliver to: the clock restarts.
                topic.mark_s = p.at_s;
                topic.mark_sent = now.sent;
                topic.owed_since = None;
            } else if topic.owed_since.is_none() && now.sent > topic.mark_sent {
                topic.owed_since = Some(p.at_s);
            }
            let old_enough = topic.owed_since.is_some_and(|since| {
                let age = p.at_s - since;
                age >= STALL_AFTER_S || (age >= STALL_AFTER_S / 3.0 && publishing)
            });
            topic.stalled = old_enough && p.at_s - topic.mark_s >= STALL_AFTER_S;
            topic.received = now.received;
            topic.sent = now.sent;
        }
    }

    fn flow(&self, now_s: f64) -> Flow {
        let (Some(latest), Some(previous)) = (self.latest, self.previous) else {
            return Flow::Unknown;
        };
        if now_s - latest.seen_s > FEED_STALE_S {
            Flow::Unknown
        } else if latest.received > previous.received {
            Flow::Flowing
        } else if outstanding(&latest) > outstanding(&previous) || latest.overdue > previous.overdue
        {
            // Owed deliveries piled up with none arriving. (`due` alone
            // can grow with nothing owed outstanding: the engine counts the
            // last messages as due when publishing ends, after they arrived.)
            Flow::Starved
        } else {
            Flow::Idle
        }
    }

    /// Whether the latest fresh sample shows the load's own upgrades
    /// completing.
    fn upgrading(&self, now_s: f64) -> bool {
        match (self.latest, self.previous) {
            (Some(latest), Some(previous)) => {
                now_s - latest.seen_s <= FEED_STALE_S && latest.established > previous.established
            }
            _ => false,
        }
    }

    fn is_stalled(&self, name: &str) -> bool {
        self.topics.iter().any(|t| t.name == name && t.stalled)
    }

    /// Stalled topics while another topic received: their names, the
    /// earliest of their last deliveries, and what they owe in words.
    fn stall(&self) -> Option<(Vec<String>, f64, String)> {
        let stalled: Vec<&Topic> = self.topics.iter().filter(|t| t.stalled).collect();
        let others_deliver = self.topics.iter().any(|t| t.fresh && !t.stalled);
        if stalled.is_empty() || !others_deliver {
            return None;
        }
        let since = stalled
            .iter()
            .map(|t| t.mark_s)
            .fold(f64::INFINITY, f64::min);
        let words = stalled
            .iter()
            .map(|t| {
                format!(
                    "topic {}: {} published since its last delivery, none received",
                    t.name,
                    t.sent - t.mark_sent
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        Some((
            stalled.iter().map(|t| t.name.clone()).collect(),
            since,
            words,
        ))
    }
}

/// A hang the rules call for now.
struct Candidate {
    kind: HangKind,
    started_s: f64,
    evidence: Vec<String>,
    topics: Vec<String>,
}

/// The watchdog's verdict so far: every hang, and what the next decision
/// needs to know.
#[derive(Debug)]
pub(super) struct Judge {
    failures_before_hang: u32,
    slow: Duration,
    hangs: Vec<HangRecord>,
    /// The index of the hang that is open, if one is.
    open: Option<usize>,
    /// Failed rounds (health or ping) in a row.
    main: Streak,
    /// Rounds in a row in which no probe answered at all.
    dead: u32,
    /// Whether every failed probe of the last round was refused.
    refused: bool,
    /// Failed upgrades in a row while the ping answered.
    accept: Streak,
    /// Whether the last round's upgrade succeeded: what ends an accept-stall.
    accept_ok: bool,
    /// Whether the last round answered, slower than `slow`.
    slow_round: bool,
    feed: Feed,
    /// Set once the target process ended: its hang never ends.
    exited: bool,
    /// The caller feeds progress: no feed yet is not "probes alone".
    expect_feed: bool,
}

impl Judge {
    pub(super) fn new(failures_before_hang: u32, slow: Duration) -> Self {
        Self {
            failures_before_hang,
            slow,
            hangs: Vec::new(),
            open: None,
            main: Streak::default(),
            dead: 0,
            refused: false,
            accept: Streak::default(),
            accept_ok: false,
            slow_round: false,
            feed: Feed::default(),
            exited: false,
            expect_feed: false,
        }
    }

    /// Every hang so far.
    pub(super) fn hangs(&self) -> &[HangRecord] {
        &self.hangs
    }

    /// A hang, to note its hang file.
    pub(super) fn hang_mut(&mut self, index: usize) -> Option<&mut HangRecord> {
        self.hangs.get_mut(index)
    }

    /// The open hang, if any.
    pub(super) fn current(&self) -> Option<&HangRecord> {
        self.open.map(|i| &self.hangs[i])
    }

    /// `hung` while a hang is open, `degraded` while probes fail or are slow
    /// or a topic stalls short of a hang, else `ok`.
    pub(super) fn state(&self) -> &'static str {
        if self.open.is_some() {
            "hung"
        } else if self.main.failures > 0
            || self.accept.failures > 0
            || self.slow_round
            || self.feed.topics.iter().any(|t| t.stalled)
        {
            "degraded"
        } else {
            "ok"
        }
    }

    /// Applies a probe round.
    pub(super) fn round(
        &mut self,
        round: &Round,
        now_s: f64,
        chaos: &LastChaos,
    ) -> Option<Declared> {
        let errors = round.errors();
        if errors.is_empty() {
            self.main = Streak::default();
            self.dead = 0;
            self.refused = false;
            self.slow_round = round.latency().is_some_and(|l| l > self.slow);
        } else {
            self.slow_round = false;
            self.refused = round.all_refused();
            self.main.fail(round.launched_s, errors);
            if round.any_answered() {
                self.dead = 0;
            } else {
                self.dead += 1;
            }
        }
        self.accept_ok = matches!(round.accept, Some(Ok(_)));
        match (&round.accept, &round.ping) {
            (Some(Err(e)), Some(Ok(_))) => self
                .accept
                .fail(round.launched_s, vec![format!("accept: {e}")]),
            _ => self.accept = Streak::default(),
        }
        self.evaluate(now_s, chaos)
    }

    /// Applies a sample of the load's progress that arrived at `now_s`.
    pub(super) fn progress(
        &mut self,
        p: &Progress,
        now_s: f64,
        chaos: &LastChaos,
    ) -> Option<Declared> {
        self.feed.note(p, now_s);
        self.evaluate(now_s, chaos)
    }

    /// The target process ended (`how`: "exited with status 70"): an
    /// `exited` hang at once, or the open hang becomes one.
    pub(super) fn exited(&mut self, how: &str, now_s: f64, chaos: &LastChaos) -> Option<Declared> {
        if self.exited {
            return None;
        }
        self.exited = true;
        if let Some(i) = self.open {
            let hang = &mut self.hangs[i];
            hang.reason = format!("{} ({}), then {how}", hang.kind, hang.reason);
            hang.kind = HangKind::Exited;
            return None;
        }
        self.hangs.push(HangRecord {
            kind: HangKind::Exited,
            started_s: now_s,
            detected_s: now_s,
            ended_s: None,
            topics: Vec::new(),
            last_chaos: chaos.before(now_s),
            reason: how.to_string(),
            diagnostics: None,
        });
        let index = self.hangs.len() - 1;
        self.open = Some(index);
        Some(Declared {
            index,
            evidence: vec![how.to_string()],
            exited: Some(how.to_string()),
        })
    }

    /// What the feed says about deliveries now.
    fn flow(&self, now_s: f64) -> Flow {
        match self.feed.flow(now_s) {
            // A run that feeds progress has none to show in its first
            // seconds: a slow probe then is no hang, a dead target still is.
            Flow::Unknown if self.expect_feed => Flow::Idle,
            flow => flow,
        }
    }

    /// The caller will feed progress ([`super::WatchdogConfig::progress_fed`]):
    /// until the feed has two samples, judge as in a quiet phase (only rounds
    /// where no probe answered count) rather than by probes alone.
    pub(super) fn expect_feed(&mut self) {
        self.expect_feed = true;
    }

    /// Ends the open hang if its condition is over, then records the worst
    /// hang the rules call for unless one is open.
    fn evaluate(&mut self, now_s: f64, chaos: &LastChaos) -> Option<Declared> {
        if self.exited {
            return None;
        }
        let flow = self.flow(now_s);
        if let Some(i) = self.open {
            let hang = &self.hangs[i];
            let over = match hang.kind {
                HangKind::Unresponsive | HangKind::Unreachable => {
                    (self.main.failures == 0 && flow != Flow::Starved) || flow == Flow::Flowing
                }
                HangKind::AcceptStall => self.accept_ok || self.feed.upgrading(now_s),
                HangKind::DeliveryStall => !hang.topics.iter().any(|t| self.feed.is_stalled(t)),
                HangKind::Exited => false,
            };
            if over {
                self.hangs[i].ended_s = Some(now_s);
                self.open = None;
            }
        }
        let candidate = self.candidate(flow, self.feed.upgrading(now_s))?;
        if let Some(i) = self.open {
            let hang = &mut self.hangs[i];
            if candidate.kind.severity() > hang.kind.severity() {
                hang.reason = format!(
                    "{} ({}), then {}: {}",
                    hang.kind,
                    hang.reason,
                    candidate.kind,
                    candidate.evidence.join("; ")
                );
                hang.kind = candidate.kind;
            }
            merge_topics(&mut hang.topics, candidate.topics);
            return None;
        }
        if let Some(last) = self.hangs.last_mut()
            && last.kind == candidate.kind
            && last
                .ended_s
                .is_some_and(|end| candidate.started_s - end <= REJOIN_S)
        {
            last.ended_s = None;
            merge_topics(&mut last.topics, candidate.topics);
            self.open = Some(self.hangs.len() - 1);
            return None;
        }
        self.hangs.push(HangRecord {
            kind: candidate.kind,
            started_s: candidate.started_s,
            detected_s: now_s,
            ended_s: None,
            topics: candidate.topics,
            last_chaos: chaos.before(candidate.started_s),
            reason: candidate.evidence.join("; "),
            diagnostics: None,
        });
        let index = self.hangs.len() - 1;
        self.open = Some(index);
        Some(Declared {
            index,
            evidence: candidate.evidence,
            exited: None,
        })
    }

    /// The worst hang the rules call for now, if any.
    fn candidate(&self, flow: Flow, upgrading: bool) -> Option<Candidate> {
        let n = self.failures_before_hang;
        let unanswered = self.main.failures >= n
            && match flow {
                Flow::Unknown | Flow::Starved => true,
                Flow::Idle => self.dead >= n,
                Flow::Flowing => false,
            };
        if unanswered {
            let mut evidence = self.main.errors.clone();
            if flow == Flow::Starved {
                evidence.push("no delivery while deliveries were due".into());
            }
            return Some(Candidate {
                kind: if self.refused {
                    HangKind::Unreachable
                } else {
                    HangKind::Unresponsive
                },
                started_s: self.main.started_s,
                evidence,
                topics: Vec::new(),
            });
        }
        if self.accept.failures >= n && !upgrading {
            let mut evidence = self.accept.errors.clone();
            evidence.push("new upgrades fail while the existing socket answers".into());
            return Some(Candidate {
                kind: HangKind::AcceptStall,
                started_s: self.accept.started_s,
                evidence,
                topics: Vec::new(),
            });
        }
        let (topics, since, words) = self.feed.stall()?;
        Some(Candidate {
            kind: HangKind::DeliveryStall,
            started_s: since,
            evidence: vec![words, "other topics deliver".into()],
            topics,
        })
    }
}

/// Deliveries due and not (yet) received, as of a sample.
fn outstanding(s: &Sample) -> u64 {
    s.due.saturating_sub(s.received)
}

fn merge_topics(into: &mut Vec<String>, more: Vec<String>) {
    for topic in more {
        if !into.contains(&topic) {
            into.push(topic);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::HttpError;
    use crate::watchdog::TopicProgress;

    const N: u32 = 2;

    fn judge() -> Judge {
        Judge::new(N, Duration::from_millis(200))
    }

    fn ok() -> Option<Result<Duration, ProbeError>> {
        Some(Ok(Duration::from_millis(5)))
    }

    fn timed_out() -> Option<Result<Duration, ProbeError>> {
        Some(Err(ProbeError::NoPong(Duration::from_secs(1))))
    }

    fn refused() -> Option<Result<Duration, ProbeError>> {
        Some(Err(ProbeError::Http(HttpError::Connect(
            std::io::ErrorKind::ConnectionRefused.into(),
        ))))
    }

    fn round(
        n: u64,
        health: Option<Result<Duration, ProbeError>>,
        ping: Option<Result<Duration, ProbeError>>,
        accept: Option<Result<Duration, ProbeError>>,
    ) -> Round {
        Round {
            n,
            launched_s: n as f64 * 0.25,
            health,
            ping,
            accept,
        }
    }

    fn feed(at_s: f64, due: u64, received: u64, topics: &[(u64, u64)]) -> Progress {
        Progress {
            at_s,
            due,
            received,
            overdue: 0,
            established: 0,
            topics: topics
                .iter()
                .enumerate()
                .map(|(i, &(sent, received))| TopicProgress {
                    name: format!("t{i}"),
                    sent,
                    received,
                    subscribers: 1,
                })
                .collect(),
        }
    }

    #[test]
    fn kinds_are_named_as_design_md_and_the_results_file_name_them() {
        assert_eq!(
            HangKind::NAMES,
            [
                "unresponsive",
                "delivery-stall",
                "accept-stall",
                "exited",
                "unreachable"
            ]
        );
        for kind in HangKind::ALL {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
            assert_eq!(kind.as_str().parse::<HangKind>(), Ok(*kind));
        }
    }

    #[test]
    fn without_a_feed_failed_rounds_make_a_hang_and_a_good_round_ends_it() {
        let (mut j, chaos) = (judge(), LastChaos::default());
        chaos.record(0.1, "reset", 200);
        assert_eq!(j.round(&round(1, ok(), ok(), ok()), 0.3, &chaos), None);
        assert_eq!(j.state(), "ok");
        assert_eq!(
            j.round(&round(2, timed_out(), ok(), ok()), 1.5, &chaos),
            None
        );
        assert_eq!(j.state(), "degraded");
        let declared = j.round(&round(3, timed_out(), ok(), ok()), 1.8, &chaos);
        assert_eq!(declared.map(|d| d.index), Some(0));
        let hang = &j.hangs()[0];
        assert_eq!(hang.kind, HangKind::Unresponsive);
        assert_eq!(hang.started_s, 0.5);
        assert_eq!(hang.last_chaos.as_deref(), Some("reset x200, 0.4 s before"));
        assert_eq!(j.state(), "hung");
        // More failed rounds: the same hang.
        assert_eq!(
            j.round(&round(4, timed_out(), timed_out(), ok()), 2.0, &chaos),
            None
        );
        assert_eq!(j.round(&round(5, ok(), ok(), ok()), 2.3, &chaos), None);
        assert_eq!(j.hangs()[0].ended_s, Some(2.3));
        assert_eq!(j.hangs().len(), 1);
    }

    #[test]
    fn a_refused_target_is_unreachable() {
        let (mut j, chaos) = (judge(), LastChaos::default());
        j.round(&round(1, refused(), None, None), 0.3, &chaos);
        j.round(&round(2, refused(), None, None), 0.6, &chaos);
        assert_eq!(j.hangs()[0].kind, HangKind::Unreachable);
        assert!(j.hangs()[0].reason.contains("refused"), "{:?}", j.hangs());
    }

    #[test]
    fn failing_probes_while_deliveries_flow_are_degraded_and_a_starved_feed_makes_the_hang() {
        let (mut j, chaos) = (judge(), LastChaos::default());
        j.progress(&feed(1.0, 100, 100, &[]), 1.0, &chaos);
        j.progress(&feed(2.0, 200, 200, &[]), 2.0, &chaos);
        for n in 8..20 {
            let now = n as f64 * 0.25;
            assert_eq!(
                j.round(&round(n, timed_out(), timed_out(), None), now, &chaos),
                None
            );
            if n % 4 == 3 {
                // Deliveries keep arriving once a second.
                let k = (now + 1.0) as u64;
                j.progress(&feed(now, k * 100, k * 100, &[]), now, &chaos);
            }
        }
        assert_eq!(j.state(), "degraded");
        assert!(j.hangs().is_empty());
        // Now nothing arrives while more is due.
        let declared = j.progress(&feed(5.0, 700, 500, &[]), 5.0, &chaos);
        assert!(declared.is_some());
        let hang = &j.hangs()[0];
        assert_eq!(hang.kind, HangKind::Unresponsive);
        assert_eq!(hang.started_s, 2.0, "the first failed round");
        // Deliveries flowing again end it, though the probes still fail.
        j.progress(&feed(6.0, 800, 800, &[]), 6.0, &chaos);
        assert_eq!(j.hangs()[0].ended_s, Some(6.0));
        assert_eq!(j.state(), "degraded");
    }

    #[test]
    fn in_a_quiet_phase_only_rounds_where_nothing_answered_count() {
        let (mut j, chaos) = (judge(), LastChaos::default());
        j.progress(&feed(1.0, 100, 100, &[]), 1.0, &chaos);
        j.progress(&feed(2.0, 100, 100, &[]), 2.0, &chaos);
        assert_eq!(j.flow(2.1), Flow::Idle);
        // Health times out, the socket answers: slow, not hung.
        for n in 0..6 {
            j.round(
                &round(n, timed_out(), ok(), None),
                2.0 + n as f64 * 0.1,
                &chaos,
            );
        }
        assert!(j.hangs().is_empty());
        // Nothing answers: hung.
        j.round(&round(6, timed_out(), timed_out(), None), 2.7, &chaos);
        j.round(&round(7, timed_out(), timed_out(), None), 2.8, &chaos);
        assert_eq!(j.hangs().len(), 1);
    }

    #[test]
    fn a_stale_feed_falls_back_on_probes_alone() {
        let (mut j, chaos) = (judge(), LastChaos::default());
        j.progress(&feed(1.0, 100, 100, &[]), 1.0, &chaos);
        j.progress(&feed(2.0, 200, 200, &[]), 2.0, &chaos);
        assert_eq!(j.flow(2.5), Flow::Flowing);
        assert_eq!(j.flow(2.0 + FEED_STALE_S + 0.1), Flow::Unknown);
        j.round(&round(1, timed_out(), timed_out(), None), 5.5, &chaos);
        j.round(&round(2, timed_out(), timed_out(), None), 5.6, &chaos);
        assert_eq!(j.hangs().len(), 1);
    }

    #[test]
    fn upgrades_that_fail_while_the_socket_answers_are_an_accept_stall() {
        let (mut j, chaos) = (judge(), LastChaos::default());
        j.round(&round(1, ok(), ok(), timed_out()), 1.0, &chaos);
        assert_eq!(j.state(), "degraded");
        j.round(&round(2, ok(), ok(), timed_out()), 1.3, &chaos);
        let hang = &j.hangs()[0];
        assert_eq!(hang.kind, HangKind::AcceptStall);
        assert_eq!(hang.started_s, 0.25);
        j.round(&round(3, ok(), ok(), timed_out()), 1.6, &chaos);
        j.round(&round(4, ok(), ok(), ok()), 1.9, &chaos);
        assert_eq!(j.hangs().len(), 1);
        assert_eq!(j.hangs()[0].ended_s, Some(1.9));
        // Upgrades failing while the load's own upgrades complete: slow, not
        // stalled; once the load's stop completing too, stalled.
        let mut j = judge();
        let upgrades = |established| Progress {
            established,
            ..Progress::default()
        };
        j.progress(&upgrades(100), 0.5, &chaos);
        for n in 1..6 {
            let now = n as f64;
            j.progress(&upgrades(100 + n * 100), now, &chaos);
            j.round(&round(n, ok(), ok(), timed_out()), now + 0.1, &chaos);
        }
        assert!(j.hangs().is_empty(), "{:?}", j.hangs());
        assert_eq!(j.state(), "degraded");
        j.progress(&upgrades(600), 6.0, &chaos);
        j.round(&round(6, ok(), ok(), timed_out()), 6.1, &chaos);
        assert_eq!(j.hangs()[0].kind, HangKind::AcceptStall);
        // Upgrades failing while the ping fails too are not an accept-stall.
        let mut j = judge();
        j.round(&round(1, ok(), timed_out(), timed_out()), 1.0, &chaos);
        j.round(&round(2, ok(), timed_out(), timed_out()), 1.3, &chaos);
        assert_eq!(j.hangs()[0].kind, HangKind::Unresponsive);
    }

    #[test]
    fn a_topic_that_stops_while_others_deliver_is_a_delivery_stall_ended_when_it_receives() {
        let (mut j, chaos) = (judge(), LastChaos::default());
        j.progress(&feed(1.0, 0, 0, &[(10, 10), (10, 10)]), 1.0, &chaos);
        j.progress(&feed(2.0, 0, 0, &[(20, 20), (20, 20)]), 2.0, &chaos);
        // t1 stops receiving after 2.0.
        j.progress(&feed(3.0, 0, 0, &[(30, 30), (30, 20)]), 3.0, &chaos);
        assert!(j.hangs().is_empty(), "one silent second is not a stall");
        j.progress(&feed(4.0, 0, 0, &[(40, 40), (40, 20)]), 4.0, &chaos);
        let hang = &j.hangs()[0];
        assert_eq!(hang.kind, HangKind::DeliveryStall);
        assert_eq!(hang.topics, vec!["t1".to_string()]);
        assert_eq!(hang.started_s, 2.0);
        assert!(hang.reason.contains("topic t1: 20 published"), "{hang:?}");
        j.progress(&feed(5.0, 0, 0, &[(50, 50), (50, 20)]), 5.0, &chaos);
        assert_eq!(j.hangs().len(), 1, "one stall, one hang");
        j.progress(&feed(6.0, 0, 0, &[(60, 60), (60, 55)]), 6.0, &chaos);
        assert_eq!(j.hangs()[0].ended_s, Some(6.0));
    }

    #[test]
    fn every_topic_stopping_is_no_delivery_stall_and_a_quiet_topic_owes_nothing() {
        let (mut j, chaos) = (judge(), LastChaos::default());
        for k in 1..=3u64 {
            j.progress(
                &feed(k as f64, 0, 0, &[(k * 10, k * 10), (k * 10, k * 10)]),
                k as f64,
                &chaos,
            );
        }
        for k in 4..=8u64 {
            j.progress(
                &feed(k as f64, 0, 0, &[(k * 10, 30), (k * 10, 30)]),
                k as f64,
                &chaos,
            );
        }
        assert!(j.hangs().is_empty(), "{:?}", j.hangs());
        // A topic on which nothing is published owes nothing.
        let mut j = judge();
        for k in 1..=8u64 {
            j.progress(
                &feed(k as f64, 0, 0, &[(k * 10, k * 10), (5, 5)]),
                k as f64,
                &chaos,
            );
        }
        assert!(j.hangs().is_empty(), "{:?}", j.hangs());
    }

    #[test]
    fn a_sparse_topic_whose_deliveries_take_over_a_second_is_not_stalled() {
        let (mut j, chaos) = (judge(), LastChaos::default());
        // x: one message every 3 s, each arriving 1.3 s later (two samples
        // on); y: busy.
        let (mut x_sent, mut x_received) = (0, 0);
        for k in 1..=15u64 {
            if k % 3 == 0 {
                x_sent += 1;
            }
            if k > 3 && (k - 2) % 3 == 0 {
                x_received += 1;
            }
            j.progress(
                &feed(k as f64, 0, 0, &[(x_sent, x_received), (k * 100, k * 100)]),
                k as f64,
                &chaos,
            );
            assert!(j.hangs().is_empty(), "at {k}: {:?}", j.hangs());
        }
        // The same topic once its messages stop arriving: stalled.
        for k in 16..=20u64 {
            if k % 3 == 0 {
                x_sent += 1;
            }
            j.progress(
                &feed(k as f64, 0, 0, &[(x_sent, x_received), (k * 100, k * 100)]),
                k as f64,
                &chaos,
            );
        }
        assert_eq!(j.hangs().len(), 1, "{:?}", j.hangs());
        assert_eq!(j.hangs()[0].topics, vec!["t0".to_string()]);
    }

    #[test]
    fn an_exit_is_a_hang_at_once_and_turns_an_open_one_into_it() {
        let (mut j, chaos) = (judge(), LastChaos::default());
        let declared = j.exited("exited with status 70", 3.0, &chaos).unwrap();
        assert_eq!(declared.exited.as_deref(), Some("exited with status 70"));
        let hang = &j.hangs()[0];
        assert_eq!(
            (hang.kind, hang.detected_s, hang.ended_s),
            (HangKind::Exited, 3.0, None)
        );
        // Refused probes afterwards are the same hang.
        j.round(&round(20, refused(), refused(), refused()), 5.0, &chaos);
        j.round(&round(21, refused(), refused(), refused()), 5.3, &chaos);
        j.round(&round(22, ok(), ok(), ok()), 5.6, &chaos);
        assert_eq!(j.hangs().len(), 1);
        assert_eq!(j.hangs()[0].ended_s, None);
        assert_eq!(j.exited("killed by signal 9", 6.0, &chaos), None);

        let mut j = judge();
        j.round(&round(1, refused(), refused(), None), 1.0, &chaos);
        j.round(&round(2, refused(), refused(), None), 1.3, &chaos);
        assert_eq!(j.hangs()[0].kind, HangKind::Unreachable);
        assert_eq!(j.exited("killed by signal 9", 1.4, &chaos), None);
        assert_eq!(j.hangs().len(), 1);
        assert_eq!(j.hangs()[0].kind, HangKind::Exited);
        assert!(j.hangs()[0].reason.ends_with("then killed by signal 9"));
    }

    #[test]
    fn a_hang_that_flaps_is_one_hang_and_a_worse_kind_takes_over_the_open_one() {
        let (mut j, chaos) = (judge(), LastChaos::default());
        let fail = |j: &mut Judge, n: u64, now: f64| {
            j.round(&round(n, timed_out(), timed_out(), None), now, &chaos)
        };
        fail(&mut j, 1, 1.0);
        fail(&mut j, 2, 1.3);
        j.round(&round(3, ok(), ok(), None), 1.6, &chaos);
        assert!(j.hangs()[0].ended_s.is_some());
        fail(&mut j, 4, 1.9);
        fail(&mut j, 5, 2.2);
        assert_eq!(j.hangs().len(), 1, "{:?}", j.hangs());
        assert_eq!(j.hangs()[0].ended_s, None);
        // Long after it ended, a new stall is a new hang.
        j.round(&round(6, ok(), ok(), None), 2.5, &chaos);
        fail(&mut j, 36, 9.5);
        fail(&mut j, 37, 9.8);
        assert_eq!(j.hangs().len(), 2);

        // An accept-stall that turns into unresponsiveness stays one hang.
        let mut j = judge();
        j.round(&round(1, ok(), ok(), timed_out()), 1.0, &chaos);
        j.round(&round(2, ok(), ok(), timed_out()), 1.3, &chaos);
        fail(&mut j, 3, 1.6);
        fail(&mut j, 4, 1.9);
        assert_eq!(j.hangs().len(), 1);
        assert_eq!(j.hangs()[0].kind, HangKind::Unresponsive);
        assert!(
            j.hangs()[0].reason.starts_with("accept-stall"),
            "{:?}",
            j.hangs()
        );
    }
}
