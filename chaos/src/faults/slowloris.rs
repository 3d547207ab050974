//! `slowloris`: upgrade requests trickled one byte every `trickle`, each
//! socket held for at most `hold`. A server with a header deadline closes
//! them early; `server_closed` counts those. Over TLS (`wss://`) the
//! handshake completes first and the request is trickled inside it.

use super::{FaultContext, pace};
use crate::report::Findings;
use crate::scenario::DEFAULT_HOLD;
use crate::ws::handshake::{io_kind, open, upgrade_request};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{Instant, sleep_until, timeout};

/// Runs the step's `count` sockets.
pub async fn run(ctx: Arc<FaultContext>) -> Findings {
    let closed = Arc::new(AtomicU64::new(0));
    let hold = ctx.step.hold.unwrap_or(DEFAULT_HOLD);
    pace::each(ctx.step.count, ctx.step.rate, pace::MAX_IN_FLIGHT, |i| {
        let (ctx, closed) = (ctx.clone(), closed.clone());
        async move {
            let options = ctx.options(i);
            let stream = match timeout(super::CONNECT_TIMEOUT, open(&ctx.endpoint, &options)).await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return ctx.progress.fail(io_kind(&e)),
                Err(_) => return ctx.progress.fail("timeout"),
            };
            let (request, _key) = upgrade_request(
                &ctx.endpoint,
                ctx.target.token(i).as_deref(),
                ctx.target.placement,
            );
            let request = request.into_bytes();
            let (mut reader, mut writer) = tokio::io::split(stream);
            let deadline = Instant::now() + hold;
            let (mut sent, mut next) = (0, Instant::now());
            let mut sink = [0u8; 1024];
            // Whether the server closed (FIN, RST, or refused a write) before the hold ended.
            let server_closed = loop {
                tokio::select! {
                    read = reader.read(&mut sink) => match read {
                        Ok(0) | Err(_) => break true,
                        Ok(_) => continue,
                    },
                    _ = sleep_until(next), if sent < request.len() => {
                        if writer.write_all(&request[sent..=sent]).await.is_err() {
                            break true;
                        }
                        sent += 1;
                        next += ctx.step.trickle;
                    }
                    _ = sleep_until(deadline) => break false,
                }
            };
            if server_closed {
                closed.fetch_add(1, Ordering::Relaxed);
            }
            let _ = reader.unsplit(writer).tcp().set_zero_linger();
            ctx.progress.done();
        }
    })
    .await;
    Findings {
        server_closed: Some(closed.load(Ordering::Relaxed)),
        ..Findings::default()
    }
}
