//! The live UI and replay in a real terminal (tmux): keys, pause, help,
//! moving through time, quitting, and the screen given back afterwards.
//!
//! The UI needs a terminal of its own, so each parent test starts this same
//! test binary inside tmux to run one `child_*` test with an environment
//! variable set; without that variable the `child_*` tests do nothing.

mod tui_tmux;

use squall::snapshot::{ConnectionsSnap, MessagesSnap, Snapshot, ThresholdSnap, WatchdogSnap};
use std::path::Path;
use std::time::Duration;
use tokio::sync::watch;
use tui_tmux::{Tmux, shell_quote};

/// Set for a child: what it should do and where.
const CHILD: &str = "SQUALL_TUI_CHILD";

/// Most we wait for any one thing on screen.
const WAIT: Duration = Duration::from_secs(30);

fn snapshot(t: u64, duration_s: u64) -> Snapshot {
    Snapshot {
        scenario: "terminal-demo".into(),
        t_s: t as f64,
        duration_s: duration_s as f64,
        phase: "steady".into(),
        target: "ws://127.0.0.1:1/ws".into(),
        connections: ConnectionsSnap {
            open: 40 + t,
            target: 100,
            attempted: 100,
            ..ConnectionsSnap::default()
        },
        messages: MessagesSnap {
            sent: 100 * t,
            received: 100 * t,
            sent_per_s: 100.0,
            received_per_s: 100.0,
            ..MessagesSnap::default()
        },
        watchdog: WatchdogSnap {
            state: "ok".into(),
            probe_ms: Some(1.0),
            ..WatchdogSnap::default()
        },
        thresholds: vec![ThresholdSnap {
            name: "hangs".into(),
            limit: 0.0,
            actual: 0.0,
            passed: true,
            floor: false,
        }],
        ..Snapshot::default()
    }
}

/// Starts `child` of this binary in tmux with `CHILD=value`; the pane shows
/// `CHILD-EXIT=<code>` when it ends, and stays a while so it can be read.
fn start_child(name: &str, child: &str, value: &str) -> Tmux {
    let exe = std::env::current_exe().unwrap();
    let command = format!(
        "env {CHILD}={} {} {child} --exact --nocapture --test-threads=1 ; echo CHILD-EXIT=$?; sleep 60",
        shell_quote(value),
        shell_quote(&exe.display().to_string()),
    );
    Tmux::start(name, 100, 30, &command)
}

fn child_arg(kind: &str) -> Option<String> {
    std::env::var(CHILD)
        .ok()
        .and_then(|v| v.strip_prefix(&format!("{kind}:")).map(str::to_string))
}

/// Child: a live UI fed a snapshot every 100 ms, at most `n` of them (from
/// `live:<n>:<stop file>`); writes the stop file if the user stops the run.
#[test]
fn child_live() {
    let Some(arg) = child_arg("live") else { return };
    let (n, stop_file) = arg.split_once(':').unwrap();
    let n: u64 = n.parse().unwrap();
    let (tx, rx) = watch::channel(None);
    let feeder = std::thread::spawn(move || {
        for t in 1..=n {
            if tx.send(Some(snapshot(t, n))).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let stop_file = stop_file.to_string();
    squall::tui::run_live(rx, move || std::fs::write(&stop_file, "stop").unwrap()).unwrap();
    drop(feeder);
}

/// Child: replay of the results file named after `replay:`.
#[test]
fn child_replay() {
    let Some(path) = child_arg("replay") else {
        return;
    };
    squall::tui::replay(Path::new(&path)).unwrap();
}

#[test]
fn live_ui_pauses_shows_help_and_q_stops_the_run() {
    if !Tmux::available() {
        println!("SKIPPED: tmux is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let stop = dir.path().join("stopped");
    let tmux = start_child(
        "live-q",
        "child_live",
        &format!("live:600:{}", stop.display()),
    );
    // Any elapsed time against the 10:00 run: a snapshot has been drawn (a
    // particular second would be on screen for only 100 ms, easy to miss
    // when the machine is loaded).
    let (screen, ok) = tmux.wait_for(WAIT, |s| {
        s.contains("terminal-demo") && s.contains(" / 10:00")
    });
    assert!(ok, "the live UI did not come up:\n{screen}");
    assert!(screen.contains("/ 100"), "{screen}");

    // Shrunk to 80×24, the UI redraws to fit: every panel, and the key
    // line on the last row.
    tmux.resize(80, 24);
    let (small, ok) = tmux.wait_for(WAIT, |s| {
        let lines: Vec<&str> = s.lines().collect();
        lines.len() == 24
            && lines[23].contains("q stop")
            && lines.iter().any(|l| l.trim_end().ends_with("all pass ┐"))
    });
    assert!(ok, "the UI did not redraw for 80×24:\n{small}");
    for panel in [
        "connections",
        "throughput",
        "loss",
        "latency",
        "watchdog",
        "chaos",
    ] {
        assert!(small.contains(panel), "{panel} missing at 80×24:\n{small}");
    }

    tmux.send(&["p"]);
    let (paused, ok) = tmux.wait_for(WAIT, |s| s.contains("PAUSED"));
    assert!(ok, "p did not pause:\n{paused}");
    let frozen_at = gauge(&paused);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        gauge(&tmux.capture()),
        frozen_at,
        "the paused display moved"
    );

    tmux.send(&["?"]);
    let (help, ok) = tmux.wait_for(WAIT, |s| s.contains("stop the run"));
    assert!(ok, "? did not show help:\n{help}");
    tmux.send(&["Escape", "p"]);
    let (resumed, ok) = tmux.wait_for(WAIT, |s| !s.contains("PAUSED") && gauge(s) != frozen_at);
    assert!(ok, "p did not resume:\n{resumed}");

    tmux.send(&["q"]);
    let (after, ok) = tmux.wait_for(WAIT, |s| s.contains("CHILD-EXIT="));
    assert!(ok, "q did not end the UI:\n{after}");
    assert!(after.contains("CHILD-EXIT=0"), "{after}");
    assert!(
        !after.contains("terminal-demo"),
        "the screen was not restored:\n{after}"
    );
    assert!(stop.exists(), "q did not ask the runner to stop");
}

#[test]
fn live_ui_ends_with_the_run_and_ctrl_c_also_stops() {
    if !Tmux::available() {
        println!("SKIPPED: tmux is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let stop = dir.path().join("stopped");
    // The run ends by itself after 15 snapshots.
    let tmux = start_child(
        "live-end",
        "child_live",
        &format!("live:15:{}", stop.display()),
    );
    let (after, ok) = tmux.wait_for(WAIT, |s| s.contains("CHILD-EXIT="));
    assert!(ok, "the UI did not end with the run:\n{after}");
    assert!(after.contains("CHILD-EXIT=0"), "{after}");
    assert!(
        !stop.exists(),
        "the UI asked to stop a run that ended by itself"
    );

    let stop = dir.path().join("stopped-by-ctrl-c");
    let tmux = start_child(
        "live-cc",
        "child_live",
        &format!("live:600:{}", stop.display()),
    );
    let (screen, ok) = tmux.wait_for(WAIT, |s| s.contains("terminal-demo"));
    assert!(ok, "the live UI did not come up:\n{screen}");
    tmux.send(&["C-c"]);
    let (after, ok) = tmux.wait_for(WAIT, |s| s.contains("CHILD-EXIT="));
    assert!(ok, "Ctrl-C did not end the UI:\n{after}");
    assert!(after.contains("CHILD-EXIT=0"), "{after}");
    assert!(stop.exists(), "Ctrl-C did not ask the runner to stop");
}

#[test]
fn replay_moves_through_time_with_the_arrow_keys() {
    if !Tmux::available() {
        println!("SKIPPED: tmux is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let timeline: String = (1..=90)
        .map(|t| serde_json::to_string(&snapshot(t, 90)).unwrap() + "\n")
        .collect();
    std::fs::write(dir.path().join("tl.ndjson"), timeline).unwrap();
    let results = dir.path().join("run.json");
    std::fs::write(
        &results,
        r#"{"scenario":"terminal-demo","duration_s":90,"timeline":"tl.ndjson"}"#,
    )
    .unwrap();
    let tmux = start_child(
        "replay",
        "child_replay",
        &format!("replay:{}", results.display()),
    );
    let (screen, ok) = tmux.wait_for(WAIT, |s| s.contains("REPLAY"));
    assert!(ok, "replay did not come up:\n{screen}");

    tmux.send(&["p", "End"]);
    let (end, ok) = tmux.wait_for(WAIT, |s| s.contains("REPLAY 90/90"));
    assert!(ok, "End did not reach the last second:\n{end}");
    assert!(end.contains("1:30 / 1:30"), "{end}");
    assert!(end.contains("Σ 9000"), "{end}");

    tmux.send(&["Left", "Left", "Left"]);
    let (back, ok) = tmux.wait_for(WAIT, |s| s.contains("REPLAY 87/90"));
    assert!(ok, "Left did not step back:\n{back}");
    assert!(back.contains("Σ 8700"), "{back}");
    assert!(back.contains("127 / 100"), "{back}");

    tmux.send(&["Home", "Right"]);
    let (start, ok) = tmux.wait_for(WAIT, |s| s.contains("REPLAY 2/90"));
    assert!(
        ok,
        "Home and Right did not land on the second second:\n{start}"
    );
    assert!(start.contains("Σ 200"), "{start}");

    tmux.send(&["q"]);
    let (after, ok) = tmux.wait_for(WAIT, |s| s.contains("CHILD-EXIT="));
    assert!(ok, "q did not leave replay:\n{after}");
    assert!(after.contains("CHILD-EXIT=0"), "{after}");
}

/// The progress bar's `elapsed / planned` text.
fn gauge(screen: &str) -> String {
    screen
        .lines()
        .find(|l| l.contains(" left)"))
        .map(|l| l.trim().to_string())
        .unwrap_or_default()
}
