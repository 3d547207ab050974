//! One proxied connection: two pumps, one per direction, each reading its
//! source, passing the bytes through the toxics of its direction, and
//! writing them to its destination when they are due.
//!
//! Ends are propagated faithfully: a FIN from one side becomes a FIN to the
//! other (half-close), an RST from one side becomes an RST to the other, so
//! that a client's reset reaches the server as a reset.

use super::toxics::{Stream, Toxic};
use super::{ActiveToxic, ToxicSet};
use bytes::Bytes;
use rand::RngExt;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until, timeout};

/// Chunks queued per direction before the pump stops reading (backpressure).
const QUEUE_CAP: usize = 4096;
/// Read size per chunk.
const CHUNK: usize = 16 * 1024;
/// Bound on connecting upstream.
const UPSTREAM_CONNECT: Duration = Duration::from_secs(10);

/// How a connection is being ended early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kill {
    /// Not killed.
    No,
    /// Close both sides (FIN).
    Close,
    /// Reset both sides (RST).
    Reset,
}

/// Proxies `client` to `upstream` until both directions end, a toxic ends
/// the connection, or `stop` fires.
pub async fn serve(
    client: TcpStream,
    upstream: SocketAddr,
    toxics: ToxicSet,
    stop: watch::Receiver<bool>,
) {
    let server = match timeout(UPSTREAM_CONNECT, TcpStream::connect(upstream)).await {
        Ok(Ok(server)) => server,
        _ => {
            let _ = client.set_zero_linger();
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_r, client_w) = client.into_split();
    let (server_r, server_w) = server.into_split();
    let (kill, _) = watch::channel(Kill::No);
    let start = Instant::now();
    let up = Pump::new(
        Stream::Upstream,
        client_r,
        server_w,
        &toxics,
        &kill,
        &stop,
        start,
    );
    let down = Pump::new(
        Stream::Downstream,
        server_r,
        client_w,
        &toxics,
        &kill,
        &stop,
        start,
    );
    tokio::join!(up.run(), down.run());
}

/// A toxic as it applies to one direction of one connection.
#[derive(Debug)]
struct Applied {
    toxic: ActiveToxic,
    /// Whether the toxicity roll chose this connection.
    applies: bool,
    /// When it began to apply to this connection.
    since: Instant,
    /// limit_data: bytes let through so far.
    passed: u64,
}

/// One direction of a connection.
struct Pump {
    stream: Stream,
    src: OwnedReadHalf,
    dst: OwnedWriteHalf,
    toxics: ToxicSet,
    changes: watch::Receiver<u64>,
    kill: watch::Sender<Kill>,
    killed: watch::Receiver<Kill>,
    stop: watch::Receiver<bool>,
    start: Instant,
    applied: Vec<Applied>,
    queue: VecDeque<(Instant, Bytes)>,
    /// Release time of the last queued chunk: latency never reorders.
    last_release: Instant,
    /// bandwidth: when the link is free again.
    free_at: Instant,
    /// limit_data reached: close once the queue is out.
    close_when_empty: bool,
}

impl Pump {
    fn new(
        stream: Stream,
        src: OwnedReadHalf,
        dst: OwnedWriteHalf,
        toxics: &ToxicSet,
        kill: &watch::Sender<Kill>,
        stop: &watch::Receiver<bool>,
        start: Instant,
    ) -> Self {
        Self {
            stream,
            src,
            dst,
            toxics: toxics.clone(),
            changes: toxics.changes(),
            kill: kill.clone(),
            killed: kill.subscribe(),
            stop: stop.clone(),
            start,
            applied: Vec::new(),
            queue: VecDeque::new(),
            last_release: start,
            free_at: start,
            close_when_empty: false,
        }
    }

    /// Re-reads the toxics of this direction, keeping per-connection state
    /// (roll, start, counters) of those still in force.
    fn refresh(&mut self) {
        let current = self.toxics.current();
        let mut old = std::mem::take(&mut self.applied);
        for toxic in current.iter().filter(|t| t.spec.stream == self.stream) {
            let kept = old
                .iter()
                .position(|a| a.toxic.id == toxic.id)
                .map(|i| old.swap_remove(i));
            self.applied.push(kept.unwrap_or_else(|| Applied {
                applies: toxic.spec.toxicity >= 1.0
                    || rand::rng().random_bool(toxic.spec.toxicity.clamp(0.0, 1.0)),
                since: toxic.added.max(self.start),
                passed: 0,
                toxic: toxic.clone(),
            }));
        }
    }

    fn active(&self) -> impl Iterator<Item = &Applied> {
        self.applied.iter().filter(|a| a.applies)
    }

    /// The earliest timed end (timeout, reset_peer) among the toxics.
    fn deadline(&self) -> Option<(Instant, Kill)> {
        self.active()
            .filter_map(|a| match a.toxic.spec.toxic {
                Toxic::Timeout { timeout } if timeout > 0 => {
                    Some((a.since + Duration::from_millis(timeout), Kill::Close))
                }
                Toxic::ResetPeer { timeout } => {
                    Some((a.since + Duration::from_millis(timeout), Kill::Reset))
                }
                _ => None,
            })
            .min_by_key(|(at, _)| *at)
    }

    fn blackholed(&self) -> bool {
        self.active()
            .any(|a| matches!(a.toxic.spec.toxic, Toxic::Timeout { .. }))
    }

    fn bandwidth(&self) -> Option<u64> {
        self.active()
            .filter_map(|a| match a.toxic.spec.toxic {
                Toxic::Bandwidth { rate } => Some(rate),
                _ => None,
            })
            .min()
    }

    /// When the front chunk may go out.
    fn next_release(&self) -> Option<Instant> {
        let (release, _) = self.queue.front()?;
        Some(if self.bandwidth().is_some() {
            (*release).max(self.free_at)
        } else {
            *release
        })
    }

    /// Runs the toxics over a chunk just read and queues what comes out.
    fn take_in(&mut self, mut chunk: Bytes) {
        let now = Instant::now();
        let mut release = now;
        let mut slicer = None;
        for applied in self.applied.iter_mut().filter(|a| a.applies) {
            match applied.toxic.spec.toxic {
                Toxic::Latency { latency, jitter } => {
                    let jitter = jitter as i64;
                    let ms = latency as i64
                        + if jitter > 0 {
                            rand::rng().random_range(-jitter..=jitter)
                        } else {
                            0
                        };
                    release += Duration::from_millis(ms.max(0) as u64);
                }
                Toxic::LimitData { bytes } => {
                    let room = bytes.saturating_sub(applied.passed);
                    if chunk.len() as u64 >= room {
                        chunk.truncate(room as usize);
                        self.close_when_empty = true;
                    }
                    applied.passed += chunk.len() as u64;
                }
                Toxic::Slicer {
                    average_size,
                    size_variation,
                    delay,
                } => {
                    slicer = Some((average_size, size_variation, delay));
                }
                Toxic::Bandwidth { .. } | Toxic::Timeout { .. } | Toxic::ResetPeer { .. } => {}
            }
        }
        let mut release = release.max(self.last_release);
        match slicer {
            Some((average, variation, delay)) => {
                let mut rng = rand::rng();
                let v = variation.min(average - 1) as i64;
                let mut at = release;
                while !chunk.is_empty() {
                    let size = (average as i64 + if v > 0 { rng.random_range(-v..=v) } else { 0 })
                        .max(1) as usize;
                    let slice = chunk.split_to(size.min(chunk.len()));
                    self.queue.push_back((at, slice));
                    release = at;
                    at += Duration::from_micros(delay);
                }
            }
            None if chunk.is_empty() => {}
            None => self.queue.push_back((release, chunk)),
        }
        self.last_release = release;
    }

    /// Writes every due chunk; false when the destination is gone.
    async fn flush_due(&mut self) -> bool {
        let rate = self.bandwidth();
        while let Some(due) = self.next_release() {
            if due > Instant::now() {
                break;
            }
            let (_, chunk) = self.queue.pop_front().expect("a front exists");
            if self.dst.write_all(&chunk).await.is_err() {
                return false;
            }
            if let Some(rate) = rate {
                // rate KB/s = rate bytes per ms.
                self.free_at =
                    due.max(self.free_at) + Duration::from_micros(chunk.len() as u64 * 1000 / rate);
            }
        }
        true
    }

    /// Ends the connection both ways: both sockets RST or closed.
    fn kill(&self, how: Kill) {
        self.end(how);
    }

    /// Ends the connection because a toxic says so (a `timeout` or
    /// `reset_peer` deadline, `limit_data` reached), counted once per
    /// connection in [`ToxicSet::cut`].
    fn cut(&self, how: Kill) {
        if self.end(how) {
            self.toxics.count_cut();
        }
    }

    /// What [`Pump::kill`] and [`Pump::cut`] do; whether this was the
    /// connection's first end.
    fn end(&self, how: Kill) -> bool {
        if how == Kill::Reset {
            let _ = self.src.as_ref().set_zero_linger();
            let _ = self.dst.as_ref().set_zero_linger();
        }
        self.kill.send_replace(how) == Kill::No
    }

    /// Pumps until this direction ends. Dropping a tokio write half sends a
    /// FIN, so when the connection is being reset the write half is
    /// forgotten instead, and the socket closes with the RST its zero linger
    /// asks for once the other pump lets go of its read half.
    async fn run(mut self) {
        self.pump().await;
        let killed = *self.killed.borrow();
        if killed == Kill::Reset {
            self.dst.forget();
        }
    }

    async fn pump(&mut self) {
        self.refresh();
        let mut buf = vec![0u8; CHUNK];
        let mut reading = true;
        loop {
            if reading && self.queue.is_empty() && !self.applied.iter().any(|a| a.applies) {
                // No toxic on this direction: copy straight through.
                tokio::select! {
                    biased;
                    _ = self.stop.changed() => return,
                    _ = self.killed.changed() => return,
                    _ = self.changes.changed() => self.refresh(),
                    read = self.src.read(&mut buf) => match read {
                        Ok(0) => {
                            let _ = self.dst.shutdown().await;
                            return;
                        }
                        Ok(n) => {
                            if self.dst.write_all(&buf[..n]).await.is_err() {
                                return self.kill(Kill::Reset);
                            }
                        }
                        Err(_) => return self.kill(Kill::Reset),
                    },
                }
                continue;
            }
            let deadline = self.deadline();
            let release = self.next_release();
            tokio::select! {
                biased;
                _ = self.stop.changed() => return,
                _ = self.killed.changed() => return,
                _ = self.changes.changed() => self.refresh(),
                _ = sleep_until(deadline.map_or(far_future(), |(at, _)| at)), if deadline.is_some() => {
                    let (_, how) = deadline.expect("guarded");
                    return self.cut(how);
                }
                _ = sleep_until(release.unwrap_or_else(far_future)), if release.is_some() => {
                    if !self.flush_due().await {
                        return self.kill(Kill::Reset);
                    }
                }
                read = self.src.read(&mut buf), if reading && self.queue.len() < QUEUE_CAP && !self.close_when_empty => match read {
                    Ok(0) => reading = false,
                    Ok(_) if self.blackholed() => {}
                    Ok(n) => {
                        self.take_in(Bytes::copy_from_slice(&buf[..n]));
                        if !self.flush_due().await {
                            return self.kill(Kill::Reset);
                        }
                    }
                    Err(_) => return self.kill(Kill::Reset),
                },
            }
            if self.queue.is_empty() {
                if self.close_when_empty {
                    return self.cut(Kill::Close);
                }
                if !reading {
                    let _ = self.dst.shutdown().await;
                    return;
                }
            }
        }
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}
