//! Sequence tracking of one (subscriber, publisher) pair: distinct messages
//! owed and received, duplicates, reordering, in 32 bytes.
//!
//! The pair owes every sequence number from `from` on (see the crate docs).
//! It remembers the highest number seen and a 64-deep bitset of the numbers
//! just below it; a number seen again inside the window is a duplicate; a
//! number below the highest seen arrived out of order. A number further back
//! than the window is `out_of_window`: it cannot be told from a duplicate, so
//! it counts as received (relays that reorder by more than 64 messages are
//! rare and it is reported).

/// Depth of the duplicate-detection window.
pub const WINDOW: u64 = 64;

/// What one delivery was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The newest so far.
    InOrder,
    /// Older than the newest so far, first time seen.
    Reordered,
    /// Seen before.
    Duplicate,
    /// Older than the window: counted as received, duplicate or not.
    OutOfWindow,
}

/// One pair's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairTracker {
    /// First sequence number owed.
    from: u64,
    /// Highest sequence number seen, plus one (0: none yet).
    next: u64,
    /// Bit `i` set: `next - 1 - i` was seen.
    window: u64,
    /// Distinct sequence numbers `>= from` received.
    distinct: u64,
}

impl PairTracker {
    /// A pair that owes the messages from `from` on.
    pub fn new(from: u64) -> Self {
        Self {
            from,
            next: 0,
            window: 0,
            distinct: 0,
        }
    }

    /// A pair whose duty has not started: it detects duplicates but owes
    /// nothing until [`PairTracker::set_from`].
    pub fn pending() -> Self {
        Self::new(u64::MAX)
    }

    /// Starts the duty at `from`. Everything seen so far is older (it was
    /// received before the acknowledgement, so it was sent before it).
    pub fn set_from(&mut self, from: u64) {
        self.from = from;
    }

    /// First sequence number owed.
    pub fn from(&self) -> u64 {
        self.from
    }

    /// Distinct owed messages received.
    pub fn distinct(&self) -> u64 {
        self.distinct
    }

    /// The highest sequence number seen, plus one (0: none yet).
    pub fn next(&self) -> u64 {
        self.next
    }

    /// Messages owed up to the newest seen: `received + known gaps`.
    pub fn owed_so_far(&self) -> u64 {
        self.next.saturating_sub(self.from)
    }

    /// Records sequence number `seq`. Returns what it was and by how much
    /// [`PairTracker::owed_so_far`] grew.
    #[inline]
    pub fn observe(&mut self, seq: u64) -> (Outcome, u64) {
        let owed_before = self.owed_so_far();
        let outcome = if seq >= self.next {
            let shift = seq + 1 - self.next;
            self.window = if shift >= WINDOW {
                1
            } else {
                (self.window << shift) | 1
            };
            self.next = seq + 1;
            Outcome::InOrder
        } else {
            let back = self.next - 1 - seq;
            if back >= WINDOW {
                Outcome::OutOfWindow
            } else if self.window & (1 << back) != 0 {
                return (Outcome::Duplicate, 0);
            } else {
                self.window |= 1 << back;
                Outcome::Reordered
            }
        };
        if seq >= self.from {
            self.distinct += 1;
        }
        (outcome, self.owed_so_far() - owed_before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_gaps_duplicates_and_reordering_exactly() {
        let mut t = PairTracker::new(2);
        assert_eq!(
            t.observe(0),
            (Outcome::InOrder, 0),
            "before the duty: not owed"
        );
        assert_eq!(t.observe(2), (Outcome::InOrder, 1));
        assert_eq!(t.observe(5), (Outcome::InOrder, 3));
        assert_eq!(t.observe(5), (Outcome::Duplicate, 0));
        assert_eq!(t.observe(4), (Outcome::Reordered, 0));
        assert_eq!(t.observe(4), (Outcome::Duplicate, 0));
        assert_eq!(t.observe(0), (Outcome::Duplicate, 0));
        assert_eq!(t.owed_so_far(), 4); // 2, 3, 4, 5
        assert_eq!(t.distinct(), 3); // 3 is missing
        assert_eq!(t.observe(5 + WINDOW), (Outcome::InOrder, WINDOW));
        assert_eq!(t.observe(3), (Outcome::OutOfWindow, 0));
        assert_eq!(t.distinct(), 5);
        assert_eq!(std::mem::size_of::<PairTracker>(), 32);
        let mut p = PairTracker::pending();
        assert_eq!(p.observe(3), (Outcome::InOrder, 0));
        assert_eq!(p.observe(3), (Outcome::Duplicate, 0));
        p.set_from(4);
        assert_eq!(p.observe(4), (Outcome::InOrder, 1));
        assert_eq!(p.distinct(), 1);
    }

    #[test]
    fn a_long_in_order_stream_has_no_loss() {
        let mut t = PairTracker::new(10);
        let mut owed = 0;
        for seq in 0..10_000 {
            let (o, d) = t.observe(seq);
            assert_eq!(o, Outcome::InOrder);
            owed += d;
        }
        assert_eq!(owed, 9_990);
        assert_eq!(t.distinct(), 9_990);
    }
}
