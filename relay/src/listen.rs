//! Binding the relay's listener and announcing it: what a process that runs
//! a relay needs before [`crate::server::start`] and after it.

use std::io;
use std::net::SocketAddr;
use std::path::Path;

use tokio::net::{TcpListener, TcpSocket};

/// How many finished handshakes may wait for `accept`. The default of
/// `TcpListener::bind` overflowed under fast ramps (SYNs dropped, then
/// retransmitted a second later); the kernel clamps this to
/// `net.core.somaxconn`.
pub const BACKLOG: u32 = 4096;

/// Binds `addr` (an address or `host:port`, every resolved address tried in
/// turn, as `TcpListener::bind` does) with SO_REUSEADDR and a [`BACKLOG`]
/// long accept queue.
pub async fn bind(addr: &str) -> io::Result<TcpListener> {
    let mut last = None;
    for addr in tokio::net::lookup_host(addr).await? {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        let bound = socket
            .set_reuseaddr(true)
            .and_then(|()| socket.bind(addr))
            .and_then(|()| socket.listen(BACKLOG));
        match bound {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any address",
        )
    }))
}

/// Writes `addr` to `path` through a temporary file and a rename, so a reader
/// never sees a partial address.
pub fn write_ready_file(path: &Path, addr: SocketAddr) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, addr.to_string())?;
    std::fs::rename(&tmp, path)
}
