//! `squall report` on a search file: one self-contained HTML page (inline
//! CSS and SVG, nothing fetched) with latency and throughput drawn against
//! the offered level, the knee marked (the capacity found and the first
//! failing level), the objective's limit drawn on the latency chart, and
//! every step in a table.
//!
//! Levels grow geometrically, so the x axis is logarithmic, with a tick and
//! a label at every level tried (labels of close levels on rows below one
//! another); latency spans milliseconds below the knee and seconds past it,
//! so its axis is logarithmic too. The page's frame, its common styles and
//! the charts' canvas are the run report's (`report::frame`, `report::svg`).

use super::bisect::Judged;
use super::results::{self, SearchResults, Step, loss_text};
use crate::report::format::{escape, ms, value};
use crate::report::frame;
use crate::report::svg::Canvas;
use std::fmt::Write;
use std::io;
use std::path::Path;

/// The charts' drawing box: room below the plot for three rows of level
/// labels and the x unit.
const CANVAS: Canvas = Canvas {
    width: 1000.0,
    height: 320.0,
    left: 70.0,
    right: 20.0,
    top: 34.0,
    bottom: 72.0,
};

/// Rows the labels of the levels tried may stack on.
const LABEL_ROWS: usize = 3;

/// Roughly how wide one character of a tick label is, in drawing units.
const LABEL_CHAR_WIDTH: f64 = 6.5;

const PASS: &str = "#1f8f4e";
const FAIL: &str = "#c62828";
const GENERATOR: &str = "#757575";

/// This page's own rules, after `report::frame`'s.
const STYLE: &str = r#"
.answer{font-size:18px;font-weight:600;margin:12px 0}
tr.generator td{background:#f0f0f0}
svg .level{stroke:#c3c8d2;stroke-width:1}
svg .knee line{stroke-width:1.5}svg .knee text{font-size:11px}
svg .limit{stroke:#c62828;stroke-dasharray:6 4;stroke-width:1.2}
"#;

/// Writes the report of the search file at `path` to `out` (through a
/// temporary file renamed into place).
pub fn write_html(path: &Path, out: &Path) -> io::Result<()> {
    let r = results::read(path)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    crate::results::file::write_atomic(out, page(&r).as_bytes())
        .map_err(|e| io::Error::new(e.kind(), format!("writing {}: {e}", out.display())))
}

/// The whole page.
pub fn page(r: &SearchResults) -> String {
    let mut html = String::new();
    let title = format!("squall capacity search: {}", r.scenario);
    frame::open(&mut html, &title, STYLE);
    let _ = write!(
        html,
        "<h1>{t}</h1><div class=\"meta\">{target} · started {started} · {dur:.0}s · {n} steps · {verdict} exit {code}{incomplete}</div>",
        t = escape(&title),
        verdict = frame::verdict(r.passed),
        target = escape(&r.target),
        started = escape(&r.started_at),
        dur = r.duration_s,
        n = r.steps.len(),
        code = r.exit_code,
        incomplete = if r.complete { "" } else { " · INCOMPLETE" }
    );
    let _ = write!(html, "<p class=\"answer\">{}</p><ul>", escape(&r.summary));
    for sentence in &r.verdict {
        let _ = write!(html, "<li>{}</li>", escape(sentence));
    }
    html.push_str("</ul><h2>Objective</h2><table><tr><th>key</th><th>limit</th></tr>");
    for s in &r.slo {
        let _ = write!(
            html,
            "<tr><td>{}</td><td class=\"num\">{} {}</td></tr>",
            escape(&s.name),
            if s.floor { "≥" } else { "≤" },
            value(s.limit)
        );
    }
    html.push_str("</table>");
    let judged: Vec<&Step> = by_level(r);
    let x_unit = format!("offered {}", r.unit);
    let p99_limit = r.slo.iter().find(|s| s.name == "p99_ms").map(|s| s.limit);
    let latency = Plot {
        title: "latency against the offered level",
        x_unit: &x_unit,
        y_unit: "ms (log)",
        y_log: true,
        series: vec![
            ("p50", "#1e88e5", points(&judged, |s| s.latency_ms.p50)),
            ("p99", "#e53935", points(&judged, |s| s.latency_ms.p99)),
            ("p99.9", "#8e24aa", points(&judged, |s| s.latency_ms.p999)),
        ],
        dots: dots(&judged, |s| s.latency_ms.p99),
        limit: p99_limit.map(|l| (l, format!("p99 limit {}", ms(l)))),
        knee: knee(r),
    };
    let throughput = Plot {
        title: "throughput against the offered level",
        x_unit: &x_unit,
        y_unit: "deliveries/s",
        y_log: false,
        series: vec![
            (
                "owed",
                "#9e9e9e",
                points(&judged, |s| s.throughput.expected_per_s),
            ),
            (
                "delivered",
                "#43a047",
                points(&judged, |s| s.throughput.delivered_per_s),
            ),
        ],
        dots: dots(&judged, |s| s.throughput.delivered_per_s),
        limit: None,
        knee: knee(r),
    };
    html.push_str("<h2>Charts</h2>");
    for plot in [latency, throughput] {
        let _ = write!(
            html,
            "<figure><figcaption>{}</figcaption>{}</figure>",
            escape(plot.title),
            plot.svg()
        );
    }
    html.push_str("<h2>Steps</h2><table><tr><th>#</th><th>stage</th><th>level</th><th>judged</th><th>p50</th><th>p99</th><th>p99.9</th><th>loss</th><th>sent/s</th><th>delivered/s</th><th>send lag</th><th>probe</th><th>why</th></tr>");
    for s in &r.steps {
        let (label, row) = match s.judged {
            Some(Judged::Pass) => ("pass", ""),
            Some(Judged::Fail) => ("fail", " class=\"failed\""),
            Some(Judged::Generator) => ("generator", " class=\"generator\""),
            None => ("stopped", ""),
        };
        let _ = write!(
            html,
            "<tr{row}><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{label}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            s.index,
            match s.stage {
                Some(super::bisect::Stage::Grow) => "grow",
                Some(super::bisect::Stage::Bisect) => "bisect",
                None => "",
            },
            escape(&r.level_text(s.level)),
            ms(s.latency_ms.p50),
            ms(s.latency_ms.p99),
            ms(s.latency_ms.p999),
            loss_text(s.messages.loss_ratio),
            value(s.throughput.sent_per_s.round()),
            value(s.throughput.delivered_per_s.round()),
            ms(s.send_lag_ms.window_max),
            s.probe_ms.max.map_or("-".into(), ms),
            escape(&s.reasons.join("; "))
        );
    }
    html.push_str("</table>");
    frame::close(&mut html);
    html
}

/// The judged steps, one per level (the last one run), by level.
fn by_level(r: &SearchResults) -> Vec<&Step> {
    let mut steps: Vec<&Step> = Vec::new();
    for s in r.steps.iter().filter(|s| s.judged.is_some()) {
        steps.retain(|t| t.level != s.level);
        steps.push(s);
    }
    steps.sort_by(|a, b| a.level.total_cmp(&b.level));
    steps
}

fn points(steps: &[&Step], f: impl Fn(&Step) -> f64) -> Vec<(f64, f64)> {
    steps.iter().map(|s| (s.level, f(s))).collect()
}

fn dots(steps: &[&Step], f: impl Fn(&Step) -> f64) -> Vec<Dot> {
    steps
        .iter()
        .map(|s| {
            let (color, what) = match s.judged {
                Some(Judged::Pass) => (PASS, "pass"),
                Some(Judged::Generator) => (GENERATOR, "the generator could not send this rate"),
                _ => (FAIL, "fail"),
            };
            (
                s.level,
                f(s),
                color,
                format!("step {}: {} — {what}", s.index, value(s.level)),
            )
        })
        .collect()
}

/// The capacity and the first failing level, as marks.
fn knee(r: &SearchResults) -> Vec<(f64, String, &'static str)> {
    let mut marks = Vec::new();
    if let Some(c) = r.capacity() {
        marks.push((c, format!("max {}", r.level_text(c)), PASS));
    }
    if let Some(f) = r.first_failing {
        marks.push((f, format!("first failing {}", value(f)), FAIL));
    }
    marks
}

/// A line: its name, its colour and its `(level, value)` points.
type Line = (&'static str, &'static str, Vec<(f64, f64)>);

/// A step's marker: level, value, colour (by judgement) and its tooltip.
type Dot = (f64, f64, &'static str, String);

/// A chart over the offered level (log x).
struct Plot<'a> {
    title: &'a str,
    x_unit: &'a str,
    y_unit: &'a str,
    y_log: bool,
    series: Vec<Line>,
    dots: Vec<Dot>,
    limit: Option<(f64, String)>,
    knee: Vec<(f64, String, &'static str)>,
}

impl Plot<'_> {
    fn svg(&self) -> String {
        let levels = self.levels();
        let xs = levels
            .iter()
            .copied()
            .chain(self.knee.iter().map(|k| k.0))
            .filter(|x| x.is_finite() && *x > 0.0);
        let (x_lo, x_hi) = bounds(xs);
        let (x_lo, x_hi) = (x_lo / 1.15, x_hi * 1.15);
        let ys = self
            .series
            .iter()
            .flat_map(|s| s.2.iter().map(|p| p.1))
            .chain(self.limit.iter().map(|l| l.0))
            .filter(|y| y.is_finite() && (*y > 0.0 || !self.y_log));
        let (y_lo, y_hi) = bounds(ys);
        let (y_lo, y_hi) = if self.y_log {
            (
                10f64.powf(y_lo.max(0.01).log10().floor()),
                10f64.powf(y_hi.max(0.1).log10().ceil()),
            )
        } else {
            (0.0, nice_top(y_hi))
        };
        let c = CANVAS;
        let (plot_w, plot_h) = (c.plot_width(), c.plot_height());
        let (top, bottom) = (c.top, c.top + plot_h);
        let x = |v: f64| c.left + (v.max(x_lo).ln() - x_lo.ln()) / (x_hi.ln() - x_lo.ln()) * plot_w;
        let y = |v: f64| {
            let f = if self.y_log {
                (v.clamp(y_lo, y_hi).ln() - y_lo.ln()) / (y_hi.ln() - y_lo.ln())
            } else {
                v.clamp(y_lo, y_hi) / y_hi
            };
            top + plot_h - f * plot_h
        };
        let mut svg = String::new();
        c.open(&mut svg, self.title);
        let y_ticks: Vec<f64> = if self.y_log {
            decades(y_lo, y_hi)
        } else {
            (0..=5).map(|i| y_hi * f64::from(i) / 5.0).collect()
        };
        for t in y_ticks {
            c.y_tick(&mut svg, y(t), &value(t));
        }
        // The x axis: a faint guide, a tick and a label at every level
        // tried; a label that would overlap the one before it goes on the
        // next row down.
        let mut row_ends = [f64::MIN; LABEL_ROWS];
        for level in &levels {
            let px = x(*level);
            let label = value(*level);
            let half = LABEL_CHAR_WIDTH * label.chars().count() as f64 / 2.0;
            let row = row_ends
                .iter()
                .position(|end| px - half > *end)
                .unwrap_or(LABEL_ROWS - 1);
            row_ends[row] = px + half + 4.0;
            let _ = write!(
                svg,
                r#"<line class="level" x1="{px:.1}" x2="{px:.1}" y1="{top}" y2="{tick:.1}"/>"#,
                tick = bottom + 4.0 + 13.0 * row as f64
            );
            c.x_label(&mut svg, px, row, &label);
        }
        let _ = write!(
            svg,
            r#"<text class="unit" x="{ux}" y="{ly}" text-anchor="end">{xu} (log; a tick at each level tried)</text>"#,
            ux = c.width - c.right,
            ly = c.height - 6.0,
            xu = escape(self.x_unit)
        );
        c.y_unit(&mut svg, self.y_unit);
        if let Some((limit, label)) = &self.limit {
            let _ = write!(
                svg,
                r#"<line class="limit" x1="{l}" x2="{x2}" y1="{py:.1}" y2="{py:.1}"/><text class="tick" x="{tx}" y="{ty:.1}">{label}</text>"#,
                l = c.left,
                x2 = c.width - c.right,
                py = y(*limit),
                tx = c.left + 4.0,
                ty = y(*limit) - 4.0,
                label = escape(label)
            );
        }
        for (i, (at, label, color)) in self.knee.iter().enumerate() {
            let px = x(*at);
            let _ = write!(
                svg,
                r#"<g class="knee"><line x1="{px:.1}" x2="{px:.1}" y1="{top}" y2="{bottom}" stroke="{color}" stroke-dasharray="{dash}"/><text x="{tx:.1}" y="{ty}" fill="{color}" text-anchor="{anchor}">{label}</text></g>"#,
                dash = if i == 0 { "none" } else { "5 3" },
                tx = if i == 0 { px - 4.0 } else { px + 4.0 },
                ty = top + 12.0,
                anchor = if i == 0 { "end" } else { "start" },
                label = escape(label)
            );
        }
        for (name, color, points) in &self.series {
            let d: Vec<String> = points
                .iter()
                .filter(|p| p.1.is_finite() && (p.1 > 0.0 || !self.y_log))
                .enumerate()
                .map(|(i, p)| {
                    format!(
                        "{}{:.1},{:.1}",
                        if i == 0 { "M" } else { "L" },
                        x(p.0),
                        y(p.1)
                    )
                })
                .collect();
            let _ = write!(
                svg,
                r#"<path class="series" d="{d}" stroke="{color}"><title>{name}</title></path>"#,
                d = d.join(" ")
            );
        }
        for (lx, ly, color, title) in &self.dots {
            if ly.is_finite() && (*ly > 0.0 || !self.y_log) {
                let _ = write!(
                    svg,
                    r#"<circle cx="{cx:.1}" cy="{cy:.1}" r="4" fill="{color}"><title>{t}</title></circle>"#,
                    cx = x(*lx),
                    cy = y(*ly),
                    t = escape(title)
                );
            }
        }
        let legend: Vec<(&str, &str)> = self.series.iter().map(|s| (s.0, s.1)).collect();
        c.legend(&mut svg, &legend);
        Canvas::close(&mut svg);
        svg
    }

    /// The levels tried (every step's marker), lowest first, each once.
    fn levels(&self) -> Vec<f64> {
        let mut levels: Vec<f64> = self
            .dots
            .iter()
            .map(|d| d.0)
            .filter(|x| x.is_finite() && *x > 0.0)
            .collect();
        levels.sort_by(f64::total_cmp);
        levels.dedup();
        levels
    }
}

/// The smallest and largest of `values` (1..10 when there are none).
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if lo.is_finite() && hi.is_finite() {
        (lo, if hi > lo { hi } else { lo * 2.0 + 1.0 })
    } else {
        (1.0, 10.0)
    }
}

/// A round top at or above `max` for a linear axis.
fn nice_top(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|t| *t >= max)
        .unwrap_or(10.0 * magnitude)
}

/// Powers of ten from `lo` to `hi`.
fn decades(lo: f64, hi: f64) -> Vec<f64> {
    let mut out = Vec::new();
    let mut t = lo;
    while t <= hi * 1.0001 && out.len() < 20 {
        out.push(t);
        t *= 10.0;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::bisect::Outcome;
    use crate::search::results::{KIND, Throughput};

    #[test]
    fn the_page_marks_the_knee_and_draws_both_charts() {
        let step = |index: u32, level: f64, judged: Judged, p99: f64| Step {
            index,
            level,
            judged: Some(judged),
            latency_ms: crate::results::Latency {
                p50: p99 / 3.0,
                p99,
                p999: p99 * 1.2,
                ..Default::default()
            },
            throughput: Throughput {
                expected_per_s: level * 10.0,
                delivered_per_s: (level * 10.0).min(1000.0),
                ..Default::default()
            },
            ..Default::default()
        };
        let mut r = SearchResults {
            kind: KIND.into(),
            scenario: "cap<1>".into(),
            unit: "msg/s".into(),
            steps: vec![
                step(1, 50.0, Judged::Pass, 2.0),
                step(2, 100.0, Judged::Pass, 4.0),
                step(3, 200.0, Judged::Fail, 2500.0),
                step(4, 141.0, Judged::Fail, 900.0),
                step(5, 119.0, Judged::Fail, 300.0),
                step(6, 109.0, Judged::Fail, 150.0),
            ],
            slo: vec![results::Slo {
                name: "p99_ms".into(),
                limit: 100.0,
                floor: false,
            }],
            ..Default::default()
        };
        r.conclude(
            Outcome::Found {
                max: 100.0,
                first_failing: 109.0,
            },
            None,
            60.0,
        );
        let html = page(&r);
        assert_eq!(html.matches("<svg").count(), 2);
        assert!(html.contains("max 100 msg/s"), "the capacity is marked");
        assert!(
            html.contains("first failing 109"),
            "the first failing level is marked"
        );
        assert!(html.contains("p99 limit 100 ms"));
        assert!(html.contains("cap&lt;1&gt;"), "escaped");
        assert_eq!(html.matches("<circle").count(), 12);
        // The x axis: a tick and a label at each level tried, in each chart,
        // and no two labels on one row overlap.
        assert_eq!(html.matches(r#"<line class="level""#).count(), 12);
        let labels = x_labels(&html[..html.find("</svg>").unwrap()]);
        let texts: Vec<&str> = labels.iter().map(|l| l.2.as_str()).collect();
        assert_eq!(texts, ["50", "100", "109", "119", "141", "200"]);
        assert_apart(&labels);
        assert_eq!(decades(1.0, 1000.0), [1.0, 10.0, 100.0, 1000.0]);
    }

    /// `(x, y, text)` of every label under the x axis of `svg`.
    fn x_labels(svg: &str) -> Vec<(f64, f64, String)> {
        svg.split(r#"<text class="tick" x=""#)
            .skip(1)
            .filter(|t| t.contains(r#"text-anchor="middle""#))
            .map(|t| {
                let x: f64 = t[..t.find('"').unwrap()].parse().unwrap();
                let y_at = t.find(r#"y=""#).unwrap() + 3;
                let y: f64 = t[y_at..y_at + t[y_at..].find('"').unwrap()]
                    .parse()
                    .unwrap();
                let text = t[t.find('>').unwrap() + 1..t.find("</text>").unwrap()].to_string();
                (x, y, text)
            })
            .collect()
    }

    /// No two labels on one row overlap.
    fn assert_apart(labels: &[(f64, f64, String)]) {
        for (i, a) in labels.iter().enumerate() {
            for b in &labels[i + 1..] {
                let apart =
                    (a.0 - b.0).abs() > LABEL_CHAR_WIDTH * (a.2.len() + b.2.len()) as f64 / 2.0;
                assert!(a.1 != b.1 || apart, "{a:?} overlaps {b:?}");
            }
        }
    }

    #[test]
    fn labels_of_close_levels_stack_on_rows_below_one_another() {
        // A search from 50 to 5000 that bisected to 1%: 1000, 1010, 1020.
        let levels = [50.0, 100.0, 1000.0, 1010.0, 1020.0, 5000.0];
        let plot = Plot {
            title: "t",
            x_unit: "offered msg/s",
            y_unit: "ms",
            y_log: false,
            series: vec![("p99", "#000", levels.iter().map(|l| (*l, 1.0)).collect())],
            dots: levels
                .iter()
                .map(|l| (*l, 1.0, PASS, String::new()))
                .collect(),
            limit: None,
            knee: Vec::new(),
        };
        let svg = plot.svg();
        let labels = x_labels(&svg);
        assert_eq!(labels.len(), levels.len(), "{svg}");
        assert_apart(&labels);
        let rows: Vec<f64> = labels.iter().map(|l| l.1).collect();
        assert!(
            rows[3] > rows[2] && rows[4] > rows[3],
            "1010 and 1020 go below 1000: {rows:?}"
        );
        assert_eq!(rows[5], rows[0], "5000 has room on the first row");
        assert!(svg.contains("(log; a tick at each level tried)"));
    }
}
