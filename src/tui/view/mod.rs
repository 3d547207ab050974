//! Pure rendering of an [`App`] onto a ratatui frame (tokio-console's
//! `view/`): no I/O, no clocks, so `TestBackend` tests see exactly what a
//! terminal would. The layout keeps every panel on screen at 80×24 and
//! gives extra height to the latency chart.

mod chaos;
mod connections;
mod header;
mod help;
mod latency;
mod loss;
mod thresholds;
mod throughput;
mod watchdog;

use super::state::{App, Model, Panel};
use crate::snapshot::Snapshot;
use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};

/// Height of the top and bottom rows of panels (five lines inside borders).
const ROW_HEIGHT: u16 = 7;

/// What every panel draws from.
struct Ctx<'a> {
    model: &'a Model,
    snap: &'a Snapshot,
}

/// Draws the whole screen for `app` into `frame`.
pub fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    let model = app.model();
    let Some(snap) = model.latest.as_ref() else {
        let waiting = Paragraph::new("squall: waiting for the first snapshot…")
            .alignment(Alignment::Center)
            .block(Block::bordered().title(" squall "));
        frame.render_widget(waiting, area);
        return;
    };
    let ctx = Ctx { model, snap };
    let hung = snap.watchdog.state == "hung";
    let [header_area, banner_area, body, footer] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Length(u16::from(hung)),
        Constraint::Fill(1),
        Constraint::Length(1),
    ])
    .areas(area);
    header::render(frame, header_area, app, snap);
    if hung {
        watchdog::render_banner(frame, banner_area, &ctx);
    }
    if app.zoomed() {
        render_panel(frame, body, app, app.focus(), &ctx);
    } else {
        render_grid(frame, body, app, &ctx);
    }
    frame.render_widget(footer_line(app), footer);
    if app.help() {
        help::render(frame, area, app.replay_status().is_some());
    }
}

/// Three rows: counts, latency (which takes what height is left), and the
/// watchdog, chaos and thresholds.
fn render_grid(frame: &mut Frame, body: Rect, app: &App, ctx: &Ctx) {
    let bottom = (body.height / 3).clamp(ROW_HEIGHT, 12);
    let [top, middle, lower] = Layout::vertical([
        Constraint::Length(ROW_HEIGHT),
        Constraint::Min(5),
        Constraint::Length(bottom),
    ])
    .areas(body);
    let thirds = || Layout::horizontal([Constraint::Ratio(1, 3); 3]);
    let [a, b, c] = thirds().areas(top);
    render_panel(frame, a, app, Panel::Connections, ctx);
    render_panel(frame, b, app, Panel::Throughput, ctx);
    render_panel(frame, c, app, Panel::Loss, ctx);
    render_panel(frame, middle, app, Panel::Latency, ctx);
    let [d, e, f] = thirds().areas(lower);
    render_panel(frame, d, app, Panel::Watchdog, ctx);
    render_panel(frame, e, app, Panel::Chaos, ctx);
    render_panel(frame, f, app, Panel::Thresholds, ctx);
}

fn render_panel(frame: &mut Frame, area: Rect, app: &App, panel: Panel, ctx: &Ctx) {
    let border = if panel == app.focus() {
        Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD)
    } else {
        Style::new().fg(Color::DarkGray)
    };
    let block = Block::bordered().border_style(border).title(Line::styled(
        format!(" {} ", panel.title()),
        Style::new().bold(),
    ));
    match panel {
        Panel::Connections => connections::render(frame, area, block, ctx),
        Panel::Throughput => throughput::render(frame, area, block, ctx),
        Panel::Loss => loss::render(frame, area, block, ctx),
        Panel::Latency => latency::render(frame, area, block, ctx),
        Panel::Watchdog => watchdog::render(frame, area, block, ctx),
        Panel::Chaos => chaos::render(frame, area, block, ctx),
        Panel::Thresholds => thresholds::render(frame, area, block, ctx),
    }
}

fn footer_line(app: &App) -> Line<'static> {
    let keys = if app.replay_status().is_some() {
        " ←→ 1s  ↑↓ 10s  PgUp/Dn 1m  Home/End  p pause  +/- speed  q quit  ? help"
    } else if app.paused() {
        " DISPLAY PAUSED (the run goes on): p resume  q stop  ? help"
    } else {
        " q stop  p pause  Tab panel  Enter zoom  ? help"
    };
    Line::styled(keys, Style::new().fg(Color::DarkGray))
}

/// A label and value line: `label` padded to `width`, then the value.
fn field<'a>(label: &'a str, width: usize, value: String, style: Style) -> Line<'a> {
    Line::from(vec![
        Span::styled(format!("{label:<width$}"), Style::new().fg(Color::Gray)),
        Span::styled(value, style),
    ])
}
