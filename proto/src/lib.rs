//! squall-proto: the vocabulary every part of squall speaks.
//!
//! The relay, the load engine, the chaos agent and the CLI all depend on this
//! small crate and on nothing of each other's for these things:
//!
//! - [`wire`]: the reference relay's wire protocol (DESIGN.md, "Wire
//!   protocol"), its JWT [`wire::Claims`] and close codes;
//! - [`duration`]: the one duration grammar of relay flags and scenario files
//!   (`"250ms"`, `"10s"`, `"1.5m"`);
//! - [`origin`]: the run's origin clock, which every `_s` and `_ns` figure
//!   counts from and which crosses process boundaries as a number;
//! - [`endpoint`]: target URLs (`ws://`, `wss://`, `http://`, `https://`)
//!   taken apart, and the [`endpoint::LoopbackGuard`] that every address
//!   squall sends traffic to passes through;
//! - [`tls`]: TLS for all of them: the client configuration that the load
//!   engine, the chaos agent and the watchdog share, the relay's server
//!   configuration, a stream that is plain TCP or TLS, and the error kinds
//!   of a TLS failure.
//!
//! Every fallible function returns a typed error of its module
//! ([`DurationError`], [`UrlError`], [`EndpointError`],
//! [`wire::ProtocolError`], [`tls::TlsError`]), so that callers match on variants rather than
//! search messages.

#![warn(missing_docs)]

pub mod duration;
pub mod endpoint;
pub mod origin;
pub mod tls;
pub mod wire;

pub use duration::{DurationError, format_duration, parse_duration};
pub use endpoint::{Endpoint, EndpointError, LoopbackGuard, Scheme, Url, UrlError};
pub use origin::Origin;
pub use tls::{TlsClient, TlsSettings};
