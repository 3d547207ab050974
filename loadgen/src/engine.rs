//! The engine: connections, publishing and collection (being built).

use crate::{LoadPlan, LoadReport, LoadSnapshot, Origin};
use tokio::sync::{mpsc, watch};

/// Runs a checked plan.
pub(crate) async fn run(
    _plan: LoadPlan,
    _origin: Origin,
    _stop: watch::Receiver<bool>,
    _snapshots: mpsc::UnboundedSender<LoadSnapshot>,
) -> LoadReport {
    LoadReport::default()
}
