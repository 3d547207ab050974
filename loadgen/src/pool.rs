//! The runtimes the connections run on: a few current-thread tokio
//! runtimes, one per OS thread, each connection pinned to one of them for
//! its whole life.
//!
//! Why not the caller's work-stealing runtime: at tens of thousands of
//! deliveries a second, its idle workers park and are woken for nearly
//! every frame, and the kernel's context switches then cost more than the
//! receive path itself (`perf`: 12-14% of the engine's samples in
//! `finish_task_switch`). A current-thread runtime never hands a task to
//! another thread: a thread sleeps in `epoll_wait` only when none of its
//! sockets has anything, and one wake-up serves every socket that became
//! ready meanwhile. One thread carries about [`DELIVERIES_PER_THREAD`]
//! deliveries a second, so the pool has one thread per that many expected
//! deliveries (at least one, at most one per core).
//!
//! What stays on the caller's runtime: the engine's collector (snapshots,
//! the drain's end, Ctrl-C) and the launcher, which spawns each connection
//! onto its runtime through a [`Handle`] and joins it from there: a
//! `JoinHandle` and the run's channels, semaphores and atomics work across
//! runtimes, so the hard deadline still aborts what is left. Nothing in a
//! connection task blocks its thread: the stats' locks are short critical
//! sections, never held across an `.await`.
//!
//! Dropping the [`Pool`] lets its threads end (each drops its runtime, and
//! with it any task still there, on its own thread); it does not wait for
//! them, so it never blocks the caller's runtime.

use crate::plan::LoadPlan;
use std::io;
use std::thread;
use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

/// Deliveries a second that one pool thread is planned for.
pub const DELIVERIES_PER_THREAD: f64 = 100_000.0;

/// Current-thread runtimes on threads of their own.
pub(crate) struct Pool {
    handles: Vec<Handle>,
    /// Dropping these ends the threads.
    _stops: Vec<oneshot::Sender<()>>,
}

impl Pool {
    /// A pool of `threads` runtimes (at least one), its threads named
    /// `name`. Should the system refuse a thread, the pool makes do with
    /// those it got, or with the caller's runtime if it got none: the run
    /// goes on, at the old cost per delivery.
    pub fn new(threads: usize, name: &str) -> Self {
        let mut handles = Vec::new();
        let mut stops = Vec::new();
        for _ in 0..threads.max(1) {
            match Self::start(name) {
                Ok((handle, stop)) => {
                    handles.push(handle);
                    stops.push(stop);
                }
                Err(_) => break,
            }
        }
        if handles.is_empty() {
            handles.push(Handle::current());
        }
        Self {
            handles,
            _stops: stops,
        }
    }

    /// Starts one thread with its runtime, which runs until `stop` is
    /// dropped.
    fn start(name: &str) -> io::Result<(Handle, oneshot::Sender<()>)> {
        let runtime = Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                // Runs the runtime's tasks until the pool is dropped;
                // dropping the runtime then drops what is left of them.
                let _ = runtime.block_on(stopped);
            })?;
        Ok((handle, stop))
    }

    /// The runtime of connection `c`, the same for its whole life.
    pub fn handle(&self, c: u64) -> &Handle {
        &self.handles[(c % self.handles.len() as u64) as usize]
    }
}

/// How many pool threads `plan` needs: one per [`DELIVERIES_PER_THREAD`]
/// deliveries a second this process expects at the plan's peak rate, at
/// least one, at most `cores`.
pub fn threads_for(plan: &LoadPlan, cores: usize) -> usize {
    let peak_rate = plan
        .stages
        .iter()
        .filter_map(|s| s.rate)
        .fold(plan.rate, f64::max);
    let connections = plan.shard_connections().size_hint().0 as f64;
    let per_connection = f64::from(plan.subscriptions_per_connection.min(plan.topics))
        / f64::from(plan.topics.max(1));
    let deliveries = peak_rate * per_connection * connections;
    ((deliveries / DELIVERIES_PER_THREAD).ceil() as usize).clamp(1, cores.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Stage;
    use std::time::Duration;

    fn plan(connections: u64, topics: u32, rate: f64) -> LoadPlan {
        let mut plan = LoadPlan::new(vec!["ws://127.0.0.1:1/ws".into()]);
        plan.connections = connections;
        plan.topics = topics;
        plan.subscriptions_per_connection = 1;
        plan.rate = rate;
        plan
    }

    #[test]
    fn one_thread_per_hundred_thousand_deliveries_within_the_cores() {
        // 1,000 sockets on 10 topics at 200 msg/s: 20,000 deliveries/s.
        assert_eq!(threads_for(&plan(1_000, 10, 200.0), 8), 1);
        // 10,000 sockets on 10 topics at 300 msg/s: 300,000 deliveries/s.
        assert_eq!(threads_for(&plan(10_000, 10, 300.0), 8), 3);
        assert_eq!(threads_for(&plan(10_000, 10, 300.0), 2), 2);
        assert_eq!(threads_for(&plan(10, 1, 0.0), 2), 1);
        // The peak of the stages counts; a shard counts its own sockets.
        let mut staged = plan(10_000, 10, 100.0);
        staged.stages.push(Stage {
            duration: Duration::from_secs(1),
            rate: Some(300.0),
            connections: None,
        });
        assert_eq!(threads_for(&staged, 8), 3);
        assert_eq!(threads_for(&staged.shard(0, 3), 8), 1);
    }

    #[test]
    fn a_connection_keeps_its_runtime() {
        let pool = Pool::new(2, "test-pool");
        let id = |c| pool.handle(c).id();
        assert_eq!(id(0), id(2));
        assert_ne!(id(0), id(1));
        let answer = pool.handle(1).spawn(async { 6 * 7 });
        let runtime = Builder::new_current_thread().build().unwrap();
        assert_eq!(runtime.block_on(answer).unwrap(), 42);
    }
}
