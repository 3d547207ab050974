//! A connection's socket, whatever carries it: a WebSocket, or Server-Sent
//! Events streams with an HTTP publisher ([`crate::plan::Transport`]). The
//! connection task has one loop for both; this is the little it needs of a
//! socket: queue a frame and flush, read what comes next, close.
//!
//! What comes in is an [`Incoming`]: a frame's (or an event's) bytes, an
//! error to count while the socket goes on (a refused `POST`), or the end
//! of the socket by the target, with the `errors` key and the `dropped`
//! cause. Over SSE, the end of any one stream ends the connection: a
//! stream the server ends (its last chunk, `stream_end`), cuts (`eof`) or
//! resets (`reset`) is a drop, as a WebSocket the target closes.

use crate::connect::{self, SocketError};
use crate::plan::Placement;
use crate::sse::http::place_token;
use crate::sse::{Dial, HttpPublisher, SseRequest, SseStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use squall_proto::Endpoint;
use squall_proto::tls::{Stream, TlsClient};
use std::future::Future;
use std::net::IpAddr;
use std::task::Poll;
use std::time::Duration;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// Longest event an SSE stream accepts (as a WebSocket message).
const MAX_EVENT: usize = 1 << 20;

/// What a read brought.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Incoming<'a> {
    /// A frame's bytes (a WebSocket text or binary frame, an SSE event's data).
    Data(&'a [u8]),
    /// Nothing for the engine (a WebSocket ping, an accepted `POST`).
    Nothing,
    /// A failure to count under this key; the socket goes on.
    Error(String),
    /// The target ended the socket: `error` is the key counted in
    /// `errors`, `cause` the one in `dropped`.
    Ended { error: String, cause: String },
}

/// A write that failed: the socket is gone.
#[derive(Debug)]
pub(crate) struct Broken {
    /// The key counted in `errors`.
    pub error: String,
    /// The key counted in `dropped`.
    pub cause: String,
}

impl Broken {
    fn ws(e: &WsError) -> Self {
        Broken {
            error: connect::ws_kind(e).to_string(),
            cause: connect::drop_cause(e),
        }
    }

    fn publish(e: SocketError) -> Self {
        let key = format!("publish_{e}");
        Broken {
            error: key.clone(),
            cause: key,
        }
    }
}

/// An open socket.
pub(crate) enum Socket {
    /// A WebSocket, and the last message read (what [`Incoming::Data`]
    /// borrows).
    Ws {
        ws: Box<connect::Socket>,
        last: Option<Message>,
    },
    /// SSE streams and their publisher.
    Sse(Box<SseSocket>),
}

impl Socket {
    /// A WebSocket.
    pub fn ws(ws: connect::Socket) -> Self {
        Socket::Ws {
            ws: Box::new(ws),
            last: None,
        }
    }

    /// How many publishes may be queued now: any number on a WebSocket; over
    /// SSE one, and none while a `POST` waits for its response.
    pub fn publish_room(&self) -> usize {
        match self {
            Socket::Ws { .. } => usize::MAX,
            Socket::Sse(s) => s
                .publisher
                .as_ref()
                .map_or(0, |(p, _)| usize::from(p.in_flight() == 0)),
        }
    }

    /// Queues one frame; over SSE, `POST`s it (a publish: SSE has no other
    /// frames to send).
    pub async fn feed(&mut self, frame: String) -> Result<(), Broken> {
        match self {
            Socket::Ws { ws, .. } => ws
                .feed(Message::Text(frame.into()))
                .await
                .map_err(|e| Broken::ws(&e)),
            Socket::Sse(s) => match &mut s.publisher {
                Some((publisher, target)) => publisher
                    .send(target, frame.as_bytes())
                    .await
                    .map_err(Broken::publish),
                None => Ok(()),
            },
        }
    }

    /// Writes what was queued.
    pub async fn flush(&mut self) -> Result<(), Broken> {
        match self {
            Socket::Ws { ws, .. } => ws.flush().await.map_err(|e| Broken::ws(&e)),
            Socket::Sse(_) => Ok(()),
        }
    }

    /// The next thing that comes in. Cancel-safe.
    pub async fn next(&mut self) -> Incoming<'_> {
        match self {
            Socket::Ws { ws, last } => {
                *last = None;
                match ws.next().await {
                    Some(Ok(message)) => ws_incoming(last.insert(message)),
                    Some(Err(e)) => {
                        let b = Broken::ws(&e);
                        Incoming::Ended {
                            error: b.error,
                            cause: b.cause,
                        }
                    }
                    None => Incoming::Ended {
                        error: "eof".into(),
                        cause: "eof".into(),
                    },
                }
            }
            Socket::Sse(s) => s.next().await,
        }
    }

    /// What has already come in, without waiting.
    pub fn next_now(&mut self) -> Option<Incoming<'_>> {
        self.next().now_or_never()
    }

    /// Closes the socket as squall ends it (the run is over, or a planned
    /// close), within `timeout`.
    pub async fn close(&mut self, timeout: Duration) {
        match self {
            Socket::Ws { ws, .. } => {
                let close = CloseFrame {
                    code: 1000.into(),
                    reason: "squall run over".into(),
                };
                let _ = tokio::time::timeout(timeout, ws.close(Some(close))).await;
            }
            Socket::Sse(s) => {
                let _ = tokio::time::timeout(timeout, async {
                    for stream in &mut s.streams {
                        stream.close().await;
                    }
                })
                .await;
            }
        }
    }
}

/// A WebSocket message as the engine sees it.
fn ws_incoming(message: &Message) -> Incoming<'_> {
    match message {
        Message::Text(text) => Incoming::Data(text.as_bytes()),
        Message::Binary(bin) => Incoming::Data(bin),
        Message::Close(close) => {
            let code = close.as_ref().map_or(1005, |f| u16::from(f.code));
            Incoming::Ended {
                error: format!("closed_by_server_{code}"),
                cause: format!("close_{code}"),
            }
        }
        _ => Incoming::Nothing,
    }
}

/// What one connection holds over SSE.
pub(crate) struct SseSocket {
    /// One per subscribed topic (or one for all: see [`Transport::Sse`](crate::plan::Transport::Sse)).
    streams: Vec<SseStream<Stream>>,
    /// The stream polled first next time, so that a busy one does not
    /// starve the others.
    turn: usize,
    /// The publisher and the path it posts to, for a publishing connection.
    publisher: Option<(HttpPublisher<TargetDial>, String)>,
}

/// The publisher's connections: to the target, with TLS for `https://`.
pub(crate) struct TargetDial {
    target: Endpoint,
    source: Option<IpAddr>,
    tls: Option<TlsClient>,
}

impl Dial for TargetDial {
    type Io = Stream;

    fn dial(&self) -> impl Future<Output = Result<Stream, SocketError>> + Send {
        let (target, source, tls) = (self.target.clone(), self.source, self.tls.clone());
        async move {
            connect::open(&target, source, tls.as_ref())
                .await
                .map(|(stream, _)| stream)
        }
    }
}

/// Where an SSE connection goes and what it asks for.
pub(crate) struct SseOpen<'a> {
    /// The connection's target (the stream URL, with its placeholders).
    pub target: &'a Endpoint,
    /// The local address to connect from.
    pub source: Option<IpAddr>,
    /// The TLS client of an `https://` target.
    pub tls: Option<&'a TlsClient>,
    /// The token and where it goes.
    pub token: Option<(&'a str, Placement)>,
    /// The path and query of each stream to open.
    pub streams: Vec<String>,
    /// For a publisher: the path it posts to, and the content type.
    pub publish: Option<(String, &'a str)>,
}

impl SseSocket {
    /// Opens every stream (a `200` with an event stream each); the
    /// publisher connects on its first `POST`. Bounded by the caller.
    /// Returns the socket and, over `https://`, the first stream's TLS
    /// handshake time.
    pub async fn open(how: SseOpen<'_>) -> Result<(Self, Option<Duration>), SocketError> {
        let host = how.target.host_header();
        let mut streams = Vec::with_capacity(how.streams.len());
        let mut tls_handshake = None;
        for path in &how.streams {
            let (target, headers) = place_token(path, how.token);
            let request = SseRequest {
                host: host.clone(),
                target,
                headers,
                last_event_id: None,
            };
            let (io, handshake) = connect::open(how.target, how.source, how.tls).await?;
            tls_handshake = tls_handshake.or(handshake);
            streams.push(SseStream::open(io, &request, MAX_EVENT).await?);
        }
        let publisher = how.publish.map(|(path, content_type)| {
            let (target, mut headers) = place_token(&path, how.token);
            headers.push_str("Content-Type: ");
            headers.push_str(content_type);
            headers.push_str("\r\n");
            let dial = TargetDial {
                target: how.target.clone(),
                source: how.source,
                tls: how.tls.cloned(),
            };
            (HttpPublisher::new(dial, host.clone(), headers), target)
        });
        let socket = SseSocket {
            streams,
            turn: 0,
            publisher,
        };
        Ok((socket, tls_handshake))
    }

    async fn next(&mut self) -> Incoming<'_> {
        let SseSocket {
            streams,
            turn,
            publisher,
        } = self;
        let polled = std::future::poll_fn(|cx| {
            let n = streams.len();
            for k in 0..n {
                let i = (*turn + k) % n;
                if let Poll::Ready(result) = streams[i].poll_next(cx) {
                    *turn = (i + 1) % n;
                    return Poll::Ready((i, result));
                }
            }
            Poll::Pending
        });
        let response = async {
            match publisher {
                Some((p, _)) => p.response().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            (i, result) = polled => match result {
                Ok(true) => match streams[i].event() {
                    Some(event) => Incoming::Data(event.data),
                    None => Incoming::Nothing,
                },
                Ok(false) => Incoming::Ended {
                    error: "stream_end".into(),
                    cause: "stream_end".into(),
                },
                Err(e) => Incoming::Ended {
                    error: e.to_string(),
                    cause: e.to_string(),
                },
            },
            response = response => match response {
                Ok(r) if r.status >= 400 => Incoming::Error(format!("publish_http_{}", r.status)),
                Ok(_) => Incoming::Nothing,
                Err(e) => Incoming::Error(format!("publish_{e}")),
            },
        }
    }
}
