//! The throughput panel: sent and received per second with their totals,
//! each over a sparkline of recent seconds, and how far publishers lag.

use super::{Ctx, field};
use crate::report::format;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::widgets::{Block, Paragraph, Sparkline};

/// Draws the panel into `area`.
pub(super) fn render(frame: &mut Frame, area: Rect, block: Block, ctx: &Ctx) {
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let m = &ctx.snap.messages;
    let [sent_line, sent_spark, recv_line, recv_spark, lag_line] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(1),
    ])
    .areas(inner);
    let width = usize::from(inner.width);
    let rows = [
        (
            sent_line,
            sent_spark,
            "sent",
            m.sent_per_s,
            m.sent,
            &ctx.model.sent_per_s,
            Color::Green,
        ),
        (
            recv_line,
            recv_spark,
            "recv",
            m.received_per_s,
            m.received,
            &ctx.model.received_per_s,
            Color::Cyan,
        ),
    ];
    for (line_area, spark_area, label, per_s, total, history, color) in rows {
        let text = format!("{}/s  Σ {total}", format::rate(per_s));
        frame.render_widget(
            Paragraph::new(field(label, 5, text, Style::new().fg(color))),
            line_area,
        );
        let data = history.last(width);
        frame.render_widget(
            Sparkline::default()
                .data(&data)
                .style(Style::new().fg(color)),
            spark_area,
        );
    }
    let lag_style = if m.send_lag_ms > 0.0 {
        Style::new().fg(Color::Yellow)
    } else {
        Style::new()
    };
    frame.render_widget(
        Paragraph::new(field("lag", 5, format::ms(m.send_lag_ms), lag_style)),
        lag_line,
    );
}
