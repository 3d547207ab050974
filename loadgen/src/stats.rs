//! Where connections leave their measurements, and the once-a-second
//! collection that turns them into snapshots and, at the end, the report.
//!
//! Deliveries and sends land in one of a few striped [`Tally`]s (connection
//! `c` uses stripe `c % STRIPES`) behind a `std::sync::Mutex`: it is held for
//! a few counter updates and one histogram record, never across an `.await`,
//! and with more stripes than worker threads it is almost never contended.
//! The collector takes each stripe's interval once a second.

use crate::receive::Tally;
use crate::report::{
    Accounting, ConnectionStats, LoadReport, MessageStats, PublisherCount, ReceiverCount,
};
use crate::snapshot::{ConnectionsNow, LoadSnapshot, MessagesNow, Phase};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Number of stripes.
const STRIPES: usize = 16;

/// Everything connections report, shared by all connection tasks of a run.
#[derive(Debug)]
pub struct Stats {
    stripes: Box<[Mutex<Tally>]>,
    /// Connection counts; locked once per attempt and per abnormal end.
    connections: Mutex<ConnectionStats>,
    /// Sockets open now.
    open: AtomicU64,
    /// What connections hand in when they end; locked once per connection.
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
