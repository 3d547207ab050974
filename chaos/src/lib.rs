//! squall-chaos: the faults that real clients and networks inflict on
//! WebSocket relays, a fault proxy, and a watchdog that detects a hung
//! target and captures why (DESIGN.md; issue 4).
//!
//! # How the CLI wires it in
//!
//! * Scenario types: [`scenario::ChaosStep`] (`[[chaos]]`) and
//!   [`scenario::WatchdogSettings`] (`[watchdog]`), serde with
//!   `deny_unknown_fields`; call their `validate()` when checking a scenario.
//!   Durations parse with `squall_proto::parse_duration`.
//! * Chaos: [`agent::ChaosAgent::start`] with an [`agent::AgentConfig`]
//!   (steps, a [`target::ChaosTarget`] with the target's ws URL, a
//!   [`target::TokenSource`] and a [`guard::LoopbackGuard`], the run's origin,
//!   a shared [`agent::LastChaos`]). Point the load at
//!   [`agent::ChaosAgent::load_url`]; read [`agent::ChaosAgent::reports`] once
//!   a second; [`agent::ChaosAgent::finish`] at the end.
//! * Watchdog: [`watchdog::Watchdog::spawn`] with a
//!   [`watchdog::WatchdogConfig`] (health URL, ws URL + token, the target's
//!   PID and stderr tail, metrics URL, out dir + run name, the same
//!   `LastChaos`); [`watchdog::Watchdog::status`] once a second,
//!   [`watchdog::Watchdog::hangs`] for the results file; exit code 4 when
//!   that is not empty.
//! * Standalone commands: [`cli::ChaosArgs`] / [`cli::run_chaos`] for
//!   `squall chaos`, [`cli::ProxyArgs`] / [`cli::run_proxy`] for
//!   `squall proxy` (sync functions that build their own tokio runtime).
//!
//! Every address goes through the loopback guard: 127.0.0.0/8 and ::1 only,
//! unless remote traffic is allowed by both the scenario and the user.
//!
//! # Threads
//!
//! The agent's faults run on the caller's tokio runtime (multi-threaded for
//! thousands of sockets a second). The watchdog and the fault proxy each run
//! on a thread and single-threaded runtime of their own: a busy load engine
//! cannot delay a probe or a proxied byte, and a hung target cannot hang
//! either.
//!
//! # Modules
//!
//! [`faults`] holds one module per client fault over the raw WebSocket
//! client of [`ws`]; [`proxy`] the fault proxy, its [`proxy::toxics`] and
//! control [`proxy::api`]; [`watchdog`] the probes, the `/proc` reading, the
//! gdb summary and the hang file; [`report`] what steps report; [`tokens`]
//! the HS256 and deliberately broken tokens.

pub mod agent;
pub mod cli;
pub mod error;
pub mod faults;
pub mod guard;
pub mod proxy;
pub mod report;
pub mod scenario;
pub mod target;
pub mod tokens;
pub mod watchdog;
pub mod ws;

pub use error::Error;
pub use guard::LoopbackGuard;
