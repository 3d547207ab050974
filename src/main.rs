//! The `squall` binary: parses the command line and hands it to the library
//! (`squall::cmd`), which decides the exit code.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    squall::cmd::main(squall::cmd::Cli::parse())
}
