//! Issue 8, "the verdict is true": a hang means no progress. The watchdog
//! against a target written here (real sockets: HTTP health, WebSocket
//! upgrades and ping frames, each switchable), fed the load's progress as
//! the CLI feeds it, once a second:
//!
//! * failing probes while deliveries flow are `degraded`, never a hang (and
//!   the same target without the feed is one, so the probes did fail);
//! * probes failing and nothing arriving while deliveries are due: an
//!   `unresponsive` hang within about 2 s;
//! * new upgrades that stall while the existing socket answers: `accept-stall`;
//! * one topic whose messages stop while the others deliver:
//!   `delivery-stall` naming it, ended when it delivers again;
//! * the CLI's word that the process ended: `exited` at once;
//! * probes that fail, answer once and fail again: one hang, not two;
//! * a closed port: `unreachable`;
//! * and the reference relay's known-answer bugs of issue 8
//!   (`slow-health`, `accept-stall`, `exit-after`) as a real child process.
//!
//! Bounds are generous for a loaded 2-core box ([`LOADED_MARGIN`] on top of
//! each); the measured figures are printed.

mod common;

use common::{RelayProcess, SECRET};
use squall_chaos::scenario::WatchdogSettings;
use squall_chaos::tokens;
use squall_chaos::watchdog::probe::PingStyle;
use squall_chaos::watchdog::{
    HangKind, HangRecord, Progress, StderrTail, TargetProcess, TopicProgress, Watchdog,
    WatchdogConfig, WatchdogStatus,
};
use squall_chaos::ws::frame::{Frame, OP_CLOSE, OP_PING, OP_PONG};
use squall_proto::Origin;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Slack on every bound for a loaded shared machine.
const LOADED_MARGIN: Duration = Duration::from_millis(1500);
/// How long the test target lives (and holds an unanswered request) at most.
const TARGET_LIFE: Duration = Duration::from_secs(120);

/// The tests measure timing: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// What the test target does, switchable while it runs.
#[derive(Debug, Default)]
struct Knobs {
    /// `/health` answers after this many ms.
    health_delay_ms: AtomicU64,
    /// Answer nothing at all (health, upgrades, pings): a stopped process.
    mute: AtomicBool,
    /// Read new upgrade requests but never answer them; `/health` and
    /// existing sockets keep working.
    stall_upgrades: AtomicBool,
}

/// A target on a thread and runtime of its own: `GET /health` answers 200
/// (after `health_delay_ms`), `GET /ws` upgrades and answers ping frames.
/// Returns its address; it stops after [`TARGET_LIFE`].
fn test_target(knobs: Arc<Knobs>) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let serve = async {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(serve(stream, knobs.clone()));
                }
            };
            let _ = tokio::time::timeout(TARGET_LIFE, serve).await;
        });
    });
    rx.recv().unwrap()
}

/// Waits while `flag` holds (bounded by [`TARGET_LIFE`]).
async fn hold_while(flag: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + TARGET_LIFE;
    while flag() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn serve(mut stream: TcpStream, knobs: Arc<Knobs>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mute = || knobs.mute.load(Ordering::Relaxed);
    if head.starts_with("GET /health") {
        hold_while(mute).await;
        let delay = knobs.health_delay_ms.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            .await;
        return;
    }
    let Some(key) = head
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
    else {
        let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\n\r\n").await;
        return;
    };
    hold_while(|| mute() || knobs.stall_upgrades.load(Ordering::Relaxed)).await;
    let accept =
        tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.trim().as_bytes());
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    if stream.write_all(response.as_bytes()).await.is_err() {
        return;
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = match tokio::time::timeout(TARGET_LIFE, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return,
        };
        buf.extend_from_slice(&chunk[..n]);
        while let Ok(Some((frame, used))) = Frame::decode(&buf, 1 << 20) {
            buf.drain(..used);
            let answer = match frame.opcode {
                OP_PING => OP_PONG,
                OP_CLOSE => OP_CLOSE,
                _ => continue,
            };
            hold_while(mute).await;
            let reply = Frame {
                mask: None,
                ..Frame::client(answer, frame.payload)
            };
            if stream.write_all(&reply.encode()).await.is_err() || answer == OP_CLOSE {
                return;
            }
        }
    }
}

fn out_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("squall-verdict-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A watchdog on the test target: health GET, ping frames on its own
/// socket, a fresh upgrade every round; default interval and timeout.
fn watchdog(addr: SocketAddr, name: &str, origin: Origin) -> Watchdog {
    let mut config = WatchdogConfig::new(WatchdogSettings::default(), origin, out_dir(name), name);
    config.health_url = Some(format!("http://{addr}/health"));
    config.ws_url = Some(format!("ws://{addr}/ws"));
    config.ping = PingStyle::Frame;
    config.settings.diagnostics = false;
    Watchdog::spawn(config).expect("watchdog starts")
}

/// Waits until the watchdog has seen every probe answer (bounded).
fn wait_ok(watchdog: &Watchdog) {
    for _ in 0..200 {
        let status = watchdog.status();
        if status.state == "ok" && status.ping_ms.is_some() && status.accept_ms.is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "the watchdog never saw the target answer: {:?}",
        watchdog.status()
    );
}

/// The load's progress as the CLI feeds it: once a second, each topic
/// publishing 100 messages and, unless starved or stalled, receiving them.
struct Feeder {
    origin: Origin,
    next: Instant,
    due: u64,
    received: u64,
    topics: Vec<TopicProgress>,
}

impl Feeder {
    fn new(origin: Origin, topics: &[&str]) -> Self {
        Self {
            origin,
            next: Instant::now(),
            due: 0,
            received: 0,
            topics: topics
                .iter()
                .map(|name| TopicProgress {
                    name: name.to_string(),
                    subscribers: 10,
                    ..TopicProgress::default()
                })
                .collect(),
        }
    }

    /// Feeds a sample if a second has passed since the last one: nothing
    /// arrives when `starving`, nothing on the topics named in `stalled`.
    fn tick(&mut self, watchdog: &Watchdog, starving: bool, stalled: &[&str]) {
        if Instant::now() < self.next {
            return;
        }
        self.next += Duration::from_secs(1);
        self.due += 100 * self.topics.len().max(1) as u64;
        if self.topics.is_empty() && !starving {
            self.received += 100;
        }
        for topic in &mut self.topics {
            topic.sent += 100;
            if !starving && !stalled.contains(&topic.name.as_str()) {
                topic.received += 100;
                self.received += 100;
            }
        }
        watchdog.note_progress(Progress {
            at_s: self.origin.elapsed_s(),
            due: self.due,
            received: self.received,
            overdue: if starving {
                self.due - self.received
            } else {
                0
            },
            // The load's sockets are all up: no upgrade of its own completes.
            established: 100,
            topics: self.topics.clone(),
        });
    }
}

/// Polls every 20 ms for `within`, feeding as it goes, until `until` holds;
/// returns the status that satisfied it.
fn poll(
    watchdog: &Watchdog,
    mut feed: impl FnMut(),
    within: Duration,
    until: impl Fn(&WatchdogStatus, &[HangRecord]) -> bool,
) -> Option<WatchdogStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        feed();
        let status = watchdog.status();
        if until(&status, &watchdog.hangs()) {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn failing_probes_while_deliveries_flow_are_degraded_never_a_hang() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let knobs = Arc::new(Knobs::default());
    let addr = test_target(knobs.clone());
    let origin = Origin::now();
    let fed = watchdog(addr, "flowing", origin);
    let unfed = watchdog(addr, "unfed", origin);
    let mut feeder = Feeder::new(origin, &[]);
    let warm = poll(
        &fed,
        || feeder.tick(&fed, false, &[]),
        Duration::from_secs(10),
        |s, _| s.state == "ok" && s.ping_ms.is_some() && s.accept_ms.is_some(),
    );
    assert!(warm.is_some(), "{:?}", fed.status());
    // Two samples at least, so the feed has a say before the probes fail.
    let fed_twice = poll(
        &fed,
        || feeder.tick(&fed, false, &[]),
        Duration::from_secs(3),
        |_, _| false,
    );
    assert!(fed_twice.is_none());

    // Health now answers after 3 s, three times the timeout: every round
    // fails, as with a stopped health thread, while deliveries flow.
    knobs.health_delay_ms.store(3000, Ordering::Relaxed);
    let mut states = std::collections::BTreeSet::new();
    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until {
        feeder.tick(&fed, false, &[]);
        let status = fed.status();
        assert_ne!(status.state, "hung", "{status:?}");
        states.insert(status.state);
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = fed.status();
    assert!(fed.stop().is_empty(), "a delivering target was called hung");
    assert!(states.contains("degraded"), "{states:?}");
    assert_eq!(status.state, "degraded", "{status:?}");
    assert_eq!(status.health_ms, None, "health never answers in time");
    assert!(
        status.ping_ms.is_some() && status.accept_ms.is_some(),
        "{status:?}"
    );
    // The same probes without the feed: a hang, so they did fail.
    let hangs = unfed.stop();
    assert_eq!(hangs.len(), 1, "{hangs:?}");
    assert_eq!(hangs[0].kind, HangKind::Unresponsive);
    assert!(
        hangs[0].reason.contains("health: no answer within 1000ms"),
        "{hangs:?}"
    );
}

#[test]
fn no_delivery_while_due_and_failing_probes_make_an_unresponsive_hang_within_about_2_s() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let knobs = Arc::new(Knobs::default());
    let addr = test_target(knobs.clone());
    let origin = Origin::now();
    let watchdog = watchdog(addr, "starved", origin);
    let mut feeder = Feeder::new(origin, &[]);
    let warm = poll(
        &watchdog,
        || feeder.tick(&watchdog, false, &[]),
        Duration::from_secs(10),
        |s, _| s.state == "ok" && s.ping_ms.is_some() && s.accept_ms.is_some(),
    );
    assert!(warm.is_some(), "{:?}", watchdog.status());

    // The target stops answering anything and nothing arrives any more.
    let onset_s = origin.elapsed_s();
    knobs.mute.store(true, Ordering::Relaxed);
    let bound = Duration::from_secs(2) + LOADED_MARGIN;
    let hung = poll(
        &watchdog,
        || feeder.tick(&watchdog, true, &[]),
        bound + Duration::from_secs(5),
        |_, h| !h.is_empty(),
    );
    assert!(hung.is_some(), "no hang: {:?}", watchdog.status());
    let hang = watchdog.hangs().remove(0);
    let took = hang.detected_s - onset_s;
    eprintln!("starved and unanswered: hung {took:.3} s after the onset");
    assert_eq!(hang.kind, HangKind::Unresponsive, "{hang:?}");
    assert!(
        took <= bound.as_secs_f64(),
        "detected {took:.3}s after the onset; bound {bound:?}"
    );
    assert!(hang.started_s >= onset_s - 0.3, "{hang:?} onset {onset_s}");
    assert!(
        hang.reason
            .contains("no delivery while deliveries were due"),
        "{hang:?}"
    );
    let status = watchdog.status();
    assert_eq!(
        (status.state.as_str(), status.hang_kind),
        ("hung", Some(HangKind::Unresponsive))
    );

    // It answers and delivers again: the hang ends.
    knobs.mute.store(false, Ordering::Relaxed);
    let ended = poll(
        &watchdog,
        || feeder.tick(&watchdog, false, &[]),
        Duration::from_secs(10),
        |_, h| h[0].ended_s.is_some(),
    );
    assert!(ended.is_some(), "{:?}", watchdog.hangs());
    assert_eq!(watchdog.stop().len(), 1);
}

#[test]
fn upgrades_that_stall_while_the_socket_answers_are_an_accept_stall() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let knobs = Arc::new(Knobs::default());
    let addr = test_target(knobs.clone());
    let origin = Origin::now();
    let watchdog = watchdog(addr, "accept", origin);
    let mut feeder = Feeder::new(origin, &[]);
    wait_ok(&watchdog);

    let onset_s = origin.elapsed_s();
    knobs.stall_upgrades.store(true, Ordering::Relaxed);
    let bound = WatchdogSettings::default().detection_bound() + LOADED_MARGIN;
    let hung = poll(
        &watchdog,
        || feeder.tick(&watchdog, false, &[]),
        bound + Duration::from_secs(5),
        |_, h| !h.is_empty(),
    );
    assert!(hung.is_some(), "no hang: {:?}", watchdog.status());
    let hang = watchdog.hangs().remove(0);
    let took = hang.detected_s - onset_s;
    eprintln!("accept-stall: detected {took:.3} s after the onset");
    assert_eq!(hang.kind, HangKind::AcceptStall, "{hang:?}");
    assert!(
        took <= bound.as_secs_f64(),
        "detected {took:.3}s after the onset; bound {bound:?}"
    );
    assert!(
        hang.reason.contains("accept: upgrade: timed out"),
        "{hang:?}"
    );
    let status = watchdog.status();
    assert!(
        status.ping_ms.is_some() && status.health_ms.is_some(),
        "{status:?}"
    );
    assert_eq!(status.accept_ms, None, "{status:?}");

    knobs.stall_upgrades.store(false, Ordering::Relaxed);
    let ended = poll(
        &watchdog,
        || feeder.tick(&watchdog, false, &[]),
        Duration::from_secs(10),
        |_, h| h[0].ended_s.is_some(),
    );
    assert!(ended.is_some(), "{:?}", watchdog.hangs());
    assert_eq!(watchdog.stop().len(), 1);
}

#[test]
fn a_topic_that_stops_while_others_deliver_is_a_delivery_stall_naming_it() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let knobs = Arc::new(Knobs::default());
    let addr = test_target(knobs.clone());
    let origin = Origin::now();
    let watchdog = watchdog(addr, "topic", origin);
    let mut feeder = Feeder::new(origin, &["room-a", "room-b", "room-c"]);
    let calm = poll(
        &watchdog,
        || feeder.tick(&watchdog, false, &[]),
        Duration::from_secs(3),
        |_, h| !h.is_empty(),
    );
    assert!(calm.is_none(), "{:?}", watchdog.hangs());

    let onset_s = origin.elapsed_s();
    let bound = Duration::from_secs(2) + LOADED_MARGIN;
    let hung = poll(
        &watchdog,
        || feeder.tick(&watchdog, false, &["room-b"]),
        bound + Duration::from_secs(5),
        |_, h| !h.is_empty(),
    );
    assert!(hung.is_some(), "no hang: {:?}", watchdog.status());
    let hang = watchdog.hangs().remove(0);
    let took = hang.detected_s - onset_s;
    eprintln!("delivery-stall: detected {took:.3} s after the onset");
    assert_eq!(hang.kind, HangKind::DeliveryStall, "{hang:?}");
    assert_eq!(hang.topics, vec!["room-b".to_string()]);
    assert!(
        took <= bound.as_secs_f64(),
        "detected {took:.3}s after the onset; bound {bound:?}"
    );
    assert!(
        hang.started_s <= onset_s + 0.1,
        "its last delivery: {hang:?}"
    );

    // Still stalled for a while: still one hang. Then it delivers again.
    let more = poll(
        &watchdog,
        || feeder.tick(&watchdog, false, &["room-b"]),
        Duration::from_secs(2),
        |_, h| h.len() > 1 || h[0].ended_s.is_some(),
    );
    assert!(more.is_none(), "{:?}", watchdog.hangs());
    let ended = poll(
        &watchdog,
        || feeder.tick(&watchdog, false, &[]),
        Duration::from_secs(10),
        |_, h| h[0].ended_s.is_some(),
    );
    assert!(ended.is_some(), "{:?}", watchdog.hangs());
    assert_eq!(watchdog.stop().len(), 1);
}

#[test]
fn a_process_that_ends_is_an_exited_hang_at_once_with_its_stderr() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let knobs = Arc::new(Knobs::default());
    let addr = test_target(knobs.clone());
    let mut child = std::process::Command::new("sh")
        .args([
            "-c",
            "echo 'panicked at relay/src/boom.rs' >&2; sleep 0.5; exit 70",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("sh runs");
    let tail = StderrTail::capture(child.stderr.take().unwrap(), None);
    let origin = Origin::now();
    let out = out_dir("exited");
    let mut config = WatchdogConfig::new(WatchdogSettings::default(), origin, &out, "exited");
    config.health_url = Some(format!("http://{addr}/health"));
    config.ws_url = Some(format!("ws://{addr}/ws"));
    config.ping = PingStyle::Frame;
    config.target = Some(TargetProcess {
        pid: child.id(),
        stderr_tail: Some(tail),
    });
    let watchdog = Watchdog::spawn(config).unwrap();
    wait_ok(&watchdog);

    let status = child.wait().unwrap();
    let how = format!("exited with status {}", status.code().unwrap());
    let exit_s = origin.elapsed_s();
    watchdog.target_exited(how);
    // At once: no probe timeout in between.
    let hangs = watchdog.hangs();
    assert_eq!(hangs.len(), 1, "{hangs:?}");
    assert_eq!(hangs[0].kind, HangKind::Exited);
    assert_eq!(hangs[0].reason, "exited with status 70");
    assert!(
        (hangs[0].detected_s - exit_s).abs() < 0.5,
        "{hangs:?} exit {exit_s}"
    );
    assert_eq!(watchdog.status().state, "hung");
    // The probes still answer (the test target is not the process): the
    // hang never ends, and a second word changes nothing.
    watchdog.target_exited("killed by signal 9");
    std::thread::sleep(Duration::from_millis(800));
    let path = poll(
        &watchdog,
        || {},
        Duration::from_secs(20),
        |_, h| h[0].diagnostics.is_some(),
    );
    assert!(path.is_some(), "no hang file: {:?}", watchdog.hangs());
    let hangs = watchdog.stop();
    assert_eq!(hangs.len(), 1, "{hangs:?}");
    assert_eq!(hangs[0].ended_s, None);
    assert_eq!(hangs[0].reason, "exited with status 70");
    let text = std::fs::read_to_string(hangs[0].diagnostics.as_ref().unwrap()).unwrap();
    assert!(
        text.starts_with("classification: exited: the process exited with status 70"),
        "{text}"
    );
    assert!(text.contains("kind:       exited"), "{text}");
    assert!(text.contains("panicked at relay/src/boom.rs"), "{text}");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn probes_that_fail_answer_once_and_fail_again_are_one_hang() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let knobs = Arc::new(Knobs::default());
    let addr = test_target(knobs.clone());
    let origin = Origin::now();
    let watchdog = watchdog(addr, "flap", origin);
    wait_ok(&watchdog);
    let bound = WatchdogSettings::default().detection_bound() + LOADED_MARGIN;
    for round in 0..2 {
        knobs.mute.store(true, Ordering::Relaxed);
        let hung = poll(
            &watchdog,
            || {},
            bound + Duration::from_secs(5),
            |s, _| s.state == "hung",
        );
        assert!(hung.is_some(), "round {round}: {:?}", watchdog.status());
        knobs.mute.store(false, Ordering::Relaxed);
        // Answers again, briefly.
        let answered = poll(
            &watchdog,
            || {},
            Duration::from_secs(10),
            |s, _| s.state != "hung",
        );
        assert!(answered.is_some(), "round {round}: {:?}", watchdog.hangs());
    }
    let hangs = watchdog.stop();
    assert_eq!(hangs.len(), 1, "one stall, one hang: {hangs:?}");
    assert!(hangs[0].ended_s.is_some(), "{hangs:?}");
}

#[test]
fn a_closed_port_is_unreachable() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let origin = Origin::now();
    let watchdog = watchdog(closed, "closed", origin);
    let bound = WatchdogSettings::default().detection_bound() + LOADED_MARGIN;
    let hung = poll(
        &watchdog,
        || {},
        bound + Duration::from_secs(5),
        |_, h| !h.is_empty(),
    );
    assert!(hung.is_some(), "{:?}", watchdog.status());
    let hangs = watchdog.stop();
    assert_eq!(hangs[0].kind, HangKind::Unreachable, "{hangs:?}");
    assert!(
        hangs[0].reason.contains("connect: Connection refused"),
        "{hangs:?}"
    );
    assert!(hangs[0].detected_s <= bound.as_secs_f64(), "{hangs:?}");
}

/// A watchdog on a relay process as `squall run` sets one up for the
/// builtin target: health, the squall Ping, a fresh upgrade with a token,
/// the process for diagnostics.
fn relay_watchdog(relay: &RelayProcess, name: &str, origin: Origin) -> Watchdog {
    let mut config = WatchdogConfig::new(WatchdogSettings::default(), origin, out_dir(name), name);
    config.health_url = Some(relay.http("/health"));
    config.ws_url = Some(relay.ws_url());
    config.tokens = Some(tokens::hs256_source(SECRET.to_string()));
    config.target = Some(TargetProcess {
        pid: relay.child.id(),
        stderr_tail: Some(relay.stderr.clone()),
    });
    Watchdog::spawn(config).expect("watchdog starts")
}

#[test]
fn the_relay_with_a_slow_health_that_still_delivers_is_degraded_not_hung() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let relay = RelayProcess::start("verdict-slow-health", &["--bug", "slow-health=3000"]);
    let origin = Origin::now();
    let watchdog = relay_watchdog(&relay, "slow-health", origin);
    let mut feeder = Feeder::new(origin, &["a", "b"]);
    let mut states = std::collections::BTreeSet::new();
    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until {
        feeder.tick(&watchdog, false, &[]);
        let status = watchdog.status();
        assert_ne!(status.state, "hung", "{status:?}");
        states.insert(status.state);
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = watchdog.status();
    let hangs = watchdog.stop();
    eprintln!("slow-health: states {states:?}, last {status:?}");
    assert!(hangs.is_empty(), "{hangs:?}");
    assert_eq!(status.state, "degraded", "{status:?}");
    assert!(
        status.ping_ms.is_some() && status.health_ms.is_none(),
        "{status:?}"
    );
}

#[test]
fn the_relay_whose_upgrades_stall_is_an_accept_stall() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let relay = RelayProcess::start("verdict-accept", &["--bug", "accept-stall=3s"]);
    let origin = Origin::now();
    let watchdog = relay_watchdog(&relay, "accept-stall", origin);
    let mut feeder = Feeder::new(origin, &["a", "b"]);
    wait_ok(&watchdog);
    let within = Duration::from_secs(3)
        + WatchdogSettings::default().detection_bound()
        + LOADED_MARGIN
        + Duration::from_secs(5);
    let hung = poll(
        &watchdog,
        || feeder.tick(&watchdog, false, &[]),
        within,
        |_, h| !h.is_empty(),
    );
    assert!(hung.is_some(), "{:?}", watchdog.status());
    let status = watchdog.status();
    let hangs = watchdog.stop();
    eprintln!("accept-stall relay: {hangs:?}");
    assert_eq!(hangs.len(), 1, "{hangs:?}");
    assert_eq!(hangs[0].kind, HangKind::AcceptStall, "{hangs:?}");
    assert!(
        status.ping_ms.is_some() && status.health_ms.is_some(),
        "{status:?}"
    );
    // A target that still works for everyone else is not stopped by gdb
    // for its stacks: the kernel's are read.
    let text =
        std::fs::read_to_string(hangs[0].diagnostics.as_ref().expect("a hang file")).unwrap();
    assert!(text.contains("kind:       accept-stall"), "{text}");
    assert!(text.contains("== stacks (/proc/PID/task/*/stack"), "{text}");
}

#[test]
fn the_relay_that_exits_is_one_exited_hang_at_once() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut relay = RelayProcess::start("verdict-exit", &["--bug", "exit-after=2s"]);
    let origin = Origin::now();
    let watchdog = relay_watchdog(&relay, "exit-after", origin);
    let mut feeder = Feeder::new(origin, &["a", "b"]);
    wait_ok(&watchdog);
    // As the CLI does: notice the exit within ~50 ms and say how.
    let mut status = None;
    for _ in 0..400 {
        feeder.tick(&watchdog, false, &[]);
        status = relay.child.try_wait().unwrap();
        if status.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let status = status.expect("the relay exits after 2 s");
    watchdog.target_exited(format!("exited with status {}", status.code().unwrap()));
    let hangs = watchdog.hangs();
    assert_eq!(hangs.len(), 1, "{hangs:?}");
    assert_eq!(hangs[0].kind, HangKind::Exited, "{hangs:?}");
    assert!(
        hangs[0].reason.ends_with("exited with status 70"),
        "{hangs:?}"
    );
    // The refused probes that follow are the same hang.
    std::thread::sleep(WatchdogSettings::default().detection_bound() * 2);
    let hangs = watchdog.stop();
    assert_eq!(hangs.len(), 1, "{hangs:?}");
    assert_eq!(hangs[0].ended_s, None);
}
