//! squall's one duration grammar, for relay flags and scenario files alike:
//! `"250ms"`, `"10s"`, `"1.5m"`.
//!
//! [`parse_duration`] is the one parser; the `serde_*` modules plug it into
//! `#[serde(with = ...)]`.
//!
//! Why not `humantime::parse_duration`: scenario files and their tests write
//! fractions (`"1.5s"`, `"0.5m"`), which humantime refuses, and squall's
//! results write durations back in a form ([`format_duration`]) that must
//! read back to the same value. The grammar is small enough to own.

use std::time::Duration;

/// Why a duration could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// A number with no unit, other than a bare `0`.
    #[error("duration {0:?} needs a unit (us, ms, s, m, h), e.g. \"{0}s\"")]
    NoUnit(String),
    /// The number part is not a non-negative number.
    #[error("duration {text:?}: {number:?} is not a number")]
    NotANumber {
        /// The whole text.
        text: String,
        /// The part that should have been a number.
        number: String,
    },
    /// A unit other than us, ms, s, m, h.
    #[error("duration {text:?}: unknown unit {unit:?} (us, ms, s, m, h)")]
    UnknownUnit {
        /// The whole text.
        text: String,
        /// The unit as written.
        unit: String,
    },
    /// A value no `Duration` can hold.
    #[error("duration {0:?} is out of range")]
    OutOfRange(String),
}

/// Parses a duration: a non-negative number followed by a unit, one of
/// `us`, `ms`, `s`, `m`, `h` (`"250ms"`, `"10s"`, `"1.5m"`). A bare `"0"` is
/// zero; any other number without a unit is refused, so that `"10"` is never
/// silently taken as seconds or milliseconds.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err(DurationError::NotANumber {
            text: String::new(),
            number: String::new(),
        });
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| DurationError::NoUnit(text.to_string()))?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| DurationError::NotANumber {
        text: text.to_string(),
        number: number.to_string(),
    })?;
    let seconds_per_unit = match unit.trim() {
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(DurationError::UnknownUnit {
                text: text.to_string(),
                unit: other.to_string(),
            });
        }
    };
    Duration::try_from_secs_f64(value * seconds_per_unit)
        .map_err(|_| DurationError::OutOfRange(text.to_string()))
}

/// Formats a duration the way [`parse_duration`] reads it back, in the
/// largest unit that keeps it exact (`"250ms"`, `"10s"`).
pub fn format_duration(d: Duration) -> String {
    let micros = d.as_micros();
    if micros.is_multiple_of(1_000_000) {
        format!("{}s", micros / 1_000_000)
    } else if micros.is_multiple_of(1_000) {
        format!("{}ms", micros / 1_000)
    } else {
        format!("{micros}us")
    }
}

/// `#[serde(with = "serde_duration")]` for a required `Duration` field.
pub mod serde_duration {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    /// Writes the duration as a string such as `"250ms"`.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_duration(*d))
    }

    /// Reads a string such as `"250ms"`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

/// `#[serde(with = "serde_opt_duration")]` for an optional `Duration` field.
pub mod serde_opt_duration {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    /// Writes the duration as a string such as `"250ms"`, or nothing.
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&super::format_duration(*d)),
            None => s.serialize_none(),
        }
    }

    /// Reads an optional string such as `"250ms"`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| super::parse_duration(&text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_units_scenarios_use() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500us"), Ok(Duration::from_micros(500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn refuses_numbers_without_units_and_unknown_units() {
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn formats_back_to_what_it_parses() {
        for text in ["250ms", "10s", "500us"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
    }
}
