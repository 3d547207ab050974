//! Issue 13: the live screen of `squall search`. The search panel (the
//! objective, the bracket [highest pass, lowest fail], one row per step
//! judged, the running step with its figures so far) drawn into ratatui's
//! `TestBackend` at 80×24 and larger, fed only the search's snapshot and
//! the step's snapshots; then `squall search --tui` in a real terminal
//! (tmux) against the builtin relay, the screen checked against the search
//! file it wrote.

mod tui_screen;
mod tui_tmux;

use serde_json::Value;
use squall::search::bisect::{Bracket, Judged, Stage};
use squall::search::snapshot::{CurrentStep, SearchSnap, StepSnap};
use squall::snapshot::{
    ConnectionsSnap, LatencySnap, MessagesSnap, Snapshot, ThresholdSnap, WatchdogSnap,
};
use squall::tui::state::{Action, App, Panel};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tui_screen::{assert_shows, screen};
use tui_tmux::{Tmux, after, ended, start_squall};

/// A search of the rate from 50 msg/s: 50, 100 and 200 passed, 400 failed,
/// 283 failed, and step 6 (238, bisecting) is running.
fn search(current: Option<u32>) -> SearchSnap {
    let row = |index: u32, level: f64, judged: Judged, p99_ms: f64, loss_ratio: f64| StepSnap {
        index,
        stage: Some(if index <= 4 {
            Stage::Grow
        } else {
            Stage::Bisect
        }),
        level,
        p99_ms,
        loss_ratio,
        judged: Some(judged),
    };
    SearchSnap {
        scenario: "capacity".into(),
        target: "ws://127.0.0.1:40123/ws".into(),
        unit: "msg/s".into(),
        slo: "p99_ms ≤ 100, loss_ratio ≤ 0.001".into(),
        precision: 0.1,
        elapsed_s: 70.0,
        time_limit_s: 600.0,
        steps: vec![
            row(1, 50.0, Judged::Pass, 2.1, 0.0),
            row(2, 100.0, Judged::Pass, 2.5, 0.0),
            row(3, 200.0, Judged::Pass, 3.2, 0.0),
            row(4, 400.0, Judged::Fail, 2617.0, 0.0),
            row(5, 283.0, Judged::Fail, 651.0, 0.0003),
        ],
        current: current.map(|index| CurrentStep {
            index,
            stage: Stage::Bisect,
            level: 238.0,
            window_from_s: 5.0,
            window_to_s: 12.0,
        }),
        bracket: Bracket {
            highest_pass: Some(200.0),
            lowest_fail: Some(283.0),
            generator: None,
        },
    }
}

/// Second `t` of the running step (2 s ramp, 3 s warm-up, 7 s measured).
fn step(t: u64) -> Snapshot {
    Snapshot {
        scenario: "capacity".into(),
        t_s: t as f64,
        duration_s: 12.0,
        phase: if t <= 2 { "ramp" } else { "steady" }.into(),
        target: "ws://127.0.0.1:40123/ws".into(),
        connections: ConnectionsSnap {
            open: 100,
            target: 100,
            attempted: 100,
            ..Default::default()
        },
        messages: MessagesSnap {
            sent: 238 * t,
            received: 2380 * t,
            sent_per_s: 238.0,
            received_per_s: 2380.0,
            ..Default::default()
        },
        latency_ms: LatencySnap {
            count: 2380,
            p50: 1.5,
            p90: 3.0,
            p99: 8.25,
            p999: 12.0,
            max: 20.0,
        },
        latency_total_ms: LatencySnap {
            count: 2380 * t,
            p50: 1.5,
            p90: 3.0,
            p99: 9.5,
            p999: 13.0,
            max: 22.0,
        },
        watchdog: WatchdogSnap {
            state: "ok".into(),
            probe_ms: Some(0.9),
            ..Default::default()
        },
        thresholds: vec![ThresholdSnap {
            name: "p99_ms".into(),
            limit: 100.0,
            actual: 9.5,
            passed: true,
            floor: false,
        }],
        ..Default::default()
    }
}

/// A search app that has seen step 6 start and its seconds 1..=t.
fn app_at(t: u64) -> App {
    let mut app = App::search();
    app.ingest_search(search(Some(6)));
    for i in 1..=t {
        app.ingest(step(i));
    }
    app
}

#[test]
fn the_search_panel_shows_every_step_the_bracket_and_the_running_step() {
    let app = app_at(8);
    for (w, h) in [(80, 24), (120, 40)] {
        let text = screen(&app, w, h);
        assert_shows(
            &text,
            &[
                // The header: the step, its stage and level, where it stands.
                "capacity",
                "search step 6 · bisect 238 msg/s",
                "measuring",
                "within the SLO",
                "step 0:08 / 0:12",
                "search 1:18 of at most 10:00",
                // The search panel.
                "search",
                "msg/s · to 10%",
                "bracket [200, 283] · 41.5%",
                "  1     50  2.10 ms       0  pass",
                "  3    200  3.20 ms       0  pass",
                "  4    400   2.62 s       0  FAIL",
                "  5    283   651 ms 0.0300%  FAIL",
                // The running step: its p99 and loss so far.
                "▶ 6    238  9.50 ms       0  measuring",
                // The step's live figures in the run's panels.
                "100 / 100",
                "238/s  Σ 1904",
                "8.25 ms",
                "slo",
                "✓ p99_ms 9.5 ≤ 100",
                "q stop the search",
            ],
        );
        assert!(!text.contains("chaos"), "a search runs no chaos:\n{text}");
    }
    // Before its measured window, a step says so.
    let text = screen(&app_at(4), 80, 24);
    assert_shows(&text, &["▶ 6    238  9.50 ms       0  warm-up"]);
}

#[test]
fn a_new_step_starts_its_figures_afresh_and_the_judged_one_joins_the_rows() {
    let mut app = app_at(12);
    // Step 6 judged: it joins the rows; its last figures stay until the next.
    let mut judged = search(None);
    judged.steps.push(StepSnap {
        index: 6,
        stage: Some(Stage::Bisect),
        level: 238.0,
        p99_ms: 9.5,
        loss_ratio: 0.0,
        judged: Some(Judged::Pass),
    });
    judged.bracket.highest_pass = Some(238.0);
    app.ingest_search(judged.clone());
    let text = screen(&app, 80, 24);
    assert_shows(
        &text,
        &[
            "search step 6 judged · bisect 238 msg/s",
            "  6    238  9.50 ms       0  pass",
            "[238, 283] · 18.9%",
            "Σ 2856",
        ],
    );
    assert!(!text.contains('▶'), "no step runs:\n{text}");
    // Step 7 starts: nothing of step 6's run is left on screen.
    judged.current = Some(CurrentStep {
        index: 7,
        stage: Stage::Bisect,
        level: 259.0,
        window_from_s: 5.0,
        window_to_s: 12.0,
    });
    app.ingest_search(judged);
    assert!(app.model().latest.is_none());
    let text = screen(&app, 80, 24);
    assert_shows(
        &text,
        &[
            "search step 7 · bisect 259 msg/s · no snapshot yet",
            "▶ 7    259        -       -  starting",
            "  6    238  9.50 ms       0  pass",
        ],
    );
    app.ingest(step(1));
    let text = screen(&app, 80, 24);
    assert_shows(&text, &["238/s  Σ 238", "▶ 7    259", "ramp"]);
}

#[test]
fn the_newest_steps_stay_on_screen_and_zoom_shows_them_all() {
    let mut app = App::search();
    let mut many = search(Some(20));
    many.steps = (1..20)
        .map(|i| StepSnap {
            index: i,
            stage: Some(Stage::Bisect),
            level: 100.0 + f64::from(i),
            p99_ms: 5.0,
            loss_ratio: 0.0,
            judged: Some(if i % 2 == 0 {
                Judged::Pass
            } else {
                Judged::Generator
            }),
        })
        .collect();
    many.bracket = Bracket {
        highest_pass: Some(118.0),
        lowest_fail: None,
        generator: Some(119.0),
    };
    app.ingest_search(many);
    app.ingest(step(3));
    let text = screen(&app, 80, 24);
    assert_shows(
        &text,
        &[
            "▶20",
            " 19    119  5.00 ms       0  gen-limit",
            "[118, –] · gen-limit 119",
        ],
    );
    assert!(
        !text.contains("   1    101"),
        "the oldest give way:\n{text}"
    );
    // Tab goes over the search's panels only; zoom shows the search alone.
    assert_eq!(app.focus(), Panel::Search);
    for _ in 0..Panel::SEARCH.len() {
        app.apply(Action::NextPanel);
    }
    assert_eq!(app.focus(), Panel::Search);
    app.apply(Action::PrevPanel);
    assert_eq!(app.focus(), Panel::Loss);
    app.apply(Action::NextPanel);
    app.apply(Action::ToggleZoom);
    let zoomed = screen(&app, 100, 40);
    assert_shows(&zoomed, &["  1    101", " 19    119", "▶20"]);
    assert!(!zoomed.contains("watchdog"), "{zoomed}");
    app.apply(Action::ToggleHelp);
    assert_shows(&screen(&app, 80, 24), &["stop the search"]);
    // Tiny sizes must not panic.
    for (w, h) in [(20, 5), (1, 1), (79, 23)] {
        screen(&app, w, h);
    }
}

#[test]
fn before_the_first_step_the_search_says_it_waits() {
    let mut app = App::search();
    let mut fresh = search(None);
    fresh.steps.clear();
    fresh.bracket = Bracket::default();
    app.ingest_search(fresh);
    let text = screen(&app, 80, 24);
    assert_shows(
        &text,
        &[
            "search starting · waiting for the first step",
            "waiting for the first step",
            "objective: p99_ms ≤ 100, loss_ratio ≤ 0.001 · ws://127.0.0.1:40123/ws",
            "[–, –]",
        ],
    );
}

// ---- end to end, in tmux ------------------------------------------------

const SCENARIO: &str = r#"
name = "tui-search"
drain = "1s"

[target]
kind = "builtin"

[load]
connections = 20
ramp = "1s"
topics = 2
publishers = 4
rate = 20
payload_bytes = 128

[search]
max = 40
step_duration = "3s"
warmup = "1s"

[search.slo]
p99_ms = 5000
"#;

/// Longest the whole search may take, start-up included.
const SEARCH_LIMIT: Duration = Duration::from_secs(90);

#[test]
fn squall_search_tui_shows_each_step_as_the_search_file_records_it() {
    if !Tmux::available() {
        println!("SKIPPED: tmux is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tmux = start_search(dir.path(), "search", &[]);
    let (screen, ok) = tmux.wait_for(SEARCH_LIMIT, |s| s.contains("bracket"));
    assert!(ok, "the search panel never showed:\n{screen}");
    // The rest of the search is read at the smallest size the UI promises.
    tmux.resize(80, 24);
    // Keep every screen that shows the search panel until the search ends.
    let deadline = Instant::now() + SEARCH_LIMIT;
    let mut screens: Vec<String> = Vec::new();
    let end = loop {
        let screen = tmux.capture();
        if screen.contains("SQUALL-EXIT=") {
            break screen;
        }
        if screen.contains("tui-search") && screen.contains("bracket") {
            screens.push(screen);
        }
        assert!(
            Instant::now() < deadline,
            "squall search did not end within {SEARCH_LIMIT:?}:\n{}",
            tmux.capture()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        !end.contains("┌ search"),
        "the screen was not restored:\n{end}"
    );
    let exit: i32 = after(&end, "SQUALL-EXIT=").parse().unwrap();
    let r = search_file(&dir.path().join("out"));
    assert_eq!(exit, 0, "{end}");
    assert_eq!(r["exit_code"], 0);
    let steps = r["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "20 then 40 msg/s: {r:#}");
    let last = || screens.last().map_or("", String::as_str);
    // Each step ran on screen with its live figures, then showed as judged,
    // with the p99 and loss the search file records (the last one only for
    // as long as the search takes to end, which a capture may miss).
    for (i, s) in steps.iter().enumerate() {
        let index = s["index"].as_u64().unwrap();
        let level = squall::report::format::value(s["level"].as_f64().unwrap());
        let running = format!("▶{index:>2} {level:>6}");
        assert!(
            screens.iter().any(|sc| sc.contains(&running)
                && sc.contains(&format!("search step {index} · grow {level} msg/s"))
                && sc.contains("Σ ")),
            "step {index} was never shown running with its figures:\n{}",
            last()
        );
        let row = format!(
            "{index:>3} {level:>6} {:>8} {:>7}  pass",
            squall::report::format::ms(s["latency_ms"]["p99"].as_f64().unwrap()),
            squall::search::results::loss_text(s["messages"]["loss_ratio"].as_f64().unwrap())
        );
        assert!(
            i + 1 == steps.len() || screens.iter().any(|sc| sc.contains(&row)),
            "step {index} was never shown judged as {row:?}:\n{}",
            last()
        );
    }
    assert!(
        screens.iter().any(|sc| sc.contains("bracket [20, –]")),
        "the bracket after step 1:\n{}",
        last()
    );
    // Once the screen is given back: the step lines it held, then the
    // final line, which is the file's.
    assert!(
        end.contains("squall: step 2 · 40 msg/s · pass"),
        "the held step lines are printed after the TUI:\n{end}"
    );
    assert!(
        end.contains(r["summary"].as_str().unwrap()),
        "the final line:\n{end}"
    );
}

#[test]
fn q_stops_the_search_and_keeps_the_steps_done() {
    if !Tmux::available() {
        println!("SKIPPED: tmux is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tmux = start_search(dir.path(), "search-q", &["--max", "1000"]);
    let (screen, ok) = tmux.wait_for(SEARCH_LIMIT, |s| s.contains("▶ 2"));
    assert!(ok, "step 2 never ran:\n{screen}");
    tmux.send(&["q"]);
    let (end, ok) = tmux.wait_for(SEARCH_LIMIT, |s| s.contains("SQUALL-EXIT="));
    assert!(ok, "q did not stop the search:\n{end}");
    let r = search_file(&dir.path().join("out"));
    assert_eq!(after(&end, "SQUALL-EXIT="), "1", "{end}");
    assert_eq!(r["complete"], false, "{r:#}");
    assert_eq!(r["outcome"], "stopped");
    assert_eq!(r["steps"][0]["judged"], "pass", "step 1 is kept: {r:#}");
    assert!(end.contains("stopping the search (q pressed)"), "{end}");
    assert!(end.contains("max rate: at least 20 msg/s"), "{end}");
}

#[test]
fn a_terminal_that_goes_away_stops_the_search_which_still_writes_its_file() {
    if !Tmux::available() {
        println!("SKIPPED: tmux is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tmux = start_search(dir.path(), "search-hup", &["--max", "1000"]);
    let (screen, ok) = tmux.wait_for(SEARCH_LIMIT, |s| s.contains("▶ 2"));
    assert!(ok, "step 2 never ran:\n{screen}");
    // The terminal goes away (its tmux ends): squall gets SIGHUP, and its
    // UI must not keep it from ending the step and writing the file.
    drop(tmux);
    let out = dir.path().join("out");
    assert!(
        ended(&out.display().to_string(), SEARCH_LIMIT),
        "squall search still runs {SEARCH_LIMIT:?} after its terminal went away"
    );
    let r = search_file(&out);
    assert_eq!(r["complete"], false, "{r:#}");
    assert_eq!(r["outcome"], "stopped");
    assert_eq!(r["steps"][0]["judged"], "pass", "step 1 is kept: {r:#}");
}

/// Starts `squall search --tui` on the test scenario in tmux with its
/// output in `dir/out`; the pane shows `SQUALL-EXIT=<code>` when it ends.
fn start_search(dir: &Path, name: &str, extra: &[&str]) -> Tmux {
    start_squall(name, "search", dir, "tui-search.toml", SCENARIO, extra)
}

/// The search file in `out`.
fn search_file(out: &Path) -> Value {
    let path: PathBuf = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.to_string_lossy().contains("-search-") && p.extension().is_some_and(|e| e == "json")
        })
        .unwrap_or_else(|| panic!("no search file in {}", out.display()));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}
