//! A small, honest load client for the relay benchmarks in
//! `results/BENCHMARKS.md`; it speaks the squall protocol to any relay (ours
//! or the Node peer under `bench/`).
//!
//! `hold`: opens N idle connections, reports how many the relay accepted and,
//! given the relay's pid, its RSS growth per connection.
//! `fanout`: S subscribers on one topic, P publishers on a fixed schedule
//! (open model); reports deliveries per second and one-way latency measured
//! from each message's *scheduled* send time (coordinated omission corrected).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

const HANDSHAKES_IN_FLIGHT: usize = 200;
const HISTOGRAM_SHARDS: usize = 16;

#[derive(Debug, Parser)]
struct Cli {
    /// ws://HOST:PORT/PATH of the relay (a `?token=` is appended if given).
    #[arg(long)]
    url: String,
    /// JWT to present in the query.
    #[arg(long)]
    token: Option<String>,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Open N idle connections and measure the relay's RSS per connection.
    Hold {
        #[arg(long)]
        connections: usize,
        /// The relay's pid, to read its RSS from /proc.
        #[arg(long)]
        relay_pid: Option<u32>,
        /// How long to wait after the last handshake before measuring.
        #[arg(long, default_value = "3s", value_parser = squall_proto::duration::parse_duration)]
        settle: Duration,
    },
    /// Fan-out throughput and latency with S subscribers on one topic.
    Fanout {
        #[arg(long, default_value_t = 10_000)]
        subscribers: usize,
        #[arg(long, default_value_t = 10)]
        publishers: usize,
        /// Messages per second published in all.
        #[arg(long)]
        rate: f64,
        #[arg(long, default_value = "10s", value_parser = squall_proto::duration::parse_duration)]
        duration: Duration,
        /// Measurement starts after this.
        #[arg(long, default_value = "2s", value_parser = squall_proto::duration::parse_duration)]
        warmup: Duration,
        /// Padding bytes per payload.
        #[arg(long, default_value_t = 64)]
        payload: usize,
    },
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = squall_relay::limits::raise_nofile_limit() {
        eprintln!("cannot raise the open-files limit: {e}");
    }
    let url = match &cli.token {
        Some(t) => format!("{}?token={t}", cli.url),
        None => cli.url.clone(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        match cli.mode {
            Mode::Hold {
                connections,
                relay_pid,
                settle,
            } => hold(&url, connections, relay_pid, settle).await,
            Mode::Fanout {
                subscribers,
                publishers,
                rate,
                duration,
                warmup,
                payload,
            } => {
                fanout(
                    &url,
                    subscribers,
                    publishers,
                    rate,
                    duration,
                    warmup,
                    payload,
                )
                .await
            }
        }
    });
}

async fn connect(url: &str) -> Result<Ws, String> {
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let connecting = tokio_tungstenite::connect_async_with_config(url, Some(config), true);
    match tokio::time::timeout(Duration::from_secs(30), connecting).await {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("handshake timeout".to_string()),
    }
}

/// Opens `n` connections, at most [`HANDSHAKES_IN_FLIGHT`] at a time.
async fn open_many(url: &str, n: usize) -> (Vec<Ws>, Vec<String>) {
    let gate = Arc::new(Semaphore::new(HANDSHAKES_IN_FLIGHT));
    let mut tasks = JoinSet::new();
    for _ in 0..n {
        let permit = gate.clone().acquire_owned().await.unwrap();
        let url = url.to_string();
        tasks.spawn(async move {
            let ws = connect(&url).await;
            drop(permit);
            ws
        });
    }
    let (mut open, mut errors) = (Vec::with_capacity(n), Vec::new());
    while let Some(done) = tasks.join_next().await {
        match done.unwrap() {
            Ok(ws) => open.push(ws),
            Err(e) => errors.push(e),
        }
    }
    (open, errors)
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(PathBuf::from(format!("/proc/{pid}/status"))).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

async fn hold(url: &str, n: usize, pid: Option<u32>, settle: Duration) {
    let before = pid.and_then(rss_kib);
    let started = Instant::now();
    let (open, errors) = open_many(url, n).await;
    let took = started.elapsed();
    tokio::time::sleep(settle).await;
    let after = pid.and_then(rss_kib);
    let mut first_errors = errors.clone();
    first_errors.dedup();
    first_errors.truncate(3);
    println!(
        "hold: requested={n} established={} failed={} handshake_s={:.1} first_errors={first_errors:?}",
        open.len(),
        errors.len(),
        took.as_secs_f64()
    );
    if let (Some(before), Some(after)) = (before, after) {
        let per_conn = (after.saturating_sub(before) * 1024) as f64 / open.len().max(1) as f64;
        println!(
            "hold: relay_rss_kib_before={before} relay_rss_kib_after={after} rss_bytes_per_connection={per_conn:.0}"
        );
    }
    drop(open);
}

/// Latency histograms sharded to keep the receivers off one lock.
struct Recorder {
    origin: Instant,
    window: (u64, u64),
    shards: Vec<Mutex<Histogram<u64>>>,
    in_window: AtomicU64,
    total: AtomicU64,
}

impl Recorder {
    fn record(&self, shard: usize, text: &str) {
        self.total.fetch_add(1, Relaxed);
        let Some(at) = stamp(text) else { return };
        if at < self.window.0 || at >= self.window.1 {
            return;
        }
        self.in_window.fetch_add(1, Relaxed);
        let now = self.origin.elapsed().as_micros() as u64;
        let mut h = self.shards[shard % HISTOGRAM_SHARDS].lock().unwrap();
        let _ = h.record(now.saturating_sub(at).max(1));
    }
}

/// The `"at":MICROS` stamp the publishers put in each payload.
fn stamp(text: &str) -> Option<u64> {
    let rest = &text[text.find("\"at\":")? + 5..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

async fn fanout(
    url: &str,
    subs: usize,
    pubs: usize,
    rate: f64,
    duration: Duration,
    warmup: Duration,
    pad: usize,
) {
    let (subscribers, errors) = open_many(url, subs).await;
    if !errors.is_empty() {
        println!(
            "fanout: {} subscriber connections failed, e.g. {:?}",
            errors.len(),
            errors.first()
        );
    }
    let subscribe = r#"{"type":"Subscribe","data":{"topics":["bench"]}}"#;
    let mut subscribed = Vec::with_capacity(subscribers.len());
    for mut ws in subscribers {
        ws.send(Message::text(subscribe)).await.unwrap();
        subscribed.push(ws);
    }
    // Wait for every Status before publishing anything.
    for ws in &mut subscribed {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) if t.contains("subscribed") => break,
                Some(Ok(_)) => continue,
                other => panic!("subscribe failed: {other:?}"),
            }
        }
    }
    let (publishers, errors) = open_many(url, pubs).await;
    assert!(
        errors.is_empty(),
        "publisher connections failed: {errors:?}"
    );

    let origin = Instant::now() + Duration::from_millis(500);
    let start_us = 500_000u64;
    let window = (
        start_us + warmup.as_micros() as u64,
        start_us + (warmup + duration).as_micros() as u64,
    );
    let recorder = Arc::new(Recorder {
        origin: origin - Duration::from_micros(start_us),
        window,
        shards: (0..HISTOGRAM_SHARDS)
            .map(|_| Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3).unwrap()))
            .collect(),
        in_window: AtomicU64::new(0),
        total: AtomicU64::new(0),
    });
    let closed = Arc::new(AtomicU64::new(0));
    let mut readers = JoinSet::new();
    for (i, mut ws) in subscribed.into_iter().enumerate() {
        let recorder = recorder.clone();
        let closed = closed.clone();
        readers.spawn(async move {
            while let Some(frame) = ws.next().await {
                match frame {
                    Ok(Message::Text(t)) => recorder.record(i, &t),
                    Ok(Message::Close(_)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            closed.fetch_add(1, Relaxed);
        });
    }
    let run_for = warmup + duration;
    let per_publisher = rate / pubs as f64;
    let padding = "x".repeat(pad);
    let sent = Arc::new(AtomicU64::new(0));
    let sent_in_window = Arc::new(AtomicU64::new(0));
    let mut senders = JoinSet::new();
    for (p, mut ws) in publishers.into_iter().enumerate() {
        let padding = padding.clone();
        let (sent, sent_in_window, recorder) =
            (sent.clone(), sent_in_window.clone(), recorder.clone());
        senders.spawn(async move {
            let interval = Duration::from_secs_f64(1.0 / per_publisher);
            let offset = interval.mul_f64(p as f64 / pubs as f64);
            let mut k = 0u32;
            loop {
                let due = origin + offset + interval * k;
                if due > origin + run_for {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                let at = (due - recorder.origin).as_micros() as u64;
                let msg = format!(r#"{{"type":"Broadcast","data":{{"topic":"bench","payload":{{"at":{at},"pad":"{padding}"}}}}}}"#);
                if ws.send(Message::text(msg)).await.is_err() {
                    break;
                }
                sent.fetch_add(1, Relaxed);
                if at >= recorder.window.0 && at < recorder.window.1 {
                    sent_in_window.fetch_add(1, Relaxed);
                }
                k += 1;
            }
            ws
        });
    }
    let mut keep = Vec::new();
    while let Some(ws) = senders.join_next().await {
        keep.push(ws.unwrap());
    }
    // Drain: deliveries of the window's messages still in flight.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut merged = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    for shard in &recorder.shards {
        merged.add(&*shard.lock().unwrap()).unwrap();
    }
    let expected = sent_in_window.load(Relaxed) * subs as u64;
    let got = recorder.in_window.load(Relaxed);
    let ms = |q: f64| merged.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "fanout: subscribers={subs} publishers={pubs} rate={rate}/s window_s={:.0} sent={} deliveries_expected={expected} \
         deliveries_received={got} loss={} deliveries_per_s={:.0} subscribers_closed={}",
        duration.as_secs_f64(),
        sent.load(Relaxed),
        expected.saturating_sub(got),
        got as f64 / duration.as_secs_f64(),
        closed.load(Relaxed)
    );
    println!(
        "fanout: latency_ms p50={:.2} p90={:.2} p99={:.2} p999={:.2} max={:.2}",
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(0.999),
        merged.max() as f64 / 1000.0
    );
    readers.abort_all();
    drop(keep);
}
