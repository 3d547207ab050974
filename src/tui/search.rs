//! The live view of a capacity search: the search's news (a step started,
//! a step judged) and the running step's once-a-second snapshots, each on a
//! channel of its own. The search never waits for the screen: both
//! channels keep only their latest value, and this loop takes it when it
//! can.

use super::event_loop::{self, Exit, Tick};
use super::state::App;
use crate::search::snapshot::SearchSnap;
use crate::snapshot::Snapshot;
use std::io;
use tokio::sync::watch;

/// Shows a search live until it ends or the user quits.
///
/// Call it on its own blocking thread, as [`super::run_live`]. It returns
/// when the search drops its senders (the search is over) or when the user
/// presses `q` or Ctrl-C; then it gives the screen back and calls `stop`
/// once, and the search is expected to end its step and still write its
/// file. `None` on the step
/// channel means "no snapshot of this step yet".
pub fn run_search(
    mut search: watch::Receiver<SearchSnap>,
    mut step: watch::Receiver<Option<Snapshot>>,
    stop: impl FnOnce(),
) -> io::Result<()> {
    let mut app = App::search();
    app.ingest_search(search.borrow_and_update().clone());
    let exit = event_loop::run(&mut app, |app| {
        let mut tick = Tick::Same;
        // The search first: a new step's figures must not land in the last
        // step's (the search clears the step channel before it names the
        // new step).
        match search.has_changed() {
            Ok(true) => {
                app.ingest_search(search.borrow_and_update().clone());
                tick = Tick::Changed;
            }
            Ok(false) => {}
            Err(_closed) => return Tick::Ended,
        }
        match step.has_changed() {
            Ok(true) => {
                if let Some(snapshot) = step.borrow_and_update().clone() {
                    app.ingest(snapshot);
                    tick = Tick::Changed;
                }
            }
            Ok(false) => {}
            Err(_closed) => return Tick::Ended,
        }
        tick
    })?;
    if exit == Exit::Quit {
        stop();
    }
    Ok(())
}
