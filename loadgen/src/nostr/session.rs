//! One connection's Nostr state, without I/O: its subscriptions and which
//! have their `EOSE`, its publishes still waiting for an `OK`, and its
//! answers to `AUTH` challenges. The connection task feeds it what it sends
//! and what the relay says, and sends back what it asks.

use super::client;
use super::event::{EventId, auth_event, unix_now};
use super::keys::Keys;
use super::relay::{Reason, RelayMessage, event_sub_id};
use crate::report::NostrStats;
use std::collections::VecDeque;

/// How far back a `REQ`'s `since` reaches before the moment it is sent, in
/// seconds: an event's `created_at` is the time it was signed, up to
/// [`SIGN_AHEAD`](super::ahead::SIGN_AHEAD) before it was due, on a clock that another machine's shard
/// may read a few seconds apart. Stored events this lets through (sent
/// before the subscription's `EOSE`) are not counted as deliveries.
pub const SINCE_SLACK_S: u64 = 10;

/// Publishes a connection remembers while waiting for their `OK`; past it
/// the oldest counts as unanswered (a relay that never answers must not
/// grow memory without bound).
const MAX_OUTSTANDING: usize = 100_000;

/// What the connection should do after a relay message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// One subscription is acknowledged (its `EOSE`).
    Subscribed,
    /// Send these frames back, in order.
    Reply(Vec<String>),
    /// Nothing.
    Nothing,
}

/// A publish waiting for its `OK`.
#[derive(Debug, Clone, Copy)]
struct Sent {
    id: EventId,
    scheduled_ns: u64,
}

/// One connection's Nostr state.
#[derive(Debug)]
pub(crate) struct Session {
    /// The `REQ` frames sent, by subscription index (`sq<i>`), to send again
    /// after authenticating when the relay wanted that first.
    reqs: Vec<String>,
    /// Per subscription, whether its `EOSE` is still awaited.
    pending: Vec<bool>,
    /// Subscriptions awaiting their `EOSE`.
    waiting: usize,
    /// Subscriptions the relay closed with `auth-required:`, to send again
    /// once authenticated.
    retry: Vec<usize>,
    /// Publishes waiting for their `OK`, oldest first.
    outstanding: VecDeque<Sent>,
    /// The ids of the `AUTH` events sent: their `OK`s answer no publish.
    auth_ids: Vec<EventId>,
    /// Whether an `AUTH` answer was sent on this socket.
    authenticated: bool,
    /// The keys that answer `AUTH` (made on the first challenge if `None`).
    keys: Option<Keys>,
    /// The relay's URL, as the `relay` tag of an `AUTH` event names it.
    relay_url: String,
}

impl Session {
    /// The state of a connection to `relay_url` that answers `AUTH` with
    /// `keys` (fresh ones if `None`).
    pub fn new(relay_url: String, keys: Option<Keys>) -> Self {
        Self {
            reqs: Vec::new(),
            pending: Vec::new(),
            waiting: 0,
            retry: Vec::new(),
            outstanding: VecDeque::new(),
            auth_ids: Vec::new(),
            authenticated: false,
            keys,
            relay_url,
        }
    }

    /// The subscription id of a connection's `i`-th subscription.
    pub fn sub_id(i: usize) -> String {
        format!("sq{i}")
    }

    /// The `REQ` frames of a socket's subscriptions (their ids
    /// [`sub_id`](Self::sub_id) in order) are being sent: each awaits its
    /// `EOSE` from here on (again, on a new socket).
    pub fn subscribing(&mut self, reqs: &[String]) {
        self.reqs = reqs.to_vec();
        self.pending = vec![true; reqs.len()];
        self.waiting = reqs.len();
        self.retry.clear();
        self.authenticated = false;
    }

    /// Whether a frame with a stamp is a delivery: an `EVENT` frame (an `OK`
    /// or a `NOTICE` quoting an event never is) of a subscription whose
    /// `EOSE` has come (before it, the relay sends stored events, not live
    /// ones).
    pub fn is_delivery(&self, frame: &[u8]) -> bool {
        let Some(sub_id) = event_sub_id(frame) else {
            return false;
        };
        self.waiting == 0 || !self.index(sub_id).is_some_and(|i| self.pending[i])
    }

    fn index(&self, sub_id: &[u8]) -> Option<usize> {
        let digits = sub_id.strip_prefix(b"sq")?;
        let i: usize = std::str::from_utf8(digits).ok()?.parse().ok()?;
        (i < self.pending.len()).then_some(i)
    }

    /// A publish of event `id`, scheduled at `scheduled_ns`, was sent.
    pub fn published(&mut self, id: EventId, scheduled_ns: u64, stats: &mut NostrStats) {
        if self.outstanding.len() >= MAX_OUTSTANDING {
            self.outstanding.pop_front();
            stats.unanswered += 1;
        }
        self.outstanding.push_back(Sent { id, scheduled_ns });
    }

    /// Reads one relay message that arrived at `now_ns`.
    pub fn on_message(
        &mut self,
        message: RelayMessage<'_>,
        now_ns: u64,
        stats: &mut NostrStats,
    ) -> Outcome {
        match message {
            RelayMessage::Eose { sub_id } => match self.index(sub_id.as_bytes()) {
                Some(i) if self.pending[i] => {
                    self.pending[i] = false;
                    self.waiting -= 1;
                    Outcome::Subscribed
                }
                _ => Outcome::Nothing,
            },
            RelayMessage::Ok {
                id,
                accepted,
                message,
            } => {
                if let Some(at) = id.and_then(|id| self.auth_ids.iter().position(|a| *a == id)) {
                    self.auth_ids.swap_remove(at);
                    if !accepted {
                        stats.auth_refused += 1;
                        stats.example("auth", &message);
                    }
                    return Outcome::Nothing;
                }
                // By id; without one (a relay that leaves it out), the
                // oldest: a relay reads one socket's frames in order.
                let at = match id {
                    Some(id) => self.outstanding.iter().position(|s| s.id == id),
                    None => (!self.outstanding.is_empty()).then_some(0),
                };
                let Some(sent) = at.and_then(|at| self.outstanding.remove(at)) else {
                    stats.unmatched += 1;
                    return Outcome::Nothing;
                };
                let us = now_ns.saturating_sub(sent.scheduled_ns) / 1000;
                stats.ok_latency.record_us(us);
                if accepted {
                    stats.accepted += 1;
                } else {
                    let reason = Reason::of(&message).as_str();
                    *stats.rejected.entry(reason.to_string()).or_default() += 1;
                    stats.example(reason, &message);
                }
                Outcome::Nothing
            }
            RelayMessage::Notice { message } => {
                stats.notices += 1;
                stats.example("notice", &message);
                Outcome::Nothing
            }
            RelayMessage::Closed { sub_id, message } => {
                let reason = Reason::of(&message);
                *stats.closed.entry(reason.as_str().to_string()).or_default() += 1;
                stats.example("closed", &message);
                match self.index(sub_id.as_bytes()) {
                    Some(i) if reason == Reason::AuthRequired && self.authenticated => {
                        Outcome::Reply(vec![self.reqs[i].clone()])
                    }
                    Some(i) if reason == Reason::AuthRequired => {
                        self.retry.push(i);
                        Outcome::Nothing
                    }
                    _ => Outcome::Nothing,
                }
            }
            RelayMessage::Auth { challenge } => {
                let keys = self.keys.get_or_insert_with(Keys::generate);
                let event = auth_event(keys, &self.relay_url, &challenge, unix_now());
                self.auth_ids.push(event.id);
                self.authenticated = true;
                stats.auth += 1;
                let mut frames = vec![client::auth(&event)];
                frames.extend(self.retry.drain(..).map(|i| self.reqs[i].clone()));
                Outcome::Reply(frames)
            }
            RelayMessage::Event { .. } | RelayMessage::Other => Outcome::Nothing,
        }
    }

    /// At the end of the connection (or of a socket): what was never
    /// answered counts as unanswered.
    pub fn finish(&mut self, stats: &mut NostrStats) {
        stats.unanswered += self.outstanding.len() as u64;
        self.outstanding.clear();
        self.auth_ids.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn req(i: usize, topic: &str) -> String {
        client::req(&Session::sub_id(i), 1, topic, unix_now())
    }

    fn id(n: u8) -> EventId {
        EventId([n; 32])
    }

    fn ok(id: Option<EventId>, accepted: bool, message: &str) -> RelayMessage<'static> {
        RelayMessage::Ok {
            id,
            accepted,
            message: message.to_string().into(),
        }
    }

    #[test]
    fn eose_acknowledges_each_req_once_and_gates_stored_events() {
        let mut s = Session::new("ws://127.0.0.1:1/".into(), None);
        let reqs = [req(0, "topic-0"), req(1, "topic-3")];
        s.subscribing(&reqs);
        let stored = br#"["EVENT","sq1",{"content":"~sq1.2.3~"}]"#;
        let ok_frame = br#"["OK","~sq1.2.3~",true,""]"#;
        assert!(!s.is_delivery(stored), "before its EOSE");
        assert!(!s.is_delivery(ok_frame));
        let mut stats = NostrStats::default();
        let eose = |sub: &str| RelayMessage::Eose {
            sub_id: sub.to_string().into(),
        };
        assert_eq!(
            s.on_message(eose("sq1"), 0, &mut stats),
            Outcome::Subscribed
        );
        assert_eq!(s.on_message(eose("sq1"), 0, &mut stats), Outcome::Nothing);
        assert!(s.is_delivery(stored));
        assert!(!s.is_delivery(br#"["EVENT","sq0",{}]"#), "sq0 still waits");
        assert_eq!(s.on_message(eose("other"), 0, &mut stats), Outcome::Nothing);
        assert_eq!(
            s.on_message(eose("sq0"), 0, &mut stats),
            Outcome::Subscribed
        );
        assert!(s.is_delivery(br#"["EVENT","sq0",{}]"#));
        assert!(!s.is_delivery(ok_frame), "an OK is never a delivery");
        // A new socket subscribes again: stored events are gated again.
        s.subscribing(&reqs);
        assert!(!s.is_delivery(stored));
    }

    #[test]
    fn oks_match_by_id_or_in_order_and_count_by_reason() {
        let mut s = Session::new("ws://127.0.0.1:1/".into(), None);
        let mut stats = NostrStats::default();
        for n in 1..=4 {
            s.published(id(n), u64::from(n) * 1_000_000, &mut stats);
        }
        // Out of order by id.
        s.on_message(ok(Some(id(2)), true, ""), 5_000_000, &mut stats);
        // No id (nostr-relay's refusal): the oldest, 1.
        s.on_message(
            ok(None, false, "invalid: Bad signature"),
            6_000_000,
            &mut stats,
        );
        s.on_message(
            ok(Some(id(3)), false, "rate-limited: slow"),
            7_000_000,
            &mut stats,
        );
        s.on_message(ok(Some(id(9)), true, ""), 7_000_000, &mut stats);
        assert_eq!(stats.accepted, 1);
        assert_eq!(stats.rejected_total(), 2);
        assert_eq!(stats.rejected["invalid"], 1);
        assert_eq!(stats.rejected["rate-limited"], 1);
        assert_eq!(stats.examples["invalid"], "invalid: Bad signature");
        assert_eq!(stats.unmatched, 1);
        assert_eq!(stats.ok_latency.count(), 3);
        // publish 2 (scheduled at 2 ms) answered at 5 ms: 3 ms.
        assert_eq!(stats.ok_latency.min_ms(), 3.0);
        s.finish(&mut stats);
        assert_eq!(stats.unanswered, 1, "4 never answered");
    }

    #[test]
    fn answers_auth_and_resubscribes_what_needed_it() {
        let mut s = Session::new("ws://127.0.0.1:7/".into(), Some(Keys::generate()));
        let mut stats = NostrStats::default();
        s.subscribing(&[req(0, "t0")]);
        let closed = RelayMessage::Closed {
            sub_id: "sq0".into(),
            message: "auth-required: sign in first".into(),
        };
        assert_eq!(
            s.on_message(closed.clone(), 0, &mut stats),
            Outcome::Nothing
        );
        let Outcome::Reply(frames) = s.on_message(
            RelayMessage::Auth {
                challenge: "ch-1".into(),
            },
            0,
            &mut stats,
        ) else {
            panic!("an AUTH is answered")
        };
        assert_eq!(frames.len(), 2, "AUTH, then the REQ again");
        let auth: Value = serde_json::from_str(&frames[0]).unwrap();
        assert_eq!(auth[0], "AUTH");
        assert_eq!(auth[1]["kind"], 22242);
        assert_eq!(
            auth[1]["tags"],
            serde_json::json!([["relay", "ws://127.0.0.1:7/"], ["challenge", "ch-1"]])
        );
        assert!(frames[1].starts_with(r#"["REQ","sq0""#));
        // Once authenticated, a CLOSED auth-required is answered at once.
        assert!(matches!(s.on_message(closed, 0, &mut stats), Outcome::Reply(f) if f.len() == 1));
        // The OK of the AUTH event is not a publish's.
        let auth_id = EventId::from_hex(auth[1]["id"].as_str().unwrap()).unwrap();
        s.on_message(ok(Some(auth_id), false, "restricted: no"), 0, &mut stats);
        assert_eq!((stats.auth, stats.auth_refused, stats.unmatched), (1, 1, 0));
        assert_eq!(stats.closed["auth-required"], 2);
        s.on_message(
            RelayMessage::Notice {
                message: "hello".into(),
            },
            0,
            &mut stats,
        );
        assert_eq!(
            (stats.notices, stats.examples["notice"].as_str()),
            (1, "hello")
        );
    }

    #[test]
    fn a_relay_that_never_answers_costs_bounded_memory() {
        let mut s = Session::new(String::new(), None);
        let mut stats = NostrStats::default();
        for n in 0..(MAX_OUTSTANDING as u64 + 5) {
            s.published(id((n % 200) as u8), n, &mut stats);
        }
        assert_eq!(stats.unanswered, 5);
        s.finish(&mut stats);
        assert_eq!(stats.unanswered, MAX_OUTSTANDING as u64 + 5);
    }
}
