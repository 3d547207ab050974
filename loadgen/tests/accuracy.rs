//! Known answers against the reference relay (issue 3, "Accuracy tests"):
//! no fault → no loss and no duplicates; `drop-every=100` → 1.00% loss;
//! `dup-every=N` → exactly the duplicates the relay made; shards run apart
//! and merged account exactly.

mod common;

use common::{plan, relay, relay_with_bug, run, run_from};
use squall_loadgen::{LoadReport, Origin, Phase, Stage};
use squall_relay::config::RelayConfig;
use std::time::Duration;

/// Checks what holds for every clean run of the base plan.
fn assert_ran_fully(report: &LoadReport) {
    assert!(report.complete);
    assert_eq!(report.connections.attempted, 40, "{report:?}");
    assert_eq!(
        report.connections.established, 40,
        "{:?}",
        report.connections.errors
    );
    assert!(
        report.connections.errors.is_empty(),
        "{:?}",
        report.connections.errors
    );
    assert_eq!(
        report.messages.sent, report.messages.scheduled,
        "every scheduled message left"
    );
    assert!(report.messages.sent > 1500, "{:?}", report.messages);
    assert_eq!(report.loss().publishers_excluded, 0);
    assert_eq!(report.messages.subscribers_excluded, 0);
    assert_eq!(report.messages.echo_absent, 0, "the reference relay echoes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_fault_nothing_is_lost_or_duplicated() {
    let relay = relay(RelayConfig::default());
    let (report, snapshots) = run(plan(&relay.url)).await;
    assert_ran_fully(&report);
    let loss = report.loss();
    assert!(loss.expected > 15_000, "{loss:?}");
    assert_eq!(loss.lost, 0, "{loss:?}");
    assert_eq!(loss.received, loss.expected);
    assert_eq!(report.messages.duplicated, 0);
    assert_eq!(report.messages.reordered, 0);
    assert_eq!(report.messages.unexpected, 0);
    // 10 subscribers per topic, some not yet subscribed during the ramp.
    assert!(report.messages.received >= loss.expected);
    assert!(report.messages.received <= report.messages.sent * 10);
    assert_eq!(report.latency.count(), report.messages.received);
    assert_eq!(report.send_lag.count(), report.messages.sent);
    assert_eq!(report.connections.handshake.count(), 40);
    // Snapshots: about one a second, the last one Done, the intervals adding up.
    assert!(
        (6..=9).contains(&snapshots.len()),
        "{} snapshots",
        snapshots.len()
    );
    assert_eq!(snapshots.last().unwrap().phase, Phase::Done);
    let received: u64 = snapshots.iter().map(|s| s.messages.received_interval).sum();
    assert_eq!(received, report.messages.received);
    let sampled: u64 = snapshots.iter().map(|s| s.latency.count()).sum();
    assert_eq!(sampled, report.latency.count());
    assert!(snapshots.iter().any(|s| s.phase == Phase::Steady));
    assert_eq!(snapshots.last().unwrap().messages.lost, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_every_100_reports_one_percent_loss() {
    let relay = relay_with_bug("drop-every=100");
    let (report, _) = run(plan(&relay.url)).await;
    assert_ran_fully(&report);
    let loss = report.loss();
    let percent = loss.loss_ratio * 100.0;
    assert!((percent - 1.0).abs() <= 0.05, "loss {percent}% ({loss:?})");
    assert_eq!(report.messages.duplicated, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dup_every_n_reports_exactly_the_duplicates_made() {
    let relay = relay_with_bug("dup-every=50");
    let (report, _) = run(plan(&relay.url)).await;
    assert_ran_fully(&report);
    let m = &report.messages;
    // The relay counts deliveries and repeats every 50th: originals / 50 duplicates.
    let originals = m.received - m.duplicated;
    assert_eq!(m.duplicated, originals / 50, "{m:?}");
    let loss = report.loss();
    assert_eq!(loss.lost, 0);
    assert!(originals >= loss.expected && originals <= m.sent * 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shards_merged_account_like_one_run() {
    let lossy = relay_with_bug("drop-every=100");
    let whole = plan(&lossy.url);
    let origin = Origin::now();
    let (a, b) = tokio::join!(
        run_from(whole.shard(0, 2), origin),
        run_from(whole.shard(1, 2), origin)
    );
    let (a, b) = (a.0, b.0);
    assert_eq!(a.connections.attempted + b.connections.attempted, 40);
    // Each shard alone cannot account for the publishers of the other one.
    assert!(a.loss().publishers_excluded > 0 && b.loss().publishers_excluded > 0);
    let mut merged = a.clone();
    merged.merge(&b);
    assert_eq!(merged.shards, 2);
    assert_ran_fully(&merged);
    let loss = merged.loss();
    let percent = loss.loss_ratio * 100.0;
    assert!(
        (percent - 1.0).abs() <= 0.05,
        "merged loss {percent}% ({loss:?})"
    );
    assert_eq!(merged.messages.sent, a.messages.sent + b.messages.sent);
    assert_eq!(
        merged.messages.received,
        a.messages.received + b.messages.received
    );
    assert_eq!(
        merged.latency.count(),
        a.latency.count() + b.latency.count()
    );
    // The schedule is a pure function of the plan: the same as one whole run's.
    let clean = relay(RelayConfig::default());
    let (one, _) = run(plan(&clean.url)).await;
    assert_eq!(merged.messages.scheduled, one.messages.scheduled);
    assert_eq!(merged.messages.sent, one.messages.sent);
    // And the merge survives serialization (worker processes send JSON).
    let json = serde_json::to_string(&a).unwrap();
    let mut again: LoadReport = serde_json::from_str(&json).unwrap();
    again.merge(&b);
    assert_eq!(again.loss(), merged.loss());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stages_close_sockets_and_leave_them_out_of_the_loss() {
    let relay = relay(RelayConfig::default());
    let mut plan = plan(&relay.url);
    plan.ramp = Duration::from_secs(2);
    plan.stages = vec![
        Stage {
            duration: Duration::from_secs(1),
            rate: Some(800.0),
            connections: None,
        },
        Stage {
            duration: Duration::from_secs(1),
            rate: None,
            connections: Some(20),
        },
    ];
    let (report, snapshots) = run(plan).await;
    assert!(report.complete);
    assert!(
        report.connections.errors.is_empty(),
        "{:?}",
        report.connections.errors
    );
    assert_eq!(report.connections.established, 40);
    // Connections 20..40 closed as planned: their 20 subscriptions do not count.
    assert_eq!(report.messages.subscribers_excluded, 20);
    assert_eq!(report.messages.sent, report.messages.scheduled);
    let loss = report.loss();
    assert_eq!(loss.publishers_excluded, 0);
    assert!(loss.expected > 5_000, "{loss:?}");
    assert_eq!(loss.lost, 0, "{loss:?}");
    let phases: Vec<Phase> = snapshots.iter().map(|s| s.phase).collect();
    assert!(
        phases.contains(&Phase::Ramp) && phases.contains(&Phase::Drain),
        "{phases:?}"
    );
    let at_4s = snapshots
        .iter()
        .find(|s| s.t_s >= 4.0 && s.t_s < 5.0)
        .expect("a snapshot at 4 s");
    assert_eq!(at_4s.connections.target, 20);
    assert_eq!(at_4s.connections.open, 20);
}
