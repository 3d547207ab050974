//! Numbers and text as people read them, shared by the terminal UI and the
//! HTML report so both say the same thing the same way.

/// A latency in milliseconds: `0.84 ms`, `12.3 ms`, `1.25 s`.
pub fn ms(value: f64) -> String {
    if !value.is_finite() {
        "-".to_string()
    } else if value >= 1000.0 {
        format!("{:.2} s", value / 1000.0)
    } else if value >= 100.0 {
        format!("{value:.0} ms")
    } else if value >= 10.0 {
        format!("{value:.1} ms")
    } else {
        format!("{value:.2} ms")
    }
}

/// A rate per second, compact: `950`, `12.5k`, `1.20M`.
pub fn rate(value: f64) -> String {
    if !value.is_finite() || value < 0.0 {
        "-".to_string()
    } else if value >= 1_000_000.0 {
        format!("{:.2}M", value / 1_000_000.0)
    } else if value >= 10_000.0 {
        format!("{:.1}k", value / 1000.0)
    } else {
        format!("{value:.0}")
    }
}

/// A ratio as a percentage with enough digits to see one loss in a million.
pub fn percent(ratio: f64) -> String {
    if !ratio.is_finite() {
        "-".to_string()
    } else if ratio == 0.0 {
        "0%".to_string()
    } else if ratio >= 0.01 {
        format!("{:.2}%", ratio * 100.0)
    } else {
        format!("{:.4}%", ratio * 100.0)
    }
}

/// `part / whole`, zero when there is no whole.
pub fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Seconds as a clock: `0:42`, `12:03`, `1:02:03`.
pub fn clock(seconds: f64) -> String {
    let total = if seconds.is_finite() && seconds > 0.0 {
        seconds.round() as u64
    } else {
        0
    };
    let (h, m, s) = (total / 3600, total / 60 % 60, total % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// A threshold's limit or actual value: integers without a fraction, small
/// ratios in scientific notation, the rest with up to three decimals.
pub fn value(v: f64) -> String {
    if !v.is_finite() {
        "-".to_string()
    } else if v == v.trunc() && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v.abs() < 0.001 {
        format!("{v:.1e}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// What an exit code means (see DESIGN.md, "Exit codes").
pub fn exit_code_meaning(code: u8) -> &'static str {
    match code {
        0 => "passing",
        1 => "harness failed",
        2 => "usage or invalid scenario",
        3 => "thresholds breached",
        4 => "target hung",
        _ => "unknown",
    }
}

/// Escapes text for HTML, SVG and XML (the JUnit file) element content and
/// attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_read_naturally() {
        assert_eq!(ms(0.842), "0.84 ms");
        assert_eq!(ms(12.34), "12.3 ms");
        assert_eq!(ms(1250.0), "1.25 s");
        assert_eq!(rate(950.4), "950");
        assert_eq!(rate(12_500.0), "12.5k");
        assert_eq!(percent(0.0003), "0.0300%");
        assert_eq!(percent(0.25), "25.00%");
        assert_eq!(clock(62.0), "1:02");
        assert_eq!(clock(3723.0), "1:02:03");
        assert_eq!(value(50.0), "50");
        assert_eq!(value(0.0001), "1.0e-4");
        assert_eq!(value(3.2109), "3.211");
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
