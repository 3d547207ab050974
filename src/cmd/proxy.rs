//! `squall proxy --listen ADDR --upstream ADDR [--toxic SPEC]... [--api ADDR]`:
//! the fault proxy in the foreground until Ctrl-C (or `--duration`).
//!
//! Exit codes: 0 ran and stopped, 1 could not bind, 2 usage (bad upstream,
//! refused address, bad toxic).
//!
//! The proxy and its control API (unauthenticated: anyone who reaches it
//! can cut every connection) listen on loopback only; a non-loopback
//! `--listen` or `--api` (`0.0.0.0`, a LAN address) needs `--allow-remote`,
//! as a non-loopback `--upstream` does (issue 8).

use super::chaos::failure;
use crate::exit::{Exit, Failure};
use squall_chaos::Error;
use squall_chaos::proxy::FaultProxy;
use squall_chaos::proxy::toxics::ToxicSpec;
use squall_proto::{LoopbackGuard, parse_duration};
use std::net::SocketAddr;
use std::time::Duration;

/// `squall proxy --listen ADDR --upstream ADDR [--toxic SPEC]... [--api ADDR]`
#[derive(Debug, Clone, clap::Args)]
pub struct ProxyArgs {
    /// Where clients connect, e.g. 127.0.0.1:9001.
    #[arg(long)]
    pub listen: SocketAddr,
    /// Where to forward, HOST:PORT (loopback unless --allow-remote).
    #[arg(long)]
    pub upstream: String,
    /// A toxic, `TYPE[:KEY=VALUE,...]` or Toxiproxy JSON, e.g.
    /// `latency:latency=100,jitter=10,stream=downstream` (repeatable).
    #[arg(long = "toxic", value_parser = ToxicSpec::parse)]
    pub toxics: Vec<ToxicSpec>,
    /// Serve the control API here (GET/POST /toxics, DELETE /toxics/NAME).
    #[arg(long)]
    pub api: Option<SocketAddr>,
    /// Stop after this long (default: at Ctrl-C).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Allow addresses outside 127.0.0.0/8 and ::1: an upstream there, and
    /// listening (--listen, --api) where other machines can connect.
    #[arg(long)]
    pub allow_remote: bool,
}

/// Runs the fault proxy until Ctrl-C or `--duration`.
pub fn run(args: ProxyArgs) -> Result<Exit, Failure> {
    let guard = LoopbackGuard::new(args.allow_remote);
    for (flag, addr) in [("--listen", Some(args.listen)), ("--api", args.api)] {
        if let Some(addr) = addr {
            guard
                .check(addr)
                .map_err(|e| Failure::usage(format!("proxy: {flag}: refused: {e}")))?;
        }
    }
    let (host, port) = args
        .upstream
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
        .ok_or_else(|| {
            Failure::usage(format!(
                "proxy: --upstream {:?}: expected HOST:PORT",
                args.upstream
            ))
        })?;
    let runtime = super::runtime("squall-proxy")?;
    runtime
        .block_on(async {
            let upstream = guard.resolve(host, port)?;
            let proxy = FaultProxy::start(args.listen, upstream, &guard).await?;
            for toxic in &args.toxics {
                proxy.toxics().add(toxic.clone())?;
            }
            eprintln!(
                "squall proxy: {} -> {upstream}, {} toxic(s)",
                proxy.local_addr(),
                args.toxics.len()
            );
            if let Some(api) = args.api {
                let bound = proxy.start_api(api).await?;
                eprintln!("squall proxy: control API on http://{bound}/toxics");
            }
            match args.duration {
                Some(d) => tokio::select! {
                    _ = tokio::time::sleep(d) => {},
                    _ = tokio::signal::ctrl_c() => {},
                },
                None => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
            proxy.stop();
            Ok::<_, Error>(())
        })
        .map_err(|e| failure("proxy", e))?;
    Ok(Exit::Passed)
}
