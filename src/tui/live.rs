//! The live view of a running scenario, fed by the runner's snapshot
//! channel. The runner never waits for it: the channel keeps only the
//! latest snapshot, and this loop takes it when it can.

use super::event_loop::{self, Exit, Tick};
use super::state::App;
use crate::snapshot::Snapshot;
use std::io;
use tokio::sync::watch;

/// Shows a run live until it ends or the user quits.
///
/// Call it on its own blocking thread (`tokio::task::spawn_blocking` or
/// `std::thread::spawn`): it polls the terminal for keys. It returns when
/// the runner drops the channel's sender (the run is over) or when the user
/// presses `q` or Ctrl-C; in the latter case it calls `stop` once first,
/// and the runner is expected to wind down and still write its results.
/// `None` in the channel means "no snapshot yet".
pub fn run_live(
    mut snapshots: watch::Receiver<Option<Snapshot>>,
    stop: impl FnOnce(),
) -> io::Result<()> {
    let mut app = App::live();
    let exit = event_loop::run(&mut app, |app| match snapshots.has_changed() {
        Ok(true) => match snapshots.borrow_and_update().clone() {
            Some(snapshot) => {
                app.ingest(snapshot);
                Tick::Changed
            }
            None => Tick::Same,
        },
        Ok(false) => Tick::Same,
        Err(_closed) => Tick::Ended,
    })?;
    if exit == Exit::Quit {
        stop();
    }
    Ok(())
}
