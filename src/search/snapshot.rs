//! What the live screen knows of a search: the steps judged so far, the
//! bracket the capacity lies in, and the step running now. The search sends
//! a [`SearchSnap`] when a step starts and when it is judged; the running
//! step's own once-a-second [`Snapshot`](crate::snapshot::Snapshot)s go
//! beside it on a channel of their own. The TUI reads only these two, never
//! the search's state or the engine.

use super::bisect::{Bracket, Judged, Stage};
use super::results::{SearchResults, Step};

/// The search as the screen sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchSnap {
    /// The scenario's name.
    pub scenario: String,
    /// The target's URL(s).
    pub target: String,
    /// The unit of every level: `msg/s` or `connections`.
    pub unit: String,
    /// The objective, e.g. `p99_ms ≤ 100, loss_ratio ≤ 0.001`.
    pub slo: String,
    /// The search's precision (0.1: 10%).
    pub precision: f64,
    /// Seconds since the search started, when this was sent.
    pub elapsed_s: f64,
    /// The search's time limit, in seconds.
    pub time_limit_s: f64,
    /// Every step done, in the order run.
    pub steps: Vec<StepSnap>,
    /// The step running, if one is.
    pub current: Option<CurrentStep>,
    /// Where the capacity lies so far.
    pub bracket: Bracket,
}

/// A step done, as one row of the screen.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepSnap {
    /// 1-based.
    pub index: u32,
    /// Growing or bisecting.
    pub stage: Option<Stage>,
    /// The level tried.
    pub level: f64,
    /// p99 of the measured window, in ms.
    pub p99_ms: f64,
    /// The step's loss ratio.
    pub loss_ratio: f64,
    /// How it was judged; `None` when stopped before it could be.
    pub judged: Option<Judged>,
}

/// The step running now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurrentStep {
    /// 1-based.
    pub index: u32,
    /// Growing or bisecting.
    pub stage: Stage,
    /// The level it offers.
    pub level: f64,
    /// Its measured window, in seconds of the step's own clock: before it,
    /// the ramp and the warm-up; after it, the drain.
    pub window_from_s: f64,
    /// The end of the measured window (the end of publishing).
    pub window_to_s: f64,
}

impl SearchSnap {
    /// The screen's view of a search whose file so far is `results`, whose
    /// bracket is `bracket`, running `current` (if a step runs).
    pub fn of(
        results: &SearchResults,
        bracket: Bracket,
        current: Option<CurrentStep>,
        elapsed_s: f64,
    ) -> SearchSnap {
        SearchSnap {
            scenario: results.scenario.clone(),
            target: results.target.clone(),
            unit: results.unit.clone(),
            slo: super::slo_text(results)
                .replace("<=", "≤")
                .replace(">=", "≥"),
            precision: results.search.precision,
            elapsed_s,
            time_limit_s: results.search.time_limit_s,
            steps: results.steps.iter().map(StepSnap::of).collect(),
            current,
            bracket,
        }
    }
}

impl StepSnap {
    /// A done step's row.
    pub fn of(s: &Step) -> StepSnap {
        StepSnap {
            index: s.index,
            stage: s.stage,
            level: s.level,
            p99_ms: s.latency_ms.p99,
            loss_ratio: s.messages.loss_ratio,
            judged: s.judged,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::bisect::Search;
    use crate::search::plan::Vary;
    use crate::search::results::{KIND, SearchFigures, Slo};

    #[test]
    fn the_screen_gets_every_step_the_bracket_and_the_objective() {
        let mut search = Search::new(50.0, 800.0, 2.0, 0.1, false);
        let mut r = SearchResults {
            kind: KIND.into(),
            scenario: "cap".into(),
            vary: Vary::Rate,
            unit: "msg/s".into(),
            search: SearchFigures {
                precision: 0.1,
                time_limit_s: 600.0,
                ..Default::default()
            },
            slo: vec![
                Slo {
                    name: "p99_ms".into(),
                    limit: 100.0,
                    floor: false,
                },
                Slo {
                    name: "target_disconnects".into(),
                    limit: 0.0,
                    floor: false,
                },
            ],
            ..Default::default()
        };
        for (index, level, judged, p99) in [
            (1, 50.0, Judged::Pass, 2.0),
            (2, 100.0, Judged::Fail, 900.0),
        ] {
            search.record(level, judged);
            r.steps.push(Step {
                index,
                level,
                judged: Some(judged),
                latency_ms: crate::results::Latency {
                    p99,
                    ..Default::default()
                },
                ..Default::default()
            });
        }
        let (level, stage) = search.next().unwrap();
        let snap = SearchSnap::of(
            &r,
            search.bracket(),
            Some(CurrentStep {
                index: 3,
                stage,
                level,
                window_from_s: 3.0,
                window_to_s: 10.0,
            }),
            31.0,
        );
        assert_eq!(snap.slo, "p99_ms ≤ 100", "the defaults are left out");
        assert_eq!(snap.unit, "msg/s");
        assert_eq!(snap.steps.len(), 2);
        assert_eq!(snap.steps[1].p99_ms, 900.0);
        assert_eq!(snap.steps[1].judged, Some(Judged::Fail));
        assert_eq!(
            snap.bracket,
            Bracket {
                highest_pass: Some(50.0),
                lowest_fail: Some(100.0),
                generator: None
            }
        );
        assert_eq!(snap.current.unwrap().level, 70.7);
        assert_eq!(snap.current.unwrap().stage, Stage::Bisect);
    }
}
