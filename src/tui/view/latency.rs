//! The latency panel: this second's percentiles on the left, and on the
//! right the p50 and p99 of every second of the run as a chart.

use super::{Ctx, field};
use crate::report::format;
use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::symbols::Marker;
use ratatui::text::Line;
use ratatui::widgets::{Axis, Block, Borders, Chart, Dataset, GraphType, Paragraph};

/// Colour of p50, in the numbers and the chart.
const P50: Color = Color::Cyan;
/// Colour of p99, in the numbers and the chart.
const P99: Color = Color::Magenta;

/// Draws the panel into `area`.
pub(super) fn render(frame: &mut Frame, area: Rect, block: Block, ctx: &Ctx) {
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [numbers_box, chart] =
        Layout::horizontal([Constraint::Length(20), Constraint::Fill(1)]).areas(inner);
    let divider = Block::new()
        .borders(Borders::RIGHT)
        .border_style(Style::new().fg(Color::DarkGray));
    let numbers = divider.inner(numbers_box);
    frame.render_widget(divider, numbers_box);
    let now = &ctx.snap.latency_ms;
    let run = &ctx.snap.latency_total_ms;
    let plain = Style::new();
    // A second without deliveries has no percentiles, not zero ones.
    let shown = |v: f64| {
        if now.count > 0 {
            format::ms(v)
        } else {
            "-".to_string()
        }
    };
    let mut lines = vec![
        field("p50", 7, shown(now.p50), Style::new().fg(P50)),
        field("p90", 7, shown(now.p90), plain),
        field("p99", 7, shown(now.p99), Style::new().fg(P99)),
        field("p99.9", 7, shown(now.p999), plain),
        field("max", 7, shown(now.max), plain),
    ];
    if numbers.height > 6 {
        lines.push(Line::raw(""));
        lines.push(field(
            "run p99",
            8,
            format::ms(run.p99),
            Style::new().fg(P99),
        ));
        lines.push(field("run max", 8, format::ms(run.max), plain));
    }
    frame.render_widget(Paragraph::new(lines), numbers);
    render_chart(frame, chart, ctx);
}

fn render_chart(frame: &mut Frame, area: Rect, ctx: &Ctx) {
    let (p50, p99) = (ctx.model.latency.p50(), ctx.model.latency.p99());
    let (Some(first), Some(last)) = (p99.first(), p99.last()) else {
        let empty = Paragraph::new("no deliveries yet")
            .alignment(Alignment::Center)
            .style(Style::new().fg(Color::DarkGray));
        frame.render_widget(empty, area);
        return;
    };
    let top = p99.iter().map(|p| p.1).fold(0.0, f64::max).max(0.001) * 1.1;
    // The axis runs to now, so seconds without deliveries (a hang) show as
    // an empty stretch at the right rather than vanish.
    let x_bounds = [first.0, last.0.max(ctx.snap.t_s).max(first.0 + 1.0)];
    let datasets = vec![
        Dataset::default()
            .name("p50")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::new().fg(P50))
            .data(p50),
        Dataset::default()
            .name("p99")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::new().fg(P99))
            .data(p99),
    ];
    let axis_style = Style::new().fg(Color::DarkGray);
    let chart = Chart::new(datasets)
        .x_axis(
            Axis::default()
                .style(axis_style)
                .bounds(x_bounds)
                .labels([format::clock(x_bounds[0]), format::clock(x_bounds[1])]),
        )
        .y_axis(
            Axis::default()
                .style(axis_style)
                .bounds([0.0, top])
                .labels(["0".to_string(), format::ms(top)]),
        );
    frame.render_widget(chart, area);
}
