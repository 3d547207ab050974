//! Signing ahead of the schedule: a publisher's events, built and signed
//! before their scheduled time, waiting in order for it.
//!
//! A message's stamp (publisher, sequence number, scheduled time) is known
//! from the schedule long before it is due, and so is everything else in
//! its event but `created_at`, which is the time of signing. So a publisher
//! signs each message a little before it is due (the connection decides
//! when: [`crate::nostr::session::SIGN_AHEAD`]) and at its due time only
//! takes the finished frame: signing, about 23 µs a message on one core,
//! never sits between a message's due time and its send.

use super::client;
use super::event::{EventId, UnsignedEvent, unix_now};
use super::keys::Keys;
use super::{Settings, Signature};
use crate::stamp::Stamp;
use std::collections::VecDeque;
use std::time::Duration;

/// How long before its scheduled time a message is signed, at most: a
/// publisher signs each message when it comes within this of its due time.
pub const SIGN_AHEAD: Duration = Duration::from_millis(500);

/// One publisher's signer and its signed, unsent messages.
#[derive(Debug)]
pub struct Ahead {
    keys: Keys,
    event_kind: u16,
    topic: String,
    payload_bytes: usize,
    signature: Signature,
    /// Signed messages, in sequence order, from the next one to send.
    ready: VecDeque<Ready>,
    /// The sequence number of the next message to sign.
    next: u64,
}

/// A signed message, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    /// Its sequence number.
    pub seq: u64,
    /// Its event id, which the relay's `OK` names.
    pub id: EventId,
    /// The `["EVENT", {...}]` frame.
    pub frame: String,
}

impl Ahead {
    /// The signer of a publisher on `topic` with `keys`: contents are
    /// squall's stamp padded to `payload_bytes`.
    pub fn new(keys: Keys, settings: &Settings, topic: String, payload_bytes: usize) -> Self {
        Self {
            keys,
            event_kind: settings.event_kind,
            topic,
            payload_bytes,
            signature: settings.signature(),
            ready: VecDeque::new(),
            next: 0,
        }
    }

    /// The publisher's keys.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The sequence number of the next message to sign.
    pub fn next(&self) -> u64 {
        self.next
    }

    /// Signed messages waiting.
    pub fn queued(&self) -> usize {
        self.ready.len()
    }

    /// Signs the message of `stamp` now (`created_at` = now), the next in
    /// sequence ([`next`](Self::next)), and queues it.
    pub fn sign(&mut self, stamp: Stamp) {
        debug_assert_eq!(stamp.seq, self.next, "signed in sequence order");
        let mut content = Vec::with_capacity(self.payload_bytes);
        stamp.write_padded(&mut content, self.payload_bytes);
        let content = String::from_utf8(content).expect("the stamp is ASCII");
        let tags = [["t", self.topic.as_str()]];
        let event = UnsignedEvent {
            kind: self.event_kind,
            created_at: unix_now(),
            tags: &tags,
            content: &content,
        }
        .sign(&self.keys, self.signature);
        self.ready.push_back(Ready {
            seq: stamp.seq,
            id: event.id,
            frame: client::event(&event),
        });
        self.next = stamp.seq + 1;
    }

    /// Takes message `seq`, if it has been signed (older ones left waiting,
    /// which a publisher never skips, are dropped).
    pub fn take(&mut self, seq: u64) -> Option<Ready> {
        while self.ready.front().is_some_and(|r| r.seq < seq) {
            self.ready.pop_front();
        }
        if self.ready.front()?.seq == seq {
            self.ready.pop_front()
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nostr::RelayMessage;

    fn stamp(seq: u64) -> Stamp {
        Stamp {
            publisher: 4,
            seq,
            scheduled_ns: 1_000 * (seq + 1),
        }
    }

    #[test]
    fn signs_in_order_and_hands_out_each_message_once() {
        let settings = Settings {
            event_kind: 20001,
            ..Settings::default()
        };
        let mut ahead = Ahead::new(Keys::generate(), &settings, "topic-2".into(), 120);
        assert_eq!(ahead.take(0), None, "nothing signed yet");
        for seq in 0..3 {
            ahead.sign(stamp(seq));
        }
        assert_eq!((ahead.next(), ahead.queued()), (3, 3));
        let first = ahead.take(0).unwrap();
        assert_eq!(first.seq, 0);
        let v: serde_json::Value = serde_json::from_str(&first.frame).unwrap();
        assert_eq!(v[0], "EVENT");
        assert_eq!(v[1]["id"], first.id.to_string());
        assert_eq!(v[1]["kind"], 20001);
        assert_eq!(v[1]["tags"], serde_json::json!([["t", "topic-2"]]));
        let content = v[1]["content"].as_str().unwrap();
        assert_eq!(content.len(), 120);
        assert_eq!(
            crate::stamp::scan(content.as_bytes()).collect::<Vec<_>>(),
            vec![stamp(0)]
        );
        assert!((unix_now() as i64 - v[1]["created_at"].as_i64().unwrap()).abs() <= 2);
        // Message 1 was never taken: taking 2 drops it.
        assert_eq!(ahead.take(2).unwrap().seq, 2);
        assert_eq!(ahead.queued(), 0);
        assert_eq!(ahead.take(3), None);
        // The frame reads back as an EVENT the parser does not mistake.
        assert_eq!(RelayMessage::parse(&first.frame), RelayMessage::Other);
    }
}
