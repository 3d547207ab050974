//! The `squall` binary: parses the command line and hands it to the library
//! (`squall::cli`), which decides the exit code.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    squall::cli::main(squall::cli::Cli::parse())
}
