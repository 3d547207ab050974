//! The key help, drawn over the middle of the screen.

use crate::tui::state::App;
use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Clear, Paragraph};

const LIVE: &[(&str, &str)] = &[
    ("q, Ctrl-C", "stop the run (results are still written)"),
    ("p", "pause or resume the display"),
    ("Tab, S-Tab", "focus the next or previous panel"),
    ("Enter", "show the focused panel alone, or all"),
    ("Esc", "close help or the zoomed panel"),
    ("?", "show or hide this help"),
];

const SEARCH: &[(&str, &str)] = &[
    ("q, Ctrl-C", "stop the search (the steps done are kept)"),
    ("p", "pause or resume the display"),
    ("Tab, S-Tab", "focus the next or previous panel"),
    ("Enter", "show the focused panel alone, or all"),
    ("Esc", "close help or the zoomed panel"),
    ("?", "show or hide this help"),
];

const REPLAY: &[(&str, &str)] = &[
    ("← / →", "one second back or forward"),
    ("↑ / ↓", "ten seconds forward or back"),
    ("PgUp / PgDn", "a minute back or forward"),
    ("Home / End", "first or last second"),
    ("p, space", "pause or resume playback"),
    ("+ / -", "play faster or slower"),
    ("Tab, Enter", "focus and zoom panels"),
    ("q", "leave"),
];

/// Draws the help box for a live run, a search or replay over `area`.
pub(super) fn render(frame: &mut Frame, area: Rect, app: &App) {
    let keys = if app.replay_status().is_some() {
        REPLAY
    } else if app.searching() {
        SEARCH
    } else {
        LIVE
    };
    let height = keys.len() as u16 + 2;
    let [row] = Layout::vertical([Constraint::Length(height)])
        .flex(Flex::Center)
        .areas(area);
    let [popup] = Layout::horizontal([Constraint::Length(58)])
        .flex(Flex::Center)
        .areas(row);
    let lines: Vec<Line> = keys
        .iter()
        .map(|(key, what)| Line::raw(format!(" {key:<12} {what}")))
        .collect();
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::bordered()
                .title(" keys ")
                .border_style(Style::new().fg(Color::Yellow)),
        ),
        popup,
    );
}
