//! Target URLs and the loopback guard: the one place where squall decides
//! where its traffic may go.
//!
//! [`Url::parse`] takes `scheme://host[:port][/path][?query]` apart without
//! touching the network. [`Endpoint::resolve`] then turns it into a socket
//! address through a [`LoopbackGuard`]: 127.0.0.0/8 and ::1 only, unless
//! remote traffic was allowed twice over (the scenario's `allow_remote` and
//! the user's `--allow-remote`). A host name that is not `localhost` is not
//! even looked up while remote traffic is refused, so that no DNS query
//! leaves the machine on a refused run.

use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// The URL schemes squall speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `ws://`: WebSocket over TCP.
    Ws,
    /// `wss://`: WebSocket over TLS.
    Wss,
    /// `http://`: health, metrics.
    Http,
    /// `https://`.
    Https,
}

impl Scheme {
    /// The scheme as written in a URL (`"ws"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Ws => "ws",
            Scheme::Wss => "wss",
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    /// The port a URL of this scheme means when it names none.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Ws | Scheme::Http => 80,
            Scheme::Wss | Scheme::Https => 443,
        }
    }

    /// Whether the scheme runs over TLS.
    pub fn is_tls(self) -> bool {
        matches!(self, Scheme::Wss | Scheme::Https)
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a URL could not be taken apart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// No `scheme://`.
    #[error("bad URL {0:?}: no scheme (ws://, http://, ...)")]
    NoScheme(String),
    /// A scheme squall does not speak, or not in this place.
    #[error("bad URL {url:?}: the scheme must be {expected}")]
    Scheme {
        /// The URL as given.
        url: String,
        /// The schemes allowed here, for the message (`"ws"`, `"ws or http"`).
        expected: &'static str,
    },
    /// An empty host, a user-info part, or an unclosed `[`.
    #[error("bad URL {0:?}: bad host")]
    Host(String),
    /// A port that is not a number from 0 to 65535.
    #[error("bad URL {0:?}: bad port")]
    Port(String),
}

/// A URL taken apart into what a socket needs; no name is resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// The scheme.
    pub scheme: Scheme,
    /// Host name or address (an IPv6 address without brackets).
    pub host: String,
    /// The port, explicit or the scheme's default.
    pub port: u16,
    /// Path and query, at least `/`.
    pub path: String,
}

impl Url {
    /// Parses `scheme://host[:port][/path][?query]` with scheme `ws`, `wss`,
    /// `http` or `https`.
    pub fn parse(url: &str) -> Result<Url, UrlError> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| UrlError::NoScheme(url.to_string()))?;
        let scheme = match scheme {
            "ws" => Scheme::Ws,
            "wss" => Scheme::Wss,
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => {
                return Err(UrlError::Scheme {
                    url: url.to_string(),
                    expected: "ws, wss, http or https",
                });
            }
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'?' => (&rest[..i], format!("/{}", &rest[i..])),
            Some(i) => (&rest[..i], rest[i..].to_string()),
            None => (rest, "/".to_string()),
        };
        if authority.contains('@') {
            return Err(UrlError::Host(url.to_string()));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| UrlError::Host(url.to_string()))?;
            match after {
                "" => (host, None),
                _ => (
                    host,
                    Some(
                        after
                            .strip_prefix(':')
                            .ok_or_else(|| UrlError::Port(url.to_string()))?,
                    ),
                ),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(UrlError::Host(url.to_string()));
        }
        let port = match port {
            Some(p) => p.parse().map_err(|_| UrlError::Port(url.to_string()))?,
            None => scheme.default_port(),
        };
        Ok(Url {
            scheme,
            host: host.to_string(),
            port,
            path,
        })
    }

    /// Parses a URL and insists on one of `allowed` schemes; `expected`
    /// names them for the message.
    pub fn parse_with(
        url: &str,
        allowed: &[Scheme],
        expected: &'static str,
    ) -> Result<Url, UrlError> {
        let parsed = Url::parse(url)?;
        if allowed.contains(&parsed.scheme) {
            Ok(parsed)
        } else {
            Err(UrlError::Scheme {
                url: url.to_string(),
                expected,
            })
        }
    }

    /// `host:port` as the `Host` header carries it (IPv6 in brackets).
    pub fn host_header(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Whether the host is a loopback address or `localhost`, judged from
    /// the text alone (no lookup).
    pub fn is_loopback(&self) -> bool {
        is_loopback_name(&self.host)
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}{}", self.scheme, self.host_header(), self.path)
    }
}

/// Why an address was not allowed or could not be found.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// The URL itself is malformed.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// The loopback guard refused the address.
    #[error(
        "{0} is not a loopback address (127.0.0.0/8, ::1); to allow it, pass --allow-remote \
         (and, in a scenario, set allow_remote = true)"
    )]
    NotLoopback(String),
    /// The name did not resolve.
    #[error("cannot resolve {host}:{port}: {source}")]
    Resolve {
        /// The host as written.
        host: String,
        /// The port.
        port: u16,
        /// What the resolver said.
        source: std::io::Error,
    },
    /// The name resolved to no address at all.
    #[error("{0} resolves to no address")]
    NoAddress(String),
}

impl EndpointError {
    /// Whether the guard refused the address (as opposed to a bad URL or a
    /// name that does not resolve).
    pub fn is_refused(&self) -> bool {
        matches!(self, EndpointError::NotLoopback(_))
    }
}

/// Refuses non-loopback addresses unless remote traffic was allowed twice
/// over (scenario and command line).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoopbackGuard {
    allow_remote: bool,
}

impl LoopbackGuard {
    /// A guard that allows loopback only.
    pub fn loopback_only() -> Self {
        Self {
            allow_remote: false,
        }
    }

    /// A guard that allows remote addresses when `allow_remote` is true; pass
    /// `scenario.allow_remote && args.allow_remote`.
    pub fn new(allow_remote: bool) -> Self {
        Self { allow_remote }
    }

    /// Whether remote addresses are allowed.
    pub fn allows_remote(&self) -> bool {
        self.allow_remote
    }

    /// Accepts `addr` if it is loopback (127.0.0.0/8, ::1, or an IPv4-mapped
    /// loopback) or remote traffic is allowed.
    pub fn check(&self, addr: SocketAddr) -> Result<SocketAddr, EndpointError> {
        if self.allow_remote || is_loopback_ip(addr.ip()) {
            Ok(addr)
        } else {
            Err(EndpointError::NotLoopback(addr.to_string()))
        }
    }

    /// Accepts a host as written (name or address) without resolving it:
    /// loopback addresses and `localhost` pass, anything else only when
    /// remote traffic is allowed.
    pub fn check_host(&self, host: &str) -> Result<(), EndpointError> {
        if self.allow_remote || is_loopback_name(host) {
            Ok(())
        } else {
            Err(EndpointError::NotLoopback(host.to_string()))
        }
    }

    /// Resolves `host:port` and accepts it only if *every* address it
    /// resolves to passes [`check`](Self::check), so that a name cannot
    /// smuggle in a remote address next to a loopback one. A name other than
    /// `localhost` is not looked up at all unless remote traffic is allowed.
    /// Returns the first address.
    pub fn resolve(&self, host: &str, port: u16) -> Result<SocketAddr, EndpointError> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.check_host(host)?;
        let addrs: Vec<SocketAddr> = (host, port)
            .to_socket_addrs()
            .map_err(|source| EndpointError::Resolve {
                host: host.to_string(),
                port,
                source,
            })?
            .collect();
        let first = *addrs
            .first()
            .ok_or_else(|| EndpointError::NoAddress(format!("{host}:{port}")))?;
        for addr in &addrs {
            self.check(*addr)?;
        }
        Ok(first)
    }
}

/// A URL whose host has been resolved and accepted by a [`LoopbackGuard`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The URL as given.
    pub raw: String,
    /// The URL taken apart.
    pub url: Url,
    /// The resolved address, accepted by the guard.
    pub addr: SocketAddr,
}

impl Endpoint {
    /// Parses `url`, insists on one of `allowed` schemes (named by
    /// `expected` in the error), resolves the host and checks it with
    /// `guard`.
    pub fn resolve(
        url: &str,
        allowed: &[Scheme],
        expected: &'static str,
        guard: &LoopbackGuard,
    ) -> Result<Endpoint, EndpointError> {
        let parsed = Url::parse_with(url, allowed, expected)?;
        let addr = guard.resolve(&parsed.host, parsed.port)?;
        Ok(Endpoint {
            raw: url.to_string(),
            url: parsed,
            addr,
        })
    }

    /// The value of the `Host` header.
    pub fn host_header(&self) -> String {
        self.url.host_header()
    }

    /// Path and query, at least `/`.
    pub fn path(&self) -> &str {
        &self.url.path
    }
}

/// Whether `ip` is loopback: 127.0.0.0/8, ::1, or an IPv4-mapped loopback.
pub fn is_loopback_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Whether a host as written is loopback: `localhost` or a loopback address.
pub fn is_loopback_name(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(is_loopback_ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_urls_without_resolving() {
        let u = Url::parse("ws://127.0.0.1:8080/ws?x=1").unwrap();
        assert_eq!(
            (u.scheme, u.host.as_str(), u.port, u.path.as_str()),
            (Scheme::Ws, "127.0.0.1", 8080, "/ws?x=1")
        );
        let u = Url::parse("http://[::1]:9/health").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 9));
        assert_eq!(u.host_header(), "[::1]:9");
        assert_eq!(Url::parse("ws://localhost").unwrap().port, 80);
        assert_eq!(Url::parse("wss://localhost").unwrap().port, 443);
        assert_eq!(Url::parse("ws://127.0.0.1?a=b").unwrap().path, "/?a=b");
        assert_eq!(Url::parse("ws://[::1]").unwrap().port, 80);
        assert!(matches!(
            Url::parse("ftp://x"),
            Err(UrlError::Scheme { .. })
        ));
        assert!(matches!(Url::parse("ws://:80"), Err(UrlError::Host(_))));
        assert!(matches!(Url::parse("ws:///x"), Err(UrlError::Host(_))));
        assert!(matches!(Url::parse("ws://a@b/"), Err(UrlError::Host(_))));
        assert!(matches!(Url::parse("ws://h:99999"), Err(UrlError::Port(_))));
        assert!(matches!(
            Url::parse("127.0.0.1:80"),
            Err(UrlError::NoScheme(_))
        ));
        assert!(matches!(
            Url::parse_with("wss://127.0.0.1", &[Scheme::Ws], "ws"),
            Err(UrlError::Scheme { .. })
        ));
    }

    #[test]
    fn resolves_loopback_and_refuses_the_rest() {
        let guard = LoopbackGuard::loopback_only();
        let e = Endpoint::resolve("ws://127.0.0.1:9000/ws", &[Scheme::Ws], "ws", &guard).unwrap();
        assert_eq!(e.addr, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(e.path(), "/ws");
        let e = Endpoint::resolve("http://[::1]:81", &[Scheme::Http], "http", &guard).unwrap();
        assert_eq!(e.addr, "[::1]:81".parse().unwrap());
        assert!(
            Endpoint::resolve("ws://10.0.0.1:80/ws", &[Scheme::Ws], "ws", &guard)
                .unwrap_err()
                .is_refused()
        );
        assert!(guard.resolve("localhost", 80).is_ok());
    }

    #[test]
    fn refuses_ten_dot_and_accepts_loopback() {
        let guard = LoopbackGuard::loopback_only();
        assert!(guard.check("10.0.0.1:80".parse().unwrap()).is_err());
        assert!(guard.resolve("10.0.0.1", 80).unwrap_err().is_refused());
        assert!(guard.check("127.8.9.10:80".parse().unwrap()).is_ok());
        assert!(guard.check("[::1]:80".parse().unwrap()).is_ok());
        assert!(
            guard
                .check("[::ffff:127.0.0.1]:80".parse().unwrap())
                .is_ok()
        );
        assert!(
            guard
                .check("[::ffff:10.0.0.1]:80".parse().unwrap())
                .is_err()
        );
    }

    #[test]
    fn looks_up_no_remote_name_unless_allowed() {
        // A name that is not localhost is refused before any lookup: the
        // error is the guard's, not the resolver's.
        let guard = LoopbackGuard::loopback_only();
        let e = guard.resolve("relay.example.invalid", 80).unwrap_err();
        assert!(e.is_refused(), "{e}");
        let open = LoopbackGuard::new(true);
        assert!(open.check("10.0.0.1:80".parse().unwrap()).is_ok());
        assert!(
            !open
                .resolve("relay.example.invalid", 80)
                .unwrap_err()
                .is_refused()
        );
    }
}
