//! squall-relay: the reference relay of squall.
//!
//! A JWT-authenticated WebSocket pub/sub relay that does not hang, with health
//! and Prometheus metrics on the same port, and switchable classic bugs
//! (`--bug NAME`) so the harness can prove that it catches them.

pub mod protocol;
