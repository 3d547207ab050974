//! Line charts as inline SVG, drawn by hand so the report needs nothing
//! from the network: time on x, one or more series on y, hang windows
//! shaded and chaos actions marked as labelled vertical lines. The
//! [`Canvas`] the charts draw on is shared with the search's report, whose
//! x axis is the level offered.

use super::format::{clock, escape, value};
use std::fmt::Write;

/// A chart's drawing box in SVG user units (the page scales it to its
/// width), and the parts every squall chart draws alike: the `<svg>` element
/// with its title, y grid lines with their labels, labels under the x axis,
/// the unit of y and the legend.
#[derive(Debug, Clone, Copy)]
pub struct Canvas {
    /// Drawing width.
    pub width: f64,
    /// Drawing height.
    pub height: f64,
    /// Room left of the plot, for the y labels.
    pub left: f64,
    /// Room right of the plot.
    pub right: f64,
    /// Room above the plot, for the unit and the legend.
    pub top: f64,
    /// Room below the plot, for the x labels.
    pub bottom: f64,
}

/// Height of one row of labels under the x axis.
const X_LABEL_ROW: f64 = 13.0;

impl Canvas {
    /// The plot's width.
    pub fn plot_width(&self) -> f64 {
        self.width - self.left - self.right
    }

    /// The plot's height.
    pub fn plot_height(&self) -> f64 {
        self.height - self.top - self.bottom
    }

    /// Opens the `<svg>` element, titled for screen readers and tooltips;
    /// [`Canvas::close`] ends it.
    pub fn open(&self, svg: &mut String, title: &str) {
        let _ = write!(
            svg,
            r#"<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="{t}"><title>{t}</title>"#,
            w = self.width,
            h = self.height,
            t = escape(title)
        );
    }

    /// Ends the `<svg>` element.
    pub fn close(svg: &mut String) {
        svg.push_str("</svg>");
    }

    /// A grid line across the plot at `py`, labelled left of it.
    pub fn y_tick(&self, svg: &mut String, py: f64, label: &str) {
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{l}" x2="{x2}" y1="{py:.1}" y2="{py:.1}"/><text class="tick" x="{tx}" y="{ty:.1}" text-anchor="end">{label}</text>"#,
            l = self.left,
            x2 = self.width - self.right,
            tx = self.left - 6.0,
            ty = py + 4.0,
            label = escape(label)
        );
    }

    /// A label under the x axis, centred on `px`, on label row `row` (0 is
    /// the first, right under the axis).
    pub fn x_label(&self, svg: &mut String, px: f64, row: usize, label: &str) {
        let _ = write!(
            svg,
            r#"<text class="tick" x="{px:.1}" y="{py:.1}" text-anchor="middle">{label}</text>"#,
            py = self.height - self.bottom + 16.0 + X_LABEL_ROW * row as f64,
            label = escape(label)
        );
    }

    /// What the y values are, above the plot's top left corner.
    pub fn y_unit(&self, svg: &mut String, unit: &str) {
        let _ = write!(
            svg,
            r#"<text class="unit" x="{x}" y="{y}">{unit}</text>"#,
            x = self.left,
            y = self.top - 10.0,
            unit = escape(unit)
        );
    }

    /// The legend above the plot's right end: a swatch and a name for each
    /// `(name, colour)`, in order.
    pub fn legend(&self, svg: &mut String, items: &[(&str, &str)]) {
        let mut legend_x = self.width - self.right;
        for (name, color) in items.iter().rev() {
            legend_x -= 14.0 + 7.5 * name.chars().count() as f64;
            let _ = write!(
                svg,
                r#"<rect class="swatch" x="{legend_x:.1}" y="{sy}" width="10" height="10" fill="{color}"/><text class="legend" x="{lx:.1}" y="{ly}">{name}</text>"#,
                sy = self.top - 20.0,
                lx = legend_x + 13.0,
                ly = self.top - 11.0,
                name = escape(name)
            );
        }
    }
}

/// The run's charts: time on x.
const CANVAS: Canvas = Canvas {
    width: 1000.0,
    height: 260.0,
    left: 70.0,
    right: 20.0,
    top: 34.0,
    bottom: 34.0,
};

/// Lines chaos labels may stack on, and roughly how wide one character of
/// a label is, in drawing units.
const LABEL_LINES: usize = 4;
const LABEL_CHAR_WIDTH: f64 = 6.5;

/// Time buckets across the plot: about one per unit of drawing width, so a
/// day-long soak draws as fast as a minute-long run.
const BUCKETS: usize = 900;

/// A time in seconds and the value then; `None` where there is none.
pub type Point = (f64, Option<f64>);

/// One line on a chart. A `None` value leaves a gap (no data that second).
pub struct Series {
    /// Legend text.
    pub name: &'static str,
    /// CSS colour.
    pub color: &'static str,
    /// `(t_s, value)` in time order.
    pub points: Vec<Point>,
}

/// A chart over the run's time axis.
pub struct Chart<'a> {
    /// Heading above the chart, also the SVG's accessible title.
    pub title: &'a str,
    /// What the y values are, e.g. `ms`.
    pub unit: &'a str,
    /// The lines.
    pub series: Vec<Series>,
    /// End of the time axis in seconds (the axis starts at 0).
    pub x_max: f64,
    /// Hang windows `(from_s, to_s)` to shade.
    pub hangs: &'a [(f64, f64)],
    /// Chaos actions `(at_s, label)` to mark.
    pub chaos: &'a [(f64, String)],
    /// Whether y values are counts, so the axis steps by whole numbers.
    pub whole: bool,
}

impl Chart<'_> {
    /// The chart as an `<svg>` element.
    pub fn to_svg(&self) -> String {
        let x_max = self.x_max.max(1.0);
        let y_data_max = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().filter_map(|p| p.1))
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max);
        let (y_max, y_step) = nice_axis(y_data_max, self.whole);
        let c = CANVAS;
        let (plot_w, plot_h) = (c.plot_width(), c.plot_height());
        let x = |t: f64| c.left + t.clamp(0.0, x_max) / x_max * plot_w;
        let y = |v: f64| c.top + plot_h - v.clamp(0.0, y_max) / y_max * plot_h;

        let mut svg = String::new();
        c.open(&mut svg, self.title);
        for &(from, to) in self.hangs {
            let (x0, x1) = (x(from), x(to));
            let _ = write!(
                svg,
                r#"<rect class="hang" x="{x0:.1}" y="{top}" width="{w:.1}" height="{plot_h}"><title>hang {from} to {to}</title></rect>"#,
                top = c.top,
                w = (x1 - x0).max(2.0),
                from = clock(from),
                to = clock(to)
            );
        }
        let mut tick = 0.0;
        while tick <= y_max + y_step / 2.0 {
            c.y_tick(&mut svg, y(tick), &value(tick));
            tick += y_step;
        }
        let x_step = time_step(x_max);
        let mut t = 0.0;
        while t <= x_max + 1e-9 {
            c.x_label(&mut svg, x(t), 0, &clock(t));
            t += x_step;
        }
        c.y_unit(&mut svg, self.unit);
        for series in &self.series {
            let mut d = String::new();
            let mut pen_down = false;
            for (t, v) in envelope(&series.points, x_max) {
                match v {
                    Some(v) => {
                        let _ = write!(
                            d,
                            "{}{:.1},{:.1} ",
                            if pen_down { "L" } else { "M" },
                            x(t),
                            y(v)
                        );
                        pen_down = true;
                    }
                    None => pen_down = false,
                }
            }
            let _ = write!(
                svg,
                r#"<path class="series" d="{d}" stroke="{color}"><title>{name}</title></path>"#,
                d = d.trim_end(),
                color = series.color,
                name = escape(series.name)
            );
        }
        // Labels of actions close in time go on lower lines, so they never
        // overlap: each line remembers where its last label ended.
        let mut line_ends = [f64::MIN; LABEL_LINES];
        for (at, label) in self.chaos {
            let px = x(*at);
            let line = line_ends
                .iter()
                .position(|end| px > *end)
                .unwrap_or(LABEL_LINES - 1);
            line_ends[line] = px + 3.0 + LABEL_CHAR_WIDTH * label.chars().count() as f64 + 4.0;
            let _ = write!(
                svg,
                r#"<g class="chaos"><line x1="{px:.1}" x2="{px:.1}" y1="{top}" y2="{y2}"/><text x="{tx:.1}" y="{ty}">{label}</text><title>chaos at {at}: {label}</title></g>"#,
                top = c.top,
                y2 = c.top + plot_h,
                tx = px + 3.0,
                ty = c.top + 10.0 + 12.0 * line as f64,
                at = clock(*at),
                label = escape(label)
            );
        }
        let legend: Vec<(&str, &str)> = self.series.iter().map(|s| (s.name, s.color)).collect();
        c.legend(&mut svg, &legend);
        Canvas::close(&mut svg);
        svg
    }
}

/// `points` reduced to at most two per time bucket: each bucket's lowest
/// and highest value in the order they happened, so neither a spike nor a
/// dip disappears. A bucket with no value at all keeps a gap. Short series
/// pass through unchanged, but for non-finite values, which become gaps
/// (or, for a time, are left out).
fn envelope(points: &[Point], x_max: f64) -> Vec<Point> {
    let points = points
        .iter()
        .filter(|(t, _)| t.is_finite())
        .map(|&(t, v)| (t, v.filter(|v| v.is_finite())))
        .collect::<Vec<Point>>();
    if points.len() <= 2 * BUCKETS {
        return points;
    }
    let width = x_max / BUCKETS as f64;
    let mut out = Vec::with_capacity(2 * BUCKETS);
    let mut bucket: Option<(usize, Vec<Point>)> = None;
    let flush = |items: Vec<Point>, out: &mut Vec<Point>| {
        let values = items.iter().filter_map(|&(t, v)| v.map(|v| (t, v)));
        let low = values.clone().min_by(|a, b| a.1.total_cmp(&b.1));
        let high = values.max_by(|a, b| a.1.total_cmp(&b.1));
        match (low, high) {
            (Some(low), Some(high)) if low.0 <= high.0 => {
                out.extend([(low.0, Some(low.1)), (high.0, Some(high.1))]);
            }
            (Some(low), Some(high)) => {
                out.extend([(high.0, Some(high.1)), (low.0, Some(low.1))]);
            }
            _ => out.push((items[0].0, None)),
        }
    };
    for (t, v) in points {
        let index = ((t / width) as usize).min(BUCKETS);
        match &mut bucket {
            Some((current, items)) if *current == index => items.push((t, v)),
            _ => {
                if let Some((_, items)) = bucket.take() {
                    flush(items, &mut out);
                }
                bucket = Some((index, vec![(t, v)]));
            }
        }
    }
    if let Some((_, items)) = bucket {
        flush(items, &mut out);
    }
    out
}

/// A round top for the y axis at or above `max`, and a round step that
/// divides it into a few parts; for counts (`whole`) the step is at least 1.
fn nice_axis(max: f64, whole: bool) -> (f64, f64) {
    if max <= 0.0 || !max.is_finite() {
        return if whole { (1.0, 1.0) } else { (1.0, 0.25) };
    }
    let raw = (max / 5.0).max(if whole { 1.0 } else { 0.0 });
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    ((max / step).ceil() * step, step)
}

/// A round number of seconds between time labels, about eight per axis.
fn time_step(x_max: f64) -> f64 {
    const STEPS: [f64; 14] = [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
    ];
    STEPS
        .into_iter()
        .find(|s| x_max / s <= 10.0)
        .unwrap_or((x_max / 10.0 / 3600.0).ceil() * 3600.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_are_round() {
        assert_eq!(nice_axis(9.3, false), (10.0, 2.0));
        assert_eq!(nice_axis(120.0, false), (125.0, 25.0));
        assert_eq!(nice_axis(0.0, false), (1.0, 0.25));
        assert_eq!(nice_axis(0.0, true), (1.0, 1.0));
        assert_eq!(nice_axis(3.0, true), (3.0, 1.0));
        assert_eq!(time_step(30.0), 5.0);
        assert_eq!(time_step(3600.0), 600.0);
    }

    #[test]
    fn long_series_keep_their_spikes_dips_and_gaps() {
        let points: Vec<Point> = (0..86_400)
            .map(|t| {
                let v = match t {
                    40_000 => Some(500.0),
                    50_000 => Some(0.0),
                    60_000..=60_100 => None,
                    _ => Some(10.0),
                };
                (t as f64, v)
            })
            .collect();
        let reduced = envelope(&points, 86_400.0);
        assert!(reduced.len() <= 2 * BUCKETS + 2, "{}", reduced.len());
        assert!(reduced.contains(&(40_000.0, Some(500.0))));
        assert!(reduced.contains(&(50_000.0, Some(0.0))));
        assert!(reduced.iter().any(|p| p.1.is_none()), "the gap survives");
        assert!(reduced.windows(2).all(|w| w[0].0 <= w[1].0));
    }

    #[test]
    fn gaps_break_the_line() {
        let chart = Chart {
            title: "t",
            unit: "ms",
            series: vec![Series {
                name: "p50",
                color: "#000",
                points: vec![
                    (0.0, Some(1.0)),
                    (1.0, Some(2.0)),
                    (2.0, None),
                    (3.0, Some(1.0)),
                ],
            }],
            x_max: 3.0,
            hangs: &[(1.5, 2.5)],
            chaos: &[(1.0, "reset ×5".to_string())],
            whole: false,
        };
        let svg = chart.to_svg();
        assert_eq!(svg.matches('M').count(), 2, "{svg}");
        assert!(svg.contains(r#"class="hang""#));
        assert!(svg.contains("reset ×5"));
    }
}
