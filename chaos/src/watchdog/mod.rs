//! The hang watchdog: probes the target every `interval` (an HTTP GET on its
//! health URL and a Ping/Pong on its own WebSocket, each within `timeout`),
//! declares a hang after `failures_before_hang` consecutive failed rounds,
//! notes when it ends, and writes the hang file at detection.
//!
//! It runs on its own OS thread with its own single-threaded runtime, so
//! that neither a busy load engine nor a hung target can delay its probes or
//! take it down. A round fails only when a probe errs or misses its timeout:
//! a saturated target that still answers is slow (`degraded`), not hung.
//!
//! Probe rounds start every `interval` whatever the earlier ones are doing,
//! so the `failures_before_hang`-th failed round after the onset starts
//! within `failures_before_hang × interval` of it and fails within
//! `timeout` more: with the default 2 failures, detection comes within
//! `2 × interval + timeout` of the onset.

pub mod backtrace;
pub mod diagnostics;
pub mod probe;
pub mod procfs;
pub mod stderr;

use crate::agent::LastChaos;
use crate::scenario::WatchdogSettings;
use crate::target::{Endpoint, TokenPlacement, TokenSource};
use crate::{Error, LoopbackGuard};
use diagnostics::HangFacts;
use hdrhistogram::Histogram;
use probe::{PingStyle, WsProber};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
pub use stderr::StderrTail;
use tokio::sync::{mpsc, watch};
use tokio::time::MissedTickBehavior;

/// The target process, when squall owns it (`builtin` or `command`).
#[derive(Debug, Clone)]
pub struct TargetProcess {
    /// Its PID, for /proc and gdb.
    pub pid: u32,
    /// Its stderr's last lines, if captured (see [`StderrTail::capture`]).
    pub stderr_tail: Option<StderrTail>,
}

/// What the watchdog needs from the CLI.
#[derive(Clone)]
pub struct WatchdogConfig {
    /// The scenario's `[watchdog]`.
    pub settings: WatchdogSettings,
    /// `http://127.0.0.1:PORT/health`; `None` skips the health probe.
    pub health_url: Option<String>,
    /// The target's `ws://` URL; `None` skips the WebSocket probe.
    pub ws_url: Option<String>,
    /// Token for the WebSocket probe (called with `u64::MAX` per connect).
    pub tokens: Option<TokenSource>,
    /// Where the token goes.
    pub placement: TokenPlacement,
    /// How to ping: the squall protocol's Ping, or a WebSocket ping frame.
    pub ping: PingStyle,
    /// `http://.../metrics`, scraped every `metrics_interval`; `None`: no scrape.
    pub metrics_url: Option<String>,
    /// The target process, for diagnostics.
    pub target: Option<TargetProcess>,
    /// Where hang files go (`results/`).
    pub out_dir: PathBuf,
    /// The run's name: hang files are `<out_dir>/<run_name>-hang-N.txt`.
    pub run_name: String,
    /// The run's origin: every `_s` counts from here.
    pub origin: std::time::Instant,
    /// The chaos agent's record of its actions.
    pub last_chaos: LastChaos,
    /// Refuses non-loopback URLs.
    pub guard: LoopbackGuard,
}

impl WatchdogConfig {
    /// A config with no URLs, no target process, the squall ping and a
    /// loopback-only guard; fill in what the run has.
    pub fn new(
        settings: WatchdogSettings,
        origin: std::time::Instant,
        out_dir: impl Into<PathBuf>,
        run_name: impl Into<String>,
    ) -> Self {
        Self {
            settings,
            health_url: None,
            ws_url: None,
            tokens: None,
            placement: TokenPlacement::Query,
            ping: PingStyle::Squall,
            metrics_url: None,
            target: None,
            out_dir: out_dir.into(),
            run_name: run_name.into(),
            origin,
            last_chaos: LastChaos::default(),
            guard: LoopbackGuard::loopback_only(),
        }
    }
}

impl std::fmt::Debug for WatchdogConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchdogConfig")
            .field("settings", &self.settings)
            .field("health_url", &self.health_url)
            .field("ws_url", &self.ws_url)
            .field("metrics_url", &self.metrics_url)
            .field("target", &self.target)
            .field("out_dir", &self.out_dir)
            .field("run_name", &self.run_name)
            .finish_non_exhaustive()
    }
}

/// One hang, as the results file records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HangRecord {
    /// The first failed probe round's start, seconds from the origin.
    pub started_s: f64,
    /// When the hang was declared.
    pub detected_s: f64,
    /// When a probe round succeeded again; `None` while it lasts.
    pub ended_s: Option<f64>,
    /// The last chaos action that started before `started_s`.
    pub last_chaos: Option<String>,
    /// Path of the hang file, once written.
    pub diagnostics: Option<String>,
}

/// The watchdog's state for the once-a-second snapshot; the fields are
/// those of the CLI's `WatchdogSnap`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WatchdogStatus {
    /// `ok`, `degraded` (slow, or failed rounds short of a hang), `hung`, `off`.
    pub state: String,
    /// Latency of the last answered health probe (else WS probe), in ms.
    pub probe_ms: Option<f64>,
    /// p99 of health probe latency so far, in ms.
    pub health_p99_ms: f64,
    /// How long the current hang has lasted, when hung.
    pub hang_for_s: Option<f64>,
    /// Hangs detected so far.
    pub hangs: u64,
    /// The last chaos action before the current hang, if hung.
    pub last_chaos: Option<String>,
}

/// The watchdog's shared state.
#[derive(Debug)]
struct Inner {
    state: &'static str,
    probe_ms: Option<f64>,
    health_us: Histogram<u64>,
    hangs: Vec<HangRecord>,
    hung: bool,
    last_metrics: Option<(f64, String)>,
}

/// A running watchdog. Dropping it stops it; [`Watchdog::stop`] also waits
/// for hang files being written.
#[derive(Debug)]
pub struct Watchdog {
    inner: Arc<Mutex<Inner>>,
    origin: std::time::Instant,
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    /// Checks the URLs with the guard and starts probing on a thread of its
    /// own. With `settings.enabled = false` it probes nothing and reports `off`.
    pub fn spawn(config: WatchdogConfig) -> Result<Self, Error> {
        config.settings.validate().map_err(Error::Invalid)?;
        let parse = |url: &Option<String>| {
            url.as_deref()
                .map(|u| Endpoint::parse(u, &config.guard))
                .transpose()
        };
        let health = parse(&config.health_url)?.filter(|_| config.settings.health_probe);
        let ws = parse(&config.ws_url)?.filter(|_| config.settings.ws_probe);
        let metrics = parse(&config.metrics_url)?;
        let enabled = config.settings.enabled && (health.is_some() || ws.is_some());
        let inner = Arc::new(Mutex::new(Inner {
            state: if enabled { "ok" } else { "off" },
            probe_ms: None,
            health_us: Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .expect("valid histogram bounds"),
            hangs: Vec::new(),
            hung: false,
            last_metrics: None,
        }));
        let (stop, stop_rx) = watch::channel(false);
        let origin = config.origin;
        let thread = if enabled {
            let runner = Runner {
                config,
                health,
                ws,
                metrics,
                inner: inner.clone(),
            };
            Some(
                std::thread::Builder::new()
                    .name("squall-watchdog".into())
                    .spawn(move || {
                        let runtime = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .expect("building the watchdog's runtime");
                        runtime.block_on(runner.run(stop_rx));
                    })
                    .map_err(Error::Io)?,
            )
        } else {
            None
        };
        Ok(Self {
            inner,
            origin,
            stop,
            thread,
        })
    }

    /// The state now; cheap (one short lock).
    pub fn status(&self) -> WatchdogStatus {
        let inner = self.inner.lock().expect("watchdog lock");
        let now_s = seconds_since(self.origin);
        let current = inner.hangs.last().filter(|_| inner.hung);
        WatchdogStatus {
            state: inner.state.to_string(),
            probe_ms: inner.probe_ms,
            health_p99_ms: if inner.health_us.is_empty() {
                0.0
            } else {
                inner.health_us.value_at_quantile(0.99) as f64 / 1000.0
            },
            hang_for_s: current.map(|h| now_s - h.started_s),
            hangs: inner.hangs.len() as u64,
            last_chaos: current.and_then(|h| h.last_chaos.clone()),
        }
    }

    /// Every hang so far, for the results file.
    pub fn hangs(&self) -> Vec<HangRecord> {
        self.inner.lock().expect("watchdog lock").hangs.clone()
    }

    /// Whether the target is hung now.
    pub fn is_hung(&self) -> bool {
        self.inner.lock().expect("watchdog lock").hung
    }

    /// Stops probing, waits for hang files being written (bounded by gdb's
    /// timeout), and returns every hang.
    pub fn stop(mut self) -> Vec<HangRecord> {
        let _ = self.stop.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.hangs()
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

fn seconds_since(origin: std::time::Instant) -> f64 {
    let now = std::time::Instant::now();
    if now >= origin {
        (now - origin).as_secs_f64()
    } else {
        -(origin - now).as_secs_f64()
    }
}

/// One probe round's results.
#[derive(Debug)]
struct Round {
    n: u64,
    launched_s: f64,
    health: Option<Result<Duration, String>>,
    ws: Option<Result<Duration, String>>,
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
struct Runner {
    config: WatchdogConfig,
    health: Option<Endpoint>,
    ws: Option<Endpoint>,
    metrics: Option<Endpoint>,
    inner: Arc<Mutex<Inner>>,
}

/// The failing streak that may become a hang.
#[derive(Debug, Default)]
struct Streak {
    failures: u32,
    started_s: f64,
    errors: Vec<String>,
}

impl Runner {
    async fn run(self, mut stop: watch::Receiver<bool>) {
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
                        if let Ok((200, body)) = probe::http_get(&endpoint, limit).await {
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
