//! Test helpers: the reference relay on its own thread and runtime (so that
//! a stalled relay cannot distort the engine's clock), a small base plan, and
//! a run that collects the snapshots.

#![allow(dead_code)] // each test binary uses a different part of this module

pub mod fake;

use squall_loadgen::{LoadPlan, LoadReport, LoadSnapshot, Origin};
use squall_relay::config::RelayConfig;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// A reference relay running on its own thread; stopped on drop.
pub struct Relay {
    /// `ws://127.0.0.1:PORT/ws`.
    pub url: String,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Starts the reference relay with `config` on a thread of its own.
pub fn relay(config: RelayConfig) -> Relay {
    let (url_tx, url_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("relay runtime");
        rt.block_on(async move {
            let handle = squall_relay::server::start_loopback(config)
                .await
                .expect("relay binds");
            url_tx
                .send(handle.ws_url())
                .expect("test waits for the URL");
            let _ = stopped.await;
            let _ = tokio::time::timeout(Duration::from_secs(5), handle.shutdown()).await;
        });
    });
    Relay {
        url: url_rx.recv().expect("relay started"),
        stop: Some(stop),
        thread: Some(thread),
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A relay with one bug switched on, e.g. `"drop-every=100"`.
pub fn relay_with_bug(bug: &str) -> Relay {
    let mut config = RelayConfig::default();
    config.bugs.enable(bug.parse().expect("a valid --bug"));
    relay(config)
}

/// 40 connections over 1 s, 4 topics, 8 publishers, 400 msg/s, 5 s, drain 1 s:
/// about 1,900 messages and 19,000 owed deliveries.
pub fn plan(url: &str) -> LoadPlan {
    LoadPlan {
        connections: 40,
        ramp: Duration::from_secs(1),
        topics: 4,
        subscriptions_per_connection: 1,
        publishers: 8,
        rate: 400.0,
        payload_bytes: 128,
        duration: Duration::from_secs(5),
        drain: Duration::from_secs(1),
        ..LoadPlan::new(vec![url.to_string()])
    }
}

/// Runs `plan` from a fresh origin; returns the report and every snapshot.
pub async fn run(plan: LoadPlan) -> (LoadReport, Vec<LoadSnapshot>) {
    run_from(plan, Origin::now()).await
}

/// Runs `plan` from `origin`; returns the report and every snapshot.
pub async fn run_from(plan: LoadPlan, origin: Origin) -> (LoadReport, Vec<LoadSnapshot>) {
    let (_stop, stop_rx) = watch::channel(false);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let report = squall_loadgen::run(plan, origin, stop_rx, tx)
        .await
        .expect("a valid plan");
    let mut snapshots = Vec::new();
    while let Ok(s) = rx.try_recv() {
        snapshots.push(s);
    }
    (report, snapshots)
}
