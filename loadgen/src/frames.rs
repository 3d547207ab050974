//! The frames the engine sends, per protocol, and what it makes of the
//! frames without a stamp (the squall protocol's acknowledgements and errors).

use crate::plan::{LoadPlan, Protocol};
use crate::stamp::Stamp;
use serde::Deserialize;
use squall_proto::wire::Envelope;
use std::borrow::Cow;

/// Builds the frames of one plan.
#[derive(Debug, Clone)]
pub struct Frames {
    protocol: Protocol,
    topic_prefix: String,
    payload_bytes: usize,
}

/// A frame without a stamp, as far as the engine cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// The `subscribed` Status.
    Subscribed,
    /// An `Error` reply with its code.
    Error(String),
    /// Anything else.
    Other,
}

/// One publisher's frame, split around the stamp.
#[derive(Debug, Clone)]
pub struct PublishTemplate {
    head: String,
    tail: String,
    stamp_len: usize,
}

impl PublishTemplate {
    /// The frame carrying `stamp`.
    pub fn frame(&self, stamp: Stamp) -> String {
        let mut bytes = Vec::with_capacity(self.head.len() + self.stamp_len + self.tail.len());
        bytes.extend_from_slice(self.head.as_bytes());
        stamp.write_padded(&mut bytes, self.stamp_len);
        bytes.extend_from_slice(self.tail.as_bytes());
        String::from_utf8(bytes).expect("UTF-8 around an ASCII stamp")
    }
}

impl Frames {
    /// The frames of `plan`.
    pub fn new(plan: &LoadPlan) -> Self {
        Self {
            protocol: plan.protocol.clone(),
            topic_prefix: plan.topic_prefix.clone(),
            payload_bytes: plan.payload_bytes,
        }
    }

    /// The name of topic `k`.
    pub fn topic_name(&self, k: u64) -> String {
        format!("{}{k}", self.topic_prefix)
    }

    /// The frames that subscribe connection `conn` to `topics`.
    pub fn subscribe(&self, conn: u64, topics: &[u64]) -> Vec<String> {
        match &self.protocol {
            Protocol::Squall => {
                let names: Vec<String> = topics.iter().map(|&k| self.topic_name(k)).collect();
                let names = serde_json::to_string(&names).expect("strings serialize");
                vec![format!(
                    r#"{{"type":"Subscribe","data":{{"topics":{names}}}}}"#
                )]
            }
            Protocol::Template { subscribe, .. } => topics
                .iter()
                .map(|&k| fill(subscribe, &self.topic_name(k), conn))
                .collect(),
        }
    }

    /// The publish frame of connection `conn` on `topic`, split around its stamp.
    pub fn publish(&self, conn: u64, topic: u64) -> PublishTemplate {
        let name = self.topic_name(topic);
        match &self.protocol {
            Protocol::Squall => PublishTemplate {
                head: format!(
                    r#"{{"type":"Broadcast","data":{{"topic":{},"payload":""#,
                    serde_json::Value::from(name)
                ),
                tail: r#""}}"#.to_string(),
                stamp_len: self.payload_bytes.saturating_sub(2),
            },
            Protocol::Template { publish, .. } => {
                let filled = fill(publish, &name, conn);
                let (head, tail) = filled.split_once("{stamp}").unwrap_or((&filled, ""));
                PublishTemplate {
                    head: head.to_string(),
                    tail: tail.to_string(),
                    stamp_len: self.payload_bytes,
                }
            }
        }
    }

    /// Whether the protocol acknowledges subscriptions.
    pub fn acknowledges(&self) -> bool {
        matches!(self.protocol, Protocol::Squall)
    }

    /// What a frame without a stamp is.
    pub fn control(&self, frame: &str) -> Control {
        if !self.acknowledges() {
            return Control::Other;
        }
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

/// Fills `{topic}` and `{conn}` of a template.
fn fill(template: &str, topic: &str, conn: u64) -> String {
    template
        .replace("{topic}", topic)
        .replace("{conn}", &conn.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn squall_frames_match_the_wire_protocol_and_the_payload_size() {
        let mut plan = LoadPlan::new(vec!["ws://127.0.0.1:1".into()]);
        plan.payload_bytes = 100;
        let f = Frames::new(&plan);
        assert_eq!(
            f.subscribe(3, &[1, 4]),
            vec![r#"{"type":"Subscribe","data":{"topics":["topic-1","topic-4"]}}"#.to_string()]
        );
        let stamp = Stamp {
            publisher: 7,
            seq: 8,
            scheduled_ns: 9,
        };
        let frame = f.publish(3, 4).frame(stamp);
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
        let f = Frames::new(&plan);
        assert_eq!(
            f.subscribe(5, &[2]),
            vec![r#"{"op":"sub","room":"topic-2","me":5}"#.to_string()]
        );
        let frame = f.publish(5, 2).frame(Stamp {
            publisher: 1,
            seq: 2,
            scheduled_ns: 3,
        });
        assert!(frame.starts_with(r#"{"op":"pub","room":"topic-2","msg":"~sq1.2.3~xx"#));
        assert_eq!(
            frame.len(),
            r#"{"op":"pub","room":"topic-2","msg":""}"#.len() + 80
        );
        assert!(!f.acknowledges());
    }
}
