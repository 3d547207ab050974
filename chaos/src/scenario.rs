//! The scenario file's `[[chaos]]` entries and `[watchdog]` table.
//!
//! The CLI's `Scenario` embeds these as `chaos: Vec<ChaosStep>` and
//! `watchdog: WatchdogSettings`. Every field has a default but `at` and
//! `action`; unknown keys are errors; durations are strings (`"250ms"`, see
//! [`squall_proto::parse_duration`]). [`ChaosStep::validate`] checks what
//! serde cannot (bounds, fields that do not fit the action) and names the
//! field at fault in its [`SpecError`].

use crate::error::SpecError;
pub use crate::proxy::toxics::{Stream, Toxic, ToxicSpec};
use serde::{Deserialize, Serialize};
use squall_proto::duration::{serde_duration, serde_opt_duration};
use std::time::Duration;

/// The most sockets one step may fault: every fault is bounded in count.
pub const MAX_COUNT: u64 = 1_000_000;
/// The most clients one storm may hold at once (they are all alive
/// together, and the CLI process shares its file limit with the load).
pub const MAX_STORM: u64 = 5_000;
/// The longest a step may hold sockets or toxics: every fault is bounded in time.
pub const MAX_HOLD: Duration = Duration::from_secs(24 * 3600);

/// What a chaos step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Open, subscribe, then end with a TCP RST and no closing handshake.
    Reset,
    /// Open, subscribe, then end with a plain FIN and no Close frame.
    Drop,
    /// Sockets that stop reading (small receive buffer, no reads) for `hold`.
    Halfopen,
    /// Sockets that go silent (no reads, no writes, no FIN, no RST) for `hold`.
    Vanish,
    /// Upgrade requests trickled one byte every `trickle`, for up to `hold`.
    Slowloris,
    /// Protocol violations; records the close code answered for each.
    Garbage,
    /// Missing, expired, wrong-signature, `alg: none` and oversized tokens; expects 401.
    Badauth,
    /// `count` clients drop at once and reconnect (with or without backoff).
    Storm,
    /// Adds `toxics` to the fault proxy in front of the target for `hold`.
    Proxy,
}

named_enum!(Action, "action", {
    Reset => "reset",
    Drop => "drop",
    Halfopen => "halfopen",
    Vanish => "vanish",
    Slowloris => "slowloris",
    Garbage => "garbage",
    Badauth => "badauth",
    Storm => "storm",
    Proxy => "proxy",
});

/// How storm clients reconnect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backoff {
    /// Everyone reconnects at once and retries at once: the thundering herd.
    #[default]
    None,
    /// Full-jitter exponential backoff: attempt `n` waits a random time in
    /// `0..min(5s, 100ms × 2^n)` first, the first attempt included.
    Exponential,
}

named_enum!(Backoff, "backoff", {
    None => "none",
    Exponential => "exponential",
});

/// One `[[chaos]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChaosStep {
    /// When the step starts, from the run's origin.
    #[serde(with = "serde_duration")]
    pub at: Duration,
    /// What it does.
    pub action: Action,
    /// How many sockets (reset, drop, halfopen, vanish, slowloris, storm), or
    /// how many rounds of every case (garbage, badauth). Unused by `proxy`.
    #[serde(default = "default_count")]
    pub count: u64,
    /// Sockets opened per second; absent: as fast as the agent can, at most
    /// [`crate::faults::pace::MAX_IN_FLIGHT`] at a time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// reset, drop, storm: how long each socket stays open (reading what
    /// arrives) after its subscribe, before the fault.
    #[serde(default = "default_after", with = "serde_duration")]
    pub after: Duration,
    /// reset, drop: write half a frame just before the fault.
    #[serde(default)]
    pub mid_frame: bool,
    /// reset, drop: end in the middle of the handshake instead: over TLS
    /// (`wss://`) after a ClientHello and the server's first answer, else
    /// after half the upgrade request (waiting at most `after` for an
    /// answer); no socket is established.
    #[serde(default)]
    pub mid_handshake: bool,
    /// halfopen, vanish, slowloris: how long each socket is held (default
    /// 10s). proxy: how long the toxics stay (default: to the end of the run).
    #[serde(
        default,
        with = "serde_opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub hold: Option<Duration>,
    /// slowloris: the pause between two bytes of the upgrade request.
    #[serde(default = "default_trickle", with = "serde_duration")]
    pub trickle: Duration,
    /// storm: how the clients reconnect.
    #[serde(default)]
    pub backoff: Backoff,
    /// garbage, badauth: the cases to run (see [`crate::faults::garbage::CASES`]
    /// and [`crate::faults::badauth::CASES`]); empty: all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cases: Vec<String>,
    /// proxy: the toxics to add.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub toxics: Vec<ToxicSpec>,
}

fn default_count() -> u64 {
    1
}

fn default_after() -> Duration {
    Duration::from_millis(100)
}

fn default_trickle() -> Duration {
    Duration::from_secs(1)
}

/// The hold of halfopen, vanish and slowloris sockets when a step sets none.
pub const DEFAULT_HOLD: Duration = Duration::from_secs(10);

impl ChaosStep {
    /// How many units the step plans, as its progress counts them: sockets,
    /// or checks for garbage and badauth (rounds × cases), or toxics for proxy.
    pub fn planned(&self) -> u64 {
        let cases = |all: &[&str]| if self.cases.is_empty() { all.len() } else { self.cases.len() } as u64;
        match self.action {
            Action::Garbage => self.count * cases(crate::faults::garbage::CASES),
            Action::Badauth => self.count * cases(crate::faults::badauth::CASES),
            Action::Proxy => self.toxics.len() as u64,
            _ => self.count,
        }
    }

    /// A step with every optional field at its default.
    pub fn new(at: Duration, action: Action) -> Self {
        Self {
            at,
            action,
            count: default_count(),
            rate: None,
            after: default_after(),
            mid_frame: false,
            mid_handshake: false,
            hold: None,
            trickle: default_trickle(),
            backoff: Backoff::None,
            cases: Vec::new(),
            toxics: Vec::new(),
        }
    }

    /// Checks what serde cannot: bounds, and fields that do not fit the action.
    pub fn validate(&self) -> Result<(), SpecError> {
        let action = self.action.as_str();
        if self.count == 0 || self.count > MAX_COUNT {
            return Err(SpecError::new(
                "count",
                format!(
                    "chaos {action}: count must be 1..={MAX_COUNT}, not {}",
                    self.count
                ),
            ));
        }
        if self.action == Action::Storm && self.count > MAX_STORM {
            return Err(SpecError::new(
                "count",
                format!("chaos storm: count must be at most {MAX_STORM}"),
            ));
        }
        if let Some(rate) = self.rate
            && !(rate.is_finite() && rate > 0.0)
        {
            return Err(SpecError::new(
                "rate",
                format!("chaos {action}: rate must be a positive number, not {rate}"),
            ));
        }
        let hold_too_long = self.hold.is_some_and(|h| h > MAX_HOLD);
        if hold_too_long || self.after > MAX_HOLD {
            return Err(SpecError::new(
                if hold_too_long { "hold" } else { "after" },
                format!("chaos {action}: hold and after must be at most 24h"),
            ));
        }
        if self.trickle.is_zero() {
            return Err(SpecError::new(
                "trickle",
                format!("chaos {action}: trickle must be more than 0"),
            ));
        }
        match self.action {
            Action::Proxy if self.toxics.is_empty() => {
                return Err(SpecError::new(
                    "toxics",
                    "chaos proxy: needs at least one entry in toxics",
                ));
            }
            Action::Proxy => {}
            _ if !self.toxics.is_empty() => {
                return Err(SpecError::new(
                    "toxics",
                    format!("chaos {action}: toxics belong to action = \"proxy\""),
                ));
            }
            _ => {}
        }
        if self.mid_frame && !matches!(self.action, Action::Reset | Action::Drop) {
            return Err(SpecError::new(
                "mid_frame",
                format!("chaos {action}: mid_frame applies to reset and drop only"),
            ));
        }
        if self.mid_handshake && !matches!(self.action, Action::Reset | Action::Drop) {
            return Err(SpecError::new(
                "mid_handshake",
                format!("chaos {action}: mid_handshake applies to reset and drop only"),
            ));
        }
        if self.mid_handshake && self.mid_frame {
            return Err(SpecError::new(
                "mid_handshake",
                format!(
                    "chaos {action}: mid_handshake ends before any frame, so not with mid_frame"
                ),
            ));
        }
        let known: &[&str] = match self.action {
            Action::Garbage => crate::faults::garbage::CASES,
            Action::Badauth => crate::faults::badauth::CASES,
            _ if self.cases.is_empty() => &[],
            _ => {
                return Err(SpecError::new(
                    "cases",
                    format!("chaos {action}: cases belong to garbage and badauth"),
                ));
            }
        };
        if let Some(unknown) = self.cases.iter().find(|c| !known.contains(&c.as_str())) {
            return Err(SpecError::new(
                "cases",
                format!(
                    "chaos {action}: unknown case {unknown:?}; known: {}",
                    known.join(", ")
                ),
            ));
        }
        for toxic in &self.toxics {
            toxic
                .validate()
                .map_err(|e| SpecError::new("toxics", format!("chaos proxy: {e}")))?;
        }
        Ok(())
    }
}

/// The `[watchdog]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchdogSettings {
    /// Whether the watchdog runs at all.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Time between two probe rounds (each round probes health and WS ping).
    #[serde(default = "default_interval", with = "serde_duration")]
    pub interval: Duration,
    /// How long one probe may take before it counts as failed.
    #[serde(default = "default_timeout", with = "serde_duration")]
    pub timeout: Duration,
    /// Consecutive failed rounds that make a hang. With the default 2, a hang
    /// is detected within `2 × interval + timeout` of its onset.
    #[serde(default = "default_failures")]
    pub failures_before_hang: u32,
    /// A probe slower than this (but within `timeout`) makes the state `degraded`.
    #[serde(default = "default_slow", with = "serde_duration")]
    pub slow: Duration,
    /// Probe the health URL with an HTTP GET.
    #[serde(default = "default_true")]
    pub health_probe: bool,
    /// Probe a WebSocket with Ping/Pong on the watchdog's own connection.
    #[serde(default = "default_true")]
    pub ws_probe: bool,
    /// With `ws_probe`: also open a fresh WebSocket (upgrade, then close)
    /// every round, so that a target whose new upgrades stall while its old
    /// sockets work is caught (`accept-stall`).
    #[serde(default = "default_true")]
    pub accept_probe: bool,
    /// How often `/metrics` is scraped, to have the last scrape before a hang.
    #[serde(default = "default_metrics_interval", with = "serde_duration")]
    pub metrics_interval: Duration,
    /// Capture diagnostics (stacks, /proc) when a hang is detected and the
    /// target's PID is known.
    #[serde(default = "default_true")]
    pub diagnostics: bool,
}

fn default_true() -> bool {
    true
}

fn default_interval() -> Duration {
    Duration::from_millis(250)
}

fn default_timeout() -> Duration {
    Duration::from_secs(1)
}

fn default_failures() -> u32 {
    2
}

fn default_slow() -> Duration {
    Duration::from_millis(200)
}

fn default_metrics_interval() -> Duration {
    Duration::from_secs(2)
}

impl Default for WatchdogSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: default_interval(),
            timeout: default_timeout(),
            failures_before_hang: default_failures(),
            slow: default_slow(),
            health_probe: true,
            ws_probe: true,
            accept_probe: true,
            metrics_interval: default_metrics_interval(),
            diagnostics: true,
        }
    }
}

impl WatchdogSettings {
    /// The detection bound: how long after a hang's onset it is declared.
    pub fn detection_bound(&self) -> Duration {
        self.interval * self.failures_before_hang + self.timeout
    }

    /// Checks bounds serde cannot.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.interval < Duration::from_millis(10) || self.timeout < Duration::from_millis(10) {
            return Err(SpecError::new(
                if self.interval < Duration::from_millis(10) {
                    "interval"
                } else {
                    "timeout"
                },
                "watchdog: interval and timeout must be at least 10ms",
            ));
        }
        if self.failures_before_hang == 0 || self.failures_before_hang > 1000 {
            return Err(SpecError::new(
                "failures_before_hang",
                "watchdog: failures_before_hang must be 1..=1000",
            ));
        }
        if self.enabled && !self.health_probe && !self.ws_probe {
            return Err(SpecError::new(
                "health_probe",
                "watchdog: enable health_probe or ws_probe (or set enabled = false)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_step_with_defaults_and_refuses_unknown_keys() {
        let step: ChaosStep =
            toml::from_str("at = \"10s\"\naction = \"reset\"\ncount = 200\nmid_frame = true")
                .unwrap();
        assert_eq!(step.at, Duration::from_secs(10));
        assert_eq!(step.count, 200);
        assert_eq!(step.after, Duration::from_millis(100));
        assert!(step.validate().is_ok());
        let err =
            toml::from_str::<ChaosStep>("at = \"1s\"\naction = \"reset\"\ncuont = 2").unwrap_err();
        assert!(err.to_string().contains("cuont"), "{err}");
    }

    #[test]
    fn validates_fields_against_the_action() {
        let mut step = ChaosStep::new(Duration::ZERO, Action::Halfopen);
        step.mid_frame = true;
        assert!(step.validate().is_err());
        assert_eq!(step.validate().unwrap_err().field, "mid_frame");
        let step = ChaosStep::new(Duration::ZERO, Action::Proxy);
        assert!(step.validate().is_err(), "proxy without toxics");
        assert_eq!(step.validate().unwrap_err().field, "toxics");
        let mut step = ChaosStep::new(Duration::ZERO, Action::Garbage);
        step.cases = vec!["nonsense".into()];
        assert!(step.validate().is_err());
        assert_eq!(step.validate().unwrap_err().field, "cases");
    }

    #[test]
    fn names_are_the_ones_serde_reads_and_parse_back() {
        for action in Action::ALL {
            let json = serde_json::to_value(action).unwrap();
            assert_eq!(json, action.as_str());
            assert_eq!(action.to_string().parse::<Action>(), Ok(*action));
        }
        for backoff in Backoff::ALL {
            assert_eq!(serde_json::to_value(backoff).unwrap(), backoff.as_str());
            assert_eq!(backoff.as_str().parse::<Backoff>(), Ok(*backoff));
        }
        assert_eq!(Action::NAMES.len(), Action::ALL.len());
        let unknown = "teleport".parse::<Action>().unwrap_err();
        assert_eq!(unknown.name, "teleport");
        assert!(unknown.to_string().contains("reset, drop"), "{unknown}");
    }

    #[test]
    fn reads_a_proxy_step_with_toxiproxy_shaped_toxics() {
        let step: ChaosStep = toml::from_str(
            "at = \"0s\"\naction = \"proxy\"\nhold = \"5s\"\n\
             toxics = [{ type = \"latency\", stream = \"downstream\", attributes = { latency = 100, jitter = 5 } }]",
        )
        .unwrap();
        assert!(step.validate().is_ok());
        assert_eq!(
            step.toxics[0].toxic,
            Toxic::Latency {
                latency: 100,
                jitter: 5
            }
        );
    }

    #[test]
    fn watchdog_defaults_give_the_documented_bound() {
        let w: WatchdogSettings = toml::from_str("").unwrap();
        assert_eq!(w, WatchdogSettings::default());
        assert_eq!(w.detection_bound(), Duration::from_millis(1500));
    }
}
