//! A per-connection token bucket: `rate` messages per second with a burst of
//! one second's worth, and the "persistent abuse" rule that turns refusals into
//! a 1008 close.

use std::time::Instant;

/// What to do with one incoming message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the limit.
    Allow,
    /// Over the limit: refuse it with an Error `rate_limited`.
    Refuse,
    /// Over the limit for longer than a full burst: close with 1008.
    Abuse,
}

/// One connection's bucket.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    tokens: f64,
    last: Instant,
    /// Messages refused since the bucket was last full. A client that keeps
    /// sending faster than the rate never refills it, so this keeps growing;
    /// beyond one burst of refusals it counts as abuse.
    refused: u32,
}

impl RateLimiter {
    /// A full bucket for `rate` messages per second (0 means no limit).
    pub fn new(rate: u32, now: Instant) -> Self {
        let rate = if rate == 0 {
            f64::INFINITY
        } else {
            f64::from(rate)
        };
        Self {
            rate,
            tokens: rate,
            last: now,
            refused: 0,
        }
    }

    /// Judges one message arriving at `now`.
    pub fn check(&mut self, now: Instant) -> Verdict {
        if self.rate.is_infinite() {
            return Verdict::Allow;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        if self.tokens >= self.rate {
            self.refused = 0;
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Verdict::Allow;
        }
        self.refused += 1;
        if f64::from(self.refused) > self.rate {
            Verdict::Abuse
        } else {
            Verdict::Refuse
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn allows_a_burst_then_refuses_then_calls_it_abuse() {
        let t0 = Instant::now();
        let mut bucket = RateLimiter::new(10, t0);
        let verdicts: Vec<_> = (0..25).map(|_| bucket.check(t0)).collect();
        assert!(verdicts[..10].iter().all(|v| *v == Verdict::Allow));
        assert!(verdicts[10..20].iter().all(|v| *v == Verdict::Refuse));
        assert_eq!(verdicts[20], Verdict::Abuse);
    }

    #[test]
    fn a_pause_refills_the_bucket_and_forgives() {
        let t0 = Instant::now();
        let mut bucket = RateLimiter::new(10, t0);
        for _ in 0..15 {
            bucket.check(t0);
        }
        let later = t0 + Duration::from_secs(2);
        assert!((0..10).all(|_| bucket.check(later) == Verdict::Allow));
        assert_eq!(bucket.check(later), Verdict::Refuse);
    }

    #[test]
    fn zero_means_unlimited() {
        let t0 = Instant::now();
        let mut bucket = RateLimiter::new(0, t0);
        assert!((0..100_000).all(|_| bucket.check(t0) == Verdict::Allow));
    }
}
