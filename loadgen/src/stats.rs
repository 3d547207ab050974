//! Where connections leave their measurements, and the once-a-second
//! collection that turns them into snapshots and, at the end, the report.
//!
//! Locking design. All of a run's shared measurements live in one [`Stats`],
//! behind three kinds of `std::sync::Mutex` and one atomic:
//!
//! - **stripes**: deliveries and sends land in one of [`STRIPES`] [`Tally`]s
//!   (connection `c` uses stripe `c % STRIPES`). Locked once per frame
//!   received and once per batch of messages sent, for a few counter
//!   updates and histogram records; the collector locks each stripe once a
//!   second to take its interval.
//! - **connections**: the connection counts and error kinds. Locked once per
//!   attempt, per upgrade and per abnormal event; the collector reads it once
//!   a second.
//! - **finals**: what connections hand in when they end (publisher counts,
//!   subscriber pairs). Locked once per connection, and by the engine at the
//!   end.
//! - **open**: sockets open now, an `AtomicU64`, because it is a single
//!   counter that only needs to be eventually right in the next snapshot
//!   (`Relaxed`: it orders nothing else).
//!
//! Why `std::sync::Mutex` and not `tokio::sync::Mutex` or an `RwLock`: every
//! critical section is short, synchronous work on plain data (no I/O, no
//! allocation beyond an occasional map entry), and nearly every access
//! writes, so an async mutex would only add a wake-up and an `RwLock` would
//! only add bookkeeping. Striping keeps the hot one uncontended: with more
//! stripes than worker threads, two tasks rarely want the same stripe.
//!
//! Every lock is taken inside a closure ([`Stats::with_tally`],
//! [`Stats::with_connections`]) or a plain method, so no guard escapes into
//! async code: none is ever held across an `.await` (the workspace denies
//! `clippy::await_holding_lock`), and no code path holds two of them at once
//! (the collector locks the stripes one after the other, then
//! `connections`), so there is no lock order to get wrong. A worker thread
//! therefore never blocks for longer than one short critical section.

use crate::receive::Tally;
use crate::report::{
    Accounting, ConnectionStats, LoadReport, MessageStats, PublisherCount, ReceiverCount,
};
use crate::snapshot::{ConnectionsNow, LoadSnapshot, MessagesNow, Phase};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Number of stripes: more than the worker threads of a typical runtime, so
/// that two tasks rarely contend for one.
const STRIPES: usize = 16;

/// Everything connections report, shared by all connection tasks of a run
/// (see the module's locking design).
#[derive(Debug)]
pub struct Stats {
    /// Deliveries, sends, latency and send lag, striped by connection. A
    /// `std::sync::Mutex` each: held for a few counter updates and histogram
    /// records, never across an `.await`; the collector empties each one
    /// once a second.
    stripes: Box<[Mutex<Tally>]>,
    /// Connection counts and error kinds. A `std::sync::Mutex`: locked once
    /// per attempt, upgrade and abnormal event, for a counter or a map entry;
    /// never held across an `.await`.
    connections: Mutex<ConnectionStats>,
    /// Sockets open now: one counter, so an atomic rather than a lock
    /// (`Relaxed`: it orders no other memory).
    open: AtomicU64,
    /// What connections hand in when they end. A `std::sync::Mutex`: locked
    /// once per connection and by the engine at the end, for a few map
    /// inserts; never held across an `.await`.
    finals: Mutex<Finals>,
}

/// What connections hand in when they end.
#[derive(Debug, Default)]
struct Finals {
    accounting: Accounting,
    subscribers_excluded: u64,
    echo_absent: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| Mutex::new(Tally::default())).collect(),
            connections: Mutex::default(),
            open: AtomicU64::new(0),
            finals: Mutex::default(),
        }
    }
}

impl Stats {
    /// Runs `f` on connection `c`'s stripe.
    pub fn with_tally<R>(&self, c: u64, f: impl FnOnce(&mut Tally) -> R) -> R {
        let mut tally = self.stripes[c as usize % STRIPES]
            .lock()
            .expect("stripe lock");
        f(&mut tally)
    }

    /// Runs `f` on the connection counts.
    pub fn with_connections<R>(&self, f: impl FnOnce(&mut ConnectionStats) -> R) -> R {
        f(&mut self.connections.lock().expect("connections lock"))
    }

    /// Counts an abnormal event of `kind`.
    pub fn error(&self, kind: &str) {
        self.with_connections(|c| *c.errors.entry(kind.to_string()).or_default() += 1);
    }

    /// A socket opened (`true`) or closed (`false`).
    pub fn set_open(&self, opened: bool) {
        if opened {
            self.open.fetch_add(1, Ordering::Relaxed);
        } else {
            self.open.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// A publisher's final count.
    pub fn publisher_done(&self, j: u64, count: PublisherCount) {
        let mut finals = self.finals.lock().expect("finals lock");
        finals.accounting.publishers.insert(j, count);
    }

    /// Whether publisher `j` has handed in its count.
    pub fn has_publisher(&self, j: u64) -> bool {
        let finals = self.finals.lock().expect("finals lock");
        finals.accounting.publishers.contains_key(&j)
    }

    /// A subscriber's pairs `(publisher, from, distinct)` at the end:
    /// counted if it stayed to the end, otherwise excluded. `echo_absent`:
    /// its own messages never came back (see `MessageStats::echo_absent`).
    pub fn subscriber_done(&self, pairs: Vec<(u64, u64, u64)>, stayed: bool, echo_absent: bool) {
        let mut finals = self.finals.lock().expect("finals lock");
        if !stayed {
            finals.subscribers_excluded += 1;
            return;
        }
        if echo_absent {
            finals.echo_absent += 1;
        }
        for (publisher, from, distinct) in pairs {
            finals
                .accounting
                .receivers
                .entry(publisher)
                .or_default()
                .add(&ReceiverCount {
                    pairs: 1,
                    sum_from: from,
                    max_from: from,
                    distinct,
                });
        }
    }
}

/// Turns the stripes into snapshots once a second and into the report at the end.
#[derive(Debug, Default)]
pub struct Collector {
    totals: Tally,
    last_ns: u64,
}

impl Collector {
    /// Takes the interval since the last call and makes its snapshot.
    pub fn snapshot(
        &mut self,
        stats: &Stats,
        now_ns: u64,
        phase: Phase,
        target: u64,
    ) -> LoadSnapshot {
        let mut interval = Tally::default();
        for stripe in stats.stripes.iter() {
            let mut tally = stripe.lock().expect("stripe lock");
            interval.merge(&tally);
            tally.reset();
        }
        self.totals.merge(&interval);
        let interval_s = now_ns.saturating_sub(self.last_ns) as f64 / 1e9;
        self.last_ns = now_ns;
        let connections = stats.with_connections(|c| ConnectionsNow {
            open: stats.open.load(Ordering::Relaxed),
            target,
            attempted: c.attempted,
            established: c.established,
            failed: c.failed,
            errors: c.errors.clone(),
        });
        let t = &self.totals;
        LoadSnapshot {
            t_s: now_ns as f64 / 1e9,
            interval_s,
            phase,
            connections,
            messages: MessagesNow {
                sent: t.sent,
                received: t.received,
                sent_interval: interval.sent,
                received_interval: interval.received,
                duplicated: t.duplicated,
                reordered: t.reordered,
                lost: t.owed.saturating_sub(t.distinct),
                expected: t.owed,
            },
            send_lag_ms: interval.send_lag.max_ms(),
            latency: interval.latency,
        }
    }

    /// The report, after the last snapshot.
    pub fn report(self, stats: &Stats, now_ns: u64, complete: bool) -> LoadReport {
        let finals = std::mem::take(&mut *stats.finals.lock().expect("finals lock"));
        let connections = stats.with_connections(std::mem::take);
        let t = self.totals;
        LoadReport {
            duration_s: now_ns as f64 / 1e9,
            complete,
            shards: 1,
            connections,
            messages: MessageStats {
                scheduled: finals
                    .accounting
                    .publishers
                    .values()
                    .map(|p| p.scheduled)
                    .sum(),
                sent: t.sent,
                received: t.received,
                duplicated: t.duplicated,
                reordered: t.reordered,
                late: t.late,
                unexpected: t.unexpected,
                clamped: t.clamped,
                subscribers_excluded: finals.subscribers_excluded,
                echo_absent: finals.echo_absent,
            },
            latency: t.latency,
            send_lag: t.send_lag,
            accounting: finals.accounting,
        }
    }
}
