//! Durations as scenario files write them: `250ms`, `30s`, `1.5s`, `5m`, `1h`.
//! One grammar for the whole file: the chaos crate's parser, which its
//! `[[chaos]]` and `[watchdog]` fields use too.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use squall_proto::duration::{format_duration, parse_duration};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A duration read from a scenario file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Dur(pub Duration);

impl Dur {
    /// From whole seconds.
    pub const fn secs(s: u64) -> Dur {
        Dur(Duration::from_secs(s))
    }

    /// From whole milliseconds.
    pub const fn millis(ms: u64) -> Dur {
        Dur(Duration::from_millis(ms))
    }
}

impl FromStr for Dur {
    type Err = squall_proto::DurationError;

    fn from_str(s: &str) -> Result<Dur, Self::Err> {
        parse_duration(s).map(Dur)
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

/// A duration as written: a string with a unit, or a bare number, which is
/// refused with the unit it probably lacks (`10` → "did you mean \"10s\"?").
#[derive(Deserialize)]
#[serde(untagged)]
enum Written {
    Text(String),
    Number(f64),
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Dur, D::Error> {
        match Written::deserialize(d)? {
            Written::Text(s) => s.parse().map_err(serde::de::Error::custom),
            Written::Number(0.0) => Ok(Dur(Duration::ZERO)),
            Written::Number(n) => Err(serde::de::Error::custom(
                squall_proto::DurationError::NoUnit(n.to_string()),
            )),
        }
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_units_of_the_design() {
        assert_eq!(
            "250ms".parse::<Dur>().unwrap().0,
            Duration::from_millis(250)
        );
        assert_eq!("30s".parse::<Dur>().unwrap().0, Duration::from_secs(30));
        assert_eq!(
            "1.5s".parse::<Dur>().unwrap().0,
            Duration::from_millis(1500)
        );
        assert_eq!("5m".parse::<Dur>().unwrap().0, Duration::from_secs(300));
        assert_eq!("1h".parse::<Dur>().unwrap().0, Duration::from_secs(3600));
    }

    #[test]
    fn refuses_what_is_not_a_duration() {
        for bad in ["", "30", "s", "3x", "-1s", "1.2.3s", "ms30"] {
            assert!(bad.parse::<Dur>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn reads_back_what_it_writes() {
        for s in ["250ms", "30s", "5m", "1h", "0s", "1.5s"] {
            let d: Dur = s.parse().unwrap();
            assert_eq!(d.to_string().parse::<Dur>().unwrap(), d);
        }
    }
}
