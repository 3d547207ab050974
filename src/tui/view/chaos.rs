//! The chaos log: every chaos action with when it was scheduled and how far
//! it got, newest at the bottom; older entries scroll off the top.

use super::Ctx;
use crate::report::format;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph};

/// Draws the panel into `area`.
pub(super) fn render(frame: &mut Frame, area: Rect, block: Block, ctx: &Ctx) {
    let rows = usize::from(block.inner(area).height);
    let entries = ctx.model.chaos.entries();
    let lines: Vec<Line> = if entries.len() == 0 {
        vec![Line::styled(
            "no chaos yet",
            Style::new().fg(Color::DarkGray),
        )]
    } else {
        let skip = entries.len().saturating_sub(rows);
        entries
            .skip(skip)
            .map(|e| {
                let (mark, style) = if e.state == "finished" {
                    ("✓", Style::new().fg(Color::Green))
                } else {
                    ("…", Style::new().fg(Color::Yellow))
                };
                Line::styled(
                    format!(
                        "{} {} {}/{} {mark}",
                        format::clock(e.at_s),
                        e.action,
                        e.done,
                        e.count
                    ),
                    style,
                )
            })
            .collect()
    };
    frame.render_widget(Paragraph::new(lines).block(block), area);
}
