//! End to end: `squall run --tui` in a real terminal (tmux) for about ten
//! seconds against the builtin relay. The screen is read with
//! `capture-pane` while the run goes on, and what it showed last is checked
//! against the results file and the timeline the run wrote: the totals on
//! screen are those of one of the run's snapshots, and the header's exit
//! code, scenario and thresholds are the results file's.

mod tui_tmux;

use squall::report::RecordedRun;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tui_tmux::{Tmux, after, ended, start_squall};

const SCENARIO: &str = r#"
name = "tui-e2e"
duration = "10s"

[target]
kind = "builtin"

[load]
connections = 40
ramp = "2s"
topics = 4
publishers = 8
rate = 200
payload_bytes = 128

[[chaos]]
at = "4s"
action = "reset"
count = 5

[thresholds]
p99_ms = 5000
hangs = 0
"#;

/// Longest the whole run may take, drain and start-up included.
const RUN_LIMIT: Duration = Duration::from_secs(90);

#[test]
fn squall_run_tui_shows_what_the_results_file_records() {
    if !Tmux::available() {
        println!("SKIPPED: tmux is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let tmux = start_run(dir.path(), "e2e", &[]);
    let (screen, ok) = tmux.wait_for(RUN_LIMIT, |s| s.contains("tui-e2e") && s.contains("Σ "));
    assert!(ok, "the TUI never showed a snapshot:\n{screen}");
    // The rest of the run is read at the smallest size the UI promises.
    tmux.resize(80, 24);

    // Keep the last screen that shows the UI until the run ends.
    let deadline = Instant::now() + RUN_LIMIT;
    let mut last_ui: Option<String> = None;
    let end = loop {
        let screen = tmux.capture();
        if screen.contains("SQUALL-EXIT=") {
            break screen;
        }
        if screen.contains("tui-e2e") && screen.contains("Σ ") {
            last_ui = Some(screen);
        }
        assert!(
            Instant::now() < deadline,
            "squall run did not end within {RUN_LIMIT:?}:\n{}",
            tmux.capture()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let ui = last_ui.unwrap_or_else(|| panic!("the TUI never showed a snapshot:\n{end}"));
    assert!(
        !end.contains("┌ connections"),
        "the screen was not restored:\n{end}"
    );
    let exit: u8 = after(&end, "SQUALL-EXIT=").parse().unwrap();

    let results = results_file(&out);
    let run = RecordedRun::load(&results).unwrap();
    assert_eq!(exit, run.results.exit_code, "process and results agree");
    assert!(
        ui.contains(&format!("exit {} ", run.results.exit_code)),
        "{ui}"
    );
    for threshold in &run.results.thresholds {
        assert!(
            ui.contains(&threshold.name),
            "{} not on screen:\n{ui}",
            threshold.name
        );
    }

    let sent: u64 = after(line_with(&ui, "sent "), "Σ ").parse().unwrap();
    let received: u64 = after(line_with(&ui, "recv "), "Σ ").parse().unwrap();
    let tried: u64 = after(line_with(&ui, "tried"), "tried").parse().unwrap();
    assert!(sent > 0, "the screen showed no traffic:\n{ui}");
    let open = line_with(&ui, "open ");
    let (open, target): (u64, u64) = (
        after(open, "open").parse().unwrap(),
        after(open, "/ ").parse().unwrap(),
    );
    // The drain repeats totals, so the screen must match one snapshot in
    // every number it shows, not just some.
    let shown = run
        .timeline
        .iter()
        .filter(|s| {
            s.messages.sent == sent
                && s.messages.received == received
                && s.connections.attempted == tried
                && s.connections.open == open
                && s.connections.target == target
        })
        .collect::<Vec<_>>();
    assert!(
        !shown.is_empty(),
        "no snapshot in the timeline has sent {sent}, received {received}, tried {tried}, open {open} / {target}:\n{ui}"
    );
    assert!(
        shown
            .iter()
            .any(|s| ui.contains(&format!("state  {}", s.watchdog.state.to_uppercase()))),
        "the watchdog state on screen is not the snapshot's:\n{ui}"
    );
    assert!(run.results.messages.sent >= sent);
    assert!(run.results.messages.received >= received);
    // The chaos log shows every action the results record, with its count.
    for chaos in &run.results.chaos {
        let entry = format!(
            "{} {} {}/{}",
            squall::report::format::clock(chaos.at_s),
            chaos.action,
            chaos.done,
            chaos.count
        );
        assert!(ui.contains(&entry), "{entry:?} not in the chaos log:\n{ui}");
    }
    assert!(!run.results.chaos.is_empty(), "the scenario's chaos ran");
}

#[test]
fn q_stops_the_run_and_the_results_are_still_written() {
    if !Tmux::available() {
        println!("SKIPPED: tmux is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tmux = start_run(dir.path(), "e2e-q", &["--set", "duration=5m"]);
    let (screen, ok) = tmux.wait_for(RUN_LIMIT, |s| s.contains("tui-e2e") && s.contains("Σ "));
    assert!(ok, "the TUI never showed a snapshot:\n{screen}");
    tmux.send(&["q"]);
    let (end, ok) = tmux.wait_for(RUN_LIMIT, |s| s.contains("SQUALL-EXIT="));
    assert!(ok, "q did not stop the run:\n{end}");
    let run = RecordedRun::load(&results_file(&dir.path().join("out"))).unwrap();
    assert!(!run.results.complete, "a stopped run is not complete");
    assert!(run.results.messages.sent > 0);
    assert!(!run.timeline.is_empty());
}

#[test]
fn a_terminal_that_goes_away_stops_the_run_which_still_writes_its_results() {
    if !Tmux::available() {
        println!("SKIPPED: tmux is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tmux = start_run(dir.path(), "e2e-hup", &["--set", "duration=5m"]);
    let (screen, ok) = tmux.wait_for(RUN_LIMIT, |s| s.contains("tui-e2e") && s.contains("Σ "));
    assert!(ok, "the TUI never showed a snapshot:\n{screen}");
    // The terminal goes away (its tmux ends): squall gets SIGHUP, and its
    // UI must not keep it from writing the results.
    drop(tmux);
    let out = dir.path().join("out");
    assert!(
        ended(&out.display().to_string(), RUN_LIMIT),
        "squall run still runs {RUN_LIMIT:?} after its terminal went away"
    );
    let run = RecordedRun::load(&results_file(&out)).unwrap();
    assert!(!run.results.complete, "a stopped run is not complete");
    assert!(run.results.messages.sent > 0);
}

/// Starts `squall run` on the test scenario in tmux with its output in
/// `dir/out`; the pane shows `SQUALL-EXIT=<code>` when it ends.
fn start_run(dir: &Path, name: &str, extra: &[&str]) -> Tmux {
    start_squall(name, "run", dir, "tui-e2e.toml", SCENARIO, extra)
}

/// The results file `squall run` wrote into `out`.
fn results_file(out: &Path) -> PathBuf {
    std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json") && RecordedRun::load(p).is_ok())
        .unwrap_or_else(|| panic!("no results file in {}", out.display()))
}

/// The first line of `screen` holding `needle`.
fn line_with<'a>(screen: &'a str, needle: &str) -> &'a str {
    screen
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no {needle:?} on screen:\n{screen}"))
}
