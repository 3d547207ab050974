//! Issue 11, past one machine: the Kubernetes manifests `squall k8s` renders
//! pass strict validation against the Kubernetes schemas; the Indexed Job is
//! simulated here (its rendered shard command as three processes with
//! `JOB_COMPLETION_INDEX` set and one `--start-at`, then its rendered merge
//! command): sums exact, a breached threshold makes merge exit 3; a start in
//! the past is refused; `--metrics-addr` scraped during a run agrees with
//! the results file; the Dockerfile is a multi-stage, non-root build whose
//! cargo command builds here.
//!
//! The schema check and the YAML parse need `kubernetes-validate` (PyPI),
//! which `scripts/test` installs in `target/py`; without it these tests say
//! SKIPPED, except under `CI=true`, where they fail.

mod common;

use common::{Scratch, f, read_results, run, small, squall, u, wait};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The runs here load the machine: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
const LIMIT: Duration = Duration::from_secs(90);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python of `target/py` (with PyYAML and kubernetes-validate), or
/// `None` when it is missing outside CI; under `CI=true` a missing tool
/// fails the test.
fn python() -> Option<PathBuf> {
    let py = std::env::var_os("SQUALL_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/py/bin/python"));
    let ok = Command::new(&py)
        .args(["-c", "import yaml, kubernetes_validate"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(py);
    }
    let why = format!(
        "{} with yaml and kubernetes_validate is missing (scripts/test installs it)",
        py.display()
    );
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "under CI=true: {why}"
    );
    eprintln!("SKIPPED: {why}");
    None
}

/// Every document of a YAML file, as JSON, read by PyYAML.
fn yaml_to_json(py: &Path, file: &Path) -> Vec<Value> {
    let out = Command::new(py)
        .args([
            "-c",
            "import json, sys, yaml\nprint(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
        ])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `squall k8s FILE ARGS... -o DIR`, which must pass.
fn render(file: &Path, dir: &Path, args: &[&str]) -> common::Finished {
    let mut all = vec!["k8s", file.to_str().unwrap(), "-o", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = run(&all, LIMIT);
    assert_eq!(out.code(), 0, "{}\n{}", out.stdout, out.stderr);
    out
}

/// The object of a rendered file.
fn object(py: &Path, dir: &Path, file: &str) -> Value {
    let docs = yaml_to_json(py, &dir.join(file));
    assert_eq!(docs.len(), 1, "{file}: one object per file");
    docs.into_iter().next().unwrap()
}

/// A container's args in a Job.
fn job_args(job: &Value) -> Vec<String> {
    job.pointer("/spec/template/spec/containers/0/args")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no args in {job:#}"))
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

fn has_pair(args: &[String], a: &str, b: &str) -> bool {
    args.windows(2).any(|w| w[0] == a && w[1] == b)
}

#[test]
fn manifests_validate_strictly_against_the_kubernetes_schemas() {
    let Some(py) = python() else { return };
    let s = Scratch::new("k8s-validate");
    // The README's smoke scenario (each pod starts its own builtin relay),
    // and one that loads a remote relay.
    let smoke = repo().join("scenarios/smoke.toml");
    let remote = s.scenario(
        "remote",
        "name = \"remote\"\nduration = \"1m\"\nallow_remote = true\n\
         [target]\nkind = \"url\"\nurl = \"ws://relay.load-test.svc:8080/ws\"\n\
         [auth]\nkind = \"none\"\n[load]\nconnections = 30000\ntopics = 30\npublishers = 300\nrate = 3000\n\
         [thresholds]\np99_ms = 250\n",
    );
    for (file, dir, remote_allowed) in [
        (&smoke, s.0.join("smoke"), false),
        (&remote, s.0.join("remote"), true),
    ] {
        let out = render(
            file,
            &dir,
            &[
                "--shards",
                "3",
                "--image",
                "registry.example/squall:0.1.0",
                "--namespace",
                "load-tests",
            ],
        );
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert_eq!(files.len(), 5, "{}", out.stdout);
        assert!(
            files
                .iter()
                .all(|f| f.extension().is_some_and(|e| e == "yaml"))
        );
        let check = Command::new(py.with_file_name("kubernetes-validate"))
            .arg("--strict")
            .args(&files)
            .output()
            .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        assert!(check.status.success(), "{said}");
        assert!(!said.contains("ERROR") && !said.contains("WARN"), "{said}");

        let job = object(&py, &dir, "40-shards-job.yaml");
        assert_eq!(job["kind"], "Job");
        assert_eq!(job["metadata"]["namespace"], "load-tests");
        assert_eq!(job["spec"]["completionMode"], "Indexed");
        assert_eq!(job["spec"]["completions"], 3);
        assert_eq!(job["spec"]["parallelism"], 3);
        let args = job_args(&job);
        assert!(
            has_pair(&args, "--shard-index-from-env", "JOB_COMPLETION_INDEX"),
            "{args:?}"
        );
        assert!(has_pair(&args, "--shards", "3"), "{args:?}");
        assert!(args.iter().any(|a| a == "--start-at"), "{args:?}");
        assert_eq!(
            args.iter().any(|a| a == "--allow-remote"),
            remote_allowed,
            "--allow-remote only when the scenario sets allow_remote: {args:?}"
        );
        let pod = &job["spec"]["template"];
        assert_eq!(
            pod["metadata"]["annotations"]["prometheus.io/scrape"],
            "true"
        );
        assert_eq!(pod["metadata"]["annotations"]["prometheus.io/port"], "9464");
        let container = &pod["spec"]["containers"][0];
        assert!(container["resources"]["requests"]["cpu"].is_string());
        assert!(container["resources"]["requests"]["memory"].is_string());
        assert_eq!(pod["spec"]["securityContext"]["runAsNonRoot"], true);
        let pvc = object(&py, &dir, "20-results-pvc.yaml");
        assert_eq!(pvc["spec"]["accessModes"], json!(["ReadWriteMany"]));
        let service = object(&py, &dir, "30-service.yaml");
        assert_eq!(service["spec"]["clusterIP"], "None");
        let config = object(&py, &dir, "10-configmap.yaml");
        let name = file.file_name().unwrap().to_str().unwrap();
        assert_eq!(
            config["data"][name].as_str().unwrap(),
            std::fs::read_to_string(file).unwrap(),
            "the scenario, byte for byte"
        );
        let merge = object(&py, &dir, "50-merge-job.yaml");
        let args = job_args(&merge);
        assert_eq!(args[0], "merge");
        assert!(args.iter().any(|a| a == "--junit"), "{args:?}");
        assert!(args.iter().any(|a| a == "--wait"), "{args:?}");
        assert_eq!(
            args.iter().filter(|a| a.ends_with(".json")).count(),
            4,
            "{args:?}"
        );
    }
    // A scenario `validate` refuses is refused here too, and so are more
    // shards than topics (each shard owns whole topics).
    let bad = s.scenario("bad", "name = \"bad\"\nduration = \"5\"\n");
    let out = run(
        &[
            "k8s",
            bad.to_str().unwrap(),
            "--shards",
            "2",
            "--image",
            "x",
            "-o",
            s.0.join("bad").to_str().unwrap(),
        ],
        LIMIT,
    );
    assert_eq!(out.code(), 2, "{}", out.stderr);
    let out = run(
        &[
            "k8s",
            smoke.to_str().unwrap(),
            "--shards",
            "11",
            "--image",
            "x",
            "-o",
            s.0.join("eleven").to_str().unwrap(),
        ],
        LIMIT,
    );
    assert_eq!(out.code(), 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("load.topics must be at least 11"),
        "{}",
        out.stderr
    );
}

/// The YAML emitter against a real YAML parser: every tricky string reads
/// back as written.
#[test]
fn the_yaml_emitter_round_trips_through_pyyaml() {
    let Some(py) = python() else { return };
    let s = Scratch::new("k8s-yaml");
    let tricky = [
        "",
        "no",
        "yes",
        "on",
        "off",
        "~",
        "null",
        "010",
        "0x1f",
        "1e3",
        "-",
        "- x",
        ": x",
        "x: y",
        "#x",
        "x #y",
        "'q'",
        "\"dq\"",
        "a\\b",
        "tab\tin",
        "cr\rlf",
        "nel\u{85}",
        "ls\u{2028}",
        "bom\u{feff}",
        "del\u{7f}",
        "\u{1}",
        "ünï ✓",
        "multi\nline\n",
        "multi\nline",
        "keep\n\n",
        " lead\nspace",
        "trail  \nspace\n",
        "\ttab first\nx",
        "x\n\ty\n",
        "%YAML\n---\n...\n",
        "a\n   \nb\n",
        "é\n",
        "[a]",
        "{a: b}",
        "&anchor",
        "*alias",
        "!tag",
        "|",
        ">",
        "@",
        "`",
    ];
    let value = json!({
        "strings": tricky.as_slice(),
        "keys": tricky.iter().map(|t| (t.to_string(), json!(t))).collect::<serde_json::Map<_, _>>(),
        "numbers": [0, -1, 1.5, 9464, u64::MAX],
        "flags": [true, false, null],
        "empty": {"list": [], "map": {}},
        "nested": [[1, [2]], {"a": [{"b": "c"}]}],
    });
    let file = s.0.join("tricky.yaml");
    std::fs::write(&file, squall::k8s::yaml::to_yaml(&value)).unwrap();
    let back = yaml_to_json(&py, &file);
    assert_eq!(
        back,
        vec![value],
        "{}",
        std::fs::read_to_string(&file).unwrap()
    );
}

/// The instant `secs` seconds from now, in whole seconds, as RFC 3339.
fn start_in(secs: u64) -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + secs;
    squall::results::time::Utc::from_system(UNIX_EPOCH + Duration::from_secs(t)).rfc3339()
}

/// A running `squall relay`, killed on drop.
struct Relay(std::process::Child, String);

impl Relay {
    fn start(s: &Scratch) -> Relay {
        let ready = s.0.join("relay-ready");
        let mut relay = Relay(
            squall()
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
                .unwrap(),
            String::new(),
        );
        let started = Instant::now();
        loop {
            if let Ok(a) = std::fs::read_to_string(&ready)
                && !a.trim().is_empty()
            {
                relay.1 = a.trim().to_string();
                return relay;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "relay not ready"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The rendered command with the pod's paths mapped to this machine: the
/// ConfigMap's mount to the scenario's folder, the volume to `results`, and
/// each shard's metrics on a port of its own.
fn localize(args: &[String], scenario_dir: &Path, results: &Path) -> Vec<String> {
    args.iter()
        .map(|a| {
            a.replace("/scenario/", &format!("{}/", scenario_dir.display()))
                .replace("/results/", &format!("{}/", results.display()))
                .replace("0.0.0.0:9464", "127.0.0.1:0")
        })
        .map(|a| if a == "30s" { "1s".to_string() } else { a })
        .collect()
}

#[test]
fn an_indexed_job_of_three_shards_on_one_start_merges_exactly_and_gates() {
    let Some(py) = python() else { return };
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let s = Scratch::new("indexed-job");
    let relay = Relay::start(&s);
    let scenario_dir = s.0.join("scenario");
    std::fs::create_dir_all(&scenario_dir).unwrap();
    let file = scenario_dir.join("three.toml");
    let text = small(
        "three",
        4,
        &format!(
            "[target]\nkind = \"url\"\nurl = \"ws://{}/ws\"\n[auth]\nkind = \"none\"\n\
             [thresholds]\nloss_ratio = 0.0\nconnect_error_ratio = 0.0\n",
            relay.1
        ),
    )
    .replace("topics = 4", "topics = 6");
    std::fs::write(&file, text).unwrap();
    let start = start_in(6);
    let manifests = s.0.join("k8s");
    render(
        &file,
        &manifests,
        &[
            "--shards",
            "3",
            "--image",
            "squall:test",
            "--start-at",
            &start,
        ],
    );
    let job = object(&py, &manifests, "40-shards-job.yaml");
    let results = s.0.join("volume");
    let shard_args = localize(&job_args(&job), &scenario_dir, &results);
    let shards: Vec<_> = (0..3)
        .map(|i| {
            squall()
                .args(&shard_args)
                .env("JOB_COMPLETION_INDEX", i.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let done: Vec<_> = shards.into_iter().map(|c| wait(c, LIMIT)).collect();
    drop(relay);
    for (i, d) in done.iter().enumerate() {
        assert_eq!(d.code(), 0, "shard {i}: {}", d.stderr);
    }
    // The rendered merge command: it finds every shard's file by name.
    let merge = object(&py, &manifests, "50-merge-job.yaml");
    let merge_args = localize(&job_args(&merge), &scenario_dir, &results);
    let inputs: Vec<PathBuf> = merge_args
        .iter()
        .filter(|a| a.ends_with(".json") && !a.contains("merged"))
        .map(PathBuf::from)
        .collect();
    assert_eq!(inputs.len(), 3, "{merge_args:?}");
    let m = squall()
        .args(&merge_args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&m.stdout);
    assert_eq!(
        m.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&m.stderr)
    );
    assert!(
        stdout.contains("→ passed"),
        "the verdict is printed: {stdout}"
    );
    let out_at = |flag: &str| {
        let i = merge_args.iter().position(|a| a == flag).unwrap();
        PathBuf::from(&merge_args[i + 1])
    };
    let (merged_path, junit) = (out_at("-o"), out_at("--junit"));
    let merged = read_results(&merged_path);
    let parts: Vec<Value> = inputs.iter().map(|p| read_results(p)).collect();
    for (i, p) in parts.iter().enumerate() {
        assert_eq!(p["started_at"], start.as_str(), "one start, verbatim");
        assert_eq!(p["settings"]["shard"], json!({"index": i + 1, "count": 3}));
        assert!(u(p, "/messages/sent") > 0, "shard {i} published");
    }
    for key in [
        "/connections/attempted",
        "/connections/established",
        "/messages/scheduled",
        "/messages/sent",
        "/messages/expected",
        "/messages/received",
        "/messages/lost",
        "/messages/duplicated",
        "/latency_ms/count",
    ] {
        let sum: u64 = parts.iter().map(|p| u(p, key)).sum();
        assert_eq!(
            u(&merged, key),
            sum,
            "{key}: shards own whole topics, so sums are exact"
        );
    }
    assert_eq!(u(&merged, "/connections/attempted"), 40);
    assert_eq!(u(&merged, "/shards"), 3);
    assert_eq!(merged["exit_code"], 0);
    assert!(
        std::fs::read_to_string(&junit)
            .unwrap()
            .contains("<testsuites")
    );

    // The same shards against a threshold they break: merge exits 3 and its
    // JUnit says which.
    let strict_dir = s.0.join("strict");
    std::fs::create_dir_all(&strict_dir).unwrap();
    let mut strict_inputs = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let mut p = p.clone();
        p["settings"]["thresholds"]["p99_ms"] = json!(0.0001);
        let path = strict_dir.join(format!("shard-{i}.json"));
        std::fs::write(&path, serde_json::to_vec(&p).unwrap()).unwrap();
        strict_inputs.push(path);
    }
    let strict_junit = strict_dir.join("junit.xml");
    let mut args: Vec<&str> = vec!["merge"];
    args.extend(strict_inputs.iter().map(|p| p.to_str().unwrap()));
    let merged_strict = strict_dir.join("merged.json");
    args.extend([
        "-o",
        merged_strict.to_str().unwrap(),
        "--junit",
        strict_junit.to_str().unwrap(),
    ]);
    let out = run(&args, LIMIT);
    assert_eq!(out.code(), 3, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("p99_ms = "), "{}", out.stdout);
    let xml = std::fs::read_to_string(&strict_junit).unwrap();
    assert!(xml.contains("<failure") && xml.contains("p99_ms"), "{xml}");
    assert!(f(&read_results(&merged_strict), "/latency_ms/p99") > 0.0001);

    // Shards of another run (other settings) are refused, naming the key.
    let mut other = parts[2].clone();
    other["settings"]["load"]["rate"] = json!(999);
    let other_path = strict_dir.join("other.json");
    std::fs::write(&other_path, serde_json::to_vec(&other).unwrap()).unwrap();
    let out = run(
        &[
            "merge",
            inputs[0].to_str().unwrap(),
            inputs[1].to_str().unwrap(),
            other_path.to_str().unwrap(),
            "-o",
            strict_dir.join("no.json").to_str().unwrap(),
        ],
        LIMIT,
    );
    assert_eq!(out.code(), 2, "{}", out.stderr);
    assert!(out.stderr.contains("load.rate"), "{}", out.stderr);
}

#[test]
fn a_start_in_the_past_is_refused() {
    let s = Scratch::new("start-past");
    let file = s.scenario("past", &small("past", 2, ""));
    let out = run(
        &[
            "run",
            file.to_str().unwrap(),
            "--no-tui",
            "--out",
            s.out().to_str().unwrap(),
            "--shard",
            "1/2",
            "--start-at",
            "2020-01-01T00:00:00Z",
        ],
        LIMIT,
    );
    assert_eq!(out.code(), 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("--start-at 2020-01-01T00:00:00Z passed")
            && out.stderr.contains(" s ago"),
        "{}",
        out.stderr
    );
    assert!(
        s.results_files().is_empty(),
        "nothing measured, nothing written"
    );
    let out = run(
        &[
            "run",
            file.to_str().unwrap(),
            "--start-at",
            "2020-01-01 00:00",
        ],
        LIMIT,
    );
    assert_eq!(out.code(), 2, "{}", out.stderr);
}

/// `GET /metrics` from `addr`.
fn scrape(addr: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// A sample's value in an exposition.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse()
        .unwrap()
}

#[test]
fn live_metrics_scraped_mid_run_agree_with_the_results_file() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let s = Scratch::new("metrics");
    let file = s.scenario("live", &small("live", 5, ""));
    let mut child = squall()
        .args([
            "run",
            file.to_str().unwrap(),
            "--no-tui",
            "--out",
            s.out().to_str().unwrap(),
            "--metrics-addr",
            "127.0.0.1:0",
            "--metrics-linger",
            "20s",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The address is announced on stderr; the rest is kept for messages.
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let started = Instant::now();
    let mut log = Vec::new();
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("no metrics address announced");
        log.push(line.clone());
        if let Some(rest) = line.split("live metrics at http://").nth(1) {
            break rest.trim_end_matches("/metrics").to_string();
        }
    };
    let series = [
        "squall_messages_sent_total",
        "squall_messages_received_total",
        "squall_latency_seconds_count",
        "squall_connections_attempted_total",
    ];
    let mut seen: Vec<[f64; 4]> = Vec::new();
    let last = loop {
        assert!(
            started.elapsed() < LIMIT,
            "the run did not complete:\n{}",
            log.join("\n")
        );
        while let Ok(line) = rx.try_recv() {
            log.push(line);
        }
        if let Some(text) = scrape(&addr) {
            let values = series.map(|name| sample(&text, name));
            if sample(&text, "squall_run_complete") == 1.0 {
                break text;
            }
            seen.push(values);
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let mid: Vec<&[f64; 4]> = seen.iter().filter(|v| v[0] > 0.0).collect();
    assert!(mid.len() >= 3, "scraped while publishing: {seen:?}");
    for w in seen.windows(2) {
        for i in 0..series.len() {
            assert!(w[1][i] >= w[0][i], "{} went down: {seen:?}", series[i]);
        }
    }
    let results = s.results_files();
    assert_eq!(results.len(), 1);
    let r = read_results(&results[0]);
    let finals = [
        u(&r, "/messages/sent"),
        u(&r, "/messages/received"),
        u(&r, "/latency_ms/count"),
        u(&r, "/connections/attempted"),
    ];
    for (i, name) in series.iter().enumerate() {
        assert_eq!(sample(&last, name), finals[i] as f64, "{name} at the end");
        for v in &seen {
            assert!(
                v[i] <= finals[i] as f64,
                "{name} mid-run over the final figure"
            );
        }
    }
    assert_eq!(
        sample(&last, "squall_messages_lost"),
        u(&r, "/messages/lost") as f64
    );
    assert_eq!(
        sample(&last, "squall_run_exit_code"),
        u(&r, "/exit_code") as f64
    );
    assert_eq!(
        sample(&last, "squall_latency_seconds_bucket{le=\"+Inf\"}"),
        finals[2] as f64
    );
    // Ctrl-C ends the linger at once.
    // SAFETY: kill(2) on the child we spawned and still own.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let ended = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            ended.elapsed() < Duration::from_secs(10),
            "the linger ignored Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(u(&r, "/exit_code") as i32));
    // A remote address needs the user's leave.
    let out = run(
        &[
            "run",
            file.to_str().unwrap(),
            "--no-tui",
            "--out",
            s.out().to_str().unwrap(),
            "--metrics-addr",
            "0.0.0.0:0",
        ],
        LIMIT,
    );
    assert_eq!(out.code(), 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("not a loopback address"),
        "{}",
        out.stderr
    );
}

/// The Dockerfile's instructions, stage by stage: (FROM line, instructions).
fn stages(text: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out: Vec<(String, Vec<(String, String)>)> = Vec::new();
    let mut logical = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && logical.is_empty()) {
            continue;
        }
        if let Some(cont) = line.strip_suffix('\\') {
            logical.push_str(cont);
            logical.push(' ');
            continue;
        }
        logical.push_str(line);
        let (word, rest) = logical
            .split_once(char::is_whitespace)
            .unwrap_or((&logical, ""));
        let (word, rest) = (word.to_ascii_uppercase(), rest.trim().to_string());
        if word == "FROM" {
            out.push((rest, Vec::new()));
        } else if let Some(stage) = out.last_mut() {
            stage.1.push((word, rest));
        }
        logical.clear();
    }
    out
}

#[test]
fn the_dockerfile_is_a_multi_stage_non_root_build_whose_cargo_command_builds() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let text = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let stages = stages(&text);
    assert!(stages.len() >= 2, "multi-stage: {stages:?}");
    let (build_from, build) = &stages[0];
    assert!(
        build_from.to_lowercase().ends_with(" as build"),
        "{build_from}"
    );
    let (_, runtime) = stages.last().unwrap();
    let get = |word: &str| {
        runtime
            .iter()
            .filter(|(w, _)| w == word)
            .map(|(_, r)| r.clone())
            .collect::<Vec<_>>()
    };
    let user = get("USER");
    let user = user.last().expect("the runtime stage sets USER");
    let name = user.split(':').next().unwrap();
    assert!(name != "root" && name != "0", "non-root USER: {user}");
    let entry = get("ENTRYPOINT");
    let entry: Vec<String> = serde_json::from_str(entry.last().expect("an ENTRYPOINT")).unwrap();
    assert!(entry[0].ends_with("squall"), "{entry:?}");
    assert!(
        get("COPY")
            .iter()
            .any(|c| c.contains("--from=build") && c.contains("target/release/squall"))
    );
    assert!(
        std::fs::read_to_string(repo().join(".dockerignore"))
            .unwrap()
            .contains("target/")
    );
    // The build stage's cargo command, run here as it runs in Docker.
    let cargo: Vec<&(String, String)> = build
        .iter()
        .filter(|(w, r)| w == "RUN" && r.starts_with("cargo "))
        .collect();
    assert_eq!(cargo.len(), 1, "{build:?}");
    let words: Vec<&str> = cargo[0].1.split_whitespace().collect();
    assert_eq!(&words[..2], ["cargo", "build"]);
    assert!(
        words.contains(&"--release") && words.contains(&"--locked"),
        "{words:?}"
    );
    let built = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(&words[1..])
        .current_dir(repo())
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(built.success(), "{}", cargo[0].1);
    // Where cargo put them: CARGO_TARGET_DIR when set (relative to the
    // repository, where the build ran), else target/.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|dir| repo().join(dir))
        .unwrap_or_else(|| repo().join("target"));
    for bin in ["squall", "squall-relay"] {
        let out = Command::new(target.join("release").join(bin))
            .arg("--version")
            .output()
            .unwrap();
        assert!(out.status.success(), "{bin} --version");
    }
}

/// The files a scenario names (here the builtin relay's TLS certificate and
/// key, and the ES256 signing and public keys) travel with the manifests in
/// a Secret mounted at `/files`, and the rendered shard command, run with
/// that Secret's contents, finds and uses them: a `wss://` run with ES256
/// tokens that delivers everything.
#[test]
fn files_the_scenario_names_ship_in_a_secret_the_shard_runs_with() {
    let Some(py) = python() else { return };
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let s = Scratch::new("k8s-files");
    let scenario_dir = s.0.join("scenario");
    let keys = s.0.join("keys");
    for dir in [&scenario_dir, &keys] {
        std::fs::create_dir_all(dir).unwrap();
    }
    let made =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    std::fs::write(keys.join("cert.pem"), made.cert.pem()).unwrap();
    std::fs::write(keys.join("key.pem"), made.signing_key.serialize_pem()).unwrap();
    let es = repo().join("loadgen/tests/keys");
    std::fs::copy(es.join("es256-test-only.pem"), keys.join("es.pem")).unwrap();
    std::fs::copy(es.join("es256-test-only.pub.pem"), keys.join("es.pub.pem")).unwrap();
    let file = scenario_dir.join("files.toml");
    let text = small(
        "files",
        2,
        "[target]\nrelay_args = [\"--tls-cert\", \"../keys/cert.pem\", \"--tls-key=../keys/key.pem\"]\n\
         [auth]\nkind = \"jwt\"\nalgorithm = \"ES256\"\nkey_file = \"../keys/es.pem\"\n\
         public_key_file = \"../keys/es.pub.pem\"\n\
         [thresholds]\nloss_ratio = 0.0\nconnect_error_ratio = 0.0\n",
    );
    std::fs::write(&file, text).unwrap();
    let manifests = s.0.join("k8s");
    render(
        &file,
        &manifests,
        &[
            "--shards",
            "1",
            "--image",
            "squall:test",
            "--start-at",
            &start_in(4),
        ],
    );
    let check = Command::new(py.with_file_name("kubernetes-validate"))
        .arg("--strict")
        .arg(manifests.join("15-files-secret.yaml"))
        .arg(manifests.join("40-shards-job.yaml"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let secret = object(&py, &manifests, "15-files-secret.yaml");
    assert_eq!(secret["kind"], "Secret");
    let data = secret["data"].as_object().unwrap();
    let names: Vec<&str> = data.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "auth.key_file",
            "auth.public_key_file",
            "target.relay_args.tls-cert",
            "target.relay_args.tls-key"
        ]
    );
    // The Secret's contents, where the pod mounts them.
    let files = s.0.join("files");
    std::fs::create_dir_all(&files).unwrap();
    for (name, value) in data {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(value.as_str().unwrap())
            .unwrap();
        std::fs::write(files.join(name), bytes).unwrap();
    }
    assert_eq!(
        std::fs::read(files.join("auth.key_file")).unwrap(),
        std::fs::read(keys.join("es.pem")).unwrap(),
        "byte for byte"
    );
    let job = object(&py, &manifests, "40-shards-job.yaml");
    let args = job_args(&job);
    assert!(
        has_pair(&args, "--set", "auth.key_file=/files/auth.key_file"),
        "{args:?}"
    );
    let pod = &job["spec"]["template"]["spec"];
    assert!(
        pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["secret"]["secretName"]
                .as_str()
                .is_some_and(|n| n.ends_with("-files"))),
        "{pod:#}"
    );
    let merge = object(&py, &manifests, "50-merge-job.yaml");
    let merge_pod = &merge["spec"]["template"]["spec"];
    assert!(
        merge_pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v.get("secret").is_none()),
        "the merge needs no keys: {merge_pod:#}"
    );
    let results = s.0.join("volume");
    let shard_args: Vec<String> = localize(&args, &scenario_dir, &results)
        .into_iter()
        .map(|a| a.replace("/files/", &format!("{}/", files.display())))
        .collect();
    let shard = squall()
        .args(&shard_args)
        .env("JOB_COMPLETION_INDEX", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let done = wait(shard, LIMIT);
    assert_eq!(done.code(), 0, "{}\n{}", done.stdout, done.stderr);
    let written: Vec<PathBuf> = walk(&results)
        .into_iter()
        .filter(|p| {
            p.to_string_lossy().ends_with("Z.json") || p.to_string_lossy().contains("shard")
        })
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    assert_eq!(written.len(), 1, "{written:?}");
    let r = read_results(&written[0]);
    assert!(
        r["target"].as_str().unwrap().starts_with("wss://"),
        "{}",
        r["target"]
    );
    assert_eq!(u(&r, "/messages/lost"), 0);
    assert!(u(&r, "/messages/received") > 0);
    assert_eq!(u(&r, "/connections/failed"), 0, "{:#}", r["connections"]);
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
