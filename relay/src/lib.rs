//! squall-relay: the reference relay of squall.
//!
//! A JWT-authenticated WebSocket pub/sub relay that does not hang, with health
//! and Prometheus metrics on the same port, and switchable classic bugs
//! (`--bug NAME`) so the harness can prove that it catches them.
//!
//! Start one in a test with [`server::start_loopback`] (or [`server::start`] on
//! a listener you bound), stop it with [`server::RelayHandle::shutdown`]; the
//! `squall relay` command and the `squall-relay` binary (in the `squall`
//! package) bind with [`listen::bind`] and call [`server::start`].

pub mod auth;
pub mod bugs;
pub mod config;
mod connection;
pub mod frame;
pub mod http;
pub mod limits;
pub mod listen;
pub mod metrics;
pub mod outbox;
pub mod rate_limit;
pub mod registry;
pub mod server;

pub use config::RelayConfig;
pub use server::{RelayHandle, start, start_loopback};
