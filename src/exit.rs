//! The exit codes of DESIGN.md, decided in one place.
//!
//! Every command returns `Result<Exit, Failure>`; `main` turns that into the
//! process's `ExitCode` through [`finish`] and nowhere else.

use std::fmt;
use std::process::ExitCode;

/// How a command ended, as DESIGN.md numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: the run passed (or the command did what it was asked).
    Passed,
    /// 3: at least one threshold was breached (or `compare` found a regression).
    Breached,
    /// 4: the target hung or died during the run.
    Hung,
    /// 5: the target could not be tested (nothing listening, every upgrade
    /// refused, it exited before the load began).
    Untestable,
    /// 1: the harness itself failed.
    HarnessFailed,
    /// 2: bad usage or an invalid scenario.
    Usage,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Passed => 0,
            Exit::HarnessFailed => 1,
            Exit::Usage => 2,
            Exit::Breached => 3,
            Exit::Hung => 4,
            Exit::Untestable => 5,
        }
    }

    /// The exit code of a run: a target that could not be tested outranks a
    /// hang, a hang outranks a breached threshold (the hang is usually why
    /// thresholds broke), and all outrank a pass.
    pub fn of_run(untestable: bool, hung: bool, breached: bool) -> Exit {
        if untestable {
            Exit::Untestable
        } else if hung {
            Exit::Hung
        } else if breached {
            Exit::Breached
        } else {
            Exit::Passed
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}

/// A command that could not do its job: why, and which exit code that means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// 1 (harness) or 2 (usage), as a rule.
    pub exit: Exit,
    /// One or more lines for the user.
    pub message: String,
}

impl Failure {
    /// Bad usage or an invalid scenario: exit code 2.
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            exit: Exit::Usage,
            message: message.into(),
        }
    }

    /// The target could not be tested: exit code 5.
    pub fn untestable(message: impl Into<String>) -> Failure {
        Failure {
            exit: Exit::Untestable,
            message: message.into(),
        }
    }

    /// The harness itself failed: exit code 1.
    pub fn harness(message: impl Into<String>) -> Failure {
        Failure {
            exit: Exit::HarnessFailed,
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// Turns a command's outcome into the process exit code, printing a failure.
pub fn finish(outcome: Result<Exit, Failure>) -> ExitCode {
    match outcome {
        Ok(exit) => exit.into(),
        Err(failure) => {
            crate::output::note(&format!("squall: error: {failure}"));
            failure.exit.into()
        }
    }
}
