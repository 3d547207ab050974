//! `squall replay`: a finished run's timeline played back in the live UI,
//! with the arrow keys to move through time.

use super::event_loop::{self, Tick};
use super::state::{Action, App};
use crate::report::RecordedRun;
use std::io;
use std::path::Path;
use std::time::Instant;

/// Plays the timeline of the results file at `results_json` until the user
/// presses `q`. The timeline is the file named by the results file's
/// `timeline` key, relative to the results file's directory unless it is
/// absolute. Fails before touching the terminal if either file cannot be
/// read or the timeline is empty.
pub fn replay(results_json: &Path) -> io::Result<()> {
    let run = RecordedRun::load(results_json)?;
    if run.timeline.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: the timeline is empty", run.timeline_path.display()),
        ));
    }
    let mut app = App::replay(run.timeline);
    let mut last_step = Instant::now();
    event_loop::run(&mut app, |app| {
        let Some(interval) = app.play_interval() else {
            last_step = Instant::now();
            return Tick::Same;
        };
        let due = (last_step.elapsed().as_secs_f64() / interval.as_secs_f64()) as i64;
        if due == 0 {
            return Tick::Same;
        }
        last_step = Instant::now();
        app.apply(Action::Step(due));
        Tick::Changed
    })?;
    Ok(())
}
