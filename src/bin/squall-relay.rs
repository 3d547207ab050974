//! The `squall-relay` binary: the reference relay on its own, with the same
//! flags as `squall relay`.

use clap::Parser;
use squall::cmd::relay::RelayArgs;
use std::process::ExitCode;

/// squall's reference relay: JWT-authenticated WebSocket pub/sub with /health
/// and /metrics on the same port, and switchable classic bugs.
#[derive(Debug, Parser)]
#[command(name = "squall-relay", version)]
struct Cli {
    #[command(flatten)]
    relay: RelayArgs,
}

fn main() -> ExitCode {
    squall::exit::finish(squall::cmd::relay::run(Cli::parse().relay))
}
