//! The probing loop on the watchdog's own thread: a round of probes every
//! `interval`, rounds decided in the order they started, the load's
//! progress samples and the CLI's `exited` word handed to the verdict
//! ([`super::judge`]), and each new hang's file written off the loop.

use super::diagnostics::{self, HangFacts};
use super::judge::{Declared, Round};
use super::probe::{self, WsProber};
use super::{HangKind, Inner, Progress, StderrTail, WatchdogConfig, seconds_since};
use crate::http;
use squall_proto::Endpoint;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

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

impl Runner {
    pub(super) async fn run(
        self,
        mut stop: watch::Receiver<bool>,
        mut feed: watch::Receiver<Option<Progress>>,
        mut exits: mpsc::UnboundedReceiver<Declared>,
    ) {
        let settings = self.config.settings.clone();
        let prober = self.ws.clone().map(|endpoint| {
            WsProber::spawn(
                endpoint,
                self.config.tokens.clone(),
                self.config.placement,
                self.config.ping,
                self.config.tls.clone(),
                settings.timeout,
            )
        });
        let accept = self.ws.clone().filter(|_| settings.accept_probe);
        let mut ticks = tokio::time::interval(settings.interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut scrapes = tokio::time::interval(settings.metrics_interval);
        scrapes.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let (round_tx, mut rounds) = mpsc::unbounded_channel::<Round>();
        let (scrape_tx, mut scraped) = mpsc::unbounded_channel::<(f64, String)>();
        let mut next_round = 0;
        let mut next_decided = 0;
        let mut early: BTreeMap<u64, Round> = BTreeMap::new();
        let mut writers = Vec::new();
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                _ = ticks.tick() => {
                    let (health, prober, tx) = (self.health.clone(), prober.clone(), round_tx.clone());
                    let (n, launched_s, limit) = (next_round, seconds_since(self.config.origin), settings.timeout);
                    let fresh = accept.clone().map(|endpoint| {
                        (endpoint, self.config.tokens.as_ref().and_then(|t| t(u64::MAX)))
                    });
                    let (placement, tls) = (self.config.placement, self.config.tls.clone());
                    next_round += 1;
                    // Each probe is bounded by `limit`: the task ends.
                    tokio::spawn(async move {
                        let health = async { match &health { Some(e) => Some(probe::health(e, &tls, limit).await), None => None } };
                        let ping = async { match &prober { Some(p) => Some(p.ping(n, limit).await), None => None } };
                        let accept = async {
                            match fresh {
                                Some((endpoint, token)) => Some(probe::accept(&endpoint, token, placement, &tls, limit).await),
                                None => None,
                            }
                        };
                        let (health, ping, accept) = tokio::join!(health, ping, accept);
                        let _ = tx.send(Round { n, launched_s, health, ping, accept });
                    });
                }
                _ = scrapes.tick(), if self.metrics.is_some() => {
                    let (endpoint, tx, origin, limit) = (self.metrics.clone().expect("guarded"), scrape_tx.clone(), self.config.origin, settings.timeout);
                    let tls = self.config.tls.clone();
                    tokio::spawn(async move {
                        if let Ok((200, body)) = http::get(&endpoint, &tls, limit).await {
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
                        writers.extend(self.decide(round));
                    }
                }
                Ok(()) = feed.changed() => {
                    let sample = feed.borrow_and_update().clone();
                    if let Some(sample) = sample {
                        let mut inner = self.inner.lock().expect("watchdog lock");
                        let now_s = seconds_since(self.config.origin);
                        let declared = inner.judge.progress(&sample, now_s, &self.config.last_chaos);
                        writers.extend(declared.and_then(|d| self.hang_file(&inner, d)));
                    }
                }
                Some(declared) = exits.recv() => {
                    let inner = self.inner.lock().expect("watchdog lock");
                    writers.extend(self.hang_file(&inner, declared));
                }
            }
            // Hang files written: let go of their handles (bounded list).
            writers.retain(|w: &JoinHandle<()>| !w.is_finished());
        }
        for writer in writers {
            let _ = writer.await;
        }
    }

    /// Applies one round; returns the task writing the hang file when this
    /// round makes a hang.
    fn decide(&self, round: Round) -> Option<JoinHandle<()>> {
        let ms = |r: &Option<Result<std::time::Duration, probe::ProbeError>>| {
            r.as_ref()?.as_ref().ok().map(|d| d.as_secs_f64() * 1000.0)
        };
        let mut inner = self.inner.lock().expect("watchdog lock");
        if let Some(Ok(h)) = &round.health {
            let _ = inner.health_us.record((h.as_micros() as u64).max(1));
        }
        inner.health_ms = ms(&round.health);
        inner.ping_ms = ms(&round.ping);
        inner.accept_ms = ms(&round.accept);
        // A round that did not answer has no latency to show: keeping the
        // last answered one would show a stale figure during a hang.
        let failed = matches!(round.health, Some(Err(_))) || matches!(round.ping, Some(Err(_)));
        inner.probe_ms = if failed {
            None
        } else {
            round.latency().map(|l| l.as_secs_f64() * 1000.0)
        };
        let now_s = seconds_since(self.config.origin);
        let declared = inner.judge.round(&round, now_s, &self.config.last_chaos)?;
        self.hang_file(&inner, declared)
    }

    /// Logs a new hang and starts writing its hang file (when diagnostics
    /// are on); the task notes the file's path in the hang.
    fn hang_file(&self, inner: &Inner, declared: Declared) -> Option<JoinHandle<()>> {
        let hang = inner.judge.hangs().get(declared.index)?;
        let facts = HangFacts {
            run_name: self.config.run_name.clone(),
            number: declared.index + 1,
            kind: hang.kind.as_str().to_string(),
            started_s: hang.started_s,
            detected_s: hang.detected_s,
            last_chaos: hang.last_chaos.clone(),
            probe_errors: declared.evidence,
            exited: declared.exited,
            gdb: matches!(hang.kind, HangKind::Unresponsive | HangKind::Unreachable),
            last_metrics: inner.last_metrics.clone(),
            stderr_tail: self
                .config
                .target
                .as_ref()
                .and_then(|t| t.stderr_tail.as_ref())
                .map(StderrTail::lines)
                .unwrap_or_default(),
        };
        tracing::warn!(
            kind = facts.kind,
            started_s = facts.started_s,
            detected_s = facts.detected_s,
            "target hung: {}",
            facts.probe_errors.join("; ")
        );
        if !self.config.settings.diagnostics {
            return None;
        }
        // An exited process has no /proc to read, and its PID may be reused.
        let pid = self
            .config
            .target
            .as_ref()
            .map(|t| t.pid)
            .filter(|_| facts.exited.is_none());
        let (inner, out_dir) = (self.inner.clone(), self.config.out_dir.clone());
        Some(tokio::task::spawn_blocking(move || {
            let index = facts.number - 1;
            let path = diagnostics::write(&out_dir, &facts, pid);
            let mut inner = inner.lock().expect("watchdog lock");
            match path {
                Ok(path) => {
                    if let Some(hang) = inner.judge.hang_mut(index) {
                        hang.diagnostics = Some(path.display().to_string());
                    }
                }
                Err(e) => tracing::error!("writing the hang file: {e}"),
            }
        }))
    }
}
