//! The relay's command line: [`RelayArgs`] (every flag, with environment
//! fallbacks) and [`run`], shared by `squall-relay` and `squall relay`.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};

use crate::auth::AuthConfig;
use crate::bugs::{BUG_HELP, Bug, Bugs};
use crate::config::RelayConfig;
use crate::{limits, server};
use squall_proto::duration::parse_duration;

/// Every flag of the relay.
#[derive(Debug, Clone, clap::Args)]
pub struct RelayArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "SQUALL_RELAY_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// Once accepting, write the bound address (e.g. 127.0.0.1:43117) to this
    /// file, atomically.
    #[arg(long, env = "SQUALL_RELAY_READY_FILE", value_name = "FILE")]
    pub ready_file: Option<PathBuf>,
    /// HS256 secret for JWTs.
    #[arg(long, env = "SQUALL_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// PEM public key for JWTs: an RSA key accepts RS256, an EC P-256 key ES256.
    #[arg(long, env = "SQUALL_JWT_PUBLIC_KEY", value_name = "FILE")]
    pub jwt_public_key: Option<PathBuf>,
    /// Refuse (HTTP 403) valid tokens without this role in `roles`.
    #[arg(long, env = "SQUALL_REQUIRE_ROLE", value_name = "R")]
    pub require_role: Option<String>,
    /// Accept every client without a token (an open relay).
    #[arg(long, env = "SQUALL_NO_AUTH", value_parser = clap::builder::FalseyValueParser::new())]
    pub no_auth: bool,
    /// Open connections allowed at once; beyond it, HTTP 503.
    #[arg(long, env = "SQUALL_RELAY_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Outbound queue per connection, in messages; a consumer whose queue is
    /// full is closed with 1013.
    #[arg(long, env = "SQUALL_RELAY_QUEUE_SIZE", default_value_t = 1024)]
    pub queue_size: usize,
    /// Server ping period.
    #[arg(long, env = "SQUALL_RELAY_PING_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub ping_interval: Duration,
    /// Close a connection silent for this long.
    #[arg(long, env = "SQUALL_RELAY_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// Largest frame or message accepted; beyond it, close 1009.
    #[arg(long, env = "SQUALL_RELAY_MAX_FRAME_BYTES", default_value_t = 65536)]
    pub max_frame_bytes: usize,
    /// Messages per second per connection (0: no limit); over it, Error
    /// `rate_limited`, and close 1008 if it persists.
    #[arg(long, env = "SQUALL_RELAY_RATE_LIMIT", default_value_t = 1000)]
    pub rate_limit: u32,
    /// Turn on a deliberate bug (see the list below).
    #[arg(long = "bug", value_name = "NAME", env = "SQUALL_RELAY_BUGS", value_delimiter = ',', long_help = BUG_HELP)]
    pub bugs: Vec<Bug>,
}

impl RelayArgs {
    /// The validated configuration these flags describe.
    pub fn to_config(&self) -> Result<RelayConfig, String> {
        let auth = if self.no_auth {
            AuthConfig::open()
        } else {
            let mut auth = AuthConfig::default();
            if let Some(secret) = &self.jwt_secret {
                auth = auth.with_hs256(secret.as_bytes());
            }
            if let Some(path) = &self.jwt_public_key {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("--jwt-public-key {}: {e}", path.display()))?;
                auth = auth
                    .with_public_key_pem(&pem)
                    .map_err(|e| format!("--jwt-public-key {}: {e}", path.display()))?;
            }
            if auth.is_open() {
                return Err(
                    "no authentication configured: pass --jwt-secret (or SQUALL_JWT_SECRET), \
                            --jwt-public-key, or --no-auth for an open relay"
                        .to_string(),
                );
            }
            if let Some(role) = &self.require_role {
                auth = auth.with_required_role(role.clone());
            }
            auth
        };
        if self.queue_size == 0 {
            return Err("--queue-size must be at least 1".to_string());
        }
        if self.ping_interval.is_zero() || self.idle_timeout.is_zero() {
            return Err("--ping-interval and --idle-timeout must be positive".to_string());
        }
        Ok(RelayConfig {
            auth,
            max_connections: self.max_connections,
            queue_size: self.queue_size,
            ping_interval: self.ping_interval,
            idle_timeout: self.idle_timeout,
            max_frame_bytes: self.max_frame_bytes,
            rate_limit: self.rate_limit,
            bugs: self.bugs.iter().copied().collect(),
            ..RelayConfig::default()
        })
    }
}

/// Runs the relay until SIGTERM or Ctrl-C: installs tracing (`RUST_LOG`),
/// raises the open-files limit, builds its own runtime. Exit code 0 after a
/// clean shutdown, 1 if the relay could not start, 2 for invalid flags.
pub fn run(args: RelayArgs) -> ExitCode {
    init_tracing();
    let config = match args.to_config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("squall-relay: {e}");
            return ExitCode::from(2);
        }
    };
    match limits::raise_nofile_limit() {
        Ok((before, after)) if before != after => {
            tracing::info!("open-files limit raised from {before} to the hard limit {after}")
        }
        Ok((_, limit)) => tracing::info!("open-files limit {limit} (already the hard limit)"),
        Err(e) => tracing::warn!("could not raise the open-files limit: {e}"),
    }
    if config.bugs != Bugs::default() {
        tracing::warn!(bugs = ?config.bugs, "deliberate bugs switched on");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("squall-relay: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(serve_until_signal(
        &args.addr,
        args.ready_file.as_deref(),
        config,
    ));
    // Worker threads stuck by a deliberate bug must not keep the process alive.
    runtime.shutdown_timeout(Duration::from_secs(1));
    code
}

async fn serve_until_signal(
    addr: &str,
    ready_file: Option<&Path>,
    config: RelayConfig,
) -> ExitCode {
    let listener = match listen(addr).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!("cannot listen on {addr}: {e}");
            return ExitCode::from(1);
        }
    };
    let relay = server::start(listener, config);
    let bound = relay.local_addr();
    tracing::info!(%bound, "relay listening");
    if let Some(path) = ready_file
        && let Err(e) = write_ready_file(path, bound)
    {
        tracing::error!("cannot write the ready file {}: {e}", path.display());
        relay.shutdown().await;
        return ExitCode::from(1);
    }
    wait_for_signal().await;
    tracing::info!("shutting down: closing every connection with 1001");
    relay.shutdown().await;
    tracing::info!("shut down");
    ExitCode::SUCCESS
}

/// How many finished handshakes may wait for `accept`. The default of
/// `TcpListener::bind` overflowed under fast ramps (SYNs dropped, then
/// retransmitted a second later); the kernel clamps this to
/// `net.core.somaxconn`.
const BACKLOG: u32 = 4096;

/// Binds `addr` (an address or `host:port`, every resolved address tried in
/// turn, as `TcpListener::bind` does) with SO_REUSEADDR and a [`BACKLOG`]
/// long accept queue.
async fn listen(addr: &str) -> io::Result<TcpListener> {
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

async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            tracing::warn!("cannot watch SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn init_tracing() {
    #[cfg(feature = "console")]
    console_subscriber::init();
    #[cfg(not(feature = "console"))]
    {
        use tracing_subscriber::EnvFilter;
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init();
    }
}
