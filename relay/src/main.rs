//! The `squall-relay` binary: parses the relay's flags and runs it.

use std::process::ExitCode;

use clap::Parser;
use squall_relay::cli::RelayArgs;

/// squall's reference relay: JWT-authenticated WebSocket pub/sub with /health
/// and /metrics on the same port, and switchable classic bugs.
#[derive(Debug, Parser)]
#[command(name = "squall-relay", version)]
struct Cli {
    #[command(flatten)]
    relay: RelayArgs,
}

fn main() -> ExitCode {
    squall_relay::cli::run(Cli::parse().relay)
}
