//! `squall report`: the run as one
//! self-contained HTML file (inline CSS and SVG, nothing fetched from the
//! network) with latency percentiles, throughput, connections, loss and
//! probe latency over time, hang windows shaded and chaos actions marked on
//! every chart, the thresholds table and the run's settings.
//!
//! Entry point for the CLI (`squall report RUN.json -o REPORT.html`, and
//! `squall run --report` next to the results file):
//!
//! ```no_run
//! # fn example() -> std::io::Result<()> {
//! use std::path::Path;
//! squall::report::write_html(
//!     Path::new("results/smoke-20260101T000000Z.json"),
//!     Path::new("results/smoke-20260101T000000Z.html"),
//! )?;
//! # Ok(()) }
//! ```
//!
//! `format` is shared with the terminal UI so both show numbers alike, and
//! both read runs through [`RecordedRun`].

pub mod format;
pub(crate) mod frame;
mod html;
pub(crate) mod svg;

pub use crate::results::recorded::RecordedRun;

use std::io;
use std::path::Path;

/// Reads the results file at `results_json` and its timeline, and writes the
/// report to `out` (through a temporary file renamed into place, so a
/// reader never sees half a report). Errors name the file at fault.
pub fn write_html(results_json: &Path, out: &Path) -> io::Result<()> {
    if crate::search::results::is_search_file(results_json) {
        return crate::search::report::write_html(results_json, out);
    }
    let run = RecordedRun::load(results_json)?;
    let page = render_html(&run);
    let dir = out.parent().filter(|d| !d.as_os_str().is_empty());
    let name = out.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a file name", out.display()),
        )
    })?;
    let tmp = dir
        .unwrap_or_else(|| Path::new("."))
        .join(format!(".{}.tmp", name.to_string_lossy()));
    std::fs::write(&tmp, page)
        .and_then(|()| std::fs::rename(&tmp, out))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io::Error::new(e.kind(), format!("writing {}: {e}", out.display()))
        })
}

/// The report page for an already loaded run.
pub fn render_html(run: &RecordedRun) -> String {
    html::page(run)
}
