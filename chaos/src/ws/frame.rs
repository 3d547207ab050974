//! WebSocket frames (RFC 6455 §5) encoded and decoded by hand, so that the
//! chaos agent can send what a well-behaved library never would: unmasked
//! client frames, reserved opcodes, fragmented control frames, half frames.

/// Opcode of a continuation frame.
pub const OP_CONTINUATION: u8 = 0x0;
/// Opcode of a text frame.
pub const OP_TEXT: u8 = 0x1;
/// Opcode of a binary frame.
pub const OP_BINARY: u8 = 0x2;
/// Opcode of a close frame.
pub const OP_CLOSE: u8 = 0x8;
/// Opcode of a ping frame.
pub const OP_PING: u8 = 0x9;
/// Opcode of a pong frame.
pub const OP_PONG: u8 = 0xA;

/// A frame header that claims a payload over the reader's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("frame of {len} bytes is over the {max}-byte limit")]
pub struct TooLarge {
    /// The payload length the header claims.
    pub len: u64,
    /// The reader's limit.
    pub max: usize,
}

/// One frame as it goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The FIN bit: last fragment of a message.
    pub fin: bool,
    /// The three RSV bits, in the low bits (0 for a conforming frame).
    pub rsv: u8,
    /// The opcode (low four bits).
    pub opcode: u8,
    /// The masking key: every client frame must have one, server frames none.
    pub mask: Option<[u8; 4]>,
    /// The unmasked payload.
    pub payload: Vec<u8>,
}

impl Frame {
    /// A final, masked client frame with a random key.
    pub fn client(opcode: u8, payload: impl Into<Vec<u8>>) -> Self {
        Self {
            fin: true,
            rsv: 0,
            opcode,
            mask: Some(rand::random()),
            payload: payload.into(),
        }
    }

    /// The bytes on the wire.
    pub fn encode(&self) -> Vec<u8> {
        let len = self.payload.len();
        let mut out = Vec::with_capacity(len + 14);
        out.push(((self.fin as u8) << 7) | ((self.rsv & 0x7) << 4) | (self.opcode & 0xF));
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        if len < 126 {
            out.push(mask_bit | len as u8);
        } else if len <= u16::MAX as usize {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        match self.mask {
            Some(key) => {
                out.extend_from_slice(&key);
                out.extend(self.payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
            }
            None => out.extend_from_slice(&self.payload),
        }
        out
    }

    /// The status code of a close frame, if it carries one.
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == OP_CLOSE && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }

    /// Decodes one frame from the front of `buf`: `Ok(Some((frame, used)))`,
    /// `Ok(None)` when more bytes are needed, `Err` when the header claims
    /// more than `max_payload` bytes.
    pub fn decode(buf: &[u8], max_payload: usize) -> Result<Option<(Frame, usize)>, TooLarge> {
        if buf.len() < 2 {
            return Ok(None);
        }
        let (fin, rsv, opcode) = (buf[0] & 0x80 != 0, (buf[0] >> 4) & 0x7, buf[0] & 0xF);
        let masked = buf[1] & 0x80 != 0;
        let (len, mut at) = match buf[1] & 0x7F {
            126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as u64, 4),
            127 if buf.len() >= 10 => (
                u64::from_be_bytes(buf[2..10].try_into().expect("8 bytes")),
                10,
            ),
            126 | 127 => return Ok(None),
            n => (n as u64, 2),
        };
        if len > max_payload as u64 {
            return Err(TooLarge {
                len,
                max: max_payload,
            });
        }
        let mask = if masked {
            let Some(key) = buf.get(at..at + 4) else {
                return Ok(None);
            };
            at += 4;
            Some([key[0], key[1], key[2], key[3]])
        } else {
            None
        };
        let end = at + len as usize;
        let Some(body) = buf.get(at..end) else {
            return Ok(None);
        };
        let payload = match mask {
            Some(key) => body
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ key[i % 4])
                .collect(),
            None => body.to_vec(),
        };
        Ok(Some((
            Frame {
                fin,
                rsv,
                opcode,
                mask,
                payload,
            },
            end,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_masked_and_unmasked_frames_of_every_length_class() {
        for len in [0, 125, 126, 65_535, 65_536] {
            for mask in [None, Some([1, 2, 3, 4])] {
                let frame = Frame {
                    fin: true,
                    rsv: 0,
                    opcode: OP_BINARY,
                    mask,
                    payload: vec![7; len],
                };
                let bytes = frame.encode();
                assert_eq!(
                    Frame::decode(&bytes, 1 << 20),
                    Ok(Some((frame, bytes.len())))
                );
                assert_eq!(Frame::decode(&bytes[..bytes.len() - 1], 1 << 20), Ok(None));
            }
        }
    }

    #[test]
    fn reads_close_codes() {
        let close = Frame {
            fin: true,
            rsv: 0,
            opcode: OP_CLOSE,
            mask: None,
            payload: vec![0x03, 0xEA],
        };
        assert_eq!(close.close_code(), Some(1002));
    }
}
