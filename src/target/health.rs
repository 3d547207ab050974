//! Waiting for a target to be ready: one bounded HTTP GET at a time, on std
//! sockets (the target is started before squall's runtime does anything).

use super::url::Url;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The status code of `GET url`, within `timeout` for each step.
pub fn http_status(url: &str, timeout: Duration) -> Result<u16, String> {
    let u = Url::parse(url)?;
    if u.scheme != "http" {
        return Err(format!("{url}: only http:// health URLs are supported"));
    }
    let addr = (u.host.as_str(), u.port)
        .to_socket_addrs()
        .map_err(|e| format!("{url}: {e}"))?
        .next()
        .ok_or_else(|| format!("{url}: no address"))?;
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{url}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        u.path, u.host
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("{url}: {e}"))?;
    let mut head = [0u8; 64];
    let mut len = 0;
    while len < head.len() {
        let n = stream
            .read(&mut head[len..])
            .map_err(|e| format!("{url}: {e}"))?;
        if n == 0 {
            break;
        }
        len += n;
        if head[..len].contains(&b'\n') {
            break;
        }
    }
    let line = String::from_utf8_lossy(&head[..len]);
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("{url}: not an HTTP answer: {line:?}"))
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
