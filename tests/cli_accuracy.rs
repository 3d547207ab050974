//! Issue 3: known-answer accuracy tests through the real binary against the builtin
//! relay with its deliberate bugs: loss 1.00% ± 0.05 points with
//! `drop-every=100`, duplicates exact with `dup-every=N`, p99 near 300 ms
//! with `stall=300/2`, and nothing lost or duplicated without a fault.
//! Each run is a few seconds; they run one at a time so that one run's load
//! does not disturb another's latency.

mod common;

use common::{Scratch, f, run_scenario, u};
use serde_json::Value;
use std::sync::Mutex;
use std::time::Duration;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
const LIMIT: Duration = Duration::from_secs(60);

/// 100 sockets over 10 topics (10 subscribers each), 20 publishers at
/// 1,000 msg/s in all: 10,000 deliveries a second.
fn scenario(name: &str, bugs: &str, seconds: u64) -> String {
    format!(
        "name = \"{name}\"\nduration = \"{seconds}s\"\ndrain = \"2s\"\n\
         [target]\nkind = \"builtin\"\nbugs = [{bugs}]\n[auth]\nsecret = \"s3cret\"\n\
         [load]\nconnections = 100\nramp = \"1s\"\ntopics = 10\npublishers = 20\nrate = 1000\npayload_bytes = 128\n"
    )
}

fn measure(name: &str, bugs: &str, seconds: u64, extra: &[&str]) -> Value {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let s = Scratch::new(name);
    let file = s.scenario(name, &scenario(name, bugs, seconds));
    let (out, results) = run_scenario(&s, &file, extra, LIMIT);
    assert_eq!(results["complete"], true, "{}", out.stderr);
    assert_eq!(u(&results, "/connections/failed"), 0, "{}", out.stderr);
    assert!(
        u(&results, "/messages/expected") > 10_000,
        "enough deliveries to judge: {results:#}"
    );
    results
}

#[test]
fn no_fault_means_no_loss_and_no_duplicates() {
    let r = measure("clean", "", 5, &[]);
    assert_eq!(u(&r, "/messages/lost"), 0, "{r:#}");
    assert_eq!(u(&r, "/messages/duplicated"), 0);
    assert_eq!(f(&r, "/messages/loss_ratio"), 0.0);
    assert_eq!(r["exit_code"], 0);
    assert_eq!(r["passed"], true);
    assert_eq!(r["settings"]["auth"]["secret"], "<redacted>");
}

#[test]
fn drop_every_100_is_measured_as_one_percent_loss() {
    let r = measure("drop", "\"drop-every=100\"", 5, &[]);
    let loss = f(&r, "/messages/loss_ratio") * 100.0;
    assert!(
        (loss - 1.0).abs() <= 0.05,
        "loss {loss:.4}% is not 1.00% ± 0.05: {:#}",
        r["messages"]
    );
    assert_eq!(u(&r, "/messages/duplicated"), 0);
}

#[test]
fn dup_every_n_is_counted_exactly() {
    // The relay sends its n-th delivery twice whenever n is a multiple of 50:
    // of D original deliveries, D / 50 are doubled, so every received frame
    // R = D + D / 50 and duplicated = (R - duplicated) / 50 exactly.
    let r = measure("dup", "\"dup-every=50\"", 5, &[]);
    let received = u(&r, "/messages/received");
    let duplicated = u(&r, "/messages/duplicated");
    assert!(duplicated > 0);
    assert_eq!(
        duplicated,
        (received - duplicated) / 50,
        "{:#}",
        r["messages"]
    );
    assert_eq!(u(&r, "/messages/lost"), 0, "duplicates are not losses");
}

#[test]
fn stall_300_every_2s_shows_in_p99_and_max() {
    // Deliveries are held for 300 ms once every 2 s: 15% of messages wait,
    // the most delayed 1% of all of them waits 280..300 ms.
    // The windowed threshold sees every stall: each 2 s window holds one.
    let window = "thresholds.p99_ms_window={ limit = 100, window = \"2s\" }";
    let r = measure("stall", "\"stall=300/2\"", 7, &["--set", window]);
    let p99 = f(&r, "/latency_ms/p99");
    let max = f(&r, "/latency_ms/max");
    assert!(
        (p99 - 300.0).abs() <= 45.0,
        "p99 {p99} ms is not within 15% of 300 ms: {:#}",
        r["latency_ms"]
    );
    assert!(max >= 300.0, "max {max} ms");
    assert_eq!(u(&r, "/messages/lost"), 0);
    let t = &r["thresholds"][0];
    assert_eq!(t["name"], "p99_ms_window(2s)");
    assert!(f(t, "/actual") >= 250.0, "{t}");
    assert_eq!(
        (t["passed"].as_bool(), u(&r, "/exit_code")),
        (Some(false), 3)
    );
}
