//! The headless progress line: one line a second on stderr when there is no
//! TUI (`--no-tui`, or stdout is not a terminal).

use crate::snapshot::Snapshot;

/// One progress line, every number labelled: where the run stands (never
/// past its plan: the drain shows as `drain +Ns`), sockets, rates, latency
/// of the last second, loss so far and overdue deliveries, duplicates, the
/// watchdog.
pub fn line(s: &Snapshot) -> String {
    let hang = match s.watchdog.hang_for_s {
        Some(for_s) => format!("HUNG {for_s:.1}s"),
        None => s.watchdog.state.clone(),
    };
    let at = if s.t_s > s.duration_s {
        format!(
            "{:.0}s/{:.0}s drain +{:.1}s",
            s.duration_s,
            s.duration_s,
            s.t_s - s.duration_s
        )
    } else {
        format!("{:.1}s/{:.0}s {}", s.t_s, s.duration_s, s.phase)
    };
    let dropped: u64 = s.connections.dropped.values().sum();
    format!(
        "[{at}] conns open {}/{} failed {} dropped {dropped} | sent {:.0}/s recv {:.0}/s | last 1s p50 {:.2}ms p99 {:.2}ms | lost {} ({:.4}%) overdue {} dup {} | watchdog {}",
        s.connections.open,
        s.connections.target,
        s.connections.failed,
        s.messages.sent_per_s,
        s.messages.received_per_s,
        s.latency_ms.p50,
        s.latency_ms.p99,
        s.messages.lost,
        s.messages.loss_ratio * 100.0,
        s.messages.overdue,
        s.messages.duplicated,
        hang,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_every_number_and_never_shows_time_past_the_plan() {
        let mut s = Snapshot {
            t_s: 17.0,
            duration_s: 15.0,
            phase: "drain".into(),
            ..Default::default()
        };
        s.messages.overdue = 42;
        let l = line(&s);
        assert!(l.starts_with("[15s/15s drain +2.0s]"), "{l}");
        assert!(l.contains("overdue 42") && l.contains("conns open"), "{l}");
        s.t_s = 3.5;
        s.phase = "steady".into();
        assert!(line(&s).starts_with("[3.5s/15s steady]"));
    }
}
