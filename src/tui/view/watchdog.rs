//! The watchdog panel (probe latency, OK / DEGRADED / HUNG, hangs so far)
//! and the red banner that spans the screen while the target is hung.

use super::{Ctx, field};
use crate::report::format;
use crate::snapshot::Snapshot;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph};

/// The watchdog state as shown, with its colour.
fn state(snap: &Snapshot) -> (String, Style) {
    let style = match snap.watchdog.state.as_str() {
        "ok" => Style::new().fg(Color::Green),
        "degraded" => Style::new().fg(Color::Yellow),
        "hung" => Style::new().fg(Color::White).bg(Color::Red),
        _ => Style::new().fg(Color::DarkGray),
    };
    (
        snap.watchdog.state.to_uppercase(),
        style.add_modifier(Modifier::BOLD),
    )
}

/// Draws the panel into `area`.
pub(super) fn render(frame: &mut Frame, area: Rect, block: Block, ctx: &Ctx) {
    let w = &ctx.snap.watchdog;
    let (state, state_style) = state(ctx.snap);
    if w.state == "off" {
        let lines = vec![
            field("state", 7, state, state_style),
            Line::styled("no health probes", Style::new().fg(Color::DarkGray)),
        ];
        frame.render_widget(Paragraph::new(lines).block(block), area);
        return;
    }
    let probe = w
        .probe_ms
        .map_or_else(|| "no answer".to_string(), format::ms);
    let hangs_style = if w.hangs > 0 {
        Style::new().fg(Color::Red)
    } else {
        Style::new()
    };
    let mut lines = vec![
        field("state", 7, state, state_style),
        field("probe", 7, probe, Style::new()),
        field("p99", 7, format::ms(w.health_p99_ms), Style::new()),
        field("hangs", 7, w.hangs.to_string(), hangs_style),
    ];
    if let Some(for_s) = w.hang_for_s {
        lines.push(field(
            "hung",
            7,
            format!("for {for_s:.1}s"),
            Style::new().fg(Color::Red),
        ));
    }
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

/// Draws the one-line red banner of a hang: how long, and what chaos did
/// last before it (as the watchdog says, or else from the chaos log).
pub(super) fn render_banner(frame: &mut Frame, area: Rect, ctx: &Ctx) {
    let w = &ctx.snap.watchdog;
    let lasted = w
        .hang_for_s
        .map_or_else(String::new, |s| format!(" for {s:.1}s"));
    let hang_start = ctx.snap.t_s - w.hang_for_s.unwrap_or(0.0);
    let last = w
        .last_chaos
        .clone()
        .or_else(|| {
            let e = ctx.model.chaos.last_before(hang_start)?;
            Some(format!(
                "{} ×{} at {}",
                e.action,
                e.count,
                format::clock(e.at_s)
            ))
        })
        .unwrap_or_else(|| "none".to_string());
    let text = format!(
        " TARGET HUNG{lasted} · last chaos: {last} · hangs so far: {} ",
        w.hangs
    );
    let banner = Paragraph::new(Line::styled(
        text,
        Style::new()
            .fg(Color::White)
            .bg(Color::Red)
            .add_modifier(Modifier::BOLD),
    ))
    .style(Style::new().bg(Color::Red));
    frame.render_widget(banner, area);
}
