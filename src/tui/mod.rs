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
//! ui.await.expect("the UI thread panicked")?;
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
