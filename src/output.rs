//! Writing the human output. A reader that goes away early
//! (`squall run ... 2>&1 | head`) must not turn a run into a panic: the run
//! goes on and writes its results file, and a closed pipe is ignored.

use std::io::Write;

/// Writes `text` to stdout, ignoring a closed pipe.
pub fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Writes one line to stderr (a warning, a note), ignoring a closed pipe or
/// a terminal that went away (`eprintln!` would panic after a SIGHUP).
pub fn note(line: &str) {
    progress(line);
}

/// Writes one line to stderr (the progress line), ignoring a closed pipe.
pub fn progress(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err
        .write_all(line.as_bytes())
        .and_then(|()| err.write_all(b"\n"));
}
