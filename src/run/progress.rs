//! The headless progress line: one line a second on stderr when there is no
//! TUI (`--no-tui`, or stdout is not a terminal).

use crate::snapshot::Snapshot;

/// One progress line: elapsed, connections, sent/s, received/s, p50, p99,
/// loss, hang state.
pub fn line(s: &Snapshot) -> String {
    let hang = match s.watchdog.hang_for_s {
        Some(for_s) => format!("HUNG {for_s:.1}s"),
        None => s.watchdog.state.clone(),
    };
    format!(
        "[{:>6.1}s/{:.0}s {:<8}] conns {}/{} (failed {}) | sent {:.0}/s recv {:.0}/s | p50 {:.2}ms p99 {:.2}ms | loss {:.4}% dup {} | watchdog {}",
        s.t_s,
        s.duration_s,
        s.phase,
        s.connections.open,
        s.connections.target,
        s.connections.failed,
        s.messages.sent_per_s,
        s.messages.received_per_s,
        s.latency_ms.p50,
        s.latency_ms.p99,
        s.messages.loss_ratio * 100.0,
        s.messages.duplicated,
        hang,
    )
}
