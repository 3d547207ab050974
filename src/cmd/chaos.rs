//! `squall chaos ACTION`: one fault now against a running relay.

use crate::exit::{Exit, Failure};
pub use squall_chaos::cli::ChaosArgs;

/// Runs `squall chaos`.
pub fn run(args: ChaosArgs) -> Result<Exit, Failure> {
    Ok(from_code(squall_chaos::cli::run_chaos(args)))
}

fn from_code(code: std::process::ExitCode) -> Exit {
    if code == std::process::ExitCode::SUCCESS {
        Exit::Passed
    } else {
        Exit::Breached
    }
}
