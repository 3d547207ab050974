//! The live screen in each state a run goes through (normal, degraded,
//! hung, thresholds failing, help and zoom), drawn into ratatui's
//! `TestBackend` at the 80×24 the issue asks for and at a larger size, and
//! read back as text.

mod tui_screen;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use squall::snapshot::{
    ChaosEventSnap, ConnectionsSnap, LatencySnap, MessagesSnap, Snapshot, ThresholdSnap,
    WatchdogSnap,
};
use squall::tui::state::{Action, App};
use squall::tui::view;
use tui_screen::{assert_shows, screen};

/// A healthy second `t` of a 60 s run at 1000 msg/s over 1000 sockets.
fn snapshot(t: u64) -> Snapshot {
    Snapshot {
        scenario: "soak-demo".into(),
        t_s: t as f64,
        duration_s: 60.0,
        phase: "steady".into(),
        target: "ws://127.0.0.1:40123/ws".into(),
        connections: ConnectionsSnap {
            open: 987,
            target: 1000,
            attempted: 1000,
            failed: 13,
            errors: [("reset".to_string(), 9), ("http_401".to_string(), 4)].into(),
            ..Default::default()
        },
        messages: MessagesSnap {
            sent: 1000 * t,
            received: 1000 * t - 7,
            sent_per_s: 1000.0,
            received_per_s: 998.0 + (t % 3) as f64,
            lost: 3,
            duplicated: 2,
            reordered: 5,
            loss_ratio: 0.0003,
            send_lag_ms: 0.0,
            ..Default::default()
        },
        latency_ms: LatencySnap {
            count: 1000,
            p50: 1.25,
            p90: 2.5,
            p99: 4.75 + (t % 5) as f64,
            p999: 12.5,
            max: 31.0,
        },
        latency_total_ms: LatencySnap {
            count: 1000 * t,
            p50: 1.2,
            p90: 2.4,
            p99: 6.5,
            p999: 14.0,
            max: 44.0,
        },
        watchdog: WatchdogSnap {
            state: "ok".into(),
            probe_ms: Some(0.8),
            health_p99_ms: 1.5,
            hang_for_s: None,
            hangs: 0,
            last_chaos: None,
            ..WatchdogSnap::default()
        },
        chaos: if t == 10 {
            vec![ChaosEventSnap {
                at_s: 10.0,
                action: "reset".into(),
                count: 200,
                done: 200,
                state: "finished".into(),
            }]
        } else {
            vec![]
        },
        thresholds: vec![
            ThresholdSnap {
                name: "p99_ms".into(),
                limit: 50.0,
                actual: 6.5,
                passed: true,
                floor: false,
            },
            ThresholdSnap {
                name: "hangs".into(),
                limit: 0.0,
                actual: 0.0,
                passed: true,
                floor: false,
            },
        ],
        exit_code: 0,
        ..Snapshot::default()
    }
}

/// An app that has seen seconds 1..=t, with `last` changed by `edit`.
fn app_at(t: u64, edit: impl FnOnce(&mut Snapshot)) -> App {
    let mut app = App::live();
    for i in 1..t {
        app.ingest(snapshot(i));
    }
    let mut last = snapshot(t);
    edit(&mut last);
    app.ingest(last);
    app
}

#[test]
fn normal_run_at_80x24_shows_every_panel_and_number() {
    let app = app_at(20, |_| {});
    let text = screen(&app, 80, 24);
    assert_shows(
        &text,
        &[
            "soak-demo",
            "steady",
            "exit 0 passing",
            "0:20 / 1:00",
            "0:40 left",
            "connections",
            "987 / 1000",
            "tried   1000",
            "failed  13",
            "reset 9",
            "throughput",
            "1000/s  Σ 20000",
            "Σ 19993",
            "loss",
            "lost     3  0.0300%",
            "dup      2",
            "reorder  5",
            "latency",
            "1.25 ms",
            "2.50 ms",
            "4.75 ms",
            "12.5 ms",
            "watchdog",
            "OK",
            "0.80 ms",
            "chaos",
            "0:10 reset 200/200 ✓",
            "thresholds",
            "all pass",
            "✓ p99_ms 6.5 ≤ 50",
            "q stop",
        ],
    );
    assert!(!text.contains("HUNG"), "{text}");
}

#[test]
fn degraded_watchdog_is_shown() {
    let app = app_at(20, |s| {
        s.watchdog.state = "degraded".into();
        s.watchdog.probe_ms = Some(420.0);
        s.watchdog.health_p99_ms = 380.0;
    });
    let text = screen(&app, 80, 24);
    assert_shows(&text, &["DEGRADED", "420 ms", "380 ms"]);
    assert!(!text.contains("TARGET HUNG"), "{text}");
}

#[test]
fn hang_shows_red_banner_with_duration_and_last_chaos() {
    let app = app_at(30, |s| {
        s.watchdog = WatchdogSnap {
            state: "hung".into(),
            probe_ms: None,
            health_p99_ms: 1000.0,
            hang_for_s: Some(12.5),
            hangs: 1,
            last_chaos: Some("reset ×200 at 0:10".into()),
            ..WatchdogSnap::default()
        };
        s.exit_code = 4;
        s.messages.received_per_s = 0.0;
        s.latency_ms.count = 0;
        s.t_s = 45.0;
    });
    for (w, h) in [(80, 24), (120, 40)] {
        let text = screen(&app, w, h);
        assert_shows(
            &text,
            &[
                "TARGET HUNG for 12.5s",
                "last chaos: reset ×200 at 0:10",
                "HUNG",
                "no answer",
                "for 12.5s",
                "exit 4 target hung",
                "p50    -",
                "0:45 / 1:00",
                "0:45│",
            ],
        );
    }
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    terminal.draw(|frame| view::draw(frame, &app)).unwrap();
    let buffer = terminal.backend().buffer();
    let banner_row = (0..24)
        .find(|y| {
            (0..80)
                .map(|x| buffer[(x, *y)].symbol())
                .collect::<String>()
                .contains("TARGET HUNG")
        })
        .unwrap();
    assert_eq!(
        buffer[(40, banner_row)].bg,
        ratatui::style::Color::Red,
        "the hang banner is red across the screen"
    );
}

#[test]
fn failing_thresholds_are_marked() {
    let app = app_at(20, |s| {
        s.thresholds[0].actual = 75.5;
        s.thresholds[0].passed = false;
        s.exit_code = 3;
    });
    let text = screen(&app, 80, 24);
    assert_shows(
        &text,
        &[
            "1 failing",
            "✗ p99_ms 75.5 > 50",
            "✓ hangs  0 ≤ 0",
            "exit 3 thresholds breached",
        ],
    );
}

#[test]
fn waiting_before_the_first_snapshot() {
    let text = screen(&App::live(), 80, 24);
    assert_shows(&text, &["waiting for the first snapshot"]);
}

#[test]
fn pause_help_and_zoom() {
    let mut app = app_at(20, |_| {});
    app.apply(Action::TogglePause);
    app.ingest(snapshot(21));
    let text = screen(&app, 80, 24);
    assert_shows(&text, &["PAUSED", "0:20 / 1:00"]);

    app.apply(Action::ToggleHelp);
    assert_shows(&screen(&app, 80, 24), &["keys", "stop the run", "Tab"]);
    app.apply(Action::Back);

    for _ in 0..5 {
        app.apply(Action::NextPanel);
    }
    app.apply(Action::ToggleZoom);
    let zoomed = screen(&app, 80, 24);
    assert_shows(&zoomed, &["chaos", "0:10 reset 200/200"]);
    assert!(!zoomed.contains("thresholds"), "{zoomed}");
}

#[test]
fn long_run_and_large_screen_render() {
    let mut app = App::live();
    for i in 1..=5000 {
        app.ingest(snapshot(i));
    }
    let text = screen(&app, 160, 50);
    assert_shows(&text, &["run p99", "6.50 ms", "Σ 5000000"]);
    // Tiny and odd sizes must not panic.
    for (w, h) in [(20, 5), (1, 1), (79, 23)] {
        screen(&app, w, h);
    }
}

#[test]
fn watchdog_off_says_so() {
    let app = app_at(5, |s| {
        s.watchdog = WatchdogSnap {
            state: "off".into(),
            ..WatchdogSnap::default()
        }
    });
    let text = screen(&app, 80, 24);
    assert_shows(&text, &["OFF", "no health probes"]);
    assert!(!text.contains("no answer"), "{text}");
}

#[test]
fn hang_banner_falls_back_to_the_chaos_log() {
    let app = app_at(30, |s| {
        s.watchdog.state = "hung".into();
        s.watchdog.hang_for_s = Some(4.0);
        s.watchdog.last_chaos = None;
    });
    let text = screen(&app, 80, 24);
    assert_shows(
        &text,
        &["TARGET HUNG for 4.0s", "last chaos: reset ×200 at 0:10"],
    );
}

#[test]
fn odd_numbers_never_break_the_screen() {
    let mut app = App::live();
    for (i, v) in [f64::NAN, f64::INFINITY, -1.0, 0.0, 1e300, f64::NEG_INFINITY]
        .into_iter()
        .enumerate()
    {
        let mut s = snapshot(i as u64 + 1);
        s.t_s = v;
        s.duration_s = v;
        s.latency_ms.p50 = v;
        s.latency_ms.p99 = v;
        s.messages.sent_per_s = v;
        s.messages.received_per_s = v;
        s.messages.loss_ratio = v;
        s.messages.sent = u64::MAX;
        s.watchdog.probe_ms = Some(v);
        s.watchdog.hang_for_s = Some(v);
        s.watchdog.state = "hung".into();
        s.thresholds[0].actual = v;
        app.ingest(s);
        for (w, h) in [(80, 24), (200, 60)] {
            let text = screen(&app, w, h);
            assert!(text.contains("TARGET HUNG"), "{text}");
        }
    }
}
