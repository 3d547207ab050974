//! `[search]`, the capacity search's settings: the raw table as the scenario
//! writes it (serde, every key defaulted, no unknown key accepted) and the
//! validated [`SearchSettings`] that the scenario's `Plan` carries, so that
//! `squall validate` checks a `[search]` table like any other.
//!
//! The command line of `squall search` does not keep a second copy of these
//! settings: each flag becomes a `--set search.KEY=VALUE` override
//! ([`super::SearchArgs`]), so that a flag and a key are validated by this one
//! function and an error names the flag that caused it.

use crate::scenario::duration::Dur;
use crate::scenario::raw::RawThresholds;
use crate::thresholds::{ThresholdError, Thresholds};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// What the search varies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Vary {
    /// `load.rate`: messages published per second, before fan-out.
    #[default]
    Rate,
    /// `load.connections`: sockets held open (at the scenario's rate).
    Connections,
}

impl Vary {
    /// The scenario key the search sets at each step.
    pub fn key(self) -> &'static str {
        match self {
            Vary::Rate => "load.rate",
            Vary::Connections => "load.connections",
        }
    }

    /// The unit of a level, for the lines and the report.
    pub fn unit(self) -> &'static str {
        match self {
            Vary::Rate => "msg/s",
            Vary::Connections => "connections",
        }
    }

    /// The noun of the final line: `max rate`, `max connections`.
    pub fn noun(self) -> &'static str {
        match self {
            Vary::Rate => "rate",
            Vary::Connections => "connections",
        }
    }

    /// Whether a level is a whole number (sockets are).
    pub fn whole(self) -> bool {
        self == Vary::Connections
    }
}

impl fmt::Display for Vary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.noun())
    }
}

/// `[search]` as written. Every key has a default; `squall search`'s flags
/// override them.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawSearch {
    /// The objective every step must meet (`[search.slo]`, the keys of
    /// `[thresholds]`); `--slo KEY=LIMIT` sets one.
    pub slo: RawThresholds,
    /// `rate` (default) or `connections`.
    pub vary: Vary,
    /// The first level tried; default: the scenario's own `load.rate` (or
    /// `load.connections`).
    pub min: Option<f64>,
    /// The highest level tried; default: 64 times `min`.
    pub max: Option<f64>,
    /// Publishing time of each step after its ramp: the warm-up, then the
    /// measured window.
    pub step_duration: Dur,
    /// The part of each step that is not measured; default: 30% of
    /// `step_duration`, at least 1 s.
    pub warmup: Option<Dur>,
    /// The search ends when the first failing level is within this share
    /// of the last passing one (0.1: 10%).
    pub precision: f64,
    /// Each growing step tries this many times the last passing level.
    pub growth: f64,
    /// Exit 3 when the capacity found is below this (a CI gate).
    pub min_capacity: Option<f64>,
    /// The whole search ends by this time, with what it found so far.
    pub time_limit: Dur,
    /// A step whose publishers fall further behind their schedule than this
    /// (or send under 90% of it) measured the generator, not the target.
    pub max_send_lag: Dur,
}

impl Default for RawSearch {
    fn default() -> Self {
        RawSearch {
            slo: RawThresholds::default(),
            vary: Vary::Rate,
            min: None,
            max: None,
            step_duration: Dur::secs(10),
            warmup: None,
            precision: 0.1,
            growth: 2.0,
            min_capacity: None,
            time_limit: Dur::secs(15 * 60),
            max_send_lag: Dur::secs(1),
        }
    }
}

/// The validated `[search]` of a scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchSettings {
    /// The objective, with the defaults every run has
    /// (`target_disconnects = 0`, `min_received = 1`).
    pub slo: Thresholds,
    /// Whether the scenario or the command line set an objective of its
    /// own: a search needs one.
    pub slo_given: bool,
    /// What is varied.
    pub vary: Vary,
    /// The first level.
    pub min: f64,
    /// The highest level.
    pub max: f64,
    /// Publishing time of a step after its ramp.
    pub step_duration: Duration,
    /// The unmeasured start of that time.
    pub warmup: Duration,
    /// Relative precision of the answer.
    pub precision: f64,
    /// Factor between growing steps.
    pub growth: f64,
    /// The CI gate, when set.
    pub min_capacity: Option<f64>,
    /// Bound of the whole search.
    pub time_limit: Duration,
    /// Send lag past which the generator fell behind.
    pub max_send_lag: Duration,
}

/// Why a `[search]` value was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SearchError {
    /// A bad `[search.slo]` limit.
    #[error(transparent)]
    Slo(#[from] ThresholdError),
    /// A level that is not a positive number.
    #[error("{0} is not a number > 0")]
    NotPositive(f64),
    /// A level of sockets that is not whole.
    #[error("{0} is not a whole number of connections")]
    NotWhole(f64),
    /// `max` under `min`.
    #[error("max ({max}) is below min ({min})")]
    MaxBelowMin {
        /// The first level.
        min: f64,
        /// The highest level.
        max: f64,
    },
    /// A precision outside 0.1% .. 100%.
    #[error("{0} is not a precision between 0.001 (0.1%) and 1 (100%)")]
    Precision(f64),
    /// A growth factor outside 1.1 .. 10.
    #[error("{0} is not a growth factor between 1.1 and 10")]
    Growth(f64),
    /// A step too short to warm up and measure.
    #[error("{0:?} is too short: a step needs at least 2s")]
    StepTooShort(Duration),
    /// A warm-up that leaves less than one second measured.
    #[error("{warmup:?} leaves less than 1s of the {step:?} step measured")]
    WarmupTooLong {
        /// The warm-up.
        warmup: Duration,
        /// The step.
        step: Duration,
    },
    /// A duration that must not be zero.
    #[error("must be more than 0s")]
    Zero,
}

/// Validates `[search]` against the scenario's load (whose `rate` or
/// `connections` is the default first level). An error comes with the
/// dotted key it is about.
pub fn settings(
    raw: &RawSearch,
    rate: f64,
    connections: u64,
) -> Result<SearchSettings, (String, SearchError)> {
    let key = |k: &str| format!("search.{k}");
    let slo = Thresholds::from_raw(&raw.slo).map_err(|(k, e)| {
        let k = k.strip_prefix("thresholds.").unwrap_or(&k).to_string();
        (key(&format!("slo.{k}")), SearchError::from(e))
    })?;
    let scenario_level = match raw.vary {
        Vary::Rate => rate,
        Vary::Connections => connections as f64,
    };
    let min = raw.min.unwrap_or(scenario_level);
    let max = raw.max.unwrap_or(min * 64.0);
    for (name, v) in [("min", min), ("max", max)] {
        if !(v.is_finite() && v > 0.0) {
            return Err((key(name), SearchError::NotPositive(v)));
        }
        if raw.vary.whole() && v.fract() != 0.0 {
            return Err((key(name), SearchError::NotWhole(v)));
        }
    }
    if max < min {
        return Err((key("max"), SearchError::MaxBelowMin { min, max }));
    }
    if let Some(gate) = raw.min_capacity
        && !(gate.is_finite() && gate > 0.0)
    {
        return Err((key("min_capacity"), SearchError::NotPositive(gate)));
    }
    if !(raw.precision.is_finite() && (0.001..=1.0).contains(&raw.precision)) {
        return Err((key("precision"), SearchError::Precision(raw.precision)));
    }
    if !(raw.growth.is_finite() && (1.1..=10.0).contains(&raw.growth)) {
        return Err((key("growth"), SearchError::Growth(raw.growth)));
    }
    let step = raw.step_duration.0;
    if step < Duration::from_secs(2) {
        return Err((key("step_duration"), SearchError::StepTooShort(step)));
    }
    let warmup = raw
        .warmup
        .map_or_else(|| step.mul_f64(0.3).max(Duration::from_secs(1)), |w| w.0);
    if warmup + Duration::from_secs(1) > step {
        return Err((key("warmup"), SearchError::WarmupTooLong { warmup, step }));
    }
    for (name, d) in [
        ("time_limit", raw.time_limit.0),
        ("max_send_lag", raw.max_send_lag.0),
    ] {
        if d.is_zero() {
            return Err((key(name), SearchError::Zero));
        }
    }
    Ok(SearchSettings {
        slo,
        slo_given: raw.slo != RawThresholds::default(),
        vary: raw.vary,
        min,
        max,
        step_duration: step,
        warmup,
        precision: raw.precision,
        growth: raw.growth,
        min_capacity: raw.min_capacity,
        time_limit: raw.time_limit.0,
        max_send_lag: raw.max_send_lag.0,
    })
}

/// The `[search.slo]` keys `--slo KEY=LIMIT` accepts (the windowed p99 needs
/// a window: set it in the scenario).
pub const SLO_KEYS: &[&str] = &[
    "p50_ms",
    "p99_ms",
    "p999_ms",
    "loss_ratio",
    "duplicated",
    "hangs",
    "connect_error_ratio",
    "target_disconnects",
    "min_received",
];

/// Why an `--slo` argument was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SloArgError {
    /// Not `KEY=LIMIT`.
    #[error("--slo {0}: expected KEY=LIMIT, e.g. p99_ms=50")]
    Shape(String),
    /// A key that is no threshold key.
    #[error("--slo {arg}: unknown key `{key}`; use one of {}", SLO_KEYS.join(", "))]
    Key {
        /// The argument.
        arg: String,
        /// Its key.
        key: String,
    },
    /// A limit that is not a number.
    #[error("--slo {0}: the limit is not a number")]
    Limit(String),
}

/// Checks one `--slo KEY=LIMIT` and turns it into the override
/// `search.slo.KEY=LIMIT`.
pub fn slo_override(arg: &str) -> Result<String, SloArgError> {
    let (key, limit) = arg
        .split_once('=')
        .ok_or_else(|| SloArgError::Shape(arg.to_string()))?;
    let (key, limit) = (key.trim(), limit.trim());
    if !SLO_KEYS.contains(&key) {
        return Err(SloArgError::Key {
            arg: arg.to_string(),
            key: key.to_string(),
        });
    }
    let whole = matches!(
        key,
        "duplicated" | "hangs" | "target_disconnects" | "min_received"
    );
    let ok = if whole {
        limit.parse::<u64>().is_ok()
    } else {
        limit.parse::<f64>().is_ok_and(f64::is_finite)
    };
    if !ok {
        return Err(SloArgError::Limit(arg.to_string()));
    }
    Ok(format!("search.slo.{key}={limit}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_start_at_the_scenarios_own_level() {
        let s = settings(&RawSearch::default(), 250.0, 40).unwrap();
        assert_eq!((s.min, s.max), (250.0, 16_000.0));
        assert_eq!(s.warmup, Duration::from_secs(3));
        assert!(!s.slo_given);
        let raw = RawSearch {
            vary: Vary::Connections,
            slo: RawThresholds {
                p99_ms: Some(50.0),
                ..Default::default()
            },
            ..Default::default()
        };
        let s = settings(&raw, 250.0, 40).unwrap();
        assert_eq!((s.min, s.max), (40.0, 2560.0));
        assert!(s.slo_given);
    }

    #[test]
    fn refuses_what_cannot_search_and_names_the_key() {
        let bad = |f: &dyn Fn(&mut RawSearch)| {
            let mut raw = RawSearch::default();
            f(&mut raw);
            settings(&raw, 100.0, 10).unwrap_err()
        };
        assert_eq!(bad(&|r| r.min = Some(0.0)).0, "search.min");
        assert_eq!(bad(&|r| r.max = Some(50.0)).0, "search.max");
        assert_eq!(bad(&|r| r.precision = 0.0).0, "search.precision");
        assert_eq!(bad(&|r| r.growth = 1.0).0, "search.growth");
        assert_eq!(
            bad(&|r| r.step_duration = Dur::secs(1)).0,
            "search.step_duration"
        );
        assert_eq!(bad(&|r| r.warmup = Some(Dur::secs(10))).0, "search.warmup");
        assert_eq!(
            bad(&|r| r.slo.loss_ratio = Some(2.0)).0,
            "search.slo.loss_ratio"
        );
        let e = bad(&|r| {
            r.vary = Vary::Connections;
            r.min = Some(10.5);
        });
        assert_eq!(e.1, SearchError::NotWhole(10.5));
    }

    #[test]
    fn slo_flags_become_overrides_and_bad_ones_say_why() {
        assert_eq!(slo_override("p99_ms=50").unwrap(), "search.slo.p99_ms=50");
        assert_eq!(
            slo_override(" loss_ratio = 0.001 ").unwrap(),
            "search.slo.loss_ratio=0.001"
        );
        assert!(matches!(
            slo_override("p98_ms=5"),
            Err(SloArgError::Key { .. })
        ));
        assert!(matches!(
            slo_override("hangs=0.5"),
            Err(SloArgError::Limit(_))
        ));
        assert!(matches!(slo_override("p99_ms"), Err(SloArgError::Shape(_))));
    }
}
