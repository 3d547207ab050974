//! Target URLs: `ws://host:port/path?query`, resolved once at the start.

use std::net::{SocketAddr, ToSocketAddrs};

/// A parsed, resolved `ws://` target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The URL as given.
    pub url: String,
    /// The address to connect to.
    pub addr: SocketAddr,
    /// `host[:port]` as it goes into the `Host` header.
    pub authority: String,
    /// Path and query, at least `/`.
    pub path_and_query: String,
}

impl Target {
    /// Parses and resolves a `ws://` URL (`wss://` is not supported: squall
    /// talks to relays on loopback or a trusted network).
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("ws://")
            .ok_or_else(|| format!("target {url:?}: only ws:// URLs are supported"))?;
        let (authority, path_and_query) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_string()),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("target {url:?}: bad host"));
        }
        let with_port = if authority.rsplit_once(':').is_some_and(|(_, p)| {
            !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && !authority.ends_with(']')
        }) {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| format!("target {url:?}: cannot resolve {with_port}: {e}"))?
            .next()
            .ok_or_else(|| format!("target {url:?}: {with_port} resolves to nothing"))?;
        Ok(Self {
            url: url.to_string(),
            addr,
            authority: authority.to_string(),
            path_and_query,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ports_paths_queries_and_ipv6() {
        let t = Target::parse("ws://127.0.0.1:9000/ws?x=1").unwrap();
        assert_eq!(t.addr, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(t.path_and_query, "/ws?x=1");
        assert_eq!(t.authority, "127.0.0.1:9000");
        let t = Target::parse("ws://[::1]:81").unwrap();
        assert_eq!(t.addr, "[::1]:81".parse().unwrap());
        assert_eq!(t.path_and_query, "/");
        let t = Target::parse("ws://127.0.0.1?a=b").unwrap();
        assert_eq!(t.addr.port(), 80);
        assert_eq!(t.path_and_query, "/?a=b");
        assert!(Target::parse("http://127.0.0.1").is_err());
        assert!(Target::parse("wss://127.0.0.1").is_err());
        assert!(Target::parse("ws:///x").is_err());
    }
}
