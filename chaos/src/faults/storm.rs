//! `storm`: `count` clients connect and subscribe, all drop at once (TCP
//! RST), and all reconnect: at once and retrying at once (the thundering
//! herd), or with full-jitter exponential backoff. Reports the time until
//! the last one was back and subscribed, and (squall protocol) the
//! Broadcast sequences each missed between its last delivery before the
//! drop and its first after the reconnect.

use super::{FaultContext, pace};
use crate::report::Findings;
use crate::scenario::Backoff;
use crate::ws::WsConn;
use crate::ws::frame::OP_TEXT;
use rand::RngExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Barrier, watch};
use tokio::time::{Instant, sleep, timeout_at};

/// How long clients have to get back after the drop.
const RECONNECT_BOUND: Duration = Duration::from_secs(60);
/// Attempts per client to get back.
const MAX_ATTEMPTS: u32 = 12;
/// The first backoff window, doubled per attempt up to [`BACKOFF_CAP`].
const BACKOFF_BASE: Duration = Duration::from_millis(100);
/// The largest backoff window.
const BACKOFF_CAP: Duration = Duration::from_secs(5);
/// How long a client back from the storm waits for its first delivery.
const FIRST_DELIVERY_WAIT: Duration = Duration::from_secs(3);

/// Runs the storm.
pub async fn run(ctx: Arc<FaultContext>) -> Findings {
    let n = ctx.step.count;
    let connected = Arc::new(Barrier::new(n as usize + 1));
    let (drop_tx, drop_rx) = watch::channel(None::<Instant>);
    let back = Arc::new(BackCounters::default());
    let clients = {
        let (ctx, connected, back) = (ctx.clone(), connected.clone(), back.clone());
        tokio::spawn(async move {
            // All clients are alive at once (the step's count is bounded by
            // MAX_STORM), each passing the barrier once, connected or not.
            pace::each(n, ctx.step.rate, n as usize, |i| {
                client(
                    ctx.clone(),
                    i,
                    connected.clone(),
                    drop_rx.clone(),
                    back.clone(),
                )
            })
            .await
        })
    };
    connected.wait().await;
    sleep(ctx.step.after).await;
    let dropped_at = Instant::now();
    let _ = drop_tx.send(Some(dropped_at));
    let _ = clients.await;
    let last_back = back.last_back_us.load(Ordering::Relaxed);
    let returned = back.returned.load(Ordering::Relaxed);
    let dropped = back.dropped.load(Ordering::Relaxed);
    Findings {
        reconnect_all_ms: (returned > 0).then(|| last_back as f64 / 1000.0),
        not_reconnected: Some(dropped - returned),
        missed: ctx
            .target
            .squall_protocol
            .then(|| back.missed.load(Ordering::Relaxed)),
        ..Findings::default()
    }
}

/// What the clients report back.
#[derive(Debug, Default)]
struct BackCounters {
    /// Clients that were connected when the storm hit.
    dropped: AtomicU64,
    /// Clients back and subscribed.
    returned: AtomicU64,
    /// µs from the drop to the latest return.
    last_back_us: AtomicU64,
    /// Sequences missed, summed.
    missed: AtomicU64,
}

async fn client(
    ctx: Arc<FaultContext>,
    i: u64,
    connected: Arc<Barrier>,
    mut drop_rx: watch::Receiver<Option<Instant>>,
    back: Arc<BackCounters>,
) {
    let first = ctx.open_subscribed(i, ctx.options(i)).await;
    connected.wait().await;
    let mut ws = match first {
        Ok(ws) => ws,
        Err(e) => return ctx.progress.fail(&e.kind()),
    };
    let mut last_seq = None;
    let dropped_at = loop {
        tokio::select! {
            changed = drop_rx.changed() => match (changed, *drop_rx.borrow()) {
                (Ok(()), Some(at)) => break at,
                (Ok(()), None) => continue,
                (Err(_), _) => return,
            },
            frame = ws.read_frame() => match frame {
                Ok(frame) => last_seq = sequence(&frame.payload, frame.opcode).or(last_seq),
                Err(end) => return ctx.progress.fail(&format!("server_{}", end.kind())),
            },
        }
    };
    back.dropped.fetch_add(1, Ordering::Relaxed);
    let _ = ws.reset();
    let Some(mut ws) = reconnect(&ctx, i, dropped_at).await else {
        return ctx.progress.fail("not_reconnected");
    };
    let back_us = dropped_at.elapsed().as_micros() as u64;
    back.returned.fetch_add(1, Ordering::Relaxed);
    back.last_back_us.fetch_max(back_us, Ordering::Relaxed);
    ctx.progress.done();
    if let Some(before) = last_seq {
        let deadline = Instant::now() + FIRST_DELIVERY_WAIT;
        while let Ok(Ok(frame)) = timeout_at(deadline, ws.read_frame()).await {
            if let Some(after) = sequence(&frame.payload, frame.opcode) {
                back.missed
                    .fetch_add(after.saturating_sub(before + 1), Ordering::Relaxed);
                break;
            }
        }
    }
    let _ = ws.reset();
}

/// Gets client `i` back: connect, subscribe, and (squall protocol) see the
/// subscription confirmed; retried per the step's backoff.
async fn reconnect(ctx: &FaultContext, i: u64, dropped_at: Instant) -> Option<WsConn> {
    let deadline = dropped_at + RECONNECT_BOUND;
    for attempt in 0..MAX_ATTEMPTS {
        if ctx.step.backoff == Backoff::Exponential {
            let window = BACKOFF_BASE
                .saturating_mul(1 << attempt.min(16))
                .min(BACKOFF_CAP);
            let wait = rand::rng().random_range(Duration::ZERO..=window);
            sleep(wait).await;
        }
        if Instant::now() >= deadline {
            return None;
        }
        if let Ok(mut ws) = ctx.open_subscribed(i, ctx.options(i)).await {
            if !ctx.target.squall_protocol || ctx.target.subscribe_frame(i).is_none() {
                return Some(ws);
            }
            if let Ok(Ok(_reply)) = timeout_at(deadline, ws.read_frame()).await {
                return Some(ws);
            }
        }
    }
    None
}

/// The `sequence` of a squall Broadcast delivery.
fn sequence(payload: &[u8], opcode: u8) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Delivery {
        #[serde(rename = "type")]
        kind: String,
        data: Option<Data>,
    }
    #[derive(serde::Deserialize)]
    struct Data {
        sequence: Option<u64>,
    }
    if opcode != OP_TEXT {
        return None;
    }
    let delivery: Delivery = serde_json::from_slice(payload).ok()?;
    (delivery.kind == "Broadcast").then_some(delivery.data?.sequence?)
}
