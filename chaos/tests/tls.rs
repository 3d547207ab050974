//! The chaos faults and the watchdog against the reference relay serving
//! TLS (issue 10): every client fault works over `wss://`, a reset in the
//! middle of the TLS handshake (a ClientHello, the server's answer, then an
//! RST) is counted by the relay as a failed handshake, and the relay stays
//! healthy; the watchdog's probes (https:// health and metrics, the wss://
//! ping and accept probes) answer over TLS.

mod common;

use common::{SECRET, SOON, metric, run_step, target};
use squall_chaos::http;
use squall_chaos::scenario::{Action, ChaosStep, WatchdogSettings};
use squall_chaos::target::ChaosTarget;
use squall_chaos::tokens;
use squall_chaos::watchdog::{Watchdog, WatchdogConfig};
use squall_proto::{LoopbackGuard, Origin, TlsClient, TlsSettings};
use squall_relay::RelayConfig;
use squall_relay::auth::AuthConfig;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A self-signed certificate for 127.0.0.1 in a fresh directory: (dir, cert, key).
fn certificate(name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("squall-chaos-tls-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    (dir, cert, key)
}

/// An in-process TLS relay with HS256 auth and a 1 s head timeout (the
/// TLS handshake's and the request head's).
async fn tls_relay(cert: &Path, key: &Path) -> squall_relay::RelayHandle {
    common::relay_with(RelayConfig {
        auth: AuthConfig::hs256(SECRET.as_bytes()),
        head_timeout: Duration::from_secs(1),
        tls: Some(squall_proto::tls::server_config(cert, key).unwrap()),
        ..RelayConfig::default()
    })
    .await
}

fn trusting(cert: &Path) -> TlsClient {
    TlsClient::new(&TlsSettings {
        ca_file: Some(cert.to_path_buf()),
        insecure: false,
    })
    .unwrap()
}

/// `GET https://addr/path` with `tls`.
async fn get(tls: &TlsClient, addr: SocketAddr, path: &str) -> (u16, String) {
    let endpoint = squall_chaos::target::endpoint(
        &format!("https://{addr}{path}"),
        &LoopbackGuard::loopback_only(),
    )
    .unwrap();
    http::get(&endpoint, tls, SOON).await.expect("GET answers")
}

/// Scrapes `/metrics` over TLS until `until` holds (bounded by [`SOON`]).
async fn metrics_until(tls: &TlsClient, addr: SocketAddr, until: impl Fn(&str) -> bool) -> String {
    let mut text = String::new();
    for _ in 0..(SOON.as_millis() / 50) {
        text = get(tls, addr, "/metrics").await.1;
        if until(&text) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    text
}

fn step(action: Action, count: u64) -> ChaosStep {
    ChaosStep {
        count,
        after: Duration::from_millis(20),
        hold: Some(Duration::from_secs(2)),
        trickle: Duration::from_millis(200),
        ..ChaosStep::new(Duration::ZERO, action)
    }
}

const TLS_REJECTED: &str = r#"squall_relay_connections_rejected_total{reason="tls_handshake"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resets_in_the_middle_of_tls_handshakes_are_counted_and_the_relay_stays_healthy() {
    let (dir, cert, key) = certificate("mid");
    let relay = tls_relay(&cert, &key).await;
    let addr = relay.local_addr();
    let tls = trusting(&cert);
    let chaos = ChaosTarget {
        tls: tls.clone(),
        ..target(&relay.ws_url())
    };
    // A ClientHello, the server's flight (at most 1 s), then an RST; then
    // the same ending with a FIN.
    for (action, count) in [(Action::Reset, 150), (Action::Drop, 50)] {
        let mut mid = step(action, count);
        mid.mid_handshake = true;
        mid.after = Duration::from_secs(1);
        let report = run_step(mid, chaos.clone()).await;
        assert_eq!((report.done, report.failed), (count, 0), "{report:?}");
    }
    let text = metrics_until(&tls, addr, |m| metric(m, TLS_REJECTED) >= 200.0).await;
    assert_eq!(metric(&text, TLS_REJECTED), 200.0, "{text}");
    // Nothing got as far as an upgrade.
    assert_eq!(
        metric(&text, "squall_relay_connections_accepted_total"),
        0.0,
        "{text}"
    );
    // Plain resets of established wss:// sockets, counted as such.
    let report = run_step(step(Action::Reset, 100), chaos.clone()).await;
    assert_eq!((report.done, report.failed), (100, 0), "{report:?}");
    let reset = r#"squall_relay_connections_ended_without_close_total{reason="reset"}"#;
    let eof = r#"squall_relay_connections_ended_without_close_total{reason="eof"}"#;
    let text = metrics_until(&tls, addr, |m| metric(m, reset) + metric(m, eof) >= 100.0).await;
    assert_eq!(metric(&text, reset) + metric(&text, eof), 100.0, "{text}");
    // Healthy: health answers and a new socket opens and subscribes.
    assert_eq!(get(&tls, addr, "/health").await.0, 200);
    let report = run_step(step(Action::Drop, 5), chaos).await;
    assert_eq!((report.done, report.failed), (5, 0), "{report:?}");
    relay.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_fault_works_over_wss() {
    let (dir, cert, key) = certificate("faults");
    let relay = tls_relay(&cert, &key).await;
    let addr = relay.local_addr();
    let tls = trusting(&cert);
    let chaos = ChaosTarget {
        tls: tls.clone(),
        ..target(&relay.ws_url())
    };
    for (action, count) in [
        (Action::Reset, 20),
        (Action::Drop, 20),
        (Action::Halfopen, 10),
        (Action::Vanish, 10),
        (Action::Storm, 20),
    ] {
        let report = run_step(step(action, count), chaos.clone()).await;
        assert_eq!(
            (report.done, report.failed),
            (count, 0),
            "{action:?}: {report:?}"
        );
    }
    // Slowloris inside TLS: the relay's 1 s head timeout closes them all.
    let report = run_step(step(Action::Slowloris, 10), chaos.clone()).await;
    assert_eq!(report.done, 10, "{report:?}");
    assert_eq!(report.server_closed, Some(10), "{report:?}");
    // Garbage and bad tokens are answered over TLS as over TCP.
    for action in [Action::Garbage, Action::Badauth] {
        let report = run_step(step(action, 1), chaos.clone()).await;
        assert!(!report.checks.is_empty(), "{report:?}");
        for check in &report.checks {
            assert!(check.passed, "{action:?}: {check:?}");
        }
    }
    // A client that does not trust the certificate fails as tls_cert.
    let stranger = ChaosTarget {
        tls: TlsClient::default(),
        ..target(&relay.ws_url())
    };
    let report = run_step(step(Action::Reset, 3), stranger).await;
    assert_eq!(report.failed, 3, "{report:?}");
    assert_eq!(report.errors.get("tls_cert"), Some(&3), "{report:?}");
    assert_eq!(get(&tls, addr, "/health").await.0, 200);
    relay.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_watchdog_probes_over_tls() {
    let (dir, cert, key) = certificate("watchdog");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let relay = runtime.block_on(tls_relay(&cert, &key));
    let addr = relay.local_addr();
    let settings = WatchdogSettings {
        interval: Duration::from_millis(100),
        timeout: Duration::from_secs(2),
        metrics_interval: Duration::from_millis(200),
        ..WatchdogSettings::default()
    };
    let mut config = WatchdogConfig::new(settings, Origin::now(), dir.join("out"), "tls");
    config.health_url = Some(format!("https://{addr}/health"));
    config.metrics_url = Some(format!("https://{addr}/metrics"));
    config.ws_url = Some(relay.ws_url());
    config.tokens = Some(tokens::hs256_source(SECRET.to_string()));
    config.tls = trusting(&cert);
    let watchdog = Watchdog::spawn(config).expect("watchdog starts");
    let mut status = watchdog.status();
    for _ in 0..200 {
        status = watchdog.status();
        if status.state == "ok"
            && status.health_ms.is_some()
            && status.ping_ms.is_some()
            && status.accept_ms.is_some()
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(status.state, "ok", "{status:?}");
    assert!(status.health_ms.is_some(), "https health: {status:?}");
    assert!(status.ping_ms.is_some(), "wss ping: {status:?}");
    assert!(status.accept_ms.is_some(), "wss accept: {status:?}");
    assert!(watchdog.stop().is_empty(), "no hang");
    runtime.block_on(relay.shutdown());
    let _ = std::fs::remove_dir_all(dir);
}
