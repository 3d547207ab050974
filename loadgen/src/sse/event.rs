//! The `text/event-stream` parser of the WHATWG HTML standard (§9.2.6,
//! "Interpreting an event stream"), incremental and allocation-light.
//!
//! Bytes go in as they come off the socket, split anywhere; the parser
//! stops after each dispatched event so that a caller can pull events one at
//! a time and borrow each ([`Event`]) without copying it out. What it does,
//! as the standard says:
//! - one leading byte order mark (U+FEFF) is skipped, even split over reads;
//! - lines end with CRLF, LF or CR, a CRLF split over two reads included;
//! - `data:` lines are joined with `\n`; `event:` sets the type (default
//!   `message`), `id:` the last event id (a value with NUL is ignored, and
//!   the id stays for the following events), `retry:` the reconnection time
//!   in ms (digits only, else ignored); a line starting with `:` is a
//!   comment (a keepalive); one space after the colon is dropped; other
//!   fields are ignored;
//! - an empty line dispatches the event, unless no `data` line came (then the
//!   type is reset and nothing is dispatched);
//! - at the end of the stream an event without its empty line is discarded.
//!
//! Text is not decoded: data stays bytes (squall scans them for stamps), and
//! the type and id are read as UTF-8 with replacement characters only when
//! asked for. A line or an event's data longer than the parser's limit is an
//! error ([`SocketError::TooBig`]) rather than unbounded memory.

use crate::connect::SocketError;
use std::borrow::Cow;

/// The byte order mark, as UTF-8.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One dispatched event, borrowed from the parser until its next `feed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    /// The `event:` type, empty when none was given (it is then `message`).
    kind: &'a [u8],
    /// The `data:` lines joined with `\n`.
    pub data: &'a [u8],
    /// The last event id seen on the stream (empty when none).
    id: &'a [u8],
}

impl Event<'_> {
    /// The event's type: `message` unless an `event:` line named another.
    pub fn kind(&self) -> Cow<'_, str> {
        if self.kind.is_empty() {
            Cow::Borrowed("message")
        } else {
            String::from_utf8_lossy(self.kind)
        }
    }

    /// The last event id of the stream when the event was dispatched.
    pub fn id(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(self.id)
    }
}

/// What one call to [`EventParser::feed`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fed {
    /// Input bytes consumed; the rest is to be fed again.
    pub consumed: usize,
    /// Whether an event was dispatched ([`EventParser::event`] holds it).
    pub dispatched: bool,
}

/// Where the parser is in the stream's first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// This many bytes of a byte order mark seen so far.
    Bom(usize),
    /// Past the start.
    Body,
}

/// The incremental parser of one stream.
#[derive(Debug)]
pub struct EventParser {
    /// Longest line, and longest data of one event, in bytes.
    max: usize,
    start: Start,
    /// The last byte fed was a CR: an LF right after it ends no line.
    after_cr: bool,
    /// A line begun in an earlier feed.
    line: Vec<u8>,
    /// The data buffer: each `data:` value followed by `\n`.
    data: Vec<u8>,
    /// The event type buffer.
    kind: Vec<u8>,
    /// The last event id buffer.
    id: Vec<u8>,
    /// The reconnection time the stream asked for, in ms.
    retry_ms: Option<u64>,
    /// An event was dispatched and is still held (cleared on the next feed).
    held: bool,
    /// Comment lines seen (keepalives).
    comments: u64,
}

impl EventParser {
    /// A parser that refuses lines or event data longer than `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            start: Start::Bom(0),
            after_cr: false,
            line: Vec::new(),
            data: Vec::new(),
            kind: Vec::new(),
            id: Vec::new(),
            retry_ms: None,
            held: false,
            comments: 0,
        }
    }

    /// The reconnection time the stream set with `retry:`, in ms.
    pub fn retry_ms(&self) -> Option<u64> {
        self.retry_ms
    }

    /// The last event id seen (empty when none), as a reconnect's
    /// `Last-Event-ID` would carry it.
    pub fn last_id(&self) -> &[u8] {
        &self.id
    }

    /// Comment lines (keepalives) seen so far.
    pub fn comments(&self) -> u64 {
        self.comments
    }

    /// The event the last [`feed`](Self::feed) dispatched, if it did.
    pub fn event(&self) -> Option<Event<'_>> {
        self.held.then(|| Event {
            kind: &self.kind,
            data: &self.data,
            id: &self.id,
        })
    }

    /// Parses `input` up to the end of the first event it dispatches, or
    /// all of it. An error ends the stream: the parser is then not to be fed
    /// again.
    pub fn feed(&mut self, mut input: &[u8]) -> Result<Fed, SocketError> {
        if std::mem::take(&mut self.held) {
            self.data.clear();
            self.kind.clear();
        }
        let total = input.len();
        if let Start::Bom(seen) = self.start {
            let want = &BOM[seen..];
            let n = want.len().min(input.len());
            if input[..n] == want[..n] {
                input = &input[n..];
                if seen + n < BOM.len() {
                    self.start = Start::Bom(seen + n);
                    return Ok(Fed {
                        consumed: total,
                        dispatched: false,
                    });
                }
            } else {
                // Not a byte order mark after all: its bytes so far were text.
                self.line.extend_from_slice(&BOM[..seen]);
            }
            self.start = Start::Body;
        }
        while !input.is_empty() {
            if self.after_cr {
                self.after_cr = false;
                if input[0] == b'\n' {
                    input = &input[1..];
                    continue;
                }
            }
            let Some(end) = memchr::memchr2(b'\n', b'\r', input) else {
                if self.line.len() + input.len() > self.max {
                    return Err(SocketError::TooBig);
                }
                self.line.extend_from_slice(input);
                break;
            };
            self.after_cr = input[end] == b'\r';
            let dispatched = if self.line.is_empty() {
                self.take_line(&input[..end])?
            } else {
                if self.line.len() + end > self.max {
                    return Err(SocketError::TooBig);
                }
                self.line.extend_from_slice(&input[..end]);
                let line = std::mem::take(&mut self.line);
                let dispatched = self.take_line(&line);
                self.line = line;
                self.line.clear();
                dispatched?
            };
            input = &input[end + 1..];
            if dispatched {
                self.held = true;
                return Ok(Fed {
                    consumed: total - input.len(),
                    dispatched: true,
                });
            }
        }
        Ok(Fed {
            consumed: total,
            dispatched: false,
        })
    }

    /// Interprets one complete line; true when it dispatched an event.
    fn take_line(&mut self, line: &[u8]) -> Result<bool, SocketError> {
        if line.len() > self.max {
            return Err(SocketError::TooBig);
        }
        if line.is_empty() {
            if self.data.is_empty() {
                self.kind.clear();
                return Ok(false);
            }
            self.data.pop(); // the `\n` after the last data line
            return Ok(true);
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(0) => {
                self.comments += 1;
                return Ok(false);
            }
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        match field {
            b"data" => {
                if self.data.len() + value.len() + 1 > self.max {
                    return Err(SocketError::TooBig);
                }
                self.data.extend_from_slice(value);
                self.data.push(b'\n');
            }
            b"event" => {
                self.kind.clear();
                self.kind.extend_from_slice(value);
            }
            b"id" if !value.contains(&0) => {
                self.id.clear();
                self.id.extend_from_slice(value);
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                let ms = value.iter().fold(0u64, |ms, &d| {
                    ms.saturating_mul(10).saturating_add(u64::from(d - b'0'))
                });
                self.retry_ms = Some(ms);
            }
            _ => {}
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One parsed event, owned: (type, data, id).
    type Owned = (String, Vec<u8>, String);

    /// Feeds `parts` in turn and collects every event.
    fn parse(parser: &mut EventParser, parts: &[&[u8]]) -> Result<Vec<Owned>, SocketError> {
        let mut events = Vec::new();
        for part in parts {
            let mut rest = *part;
            loop {
                let fed = parser.feed(rest)?;
                assert!(fed.consumed <= rest.len());
                rest = &rest[fed.consumed..];
                if let Some(e) = parser.event() {
                    assert!(fed.dispatched);
                    events.push((e.kind().into_owned(), e.data.to_vec(), e.id().into_owned()));
                }
                if !fed.dispatched {
                    assert!(rest.is_empty(), "a feed without an event takes everything");
                    break;
                }
            }
        }
        Ok(events)
    }

    fn all(text: &[u8]) -> Vec<Owned> {
        parse(&mut EventParser::new(1 << 16), &[text]).unwrap()
    }

    fn ev(kind: &str, data: &str, id: &str) -> Owned {
        (kind.into(), data.as_bytes().to_vec(), id.into())
    }

    #[test]
    fn the_standards_examples() {
        // HTML §9.2.6's examples.
        assert_eq!(
            all(b"data: YHOO\ndata: +2\ndata: 10\n\n"),
            vec![ev("message", "YHOO\n+2\n10", "")]
        );
        assert_eq!(
            all(b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n"),
            vec![
                ev("message", "first event", "1"),
                ev("message", "second event", ""),
                ev("message", " third event", ""),
            ]
        );
        assert_eq!(
            all(b"data\n\ndata\ndata\n\ndata:"),
            vec![ev("message", "", ""), ev("message", "\n", "")],
            "the unterminated last event is discarded"
        );
        assert_eq!(
            all(b"data:test\n\ndata: test\n\n"),
            vec![ev("message", "test", ""), ev("message", "test", "")]
        );
    }

    #[test]
    fn types_ids_retry_comments_and_unknown_fields() {
        let mut p = EventParser::new(1024);
        let events = parse(
            &mut p,
            &[b"event: add\ndata: 1\nid: 7\nretry: 2500\nfoo: bar\n\n:ka\n:ka\nevent: x\n\ndata: 2\n\nid: a\0b\nretry: 1x\ndata: 3\n\n"],
        )
        .unwrap();
        assert_eq!(
            events,
            vec![
                ev("add", "1", "7"),
                ev("message", "2", "7"),
                ev("message", "3", "7")
            ],
            "a type without data is reset; the id stays; an id with NUL is ignored"
        );
        assert_eq!(p.retry_ms(), Some(2500), "a non-digit retry is ignored");
        assert_eq!(p.comments(), 2);
        assert_eq!(p.last_id(), b"7");
    }

    #[test]
    fn line_ends_bom_and_splits() {
        let want = vec![ev("message", "a\nb", ""), ev("message", "c", "")];
        assert_eq!(
            all(b"\xEF\xBB\xBFdata: a\r\ndata: b\r\n\r\ndata: c\r\r"),
            want
        );
        assert_eq!(all(b"data: a\rdata: b\r\rdata: c\n\n"), want);
        // A CRLF split over two reads is one line end; so is a BOM split in three.
        let mut p = EventParser::new(64);
        let parts: [&[u8]; 6] = [
            b"\xEF",
            b"\xBB",
            b"\xBFdata: a\r",
            b"\ndata: b\r",
            b"\n\r",
            b"\ndata: c\n\n",
        ];
        assert_eq!(parse(&mut p, &parts).unwrap(), want);
        // Only the first BOM is skipped, and a partial one is text.
        assert_eq!(
            all(b"\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\n"),
            Vec::<Owned>::new(),
            "the second BOM makes the field name unknown"
        );
        assert_eq!(all(b"\xEFdata\n\n"), Vec::<Owned>::new());
    }

    #[test]
    fn too_long_lines_and_events_are_refused() {
        let mut p = EventParser::new(16);
        assert_eq!(
            parse(&mut p, &[b"data: 0123456789", b"abcdef\n"]),
            Err(SocketError::TooBig)
        );
        let mut p = EventParser::new(16);
        assert_eq!(
            parse(&mut p, &[b"data: 01234567\ndata: 01234567\n\n"]),
            Err(SocketError::TooBig)
        );
        let mut p = EventParser::new(16);
        assert_eq!(
            parse(&mut p, &[b"data: 01234567\n\n"]).unwrap(),
            vec![ev("message", "01234567", "")]
        );
    }

    /// Serializes events with the given line end and a comment between them.
    fn serialize(events: &[(String, Vec<String>, String)], eol: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for (kind, lines, id) in events {
            out.extend_from_slice(format!(":keepalive{eol}").as_bytes());
            if !kind.is_empty() {
                out.extend_from_slice(format!("event: {kind}{eol}").as_bytes());
            }
            for line in lines {
                out.extend_from_slice(format!("data: {line}{eol}").as_bytes());
            }
            out.extend_from_slice(format!("id: {id}{eol}{eol}").as_bytes());
        }
        out
    }

    /// Splits `bytes` at the given points (taken modulo its length).
    fn split(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        let mut parts = Vec::new();
        let mut from = 0;
        for cut in cuts.into_iter().chain([bytes.len()]) {
            parts.push(bytes[from..cut].to_vec());
            from = cut;
        }
        parts
    }

    fn parts_of(parts: &[Vec<u8>]) -> Vec<&[u8]> {
        parts.iter().map(Vec::as_slice).collect()
    }

    proptest! {
        #[test]
        fn garbage_never_panics_and_splitting_changes_nothing(
            bytes in proptest::collection::vec(
                prop_oneof![Just(b'\n'), Just(b'\r'), Just(b':'), Just(b' '), Just(0xEF), any::<u8>()],
                0..400,
            ),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
            max in 1usize..64,
        ) {
            let whole = parse(&mut EventParser::new(max), &[&bytes]);
            let parts = split(&bytes, &cuts);
            let pieces = parse(&mut EventParser::new(max), &parts_of(&parts));
            match (whole, pieces) {
                (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
                (Err(a), Err(b)) => prop_assert_eq!(a, b),
                (a, b) => prop_assert!(false, "{:?} vs {:?}", a, b),
            }
        }

        #[test]
        fn serialized_events_come_back(
            events in proptest::collection::vec(
                (
                    "[a-z]{0,6}",
                    proptest::collection::vec("[^\r\n\u{0}]{0,12}", 1..4),
                    "[a-z0-9]{0,4}",
                ),
                0..6,
            ),
            eol in prop_oneof![Just("\n"), Just("\r"), Just("\r\n")],
            bom in any::<bool>(),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
        ) {
            let mut bytes = if bom { BOM.to_vec() } else { Vec::new() };
            bytes.extend(serialize(&events, eol));
            let parts = split(&bytes, &cuts);
            let got = parse(&mut EventParser::new(1 << 12), &parts_of(&parts)).unwrap();
            let want: Vec<Owned> = events
                .iter()
                .map(|(kind, lines, id)| {
                    let kind = if kind.is_empty() { "message" } else { kind.as_str() };
                    (kind.to_string(), lines.join("\n").into_bytes(), id.clone())
                })
                .collect();
            prop_assert_eq!(got, want);
        }
    }
}
