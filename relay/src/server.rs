//! The accept loop, the HTTP routing in front of every socket, and the
//! shutdown sequence; [`start`] runs a relay on a listener the caller bound.
//!
//! Shutdown: the handle's signal stops accepting, every connection is asked to
//! close with 1001, and the relay waits up to the drain timeout for them to
//! finish before aborting what is left.
//!
//! The bugs that act at a time after start (`exit-after`, `kick-every`, the
//! start of `accept-stall`) run in one timer task of the accept loop, ended
//! with it; `accept-stall` and `slow-health` act in the HTTP routing here.

use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering, Ordering::Relaxed};
use std::time::{Duration, Instant};

use squall_proto::tls::{self, Stream};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::bugs::EXIT_AFTER_STATUS;
use crate::config::RelayConfig;
use crate::http::{self, HeadError, RequestHead};
use crate::metrics::{Gauges, Rejection};
use crate::outbox::CloseCause;
use crate::registry::Registry;
use crate::{connection, limits};

/// The user name of every client of an open relay (no auth, no `sub`).
pub const ANONYMOUS: &str = "anonymous";

/// `--bug accept-stall`: the longest an unanswered upgrade is held, far past
/// any client's patience, so that no held socket outlives a soak forever.
const STALLED_UPGRADE_HOLD: Duration = Duration::from_secs(600);

/// State shared by every task of one relay.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: RelayConfig,
    pub(crate) registry: Registry,
    /// The relay's start (the registry's): uptime, and every "S after
    /// start" of a bug, count from it.
    pub(crate) started: Instant,
    shutting_down: AtomicBool,
    /// The handle's stop signal, for tasks that wait outside the connection
    /// registry (an upgrade held by `--bug accept-stall`).
    stop: watch::Receiver<bool>,
    /// One permit per open connection when `max_connections` is set.
    capacity: Option<Arc<Semaphore>>,
    /// `--bug cap=N`: the delivery slots every writer takes one of.
    pub(crate) cap: Option<crate::bugs::CapSchedule>,
}

impl Shared {
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }
}

/// A running relay: its address, and the way to stop it.
#[derive(Debug)]
pub struct RelayHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl RelayHandle {
    /// The address the relay listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://ADDR/ws` (`wss://` when it serves TLS), the URL clients
    /// connect to (any path upgrades).
    pub fn ws_url(&self) -> String {
        let scheme = if self.shared.config.tls.is_some() {
            "wss"
        } else {
            "ws"
        };
        format!("{scheme}://{}/ws", self.addr)
    }

    /// The gauges `/metrics` would show now.
    pub fn gauges(&self) -> Gauges {
        self.shared.registry.gauges()
    }

    /// Stops accepting, closes every connection with 1001 and waits for them
    /// (at most the configured drain timeout).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Starts a relay on a listener the caller bound (e.g. on `127.0.0.1:0`).
/// Must be called inside a tokio runtime.
pub fn start(listener: TcpListener, config: RelayConfig) -> RelayHandle {
    let addr = listener
        .local_addr()
        .expect("a bound listener has an address");
    let capacity = config.max_connections.map(|n| Arc::new(Semaphore::new(n)));
    let (stop, stopped) = watch::channel(false);
    let registry = Registry::new(config.queue_size, config.bugs.clone());
    let shared = Arc::new(Shared {
        started: registry.started(),
        cap: config.bugs.cap.map(crate::bugs::CapSchedule::new),
        registry,
        config,
        shutting_down: AtomicBool::new(false),
        stop: stopped.clone(),
        capacity,
    });
    let task = tokio::spawn(accept_loop(listener, shared.clone(), stopped));
    RelayHandle {
        addr,
        shared,
        stop,
        task,
    }
}

/// Binds `127.0.0.1:0` and starts a relay there.
pub async fn start_loopback(config: RelayConfig) -> io::Result<RelayHandle> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    Ok(start(listener, config))
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut tasks = JoinSet::new();
    let mut warned_fd_limit = false;
    let timed_bugs = tokio::spawn(timed_bugs(shared.clone()));
    loop {
        let accepted = tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => accepted,
        };
        while tasks.try_join_next().is_some() {}
        match accepted {
            Ok((stream, _)) => {
                tasks.spawn(handle_socket(stream, shared.clone()));
            }
            Err(e) if limits::is_fd_exhaustion(&e) => {
                if !warned_fd_limit {
                    warned_fd_limit = true;
                    tracing::warn!(
                        open_connections = shared.registry.connection_count(),
                        limit = ?limits::nofile_limit(),
                        "accept failed: out of file descriptors ({e}); new connections wait until some close"
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            // The peer gave up before we accepted: nothing to do.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
                ) => {}
            Err(e) => {
                tracing::debug!("accept failed: {e}");
                // Not tied to one connection (e.g. ENOBUFS): do not spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    drop(listener);
    timed_bugs.abort();
    shared.shutting_down.store(true, Ordering::Release);
    shared.registry.close_all(CloseCause::Shutdown);
    let drained = tokio::time::timeout(shared.config.drain_timeout, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            left = tasks.len(),
            "drain timeout: aborting the connections left"
        );
    }
    tasks.abort_all();
}

/// What a bug does at its time after start.
#[derive(Debug, Clone, Copy)]
enum Timed {
    /// `exit-after`: end the process.
    Exit,
    /// `kick-every`: kick every Nth open connection.
    Kick(std::num::NonZeroU64),
    /// `accept-stall`: from now on upgrades are not answered (logged here;
    /// [`admit`] checks the time itself).
    AcceptStall,
}

/// Acts on each bug that has a time after start, in time order (at most
/// three events, then the task ends). Aborted when the relay stops.
async fn timed_bugs(shared: Arc<Shared>) {
    let bugs = &shared.config.bugs;
    let mut events: Vec<(Duration, Timed)> = [
        bugs.exit_after.map(|at| (at, Timed::Exit)),
        bugs.kick_every.map(|k| (k.at, Timed::Kick(k.every))),
        bugs.accept_stall.map(|at| (at, Timed::AcceptStall)),
    ]
    .into_iter()
    .flatten()
    .collect();
    events.sort_by_key(|(at, _)| *at);
    for (at, event) in events {
        tokio::time::sleep(at.saturating_sub(shared.started.elapsed())).await;
        match event {
            Timed::Exit => {
                tracing::error!(
                    "--bug exit-after: exiting with status {EXIT_AFTER_STATUS} {at:?} after start, \
                     with no closing handshake and no drain"
                );
                // On purpose, like the hang of hang-on-reset: a crash, which
                // only a bug may decide inside the library.
                std::process::exit(EXIT_AFTER_STATUS);
            }
            Timed::Kick(every) => {
                shared.registry.kick(every);
            }
            Timed::AcceptStall => tracing::warn!(
                "--bug accept-stall: from now on ({at:?} after start) new WebSocket upgrades \
                 are read and never answered"
            ),
        }
    }
}

/// Serves one accepted socket: the TLS handshake of a TLS relay, HTTP
/// routing, then, for an admitted upgrade, the WebSocket connection. The
/// routing future is boxed and gone before the long-lived part starts: its
/// state (request head, buffers, timers, about 1.5 KiB) would otherwise be
/// part of every connection's task for its whole life.
async fn handle_socket(tcp: TcpStream, shared: Arc<Shared>) {
    let _ = tcp.set_nodelay(true);
    let Some(mut stream) = Box::pin(secure(tcp, &shared)).await else {
        return;
    };
    if let Some(admitted) = Box::pin(route(&mut stream, &shared)).await {
        connection::serve(stream, admitted, &shared).await;
    }
}

/// The socket as the relay speaks on it: plain, or (`--tls-cert`) after the
/// server side of a TLS handshake. The handshake runs here, in the
/// connection's own task, under the head timeout: one that stalls or is
/// reset costs this task alone, never the accept loop. A failed one is
/// counted (rejected, `tls_handshake`) and the socket dropped.
async fn secure(tcp: TcpStream, shared: &Shared) -> Option<Stream> {
    let Some(config) = &shared.config.tls else {
        return Some(Stream::Plain(tcp));
    };
    match tokio::time::timeout(shared.config.head_timeout, tls::accept(config, tcp)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(e)) => {
            tracing::debug!("TLS handshake failed: {e}");
            shared.registry.metrics.reject(Rejection::TlsHandshake);
            None
        }
        Err(_) => {
            tracing::debug!("TLS handshake not done within the head timeout");
            shared.registry.metrics.reject(Rejection::TlsHandshake);
            None
        }
    }
}

/// An upgrade that passed every check and got its `101`.
pub(crate) struct Admitted {
    /// The user (`sub`), or [`ANONYMOUS`] on an open relay.
    pub(crate) user: Arc<str>,
    /// Bytes the client sent after the request head.
    pub(crate) rest: Vec<u8>,
    /// The connection's slot under `max_connections`, released on drop.
    pub(crate) _permit: Option<OwnedSemaphorePermit>,
}

/// Reads the request head and answers it: `/health`, `/metrics`, a refusal,
/// or the `101` of an admitted upgrade.
async fn route(stream: &mut Stream, shared: &Shared) -> Option<Admitted> {
    let metrics = &shared.registry.metrics;
    let (head, rest) = match http::read_head(stream, shared.config.head_timeout).await {
        Ok(read) => read,
        Err(HeadError::Gone) => return None,
        Err(HeadError::Timeout) => {
            metrics.reject(Rejection::BadHead);
            let _ = http::refuse(stream, 408, "request head not received in time").await;
            return None;
        }
        Err(HeadError::Bad(status, reason)) => {
            metrics.reject(Rejection::BadHead);
            let _ = http::refuse(stream, status, reason).await;
            return None;
        }
    };
    let uptime_s = || shared.started.elapsed().as_secs_f64();
    let (status, content_type, body) = match (head.method.as_str(), head.path.as_str()) {
        ("GET", "/health") => {
            if let Some(delay) = shared.config.bugs.slow_health {
                // No lock is held: only this request waits.
                metrics.health_delayed.fetch_add(1, Relaxed);
                tokio::time::sleep(delay).await;
            }
            (
                200,
                "application/json",
                shared.registry.health_json(uptime_s()),
            )
        }
        ("GET", "/metrics") => (
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            shared.registry.metrics_text(uptime_s()),
        ),
        _ => return admit(stream, &head, rest, shared).await,
    };
    let _ = http::respond(stream, status, content_type, &body).await;
    None
}

/// Checks an upgrade request (shape, shutdown, auth, capacity) and answers
/// `101`, or refuses it with a one-line reason.
async fn admit(
    stream: &mut Stream,
    head: &RequestHead,
    rest: Vec<u8>,
    shared: &Shared,
) -> Option<Admitted> {
    let metrics = &shared.registry.metrics;
    let Some(key) = head.websocket_key() else {
        metrics.reject(Rejection::BadRequest);
        let reason = "expected GET /health, GET /metrics or a WebSocket upgrade (version 13)";
        let _ = http::refuse(stream, 400, reason).await;
        return None;
    };
    if shared.is_shutting_down() {
        metrics.reject(Rejection::Unavailable);
        let _ = http::refuse(stream, 503, "relay shutting down").await;
        return None;
    }
    if let Some(at) = shared.config.bugs.accept_stall
        && shared.started.elapsed() >= at
    {
        metrics.stalled_upgrades.fetch_add(1, Relaxed);
        // Boxed: a rarely taken path, kept out of every routing future.
        Box::pin(hold_unanswered(stream, shared)).await;
        return None;
    }
    let identity = match shared.config.auth.verify(head.token()) {
        Ok(identity) => identity,
        Err(refusal) => {
            metrics.reject(refusal.kind);
            let _ = http::refuse(stream, refusal.status, &refusal.reason).await;
            return None;
        }
    };
    let permit = match &shared.capacity {
        None => None,
        Some(capacity) => match capacity.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                metrics.reject(Rejection::Unavailable);
                let _ = http::refuse(stream, 503, "relay at capacity (--max-connections)").await;
                return None;
            }
        },
    };
    http::accept_upgrade(stream, key).await.ok()?;
    let user: Arc<str> = identity.sub.as_deref().unwrap_or(ANONYMOUS).into();
    Some(Admitted {
        user,
        rest,
        _permit: permit,
    })
}

/// `--bug accept-stall`: the upgrade request was read; sends nothing and
/// holds the socket until the client gives up (EOF or an error), the relay
/// stops, or [`STALLED_UPGRADE_HOLD`] passes. Bytes the client sends meanwhile
/// are read and ignored.
async fn hold_unanswered(stream: &mut Stream, shared: &Shared) {
    let mut stop = shared.stop.clone();
    let mut buf = [0u8; 512];
    let until_gone = async {
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    };
    tokio::select! {
        () = until_gone => {}
        _ = stop.wait_for(|stopped| *stopped) => {}
        () = tokio::time::sleep(STALLED_UPGRADE_HOLD) => {}
    }
}
