//! Issue 8, "The verdict is true", the load engine's part: a relay cannot
//! hide loss by disconnecting its subscribers (their sockets are `dropped`,
//! by cause, and what they were owed is lost: exactly what the relay itself
//! counted); with reconnect only the gap is lost; what arrives after the
//! drain is `late`, not lost; `overdue` shows loss while it happens; each
//! topic's progress shows which one stalled; plans past the engine's bounds
//! are refused. Real sockets on loopback, against a test relay with
//! known-answer faults (`common::fake`) or the reference relay.

mod common;

use common::fake::{self, Faults};
use common::{plan, relay, run};
use squall_loadgen::{
    Auth, Field, JwtAuth, JwtKey, LoadPlan, LoadSnapshot, Origin, Phase, Placement, PlanError,
    Reconnect, Stage,
};
use squall_relay::config::RelayConfig;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::TcpListener;

/// Tokens with `sub = user-<conn>`, so that the fake relay knows a
/// reconnecting subscriber for the one it kicked.
fn jwt() -> Auth {
    Auth::Jwt(JwtAuth {
        key: JwtKey::HS256("issue-8".to_string()),
        placement: Placement::Query,
        sub_pattern: "user-{conn}".to_string(),
        roles: Vec::new(),
        extra_claims: serde_json::Map::new(),
        ttl: Duration::from_secs(600),
    })
}

/// The base plan for 6 s with tokens: 40 sockets, 4 topics, 8 publishers.
fn six_seconds(url: &str) -> LoadPlan {
    LoadPlan {
        duration: Duration::from_secs(6),
        auth: jwt(),
        ..plan(url)
    }
}

/// What every snapshot's per-topic progress must add up to.
fn assert_topics_add_up(snapshots: &[LoadSnapshot]) {
    for s in snapshots {
        assert_eq!(s.topics.len(), 4, "one entry per topic at {} s", s.t_s);
        let sent: u64 = s.topics.iter().map(|t| t.sent).sum();
        let received: u64 = s.topics.iter().map(|t| t.received).sum();
        assert_eq!(sent, s.messages.sent, "at {} s", s.t_s);
        assert_eq!(received, s.messages.received, "at {} s", s.t_s);
    }
}

/// Some snapshot shows `overdue` grown since the one before, from above 0.
fn overdue_grew(snapshots: &[LoadSnapshot]) -> bool {
    snapshots
        .windows(2)
        .any(|w| w[0].messages.overdue > 0 && w[1].messages.overdue > w[0].messages.overdue)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_8_a_relay_that_kicks_subscribers_cannot_hide_their_loss() {
    // Every 3rd socket kicked at 1.5 s (close 1008), publishers among them;
    // the relay counts what their subscriptions would have received.
    let fake = fake::start(Faults {
        kick: Some((3, Duration::from_millis(1500))),
        ..Faults::default()
    });
    let (report, snapshots) = run(six_seconds(&fake.url)).await;
    let kicked = fake.counts.kicked.load(Ordering::Relaxed);
    let ghosts = fake.counts.ghost_undelivered.load(Ordering::Relaxed);
    assert!(kicked > 0 && ghosts > 0, "kicked {kicked}, ghosts {ghosts}");
    let c = &report.connections;
    assert_eq!(
        c.dropped,
        BTreeMap::from([("close_1008".to_string(), kicked)])
    );
    assert_eq!(c.reconnects, 0);
    // Not excluded: a socket the target ended still owes, so the loss is
    // exactly what the relay did not deliver to the kicked subscribers.
    assert_eq!(report.messages.subscribers_excluded, 0);
    let loss = report.loss();
    assert_eq!(loss.publishers_excluded, 0, "{loss:?}");
    assert_eq!(loss.lost, ghosts, "{loss:?}");
    assert_eq!(report.messages.late, 0);
    // Loss shows while it happens: overdue grows while they are starved,
    // and at the end it is a lower bound of what was lost.
    assert!(overdue_grew(&snapshots), "{:?}", overdue(&snapshots));
    let last = snapshots.last().unwrap();
    assert_eq!(last.phase, Phase::Done);
    assert!(
        last.messages.overdue > 0 && last.messages.overdue <= loss.lost,
        "overdue {} lost {}",
        last.messages.overdue,
        loss.lost
    );
    // Everything owed was due by the end: `due` ends at `expected`.
    assert_eq!(last.messages.due, loss.expected);
    assert_eq!(last.connections.dropped, c.dropped);
}

fn overdue(snapshots: &[LoadSnapshot]) -> Vec<(f64, u64)> {
    snapshots
        .iter()
        .map(|s| (s.t_s, s.messages.overdue))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_8_with_reconnect_only_the_gap_is_lost() {
    let fake = fake::start(Faults {
        kick: Some((3, Duration::from_millis(1500))),
        ..Faults::default()
    });
    let mut plan = six_seconds(&fake.url);
    plan.reconnect = Some(Reconnect {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(1),
    });
    let (report, _) = run(plan).await;
    let kicked = fake.counts.kicked.load(Ordering::Relaxed);
    // The relay's ghosts count only what was broadcast while each kicked
    // user was away (its resubscription ends the ghost).
    let gap = fake.counts.ghost_undelivered.load(Ordering::Relaxed);
    assert!(kicked > 0);
    let c = &report.connections;
    assert_eq!(c.attempted, 40, "reconnects are not new attempts");
    assert_eq!(
        c.dropped,
        BTreeMap::from([("close_1008".to_string(), kicked)])
    );
    assert_eq!(c.reconnects, kicked, "{:?}", c.errors);
    assert_eq!(c.reconnect.count(), kicked);
    assert!(c.reconnect.min_ms() > 0.0);
    // The pairs went on: only the gap is lost, exactly.
    let loss = report.loss();
    assert_eq!(report.messages.subscribers_excluded, 0);
    assert_eq!(loss.publishers_excluded, 0, "{loss:?}");
    assert_eq!(loss.lost, gap, "{loss:?}");
    // Kicked publishers sent what fell due while they were away.
    assert_eq!(report.messages.sent, report.messages.scheduled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_8_deliveries_after_the_drain_are_late_not_lost() {
    // Every delivery held 1.5 s: the last 0.5 s of messages arrive after
    // the 1 s drain.
    let held = |drain_max: Duration| {
        let fake = fake::start(Faults {
            hold: Duration::from_millis(1500),
            ..Faults::default()
        });
        let plan = LoadPlan {
            connections: 10,
            ramp: Duration::ZERO,
            topics: 2,
            publishers: 2,
            rate: 100.0,
            duration: Duration::from_secs(3),
            drain: Duration::from_secs(1),
            drain_max,
            ..plan(&fake.url)
        };
        (fake, plan)
    };
    let (_fake, plan) = held(Duration::from_secs(10));
    let (report, snapshots) = run(plan).await;
    let loss = report.loss();
    assert!(loss.expected > 500, "{loss:?}");
    assert_eq!(loss.lost, 0, "late is not lost: {loss:?}");
    let late = report.messages.late;
    assert!(late > 0, "{:?}", report.messages);
    assert_eq!(report.late_latency.count(), late);
    assert!(
        report.late_latency.min_ms() >= 1000.0,
        "scheduled before the end of publishing, arrived after the drain: {:?}",
        report.late_latency
    );
    assert_eq!(report.messages.out_of_window, 0);
    assert_eq!(snapshots.last().unwrap().messages.late, late);
    // The drain ended once deliveries stopped, not at drain_max.
    assert!(report.duration_s < 3.0 + 10.0, "{}", report.duration_s);
    // Without the extension (drain_max = drain) the same backlog is lost
    // (but for a delivery read in the very poll that ends the run, which
    // did arrive after the drain: late).
    let (_fake, plan) = held(Duration::from_secs(1));
    let (report, _) = run(plan).await;
    let lost = report.loss().lost;
    assert!(
        lost > 10 * report.messages.late.max(1),
        "lost {lost}, {:?}",
        report.messages
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_8_a_starved_topic_shows_in_overdue_and_in_its_own_progress() {
    let fake = fake::start(Faults {
        stall: Some(("topic-0".to_string(), Duration::from_millis(1500))),
        ..Faults::default()
    });
    let (report, snapshots) = run(six_seconds(&fake.url)).await;
    let stalled = fake.counts.stalled.load(Ordering::Relaxed);
    let loss = report.loss();
    assert!(stalled > 0);
    assert_eq!(loss.lost, stalled, "{loss:?}");
    assert!(report.connections.dropped.is_empty());
    assert_topics_add_up(&snapshots);
    // 40 sockets on 4 topics: 10 acknowledged subscribers each while it runs.
    let steady = snapshots
        .iter()
        .find(|s| s.phase == Phase::Steady && s.t_s >= 2.0)
        .expect("a steady snapshot");
    assert!(
        steady.topics.iter().all(|t| t.subscribers == 10),
        "{:?}",
        steady.topics
    );
    // From 1.5 s topic-0 receives nothing while it is still published on;
    // the other topics go on.
    let at_3s = snapshots
        .iter()
        .find(|s| s.t_s >= 3.0)
        .expect("a snapshot at 3 s");
    let last = snapshots.last().unwrap();
    assert_eq!(last.topics[0].received, at_3s.topics[0].received);
    for k in 1..4 {
        assert!(
            last.topics[k].received > at_3s.topics[k].received,
            "topic {k}"
        );
    }
    for k in 0..4 {
        assert!(last.topics[k].sent > at_3s.topics[k].sent, "topic {k}");
    }
    assert!(
        last.topics.iter().all(|t| t.subscribers == 0),
        "all closed at the end"
    );
    // Overdue grows while topic-0's subscribers are starved.
    assert!(overdue_grew(&snapshots), "{:?}", overdue(&snapshots));
    assert!(last.messages.overdue > 0 && last.messages.overdue <= loss.lost);
    assert_eq!(last.messages.due, loss.expected);
}

/// Upgrades every socket, then after 500 ms ends it without a closing
/// handshake: a TCP reset for even connections, a FIN for odd ones.
async fn cutting_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut id = 0u64;
        while let Ok((s, _)) = listener.accept().await {
            let reset = id.is_multiple_of(2);
            id += 1;
            tokio::spawn(async move {
                let Ok(ws) = tokio_tungstenite::accept_async(s).await else {
                    return;
                };
                tokio::time::sleep(Duration::from_millis(500)).await;
                if reset {
                    socket2::SockRef::from(ws.get_ref())
                        .set_linger(Some(Duration::ZERO))
                        .unwrap();
                }
                drop(ws);
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_8_resets_and_ends_of_stream_are_drops_by_cause() {
    let addr = cutting_server().await;
    let plan = LoadPlan {
        connections: 6,
        ramp: Duration::ZERO,
        publishers: 0,
        subscriptions_per_connection: 0,
        duration: Duration::from_secs(2),
        drain: Duration::from_millis(200),
        ..plan(&format!("ws://{addr}/ws"))
    };
    let (report, snapshots) = run(plan).await;
    assert_eq!(report.connections.established, 6, "{report:?}");
    assert_eq!(
        report.connections.dropped,
        BTreeMap::from([("eof".to_string(), 3), ("reset".to_string(), 3)])
    );
    assert_eq!(
        snapshots.last().unwrap().connections.dropped,
        report.connections.dropped
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_8_a_clean_run_drops_nothing_owes_nothing_overdue_and_ends_when_quiet() {
    let relay = relay(RelayConfig::default());
    let (report, snapshots) = run(plan(&relay.url)).await;
    let loss = report.loss();
    assert_eq!(loss.lost, 0, "{loss:?}");
    // squall closing its own sockets at the end is not a drop.
    assert!(
        report.connections.dropped.is_empty(),
        "{:?}",
        report.connections
    );
    assert_eq!(report.messages.late, 0);
    assert_topics_add_up(&snapshots);
    let last = snapshots.last().unwrap();
    assert_eq!(last.messages.overdue, 0);
    assert_eq!(last.messages.due, loss.expected);
    // Default drain_max 10 s: the drain ended once deliveries stopped.
    assert!(report.duration_s < 5.0 + 10.0, "{}", report.duration_s);
    // Ctrl-C is squall's own doing too.
    let mut long = plan(&relay.url);
    long.duration = Duration::from_secs(60);
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let _ = stop_tx.send(true);
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
    let report = squall_loadgen::run(long, Origin::now(), stop, tx)
        .await
        .unwrap();
    assert!(!report.complete);
    assert!(
        report.connections.dropped.is_empty(),
        "{:?}",
        report.connections
    );
    assert_eq!(report.loss().lost, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_8_plans_past_the_engines_bounds_are_refused_before_anything_runs() {
    let ok = plan("ws://127.0.0.1:9/ws");
    let refused = |change: &dyn Fn(&mut LoadPlan)| {
        let mut plan = ok.clone();
        change(&mut plan);
        plan.check().unwrap_err()
    };
    let e = refused(&|p| p.rate = 1e308);
    assert!(matches!(e, PlanError::RateTooHigh { .. }), "{e}");
    assert_eq!(e.field(), Field::Rate);
    assert!(e.to_string().contains("10000000"), "{e}");
    let e = refused(&|p| p.connections = 10_000_001);
    assert_eq!(e.field(), Field::Connections);
    let e = refused(&|p| {
        p.stages = vec![Stage {
            duration: Duration::from_secs(1),
            rate: None,
            connections: Some(100_000_000),
        }]
    });
    assert_eq!(e.field(), Field::Connections);
    assert!(e.to_string().contains("stage 1"), "{e}");
    assert_eq!(refused(&|p| p.topics = 2_000_000).field(), Field::Topics);
    assert_eq!(
        refused(&|p| p.drain_max = Duration::from_secs(7200)).field(),
        Field::DrainMax
    );
    assert_eq!(
        refused(&|p| p.reconnect = Some(Reconnect {
            initial: Duration::ZERO,
            max: Duration::from_secs(1),
        }))
        .field(),
        Field::Reconnect
    );
    // The engine itself refuses it at once: no connection, no snapshot.
    let mut plan = ok.clone();
    plan.rate = 1e308;
    let (_stop, stop) = tokio::sync::watch::channel(false);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let e = squall_loadgen::run(plan, Origin::now(), stop, tx)
        .await
        .unwrap_err();
    assert_eq!(e.field(), Field::Rate);
    assert!(rx.recv().await.is_none());
}

/// A metric's value in the relay's `/metrics` text (0 when absent).
async fn relay_metric(ws_url: &str, name: &str) -> u64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = ws_url
        .trim_start_matches("ws://")
        .trim_end_matches("/ws")
        .to_string();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_8_the_reference_relays_kick_every_loss_equals_its_own_count() {
    let relay = common::relay_with_bug("kick-every=3@1500ms");
    let (report, _) = run(six_seconds(&relay.url)).await;
    let kicked = relay_metric(&relay.url, "squall_relay_kicked_total").await;
    let undelivered = relay_metric(&relay.url, "squall_relay_kicked_undelivered_total").await;
    assert!(kicked > 0 && undelivered > 0, "{kicked} {undelivered}");
    assert_eq!(
        report.connections.dropped,
        BTreeMap::from([("close_1008".to_string(), kicked)])
    );
    let loss = report.loss();
    assert_eq!(loss.publishers_excluded, 0, "{loss:?}");
    assert_eq!(loss.lost, undelivered, "{loss:?}");
}
