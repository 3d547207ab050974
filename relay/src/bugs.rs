//! The `--bug NAME` switches: classic failures of real relays, reproduced on
//! purpose so that the harness can prove it catches them. All are off unless
//! asked for; [`Bugs::default`] is a correct relay.
//!
//! Each bug with a known answer counts what it did in `/metrics`
//! (`squall_relay_kicked_total`, `squall_relay_stalled_deliveries_total`, ...),
//! so that a test can compare what squall measured with what the relay did.
//! Times "S after start" count from the relay's start ([`crate::start`]).

use std::num::NonZeroU64;
use std::str::FromStr;
use std::time::Duration;

use squall_proto::duration::parse_duration;

/// The `--help` text of `--bug`: every switch with the symptom it causes.
pub const BUG_HELP: &str = "\
Turn on a deliberate bug (repeatable; all off by default):
  hang-on-reset   the disconnect path of a connection that ended without a closing
                  handshake holds a registry lock across an await that never completes;
                  within seconds the whole server, /health included, stops answering
                  while the process stays up
  leak-on-reset   connections that end without a closing handshake leave their state
                  behind: the connections gauge, subscriptions and memory grow per reset
  unbounded-queue no outbound bound: a slow consumer is never disconnected and the
                  relay's memory grows without limit
  drop-every=N    silently drop every Nth delivery (known loss of 1/N)
  dup-every=N     deliver every Nth delivery twice (known duplicates of 1/N)
  stall=MS/S      hold every delivery for MS milliseconds once every S seconds
                  (known latency spikes), e.g. stall=200/2
  exit-after=S    S after start the process exits at once with status 70: no closing
                  handshake, no drain, as in a crash (one log line first), e.g. exit-after=3s;
                  /metrics shows squall_relay_exit_after_seconds
  kick-every=N@S  once, S after start, close every Nth open WebSocket in connection order
                  (the 1st, the N+1th, ...) with 1008 \"kicked\"; their subscriptions stay
                  as ghosts that receive nothing: squall_relay_kicked_total connections,
                  squall_relay_kicked_undelivered_total deliveries owed to ghosts,
                  e.g. kick-every=5@4s
  stall-topic=S   from S after start, deliveries on the first topic ever subscribed to are
                  silently withheld; other topics, /health and Ping keep working;
                  squall_relay_stalled_deliveries_total{topic=...}, e.g. stall-topic=2s
  accept-stall=S  from S after start, new WebSocket upgrades never complete (the request is
                  read, no answer, the socket held until the client gives up); /health,
                  /metrics and open sockets keep working; squall_relay_stalled_upgrades_total
  slow-health=MS  every /health answer is delayed MS milliseconds (an overloaded relay
                  that still delivers); squall_relay_health_delayed_total, e.g. slow-health=1500
  cap=N           at most N deliveries a second in all, the rest wait in their queues (a
                  relay with a known capacity: past N, latency grows and a backlog builds;
                  give it --queue-size room, or it closes slow consumers), e.g. cap=5000
  (S: seconds, or a duration such as 500ms; MS: milliseconds, or a duration such as 2s)";

/// One `--bug` switch as parsed from the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bug {
    /// See [`Bugs::hang_on_reset`].
    HangOnReset,
    /// See [`Bugs::leak_on_reset`].
    LeakOnReset,
    /// See [`Bugs::unbounded_queue`].
    UnboundedQueue,
    /// See [`Bugs::drop_every`].
    DropEvery(NonZeroU64),
    /// See [`Bugs::dup_every`].
    DupEvery(NonZeroU64),
    /// See [`Bugs::stall`].
    Stall(Stall),
    /// See [`Bugs::exit_after`].
    ExitAfter(Duration),
    /// See [`Bugs::kick_every`].
    KickEvery(Kick),
    /// See [`Bugs::stall_topic`].
    StallTopic(Duration),
    /// See [`Bugs::accept_stall`].
    AcceptStall(Duration),
    /// See [`Bugs::slow_health`].
    SlowHealth(Duration),
    /// See [`Bugs::cap`].
    Cap(NonZeroU64),
}

/// `kick-every=N@S`: once, `at` after start, every `every`th open connection
/// is kicked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kick {
    /// N: the 1st, the N+1th, the 2N+1th... open connection (by connection
    /// id, ascending) is kicked.
    pub every: NonZeroU64,
    /// S: when, counted from the relay's start.
    pub at: Duration,
}

/// `stall=MS/S`: deliveries are held for `hold` once every `every`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stall {
    /// How long each stall lasts.
    pub hold: Duration,
    /// The period: a stall starts at every multiple of it since the relay started.
    pub every: Duration,
}

impl Stall {
    /// How long a delivery attempted `since_start` after the relay started must
    /// still wait, or zero outside a stall window.
    pub fn wait_at(&self, since_start: Duration) -> Duration {
        let every = self.every.as_nanos().max(1);
        let into_period = since_start.as_nanos() % every;
        let hold = self.hold.as_nanos();
        if into_period < hold {
            Duration::from_nanos((hold - into_period) as u64)
        } else {
            Duration::ZERO
        }
    }
}

/// The set of bugs switched on. `Default` is all off: a correct relay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bugs {
    /// The disconnect path of a connection that ended without a closing
    /// handshake holds DashMap shard guards (its connection's, its first
    /// topic's) across an await that never completes: every worker thread
    /// that then touches those shards (the `/health` handler, a Broadcast on
    /// that topic) blocks, and the server hangs.
    pub hang_on_reset: bool,
    /// Connections that end without a closing handshake are never removed
    /// from the registry (entry, subscriptions, queue all stay).
    pub leak_on_reset: bool,
    /// Outbound queues have no bound and slow consumers are never closed.
    pub unbounded_queue: bool,
    /// Drop every Nth delivery (counted over all deliveries of the process).
    pub drop_every: Option<NonZeroU64>,
    /// Deliver every Nth delivery twice.
    pub dup_every: Option<NonZeroU64>,
    /// Hold deliveries periodically.
    pub stall: Option<Stall>,
    /// This long after start the process exits with status 70
    /// ([`EXIT_AFTER_STATUS`]) at once: no Close frames, no drain. It ends the
    /// whole process that hosts the relay, so use it only in a process of
    /// its own (the `squall-relay` binary, `squall relay`).
    pub exit_after: Option<Duration>,
    /// Once, at the given time, every Nth open connection is closed with 1008
    /// "kicked"; its subscriptions stay behind as ghosts. A delivery due to a
    /// ghost is not sent but counted (`squall_relay_kicked_undelivered_total`).
    pub kick_every: Option<Kick>,
    /// From this long after start, every delivery on the first topic ever
    /// subscribed to is withheld and counted
    /// (`squall_relay_stalled_deliveries_total{topic}`).
    pub stall_topic: Option<Duration>,
    /// From this long after start, WebSocket upgrades are read and never
    /// answered (`squall_relay_stalled_upgrades_total`).
    pub accept_stall: Option<Duration>,
    /// Every `/health` answer waits this long (`squall_relay_health_delayed_total`).
    pub slow_health: Option<Duration>,
    /// At most this many deliveries a second over the whole relay: each
    /// written frame takes the next slot of one process-wide schedule
    /// ([`CapSchedule`]), so that past it deliveries queue and latency grows
    /// (a known capacity).
    pub cap: Option<NonZeroU64>,
}

/// `--bug cap=N`: one schedule of delivery slots, `1/N` s apart, shared by
/// every connection's writer. A slot is taken with one compare-exchange on
/// an atomic (no lock): a writer waits until its slot, then writes.
#[derive(Debug)]
pub struct CapSchedule {
    /// Nanoseconds between two slots.
    spacing_ns: u64,
    /// The next free slot, nanoseconds since `start`.
    next_ns: std::sync::atomic::AtomicU64,
    start: std::time::Instant,
}

impl CapSchedule {
    /// A schedule of `per_s` slots a second from now.
    pub fn new(per_s: NonZeroU64) -> CapSchedule {
        CapSchedule {
            spacing_ns: (1_000_000_000 / per_s.get()).max(1),
            next_ns: std::sync::atomic::AtomicU64::new(0),
            start: std::time::Instant::now(),
        }
    }

    /// Takes the next slot and says how long to wait for it: zero while the
    /// relay is under its capacity (an idle slot is not saved up for later).
    pub fn reserve(&self) -> Duration {
        use std::sync::atomic::Ordering::Relaxed;
        let now = self.start.elapsed().as_nanos() as u64;
        let mut next = self.next_ns.load(Relaxed);
        loop {
            let slot = next.max(now);
            match self
                .next_ns
                .compare_exchange_weak(next, slot + self.spacing_ns, Relaxed, Relaxed)
            {
                Ok(_) => return Duration::from_nanos(slot - now),
                Err(seen) => next = seen,
            }
        }
    }
}

/// The exit status of `--bug exit-after` (EX_SOFTWARE, "internal software
/// error"): distinct from every status squall itself exits with.
pub const EXIT_AFTER_STATUS: i32 = 70;

impl Bugs {
    /// Switches one bug on.
    pub fn enable(&mut self, bug: Bug) {
        match bug {
            Bug::HangOnReset => self.hang_on_reset = true,
            Bug::LeakOnReset => self.leak_on_reset = true,
            Bug::UnboundedQueue => self.unbounded_queue = true,
            Bug::DropEvery(n) => self.drop_every = Some(n),
            Bug::DupEvery(n) => self.dup_every = Some(n),
            Bug::Stall(s) => self.stall = Some(s),
            Bug::ExitAfter(at) => self.exit_after = Some(at),
            Bug::KickEvery(kick) => self.kick_every = Some(kick),
            Bug::StallTopic(at) => self.stall_topic = Some(at),
            Bug::AcceptStall(at) => self.accept_stall = Some(at),
            Bug::SlowHealth(delay) => self.slow_health = Some(delay),
            Bug::Cap(n) => self.cap = Some(n),
        }
    }

    /// True when a delivery needs the process-wide delivery counter.
    pub fn counts_deliveries(&self) -> bool {
        self.drop_every.is_some() || self.dup_every.is_some()
    }
}

impl FromIterator<Bug> for Bugs {
    fn from_iter<I: IntoIterator<Item = Bug>>(iter: I) -> Self {
        let mut bugs = Bugs::default();
        for bug in iter {
            bugs.enable(bug);
        }
        bugs
    }
}

/// Why a `--bug` switch was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BugError {
    /// No bug of that name.
    #[error(
        "unknown bug {0:?}; known: hang-on-reset, leak-on-reset, unbounded-queue, \
         drop-every=N, dup-every=N, stall=MS/S, exit-after=S, kick-every=N@S, \
         stall-topic=S, accept-stall=S, slow-health=MS"
    )]
    Unknown(String),
    /// `drop-every=N`, `dup-every=N` or `kick-every=N@S` with an N that is not
    /// a whole number of at least 1.
    #[error("{0}: N must be a whole number of at least 1")]
    BadCount(String),
    /// `stall=` without `MS/S`.
    #[error("stall={0}: expected MS/S, e.g. stall=200/2")]
    StallShape(String),
    /// `stall=` whose hold is not shorter than its period.
    #[error("stall={0}: the hold must be shorter than the period")]
    StallHold(String),
    /// `kick-every=` without `N@S`.
    #[error("kick-every={0}: expected N@S, e.g. kick-every=5@4s")]
    KickShape(String),
    /// A switch's time (`exit-after=S`, `slow-health=MS`, ...) that is not a
    /// number nor a duration.
    #[error("{switch}: {source}")]
    Time {
        /// The whole switch as written, e.g. `exit-after=soon`.
        switch: String,
        /// Why its time was refused.
        #[source]
        source: squall_proto::DurationError,
    },
    /// A duration inside a switch.
    #[error(transparent)]
    Duration(#[from] squall_proto::DurationError),
}

impl FromStr for Bug {
    type Err = BugError;

    fn from_str(s: &str) -> Result<Self, BugError> {
        let every = |v: &str| {
            v.parse::<NonZeroU64>()
                .map_err(|_| BugError::BadCount(s.to_string()))
        };
        match s.split_once('=') {
            None => match s {
                "hang-on-reset" => Ok(Bug::HangOnReset),
                "leak-on-reset" => Ok(Bug::LeakOnReset),
                "unbounded-queue" => Ok(Bug::UnboundedQueue),
                _ => Err(BugError::Unknown(s.to_string())),
            },
            Some(("drop-every", n)) => Ok(Bug::DropEvery(every(n)?)),
            Some(("dup-every", n)) => Ok(Bug::DupEvery(every(n)?)),
            Some(("stall", spec)) => parse_stall(spec).map(Bug::Stall),
            Some(("exit-after", at)) => Ok(Bug::ExitAfter(time(s, at, Unit::Seconds)?)),
            Some(("kick-every", spec)) => {
                let (n, at) = spec
                    .split_once('@')
                    .ok_or_else(|| BugError::KickShape(spec.to_string()))?;
                Ok(Bug::KickEvery(Kick {
                    every: every(n)?,
                    at: time(s, at, Unit::Seconds)?,
                }))
            }
            Some(("stall-topic", at)) => Ok(Bug::StallTopic(time(s, at, Unit::Seconds)?)),
            Some(("accept-stall", at)) => Ok(Bug::AcceptStall(time(s, at, Unit::Seconds)?)),
            Some(("slow-health", ms)) => Ok(Bug::SlowHealth(time(s, ms, Unit::Millis)?)),
            Some(("cap", n)) => Ok(Bug::Cap(every(n)?)),
            Some(_) => Err(BugError::Unknown(s.to_string())),
        }
    }
}

/// What a bare number in a switch counts.
#[derive(Clone, Copy)]
enum Unit {
    Seconds,
    Millis,
}

/// A switch's time: a bare whole number in `unit` (`exit-after=3` is three
/// seconds, `slow-health=1500` 1.5 s, as the switch names say), or a duration
/// with its unit (`exit-after=500ms`, `slow-health=2s`).
fn time(switch: &str, text: &str, unit: Unit) -> Result<Duration, BugError> {
    match (text.parse::<u64>(), unit) {
        (Ok(n), Unit::Seconds) => Ok(Duration::from_secs(n)),
        (Ok(n), Unit::Millis) => Ok(Duration::from_millis(n)),
        (Err(_), _) => parse_duration(text).map_err(|source| BugError::Time {
            switch: switch.to_string(),
            source,
        }),
    }
}

/// `MS/S`: bare numbers are milliseconds and seconds; units are accepted too
/// (`200ms/2s`).
fn parse_stall(spec: &str) -> Result<Stall, BugError> {
    let (hold, every) = spec
        .split_once('/')
        .ok_or_else(|| BugError::StallShape(spec.to_string()))?;
    let hold = match hold.parse::<u64>() {
        Ok(ms) => Duration::from_millis(ms),
        Err(_) => parse_duration(hold)?,
    };
    let every = match every.parse::<u64>() {
        Ok(s) => Duration::from_secs(s),
        Err(_) => parse_duration(every)?,
    };
    if every.is_zero() || hold >= every {
        return Err(BugError::StallHold(spec.to_string()));
    }
    Ok(Stall { hold, every })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_switch() {
        let bugs: Bugs = [
            "hang-on-reset",
            "leak-on-reset",
            "unbounded-queue",
            "drop-every=10",
            "dup-every=7",
            "stall=200/2",
        ]
        .iter()
        .map(|s| s.parse::<Bug>().unwrap())
        .collect();
        assert!(bugs.hang_on_reset && bugs.leak_on_reset && bugs.unbounded_queue);
        assert_eq!(bugs.drop_every.unwrap().get(), 10);
        assert_eq!(bugs.dup_every.unwrap().get(), 7);
        let stall = bugs.stall.unwrap();
        assert_eq!(
            (stall.hold, stall.every),
            (Duration::from_millis(200), Duration::from_secs(2))
        );
        assert!("drop-every=0".parse::<Bug>().is_err());
        assert!("stall=3000/2".parse::<Bug>().is_err());
        assert!("nope".parse::<Bug>().is_err());
    }

    #[test]
    fn parses_the_known_answer_switches() {
        let bugs: Bugs = [
            "exit-after=3s",
            "kick-every=5@4s",
            "stall-topic=2",
            "accept-stall=1500ms",
            "slow-health=1500",
        ]
        .iter()
        .map(|s| s.parse::<Bug>().unwrap())
        .collect();
        assert_eq!(bugs.exit_after, Some(Duration::from_secs(3)));
        assert_eq!(
            bugs.kick_every,
            Some(Kick {
                every: NonZeroU64::new(5).unwrap(),
                at: Duration::from_secs(4),
            })
        );
        assert_eq!(bugs.stall_topic, Some(Duration::from_secs(2)));
        assert_eq!(bugs.accept_stall, Some(Duration::from_millis(1500)));
        assert_eq!(bugs.slow_health, Some(Duration::from_millis(1500)));
        // Bare numbers count what the switch names; units are welcome too.
        assert_eq!(
            "exit-after=0".parse::<Bug>(),
            Ok(Bug::ExitAfter(Duration::ZERO))
        );
        assert_eq!(
            "slow-health=2s".parse::<Bug>(),
            Ok(Bug::SlowHealth(Duration::from_secs(2)))
        );
        assert_eq!(
            "cap=5000".parse::<Bug>(),
            Ok(Bug::Cap(NonZeroU64::new(5000).unwrap()))
        );
        assert_eq!(
            "kick-every=1@250ms".parse::<Bug>(),
            Ok(Bug::KickEvery(Kick {
                every: NonZeroU64::MIN,
                at: Duration::from_millis(250),
            }))
        );
    }

    #[test]
    fn refuses_malformed_known_answer_switches_naming_them() {
        let err = |s: &str| s.parse::<Bug>().unwrap_err();
        assert_eq!(err("kick-every=5"), BugError::KickShape("5".into()));
        assert_eq!(
            err("kick-every=0@4s"),
            BugError::BadCount("kick-every=0@4s".into())
        );
        assert_eq!(
            err("kick-every=x@4s"),
            BugError::BadCount("kick-every=x@4s".into())
        );
        for switch in [
            "exit-after=soon",
            "exit-after=1.5",
            "kick-every=5@later",
            "stall-topic=-1",
            "accept-stall=2 weeks",
            "slow-health=",
        ] {
            match err(switch) {
                BugError::Time { switch: named, .. } => assert_eq!(named, switch),
                other => panic!("{switch}: {other:?}"),
            }
            assert!(err(switch).to_string().starts_with(switch), "{switch}");
        }
        assert!(matches!(err("exit-after"), BugError::Unknown(_)));
        assert!(matches!(err("slow-healthy=10"), BugError::Unknown(_)));
    }

    #[test]
    fn help_and_errors_name_every_switch() {
        let unknown = BugError::Unknown("x".into()).to_string();
        for name in [
            "hang-on-reset",
            "leak-on-reset",
            "unbounded-queue",
            "drop-every=N",
            "dup-every=N",
            "stall=MS/S",
            "exit-after=S",
            "kick-every=N@S",
            "stall-topic=S",
            "accept-stall=S",
            "slow-health=MS",
        ] {
            assert!(
                BUG_HELP.contains(&format!("\n  {name} ")),
                "{name} in BUG_HELP"
            );
            assert!(unknown.contains(name), "{name} in {unknown}");
        }
        for metric in [
            "squall_relay_exit_after_seconds",
            "squall_relay_kicked_total",
            "squall_relay_kicked_undelivered_total",
            "squall_relay_stalled_deliveries_total",
            "squall_relay_stalled_upgrades_total",
            "squall_relay_health_delayed_total",
        ] {
            assert!(BUG_HELP.contains(metric), "{metric} in BUG_HELP");
        }
        assert!(BUG_HELP.contains("1008 \"kicked\"") && BUG_HELP.contains("status 70"));
    }

    #[test]
    fn stall_windows_start_at_each_period() {
        let s = Stall {
            hold: Duration::from_millis(200),
            every: Duration::from_secs(2),
        };
        assert_eq!(
            s.wait_at(Duration::from_millis(50)),
            Duration::from_millis(150)
        );
        assert_eq!(s.wait_at(Duration::from_millis(500)), Duration::ZERO);
        assert_eq!(
            s.wait_at(Duration::from_millis(2100)),
            Duration::from_millis(100)
        );
    }
}
