//! A raw WebSocket client over a tokio `TcpStream`: the handshake by hand
//! and frames by hand (see [`frame`]), so that every fault can own the
//! socket: reset it, half-close it, stop reading it, or write half a frame.

pub mod conn;
pub mod frame;
pub mod handshake;

pub use conn::{ReadEnd, WsConn};
pub use frame::Frame;
pub use handshake::{ConnectError, ConnectOptions, connect};
