//! Runs the engine alone against a relay and prints what BENCHMARKS.md
//! records: handshake rate, RSS per open socket, CPU seconds per million
//! deliveries.
//!
//! `cargo run --release -p squall-loadgen --example measure -- URL[,URL...] CONNECTIONS RAMP_S DURATION_S RATE PUBLISHERS [SUBSCRIPTIONS] [JWT_SECRET]`
//!
//! Several processes run one load together with `SQUALL_SHARD=I/N` (1-based)
//! and the same `SQUALL_ORIGIN_NS` (a `CLOCK_MONOTONIC` reading in ns);
//! `SQUALL_SOCKETS_PER_SOURCE=N` overrides `sockets_per_source`.
//! For `wss://` URLs, `SQUALL_TLS_CA_FILE=PEM` trusts that bundle (else
//! Mozilla's roots), and the summary has the TLS handshake's own figures.
//! `established_by_s` lists the sockets established at each snapshot
//! (one a second): with a ramp of 0, its first entry is the connect rate.

use squall_loadgen::{Auth, JwtAuth, JwtKey, LoadPlan, Origin, Placement};
use std::time::Duration;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn cpu_s() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a full rusage into valid memory.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 6 {
        eprintln!(
            "usage: measure URL CONNECTIONS RAMP_S DURATION_S RATE PUBLISHERS [SUBSCRIPTIONS] [JWT_SECRET]"
        );
        std::process::exit(2);
    }
    let num = |i: usize| -> f64 { args[i].parse().expect("a number") };
    let mut plan = LoadPlan::new(args[0].split(',').map(str::to_string).collect());
    plan.connections = num(1) as u64;
    plan.ramp = Duration::from_secs_f64(num(2));
    plan.duration = Duration::from_secs_f64(num(3));
    plan.rate = num(4);
    plan.publishers = num(5) as u64;
    plan.subscriptions_per_connection = args.get(6).map_or(1, |s| s.parse().expect("a number"));
    plan.topics = 10;
    if let Some(secret) = args.get(7) {
        plan.auth = Auth::Jwt(JwtAuth {
            key: JwtKey::HS256(secret.clone()),
            placement: Placement::Query,
            sub_pattern: "user-{conn}".into(),
            roles: Vec::new(),
            extra_claims: serde_json::Map::new(),
            ttl: Duration::from_secs(3600),
        });
    }
    if let Ok(ca) = std::env::var("SQUALL_TLS_CA_FILE") {
        plan.tls.ca_file = Some(ca.into());
    }
    if let Ok(n) = std::env::var("SQUALL_SOCKETS_PER_SOURCE") {
        plan.sockets_per_source = n.parse().expect("SQUALL_SOCKETS_PER_SOURCE: a number");
    }
    if let Ok(shard) = std::env::var("SQUALL_SHARD") {
        let (i, n) = shard.split_once('/').expect("SQUALL_SHARD=I/N");
        let (i, n): (u32, u32) = (i.parse().expect("I"), n.parse().expect("N"));
        plan = plan.shard(i - 1, n);
    }
    let origin = std::env::var("SQUALL_ORIGIN_NS").map_or_else(
        |_| Origin::now(),
        |ns| Origin::from_mono_ns(ns.parse().expect("SQUALL_ORIGIN_NS in ns")),
    );
    plan.check().expect("a valid plan");
    let shard_connections = plan.shard_connections().count() as u64;
    let baseline_kib = rss_kib();
    let cpu_before = cpu_s();
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let engine = tokio::spawn(squall_loadgen::run(plan.clone(), origin, stop, tx));
    let (mut peak_open, mut peak_kib, mut all_open_at) = (0u64, baseline_kib, None);
    let mut established_by_s = Vec::new();
    while let Some(s) = rx.recv().await {
        established_by_s.push(s.connections.established);
        let rss = rss_kib();
        if s.connections.open >= peak_open {
            peak_open = s.connections.open;
            peak_kib = peak_kib.max(rss);
        }
        if all_open_at.is_none() && s.connections.established >= shard_connections {
            all_open_at = Some(s.t_s);
        }
        eprintln!(
            "t={:.0}s open={} established={} failed={} sent/s={:.0} recv/s={:.0} p99={:.2}ms rss={}MiB",
            s.t_s,
            s.connections.open,
            s.connections.established,
            s.connections.failed,
            s.sent_per_s(),
            s.received_per_s(),
            s.latency.percentile_ms(99.0),
            rss / 1024
        );
    }
    let report = engine.await.expect("engine task").expect("plan");
    let cpu = cpu_s() - cpu_before;
    let loss = report.loss();
    let summary = serde_json::json!({
        "connections_established": report.connections.established,
        "connections_failed": report.connections.failed,
        "errors": report.connections.errors,
        "handshake_p50_ms": report.connections.handshake.percentile_ms(50.0),
        "handshake_p99_ms": report.connections.handshake.percentile_ms(99.0),
        "tls_handshakes": report.connections.tls_handshake.count(),
        "tls_handshake_p50_ms": report.connections.tls_handshake.percentile_ms(50.0),
        "tls_handshake_p99_ms": report.connections.tls_handshake.percentile_ms(99.0),
        "established_by_s": established_by_s,
        "all_open_by_s": all_open_at,
        "peak_open": peak_open,
        "rss_baseline_mib": baseline_kib / 1024,
        "rss_peak_mib": peak_kib / 1024,
        "rss_per_open_socket_kib": (peak_kib - baseline_kib) as f64 / peak_open.max(1) as f64,
        "sent": report.messages.sent,
        "received": report.messages.received,
        "lost": loss.lost,
        "loss_ratio": loss.loss_ratio,
        "latency_p50_ms": report.latency.percentile_ms(50.0),
        "latency_p99_ms": report.latency.percentile_ms(99.0),
        "send_lag_p99_ms": report.send_lag.percentile_ms(99.0),
        "cpu_s": cpu,
        "cpu_s_per_million_received": cpu / (report.messages.received.max(1) as f64 / 1e6),
    });
    println!("{}", serde_json::to_string_pretty(&summary).unwrap());
}
