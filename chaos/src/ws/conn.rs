//! An open WebSocket connection whose socket the caller owns outright:
//! frames in and out, and the ways to end it without a closing handshake.

use super::frame::{Frame, OP_CLOSE, TooLarge};
use super::handshake::io_kind;
use squall_proto::tls::Stream;
use std::io;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{Instant, timeout, timeout_at};

/// The largest frame the client reads (the relay's own limit is 64 KiB).
const MAX_FRAME: usize = 16 * 1024 * 1024;

/// What ended a read.
#[derive(Debug)]
pub enum ReadEnd {
    /// The server closed the TCP stream (FIN) without a Close frame.
    Eof,
    /// The server reset the stream (RST) or another I/O error.
    Io(io::Error),
    /// The server sent a frame this client cannot take.
    Malformed(TooLarge),
}

impl ReadEnd {
    /// A short label: `eof`, `reset`, `io`, `malformed`.
    pub fn kind(&self) -> &'static str {
        match self {
            ReadEnd::Eof => "eof",
            ReadEnd::Io(e) => io_kind(e),
            ReadEnd::Malformed(_) => "malformed",
        }
    }
}

/// An open WebSocket whose socket the caller may abuse at will.
#[derive(Debug)]
pub struct WsConn {
    stream: Stream,
    buf: Vec<u8>,
}

impl WsConn {
    /// A connection on `stream` (TCP or TLS) whose upgrade is done; `buf`
    /// holds bytes that arrived after the upgrade response.
    pub(crate) fn new(stream: Stream, buf: Vec<u8>) -> Self {
        Self { stream, buf }
    }

    /// The stream, to write to it directly (a bounded write that may stop
    /// halfway).
    pub fn stream_mut(&mut self) -> &mut Stream {
        &mut self.stream
    }

    /// Writes raw bytes.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Writes one frame.
    pub async fn send(&mut self, frame: &Frame) -> io::Result<()> {
        self.send_raw(&frame.encode()).await
    }

    /// Writes a masked text frame.
    pub async fn send_text(&mut self, text: &str) -> io::Result<()> {
        self.send(&Frame::client(super::frame::OP_TEXT, text.as_bytes()))
            .await
    }

    /// Reads the next frame.
    pub async fn read_frame(&mut self) -> Result<Frame, ReadEnd> {
        loop {
            match Frame::decode(&self.buf, MAX_FRAME) {
                Ok(Some((frame, used))) => {
                    self.buf.drain(..used);
                    return Ok(frame);
                }
                Ok(None) => {}
                Err(why) => return Err(ReadEnd::Malformed(why)),
            }
            let mut chunk = [0u8; 8192];
            match self.stream.read(&mut chunk).await {
                Ok(0) => return Err(ReadEnd::Eof),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(ReadEnd::Io(e)),
            }
        }
    }

    /// Reads and hands every frame to `each` until `deadline`; returns early
    /// with the end if the stream ends first.
    pub async fn read_until(
        &mut self,
        deadline: Instant,
        mut each: impl FnMut(&Frame),
    ) -> Result<(), ReadEnd> {
        loop {
            match timeout_at(deadline, self.read_frame()).await {
                Err(_) => return Ok(()),
                Ok(Ok(frame)) => each(&frame),
                Ok(Err(end)) => return Err(end),
            }
        }
    }

    /// Reads until a Close frame or the end of the stream, at most `wait`:
    /// `Ok(Some(code))` for a Close (code 1005 when it carries none),
    /// `Ok(None)` when nothing ended within `wait`. Frames before the close
    /// go to `each`.
    pub async fn read_close(
        &mut self,
        wait: Duration,
        mut each: impl FnMut(&Frame),
    ) -> Result<Option<u16>, ReadEnd> {
        let deadline = Instant::now() + wait;
        loop {
            match timeout_at(deadline, self.read_frame()).await {
                Err(_) => return Ok(None),
                Ok(Ok(frame)) if frame.opcode == OP_CLOSE => {
                    return Ok(Some(frame.close_code().unwrap_or(1005)));
                }
                Ok(Ok(frame)) => each(&frame),
                Ok(Err(end)) => return Err(end),
            }
        }
    }

    /// Without waiting: whether the server has closed this connection, by
    /// what is already in the receive buffer (at most 1 MiB of it is read):
    /// `Some("close 1008")`, `Some("eof")`, `Some("reset")`, or `None`.
    pub fn closed_by_server(&mut self) -> Option<String> {
        let mut chunk = [0u8; 8192];
        let mut budget = 1 << 20;
        let end = loop {
            match self.stream.try_read(&mut chunk) {
                Ok(0) => break Some("eof".to_string()),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    budget -= n.min(budget);
                    if budget == 0 {
                        break None;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break None,
                Err(e) => break Some(io_kind(&e).to_string()),
            }
        };
        let mut at = 0;
        while let Ok(Some((frame, used))) = Frame::decode(&self.buf[at..], MAX_FRAME) {
            at += used;
            if frame.opcode == OP_CLOSE {
                return Some(format!("close {}", frame.close_code().unwrap_or(1005)));
            }
        }
        self.buf.drain(..at);
        end
    }

    /// Ends the connection with a TCP RST and no closing handshake (over
    /// TLS, no close_notify either).
    pub fn reset(self) -> io::Result<()> {
        self.stream.tcp().set_zero_linger()
    }

    /// Ends the connection with a plain FIN and no Close frame (over TLS, a
    /// close_notify first): shuts the write side, then reads (discarding)
    /// until the server closes or `wait` passes, so that no unread data
    /// turns the close into an RST.
    pub async fn drop_with_fin(mut self, wait: Duration) {
        if self.stream.shutdown().await.is_err() {
            return;
        }
        let _ = timeout(wait, async {
            let mut sink = [0u8; 8192];
            while matches!(self.stream.read(&mut sink).await, Ok(n) if n > 0) {}
        })
        .await;
    }
}
