//! Issue 8: the verdict is true. Every outcome end to end through the real
//! `squall` binary against real processes on loopback: the exit code, the
//! sentence that says it, the hang's kind, and the loss against what the
//! relay itself counted. Every results file is checked against
//! `results/schema.json`.

mod common;

use common::{Scratch, assert_valid, f, read_results, run, run_scenario, squall, u, wait};
use serde_json::Value;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
const LIMIT: Duration = Duration::from_secs(90);

/// A small scenario: `extra` holds `[target]` and more.
fn small(name: &str, seconds: u64, extra: &str) -> String {
    format!(
        "name = \"{name}\"\nduration = \"{seconds}s\"\ndrain = \"1s\"\n{extra}\n\
         [load]\nconnections = 40\nramp = \"1s\"\ntopics = 4\npublishers = 8\nrate = 200\npayload_bytes = 128\n"
    )
}

fn verdict(r: &Value) -> String {
    r["verdict"]
        .as_array()
        .unwrap_or_else(|| panic!("no verdict in {r:#}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join(" | ")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn nothing_listening_is_untestable_exit_5_connection_refused() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let s = Scratch::new("refused");
    let port = free_port();
    let extra = format!(
        "[target]\nkind = \"url\"\nurl = \"ws://127.0.0.1:{port}/ws\"\nhealth = \"http://127.0.0.1:{port}/health\"\n"
    );
    let file = s.scenario("refused", &small("refused", 3, &extra));
    let (out, r) = run_scenario(&s, &file, &[], LIMIT);
    assert_eq!(out.code(), 5, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(r["exit_code"], 5);
    assert!(
        verdict(&r).contains("connection refused"),
        "{}",
        verdict(&r)
    );
    assert!(out.stdout.contains("connection refused"), "{}", out.stdout);
    assert_valid(&r);
}

#[test]
fn a_wrong_secret_is_untestable_exit_5_counted_by_http_status() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let s = Scratch::new("wrong-secret");
    let extra = r#"
[target]
kind = "command"
command = ["{squall}", "relay", "--jwt-secret", "not-the-scenarios", "--addr", "127.0.0.1:{port}"]
url = "ws://127.0.0.1:{port}/ws"
health = "http://127.0.0.1:{port}/health"
[auth]
secret = "the-scenarios"
"#;
    let file = s.scenario("wrong-secret", &small("wrong-secret", 3, extra));
    let (out, r) = run_scenario(&s, &file, &[], LIMIT);
    assert_eq!(out.code(), 5, "{}\n{}", out.stdout, out.stderr);
    let v = verdict(&r);
    let attempted = u(&r, "/connections/attempted");
    assert!(attempted >= 40, "{r:#}");
    assert!(
        v.contains(&format!(
            "{attempted} of {attempted} upgrades answered 401 Unauthorized"
        )) && v.contains("auth.secret"),
        "{v}"
    );
    assert!(r["hangs"].as_array().unwrap().is_empty() || r["exit_code"] == 5);
    assert_valid(&r);
}

#[test]
fn a_target_that_exits_before_the_load_is_untestable_exit_5() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let s = Scratch::new("early-exit");
    let extra = r#"
[target]
kind = "command"
command = ["sh", "-c", "echo 'cannot bind' >&2; exit 3"]
url = "ws://127.0.0.1:{port}/ws"
health = "http://127.0.0.1:{port}/health"
"#;
    let file = s.scenario("early-exit", &small("early-exit", 3, extra));
    let out = run(
        &[
            "run",
            file.to_str().unwrap(),
            "--no-tui",
            "--out",
            s.out().to_str().unwrap(),
        ],
        LIMIT,
    );
    assert_eq!(out.code(), 5, "{}", out.stderr);
    assert!(
        out.stderr.contains("could not test the target") && out.stderr.contains("cannot bind"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_target_that_accepts_and_delivers_nothing_fails_exit_3() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let s = Scratch::new("silent");
    let extra = "[target]\nkind = \"builtin\"\nbugs = [\"drop-every=1\"]\n";
    let file = s.scenario("silent", &small("silent", 3, extra));
    let (out, r) = run_scenario(&s, &file, &[], LIMIT);
    assert_eq!(out.code(), 3, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(u(&r, "/messages/received"), 0);
    assert!(
        verdict(&r).contains("no deliveries received"),
        "{}",
        verdict(&r)
    );
    // ... unless the scenario says it expects none.
    let (out, r) = run_scenario(
        &s,
        &file,
        &[
            "--set",
            "thresholds.min_received=0",
            "--set",
            "thresholds.loss_ratio=1",
        ],
        LIMIT,
    );
    assert_eq!(out.code(), 0, "{}\n{}", verdict(&r), out.stderr);
    assert_valid(&r);
}

#[test]
fn sighup_writes_results_marked_incomplete() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let s = Scratch::new("sighup");
    let file = s.scenario("sighup", &small("sighup", 30, ""));
    let child = squall()
        .args([
            "run",
            file.to_str().unwrap(),
            "--no-tui",
            "--out",
            s.out().to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        let lines = std::fs::read_dir(s.out())
            .ok()
            .into_iter()
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
            .map(|t| t.lines().count())
            .max()
            .unwrap_or(0);
        if lines >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: kill(2) on the child we just spawned.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGHUP) };
    let out = wait(child, Duration::from_secs(20));
    assert_eq!(out.code(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("SIGHUP"), "{}", out.stderr);
    let files = s.results_files();
    assert_eq!(files.len(), 1, "{}", out.stderr);
    let r = read_results(&files[0]);
    assert_eq!(r["complete"], false);
    assert!(f(&r, "/duration_s") < 25.0);
    assert_valid(&r);
}

#[test]
fn validate_takes_several_files_the_overrides_and_the_remote_guard() {
    let s = Scratch::new("validate");
    let good = s.scenario("good", &small("good", 3, ""));
    let remote = s.scenario(
        "remote",
        &small(
            "remote",
            3,
            "allow_remote = true\n[target]\nkind = \"url\"\nurl = \"ws://10.0.0.1:9/ws\"\n",
        ),
    );
    let out = run(
        &["validate", good.to_str().unwrap(), remote.to_str().unwrap()],
        LIMIT,
    );
    assert_eq!(out.code(), 2, "{}", out.stdout);
    assert!(out.stdout.contains("good.toml: ok"), "{}", out.stdout);
    assert!(
        out.stderr.contains("not a loopback address"),
        "{}",
        out.stderr
    );
    let out = run(
        &["validate", good.to_str().unwrap(), "--set", "duration=10"],
        LIMIT,
    );
    assert_eq!(out.code(), 2);
    assert!(
        out.stderr.contains("\"10s\""),
        "suggests a unit: {}",
        out.stderr
    );
    let out = run(
        &[
            "validate",
            good.to_str().unwrap(),
            "--set",
            "load.connections=10000000",
        ],
        LIMIT,
    );
    assert_eq!(out.code(), 2);
    assert!(out.stderr.contains("load.connections"), "{}", out.stderr);
}
