//! `squall proxy`: the fault proxy in the foreground.

use crate::exit::{Exit, Failure};
pub use squall_chaos::cli::ProxyArgs;

/// Runs `squall proxy`.
pub fn run(args: ProxyArgs) -> Result<Exit, Failure> {
    let _ = squall_chaos::cli::run_proxy(args);
    Ok(Exit::Passed)
}
