//! `halfopen` and `vanish`: sockets that go quiet and are held for `hold`.
//!
//! `halfopen` sets a small receive buffer before connect and then never
//! reads: the server's writes pile up against a zero window. `vanish` keeps
//! a normal socket open and never reads or writes: no FIN, no RST, no Pong,
//! so the server can only learn of it from its own ping deadline. On one
//! machine the kernel still ACKs, so true link loss (no ACKs either) needs
//! the fault proxy's `timeout` toxic.
//!
//! At the end of the hold each socket checks, without waiting, whether the
//! server closed it meanwhile (a Close frame, FIN or RST waiting in the
//! buffer), then ends with an RST.

use super::{FaultContext, pace};
use crate::report::Findings;
use crate::scenario::DEFAULT_HOLD;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The receive buffer of a half-open socket (the kernel rounds it up to its
/// minimum, about 2 KiB).
pub const SMALL_RECV_BUFFER: u32 = 1024;

/// How the socket goes quiet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Silence {
    /// Small receive buffer, no reads.
    StopReading,
    /// No reads, no writes.
    Vanish,
}

/// Runs the step's `count` sockets.
pub async fn run(ctx: Arc<FaultContext>, silence: Silence) -> Findings {
    let closed = Arc::new(AtomicU64::new(0));
    let hold = ctx.step.hold.unwrap_or(DEFAULT_HOLD);
    pace::each(ctx.step.count, ctx.step.rate, pace::MAX_IN_FLIGHT, |i| {
        let (ctx, closed) = (ctx.clone(), closed.clone());
        async move {
            let mut options = ctx.options(i);
            if silence == Silence::StopReading {
                options.recv_buffer = Some(SMALL_RECV_BUFFER);
            }
            let mut ws = match ctx.open_subscribed(i, options).await {
                Ok(ws) => ws,
                Err(e) => return ctx.progress.fail(&e.kind()),
            };
            tokio::time::sleep(hold).await;
            if ws.closed_by_server().is_some() {
                closed.fetch_add(1, Ordering::Relaxed);
            }
            let _ = ws.reset();
            ctx.progress.done();
        }
    })
    .await;
    Findings {
        server_closed: Some(closed.load(Ordering::Relaxed)),
        ..Findings::default()
    }
}
