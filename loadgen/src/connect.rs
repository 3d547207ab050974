//! Opening one connection: TCP (from a chosen local source address), the
//! WebSocket upgrade with its token, all under one timeout; and naming what
//! went wrong (`refused`, `timeout`, `http_401`, `reset`, ...).

use crate::plan::Placement;
use crate::target::Target;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, error::ProtocolError};

/// An open WebSocket.
pub type Socket = WebSocketStream<TcpStream>;

/// Largest frame or message the engine accepts (the reference relay's limit is 64 KiB).
const MAX_MESSAGE: usize = 1 << 20;

/// The per-socket buffers: small, so that an idle socket costs a few KiB
/// (tungstenite's default read buffer alone is 128 KiB).
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_MESSAGE)
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
}

/// Connects to `target` and upgrades, with `token` placed as asked, within `timeout`.
pub async fn connect(
    target: &Target,
    source: Option<IpAddr>,
    token: Option<(&str, Placement)>,
    timeout: Duration,
) -> Result<Socket, String> {
    let attempt = async {
        let stream = dial(target.addr, source).await.map_err(|e| io_kind(&e))?;
        let mut path = target.path_and_query.clone();
        if let Some((token, Placement::Query)) = token {
            path.push(if path.contains('?') { '&' } else { '?' });
            path.push_str("token=");
            path.push_str(token);
        }
        let mut request = format!("ws://{}{}", target.authority, path)
            .into_client_request()
            .map_err(|e| ws_kind(&e))?;
        if let Some((token, Placement::Header)) = token {
            let value =
                HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| "protocol")?;
            request.headers_mut().insert("authorization", value);
        }
        let (socket, _response) =
            tokio_tungstenite::client_async_with_config(request, stream, Some(ws_config()))
                .await
                .map_err(|e| ws_kind(&e))?;
        Ok::<_, String>(socket)
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| Err("timeout".to_string()))
}

/// Opens the TCP connection, bound to `source` when given (without taking
/// a port at bind time, so that the port is chosen per destination).
async fn dial(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
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

/// The error kind of an I/O failure.
pub fn io_kind(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "refused",
        io::ErrorKind::TimedOut => "timeout",
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => "reset",
        io::ErrorKind::UnexpectedEof => "eof",
        io::ErrorKind::AddrNotAvailable | io::ErrorKind::AddrInUse => "no_source_port",
        _ if e.raw_os_error() == Some(libc::EMFILE) || e.raw_os_error() == Some(libc::ENFILE) => {
            "too_many_open_files"
        }
        _ => "io",
    }
    .to_string()
}

/// The error kind of a WebSocket failure.
pub fn ws_kind(e: &WsError) -> String {
    match e {
        WsError::Io(e) => io_kind(e),
        WsError::Http(response) => format!("http_{}", response.status().as_u16()),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => "reset".to_string(),
        WsError::ConnectionClosed | WsError::AlreadyClosed => "eof".to_string(),
        WsError::Capacity(_) => "too_big".to_string(),
        _ => "protocol".to_string(),
    }
}
