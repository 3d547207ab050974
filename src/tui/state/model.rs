//! What the screen knows about a run: the latest snapshot folded together
//! with what earlier snapshots left behind (histories, the chaos log).

use super::chaos_log::ChaosLog;
use super::history::{LatencyHistory, Recent};
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
}
