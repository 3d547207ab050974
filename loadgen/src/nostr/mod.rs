//! Nostr (NIP-01, NIP-42): what squall needs to load a Nostr relay, pure and
//! without I/O.
//!
//! A Nostr relay accepts an event only when its id is the SHA-256 of its
//! canonical serialization and its signature is a valid BIP-340 Schnorr
//! signature of that id by its `pubkey`; it answers every published event
//! with `["OK", id, accepted, reason]`. So squall gives each publisher a
//! secp256k1 key ([`keys`]), builds and signs one event per message
//! ([`event`]: the topic as a `t` tag, squall's stamp in `content`), sends it
//! as `["EVENT", {...}]` and subscribes with `["REQ", ...]`
//! ([`client`]), and reads what the relay sends back ([`relay`]: deliveries,
//! `OK` with the rejection reason's prefix, `EOSE`, `NOTICE`, `CLOSED`,
//! `AUTH` challenges).
//!
//! Signing uses the `secp256k1` crate (bindings to Bitcoin Core's
//! libsecp256k1, as rust-nostr does) at 0.31, through its one global
//! context: 43,000 events signed a second on one core, 1.8 times the
//! pure-Rust `k256` measured in the same run, and 3 times `secp256k1` 0.33,
//! which re-randomizes its context after every signature (a side-channel
//! defence that throwaway load keys do not need). See results/BENCHMARKS.md,
//! `cargo bench -p squall-loadgen --bench nostr_sign`.

pub mod client;
pub mod event;
pub mod keys;
pub mod relay;

pub use event::{EventId, Signature, SignedEvent, UnsignedEvent, auth_event, unix_now};
pub use keys::{KeyError, Keys};
pub use relay::{Reason, RelayMessage};
