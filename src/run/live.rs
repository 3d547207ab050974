//! Turns the engine's once-a-second `LoadSnapshot` (plus the watchdog's and
//! the chaos agent's state) into the `Snapshot` every consumer reads, keeping
//! what spans the run: the latency so far, the windowed p99, the thresholds.

use crate::exit::Exit;
use crate::snapshot::{
    ChaosEventSnap, ConnectionsSnap, LatencySnap, MessagesSnap, Snapshot, ThresholdSnap,
    WatchdogSnap,
};
use crate::thresholds::{Measured, Thresholds, WindowedP99};
use squall_loadgen::{LatencyHistogram, LoadSnapshot, Phase};

/// Builds one `Snapshot` a second from the engine's snapshots.
#[derive(Debug)]
pub struct Live {
    scenario: String,
    target: String,
    duration_s: f64,
    thresholds: Thresholds,
    total: LatencyHistogram,
    windowed: Option<WindowedP99>,
}

impl Live {
    /// A builder for one run.
    pub fn new(scenario: &str, target: &str, duration_s: f64, thresholds: &Thresholds) -> Live {
        Live {
            scenario: scenario.to_string(),
            target: target.to_string(),
            duration_s,
            thresholds: thresholds.clone(),
            total: LatencyHistogram::new(),
            windowed: thresholds.window_seconds().map(WindowedP99::new),
        }
    }

    /// The worst windowed p99 so far (0 when the scenario sets no window).
    pub fn worst_window_p99_ms(&self) -> f64 {
        self.windowed.as_ref().map_or(0.0, WindowedP99::worst_ms)
    }

    /// The next snapshot.
    pub fn next(
        &mut self,
        s: &LoadSnapshot,
        watchdog: WatchdogSnap,
        chaos: Vec<ChaosEventSnap>,
        proxy_cut: u64,
    ) -> Snapshot {
        self.total.merge(&s.latency);
        if let Some(w) = &mut self.windowed {
            w.push(&s.latency);
        }
        let c = &s.connections;
        let m = &s.messages;
        let measured = Measured {
            p50_ms: self.total.percentile_ms(50.0),
            p99_ms: self.total.percentile_ms(99.0),
            p999_ms: self.total.percentile_ms(99.9),
            loss_ratio: s.loss_ratio(),
            duplicated: m.duplicated,
            hangs: watchdog.hangs,
            connect_error_ratio: crate::results::ratio(c.failed, c.attempted),
            worst_window_p99_ms: self.worst_window_p99_ms(),
            target_disconnects: crate::results::target_disconnects(&c.dropped, proxy_cut),
            received: m.received,
            rejected: m.rejected,
        };
        let checked = self.thresholds.evaluate(&measured);
        // A floor (min_received) is judged at the end: no delivery in the
        // first second is no breach yet.
        let breached = checked.iter().any(|t| !t.passed && !t.floor);
        let exit = Exit::of_run(false, watchdog.hangs > 0, breached);
        Snapshot {
            scenario: self.scenario.clone(),
            t_s: s.t_s,
            duration_s: self.duration_s,
            phase: phase_name(s.phase).to_string(),
            target: self.target.clone(),
            connections: ConnectionsSnap {
                open: c.open,
                target: c.target,
                attempted: c.attempted,
                failed: c.failed,
                errors: c.errors.clone(),
                dropped: c.dropped.clone(),
            },
            messages: MessagesSnap {
                sent: m.sent,
                received: m.received,
                sent_per_s: s.sent_per_s(),
                received_per_s: s.received_per_s(),
                lost: m.lost,
                duplicated: m.duplicated,
                reordered: m.reordered,
                loss_ratio: s.loss_ratio(),
                send_lag_ms: s.send_lag_ms,
                overdue: m.overdue,
            },
            latency_ms: latency(&s.latency),
            latency_total_ms: latency(&self.total),
            latency_hdr: s.latency.to_base64(),
            watchdog,
            chaos,
            thresholds: checked
                .into_iter()
                .map(|t| ThresholdSnap {
                    name: t.name,
                    limit: t.limit,
                    actual: t.actual,
                    // A floor is judged at the end: not failing yet.
                    passed: t.passed || t.floor,
                    floor: t.floor,
                })
                .collect(),
            exit_code: exit.code(),
        }
    }
}

/// The snapshot's name of a phase.
pub fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Starting => "starting",
        Phase::Ramp => "ramp",
        Phase::Steady => "steady",
        Phase::Drain => "drain",
        Phase::Done => "done",
    }
}

fn latency(h: &LatencyHistogram) -> LatencySnap {
    LatencySnap {
        count: h.count(),
        p50: h.percentile_ms(50.0),
        p90: h.percentile_ms(90.0),
        p99: h.percentile_ms(99.0),
        p999: h.percentile_ms(99.9),
        max: h.max_ms(),
    }
}
