//! The fault proxy: a TCP proxy that applies Toxiproxy's toxics per
//! direction, changed at run time by the agent's schedule or over a small
//! HTTP control API ([`api`]).

pub mod api;
pub mod link;
pub mod toxics;

use crate::Error;
use squall_proto::LoopbackGuard;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;
use toxics::ToxicSpec;

/// A toxic in force, with when it was added.
#[derive(Debug, Clone)]
pub struct ActiveToxic {
    /// Unique per addition: a toxic removed and added again is a new one.
    pub id: u64,
    /// What it does.
    pub spec: ToxicSpec,
    /// When it was added; it applies to a connection from then (or from the
    /// connection's start, whichever is later).
    pub added: Instant,
}

/// The proxy's toxics: cheap to clone, shared by every connection, the
/// agent and the control API.
#[derive(Debug, Clone)]
pub struct ToxicSet {
    inner: Arc<ToxicsInner>,
}

#[derive(Debug)]
struct ToxicsInner {
    /// The toxics in force. Guards the pointer only: the list is replaced
    /// whole on every change (copy, edit, swap), so a reader clones the `Arc`
    /// under the read lock and works on its own snapshot with no lock held.
    /// An `RwLock` because reads (every connection's refresh, the API's GET)
    /// far outnumber writes (an add or remove by the agent or the API), and a
    /// `std::sync` one because every critical section is a clone or a swap
    /// with no `.await` inside (the workspace denies
    /// clippy::await_holding_lock). The writer drops it before bumping
    /// `generation`, so the watch channel's own lock is never taken under it.
    list: RwLock<Arc<Vec<ActiveToxic>>>,
    /// Bumped on every change; connections wait on it.
    generation: watch::Sender<u64>,
    next_id: AtomicU64,
    /// Connections a toxic ended (reset_peer, timeout, limit_data).
    cut: AtomicU64,
}

impl Default for ToxicSet {
    fn default() -> Self {
        Self {
            inner: Arc::new(ToxicsInner {
                list: RwLock::new(Arc::new(Vec::new())),
                generation: watch::Sender::new(0),
                next_id: AtomicU64::new(1),
                cut: AtomicU64::new(0),
            }),
        }
    }
}

impl ToxicSet {
    /// How many connections the toxics have ended so far (`reset_peer`,
    /// `timeout`, `limit_data`): the proxy's doing, not the target's, though
    /// a client sees them as the server's reset or close.
    pub fn cut(&self) -> u64 {
        self.inner.cut.load(Ordering::Relaxed)
    }

    /// Counts one connection ended by a toxic.
    fn count_cut(&self) {
        self.inner.cut.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds a toxic; its name must be new ([`Error::ToxicExists`]).
    pub fn add(&self, spec: ToxicSpec) -> Result<(), Error> {
        spec.validate()?;
        let mut list = self.inner.list.write().expect("toxic list lock");
        if list.iter().any(|t| t.spec.name == spec.name) {
            return Err(Error::ToxicExists(spec.name));
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let mut next = (**list).clone();
        next.push(ActiveToxic {
            id,
            spec,
            added: Instant::now(),
        });
        *list = Arc::new(next);
        drop(list);
        self.inner.generation.send_modify(|g| *g += 1);
        Ok(())
    }

    /// Removes the toxic named `name`; [`Error::ToxicNotFound`] if there is none.
    pub fn remove(&self, name: &str) -> Result<(), Error> {
        let mut list = self.inner.list.write().expect("toxic list lock");
        let next: Vec<ActiveToxic> = list
            .iter()
            .filter(|t| t.spec.name != name)
            .cloned()
            .collect();
        let removed = next.len() != list.len();
        *list = Arc::new(next);
        drop(list);
        if !removed {
            return Err(Error::ToxicNotFound(name.to_string()));
        }
        self.inner.generation.send_modify(|g| *g += 1);
        Ok(())
    }

    /// The toxics in force, in the order they apply.
    pub fn list(&self) -> Vec<ToxicSpec> {
        self.current().iter().map(|t| t.spec.clone()).collect()
    }

    /// The toxics in force.
    pub fn current(&self) -> Arc<Vec<ActiveToxic>> {
        self.inner.list.read().expect("toxic list lock").clone()
    }

    /// A receiver that changes whenever the toxics do.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.generation.subscribe()
    }
}

/// A running fault proxy. Dropping it stops it and closes its connections.
#[derive(Debug)]
pub struct FaultProxy {
    local_addr: SocketAddr,
    upstream: SocketAddr,
    toxics: ToxicSet,
    /// The guard `start` was given: the control API's address passes it too.
    guard: LoopbackGuard,
    shutdown: watch::Sender<bool>,
    /// The proxy's own runtime, alive until `shutdown` fires.
    runtime: tokio::runtime::Handle,
}

/// Starts a thread with a single-threaded runtime that runs until `stop`
/// fires; returns a handle to spawn on it.
fn own_runtime(mut stop: watch::Receiver<bool>) -> Result<tokio::runtime::Handle, Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let handle = runtime.handle().clone();
    std::thread::Builder::new()
        .name("squall-proxy".into())
        .spawn(move || {
            runtime.block_on(async move {
                while !*stop.borrow_and_update() {
                    if stop.changed().await.is_err() {
                        return;
                    }
                }
            });
        })?;
    Ok(handle)
}

impl FaultProxy {
    /// Binds `listen` and forwards every connection to `upstream`; both
    /// must pass the guard (a proxy listening on a non-loopback address
    /// lets other machines in: only with remote traffic allowed). The proxy
    /// runs on a thread and single-threaded
    /// runtime of its own, so that its hops are not queued behind the load
    /// engine's tasks (and it works from any caller, runtime or not).
    pub async fn start(
        listen: SocketAddr,
        upstream: SocketAddr,
        guard: &LoopbackGuard,
    ) -> Result<Self, Error> {
        let upstream = guard.check(upstream)?;
        let listen = guard.check(listen)?;
        let listener = std::net::TcpListener::bind(listen)?;
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        let toxics = ToxicSet::default();
        let (shutdown, stop) = watch::channel(false);
        let runtime = own_runtime(stop.clone())?;
        let accept_toxics = toxics.clone();
        runtime.spawn(async move {
            match TcpListener::from_std(listener) {
                Ok(listener) => accept_loop(listener, upstream, accept_toxics, stop).await,
                Err(e) => tracing::error!("fault proxy: {e}"),
            }
        });
        Ok(Self {
            local_addr,
            upstream,
            toxics,
            guard: *guard,
            shutdown,
            runtime,
        })
    }

    /// Serves the control API on `addr`, which must pass the guard the
    /// proxy was started with (the API is unauthenticated); returns the
    /// bound address.
    pub async fn start_api(&self, addr: SocketAddr) -> Result<SocketAddr, Error> {
        let addr = self.guard.check(addr)?;
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let bound = listener.local_addr()?;
        let (toxics, stop) = (self.toxics.clone(), self.shutdown.subscribe());
        self.runtime.spawn(async move {
            match TcpListener::from_std(listener) {
                Ok(listener) => api::serve(listener, toxics, stop).await,
                Err(e) => tracing::error!("fault proxy API: {e}"),
            }
        });
        Ok(bound)
    }

    /// Where clients connect.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where it forwards to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// Its toxics.
    pub fn toxics(&self) -> &ToxicSet {
        &self.toxics
    }

    /// Stops accepting and closes every connection.
    pub fn stop(&self) {
        let _ = self.shutdown.send(true);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    toxics: ToxicSet,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    tokio::spawn(link::serve(client, upstream, toxics.clone(), stop.clone()));
                }
                Err(e) => {
                    tracing::warn!("fault proxy: accept failed: {e}");
                    // Out of descriptors: do not spin.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
        }
    }
}
