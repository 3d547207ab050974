//! `squall run --start-at TIME`: one start for shards on many machines.
//!
//! A run's origin is a `CLOCK_MONOTONIC` reading, which means nothing on
//! another machine. Shards of one run agree instead on a wall-clock instant
//! (RFC 3339, UTC, whole seconds: `2026-11-24T11:15:00Z`): each waits for it
//! and takes its origin then, so every shard's t = 0 is the same instant
//! within the machines' clock sync. A shard that gets there after the
//! instant refuses (exit 2) rather than measure a different run. The instant
//! is written verbatim as the results' `started_at`.

use crate::results::time::Utc;
use std::fmt;
use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The furthest ahead a start may be: a start a day away is a typo, and the
/// wait, like every wait of squall's, is bounded.
pub const MAX_LEAD: Duration = Duration::from_secs(24 * 3600);

/// An agreed start instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartAt {
    /// The instant as the user wrote it (`yyyy-mm-ddThh:mm:ssZ`).
    pub text: String,
    /// The instant.
    pub at: SystemTime,
}

/// Why a start instant cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartAtError {
    /// Not `yyyy-mm-ddThh:mm:ssZ`.
    #[error(
        "--start-at {0:?}: expected an RFC 3339 UTC instant in whole seconds, e.g. 2026-11-24T11:15:00Z"
    )]
    Format(String),
    /// A field out of its range (month 13, 25 o'clock, Feb 30, before 1970).
    #[error("--start-at {text:?}: {field} is out of range")]
    Range {
        /// The text given.
        text: String,
        /// The field at fault.
        field: &'static str,
    },
    /// The instant has passed: this shard would not share the others' origin.
    #[error(
        "--start-at {text} passed {} ago: this shard would measure a different run than its siblings; \
         start every shard again with a later --start-at",
        Secs(*by)
    )]
    Passed {
        /// The instant.
        text: String,
        /// How long ago.
        by: Duration,
    },
    /// The instant is further ahead than [`MAX_LEAD`].
    #[error("--start-at {text} is {} ahead, more than the {} allowed", Secs(*lead), Secs(MAX_LEAD))]
    TooFar {
        /// The instant.
        text: String,
        /// How far ahead it is.
        lead: Duration,
    },
    /// A signal came while waiting; nothing was measured.
    #[error("stopped ({0}) while waiting for --start-at; nothing was measured")]
    Stopped(&'static str),
}

/// A duration in seconds with one decimal, for messages.
struct Secs(Duration);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1} s", self.0.as_secs_f64())
    }
}

impl StartAt {
    /// Parses `yyyy-mm-ddThh:mm:ssZ`.
    pub fn parse(text: &str) -> Result<StartAt, StartAtError> {
        let format = || StartAtError::Format(text.to_string());
        let b = text.as_bytes();
        let shape = b.len() == 20
            && b.iter().enumerate().all(|(i, c)| match i {
                4 | 7 => *c == b'-',
                10 => *c == b'T',
                13 | 16 => *c == b':',
                19 => *c == b'Z',
                _ => c.is_ascii_digit(),
            });
        if !shape {
            return Err(format());
        }
        let num = |r: std::ops::Range<usize>| -> i64 { text[r].parse().unwrap_or(0) };
        let (y, mo, d) = (num(0..4), num(5..7), num(8..10));
        let (h, mi, s) = (num(11..13), num(14..16), num(17..19));
        let range = |field| StartAtError::Range {
            text: text.to_string(),
            field,
        };
        if !(1..=12).contains(&mo) {
            return Err(range("the month"));
        }
        if d < 1 || d > days_in_month(y, mo) {
            return Err(range("the day"));
        }
        if h > 23 {
            return Err(range("the hour"));
        }
        if mi > 59 {
            return Err(range("the minute"));
        }
        if s > 59 {
            return Err(range("the second"));
        }
        let days = days_from_civil(y, mo as u32, d as u32);
        let secs = days * 86_400 + h * 3600 + mi * 60 + s;
        let secs = u64::try_from(secs).map_err(|_| range("the year"))?;
        Ok(StartAt {
            text: text.to_string(),
            at: UNIX_EPOCH + Duration::from_secs(secs),
        })
    }

    /// The instant, broken down (for the results file's name).
    pub fn utc(&self) -> Utc {
        Utc::from_system(self.at)
    }

    /// How long until the instant, as of `now`; an error once it has passed
    /// or when it is more than [`MAX_LEAD`] ahead.
    pub fn lead_at(&self, now: SystemTime) -> Result<Duration, StartAtError> {
        match self.at.duration_since(now) {
            Ok(lead) if lead > MAX_LEAD => Err(StartAtError::TooFar {
                text: self.text.clone(),
                lead,
            }),
            Ok(lead) => Ok(lead),
            Err(e) => Err(StartAtError::Passed {
                text: self.text.clone(),
                by: e.duration(),
            }),
        }
    }

    /// How long until the instant now.
    pub fn lead(&self) -> Result<Duration, StartAtError> {
        self.lead_at(SystemTime::now())
    }

    /// Waits for the instant on the wall clock, in steps of at most half a
    /// second so that a clock stepped by NTP meanwhile is followed; `stop`
    /// (a signal) ends the wait early. Refuses an instant that has already
    /// passed when the wait begins.
    pub async fn wait(&self, stop: impl Future<Output = &'static str>) -> Result<(), StartAtError> {
        self.lead()?;
        tokio::pin!(stop);
        loop {
            // Once the instant is reached, `lead` errs with `Passed`: done.
            let Ok(lead) = self.lead() else {
                return Ok(());
            };
            if lead.is_zero() {
                return Ok(());
            }
            tokio::select! {
                () = tokio::time::sleep(lead.min(Duration::from_millis(500))) => {}
                name = &mut stop => return Err(StartAtError::Stopped(name)),
            }
        }
    }
}

/// Whether `y` is a leap year (proleptic Gregorian).
fn leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// Days in month `m` (1-12) of year `y`.
fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm, the
/// inverse of `results::time`'s).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_utc_instants_and_round_trips_them() {
        for text in [
            "1970-01-01T00:00:00Z",
            "2000-02-29T23:59:59Z",
            "2026-11-24T11:15:00Z",
            "2099-12-31T00:00:01Z",
        ] {
            let s = StartAt::parse(text).unwrap();
            assert_eq!(s.utc().rfc3339(), text);
        }
        let s = StartAt::parse("2026-11-24T11:15:00Z").unwrap();
        assert_eq!(s.at, UNIX_EPOCH + Duration::from_secs(1_795_518_900));
    }

    #[test]
    fn refuses_other_forms_with_the_expected_one() {
        for text in [
            "2026-11-24 11:15:00Z",
            "2026-11-24T11:15:00",
            "2026-11-24T11:15:00+01:00",
            "2026-11-24T11:15:00.5Z",
            "tomorrow",
            "",
        ] {
            let e = StartAt::parse(text).unwrap_err();
            assert!(matches!(e, StartAtError::Format(_)), "{text}: {e}");
            assert!(e.to_string().contains("2026-11-24T11:15:00Z"), "{e}");
        }
        let field = |t: &str| match StartAt::parse(t).unwrap_err() {
            StartAtError::Range { field, .. } => field,
            e => panic!("{e}"),
        };
        assert_eq!(field("2026-13-01T00:00:00Z"), "the month");
        assert_eq!(field("2025-02-29T00:00:00Z"), "the day");
        assert_eq!(field("2026-01-01T24:00:00Z"), "the hour");
        assert_eq!(field("2026-01-01T00:60:00Z"), "the minute");
        assert_eq!(field("2026-01-01T00:00:60Z"), "the second");
        assert_eq!(field("1969-12-31T23:59:59Z"), "the year");
    }

    #[test]
    fn a_passed_instant_says_by_how_much() {
        let s = StartAt::parse("2026-11-24T11:15:00Z").unwrap();
        let now = s.at + Duration::from_millis(3_200);
        let e = s.lead_at(now).unwrap_err();
        assert_eq!(
            e,
            StartAtError::Passed {
                text: s.text.clone(),
                by: Duration::from_millis(3_200)
            }
        );
        assert!(e.to_string().contains("passed 3.2 s ago"), "{e}");
        assert_eq!(
            s.lead_at(s.at - Duration::from_secs(5)),
            Ok(Duration::from_secs(5))
        );
        assert!(matches!(
            s.lead_at(s.at - MAX_LEAD - Duration::from_secs(1)),
            Err(StartAtError::TooFar { .. })
        ));
    }

    #[tokio::test]
    async fn waits_for_the_instant_or_a_signal() {
        let soon = SystemTime::now() + Duration::from_millis(1_200);
        let secs = soon.duration_since(UNIX_EPOCH).unwrap().as_secs() + 1;
        let s = StartAt::parse(&Utc::from_system(UNIX_EPOCH + Duration::from_secs(secs)).rfc3339())
            .unwrap();
        s.wait(std::future::pending()).await.unwrap();
        assert!(SystemTime::now() >= s.at);
        // Now it has passed: refused.
        assert!(matches!(
            s.wait(std::future::pending()).await,
            Err(StartAtError::Passed { .. })
        ));
        let later = StartAt::parse(
            &Utc::from_system(UNIX_EPOCH + Duration::from_secs(secs + 60)).rfc3339(),
        )
        .unwrap();
        assert_eq!(
            later.wait(async { "SIGTERM" }).await,
            Err(StartAtError::Stopped("SIGTERM"))
        );
    }
}
