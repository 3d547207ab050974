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
//! - **gauges and tables** ([`Stats::subscribed`], [`DueTable`],
//!   [`Stats::delivered`]): acknowledged subscribers per topic, what each
//!   publisher has due and is known to have sent, and the time of the last
//!   delivery. Atomics too, `Relaxed`, for the same reason: each is one
//!   number, read for a figure that may be a moment old (the snapshot says
//!   so), and none orders any other memory. They are written rarely (an
//!   acknowledgement, a batch sent, once a second per connection), or only
//!   when the value moves (`fetch_max` after a plain load).
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

use crate::receive::{MAX_TOPIC_PROGRESS, OVERDUE_AFTER_NS, Tally};
use crate::report::{
    Accounting, ConnectionStats, LoadReport, MessageStats, PublisherCount, ReceiverCount,
};
use crate::schedule::Schedule;
use crate::snapshot::{ConnectionsNow, LoadSnapshot, MessagesNow, Phase, TopicProgress};
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
    /// Acknowledged, connected subscribers per topic (topics below
    /// [`MAX_TOPIC_PROGRESS`]; empty when the plan has more topics):
    /// atomics, changed once per acknowledgement and per drop or end.
    subscribers: Box<[AtomicU64]>,
    /// What the `due` and `overdue` gauges count up to, per publisher.
    pub due: DueTable,
    /// When the last stamped delivery arrived (ns from the origin), for the
    /// drain's quiet test; raised by connections at most every few ms.
    last_delivery_ns: AtomicU64,
}

/// Per publisher: how many of its messages were due at the time of the last
/// refresh (once a second, by the engine), and 2 s before it; and how many it
/// is known to have sent (its own count, when it runs in this process, or
/// the newest message any subscriber here received from it). Connections
/// read it to keep their share of `due` and `overdue` up to date.
#[derive(Debug)]
pub struct DueTable {
    /// Messages due at or before the refresh time.
    due_now: Box<[AtomicU64]>,
    /// Messages due at or before [`OVERDUE_AFTER_NS`] before the refresh time.
    due_old: Box<[AtomicU64]>,
    /// Messages known to have been sent (sequence numbers `0..known`).
    known_sent: Box<[AtomicU64]>,
}

impl DueTable {
    fn new(publishers: u64) -> Self {
        let zeros = || (0..publishers).map(|_| AtomicU64::new(0)).collect();
        Self {
            due_now: zeros(),
            due_old: zeros(),
            known_sent: zeros(),
        }
    }

    /// Recomputes what is due at `t_ns` from the schedule.
    pub fn refresh(&self, schedule: &Schedule, t_ns: u64) {
        let old_ns = t_ns.saturating_sub(OVERDUE_AFTER_NS);
        for (j, (now, old)) in self.due_now.iter().zip(self.due_old.iter()).enumerate() {
            let j = j as u64;
            now.store(schedule.first_after(j, t_ns), Ordering::Relaxed);
            let before = if t_ns >= OVERDUE_AFTER_NS {
                schedule.first_after(j, old_ns)
            } else {
                0
            };
            old.store(before, Ordering::Relaxed);
        }
    }

    /// Publisher `j` has sent sequence numbers `0..sent` (or a subscriber
    /// received `sent - 1`).
    pub fn sent(&self, j: u64, sent: u64) {
        let known = &self.known_sent[j as usize];
        if known.load(Ordering::Relaxed) < sent {
            known.fetch_max(sent, Ordering::Relaxed);
        }
    }

    /// For [`crate::receive::Inbox::progress`]: notes `next` as evidence of
    /// what `j` sent, and returns how many of `j`'s messages are known sent
    /// and due at the refresh time, and 2 s before it.
    pub fn limits(&self, j: u64, next: u64) -> (u64, u64) {
        self.sent(j, next);
        let i = j as usize;
        let known = self.known_sent[i].load(Ordering::Relaxed);
        (
            self.due_now[i].load(Ordering::Relaxed).min(known),
            self.due_old[i].load(Ordering::Relaxed).min(known),
        )
    }
}

/// What connections hand in when they end.
#[derive(Debug, Default)]
struct Finals {
    accounting: Accounting,
    subscribers_excluded: u64,
    echo_absent: u64,
}

impl Stats {
    /// The stats of a run with these many publishers and topics.
    pub fn new(publishers: u64, topics: u64) -> Self {
        let counted = if topics > MAX_TOPIC_PROGRESS {
            0
        } else {
            topics
        };
        Self {
            stripes: (0..STRIPES).map(|_| Mutex::new(Tally::default())).collect(),
            connections: Mutex::default(),
            open: AtomicU64::new(0),
            finals: Mutex::default(),
            subscribers: (0..counted).map(|_| AtomicU64::new(0)).collect(),
            due: DueTable::new(publishers),
            last_delivery_ns: AtomicU64::new(0),
        }
    }

    /// `topics` gained (`true`) or lost an acknowledged, connected subscriber.
    pub fn subscribed(&self, topics: &[u64], gained: bool) {
        for &k in topics {
            if let Some(count) = self.subscribers.get(k as usize) {
                if gained {
                    count.fetch_add(1, Ordering::Relaxed);
                } else {
                    count.fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// A stamped delivery arrived at `now_ns`.
    pub fn delivered(&self, now_ns: u64) {
        self.last_delivery_ns.fetch_max(now_ns, Ordering::Relaxed);
    }

    /// When the last stamped delivery arrived (0: none yet).
    pub fn last_delivery_ns(&self) -> u64 {
        self.last_delivery_ns.load(Ordering::Relaxed)
    }

    /// Counts a socket the target ended, by `cause`.
    pub fn dropped(&self, cause: &str) {
        self.with_connections(|c| *c.dropped.entry(cause.to_string()).or_default() += 1);
    }

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
    /// counted unless squall itself ended it early (`counted` false: then
    /// excluded). `echo_absent`: its own messages never came back (see
    /// `MessageStats::echo_absent`).
    pub fn subscriber_done(&self, pairs: Vec<(u64, u64, u64)>, counted: bool, echo_absent: bool) {
        let mut finals = self.finals.lock().expect("finals lock");
        if !counted {
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
            dropped: c.dropped.clone(),
            reconnects: c.reconnects,
        });
        let t = &self.totals;
        let topics = stats
            .subscribers
            .iter()
            .enumerate()
            .map(|(k, subscribers)| {
                let count = t.topics.get(k).copied().unwrap_or_default();
                TopicProgress {
                    sent: count.sent,
                    received: count.received,
                    subscribers: subscribers.load(Ordering::Relaxed),
                }
            })
            .collect();
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
                due: t.due.max(0) as u64,
                overdue: t.overdue.max(0) as u64,
                late: t.late,
                rejected: t.nostr.as_ref().map_or(0, |n| n.rejected_total()),
            },
            send_lag_ms: interval.send_lag.max_ms(),
            latency: interval.latency,
            topics,
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
                out_of_window: t.out_of_window,
                unexpected: t.unexpected,
                clamped: t.clamped,
                subscribers_excluded: finals.subscribers_excluded,
                echo_absent: finals.echo_absent,
            },
            latency: t.latency,
            send_lag: t.send_lag,
            late_latency: t.late_latency.unwrap_or_default(),
            accounting: finals.accounting,
            nostr: t.nostr.map(|n| *n),
        }
    }
}
