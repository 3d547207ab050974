//! The decoder of HTTP/1.1's chunked transfer coding (RFC 9112 §7.1),
//! incremental and without a buffer of its own.
//!
//! It walks the bytes as they come and points at the data inside them
//! ([`Step::data`]), so that a caller can use the data where it lies (the
//! SSE stream moves it to the front of its one read buffer). Chunk
//! extensions and trailer fields are skipped; a bare LF is accepted where
//! CRLF belongs, as common clients do. A size that is not hex, longer than
//! 16 digits, or framing bytes out of place are [`SocketError::Protocol`];
//! an extension or a trailer section longer than [`MAX_LINE`] is
//! [`SocketError::TooBig`].

use crate::connect::SocketError;
use std::ops::Range;

/// Longest chunk extension, and longest trailer section, in bytes.
pub const MAX_LINE: usize = 8 * 1024;

/// Where the decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In a chunk's size: its value and hex digits so far.
    Size { value: u64, digits: u32 },
    /// In a chunk extension after the size (bytes so far), up to the LF.
    Ext { value: u64, len: usize },
    /// A CR ended the size: the LF must follow.
    SizeLf { value: u64 },
    /// In a chunk's data, this many bytes left.
    Data { left: u64 },
    /// After a chunk's data: its CRLF.
    DataEnd { cr: bool },
    /// After the last chunk: trailer lines (bytes of the section so far, and
    /// of the current line).
    Trailer { total: usize, line: usize },
    /// The body is over.
    Done,
}

/// What one [`ChunkDecoder::step`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Input bytes consumed (the data returned included).
    pub consumed: usize,
    /// The data found, as a range of the input (empty when none).
    pub data: Range<usize>,
}

/// Decodes one chunked body.
#[derive(Debug, Clone)]
pub struct ChunkDecoder {
    state: State,
}

impl Default for ChunkDecoder {
    fn default() -> Self {
        Self {
            state: State::Size {
                value: 0,
                digits: 0,
            },
        }
    }
}

impl ChunkDecoder {
    /// Whether the last chunk and the trailer section have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Reads framing bytes of `input` up to the next data, and returns that
    /// data's place; or reads all of `input` (`data` empty), or up to the
    /// end of the body ([`is_done`](Self::is_done)). An error ends the body.
    pub fn step(&mut self, input: &[u8]) -> Result<Step, SocketError> {
        let mut at = 0;
        while at < input.len() {
            let byte = input[at];
            if let State::Data { left } = self.state {
                let n = (input.len() - at).min(usize::try_from(left).unwrap_or(usize::MAX));
                let left = left - n as u64;
                self.state = if left == 0 {
                    State::DataEnd { cr: false }
                } else {
                    State::Data { left }
                };
                return Ok(Step {
                    consumed: at + n,
                    data: at..at + n,
                });
            }
            at += 1;
            self.state = match (self.state, byte) {
                (State::Done, _) => {
                    at -= 1;
                    break;
                }
                (State::Size { value, digits }, _) if byte.is_ascii_hexdigit() => {
                    if digits == 16 {
                        return Err(SocketError::Protocol);
                    }
                    let digit = (byte as char).to_digit(16).expect("a hex digit");
                    State::Size {
                        value: value << 4 | u64::from(digit),
                        digits: digits + 1,
                    }
                }
                (State::Size { digits: 0, .. }, _) => return Err(SocketError::Protocol),
                (State::Size { value, .. }, b';' | b' ' | b'\t') => State::Ext { value, len: 0 },
                (State::Size { value, .. }, b'\r') => State::SizeLf { value },
                (State::Size { value, .. } | State::SizeLf { value }, b'\n')
                | (State::Ext { value, .. }, b'\n') => {
                    if value == 0 {
                        State::Trailer { total: 0, line: 0 }
                    } else {
                        State::Data { left: value }
                    }
                }
                (State::Ext { value, len }, _) => {
                    if len == MAX_LINE {
                        return Err(SocketError::TooBig);
                    }
                    State::Ext {
                        value,
                        len: len + 1,
                    }
                }
                (State::DataEnd { cr: false }, b'\r') => State::DataEnd { cr: true },
                (State::DataEnd { .. }, b'\n') => State::Size {
                    value: 0,
                    digits: 0,
                },
                (State::Trailer { line: 0, .. }, b'\n') => State::Done,
                (State::Trailer { total, .. }, b'\n') => State::Trailer { total, line: 0 },
                (State::Trailer { total, line }, _) => {
                    if total == MAX_LINE {
                        return Err(SocketError::TooBig);
                    }
                    // A CR is part of the line end, not of the line.
                    let line = if byte == b'\r' { line } else { line + 1 };
                    State::Trailer {
                        total: total + 1,
                        line,
                    }
                }
                (State::Size { .. } | State::SizeLf { .. } | State::DataEnd { .. }, _) => {
                    return Err(SocketError::Protocol);
                }
                (State::Data { .. }, _) => unreachable!("data is taken above"),
            };
        }
        Ok(Step {
            consumed: at,
            data: at..at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Decodes `parts` in turn: the body, and whether it ended.
    fn decode(parts: &[&[u8]]) -> Result<(Vec<u8>, bool), SocketError> {
        let mut d = ChunkDecoder::default();
        let mut body = Vec::new();
        for part in parts {
            let mut rest = *part;
            while !rest.is_empty() && !d.is_done() {
                let step = d.step(rest)?;
                assert!(step.consumed <= rest.len() && step.data.end <= step.consumed);
                assert!(step.consumed > 0 || d.is_done(), "progress");
                body.extend_from_slice(&rest[step.data.clone()]);
                rest = &rest[step.consumed..];
            }
        }
        Ok((body, d.is_done()))
    }

    #[test]
    fn chunks_extensions_and_trailers() {
        let wire = b"5\r\nhello\r\n1;name=\"v\"\r\n \r\nA \r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n";
        assert_eq!(
            decode(&[wire]).unwrap(),
            (b"hello 0123456789".to_vec(), true)
        );
        assert_eq!(
            decode(&[b"3\nabc\n0\n\n"]).unwrap(),
            (b"abc".to_vec(), true),
            "bare LF line ends"
        );
        assert_eq!(
            decode(&[b"1\r\na\r\n0\r\n\r\nleftover"]).unwrap(),
            (b"a".to_vec(), true)
        );
        let mut d = ChunkDecoder::default();
        assert_eq!(
            d.step(b"0\r\n\r\nnext").unwrap().consumed,
            5,
            "stops at the end"
        );
        assert_eq!(decode(&[b"4\r\nab"]).unwrap(), (b"ab".to_vec(), false));
    }

    #[test]
    fn broken_framing_is_refused() {
        for bad in [
            &b"\r\n"[..],
            b"x\r\n",
            b"5\rX",
            b"2\r\nabX",
            b"2\r\nab\rX",
            b"11111111111111111\r\n",
        ] {
            assert_eq!(decode(&[bad]), Err(SocketError::Protocol), "{bad:?}");
        }
        let long_ext = [b"1;".to_vec(), vec![b'x'; MAX_LINE + 1]].concat();
        assert_eq!(decode(&[&long_ext]), Err(SocketError::TooBig));
        assert_eq!(
            decode(&[b"ffffffffffffffff\r\nab"]).unwrap(),
            (b"ab".to_vec(), false),
            "a huge chunk streams"
        );
    }

    /// Encodes `body` in chunks of the given sizes (then the rest).
    fn encode(body: &[u8], sizes: &[usize], trailer: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = body;
        for &size in sizes.iter().chain([&usize::MAX]) {
            let n = size.clamp(1, rest.len().max(1)).min(rest.len());
            if n == 0 {
                break;
            }
            out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
            out.extend_from_slice(&rest[..n]);
            out.extend_from_slice(b"\r\n");
            rest = &rest[n..];
        }
        out.extend_from_slice(if trailer {
            b"0\r\nA: b\r\n\r\n"
        } else {
            b"0\r\n\r\n"
        });
        out
    }

    proptest! {
        #[test]
        fn encoded_bodies_come_back_however_split(
            body in proptest::collection::vec(any::<u8>(), 0..300),
            sizes in proptest::collection::vec(1usize..40, 0..10),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
            trailer in any::<bool>(),
        ) {
            let wire = encode(&body, &sizes, trailer);
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
            cuts.sort_unstable();
            let mut parts = Vec::new();
            let mut from = 0;
            for cut in cuts.into_iter().chain([wire.len()]) {
                parts.push(&wire[from..cut]);
                from = cut;
            }
            prop_assert_eq!(decode(&parts).unwrap(), (body, true));
        }

        #[test]
        fn garbage_never_panics(
            bytes in proptest::collection::vec(
                prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'0'), Just(b'f'), Just(b';'), any::<u8>()],
                0..300,
            ),
        ) {
            let _ = decode(&[&bytes]);
        }
    }
}
