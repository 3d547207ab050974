//! The Nostr protocol (`[protocol] kind = "nostr"`, issue 10) end to end
//! against a real relay squall did not write: `nostr-relay` from PyPI with
//! its default configuration (it checks every event's id, BIP-340
//! signature and `created_at`), installed by `scripts/servers` into
//! `target/py-servers`. The shipped `scenarios/nostr.toml` as it stands (it
//! starts the relay itself) and unchanged against a relay the test started
//! (`--set target.kind=url`): exit 0, 0 lost, every publish's `OK`
//! accepted. Forged signatures: every publish refused as `invalid`, counted
//! as a rejection, not as a delivery, and the run fails.
//!
//! The parser's property tests live with it, in `squall-loadgen`.
//!
//! Without the relay these tests say SKIPPED, except under `CI=true`, where
//! they fail.

mod common;

use common::{Finished, Scratch, run_scenario, u};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One run at a time: each loads the 2-core machine with a Python relay.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
/// The relay's start (a fresh SQLite database to migrate) included.
const LIMIT: Duration = Duration::from_secs(150);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn scenario() -> PathBuf {
    repo().join("scenarios/nostr.toml")
}

/// The virtualenv's Python, if `nostr-relay` is installed in it; under
/// `CI=true` its absence fails the test.
fn relay_python() -> Option<PathBuf> {
    let venv = repo().join("target/py-servers/bin");
    if venv.join("nostr-relay").is_file() {
        return Some(venv.join("python"));
    }
    let why = format!(
        "nostr-relay is not installed in {} (scripts/servers installs it)",
        venv.display()
    );
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "under CI=true: {why}"
    );
    eprintln!("SKIPPED: {why}");
    None
}

/// A relay the test started on a free port; it and its gunicorn worker are
/// stopped on drop (their own process group).
struct Relay {
    child: Child,
    port: u16,
}

impl Relay {
    /// `nostr-relay` with its default configuration, through `run.py`.
    fn start(python: &Path) -> Relay {
        let port = free_port();
        let mut command = Command::new(python);
        command
            .arg(repo().join("tests/servers/nostr/run.py"))
            .arg(port.to_string());
        Relay::spawn(command, port)
    }

    /// The same relay with NIP-42 authentication on (`run.py --auth`),
    /// its data in `data`.
    fn start_with_auth(python: &Path, data: &Path) -> Relay {
        let port = free_port();
        let mut command = Command::new(python);
        command
            .arg(repo().join("tests/servers/nostr/run.py"))
            .arg("--auth")
            .arg(port.to_string())
            .arg(data);
        Relay::spawn(command, port)
    }

    fn spawn(mut command: Command, port: u16) -> Relay {
        let child = command
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the relay starts");
        let mut relay = Relay { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        while root_status(port) != Some(200) {
            assert!(
                relay.child.try_wait().unwrap().is_none(),
                "nostr-relay exited before it was ready"
            );
            assert!(Instant::now() < deadline, "nostr-relay not ready in 60 s");
            std::thread::sleep(Duration::from_millis(200));
        }
        relay
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/", self.port)
    }

    /// The `--set` overrides that point the scenario at this relay.
    fn url_target(&self) -> Vec<String> {
        vec![
            "target.kind=url".to_string(),
            format!("target.url={}", self.url()),
            format!("target.health=http://127.0.0.1:{}/", self.port),
        ]
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let group = -(self.child.id() as libc::pid_t);
        // SAFETY: kill(2) on the process group this test created.
        unsafe { libc::kill(group, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // SAFETY: as above; whatever is left of the group goes.
        unsafe { libc::kill(group, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The status of `GET /` (nostr-relay's health URL), or `None`.
fn root_status(port: u16) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// Runs the shipped scenario with `sets` (each passed as `--set`); the
/// results file is checked against `results/schema.json`.
fn run(scratch: &Scratch, sets: &[String]) -> (Finished, Value) {
    let mut args = Vec::new();
    for set in sets {
        args.extend(["--set", set.as_str()]);
    }
    run_scenario(scratch, &scenario(), &args, LIMIT)
}

/// Exit 0, every socket held, deliveries and none lost, and every publish
/// accepted by the relay, each signed ahead of its time.
fn assert_healthy(finished: &Finished, results: &Value) {
    let report = format!("stderr:\n{}\nresults: {results:#}", finished.stderr);
    assert_eq!(finished.code(), 0, "{report}");
    let sent = u(results, "/messages/sent");
    assert!(sent > 0, "{report}");
    assert!(u(results, "/messages/received") > 0, "{report}");
    assert_eq!(u(results, "/messages/lost"), 0, "{report}");
    assert_eq!(u(results, "/connections/failed"), 0, "{report}");
    assert_eq!(results["connections"]["dropped"], json!({}), "{report}");
    assert_eq!(u(results, "/nostr/accepted"), sent, "{report}");
    assert_eq!(u(results, "/nostr/rejected"), 0, "{report}");
    assert_eq!(u(results, "/nostr/unanswered"), 0, "{report}");
    assert_eq!(u(results, "/nostr/signed_late"), 0, "{report}");
    assert_eq!(u(results, "/nostr/ok_ms/count"), sent, "{report}");
    assert!(
        results["thresholds"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "rejected" && t["limit"] == 0.0),
        "a Nostr run gates on refusals by default: {report}"
    );
}

#[test]
fn the_shipped_nostr_scenario_delivers_everything_from_the_relay_it_starts() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if relay_python().is_none() {
        return;
    }
    let scratch = Scratch::new("nostr-shipped");
    let (finished, results) = run(&scratch, &["duration=5s".into()]);
    assert_healthy(&finished, &results);
    assert_eq!(results["connections"]["errors"], json!({}));
}

#[test]
fn the_nostr_scenario_runs_unchanged_against_a_running_relay() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(python) = relay_python() else {
        return;
    };
    let relay = Relay::start(&python);
    let scratch = Scratch::new("nostr-url");
    let mut sets = relay.url_target();
    sets.push("duration=5s".into());
    let (finished, results) = run(&scratch, &sets);
    assert_healthy(&finished, &results);
    assert_eq!(
        results["target"],
        json!(relay.url()),
        "the run went to the relay started here"
    );
}

/// Every event signed wrongly on purpose: the relay answers each with
/// `["OK", "", false, "invalid: Bad signature"]` (nostr-relay leaves the id
/// out there; the answer is the socket's oldest publish). After a refusal
/// nostr-relay stalls that socket for 2 s, then 4 s, ...: one event per
/// publisher (2 events/s over 10 publishers for 5 s) keeps every answer
/// within the drain.
#[test]
fn forged_signatures_are_counted_as_rejections_not_deliveries() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(python) = relay_python() else {
        return;
    };
    let relay = Relay::start(&python);
    let scratch = Scratch::new("nostr-forged");
    let mut sets = relay.url_target();
    sets.extend(
        [
            "duration=5s",
            "drain=5s",
            "load.rate=2",
            "protocol.forge_signatures=true",
        ]
        .map(String::from),
    );
    let (finished, results) = run(&scratch, &sets);
    let report = format!("stderr:\n{}\nresults: {results:#}", finished.stderr);
    let sent = u(&results, "/messages/sent");
    assert!(sent >= 5, "{report}");
    assert_eq!(u(&results, "/nostr/rejected"), sent, "{report}");
    assert_eq!(
        results["nostr"]["rejected_by_reason"],
        json!({ "invalid": sent }),
        "{report}"
    );
    assert_eq!(u(&results, "/nostr/accepted"), 0, "{report}");
    assert_eq!(
        results["nostr"]["examples"]["invalid"],
        "invalid: Bad signature"
    );
    assert_eq!(
        u(&results, "/messages/received"),
        0,
        "not deliveries: {report}"
    );
    assert_eq!(finished.code(), 3, "not a pass: {report}");
    let rejected = results["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "rejected")
        .expect("the default rejected threshold");
    assert_eq!(rejected["passed"], false, "{report}");
    assert!(
        results["verdict"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s.as_str().unwrap().starts_with(&format!(
                "the relay refused {sent} of {sent} publishes (invalid ×{sent}"
            ))),
        "{report}"
    );
}

/// NIP-42: a relay with authentication on challenges every socket with
/// `["AUTH", challenge]` as it opens. squall answers each with a kind-22242
/// event signed by the socket's key, tagged with the relay's URL and the
/// challenge; nostr-relay checks the signature, kind, `created_at`, URL and
/// challenge and answers a bad one with a `NOTICE` ("invalid: ..."). Every
/// socket answered, no `NOTICE`, and the run as healthy as without it.
#[test]
fn nip42_challenges_are_answered_with_events_the_relay_accepts() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(python) = relay_python() else {
        return;
    };
    let scratch = Scratch::new("nostr-auth");
    let relay = Relay::start_with_auth(&python, &scratch.0);
    let mut sets = relay.url_target();
    sets.push("duration=5s".into());
    let (finished, results) = run(&scratch, &sets);
    assert_healthy(&finished, &results);
    let report = format!("results: {results:#}");
    assert_eq!(
        u(&results, "/nostr/auth"),
        u(&results, "/connections/established"),
        "one challenge per socket, each answered: {report}"
    );
    assert_eq!(
        u(&results, "/nostr/notices"),
        0,
        "no answer refused: {report}"
    );
    assert_eq!(u(&results, "/nostr/auth_refused"), 0, "{report}");
}
