//! The watchdog's probes: an HTTP GET on the health URL, a WebSocket
//! Ping/Pong on the watchdog's own connection, and a fresh WebSocket upgrade
//! (the accept probe) every round (the `/metrics` scrape is a plain
//! [`crate::http::get`]).

use crate::http::{self, HttpError};
use crate::target::{TokenPlacement, TokenSource};
use crate::ws::frame::{Frame, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT};
use crate::ws::{ConnectError, ConnectOptions, WsConn, connect};
use squall_proto::{Endpoint, TlsClient};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, timeout};

/// Why a probe failed. The messages go into the hang file as they are.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The health GET got no complete answer.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The health GET was answered with a status that is not 2xx.
    #[error("HTTP {0}")]
    Status(u16),
    /// The WebSocket prober task has ended.
    #[error("prober gone")]
    ProberGone,
    /// The prober's connection was lost before the pong came.
    #[error("connection lost")]
    ConnectionLost,
    /// No pong within the limit.
    #[error("no pong within {}ms", .0.as_millis())]
    NoPong(Duration),
    /// The WebSocket upgrade failed (the accept probe, or the ping's
    /// connection when it had to connect).
    #[error("upgrade: {0}")]
    Upgrade(ConnectError),
}

impl ProbeError {
    /// Whether the target refused the connection (nothing listens): what
    /// makes a hang `unreachable` rather than `unresponsive`.
    pub fn is_refused(&self) -> bool {
        let refused = |e: &std::io::Error| e.kind() == std::io::ErrorKind::ConnectionRefused;
        match self {
            ProbeError::Http(HttpError::Connect(e)) => refused(e),
            ProbeError::Upgrade(ConnectError::Io(e)) => refused(e),
            _ => false,
        }
    }
}

/// How long a closed accept probe's socket waits for the server's side of
/// the close, off the probe's clock.
const ACCEPT_CLOSE_WAIT: Duration = Duration::from_secs(1);

/// An accept probe: a fresh WebSocket upgrade (TCP connect, TLS for `wss://`,
/// and HTTP upgrade, with the token) within `limit`; `Ok` with how long it
/// took. The socket
/// is then closed politely (a Close 1000 and a FIN) by a task of its own,
/// bounded by a second, so the round does not wait for it.
pub async fn accept(
    endpoint: &Endpoint,
    token: Option<String>,
    placement: TokenPlacement,
    tls: &TlsClient,
    limit: Duration,
) -> Result<Duration, ProbeError> {
    let start = Instant::now();
    let options = ConnectOptions {
        timeout: limit,
        recv_buffer: None,
        token,
        placement,
        tls: tls.clone(),
        subprotocol: None,
    };
    let mut ws = connect(endpoint, &options)
        .await
        .map_err(ProbeError::Upgrade)?;
    let took = start.elapsed();
    tokio::spawn(async move {
        let close = Frame::client(OP_CLOSE, 1000u16.to_be_bytes().to_vec());
        if timeout(ACCEPT_CLOSE_WAIT, ws.send(&close)).await.is_ok() {
            ws.drop_with_fin(ACCEPT_CLOSE_WAIT).await;
        }
    });
    Ok(took)
}

/// A health probe: GET (over TLS for `https://`), expecting a 2xx status,
/// within `limit`.
pub async fn health(
    endpoint: &Endpoint,
    tls: &TlsClient,
    limit: Duration,
) -> Result<Duration, ProbeError> {
    let start = Instant::now();
    match http::get(endpoint, tls, limit).await? {
        (code, _) if (200..300).contains(&code) => Ok(start.elapsed()),
        (code, _) => Err(ProbeError::Status(code)),
    }
}

/// How the WebSocket probe pings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PingStyle {
    /// The squall protocol's `{"type":"Ping","data":{"timestamp":N}}`,
    /// answered by a Pong text frame: it goes through the relay's own
    /// message handling, not only the WebSocket library.
    #[default]
    Squall,
    /// A WebSocket ping control frame (any target).
    Frame,
}

/// A request to the WebSocket prober: ping with this number, answer when
/// the pong arrives (or with why the connection could not be opened).
type PingRequest = (u64, oneshot::Sender<Result<(), ProbeError>>);

/// What the watchdog's WebSocket says, for a target whose protocol needs
/// it: GraphQL over WebSocket closes a socket without its subprotocol or
/// without `connection_init`, Socket.IO one that leaves its text pings
/// unanswered.
#[derive(Debug, Clone, Default)]
pub struct Greeting {
    /// The `Sec-WebSocket-Protocol` asked for at the upgrade.
    pub subprotocol: Option<String>,
    /// Text frames sent right after the upgrade, in order.
    pub frames: Vec<String>,
    /// Answers the server's text keepalives.
    pub keepalive: Option<Keepalive>,
}

/// The protocol's answer to a text frame from the server, when the frame is
/// a keepalive (the scenario's `protocol.keepalive` rules).
#[derive(Clone)]
pub struct Keepalive(Arc<ReplyFn>);

/// What a [`Keepalive`] calls: the answer to a frame, if any.
type ReplyFn = dyn Fn(&str) -> Option<String> + Send + Sync;

impl Keepalive {
    /// Answers with `reply(frame)`, when it gives one.
    pub fn new(reply: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        Self(Arc::new(reply))
    }

    /// The answer to `frame`, if it is a keepalive.
    pub fn reply(&self, frame: &str) -> Option<String> {
        (self.0)(frame)
    }
}

impl fmt::Debug for Keepalive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Keepalive(..)")
    }
}

/// A handle on the task that owns the watchdog's WebSocket.
#[derive(Debug, Clone)]
pub struct WsProber {
    requests: mpsc::UnboundedSender<PingRequest>,
}

impl WsProber {
    /// Starts the prober task (on the current runtime). It connects lazily
    /// and reconnects after any failure, each connect bounded by `limit`.
    pub fn spawn(
        endpoint: Endpoint,
        tokens: Option<TokenSource>,
        placement: TokenPlacement,
        style: PingStyle,
        tls: TlsClient,
        greeting: Greeting,
        limit: Duration,
    ) -> Self {
        let (requests, rx) = mpsc::unbounded_channel();
        let options = ConnectOptions {
            timeout: limit,
            recv_buffer: None,
            token: None,
            placement,
            tls,
            subprotocol: greeting.subprotocol.clone(),
        };
        tokio::spawn(prober(endpoint, tokens, options, greeting, style, rx));
        Self { requests }
    }

    /// Pings with number `n`; `Ok` with the round trip when the pong arrives
    /// within `limit`.
    pub async fn ping(&self, n: u64, limit: Duration) -> Result<Duration, ProbeError> {
        let start = Instant::now();
        let (tx, rx) = oneshot::channel();
        self.requests
            .send((n, tx))
            .map_err(|_| ProbeError::ProberGone)?;
        match timeout(limit, rx).await {
            Ok(Ok(Ok(()))) => Ok(start.elapsed()),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(_)) => Err(ProbeError::ConnectionLost),
            Err(_) => Err(ProbeError::NoPong(limit)),
        }
    }
}

/// The prober task: `options` are the connect options of every connect but
/// for the token, taken from `tokens` each time; `greeting` is what it says
/// after each upgrade and how it answers keepalives.
async fn prober(
    endpoint: Endpoint,
    tokens: Option<TokenSource>,
    options: ConnectOptions,
    greeting: Greeting,
    style: PingStyle,
    mut requests: mpsc::UnboundedReceiver<PingRequest>,
) {
    let mut conn: Option<WsConn> = None;
    let mut waiting: HashMap<u64, oneshot::Sender<Result<(), ProbeError>>> = HashMap::new();
    loop {
        let Some(ws) = conn.as_mut() else {
            // No connection: wait for a request, then connect for it.
            let Some((n, tx)) = requests.recv().await else {
                return;
            };
            if tx.is_closed() {
                continue; // that probe has timed out already
            }
            let options = ConnectOptions {
                token: tokens.as_ref().and_then(|t| t(u64::MAX)),
                ..options.clone()
            };
            match connect(&endpoint, &options).await {
                Ok(mut ws) => {
                    let mut said = true;
                    for frame in &greeting.frames {
                        said = said && ws.send_text(frame).await.is_ok();
                    }
                    conn = Some(ws);
                    waiting.insert(n, tx);
                    if !said || !send_ping(conn.as_mut().expect("just set"), style, n).await {
                        conn = None;
                        waiting.clear();
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(ProbeError::Upgrade(e)));
                }
            }
            continue;
        };
        tokio::select! {
            request = requests.recv() => {
                let Some((n, tx)) = request else { return };
                waiting.insert(n, tx);
                if !send_ping(ws, style, n).await {
                    conn = None;
                    waiting.clear();
                }
            }
            frame = ws.read_frame() => match frame {
                Ok(frame) => {
                    if frame.opcode == OP_CLOSE {
                        conn = None;
                        waiting.clear();
                    } else if frame.opcode == OP_PING {
                        // Answer the server's own keepalive, or it drops us.
                        if ws.send(&Frame::client(OP_PONG, frame.payload)).await.is_err() {
                            conn = None;
                            waiting.clear();
                        }
                    } else if let Some(tx) = pong_number(&frame, style).and_then(|n| waiting.remove(&n)) {
                        let _ = tx.send(Ok(()));
                    } else if let Some(reply) = keepalive_reply(&frame, greeting.keepalive.as_ref()) {
                        // The protocol's own keepalive (Socket.IO's "2"):
                        // unanswered, the server drops the probe.
                        if ws.send(&Frame::client(OP_TEXT, reply.into_bytes())).await.is_err() {
                            conn = None;
                            waiting.clear();
                        }
                    }
                    // Forget pings long past any probe's timeout.
                    waiting.retain(|_, tx| !tx.is_closed());
                }
                Err(_) => {
                    conn = None;
                    waiting.clear();
                }
            },
        }
    }
}

/// The answer to a text `frame` that is one of the protocol's keepalives.
fn keepalive_reply(frame: &Frame, keepalive: Option<&Keepalive>) -> Option<String> {
    if frame.opcode != OP_TEXT {
        return None;
    }
    keepalive?.reply(std::str::from_utf8(&frame.payload).ok()?)
}

async fn send_ping(ws: &mut WsConn, style: PingStyle, n: u64) -> bool {
    let frame = match style {
        PingStyle::Squall => Frame::client(
            OP_TEXT,
            format!(r#"{{"type":"Ping","data":{{"timestamp":{n}}}}}"#),
        ),
        PingStyle::Frame => Frame::client(OP_PING, n.to_be_bytes().to_vec()),
    };
    ws.send(&frame).await.is_ok()
}

/// The number a pong answers.
fn pong_number(frame: &Frame, style: PingStyle) -> Option<u64> {
    match style {
        PingStyle::Frame if frame.opcode == OP_PONG => Some(u64::from_be_bytes(
            frame.payload.as_slice().try_into().ok()?,
        )),
        PingStyle::Squall if frame.opcode == OP_TEXT => {
            #[derive(serde::Deserialize)]
            struct Pong {
                #[serde(rename = "type")]
                kind: String,
                data: squall_proto::wire::PingData,
            }
            let pong: Pong = serde_json::from_slice(&frame.payload).ok()?;
            (pong.kind == "Pong").then_some(pong.data.timestamp)
        }
        _ => None,
    }
}
