//! The fan-out path in isolation: one Broadcast serialized once and queued to
//! every subscriber of a topic (then drained, as the writers would).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::value::RawValue;
use squall_relay::bugs::Bugs;
use squall_relay::registry::Registry;

fn fanout(c: &mut Criterion) {
    let payload = RawValue::from_string(format!(
        r#"{{"at":1700000000000000,"pad":"{}"}}"#,
        "x".repeat(64)
    ))
    .unwrap();
    let mut group = c.benchmark_group("broadcast_then_drain");
    for subscribers in [100usize, 10_000] {
        let registry = Registry::new(1024, Bugs::default());
        let user: Arc<str> = "bench".into();
        let mut receivers = Vec::with_capacity(subscribers);
        for _ in 0..subscribers {
            let (id, outbox, rx) = registry.register(&user);
            registry.subscribe(id, &outbox, &["t".to_string()]);
            receivers.push(rx);
        }
        group.throughput(Throughput::Elements(subscribers as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(subscribers),
            &subscribers,
            |b, _| {
                b.iter(|| {
                    let queued = registry.broadcast("t", "publisher", &payload);
                    for rx in &mut receivers {
                        black_box(rx.try_recv());
                    }
                    queued
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
