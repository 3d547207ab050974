//! Nostr events signed per second on one core: squall's whole publish-side
//! cost of a message (canonical serialization, SHA-256 id, BIP-340 signature,
//! the `["EVENT", {...}]` frame) with libsecp256k1 (the `secp256k1` crate,
//! what squall uses), next to the same with the pure-Rust `k256` and to the
//! serialization and hash alone.
//!
//! `cargo bench -p squall-loadgen --bench nostr_sign`
//!
//! Before measuring, it checks that both crates make the same signature of
//! the same id, and that each verifies the other's.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use squall_loadgen::nostr::{Keys, Signature, SignedEvent, UnsignedEvent, client, unix_now};
use squall_loadgen::stamp::Stamp;
use std::hint::black_box;

/// The publishers' keys, and their secret keys for `k256`.
const PUBLISHERS: usize = 100;
/// Events per iteration.
const BATCH: u64 = 1_000;

/// A 256-byte content as a publish carries it: the stamp, padded.
fn content(n: u64) -> String {
    let mut bytes = Vec::with_capacity(256);
    Stamp {
        publisher: n % PUBLISHERS as u64,
        seq: n / PUBLISHERS as u64,
        scheduled_ns: 1_000_000 * n,
    }
    .write_padded(&mut bytes, 256);
    String::from_utf8(bytes).expect("ASCII stamp")
}

fn event(content: &str, created_at: u64) -> UnsignedEvent<'_> {
    UnsignedEvent {
        kind: 1,
        created_at,
        tags: &[["t", "topic-7"]],
        content,
    }
}

/// Signs `signed`'s id with k256 and checks it against the libsecp256k1 one.
fn cross_check(keys: &Keys, secret: &[u8; 32], signed: &SignedEvent) {
    let v: serde_json::Value = serde_json::from_str(signed.json()).expect("JSON");
    let ours = hex::decode(v["sig"].as_str().expect("sig")).expect("hex");
    let k = k256::schnorr::SigningKey::from_slice(secret).expect("key");
    assert_eq!(hex::encode(k.verifying_key().to_bytes()), keys.pubkey_hex());
    let theirs = k.sign_raw(&signed.id.0, &[0; 32]).expect("k256 signs");
    assert_eq!(
        theirs.to_bytes().as_slice(),
        ours.as_slice(),
        "same signature"
    );
    let ours = k256::schnorr::Signature::try_from(ours.as_slice()).expect("64 bytes");
    k.verifying_key()
        .verify_raw(&signed.id.0, &ours)
        .expect("k256 verifies libsecp256k1's signature");
}

fn signing(c: &mut Criterion) {
    let secrets: Vec<[u8; 32]> = (0..PUBLISHERS)
        .map(|i| {
            let mut s = [0u8; 32];
            s[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
            s[31] = 7;
            s
        })
        .collect();
    let keys: Vec<Keys> = secrets
        .iter()
        .map(|s| Keys::from_secret(*s).expect("valid"))
        .collect();
    let k256_keys: Vec<k256::schnorr::SigningKey> = secrets
        .iter()
        .map(|s| k256::schnorr::SigningKey::from_slice(s).expect("valid"))
        .collect();
    let contents: Vec<String> = (0..BATCH).map(content).collect();
    let now = unix_now();
    for (i, text) in contents.iter().take(50).enumerate() {
        let p = i % PUBLISHERS;
        cross_check(
            &keys[p],
            &secrets[p],
            &event(text, now).sign(&keys[p], Signature::Valid),
        );
    }

    let mut group = c.benchmark_group("nostr_sign");
    group.throughput(Throughput::Elements(BATCH));
    group.bench_function(
        "secp256k1 (libsecp256k1): serialize + id + sign + frame",
        |b| {
            b.iter(|| {
                for (i, text) in contents.iter().enumerate() {
                    let signed = event(text, now).sign(&keys[i % PUBLISHERS], Signature::Valid);
                    black_box(client::event(&signed));
                }
            })
        },
    );
    group.bench_function("k256 (pure Rust): id + sign", |b| {
        b.iter(|| {
            for (i, text) in contents.iter().enumerate() {
                let p = i % PUBLISHERS;
                let id = event(text, now).id(keys[p].pubkey_hex());
                black_box(k256_keys[p].sign_raw(&id.0, &[0; 32]).expect("signs"));
            }
        })
    });
    group.bench_function("serialize + sha256 id only", |b| {
        b.iter(|| {
            for (i, text) in contents.iter().enumerate() {
                black_box(event(text, now).id(keys[i % PUBLISHERS].pubkey_hex()));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, signing);
criterion_main!(benches);
