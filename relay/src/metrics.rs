//! The relay's counters and their Prometheus text rendering.
//!
//! Counters are relaxed atomics: each is an independent tally, read only for
//! display. Gauges (open connections, topics, subscriptions, queued messages)
//! are not stored here but read from the registry at render time, so they can
//! never drift from the state they describe.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Why an HTTP request was refused before any upgrade (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// No token in the query or the Authorization header.
    MissingToken,
    /// Not a JWT, or a claim missing or of the wrong type.
    Malformed,
    /// `alg: none` or an algorithm that is not configured.
    WrongAlgorithm,
    /// The signature does not verify.
    BadSignature,
    /// `exp` is past (beyond the leeway).
    Expired,
    /// A valid token without the required role (HTTP 403).
    Forbidden,
    /// `--max-connections` reached, or the relay is shutting down (HTTP 503).
    Unavailable,
    /// Not a valid WebSocket upgrade nor a known route.
    BadRequest,
    /// The request head was too large or too slow (slowloris).
    BadHead,
    /// The TLS handshake failed, was reset, or did not finish within the
    /// head timeout (`--tls-cert`).
    TlsHandshake,
}

impl Rejection {
    const ALL: [Rejection; 10] = [
        Rejection::MissingToken,
        Rejection::Malformed,
        Rejection::WrongAlgorithm,
        Rejection::BadSignature,
        Rejection::Expired,
        Rejection::Forbidden,
        Rejection::Unavailable,
        Rejection::BadRequest,
        Rejection::BadHead,
        Rejection::TlsHandshake,
    ];

    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Rejection::MissingToken => "missing_token",
            Rejection::Malformed => "malformed_token",
            Rejection::WrongAlgorithm => "wrong_algorithm",
            Rejection::BadSignature => "bad_signature",
            Rejection::Expired => "expired",
            Rejection::Forbidden => "forbidden",
            Rejection::Unavailable => "unavailable",
            Rejection::BadRequest => "bad_request",
            Rejection::BadHead => "bad_head",
            Rejection::TlsHandshake => "tls_handshake",
        }
    }
}

/// How a connection ended without a closing handshake (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbnormalEnd {
    /// A TCP reset (or a broken pipe) with no Close frame.
    Reset,
    /// The peer closed its TCP side with no Close frame.
    Eof,
    /// Silent for longer than the idle timeout.
    Timeout,
    /// Any other transport or protocol error.
    Error,
}

impl AbnormalEnd {
    const ALL: [AbnormalEnd; 4] = [
        AbnormalEnd::Reset,
        AbnormalEnd::Eof,
        AbnormalEnd::Timeout,
        AbnormalEnd::Error,
    ];

    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            AbnormalEnd::Reset => "reset",
            AbnormalEnd::Eof => "eof",
            AbnormalEnd::Timeout => "timeout",
            AbnormalEnd::Error => "error",
        }
    }

    /// True for the ends the `*-on-reset` bugs react to: the peer vanished
    /// without a closing handshake.
    pub fn is_reset_like(self) -> bool {
        matches!(self, AbnormalEnd::Reset | AbnormalEnd::Eof)
    }
}

/// Every counter of the relay.
#[derive(Debug, Default)]
pub struct Metrics {
    /// WebSocket upgrades completed.
    pub accepted: AtomicU64,
    /// Requests refused before an upgrade, by [`Rejection`].
    rejected: [AtomicU64; Rejection::ALL.len()],
    /// Connections ended by a completed closing handshake.
    pub closed_cleanly: AtomicU64,
    /// Connections ended without a closing handshake, by [`AbnormalEnd`].
    ended_abnormally: [AtomicU64; AbnormalEnd::ALL.len()],
    /// Client frames received.
    pub messages_in: AtomicU64,
    /// Frames queued to clients (deliveries and replies).
    pub messages_out: AtomicU64,
    /// Client payload bytes received.
    pub bytes_in: AtomicU64,
    /// Payload bytes queued to clients.
    pub bytes_out: AtomicU64,
    /// Deliveries not queued because the subscriber's queue was full or closed.
    pub deliveries_dropped: AtomicU64,
    /// Consumers closed with 1013 because their queue was full.
    pub slow_consumers: AtomicU64,
    /// Frames answered with `rate_limited`.
    pub rate_limited: AtomicU64,
    /// `/health` requests answered.
    pub health_checks: AtomicU64,
    /// Connections closed by `--bug kick-every`.
    pub kicked: AtomicU64,
    /// Deliveries owed to kicked connections' ghost subscriptions, not sent.
    pub kicked_undelivered: AtomicU64,
    /// Deliveries withheld on the stalled topic by `--bug stall-topic`.
    pub stalled_deliveries: AtomicU64,
    /// WebSocket upgrades left unanswered by `--bug accept-stall`.
    pub stalled_upgrades: AtomicU64,
    /// `/health` requests delayed by `--bug slow-health`.
    pub health_delayed: AtomicU64,
}

/// What the bugs show in `/metrics` beyond their counters: the facts a test
/// needs to know the true answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BugFacts<'a> {
    /// `--bug stall-topic`: the topic that stalls, once one was subscribed
    /// to (the `topic` label of `squall_relay_stalled_deliveries_total`).
    pub stalled_topic: Option<&'a str>,
    /// `--bug exit-after`: when the process exits, counted from its start.
    pub exit_after: Option<Duration>,
}

/// Gauges read from the registry at render time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gauges {
    /// Connections in the registry.
    pub connections: usize,
    /// Topics known (with or without subscribers).
    pub topics: usize,
    /// (connection, topic) subscriptions.
    pub subscriptions: usize,
    /// Messages waiting in outbound queues.
    pub queued: usize,
    /// Subscriptions of connections kicked by `--bug kick-every`, kept as
    /// ghosts (not counted in `subscriptions`).
    pub ghost_subscriptions: usize,
}

impl Metrics {
    /// Counts one refused request.
    pub fn reject(&self, why: Rejection) {
        let i = Rejection::ALL
            .iter()
            .position(|r| *r == why)
            .expect("every rejection is listed");
        self.rejected[i].fetch_add(1, Relaxed);
    }

    /// Counts one connection that ended without a closing handshake.
    pub fn end_abnormally(&self, why: AbnormalEnd) {
        let i = AbnormalEnd::ALL
            .iter()
            .position(|r| *r == why)
            .expect("every end is listed");
        self.ended_abnormally[i].fetch_add(1, Relaxed);
    }

    /// Renders everything in the Prometheus text exposition format.
    pub fn render(&self, gauges: Gauges, bugs: BugFacts<'_>, uptime_s: f64) -> String {
        let mut out = String::with_capacity(4096);
        let mut gauge = |name: &str, help: &str, value: f64| {
            let _ = writeln!(
                out,
                "# HELP squall_relay_{name} {help}\n# TYPE squall_relay_{name} gauge\nsquall_relay_{name} {value}"
            );
        };
        gauge(
            "connections_open",
            "WebSocket connections open now.",
            gauges.connections as f64,
        );
        gauge("topics", "Topics known to the relay.", gauges.topics as f64);
        gauge(
            "subscriptions",
            "Subscriptions (connection, topic) now.",
            gauges.subscriptions as f64,
        );
        gauge(
            "outbound_queued",
            "Messages waiting in outbound queues.",
            gauges.queued as f64,
        );
        gauge(
            "ghost_subscriptions",
            "Subscriptions left behind by connections that --bug kick-every closed.",
            gauges.ghost_subscriptions as f64,
        );
        gauge(
            "uptime_seconds",
            "Seconds since the relay started.",
            uptime_s,
        );
        if let Some(at) = bugs.exit_after {
            gauge(
                "exit_after_seconds",
                "--bug exit-after: seconds after start at which the process exits with status 70.",
                at.as_secs_f64(),
            );
        }
        let counters: [(&str, &str, &AtomicU64); 14] = [
            (
                "connections_accepted_total",
                "WebSocket upgrades completed.",
                &self.accepted,
            ),
            (
                "connections_closed_cleanly_total",
                "Connections ended by a closing handshake.",
                &self.closed_cleanly,
            ),
            (
                "messages_in_total",
                "Client frames received.",
                &self.messages_in,
            ),
            (
                "messages_out_total",
                "Frames queued to clients (deliveries and replies).",
                &self.messages_out,
            ),
            (
                "bytes_in_total",
                "Client frame bytes received.",
                &self.bytes_in,
            ),
            (
                "bytes_out_total",
                "Frame bytes queued to clients.",
                &self.bytes_out,
            ),
            (
                "deliveries_dropped_total",
                "Deliveries not queued (queue full or closed).",
                &self.deliveries_dropped,
            ),
            (
                "slow_consumers_disconnected_total",
                "Consumers closed with 1013 because their queue was full.",
                &self.slow_consumers,
            ),
            (
                "rate_limited_total",
                "Frames refused by the per-connection rate limit.",
                &self.rate_limited,
            ),
            (
                "health_checks_total",
                "/health requests answered.",
                &self.health_checks,
            ),
            (
                "kicked_total",
                "Connections closed with 1008 kicked by --bug kick-every.",
                &self.kicked,
            ),
            (
                "kicked_undelivered_total",
                "Deliveries owed to kicked connections (ghost subscriptions), not sent.",
                &self.kicked_undelivered,
            ),
            (
                "stalled_upgrades_total",
                "WebSocket upgrades left unanswered by --bug accept-stall.",
                &self.stalled_upgrades,
            ),
            (
                "health_delayed_total",
                "/health requests delayed by --bug slow-health.",
                &self.health_delayed,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP squall_relay_{name} {help}\n# TYPE squall_relay_{name} counter\nsquall_relay_{name} {}",
                value.load(Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP squall_relay_connections_rejected_total Requests refused before the upgrade, by reason.\n# TYPE squall_relay_connections_rejected_total counter"
        );
        for (why, n) in Rejection::ALL.iter().zip(&self.rejected) {
            let _ = writeln!(
                out,
                "squall_relay_connections_rejected_total{{reason=\"{}\"}} {}",
                why.label(),
                n.load(Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP squall_relay_connections_ended_without_close_total Connections ended without a closing handshake, by reason.\n# TYPE squall_relay_connections_ended_without_close_total counter"
        );
        for (why, n) in AbnormalEnd::ALL.iter().zip(&self.ended_abnormally) {
            let _ = writeln!(
                out,
                "squall_relay_connections_ended_without_close_total{{reason=\"{}\"}} {}",
                why.label(),
                n.load(Relaxed)
            );
        }
        // No label until a topic was picked: in Prometheus an empty label is
        // the same series as no label.
        let topic = bugs
            .stalled_topic
            .map(|t| format!("{{topic=\"{}\"}}", escape_label(t)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "# HELP squall_relay_stalled_deliveries_total Deliveries withheld on the topic that --bug stall-topic stalls.\n# TYPE squall_relay_stalled_deliveries_total counter\nsquall_relay_stalled_deliveries_total{topic} {}",
            self.stalled_deliveries.load(Relaxed)
        );
        out
    }
}

/// A label value as the text format wants it: `\`, `"` and newlines escaped.
fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stalled_deliveries_carry_the_topic_label_once_known() {
        let metrics = Metrics::default();
        metrics.stalled_deliveries.fetch_add(3, Relaxed);
        let text = metrics.render(Gauges::default(), BugFacts::default(), 1.0);
        assert!(
            text.contains("\nsquall_relay_stalled_deliveries_total 3\n"),
            "{text}"
        );
        assert!(!text.contains("exit_after_seconds"), "{text}");
        let bugs = BugFacts {
            stalled_topic: Some("a\"b\\c\nd"),
            exit_after: Some(Duration::from_millis(2500)),
        };
        let text = metrics.render(Gauges::default(), bugs, 1.0);
        assert!(
            text.contains("\nsquall_relay_stalled_deliveries_total{topic=\"a\\\"b\\\\c\\nd\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("\nsquall_relay_exit_after_seconds 2.5\n"),
            "{text}"
        );
        for counter in [
            "kicked_total",
            "kicked_undelivered_total",
            "stalled_upgrades_total",
            "health_delayed_total",
        ] {
            assert!(
                text.contains(&format!("\nsquall_relay_{counter} 0\n")),
                "{counter}"
            );
        }
    }
}
