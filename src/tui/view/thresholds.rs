//! The thresholds panel: every threshold with its value so far and whether
//! it holds; the title counts the failing ones.

use super::Ctx;
use crate::report::format;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph};

/// Draws the panel into `area`.
pub(super) fn render(frame: &mut Frame, area: Rect, block: Block, ctx: &Ctx) {
    let thresholds = &ctx.snap.thresholds;
    let failing = thresholds.iter().filter(|t| !t.passed).count();
    let (summary, summary_style) = if thresholds.is_empty() {
        ("none set".to_string(), Style::new().fg(Color::DarkGray))
    } else if failing == 0 {
        ("all pass".to_string(), Style::new().fg(Color::Green))
    } else {
        (
            format!("{failing} failing"),
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        )
    };
    let block = block.title(Line::styled(format!(" {summary} "), summary_style).right_aligned());
    let width = thresholds.iter().map(|t| t.name.len()).max().unwrap_or(0);
    let lines: Vec<Line> = thresholds
        .iter()
        .map(|t| {
            let (mark, cmp, style) = match (t.passed, t.floor) {
                (true, false) => ("✓", "≤", Style::new().fg(Color::Green)),
                (true, true) => ("✓", "≥", Style::new().fg(Color::Green)),
                (false, floor) => (
                    "✗",
                    if floor { "<" } else { ">" },
                    Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
                ),
            };
            Line::styled(
                format!(
                    "{mark} {:<width$} {} {cmp} {}",
                    t.name,
                    format::value(t.actual),
                    format::value(t.limit)
                ),
                style,
            )
        })
        .collect();
    frame.render_widget(Paragraph::new(lines).block(block), area);
}
