//! Opening one connection: TCP (from a chosen local source address), the
//! TLS handshake of a `wss://` target, the WebSocket upgrade with its token,
//! all under one timeout; and naming what went wrong (`refused`, `timeout`,
//! `http_401`, `reset`, `tls_cert`, ...).

use crate::plan::Placement;
use crate::sse::http::place_token;
use crate::upgrade;
use squall_proto::tls::{Stream, TlsClient, TlsFailure};
use squall_proto::{Endpoint, Scheme};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, error::ProtocolError};

/// An open WebSocket, over plain TCP or TLS.
pub type Socket = WebSocketStream<Stream>;

/// What every connection attempt of a run shares, made once per run.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// The TLS client of `wss://` targets (one rustls configuration for
    /// every socket); `None` when no target is `wss://`.
    pub tls: Option<TlsClient>,
    /// The `Sec-WebSocket-Protocol` asked for at every upgrade.
    pub subprotocol: Option<String>,
}

/// A socket that is open, and how long its TLS handshake took (`None`
/// without TLS).
pub struct Opened {
    /// The WebSocket.
    pub socket: Socket,
    /// The TLS handshake: from the connected TCP socket to its end.
    pub tls_handshake: Option<Duration>,
}

/// Largest frame or message the engine accepts (the reference relay's limit is 64 KiB).
const MAX_MESSAGE: usize = 1 << 20;

/// The per-socket buffers: small, so that an idle socket costs a few KiB
/// (tungstenite's default read buffer alone is 128 KiB). The read buffer
/// grows for a frame that does not fit, so its size bounds no message.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(2 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_MESSAGE)
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
}

/// Why a socket could not be opened or failed later, as
/// `connections.errors` counts it: the `Display` form is the kind's key
/// (`refused`, `http_401`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SocketError {
    /// Nothing listens (TCP RST to the SYN).
    #[error("refused")]
    Refused,
    /// A step did not finish within its timeout.
    #[error("timeout")]
    Timeout,
    /// The connection was reset or aborted, or the pipe broke.
    #[error("reset")]
    Reset,
    /// The peer closed the stream without a closing handshake.
    #[error("eof")]
    Eof,
    /// No local port (or source address) left to connect from.
    #[error("no_source_port")]
    NoSourcePort,
    /// The process ran out of file descriptors.
    #[error("too_many_open_files")]
    TooManyOpenFiles,
    /// Any other I/O error.
    #[error("io")]
    Io,
    /// The upgrade was answered with this HTTP status.
    #[error("http_{0}")]
    Http(u16),
    /// A frame or message over the size limit.
    #[error("too_big")]
    TooBig,
    /// Anything else the WebSocket layer refused.
    #[error("protocol")]
    Protocol,
    /// Writing frames took longer than the send timeout.
    #[error("send_timeout")]
    SendTimeout,
    /// The server's TLS certificate was refused (unknown issuer, expired,
    /// not valid for the target's name).
    #[error("tls_cert")]
    TlsCert,
    /// Another TLS failure: an alert, a server that does not speak TLS.
    #[error("tls")]
    Tls,
}

/// Connects to `target`, runs the TLS handshake of a `wss://` target with
/// `options.tls`, and upgrades, with `token` placed as asked and
/// `options.subprotocol` asked for, all within `timeout`. The target's address passed the plan's loopback guard when the
/// plan was checked.
pub async fn connect(
    target: &Endpoint,
    source: Option<IpAddr>,
    token: Option<(&str, Placement)>,
    timeout: Duration,
    options: &ConnectOptions,
) -> Result<Opened, SocketError> {
    let attempt = async {
        let (stream, tls_handshake) = open(target, source, options.tls.as_ref()).await?;
        let (path, headers) = place_token(target.path(), token);
        let request = upgrade::Request {
            host: &target.host_header(),
            target: &path,
            headers: &headers,
            subprotocol: options.subprotocol.as_deref(),
        };
        let socket = upgrade::upgrade(stream, request, ws_config()).await?;
        Ok(Opened {
            socket,
            tls_handshake,
        })
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or(Err(SocketError::Timeout))
}

/// Opens a byte stream to `target`: TCP, with the TLS handshake (timed) of a
/// `wss://` or `https://` target over it, through `tls`. The caller bounds
/// it in time.
pub(crate) async fn open(
    target: &Endpoint,
    source: Option<IpAddr>,
    tls: Option<&TlsClient>,
) -> Result<(Stream, Option<Duration>), SocketError> {
    let tcp = dial(target.addr, source).await.map_err(|e| io_kind(&e))?;
    match (target.url.scheme, tls) {
        (Scheme::Wss | Scheme::Https, Some(tls)) => {
            let start = Instant::now();
            let stream = tls
                .handshake(&target.url.host, tcp)
                .await
                .map_err(|e| io_kind(&e))?;
            Ok((stream, Some(start.elapsed())))
        }
        // A checked plan has a TLS client whenever a target is wss:// or https://.
        (Scheme::Wss | Scheme::Https, None) => Err(SocketError::Tls),
        _ => Ok((Stream::Plain(tcp), None)),
    }
}

/// Opens the TCP connection, bound to `source` when given (without taking
/// a port at bind time, so that the port is chosen per destination).
pub(crate) async fn dial(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = source {
        let one: libc::c_int = 1;
        // SAFETY: a valid socket fd and a c_int option value of the right size.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// The error kind of an I/O failure (a TLS failure first: tokio-rustls
/// hands those in as `InvalidData`).
pub fn io_kind(e: &io::Error) -> SocketError {
    match TlsFailure::of(e) {
        Some(TlsFailure::Certificate) => return SocketError::TlsCert,
        Some(TlsFailure::Handshake) => return SocketError::Tls,
        None => {}
    }
    match e.kind() {
        io::ErrorKind::ConnectionRefused => SocketError::Refused,
        io::ErrorKind::TimedOut => SocketError::Timeout,
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => SocketError::Reset,
        io::ErrorKind::UnexpectedEof => SocketError::Eof,
        io::ErrorKind::AddrNotAvailable | io::ErrorKind::AddrInUse => SocketError::NoSourcePort,
        _ if e.raw_os_error() == Some(libc::EMFILE) || e.raw_os_error() == Some(libc::ENFILE) => {
            SocketError::TooManyOpenFiles
        }
        _ => SocketError::Io,
    }
}

/// The error kind of a WebSocket failure.
pub fn ws_kind(e: &WsError) -> SocketError {
    match e {
        WsError::Io(e) => io_kind(e),
        WsError::Http(response) => SocketError::Http(response.status().as_u16()),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => SocketError::Reset,
        WsError::ConnectionClosed | WsError::AlreadyClosed => SocketError::Eof,
        WsError::Capacity(_) => SocketError::TooBig,
        _ => SocketError::Protocol,
    }
}

/// The cause of a drop (`connections.dropped`) when a read or write on an
/// established socket failed: `reset` for a TCP reset, `eof` for a stream
/// that ended without a closing handshake (a FIN), else the error's kind.
/// (`errors` keeps [`ws_kind`]'s key, which calls both `reset`.)
pub fn drop_cause(e: &WsError) -> String {
    match e {
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)
        | WsError::ConnectionClosed
        | WsError::AlreadyClosed => "eof".to_string(),
        WsError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => "eof".to_string(),
        other => ws_kind(other).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_kinds_keep_their_keys() {
        let keys: Vec<String> = [
            SocketError::Refused,
            SocketError::Http(401),
            SocketError::SendTimeout,
            SocketError::TlsCert,
            SocketError::Tls,
            io_kind(&io::Error::from(io::ErrorKind::BrokenPipe)),
            io_kind(&io::Error::from_raw_os_error(libc::EMFILE)),
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(
            keys,
            [
                "refused",
                "http_401",
                "send_timeout",
                "tls_cert",
                "tls",
                "reset",
                "too_many_open_files"
            ]
        );
    }

    #[test]
    fn a_fin_is_eof_and_a_reset_is_reset() {
        let fin = WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake);
        let rst = WsError::Io(io::Error::from(io::ErrorKind::ConnectionReset));
        assert_eq!(
            (drop_cause(&fin), ws_kind(&fin).to_string()),
            ("eof".into(), "reset".into())
        );
        assert_eq!(drop_cause(&rst), "reset");
        assert_eq!(drop_cause(&WsError::ConnectionClosed), "eof");
    }
}
