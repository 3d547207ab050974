//! squall's one HTTP/1.1 client: a bounded `GET` of a health or metrics URL,
//! used by the watchdog's probes and scrapes and by the CLI while it waits
//! for a target to be ready ([`get_blocking`]).
//!
//! It speaks just enough HTTP: one request per connection
//! (`Connection: close`), the body read by `Content-Length` or to the end of
//! the stream, at most [`MAX_BODY`] bytes of it. An `https://` URL is
//! fetched over TLS with the caller's [`TlsClient`] (the run's one, with its
//! `tls_ca_file` or `tls_insecure`).

use squall_proto::Endpoint;
use squall_proto::tls::{Stream, TlsClient};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// The largest HTTP response body read (a `/metrics` page included).
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// Why a `GET` got no complete answer. The messages name the step that
/// failed (`connect: ...`): they go into hang files as they are.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The TCP connect failed (refused, unreachable, ...).
    #[error("connect: {0}")]
    Connect(std::io::Error),
    /// The TLS handshake of an `https://` URL failed (a refused
    /// certificate: `squall_proto::tls::TlsFailure::of` tells).
    #[error("tls: {0}")]
    Tls(std::io::Error),
    /// Writing the request failed.
    #[error("write: {0}")]
    Write(std::io::Error),
    /// Reading the response failed.
    #[error("read: {0}")]
    Read(std::io::Error),
    /// The server closed the connection before a complete response.
    #[error("closed before a complete response")]
    Incomplete,
    /// No complete response within the limit.
    #[error("no answer within {}ms", .0.as_millis())]
    Timeout(Duration),
    /// [`get_blocking`] could not start its runtime.
    #[error("cannot start a runtime: {0}")]
    Runtime(std::io::Error),
}

/// GETs `endpoint` within `limit` (connect, TLS for `https://`, request and
/// response together); returns the status and the body.
pub async fn get(
    endpoint: &Endpoint,
    tls: &TlsClient,
    limit: Duration,
) -> Result<(u16, String), HttpError> {
    timeout(limit, async {
        let tcp = TcpStream::connect(endpoint.addr)
            .await
            .map_err(HttpError::Connect)?;
        let mut stream = if endpoint.url.scheme.is_tls() {
            tls.handshake(&endpoint.url.host, tcp)
                .await
                .map_err(HttpError::Tls)?
        } else {
            Stream::Plain(tcp)
        };
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: squall-watchdog\r\nAccept: */*\r\nConnection: close\r\n\r\n",
            endpoint.path(),
            endpoint.host_header()
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(HttpError::Write)?;
        let mut buf = Vec::with_capacity(4096);
        let mut chunk = [0u8; 8192];
        loop {
            let n = match stream.read(&mut chunk).await {
                Ok(n) => n,
                // A TLS server that ends the stream without close_notify:
                // the end of the body all the same.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !buf.is_empty() => 0,
                Err(e) => return Err(HttpError::Read(e)),
            };
            buf.extend_from_slice(&chunk[..n]);
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut response = httparse::Response::new(&mut headers);
            if let Ok(httparse::Status::Complete(head)) = response.parse(&buf) {
                let code = response.code.unwrap_or(0);
                let length = response
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse::<usize>().ok());
                let complete = match length {
                    Some(len) => buf.len() >= head + len,
                    None => n == 0,
                };
                if complete || buf.len() > MAX_BODY {
                    let end = length.map_or(buf.len(), |len| (head + len).min(buf.len()));
                    return Ok((code, String::from_utf8_lossy(&buf[head..end]).into_owned()));
                }
            }
            if n == 0 {
                return Err(HttpError::Incomplete);
            }
        }
    })
    .await
    .unwrap_or(Err(HttpError::Timeout(limit)))
}

/// [`get`] for callers outside any tokio runtime (the CLI while it waits for
/// a target it started): runs it on a single-threaded runtime of its own.
/// Must not be called from within a runtime.
pub fn get_blocking(
    endpoint: &Endpoint,
    tls: &TlsClient,
    limit: Duration,
) -> Result<(u16, String), HttpError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(HttpError::Runtime)?
        .block_on(get(endpoint, tls, limit))
}

#[cfg(test)]
mod tests {
    use super::*;
    use squall_proto::LoopbackGuard;
    use std::io::{Read, Write};

    fn endpoint(addr: std::net::SocketAddr, path: &str) -> Endpoint {
        crate::target::endpoint(
            &format!("http://{addr}{path}"),
            &LoopbackGuard::loopback_only(),
        )
        .unwrap()
    }

    /// A one-shot std server that answers one request with `answer`.
    fn answer_once(answer: &'static [u8]) -> std::net::SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            assert!(head.starts_with(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1:"));
            let _ = stream.write_all(answer);
        });
        addr
    }

    #[test]
    fn reads_status_and_body_by_length_or_to_the_end() {
        let addr = answer_once(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA");
        let got = get_blocking(
            &endpoint(addr, "/health"),
            &TlsClient::default(),
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(got, (200, "ok".to_string()));
        let addr = answer_once(b"HTTP/1.1 503 Busy\r\n\r\nlater");
        let got = get_blocking(
            &endpoint(addr, "/health"),
            &TlsClient::default(),
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(got, (503, "later".to_string()));
    }

    #[test]
    fn names_the_step_that_failed() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let e = get_blocking(
            &endpoint(closed, "/health"),
            &TlsClient::default(),
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(matches!(e, HttpError::Connect(_)), "{e:?}");
        assert!(e.to_string().starts_with("connect: "), "{e}");
        let addr = answer_once(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort");
        let e = get_blocking(
            &endpoint(addr, "/health"),
            &TlsClient::default(),
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(matches!(e, HttpError::Incomplete), "{e:?}");
    }
}
