//! Client → relay frames (NIP-01, NIP-42): `EVENT`, `REQ`, `CLOSE`, `AUTH`.

use super::event::SignedEvent;

/// `["EVENT",<event>]`: publishes `event`.
pub fn event(event: &SignedEvent) -> String {
    wrap("EVENT", event)
}

/// `["AUTH",<event>]`: answers a NIP-42 challenge with a kind-22242 event
/// ([`auth_event`](super::auth_event)).
pub fn auth(event: &SignedEvent) -> String {
    wrap("AUTH", event)
}

fn wrap(verb: &str, event: &SignedEvent) -> String {
    let mut frame = String::with_capacity(event.json().len() + verb.len() + 5);
    frame.push_str("[\"");
    frame.push_str(verb);
    frame.push_str("\",");
    frame.push_str(event.json());
    frame.push(']');
    frame
}

/// `["REQ",<sub_id>,{"kinds":[<kind>],"#t":[<topic>],"since":<since>}]`:
/// subscribes to the events of `kind` tagged with `topic` from `since`
/// (unix seconds) on, so that the relay sends no stored event of an earlier
/// run before its `EOSE`.
pub fn req(sub_id: &str, kind: u16, topic: &str, since: u64) -> String {
    format!(
        r##"["REQ",{},{{"kinds":[{kind}],"#t":[{}],"since":{since}}}]"##,
        json_string(sub_id),
        json_string(topic)
    )
}

/// `["CLOSE",<sub_id>]`: ends a subscription.
pub fn close(sub_id: &str) -> String {
    format!(r#"["CLOSE",{}]"#, json_string(sub_id))
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).expect("strings serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nostr::{Keys, Signature, UnsignedEvent};
    use serde_json::{Value, json};

    #[test]
    fn frames_are_the_nip01_arrays() {
        let v: Value =
            serde_json::from_str(&req("sq3.1", 1, "topic-\"1\"", 1_700_000_000)).unwrap();
        assert_eq!(
            v,
            json!(["REQ", "sq3.1", {"kinds": [1], "#t": ["topic-\"1\""], "since": 1_700_000_000}])
        );
        assert_eq!(close("sq3.1"), r#"["CLOSE","sq3.1"]"#);

        let keys = Keys::generate();
        let signed = UnsignedEvent {
            kind: 1,
            created_at: 1,
            tags: &[["t", "x"]],
            content: "c",
        }
        .sign(&keys, Signature::Valid);
        let v: Value = serde_json::from_str(&event(&signed)).unwrap();
        assert_eq!(v[0], "EVENT");
        assert_eq!(v[1]["id"], signed.id.to_string());
        assert_eq!(v[1], serde_json::from_str::<Value>(signed.json()).unwrap());
        let v: Value = serde_json::from_str(&auth(&signed)).unwrap();
        assert_eq!(v[0], "AUTH");
        assert_eq!(v.as_array().unwrap().len(), 2);
    }
}
