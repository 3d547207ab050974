//! The HTTP publisher: `POST`s over one keep-alive HTTP/1.1 connection,
//! each response read in turn (`Content-Length`, chunked, or up to the end
//! of the connection), and a new connection when the server closed the old
//! one.
//!
//! Sending and reading are apart, so that an engine can keep a request in
//! flight while it waits for other things: [`HttpPublisher::send`] writes a
//! request (dialing first when there is no connection), and
//! [`HttpPublisher::response`], cancel-safe, reads the next response. While
//! nothing is in flight, `response` watches the idle connection: when the
//! server closes it, the publisher lets it go and dials again on the next
//! send. Before writing on an idle connection it looks once more, so that a
//! request is not written into a connection the server has already closed
//! (the keep-alive race); and a write that fails on a connection that had
//! served a request before is tried once more on a new one.

use super::http::{self, Body, Head, MAX_HEAD};
use crate::connect::{SocketError, io_kind};
use futures_util::FutureExt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Size of the response buffer (a head larger than this grows it, up to
/// [`MAX_HEAD`]).
const READ_BUFFER: usize = 2 * 1024;

/// Opens the publisher's connections.
pub trait Dial {
    /// The byte stream (TCP, TLS around TCP, ...).
    type Io: AsyncRead + AsyncWrite + Unpin + Send;
    /// Opens a new connection; the caller bounds it in time.
    fn dial(&self) -> impl Future<Output = Result<Self::Io, SocketError>> + Send;
}

/// Plain TCP to one address, from an optional local source address.
#[derive(Debug, Clone, Copy)]
pub struct TcpDial {
    /// Where to connect.
    pub addr: SocketAddr,
    /// The local address to connect from.
    pub source: Option<IpAddr>,
}

impl Dial for TcpDial {
    type Io = TcpStream;

    fn dial(&self) -> impl Future<Output = Result<TcpStream, SocketError>> + Send {
        let (addr, source) = (self.addr, self.source);
        async move {
            crate::connect::dial(addr, source)
                .await
                .map_err(|e| io_kind(&e))
        }
    }
}

/// One response, as far as a publisher cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    /// The status code (a status of 400 or more is the server refusing the
    /// message: `http_<code>`).
    pub status: u16,
}

/// Where the reading of the current response is.
#[derive(Debug)]
enum Reading {
    /// Its head, not complete yet.
    Head,
    /// Its body.
    Body { head: Head, body: Body },
}

/// A keep-alive HTTP/1.1 publisher to one server.
#[derive(Debug)]
pub struct HttpPublisher<D: Dial> {
    dial: D,
    host: String,
    /// Extra header lines of every request (the token, the content type).
    headers: String,
    io: Option<D::Io>,
    /// Whether the current connection has served a response.
    reused: bool,
    /// Requests written whose response has not been read.
    in_flight: usize,
    reading: Reading,
    /// `[start..filled)` holds bytes read and not yet taken.
    buf: Vec<u8>,
    start: usize,
    filled: usize,
    /// The request being written (kept to save an allocation per send).
    out: Vec<u8>,
    /// Connections opened.
    connects: u64,
}

impl<D: Dial> HttpPublisher<D> {
    /// A publisher to `host` (the `Host` header) through `dial`, whose
    /// requests carry `headers` (whole lines, each ending in CRLF). It
    /// connects on the first send.
    pub fn new(dial: D, host: String, headers: String) -> Self {
        Self {
            dial,
            host,
            headers,
            io: None,
            reused: false,
            in_flight: 0,
            reading: Reading::Head,
            buf: vec![0; READ_BUFFER],
            start: 0,
            filled: 0,
            out: Vec::new(),
            connects: 0,
        }
    }

    /// Requests sent whose response has not come yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Connections opened so far (more than one: the server closed one).
    pub fn connects(&self) -> u64 {
        self.connects
    }

    /// Writes a `POST` of `body` to `target` (path and query), connecting
    /// first if needed. On an error the connection is gone, with whatever
    /// was in flight on it (the caller counts it); the next send dials anew.
    pub async fn send(&mut self, target: &str, body: &[u8]) -> Result<(), SocketError> {
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        http::write_request(
            &mut out,
            "POST",
            &self.host,
            target,
            &self.headers,
            Some(body),
        );
        let result = self.write(&out).await;
        self.out = out;
        result
    }

    async fn write(&mut self, request: &[u8]) -> Result<(), SocketError> {
        if self.in_flight == 0 && self.io.is_some() && self.closed_while_idle() {
            self.disconnect();
        }
        let mut retried = false;
        loop {
            let io = match &mut self.io {
                Some(io) => io,
                None => {
                    let io = self.dial.dial().await?;
                    self.connects += 1;
                    self.io.insert(io)
                }
            };
            let written = async {
                io.write_all(request).await?;
                io.flush().await
            }
            .await;
            match written {
                Ok(()) => {
                    self.in_flight += 1;
                    return Ok(());
                }
                // The server closed a kept-alive connection as we wrote on
                // it: nothing was in flight, so the request can go again.
                Err(_) if !retried && self.reused && self.in_flight == 0 => {
                    retried = true;
                    self.disconnect();
                }
                Err(e) => {
                    self.disconnect();
                    return Err(io_kind(&e));
                }
            }
        }
    }

    /// Whether the idle connection has been closed by the server (or sent
    /// bytes nobody asked for, which makes it unusable too), without waiting.
    fn closed_while_idle(&mut self) -> bool {
        let Some(io) = &mut self.io else {
            return true;
        };
        let mut probe = [0u8; 1];
        io.read(&mut probe).now_or_never().is_some()
    }

    /// Drops the connection and everything in flight on it.
    fn disconnect(&mut self) {
        self.io = None;
        self.reused = false;
        self.in_flight = 0;
        self.reading = Reading::Head;
        self.start = 0;
        self.filled = 0;
    }

    /// The next response. With nothing in flight it watches the idle
    /// connection and never completes (a server's close just lets the
    /// connection go). On an error (the connection ended mid-response, or a
    /// response does not parse) the connection is gone, with every request
    /// in flight on it.
    pub async fn response(&mut self) -> Result<Response, SocketError> {
        loop {
            if self.in_flight > 0
                && let Some(response) = self.take_response()?
            {
                return Ok(response);
            }
            let Some(io) = &mut self.io else {
                return std::future::pending().await;
            };
            if self.start == self.filled {
                self.start = 0;
                self.filled = 0;
            } else if self.filled == self.buf.len() {
                if self.start > 0 {
                    self.buf.copy_within(self.start..self.filled, 0);
                    self.filled -= self.start;
                    self.start = 0;
                } else if self.buf.len() < MAX_HEAD {
                    self.buf.resize((self.buf.len() * 2).min(MAX_HEAD), 0);
                } else {
                    self.disconnect();
                    return Err(SocketError::TooBig);
                }
            }
            let read = io.read(&mut self.buf[self.filled..]).await;
            match read {
                Ok(0) if self.in_flight == 0 => self.disconnect(),
                Ok(0) => {
                    let done = match &self.reading {
                        Reading::Body { head, body } => body.at_eof().map(|()| head.status),
                        Reading::Head => Err(SocketError::Eof),
                    };
                    self.disconnect();
                    return done.map(|status| Response { status });
                }
                Ok(_) if self.in_flight == 0 => {
                    self.disconnect();
                    return Err(SocketError::Protocol);
                }
                Ok(n) => self.filled += n,
                Err(e) => {
                    self.disconnect();
                    return Err(io_kind(&e));
                }
            }
        }
    }

    /// Takes what the buffer holds of the current response: the response
    /// when it is complete.
    fn take_response(&mut self) -> Result<Option<Response>, SocketError> {
        loop {
            match &mut self.reading {
                Reading::Head => {
                    let found = http::parse_head(&self.buf[self.start..self.filled]);
                    let (head, len) = match found {
                        Ok(Some(found)) => found,
                        Ok(None) => return Ok(None),
                        Err(e) => {
                            self.disconnect();
                            return Err(e);
                        }
                    };
                    self.start += len;
                    if (100..200).contains(&head.status) {
                        continue; // an interim response: the real one follows
                    }
                    self.reading = Reading::Body {
                        head,
                        body: Body::new(head.framing),
                    };
                }
                Reading::Body { head, body } => {
                    while !body.is_done() && self.start < self.filled {
                        match body.step(&self.buf[self.start..self.filled]) {
                            Ok(step) => self.start += step.consumed,
                            Err(e) => {
                                self.disconnect();
                                return Err(e);
                            }
                        }
                    }
                    if !body.is_done() {
                        return Ok(None);
                    }
                    let head = *head;
                    self.reading = Reading::Head;
                    self.in_flight -= 1;
                    self.reused = true;
                    if head.close {
                        self.disconnect();
                    }
                    return Ok(Some(Response {
                        status: head.status,
                    }));
                }
            }
        }
    }
}
