//! Graceful shutdown: every socket gets a 1001 close; the binary exits 0 on
//! SIGTERM and writes its ready file once accepting.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use squall_proto::wire::CLOSE_GOING_AWAY;

#[tokio::test]
async fn shutdown_closes_every_socket_with_1001_and_refuses_new_ones() {
    let relay = start(secured()).await;
    let addr = relay.local_addr();
    let mut clients = Vec::new();
    for i in 0..5 {
        let mut ws = connect(addr, &format!("c{i}")).await;
        subscribe(&mut ws, &["t"]).await;
        clients.push(ws);
    }
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut ws| tokio::spawn(async move { close_code(&mut ws).await }))
        .collect();
    let started = Instant::now();
    relay.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "drained within the 5 s bound"
    );
    for reader in readers {
        assert_eq!(reader.await.unwrap(), CLOSE_GOING_AWAY);
    }
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer listening"
    );
}

#[test]
fn the_binary_writes_its_ready_file_and_exits_0_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let mut child = Command::new(relay_binary())
        .args(["--addr", "127.0.0.1:0", "--ready-file"])
        .arg(&ready)
        .env("SQUALL_JWT_SECRET", SECRET)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn squall-relay");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let code = runtime.block_on(async {
        let mut addr = None;
        for _ in 0..400 {
            if let Ok(text) = std::fs::read_to_string(&ready) {
                addr = Some(text.trim().parse().expect("the bound address"));
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let addr = addr.expect("ready file written");
        let mut ws = connect(addr, "last").await;
        subscribe(&mut ws, &["t"]).await;
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
        close_code(&mut ws).await
    });
    assert_eq!(code, CLOSE_GOING_AWAY);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("relay did not exit after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn the_binary_refuses_to_start_without_any_auth_choice() {
    let output = Command::new(relay_binary())
        .args(["--addr", "127.0.0.1:0"])
        .env_remove("SQUALL_JWT_SECRET")
        .output()
        .expect("run squall-relay");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--no-auth"));
}

#[test]
fn help_lists_every_bug_with_its_symptom() {
    let output = Command::new(relay_binary()).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    for bug in [
        "hang-on-reset",
        "leak-on-reset",
        "unbounded-queue",
        "drop-every=N",
        "dup-every=N",
        "stall=MS/S",
    ] {
        assert!(help.contains(bug), "--help lacks {bug}:\n{help}");
    }
}
