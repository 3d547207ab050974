//! The receive path on one core: stamp scan + sequence check + histogram
//! record per delivered frame, as the engine runs it ([`Inbox::receive`]),
//! next to the peer approach of parsing every frame as JSON.
//!
//! `cargo bench -p squall-loadgen --bench receive`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use squall_loadgen::LatencyHistogram;
use squall_loadgen::layout::Layout;
use squall_loadgen::receive::{Inbox, Tally};
use squall_loadgen::stamp::Stamp;
use std::collections::HashMap;
use std::hint::black_box;

/// Frames as the reference relay delivers them: 256-byte payloads from 100
/// publishers on one topic, in order.
fn frames(count: u64, publishers: u64) -> Vec<Vec<u8>> {
    (0..count)
        .map(|n| {
            let (publisher, seq) = (n % publishers, n / publishers);
            let mut f = br#"{"type":"Broadcast","data":{"topic":"topic-0","payload":""#.to_vec();
            Stamp {
                publisher,
                seq,
                scheduled_ns: 1_000_000 * n,
            }
            .write_padded(&mut f, 254);
            f.extend_from_slice(
                format!(r#"","sequence":{n},"from":"user-{publisher}"}}}}"#).as_bytes(),
            );
            f
        })
        .collect()
}

fn receive_path(c: &mut Criterion) {
    const PUBLISHERS: u64 = 100;
    let layout = Layout::new(1, 1, PUBLISHERS, PUBLISHERS, 1);
    let batch = frames(100_000, PUBLISHERS);
    let mut group = c.benchmark_group("receive");
    group.throughput(Throughput::Elements(batch.len() as u64));
    group.bench_function("squall: stamp scan + sequence check + histogram", |b| {
        b.iter_batched_ref(
            || {
                let mut inbox = Inbox::default();
                inbox.track(0, &layout);
                inbox.acknowledge(&layout, |_| 0);
                (inbox, Tally::default())
            },
            |(inbox, tally)| {
                for (i, f) in batch.iter().enumerate() {
                    let now = 1_000_000 * i as u64 + 1_500_000;
                    black_box(inbox.receive(f, now, &layout, tally));
                }
            },
            criterion::BatchSize::LargeInput,
        )
    });
    group.bench_function("peer: full JSON parse + map lookup + histogram", |b| {
        b.iter_batched_ref(
            || (HashMap::<String, u64>::new(), LatencyHistogram::new()),
            |(last_seen, hist)| {
                for (i, f) in batch.iter().enumerate() {
                    let v: serde_json::Value = serde_json::from_slice(f).expect("JSON");
                    let data = &v["data"];
                    let from = data["from"].as_str().unwrap_or_default().to_string();
                    let seq = data["sequence"].as_u64().unwrap_or_default();
                    last_seen.insert(from, seq);
                    hist.record_us(500 + (i as u64 % 7));
                }
            },
            criterion::BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, receive_path);
criterion_main!(benches);
