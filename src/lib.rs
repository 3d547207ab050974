//! The `squall` CLI as a library: scenario runner, snapshots, results, gates.
//! `main.rs` only parses arguments and calls in here, so integration tests can
//! drive the same code.

pub mod cmd;
pub mod compare;
pub mod exit;
pub mod junit;
pub mod k8s;
pub mod merge;
pub mod output;
pub mod report;
pub mod results;
pub mod run;
pub mod scenario;
pub mod search;
pub mod snapshot;
pub mod target;
pub mod thresholds;
pub mod tui;
