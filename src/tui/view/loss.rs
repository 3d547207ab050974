//! The loss panel: overdue deliveries (owed for over 2 s and not arrived:
//! loss while it happens), lost, duplicated and reordered deliveries with
//! their ratios (loss against what was expected, the others against
//! deliveries).

use super::{Ctx, field};
use crate::report::format;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::widgets::{Block, Paragraph};

/// Draws the panel into `area`.
pub(super) fn render(frame: &mut Frame, area: Rect, block: Block, ctx: &Ctx) {
    let m = &ctx.snap.messages;
    let bad = |n: u64| {
        if n > 0 {
            Style::new().fg(Color::Red)
        } else {
            Style::new().fg(Color::Green)
        }
    };
    let row = |label, n: u64, ratio: f64| {
        field(label, 9, format!("{n}  {}", format::percent(ratio)), bad(n))
    };
    let lines = vec![
        field(
            "overdue",
            9,
            format!("{}  owed > 2s", m.overdue),
            bad(m.overdue),
        ),
        row("lost", m.lost, m.loss_ratio),
        row("dup", m.duplicated, format::ratio(m.duplicated, m.received)),
        row(
            "reorder",
            m.reordered,
            format::ratio(m.reordered, m.received),
        ),
    ];
    frame.render_widget(Paragraph::new(lines).block(block), area);
}
