//! One SSE subscription: the `GET` of a `text/event-stream` URL over any
//! byte stream (TCP now, TLS around it later), its response head, and the
//! events of its body, pulled one at a time.
//!
//! One buffer of [`READ_BUFFER`] bytes per stream (the head may briefly need
//! up to [`MAX_HEAD`](http::MAX_HEAD)): what a read brings is de-chunked in place, at the
//! front of the same buffer, and parsed from there; a line cut by the end
//! of a read waits in the parser. [`SseStream::next_event`] is cancel-safe:
//! its only wait is a read, and what a read brought is taken in the same poll.

use super::event::{Event, EventParser};
use super::http::{self, Body};
use crate::connect::{SocketError, io_kind};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

/// Size of a stream's read buffer.
pub const READ_BUFFER: usize = 4 * 1024;

/// What a subscription asks for.
#[derive(Debug, Clone, Default)]
pub struct SseRequest {
    /// The `Host` header's value.
    pub host: String,
    /// Path and query (the query token included: [`http::place_token`]).
    pub target: String,
    /// Extra header lines, each ending in CRLF (the bearer token).
    pub headers: String,
    /// `Last-Event-ID` to send, when resuming a stream.
    pub last_event_id: Option<String>,
}

impl SseRequest {
    /// The request's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut headers = String::from("Accept: text/event-stream\r\nCache-Control: no-cache\r\n");
        headers.push_str(&self.headers);
        if let Some(id) = &self.last_event_id {
            headers.push_str("Last-Event-ID: ");
            headers.push_str(id);
            headers.push_str("\r\n");
        }
        let mut out = Vec::with_capacity(128 + headers.len() + self.target.len());
        http::write_request(&mut out, "GET", &self.host, &self.target, &headers, None);
        out
    }
}

/// An open event stream: the response was `200` with a
/// `text/event-stream` body.
#[derive(Debug)]
pub struct SseStream<S> {
    io: S,
    /// `[parsed..body)`: body bytes the parser has yet to see;
    /// `[raw..filled)`: bytes read and not yet de-chunked.
    buf: Vec<u8>,
    parsed: usize,
    body_end: usize,
    raw: usize,
    filled: usize,
    body: Body,
    parser: EventParser,
}

impl<S: AsyncRead + AsyncWrite + Unpin> SseStream<S> {
    /// Sends `request` over `io` and reads the response head. Fails with
    /// `http_<code>` for any status but 200, `protocol` for a 200 that is
    /// not an event stream, and the I/O kinds (`eof`, `reset`, ...). Events
    /// longer than `max_event` bytes end the stream later (`too_big`).
    /// Bounded by the caller's timeout, as the WebSocket upgrade is.
    pub async fn open(
        mut io: S,
        request: &SseRequest,
        max_event: usize,
    ) -> Result<Self, SocketError> {
        io.write_all(&request.encode())
            .await
            .map_err(|e| io_kind(&e))?;
        io.flush().await.map_err(|e| io_kind(&e))?;
        let (head, mut buf, len, mut filled) =
            http::read_head(&mut io, READ_BUFFER, |_, _| {}).await?;
        if head.status != 200 {
            return Err(SocketError::Http(head.status));
        }
        if !head.event_stream {
            return Err(SocketError::Protocol);
        }
        // Keep what came after the head, in a buffer of the usual size.
        buf.copy_within(len..filled, 0);
        filled -= len;
        buf.truncate(filled.max(READ_BUFFER));
        buf.resize(filled.max(READ_BUFFER), 0);
        buf.shrink_to_fit();
        Ok(Self {
            io,
            buf,
            parsed: 0,
            body_end: 0,
            raw: 0,
            filled,
            body: Body::new(head.framing),
            parser: EventParser::new(max_event),
        })
    }

    /// The next event; `Ok(None)` when the server ended the body properly
    /// (its last chunk, its length, or the end of a body without either).
    /// A connection that ends mid-body is `Err(Eof)`; a body that does not
    /// parse, `protocol` or `too_big`.
    pub async fn next_event(&mut self) -> Result<Option<Event<'_>>, SocketError> {
        let held = std::future::poll_fn(|cx| self.poll_next(cx)).await?;
        Ok(if held { self.parser.event() } else { None })
    }

    /// Polls for the next event: `Ready(Ok(true))` when one is held (read it
    /// with [`event`](Self::event)), `Ready(Ok(false))` when the body ended
    /// properly, errors as [`next_event`](Self::next_event). What a read
    /// brings is taken in the same poll, so a caller may drop the poll at
    /// any point without losing bytes.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, SocketError>> {
        loop {
            if self.parsed < self.body_end {
                let fed = self.parser.feed(&self.buf[self.parsed..self.body_end])?;
                self.parsed += fed.consumed;
                if fed.dispatched {
                    return Poll::Ready(Ok(true));
                }
                continue;
            }
            if self.raw < self.filled {
                self.dechunk()?;
                continue;
            }
            if self.body.is_done() {
                return Poll::Ready(Ok(false));
            }
            // Everything read has been parsed: the buffer is free again.
            self.parsed = 0;
            self.body_end = 0;
            self.raw = 0;
            self.filled = 0;
            let mut read = ReadBuf::new(&mut self.buf);
            ready!(Pin::new(&mut self.io).poll_read(cx, &mut read)).map_err(|e| io_kind(&e))?;
            let n = read.filled().len();
            if n == 0 {
                self.body.at_eof()?;
                return Poll::Ready(Ok(false));
            }
            self.filled = n;
        }
    }

    /// The event the last poll found, until the next poll.
    pub fn event(&self) -> Option<Event<'_>> {
        self.parser.event()
    }

    /// Moves the body data of `[raw..filled)` to `[body_end..)`, past the
    /// framing; stops at the end of the body (what follows it is dropped).
    fn dechunk(&mut self) -> Result<(), SocketError> {
        while self.raw < self.filled && !self.body.is_done() {
            let step = self.body.step(&self.buf[self.raw..self.filled])?;
            let data = self.raw + step.data.start..self.raw + step.data.end;
            let n = data.len();
            self.buf.copy_within(data, self.body_end);
            self.body_end += n;
            self.raw += step.consumed;
        }
        if self.body.is_done() {
            self.raw = self.filled;
        }
        Ok(())
    }

    /// The last event id the stream set (empty when none), for a
    /// reconnect's `Last-Event-ID`.
    pub fn last_event_id(&self) -> String {
        String::from_utf8_lossy(self.parser.last_id()).into_owned()
    }

    /// The reconnection time the stream asked for (`retry:`), in ms.
    pub fn retry_ms(&self) -> Option<u64> {
        self.parser.retry_ms()
    }

    /// Comment lines (keepalives) received so far.
    pub fn comments(&self) -> u64 {
        self.parser.comments()
    }

    /// Ends the stream: shuts the connection down (the server sees the end
    /// of the request side and drops the subscription).
    pub async fn close(&mut self) {
        let _ = self.io.shutdown().await;
    }
}
