//! Helpers shared by the chaos crate's integration tests: relays (in
//! process, or as a real child process), a raw upgrade listener that tells
//! an RST from a FIN, and metric scraping. Real sockets on loopback only.
#![allow(dead_code)] // each test binary uses a different subset

use squall_chaos::agent::{AgentConfig, ChaosAgent, LastChaos};
use squall_chaos::http;
use squall_chaos::report::StepReport;
use squall_chaos::scenario::ChaosStep;
use squall_chaos::target::{self, ChaosTarget, squall_subscribe};
use squall_chaos::tokens;
use squall_chaos::watchdog::StderrTail;
use squall_proto::{LoopbackGuard, Origin};
use squall_relay::RelayConfig;
use squall_relay::auth::AuthConfig;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// The HS256 secret of the test relays.
pub const SECRET: &str = "chaos-test-secret";
/// Generous bound for anything that should happen "soon" on a loaded box.
pub const SOON: Duration = Duration::from_secs(20);

/// An in-process relay with HS256 auth.
pub async fn relay() -> squall_relay::RelayHandle {
    relay_with(RelayConfig {
        auth: AuthConfig::hs256(SECRET.as_bytes()),
        ..RelayConfig::default()
    })
    .await
}

/// An in-process relay with this config.
pub async fn relay_with(config: RelayConfig) -> squall_relay::RelayHandle {
    squall_relay::start_loopback(config)
        .await
        .expect("bind loopback")
}

/// A chaos target for `ws_url` with HS256 tokens and one subscribe topic.
pub fn target(ws_url: &str) -> ChaosTarget {
    ChaosTarget {
        tokens: Some(tokens::hs256_source(SECRET.to_string())),
        subscribe_frames: vec![squall_subscribe("chaos")],
        jwt_secret: Some(SECRET.to_string()),
        ..ChaosTarget::new(ws_url)
    }
}

/// Runs one step now against `target` and returns its report.
pub async fn run_step(step: ChaosStep, target: ChaosTarget) -> StepReport {
    let config = AgentConfig {
        steps: vec![step],
        target,
        origin: Origin::now(),
        last_chaos: LastChaos::default(),
    };
    let mut agent = ChaosAgent::start(config).await.expect("agent starts");
    for _ in 0..1200 {
        if agent.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    agent.finish(Duration::ZERO).await.remove(0)
}

/// GETs `path` on `addr`.
pub async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let endpoint = target::endpoint(
        &format!("http://{addr}{path}"),
        &LoopbackGuard::loopback_only(),
    )
    .unwrap();
    http::get(&endpoint, &squall_proto::TlsClient::default(), SOON)
        .await
        .expect("GET answers")
}

/// The value of one sample in a Prometheus text page (0 when absent).
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            l.strip_prefix(name)
                .filter(|rest| rest.starts_with(' '))
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

/// Scrapes `/metrics` until `until` holds (bounded by [`SOON`]).
pub async fn metrics_until(addr: SocketAddr, until: impl Fn(&str) -> bool) -> String {
    let mut text = String::new();
    for _ in 0..(SOON.as_millis() / 50) {
        text = get(addr, "/metrics").await.1;
        if until(&text) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    text
}

/// A TCP echo server on the current runtime.
pub async fn echo() -> SocketAddr {
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

/// How a connection to the raw listener ended, as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEnd {
    /// `rst` (ECONNRESET on read), `fin` (a 0-byte read) or `open` (still
    /// open when the listener stopped waiting).
    pub end: &'static str,
    /// The bytes received after the upgrade.
    pub bytes: Vec<u8>,
}

/// A raw TCP listener that completes WebSocket upgrades by hand, then only
/// reads, and reports how each connection ended. `wait` bounds each one.
pub async fn raw_listener(wait: Duration) -> (SocketAddr, mpsc::UnboundedReceiver<RawEnd>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Some(end) = upgrade_then_read(stream, wait).await {
                    let _ = tx.send(end);
                }
            });
        }
    });
    (addr, rx)
}

async fn upgrade_then_read(mut stream: TcpStream, wait: Duration) -> Option<RawEnd> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let key = head
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))?
        .trim()
        .to_string();
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    stream.write_all(response.as_bytes()).await.ok()?;
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    let read_all = async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) => return "fin",
                Ok(n) => bytes.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return "rst",
                Err(_) => return "error",
            }
        }
    };
    let end = tokio::time::timeout(wait, read_all).await.unwrap_or("open");
    Some(RawEnd { end, bytes })
}

/// Receives `n` ends (bounded by [`SOON`]).
pub async fn ends(rx: &mut mpsc::UnboundedReceiver<RawEnd>, n: usize) -> Vec<RawEnd> {
    let mut out = Vec::new();
    while out.len() < n {
        match tokio::time::timeout(SOON, rx.recv()).await {
            Ok(Some(end)) => out.push(end),
            _ => break,
        }
    }
    out
}

/// The `squall-relay` binary (of the `squall` package), built once per test
/// process with the same cargo and target directory as the tests (another
/// package's binary has no `CARGO_BIN_EXE_` variable here).
pub fn relay_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let status = Command::new(env!("CARGO"))
                .args(["build", "-p", "squall", "--bin", "squall-relay"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("run cargo build");
            assert!(status.success(), "cargo build --bin squall-relay failed");
            // tests run from target/debug/deps/<test>; the binary is in target/debug.
            let exe = std::env::current_exe().unwrap();
            let dir = exe.parent().and_then(Path::parent).expect("target/debug");
            let binary = dir.join("squall-relay");
            assert!(binary.exists(), "{} missing", binary.display());
            binary
        })
        .clone()
}

/// A relay as a real child process (so it can hang, be stopped, be traced).
pub struct RelayProcess {
    /// The child.
    pub child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its scratch directory (ready file).
    pub dir: PathBuf,
    /// Its stderr's last lines.
    pub stderr: StderrTail,
}

impl RelayProcess {
    /// Starts `squall-relay` with HS256 auth and `extra` flags; stderr piped.
    pub fn start(name: &str, extra: &[&str]) -> Self {
        let dir =
            std::env::temp_dir().join(format!("squall-chaos-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ready = dir.join("ready");
        let mut child = Command::new(relay_binary())
            .args([
                "--addr",
                "127.0.0.1:0",
                "--jwt-secret",
                SECRET,
                "--ready-file",
            ])
            .arg(&ready)
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn squall-relay");
        for _ in 0..800 {
            if let Ok(text) = std::fs::read_to_string(&ready)
                && let Ok(addr) = text.trim().parse()
            {
                let stderr = StderrTail::capture(child.stderr.take().expect("piped stderr"), None);
                return Self {
                    child,
                    addr,
                    dir,
                    stderr,
                };
            }
            assert!(child.try_wait().unwrap().is_none(), "relay exited early");
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("relay never became ready");
    }

    /// `ws://ADDR/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// `http://ADDR/PATH`.
    pub fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
