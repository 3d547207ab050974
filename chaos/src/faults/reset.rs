//! `reset` and `drop`: open, subscribe, stay `after`, then end without a
//! closing handshake, with a TCP RST (zero linger) or a plain FIN.
//!
//! A tungstenite server reports the RST as "Connection reset by peer" and
//! the FIN as "Connection reset without closing handshake". With
//! `mid_frame`, half a frame goes out first.

use super::{FaultContext, pace};
use crate::report::Findings;
use crate::ws::frame::{Frame, OP_TEXT};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How long a `drop` waits for the server's own FIN before letting go.
const FIN_WAIT: Duration = Duration::from_secs(2);

/// How the socket ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// TCP RST: zero linger, then close.
    Rst,
    /// TCP FIN: shut the write side, drain, close.
    Fin,
}

/// The first half of a masked 100-byte text frame: the header promises
/// 100 bytes, 50 follow.
pub fn half_frame() -> Vec<u8> {
    let mut bytes = Frame::client(OP_TEXT, vec![b'x'; 100]).encode();
    bytes.truncate(bytes.len() - 50);
    bytes
}

/// Runs the step's `count` sockets.
pub async fn run(ctx: Arc<FaultContext>, ending: Ending) -> Findings {
    let start = Instant::now();
    pace::each(ctx.step.count, ctx.step.rate, pace::MAX_IN_FLIGHT, |i| {
        let ctx = ctx.clone();
        async move {
            let mut ws = match ctx.open_subscribed(i, ctx.options(i)).await {
                Ok(ws) => ws,
                Err(e) => return ctx.progress.fail(&e.kind()),
            };
            if !ctx.step.after.is_zero()
                && let Err(end) = ws.read_until(Instant::now() + ctx.step.after, |_| {}).await
            {
                return ctx.progress.fail(&format!("server_{}", end.kind()));
            }
            if ctx.step.mid_frame && ws.send_raw(&half_frame()).await.is_err() {
                return ctx.progress.fail("server_closed");
            }
            match ending {
                Ending::Rst => {
                    if ws.reset().is_err() {
                        return ctx.progress.fail("linger");
                    }
                }
                Ending::Fin => ws.drop_with_fin(FIN_WAIT).await,
            }
            ctx.progress.done();
        }
    })
    .await;
    let secs = start.elapsed().as_secs_f64();
    Findings {
        per_s: (secs > 0.0).then(|| ctx.progress.done_count() as f64 / secs),
        ..Findings::default()
    }
}
