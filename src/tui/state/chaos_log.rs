//! The chaos log: every chaos action seen in the snapshot stream, once, with
//! its latest progress. Snapshots only carry the actions that changed in
//! their interval, so the log is what remembers the rest.

use crate::snapshot::ChaosEventSnap;
use std::collections::VecDeque;

/// Most entries kept; the oldest go first.
const MAX_ENTRIES: usize = 500;

/// Chaos actions in the order they were first seen.
#[derive(Debug, Clone, Default)]
pub struct ChaosLog {
    entries: VecDeque<ChaosEventSnap>,
}

impl ChaosLog {
    /// Records an action's progress, updating the entry for the same
    /// scheduled action (`at_s` and `action`) if there is one.
    pub fn record(&mut self, event: &ChaosEventSnap) {
        if let Some(entry) = self
            .entries
            .iter_mut()
            .rev()
            .find(|e| e.at_s == event.at_s && e.action == event.action)
        {
            *entry = event.clone();
            return;
        }
        if self.entries.len() == MAX_ENTRIES {
            self.entries.pop_front();
        }
        self.entries.push_back(event.clone());
    }

    /// Entries, oldest first.
    pub fn entries(&self) -> impl DoubleEndedIterator<Item = &ChaosEventSnap> + ExactSizeIterator {
        self.entries.iter()
    }

    /// The last action scheduled at or before `t_s`, if any.
    pub fn last_before(&self, t_s: f64) -> Option<&ChaosEventSnap> {
        self.entries.iter().rev().find(|e| e.at_s <= t_s)
    }
}
