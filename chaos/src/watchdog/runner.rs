//! The probing loop on the watchdog's own thread: a round of probes every
//! `interval`, rounds decided in the order they started, the failing streak
//! that becomes a hang, and the hang file written off the loop.

use super::diagnostics::{self, HangFacts};
use super::probe::{self, ProbeError, WsProber};
use super::{HangRecord, Inner, StderrTail, WatchdogConfig, seconds_since};
use crate::http;
use squall_proto::Endpoint;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::MissedTickBehavior;

/// One probe round's results.
#[derive(Debug)]
struct Round {
    n: u64,
    launched_s: f64,
    health: Option<Result<Duration, ProbeError>>,
    ws: Option<Result<Duration, ProbeError>>,
}

impl Round {
    fn errors(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if let Some(Err(e)) = &self.health {
            errors.push(format!("health: {e}"));
        }
        if let Some(Err(e)) = &self.ws {
            errors.push(format!("ws ping: {e}"));
        }
        errors
    }
}

/// The probing loop, on the watchdog's thread.
pub(super) struct Runner {
    /// What the CLI gave.
    pub(super) config: WatchdogConfig,
    /// The health URL, guarded, when probed.
    pub(super) health: Option<Endpoint>,
    /// The WebSocket URL, guarded, when probed.
    pub(super) ws: Option<Endpoint>,
    /// The metrics URL, guarded, when scraped.
    pub(super) metrics: Option<Endpoint>,
    /// The state the `Watchdog` handle reads.
    pub(super) inner: Arc<Mutex<Inner>>,
}

/// The failing streak that may become a hang.
#[derive(Debug, Default)]
struct Streak {
    failures: u32,
    started_s: f64,
    errors: Vec<String>,
}

impl Runner {
    pub(super) async fn run(self, mut stop: watch::Receiver<bool>) {
        let settings = self.config.settings.clone();
        let prober = self.ws.clone().map(|endpoint| {
            WsProber::spawn(
                endpoint,
                self.config.tokens.clone(),
                self.config.placement,
                self.config.ping,
                settings.timeout,
            )
        });
        let mut ticks = tokio::time::interval(settings.interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut scrapes = tokio::time::interval(settings.metrics_interval);
        scrapes.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let (round_tx, mut rounds) = mpsc::unbounded_channel::<Round>();
        let (scrape_tx, mut scraped) = mpsc::unbounded_channel::<(f64, String)>();
        let mut next_round = 0;
        let mut next_decided = 0;
        let mut early: BTreeMap<u64, Round> = BTreeMap::new();
        let mut streak = Streak::default();
        let mut writers = Vec::new();
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                _ = ticks.tick() => {
                    let (health, prober, tx) = (self.health.clone(), prober.clone(), round_tx.clone());
                    let (n, launched_s, limit) = (next_round, seconds_since(self.config.origin), settings.timeout);
                    next_round += 1;
                    tokio::spawn(async move {
                        let health = async { match &health { Some(e) => Some(probe::health(e, limit).await), None => None } };
                        let ws = async { match &prober { Some(p) => Some(p.ping(n, limit).await), None => None } };
                        let (health, ws) = tokio::join!(health, ws);
                        let _ = tx.send(Round { n, launched_s, health, ws });
                    });
                }
                _ = scrapes.tick(), if self.metrics.is_some() => {
                    let (endpoint, tx, origin, limit) = (self.metrics.clone().expect("guarded"), scrape_tx.clone(), self.config.origin, settings.timeout);
                    tokio::spawn(async move {
                        if let Ok((200, body)) = http::get(&endpoint, limit).await {
                            let _ = tx.send((seconds_since(origin), body));
                        }
                    });
                }
                Some(scrape) = scraped.recv() => self.inner.lock().expect("watchdog lock").last_metrics = Some(scrape),
                Some(round) = rounds.recv() => {
                    early.insert(round.n, round);
                    // Decide rounds in the order they started.
                    while let Some(round) = early.remove(&next_decided) {
                        next_decided += 1;
                        if let Some(writer) = self.decide(round, &mut streak) {
                            writers.push(writer);
                        }
                    }
                }
            }
        }
        for writer in writers {
            let _ = writer.await;
        }
    }

    /// Applies one round; returns the task writing the hang file when this
    /// round makes a hang.
    fn decide(&self, round: Round, streak: &mut Streak) -> Option<tokio::task::JoinHandle<()>> {
        let settings = &self.config.settings;
        let errors = round.errors();
        let mut inner = self.inner.lock().expect("watchdog lock");
        if errors.is_empty() {
            let health = round.health.as_ref().and_then(|r| r.as_ref().ok()).copied();
            let latency =
                health.or_else(|| round.ws.as_ref().and_then(|r| r.as_ref().ok()).copied());
            if let Some(h) = health {
                let _ = inner.health_us.record((h.as_micros() as u64).max(1));
            }
            inner.probe_ms = latency.map(|l| l.as_secs_f64() * 1000.0);
            if inner.hung {
                inner.hung = false;
                let now_s = seconds_since(self.config.origin);
                if let Some(hang) = inner.hangs.last_mut() {
                    hang.ended_s = Some(now_s);
                }
            }
            *streak = Streak::default();
            inner.state = if latency.is_some_and(|l| l > settings.slow) {
                "degraded"
            } else {
                "ok"
            };
            return None;
        }
        // A round that did not answer has no latency to show: keeping the
        // last answered one would show a stale figure during a hang.
        inner.probe_ms = None;
        streak.failures += 1;
        if streak.failures == 1 {
            streak.started_s = round.launched_s;
            streak.errors = errors;
        }
        if inner.hung || streak.failures < settings.failures_before_hang {
            inner.state = if inner.hung { "hung" } else { "degraded" };
            return None;
        }
        inner.hung = true;
        inner.state = "hung";
        let facts = HangFacts {
            run_name: self.config.run_name.clone(),
            number: inner.hangs.len() + 1,
            started_s: streak.started_s,
            detected_s: seconds_since(self.config.origin),
            last_chaos: self.config.last_chaos.before(streak.started_s),
            probe_errors: streak.errors.clone(),
            last_metrics: inner.last_metrics.clone(),
            stderr_tail: self
                .config
                .target
                .as_ref()
                .and_then(|t| t.stderr_tail.as_ref())
                .map(StderrTail::lines)
                .unwrap_or_default(),
        };
        inner.hangs.push(HangRecord {
            started_s: facts.started_s,
            detected_s: facts.detected_s,
            ended_s: None,
            last_chaos: facts.last_chaos.clone(),
            diagnostics: None,
        });
        tracing::warn!(
            started_s = facts.started_s,
            detected_s = facts.detected_s,
            "target hung: {}",
            facts.probe_errors.join("; ")
        );
        if !settings.diagnostics {
            return None;
        }
        let (inner, out_dir, pid) = (
            self.inner.clone(),
            self.config.out_dir.clone(),
            self.config.target.as_ref().map(|t| t.pid),
        );
        Some(tokio::task::spawn_blocking(move || {
            let index = facts.number - 1;
            let path = diagnostics::write(&out_dir, &facts, pid);
            let mut inner = inner.lock().expect("watchdog lock");
            match path {
                Ok(path) => inner.hangs[index].diagnostics = Some(path.display().to_string()),
                Err(e) => tracing::error!("writing the hang file: {e}"),
            }
        }))
    }
}
