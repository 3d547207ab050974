//! The once-a-second snapshot the engine sends while it runs. Shards send
//! their own; a parent merges the latest of each with [`LoadSnapshot::merge`].
//! Counters are totals so far; `latency` and the `*_interval` counters cover
//! the `interval_s` seconds that ended at `t_s`. Every field added since the
//! first version is `#[serde(default)]`, so older worker lines and timelines
//! still load.

use crate::histogram::LatencyHistogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where the run stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Before the first connection is due.
    #[default]
    Starting,
    /// Connections still opening (initial ramp or a stage that adds sockets).
    Ramp,
    /// Everything open, publishing on schedule.
    Steady,
    /// Publishing over; waiting for what is still in flight.
    Drain,
    /// The run has ended.
    Done,
}

/// One second of a run, as one shard (or a merge of shards) saw it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadSnapshot {
    /// Seconds from the origin at the end of the interval.
    pub t_s: f64,
    /// Length of the interval in seconds.
    pub interval_s: f64,
    /// Phase at the end of the interval.
    pub phase: Phase,
    /// Socket counts.
    pub connections: ConnectionsNow,
    /// Message counts.
    pub messages: MessagesNow,
    /// Latencies of the deliveries received in the interval, in µs.
    pub latency: LatencyHistogram,
    /// The largest send lag seen in the interval, in ms (0 when on time).
    pub send_lag_ms: f64,
    /// Progress per topic, indexed by topic number (names from
    /// [`crate::LoadPlan::topic_name`]); cumulative. Empty for a plan with
    /// more than [`crate::receive::MAX_TOPIC_PROGRESS`] topics, and left out
    /// of the JSON when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<TopicProgress>,
}

/// One topic's progress so far (this shard's part of it; shards add up).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicProgress {
    /// Messages published on the topic so far.
    pub sent: u64,
    /// Stamped deliveries received on it so far (duplicates included).
    pub received: u64,
    /// Subscribers of the topic acknowledged and connected now.
    pub subscribers: u64,
}

/// Socket counts at the end of an interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConnectionsNow {
    /// Sockets open now.
    pub open: u64,
    /// Sockets the plan wants open now.
    pub target: u64,
    /// Attempts so far.
    pub attempted: u64,
    /// Upgrades completed so far.
    pub established: u64,
    /// Failed attempts so far.
    pub failed: u64,
    /// Failures and abnormal ends so far, by kind (see `ConnectionStats::errors`).
    pub errors: BTreeMap<String, u64>,
    /// Sockets the target ended so far, by cause (see `ConnectionStats::dropped`).
    #[serde(default)]
    pub dropped: BTreeMap<String, u64>,
    /// Dropped sockets reconnected so far (see `ConnectionStats::reconnects`).
    #[serde(default)]
    pub reconnects: u64,
}

/// Message counts at the end of an interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessagesNow {
    /// Written so far.
    pub sent: u64,
    /// Stamped deliveries so far.
    pub received: u64,
    /// Written in the interval.
    pub sent_interval: u64,
    /// Delivered in the interval.
    pub received_interval: u64,
    /// Duplicates so far.
    pub duplicated: u64,
    /// Out-of-order deliveries so far.
    pub reordered: u64,
    /// Known gaps so far: messages owed to a subscriber, older than the
    /// newest it received from the same publisher, not (yet) received.
    pub lost: u64,
    /// Deliveries owed so far up to the newest seen per pair (received + `lost`).
    pub expected: u64,
    /// Deliveries owed so far whose scheduled time has passed (grows with
    /// the schedule, whatever the target delivers): for every acknowledged
    /// (subscriber, publisher) pair, its publisher's messages from the
    /// pair's first owed one up to the newest that is due and known to be
    /// sent. As of the previous second. Exact when the publisher runs in
    /// the same process as the subscriber (always, in a run of one
    /// process); across shards, a publisher of another shard counts as
    /// having sent only what some subscriber of this shard received.
    #[serde(default)]
    pub due: u64,
    /// Owed deliveries scheduled more than 2 s ago that have not arrived,
    /// now: loss while it happens (a stalled topic, a starved or dropped
    /// subscriber, a relay that drops). A lower bound, as of the previous
    /// second: the messages after the newest one a pair received count as
    /// soon as they are 2 s past their schedule; gaps below it once they
    /// were found more than 2 s ago. Shards add up.
    #[serde(default)]
    pub overdue: u64,
    /// Deliveries that arrived after the drain so far (late, not lost; see
    /// `MessageStats::late`).
    #[serde(default)]
    pub late: u64,
    /// Publishes the relay refused so far (Nostr `OK false`; 0 for other
    /// protocols).
    #[serde(default)]
    pub rejected: u64,
}

impl LoadSnapshot {
    /// Adds another shard's snapshot of the same second.
    pub fn merge(&mut self, other: &LoadSnapshot) {
        self.t_s = self.t_s.max(other.t_s);
        self.interval_s = self.interval_s.max(other.interval_s);
        self.phase = self.phase.min(other.phase);
        let (c, o) = (&mut self.connections, &other.connections);
        c.open += o.open;
        c.target += o.target;
        c.attempted += o.attempted;
        c.established += o.established;
        c.failed += o.failed;
        crate::report::merge_counts(&mut c.errors, &o.errors);
        crate::report::merge_counts(&mut c.dropped, &o.dropped);
        c.reconnects += o.reconnects;
        let (m, o) = (&mut self.messages, &other.messages);
        m.sent += o.sent;
        m.received += o.received;
        m.sent_interval += o.sent_interval;
        m.received_interval += o.received_interval;
        m.duplicated += o.duplicated;
        m.reordered += o.reordered;
        m.lost += o.lost;
        m.expected += o.expected;
        m.due += o.due;
        m.overdue += o.overdue;
        m.late += o.late;
        m.rejected += o.rejected;
        self.latency.merge(&other.latency);
        self.send_lag_ms = self.send_lag_ms.max(other.send_lag_ms);
        if self.topics.len() < other.topics.len() {
            self.topics
                .resize(other.topics.len(), TopicProgress::default());
        }
        for (mine, theirs) in self.topics.iter_mut().zip(&other.topics) {
            mine.sent += theirs.sent;
            mine.received += theirs.received;
            mine.subscribers += theirs.subscribers;
        }
    }

    /// Known loss so far as a ratio (0 when nothing is owed yet).
    pub fn loss_ratio(&self) -> f64 {
        if self.messages.expected == 0 {
            0.0
        } else {
            self.messages.lost as f64 / self.messages.expected as f64
        }
    }

    /// Messages sent per second over the interval.
    pub fn sent_per_s(&self) -> f64 {
        per_s(self.messages.sent_interval, self.interval_s)
    }

    /// Deliveries per second over the interval.
    pub fn received_per_s(&self) -> f64 {
        per_s(self.messages.received_interval, self.interval_s)
    }
}

fn per_s(count: u64, interval_s: f64) -> f64 {
    if interval_s > 0.0 {
        count as f64 / interval_s
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(
        open: u64,
        sent_interval: u64,
        lag_ms: f64,
        phase: Phase,
        latency_us: u64,
    ) -> LoadSnapshot {
        let mut latency = LatencyHistogram::new();
        latency.record_us(latency_us);
        LoadSnapshot {
            t_s: 3.0,
            interval_s: 1.0,
            phase,
            connections: ConnectionsNow {
                open,
                target: open,
                attempted: open,
                established: open,
                failed: 0,
                errors: BTreeMap::from([("reset".to_string(), 1)]),
                dropped: BTreeMap::from([("close_1008".to_string(), 1)]),
                reconnects: 1,
            },
            messages: MessagesNow {
                sent: 10 * sent_interval,
                sent_interval,
                expected: 100,
                lost: 1,
                due: 100,
                overdue: 3,
                late: 1,
                ..MessagesNow::default()
            },
            latency,
            send_lag_ms: lag_ms,
            topics: vec![
                TopicProgress {
                    sent: sent_interval,
                    received: 5,
                    subscribers: 2,
                };
                (open / 10) as usize
            ],
        }
    }

    #[test]
    fn shards_of_one_second_merge_into_one_snapshot() {
        let mut a = shard(10, 50, 2.0, Phase::Steady, 1000);
        let b = shard(20, 150, 7.0, Phase::Ramp, 9000);
        a.merge(&b);
        assert_eq!(a.connections.open, 30);
        assert_eq!(a.connections.errors["reset"], 2);
        assert_eq!(a.messages.sent_interval, 200);
        assert_eq!(a.sent_per_s(), 200.0);
        assert_eq!(a.send_lag_ms, 7.0, "the worst shard's lag");
        assert_eq!(a.phase, Phase::Ramp, "the least advanced shard's phase");
        assert_eq!(a.latency.count(), 2);
        assert!((a.latency.max_ms() - 9.0).abs() < 0.01);
        assert_eq!(a.loss_ratio(), 0.01);
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<LoadSnapshot>(&json).unwrap(), a);
    }

    #[test]
    fn issue_8_drops_overdue_and_topics_merge_by_sum() {
        // Shard a knows one topic, shard b two: merged elementwise.
        let mut a = shard(10, 50, 2.0, Phase::Steady, 1000);
        let b = shard(20, 150, 7.0, Phase::Ramp, 9000);
        a.merge(&b);
        assert_eq!(a.connections.dropped["close_1008"], 2);
        assert_eq!(a.connections.reconnects, 2);
        assert_eq!(
            (a.messages.due, a.messages.overdue, a.messages.late),
            (200, 6, 2)
        );
        let sums: Vec<(u64, u64, u64)> = a
            .topics
            .iter()
            .map(|t| (t.sent, t.received, t.subscribers))
            .collect();
        assert_eq!(sums, vec![(200, 10, 4), (150, 5, 2)]);
        // A worker line from before issue 8 still loads, with zeros.
        let mut old = serde_json::to_value(shard(1, 1, 0.0, Phase::Steady, 1)).unwrap();
        for key in ["due", "overdue", "late"] {
            old["messages"].as_object_mut().unwrap().remove(key);
        }
        for key in ["dropped", "reconnects"] {
            old["connections"].as_object_mut().unwrap().remove(key);
        }
        old.as_object_mut().unwrap().remove("topics");
        let old: LoadSnapshot = serde_json::from_value(old).unwrap();
        assert_eq!(old.messages.overdue, 0);
        assert!(old.connections.dropped.is_empty() && old.topics.is_empty());
        // No topics, no key: the timeline stays small.
        let json = serde_json::to_string(&LoadSnapshot::default()).unwrap();
        assert!(!json.contains("topics"), "{json}");
    }
}
