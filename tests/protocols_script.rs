//! The script protocol (`[protocol] kind = "script"`) end to end against the
//! real servers of `tests/servers` (the `socket.io` and `graphql-ws` npm
//! packages, installed by `scripts/servers`): the shipped
//! `scenarios/socketio.toml` and `scenarios/graphql-ws.toml` as they stand
//! (they start the server themselves), and unchanged against a server the
//! test started (`--set target.kind=url`). A healthy run exits 0 with
//! deliveries and none lost; the Socket.IO keepalive holds sockets open past
//! the server's ping timeout (and without it the server drops them); replies
//! matching `errors` are counted.
//!
//! Without `node` or the servers' npm packages these tests say SKIPPED,
//! except under `CI=true`, where they fail.

mod common;

use common::{Finished, Scratch, run_scenario, u};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One run at a time: each loads the 2-core machine with a Node server and
/// 100 sockets.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
const LIMIT: Duration = Duration::from_secs(120);
/// Long enough for a few rounds of every timer involved, short for a test.
const DURATION: &str = "duration=5s";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The servers under test.
#[derive(Debug, Clone, Copy)]
enum Server {
    SocketIo,
    GraphqlWs,
}

impl Server {
    fn dir(self) -> PathBuf {
        repo().join(match self {
            Server::SocketIo => "tests/servers/socketio",
            Server::GraphqlWs => "tests/servers/graphql",
        })
    }

    /// The npm package the server is built on.
    fn package(self) -> &'static str {
        match self {
            Server::SocketIo => "socket.io",
            Server::GraphqlWs => "graphql-ws",
        }
    }

    fn scenario(self) -> PathBuf {
        repo().join(match self {
            Server::SocketIo => "scenarios/socketio.toml",
            Server::GraphqlWs => "scenarios/graphql-ws.toml",
        })
    }

    fn ws_url(self, port: u16) -> String {
        match self {
            Server::SocketIo => {
                format!("ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket")
            }
            Server::GraphqlWs => format!("ws://127.0.0.1:{port}/graphql"),
        }
    }

    /// Whether `node` and the server's packages are there; under `CI=true`
    /// their absence fails the test.
    fn installed(self) -> bool {
        let node = Command::new("node")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let package = self
            .dir()
            .join("node_modules")
            .join(self.package())
            .join("package.json");
        if node && package.is_file() {
            return true;
        }
        let why = if node {
            format!(
                "{} is missing (scripts/servers installs it)",
                package.display()
            )
        } else {
            "node is not on PATH (the Socket.IO and graphql-ws servers need Node.js)".to_string()
        };
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "under CI=true: {why}"
        );
        eprintln!("SKIPPED: {why}");
        false
    }
}

/// A server the test started on a free port, killed on drop.
struct Running {
    child: Child,
    port: u16,
}

impl Running {
    /// Starts `server` with `env` added and waits for its health URL.
    fn start(server: Server, env: &[(&str, &str)]) -> Running {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("node")
            .arg(server.dir().join("server.js"))
            .arg(port.to_string())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node starts");
        let mut running = Running { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while health_status(port) != Some(200) {
            assert!(
                running.child.try_wait().unwrap().is_none(),
                "{server:?} server exited before it was ready"
            );
            assert!(
                Instant::now() < deadline,
                "{server:?} server not ready in 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        running
    }

    /// The `--set` overrides that point a scenario at this server.
    fn url_target(&self, server: Server) -> Vec<String> {
        vec![
            "target.kind=url".to_string(),
            format!("target.url={}", server.ws_url(self.port)),
            format!("target.health=http://127.0.0.1:{}/health", self.port),
        ]
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

/// Runs `scenario` with `sets` (each passed as `--set`).
fn run(scratch: &Scratch, scenario: &Path, sets: &[String]) -> (Finished, Value) {
    let mut args = Vec::new();
    for set in sets {
        args.extend(["--set", set.as_str()]);
    }
    run_scenario(scratch, scenario, &args, LIMIT)
}

/// Exit 0, every socket held, deliveries and none of them lost.
fn assert_healthy(finished: &Finished, results: &Value) {
    let report = format!("stderr:\n{}\nresults: {results:#}", finished.stderr);
    assert_eq!(finished.code(), 0, "{report}");
    assert!(u(results, "/messages/received") > 0, "{report}");
    assert_eq!(u(results, "/messages/lost"), 0, "{report}");
    assert_eq!(u(results, "/connections/failed"), 0, "{report}");
    assert_eq!(
        results["connections"]["dropped"],
        serde_json::json!({}),
        "{report}"
    );
}

/// The shipped scenario's text with `line` (which must be there) replaced.
fn edited(server: Server, line: &str, with: &str) -> String {
    let text = std::fs::read_to_string(server.scenario()).unwrap();
    assert!(text.contains(line), "{line:?} in {:?}", server.scenario());
    text.replacen(line, with, 1)
}

#[test]
fn the_shipped_socketio_scenario_delivers_everything_from_the_server_it_starts() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if !Server::SocketIo.installed() {
        return;
    }
    let scratch = Scratch::new("script-socketio");
    let (finished, results) = run(&scratch, &Server::SocketIo.scenario(), &[DURATION.into()]);
    assert_healthy(&finished, &results);
    assert_eq!(results["connections"]["errors"], serde_json::json!({}));
}

#[test]
fn the_shipped_graphql_ws_scenario_delivers_everything_from_the_server_it_starts() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if !Server::GraphqlWs.installed() {
        return;
    }
    let scratch = Scratch::new("script-graphql");
    let (finished, results) = run(&scratch, &Server::GraphqlWs.scenario(), &[DURATION.into()]);
    assert_healthy(&finished, &results);
    assert_eq!(results["connections"]["errors"], serde_json::json!({}));
}

#[test]
fn the_graphql_ws_scenario_runs_unchanged_against_a_running_server() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if !Server::GraphqlWs.installed() {
        return;
    }
    let server = Running::start(Server::GraphqlWs, &[]);
    let scratch = Scratch::new("script-graphql-url");
    let mut sets = server.url_target(Server::GraphqlWs);
    sets.push(DURATION.into());
    let (finished, results) = run(&scratch, &Server::GraphqlWs.scenario(), &sets);
    assert_healthy(&finished, &results);
    assert_eq!(
        results["target"],
        serde_json::json!(Server::GraphqlWs.ws_url(server.port)),
        "the run went to the server started here"
    );
}

/// Engine.IO pings every second and drops a socket whose pong is more than a
/// second late: a 5 s run outlives both several times. With the scenario's
/// keepalive rule (`2` → `3`) no socket is dropped; without it the server
/// drops them all, which shows that the first half measured something.
#[test]
fn the_socketio_keepalive_holds_sockets_past_the_servers_ping_timeout() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if !Server::SocketIo.installed() {
        return;
    }
    let server = Running::start(
        Server::SocketIo,
        &[("PING_INTERVAL_MS", "1000"), ("PING_TIMEOUT_MS", "1000")],
    );
    let scratch = Scratch::new("script-socketio-keepalive");
    let mut sets = server.url_target(Server::SocketIo);
    sets.push(DURATION.into());

    let (finished, results) = run(&scratch, &Server::SocketIo.scenario(), &sets);
    assert_healthy(&finished, &results);
    assert_eq!(u(&results, "/connections/established"), 100);

    let silent = scratch.scenario(
        "no-keepalive",
        &edited(
            Server::SocketIo,
            "keepalive = [ { when = '^2$', reply = '3' } ]",
            "",
        ),
    );
    let (finished, results) = run(&scratch, &silent, &sets);
    let dropped: u64 = results["connections"]["dropped"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert!(
        dropped >= 50,
        "without pongs the server drops the sockets: {results:#}"
    );
    assert_ne!(
        finished.code(),
        0,
        "target disconnects breach the default threshold"
    );
}

/// A connect to a namespace the server does not have is refused with a `44`
/// packet; an invalid GraphQL operation is answered with an `error` message.
/// One such frame per socket, counted under its pattern, exactly, while the
/// rest of the run goes on unharmed.
#[test]
fn replies_matching_errors_are_counted_per_pattern() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let cases = [
        (
            Server::SocketIo,
            "  { expect = '^40', timeout = \"5s\" },\n",
            "  { expect = '^40', timeout = \"5s\" },\n  { send = '40/nope,' },\n",
        ),
        (
            Server::GraphqlWs,
            "  { expect = '\"type\":\"connection_ack\"', timeout = \"5s\" },\n",
            "  { expect = '\"type\":\"connection_ack\"', timeout = \"5s\" },\n  \
             { send = '{\"id\":\"bad\",\"type\":\"subscribe\",\"payload\":{\"query\":\"mutation { nope }\"}}' },\n",
        ),
    ];
    for (server, line, with) in cases {
        if !server.installed() {
            return;
        }
        let scratch = Scratch::new("script-errors");
        let scenario = scratch.scenario("errors", &edited(server, line, with));
        let (finished, results) = run(&scratch, &scenario, &[DURATION.into()]);
        assert_healthy(&finished, &results);
        assert_eq!(
            results["connections"]["errors"],
            serde_json::json!({ "relay_error_pattern_1": 100 }),
            "{server:?}: one refusal per socket"
        );
    }
}
