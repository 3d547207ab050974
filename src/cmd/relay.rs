//! `squall relay` and the `squall-relay` binary: the reference relay's flags
//! (each defined here once, with environment fallbacks), mapped onto a
//! [`RelayConfig`], and the process around the relay library: tracing, the
//! open-files limit, the runtime, the ready file, SIGTERM and Ctrl-C.

use std::path::PathBuf;
use std::time::Duration;

use squall_proto::parse_duration;
use squall_relay::auth::AuthConfig;
use squall_relay::bugs::{BUG_HELP, Bug, Bugs};
use squall_relay::{RelayConfig, limits, listen, server};

use crate::exit::{Exit, Failure};

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
    /// Serve TLS with this certificate (PEM, the chain with the server's
    /// certificate first): wss:// upgrades and https:// /health and
    /// /metrics on the same port. Needs --tls-key.
    #[arg(
        long,
        env = "SQUALL_RELAY_TLS_CERT",
        value_name = "PEM",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(
        long,
        env = "SQUALL_RELAY_TLS_KEY",
        value_name = "PEM",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// Threads that run the relay: 1 runs every connection on one thread
    /// (no thread is woken for another's work); by default one per core.
    #[arg(long, env = "SQUALL_RELAY_WORKERS", value_name = "N")]
    pub workers: Option<usize>,
    /// Turn on a deliberate bug (see the list below).
    #[arg(long = "bug", value_name = "NAME", env = "SQUALL_RELAY_BUGS", value_delimiter = ',', long_help = BUG_HELP)]
    pub bugs: Vec<Bug>,
}

impl RelayArgs {
    /// The validated configuration these flags describe; a bad flag is a
    /// usage failure (exit 2).
    pub fn to_config(&self) -> Result<RelayConfig, Failure> {
        let auth = if self.no_auth {
            AuthConfig::open()
        } else {
            let mut auth = AuthConfig::default();
            if let Some(secret) = &self.jwt_secret {
                auth = auth.with_hs256(secret.as_bytes());
            }
            if let Some(path) = &self.jwt_public_key {
                let bad = |e: &dyn std::fmt::Display| {
                    Failure::usage(format!("--jwt-public-key {}: {e}", path.display()))
                };
                let pem = std::fs::read(path).map_err(|e| bad(&e))?;
                auth = auth.with_public_key_pem(&pem).map_err(|e| bad(&e))?;
            }
            if auth.is_open() {
                return Err(Failure::usage(
                    "no authentication configured: pass --jwt-secret (or SQUALL_JWT_SECRET), \
                     --jwt-public-key, or --no-auth for an open relay",
                ));
            }
            if let Some(role) = &self.require_role {
                auth = auth.with_required_role(role.clone());
            }
            auth
        };
        if self.queue_size == 0 {
            return Err(Failure::usage("--queue-size must be at least 1"));
        }
        if self.ping_interval.is_zero() || self.idle_timeout.is_zero() {
            return Err(Failure::usage(
                "--ping-interval and --idle-timeout must be positive",
            ));
        }
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(
                squall_proto::tls::server_config(cert, key)
                    .map_err(|e| Failure::usage(format!("--tls-cert/--tls-key: {e}")))?,
            ),
            _ => None,
        };
        Ok(RelayConfig {
            auth,
            tls,
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
/// raises the open-files limit, builds its own runtime. Passed after a clean
/// shutdown; a harness failure if the relay could not start; usage for
/// invalid flags.
pub fn run(args: RelayArgs) -> Result<Exit, Failure> {
    init_tracing();
    let config = args.to_config()?;
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
    let runtime = runtime(args.workers)?;
    let outcome = runtime.block_on(serve_until_signal(&args, config));
    // Worker threads stuck by a deliberate bug must not keep the process alive.
    runtime.shutdown_timeout(Duration::from_secs(1));
    outcome
}

/// The relay's runtime: `workers` threads (one per core by default); one
/// worker is a current-thread runtime.
fn runtime(workers: Option<usize>) -> Result<tokio::runtime::Runtime, Failure> {
    match workers {
        None => super::runtime("squall-relay"),
        Some(0) => Err(Failure::usage("--workers must be at least 1")),
        Some(1) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Failure::harness(format!("cannot start the runtime: {e}"))),
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .thread_name("squall-relay")
            .build()
            .map_err(|e| Failure::harness(format!("cannot start the runtime: {e}"))),
    }
}

async fn serve_until_signal(args: &RelayArgs, config: RelayConfig) -> Result<Exit, Failure> {
    let addr = &args.addr;
    let listener = listen::bind(addr)
        .await
        .map_err(|e| Failure::harness(format!("cannot listen on {addr}: {e}")))?;
    let relay = server::start(listener, config);
    let bound = relay.local_addr();
    let url = relay.ws_url();
    tracing::info!(%bound, %url, "relay listening");
    if let Some(path) = &args.ready_file
        && let Err(e) = listen::write_ready_file(path, bound)
    {
        relay.shutdown().await;
        return Err(Failure::harness(format!(
            "cannot write the ready file {}: {e}",
            path.display()
        )));
    }
    wait_for_signal().await;
    tracing::info!("shutting down: closing every connection with 1001");
    relay.shutdown().await;
    tracing::info!("shut down");
    Ok(Exit::Passed)
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
