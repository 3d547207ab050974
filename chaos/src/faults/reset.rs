//! `reset` and `drop`: open, subscribe, stay `after`, then end without a
//! closing handshake, with a TCP RST (zero linger) or a plain FIN.
//!
//! A tungstenite server reports the RST as "Connection reset by peer" and
//! the FIN as "Connection reset without closing handshake". With
//! `mid_frame`, half a frame goes out first. With `mid_handshake`, no
//! socket is established: the end comes in the middle of the handshake,
//! over TLS right after a real ClientHello (and the server's first answer,
//! its ServerHello flight), where a server that waits for the client's
//! Finished without a deadline would hang on to the socket forever.

use super::{CONNECT_TIMEOUT, FaultContext, pace};
use crate::report::Findings;
use crate::ws::frame::{Frame, OP_TEXT};
use crate::ws::handshake::{io_kind, open_tcp, upgrade_request};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

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
            if ctx.step.mid_handshake {
                return match mid_handshake(&ctx, i, ending).await {
                    Ok(()) => ctx.progress.done(),
                    Err(kind) => ctx.progress.fail(kind),
                };
            }
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

/// `mid_handshake`: TCP connect, the client's first flight (a ClientHello
/// for a `wss://` target, else the first half of the upgrade request), then
/// up to `after` for the server's first answer, then the end. Fails with
/// the kind of what went wrong before the end could be dealt.
async fn mid_handshake(ctx: &FaultContext, i: u64, ending: Ending) -> Result<(), &'static str> {
    let tcp = timeout(CONNECT_TIMEOUT, open_tcp(&ctx.endpoint, None)).await;
    let mut tcp = match tcp {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return Err(io_kind(&e)),
        Err(_) => return Err("timeout"),
    };
    let first = if ctx.endpoint.url.scheme.is_tls() {
        ctx.target
            .tls
            .client_hello(&ctx.endpoint.url.host)
            .map_err(|_| "tls")?
    } else {
        let (request, _) = upgrade_request(
            &ctx.endpoint,
            ctx.target.token(i).as_deref(),
            ctx.target.placement,
        );
        let mut bytes = request.into_bytes();
        bytes.truncate(bytes.len() / 2);
        bytes
    };
    if tcp.write_all(&first).await.is_err() {
        return Err("server_closed");
    }
    // The server's answer (its ServerHello flight), or nothing within
    // `after`: either way the handshake is left in the middle.
    let mut answer = [0u8; 4096];
    let _ = timeout(ctx.step.after, tcp.read(&mut answer)).await;
    match ending {
        Ending::Rst => tcp.set_zero_linger().map_err(|_| "linger"),
        Ending::Fin => {
            fin_and_drain(tcp, FIN_WAIT).await;
            Ok(())
        }
    }
}

/// Shuts the write side, then reads (discarding) until the server closes or
/// `wait` passes.
async fn fin_and_drain(mut tcp: TcpStream, wait: Duration) {
    if tcp.shutdown().await.is_err() {
        return;
    }
    let _ = timeout(wait, async {
        let mut sink = [0u8; 8192];
        while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}
