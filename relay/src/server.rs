//! The accept loop, the HTTP routing in front of every socket, and the
//! shutdown sequence; [`start`] runs a relay on a listener the caller bound.
//!
//! Shutdown: the handle's signal stops accepting, every connection is asked to
//! close with 1001, and the relay waits up to the drain timeout for them to
//! finish before aborting what is left.

use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::config::RelayConfig;
use crate::http::{self, HeadError, RequestHead};
use crate::metrics::{Gauges, Rejection};
use crate::outbox::CloseCause;
use crate::registry::Registry;
use crate::{connection, limits};

/// The user name of every client of an open relay (no auth, no `sub`).
pub const ANONYMOUS: &str = "anonymous";

/// State shared by every task of one relay.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: RelayConfig,
    pub(crate) registry: Registry,
    pub(crate) started: Instant,
    shutting_down: AtomicBool,
    /// One permit per open connection when `max_connections` is set.
    capacity: Option<Arc<Semaphore>>,
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

    /// `ws://ADDR/ws`, the URL clients connect to (any path upgrades).
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
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
    let shared = Arc::new(Shared {
        registry: Registry::new(config.queue_size, config.bugs.clone()),
        config,
        started: Instant::now(),
        shutting_down: AtomicBool::new(false),
        capacity,
    });
    let (stop, stopped) = watch::channel(false);
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

/// Serves one accepted socket: HTTP routing first, then, for an admitted
/// upgrade, the WebSocket connection. The routing future is boxed and gone
/// before the long-lived part starts: its state (request head, buffers,
/// timers, about 1.5 KiB) would otherwise be part of every connection's task
/// for its whole life.
async fn handle_socket(mut stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    if let Some(admitted) = Box::pin(route(&mut stream, &shared)).await {
        connection::serve(stream, admitted, &shared).await;
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
async fn route(stream: &mut TcpStream, shared: &Shared) -> Option<Admitted> {
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
    let uptime_s = shared.started.elapsed().as_secs_f64();
    let (status, content_type, body) = match (head.method.as_str(), head.path.as_str()) {
        ("GET", "/health") => (
            200,
            "application/json",
            shared.registry.health_json(uptime_s),
        ),
        ("GET", "/metrics") => (
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            shared.registry.metrics_text(uptime_s),
        ),
        _ => return admit(stream, &head, rest, shared).await,
    };
    let _ = http::respond(stream, status, content_type, &body).await;
    None
}

/// Checks an upgrade request (shape, shutdown, auth, capacity) and answers
/// `101`, or refuses it with a one-line reason.
async fn admit(
    stream: &mut TcpStream,
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
