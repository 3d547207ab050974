//! Issue 8: the verdict is true. Every outcome end to end through the real
//! `squall` binary against real processes on loopback: the exit code, the
//! sentence that says it, the hang's kind, and the loss against what the
//! relay itself counted. Every results file is checked against
//! `results/schema.json`.

mod common;

use common::{
    Scratch, assert_valid, f, read_results, run, run_scenario, run_then_signal, small, spawn_run,
    squall, u, wait,
};
use serde_json::Value;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
const LIMIT: Duration = Duration::from_secs(90);

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
    let out = run_then_signal(&s, &file, libc::SIGHUP);
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
    for (set, key) in [
        ("load.connections=10000000", "load.connections"),
        ("load.rate=1e308", "load.rate"),
    ] {
        let out = run(&["validate", good.to_str().unwrap(), "--set", set], LIMIT);
        assert_eq!(out.code(), 2, "{set}");
        assert!(out.stderr.contains(key), "{set}: {}", out.stderr);
    }
}

/// A reference relay squall does not own (a `url` target): the real binary
/// on a free loopback port, with `--bug` switches, read back through its
/// `/metrics` after the run.
struct OutsideRelay {
    child: std::process::Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl OutsideRelay {
    fn start(bugs: &[&str]) -> OutsideRelay {
        let dir = tempfile::tempdir().unwrap();
        let ready = dir.path().join("ready");
        let mut cmd = squall();
        cmd.args([
            "relay",
            "--addr",
            "127.0.0.1:0",
            "--jwt-secret",
            "dev-secret",
        ])
        .arg("--ready-file")
        .arg(&ready)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        for bug in bugs {
            cmd.args(["--bug", bug]);
        }
        let child = cmd.spawn().unwrap();
        let started = Instant::now();
        let addr = loop {
            if let Ok(addr) = std::fs::read_to_string(&ready) {
                break addr.trim().to_string();
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "relay not ready"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        OutsideRelay {
            child,
            addr,
            _dir: dir,
        }
    }

    fn target(&self) -> String {
        format!(
            "[target]\nkind = \"url\"\nurl = \"ws://{0}/ws\"\nhealth = \"http://{0}/health\"\nmetrics = \"http://{0}/metrics\"\n",
            self.addr
        )
    }

    /// A counter of its `/metrics` (summed over labels).
    fn metric(&self, name: &str) -> u64 {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text.lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with([' ', '{']))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }
}

impl Drop for OutsideRelay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hang_kinds(r: &Value) -> Vec<String> {
    r["hangs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["kind"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn a_builtin_relay_that_dies_mid_run_is_exit_4_exited_at_once() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let s = Scratch::new("exited");
    let extra = "[target]\nkind = \"builtin\"\nbugs = [\"exit-after=3s\"]\n";
    let file = s.scenario("exited", &small("exited", 8, extra));
    let (out, r) = run_scenario(&s, &file, &[], LIMIT);
    assert_eq!(out.code(), 4, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(hang_kinds(&r), ["exited"], "{r:#}");
    let hang = &r["hangs"][0];
    assert!(
        hang["exit"].as_str().unwrap_or_default().contains("70"),
        "{hang}"
    );
    // Noticed at once, not after probe timeouts.
    assert!(
        f(hang, "/detected_s") - f(hang, "/started_s") < 1.0,
        "{hang}"
    );
    assert!(
        verdict(&r).starts_with("the target died"),
        "{}",
        verdict(&r)
    );
    assert_valid(&r);
}

#[test]
fn a_url_target_whose_process_dies_is_exit_4_unreachable() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let s = Scratch::new("unreachable");
    let mut relay = OutsideRelay::start(&[]);
    let file = s.scenario("unreachable", &small("unreachable", 10, &relay.target()));
    let child = spawn_run(&s, &file);
    std::thread::sleep(Duration::from_secs(4));
    relay.child.kill().unwrap();
    let out = wait(child, LIMIT);
    assert_eq!(out.code(), 4, "{}\n{}", out.stdout, out.stderr);
    let files = s.results_files();
    let r = read_results(&files[0]);
    assert_eq!(hang_kinds(&r), ["unreachable"], "{r:#}");
    assert!(verdict(&r).contains("unreachable"), "{}", verdict(&r));
    assert_valid(&r);
}

/// `[watchdog]` without its WebSocket probes: a relay that kicks every 5th
/// open socket in connection order then kicks exactly 8 of the 40 load
/// sockets (with the probes' sockets among them, 8 or 9, depending on when
/// the probe connected).
const NO_WS_PROBES: &str = "[watchdog]\nws_probe = false\naccept_probe = false\n";

#[test]
fn a_relay_that_kicks_a_fifth_of_its_clients_cannot_hide_the_loss() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let s = Scratch::new("kick");
    let relay = OutsideRelay::start(&["kick-every=5@3s"]);
    let extra = format!("{}{NO_WS_PROBES}", relay.target());
    let file = s.scenario("kick", &small("kick", 8, &extra));
    let (out, r) = run_scenario(&s, &file, &[], LIMIT);
    assert_eq!(out.code(), 3, "{}\n{}", out.stdout, out.stderr);
    // Every 5th of the 40 load sockets.
    assert_eq!(relay.metric("squall_relay_kicked_total"), 8);
    assert_eq!(u(&r, "/connections/dropped/close_1008"), 8, "{r:#}");
    // What the kicked subscribers were owed from the kick on is lost, and
    // the relay counted exactly that in its ghosts.
    assert_eq!(
        u(&r, "/messages/lost"),
        relay.metric("squall_relay_kicked_undelivered_total"),
        "{r:#}"
    );
    assert!(
        verdict(&r).contains("the target closed 8 of its clients' sockets (close_1008 ×8)"),
        "{}",
        verdict(&r)
    );
    assert!(r["hangs"].as_array().unwrap().is_empty(), "{r:#}");
    assert_valid(&r);
}

/// A `proxy` step whose toxic resets every load socket 500 ms after it is
/// added, from `at`.
fn reset_every_socket_at(at: &str) -> String {
    format!(
        "[[chaos]]\nat = \"{at}\"\naction = \"proxy\"\n\
         toxics = [{{ type = \"reset_peer\", stream = \"downstream\", attributes = {{ timeout = 500 }} }}]\n"
    )
}

/// The actual value of threshold `name`.
fn threshold(r: &Value, name: &str) -> f64 {
    r["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {r:#}"))["actual"]
        .as_f64()
        .unwrap()
}

#[test]
fn sockets_squalls_own_fault_proxy_cuts_are_not_the_targets_doing() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // A healthy relay behind the proxy: every one of the 40 load sockets is
    // reset by the proxy's toxic, none by the relay, and the run passes.
    let s = Scratch::new("proxy-cut");
    let file = s.scenario(
        "proxy-cut",
        &small("proxy-cut", 6, &reset_every_socket_at("3s")),
    );
    let (out, r) = run_scenario(&s, &file, &[], LIMIT);
    assert_eq!(out.code(), 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(u(&r, "/connections/dropped/reset"), 40, "{r:#}");
    assert_eq!(u(&r, "/connections/dropped_by_proxy"), 40, "{r:#}");
    assert_eq!(threshold(&r, "target_disconnects"), 0.0);
    assert!(
        verdict(&r).contains("but for the 40 squall's fault proxy cut"),
        "{}",
        verdict(&r)
    );
    assert!(
        out.stdout
            .contains("40 sockets ended by squall's fault proxy"),
        "{}",
        out.stdout
    );
    assert_valid(&r);

    // A relay that kicks every 5th socket at 3 s, then the same toxic at 5 s
    // on the 32 left: the 8 kicks are still the target's, and fail the run.
    let relay = OutsideRelay::start(&["kick-every=5@3s"]);
    let s = Scratch::new("proxy-cut-kick");
    let extra = format!(
        "{}{NO_WS_PROBES}{}",
        relay.target(),
        reset_every_socket_at("5s")
    );
    let file = s.scenario("proxy-cut-kick", &small("proxy-cut-kick", 8, &extra));
    let (out, r) = run_scenario(&s, &file, &[], LIMIT);
    assert_eq!(out.code(), 3, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(u(&r, "/connections/dropped/close_1008"), 8, "{r:#}");
    assert_eq!(u(&r, "/connections/dropped_by_proxy"), 32, "{r:#}");
    assert_eq!(threshold(&r, "target_disconnects"), 8.0);
    assert!(
        verdict(&r).contains("the target closed 8 of its clients' sockets (close_1008 ×8, reset ×32, besides 32 the fault proxy cut)"),
        "{}",
        verdict(&r)
    );
    assert_valid(&r);
}

#[test]
fn a_topic_that_stops_while_others_deliver_is_a_delivery_stall() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let s = Scratch::new("stall-topic");
    let relay = OutsideRelay::start(&["stall-topic=3s"]);
    let file = s.scenario("stall-topic", &small("stall-topic", 8, &relay.target()));
    let (out, r) = run_scenario(&s, &file, &[], LIMIT);
    assert_eq!(out.code(), 4, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(hang_kinds(&r), ["delivery-stall"], "{r:#}");
    let hang = &r["hangs"][0];
    assert_eq!(hang["topics"].as_array().unwrap().len(), 1, "{hang}");
    assert!(
        f(hang, "/detected_s") < 3.0 + 4.0,
        "detected within ~2 s: {hang}"
    );
    assert_eq!(
        u(&r, "/messages/lost"),
        relay.metric("squall_relay_stalled_deliveries_total"),
        "{r:#}"
    );
    // Loss showed while it happened, not only at the end.
    let timeline = std::fs::read_to_string(r["timeline"].as_str().unwrap()).unwrap();
    let overdue = timeline
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|s| u(&s, "/messages/overdue"))
        .max()
        .unwrap_or(0);
    assert!(overdue > 0, "overdue never showed during the run");
    assert_valid(&r);
}

#[test]
fn new_upgrades_that_stall_while_old_sockets_deliver_are_an_accept_stall() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let s = Scratch::new("accept-stall");
    let relay = OutsideRelay::start(&["accept-stall=3s"]);
    let file = s.scenario("accept-stall", &small("accept-stall", 8, &relay.target()));
    let (out, r) = run_scenario(&s, &file, &[], LIMIT);
    assert_eq!(out.code(), 4, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(hang_kinds(&r), ["accept-stall"], "{r:#}");
    assert_eq!(u(&r, "/messages/lost"), 0, "old sockets kept delivering");
    assert_valid(&r);
}

#[test]
fn a_slow_health_check_on_a_relay_that_delivers_is_never_a_hang() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let s = Scratch::new("slow-health");
    let relay = OutsideRelay::start(&["slow-health=1500"]);
    let extra = format!("{}[watchdog]\ntimeout = \"1s\"\n", relay.target());
    let file = s.scenario("slow-health", &small("slow-health", 6, &extra));
    let (out, r) = run_scenario(&s, &file, &[], LIMIT);
    assert_eq!(out.code(), 0, "{}\n{}", verdict(&r), out.stderr);
    assert!(r["hangs"].as_array().unwrap().is_empty(), "{r:#}");
    assert!(relay.metric("squall_relay_health_delayed_total") > 0);
    // The timeline says the probes were slow: degraded, not hung.
    let timeline = std::fs::read_to_string(r["timeline"].as_str().unwrap()).unwrap();
    assert!(timeline.contains("\"degraded\""), "no degraded second");
    assert!(!timeline.contains("\"hung\""));
}

#[test]
fn with_reconnect_only_the_gap_of_kicked_clients_is_lost() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let s = Scratch::new("kick-reconnect");
    let relay = OutsideRelay::start(&["kick-every=5@3s"]);
    let extra = format!("{}{NO_WS_PROBES}", relay.target());
    let file = s.scenario("kick-reconnect", &small("kick-reconnect", 8, &extra));
    let (out, r) = run_scenario(
        &s,
        &file,
        &[
            "--set",
            "load.reconnect=true",
            "--set",
            "thresholds.target_disconnects=100",
        ],
        LIMIT,
    );
    assert_eq!(out.code(), 0, "{}\n{}", verdict(&r), out.stderr);
    assert_eq!(u(&r, "/connections/dropped/close_1008"), 8, "{r:#}");
    assert_eq!(u(&r, "/connections/reconnects"), 8, "{r:#}");
    let lost = u(&r, "/messages/lost");
    let undelivered = relay.metric("squall_relay_kicked_undelivered_total");
    // Back within a fraction of a second: the gap, not the rest of the run.
    assert!(lost <= undelivered, "lost {lost} > {undelivered}");
    assert!(lost < u(&r, "/messages/expected") / 20, "{r:#}");
    assert!(f(&r, "/connections/reconnect_ms/p50") > 0.0, "{r:#}");
    assert!(out.stdout.contains("reconnects"), "{}", out.stdout);
    assert_valid(&r);
}

#[test]
fn deliveries_held_past_the_drain_are_late_not_lost() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let s = Scratch::new("late");
    // The relay delivers at most 1,500 a second; the load asks for 2,000
    // (200 msg/s to 10 subscribers each): a backlog builds that the relay
    // works off after publishing ends, past the 1 s drain but well within
    // drain_max. A relay that is only behind has lost nothing.
    let extra = "drain_max = \"10s\"\n[target]\nkind = \"builtin\"\nbugs = [\"cap=1500\"]\n";
    let file = s.scenario("late", &small("late", 7, extra));
    let (out, r) = run_scenario(&s, &file, &[], LIMIT);
    assert!(u(&r, "/messages/late") > 0, "{r:#}");
    assert_eq!(u(&r, "/messages/lost"), 0, "{r:#}");
    assert!(f(&r, "/late_ms/max") >= 1000.0, "{r:#}");
    assert!(
        out.stdout.contains("arrived after the drain (not lost)"),
        "{}",
        out.stdout
    );
    assert_valid(&r);
}

#[test]
fn a_worker_pointed_at_a_remote_address_is_refused_by_the_engine_itself() {
    let s = Scratch::new("worker-remote");
    let file = s.scenario("worker-remote", &small("worker-remote", 3, ""));
    let started = Instant::now();
    let out = run(
        &[
            "run",
            file.to_str().unwrap(),
            "--worker",
            "--no-tui",
            "--origin-ns",
            "1",
            "--worker-url",
            "ws://10.0.0.1:9/ws",
        ],
        LIMIT,
    );
    assert_ne!(out.code(), 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("not a loopback address"),
        "{}",
        out.stderr
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no connect was tried"
    );
}

#[test]
fn report_writes_beside_the_results_when_no_out_is_given() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let s = Scratch::new("report-beside");
    let file = s.scenario("report-beside", &small("report-beside", 2, ""));
    let (out, _r) = run_scenario(&s, &file, &[], LIMIT);
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let results = s.results_files().remove(0);
    let out = run(&["report", results.to_str().unwrap()], LIMIT);
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let html = results.with_extension("html");
    assert!(html.exists());
    assert!(
        out.stdout.contains(html.to_str().unwrap()),
        "{}",
        out.stdout
    );
}
