//! The client side of the HTTP upgrade, over TCP or TLS (`wss://`).

use super::conn::WsConn;
use crate::target::TokenPlacement;
use base64::Engine;
use squall_proto::Endpoint;
use squall_proto::tls::{Stream, TlsClient, TlsFailure};
use std::io;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Instant, timeout_at};

/// The largest upgrade response the client reads.
const MAX_RESPONSE: usize = 16 * 1024;

/// How to open a WebSocket.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Bound on TCP connect plus upgrade.
    pub timeout: Duration,
    /// `SO_RCVBUF` set before connect (half-open sockets want it small).
    pub recv_buffer: Option<u32>,
    /// The token, if any.
    pub token: Option<String>,
    /// Where the token goes.
    pub placement: TokenPlacement,
    /// The TLS client of a `wss://` (or `https://`) endpoint; unused for
    /// plain ones.
    pub tls: TlsClient,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            recv_buffer: None,
            token: None,
            placement: TokenPlacement::Query,
            tls: TlsClient::default(),
        }
    }
}

/// Why a WebSocket could not be opened.
#[derive(Debug)]
pub enum ConnectError {
    /// TCP connect or I/O failed.
    Io(io::Error),
    /// Connect plus upgrade took longer than the timeout.
    Timeout,
    /// The server answered the upgrade with this HTTP status instead of 101.
    Status(u16),
    /// The server's answer was not a valid upgrade response.
    BadResponse(String),
}

impl ConnectError {
    /// A short label for error counts: `refused`, `reset`, `timeout`,
    /// `http_401`, `bad_response`, `tls_cert`, `tls`, `io`.
    pub fn kind(&self) -> String {
        match self {
            ConnectError::Io(e) => io_kind(e).to_string(),
            ConnectError::Timeout => "timeout".into(),
            ConnectError::Status(code) => format!("http_{code}"),
            ConnectError::BadResponse(_) => "bad_response".into(),
        }
    }
}

/// A short label for an I/O error (`refused`, `reset`, `eof`, `tls_cert`,
/// `tls`, `io`).
pub fn io_kind(e: &io::Error) -> &'static str {
    if let Some(tls) = TlsFailure::of(e) {
        return tls.as_str();
    }
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "refused",
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => "reset",
        io::ErrorKind::UnexpectedEof | io::ErrorKind::BrokenPipe => "eof",
        io::ErrorKind::TimedOut => "timeout",
        io::ErrorKind::AddrNotAvailable | io::ErrorKind::AddrInUse => "no_ports",
        _ if e.raw_os_error() == Some(libc::EMFILE) => "too_many_files",
        _ => "io",
    }
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Io(e) => write!(f, "{e}"),
            ConnectError::Timeout => write!(f, "timed out"),
            ConnectError::Status(code) => write!(f, "HTTP {code} instead of 101"),
            ConnectError::BadResponse(why) => write!(f, "bad upgrade response: {why}"),
        }
    }
}

/// The upgrade request for `endpoint` with a fresh key; returns the request
/// and the key.
pub fn upgrade_request(
    endpoint: &Endpoint,
    token: Option<&str>,
    placement: TokenPlacement,
) -> (String, String) {
    let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>());
    let mut path = endpoint.path().to_string();
    let mut auth = String::new();
    match (token, placement) {
        (Some(token), TokenPlacement::Query) => {
            path.push(if path.contains('?') { '&' } else { '?' });
            path.push_str("token=");
            path.push_str(token);
        }
        (Some(token), TokenPlacement::Header) => {
            auth = format!("Authorization: Bearer {token}\r\n")
        }
        (None, _) => {}
    }
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{auth}\r\n",
        endpoint.host_header()
    );
    (request, key)
}

/// The `Sec-WebSocket-Accept` a server answers to `key` (RFC 6455 4.2.2),
/// for test servers that upgrade by hand.
pub fn accept_key(key: &str) -> String {
    tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.trim().as_bytes())
}

/// Opens a TCP socket to `endpoint` (with the options' receive buffer).
pub(crate) async fn open_tcp(
    endpoint: &Endpoint,
    recv_buffer: Option<u32>,
) -> io::Result<TcpStream> {
    let socket = if endpoint.addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size)?;
    }
    let stream = socket.connect(endpoint.addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Opens the stream to `endpoint`: TCP (with the options' receive buffer),
/// then, for a `wss://` or `https://` endpoint, the TLS handshake with the
/// options' client. Not bounded in time: callers bound it.
pub async fn open(endpoint: &Endpoint, options: &ConnectOptions) -> io::Result<Stream> {
    let tcp = open_tcp(endpoint, options.recv_buffer).await?;
    if endpoint.url.scheme.is_tls() {
        options.tls.handshake(&endpoint.url.host, tcp).await
    } else {
        Ok(Stream::Plain(tcp))
    }
}

/// Connects (TCP, and TLS for `wss://`) and upgrades.
pub async fn connect(
    endpoint: &Endpoint,
    options: &ConnectOptions,
) -> Result<WsConn, ConnectError> {
    let deadline = Instant::now() + options.timeout;
    let attempt = async {
        let mut stream = open(endpoint, options).await.map_err(ConnectError::Io)?;
        let (request, key) = upgrade_request(endpoint, options.token.as_deref(), options.placement);
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(ConnectError::Io)?;
        let (status, leftover) = read_response(&mut stream, &key).await?;
        match status {
            101 => Ok(WsConn::new(stream, leftover)),
            code => Err(ConnectError::Status(code)),
        }
    };
    timeout_at(deadline, attempt)
        .await
        .unwrap_or(Err(ConnectError::Timeout))
}

/// Reads the upgrade response; returns its status and the bytes after it.
/// A 101 must carry the right `Sec-WebSocket-Accept`.
pub async fn read_response<S: AsyncRead + Unpin>(
    stream: &mut S,
    key: &str,
) -> Result<(u16, Vec<u8>), ConnectError> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await.map_err(ConnectError::Io)?;
        if n == 0 {
            return Err(ConnectError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let code = response.code.unwrap_or(0);
                if code == 101 {
                    let expected = accept_key(key);
                    let accept = response
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-accept"))
                        .map(|h| h.value);
                    if accept != Some(expected.as_bytes()) {
                        return Err(ConnectError::BadResponse(
                            "wrong Sec-WebSocket-Accept".into(),
                        ));
                    }
                }
                return Ok((code, buf[len..].to_vec()));
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_RESPONSE => {}
            Ok(httparse::Status::Partial) => {
                return Err(ConnectError::BadResponse(
                    "response headers too long".into(),
                ));
            }
            Err(e) => return Err(ConnectError::BadResponse(e.to_string())),
        }
    }
}
