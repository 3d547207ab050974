//! Each toxic of the fault proxy, measured over real sockets: latency adds
//! what it says, bandwidth caps what it says, reset_peer resets, timeout
//! black-holes, slicer slices, limit_data cuts; ends propagate (RST as RST,
//! FIN as FIN); the control API adds and removes toxics; the agent's proxy
//! step puts the proxy in the load's path.

mod common;

use common::*;
use squall_chaos::proxy::FaultProxy;
use squall_chaos::proxy::toxics::{Stream, Toxic, ToxicSpec};
use squall_proto::{LoopbackGuard, Origin};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A server that writes `bytes` bytes to each client, then closes.
async fn source(bytes: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = stream.write_all(&vec![7u8; bytes]).await;
                let _ = stream.shutdown().await;
                let mut sink = [0u8; 64];
                let _ = tokio::time::timeout(SOON, stream.read(&mut sink)).await;
            });
        }
    });
    addr
}

async fn proxy_to(upstream: SocketAddr, toxics: &[ToxicSpec]) -> FaultProxy {
    let proxy = FaultProxy::start(
        "127.0.0.1:0".parse().unwrap(),
        upstream,
        &LoopbackGuard::loopback_only(),
    )
    .await
    .unwrap();
    for toxic in toxics {
        proxy.toxics().add(toxic.clone()).unwrap();
    }
    proxy
}

/// Median round trip of `n` 16-byte messages over one connection.
async fn median_rtt(addr: SocketAddr, n: usize) -> Duration {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let mut samples = Vec::new();
    let mut buf = [0u8; 16];
    for _ in 0..n {
        let start = Instant::now();
        stream.write_all(&[1u8; 16]).await.unwrap();
        stream.read_exact(&mut buf).await.unwrap();
        samples.push(start.elapsed());
    }
    samples.sort();
    samples[n / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_adds_what_it_says_per_direction() {
    let echo = echo().await;
    let direct = median_rtt(echo, 20).await;
    let down = proxy_to(
        echo,
        &[ToxicSpec::new(
            Toxic::Latency {
                latency: 100,
                jitter: 0,
            },
            Stream::Downstream,
        )],
    )
    .await;
    let added = median_rtt(down.local_addr(), 10)
        .await
        .saturating_sub(direct);
    assert!(
        added >= Duration::from_millis(100) && added < Duration::from_millis(130),
        "downstream 100 ms added {added:?}"
    );
    let both = proxy_to(
        echo,
        &[
            ToxicSpec::new(
                Toxic::Latency {
                    latency: 100,
                    jitter: 0,
                },
                Stream::Downstream,
            ),
            ToxicSpec::new(
                Toxic::Latency {
                    latency: 50,
                    jitter: 10,
                },
                Stream::Upstream,
            ),
        ],
    )
    .await;
    let added = median_rtt(both.local_addr(), 10)
        .await
        .saturating_sub(direct);
    assert!(
        added >= Duration::from_millis(140) && added < Duration::from_millis(190),
        "100 + 50±10 ms added {added:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bandwidth_caps_what_it_says() {
    let bytes = 1_000_000;
    let proxy = proxy_to(
        source(bytes).await,
        &[ToxicSpec::new(
            Toxic::Bandwidth { rate: 500 },
            Stream::Downstream,
        )],
    )
    .await;
    let mut stream = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let start = Instant::now();
    let mut got = Vec::new();
    tokio::time::timeout(SOON, stream.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    let rate_kb_s = got.len() as f64 / 1000.0 / start.elapsed().as_secs_f64();
    assert_eq!(got.len(), bytes);
    assert!(
        (200.0..=550.0).contains(&rate_kb_s),
        "500 KB/s cap gave {rate_kb_s:.0} KB/s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_peer_resets_both_sides() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    let proxy = proxy_to(
        upstream,
        &[ToxicSpec::new(
            Toxic::ResetPeer { timeout: 200 },
            Stream::Downstream,
        )],
    )
    .await;
    let mut client = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let (mut server, _) = listener.accept().await.unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 16];
    let client_end = tokio::time::timeout(SOON, client.read(&mut buf))
        .await
        .unwrap();
    assert_eq!(
        client_end.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionReset)
    );
    assert!(
        start.elapsed() >= Duration::from_millis(190),
        "reset after {:?}",
        start.elapsed()
    );
    let server_end = tokio::time::timeout(SOON, server.read(&mut buf))
        .await
        .unwrap();
    assert_eq!(
        server_end.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionReset)
    );
    assert_eq!(proxy.toxics().cut(), 1, "one connection, counted once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ends_pass_through_as_they_came() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = proxy_to(listener.local_addr().unwrap(), &[]).await;
    let mut buf = [0u8; 16];
    // An RST from the client reaches the server as an RST.
    let client = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let (mut server, _) = listener.accept().await.unwrap();
    client.set_zero_linger().unwrap();
    drop(client);
    let end = tokio::time::timeout(SOON, server.read(&mut buf))
        .await
        .unwrap();
    assert_eq!(
        end.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionReset)
    );
    // A FIN as a FIN, and the other direction stays open.
    let mut client = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let (mut server, _) = listener.accept().await.unwrap();
    client.write_all(b"bye").await.unwrap();
    client.shutdown().await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(SOON, server.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, b"bye");
    server.write_all(b"still here").await.unwrap();
    drop(server);
    let mut got = Vec::new();
    tokio::time::timeout(SOON, client.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, b"still here");
    assert_eq!(
        proxy.toxics().cut(),
        0,
        "ends that came from a side are not cuts"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_black_holes_then_closes() {
    let proxy = proxy_to(
        echo().await,
        &[ToxicSpec::new(
            Toxic::Timeout { timeout: 500 },
            Stream::Upstream,
        )],
    )
    .await;
    let mut client = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let start = Instant::now();
    client.write_all(b"hello?").await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(SOON, client.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert!(got.is_empty(), "the echo answered through a black hole");
    assert!(
        start.elapsed() >= Duration::from_millis(450),
        "closed after {:?}",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slicer_slices_and_limit_data_cuts() {
    let proxy = proxy_to(
        source(2000).await,
        &[ToxicSpec::new(
            Toxic::Slicer {
                average_size: 10,
                size_variation: 5,
                delay: 2000,
            },
            Stream::Downstream,
        )],
    )
    .await;
    let mut client = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let (mut reads, mut total) = (0, 0);
    let mut buf = [0u8; 4096];
    while let Ok(Ok(n @ 1..)) = tokio::time::timeout(SOON, client.read(&mut buf)).await {
        reads += 1;
        total += n;
    }
    assert_eq!(total, 2000);
    assert!(
        reads >= 40,
        "2000 bytes in slices of 10±5 every 2 ms came in {reads} reads"
    );

    let proxy = proxy_to(
        source(5000).await,
        &[ToxicSpec::new(
            Toxic::LimitData { bytes: 1000 },
            Stream::Downstream,
        )],
    )
    .await;
    let mut client = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(SOON, client.read_to_end(&mut got))
        .await
        .unwrap();
    assert_eq!(got.len(), 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_and_its_api_listen_on_loopback_only_unless_allowed() {
    let echo = echo().await;
    let guard = LoopbackGuard::loopback_only();
    for listen in ["0.0.0.0:0", "[::]:0"] {
        let refused = FaultProxy::start(listen.parse().unwrap(), echo, &guard).await;
        assert!(
            refused.as_ref().is_err_and(|e| e.is_refused()),
            "{listen}: {refused:?}"
        );
    }
    let proxy = proxy_to(echo, &[]).await;
    let refused = proxy.start_api("0.0.0.0:0".parse().unwrap()).await;
    assert!(
        refused.as_ref().is_err_and(|e| e.is_refused()),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_api_adds_lists_and_removes_toxics() {
    let echo = echo().await;
    let proxy = proxy_to(echo, &[]).await;
    let api = proxy
        .start_api("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let request = |raw: String| async move {
        let mut stream = TcpStream::connect(api).await.unwrap();
        stream.write_all(raw.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    };
    let body =
        r#"{"name":"lag","type":"latency","stream":"downstream","attributes":{"latency":100}}"#;
    let post = format!(
        "POST /toxics HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    assert!(request(post.clone()).await.starts_with("HTTP/1.1 200"));
    assert!(request(post).await.starts_with("HTTP/1.1 409"));
    let list = request("GET /toxics HTTP/1.1\r\nHost: x\r\n\r\n".into()).await;
    assert!(
        list.contains(r#""name":"lag""#) && list.contains(r#""latency":100"#),
        "{list}"
    );
    let direct = median_rtt(echo, 10).await;
    assert!(median_rtt(proxy.local_addr(), 5).await >= direct + Duration::from_millis(100));
    assert!(
        request("DELETE /toxics/lag HTTP/1.1\r\nHost: x\r\n\r\n".into())
            .await
            .starts_with("HTTP/1.1 204")
    );
    assert!(
        request("DELETE /toxics/lag HTTP/1.1\r\nHost: x\r\n\r\n".into())
            .await
            .starts_with("HTTP/1.1 404")
    );
    assert!(median_rtt(proxy.local_addr(), 5).await < Duration::from_millis(50));
    let bad = r#"{"type":"latency","attributes":{"latnecy":1}}"#;
    let post = format!(
        "POST /toxics HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{bad}",
        bad.len()
    );
    assert!(request(post).await.starts_with("HTTP/1.1 400"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_step_puts_latency_in_the_loads_path_for_its_hold() {
    use squall_chaos::agent::{AgentConfig, ChaosAgent, LastChaos};
    use squall_chaos::scenario::{Action, ChaosStep};
    let relay = relay().await;
    let step = ChaosStep {
        hold: Some(Duration::from_secs(3)),
        toxics: vec![ToxicSpec::new(
            Toxic::Latency {
                latency: 100,
                jitter: 0,
            },
            Stream::Downstream,
        )],
        ..ChaosStep::new(Duration::from_millis(500), Action::Proxy)
    };
    let config = AgentConfig {
        steps: vec![step],
        target: target(&relay.ws_url()),
        origin: Origin::now(),
        last_chaos: LastChaos::default(),
    };
    let agent = ChaosAgent::start(config).await.unwrap();
    assert_ne!(agent.load_url(), relay.ws_url());
    let endpoint =
        squall_chaos::target::endpoint(agent.load_url(), &LoopbackGuard::loopback_only()).unwrap();
    let options = squall_chaos::ws::ConnectOptions {
        token: Some(squall_chaos::tokens::mint_hs256(
            SECRET,
            "p",
            Duration::from_secs(60),
        )),
        ..Default::default()
    };
    let mut ws = squall_chaos::ws::connect(&endpoint, &options)
        .await
        .unwrap();
    let ping = async |ws: &mut squall_chaos::ws::WsConn| {
        let start = Instant::now();
        ws.send_text(r#"{"type":"Ping","data":{"timestamp":1}}"#)
            .await
            .unwrap();
        ws.read_frame().await.unwrap();
        start.elapsed()
    };
    let before = ping(&mut ws).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let during = ping(&mut ws).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = ping(&mut ws).await;
    assert!(before < Duration::from_millis(50), "before {before:?}");
    assert!(during >= Duration::from_millis(100), "during {during:?}");
    assert!(after < Duration::from_millis(50), "after {after:?}");
    let reports = agent.finish(Duration::ZERO).await;
    assert_eq!(
        (reports[0].done, reports[0].state.as_str()),
        (1, "finished"),
        "{reports:?}"
    );
}
