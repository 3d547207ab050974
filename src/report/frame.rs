//! The frame every squall HTML page shares, the run's report
//! (`report::html`) and the search's (`search::report`): the document head
//! with one stylesheet inline (the rules both pages use, then the page's
//! own), the end of the page, and the verdict badge. One place, so that the
//! two reports look alike and a fix to one is a fix to both.

use super::format::escape;
use std::fmt::Write;

/// The rules both reports use: page, headings, meta line, verdict badge,
/// tables, figures and the charts' common parts.
const BASE_STYLE: &str = r#"
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 10px}
.meta{color:#5b6475;margin-bottom:16px}
.verdict{display:inline-block;padding:2px 10px;border-radius:4px;font-weight:700;color:#fff}
.pass{background:#1f8f4e}.fail{background:#c62828}
table{border-collapse:collapse;background:#fff;width:100%;border:1px solid #dde1e8}
th,td{padding:6px 10px;border-bottom:1px solid #eceef2;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.failed td{background:#fdecea}
figure{background:#fff;border:1px solid #dde1e8;border-radius:6px;margin:0 0 16px;padding:8px 12px}
figcaption{font-weight:600;margin-bottom:4px}
svg.chart{width:100%;height:auto;display:block}
svg .grid{stroke:#eceef2}
svg .tick,svg .unit,svg .legend{font-size:11px;fill:#5b6475}
svg .series{fill:none;stroke-width:1.8;stroke-linejoin:round}
"#;

/// Starts a page titled `title` (escaped here): the head with the base
/// stylesheet and the page's own rules (`style`), and the opening of the
/// body's `<main>`.
pub fn open(html: &mut String, title: &str, style: &str) {
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{t}</title><style>{BASE_STYLE}{style}</style></head><body><main>",
        t = escape(title)
    );
}

/// Ends a page [`open`] started.
pub fn close(html: &mut String) {
    html.push_str("</main></body></html>\n");
}

/// The badge of the verdict: green `PASSED` or red `FAILED`.
pub fn verdict(passed: bool) -> &'static str {
    if passed {
        "<span class=\"verdict pass\">PASSED</span>"
    } else {
        "<span class=\"verdict fail\">FAILED</span>"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_has_one_stylesheet_with_the_base_rules_then_its_own() {
        let mut html = String::new();
        open(&mut html, "a <b>", ".own{color:red}");
        html.push_str(verdict(false));
        close(&mut html);
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<title>a &lt;b&gt;</title>"));
        assert_eq!(html.matches("<style>").count(), 1);
        let base = html.find("svg.chart{").unwrap();
        assert!(html.find(".own{color:red}").unwrap() > base);
        assert!(html.contains("class=\"verdict fail\">FAILED"));
        assert!(html.ends_with("</main></body></html>\n"));
    }
}
