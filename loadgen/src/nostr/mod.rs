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

pub mod ahead;
pub mod client;
pub mod event;
pub mod keys;
pub mod relay;
pub(crate) mod session;

pub use event::{EventId, Signature, SignedEvent, UnsignedEvent, auth_event, unix_now};
pub use keys::{KeyError, Keys};
pub use relay::{Reason, RelayMessage};

use event::AUTH_KIND;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// How a run speaks Nostr ([`crate::Protocol::Nostr`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// The kind of the published events and of the `REQ` filters: 1 (a
    /// text note, stored by the relay) by default; 20000–29999 are
    /// ephemeral (passed on, not stored).
    pub event_kind: u16,
    /// A file of hex secret keys, one per line: publisher `j` signs with key
    /// `j mod n`, and a connection answers `AUTH` with key `c mod n`. `None`:
    /// fresh keys for every publisher (and connection) of every run.
    pub keys_file: Option<PathBuf>,
    /// Sign every event wrongly on purpose ([`Signature::Forged`]): a relay
    /// must refuse them all (`OK false invalid:`). For tests.
    pub forge: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            event_kind: 1,
            keys_file: None,
            forge: false,
        }
    }
}

/// Why [`Settings`] cannot run.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// Kind 22242: NIP-42's authentication event, which relays never pass on.
    #[error("event kind {AUTH_KIND} is NIP-42's authentication event, which relays do not pass on")]
    AuthKind,
    /// The keys file does not load.
    #[error(transparent)]
    Keys(#[from] KeyError),
}

impl Settings {
    /// Checks the settings and loads the keys file, if any.
    pub fn check(&self) -> Result<Option<Vec<Keys>>, SettingsError> {
        if self.event_kind == AUTH_KIND {
            return Err(SettingsError::AuthKind);
        }
        self.keys_file
            .as_deref()
            .map(Keys::load)
            .transpose()
            .map_err(SettingsError::from)
    }

    /// How events are signed.
    pub fn signature(&self) -> Signature {
        if self.forge {
            Signature::Forged
        } else {
            Signature::Valid
        }
    }
}
