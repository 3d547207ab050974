//! Running out of file descriptors: the relay warns once, keeps the process
//! and its open connections alive, and accepts again once descriptors free up.

mod common;

use common::relay_binary;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

const FD_LIMIT: u64 = 64;

#[test]
fn accept_survives_emfile_and_warns_once() {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let log = std::fs::File::create(dir.path().join("stderr")).unwrap();
    let mut cmd = Command::new(relay_binary());
    cmd.args(["--addr", "127.0.0.1:0", "--no-auth", "--ready-file"])
        .arg(&ready)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log);
    // SAFETY: only async-signal-safe setrlimit between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: FD_LIMIT,
                rlim_max: FD_LIMIT,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let mut child = cmd.spawn().expect("spawn squall-relay");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let result = runtime.block_on(async {
        let mut addr = None;
        for _ in 0..400 {
            if let Ok(text) = std::fs::read_to_string(&ready) {
                addr = text.trim().parse().ok();
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let addr: std::net::SocketAddr = addr.expect("ready file");
        // More connections than descriptors: the excess wait in the backlog.
        let attempts = (0..FD_LIMIT + 16).map(|_| {
            let url = format!("ws://{addr}/ws");
            tokio::spawn(async move {
                tokio::time::timeout(
                    Duration::from_secs(5),
                    tokio_tungstenite::connect_async(url),
                )
                .await
            })
        });
        let mut open = Vec::new();
        for attempt in attempts.collect::<Vec<_>>() {
            if let Ok(Ok((ws, _))) = attempt.await.unwrap() {
                open.push(ws);
            }
        }
        let held = open.len();
        drop(open);
        // Descriptors free up: the relay answers again.
        let mut answered = false;
        for _ in 0..100 {
            let probe = tokio::time::timeout(Duration::from_secs(1), get_status(addr)).await;
            if matches!(probe, Ok(Some(200))) {
                answered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (held, answered)
    });
    let alive = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    let (held, answered) = result;
    assert!(alive, "the relay survives EMFILE");
    assert!(
        held > 0 && (held as u64) < FD_LIMIT,
        "held {held} connections under a limit of {FD_LIMIT}"
    );
    assert!(answered, "/health answers once descriptors are free again");
    let stderr = std::fs::read_to_string(dir.path().join("stderr")).unwrap();
    assert_eq!(
        stderr.matches("out of file descriptors").count(),
        1,
        "warned once:\n{stderr}"
    );
}

async fn get_status(addr: std::net::SocketAddr) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.ok()?;
    String::from_utf8_lossy(&answer)
        .split(' ')
        .nth(1)?
        .parse()
        .ok()
}
