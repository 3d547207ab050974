//! NIP-01 events: the id (SHA-256 of the canonical serialization) and the
//! BIP-340 signature, and the NIP-42 authentication event.
//!
//! The canonical serialization is the JSON array
//! `[0,<pubkey>,<created_at>,<kind>,<tags>,<content>]` without whitespace,
//! strings escaped as NIP-01 says: `"`, `\`, newline, carriage return, tab,
//! backspace and form feed as two-character escapes, other control
//! characters as `\u00XX`, everything else (`/`, non-ASCII) as it is. That is
//! what `serde_json` writes for a string, and what JavaScript's
//! `JSON.stringify` and Python's `json.dumps(..., ensure_ascii=False)` (the
//! reference relays) write; the tests hold it to an event made by
//! `aionostr`, the library `nostr-relay` verifies with.
//!
//! Tags and content are serialized once: the event object sent to the relay
//! reuses those bytes of the canonical serialization.

use super::keys::Keys;
use secp256k1::SECP256K1;
use sha2::{Digest, Sha256};
use std::fmt;
use std::io::Write;

/// The kind of a NIP-42 authentication event.
pub const AUTH_KIND: u16 = 22242;

/// An event id: the SHA-256 of the event's canonical serialization.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(pub [u8; 32]);

impl EventId {
    /// The id written as 64 hex digits (either case); `None` otherwise.
    pub fn from_hex(text: &str) -> Option<Self> {
        let mut id = [0u8; 32];
        hex::decode_to_slice(text, &mut id).ok()?;
        Some(Self(id))
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = [0u8; 64];
        hex::encode_to_slice(self.0, &mut text).expect("64 digits for 32 bytes");
        f.write_str(std::str::from_utf8(&text).expect("hex is ASCII"))
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({self})")
    }
}

/// How an event is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Signature {
    /// A valid BIP-340 signature of the id.
    #[default]
    Valid,
    /// A well-formed signature by the right key of another message (the id
    /// with its first byte inverted), which every relay must refuse
    /// (`["OK", id, false, "invalid: ..."]`): for tests that prove
    /// rejections are counted. It costs what a valid signature costs.
    Forged,
}

/// An event before its id and signature.
#[derive(Debug, Clone, Copy)]
pub struct UnsignedEvent<'a> {
    /// The event kind: 1 is a text note; 20000–29999 are ephemeral (relayed,
    /// not stored).
    pub kind: u16,
    /// Unix seconds; relays refuse events too far from their own clock.
    pub created_at: u64,
    /// The tags, each a name and a value (`["t", topic]`).
    pub tags: &'a [[&'a str; 2]],
    /// The content.
    pub content: &'a str,
}

/// A signed event: its id, and the event object as JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedEvent {
    /// The id, which the relay's `OK` names.
    pub id: EventId,
    json: String,
}

impl SignedEvent {
    /// The event object, `{"id":...,"sig":...}`.
    pub fn json(&self) -> &str {
        &self.json
    }
}

/// Where the parts of a canonical serialization are, to reuse them.
struct Canonical {
    bytes: Vec<u8>,
    /// `tags` is `bytes[tags.0..tags.1]`, `content` follows after a comma up
    /// to the closing bracket.
    tags: (usize, usize),
}

impl UnsignedEvent<'_> {
    /// The canonical serialization by `pubkey_hex`: the bytes the id hashes.
    fn canonical(&self, pubkey_hex: &str) -> Canonical {
        let mut bytes = Vec::with_capacity(96 + self.content.len() + 32 * self.tags.len());
        bytes.extend_from_slice(b"[0,\"");
        bytes.extend_from_slice(pubkey_hex.as_bytes());
        write!(bytes, "\",{},{},", self.created_at, self.kind).expect("a Vec takes all");
        let start = bytes.len();
        serde_json::to_writer(&mut bytes, self.tags).expect("strings serialize");
        let end = bytes.len();
        bytes.push(b',');
        serde_json::to_writer(&mut bytes, self.content).expect("strings serialize");
        bytes.push(b']');
        Canonical {
            bytes,
            tags: (start, end),
        }
    }

    /// The id this event has when `pubkey_hex` signs it.
    pub fn id(&self, pubkey_hex: &str) -> EventId {
        EventId(Sha256::digest(&self.canonical(pubkey_hex).bytes).into())
    }

    /// The event signed by `keys` (or forged, see [`Signature::Forged`]).
    pub fn sign(&self, keys: &Keys, signature: Signature) -> SignedEvent {
        let canonical = self.canonical(keys.pubkey_hex());
        let id = EventId(Sha256::digest(&canonical.bytes).into());
        let mut message = id.0;
        if signature == Signature::Forged {
            message[0] = !message[0];
        }
        // Without auxiliary randomness the nonce still comes from the secret
        // key and the message (BIP-340's default derivation), so signatures
        // are safe and reproducible; these keys sign nothing but load.
        let sig = SECP256K1.sign_schnorr_no_aux_rand(&message, &keys.keypair);

        let (tags_start, tags_end) = canonical.tags;
        let tags = &canonical.bytes[tags_start..tags_end];
        let content = &canonical.bytes[tags_end + 1..canonical.bytes.len() - 1];
        let mut json = Vec::with_capacity(canonical.bytes.len() + 240);
        json.extend_from_slice(b"{\"id\":\"");
        push_hex(&mut json, &id.0);
        json.extend_from_slice(b"\",\"pubkey\":\"");
        json.extend_from_slice(keys.pubkey_hex().as_bytes());
        write!(
            json,
            "\",\"created_at\":{},\"kind\":{},\"tags\":",
            self.created_at, self.kind
        )
        .expect("a Vec takes all");
        json.extend_from_slice(tags);
        json.extend_from_slice(b",\"content\":");
        json.extend_from_slice(content);
        json.extend_from_slice(b",\"sig\":\"");
        push_hex(&mut json, sig.as_byte_array());
        json.extend_from_slice(b"\"}");
        SignedEvent {
            id,
            json: String::from_utf8(json).expect("JSON from UTF-8 parts"),
        }
    }
}

/// The NIP-42 answer to the challenge `challenge` of the relay at
/// `relay_url`: a kind-22242 event tagged `["relay", url]` and
/// `["challenge", challenge]`, empty content.
pub fn auth_event(keys: &Keys, relay_url: &str, challenge: &str, created_at: u64) -> SignedEvent {
    UnsignedEvent {
        kind: AUTH_KIND,
        created_at,
        tags: &[["relay", relay_url], ["challenge", challenge]],
        content: "",
    }
    .sign(keys, Signature::Valid)
}

/// Now in unix seconds, an event's `created_at`.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    let start = out.len();
    out.resize(start + 2 * bytes.len(), 0);
    hex::encode_to_slice(bytes, &mut out[start..]).expect("sized for the digits");
}

#[cfg(test)]
mod tests {
    use super::*;
    use secp256k1::{XOnlyPublicKey, schnorr};

    /// Made with aionostr 0.20 (the library nostr-relay 1.14 verifies with):
    /// `Event(pubkey=pk, content=CONTENT, created_at=1700000000, kind=1,
    /// tags=TAGS).sign(SECRET)`, coincurve's `sign_schnorr(id, None)`.
    const SECRET: &str = "5c0c523f52a5b6fad39ed2403092df8cebc36318b39383bca6c00808626fab3a";
    const PUBKEY: &str = "87d3561f19b74adbe8bf840682992466068830a9d8c36b4a0c99d36f826cb6cb";
    const CONTENT: &str = "line1\nq\"b\\t\tr\rbf\u{8}\u{c}ff\u{1} ünï€😀 </script> ~sq1.2.3~";
    const TAGS: &[[&str; 2]] = &[["t", "topic-0"], ["relay", "ws://127.0.0.1/"]];
    const CANONICAL: &str = r#"[0,"87d3561f19b74adbe8bf840682992466068830a9d8c36b4a0c99d36f826cb6cb",1700000000,1,[["t","topic-0"],["relay","ws://127.0.0.1/"]],"line1\nq\"b\\t\tr\rbf\b\fff\u0001 ünï€😀 </script> ~sq1.2.3~"]"#;
    const ID: &str = "d5ea9b2a7631b0ed3374689b265953aa8d94c0c283a3acba3cc020ee41a2f844";
    const SIG: &str = "f7524b5050475a10aea1684eafe0d3c014f2a9edda4ad9281d1e9d20ec18ca138e23fde4342f869f72b634b68ad354e8fa6d36b4f3427bed8a0d09d26b700d7c";

    fn reference() -> UnsignedEvent<'static> {
        UnsignedEvent {
            kind: 1,
            created_at: 1_700_000_000,
            tags: TAGS,
            content: CONTENT,
        }
    }

    fn verify(event: &SignedEvent) -> bool {
        let v: serde_json::Value = serde_json::from_str(event.json()).unwrap();
        let mut sig = [0u8; 64];
        hex::decode_to_slice(v["sig"].as_str().unwrap(), &mut sig).unwrap();
        let sig = schnorr::Signature::from_byte_array(sig);
        let mut pk = [0u8; 32];
        hex::decode_to_slice(v["pubkey"].as_str().unwrap(), &mut pk).unwrap();
        let pk = XOnlyPublicKey::from_byte_array(pk).unwrap();
        SECP256K1.verify_schnorr(&sig, &event.id.0, &pk).is_ok()
    }

    #[test]
    fn serializes_ids_and_signs_as_the_reference_implementation() {
        let keys = Keys::from_secret_hex(SECRET).unwrap();
        assert_eq!(keys.pubkey_hex(), PUBKEY);
        let event = reference();
        assert_eq!(event.canonical(PUBKEY).bytes, CANONICAL.as_bytes());
        assert_eq!(event.id(PUBKEY).to_string(), ID);
        let signed = event.sign(&keys, Signature::Valid);
        assert_eq!(signed.id.to_string(), ID);
        let v: serde_json::Value = serde_json::from_str(signed.json()).unwrap();
        assert_eq!(v["id"], ID);
        assert_eq!(v["pubkey"], PUBKEY);
        assert_eq!(v["created_at"], 1_700_000_000);
        assert_eq!(v["kind"], 1);
        assert_eq!(v["tags"], serde_json::json!(TAGS));
        assert_eq!(v["content"], CONTENT);
        // No auxiliary randomness on either side: the very same signature.
        assert_eq!(v["sig"], SIG);
        assert_eq!(v.as_object().unwrap().len(), 7);
        assert!(verify(&signed));
    }

    #[test]
    fn bip340_test_vector_0() {
        // secret key 3, message and auxiliary randomness all zero.
        let mut secret = [0u8; 32];
        secret[31] = 3;
        let keys = Keys::from_secret(secret).unwrap();
        let sig = SECP256K1.sign_schnorr_with_aux_rand(&[0u8; 32], &keys.keypair, &[0u8; 32]);
        assert_eq!(
            hex::encode_upper(sig.as_byte_array()),
            "E907831F80848D1069A5371B402410364BDF1C5F8307B0084C55F1CE2DCA8215\
             25F66A4A85EA8B71E482A74F382D2CE5EBEEE8FDB2172F477DF4900D310536C0"
        );
    }

    #[test]
    fn the_pure_rust_k256_agrees() {
        // The other well-kept implementation (RustCrypto): the same signature
        // of the same id with zero auxiliary randomness, and each verifies
        // the other's.
        for _ in 0..20 {
            let keys = Keys::generate();
            let event = UnsignedEvent {
                kind: 1,
                created_at: unix_now(),
                tags: &[["t", "topic-3"]],
                content: "~sq3.4.5~xxxx",
            };
            let signed = event.sign(&keys, Signature::Valid);
            let v: serde_json::Value = serde_json::from_str(signed.json()).unwrap();
            let ours = hex::decode(v["sig"].as_str().unwrap()).unwrap();

            let secret = keys.keypair.secret_bytes();
            let k256_key = k256::schnorr::SigningKey::from_slice(&secret).unwrap();
            assert_eq!(
                hex::encode(k256_key.verifying_key().to_bytes()),
                keys.pubkey_hex()
            );
            let theirs = k256_key.sign_raw(&signed.id.0, &[0u8; 32]).unwrap();
            assert_eq!(theirs.to_bytes().as_slice(), ours.as_slice());
            let ours = k256::schnorr::Signature::try_from(ours.as_slice()).unwrap();
            assert!(
                k256_key
                    .verifying_key()
                    .verify_raw(&signed.id.0, &ours)
                    .is_ok()
            );
        }
    }

    #[test]
    fn forged_signatures_are_well_formed_and_invalid() {
        let keys = Keys::generate();
        let event = UnsignedEvent {
            kind: 20001,
            created_at: unix_now(),
            tags: &[["t", "a"]],
            content: "~sq0.0.0~",
        };
        let good = event.sign(&keys, Signature::Valid);
        let forged = event.sign(&keys, Signature::Forged);
        assert_eq!(good.id, forged.id);
        assert!(verify(&good));
        assert!(!verify(&forged));
        assert_eq!(good.json().len(), forged.json().len());
    }

    #[test]
    fn auth_events_carry_relay_and_challenge() {
        let keys = Keys::generate();
        let event = auth_event(&keys, "ws://127.0.0.1:7000/", "c\"hal", 1_700_000_001);
        let v: serde_json::Value = serde_json::from_str(event.json()).unwrap();
        assert_eq!(v["kind"], 22242);
        assert_eq!(
            v["tags"],
            serde_json::json!([["relay", "ws://127.0.0.1:7000/"], ["challenge", "c\"hal"]])
        );
        assert_eq!(v["content"], "");
        assert!(verify(&event));
    }

    #[test]
    fn event_ids_round_trip_through_hex() {
        let id = EventId::from_hex(ID).unwrap();
        assert_eq!(id.to_string(), ID);
        assert_eq!(EventId::from_hex(&ID.to_uppercase()), Some(id));
        assert_eq!(EventId::from_hex(&ID[1..]), None);
        assert_eq!(EventId::from_hex("zz"), None);
    }
}
