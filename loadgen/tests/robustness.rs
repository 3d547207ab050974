//! The engine's behaviour at the edges: errors named by kind, a target that
//! stops answering, Ctrl-C, JWT auth in the query and the header, the
//! template protocol, several targets, extra source addresses, and a remote
//! target refused before anything is sent.

mod common;

use common::{plan, relay, run};
use squall_loadgen::{
    Auth, Field, JwtAuth, JwtKey, LoadPlan, Origin, Placement, PlanError, Protocol,
};
use squall_relay::auth::AuthConfig;
use squall_relay::config::RelayConfig;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// A small, short plan.
fn short(url: &str) -> LoadPlan {
    LoadPlan {
        connections: 10,
        ramp: Duration::ZERO,
        topics: 2,
        publishers: 2,
        rate: 100.0,
        duration: Duration::from_secs(2),
        drain: Duration::from_millis(500),
        ..plan(url)
    }
}

fn jwt(secret: &str, placement: Placement) -> Auth {
    Auth::Jwt(JwtAuth {
        key: JwtKey::HS256(secret.to_string()),
        placement,
        sub_pattern: "user-{conn}".to_string(),
        roles: vec!["loadtest".to_string()],
        extra_claims: serde_json::Map::new(),
        ttl: Duration::from_secs(600),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port_is_counted_as_refused() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (report, _) = run(short(&format!("ws://127.0.0.1:{port}/ws"))).await;
    assert_eq!(report.connections.attempted, 10);
    assert_eq!(report.connections.failed, 10);
    assert_eq!(
        report.connections.errors.get("refused"),
        Some(&10),
        "{report:?}"
    );
    assert_eq!(report.messages.sent, 0);
    // Nothing could be delivered, so nothing was owed: no fake loss.
    assert_eq!(report.loss().expected, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_target_is_refused_by_the_engine_itself() {
    // DESIGN.md: traffic goes to loopback only unless allowed twice over.
    // The engine does not rely on its caller for that: without
    // `allow_remote` it fails in its own check, before any connection is
    // attempted and before any snapshot is sent.
    let plan = short("ws://10.0.0.1:9/ws");
    assert!(!plan.allow_remote, "loopback only by default");
    let (_stop, stop) = tokio::sync::watch::channel(false);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let start = Instant::now();
    let e = squall_loadgen::run(plan, Origin::now(), stop, tx)
        .await
        .unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "no connect timeout waited out"
    );
    assert!(matches!(e, PlanError::NotLoopback { .. }), "{e}");
    assert_eq!(e.field(), Field::AllowRemote);
    assert!(e.to_string().contains("10.0.0.1"), "{e}");
    assert!(
        rx.recv().await.is_none(),
        "no snapshot: the run never started"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_never_answers_ends_the_run_by_its_deadline() {
    // Accepts TCP connections and never says a word.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            sockets.push(s);
        }
    });
    let mut plan = short(&format!("ws://{addr}/ws"));
    plan.timeouts.connect = Duration::from_secs(1);
    let start = Instant::now();
    let (report, _) = run(plan.clone()).await;
    let took = start.elapsed();
    assert!(took < Duration::from_secs(2 + 1 + 10), "took {took:?}");
    assert_eq!(
        report.connections.errors.get("timeout"),
        Some(&10),
        "{report:?}"
    );
    // More sockets than may be in flight, with the default 10 s connect
    // timeout: the run still ends by its deadline, having tried what it could.
    plan.connections = 500;
    plan.timeouts.connect = Duration::from_secs(10);
    let start = Instant::now();
    let (report, _) = run(plan).await;
    let took = start.elapsed();
    assert!(took < Duration::from_secs(2 + 1 + 10), "took {took:?}");
    assert!(report.connections.attempted >= 100, "{report:?}");
    assert_eq!(report.connections.established, 0);
    held.abort();
}

/// A WebSocket server that upgrades, then never reads again.
async fn deaf_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            if let Ok(ws) = tokio_tungstenite::accept_async(s).await {
                sockets.push(ws);
            }
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_stops_reading_times_out_sends_and_acks() {
    let addr = deaf_server().await;
    let mut plan = short(&format!("ws://{addr}/ws"));
    plan.connections = 2;
    plan.publishers = 1;
    plan.rate = 2000.0;
    plan.payload_bytes = 60 * 1024;
    plan.timeouts.send = Duration::from_secs(1);
    plan.timeouts.subscribe_ack = Duration::from_secs(1);
    let start = Instant::now();
    let (report, _) = run(plan).await;
    assert!(start.elapsed() < Duration::from_secs(2 + 1 + 10));
    let errors = &report.connections.errors;
    assert_eq!(errors.get("send_timeout"), Some(&1), "{errors:?}");
    // The subscriber waits out its acknowledgement; the publisher may end on
    // its send timeout first.
    assert!(errors.get("subscribe_timeout") >= Some(&1), "{errors:?}");
    assert!(report.messages.sent > 0 && report.messages.sent < report.messages.scheduled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_early_still_reports_what_was_measured() {
    let relay = relay(RelayConfig::default());
    let mut plan = short(&relay.url);
    plan.duration = Duration::from_secs(60);
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let _ = stop_tx.send(true);
        tokio::time::sleep(Duration::from_secs(60)).await; // keep the sender alive
    });
    let start = Instant::now();
    let report = squall_loadgen::run(plan, Origin::now(), stop, tx)
        .await
        .unwrap();
    let took = start.elapsed();
    assert!(took < Duration::from_secs(6), "took {took:?}");
    assert!(!report.complete);
    assert!(report.messages.sent > 100, "{:?}", report.messages);
    assert!(report.messages.sent < report.messages.scheduled);
    let loss = report.loss();
    assert!(loss.expected > 0);
    assert_eq!(loss.lost, 0, "the drain still runs after a stop: {loss:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_in_the_query_or_the_header_and_401_on_a_bad_secret() {
    let relay = relay(RelayConfig {
        auth: AuthConfig::hs256(b"s3cret"),
        ..RelayConfig::default()
    });
    for placement in [Placement::Query, Placement::Header] {
        let mut plan = short(&relay.url);
        plan.auth = jwt("s3cret", placement);
        let (report, _) = run(plan).await;
        assert_eq!(
            report.connections.established, 10,
            "{placement:?}: {report:?}"
        );
        assert!(report.loss().expected > 0);
        assert_eq!(report.loss().lost, 0);
    }
    let mut plan = short(&relay.url);
    plan.auth = jwt("wrong", Placement::Query);
    let (report, _) = run(plan).await;
    assert_eq!(
        report.connections.errors.get("http_401"),
        Some(&10),
        "{report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_go_into_the_token_and_a_missing_one_is_a_403() {
    for (required, established, forbidden) in [("loadtest", 10, None), ("admin", 0, Some(&10))] {
        let relay = relay(RelayConfig {
            auth: AuthConfig::hs256(b"s3cret").with_required_role(required),
            ..RelayConfig::default()
        });
        let mut plan = short(&relay.url);
        plan.auth = jwt("s3cret", Placement::Header); // roles: ["loadtest"]
        let (report, _) = run(plan).await;
        assert_eq!(report.connections.established, established, "{required}");
        assert_eq!(
            report.connections.errors.get("http_403"),
            forbidden,
            "{required}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_template_protocol_measures_any_verbatim_relay() {
    let relay = relay(RelayConfig::default());
    let mut plan = short(&relay.url);
    plan.protocol = Protocol::Template {
        subscribe: r#"{"type":"Subscribe","data":{"topics":["{topic}"]}}"#.to_string(),
        publish: r#"{"type":"Broadcast","data":{"topic":"{topic}","payload":"{stamp}"}}"#
            .to_string(),
        settle: Duration::from_millis(200),
    };
    let (report, _) = run(plan).await;
    assert_eq!(report.connections.established, 10);
    let loss = report.loss();
    assert!(loss.expected > 500, "{loss:?}");
    assert_eq!(loss.lost, 0);
    assert_eq!(report.messages.duplicated, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_stay_whole_across_several_targets() {
    let (a, b) = (relay(RelayConfig::default()), relay(RelayConfig::default()));
    let mut plan = short(&a.url);
    plan.targets = vec![a.url.clone(), b.url.clone()];
    plan.topics = 4;
    plan.publishers = 4;
    let (report, _) = run(plan).await;
    assert_eq!(report.connections.established, 10);
    let loss = report.loss();
    assert!(loss.expected > 300, "{loss:?}");
    assert_eq!(loss.lost, 0);
    assert_eq!(report.messages.unexpected, 0);
}

/// A WebSocket server that accepts every upgrade, holds the socket, and
/// records each client's source address.
async fn peer_recording_server() -> (std::net::SocketAddr, Arc<Mutex<Vec<IpAddr>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // The peers seen, shared by the accept loop (which pushes) and the test
    // (which reads once the run is over). A `std::sync::Mutex`: each access
    // is one push or one clone, and no guard is held across an `.await`.
    let peers = Arc::new(Mutex::new(Vec::<IpAddr>::new()));
    let seen = peers.clone();
    tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((s, peer)) = listener.accept().await {
            seen.lock().unwrap().push(peer.ip());
            if let Ok(ws) = tokio_tungstenite::accept_async(s).await {
                sockets.push(ws);
            }
        }
    });
    (addr, peers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extra_source_addresses_take_over_past_the_per_source_count() {
    let (addr, peers) = peer_recording_server().await;
    let mut plan = short(&format!("ws://{addr}/ws"));
    plan.connections = 6;
    plan.publishers = 0;
    plan.subscriptions_per_connection = 0;
    plan.duration = Duration::from_millis(500);
    plan.drain = Duration::ZERO;
    plan.sockets_per_source = 2;
    plan.source_addrs = vec!["127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap()];
    let (report, _) = run(plan).await;
    assert_eq!(report.connections.established, 6, "{report:?}");
    let mut peers = peers.lock().unwrap().clone();
    peers.sort();
    let want: Vec<IpAddr> = [
        "127.0.0.1",
        "127.0.0.1",
        "127.0.0.2",
        "127.0.0.2",
        "127.0.0.3",
        "127.0.0.3",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    assert_eq!(peers, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_targets_get_127_0_0_2_and_on_without_being_told() {
    let (addr, peers) = peer_recording_server().await;
    let mut plan = short(&format!("ws://{addr}/ws"));
    plan.connections = 5;
    plan.publishers = 0;
    plan.subscriptions_per_connection = 0;
    plan.duration = Duration::from_millis(500);
    plan.drain = Duration::ZERO;
    plan.sockets_per_source = 2;
    let (report, _) = run(plan).await;
    assert_eq!(report.connections.established, 5, "{report:?}");
    let mut peers = peers.lock().unwrap().clone();
    peers.sort();
    let want: Vec<IpAddr> = [
        "127.0.0.1",
        "127.0.0.1",
        "127.0.0.2",
        "127.0.0.2",
        "127.0.0.3",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    assert_eq!(peers, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_and_es256_tokens_from_pem_keys() {
    // Throwaway key pairs made for this test only (openssl genpkey).
    let cases = [
        (
            JwtKey::RS256(include_str!("keys/rs256-test-only.pem").to_string()),
            include_str!("keys/rs256-test-only.pub.pem"),
        ),
        (
            JwtKey::ES256(include_str!("keys/es256-test-only.pem").to_string()),
            include_str!("keys/es256-test-only.pub.pem"),
        ),
    ];
    for (key, public) in cases {
        let relay = relay(RelayConfig {
            auth: AuthConfig::open()
                .with_public_key_pem(public.as_bytes())
                .unwrap(),
            ..RelayConfig::default()
        });
        let mut plan = short(&relay.url);
        plan.auth = Auth::Jwt(JwtAuth {
            key: key.clone(),
            ..match jwt("unused", Placement::Header) {
                Auth::Jwt(j) => j,
                Auth::None => unreachable!(),
            }
        });
        plan.check().unwrap();
        let (report, _) = run(plan).await;
        assert_eq!(report.connections.established, 10, "{key:?}: {report:?}");
        assert_eq!(report.loss().lost, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_answer_the_relays_pings() {
    // The relay pings every 100 ms and closes sockets silent for 500 ms:
    // subscribers with nothing to receive must stay up on their pongs alone.
    let relay = relay(RelayConfig {
        ping_interval: Duration::from_millis(100),
        idle_timeout: Duration::from_millis(500),
        ..RelayConfig::default()
    });
    let mut plan = short(&relay.url);
    plan.publishers = 0;
    plan.duration = Duration::from_secs(3);
    let (report, _) = run(plan).await;
    assert_eq!(report.connections.established, 10);
    assert!(
        report.connections.errors.is_empty(),
        "{:?}",
        report.connections.errors
    );
    assert_eq!(report.messages.subscribers_excluded, 0);
}

/// A relay that forwards every text frame to every other socket, never back
/// to its sender (like many chat relays), and answers nothing else.
async fn no_echo_relay() -> SocketAddr {
    use futures_util::{SinkExt, StreamExt};
    use tokio::sync::broadcast;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (hub, _) = broadcast::channel::<(u64, String)>(1 << 16);
    tokio::spawn(async move {
        let mut id = 0u64;
        while let Ok((s, _)) = listener.accept().await {
            id += 1;
            let (me, hub) = (id, hub.clone());
            // In the room from the accept on, before the upgrade's answer
            // leaves: a socket squall sees open must hear everything after
            // (subscribing after the handshake lost messages when this task
            // was scheduled late on a busy machine).
            let mut inbox = hub.subscribe();
            tokio::spawn(async move {
                let Ok(ws) = tokio_tungstenite::accept_async(s).await else {
                    return;
                };
                let (mut tx, mut rx) = ws.split();
                loop {
                    tokio::select! {
                        msg = rx.next() => match msg {
                            Some(Ok(m)) if m.is_text() => {
                                let _ = hub.send((me, m.into_text().unwrap().to_string()));
                            }
                            Some(Ok(_)) => {}
                            _ => return,
                        },
                        out = inbox.recv() => match out {
                            Ok((from, text)) if from != me => {
                                if tx.send(text.into()).await.is_err() { return }
                            }
                            Ok(_) => {}
                            Err(_) => return,
                        },
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_does_not_echo_to_the_sender_shows_no_false_loss() {
    let addr = no_echo_relay().await;
    let mut plan = short(&format!("ws://{addr}/ws"));
    plan.topics = 1; // one room: everyone hears everyone else
    plan.protocol = Protocol::Template {
        subscribe: r#"{"join":"{topic}"}"#.to_string(),
        publish: r#"{"say":"{stamp}"}"#.to_string(),
        settle: Duration::from_millis(200),
    };
    plan.echo = false;
    let (report, _) = run(plan.clone()).await;
    let loss = report.loss();
    assert!(loss.expected > 1000, "{loss:?}");
    assert_eq!(loss.lost, 0, "{loss:?}");
    assert_eq!(report.messages.echo_absent, 0);
    // With echo expected, the engine sees that not one own message ever came
    // back while others' did: it says so, and does not call it loss.
    plan.echo = true;
    let (report, _) = run(plan).await;
    let loss = report.loss();
    assert_eq!(loss.lost, 0, "{loss:?}");
    assert_eq!(report.messages.echo_absent, 2, "both publishers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_stop_sender_does_not_stop_the_run() {
    let relay = relay(RelayConfig::default());
    let plan = short(&relay.url);
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    drop(stop_tx);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let report = squall_loadgen::run(plan, Origin::now(), stop, tx)
        .await
        .unwrap();
    assert!(report.complete);
    assert_eq!(report.messages.sent, report.messages.scheduled);
    let first = rx.recv().await.unwrap();
    assert_eq!(first.phase, squall_loadgen::Phase::Steady);
}
