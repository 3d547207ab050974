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
    /// Latency of the `late` deliveries (those that arrived after the drain;
    /// they are in `latency` too), in µs: how far behind the target was.
    #[serde(default)]
    pub late_latency: LatencyHistogram,
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
    /// `http_401`, `http_403`, `http_503`, `http_<status>`, `tls_cert` (the
    /// server's certificate was refused), `tls` (another TLS failure), `reset`,
    /// `closed_by_server_<code>`, `protocol`, `io`, `subscribe_timeout`;
    /// failed reconnect attempts as `reconnect_<kind>`.
    pub errors: BTreeMap<String, u64>,
    /// Time from the TCP connect to the end of the upgrade, in µs (the TLS
    /// handshake of a `wss://` target included).
    pub handshake: LatencyHistogram,
    /// The TLS handshake alone (from the connected TCP socket to the end of
    /// the TLS handshake), in µs, of each socket that `handshake` counts;
    /// empty for `ws://` targets. Every one is a full handshake (no session
    /// resumption: each socket is a new client).
    #[serde(default)]
    pub tls_handshake: LatencyHistogram,
    /// Established sockets that the TARGET ended while squall did not end
    /// them (not a planned close, not the end of the drain, not a send
    /// timeout), by cause: `close_<code>` (a close frame; 1005 when it had
    /// no code), `reset`, `eof` (the stream ended without a closing
    /// handshake), or the error kind of a broken stream (`protocol`,
    /// `too_big`, `io`). A reconnected socket that is dropped again counts
    /// again. Their subscribers keep owing what was sent after (see the
    /// crate docs).
    #[serde(default)]
    pub dropped: BTreeMap<String, u64>,
    /// Dropped sockets that reconnected and (if they subscribe) were
    /// acknowledged again ([`crate::LoadPlan::reconnect`]).
    #[serde(default)]
    pub reconnects: u64,
    /// Time from each drop to the reconnected socket's new acknowledgement
    /// (to the upgrade for a socket without subscriptions), in µs.
    #[serde(default)]
    pub reconnect: LatencyHistogram,
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
    /// Deliveries that arrived after the drain (`drain` after the end of
    /// publishing, or after Ctrl-C) but before `drain_max`: received, not
    /// lost; their latency is `LoadReport::late_latency`. Duplicates are
    /// not counted. (Before issue 8 this name counted what is now
    /// `out_of_window`.)
    pub late: u64,
    /// Deliveries too far behind the newest of the same pair to tell a
    /// duplicate from a reordered arrival (beyond the 64-deep tracking
    /// window); counted as distinct.
    #[serde(default)]
    pub out_of_window: u64,
    /// Stamped deliveries from a publisher the subscriber did not subscribe to.
    pub unexpected: u64,
    /// Latencies over 60 s, recorded as 60 s.
    pub clamped: u64,
    /// Subscribers left out of the loss accounting because squall itself
    /// ended their socket before the end of the drain (a planned close when
    /// a stage lowers the connections, a send timeout). A socket the target
    /// ended is not excluded: it still owes what was sent after.
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
        self.late_latency.merge(&other.late_latency);
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
        self.tls_handshake.merge(&other.tls_handshake);
        merge_counts(&mut self.dropped, &other.dropped);
        self.reconnects += other.reconnects;
        self.reconnect.merge(&other.reconnect);
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
        self.out_of_window += other.out_of_window;
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
    fn drops_reconnects_and_late_deliveries_merge_and_old_reports_load() {
        let mut a = shard(&[(0, 100, 100)], &[(0, 1, 0, 0, 100)]);
        a.connections.dropped.insert("close_1008".into(), 2);
        a.connections.reconnects = 1;
        a.connections.reconnect.record_us(150_000);
        a.messages.late = 3;
        a.late_latency.record_us(2_000_000);
        let mut b = a.clone();
        b.connections.dropped = BTreeMap::from([("reset".into(), 1)]);
        b.messages.out_of_window = 4;
        a.merge(&b);
        let c = &a.connections;
        assert_eq!(
            c.dropped,
            BTreeMap::from([("close_1008".into(), 2), ("reset".into(), 1)])
        );
        assert_eq!((c.reconnects, c.reconnect.count()), (2, 2));
        assert_eq!((a.messages.late, a.messages.out_of_window), (6, 4));
        assert_eq!(a.late_latency.count(), 2);
        // A worker line or results file from before issue 8 still loads.
        let mut old = serde_json::to_value(shard(&[(0, 1, 1)], &[])).unwrap();
        old.as_object_mut().unwrap().remove("late_latency");
        for key in ["dropped", "reconnects", "reconnect"] {
            old["connections"].as_object_mut().unwrap().remove(key);
        }
        old["messages"]
            .as_object_mut()
            .unwrap()
            .remove("out_of_window");
        let old: LoadReport = serde_json::from_value(old).unwrap();
        assert!(old.connections.dropped.is_empty());
        assert_eq!(old.messages.out_of_window, 0);
    }

    #[test]
    fn a_publisher_that_stopped_before_a_duty_started_is_excluded_not_guessed() {
        let r = shard(&[(3, 100, 40)], &[(3, 2, 50, 45, 40)]);
        let loss = r.loss();
        assert_eq!(loss.expected, 0);
        assert_eq!(loss.publishers_excluded, 1);
    }
}
