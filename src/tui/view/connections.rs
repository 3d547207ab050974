//! The connections panel: sockets open against the plan, attempts, and
//! failures by kind, most frequent first.

use super::{Ctx, field};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph};

/// Draws the panel into `area`.
pub(super) fn render(frame: &mut Frame, area: Rect, block: Block, ctx: &Ctx) {
    let c = &ctx.snap.connections;
    let failed_style = if c.failed > 0 {
        Style::new().fg(Color::Red)
    } else {
        Style::new()
    };
    let mut lines = vec![
        field(
            "open",
            8,
            format!("{} / {}", c.open, c.target),
            Style::new().bold(),
        ),
        field("tried", 8, c.attempted.to_string(), Style::new()),
        field("failed", 8, c.failed.to_string(), failed_style),
    ];
    let dropped: u64 = c.dropped.values().sum();
    if dropped > 0 {
        lines.push(field(
            "dropped",
            8,
            format!("{dropped} by the target"),
            Style::new().fg(Color::Red),
        ));
    }
    let mut kinds: Vec<(&String, &u64)> = c.errors.iter().collect();
    kinds.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    lines.extend(
        kinds
            .into_iter()
            .map(|(kind, n)| Line::styled(format!("  {kind} {n}"), Style::new().fg(Color::Red))),
    );
    frame.render_widget(Paragraph::new(lines).block(block), area);
}
