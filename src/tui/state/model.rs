//! What the screen knows about a run: the latest snapshot folded together
//! with what earlier snapshots left behind (histories, the chaos log). In a
//! capacity search, the run is the step running, and the search itself
//! (every step so far, the bracket) comes beside it.

use super::chaos_log::ChaosLog;
use super::history::{LatencyHistory, Recent};
use crate::search::snapshot::SearchSnap;
use crate::snapshot::Snapshot;

/// The run as the screen sees it, built by feeding snapshots in order.
#[derive(Debug, Clone, Default)]
pub struct Model {
    /// The newest snapshot; `None` until the first arrives.
    pub latest: Option<Snapshot>,
    /// p50 and p99 per interval over the run.
    pub latency: LatencyHistory,
    /// Published per second, recent seconds.
    pub sent_per_s: Recent,
    /// Delivered per second, recent seconds.
    pub received_per_s: Recent,
    /// Every chaos action seen.
    pub chaos: ChaosLog,
    /// The search, in `squall search`; `None` in a run.
    pub search: Option<SearchSnap>,
}

impl Model {
    /// Builds the model a sequence of snapshots leaves behind.
    pub fn from_snapshots<'a>(snapshots: impl IntoIterator<Item = &'a Snapshot>) -> Self {
        let mut model = Self::default();
        for snapshot in snapshots {
            model.ingest(snapshot.clone());
        }
        model
    }

    /// Folds in the next snapshot.
    pub fn ingest(&mut self, snapshot: Snapshot) {
        if snapshot.latency_ms.count > 0 {
            self.latency.push(
                snapshot.t_s,
                snapshot.latency_ms.p50,
                snapshot.latency_ms.p99,
            );
        }
        self.sent_per_s.push(snapshot.messages.sent_per_s);
        self.received_per_s.push(snapshot.messages.received_per_s);
        for event in &snapshot.chaos {
            self.chaos.record(event);
        }
        self.latest = Some(snapshot);
    }

    /// Takes the search's news. A new step starts the run's figures afresh:
    /// each step is a run of its own, with its own clock from 0.
    pub fn ingest_search(&mut self, search: SearchSnap) {
        let running = |s: &Option<SearchSnap>| s.as_ref().and_then(|s| s.current).map(|c| c.index);
        let next = search.current.map(|c| c.index);
        if next.is_some() && next != running(&self.search) {
            *self = Model::default();
        }
        self.search = Some(search);
    }
}
