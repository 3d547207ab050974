//! The client side of the WebSocket upgrade (RFC 6455, section 4.1),
//! without tungstenite's handshake machine: that machine reads the response
//! into a 4 KiB buffer which then becomes the socket's read buffer for
//! good, whatever [`WebSocketConfig::read_buffer_size`] says, and at 18,000
//! sockets that buffer was a third of the engine's memory.
//!
//! Here the `GET` goes out with the key, the token and the subprotocol; the
//! `101` is read with the HTTP head reader the SSE client uses
//! ([`crate::sse::http`]) and checked as tungstenite checks it (`Upgrade`,
//! `Connection`, `Sec-WebSocket-Accept`, the subprotocol); what came after
//! the head is handed to the WebSocket, whose read buffer has the
//! configured size. Failures keep the kinds the handshake machine gave
//! them: `http_<code>` for any other status, `protocol` for a response that
//! breaks the rules or a stream that ends before it, `too_big` for an
//! oversized head, the I/O kinds otherwise.

use crate::connect::{SocketError, io_kind};
use crate::sse::http::{read_head, write_request};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

/// The buffer the response head is first read into (a `101` is a few
/// hundred bytes; it grows for a longer head). Freed after the upgrade.
const HEAD_BUFFER: usize = 1024;

/// What an upgrade asks for.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The `Host` header's value.
    pub host: &'a str,
    /// Path and query (a query token included).
    pub target: &'a str,
    /// Extra header lines, each ending in CRLF (a bearer token).
    pub headers: &'a str,
    /// The `Sec-WebSocket-Protocol` asked for (one name, or a comma-separated list).
    pub subprotocol: Option<&'a str>,
}

/// Upgrades `io` to a WebSocket client with `config`.
pub async fn upgrade<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    request: Request<'_>,
    config: WebSocketConfig,
) -> Result<WebSocketStream<S>, SocketError> {
    // What may go into a request line or a header value, as the `http`
    // crate's checks allowed before.
    let printable = |s: &str, spaces: bool| {
        s.bytes()
            .all(|b| (0x21..0x7f).contains(&b) || (spaces && (b == b' ' || b == b'\t')))
    };
    let lines_ok = request
        .headers
        .split_terminator("\r\n")
        .all(|line| printable(line, true));
    if !printable(request.target, false)
        || !printable(request.host, false)
        || !lines_ok
        || !request.subprotocol.is_none_or(|p| printable(p, true))
    {
        return Err(SocketError::Protocol);
    }
    let key = generate_key();
    let mut headers = format!(
        "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: {key}\r\n{}",
        request.headers
    );
    if let Some(protocol) = request.subprotocol {
        headers.push_str("Sec-WebSocket-Protocol: ");
        headers.push_str(protocol);
        headers.push_str("\r\n");
    }
    let mut out = Vec::with_capacity(128 + headers.len() + request.target.len());
    write_request(
        &mut out,
        "GET",
        request.host,
        request.target,
        &headers,
        None,
    );
    io.write_all(&out).await.map_err(|e| io_kind(&e))?;
    io.flush().await.map_err(|e| io_kind(&e))?;
    drop(out);

    let mut check = Check::default();
    let read = read_head(&mut io, HEAD_BUFFER, |name, value| check.see(name, value)).await;
    let (head, buf, len, filled) = match read {
        Ok(read) => read,
        // The handshake machine called a stream that ends before the
        // response an incomplete handshake.
        Err(SocketError::Eof) => return Err(SocketError::Protocol),
        Err(e) => return Err(e),
    };
    if head.status != 101 {
        return Err(SocketError::Http(head.status));
    }
    check.verify(&derive_accept_key(key.as_bytes()), request.subprotocol)?;
    // What the server sent after its head: the first frames. Copied into
    // a buffer of its own size, so that the head's buffer goes now.
    let tail = buf[len..filled].to_vec();
    drop(buf);
    Ok(WebSocketStream::from_partially_read(io, tail, Role::Client, Some(config)).await)
}

/// The headers of a `101` that the client must check.
#[derive(Debug, Default)]
struct Check {
    upgrade_websocket: bool,
    connection_upgrade: bool,
    accept: Option<Vec<u8>>,
    protocol: Option<Vec<u8>>,
}

impl Check {
    fn see(&mut self, name: &str, value: &[u8]) {
        let value_is = |token: &str| {
            std::str::from_utf8(value)
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        };
        if name.eq_ignore_ascii_case("upgrade") {
            self.upgrade_websocket |= value_is("websocket");
        } else if name.eq_ignore_ascii_case("connection") {
            self.connection_upgrade |= value_is("upgrade");
        } else if name.eq_ignore_ascii_case("sec-websocket-accept") {
            self.accept = Some(value.to_vec());
        } else if name.eq_ignore_ascii_case("sec-websocket-protocol") {
            self.protocol = Some(value.to_vec());
        }
    }

    /// RFC 6455 4.1, as tungstenite checks it: `Upgrade: websocket`,
    /// `Connection: Upgrade`, the accept key of our key, and a subprotocol
    /// if and only if one was asked for, one of those asked for.
    fn verify(&self, accept: &str, asked: Option<&str>) -> Result<(), SocketError> {
        let accepted = self.accept.as_deref() == Some(accept.as_bytes());
        let protocol_ok = match (asked, &self.protocol) {
            (None, None) => true,
            (Some(asked), Some(got)) => asked
                .split(',')
                .any(|name| name.trim().as_bytes() == got.trim_ascii()),
            _ => false,
        };
        if self.upgrade_websocket && self.connection_upgrade && accepted && protocol_ok {
            Ok(())
        } else {
            Err(SocketError::Protocol)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use tokio::io::{AsyncReadExt, DuplexStream, duplex};
    use tokio_tungstenite::tungstenite::Message;

    const REQUEST: Request<'static> = Request {
        host: "127.0.0.1:9",
        target: "/ws?token=abc",
        headers: "Authorization: Bearer abc\r\n",
        subprotocol: None,
    };

    fn config() -> WebSocketConfig {
        WebSocketConfig::default().read_buffer_size(2048)
    }

    /// Reads the request on the server side; its head and the accept key
    /// of its `Sec-WebSocket-Key`.
    async fn take_request(server: &mut DuplexStream) -> (String, String) {
        let mut buf = vec![0; 4096];
        let mut filled = 0;
        loop {
            filled += server.read(&mut buf[filled..]).await.unwrap();
            if buf[..filled].windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        let head = String::from_utf8(buf[..filled].to_vec()).unwrap();
        let key = head
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap();
        let accept = derive_accept_key(key.as_bytes());
        (head, accept)
    }

    /// Runs an upgrade against a server that answers `answer(accept)`.
    async fn against(
        request: Request<'static>,
        answer: impl FnOnce(&str) -> Vec<u8> + Send + 'static,
    ) -> (Result<WebSocketStream<DuplexStream>, SocketError>, String) {
        let (client, mut server) = duplex(64 * 1024);
        let serve = tokio::spawn(async move {
            let (head, accept) = take_request(&mut server).await;
            server.write_all(&answer(&accept)).await.unwrap();
            // Keeps the server's end open until the client is done.
            (head, server)
        });
        let result = upgrade(client, request, config()).await;
        let (head, _server) = serve.await.unwrap();
        (result, head)
    }

    fn switching(accept: &str, extra: &str) -> String {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n{extra}\r\n"
        )
    }

    #[tokio::test]
    async fn upgrades_and_keeps_the_frames_sent_with_the_response() {
        let (result, head) = against(REQUEST, |accept| {
            let mut out = switching(accept, "").into_bytes();
            // An unmasked text frame "hi" right behind the head.
            out.extend_from_slice(&[0x81, 2, b'h', b'i']);
            out
        })
        .await;
        assert!(head.starts_with("GET /ws?token=abc HTTP/1.1\r\nHost: 127.0.0.1:9\r\n"));
        assert!(head.contains("Upgrade: websocket\r\n"));
        assert!(head.contains("Sec-WebSocket-Version: 13\r\n"));
        assert!(head.contains("Authorization: Bearer abc\r\n"));
        let mut ws = result.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("hi"));
    }

    #[tokio::test]
    async fn a_refusal_is_its_status() {
        let (result, _) = against(REQUEST, |_| {
            b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n".to_vec()
        })
        .await;
        assert_eq!(result.err(), Some(SocketError::Http(401)));
    }

    #[tokio::test]
    async fn a_wrong_accept_key_or_missing_header_is_a_protocol_error() {
        let (result, _) = against(REQUEST, |_| switching("bm90IGl0", "").into_bytes()).await;
        assert_eq!(result.err(), Some(SocketError::Protocol));
        let (result, _) = against(REQUEST, |accept| {
            format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: {accept}\r\n\r\n")
                .into_bytes()
        })
        .await;
        assert_eq!(result.err(), Some(SocketError::Protocol));
    }

    #[tokio::test]
    async fn the_subprotocol_must_be_one_asked_for() {
        let asking = Request {
            subprotocol: Some("graphql-transport-ws"),
            ..REQUEST
        };
        let (result, head) = against(asking, |accept| {
            switching(accept, "Sec-WebSocket-Protocol: graphql-transport-ws\r\n").into_bytes()
        })
        .await;
        assert!(head.contains("Sec-WebSocket-Protocol: graphql-transport-ws\r\n"));
        assert!(result.is_ok());
        let (result, _) = against(asking, |accept| switching(accept, "").into_bytes()).await;
        assert_eq!(result.err(), Some(SocketError::Protocol));
        let (result, _) = against(REQUEST, |accept| {
            switching(accept, "Sec-WebSocket-Protocol: other\r\n").into_bytes()
        })
        .await;
        assert_eq!(result.err(), Some(SocketError::Protocol));
    }

    #[tokio::test]
    async fn a_stream_that_ends_before_the_response_is_a_protocol_error() {
        let (client, mut server) = duplex(4096);
        let serve = tokio::spawn(async move {
            take_request(&mut server).await;
            drop(server);
        });
        let result = upgrade(client, REQUEST, config()).await;
        serve.await.unwrap();
        assert_eq!(result.err(), Some(SocketError::Protocol));
    }

    #[tokio::test]
    async fn a_header_line_break_in_a_token_is_refused_before_sending() {
        let (client, _server) = duplex(4096);
        let bad = Request {
            headers: "Authorization: Bearer a\nb\r\n",
            ..REQUEST
        };
        assert_eq!(
            upgrade(client, bad, config()).await.err(),
            Some(SocketError::Protocol)
        );
    }
}
