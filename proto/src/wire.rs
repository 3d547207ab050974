//! The relay's wire protocol (DESIGN.md, "Wire protocol of the reference relay").
//!
//! Every frame is one JSON text message `{"type": ..., "data": {...}}`. Payloads
//! are carried as [`RawValue`] so that the relay forwards them byte for byte and
//! never re-encodes what a client sent: the load engine finds its latency stamp
//! in the delivered frame exactly where it put it.
//!
//! Parsing goes through an [`Envelope`] first (type name + raw `data`), then the
//! `data` of the named type: this accepts `type` and `data` in either order and
//! keeps `RawValue` working (serde's tagged enums buffer their content, which
//! `RawValue` cannot survive).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Close code: normal closure.
pub const CLOSE_NORMAL: u16 = 1000;
/// Close code: the server is shutting down.
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code: a protocol error (RFC 6455 framing violation).
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// Close code: a text frame that is not valid UTF-8.
pub const CLOSE_INVALID_PAYLOAD: u16 = 1007;
/// Close code: policy violation (auth expired, persistent abuse, too many errors).
pub const CLOSE_POLICY: u16 = 1008;
/// Close code: a frame or message over the size limit.
pub const CLOSE_TOO_BIG: u16 = 1009;
/// Close code: the consumer was too slow and its queue stayed full.
pub const CLOSE_TRY_AGAIN_LATER: u16 = 1013;

/// The outer shape of every frame: a type name and its still-encoded data.
#[derive(Debug, Deserialize)]
pub struct Envelope<'a> {
    /// The message type, e.g. `"Broadcast"`.
    #[serde(rename = "type", borrow)]
    pub kind: std::borrow::Cow<'a, str>,
    /// The message's `data`, parsed later according to `kind`.
    #[serde(borrow, default)]
    pub data: Option<&'a RawValue>,
}

/// A message from a client to the relay.
#[derive(Debug)]
pub enum ClientMessage<'a> {
    /// Subscribe to topics; answered by a `subscribed` Status.
    Subscribe(Topics),
    /// Unsubscribe from topics; answered by an `unsubscribed` Status.
    Unsubscribe(Topics),
    /// Publish a payload to every current subscriber of a topic.
    Broadcast(BroadcastIn<'a>),
    /// Send a payload to every socket of one user (`sub` claim).
    Direct(DirectIn<'a>),
    /// Liveness check, answered by a Pong with the same timestamp.
    Ping(PingData),
}

/// Why a client frame could not be understood; sent back as an `Error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ProtocolError {
    /// The snake_case error code (`bad_json`, `unknown_type`, `bad_data`).
    pub code: &'static str,
    /// A one-line human explanation.
    pub message: String,
}

impl<'a> ClientMessage<'a> {
    /// Parses one client text frame.
    pub fn parse(text: &'a str) -> Result<Self, ProtocolError> {
        let envelope: Envelope<'a> = serde_json::from_str(text).map_err(|e| ProtocolError {
            code: "bad_json",
            message: e.to_string(),
        })?;
        let data = envelope.data.map(RawValue::get).unwrap_or("null");
        let bad_data = |e: serde_json::Error| ProtocolError {
            code: "bad_data",
            message: format!("{}: {e}", envelope.kind),
        };
        Ok(match envelope.kind.as_ref() {
            "Subscribe" => Self::Subscribe(serde_json::from_str(data).map_err(bad_data)?),
            "Unsubscribe" => Self::Unsubscribe(serde_json::from_str(data).map_err(bad_data)?),
            "Broadcast" => Self::Broadcast(serde_json::from_str(data).map_err(bad_data)?),
            "Direct" => Self::Direct(serde_json::from_str(data).map_err(bad_data)?),
            "Ping" => Self::Ping(serde_json::from_str(data).map_err(bad_data)?),
            other => {
                return Err(ProtocolError {
                    code: "unknown_type",
                    message: format!("unknown message type {other:?}"),
                });
            }
        })
    }
}

/// The `data` of Subscribe and Unsubscribe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topics {
    /// Topic names.
    pub topics: Vec<String>,
}

/// The `data` of a client's Broadcast.
#[derive(Debug, Serialize, Deserialize)]
pub struct BroadcastIn<'a> {
    /// The topic to publish on.
    pub topic: String,
    /// Any JSON, forwarded verbatim.
    #[serde(borrow)]
    pub payload: &'a RawValue,
}

/// The `data` of a client's Direct.
#[derive(Debug, Serialize, Deserialize)]
pub struct DirectIn<'a> {
    /// The recipient's `sub` claim.
    pub to: String,
    /// Any JSON, forwarded verbatim.
    #[serde(borrow)]
    pub payload: &'a RawValue,
}

/// The `data` of Ping and Pong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingData {
    /// Echoed unchanged.
    pub timestamp: u64,
}

/// A message from the relay to a client.
#[derive(Debug, Serialize)]
#[serde(tag = "type", content = "data")]
pub enum ServerMessage<'a> {
    /// The answer to Subscribe and Unsubscribe.
    Status(Status<'a>),
    /// A delivery on a topic.
    Broadcast(BroadcastOut<'a>),
    /// A delivery addressed to this user.
    Direct(DirectOut<'a>),
    /// The answer to Ping.
    Pong(PingData),
    /// A recoverable problem with the client's last frame.
    Error(ErrorData<'a>),
}

impl ServerMessage<'_> {
    /// Encodes the message as the text of one frame.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("server messages always serialize")
    }
}

/// The `data` of a Status reply.
#[derive(Debug, Serialize, Deserialize)]
pub struct Status<'a> {
    /// `subscribed` or `unsubscribed`.
    pub status: &'a str,
    /// What the status is about, e.g. `{"topics": [...]}`.
    pub details: Topics,
}

/// The `data` of a delivered Broadcast.
#[derive(Debug, Serialize, Deserialize)]
pub struct BroadcastOut<'a> {
    /// The topic it was published on.
    pub topic: &'a str,
    /// The publisher's payload, byte for byte.
    #[serde(borrow)]
    pub payload: &'a RawValue,
    /// Counts up by one per topic from 0.
    pub sequence: u64,
    /// The publisher's `sub` claim.
    pub from: &'a str,
}

/// The `data` of a delivered Direct.
#[derive(Debug, Serialize, Deserialize)]
pub struct DirectOut<'a> {
    /// The sender's `sub` claim.
    pub from: &'a str,
    /// The sender's payload, byte for byte.
    #[serde(borrow)]
    pub payload: &'a RawValue,
}

/// The `data` of an Error reply.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorData<'a> {
    /// snake_case machine-readable code, e.g. `rate_limited`.
    pub code: &'a str,
    /// One human-readable line.
    pub message: &'a str,
}

/// The JWT claims the relay reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user; deliveries carry it as `from`, Direct addresses it.
    pub sub: String,
    /// Expiry, seconds since the Unix epoch (required).
    pub exp: u64,
    /// Optional roles, checked by `--require-role`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_client_message_in_either_key_order() {
        let sub = ClientMessage::parse(r#"{"type":"Subscribe","data":{"topics":["a","b"]}}"#);
        assert!(matches!(sub, Ok(ClientMessage::Subscribe(t)) if t.topics == ["a", "b"]));
        let b = ClientMessage::parse(
            r#"{"data":{"topic":"a","payload":{"x": [1, 2]}},"type":"Broadcast"}"#,
        );
        match b {
            Ok(ClientMessage::Broadcast(b)) => {
                assert_eq!(b.topic, "a");
                assert_eq!(b.payload.get(), r#"{"x": [1, 2]}"#);
            }
            other => panic!("{other:?}"),
        }
        let p = ClientMessage::parse(r#"{"type":"Ping","data":{"timestamp":7}}"#);
        assert!(matches!(
            p,
            Ok(ClientMessage::Ping(PingData { timestamp: 7 }))
        ));
    }

    #[test]
    fn reports_bad_json_unknown_types_and_bad_data() {
        assert_eq!(ClientMessage::parse("{").unwrap_err().code, "bad_json");
        assert_eq!(
            ClientMessage::parse(r#"{"type":"Nope"}"#).unwrap_err().code,
            "unknown_type"
        );
        assert_eq!(
            ClientMessage::parse(r#"{"type":"Ping","data":{}}"#)
                .unwrap_err()
                .code,
            "bad_data"
        );
    }

    #[test]
    fn encodes_deliveries_with_the_payload_verbatim() {
        let payload = RawValue::from_string(r#"{"k":"v"}"#.to_string()).unwrap();
        let msg = ServerMessage::Broadcast(BroadcastOut {
            topic: "a",
            payload: &payload,
            sequence: 0,
            from: "alice",
        });
        assert_eq!(
            msg.to_json(),
            r#"{"type":"Broadcast","data":{"topic":"a","payload":{"k":"v"},"sequence":0,"from":"alice"}}"#
        );
    }
}
