//! The terminal UI drawn into ratatui's `TestBackend` and read back as
//! text, for the tests of what the screen shows in each state.
#![allow(dead_code)] // each test file uses its own subset

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use squall::tui::state::App;
use squall::tui::view;

/// The screen `app` draws at `width`×`height`, one line per row.
pub fn screen(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|frame| view::draw(frame, app)).unwrap();
    let buffer = terminal.backend().buffer();
    (0..height)
        .map(|y| {
            (0..width)
                .map(|x| buffer[(x, y)].symbol())
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Fails, showing the screen, unless it holds every one of `wanted`.
pub fn assert_shows(screen: &str, wanted: &[&str]) {
    for want in wanted {
        assert!(screen.contains(want), "screen lacks {want:?}:\n{screen}");
    }
}
