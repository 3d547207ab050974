//! Server-to-client WebSocket frames (RFC 6455), encoded once.
//!
//! Server frames are not masked, so a publication's frame is the very same
//! bytes for every subscriber: the fan-out encodes it once, as one shared
//! [`Bytes`] of header and payload, and each writer hands those bytes to the
//! socket as they are.

use std::io::Cursor;

use bytes::{BufMut, Bytes, BytesMut};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;

use squall_proto::wire::ServerMessage;

/// FIN with the text opcode.
const TEXT: u8 = 0x81;
/// FIN with the close opcode.
const CLOSE: u8 = 0x88;
/// FIN with the ping opcode.
const PING: u8 = 0x89;

/// A server message, encoded once as a complete text frame.
pub fn text(msg: ServerMessage<'_>) -> Bytes {
    encode(TEXT, msg.to_json().as_bytes())
}

/// A Ping frame with no payload.
pub fn ping() -> Bytes {
    Bytes::from_static(&[PING, 0])
}

/// A Close frame with `code` and `reason` (at most 123 bytes, as for any
/// control frame; the relay's reasons are short constants).
pub fn close(code: u16, reason: &str) -> Bytes {
    let mut payload = Vec::with_capacity(2 + reason.len());
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(reason.as_bytes());
    encode(CLOSE, &payload)
}

/// True for a Close frame: nothing may follow it on the socket.
pub fn is_close(frame: &[u8]) -> bool {
    frame.first() == Some(&CLOSE)
}

/// The frames of `chunk`, a run of whole encoded frames (what tungstenite
/// wrote as its replies), one by one.
pub fn split(mut chunk: Bytes) -> impl Iterator<Item = Bytes> {
    std::iter::from_fn(move || {
        if chunk.is_empty() {
            return None;
        }
        let mut cursor = Cursor::new(&chunk[..]);
        let len = match FrameHeader::parse(&mut cursor) {
            Ok(Some((_, payload))) => cursor.position() as usize + payload as usize,
            _ => chunk.len(),
        };
        Some(chunk.split_to(len.min(chunk.len())))
    })
}

/// The payload length of an encoded frame (its length without the header).
pub fn payload_len(frame: &[u8]) -> usize {
    let header = match frame.get(1).map(|b| b & 0x7f) {
        Some(127) => 10,
        Some(126) => 4,
        _ => 2,
    };
    frame.len().saturating_sub(header)
}

/// FIN, `first` byte's opcode, the unmasked length, then the payload.
fn encode(first: u8, payload: &[u8]) -> Bytes {
    let len = payload.len();
    let mut out = BytesMut::with_capacity(10 + len);
    out.put_u8(first);
    if len < 126 {
        out.put_u8(len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        out.put_u8(126);
        out.put_u16(len);
    } else {
        out.put_u8(127);
        out.put_u64(len as u64);
    }
    out.put_slice(payload);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, Data, OpCode};

    /// tungstenite parses what we encode: the header, then exactly the payload.
    fn parse(bytes: &[u8]) -> (FrameHeader, Vec<u8>) {
        let mut cursor = std::io::Cursor::new(bytes);
        let (header, len) = FrameHeader::parse(&mut cursor).unwrap().unwrap();
        let at = cursor.position() as usize;
        assert_eq!(bytes.len(), at + len as usize, "one whole frame");
        (header, bytes[at..].to_vec())
    }

    #[test]
    fn text_frames_of_every_length_class_parse_back() {
        for len in [0, 1, 125, 126, 65_535, 65_536, 70_000] {
            let payload = "x".repeat(len);
            let frame = encode(TEXT, payload.as_bytes());
            let (header, body) = parse(&frame);
            assert!(header.is_final);
            assert_eq!(header.opcode, OpCode::Data(Data::Text));
            assert!(header.mask.is_none(), "server frames are not masked");
            assert_eq!(body, payload.as_bytes());
            assert_eq!(payload_len(&frame), len);
            assert!(!is_close(&frame));
        }
    }

    #[test]
    fn close_and_ping_frames_are_what_tungstenite_writes() {
        let ours = close(1013, "slow consumer");
        assert!(is_close(&ours));
        let mut theirs = Vec::new();
        Frame::close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
            code: 1013.into(),
            reason: "slow consumer".into(),
        }))
        .format(&mut theirs)
        .unwrap();
        assert_eq!(&ours[..], &theirs[..]);
        let (header, body) = parse(&ping());
        assert_eq!(header.opcode, OpCode::Control(Control::Ping));
        assert!(body.is_empty());
    }

    #[test]
    fn a_run_of_frames_splits_into_whole_frames() {
        let frames = [ping(), close(1000, ""), encode(TEXT, &[b'y'; 300])];
        let run: Vec<u8> = frames.iter().flat_map(|f| f.iter().copied()).collect();
        let split: Vec<Bytes> = split(Bytes::from(run)).collect();
        assert_eq!(split, frames);
    }
}
