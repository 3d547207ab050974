//! Frame templates with per-message placeholders: the text a protocol sends,
//! cut once into literal pieces and placeholders so that each message is
//! one pass of copying.
//!
//! `{topic}` and `{conn}` are fixed for a connection and filled when the
//! template is made ([`fill`]); [`Template::parse`] then recognises the
//! per-message ones: `{stamp}` (squall's stamp, padded), `{seq}` (the
//! message's number on its connection), `{uuid}` (a random version-4 UUID)
//! and `{now_ms}` (Unix time in milliseconds when the frame is made). Any
//! other brace is text: JSON bodies are full of them.

use crate::stamp::Stamp;
use rand::RngExt;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Stamp,
    Seq,
    Uuid,
    NowMs,
}

/// A template cut into pieces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
    /// Bytes of text, for the allocation.
    text_len: usize,
}

/// The placeholders [`Template::parse`] recognises, with their pieces.
const PLACEHOLDERS: [(&str, Piece); 4] = [
    ("{stamp}", Piece::Stamp),
    ("{seq}", Piece::Seq),
    ("{uuid}", Piece::Uuid),
    ("{now_ms}", Piece::NowMs),
];

impl Template {
    /// Cuts `text` at its per-message placeholders.
    pub fn parse(text: &str) -> Self {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            literal.push_str(&rest[..open]);
            rest = &rest[open..];
            match PLACEHOLDERS.iter().find(|(name, _)| rest.starts_with(name)) {
                Some((name, piece)) => {
                    if !literal.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut literal)));
                    }
                    pieces.push(piece.clone());
                    rest = &rest[name.len()..];
                }
                None => {
                    literal.push('{');
                    rest = &rest[1..];
                }
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        let text_len = pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.len(),
                _ => 0,
            })
            .sum();
        Self { pieces, text_len }
    }

    /// Whether the template carries `{stamp}`.
    pub fn has_stamp(&self) -> bool {
        self.pieces.contains(&Piece::Stamp)
    }

    /// The frame: `stamp` padded to `stamp_len` bytes where `{stamp}` is
    /// (nothing without a stamp), `seq` where `{seq}` is.
    pub fn render(&self, stamp: Option<(Stamp, usize)>, seq: u64) -> String {
        let stamp_len = stamp.map_or(0, |(_, len)| len);
        let mut out = Vec::with_capacity(self.text_len + stamp_len + 20);
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.extend_from_slice(t.as_bytes()),
                Piece::Stamp => {
                    if let Some((stamp, len)) = stamp {
                        stamp.write_padded(&mut out, len);
                    }
                }
                Piece::Seq => out.extend_from_slice(seq.to_string().as_bytes()),
                Piece::Uuid => out.extend_from_slice(uuid_v4().as_bytes()),
                Piece::NowMs => out.extend_from_slice(now_ms().to_string().as_bytes()),
            }
        }
        String::from_utf8(out).expect("UTF-8 pieces and an ASCII stamp")
    }
}

/// Fills `{topic}` and `{conn}`, the placeholders fixed for a connection.
pub fn fill(template: &str, topic: &str, conn: u64) -> String {
    template
        .replace("{topic}", topic)
        .replace("{conn}", &conn.to_string())
}

/// A random version-4 UUID, lower-case hex with hyphens.
fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::rng().random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut s = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        let _ = write!(s, "{byte:02x}");
    }
    s
}

/// Milliseconds since the Unix epoch, now.
fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_cut_out_and_other_braces_stay_text() {
        let t = Template::parse(r#"{"id":"p{seq}","q":"{x}","s":"{stamp}","at":{now_ms}}"#);
        assert!(t.has_stamp());
        let stamp = Stamp {
            publisher: 1,
            seq: 2,
            scheduled_ns: 3,
        };
        let frame = t.render(Some((stamp, 12)), 7);
        assert!(
            frame.starts_with(r#"{"id":"p7","q":"{x}","s":"~sq1.2.3~xxx","at":1"#),
            "{frame}"
        );
        let v: serde_json::Value = serde_json::from_str(&frame).unwrap();
        assert!(v["at"].as_u64().unwrap() > 1_700_000_000_000);
        assert!(!Template::parse("{stamp").has_stamp());
        assert_eq!(Template::parse("{").render(None, 0), "{");
        assert_eq!(Template::parse("").render(None, 0), "");
    }

    #[test]
    fn uuids_are_version_4() {
        let u = Template::parse("{uuid}").render(None, 0);
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"), "{u}");
        assert_ne!(u, Template::parse("{uuid}").render(None, 0));
    }

    #[test]
    fn fill_sets_topic_and_conn() {
        assert_eq!(fill("{topic}/{conn}/{seq}", "t-1", 9), "t-1/9/{seq}");
    }
}
