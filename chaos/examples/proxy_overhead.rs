//! What the fault proxy (no toxics) adds to a message's round trip at a
//! fixed rate, measured against the direct path in the same run: the same
//! echo server, the same client, direct and proxied connections side by
//! side, messages sent on a fixed schedule.
//!
//!   cargo run --release -p squall-chaos --example proxy_overhead -- [RATE] [SECONDS]
//!
//! RATE is messages per second in all (default 10,000), half direct, half
//! through the proxy, over 10 connections each; every message is 64 bytes
//! and echoed. The echo server, the proxy and the client each run on a
//! runtime of their own.

use hdrhistogram::Histogram;
use squall_chaos::proxy::FaultProxy;
use squall_proto::LoopbackGuard;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CONNECTIONS: usize = 10;
const MESSAGE: usize = 64;

fn main() {
    let mut args = std::env::args().skip(1);
    let rate: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000.0);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);

    let echo = on_own_runtime("echo", |tx| async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        tx.send(listener.local_addr().unwrap()).unwrap();
        while let Ok((mut stream, _)) = listener.accept().await {
            stream.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let proxy = on_own_runtime("proxy", move |tx| async move {
        let proxy = FaultProxy::start(
            "127.0.0.1:0".parse().unwrap(),
            echo,
            &LoopbackGuard::loopback_only(),
        )
        .await
        .unwrap();
        tx.send(proxy.local_addr()).unwrap();
        std::future::pending::<()>().await;
    });

    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (direct, proxied) = client.block_on(async {
        let per_connection = rate / 2.0 / CONNECTIONS as f64;
        let run = |addr: SocketAddr| async move {
            let mut tasks = Vec::new();
            for _ in 0..CONNECTIONS {
                tasks.push(tokio::spawn(connection(
                    addr,
                    per_connection,
                    Duration::from_secs(seconds),
                )));
            }
            let mut all = Histogram::<u64>::new(3).unwrap();
            for task in tasks {
                all.add(task.await.unwrap()).unwrap();
            }
            all
        };
        tokio::join!(run(echo), run(proxy))
    });
    let us = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "rate {rate:.0} msg/s for {seconds} s ({} + {} round trips)",
        direct.len(),
        proxied.len()
    );
    println!(
        "direct   rtt p50 {:7.1} us  p99 {:7.1} us",
        us(&direct, 0.5),
        us(&direct, 0.99)
    );
    println!(
        "proxied  rtt p50 {:7.1} us  p99 {:7.1} us",
        us(&proxied, 0.5),
        us(&proxied, 0.99)
    );
    println!(
        "added    p50 {:7.1} us  p99 {:7.1} us  (ratio p50 {:.2}, p99 {:.2})",
        us(&proxied, 0.5) - us(&direct, 0.5),
        us(&proxied, 0.99) - us(&direct, 0.99),
        us(&proxied, 0.5) / us(&direct, 0.5),
        us(&proxied, 0.99) / us(&direct, 0.99)
    );
}

/// Starts `f` on a single-threaded runtime of its own; returns the address it reports.
fn on_own_runtime<F, Fut>(name: &str, f: F) -> SocketAddr
where
    F: FnOnce(std::sync::mpsc::Sender<SocketAddr>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(f(tx));
        })
        .unwrap();
    rx.recv().unwrap()
}

/// Sends a message every `1/rate` s for `length`, reading the echoes on
/// the side; returns round trips in nanoseconds.
async fn connection(addr: SocketAddr, rate: f64, length: Duration) -> Histogram<u64> {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut r, mut w) = stream.into_split();
    let start = Instant::now();
    let count = (rate * length.as_secs_f64()) as u64;
    let sender = tokio::spawn(async move {
        let mut message = [0u8; MESSAGE];
        for i in 0..count {
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
            let sent = start.elapsed().as_nanos() as u64;
            message[..8].copy_from_slice(&sent.to_le_bytes());
            w.write_all(&message).await.unwrap();
        }
        w
    });
    let mut histogram = Histogram::<u64>::new(3).unwrap();
    let mut message = [0u8; MESSAGE];
    for _ in 0..count {
        r.read_exact(&mut message).await.unwrap();
        let sent = u64::from_le_bytes(message[..8].try_into().unwrap());
        histogram
            .record(
                (start.elapsed().as_nanos() as u64)
                    .saturating_sub(sent)
                    .max(1),
            )
            .unwrap();
    }
    drop(sender.await);
    histogram
}
