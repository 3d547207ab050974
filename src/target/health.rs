//! Waiting for a target to be ready: one bounded HTTP GET at a time, with
//! squall's one HTTP client (`squall_chaos::http`) on a runtime of its own
//! (the target is started before squall's runtime does anything).

use squall_chaos::http;
use squall_proto::{Endpoint, LoopbackGuard, Scheme, TlsClient, Url};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The status code of `GET url` (`https://` over TLS with `tls`), within
/// `timeout`.
pub fn http_status(url: &str, tls: &TlsClient, timeout: Duration) -> Result<u16, String> {
    // Whether the URL may leave loopback was decided before the target
    // started (`check_remote`); here it is only resolved.
    let endpoint = Endpoint::resolve(
        url,
        &[Scheme::Http, Scheme::Https],
        "http or https",
        &LoopbackGuard::new(true),
    )
    .map_err(|e| format!("{url}: {e}"))?;
    http::get_blocking(&endpoint, tls, timeout)
        .map(|(status, _)| status)
        .map_err(|e| format!("{url}: {e}"))
}

/// Whether a TCP connection to the URL's host and port succeeds within `timeout`.
pub fn tcp_open(url: &str, timeout: Duration) -> bool {
    let Ok(u) = Url::parse(url) else { return false };
    let Ok(mut addrs) = (u.host.as_str(), u.port).to_socket_addrs() else {
        return false;
    };
    addrs
        .next()
        .is_some_and(|a| TcpStream::connect_timeout(&a, timeout).is_ok())
}
