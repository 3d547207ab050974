//! The terminal UI: `squall run --tui`, `squall search --tui` and
//! `squall replay`.
//!
//! Fed only by the [`Snapshot`](crate::snapshot::Snapshot) stream (and, in
//! a search, the [`SearchSnap`](crate::search::snapshot::SearchSnap) beside
//! it); it never touches the engine, and the engine never waits for it. `state/` is the
//! model, `view/` draws it, and the loop in between reads keys and redraws
//! at most ten times a second.
//!
//! Entry points for the CLI:
//!
//! ```no_run
//! # async fn example(results: std::path::PathBuf) -> std::io::Result<()> {
//! use tokio::sync::watch;
//! // `squall run --tui`: the runner owns the sender and sends
//! // `Some(snapshot)` once a second, then drops it when the run is over.
//! let (tx, rx) = watch::channel(None);
//! let (stop_tx, _stop_rx) = watch::channel(false);
//! let ui = tokio::task::spawn_blocking(move || {
//!     squall::tui::run_live(rx, move || {
//!         let _ = stop_tx.send(true); // q or Ctrl-C: stop the run
//!     })
//! });
//! # drop(tx);
//! if let Err(why) = squall::tui::join(ui).await {
//!     eprintln!("squall: {why}");
//! }
//!
//! // `squall replay RUN.json`
//! squall::tui::replay(&results)?;
//! # Ok(()) }
//! ```

mod event_loop;
mod keys;
mod live;
mod replay;
mod search;
pub mod state;
mod terminal;
pub mod view;

pub use live::run_live;
pub use replay::replay;
pub use search::run_search;

use std::io;
use std::time::Duration;
use tokio::task::JoinHandle;

/// How long a run or a search waits for its UI thread once it has closed the
/// UI's feed; a UI ends within a frame of that.
pub const UI_GRACE: Duration = Duration::from_secs(5);

/// Waits for the UI thread `ui` (started on `spawn_blocking` with
/// [`run_live`] or [`run_search`]) once its feed is closed, for at most
/// [`UI_GRACE`]: a UI stuck on a terminal that went away (crossterm can spin
/// forever reading a hung-up terminal) must not keep the caller from
/// writing its results. Says why, when the UI did not end well; a UI left
/// behind ends with the process.
pub async fn join(ui: JoinHandle<io::Result<()>>) -> Result<(), String> {
    match tokio::time::timeout(UI_GRACE, ui).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(e))) => Err(format!("the TUI failed: {e}")),
        Ok(Err(e)) => Err(format!("the TUI panicked: {e}")),
        Err(_) => Err(format!(
            "the TUI did not end within {}s (its terminal went away?); going on without it",
            UI_GRACE.as_secs()
        )),
    }
}
