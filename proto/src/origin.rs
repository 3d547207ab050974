//! The run's monotonic origin: the one clock every `_s` and `_ns` figure of a
//! run counts from.
//!
//! It is a reading of `CLOCK_MONOTONIC` in nanoseconds. On Linux that clock is
//! system-wide, so a parent process hands its origin to worker processes as a
//! plain number and every process measures against the same instant
//! (`std::time::Instant` cannot cross a process boundary).

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The moment a run started, as `CLOCK_MONOTONIC` nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Origin {
    mono_ns: u64,
}

/// Reads `CLOCK_MONOTONIC` in nanoseconds.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec and CLOCK_MONOTONIC always exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_MONOTONIC) failed");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Origin {
    /// An origin at this very moment.
    pub fn now() -> Self {
        Self {
            mono_ns: monotonic_ns(),
        }
    }

    /// An origin handed over by another process (see [`Origin::as_mono_ns`]).
    pub fn from_mono_ns(mono_ns: u64) -> Self {
        Self { mono_ns }
    }

    /// The raw `CLOCK_MONOTONIC` reading, to hand to a worker process.
    pub fn as_mono_ns(self) -> u64 {
        self.mono_ns
    }

    /// Nanoseconds since the origin (0 if the origin lies in the future).
    pub fn elapsed_ns(self) -> u64 {
        monotonic_ns().saturating_sub(self.mono_ns)
    }

    /// Seconds since the origin.
    pub fn elapsed_s(self) -> f64 {
        self.elapsed_ns() as f64 / 1e9
    }

    /// The origin as a `std::time::Instant`, for code that keeps its own
    /// clock in `Instant`s (both read `CLOCK_MONOTONIC` on Linux).
    pub fn as_instant(self) -> std::time::Instant {
        std::time::Instant::now() - Duration::from_nanos(self.elapsed_ns())
    }

    /// The tokio instant at `offset_ns` after the origin, for sleeping until
    /// it (the origin itself may still lie in the future).
    pub fn instant_at(self, offset_ns: u64) -> tokio::time::Instant {
        let now_tokio = tokio::time::Instant::now();
        let now_mono = monotonic_ns();
        let target = self.mono_ns.saturating_add(offset_ns);
        if target >= now_mono {
            now_tokio + Duration::from_nanos(target - now_mono)
        } else {
            now_tokio
                .checked_sub(Duration::from_nanos(now_mono - target))
                .unwrap_or(now_tokio)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crosses_processes_as_a_number_and_counts_forward() {
        let origin = Origin::now();
        let copy = Origin::from_mono_ns(origin.as_mono_ns());
        assert_eq!(origin, copy);
        let a = copy.elapsed_ns();
        std::thread::sleep(Duration::from_millis(2));
        assert!(copy.elapsed_ns() >= a + 2_000_000);
        assert_eq!(Origin::from_mono_ns(u64::MAX).elapsed_ns(), 0);
    }

    #[tokio::test]
    async fn sleeps_until_an_origin_that_is_still_ahead() {
        let origin = Origin::from_mono_ns(monotonic_ns() + 50_000_000);
        let start = std::time::Instant::now();
        tokio::time::sleep_until(origin.instant_at(10_000_000)).await;
        assert!(start.elapsed() >= Duration::from_millis(60));
        assert!(origin.elapsed_ns() >= 10_000_000);
    }
}
