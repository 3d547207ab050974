//! Which level to try next: pure logic, no I/O, unit-tested.
//!
//! The search grows geometrically from `min` (each level `growth` times the
//! last passing one, the last one exactly `max`) until a level fails, then
//! bisects between the last passing and the first failing level, at their
//! geometric mean (the precision is a ratio), until the failing one is
//! within `precision` of the passing one. The answer is the last passing
//! level: the target's capacity lies between it and the first failing one,
//! so it errs low, never high.
//!
//! A level the generator could not send is an upper bound of what squall can
//! measure, not a failure of the target: it bounds the search from above like
//! a failure, but the outcome says so ([`Outcome::GeneratorLimited`]) and
//! never names it as the target's first failing level.

use serde::{Deserialize, Serialize};

/// How a step was judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Judged {
    /// Every SLO held in the measured window and the target did not hang.
    Pass,
    /// An SLO broke, or the target hung.
    Fail,
    /// The generator fell behind its schedule: the level was not offered.
    Generator,
}

/// Where the search is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Growing geometrically from `min`.
    Grow,
    /// Bisecting between the last passing and the first failing level.
    Bisect,
}

/// What the search found once it ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// The knee: `max` passed, `first_failing` failed, within the precision.
    Found {
        /// The highest passing level: the capacity.
        max: f64,
        /// The lowest failing level.
        first_failing: f64,
    },
    /// Every level up to `--max` passed.
    NotFoundBelowMax {
        /// `--max`, which passed.
        max: f64,
    },
    /// `--min` already failed.
    BelowMin {
        /// `--min`, which failed.
        min: f64,
    },
    /// The generator could not send `could_not_send`; the target passed
    /// everything below that squall could send.
    GeneratorLimited {
        /// The highest passing level, if any.
        at_least: Option<f64>,
        /// The lowest level the generator could not send.
        could_not_send: f64,
    },
    /// The search did not end (stopped, or out of time): what is known.
    Partial {
        /// The highest passing level so far.
        at_least: Option<f64>,
        /// The lowest failing level so far (by the target).
        below: Option<f64>,
    },
}

/// Where the capacity lies so far: between the highest passing level and
/// the lowest failing one.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Bracket {
    /// The highest level that passed.
    pub highest_pass: Option<f64>,
    /// The lowest level that failed because of the target.
    pub lowest_fail: Option<f64>,
    /// The lowest level the generator could not send, when that is what
    /// bounds the search from above (never the target's failure).
    pub generator: Option<f64>,
}

/// The search's state.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    min: f64,
    max: f64,
    growth: f64,
    precision: f64,
    whole: bool,
    /// The highest passing level.
    lo: Option<f64>,
    /// The lowest failing level, and whether the generator (not the
    /// target) failed there.
    hi: Option<(f64, bool)>,
    stage: Stage,
    done: bool,
}

impl Search {
    /// A search from `min` to `max`; `whole` levels (connections) are rounded.
    pub fn new(min: f64, max: f64, growth: f64, precision: f64, whole: bool) -> Search {
        Search {
            min,
            max: max.max(min),
            growth,
            precision,
            whole,
            lo: None,
            hi: None,
            stage: Stage::Grow,
            done: false,
        }
    }

    /// The next level to try and the stage it belongs to; `None` once the
    /// search has ended.
    pub fn next(&self) -> Option<(f64, Stage)> {
        if self.done {
            return None;
        }
        match (self.lo, self.hi) {
            (None, None) => Some((self.min, Stage::Grow)),
            (Some(lo), None) => Some((self.round(lo * self.growth).min(self.max), Stage::Grow)),
            (Some(lo), Some((hi, _))) => {
                let mid = self.round((lo * hi).sqrt());
                (mid > lo && mid < hi).then_some((mid, Stage::Bisect))
            }
            (None, Some(_)) => None,
        }
    }

    /// Records how `level` (the one [`Search::next`] gave) was judged.
    pub fn record(&mut self, level: f64, judged: Judged) {
        match judged {
            Judged::Pass => {
                self.lo = Some(self.lo.map_or(level, |lo| lo.max(level)));
                if self.hi.is_none() && level >= self.max {
                    self.done = true;
                }
            }
            Judged::Fail | Judged::Generator => {
                let generator = judged == Judged::Generator;
                if self.hi.is_none_or(|(hi, _)| level <= hi) {
                    self.hi = Some((level, generator));
                }
                self.stage = Stage::Bisect;
                if self.lo.is_none() {
                    self.done = true;
                }
            }
        }
        if let (Some(lo), Some((hi, _))) = (self.lo, self.hi)
            && (hi <= lo * (1.0 + self.precision) || self.next().is_none())
        {
            self.done = true;
        }
    }

    /// Whether the search has ended on its own.
    pub fn done(&self) -> bool {
        self.done || self.next().is_none()
    }

    /// The stage the search is in.
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// The levels that bound the capacity so far.
    pub fn bracket(&self) -> Bracket {
        Bracket {
            highest_pass: self.lo,
            lowest_fail: self.hi.filter(|h| !h.1).map(|h| h.0),
            generator: self.hi.filter(|h| h.1).map(|h| h.0),
        }
    }

    /// The outcome: final once [`Search::done`], else [`Outcome::Partial`].
    pub fn outcome(&self) -> Outcome {
        if !self.done() {
            return Outcome::Partial {
                at_least: self.lo,
                below: self.hi.filter(|h| !h.1).map(|h| h.0),
            };
        }
        match (self.lo, self.hi) {
            (Some(lo), None) => Outcome::NotFoundBelowMax { max: lo },
            (lo, Some((hi, true))) => Outcome::GeneratorLimited {
                at_least: lo,
                could_not_send: hi,
            },
            (Some(lo), Some((hi, false))) => Outcome::Found {
                max: lo,
                first_failing: hi,
            },
            (None, Some((_, false))) => Outcome::BelowMin { min: self.min },
            (None, None) => Outcome::Partial {
                at_least: None,
                below: None,
            },
        }
    }

    fn round(&self, v: f64) -> f64 {
        if self.whole {
            v.round()
        } else {
            // Three significant digits: levels people can read and type
            // (and that print as they are: 95.1, never 95.10000000000001).
            let digits = 2 - v.abs().log10().floor() as i32;
            if digits > 0 {
                format!("{v:.*}", digits as usize).parse().unwrap_or(v)
            } else {
                let magnitude = 10f64.powi(-digits);
                (v / magnitude).round() * magnitude
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a search against a target of capacity `cap` (a level passes
    /// when it is at most `cap`) whose generator sends at most `gen_limit`.
    fn against(search: &mut Search, cap: f64, gen_limit: f64) -> Vec<(f64, Stage)> {
        let mut tried = Vec::new();
        while let Some((level, stage)) = search.next() {
            tried.push((level, stage));
            let judged = if level > gen_limit {
                Judged::Generator
            } else if level <= cap {
                Judged::Pass
            } else {
                Judged::Fail
            };
            search.record(level, judged);
            assert!(tried.len() < 60, "the search ends: {tried:?}");
        }
        tried
    }

    #[test]
    fn grows_then_bisects_to_the_precision_and_errs_low() {
        for cap in [100.0, 137.0, 199.0, 200.0, 201.0, 1234.0, 1999.0] {
            let mut s = Search::new(100.0, 2000.0, 2.0, 0.1, false);
            let tried = against(&mut s, cap, f64::INFINITY);
            let Outcome::Found { max, first_failing } = s.outcome() else {
                panic!("{cap}: {:?} after {tried:?}", s.outcome());
            };
            assert!(
                max <= cap && first_failing > cap,
                "{cap}: {max}..{first_failing}"
            );
            assert!(
                first_failing <= max * 1.1 + 1e-9,
                "{cap}: {max}..{first_failing}"
            );
            assert!(max >= cap / 1.1, "{cap}: {max}");
            // Growth first: the levels rise until the first failure.
            let grown: Vec<f64> = tried
                .iter()
                .take_while(|t| t.1 == Stage::Grow)
                .map(|t| t.0)
                .collect();
            assert!(grown.windows(2).all(|w| w[1] > w[0]), "{grown:?}");
            assert!(tried.len() <= 5 + 5, "{cap}: {tried:?}");
        }
    }

    #[test]
    fn a_search_from_100_to_2000_takes_a_handful_of_steps() {
        let mut s = Search::new(100.0, 2000.0, 2.0, 0.1, false);
        let tried = against(&mut s, 1500.0, f64::INFINITY);
        let levels: Vec<f64> = tried.iter().map(|t| t.0).collect();
        assert_eq!(&levels[..5], &[100.0, 200.0, 400.0, 800.0, 1600.0]);
        assert!(levels.len() <= 9, "{levels:?}");
    }

    #[test]
    fn a_target_that_holds_max_is_not_found_below_it() {
        let mut s = Search::new(100.0, 1000.0, 2.0, 0.1, false);
        let tried = against(&mut s, f64::INFINITY, f64::INFINITY);
        assert_eq!(
            tried.iter().map(|t| t.0).collect::<Vec<_>>(),
            [100.0, 200.0, 400.0, 800.0, 1000.0]
        );
        assert_eq!(s.outcome(), Outcome::NotFoundBelowMax { max: 1000.0 });
    }

    #[test]
    fn a_failing_min_ends_at_once() {
        let mut s = Search::new(100.0, 1000.0, 2.0, 0.1, false);
        assert_eq!(against(&mut s, 50.0, f64::INFINITY).len(), 1);
        assert_eq!(s.outcome(), Outcome::BelowMin { min: 100.0 });
    }

    #[test]
    fn the_generator_bounds_the_search_but_is_never_the_targets_capacity() {
        let mut s = Search::new(100.0, 10_000.0, 2.0, 0.1, false);
        against(&mut s, 5000.0, 700.0);
        let Outcome::GeneratorLimited {
            at_least: Some(lo),
            could_not_send,
        } = s.outcome()
        else {
            panic!("{:?}", s.outcome());
        };
        assert!(lo <= 700.0 && could_not_send > 700.0 && could_not_send <= lo * 1.1);
        assert_eq!(
            s.bracket(),
            Bracket {
                highest_pass: Some(lo),
                lowest_fail: None,
                generator: Some(could_not_send)
            },
            "the generator's limit is never the target's failing level"
        );
        let mut s = Search::new(1000.0, 10_000.0, 2.0, 0.1, false);
        against(&mut s, 5000.0, 700.0);
        assert_eq!(
            s.outcome(),
            Outcome::GeneratorLimited {
                at_least: None,
                could_not_send: 1000.0
            }
        );
    }

    #[test]
    fn whole_levels_stop_when_no_whole_number_is_left_between() {
        let mut s = Search::new(10.0, 1000.0, 2.0, 0.01, true);
        let tried = against(&mut s, 37.0, f64::INFINITY);
        assert!(tried.iter().all(|t| t.0.fract() == 0.0), "{tried:?}");
        assert_eq!(
            s.outcome(),
            Outcome::Found {
                max: 37.0,
                first_failing: 38.0
            }
        );
    }

    #[test]
    fn levels_keep_three_significant_digits_exactly() {
        let s = Search::new(1.0, 2.0, 2.0, 0.1, false);
        assert_eq!(s.round(95.137), 95.1);
        assert_eq!(s.round(0.012_345), 0.0123);
        assert_eq!(s.round(1234.5), 1230.0);
        assert_eq!(s.round(282.842_712), 283.0);
        assert_eq!(format!("{}", s.round(95.099_999)), "95.1");
    }

    #[test]
    fn a_search_cut_short_says_what_it_knows() {
        let mut s = Search::new(100.0, 2000.0, 2.0, 0.1, false);
        s.record(100.0, Judged::Pass);
        s.record(200.0, Judged::Fail);
        assert!(!s.done());
        assert_eq!(
            s.outcome(),
            Outcome::Partial {
                at_least: Some(100.0),
                below: Some(200.0)
            }
        );
    }
}
