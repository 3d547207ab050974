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
//!
//! A target that dies stops answering too: it is reported as a hang, and
//! the hang file's classification says `exited`.

pub mod backtrace;
pub mod diagnostics;
pub mod probe;
pub mod procfs;
mod runner;
pub mod stderr;

use crate::Error;
use crate::agent::LastChaos;
use crate::scenario::WatchdogSettings;
use crate::target::{self, TokenPlacement, TokenSource};
use hdrhistogram::Histogram;
use probe::PingStyle;
use runner::Runner;
use serde::{Deserialize, Serialize};
use squall_proto::origin::monotonic_ns;
use squall_proto::{LoopbackGuard, Origin};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
pub use stderr::StderrTail;
use tokio::sync::watch;

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
    pub origin: Origin,
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
        origin: Origin,
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

/// The watchdog's state for the once-a-second snapshot; the CLI's snapshot
/// carries it as it is (`WatchdogSnap`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WatchdogStatus {
    /// `ok`, `degraded` (slow, or failed rounds short of a hang), `hung`, `off`.
    pub state: String,
    /// Latency of the last probe round (its health probe, else its WS
    /// ping), in ms; `None` when that round did not answer.
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

/// The watchdog's shared state, behind one `std::sync::Mutex` (see
/// [`Watchdog`]).
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
    /// The state, the probe latencies and the hangs. Written by the probing
    /// loop on the watchdog's thread (once per decided round, once per
    /// metrics scrape) and by the task writing a hang file (once, to note its
    /// path); read by [`Watchdog::status`] once a second from the CLI. A
    /// `std::sync::Mutex`: few writers, short critical sections (a few
    /// fields, one histogram record, one clone of the hangs), and none of
    /// them awaits while holding it (the workspace denies
    /// clippy::await_holding_lock); the hang file is written with it
    /// released. Under it the loop may take [`LastChaos`]'s lock and the
    /// [`StderrTail`]'s, which never take this one: no lock-order cycle.
    inner: Arc<Mutex<Inner>>,
    origin: Origin,
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    /// Checks the URLs with the guard and starts probing on a thread of its
    /// own. With `settings.enabled = false` it probes nothing and reports `off`.
    pub fn spawn(config: WatchdogConfig) -> Result<Self, Error> {
        config.settings.validate()?;
        let parse = |url: &Option<String>| {
            url.as_deref()
                .map(|u| target::endpoint(u, &config.guard))
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

/// Seconds from `origin` to now (negative before it).
fn seconds_since(origin: Origin) -> f64 {
    (i128::from(monotonic_ns()) - i128::from(origin.as_mono_ns())) as f64 / 1e9
}
