//! Issue 3 (and 4 for the hang): whole runs through the real binary: Ctrl-C still writes results
//! (`"complete": false`), shards merge to exactly the sum of their counts,
//! worker processes add up exactly, thresholds gate the exit code and JUnit,
//! and `compare` catches a regression. Every results file is checked against
//! `results/schema.json`.

mod common;

use common::{
    Scratch, f, read_results, run, run_scenario, run_then_signal, small, squall, u, wait,
};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn sigint_mid_run_writes_results_marked_incomplete() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let s = Scratch::new("sigint");
    let file = s.scenario("sigint", &small("sigint", 30, ""));
    let out = run_then_signal(&s, &file, libc::SIGINT);
    assert_eq!(
        out.code(),
        1,
        "an incomplete run does not pass: {}",
        out.stderr
    );
    let files = s.results_files();
    assert_eq!(files.len(), 1, "{}", out.stderr);
    let r = read_results(&files[0]);
    assert_eq!(r["complete"], false);
    assert_eq!(r["passed"], false);
    assert!(
        f(&r, "/duration_s") < 20.0,
        "stopped early: {}",
        r["duration_s"]
    );
    assert!(u(&r, "/messages/sent") > 0, "what was measured is kept");
}

#[test]
fn two_shards_merged_give_the_sum_of_their_counts() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let s = Scratch::new("shards");
    // One relay for both shards, as on two machines loading one target.
    let ready = s.0.join("ready");
    let relay = squall()
        .args([
            "relay",
            "--addr",
            "127.0.0.1:0",
            "--no-auth",
            "--ready-file",
            ready.to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let relay = KillOnDrop(relay);
    let started = Instant::now();
    let addr = loop {
        if let Ok(a) = std::fs::read_to_string(&ready)
            && !a.trim().is_empty()
        {
            break a.trim().to_string();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "relay not ready"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let target =
        format!("[target]\nkind = \"url\"\nurl = \"ws://{addr}/ws\"\n[auth]\nkind = \"none\"\n");
    let file = s.scenario("shards", &small("shards", 4, &target));
    let out = s.out();
    let shard = |i: &str| {
        squall()
            .args([
                "run",
                file.to_str().unwrap(),
                "--no-tui",
                "--out",
                out.to_str().unwrap(),
                "--shard",
                i,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (shard("1/2"), shard("2/2"));
    let (a, b) = (wait(a, LIMIT), wait(b, LIMIT));
    assert!(a.status.code().is_some() && b.status.code().is_some());
    drop(relay);
    let files = s.results_files();
    assert_eq!(files.len(), 2, "{}\n{}", a.stderr, b.stderr);
    let merged_path = s.0.join("merged.json");
    let m = run(
        &[
            "merge",
            files[0].to_str().unwrap(),
            files[1].to_str().unwrap(),
            "-o",
            merged_path.to_str().unwrap(),
        ],
        LIMIT,
    );
    assert!(m.code() == 0 || m.code() == 3, "{m:?}");
    let (ra, rb, merged) = (
        read_results(&files[0]),
        read_results(&files[1]),
        read_results(&merged_path),
    );
    for key in [
        "/connections/attempted",
        "/connections/established",
        "/messages/scheduled",
        "/messages/sent",
        "/messages/received",
        "/messages/duplicated",
        "/messages/reordered",
        "/latency_ms/count",
    ] {
        assert_eq!(u(&merged, key), u(&ra, key) + u(&rb, key), "{key}");
    }
    assert_eq!(
        u(&ra, "/connections/attempted"),
        20,
        "each shard runs half the sockets"
    );
    assert_eq!(u(&merged, "/shards"), 2);
    assert!(u(&merged, "/messages/sent") > 0);
    // Pairs across shards count only once both halves are merged.
    assert!(
        u(&merged, "/messages/expected")
            >= u(&ra, "/messages/expected") + u(&rb, "/messages/expected")
    );
}

#[test]
fn worker_processes_merge_exactly() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let s = Scratch::new("workers");
    // Two relay processes, three worker processes: topics stay whole on one
    // relay, publishers and subscribers of a topic sit in different workers.
    let target = "[target]\nkind = \"builtin\"\nrelays = 2";
    let file = s.scenario("workers", &small("workers", 4, target));
    let (out, r) = run_scenario(&s, &file, &["--set", "load.sockets_per_process=15"], LIMIT);
    assert!(
        out.stderr.contains("in 3 worker processes"),
        "{}",
        out.stderr
    );
    assert_eq!(r["complete"], true, "{}", out.stderr);
    assert_eq!(u(&r, "/shards"), 3);
    assert_eq!(r["target"].as_str().unwrap().matches("ws://").count(), 2);
    assert_eq!(u(&r, "/connections/attempted"), 40);
    assert_eq!(
        u(&r, "/messages/lost"),
        0,
        "one origin for all workers: exact loss {:#}",
        r["messages"]
    );
    assert!(u(&r, "/messages/expected") > 0);
    assert_eq!(r["exit_code"], 0);
}

#[test]
fn a_breached_threshold_exits_3_with_junit_and_compare_catches_a_regression() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let s = Scratch::new("gates");
    let file = s.scenario(
        "gates",
        &small(
            "gates",
            3,
            "[target]\nkind = \"builtin\"\nbugs = [\"drop-every=20\"]\n[thresholds]\nloss_ratio = 0.001\nhangs = 0",
        ),
    );
    let junit = s.0.join("junit.xml");
    let (out, r) = run_scenario(&s, &file, &["--junit", junit.to_str().unwrap()], LIMIT);
    assert_eq!(out.code(), 3, "{}", out.stderr);
    assert_eq!(r["exit_code"], 3);
    let loss = &r["thresholds"][0];
    assert_eq!(
        (loss["name"].as_str(), loss["passed"].as_bool()),
        (Some("loss_ratio"), Some(false))
    );
    assert!(out.stdout.contains("✗ loss_ratio"), "{}", out.stdout);
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("<testcase classname=\"squall.gates\" name=\"loss_ratio\">"),
        "{xml}"
    );
    assert!(xml.contains("<failure message="), "{xml}");
    assert!(xml.contains("name=\"hangs\"/>"), "{xml}");

    // Compared with itself nothing moved; against a baseline with a quarter
    // of its p99 and twice its throughput, both regressed.
    let run_path = s.results_files()[0].clone();
    let html = s.0.join("report.html");
    let report = run(
        &[
            "report",
            run_path.to_str().unwrap(),
            "-o",
            html.to_str().unwrap(),
        ],
        LIMIT,
    );
    assert_eq!(report.code(), 0, "{report:?}");
    assert!(std::fs::read_to_string(&html).unwrap().contains("<svg"));
    let same = run(
        &[
            "compare",
            run_path.to_str().unwrap(),
            run_path.to_str().unwrap(),
        ],
        LIMIT,
    );
    assert_eq!(same.code(), 0, "{same:?}");
    let mut baseline = r.clone();
    baseline["latency_ms"]["p99"] = (f(&r, "/latency_ms/p99") / 4.0).into();
    baseline["messages"]["throughput_per_s"] = (f(&r, "/messages/throughput_per_s") * 2.0).into();
    let baseline_path = s.0.join("baseline.json");
    std::fs::write(&baseline_path, serde_json::to_string(&baseline).unwrap()).unwrap();
    let cmp = run(
        &[
            "compare",
            baseline_path.to_str().unwrap(),
            run_path.to_str().unwrap(),
            "--max-regression",
            "10%",
        ],
        LIMIT,
    );
    assert_eq!(cmp.code(), 3, "{cmp:?}");
    assert!(
        cmp.stdout.contains("regressed: p99_ms, throughput_per_s"),
        "{}",
        cmp.stdout
    );
}

#[test]
fn a_relay_that_hangs_after_resets_exits_4_with_diagnostics() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let s = Scratch::new("hang");
    let extra = "[target]\nkind = \"builtin\"\nbugs = [\"hang-on-reset\"]\n\
                 [[chaos]]\nat = \"2s\"\naction = \"reset\"\ncount = 5\n";
    let file = s.scenario("hang", &small("hang", 6, extra));
    let (out, r) = run_scenario(&s, &file, &[], LIMIT);
    assert_eq!(out.code(), 4, "{}", out.stderr);
    assert_eq!(r["exit_code"], 4);
    let hang = &r["hangs"][0];
    assert!(f(hang, "/detected_s") >= f(hang, "/started_s"));
    assert!(
        f(hang, "/started_s") >= 2.0,
        "not before the resets: {hang}"
    );
    assert!(
        hang["last_chaos"].as_str().unwrap().starts_with("reset"),
        "{hang}"
    );
    let diagnostics = hang["diagnostics"].as_str().unwrap();
    assert!(std::path::Path::new(diagnostics).exists(), "{diagnostics}");
    assert_eq!(r["chaos"][0]["action"], "reset");
    assert_eq!(u(&r, "/chaos/0/done"), 5);
}

#[test]
fn a_command_target_speaking_templates_is_measured_exactly() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let s = Scratch::new("template");
    let extra = r#"
[target]
kind = "command"
command = ["{squall}", "relay", "--no-auth", "--addr", "127.0.0.1:{port}"]
url = "ws://127.0.0.1:{port}/ws"
health = "http://127.0.0.1:{port}/health"
[protocol]
kind = "template"
subscribe = '{"type":"Subscribe","data":{"topics":["{topic}"]}}'
publish = '{"type":"Broadcast","data":{"topic":"{topic}","payload":"{stamp}"}}'
[auth]
kind = "none"
"#;
    let file = s.scenario("template", &small("template", 4, extra));
    let (out, r) = run_scenario(&s, &file, &[], LIMIT);
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert!(
        r["target"].as_str().unwrap().starts_with("ws://127.0.0.1:"),
        "{{port}} filled in"
    );
    assert!(u(&r, "/messages/expected") > 1000, "{:#}", r["messages"]);
    assert_eq!(u(&r, "/messages/lost"), 0);
    assert_eq!(u(&r, "/messages/duplicated"), 0);
}

#[test]
fn es256_tokens_in_the_header_are_accepted_by_the_builtin_relay() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let s = Scratch::new("es256");
    let keys = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("relay/tests/keys");
    let extra = format!(
        "[auth]\nalgorithm = \"ES256\"\nplacement = \"header\"\nroles = [\"load\"]\n\
         key_file = \"{}\"\npublic_key_file = \"{}\"\n[auth.claims]\ntenant = \"acme\"\n",
        keys.join("ec_private.pem").display(),
        keys.join("ec_public.pem").display()
    );
    let file = s.scenario("es256", &small("es256", 3, &extra));
    let (out, r) = run_scenario(&s, &file, &[], LIMIT);
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert_eq!(u(&r, "/connections/established"), 40);
    assert_eq!(u(&r, "/messages/lost"), 0);
}

/// Kills the relay the test started, whatever happens.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
