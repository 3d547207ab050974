//! Server-Sent Events (`[load] transport = "sse"`) end to end against the
//! real FastAPI + sse-starlette app of `tests/servers/sse` (installed by
//! `scripts/servers` into the virtualenv `target/py-servers`): the shipped
//! `scenarios/sse.toml` as it stands (it starts the app itself) and
//! unchanged against an app the test started (`--set target.kind=url`),
//! each delivering everything with none lost; an app killed and restarted
//! mid-run, whose streams end under the subscribers, counted as drops and
//! reconnects; the app serving HTTPS, reached through `https://` with
//! `tls_ca_file`; and the scenario keys' errors, naming file, line and key.
//!
//! Without the virtualenv these tests say SKIPPED, except under `CI=true`,
//! where they fail.

mod common;

use common::{Finished, Scratch, run, run_scenario, u};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One run at a time: each loads the 2-core machine with a Python server
/// and 100 streams.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
const LIMIT: Duration = Duration::from_secs(120);
/// Long enough for a few seconds of steady load, short for a test.
const DURATION: &str = "duration=5s";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn scenario() -> PathBuf {
    repo().join("scenarios/sse.toml")
}

fn python() -> PathBuf {
    repo().join("target/py-servers/bin/python")
}

/// Whether the app's virtualenv is there with its packages; under
/// `CI=true` its absence fails the test.
fn installed() -> bool {
    let imports = Command::new(python())
        .args(["-c", "import fastapi, sse_starlette, uvicorn"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if imports {
        return true;
    }
    let why = format!(
        "{} cannot import fastapi, sse_starlette and uvicorn (scripts/servers installs them)",
        python().display()
    );
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "under CI=true: {why}"
    );
    eprintln!("SKIPPED: {why}");
    false
}

/// The app, started by the test on a port, killed on drop.
struct App {
    child: Child,
    port: u16,
}

impl App {
    /// Starts the app on a free port.
    fn start() -> App {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        App::start_on(port)
    }

    /// Starts the app on `port` and waits for its health URL.
    fn start_on(port: u16) -> App {
        let app = App::spawn(port, &[]);
        App::wait(app, || health_status(port) == Some(200))
    }

    /// Starts the app serving HTTPS with `cert` and `key` on a free port and
    /// waits for it to accept connections.
    fn start_tls(cert: &Path, key: &Path) -> App {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let app = App::spawn(port, &[cert, key]);
        App::wait(app, || TcpStream::connect(("127.0.0.1", port)).is_ok())
    }

    fn spawn(port: u16, tls: &[&Path]) -> App {
        let child = Command::new(python())
            .arg(repo().join("tests/servers/sse/app.py"))
            .arg(port.to_string())
            .args(tls)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the app starts");
        App { child, port }
    }

    /// Waits until `ready` (at most 30 s).
    fn wait(mut app: App, ready: impl Fn() -> bool) -> App {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ready() {
            assert!(
                app.child.try_wait().unwrap().is_none(),
                "the SSE app exited before it was ready"
            );
            assert!(Instant::now() < deadline, "the SSE app not ready in 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        app
    }

    fn stream_url(&self) -> String {
        format!("http://127.0.0.1:{}/events/{{topic}}", self.port)
    }

    /// The `--set` overrides that point the scenario at this app.
    fn url_target(&self) -> Vec<String> {
        vec![
            "target.kind=url".to_string(),
            format!("target.url={}", self.stream_url()),
            format!("target.health=http://127.0.0.1:{}/health", self.port),
        ]
    }

    /// Kills the app at once (SIGKILL): its streams end without a last chunk.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The status of `GET /health`, or `None` when nothing answers.
fn health_status(port: u16) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// `squall run` arguments for `sets` (each passed as `--set`).
fn set_args(sets: &[String]) -> Vec<&str> {
    sets.iter().flat_map(|s| ["--set", s.as_str()]).collect()
}

/// Exit 0, every stream held, every owed delivery received, none lost.
fn assert_healthy(finished: &Finished, results: &Value) {
    let report = format!("stderr:\n{}\nresults: {results:#}", finished.stderr);
    assert_eq!(finished.code(), 0, "{report}");
    assert!(u(results, "/messages/expected") > 0, "{report}");
    assert!(
        u(results, "/messages/received") >= u(results, "/messages/expected"),
        "{report}"
    );
    assert_eq!(u(results, "/messages/lost"), 0, "{report}");
    assert_eq!(u(results, "/connections/established"), 100, "{report}");
    assert_eq!(
        results["connections"]["errors"],
        serde_json::json!({}),
        "{report}"
    );
    assert_eq!(
        results["connections"]["dropped"],
        serde_json::json!({}),
        "{report}"
    );
}

#[test]
fn the_shipped_sse_scenario_delivers_everything_from_the_app_it_starts() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if !installed() {
        return;
    }
    let scratch = Scratch::new("sse-shipped");
    let (finished, results) = run_scenario(&scratch, &scenario(), &["--set", DURATION], LIMIT);
    assert_healthy(&finished, &results);
}

#[test]
fn the_sse_scenario_runs_unchanged_against_a_running_app() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if !installed() {
        return;
    }
    let app = App::start();
    let scratch = Scratch::new("sse-url");
    let mut sets = app.url_target();
    sets.push(DURATION.into());
    let (finished, results) = run_scenario(&scratch, &scenario(), &set_args(&sets), LIMIT);
    assert_healthy(&finished, &results);
    assert_eq!(
        results["target"],
        serde_json::json!(app.stream_url()),
        "the run went to the app started here"
    );
}

/// The app serving HTTPS (uvicorn's TLS, a certificate made here): the
/// streams and the publishers' `POST`s go over TLS, trusting the
/// certificate through `tls_ca_file`, and everything is delivered; every
/// stream's TLS handshake is timed.
#[test]
fn the_sse_scenario_runs_over_https_against_the_app_serving_tls() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if !installed() {
        return;
    }
    let scratch = Scratch::new("sse-https");
    let made =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    let (cert, key) = (scratch.0.join("cert.pem"), scratch.0.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    let app = App::start_tls(&cert, &key);
    let url = format!("https://127.0.0.1:{}/events/{{topic}}", app.port);
    let sets = [
        "target.kind=url".to_string(),
        format!("target.url={url}"),
        format!("target.health=https://127.0.0.1:{}/health", app.port),
        format!("target.tls_ca_file={}", cert.display()),
        DURATION.to_string(),
    ];
    let (finished, results) = run_scenario(&scratch, &scenario(), &set_args(&sets), LIMIT);
    assert_healthy(&finished, &results);
    assert_eq!(results["target"], serde_json::json!(url));
    assert_eq!(
        u(&results, "/connections/tls_handshake_ms/count"),
        u(&results, "/connections/established"),
        "{results:#}"
    );
}

/// The app is killed three seconds into the run and started again on the
/// same port: every stream ends under its subscriber (a drop, by cause),
/// the connections reconnect (`load.reconnect`), and the drops breach the
/// default `target_disconnects = 0`. The watchdog is off, so that the gap
/// is not also judged a hang.
#[test]
fn streams_the_server_ends_are_counted_as_drops_and_reconnect() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if !installed() {
        return;
    }
    let mut app = App::start();
    let scratch = Scratch::new("sse-drops");
    let mut sets = app.url_target();
    sets.extend([
        "duration=10s".to_string(),
        "load.reconnect=true".to_string(),
        "watchdog.enabled=false".to_string(),
    ]);
    let mut args = vec![
        "run".to_string(),
        scenario().to_str().unwrap().to_string(),
        "--no-tui".to_string(),
        "--out".to_string(),
        scratch.out().to_str().unwrap().to_string(),
    ];
    for set in &sets {
        args.extend(["--set".to_string(), set.clone()]);
    }
    let child = common::squall()
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_timeline(&scratch.out(), 3);
    let port = app.port;
    app.kill();
    let _app = App::start_on(port);
    let finished = common::wait(child, LIMIT);
    let files = scratch.results_files();
    assert_eq!(files.len(), 1, "stderr:\n{}", finished.stderr);
    let results = common::read_results(&files[0]);
    let report = format!("stderr:\n{}\nresults: {results:#}", finished.stderr);
    assert_eq!(
        finished.code(),
        3,
        "target disconnects fail the run: {report}"
    );
    let dropped = results["connections"]["dropped"].as_object().unwrap();
    let total: u64 = dropped.values().map(|v| v.as_u64().unwrap()).sum();
    assert!(total >= 50, "the streams' ends are drops: {report}");
    for cause in dropped.keys() {
        assert!(
            ["eof", "reset", "stream_end"].contains(&cause.as_str())
                || cause.starts_with("publish_"),
            "cause {cause:?}: {report}"
        );
    }
    assert!(u(&results, "/connections/reconnects") >= 50, "{report}");
    assert!(u(&results, "/messages/received") > 0, "{report}");
}

/// Waits until a timeline in `out` holds `seconds` snapshots (or 30 s).
fn wait_for_timeline(out: &Path, seconds: usize) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        let lines = std::fs::read_dir(out)
            .ok()
            .into_iter()
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
            .map(|t| t.lines().count())
            .max()
            .unwrap_or(0);
        if lines >= seconds {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no timeline of {seconds} s in {}", out.display());
}

/// The SSE keys are checked with the rest of the scenario, each error
/// naming the file, line and key (no server needed).
#[test]
fn sse_scenario_errors_name_file_line_and_key() {
    let s = Scratch::new("sse-keys");
    let text = std::fs::read_to_string(scenario()).unwrap();
    let cases = [
        (
            "publish_path = \"/publish/{topic}\"",
            "publish_path = \"publish here\"",
            "key `protocol.publish_path`: publish path",
        ),
        (
            "publish_path = \"/publish/{topic}\"",
            "publish_path = \"/publish/{topic}\"\nsubscribe = '{topic}'",
            "key `protocol.subscribe`: over SSE the stream URL",
        ),
        (
            "kind = \"template\"",
            "kind = \"squall\"",
            "key `protocol.kind`: load.transport = \"sse\" speaks kind = \"template\"",
        ),
        (
            "url = \"http://127.0.0.1:{port}/events/{topic}\"",
            "url = \"ws://127.0.0.1:{port}/events/{topic}\"",
            "key `target.url",
        ),
        (
            "transport = \"sse\"",
            "transport = \"websocket\"",
            "key `protocol.publish_path`: only with load.transport = \"sse\"",
        ),
    ];
    for (line, with, expected) in cases {
        assert!(text.contains(line), "{line:?} in scenarios/sse.toml");
        let file = s.scenario("sse", &text.replacen(line, with, 1));
        let out = run(&["validate", file.to_str().unwrap()], LIMIT);
        assert_eq!(out.code(), 2, "{with}: {out:?}");
        let at = format!("{}:", file.display());
        assert!(
            out.stderr.contains(&at) && out.stderr.contains(expected),
            "{with}: {}",
            out.stderr
        );
    }
}
