//! Server-Sent Events: subscribers that read a `text/event-stream` over
//! HTTP/1.1, and publishers that `POST` messages over keep-alive HTTP/1.1,
//! for relays that speak HTTP rather than WebSocket (issue 10, part 3).
//!
//! - [`event`]: the WHATWG event-stream parser (incremental, no panics on
//!   any input, property-tested);
//! - [`chunked`]: the chunked transfer decoder (likewise);
//! - [`http`]: requests, response heads and body framing;
//! - [`subscriber`]: [`SseStream`], one subscription over any byte stream;
//! - [`publisher`]: [`HttpPublisher`], keep-alive `POST`s that reconnect.
//!
//! Failures are the engine's socket error kinds ([`SocketError`]): a status
//! other than 200 on a stream is `http_<code>`, as a refused WebSocket
//! upgrade; a body that does not parse is `protocol`; an event over the
//! limit, `too_big`; a connection that ends mid-body, `eof`.

pub mod chunked;
pub mod event;
pub mod http;
pub mod publisher;
pub mod subscriber;

pub use crate::connect::SocketError;
pub use event::Event;
pub use publisher::{Dial, HttpPublisher, Response, TcpDial};
pub use subscriber::{SseRequest, SseStream};
