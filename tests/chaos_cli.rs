//! The standalone commands as the CLI calls them: `squall chaos ...` and
//! `squall proxy ...`, parsed by clap and run to their exit code (moved here
//! from the chaos crate, which no longer holds command-line code; issue 9).

use clap::Parser;
use squall::cmd::chaos::ChaosArgs;
use squall::cmd::proxy::ProxyArgs;
use squall_relay::RelayConfig;
use squall_relay::auth::AuthConfig;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// The HS256 secret of the test relays.
const SECRET: &str = "chaos-test-secret";

/// An in-process relay with HS256 auth.
async fn relay() -> squall_relay::RelayHandle {
    relay_with(RelayConfig {
        auth: AuthConfig::hs256(SECRET.as_bytes()),
        ..RelayConfig::default()
    })
    .await
}

/// An in-process relay with this config.
async fn relay_with(config: RelayConfig) -> squall_relay::RelayHandle {
    squall_relay::start_loopback(config)
        .await
        .expect("bind loopback")
}

/// A TCP echo server on the current runtime.
async fn echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

#[derive(Debug, Parser)]
enum Squall {
    Chaos(ChaosArgs),
    Proxy(ProxyArgs),
}

/// Parses and runs a command, and turns its outcome into the process exit
/// code exactly as `squall`'s `main` does.
fn run(args: &[&str]) -> ExitCode {
    squall::exit::finish(
        match Squall::try_parse_from(std::iter::once("squall").chain(args.iter().copied()))
            .expect("arguments parse")
        {
            Squall::Chaos(args) => squall::cmd::chaos::run(args),
            Squall::Proxy(args) => squall::cmd::proxy::run(args),
        },
    )
}

fn code(n: u8) -> String {
    format!("{:?}", ExitCode::from(n))
}

/// Runs `f` on a runtime of its own thread, for servers the tests talk to.
fn serve<T: Send + 'static>(f: impl AsyncFnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            tx.send(f().await).unwrap();
            std::future::pending::<()>().await
        });
    });
    rx.recv().unwrap()
}

#[test]
fn chaos_refuses_a_remote_target_as_a_usage_error() {
    assert_eq!(
        format!(
            "{:?}",
            run(&["chaos", "reset", "--target", "ws://10.0.0.1:80/ws"])
        ),
        code(2)
    );
    assert_eq!(
        format!(
            "{:?}",
            run(&[
                "chaos",
                "reset",
                "--target",
                "ws://127.0.0.1:1/ws",
                "--count",
                "0"
            ])
        ),
        code(2)
    );
}

#[test]
fn chaos_exits_0_when_every_check_passes_and_3_when_one_does_not() {
    // The handles stay alive (a dropped handle stops its relay).
    let secured_relay = serve(async || relay().await);
    let secured = secured_relay.ws_url();
    let ok = run(&[
        "chaos",
        "garbage",
        "--target",
        &secured,
        "--jwt-secret",
        SECRET,
    ]);
    assert_eq!(format!("{ok:?}"), code(0));
    let ok = run(&[
        "chaos",
        "reset",
        "--target",
        &secured,
        "--jwt-secret",
        SECRET,
        "--count",
        "50",
        "--mid-frame",
    ]);
    assert_eq!(format!("{ok:?}"), code(0));
    let open_relay = serve(async || relay_with(RelayConfig::default()).await);
    let open = open_relay.ws_url();
    let breached = run(&[
        "chaos", "badauth", "--target", &open, "--case", "alg_none", "--json",
    ]);
    assert_eq!(format!("{breached:?}"), code(3));
}

#[test]
fn chaos_exits_1_when_nothing_could_be_done() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("ws://{closed}/ws");
    assert_eq!(
        format!(
            "{:?}",
            run(&["chaos", "drop", "--target", &url, "--count", "3"])
        ),
        code(1)
    );
}

#[test]
fn proxy_runs_with_toxics_for_its_duration() {
    let echo = serve(async || echo().await);
    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (listen_s, echo_s) = (listen.to_string(), echo.to_string());
    let proxy = std::thread::spawn(move || {
        run(&[
            "proxy",
            "--listen",
            &listen_s,
            "--upstream",
            &echo_s,
            "--toxic",
            "latency:latency=50,stream=downstream",
            "--duration",
            "4s",
        ])
    });
    let mut stream = None;
    for _ in 0..100 {
        if let Ok(s) = std::net::TcpStream::connect(listen) {
            stream = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut stream = stream.expect("the proxy listens");
    use std::io::{Read, Write};
    let start = Instant::now();
    stream.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    stream.read_exact(&mut buf).unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(50),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(format!("{:?}", proxy.join().unwrap()), code(0));
    assert_eq!(
        format!(
            "{:?}",
            run(&[
                "proxy",
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                "10.0.0.1:80"
            ])
        ),
        code(2)
    );
    assert!(
        Squall::try_parse_from([
            "squall",
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "x:1",
            "--toxic",
            "warp:speed=9"
        ])
        .is_err()
    );
}

/// A server that completes WebSocket upgrades and then only reads: it
/// never answers a protocol violation (the violation is the server's).
async fn silent_upgrader() -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if !matches!(stream.read(&mut byte).await, Ok(1)) {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let Some(key) = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
                else {
                    return;
                };
                let accept = squall_chaos::ws::handshake::accept_key(key);
                let response = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
                );
                if stream.write_all(response.as_bytes()).await.is_ok() {
                    let mut sink = [0u8; 4096];
                    let read_all =
                        async { while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {} };
                    let _ = tokio::time::timeout(Duration::from_secs(30), read_all).await;
                }
            });
        }
    });
    addr
}

/// Issue 8: garbage is judged by RFC 6455, and a target that does not
/// follow it is a finding about the target: exit 0 with the finding
/// listed, not 3; 1 only when nothing could be done.
#[test]
fn chaos_garbage_reports_findings_about_the_target_and_exits_0() {
    let server = serve(async || silent_upgrader().await);
    let url = format!("ws://{server}/ws");
    let found = run(&[
        "chaos",
        "garbage",
        "--target",
        &url,
        "--case",
        "unmasked",
        "--not-squall",
    ]);
    assert_eq!(format!("{found:?}"), code(0));
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let nothing = run(&[
        "chaos",
        "garbage",
        "--target",
        &format!("ws://{closed}/ws"),
        "--case",
        "unmasked",
    ]);
    assert_eq!(format!("{nothing:?}"), code(1));
}

/// Issue 8: the proxy and its unauthenticated API listen on loopback only
/// unless --allow-remote.
#[test]
fn proxy_refuses_to_listen_beyond_loopback_without_allow_remote() {
    let echo = serve(async || echo().await).to_string();
    for args in [
        &["--listen", "0.0.0.0:0"][..],
        &["--listen", "127.0.0.1:0", "--api", "0.0.0.0:0"][..],
        &["--listen", "[::]:0"][..],
    ] {
        let mut argv = vec!["proxy", "--upstream", echo.as_str(), "--duration", "1s"];
        argv.extend_from_slice(args);
        assert_eq!(format!("{:?}", run(&argv)), code(2), "{args:?}");
    }
    let allowed = run(&[
        "proxy",
        "--listen",
        "0.0.0.0:0",
        "--upstream",
        &echo,
        "--duration",
        "300ms",
        "--allow-remote",
    ]);
    assert_eq!(format!("{allowed:?}"), code(0));
}
