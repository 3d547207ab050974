//! squall-loadgen: the load engine of squall (DESIGN.md, issue 3).
//!
//! It opens authenticated WebSocket connections on a steady ramp, subscribes
//! them to topics, publishes stamped messages on a fixed schedule (open model)
//! and measures every delivery: one-way latency from the message's
//! *scheduled* send time (coordinated omission corrected) into HdrHistograms,
//! and per (subscriber, publisher) sequence tracking for exact loss,
//! duplicates and reordering, mergeable across shards and processes.
//!
//! # Use
//!
//! ```no_run
//! # async fn demo() -> Result<(), squall_loadgen::PlanError> {
//! use squall_loadgen::{LoadPlan, Origin};
//! let plan = LoadPlan::new(vec!["ws://127.0.0.1:9000/ws".into()]);
//! plan.check()?; // while validating the scenario
//! let (_stop_tx, stop) = tokio::sync::watch::channel(false);
//! let (snap_tx, mut snaps) = tokio::sync::mpsc::unbounded_channel();
//! tokio::spawn(async move { while let Some(_s) = snaps.recv().await { /* show it */ } });
//! let report = squall_loadgen::run(plan, Origin::now(), stop, snap_tx).await?;
//! println!("p99 {} ms, loss {}", report.latency.percentile_ms(99.0), report.loss().loss_ratio);
//! # Ok(()) }
//! ```
//!
//! # Where traffic goes, and what can fail
//!
//! Targets are `ws://` or `wss://` URLs ([`squall_proto::Endpoint`]; TLS with
//! rustls, trusting [`LoadPlan::tls`], one configuration built once per run,
//! each socket a full handshake), or `http://` or `https://` event-stream URLs with
//! [`Transport::Sse`] (Server-Sent Events subscribers, HTTP `POST`
//! publishers: [`sse`]), resolved once,
//! before the first connection, through the plan's
//! [`LoopbackGuard`](squall_proto::LoopbackGuard) ([`LoadPlan::guard`]):
//! loopback addresses only (127.0.0.0/8, ::1) unless [`LoadPlan::allow_remote`]
//! is set, which the CLI does only when the scenario and the command line
//! both allow it. The engine enforces this itself: [`run`] refuses a remote
//! target in [`LoadPlan::check`] without attempting a connection.
//!
//! Errors are typed, never strings to search: [`PlanError`] (one variant per
//! check, and [`PlanError::field`], the plan [`Field`] at fault, for a caller
//! to map to its own configuration key), [`auth::AuthError`] and
//! [`histogram::HistogramError`]. What goes wrong on the network is not an
//! error of the run but a measurement: each socket failure is counted under
//! its kind in `connections.errors` (below).
//!
//! # Sharding and worker processes
//!
//! [`LoadPlan::group`] gives topic group `I` of `N`: whole topics with their
//! publishers and subscribers, the shard of a run over several machines,
//! whose latencies are each measured on one machine's clock.
//! [`LoadPlan::shard`] gives part `I` of `N` of a group's connections (a
//! contiguous quarter, third, ...), as a machine's worker processes split it.
//! Every group and part keeps the whole schedule. Run each with the same
//! [`Origin`] (a parent hands [`Origin::as_mono_ns`] to its workers; machines
//! take theirs at one agreed wall-clock instant), then merge: [`LoadSnapshot::merge`] for the latest snapshot of each shard,
//! [`LoadReport::merge`] for the final reports. Loss stays exact when a
//! publisher and its subscribers sit in different shards, because the report
//! carries per-publisher accounting ([`report::Accounting`]) and
//! [`LoadReport::loss`] derives the figures after the merge.
//!
//! # What is measured, and how
//!
//! - **Stamp** ([`stamp`]): every payload carries `~sq<publisher>.<seq>.<due_ns>~`,
//!   the message's *scheduled* send time in ns from the [`Origin`]. Receivers
//!   find it with a SIMD substring search, wherever the relay put it.
//! - **Latency**: receive time minus scheduled time, so a publisher that
//!   falls behind does not hide the delay (coordinated omission corrected);
//!   recorded in µs (3 significant digits, up to 60 s; larger values are
//!   clamped and counted in `messages.clamped`). Duplicates are not recorded.
//! - **Send lag**: how late each message left compared with its schedule
//!   (`LoadReport::send_lag`, `LoadSnapshot::send_lag_ms`): when it grows,
//!   the engine itself is the bottleneck, and it says so.
//! - **Histograms** are recorded into a few striped tallies (connection `c`
//!   uses stripe `c % 16`, behind an uncontended mutex) and merged once a
//!   second into the snapshot's interval histogram and the run's total.
//! - **Connections**: attempts, upgrades, failures and abnormal ends by kind
//!   (`refused`, `timeout`, `http_401`, `reset`, `eof`,
//!   `closed_by_server_<code>`, `send_timeout`, `subscribe_timeout`,
//!   `relay_error_<code>`, `tls_cert`, `tls`, over SSE `publish_http_<code>`,
//!   ...), and a handshake-latency histogram (TCP connect to the end of the
//!   upgrade), with beside it the TLS handshake's own (`wss://` targets). At
//!   most 100 upgrades are in flight
//!   per target, below the usual listen backlog, so that a ramp never
//!   overflows the target's accept queue.
//! - **Dropped**: established sockets that the *target* ended (a close frame,
//!   `close_<code>`; a reset, `reset`; the end of the stream, `eof`; a broken
//!   frame; over SSE also an event stream ended by its last chunk,
//!   `stream_end`, and a publisher that cannot reach the server,
//!   `publish_<kind>`) while squall did not end them, by cause, in
//!   `connections.dropped`. The end of the drain, Ctrl-C, a planned close
//!   and a send timeout are squall's own doing and are not drops. With
//!   [`LoadPlan::reconnect`], a dropped socket reconnects after a jittered
//!   exponential backoff and subscribes again (`connections.reconnects`,
//!   and the time from drop to the new acknowledgement in
//!   `connections.reconnect`).
//! - **Drain and late**: after the last publish the engine listens at least
//!   `drain`, then on while deliveries still arrive, until none has arrived
//!   for `drain` or `drain_max` has passed. What arrives after `drain` is
//!   `late` (received, not lost; its latency in
//!   [`LoadReport::late_latency`]): the summary can say how far behind the
//!   target was instead of calling its backlog loss.
//! - **Live loss**: each snapshot carries `due` (owed deliveries whose
//!   scheduled time has passed), `overdue` (owed deliveries more than 2 s
//!   past their schedule that have not arrived, a lower bound) and per-topic
//!   progress ([`snapshot::TopicProgress`]: sent, received, subscribers), so
//!   that loss and a stalled topic show while they happen
//!   ([`snapshot::MessagesNow`] says exactly what each counts).
//! - **Never hangs**: every connect, send and close has a timeout; reads end
//!   at the connection's end; every wait of a dropped socket ends with the
//!   run; the run returns by [`LoadPlan::deadline`],
//!   `duration + max(drain, drain_max) + 10 s`.
//! - **Bounds**: [`LoadPlan::check`] refuses what no machine carries (more
//!   than 10 million connections or msg/s, 1 million topics, runs over 30
//!   days, ...: the `MAX_*` constants of [`plan`]) with a [`PlanError`]
//!   naming the [`Field`].
//! - **Threads**: one task per connection, pinned for its life to one of a
//!   few current-thread tokio runtimes on threads of their own (one per
//!   100,000 deliveries a second the plan expects, at least one, at most
//!   one per core), so that a frame never wakes a second thread; the
//!   collector and the launcher run on the caller's runtime.
//! - **Memory**: the task keeps only its frequent state (about 1.6 KB;
//!   opening, reconnecting, closing and publishing run boxed), a 2 KiB
//!   read buffer (the upgrade is done without tungstenite's handshake
//!   machine, whose 4 KiB buffer would stay the socket's read buffer), no
//!   write buffering, 1 MiB message limit: about 6 KB of RSS per socket at
//!   18,000 sockets under traffic (`bench/compare.sh`, part b).
//!
//! # How loss is counted
//!
//! Publisher `p`'s schedule is a pure function of the plan, and a message
//! never leaves before its scheduled time. A subscriber acknowledged at time
//! `A` (squall protocol: the `subscribed` Status arrives; template protocol,
//! which has no acknowledgement: `settle` after the subscribe frame left;
//! Nostr: the last of its `REQ`s' `EOSE`s arrives, see [`nostr`])
//! therefore owes every message of `p` scheduled after `A`: sequence numbers
//! `from..sent`. Each (subscriber, publisher) pair remembers the newest
//! sequence number seen and a 64-deep window below it: a number seen again is
//! a duplicate, one below the newest is reordered, one further back than the
//! window is `out_of_window` (counted as received).
//!
//! **A relay cannot hide loss by disconnecting.** A subscriber whose socket
//! the target ended still owes every message scheduled after its
//! acknowledgement, to the end: it hands in its pairs like one that stayed,
//! and what was sent after the drop, not arriving, is lost (and counted in
//! `overdue` as it happens). With [`LoadPlan::reconnect`] the pairs go on
//! after the new acknowledgement, so only the messages sent while it was
//! away are lost; a reconnected publisher sends what fell due meanwhile, so
//! its `0..sent` stay whole and the accounting stays exact and mergeable.
//!
//! Left out of the loss figures, and counted: subscribers whose socket
//! squall itself ended before the end of the drain (a planned close when a
//! stage lowers the connections, a send timeout:
//! `messages.subscribers_excluded`); publishers that stopped before a
//! subscriber's duty began, whose debt cannot be known exactly (their socket
//! failed, or Ctrl-C: [`Loss::publishers_excluded`]). A connection's own
//! messages are owed to it only when the target echoes to the sender
//! ([`LoadPlan::echo`], true by default as in the squall protocol); a target
//! that evidently never echoes is reported in `messages.echo_absent` rather
//! than as loss.

#![warn(missing_docs)]

pub mod auth;
mod connect;
mod connection;
mod engine;
pub mod frames;
pub mod histogram;
pub mod layout;
pub mod limits;
pub mod nostr;
pub mod plan;
mod pool;
pub mod receive;
pub mod report;
mod schedule;
pub mod script;
pub mod snapshot;
mod socket;
pub mod sse;
pub mod stamp;
mod stats;
mod template;
pub mod tracker;
mod upgrade;

pub use histogram::LatencyHistogram;
pub use plan::{
    Auth, Field, JwtAuth, JwtKey, LoadPlan, Placement, PlanError, Protocol, Reconnect, Shard, Sse,
    Stage, Timeouts, Transport,
};
pub use report::{LoadReport, Loss};
pub use snapshot::{LoadSnapshot, Phase, TopicProgress};
pub use squall_proto::Origin;

use tokio::sync::{mpsc, watch};

/// Runs `plan` (one shard of it) and returns what it measured.
///
/// - `origin`: the run's origin; every `_s`/`_ns` figure counts from it. The
///   first connection is due at the origin.
/// - `stop`: set it to `true` to end early (Ctrl-C): publishing stops at once,
///   the drain still runs (`drain`, without the extension up to
///   `drain_max`), and the report says `complete: false`. Sockets squall
///   closes then are not `dropped`. Dropping the sender does not stop the run.
/// - `snapshots`: one [`LoadSnapshot`] a second, and a last one at the end.
///   Measurement never waits for the consumer.
///
/// Returns by [`LoadPlan::deadline`], `duration + max(drain, drain_max) +
/// 10 s`, at the latest, whatever the target does. Fails only on a plan that [`LoadPlan::check`] refuses, a target
/// that is not loopback without [`LoadPlan::allow_remote`] among them; it
/// then fails at once, before any connection is attempted or any snapshot
/// sent.
pub async fn run(
    plan: LoadPlan,
    origin: Origin,
    stop: watch::Receiver<bool>,
    snapshots: mpsc::UnboundedSender<LoadSnapshot>,
) -> Result<LoadReport, PlanError> {
    let resolved = plan.check_and_resolve()?;
    let frames = frames::Frames::new(&plan)?;
    Ok(engine::run(plan, resolved, frames, origin, stop, snapshots).await)
}
