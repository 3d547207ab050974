//! The last lines of the target's stderr, kept for the hang file.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};

/// How many lines are kept.
pub const TAIL_LINES: usize = 200;

/// The last [`TAIL_LINES`] lines of a stream; cheap to clone.
///
/// The `std::sync::Mutex` guards the ring of lines. Its writer is the
/// capturing thread (one push per line), its readers the watchdog at a hang
/// and the CLI when a target fails to start (one copy of at most
/// [`TAIL_LINES`] lines): plain threads, no async code, so a blocking mutex
/// with one-line critical sections fits; nothing awaits while holding it
/// (the workspace denies clippy::await_holding_lock) and no other lock is
/// taken under it.
#[derive(Debug, Clone, Default)]
pub struct StderrTail(Arc<Mutex<VecDeque<String>>>);

impl StderrTail {
    /// Reads `stream` (a child's stderr) on its own thread until it ends,
    /// keeping the last lines and passing every line on to `forward` (e.g.
    /// squall's own stderr, or a log file) when given.
    pub fn capture(
        stream: impl Read + Send + 'static,
        mut forward: Option<Box<dyn Write + Send>>,
    ) -> Self {
        let tail = Self::default();
        let keeper = tail.clone();
        std::thread::Builder::new()
            .name("squall-stderr-tail".into())
            .spawn(move || {
                for line in BufReader::new(stream).split(b'\n') {
                    let Ok(line) = line else { break };
                    let line = String::from_utf8_lossy(&line).into_owned();
                    if let Some(out) = forward.as_mut() {
                        let _ = writeln!(out, "{line}");
                    }
                    keeper.push(line);
                }
            })
            .expect("spawning a thread");
        tail
    }

    /// Adds a line, dropping the oldest beyond [`TAIL_LINES`].
    pub fn push(&self, line: String) {
        let mut lines = self.0.lock().expect("stderr tail lock");
        if lines.len() == TAIL_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// The lines kept, oldest first.
    pub fn lines(&self) -> Vec<String> {
        self.0
            .lock()
            .expect("stderr tail lock")
            .iter()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_lines() {
        let text: String = (0..300).map(|i| format!("line {i}\n")).collect();
        let tail = StderrTail::capture(std::io::Cursor::new(text.into_bytes()), None);
        for _ in 0..200 {
            if tail.lines().last().map(String::as_str) == Some("line 299") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let lines = tail.lines();
        assert_eq!((lines.len(), lines[0].as_str()), (TAIL_LINES, "line 100"));
    }
}
