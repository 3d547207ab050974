//! The bits of HTTP/1.1 that the SSE subscriber, the HTTP publisher and
//! the WebSocket upgrade ([`crate::upgrade`]) share: writing a request (with
//! the token where the plan puts it), reading a response head, and the
//! framing of a response body (`Content-Length`, chunked, or up to the end
//! of the connection).

use super::chunked::{ChunkDecoder, Step};
use crate::connect::{SocketError, io_kind};
use crate::plan::Placement;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Most header fields a response may carry.
const MAX_HEADERS: usize = 48;

/// Longest response head, in bytes.
pub const MAX_HEAD: usize = 16 * 1024;

/// The request target and extra header lines that carry `token` as the
/// plan places it: `?token=` (or `&token=`) after `path`, or an
/// `Authorization: Bearer` line.
pub fn place_token(path: &str, token: Option<(&str, Placement)>) -> (String, String) {
    let mut target = path.to_string();
    let mut headers = String::new();
    match token {
        Some((token, Placement::Query)) => {
            target.push(if target.contains('?') { '&' } else { '?' });
            target.push_str("token=");
            target.push_str(token);
        }
        Some((token, Placement::Header)) => {
            headers.push_str("Authorization: Bearer ");
            headers.push_str(token);
            headers.push_str("\r\n");
        }
        None => {}
    }
    (target, headers)
}

/// Appends an HTTP/1.1 request to `out`: `headers` are whole lines
/// (`Name: value\r\n`); a body gets its `Content-Length`.
pub fn write_request(
    out: &mut Vec<u8>,
    method: &str,
    host: &str,
    target: &str,
    headers: &str,
    body: Option<&[u8]>,
) {
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(headers.as_bytes());
    if let Some(body) = body {
        out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        out.extend_from_slice(body);
    } else {
        out.extend_from_slice(b"\r\n");
    }
}

/// How a response's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length` bytes (0 for a response that has no body).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Up to the end of the connection.
    UntilEof,
}

/// What the engine reads of a response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The status code.
    pub status: u16,
    /// How the body is delimited.
    pub framing: Framing,
    /// Whether the connection ends after this response (`Connection:
    /// close`, HTTP/1.0 without keep-alive, or a body up to the end).
    pub close: bool,
    /// Whether `Content-Type` is `text/event-stream`.
    pub event_stream: bool,
}

/// Parses a response head at the start of `buf`: the head and its length
/// in bytes, `None` while it is incomplete. Oversized or malformed heads are
/// errors; so is a head that is still incomplete at [`MAX_HEAD`] bytes.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, SocketError> {
    parse_head_with(buf, |_, _| {})
}

/// [`parse_head`], showing each header field (name, value) of a complete
/// head to `on_header`.
pub fn parse_head_with(
    buf: &[u8],
    mut on_header: impl FnMut(&str, &[u8]),
) -> Result<Option<(Head, usize)>, SocketError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => return Err(SocketError::TooBig),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(SocketError::TooBig),
        Err(_) => return Err(SocketError::Protocol),
    };
    let status = response.code.unwrap_or(0);
    let mut chunked = false;
    let mut encoded = false;
    let mut length = None;
    let mut close = response.version == Some(0);
    let mut event_stream = false;
    for header in response.headers.iter() {
        on_header(header.name, header.value);
        let value = std::str::from_utf8(header.value).unwrap_or("");
        if header.name.eq_ignore_ascii_case("transfer-encoding") {
            encoded = true;
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        } else if header.name.eq_ignore_ascii_case("content-length") {
            let value = value.trim();
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(SocketError::Protocol);
            }
            let n = value.parse().map_err(|_| SocketError::Protocol)?;
            if length.is_some_and(|l| l != n) {
                return Err(SocketError::Protocol);
            }
            length = Some(n);
        } else if header.name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    close = true;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    close = false;
                }
            }
        } else if header.name.eq_ignore_ascii_case("content-type") {
            let mime = value.split(';').next().unwrap_or("").trim();
            event_stream = mime.eq_ignore_ascii_case("text/event-stream");
        }
    }
    let framing = if (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::Length(0)
    } else if chunked {
        Framing::Chunked
    } else if encoded {
        Framing::UntilEof
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::UntilEof
    };
    close |= framing == Framing::UntilEof;
    Ok(Some((
        Head {
            status,
            framing,
            close,
            event_stream,
        },
        len,
    )))
}

/// Reads a response head from `io` into a buffer of `initial` bytes, grown
/// up to [`MAX_HEAD`]: the head, the buffer, where the head ends in it and
/// how much of it was read (what follows the head is the start of the
/// body, or of the upgraded stream). `on_header` sees each header field.
/// The I/O kinds (`reset`, ...) for a failed read, `eof` for a stream that
/// ends first, and [`parse_head`]'s for a head that does not parse.
pub async fn read_head<S: AsyncRead + Unpin>(
    io: &mut S,
    initial: usize,
    mut on_header: impl FnMut(&str, &[u8]),
) -> Result<(Head, Vec<u8>, usize, usize), SocketError> {
    let mut buf = vec![0; initial.clamp(1, MAX_HEAD)];
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            buf.resize((buf.len() * 2).min(MAX_HEAD), 0);
        }
        let n = io.read(&mut buf[filled..]).await.map_err(|e| io_kind(&e))?;
        if n == 0 {
            return Err(SocketError::Eof);
        }
        filled += n;
        if let Some((head, len)) = parse_head_with(&buf[..filled], &mut on_header)? {
            return Ok((head, buf, len, filled));
        }
    }
}

/// Reads one body in the framing of its head.
#[derive(Debug, Clone)]
pub enum Body {
    /// This many bytes left.
    Length(u64),
    /// Chunked.
    Chunked(ChunkDecoder),
    /// Up to the end of the connection.
    UntilEof,
}

impl Body {
    /// The reader of a body framed as `framing`.
    pub fn new(framing: Framing) -> Self {
        match framing {
            Framing::Length(n) => Body::Length(n),
            Framing::Chunked => Body::Chunked(ChunkDecoder::default()),
            Framing::UntilEof => Body::UntilEof,
        }
    }

    /// Whether the body is complete (never, for one up to the end of the
    /// connection: [`at_eof`](Self::at_eof) says).
    pub fn is_done(&self) -> bool {
        match self {
            Body::Length(left) => *left == 0,
            Body::Chunked(d) => d.is_done(),
            Body::UntilEof => false,
        }
    }

    /// At the end of the connection: `Ok` if the body ended properly there,
    /// `Err(Eof)` if it was cut short.
    pub fn at_eof(&self) -> Result<(), SocketError> {
        match self {
            Body::UntilEof => Ok(()),
            _ if self.is_done() => Ok(()),
            _ => Err(SocketError::Eof),
        }
    }

    /// Like [`ChunkDecoder::step`], for any framing: the next body data in
    /// `input`, and what was consumed; nothing past the body's end.
    pub fn step(&mut self, input: &[u8]) -> Result<Step, SocketError> {
        match self {
            Body::Length(left) => {
                let n = input
                    .len()
                    .min(usize::try_from(*left).unwrap_or(usize::MAX));
                *left -= n as u64;
                Ok(Step {
                    consumed: n,
                    data: 0..n,
                })
            }
            Body::Chunked(d) => d.step(input),
            Body::UntilEof => Ok(Step {
                consumed: input.len(),
                data: 0..input.len(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_go_where_the_plan_puts_them() {
        assert_eq!(
            place_token("/events/a", Some(("T", Placement::Query))),
            ("/events/a?token=T".into(), String::new())
        );
        assert_eq!(
            place_token("/e?x=1", Some(("T", Placement::Query))).0,
            "/e?x=1&token=T"
        );
        assert_eq!(
            place_token("/e", Some(("T", Placement::Header))),
            ("/e".into(), "Authorization: Bearer T\r\n".into())
        );
        let mut out = Vec::new();
        write_request(&mut out, "POST", "h:1", "/p", "X: y\r\n", Some(b"body"));
        assert_eq!(
            out,
            b"POST /p HTTP/1.1\r\nHost: h:1\r\nX: y\r\nContent-Length: 4\r\n\r\nbody"
        );
    }

    #[test]
    fn heads_and_their_framing() {
        let head = |text: &str| parse_head(text.as_bytes()).unwrap().unwrap().0;
        let h = head(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        assert_eq!(
            h,
            Head {
                status: 200,
                framing: Framing::Chunked,
                close: false,
                event_stream: true
            }
        );
        let h =
            head("HTTP/1.1 401 Unauthorized\r\nContent-Length: 12\r\nConnection: close\r\n\r\n");
        assert_eq!(
            (h.status, h.framing, h.close, h.event_stream),
            (401, Framing::Length(12), true, false)
        );
        assert_eq!(head("HTTP/1.0 200 OK\r\n\r\n").framing, Framing::UntilEof);
        assert!(
            !head(
                "HTTP/1.0 200 OK
Connection: keep-alive
Content-Length: 0

"
            )
            .close
        );
        assert_eq!(
            head("HTTP/1.1 204 No Content\r\n\r\n").framing,
            Framing::Length(0)
        );
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Len").unwrap(), None);
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n"),
            Err(SocketError::Protocol)
        );
        assert_eq!(parse_head(b"SSH-2.0\r\n\r\n"), Err(SocketError::Protocol));
        let long = format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(MAX_HEAD));
        assert_eq!(parse_head(long.as_bytes()), Err(SocketError::TooBig));
    }

    #[test]
    fn bodies_end_where_their_framing_says() {
        let mut b = Body::new(Framing::Length(3));
        assert_eq!(
            b.step(b"abcdef").unwrap(),
            Step {
                consumed: 3,
                data: 0..3
            }
        );
        assert!(b.is_done() && b.at_eof().is_ok());
        assert_eq!(
            Body::new(Framing::Length(3)).at_eof(),
            Err(SocketError::Eof)
        );
        assert_eq!(Body::new(Framing::Chunked).at_eof(), Err(SocketError::Eof));
        assert!(Body::new(Framing::UntilEof).at_eof().is_ok());
    }
}
