//! Relay → client frames (NIP-01, NIP-42), read without ever panicking.
//!
//! A frame is a JSON array whose first element names it. Whatever is not a
//! well-formed `EVENT`, `OK`, `EOSE`, `NOTICE`, `CLOSED` or `AUTH` (another
//! verb such as NIP-45's `COUNT`, broken JSON, a field of the wrong type) is
//! [`RelayMessage::Other`]; elements past the ones NIP-01 defines are
//! ignored, and a missing `OK` or `CLOSED` message reads as empty (relays
//! older than the rule leave it out). Strings are borrowed from the frame
//! unless they hold escapes.

use super::event::EventId;
use serde::Deserialize;
use serde::de::{self, IgnoredAny, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// What a relay sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayMessage<'a> {
    /// `["EVENT", sub_id, event]`: an event of a subscription (a delivery;
    /// squall finds its stamp in the frame itself).
    Event {
        /// The subscription.
        sub_id: Cow<'a, str>,
    },
    /// `["OK", id, accepted, message]`: the relay's answer to a publish.
    Ok {
        /// The event it answers; `None` when the id is not 64 hex digits
        /// (nostr-relay 1.14 answers an event it refuses with an empty id:
        /// the answer is then the oldest unanswered publish's, as a relay
        /// reads one socket's frames in order).
        id: Option<EventId>,
        /// Whether it took the event.
        accepted: bool,
        /// Why not (or a remark such as `duplicate:` when it did).
        message: Cow<'a, str>,
    },
    /// `["EOSE", sub_id]`: the stored events of a subscription have all been
    /// sent; new ones follow live. It acknowledges the `REQ`.
    Eose {
        /// The subscription.
        sub_id: Cow<'a, str>,
    },
    /// `["NOTICE", message]`: a human-readable remark.
    Notice {
        /// The remark.
        message: Cow<'a, str>,
    },
    /// `["CLOSED", sub_id, message]`: the relay ended (or refused) a
    /// subscription.
    Closed {
        /// The subscription.
        sub_id: Cow<'a, str>,
        /// Why, with a machine-readable prefix ([`Reason`]).
        message: Cow<'a, str>,
    },
    /// `["AUTH", challenge]`: a NIP-42 challenge to answer with a signed
    /// kind-22242 event.
    Auth {
        /// The challenge string.
        challenge: Cow<'a, str>,
    },
    /// Anything else.
    Other,
}

impl<'a> RelayMessage<'a> {
    /// Reads one text frame; never fails, never panics.
    pub fn parse(frame: &'a str) -> Self {
        serde_json::from_str(frame).unwrap_or(Self::Other)
    }

    /// The same message, owning its strings.
    pub fn into_owned(self) -> RelayMessage<'static> {
        let own = |c: Cow<'_, str>| Cow::Owned(c.into_owned());
        match self {
            Self::Event { sub_id } => RelayMessage::Event {
                sub_id: own(sub_id),
            },
            Self::Ok {
                id,
                accepted,
                message,
            } => RelayMessage::Ok {
                id,
                accepted,
                message: own(message),
            },
            Self::Eose { sub_id } => RelayMessage::Eose {
                sub_id: own(sub_id),
            },
            Self::Notice { message } => RelayMessage::Notice {
                message: own(message),
            },
            Self::Closed { sub_id, message } => RelayMessage::Closed {
                sub_id: own(sub_id),
                message: own(message),
            },
            Self::Auth { challenge } => RelayMessage::Auth {
                challenge: own(challenge),
            },
            Self::Other => RelayMessage::Other,
        }
    }
}

/// The subscription id of an `EVENT` frame, read from its first bytes
/// without parsing the event: `["EVENT","<sub_id>",...`, with any JSON
/// whitespace between the tokens. `None` for any other frame, and for a
/// subscription id with escapes (squall's never have any).
pub fn event_sub_id(frame: &[u8]) -> Option<&[u8]> {
    let mut rest = frame;
    for token in [&b"["[..], b"\"EVENT\"", b",", b"\""] {
        rest = skip_ws(rest).strip_prefix(token)?;
    }
    let end = memchr::memchr2(b'"', b'\\', rest)?;
    (rest[end] == b'"').then(|| &rest[..end])
}

fn skip_ws(bytes: &[u8]) -> &[u8] {
    let n = bytes
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .count();
    &bytes[n..]
}

/// The machine-readable prefix of an `OK` or `CLOSED` message (NIP-01):
/// the text before the first `:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// `duplicate:` the relay already has the event.
    Duplicate,
    /// `pow:` not enough proof of work.
    Pow,
    /// `blocked:` the author or client is not welcome.
    Blocked,
    /// `rate-limited:` too fast.
    RateLimited,
    /// `invalid:` bad id, signature, `created_at` or shape.
    Invalid,
    /// `restricted:` not allowed to write there.
    Restricted,
    /// `auth-required:` authenticate first (NIP-42).
    AuthRequired,
    /// `error:` the relay failed.
    Error,
    /// No prefix, or one NIP-01 does not define.
    Other,
}

impl Reason {
    /// The reason of `message`.
    pub fn of(message: &str) -> Self {
        let Some((prefix, _)) = message.split_once(':') else {
            return Self::Other;
        };
        match prefix {
            "duplicate" => Self::Duplicate,
            "pow" => Self::Pow,
            "blocked" => Self::Blocked,
            "rate-limited" => Self::RateLimited,
            "invalid" => Self::Invalid,
            "restricted" => Self::Restricted,
            "auth-required" => Self::AuthRequired,
            "error" => Self::Error,
            _ => Self::Other,
        }
    }

    /// The prefix as NIP-01 writes it (`other` for [`Reason::Other`]): the
    /// label of a count.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Duplicate => "duplicate",
            Self::Pow => "pow",
            Self::Blocked => "blocked",
            Self::RateLimited => "rate-limited",
            Self::Invalid => "invalid",
            Self::Restricted => "restricted",
            Self::AuthRequired => "auth-required",
            Self::Error => "error",
            Self::Other => "other",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for RelayMessage<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(MessageVisitor)
    }
}

struct MessageVisitor;

impl<'de> Visitor<'de> for MessageVisitor {
    type Value = RelayMessage<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a relay message array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let Some(Text(verb)) = seq.next_element()? else {
            return Ok(RelayMessage::Other);
        };
        let message = match verb.as_ref() {
            "EVENT" => match (
                seq.next_element::<Text>()?,
                seq.next_element::<IgnoredAny>()?,
            ) {
                (Some(Text(sub_id)), Some(_)) => RelayMessage::Event { sub_id },
                _ => return Ok(RelayMessage::Other),
            },
            "OK" => {
                let id = seq.next_element::<Text>()?;
                let accepted = seq.next_element::<bool>()?;
                let message = seq.next_element::<Text>()?;
                match (id, accepted) {
                    (Some(Text(id)), Some(accepted)) => RelayMessage::Ok {
                        id: EventId::from_hex(&id),
                        accepted,
                        message: message.map_or(Cow::Borrowed(""), |Text(m)| m),
                    },
                    _ => RelayMessage::Other,
                }
            }
            "EOSE" => match seq.next_element()? {
                Some(Text(sub_id)) => RelayMessage::Eose { sub_id },
                None => return Ok(RelayMessage::Other),
            },
            "NOTICE" => match seq.next_element()? {
                Some(Text(message)) => RelayMessage::Notice { message },
                None => return Ok(RelayMessage::Other),
            },
            "CLOSED" => match seq.next_element()? {
                Some(Text(sub_id)) => RelayMessage::Closed {
                    sub_id,
                    message: seq.next_element()?.map_or(Cow::Borrowed(""), |Text(m)| m),
                },
                None => return Ok(RelayMessage::Other),
            },
            "AUTH" => match seq.next_element()? {
                Some(Text(challenge)) => RelayMessage::Auth { challenge },
                None => return Ok(RelayMessage::Other),
            },
            _ => RelayMessage::Other,
        };
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(message)
    }
}

/// A JSON string, borrowed from the frame when it holds no escape.
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const ID: &str = "d5ea9b2a7631b0ed3374689b265953aa8d94c0c283a3acba3cc020ee41a2f844";

    fn id() -> EventId {
        EventId::from_hex(ID).unwrap()
    }

    #[test]
    fn reads_every_nip01_message() {
        use RelayMessage as M;
        let event =
            format!(r#"["EVENT","sq1",{{"id":"{ID}","content":"~sq1.2.3~","tags":[["t","a"]]}}]"#);
        assert_eq!(
            M::parse(&event),
            M::Event {
                sub_id: "sq1".into()
            }
        );
        assert_eq!(
            M::parse(&format!(r#"["OK","{ID}",true,""]"#)),
            M::Ok {
                id: Some(id()),
                accepted: true,
                message: "".into()
            }
        );
        assert_eq!(
            M::parse(&format!(
                r#"[ "OK" , "{}" , false , "invalid: bad \"sig\"" ]"#,
                ID.to_uppercase()
            )),
            M::Ok {
                id: Some(id()),
                accepted: false,
                message: "invalid: bad \"sig\"".into()
            }
        );
        // An old relay without the message; extra elements are ignored.
        assert_eq!(
            M::parse(&format!(r#"["OK","{ID}",true]"#)),
            M::Ok {
                id: Some(id()),
                accepted: true,
                message: "".into()
            }
        );
        assert_eq!(
            M::parse(&format!(r#"["OK","{ID}",true,"",{{"x":[1]}},2]"#)),
            M::Ok {
                id: Some(id()),
                accepted: true,
                message: "".into()
            }
        );
        // nostr-relay 1.14's answer to a bad signature.
        assert_eq!(
            M::parse(r#"["OK","",false,"invalid: Bad signature"]"#),
            M::Ok {
                id: None,
                accepted: false,
                message: "invalid: Bad signature".into()
            }
        );
        assert_eq!(
            M::parse(r#"["EOSE","sq1"]"#),
            M::Eose {
                sub_id: "sq1".into()
            }
        );
        assert_eq!(
            M::parse(r#"["NOTICE","slow down"]"#),
            M::Notice {
                message: "slow down".into()
            }
        );
        assert_eq!(
            M::parse(r#"["CLOSED","sq1","auth-required: sign in"]"#),
            M::Closed {
                sub_id: "sq1".into(),
                message: "auth-required: sign in".into()
            }
        );
        assert_eq!(
            M::parse(r#"["CLOSED","sq1"]"#),
            M::Closed {
                sub_id: "sq1".into(),
                message: "".into()
            }
        );
        assert_eq!(
            M::parse(r#"["AUTH","challenge-\u00e9"]"#),
            M::Auth {
                challenge: "challenge-é".into()
            }
        );
    }

    #[test]
    fn anything_else_is_other() {
        for frame in [
            "",
            "[]",
            "{}",
            "null",
            r#"["COUNT","sq1",{"count":3}]"#,
            r#"["OK",1,true,""]"#,
            r#"["EVENT","sq1"]"#,
            r#"["EVENT",7,{}]"#,
            r#"["EOSE"]"#,
            r#"["NOTICE",null]"#,
            r#"["AUTH"]"#,
            r#"["EOSE","sq1"] trailing"#,
            r#"["EOSE","sq1""#,
            r#"[["EOSE"],"sq1"]"#,
            "[\"NOTICE\",\"\\ud800\"]",
        ] {
            assert_eq!(RelayMessage::parse(frame), RelayMessage::Other, "{frame}");
        }
        let quoted = format!(r#"["OK","{ID}","true",""]"#);
        assert_eq!(RelayMessage::parse(&quoted), RelayMessage::Other);
        let deep = "[".repeat(10_000);
        assert_eq!(RelayMessage::parse(&deep), RelayMessage::Other);
        let deep = format!(r#"["OK","{ID}",true,"",{}"#, "[".repeat(10_000));
        assert_eq!(RelayMessage::parse(&deep), RelayMessage::Other);
    }

    #[test]
    fn event_frames_name_their_subscription_up_front() {
        assert_eq!(
            event_sub_id(br#"["EVENT","sq2",{"content":"x"}]"#),
            Some(&b"sq2"[..])
        );
        assert_eq!(
            event_sub_id(b" [ \"EVENT\" ,\n \"sq0\", {}]"),
            Some(&b"sq0"[..])
        );
        assert_eq!(event_sub_id(br#"["EVENT","",{}]"#), Some(&b""[..]));
        for frame in [
            &br#"["OK","sq2",true,""]"#[..],
            br#"["EVENT","s\"q",{}]"#,
            br#"["EVENT","sq2"#,
            br#"["EVENT",2,{}]"#,
            br#"{"EVENT":"sq2"}"#,
            b"",
        ] {
            assert_eq!(
                event_sub_id(frame),
                None,
                "{}",
                String::from_utf8_lossy(frame)
            );
        }
    }

    #[test]
    fn strings_without_escapes_are_borrowed() {
        let frame = format!(r#"["OK","{ID}",false,"blocked: you"]"#);
        match RelayMessage::parse(&frame) {
            RelayMessage::Ok {
                message: Cow::Borrowed(m),
                ..
            } => assert_eq!(m, "blocked: you"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reasons_are_the_nip01_prefixes() {
        for (message, reason) in [
            ("duplicate: have it", Reason::Duplicate),
            ("pow: difficulty 26 < 30", Reason::Pow),
            ("blocked: no", Reason::Blocked),
            ("rate-limited: slow down", Reason::RateLimited),
            ("invalid: Bad signature", Reason::Invalid),
            ("restricted: members only", Reason::Restricted),
            ("auth-required: sign in", Reason::AuthRequired),
            ("error: db down", Reason::Error),
            ("rejected: not allowed", Reason::Other),
            ("", Reason::Other),
            ("invalid", Reason::Other),
            (" invalid: x", Reason::Other),
        ] {
            assert_eq!(Reason::of(message), reason, "{message}");
        }
        assert_eq!(Reason::RateLimited.to_string(), "rate-limited");
        assert_eq!(Reason::Other.as_str(), "other");
    }

    /// The frames a relay sends, to mutate.
    fn valid_frames() -> Vec<String> {
        vec![
            format!(
                r#"["EVENT","sq1",{{"id":"{ID}","kind":1,"tags":[["t","a"]],"content":"~sq1.2.3~xx"}}]"#
            ),
            format!(r#"["OK","{ID}",false,"invalid: bad signature"]"#),
            r#"["EOSE","sq1"]"#.to_string(),
            r#"["NOTICE","rate-limited"]"#.to_string(),
            r#"["CLOSED","sq1","error: \"gone\""]"#.to_string(),
            r#"["AUTH","c-1"]"#.to_string(),
        ]
    }

    /// One edit of a frame: remove, insert or replace a char, or cut it.
    #[derive(Debug, Clone)]
    enum Edit {
        Remove(usize),
        Insert(usize, char),
        Replace(usize, char),
        Truncate(usize),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        let ch = prop_oneof![
            prop::sample::select(vec![
                '"', '\\', '[', ']', '{', '}', ',', ':', '0', 'e', '-', ' ', 'u', 'n', 't'
            ]),
            any::<char>(),
        ];
        prop_oneof![
            any::<usize>().prop_map(Edit::Remove),
            (any::<usize>(), ch.clone()).prop_map(|(i, c)| Edit::Insert(i, c)),
            (any::<usize>(), ch).prop_map(|(i, c)| Edit::Replace(i, c)),
            any::<usize>().prop_map(Edit::Truncate),
        ]
    }

    fn apply(frame: &str, edits: &[Edit]) -> String {
        let mut chars: Vec<char> = frame.chars().collect();
        for e in edits {
            let n = chars.len().max(1);
            match *e {
                Edit::Remove(i) if !chars.is_empty() => {
                    chars.remove(i % n);
                }
                Edit::Insert(i, c) => chars.insert(i % (chars.len() + 1), c),
                Edit::Replace(i, c) if !chars.is_empty() => chars[i % n] = c,
                Edit::Truncate(i) => chars.truncate(i % (chars.len() + 1)),
                _ => {}
            }
        }
        chars.into_iter().collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_text_never_panics(frame in any::<String>()) {
            let _ = RelayMessage::parse(&frame);
            let _ = event_sub_id(frame.as_bytes());
        }

        #[test]
        fn json_shaped_text_never_panics(frame in r#"\[("(OK|EVENT|EOSE|NOTICE|CLOSED|AUTH)",)?([\[\]{}",:0-9a-f\\ tfrnu.-]|true|false|null){0,80}"#) {
            let _ = RelayMessage::parse(&frame);
        }

        #[test]
        fn mutated_frames_never_panic(
            which in 0usize..6,
            edits in prop::collection::vec(edit(), 1..6),
        ) {
            let frame = apply(&valid_frames()[which], &edits);
            let _ = RelayMessage::parse(&frame);
            let _ = event_sub_id(frame.as_bytes());
        }

        #[test]
        fn any_ok_round_trips(
            id in prop::array::uniform32(any::<u8>()),
            accepted in any::<bool>(),
            message in any::<String>(),
        ) {
            let frame = json!(["OK", EventId(id).to_string(), accepted, message]).to_string();
            prop_assert_eq!(
                RelayMessage::parse(&frame),
                RelayMessage::Ok { id: Some(EventId(id)), accepted, message: message.into() }
            );
        }

        #[test]
        fn any_closed_event_notice_auth_round_trips(sub_id in any::<String>(), text in any::<String>()) {
            use RelayMessage as M;
            let closed = json!(["CLOSED", sub_id, text]).to_string();
            prop_assert_eq!(
                M::parse(&closed),
                M::Closed { sub_id: sub_id.as_str().into(), message: text.as_str().into() }
            );
            let event = json!(["EVENT", sub_id, {"content": text}]).to_string();
            prop_assert_eq!(M::parse(&event), M::Event { sub_id: sub_id.as_str().into() });
            let notice = json!(["NOTICE", text]).to_string();
            prop_assert_eq!(M::parse(&notice), M::Notice { message: text.as_str().into() });
            let auth = json!(["AUTH", text]).to_string();
            prop_assert_eq!(M::parse(&auth), M::Auth { challenge: text.as_str().into() });
            let _ = Reason::of(&text);
        }
    }
}
