//! The loop shared by live runs, searches and replay: feed the app, read
//! keys, and redraw when something changed, at most ten times a second;
//! and leave when the terminal goes away.

use super::keys;
use super::state::{App, Flow};
use super::terminal::TerminalGuard;
use super::view;
use crossterm::event::{self, Event};
use std::io;
use std::time::{Duration, Instant};

/// Shortest time between two frames: at most ten a second.
const FRAME: Duration = Duration::from_millis(100);

/// Longest wait for a key before looking at the source again.
const POLL: Duration = Duration::from_millis(25);

/// What a source did to the app since it was last asked.
pub(super) enum Tick {
    /// Nothing new.
    Same,
    /// The app has news to draw.
    Changed,
    /// The source is finished; the loop ends.
    Ended,
}

/// Why the loop ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Exit {
    /// The source ended.
    Ended,
    /// The user quit.
    Quit,
    /// The terminal went away (hung up): nobody is watching, and the
    /// SIGHUP that comes with it stops the run.
    Gone,
}

/// Runs the UI until `source` ends or the user quits. `source` is asked
/// about every 25 ms and must not block.
pub(super) fn run(app: &mut App, mut source: impl FnMut(&mut App) -> Tick) -> io::Result<Exit> {
    let mut guard = TerminalGuard::enter()?;
    let mut dirty = true;
    let mut last_frame: Option<Instant> = None;
    loop {
        match source(app) {
            Tick::Same => {}
            Tick::Changed => dirty = true,
            Tick::Ended => return Ok(Exit::Ended),
        }
        if dirty && last_frame.is_none_or(|t| t.elapsed() >= FRAME) {
            guard.terminal.draw(|frame| view::draw(frame, app))?;
            dirty = false;
            last_frame = Some(Instant::now());
        }
        // crossterm spins forever reading a terminal that has hung up, so
        // look before asking it for keys.
        if hung_up() {
            return Ok(Exit::Gone);
        }
        if event::poll(POLL)? {
            match event::read()? {
                Event::Key(key) => {
                    if let Some(action) = keys::action(key) {
                        if app.apply(action) == Flow::Quit {
                            return Ok(Exit::Quit);
                        }
                        dirty = true;
                    }
                }
                Event::Resize(..) => dirty = true,
                _ => {}
            }
        }
    }
}

/// Whether the terminal the UI draws on (stdout) has hung up: its window
/// closed, or the tmux or ssh session holding it ended.
fn hung_up() -> bool {
    let mut fd = libc::pollfd {
        fd: libc::STDOUT_FILENO,
        events: 0,
        revents: 0,
    };
    // SAFETY: poll(2) on one pollfd that lives across the call, without waiting.
    let ready = unsafe { libc::poll(&mut fd, 1, 0) };
    ready > 0 && fd.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0
}
