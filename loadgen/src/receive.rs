//! The receive path: find the stamps in a frame, track each against its
//! (subscriber, publisher) pair, record its latency. This is the hot loop of
//! the engine; it is public so that the benchmark measures the real thing.

use crate::histogram::LatencyHistogram;
use crate::layout::Layout;
use crate::report::NostrStats;
use crate::stamp;
use crate::tracker::{Outcome, PairTracker};

/// Most topics whose progress is counted ([`Tally::topics`],
/// `LoadSnapshot::topics`): a plan with more topics reports none, so that a
/// snapshot stays small.
pub const MAX_TOPIC_PROGRESS: u64 = 10_000;

/// Measurements of one stripe of connections over one interval; the
/// collector takes it once a second. Sending and receiving both land here.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Latency of deliveries (duplicates excluded), µs from the scheduled send time.
    pub latency: LatencyHistogram,
    /// Send lag of every message written, µs after its scheduled time.
    pub send_lag: LatencyHistogram,
    /// Latency of the `late` deliveries (also in `latency`); made on the
    /// first one, since most runs have none.
    pub late_latency: Option<LatencyHistogram>,
    /// Messages written.
    pub sent: u64,
    /// Stamped deliveries.
    pub received: u64,
    /// Deliveries already seen by the same pair.
    pub duplicated: u64,
    /// Deliveries older than the newest seen by the same pair.
    pub reordered: u64,
    /// Deliveries too far behind to check for duplicates.
    pub out_of_window: u64,
    /// Deliveries (duplicates excluded) that arrived after the drain: late, not lost.
    pub late: u64,
    /// Stamped deliveries from a publisher this connection did not subscribe to.
    pub unexpected: u64,
    /// Latencies or lags over 60 s, clamped.
    pub clamped: u64,
    /// Growth of the messages owed up to the newest seen, over all pairs.
    pub owed: u64,
    /// Owed messages received (distinct).
    pub distinct: u64,
    /// Per topic index below [`MAX_TOPIC_PROGRESS`]: messages published on
    /// it and deliveries received on it (grown on demand).
    pub topics: Vec<TopicCount>,
    /// Change of the connections' deliveries due (a gauge each connection
    /// keeps up to date by adding the difference).
    pub due: i64,
    /// Change of the connections' overdue deliveries (likewise).
    pub overdue: i64,
    /// A Nostr relay's answers (made on first use: Nostr runs only).
    pub nostr: Option<Box<NostrStats>>,
}

/// One topic's traffic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopicCount {
    /// Messages published on the topic.
    pub sent: u64,
    /// Stamped deliveries received on it (duplicates included).
    pub received: u64,
}

impl Tally {
    /// Adds `other` to `self`.
    pub fn merge(&mut self, other: &Tally) {
        self.latency.merge(&other.latency);
        self.send_lag.merge(&other.send_lag);
        if let Some(late) = &other.late_latency {
            self.late_latency
                .get_or_insert_with(LatencyHistogram::new)
                .merge(late);
        }
        self.sent += other.sent;
        self.received += other.received;
        self.duplicated += other.duplicated;
        self.reordered += other.reordered;
        self.out_of_window += other.out_of_window;
        self.late += other.late;
        self.unexpected += other.unexpected;
        self.clamped += other.clamped;
        self.owed += other.owed;
        self.distinct += other.distinct;
        if self.topics.len() < other.topics.len() {
            self.topics
                .resize(other.topics.len(), TopicCount::default());
        }
        for (mine, theirs) in self.topics.iter_mut().zip(&other.topics) {
            mine.sent += theirs.sent;
            mine.received += theirs.received;
        }
        self.due += other.due;
        self.overdue += other.overdue;
        if let Some(theirs) = &other.nostr {
            self.nostr_mut().merge(theirs);
        }
    }

    /// The Nostr answers, made on first use.
    pub fn nostr_mut(&mut self) -> &mut NostrStats {
        self.nostr.get_or_insert_with(Box::default)
    }

    /// Empties it, keeping the histograms' allocations.
    pub fn reset(&mut self) {
        self.latency.reset();
        self.send_lag.reset();
        if let Some(late) = &mut self.late_latency {
            late.reset();
        }
        self.topics.fill(TopicCount::default());
        self.nostr = None;
        let Tally {
            latency: _,
            send_lag: _,
            late_latency: _,
            topics: _,
            nostr: _,
            sent,
            received,
            duplicated,
            reordered,
            out_of_window,
            late,
            unexpected,
            clamped,
            owed,
            distinct,
            due,
            overdue,
        } = self;
        for counter in [
            sent,
            received,
            duplicated,
            reordered,
            out_of_window,
            late,
            unexpected,
            clamped,
            owed,
            distinct,
        ] {
            *counter = 0;
        }
        *due = 0;
        *overdue = 0;
    }

    /// Topic `k`'s counts, if it is one whose progress is counted.
    #[inline]
    pub fn topic(&mut self, k: u64) -> Option<&mut TopicCount> {
        if k >= MAX_TOPIC_PROGRESS {
            return None;
        }
        let k = k as usize;
        if self.topics.len() <= k {
            self.topics.resize(k + 1, TopicCount::default());
        }
        Some(&mut self.topics[k])
    }
}

/// How long after its scheduled time an owed message that has not arrived
/// counts as `overdue` (`LoadSnapshot::messages.overdue`).
pub const OVERDUE_AFTER_NS: u64 = 2_000_000_000;

/// The subscriptions of one connection and their pair trackers.
#[derive(Debug, Clone, Default)]
pub struct Inbox {
    /// Subscribed topics, each with one tracker per publisher of the topic,
    /// in rank order.
    topics: Vec<(u64, Vec<PairTracker>)>,
    /// Gaps found (a newer message arrived first) in each of the last four
    /// seconds of receive time: `(second, count)`, slot `second % 4`. A gap
    /// found at time `r` is a message due before `r`; it counts as overdue
    /// once `r` is more than [`OVERDUE_AFTER_NS`] ago.
    young_gaps: [(u64, u64); 4],
}

/// One connection's share of a snapshot's `due` and `overdue`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Owed messages whose scheduled time has passed.
    pub due: u64,
    /// Owed messages scheduled more than [`OVERDUE_AFTER_NS`] ago that have
    /// not arrived (a lower bound, see `MessagesNow::overdue`).
    pub overdue: u64,
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
        self.receive_at(frame, now_ns, u64::MAX, layout, tally)
    }

    /// [`Inbox::receive`], where a delivery at or after `late_from_ns` (the
    /// end of the drain) is also counted `late` (not a duplicate, it counts
    /// as received) with its latency in `late_latency`.
    #[inline]
    pub fn receive_at(
        &mut self,
        frame: &[u8],
        now_ns: u64,
        late_from_ns: u64,
        layout: &Layout,
        tally: &mut Tally,
    ) -> usize {
        let mut found = 0;
        for s in stamp::scan(frame) {
            found += 1;
            tally.received += 1;
            let outcome = self.observe(s.publisher, s.seq, now_ns, layout, tally);
            if outcome == Some(Outcome::Duplicate) {
                tally.duplicated += 1;
                continue;
            }
            match outcome {
                Some(Outcome::Reordered) => tally.reordered += 1,
                Some(Outcome::OutOfWindow) => tally.out_of_window += 1,
                _ => {}
            }
            let us = now_ns.saturating_sub(s.scheduled_ns) / 1000;
            if tally.latency.record_us(us) {
                tally.clamped += 1;
            }
            if outcome.is_some() && now_ns >= late_from_ns {
                tally.late += 1;
                tally
                    .late_latency
                    .get_or_insert_with(LatencyHistogram::new)
                    .record_us(us);
            }
        }
        found
    }

    /// This connection's share of `due` and `overdue` at `now_ns`.
    /// `limits(j, next)` is told the highest sequence number + 1 this
    /// connection received from publisher `j` (evidence of what `j` sent) and
    /// returns `(due, old)`: how many of `j`'s messages are known to be sent
    /// and due by the time of the publishers' table, and by
    /// [`OVERDUE_AFTER_NS`] before it.
    pub(crate) fn progress(
        &self,
        layout: &Layout,
        now_ns: u64,
        mut limits: impl FnMut(u64, u64) -> (u64, u64),
    ) -> Progress {
        let (mut due, mut tail, mut gaps) = (0u64, 0u64, 0u64);
        for (j, t) in self.pairs(layout) {
            if t.from() == u64::MAX {
                continue; // duty not started
            }
            let (due_n, old_n) = limits(j, t.next());
            due += due_n.max(t.next()).saturating_sub(t.from());
            // Not one of these arrived: everything received is below `next`.
            tail += old_n.saturating_sub(t.next().max(t.from()));
            gaps += t.owed_so_far() - t.distinct();
        }
        let young: u64 = self
            .young_gaps
            .iter()
            .filter(|(second, _)| {
                second * 1_000_000_000 + 1_000_000_000 + OVERDUE_AFTER_NS > now_ns
            })
            .map(|(_, count)| count)
            .sum();
        Progress {
            due,
            overdue: tail + gaps.saturating_sub(young),
        }
    }

    /// Tracks one delivery; `None` when it is from no subscribed topic.
    #[inline]
    fn observe(
        &mut self,
        publisher: u64,
        seq: u64,
        now_ns: u64,
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
        let distinct = tracker.distinct() - before;
        tally.owed += owed;
        tally.distinct += distinct;
        if let Some(count) = tally.topic(topic) {
            count.received += 1;
        }
        if owed > distinct {
            let second = now_ns / 1_000_000_000;
            let slot = &mut self.young_gaps[(second % 4) as usize];
            if slot.0 != second {
                *slot = (second, 0);
            }
            slot.1 += owed - distinct;
        }
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
        assert_eq!(tally.topics.len(), 1);
        assert_eq!(tally.topics[0].received, 7, "duplicates included");
    }

    #[test]
    fn late_deliveries_count_apart_and_in_the_latency() {
        let layout = Layout::new(1, 1, 1, 1, 1);
        let mut inbox = Inbox::default();
        let mut tally = Tally::default();
        inbox.track(0, &layout);
        inbox.acknowledge(&layout, |_| 0);
        let drain_end = 10_000_000_000;
        for (seq, at) in [(0, 9_000_000_000), (1, drain_end), (1, drain_end + 1)] {
            inbox.receive_at(
                &frame(0, seq, 1_000_000_000),
                at,
                drain_end,
                &layout,
                &mut tally,
            );
        }
        assert_eq!(tally.late, 1, "the duplicate is not late");
        assert_eq!(tally.latency.count(), 2);
        let late = tally.late_latency.as_ref().unwrap();
        assert_eq!(late.count(), 1);
        assert!((late.min_ms() - 9_000.0).abs() < 10.0, "{late:?}");
        let mut sum = Tally::default();
        sum.merge(&tally);
        sum.merge(&tally);
        assert_eq!((sum.late, sum.late_latency.unwrap().count()), (2, 2));
    }

    #[test]
    fn overdue_counts_a_stopped_stream_and_gaps_once_they_are_old() {
        const S: u64 = 1_000_000_000;
        let layout = Layout::new(1, 1, 1, 1, 1);
        let mut inbox = Inbox::default();
        let mut tally = Tally::default();
        inbox.track(0, &layout);
        let nothing = inbox.progress(&layout, 0, |_, _| (100, 100));
        assert_eq!(nothing, Progress::default(), "no duty yet");
        inbox.acknowledge(&layout, |_| 10);
        // 10..=19 arrive at 5 s, then 21..=29 at 6 s: 20 is a gap found at 6 s.
        for seq in 10..20 {
            inbox.receive(&frame(0, seq, 0), 5 * S, &layout, &mut tally);
        }
        for seq in 21..30 {
            inbox.receive(&frame(0, seq, 0), 6 * S, &layout, &mut tally);
        }
        // Publisher known to have sent 0..40, of which 0..35 are due by the
        // table's time and 0..25 more than 2 s before it.
        let mut told = Vec::new();
        let mut limits = |j: u64, next: u64| {
            told.push((j, next));
            (35, 25)
        };
        let at_7s = inbox.progress(&layout, 7 * S, &mut limits);
        assert_eq!(
            told,
            vec![(0, 30)],
            "its newest is evidence of what was sent"
        );
        // Due: 10..35. Overdue: nothing after the newest (29) is 2 s old
        // yet, and the gap found at 6 s is young.
        assert_eq!(
            at_7s,
            Progress {
                due: 25,
                overdue: 0
            }
        );
        // At 9 s the gap is old; the stream stopped at 29, so 30..33 are
        // overdue too once the table says 0..33 are 2 s old.
        let at_9s = inbox.progress(&layout, 9 * S, |_, _| (40, 33));
        assert_eq!(
            at_9s,
            Progress {
                due: 30,
                overdue: 1 + 3
            }
        );
        // What is not known to be sent is never due nor overdue.
        let unsent = inbox.progress(&layout, 9 * S, |_, _| (30, 30));
        assert_eq!(
            unsent,
            Progress {
                due: 20,
                overdue: 1
            }
        );
    }
}
