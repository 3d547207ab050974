//! The hand-rolled HTTP front: reads one request head with a size and a time
//! limit (slowloris), and writes the plain answers (`/health`, `/metrics`,
//! refusals) and the `101 Switching Protocols` of an upgrade, over plain
//! TCP or TLS alike (any async stream).

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// The largest request head accepted.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
const MAX_HEADERS: usize = 32;

/// The parts of a request head the relay uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestHead {
    /// `GET`, ...
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// The query string (after `?`), if any.
    pub query: Option<String>,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
}

/// Why no request head could be read.
#[derive(Debug)]
pub enum HeadError {
    /// Not HTTP, or over [`MAX_HEAD_BYTES`]: answered with 400/431.
    Bad(u16, &'static str),
    /// The head did not arrive in time: answered with 408.
    Timeout,
    /// The peer went away before sending a head.
    Gone,
}

impl RequestHead {
    /// A header's value (first occurrence, name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// True if a comma-separated header contains `token` (case-insensitive).
    pub fn header_has(&self, name: &str, token: &str) -> bool {
        self.header(name)
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    }

    /// A query parameter's raw value.
    pub fn query_param(&self, key: &str) -> Option<&str> {
        self.query.as_deref()?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == key).then_some(v)
        })
    }

    /// The JWT from `Authorization: Bearer` or `?token=`.
    pub fn token(&self) -> Option<&str> {
        self.header("authorization")
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .or_else(|| self.query_param("token"))
    }

    /// The `Sec-WebSocket-Key` of a well-formed WebSocket upgrade request.
    pub fn websocket_key(&self) -> Option<&str> {
        let is_upgrade = self.method == "GET"
            && self.header_has("upgrade", "websocket")
            && self.header_has("connection", "upgrade")
            && self.header("sec-websocket-version") == Some("13");
        if is_upgrade {
            self.header("sec-websocket-key")
        } else {
            None
        }
    }
}

/// Reads one request head; returns it with any bytes read past its end.
pub async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    within: Duration,
) -> Result<(RequestHead, Vec<u8>), HeadError> {
    match tokio::time::timeout(within, read_head_unbounded(stream)).await {
        Ok(result) => result,
        Err(_) => Err(HeadError::Timeout),
    }
}

async fn read_head_unbounded<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<(RequestHead, Vec<u8>), HeadError> {
    let mut buf = Vec::with_capacity(1024);
    loop {
        if buf.len() >= MAX_HEAD_BYTES {
            return Err(HeadError::Bad(431, "request head too large"));
        }
        buf.reserve(1024);
        let n = stream
            .read_buf(&mut buf)
            .await
            .map_err(|_| HeadError::Gone)?;
        if n == 0 {
            return Err(HeadError::Gone);
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let target = req.path.unwrap_or("/");
                let (path, query) = match target.split_once('?') {
                    Some((p, q)) => (p.to_string(), Some(q.to_string())),
                    None => (target.to_string(), None),
                };
                let head = RequestHead {
                    method: req.method.unwrap_or_default().to_string(),
                    path,
                    query,
                    headers: req
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_ascii_lowercase(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect(),
                };
                return Ok((head, buf.split_off(len)));
            }
            Ok(httparse::Status::Partial) => continue,
            Err(_) => return Err(HeadError::Bad(400, "malformed HTTP request")),
        }
    }
}

/// Writes a complete answer and closes the write side.
pub async fn respond<S: AsyncWrite + Unpin>(
    stream: &mut S,
    status: u16,
    content_type: &str,
    body: &str,
) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        reason_phrase(status),
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// Writes a one-line plain-text refusal.
pub async fn refuse<S: AsyncWrite + Unpin>(
    stream: &mut S,
    status: u16,
    reason: &str,
) -> io::Result<()> {
    respond(
        stream,
        status,
        "text/plain; charset=utf-8",
        &format!("{reason}\n"),
    )
    .await
}

/// Writes the `101 Switching Protocols` answer to a WebSocket key.
pub async fn accept_upgrade<S: AsyncWrite + Unpin>(stream: &mut S, key: &str) -> io::Result<()> {
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    );
    stream.write_all(answer.as_bytes()).await
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_token_in_header_or_query() {
        let mut head = RequestHead {
            query: Some("a=1&token=abc.def.ghi".into()),
            ..Default::default()
        };
        assert_eq!(head.token(), Some("abc.def.ghi"));
        head.headers
            .push(("authorization".into(), "Bearer xyz".into()));
        assert_eq!(head.token(), Some("xyz"));
    }
}
