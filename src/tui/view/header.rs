//! The header: scenario, phase, target, the exit code the run would have
//! now, and elapsed against planned time as a progress bar.

use crate::report::format;
use crate::snapshot::Snapshot;
use crate::tui::state::App;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Gauge, Paragraph};

/// Draws the two header lines into `area`.
pub(super) fn render(frame: &mut Frame, area: Rect, app: &App, snap: &Snapshot) {
    let [title_area, gauge_area] =
        Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(area);
    let exit = format!(
        " exit {} {} ",
        snap.exit_code,
        format::exit_code_meaning(snap.exit_code)
    );
    let exit_style = if snap.exit_code == 0 {
        Style::new().fg(Color::Black).bg(Color::Green)
    } else {
        Style::new().fg(Color::White).bg(Color::Red)
    }
    .add_modifier(Modifier::BOLD);
    let [left, right] = Layout::horizontal([
        Constraint::Fill(1),
        Constraint::Length(exit.chars().count() as u16),
    ])
    .areas(title_area);

    let mut spans = vec![
        Span::styled(" squall ", Style::new().bold().fg(Color::Cyan)),
        Span::styled(snap.scenario.clone(), Style::new().bold()),
        Span::raw(" · "),
        Span::styled(snap.phase.clone(), Style::new().fg(Color::Yellow)),
    ];
    if let Some(replay) = app.replay_status() {
        let state = if replay.playing { "▶" } else { "⏸" };
        spans.push(Span::styled(
            format!(
                " · REPLAY {}/{} {state} {}×",
                replay.position + 1,
                replay.len,
                replay.speed
            ),
            Style::new().fg(Color::Magenta).bold(),
        ));
    } else if app.paused() {
        spans.push(Span::styled(
            " · PAUSED",
            Style::new().fg(Color::Magenta).bold(),
        ));
    }
    spans.push(Span::raw(" · "));
    spans.push(Span::styled(
        snap.target.clone(),
        Style::new().fg(Color::Gray),
    ));
    frame.render_widget(Paragraph::new(Line::from(spans)), left);
    frame.render_widget(Paragraph::new(Span::styled(exit, exit_style)), right);

    let progress = snap.t_s / snap.duration_s;
    let progress = if progress.is_finite() {
        progress.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let remaining = snap.duration_s - snap.t_s;
    let after = if remaining > 0.0 {
        format!("{} left", format::clock(remaining))
    } else {
        snap.phase.clone()
    };
    let label = format!(
        "{} / {}  ({after})",
        format::clock(snap.t_s),
        format::clock(snap.duration_s),
    );
    let gauge = Gauge::default()
        .ratio(progress)
        .label(label)
        .gauge_style(Style::new().fg(Color::Blue).bg(Color::Black));
    frame.render_widget(gauge, gauge_area);
}
