//! The NDJSON timeline: one `Snapshot` per line, flushed every second, so a
//! run killed mid-way still leaves every whole second it lived.

use crate::snapshot::Snapshot;
use std::fs::File;
use std::io::{BufWriter, Write};

/// Writes snapshots to the timeline file; the first error is kept and
/// reported once, and the run goes on without a timeline.
#[derive(Debug)]
pub struct Timeline {
    out: Option<BufWriter<File>>,
    error: Option<String>,
}

impl Timeline {
    /// A timeline writing to `file`.
    pub fn new(file: File) -> Timeline {
        Timeline {
            out: Some(BufWriter::new(file)),
            error: None,
        }
    }

    /// Appends one snapshot.
    pub fn write(&mut self, s: &Snapshot) {
        let Some(out) = &mut self.out else { return };
        let result = serde_json::to_writer(&mut *out, s)
            .map_err(std::io::Error::other)
            .and_then(|()| out.write_all(b"\n"))
            .and_then(|()| out.flush());
        if let Err(e) = result {
            crate::output::note(&format!(
                "squall: the timeline cannot be written any more: {e}"
            ));
            self.error = Some(e.to_string());
            self.out = None;
        }
    }

    /// Why the timeline stopped, if it did.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}
