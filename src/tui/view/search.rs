//! The search panel of `squall search`: the bracket the capacity lies in
//! ([highest pass, lowest fail], and how far apart they still are), one row
//! per step judged (level, p99, loss, pass / FAIL / gen-limit) and a last
//! row for the step running, with its figures so far. (The objective itself
//! is the slo panel, held against the running step.) Also what the header
//! says of the search, and the screen shown while a step has sent no
//! snapshot yet.

use super::Ctx;
use crate::report::format;
use crate::search::bisect::{Judged, Stage};
use crate::search::results::loss_text;
use crate::search::snapshot::{CurrentStep, SearchSnap};
use crate::snapshot::Snapshot;
use crate::tui::state::{App, Panel};
use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};

/// Lines above the steps: the bracket, the column names.
const HEAD_LINES: usize = 2;

/// Width the panel needs for a row of figures, borders included.
pub(super) const WIDTH: u16 = 40;

/// Draws the panel into `area`.
pub(super) fn render(frame: &mut Frame, area: Rect, block: Block, ctx: &Ctx) {
    match ctx.search {
        Some(search) => render_search(frame, area, block, search, Some(ctx.snap)),
        None => frame.render_widget(Paragraph::new("no search").block(block), area),
    }
}

/// The panel for `search`, with the running step's latest snapshot if it
/// has sent one.
fn render_search(
    frame: &mut Frame,
    area: Rect,
    block: Block,
    search: &SearchSnap,
    live: Option<&Snapshot>,
) {
    let block = block.title(
        Line::styled(
            format!(
                " {} · to {}% ",
                search.unit,
                format::value(search.precision * 100.0)
            ),
            Style::new().fg(Color::Gray),
        )
        .right_aligned(),
    );
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let label = Style::new().fg(Color::Gray);
    let mut lines = vec![
        Line::from(
            [Span::styled("bracket ", label)]
                .into_iter()
                .chain(bracket(search))
                .collect::<Vec<_>>(),
        ),
        Line::styled(
            format!(
                "{:>3} {:>6} {:>8} {:>7}  judged",
                "#", "level", "p99", "loss"
            ),
            label,
        ),
    ];
    let mut rows: Vec<Line> = search.steps.iter().map(done_row).collect();
    if let Some(current) = search.current {
        rows.push(running_row(current, live));
    }
    // The newest rows when they do not all fit: the running step is last.
    let room = usize::from(inner.height).saturating_sub(HEAD_LINES);
    let skip = rows.len().saturating_sub(room);
    lines.extend(rows.into_iter().skip(skip));
    frame.render_widget(Paragraph::new(lines), inner);
}

/// `[200, 218] · 9.0%`, coloured: the capacity lies between the
/// highest level that passed and the lowest that failed, this far apart.
fn bracket(search: &SearchSnap) -> Vec<Span<'static>> {
    let b = &search.bracket;
    let level = |v: Option<f64>| v.map_or_else(|| "–".to_string(), format::value);
    let mut spans = vec![
        Span::raw("["),
        Span::styled(level(b.highest_pass), Style::new().fg(Color::Green)),
        Span::raw(", "),
        Span::styled(level(b.lowest_fail), Style::new().fg(Color::Red)),
        Span::raw("]"),
    ];
    if let (Some(lo), Some(hi)) = (b.highest_pass, b.lowest_fail)
        && lo > 0.0
    {
        spans.push(Span::raw(format!(" · {:.1}%", (hi / lo - 1.0) * 100.0)));
    }
    if let Some(g) = b.generator {
        spans.push(Span::styled(
            format!(" · gen-limit {}", format::value(g)),
            Style::new().fg(Color::Yellow),
        ));
    }
    spans
}

/// One judged step.
fn done_row(s: &crate::search::snapshot::StepSnap) -> Line<'static> {
    let (verdict, style) = match s.judged {
        Some(Judged::Pass) => ("pass", Style::new().fg(Color::Green)),
        Some(Judged::Fail) => (
            "FAIL",
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        ),
        Some(Judged::Generator) => ("gen-limit", Style::new().fg(Color::Yellow)),
        None => ("stopped", Style::new().fg(Color::DarkGray)),
    };
    Line::from(vec![
        Span::raw(format!(
            "{:>3} {:>6} {:>8} {:>7}  ",
            s.index,
            format::value(s.level),
            format::ms(s.p99_ms),
            loss_text(s.loss_ratio)
        )),
        Span::styled(verdict, style),
    ])
}

/// The step running, with its p99 and loss so far (warm-up included) and
/// where in the step it stands.
fn running_row(current: CurrentStep, live: Option<&Snapshot>) -> Line<'static> {
    let (p99, loss) = match live {
        Some(s) if s.latency_total_ms.count > 0 => (
            format::ms(s.latency_total_ms.p99),
            loss_text(s.messages.loss_ratio),
        ),
        _ => ("-".to_string(), "-".to_string()),
    };
    let bold = Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD);
    Line::from(vec![
        Span::styled(format!("▶{:>2}", current.index), bold),
        Span::styled(
            format!(
                " {:>6} {:>8} {:>7}  ",
                format::value(current.level),
                p99,
                loss
            ),
            Style::new().fg(Color::Cyan),
        ),
        Span::styled(step_phase(current, live), Style::new().fg(Color::Yellow)),
    ])
}

/// Where the running step stands: `ramp`, `warm-up`, `measuring`, `drain`.
pub(super) fn step_phase(current: CurrentStep, live: Option<&Snapshot>) -> String {
    let Some(s) = live else {
        return "starting".to_string();
    };
    match s.phase.as_str() {
        "steady" if s.t_s < current.window_from_s => "warm-up".to_string(),
        "steady" if s.t_s <= current.window_to_s + 0.5 => "measuring".to_string(),
        other => other.to_string(),
    }
}

/// What the header says of the search: `step 5 · bisect 283 msg/s`, or
/// the last step judged between steps.
pub(super) fn header(search: &SearchSnap) -> String {
    let stage = |s: Option<Stage>| match s {
        Some(Stage::Grow) => " · grow",
        Some(Stage::Bisect) => " · bisect",
        None => " ·",
    };
    match (search.current, search.steps.last()) {
        (Some(c), _) => format!(
            "step {}{} {} {}",
            c.index,
            stage(Some(c.stage)),
            format::value(c.level),
            search.unit
        ),
        (None, Some(last)) => format!(
            "step {} judged{} {} {}",
            last.index,
            stage(last.stage),
            format::value(last.level),
            search.unit
        ),
        (None, None) => "starting".to_string(),
    }
}

/// The screen while the running step has sent no snapshot yet (the
/// search's start, or a step's first second): the search panel alone.
pub(super) fn render_waiting(frame: &mut Frame, area: Rect, app: &App, search: &SearchSnap) {
    let [title, objective, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(1),
    ])
    .areas(area);
    let waiting = match search.current {
        Some(_) => "no snapshot yet",
        None => "waiting for the first step",
    };
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(" squall ", Style::new().bold().fg(Color::Cyan)),
            Span::styled(search.scenario.clone(), Style::new().bold()),
            Span::raw(format!(" · search {} · ", header(search))),
            Span::styled(waiting, Style::new().fg(Color::Yellow)),
        ])),
        title,
    );
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(" objective: ", Style::new().fg(Color::Gray)),
            Span::raw(search.slo.clone()),
            Span::styled(
                format!(" · {}", search.target),
                Style::new().fg(Color::Gray),
            ),
        ])),
        objective,
    );
    let block = super::panel_block(app, Panel::Search, Panel::Search.title());
    render_search(frame, body, block, search, None);
    frame.render_widget(
        Paragraph::new(super::footer_line(app)).alignment(Alignment::Left),
        footer,
    );
}
