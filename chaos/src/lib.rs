//! squall-chaos: the faults that real clients and networks inflict on
//! WebSocket relays, a fault proxy, and a watchdog that detects a hung
//! target and captures why (DESIGN.md; issue 4).
//!
//! A library only: it holds no command-line code and decides no exit code.
//! Every fallible call returns the typed [`Error`] (or a [`SpecError`] that
//! names the field at fault), and what a step did comes back as a
//! [`report::StepReport`] that implements `Display`. The `squall` CLI parses
//! flags, prints, and maps errors and reports onto exit codes (`squall chaos`
//! and `squall proxy` live in its `src/cmd/`).
//!
//! # How the CLI wires it in
//!
//! * Scenario types: [`scenario::ChaosStep`] (`[[chaos]]`) and
//!   [`scenario::WatchdogSettings`] (`[watchdog]`), serde with
//!   `deny_unknown_fields`; call their `validate()` when checking a scenario.
//!   Durations parse with `squall_proto::parse_duration`. The closed sets of
//!   names ([`scenario::Action`], [`scenario::Backoff`],
//!   [`target::TokenPlacement`]) have `NAMES`, `Display` and `FromStr`, for
//!   the CLI's value parsers.
//! * Chaos: [`agent::ChaosAgent::start`] with an [`agent::AgentConfig`]
//!   (steps, a [`target::ChaosTarget`] with the target's ws URL, a
//!   [`target::TokenSource`] and a `squall_proto::LoopbackGuard`, the run's
//!   `squall_proto::Origin`, a shared [`agent::LastChaos`]). Point the load
//!   at [`agent::ChaosAgent::load_url`]; read [`agent::ChaosAgent::reports`]
//!   once a second; [`agent::ChaosAgent::finish`] at the end.
//! * Watchdog: [`watchdog::Watchdog::spawn`] with a
//!   [`watchdog::WatchdogConfig`] (health URL, ws URL + token, the target's
//!   PID and stderr tail, metrics URL, out dir + run name, the run's origin,
//!   the same `LastChaos`); once a second [`watchdog::Watchdog::note_progress`]
//!   with the load's [`watchdog::Progress`] (so that failing probes while
//!   deliveries flow are `degraded`, not a hang, and stalled topics are
//!   seen) and [`watchdog::Watchdog::status`] for the snapshot;
//!   [`watchdog::Watchdog::target_exited`] as soon as the owned process
//!   ends; [`watchdog::Watchdog::stop`] at the end of the drain, before
//!   squall closes its own sockets, for the hangs of the results file (the
//!   CLI's exit code 4 when that is not empty; each
//!   [`watchdog::HangRecord`] has its [`watchdog::HangKind`]).
//! * Standalone: [`proxy::FaultProxy::start`] and
//!   [`proxy::FaultProxy::start_api`] for `squall proxy`; an agent with one
//!   step starting at once for `squall chaos`.
//! * [`http::get`]: the one HTTP/1.1 GET client (the watchdog's probes; the
//!   CLI's readiness check through [`http::get_blocking`]).
//!
//! Every address goes through `squall_proto::LoopbackGuard` (see
//! [`target::endpoint`]: `ws://`, `wss://`, `http://`, `https://`):
//! 127.0.0.0/8 and ::1 only, unless remote traffic is allowed by both the
//! scenario and the user.
//!
//! # TLS
//!
//! `wss://` and `https://` go through the caller's one
//! `squall_proto::TlsClient` ([`target::ChaosTarget::tls`],
//! [`watchdog::WatchdogConfig::tls`]): the load's trust, built once. Every
//! fault still owns its TCP socket under the TLS (a `reset` is an RST), and
//! `reset`/`drop` with `mid_handshake` end in the middle of the TLS
//! handshake, after a real ClientHello and the server's answer.
//!
//! # Threads
//!
//! The agent's faults run on the caller's tokio runtime (multi-threaded for
//! thousands of sockets a second). The watchdog and the fault proxy each run
//! on a thread and single-threaded runtime of their own: a busy load engine
//! cannot delay a probe or a proxied byte, and a hung target cannot hang
//! either. Every lock is a `std::sync` one held for a few instructions and
//! never across an `.await`; each says what it guards where it is declared.
//!
//! # Modules
//!
//! [`faults`] holds one module per client fault over the raw WebSocket
//! client of [`ws`]; [`proxy`] the fault proxy, its [`proxy::toxics`] and
//! control [`proxy::api`]; [`watchdog`] the probes, the verdict
//! ([`watchdog::judge`]: what is a hang, of which kind), the `/proc`
//! reading, the gdb summary and the hang file; [`report`] what steps report; [`tokens`]
//! the HS256 and deliberately broken tokens; [`error`] the error types.

#[macro_use]
mod names;

pub mod agent;
pub mod error;
pub mod faults;
pub mod http;
pub mod proxy;
pub mod report;
pub mod scenario;
pub mod target;
pub mod tokens;
pub mod watchdog;
pub mod ws;

pub use error::{Error, SpecError};
