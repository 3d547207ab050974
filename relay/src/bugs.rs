//! The `--bug NAME` switches: classic failures of real relays, reproduced on
//! purpose so that the harness can prove it catches them. All are off unless
//! asked for; [`Bugs::default`] is a correct relay.

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
                  (known latency spikes), e.g. stall=200/2";

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
}

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
         drop-every=N, dup-every=N, stall=MS/S"
    )]
    Unknown(String),
    /// `drop-every=N` or `dup-every=N` with an N that is not a whole number of at least 1.
    #[error("{0}: N must be a whole number of at least 1")]
    BadCount(String),
    /// `stall=` without `MS/S`.
    #[error("stall={0}: expected MS/S, e.g. stall=200/2")]
    StallShape(String),
    /// `stall=` whose hold is not shorter than its period.
    #[error("stall={0}: the hold must be shorter than the period")]
    StallHold(String),
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
            Some(_) => Err(BugError::Unknown(s.to_string())),
        }
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
