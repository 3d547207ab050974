//! The frames the engine sends, per protocol, and what it makes of the
//! frames without a stamp (acknowledgements, errors, keepalives).

use crate::nostr::ahead::Ahead;
use crate::nostr::session::{SINCE_SLACK_S, Session};
use crate::nostr::{Keys, RelayMessage, client, unix_now};
use crate::plan::{LoadPlan, PlanError, Protocol, Transport};
use crate::script::{Compiled, Reading};
use crate::stamp::Stamp;
use crate::template::{Template, fill};
use serde::Deserialize;
use squall_proto::wire::Envelope;
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

/// Builds the frames of one plan and reads the replies.
#[derive(Debug, Clone)]
pub struct Frames {
    protocol: Protocol,
    /// The script's patterns, compiled (script protocol only).
    script: Option<Compiled>,
    /// The keys of the Nostr keys file (Nostr with a keys file only).
    nostr_keys: Option<Arc<Vec<Keys>>>,
    topic_prefix: String,
    payload_bytes: usize,
    /// Over SSE the stream's URL subscribes: no subscribe frames.
    sse: bool,
}

/// A frame without a stamp, as far as the engine cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// One subscription acknowledged (the squall protocol's `subscribed`
    /// Status acknowledges all of a connection's topics at once).
    Subscribed,
    /// An error reply, by its code (counted as `relay_error_<code>`).
    Error(String),
    /// A frame to send back at once (a keepalive's answer).
    Reply(String),
    /// A Nostr relay's message (Nostr only; a delivery is not one of them).
    Nostr(RelayMessage<'static>),
    /// Anything else.
    Other,
}

/// What a publisher sends each message with.
#[derive(Debug)]
pub enum Outgoing {
    /// A text frame with the stamp and the per-message placeholders filled in.
    Text(PublishTemplate),
    /// Nostr: events signed ahead of their scheduled time.
    Nostr(Box<Ahead>),
}

/// How a connection knows that its subscriptions hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acknowledgement {
    /// This many [`Control::Subscribed`] replies.
    Replies(usize),
    /// None comes: they count this long after the frames were sent.
    Settle(Duration),
}

/// One publisher's frame, with its per-message placeholders.
#[derive(Debug, Clone)]
pub struct PublishTemplate {
    template: Template,
    stamp_len: usize,
}

impl PublishTemplate {
    /// The frame carrying `stamp`, the publisher's message number `seq`.
    pub fn frame(&self, stamp: Stamp, seq: u64) -> String {
        self.template.render(Some((stamp, self.stamp_len)), seq)
    }
}

impl Frames {
    /// The frames of `plan`; fails only on a script or Nostr settings that
    /// [`LoadPlan::check`] refuses too (a Nostr keys file is read here).
    pub fn new(plan: &LoadPlan) -> Result<Self, PlanError> {
        let (script, nostr_keys) = match &plan.protocol {
            Protocol::Script(script) => (Some(script.check()?), None),
            Protocol::Nostr(nostr) => (None, nostr.check()?.map(Arc::new)),
            Protocol::Squall | Protocol::Template { .. } => (None, None),
        };
        Ok(Self {
            protocol: plan.protocol.clone(),
            script,
            nostr_keys,
            topic_prefix: plan.topic_prefix.clone(),
            payload_bytes: plan.payload_bytes,
            sse: matches!(plan.transport, Transport::Sse(_)),
        })
    }

    /// The name of topic `k`.
    pub fn topic_name(&self, k: u64) -> String {
        format!("{}{k}", self.topic_prefix)
    }

    /// The frames that subscribe connection `conn` to `topics` (none over
    /// SSE, where the stream's `GET` subscribes).
    pub fn subscribe(&self, conn: u64, topics: &[u64]) -> Vec<String> {
        if self.sse {
            return Vec::new();
        }
        let each = |template: &str| -> Vec<String> {
            topics
                .iter()
                .enumerate()
                .map(|(i, &k)| {
                    Template::parse(&fill(template, &self.topic_name(k), conn))
                        .render(None, i as u64)
                })
                .collect()
        };
        match &self.protocol {
            Protocol::Squall => {
                let names: Vec<String> = topics.iter().map(|&k| self.topic_name(k)).collect();
                let names = serde_json::to_string(&names).expect("strings serialize");
                vec![format!(
                    r#"{{"type":"Subscribe","data":{{"topics":{names}}}}}"#
                )]
            }
            Protocol::Template { subscribe, .. } => each(subscribe),
            Protocol::Script(script) => each(&script.subscribe),
            Protocol::Nostr(nostr) => {
                let since = unix_now().saturating_sub(SINCE_SLACK_S);
                topics
                    .iter()
                    .enumerate()
                    .map(|(i, &k)| {
                        client::req(
                            &Session::sub_id(i),
                            nostr.event_kind,
                            &self.topic_name(k),
                            since,
                        )
                    })
                    .collect()
            }
        }
    }

    /// What connection `conn`, publisher `publisher`, sends its messages on
    /// `topic` with.
    pub fn publish(&self, conn: u64, publisher: u64, topic: u64) -> Outgoing {
        let name = self.topic_name(topic);
        let (template, stamp_len) = match &self.protocol {
            Protocol::Nostr(nostr) => {
                let keys = self.nostr_keys(publisher).unwrap_or_else(Keys::generate);
                return Outgoing::Nostr(Box::new(Ahead::new(
                    keys,
                    nostr,
                    name,
                    self.payload_bytes,
                )));
            }
            Protocol::Squall => (
                format!(
                    r#"{{"type":"Broadcast","data":{{"topic":{},"payload":"{{stamp}}"}}}}"#,
                    serde_json::Value::from(name)
                ),
                self.payload_bytes.saturating_sub(2),
            ),
            Protocol::Template { publish, .. } => (fill(publish, &name, conn), self.payload_bytes),
            Protocol::Script(script) => (fill(&script.publish, &name, conn), self.payload_bytes),
        };
        Outgoing::Text(PublishTemplate {
            template: Template::parse(&template),
            stamp_len,
        })
    }

    /// Key `n mod count` of the Nostr keys file, if there is one.
    fn nostr_keys(&self, n: u64) -> Option<Keys> {
        let keys = self.nostr_keys.as_ref()?;
        Some(keys[(n % keys.len() as u64) as usize].clone())
    }

    /// The Nostr state of connection `conn` to `relay_url` (Nostr only): it
    /// answers `AUTH` with `publisher_keys` if it publishes, else with key
    /// `conn` of the keys file, else with fresh keys.
    pub(crate) fn nostr_session(
        &self,
        conn: u64,
        relay_url: &str,
        publisher_keys: Option<&Keys>,
    ) -> Option<Session> {
        let Protocol::Nostr(_) = &self.protocol else {
            return None;
        };
        let keys = publisher_keys.cloned().or_else(|| self.nostr_keys(conn));
        Some(Session::new(relay_url.to_string(), keys))
    }

    /// How a connection that sent `frames` subscribe frames knows they hold.
    pub fn acknowledgement(&self, frames: usize) -> Acknowledgement {
        match (&self.protocol, &self.script) {
            (Protocol::Squall, _) => Acknowledgement::Replies(1),
            (Protocol::Nostr(_), _) => Acknowledgement::Replies(frames),
            (Protocol::Script(_), Some(c)) if c.acknowledges() => Acknowledgement::Replies(frames),
            (Protocol::Script(s), _) => Acknowledgement::Settle(s.settle),
            (Protocol::Template { settle, .. }, _) => Acknowledgement::Settle(*settle),
        }
    }

    /// The script's compiled patterns (script protocol only).
    pub fn script(&self) -> Option<&Compiled> {
        self.script.as_ref()
    }

    /// The `Sec-WebSocket-Protocol` to ask for at the upgrade.
    pub fn subprotocol(&self) -> Option<&str> {
        match &self.protocol {
            Protocol::Script(s) => s.subprotocol.as_deref(),
            Protocol::Squall | Protocol::Template { .. } | Protocol::Nostr(_) => None,
        }
    }

    /// What a frame without a stamp is.
    pub fn control(&self, frame: &str) -> Control {
        match &self.protocol {
            Protocol::Squall => squall_control(frame),
            Protocol::Template { .. } => Control::Other,
            Protocol::Nostr(_) => match RelayMessage::parse(frame) {
                RelayMessage::Other | RelayMessage::Event { .. } => Control::Other,
                message => Control::Nostr(message.into_owned()),
            },
            Protocol::Script(_) => match self.script.as_ref().map(|c| c.read(frame)) {
                Some(Reading::Reply(reply)) => Control::Reply(reply),
                Some(Reading::Subscribed) => Control::Subscribed,
                Some(Reading::Error(n)) => Control::Error(format!("pattern_{n}")),
                Some(Reading::Other) | None => Control::Other,
            },
        }
    }
}

/// A squall-protocol frame without a stamp: a `subscribed` Status, an
/// `Error` with its code, or something else.
fn squall_control(frame: &str) -> Control {
    let Ok(envelope) = serde_json::from_str::<Envelope>(frame) else {
        return Control::Other;
    };
    let data = envelope.data.map_or("null", |d| d.get());
    match envelope.kind.as_ref() {
        "Status" => match serde_json::from_str::<Loose>(data) {
            Ok(Loose {
                status: Some(status),
                ..
            }) if status == "subscribed" => Control::Subscribed,
            _ => Control::Other,
        },
        "Error" => match serde_json::from_str::<Loose>(data) {
            Ok(Loose {
                code: Some(code), ..
            }) => Control::Error(code.into_owned()),
            _ => Control::Error("unknown".to_string()),
        },
        _ => Control::Other,
    }
}

/// The fields of a Status or Error the engine reads, and nothing else: a
/// relay that adds, omits or reorders the others is still understood.
#[derive(Deserialize)]
struct Loose<'a> {
    #[serde(borrow, default)]
    status: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    code: Option<Cow<'a, str>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn text(outgoing: Outgoing) -> PublishTemplate {
        match outgoing {
            Outgoing::Text(t) => t,
            Outgoing::Nostr(_) => panic!("a text protocol"),
        }
    }

    #[test]
    fn squall_frames_match_the_wire_protocol_and_the_payload_size() {
        let mut plan = LoadPlan::new(vec!["ws://127.0.0.1:1".into()]);
        plan.payload_bytes = 100;
        let f = Frames::new(&plan).unwrap();
        assert_eq!(
            f.subscribe(3, &[1, 4]),
            vec![r#"{"type":"Subscribe","data":{"topics":["topic-1","topic-4"]}}"#.to_string()]
        );
        let stamp = Stamp {
            publisher: 7,
            seq: 8,
            scheduled_ns: 9,
        };
        let frame = text(f.publish(3, 0, 4)).frame(stamp, 0);
        let parsed = squall_proto::wire::ClientMessage::parse(&frame).unwrap();
        let squall_proto::wire::ClientMessage::Broadcast(b) = parsed else {
            panic!("{frame}")
        };
        assert_eq!(b.topic, "topic-4");
        assert_eq!(b.payload.get().len(), 100);
        assert_eq!(crate::stamp::scan(frame.as_bytes()).next(), Some(stamp));
        assert_eq!(
            f.control(
                r#"{"type":"Status","data":{"status":"subscribed","details":{"topics":["a"]}}}"#
            ),
            Control::Subscribed
        );
        assert_eq!(
            f.control(r#"{"type":"Error","data":{"code":"rate_limited","message":"slow down"}}"#),
            Control::Error("rate_limited".into())
        );
        assert_eq!(f.control("nonsense"), Control::Other);
        assert_eq!(
            f.control(r#"{"data":{"status":"subscribed"},"type":"Status"}"#),
            Control::Subscribed,
            "details are not needed"
        );
        assert_eq!(
            f.control(r#"{"type":"Status","data":{"status":"unsubscribed"}}"#),
            Control::Other
        );
    }

    #[test]
    fn templates_fill_topic_conn_and_stamp() {
        let mut plan = LoadPlan::new(vec!["ws://127.0.0.1:1".into()]);
        plan.payload_bytes = 80;
        plan.protocol = Protocol::Template {
            subscribe: r#"{"op":"sub","room":"{topic}","me":{conn}}"#.into(),
            publish: r#"{"op":"pub","room":"{topic}","msg":"{stamp}"}"#.into(),
            settle: Duration::from_millis(100),
        };
        let f = Frames::new(&plan).unwrap();
        assert_eq!(
            f.subscribe(5, &[2]),
            vec![r#"{"op":"sub","room":"topic-2","me":5}"#.to_string()]
        );
        let frame = text(f.publish(5, 0, 2)).frame(
            Stamp {
                publisher: 1,
                seq: 2,
                scheduled_ns: 3,
            },
            2,
        );
        assert!(frame.starts_with(r#"{"op":"pub","room":"topic-2","msg":"~sq1.2.3~xx"#));
        assert_eq!(
            frame.len(),
            r#"{"op":"pub","room":"topic-2","msg":""}"#.len() + 80
        );
        assert_eq!(
            f.acknowledgement(1),
            Acknowledgement::Settle(Duration::from_millis(100))
        );
    }

    #[test]
    fn scripts_number_their_frames_and_read_replies() {
        let mut plan = LoadPlan::new(vec!["ws://127.0.0.1:1".into()]);
        plan.payload_bytes = 80;
        plan.protocol = Protocol::Script(crate::script::Script {
            subprotocol: Some("graphql-transport-ws".into()),
            connect: Vec::new(),
            keepalive: vec![crate::script::Keepalive {
                when: r#""type":"ping""#.into(),
                reply: r#"{"type":"pong"}"#.into(),
            }],
            subscribe: r#"{"id":"s{seq}","topic":"{topic}","by":{conn}}"#.into(),
            subscribed: None,
            settle: Duration::from_millis(300),
            publish: r#"{"id":"p{seq}","payload":"{stamp}"}"#.into(),
            errors: vec![r#""type":"error""#.into()],
        });
        let f = Frames::new(&plan).unwrap();
        assert_eq!(f.subprotocol(), Some("graphql-transport-ws"));
        assert_eq!(
            f.subscribe(4, &[1, 3]),
            vec![
                r#"{"id":"s0","topic":"topic-1","by":4}"#.to_string(),
                r#"{"id":"s1","topic":"topic-3","by":4}"#.to_string(),
            ]
        );
        assert_eq!(
            f.acknowledgement(2),
            Acknowledgement::Settle(Duration::from_millis(300))
        );
        let stamp = Stamp {
            publisher: 1,
            seq: 41,
            scheduled_ns: 3,
        };
        let frame = text(f.publish(4, 0, 1)).frame(stamp, 41);
        assert!(
            frame.starts_with(r#"{"id":"p41","payload":"~sq1.41.3~"#),
            "{frame}"
        );
        assert_eq!(
            f.control(r#"{"type":"ping"}"#),
            Control::Reply(r#"{"type":"pong"}"#.into())
        );
        assert_eq!(
            f.control(r#"{"id":"p1","type":"error","payload":[]}"#),
            Control::Error("pattern_1".into())
        );
        assert_eq!(
            f.control(r#"{"id":"p1","type":"complete"}"#),
            Control::Other
        );
    }
}
