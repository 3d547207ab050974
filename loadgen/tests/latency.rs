//! Known latency (issue 3): against a relay that holds every delivery for
//! 300 ms once every 2 s, the reported p99 is within 15% of 300 ms and the
//! maximum at least 300 ms. Its own test binary, so that no other test
//! shares the two cores while latency is measured.

mod common;

use common::{plan, relay_with_bug, run};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_periodic_300_ms_stall_shows_in_p99_and_max() {
    let relay = relay_with_bug("stall=300/2");
    let mut plan = plan(&relay.url);
    plan.duration = Duration::from_secs(9);
    let (report, snapshots) = run(plan).await;
    assert!(report.complete);
    assert_eq!(report.loss().lost, 0, "a stall delays, it does not lose");
    let p99 = report.latency.percentile_ms(99.0);
    let max = report.latency.max_ms();
    assert!((255.0..=345.0).contains(&p99), "p99 {p99} ms");
    assert!(max >= 300.0, "max {max} ms");
    // The median message is not stalled: a loopback relay delivers in a few ms.
    assert!(
        report.latency.percentile_ms(50.0) < 50.0,
        "{:?}",
        report.latency
    );
    // The stall shows in the interval histograms too, in at least three seconds.
    let stalled = snapshots
        .iter()
        .filter(|s| s.latency.max_ms() >= 200.0)
        .count();
    assert!(stalled >= 3, "{stalled} snapshots saw the stall");
}
