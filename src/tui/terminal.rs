//! The terminal guard (after oha): raw mode and the alternate screen for as
//! long as the UI runs, and the screen restored on drop and on panic, so a
//! crash never leaves the user's shell unusable.

use crossterm::cursor::{Hide, Show};
use crossterm::execute;
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use std::io::{self, Stdout};
use std::sync::{Mutex, Once};
use std::thread::{self, ThreadId};

/// The thread that has the terminal in UI mode, if any. Only a panic on
/// that thread restores the screen: a panic elsewhere (a runner task that
/// tokio catches) must not pull the screen from under a UI that goes on.
/// The lock is held only to read or swap the id, never across I/O.
static UI_THREAD: Mutex<Option<ThreadId>> = Mutex::new(None);

/// The panic hook is chained in once per process.
static HOOK: Once = Once::new();

/// Owns the terminal while the UI runs; dropping it gives the screen back.
pub(super) struct TerminalGuard {
    /// The ratatui terminal drawing to stdout.
    pub terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl TerminalGuard {
    /// Switches the terminal to raw mode and the alternate screen.
    pub fn enter() -> io::Result<Self> {
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                if ui_thread() == Some(thread::current().id()) {
                    restore();
                }
                previous(info);
            }));
        });
        enable_raw_mode()?;
        *UI_THREAD.lock().unwrap_or_else(|e| e.into_inner()) = Some(thread::current().id());
        // From here on, an error drops nothing that would restore the
        // screen, so restore by hand before returning it.
        let terminal = execute!(io::stdout(), EnterAlternateScreen, Hide)
            .and_then(|()| Terminal::new(CrosstermBackend::new(io::stdout())));
        match terminal {
            Ok(terminal) => Ok(Self { terminal }),
            Err(e) => {
                restore();
                Err(e)
            }
        }
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

fn ui_thread() -> Option<ThreadId> {
    *UI_THREAD.lock().unwrap_or_else(|e| e.into_inner())
}

/// Leaves the alternate screen, shows the cursor and ends raw mode, if the
/// UI had them (once: the drop after a panic finds nothing left to do);
/// errors are ignored because there is nothing left to try.
fn restore() {
    if UI_THREAD
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .is_some()
    {
        let _ = execute!(io::stdout(), LeaveAlternateScreen, Show);
        let _ = disable_raw_mode();
    }
}
