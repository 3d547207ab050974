//! The final report of a run (or of one shard), and its exact merge.
//!
//! Loss is not a counter that shards could add up: a subscriber in one shard
//! may listen to a publisher in another. So the report carries the raw
//! accounting (per publisher: messages scheduled and sent; per publisher, over
//! the subscribers that had to receive them: how many pairs, where each pair's
//! duty started, how many distinct messages arrived) and [`LoadReport::loss`]
//! derives expected/lost from it, after any number of merges.

use crate::histogram::LatencyHistogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a run (or a shard of it) measured, from start to the end of the drain.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    /// Seconds from the origin to the end of the run.
    pub duration_s: f64,
    /// False when the run was stopped early (Ctrl-C) or a shard is missing.
    pub complete: bool,
    /// Shards merged into this report (1 for a plain run).
    pub shards: u32,
    /// Connection counts and handshake latency.
    pub connections: ConnectionStats,
    /// Message counts.
    pub messages: MessageStats,
    /// One-way latency of every delivery, from its scheduled send time, in µs.
    pub latency: LatencyHistogram,
    /// How late each message left compared with its schedule, in µs.
    pub send_lag: LatencyHistogram,
    /// The raw loss accounting, merged exactly; read it through [`LoadReport::loss`].
    pub accounting: Accounting,
}

/// Connection counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConnectionStats {
    /// Connection attempts.
    pub attempted: u64,
    /// Attempts that completed the WebSocket upgrade.
    pub established: u64,
    /// Attempts that did not.
    pub failed: u64,
    /// Failed attempts and abnormal ends by kind: `refused`, `timeout`,
    /// `http_401`, `http_403`, `http_503`, `http_<status>`, `reset`,
    /// `closed_by_server_<code>`, `protocol`, `io`, `subscribe_timeout`.
    pub errors: BTreeMap<String, u64>,
    /// Time from the TCP connect to the end of the upgrade, in µs.
    pub handshake: LatencyHistogram,
}

/// Message counts (every figure summed over shards).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessageStats {
    /// Messages the schedule holds for the publishers of this run.
    pub scheduled: u64,
    /// Messages written to the target.
    pub sent: u64,
    /// Every delivery that carried a stamp (duplicates included).
    pub received: u64,
    /// Deliveries of a message the same subscriber had already received.
    pub duplicated: u64,
    /// Deliveries that arrived after a later message of the same publisher.
    pub reordered: u64,
    /// Deliveries too far behind to tell a duplicate from a late arrival
    /// (beyond the tracking window); counted as distinct.
    pub late: u64,
    /// Stamped deliveries from a publisher the subscriber did not subscribe to.
    pub unexpected: u64,
    /// Latencies over 60 s, recorded as 60 s.
    pub clamped: u64,
    /// Subscribers left out of the loss accounting because they were not
    /// connected from their acknowledgement to the end of the drain.
    pub subscribers_excluded: u64,
    /// Publishers subscribed to their own topic that got not one of their
    /// own messages back (of at least 10 owed) while they did hear others:
    /// evidently the target does not echo to the sender, so their own
    /// messages were not counted as owed. 0 against the reference relay.
    #[serde(default)]
    pub echo_absent: u64,
}

/// The raw material of the loss figures, keyed by global publisher number.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Accounting {
    /// What each publisher of this run had to send and did send.
    pub publishers: BTreeMap<u64, PublisherCount>,
    /// For each publisher, the subscribers that had to receive its messages.
    pub receivers: BTreeMap<u64, ReceiverCount>,
}

/// One publisher's sending.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublisherCount {
    /// Messages its schedule holds.
    pub scheduled: u64,
    /// Messages it wrote: always sequence numbers `0..sent`.
    pub sent: u64,
}

/// The subscribers of one publisher that had to receive its messages: each
/// (subscriber, publisher) pair had to receive the sequence numbers
/// `from..sent`, where `from` is the first message scheduled after the
/// subscription was acknowledged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiverCount {
    /// Number of pairs.
    pub pairs: u64,
    /// Sum of the pairs' `from`.
    pub sum_from: u64,
    /// Largest `from` of any pair.
    pub max_from: u64,
    /// Distinct sequence numbers at or after `from` that the pairs received.
    pub distinct: u64,
}

/// Loss figures derived from the accounting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Loss {
    /// Deliveries a correct relay had to make.
    pub expected: u64,
    /// Distinct ones of those that arrived.
    pub received: u64,
    /// `expected - received`.
    pub lost: u64,
    /// `lost / expected` (0 when nothing was expected).
    pub loss_ratio: f64,
    /// Publishers whose deliveries could not be accounted exactly (they
    /// stopped sending before a subscriber's duty started, or their own
    /// report is missing); their deliveries are left out of the figures.
    pub publishers_excluded: u64,
}

impl LoadReport {
    /// Adds another shard's (or run's) report to this one. Exact: counters add,
    /// histograms merge, accounting adds per publisher.
    pub fn merge(&mut self, other: &LoadReport) {
        self.duration_s = self.duration_s.max(other.duration_s);
        self.complete = self.complete && other.complete;
        self.shards += other.shards;
        self.connections.merge(&other.connections);
        self.messages.merge(&other.messages);
        self.latency.merge(&other.latency);
        self.send_lag.merge(&other.send_lag);
        self.accounting.merge(&other.accounting);
    }

    /// Expected, received and lost deliveries over everything merged so far.
    pub fn loss(&self) -> Loss {
        self.accounting.loss()
    }
}

impl ConnectionStats {
    /// Adds `other` to `self`.
    pub fn merge(&mut self, other: &ConnectionStats) {
        self.attempted += other.attempted;
        self.established += other.established;
        self.failed += other.failed;
        merge_counts(&mut self.errors, &other.errors);
        self.handshake.merge(&other.handshake);
    }
}

impl MessageStats {
    /// Adds `other` to `self`.
    pub fn merge(&mut self, other: &MessageStats) {
        self.scheduled += other.scheduled;
        self.sent += other.sent;
        self.received += other.received;
        self.duplicated += other.duplicated;
        self.reordered += other.reordered;
        self.late += other.late;
        self.unexpected += other.unexpected;
        self.clamped += other.clamped;
        self.subscribers_excluded += other.subscribers_excluded;
        self.echo_absent += other.echo_absent;
    }
}

impl Accounting {
    /// Adds `other` to `self`, publisher by publisher.
    pub fn merge(&mut self, other: &Accounting) {
        for (id, p) in &other.publishers {
            let mine = self.publishers.entry(*id).or_default();
            mine.scheduled += p.scheduled;
            mine.sent += p.sent;
        }
        for (id, r) in &other.receivers {
            self.receivers.entry(*id).or_default().add(r);
        }
    }

    /// Derives the loss figures. A pair owes `max(0, sent - from)`
    /// deliveries; summed per publisher that is `pairs * sent - sum_from`
    /// whenever `max_from <= sent`, which holds unless the publisher stopped
    /// before its schedule ended; such publishers are excluded and counted.
    pub fn loss(&self) -> Loss {
        let mut loss = Loss::default();
        for (id, r) in &self.receivers {
            if r.pairs == 0 {
                continue;
            }
            match self.publishers.get(id) {
                Some(p) if r.max_from <= p.sent => {
                    loss.expected += r.pairs * p.sent - r.sum_from;
                    loss.received += r.distinct;
                }
                _ => loss.publishers_excluded += 1,
            }
        }
        loss.lost = loss.expected.saturating_sub(loss.received);
        if loss.expected > 0 {
            loss.loss_ratio = loss.lost as f64 / loss.expected as f64;
        }
        loss
    }
}

impl ReceiverCount {
    /// Adds `other` to `self`.
    pub fn add(&mut self, other: &ReceiverCount) {
        self.pairs += other.pairs;
        self.sum_from += other.sum_from;
        self.max_from = self.max_from.max(other.max_from);
        self.distinct += other.distinct;
    }
}

/// Adds counts by key.
pub(crate) fn merge_counts(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (k, v) in from {
        *into.entry(k.clone()).or_default() += v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(
        publishers: &[(u64, u64, u64)],
        receivers: &[(u64, u64, u64, u64, u64)],
    ) -> LoadReport {
        let mut r = LoadReport {
            complete: true,
            shards: 1,
            ..Default::default()
        };
        for &(id, scheduled, sent) in publishers {
            r.accounting
                .publishers
                .insert(id, PublisherCount { scheduled, sent });
        }
        for &(id, pairs, sum_from, max_from, distinct) in receivers {
            r.accounting.receivers.insert(
                id,
                ReceiverCount {
                    pairs,
                    sum_from,
                    max_from,
                    distinct,
                },
            );
        }
        r
    }

    #[test]
    fn loss_is_exact_when_publishers_and_subscribers_sit_in_different_shards() {
        // Publisher 0 (shard A) sent 100; its two subscribers sit in shard B
        // (from 10, got 88 distinct) and shard A (from 0, got 100).
        let a = shard(&[(0, 100, 100)], &[(0, 1, 0, 0, 100)]);
        let b = shard(&[], &[(0, 1, 10, 10, 88)]);
        assert_eq!(
            b.loss().publishers_excluded,
            1,
            "publisher unknown before the merge"
        );
        let mut merged = a.clone();
        merged.merge(&b);
        let loss = merged.loss();
        assert_eq!(loss.expected, 190);
        assert_eq!(loss.received, 188);
        assert_eq!(loss.lost, 2);
        assert_eq!(loss.publishers_excluded, 0);
        assert_eq!(merged.shards, 2);
    }

    #[test]
    fn a_publisher_that_stopped_before_a_duty_started_is_excluded_not_guessed() {
        let r = shard(&[(3, 100, 40)], &[(3, 2, 50, 45, 40)]);
        let loss = r.loss();
        assert_eq!(loss.expected, 0);
        assert_eq!(loss.publishers_excluded, 1);
    }
}
