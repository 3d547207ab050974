//! The hang watchdog: probes the target every `interval` (an HTTP GET on its
//! health URL, a Ping/Pong on its own WebSocket and a fresh WebSocket
//! upgrade, each within `timeout`), hears the load's progress once a second
//! ([`Watchdog::note_progress`]) and the CLI's word that the target process
//! ended ([`Watchdog::target_exited`]), and judges from all of it whether the
//! target is hung, of which [`HangKind`]: the rules are in [`judge`]'s
//! documentation. It notes when a hang ends, and writes the hang file at
//! detection.
//!
//! A hang means no progress: probes unanswered for the timeout **and** no
//! delivery while deliveries are due. Slow or failing probes while
//! deliveries flow are `degraded`, never a hang. Before any progress is fed
//! (runs without load: `squall chaos`, the crate's own tests) the probes
//! alone decide, as they always did.
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
//! `2 × interval + timeout` of the onset (when progress is fed, as soon
//! after as a feed sample shows deliveries starving: about 2 s).
//!
//! A target that dies stops answering too: without the CLI's word it is an
//! `unreachable` (connection refused) or `unresponsive` hang, and the hang
//! file's classification says `exited`; with it, an `exited` hang at once.

pub mod backtrace;
pub mod diagnostics;
pub mod judge;
pub mod probe;
pub mod procfs;
mod runner;
pub mod stderr;

use crate::Error;
use crate::agent::LastChaos;
use crate::scenario::WatchdogSettings;
use crate::target::{self, TokenPlacement, TokenSource};
use hdrhistogram::Histogram;
use judge::{Declared, Judge};
use probe::PingStyle;
use runner::Runner;
use serde::{Deserialize, Serialize};
use squall_proto::origin::monotonic_ns;
use squall_proto::{LoopbackGuard, Origin, TlsClient};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
pub use stderr::StderrTail;
use tokio::sync::{mpsc, watch};

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
    /// How `https://` and `wss://` URLs are trusted: the run's one TLS
    /// client, the load's.
    pub tls: TlsClient,
    /// The caller will call [`Watchdog::note_progress`] once a second (a
    /// run with load): before the first samples, a slow probe is no hang.
    pub progress_fed: bool,
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
            tls: TlsClient::default(),
            progress_fed: false,
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
            .field("tls", &self.tls)
            .field("target", &self.target)
            .field("out_dir", &self.out_dir)
            .field("run_name", &self.run_name)
            .finish_non_exhaustive()
    }
}

/// What kind of hang (DESIGN.md, `hangs[].kind`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HangKind {
    /// Probes unanswered for the timeout and no delivery while deliveries
    /// were due (or, before any progress was fed, probes alone).
    #[default]
    Unresponsive,
    /// Some topics stopped delivering while others delivered.
    DeliveryStall,
    /// New WebSocket upgrades stalled while the existing socket answered.
    AcceptStall,
    /// The target process squall owns ended.
    Exited,
    /// Every probe was refused: nothing listens any more.
    Unreachable,
}

named_enum!(HangKind, "hang kind", {
    Unresponsive => "unresponsive",
    DeliveryStall => "delivery-stall",
    AcceptStall => "accept-stall",
    Exited => "exited",
    Unreachable => "unreachable",
});

impl HangKind {
    /// How bad: a worse kind takes over an open hang of a milder one
    /// (one stall is one hang).
    pub fn severity(self) -> u8 {
        match self {
            HangKind::DeliveryStall => 1,
            HangKind::AcceptStall => 2,
            HangKind::Unresponsive => 3,
            HangKind::Unreachable => 4,
            HangKind::Exited => 5,
        }
    }
}

/// One hang, as the results file records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HangRecord {
    /// What kind of hang.
    #[serde(default)]
    pub kind: HangKind,
    /// When it began, seconds from the origin: the first failed probe round
    /// (unresponsive, unreachable, accept-stall), the stalled topics' last
    /// delivery (delivery-stall), or the exit (exited).
    pub started_s: f64,
    /// When the hang was declared.
    pub detected_s: f64,
    /// When it ended (a probe round answered again, deliveries flowed
    /// again, an upgrade succeeded, the topics delivered again); `None`
    /// while it lasts, and always for `exited`.
    pub ended_s: Option<f64>,
    /// delivery-stall: the topics that stopped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<String>,
    /// The last chaos action that started before `started_s`, with its age:
    /// `"reset x200, 8.0 s before"`.
    pub last_chaos: Option<String>,
    /// What the watchdog saw, in words: the probes' errors, what the stalled
    /// topics owe, or how the process ended (`"exited with status 70"`,
    /// `"killed by signal 9"`).
    #[serde(default)]
    pub reason: String,
    /// Path of the hang file, once written.
    pub diagnostics: Option<String>,
}

/// The load's progress, fed by the CLI once a second from its snapshot
/// ([`Watchdog::note_progress`]). Every count is cumulative since the start
/// of the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// When the snapshot was taken, seconds from the origin.
    pub at_s: f64,
    /// Deliveries owed so far whose scheduled time has passed.
    pub due: u64,
    /// Deliveries received so far.
    pub received: u64,
    /// Owed deliveries older than the loss bound (2 s) not received, now.
    pub overdue: u64,
    /// Upgrades the load completed so far: while they keep completing, a
    /// failing accept probe is a slow target, not an accept-stall.
    #[serde(default)]
    pub established: u64,
    /// Per topic; empty when the load does not count by topic.
    pub topics: Vec<TopicProgress>,
}

/// One topic's progress, cumulative.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicProgress {
    /// The topic's name, as a delivery-stall names it.
    pub name: String,
    /// Messages published on it.
    pub sent: u64,
    /// Deliveries received on it.
    pub received: u64,
    /// Subscribers acknowledged on it now.
    pub subscribers: u64,
}

/// The watchdog's state for the once-a-second snapshot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WatchdogStatus {
    /// `ok`, `degraded` (slow or failing probes short of a hang, or while
    /// deliveries flow; a topic stalling short of a hang), `hung`, `off`.
    pub state: String,
    /// Latency of the last probe round (its health probe, else its WS
    /// ping), in ms; `None` when that round did not answer.
    pub probe_ms: Option<f64>,
    /// The last round's health GET, in ms; `None` when it did not answer
    /// in time (or is not probed).
    pub health_ms: Option<f64>,
    /// The last round's ping on the watchdog's socket, in ms; `None` when
    /// no pong came in time (or it is not probed).
    pub ping_ms: Option<f64>,
    /// The last round's fresh WebSocket upgrade, in ms; `None` when it did
    /// not complete in time (or is not probed).
    pub accept_ms: Option<f64>,
    /// p99 of health probe latency so far, in ms.
    pub health_p99_ms: f64,
    /// The kind of the current hang, when hung.
    pub hang_kind: Option<HangKind>,
    /// How long the current hang has lasted, when hung.
    pub hang_for_s: Option<f64>,
    /// Hangs detected so far.
    pub hangs: u64,
    /// The last chaos action before the current hang, with its age, if hung.
    pub last_chaos: Option<String>,
}

/// The watchdog's shared state, behind one `std::sync::Mutex` (see
/// [`Watchdog`]).
#[derive(Debug)]
struct Inner {
    /// Whether probes run at all (`off` otherwise).
    enabled: bool,
    probe_ms: Option<f64>,
    health_ms: Option<f64>,
    ping_ms: Option<f64>,
    accept_ms: Option<f64>,
    health_us: Histogram<u64>,
    /// The verdict: every hang and what the next decision needs.
    judge: Judge,
    last_metrics: Option<(f64, String)>,
}

/// A running watchdog. Dropping it stops it; [`Watchdog::stop`] also waits
/// for hang files being written.
#[derive(Debug)]
pub struct Watchdog {
    /// The state, the probe latencies and the verdict (every hang). Written
    /// by the probing loop on the watchdog's thread (once per decided round,
    /// once per feed sample, once per metrics scrape), by the task writing a
    /// hang file (once, to note its path) and by [`Watchdog::target_exited`]
    /// (once, from the CLI); read by [`Watchdog::status`] and
    /// [`Watchdog::hangs`] once a second from the CLI. A `std::sync::Mutex`:
    /// few writers, short critical sections (a few fields, one histogram
    /// record, one pass over the fed topics, one clone of the hangs), and
    /// none of them awaits while holding it (the workspace denies
    /// clippy::await_holding_lock); the hang file is written with it
    /// released. Under it the verdict may take [`LastChaos`]'s lock and the
    /// loop the [`StderrTail`]'s, which never take this one: no lock-order
    /// cycle. [`Watchdog::note_progress`] does not take it: the feed goes
    /// through a `watch` channel (latest sample only; the counts are
    /// cumulative, so a skipped sample loses nothing).
    inner: Arc<Mutex<Inner>>,
    origin: Origin,
    last_chaos: LastChaos,
    stop: watch::Sender<bool>,
    /// The latest progress sample, for the loop.
    feed: watch::Sender<Option<Progress>>,
    /// An `exited` hang to write the hang file of (sent at most once).
    exits: mpsc::UnboundedSender<Declared>,
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
            enabled,
            probe_ms: None,
            health_ms: None,
            ping_ms: None,
            accept_ms: None,
            health_us: Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .expect("valid histogram bounds"),
            judge: {
                let mut judge =
                    Judge::new(config.settings.failures_before_hang, config.settings.slow);
                if config.progress_fed {
                    judge.expect_feed();
                }
                judge
            },
            last_metrics: None,
        }));
        let (stop, stop_rx) = watch::channel(false);
        let (feed, feed_rx) = watch::channel(None);
        let (exits, exits_rx) = mpsc::unbounded_channel();
        let (origin, last_chaos) = (config.origin, config.last_chaos.clone());
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
                        runtime.block_on(runner.run(stop_rx, feed_rx, exits_rx));
                    })
                    .map_err(Error::Io)?,
            )
        } else {
            None
        };
        Ok(Self {
            inner,
            origin,
            last_chaos,
            stop,
            feed,
            exits,
            thread,
        })
    }

    /// The state now; cheap (one short lock).
    pub fn status(&self) -> WatchdogStatus {
        let inner = self.inner.lock().expect("watchdog lock");
        let now_s = seconds_since(self.origin);
        let current = inner.judge.current();
        WatchdogStatus {
            state: if current.is_none() && !inner.enabled {
                "off"
            } else {
                inner.judge.state()
            }
            .to_string(),
            probe_ms: inner.probe_ms,
            health_ms: inner.health_ms,
            ping_ms: inner.ping_ms,
            accept_ms: inner.accept_ms,
            health_p99_ms: if inner.health_us.is_empty() {
                0.0
            } else {
                inner.health_us.value_at_quantile(0.99) as f64 / 1000.0
            },
            hang_kind: current.map(|h| h.kind),
            hang_for_s: current.map(|h| now_s - h.started_s),
            hangs: inner.judge.hangs().len() as u64,
            last_chaos: current.and_then(|h| h.last_chaos.clone()),
        }
    }

    /// Every hang so far, for the results file.
    pub fn hangs(&self) -> Vec<HangRecord> {
        self.inner
            .lock()
            .expect("watchdog lock")
            .judge
            .hangs()
            .to_vec()
    }

    /// Whether the target is hung now.
    pub fn is_hung(&self) -> bool {
        self.inner
            .lock()
            .expect("watchdog lock")
            .judge
            .current()
            .is_some()
    }

    /// The load's progress, once a second from the CLI's snapshot. From the
    /// first call on, the verdict weighs deliveries as well as probes (see
    /// [`judge`]); a feed that stops for [`judge::FEED_STALE_S`] is ignored
    /// again. Cheap and never blocks: the sample is handed to the
    /// watchdog's thread (latest only). Does nothing when the watchdog is off.
    pub fn note_progress(&self, progress: Progress) {
        if self.thread.is_some() {
            self.feed.send_replace(Some(progress));
        }
    }

    /// The target process squall owns has ended (`how`: `"exited with
    /// status 70"`, `"killed by signal 9"`): an `exited` hang is recorded at
    /// once (detected now; a hang already open becomes that hang, so one
    /// death is one hang). Its hang file (the stderr tail; no /proc, the
    /// PID may be reused) is written on the watchdog's thread. Recorded even
    /// when the watchdog is off; later calls do nothing.
    pub fn target_exited(&self, how: impl Into<String>) {
        let how = how.into();
        let declared = {
            let mut inner = self.inner.lock().expect("watchdog lock");
            let now_s = seconds_since(self.origin);
            inner.judge.exited(&how, now_s, &self.last_chaos)
        };
        tracing::warn!("target {how}");
        if let Some(declared) = declared {
            // No loop (watchdog off, or stopped): no hang file.
            let _ = self.exits.send(declared);
        }
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
