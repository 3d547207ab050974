//! The header: scenario, phase, target, the exit code the run would have
//! now, and elapsed against planned time as a progress bar. In a search:
//! the step running (its stage and level), whether it meets the objective
//! so far, its progress, and the search's time against its limit.

use super::Ctx;
use crate::report::format;
use crate::tui::state::App;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Gauge, Paragraph};

/// Draws the two header lines into `area`.
pub(super) fn render(frame: &mut Frame, area: Rect, app: &App, ctx: &Ctx) {
    let snap = ctx.snap;
    let [title_area, gauge_area] =
        Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(area);
    // A step that breaks the objective is the search doing its work, not
    // the search failing: the badge speaks of the step.
    let exit = match (ctx.search, snap.exit_code) {
        (None, code) => format!(" exit {code} {} ", format::exit_code_meaning(code)),
        (Some(_), 0) => " within the SLO ".to_string(),
        (Some(_), 3) => " SLO broken ".to_string(),
        (Some(_), code) => format!(" {} ", format::exit_code_meaning(code)),
    };
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
    ];
    match ctx.search {
        Some(search) => {
            spans.push(Span::styled(
                format!("search {}", super::search::header(search)),
                Style::new().bold(),
            ));
            if let Some(current) = search.current {
                spans.push(Span::raw(" · "));
                spans.push(Span::styled(
                    super::search::step_phase(current, Some(snap)),
                    Style::new().fg(Color::Yellow),
                ));
            }
        }
        None => spans.push(Span::styled(
            snap.phase.clone(),
            Style::new().fg(Color::Yellow),
        )),
    }
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
    let mut label = format!(
        "{} / {}  ({after})",
        format::clock(snap.t_s),
        format::clock(snap.duration_s),
    );
    if let Some(search) = ctx.search {
        // The search's clock: when the step started, plus the step's own.
        let elapsed = search.elapsed_s
            + if search.current.is_some() {
                snap.t_s
            } else {
                0.0
            };
        label = format!(
            "step {label} · search {} of at most {}",
            format::clock(elapsed),
            format::clock(search.time_limit_s)
        );
    }
    let gauge = Gauge::default()
        .ratio(progress)
        .label(label)
        .gauge_style(Style::new().fg(Color::Blue).bg(Color::Black));
    frame.render_widget(gauge, gauge_area);
}
