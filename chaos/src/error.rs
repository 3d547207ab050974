//! The crate's error types: [`Error`], why a chaos, proxy or watchdog call
//! could not go ahead, and [`SpecError`], a step, toxic or watchdog setting
//! that does not make sense, naming the field at fault.
//!
//! Callers match on variants; no caller searches a message. The library
//! decides no exit code: the CLI maps variants onto its own.

use squall_proto::EndpointError;

/// Why a chaos, proxy or watchdog call could not go ahead.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A URL or address that the loopback guard refused
    /// ([`EndpointError::is_refused`]), or that is malformed or does not
    /// resolve.
    #[error("{verdict}: {0}", verdict = verdict(.0))]
    Endpoint(#[from] EndpointError),
    /// A step, toxic or watchdog setting that does not make sense.
    #[error("invalid: {0}")]
    Spec(#[from] SpecError),
    /// A toxic of this name is in force already (the control API answers 409).
    #[error("invalid: a toxic named {0:?} exists already")]
    ToxicExists(String),
    /// No toxic of this name is in force (the control API answers 404).
    #[error("invalid: no toxic named {0:?}")]
    ToxicNotFound(String),
    /// A `proxy` step handed to the client faults: only the agent, which owns
    /// the fault proxy, runs those.
    #[error("invalid: proxy steps need the agent's fault proxy")]
    ProxyStepWithoutProxy,
    /// A socket, thread or file operation failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// Whether the loopback guard refused an address.
    pub fn is_refused(&self) -> bool {
        matches!(self, Error::Endpoint(e) if e.is_refused())
    }
}

fn verdict(e: &EndpointError) -> &'static str {
    if e.is_refused() { "refused" } else { "invalid" }
}

/// A setting that does not make sense: which field, and why. Its message
/// names the step or toxic too (`chaos reset: count must be ...`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SpecError {
    /// The field at fault as a scenario file or a toxic spec writes it
    /// (`count`, `toxics`, `interval`, `toxicity`, `type`, ...).
    pub field: String,
    /// What is wrong, for the user.
    pub message: String,
}

impl SpecError {
    /// An error in `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A name that is not one of a closed set (an action, a backoff, a token
/// placement): what kind of name, the name, and the names that exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {name:?}; known: {}", known.join(", "))]
pub struct UnknownName {
    /// What was being named (`action`, `backoff`, `placement`).
    pub kind: &'static str,
    /// The name given.
    pub name: String,
    /// Every name that exists.
    pub known: &'static [&'static str],
}
