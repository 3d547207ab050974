//! Pure rendering of an [`App`] onto a ratatui frame (tokio-console's
//! `view/`): no I/O, no clocks, so `TestBackend` tests see exactly what a
//! terminal would. The layout keeps every panel on screen at 80×24 and
//! gives extra height to the latency chart; in a search, the search panel
//! takes the left half below the counts, and the chaos panel (a search
//! runs none) gives way.

mod chaos;
mod connections;
mod header;
mod help;
mod latency;
mod loss;
mod search;
mod thresholds;
mod throughput;
mod watchdog;

use super::state::{App, Model, Panel};
use crate::search::snapshot::SearchSnap;
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
    /// The search around the running step, in `squall search`.
    search: Option<&'a SearchSnap>,
}

/// Draws the whole screen for `app` into `frame`.
pub fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    let model = app.model();
    let Some(snap) = model.latest.as_ref() else {
        if let Some(search) = &model.search {
            search::render_waiting(frame, area, app, search);
            return;
        }
        let waiting = Paragraph::new("squall: waiting for the first snapshot…")
            .alignment(Alignment::Center)
            .block(Block::bordered().title(" squall "));
        frame.render_widget(waiting, area);
        return;
    };
    let ctx = Ctx {
        model,
        snap,
        search: model.search.as_ref(),
    };
    let hung = snap.watchdog.state == "hung";
    let [header_area, banner_area, body, footer] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Length(u16::from(hung)),
        Constraint::Fill(1),
        Constraint::Length(1),
    ])
    .areas(area);
    header::render(frame, header_area, app, &ctx);
    if hung {
        watchdog::render_banner(frame, banner_area, &ctx);
    }
    if app.zoomed() {
        render_panel(frame, body, app, app.focus(), &ctx);
    } else if ctx.search.is_some() {
        render_search_grid(frame, body, app, &ctx);
    } else {
        render_grid(frame, body, app, &ctx);
    }
    frame.render_widget(footer_line(app), footer);
    if app.help() {
        help::render(frame, area, app);
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

/// A search: the counts on top; below, the search panel on the left, and
/// on the right the latency over the watchdog and the objective.
fn render_search_grid(frame: &mut Frame, body: Rect, app: &App, ctx: &Ctx) {
    let [top, rest] =
        Layout::vertical([Constraint::Length(ROW_HEIGHT), Constraint::Fill(1)]).areas(body);
    let [a, b, c] = Layout::horizontal([Constraint::Ratio(1, 3); 3]).areas(top);
    render_panel(frame, a, app, Panel::Connections, ctx);
    render_panel(frame, b, app, Panel::Throughput, ctx);
    render_panel(frame, c, app, Panel::Loss, ctx);
    let [left, right] =
        Layout::horizontal([Constraint::Length(search::WIDTH), Constraint::Fill(1)]).areas(rest);
    render_panel(frame, left, app, Panel::Search, ctx);
    let bottom = (rest.height / 2).clamp(ROW_HEIGHT, 12);
    let [middle, lower] =
        Layout::vertical([Constraint::Min(5), Constraint::Length(bottom)]).areas(right);
    render_panel(frame, middle, app, Panel::Latency, ctx);
    let [d, e] = Layout::horizontal([Constraint::Ratio(1, 2); 2]).areas(lower);
    render_panel(frame, d, app, Panel::Watchdog, ctx);
    render_panel(frame, e, app, Panel::Thresholds, ctx);
}

/// A panel's frame: its title, and a yellow border when it has the focus.
fn panel_block(app: &App, panel: Panel, title: &str) -> Block<'static> {
    let border = if panel == app.focus() {
        Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD)
    } else {
        Style::new().fg(Color::DarkGray)
    };
    Block::bordered()
        .border_style(border)
        .title(Line::styled(format!(" {title} "), Style::new().bold()))
}

fn render_panel(frame: &mut Frame, area: Rect, app: &App, panel: Panel, ctx: &Ctx) {
    // In a search the thresholds are the objective, held against the step.
    let title = match panel {
        Panel::Thresholds if ctx.search.is_some() => "slo",
        _ => panel.title(),
    };
    let block = panel_block(app, panel, title);
    match panel {
        Panel::Connections => connections::render(frame, area, block, ctx),
        Panel::Throughput => throughput::render(frame, area, block, ctx),
        Panel::Loss => loss::render(frame, area, block, ctx),
        Panel::Latency => latency::render(frame, area, block, ctx),
        Panel::Watchdog => watchdog::render(frame, area, block, ctx),
        Panel::Chaos => chaos::render(frame, area, block, ctx),
        Panel::Thresholds => thresholds::render(frame, area, block, ctx),
        Panel::Search => search::render(frame, area, block, ctx),
    }
}

fn footer_line(app: &App) -> Line<'static> {
    let keys = if app.replay_status().is_some() {
        " ←→ 1s  ↑↓ 10s  PgUp/Dn 1m  Home/End  p pause  +/- speed  q quit  ? help"
    } else if app.paused() && app.searching() {
        " DISPLAY PAUSED (the search goes on): p resume  q stop  ? help"
    } else if app.paused() {
        " DISPLAY PAUSED (the run goes on): p resume  q stop  ? help"
    } else if app.searching() {
        " q stop the search  p pause  Tab panel  Enter zoom  ? help"
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
