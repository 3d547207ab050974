//! The loopback guard: chaos traffic goes to 127.0.0.0/8 and ::1 only.
//!
//! Every address the agent, the proxy or the watchdog connects to passes
//! through [`LoopbackGuard`]. A remote address is allowed only when the
//! scenario sets `allow_remote = true` *and* the user passes
//! `--allow-remote`; the caller folds both into [`LoopbackGuard::new`].

use crate::Error;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

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
    pub fn check(&self, addr: SocketAddr) -> Result<SocketAddr, Error> {
        if self.allow_remote || is_loopback(addr.ip()) {
            Ok(addr)
        } else {
            Err(Error::Refused(format!(
                "{addr} is not a loopback address (127.0.0.0/8, ::1); to allow it, pass --allow-remote \
                 (and, in a scenario, set allow_remote = true)"
            )))
        }
    }

    /// Resolves `host:port` and accepts it only if *every* address it
    /// resolves to passes [`check`](Self::check), so that a name cannot
    /// smuggle in a remote address next to a loopback one. Returns the first.
    pub fn resolve(&self, host: &str, port: u16) -> Result<SocketAddr, Error> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = (host, port)
            .to_socket_addrs()
            .map_err(|e| Error::Invalid(format!("cannot resolve {host}:{port}: {e}")))?
            .collect();
        let first = *addrs
            .first()
            .ok_or_else(|| Error::Invalid(format!("{host}:{port} resolves to no address")))?;
        for addr in &addrs {
            self.check(*addr)?;
        }
        Ok(first)
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_ten_dot_and_accepts_loopback() {
        let guard = LoopbackGuard::loopback_only();
        assert!(matches!(
            guard.check("10.0.0.1:80".parse().unwrap()),
            Err(Error::Refused(_))
        ));
        assert!(matches!(
            guard.resolve("10.0.0.1", 80),
            Err(Error::Refused(_))
        ));
        assert!(guard.check("127.0.0.1:80".parse().unwrap()).is_ok());
        assert!(guard.check("127.8.9.10:80".parse().unwrap()).is_ok());
        assert!(guard.check("[::1]:80".parse().unwrap()).is_ok());
        assert!(
            guard
                .check("[::ffff:127.0.0.1]:80".parse().unwrap())
                .is_ok()
        );
        assert!(guard.resolve("localhost", 80).is_ok());
        assert!(
            guard
                .check("[::ffff:10.0.0.1]:80".parse().unwrap())
                .is_err()
        );
    }

    #[test]
    fn allows_remote_only_when_asked() {
        let guard = LoopbackGuard::new(true);
        assert!(guard.check("10.0.0.1:80".parse().unwrap()).is_ok());
    }
}
