//! The terminal UI's model (tokio-console's `state/`): what the run looks
//! like ([`Model`]), what the user is doing with the screen (focus, zoom,
//! help, pause), for `squall replay` where in the recorded timeline the
//! screen stands, and for `squall search` the search around the step
//! running. Nothing here draws or touches the terminal, so all of it
//! is testable on its own.

mod chaos_log;
mod history;
mod model;

pub use chaos_log::ChaosLog;
pub use history::{LatencyHistory, Recent};
pub use model::Model;

use crate::search::snapshot::SearchSnap;
use crate::snapshot::Snapshot;
use std::time::Duration;

/// The panels Tab moves between, in screen order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Panel {
    /// Sockets open, wanted and failed.
    Connections,
    /// Sent and received per second.
    Throughput,
    /// Loss, duplicates and reorders.
    Loss,
    /// Percentiles now and over the run.
    Latency,
    /// Hang watchdog.
    Watchdog,
    /// Chaos actions.
    Chaos,
    /// Thresholds with their live verdict (in a search: the objective,
    /// against the running step).
    Thresholds,
    /// A search's steps so far, the bracket, and the step running.
    Search,
}

impl Panel {
    /// Every panel of a run in Tab order.
    pub const ALL: [Panel; 7] = [
        Panel::Connections,
        Panel::Throughput,
        Panel::Loss,
        Panel::Latency,
        Panel::Watchdog,
        Panel::Chaos,
        Panel::Thresholds,
    ];

    /// Every panel of a search in Tab order (a search runs no chaos).
    pub const SEARCH: [Panel; 7] = [
        Panel::Connections,
        Panel::Throughput,
        Panel::Loss,
        Panel::Search,
        Panel::Latency,
        Panel::Watchdog,
        Panel::Thresholds,
    ];

    /// The panel's title.
    pub fn title(self) -> &'static str {
        match self {
            Panel::Connections => "connections",
            Panel::Throughput => "throughput",
            Panel::Loss => "loss",
            Panel::Latency => "latency",
            Panel::Watchdog => "watchdog",
            Panel::Chaos => "chaos",
            Panel::Thresholds => "thresholds",
            Panel::Search => "search",
        }
    }

    fn offset(self, by: isize, panels: &[Panel]) -> Panel {
        let here = panels.iter().position(|p| *p == self).unwrap_or(0) as isize;
        let n = panels.len() as isize;
        panels[(here + by).rem_euclid(n) as usize]
    }
}

/// What the user asked for, independent of which key said it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Leave (and, live, stop the run).
    Quit,
    /// Freeze or unfreeze the display; in replay, pause or resume playback.
    TogglePause,
    /// Focus the next panel.
    NextPanel,
    /// Focus the previous panel.
    PrevPanel,
    /// Show the focused panel alone, or go back to all panels.
    ToggleZoom,
    /// Close help, or leave the zoomed panel.
    Back,
    /// Show or hide the key help.
    ToggleHelp,
    /// Replay: move this many seconds (snapshots) through time.
    Step(i64),
    /// Replay: go to the first second.
    ToStart,
    /// Replay: go to the last second.
    ToEnd,
    /// Replay: play faster.
    Faster,
    /// Replay: play slower.
    Slower,
}

/// Whether the UI loop goes on after an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep going.
    Continue,
    /// The user asked to leave.
    Quit,
}

/// Replay speeds, in recorded seconds per wall-clock second.
const SPEEDS: [u32; 8] = [1, 2, 5, 10, 30, 60, 300, 600];

/// How long replay aims to take at its starting speed, in seconds.
const REPLAY_TARGET_S: usize = 60;

/// A recorded timeline and where playback stands in it.
#[derive(Debug, Clone)]
struct Replay {
    timeline: Vec<Snapshot>,
    position: usize,
    playing: bool,
    speed: usize,
}

/// Where replay stands, for the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayStatus {
    /// Index of the snapshot on screen.
    pub position: usize,
    /// Snapshots in the timeline.
    pub len: usize,
    /// Whether playback advances by itself.
    pub playing: bool,
    /// Recorded seconds per wall-clock second.
    pub speed: u32,
}

/// Everything the view draws: the model plus the state of the screen.
#[derive(Debug, Clone)]
pub struct App {
    model: Model,
    /// Live pause: the model as it was when the user pressed `p`; the live
    /// model keeps absorbing snapshots underneath.
    frozen: Option<Model>,
    focus: Panel,
    zoomed: bool,
    help: bool,
    replay: Option<Replay>,
    /// The panels on screen, in Tab order.
    panels: &'static [Panel],
}

impl App {
    /// An app for a live run, waiting for its first snapshot.
    pub fn live() -> Self {
        Self {
            model: Model::default(),
            frozen: None,
            focus: Panel::Connections,
            zoomed: false,
            help: false,
            replay: None,
            panels: &Panel::ALL,
        }
    }

    /// An app for a live capacity search, waiting for its first news.
    pub fn search() -> Self {
        Self {
            focus: Panel::Search,
            panels: &Panel::SEARCH,
            ..Self::live()
        }
    }

    /// An app replaying a recorded timeline from its first second, playing
    /// at a speed that gets through the run in about a minute.
    pub fn replay(timeline: Vec<Snapshot>) -> Self {
        let model = Model::from_snapshots(timeline.first());
        let speed = SPEEDS
            .iter()
            .position(|s| *s as usize * REPLAY_TARGET_S >= timeline.len())
            .unwrap_or(SPEEDS.len() - 1);
        Self {
            model,
            replay: Some(Replay {
                timeline,
                position: 0,
                playing: true,
                speed,
            }),
            ..Self::live()
        }
    }

    /// Feeds a live snapshot in. Replay ignores it.
    pub fn ingest(&mut self, snapshot: Snapshot) {
        if self.replay.is_none() {
            self.model.ingest(snapshot);
        }
    }

    /// Feeds the search's news in (a search app only).
    pub fn ingest_search(&mut self, search: SearchSnap) {
        if self.searching() {
            self.model.ingest_search(search);
        }
    }

    /// Whether this app shows a capacity search.
    pub fn searching(&self) -> bool {
        self.panels.contains(&Panel::Search)
    }

    /// The panels on screen, in Tab order.
    pub fn panels(&self) -> &'static [Panel] {
        self.panels
    }

    /// The model to draw: frozen while paused, current otherwise.
    pub fn model(&self) -> &Model {
        self.frozen.as_ref().unwrap_or(&self.model)
    }

    /// The focused panel.
    pub fn focus(&self) -> Panel {
        self.focus
    }

    /// Whether the focused panel fills the screen.
    pub fn zoomed(&self) -> bool {
        self.zoomed
    }

    /// Whether the key help is showing.
    pub fn help(&self) -> bool {
        self.help
    }

    /// Whether the display is paused (live) or playback is paused (replay).
    pub fn paused(&self) -> bool {
        match &self.replay {
            Some(replay) => !replay.playing,
            None => self.frozen.is_some(),
        }
    }

    /// Where replay stands; `None` for a live run.
    pub fn replay_status(&self) -> Option<ReplayStatus> {
        self.replay.as_ref().map(|r| ReplayStatus {
            position: r.position,
            len: r.timeline.len(),
            playing: r.playing,
            speed: SPEEDS[r.speed],
        })
    }

    /// How long to wait before playback moves on by one second; `None`
    /// when nothing plays by itself (live, paused, or at the end).
    pub fn play_interval(&self) -> Option<Duration> {
        let replay = self.replay.as_ref()?;
        (replay.playing && replay.position + 1 < replay.timeline.len())
            .then(|| Duration::from_secs(1) / SPEEDS[replay.speed])
    }

    /// Applies a user action.
    pub fn apply(&mut self, action: Action) -> Flow {
        match action {
            Action::Quit => return Flow::Quit,
            Action::TogglePause => match &mut self.replay {
                Some(replay) => replay.playing = !replay.playing,
                None => {
                    self.frozen = match self.frozen.take() {
                        Some(_) => None,
                        None => Some(self.model.clone()),
                    }
                }
            },
            Action::NextPanel => self.focus = self.focus.offset(1, self.panels),
            Action::PrevPanel => self.focus = self.focus.offset(-1, self.panels),
            Action::ToggleZoom => self.zoomed = !self.zoomed,
            Action::Back => {
                if self.help {
                    self.help = false;
                } else {
                    self.zoomed = false;
                }
            }
            Action::ToggleHelp => self.help = !self.help,
            Action::Step(by) => self.seek_by(by),
            Action::ToStart => self.seek_by(i64::MIN),
            Action::ToEnd => self.seek_by(i64::MAX),
            Action::Faster => {
                if let Some(replay) = &mut self.replay {
                    replay.speed = (replay.speed + 1).min(SPEEDS.len() - 1);
                }
            }
            Action::Slower => {
                if let Some(replay) = &mut self.replay {
                    replay.speed = replay.speed.saturating_sub(1);
                }
            }
        }
        Flow::Continue
    }

    /// Moves replay by `by` snapshots, clamped to the timeline. Forward
    /// folds in only the new snapshots; backward rebuilds from the start,
    /// because histories cannot be unfolded.
    fn seek_by(&mut self, by: i64) {
        let Some(replay) = &mut self.replay else {
            return;
        };
        let last = replay.timeline.len().saturating_sub(1);
        let target = if by >= 0 {
            replay.position.saturating_add(by.unsigned_abs() as usize)
        } else {
            replay.position.saturating_sub(by.unsigned_abs() as usize)
        }
        .min(last);
        if target > replay.position {
            for snapshot in &replay.timeline[replay.position + 1..=target] {
                self.model.ingest(snapshot.clone());
            }
        } else if target < replay.position {
            self.model = Model::from_snapshots(&replay.timeline[..=target]);
        }
        replay.position = target;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeline(n: usize) -> Vec<Snapshot> {
        (0..n)
            .map(|i| Snapshot {
                t_s: (i + 1) as f64,
                ..Snapshot::default()
            })
            .collect()
    }

    #[test]
    fn replay_moves_through_time_both_ways() {
        let mut app = App::replay(timeline(30));
        assert_eq!(app.model().latest.as_ref().unwrap().t_s, 1.0);
        app.apply(Action::Step(10));
        assert_eq!(app.model().latest.as_ref().unwrap().t_s, 11.0);
        app.apply(Action::Step(-3));
        assert_eq!(app.model().latest.as_ref().unwrap().t_s, 8.0);
        app.apply(Action::ToEnd);
        assert_eq!(app.replay_status().unwrap().position, 29);
        assert_eq!(app.play_interval(), None);
        app.apply(Action::ToStart);
        assert_eq!(app.model().latest.as_ref().unwrap().t_s, 1.0);
        app.apply(Action::Step(-5));
        assert_eq!(app.replay_status().unwrap().position, 0);
    }

    #[test]
    fn live_pause_freezes_the_display_but_not_the_model() {
        let mut app = App::live();
        app.ingest(timeline(1).remove(0));
        app.apply(Action::TogglePause);
        app.ingest(Snapshot {
            t_s: 2.0,
            ..Snapshot::default()
        });
        assert!(app.paused());
        assert_eq!(app.model().latest.as_ref().unwrap().t_s, 1.0);
        app.apply(Action::TogglePause);
        assert_eq!(app.model().latest.as_ref().unwrap().t_s, 2.0);
    }

    #[test]
    fn tab_cycles_through_every_panel() {
        let mut app = App::live();
        for _ in 0..Panel::ALL.len() {
            app.apply(Action::NextPanel);
        }
        assert_eq!(app.focus(), Panel::Connections);
        app.apply(Action::PrevPanel);
        assert_eq!(app.focus(), Panel::Thresholds);
    }
}
