//! The receive path: find the stamps in a frame, track each against its
//! (subscriber, publisher) pair, record its latency. This is the hot loop of
//! the engine; it is public so that the benchmark measures the real thing.

use crate::histogram::LatencyHistogram;
use crate::layout::Layout;
use crate::stamp;
use crate::tracker::{Outcome, PairTracker};

/// Measurements of one stripe of connections over one interval; the
/// collector takes it once a second. Sending and receiving both land here.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Latency of deliveries (duplicates excluded), µs from the scheduled send time.
    pub latency: LatencyHistogram,
    /// Send lag of every message written, µs after its scheduled time.
    pub send_lag: LatencyHistogram,
    /// Messages written.
    pub sent: u64,
    /// Stamped deliveries.
    pub received: u64,
    /// Deliveries already seen by the same pair.
    pub duplicated: u64,
    /// Deliveries older than the newest seen by the same pair.
    pub reordered: u64,
    /// Deliveries too far behind to check for duplicates.
    pub late: u64,
    /// Stamped deliveries from a publisher this connection did not subscribe to.
    pub unexpected: u64,
    /// Latencies or lags over 60 s, clamped.
    pub clamped: u64,
    /// Growth of the messages owed up to the newest seen, over all pairs.
    pub owed: u64,
    /// Owed messages received (distinct).
    pub distinct: u64,
}

impl Tally {
    /// Adds `other` to `self`.
    pub fn merge(&mut self, other: &Tally) {
        self.latency.merge(&other.latency);
        self.send_lag.merge(&other.send_lag);
        self.sent += other.sent;
        self.received += other.received;
        self.duplicated += other.duplicated;
        self.reordered += other.reordered;
        self.late += other.late;
        self.unexpected += other.unexpected;
        self.clamped += other.clamped;
        self.owed += other.owed;
        self.distinct += other.distinct;
    }

    /// Empties it, keeping the histograms' allocations.
    pub fn reset(&mut self) {
        self.latency.reset();
        self.send_lag.reset();
        let Tally {
            latency: _,
            send_lag: _,
            sent,
            received,
            duplicated,
            reordered,
            late,
            unexpected,
            clamped,
            owed,
            distinct,
        } = self;
        for counter in [
            sent, received, duplicated, reordered, late, unexpected, clamped, owed, distinct,
        ] {
            *counter = 0;
        }
    }
}

/// The subscriptions of one connection and their pair trackers.
#[derive(Debug, Clone, Default)]
pub struct Inbox {
    /// Subscribed topics, each with one tracker per publisher of the topic,
    /// in rank order.
    topics: Vec<(u64, Vec<PairTracker>)>,
}

impl Inbox {
    /// Starts tracking `topic` (subscribe sent), its pairs' duty not started.
    pub fn track(&mut self, topic: u64, layout: &Layout) {
        let pairs = layout.publishers_of_topic(topic).count();
        self.topics
            .push((topic, vec![PairTracker::pending(); pairs]));
    }

    /// The subscription was acknowledged: each pair owes from `from(publisher)`.
    pub fn acknowledge(&mut self, layout: &Layout, from: impl Fn(u64) -> u64) {
        for (topic, trackers) in &mut self.topics {
            for (j, tracker) in layout.publishers_of_topic(*topic).zip(trackers.iter_mut()) {
                tracker.set_from(from(j));
            }
        }
    }

    /// Whether any topic is tracked.
    pub fn is_tracking(&self) -> bool {
        !self.topics.is_empty()
    }

    /// Every tracker with the publisher it pairs with.
    pub fn pairs<'a>(&'a self, layout: &'a Layout) -> impl Iterator<Item = (u64, &'a PairTracker)> {
        self.topics.iter().flat_map(move |(topic, trackers)| {
            layout.publishers_of_topic(*topic).zip(trackers.iter())
        })
    }

    /// Processes one received frame at `now_ns` (from the origin); returns
    /// how many stamps it held.
    #[inline]
    pub fn receive(
        &mut self,
        frame: &[u8],
        now_ns: u64,
        layout: &Layout,
        tally: &mut Tally,
    ) -> usize {
        let mut found = 0;
        for s in stamp::scan(frame) {
            found += 1;
            tally.received += 1;
            let outcome = self.observe(s.publisher, s.seq, layout, tally);
            if outcome == Some(Outcome::Duplicate) {
                tally.duplicated += 1;
                continue;
            }
            match outcome {
                Some(Outcome::Reordered) => tally.reordered += 1,
                Some(Outcome::Late) => tally.late += 1,
                _ => {}
            }
            if tally
                .latency
                .record_us(now_ns.saturating_sub(s.scheduled_ns) / 1000)
            {
                tally.clamped += 1;
            }
        }
        found
    }

    /// Tracks one delivery; `None` when it is from no subscribed topic.
    #[inline]
    fn observe(
        &mut self,
        publisher: u64,
        seq: u64,
        layout: &Layout,
        tally: &mut Tally,
    ) -> Option<Outcome> {
        if publisher >= layout.publishers() {
            tally.unexpected += 1;
            return None;
        }
        let topic = layout.topic_of_publisher(publisher);
        let Some((_, trackers)) = self.topics.iter_mut().find(|(t, _)| *t == topic) else {
            tally.unexpected += 1;
            return None;
        };
        let tracker = trackers.get_mut(layout.rank_of_publisher(publisher))?;
        let before = tracker.distinct();
        let (outcome, owed) = tracker.observe(seq);
        tally.owed += owed;
        tally.distinct += tracker.distinct() - before;
        Some(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stamp::Stamp;

    fn frame(publisher: u64, seq: u64, scheduled_ns: u64) -> Vec<u8> {
        let mut f = br#"{"type":"Broadcast","data":{"topic":"t","payload":""#.to_vec();
        Stamp {
            publisher,
            seq,
            scheduled_ns,
        }
        .write_padded(&mut f, 100);
        f.extend_from_slice(br#""}}"#);
        f
    }

    #[test]
    fn records_latency_from_the_scheduled_time_and_tracks_pairs() {
        let layout = Layout::new(1, 2, 4, 4, 1); // publishers 0, 2 on topic 0
        let mut inbox = Inbox::default();
        let mut tally = Tally::default();
        inbox.track(0, &layout);
        assert_eq!(
            inbox.receive(&frame(0, 0, 1_000_000), 6_000_000, &layout, &mut tally),
            1
        );
        assert_eq!(tally.owed, 0, "nothing owed before the acknowledgement");
        inbox.acknowledge(&layout, |j| if j == 0 { 1 } else { 0 });
        for (p, seq) in [(0, 1), (0, 2), (0, 2), (2, 0), (0, 4), (0, 3), (1, 0)] {
            inbox.receive(&frame(p, seq, 1_000_000), 3_000_000, &layout, &mut tally);
        }
        assert_eq!(tally.received, 8);
        assert_eq!(tally.duplicated, 1);
        assert_eq!(tally.reordered, 1);
        assert_eq!(tally.unexpected, 1, "publisher 1 is on topic 1");
        assert_eq!(tally.owed, 5); // 1..=4 of publisher 0, 0 of publisher 2
        assert_eq!(tally.distinct, 5);
        assert_eq!(tally.latency.count(), 7);
        assert!((tally.latency.max_ms() - 5.0).abs() < 0.01);
        assert!((tally.latency.min_ms() - 2.0).abs() < 0.01);
        let pairs: Vec<(u64, u64)> = inbox
            .pairs(&layout)
            .map(|(p, t)| (p, t.distinct()))
            .collect();
        assert_eq!(pairs, vec![(0, 4), (2, 1)]);
    }
}
