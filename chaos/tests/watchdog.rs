//! The hang watchdog against real relay processes: a hang after a reset
//! (`--bug hang-on-reset`) and a SIGSTOPped relay are both detected within
//! the bound, with diagnostics; a healthy relay under full CPU load is not
//! reported hung.
//!
//! The bound: detection within `2 × interval + timeout` of the onset
//! (1.5 s with the defaults). On a loaded 2-core box the tests allow
//! [`LOADED_MARGIN`] on top; the measured figure is printed.

mod common;

use common::*;
use squall_chaos::agent::LastChaos;
use squall_chaos::scenario::{Action, ChaosStep, WatchdogSettings};
use squall_chaos::tokens;
use squall_chaos::watchdog::{TargetProcess, Watchdog, WatchdogConfig};
use squall_proto::Origin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Slack on the detection bound for a loaded shared machine (scheduling
/// delay of the probe thread and of the relay).
const LOADED_MARGIN: Duration = Duration::from_millis(1500);

/// The tests measure timing: one at a time, so the CPU-load test does not
/// slow the others.
static SERIAL: Mutex<()> = Mutex::new(());

fn watchdog_for(
    relay: &RelayProcess,
    name: &str,
    out: &std::path::Path,
    origin: Origin,
    last: &LastChaos,
) -> Watchdog {
    let mut config = WatchdogConfig::new(WatchdogSettings::default(), origin, out, name);
    config.health_url = Some(relay.http("/health"));
    config.metrics_url = Some(relay.http("/metrics"));
    config.ws_url = Some(relay.ws_url());
    config.tokens = Some(tokens::hs256_source(SECRET.to_string()));
    config.target = Some(TargetProcess {
        pid: relay.child.id(),
        stderr_tail: Some(relay.stderr.clone()),
    });
    config.last_chaos = last.clone();
    config.settings.metrics_interval = Duration::from_millis(500);
    Watchdog::spawn(config).expect("watchdog starts")
}

/// Waits until the watchdog has seen the target answer (bounded).
fn wait_ok(watchdog: &Watchdog) {
    for _ in 0..200 {
        let status = watchdog.status();
        if status.state == "ok" && status.probe_ms.is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "the watchdog never saw the target answer: {:?}",
        watchdog.status()
    );
}

/// Waits for the first hang (bounded).
fn wait_hang(watchdog: &Watchdog, within: Duration) -> squall_chaos::watchdog::HangRecord {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(hang) = watchdog.hangs().into_iter().next() {
            return hang;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!(
        "no hang detected within {within:?}: {:?}",
        watchdog.status()
    );
}

fn out_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("squall-chaos-out-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn a_hang_after_a_reset_is_detected_in_time_with_the_stuck_lock_in_the_stacks() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let relay = RelayProcess::start("hang", &["--bug", "hang-on-reset"]);
    let out = out_dir("hang");
    let origin = Origin::now();
    let last = LastChaos::default();
    let watchdog = watchdog_for(&relay, "beach", &out, origin, &last);
    wait_ok(&watchdog);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let onset_s = origin.elapsed_s();
    let report = runtime.block_on(async {
        let mut step = ChaosStep::new(Duration::ZERO, Action::Reset);
        step.after = Duration::from_millis(10);
        last.record(origin.elapsed_s(), "reset", 1);
        run_step(step, target(&relay.ws_url())).await
    });
    assert_eq!(report.done, 1, "{report:?}");

    let bound = WatchdogSettings::default().detection_bound() + LOADED_MARGIN;
    let hang = wait_hang(&watchdog, bound + Duration::from_secs(5));
    let took = hang.detected_s - onset_s;
    eprintln!(
        "hang-on-reset: detected {took:.3} s after the reset (bound {:?} + margin)",
        WatchdogSettings::default().detection_bound()
    );
    assert!(
        took <= bound.as_secs_f64(),
        "detected {took:.3}s after the onset; bound {bound:?}"
    );
    assert!(hang.started_s >= onset_s - 0.3, "{hang:?} onset {onset_s}");
    assert!(
        hang.last_chaos
            .as_deref()
            .is_some_and(|c| c.starts_with("reset x1")),
        "{hang:?}"
    );
    assert!(watchdog.status().state == "hung");

    let hangs = watchdog.stop();
    let path = hangs[0].diagnostics.clone().expect("a hang file");
    let text = std::fs::read_to_string(&path).unwrap();
    let first = text.lines().next().unwrap();
    assert!(
        first.starts_with("classification: blocked-threads"),
        "{first}"
    );
    // The summary names the lock and the relay's own function that took it.
    let summary = &text[text.find("== where each thread waits").expect("a summary")
        ..text.find("== stacks").expect("stacks")];
    assert!(
        summary
            .lines()
            .any(|l| l.contains("waits in dashmap::lock::")
                && l.contains("called from squall_relay::")),
        "{summary}"
    );
    let stacks = &text[text.find("== stacks").expect("a stacks section")..];
    assert!(
        stacks.starts_with("== stacks (gdb)"),
        "{}",
        &stacks[..200.min(stacks.len())]
    );
    // The worker threads are parked inside the registry's shard lock.
    let in_lock = stacks
        .lines()
        .filter(|l| l.contains("dashmap") && l.to_lowercase().contains("lock"))
        .count();
    assert!(in_lock > 0, "no frame in the shard lock:\n{stacks}");
    assert!(
        text.contains("== last /metrics scrape (at"),
        "no metrics scrape in the file"
    );
    assert!(text.contains("== TCP sockets of the target"));
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_stopped_relay_is_detected_in_time_and_the_hang_ends_when_it_resumes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let relay = RelayProcess::start("sigstop", &[]);
    let out = out_dir("sigstop");
    let origin = Origin::now();
    let watchdog = watchdog_for(&relay, "stopped", &out, origin, &LastChaos::default());
    wait_ok(&watchdog);

    let pid = relay.child.id() as i32;
    let onset_s = origin.elapsed_s();
    // SAFETY: kill has no memory preconditions; pid is our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let bound = WatchdogSettings::default().detection_bound() + LOADED_MARGIN;
    let hang = wait_hang(&watchdog, bound + Duration::from_secs(5));
    let took = hang.detected_s - onset_s;
    eprintln!("SIGSTOP: detected {took:.3} s after the stop");
    assert!(
        took <= bound.as_secs_f64(),
        "detected {took:.3}s after the onset; bound {bound:?}"
    );
    // No stale probe latency while the target does not answer.
    assert_eq!(watchdog.status().probe_ms, None, "{:?}", watchdog.status());

    // Let the hang file be written (gdb is not attached to a stopped process).
    for _ in 0..200 {
        if watchdog.hangs()[0].diagnostics.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    for _ in 0..200 {
        if watchdog.hangs()[0].ended_s.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let hangs = watchdog.stop();
    assert_eq!(hangs.len(), 1, "{hangs:?}");
    assert!(
        hangs[0].ended_s.is_some_and(|end| end > hang.detected_s),
        "{hangs:?}"
    );
    let text = std::fs::read_to_string(hangs[0].diagnostics.as_ref().unwrap()).unwrap();
    assert!(
        text.starts_with("classification: stopped"),
        "{}",
        text.lines().next().unwrap()
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_healthy_relay_under_full_cpu_load_for_30_s_is_not_hung() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let relay = RelayProcess::start("busy", &[]);
    let out = out_dir("busy");
    let origin = Origin::now();
    let watchdog = watchdog_for(&relay, "busy", &out, origin, &LastChaos::default());
    wait_ok(&watchdog);

    // Twice as many spinning threads as cores, for 30 s.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let until = Instant::now() + Duration::from_secs(30);
    let spinners: Vec<_> = (0..cores * 2)
        .map(|_| {
            std::thread::spawn(move || {
                let mut x = 0u64;
                while Instant::now() < until {
                    for _ in 0..10_000 {
                        x = std::hint::black_box(
                            x.wrapping_mul(6364136223846793005).wrapping_add(1),
                        );
                    }
                }
                x
            })
        })
        .collect();
    let mut worst = 0.0f64;
    while Instant::now() < until {
        let status = watchdog.status();
        assert_ne!(status.state, "hung", "{status:?}");
        worst = worst.max(status.probe_ms.unwrap_or(0.0));
        std::thread::sleep(Duration::from_millis(100));
    }
    for spinner in spinners {
        spinner.join().unwrap();
    }
    let status = watchdog.status();
    let hangs = watchdog.stop();
    eprintln!(
        "under load: health p99 {:.1} ms, worst probe {worst:.1} ms",
        status.health_p99_ms
    );
    assert!(hangs.is_empty(), "{hangs:?}");
    assert!(status.health_p99_ms > 0.0);
    let _ = std::fs::remove_dir_all(&out);
}

/// Starts `tests/fixtures/hang_after_reset.py MODE`; returns it and its port.
fn foreign_relay(mode: &str) -> (std::process::Child, u16, std::path::PathBuf) {
    let dir = out_dir(&format!("foreign-{mode}"));
    std::fs::create_dir_all(&dir).unwrap();
    let port_file = dir.join("port");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/hang_after_reset.py"
    );
    let mut child = std::process::Command::new("python3")
        .args([script, mode])
        .arg(&port_file)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3 runs (the foreign relay is a Python script)");
    for _ in 0..400 {
        if let Ok(port) = std::fs::read_to_string(&port_file).map(|p| p.trim().parse::<u16>()) {
            return (child, port.expect("a port"), dir);
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the foreign relay exited early"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("the foreign relay never listened");
}

/// A relay that is not ours (Python asyncio) hangs after a reset in its own
/// way; the watchdog catches it within the bound and classifies it.
fn catches_a_foreign_hang(mode: &str, classification: &str) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (mut child, port, dir) = foreign_relay(mode);
    let origin = Origin::now();
    let mut config = WatchdogConfig::new(WatchdogSettings::default(), origin, &dir, mode);
    config.health_url = Some(format!("http://127.0.0.1:{port}/health"));
    config.settings.ws_probe = false;
    config.target = Some(TargetProcess {
        pid: child.id(),
        stderr_tail: None,
    });
    let watchdog = Watchdog::spawn(config).unwrap();
    wait_ok(&watchdog);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let onset_s = origin.elapsed_s();
    let report = runtime.block_on(run_step(
        ChaosStep {
            after: Duration::from_millis(10),
            ..ChaosStep::new(Duration::ZERO, Action::Reset)
        },
        squall_chaos::target::ChaosTarget::new(format!("ws://127.0.0.1:{port}/ws")),
    ));
    assert_eq!(report.done, 1, "{report:?}");
    let bound = WatchdogSettings::default().detection_bound() + LOADED_MARGIN;
    let hang = wait_hang(&watchdog, bound + Duration::from_secs(5));
    let took = hang.detected_s - onset_s;
    eprintln!("foreign {mode}: detected {took:.3} s after the reset");
    assert!(
        took <= bound.as_secs_f64(),
        "detected {took:.3}s after the onset; bound {bound:?}"
    );
    let hangs = watchdog.stop();
    let text =
        std::fs::read_to_string(hangs[0].diagnostics.as_ref().expect("a hang file")).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let first = text.lines().next().unwrap();
    assert!(
        first.starts_with(&format!("classification: {classification}")),
        "{first}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_foreign_relay_that_spins_after_a_reset_is_caught_as_a_busy_loop() {
    catches_a_foreign_hang("busy", "busy-loop");
}

#[test]
fn a_foreign_relay_that_stalls_after_a_reset_is_caught_as_an_async_stall() {
    catches_a_foreign_hang("stall", "async-stall");
}

#[test]
fn a_slow_target_is_degraded_never_hung() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Health answers, but only after 300-600 ms: slow (over `slow`, 200 ms)
    // and within `timeout` (1 s).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let mut n = 0u64;
            while let Ok((mut stream, _)) = listener.accept().await {
                n += 1;
                let delay = Duration::from_millis(300 + n * 37 % 300);
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut buf = [0u8; 1024];
                    let _ = stream.read(&mut buf).await;
                    tokio::time::sleep(delay).await;
                    let _ = stream
                        .write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                        )
                        .await;
                });
            }
        });
    });
    let addr = rx.recv().unwrap();
    let out = out_dir("slow");
    let mut config = WatchdogConfig::new(WatchdogSettings::default(), Origin::now(), &out, "slow");
    config.health_url = Some(format!("http://{addr}/health"));
    config.settings.ws_probe = false;
    let watchdog = Watchdog::spawn(config).unwrap();
    let mut states = std::collections::BTreeSet::new();
    for _ in 0..50 {
        states.insert(watchdog.status().state);
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = watchdog.status();
    assert!(
        watchdog.stop().is_empty(),
        "a slow target was reported hung"
    );
    assert!(
        states.contains("degraded") && !states.contains("hung"),
        "{states:?}"
    );
    assert!(status.health_p99_ms >= 300.0, "{status:?}");
}

#[test]
fn a_relay_that_dies_is_reported_with_the_classification_exited() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut relay = RelayProcess::start("killed", &[]);
    let out = out_dir("killed");
    let origin = Origin::now();
    let watchdog = watchdog_for(&relay, "killed", &out, origin, &LastChaos::default());
    wait_ok(&watchdog);
    // Killed and not reaped: a zombie whose /proc entry remains.
    relay.child.kill().unwrap();
    let bound = WatchdogSettings::default().detection_bound() + LOADED_MARGIN;
    wait_hang(&watchdog, bound + Duration::from_secs(5));
    let hangs = watchdog.stop();
    let text =
        std::fs::read_to_string(hangs[0].diagnostics.as_ref().expect("a hang file")).unwrap();
    assert!(
        text.starts_with("classification: exited"),
        "{}",
        text.lines().next().unwrap()
    );
    assert!(text.contains("probe: health: connect:"), "{text}");
    let _ = std::fs::remove_dir_all(&out);
}
