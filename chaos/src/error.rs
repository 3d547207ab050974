//! The crate's error type: refusals by the loopback guard, bad input, I/O.

use std::fmt;

/// Why a chaos, proxy or watchdog call could not go ahead.
#[derive(Debug)]
pub enum Error {
    /// The loopback guard refused an address (see [`crate::guard`]).
    Refused(String),
    /// A URL, toxic spec or setting that does not make sense.
    Invalid(String),
    /// A socket or file operation failed.
    Io(std::io::Error),
}

impl Error {
    /// The exit code DESIGN.md gives this kind of failure: 2 for usage
    /// (a refused or invalid input), 1 for the harness itself.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Refused(_) | Error::Invalid(_) => 2,
            Error::Io(_) => 1,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Refused(why) => write!(f, "refused: {why}"),
            Error::Invalid(why) => write!(f, "invalid: {why}"),
            Error::Io(e) => write!(f, "i/o: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}
