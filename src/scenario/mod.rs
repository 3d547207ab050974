//! Scenario files: the raw TOML structs, where they came from, and the
//! validated `Plan` built from them.

pub mod auth;
pub mod duration;
pub mod plan;
pub mod protocol;
pub mod raw;
pub mod source;
pub mod target;
pub mod transport;
