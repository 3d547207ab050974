//! Resets injected per second: the `reset` fault (connect, upgrade,
//! subscribe, RST) run flat out against a target, and against a raw
//! listener in the same run (it upgrades and does nothing else: the
//! injector's own ceiling on this machine).
//!
//!   cargo run --release -p squall-chaos --example reset_rate -- [COUNT] [WS_URL] [JWT_SECRET]
//!
//! Without WS_URL only the raw listener is measured. The raw listener runs
//! on a runtime of its own; `after` is 0 (the RST follows the subscribe).

use squall_chaos::agent::{AgentConfig, ChaosAgent, LastChaos};
use squall_chaos::scenario::{Action, ChaosStep};
use squall_chaos::target::{ChaosTarget, squall_subscribe};
use squall_chaos::tokens;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn main() {
    let mut args = std::env::args().skip(1);
    let count: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let url = args.next();
    let secret = args.next();

    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(upgrade_and_drain(stream));
            }
        });
    });
    let raw = format!("ws://{}/ws", rx.recv().unwrap());

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let raw_rate = runtime.block_on(measure(count, &raw, None));
    println!("raw listener: {raw_rate:.0} resets/s ({count} resets)");
    if let Some(url) = url {
        let rate = runtime.block_on(measure(count, &url, secret));
        println!(
            "{url}: {rate:.0} resets/s ({count} resets), {:.2} of the raw listener's rate",
            rate / raw_rate
        );
    }
}

/// Runs `count` resets against `url` as fast as the agent goes; resets per second.
async fn measure(count: u64, url: &str, secret: Option<String>) -> f64 {
    let step = ChaosStep {
        count,
        after: Duration::ZERO,
        ..ChaosStep::new(Duration::ZERO, Action::Reset)
    };
    let target = ChaosTarget {
        tokens: secret.map(tokens::hs256_source),
        subscribe_frames: vec![squall_subscribe("bench")],
        ..ChaosTarget::new(url)
    };
    let start = Instant::now();
    let config = AgentConfig {
        steps: vec![step],
        target,
        origin: squall_proto::Origin::now(),
        last_chaos: LastChaos::default(),
    };
    let mut agent = ChaosAgent::start(config).await.unwrap();
    while !agent.is_finished() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let report = agent.finish(Duration::ZERO).await.remove(0);
    assert_eq!(report.failed, 0, "{report:?}");
    report.done as f64 / elapsed
}

/// Answers the upgrade, then reads until the peer goes.
async fn upgrade_and_drain(mut stream: tokio::net::TcpStream) {
    let mut head = Vec::new();
    let mut chunk = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head);
    let Some(key) = text
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
    else {
        return;
    };
    let accept =
        tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.trim().as_bytes());
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    if stream.write_all(answer.as_bytes()).await.is_err() {
        return;
    }
    while matches!(stream.read(&mut chunk).await, Ok(n) if n > 0) {}
}
