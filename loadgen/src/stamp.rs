//! squall's stamp: `~sq<publisher>.<sequence>.<scheduled_ns>~`, decimal.
//!
//! It goes into every published payload. It uses only characters that need
//! no escaping in a JSON string (or in most other encodings), so it survives
//! any relay that forwards payloads verbatim, wrapped in whatever envelope.
//! The receiver finds it with a SIMD substring search for `~sq` and a decimal
//! parse: no JSON parsing on the hot path.

use memchr::memmem::Finder;
use std::sync::LazyLock;

/// The bytes that open a stamp.
pub const MARKER: &[u8] = b"~sq";
/// The byte that closes a stamp.
const END: u8 = b'~';
/// The longest possible stamp: marker, three 20-digit numbers, 2 dots, end.
pub const MAX_STAMP_LEN: usize = 3 + 20 * 3 + 2 + 1;
/// The smallest `payload_bytes`: the longest stamp inside JSON quotes.
pub const MIN_PAYLOAD_BYTES: usize = MAX_STAMP_LEN + 2;
/// Padding after the stamp, up to the payload size.
const PAD: u8 = b'x';

static FINDER: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(MARKER));

/// What a stamp says about a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Global publisher number.
    pub publisher: u64,
    /// Sequence number within the publisher, from 0.
    pub seq: u64,
    /// Scheduled send time, ns from the run's origin.
    pub scheduled_ns: u64,
}

impl Stamp {
    /// Appends the stamp, padded with `x` up to `len` bytes in all (never
    /// shorter than the stamp itself).
    pub fn write_padded(&self, out: &mut Vec<u8>, len: usize) {
        let start = out.len();
        out.extend_from_slice(MARKER);
        push_decimal(out, self.publisher);
        out.push(b'.');
        push_decimal(out, self.seq);
        out.push(b'.');
        push_decimal(out, self.scheduled_ns);
        out.push(END);
        let written = out.len() - start;
        out.resize(out.len() + len.saturating_sub(written), PAD);
    }
}

fn push_decimal(out: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Every well-formed stamp in `frame`, in order.
pub fn scan(frame: &[u8]) -> Stamps<'_> {
    Stamps { frame, pos: 0 }
}

/// Iterator over the stamps of one frame; see [`scan`].
pub struct Stamps<'a> {
    frame: &'a [u8],
    pos: usize,
}

impl Iterator for Stamps<'_> {
    type Item = Stamp;

    #[inline]
    fn next(&mut self) -> Option<Stamp> {
        while self.pos < self.frame.len() {
            let at = self.pos + FINDER.find(&self.frame[self.pos..])?;
            let mut cur = at + MARKER.len();
            let parsed = parse_fields(self.frame, &mut cur);
            self.pos = if parsed.is_some() { cur } else { at + 1 };
            if parsed.is_some() {
                return parsed;
            }
        }
        None
    }
}

/// Parses `<u64>.<u64>.<u64>~` at `*cur`, advancing past it.
#[inline]
fn parse_fields(frame: &[u8], cur: &mut usize) -> Option<Stamp> {
    let publisher = parse_decimal(frame, cur)?;
    expect(frame, cur, b'.')?;
    let seq = parse_decimal(frame, cur)?;
    expect(frame, cur, b'.')?;
    let scheduled_ns = parse_decimal(frame, cur)?;
    expect(frame, cur, END)?;
    Some(Stamp {
        publisher,
        seq,
        scheduled_ns,
    })
}

#[inline]
fn expect(frame: &[u8], cur: &mut usize, byte: u8) -> Option<()> {
    (frame.get(*cur) == Some(&byte)).then(|| *cur += 1)
}

#[inline]
fn parse_decimal(frame: &[u8], cur: &mut usize) -> Option<u64> {
    let start = *cur;
    let mut v: u64 = 0;
    while let Some(&b) = frame.get(*cur) {
        if !b.is_ascii_digit() {
            break;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        *cur += 1;
    }
    (*cur > start).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(publisher: u64, seq: u64, scheduled_ns: u64) -> Stamp {
        Stamp {
            publisher,
            seq,
            scheduled_ns,
        }
    }

    #[test]
    fn writes_padded_stamps_and_finds_them_in_any_envelope() {
        let s = stamp(12, 345, 6_789_000_000);
        let mut payload = Vec::new();
        s.write_padded(&mut payload, 64);
        assert_eq!(payload.len(), 64);
        assert!(payload.starts_with(b"~sq12.345.6789000000~xxx"));
        let frame = [
            br#"{"type":"Broadcast","data":{"topic":"t","payload":""#.as_slice(),
            &payload,
            br#"","sequence":9,"from":"user-1"}}"#,
        ]
        .concat();
        assert_eq!(scan(&frame).collect::<Vec<_>>(), vec![s]);
        // Escaped inside another string, base-10 edge values, two per frame.
        let max = stamp(u64::MAX, 0, u64::MAX);
        let mut two = b"{\"m\":\"\\\"".to_vec();
        max.write_padded(&mut two, 0);
        two.extend_from_slice(b"\\\" and ");
        s.write_padded(&mut two, 0);
        assert_eq!(scan(&two).collect::<Vec<_>>(), vec![max, s]);
        let mut longest = Vec::new();
        stamp(u64::MAX, u64::MAX, u64::MAX).write_padded(&mut longest, 0);
        assert_eq!(longest.len(), MAX_STAMP_LEN);
    }

    #[test]
    fn skips_broken_stamps_and_overflow() {
        let text = b"~sq ~sq1.2~ ~sq1.2.3 ~sq99999999999999999999.1.1~ ~sq~sq4.5.6~";
        assert_eq!(scan(text).collect::<Vec<_>>(), vec![stamp(4, 5, 6)]);
        assert_eq!(scan(b"").count(), 0);
        assert_eq!(scan(b"~sq").count(), 0);
    }
}
