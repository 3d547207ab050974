//! `squall chaos ACTION --target URL [--count N] [--rate R] ...`: one fault
//! now against a running relay, its outcome printed (text or `--json`).
//!
//! Exit codes: 0 done and every check passed, 1 nothing could be done
//! (harness or target down), 2 usage (bad arguments, refused address),
//! 3 a check did not pass (badauth: a bad token was not refused).
//!
//! `garbage` is judged by RFC 6455 (issue 8): an answer the RFC does not
//! allow is a finding about the target, listed under the step, not a
//! failure of the command, which exits 0 once any case could run.

use crate::exit::{Exit, Failure};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use squall_chaos::agent::{AgentConfig, ChaosAgent, LastChaos};
use squall_chaos::scenario::{Action, Backoff, ChaosStep, DEFAULT_HOLD};
use squall_chaos::target::{ChaosTarget, TokenPlacement, TokenSource, squall_subscribe};
use squall_chaos::{Error, tokens};
use squall_proto::{LoopbackGuard, Origin, TlsClient, TlsSettings, parse_duration};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// `squall chaos ACTION --target URL [--count N] [--rate R] ...`
#[derive(Debug, Clone, clap::Args)]
pub struct ChaosArgs {
    /// The fault: reset, drop, halfopen, vanish, slowloris, garbage, badauth, storm.
    #[arg(value_parser = names::<Action>(Action::NAMES))]
    pub action: Action,
    /// The target's WebSocket URL, e.g. ws://127.0.0.1:8080/ws (or wss://).
    #[arg(long)]
    pub target: String,
    /// wss://: trust the certificates of this PEM file instead of Mozilla's
    /// roots (a private CA, or the server's self-signed certificate).
    #[arg(long, value_name = "PEM")]
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// wss://: accept any certificate, unverified (self-signed staging).
    #[arg(long, conflicts_with = "tls_ca_file")]
    pub tls_insecure: bool,
    /// Sockets (or rounds of cases for garbage and badauth).
    #[arg(long, default_value_t = 1)]
    pub count: u64,
    /// Sockets opened per second (default: as fast as possible).
    #[arg(long)]
    pub rate: Option<f64>,
    /// reset, drop, storm: how long each socket stays open first.
    #[arg(long, value_parser = parse_duration, default_value = "100ms")]
    pub after: Duration,
    /// reset, drop: write half a frame just before the fault.
    #[arg(long)]
    pub mid_frame: bool,
    /// reset, drop: end in the middle of the handshake (over wss://, right
    /// after a ClientHello and the server's answer).
    #[arg(long, conflicts_with = "mid_frame")]
    pub mid_handshake: bool,
    /// halfopen, vanish, slowloris: how long each socket is held [default: 10s].
    #[arg(long, value_parser = parse_duration)]
    pub hold: Option<Duration>,
    /// slowloris: the pause between two bytes.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub trickle: Duration,
    /// storm: how clients reconnect.
    #[arg(long, value_parser = names::<Backoff>(Backoff::NAMES), default_value_t = Backoff::None)]
    pub backoff: Backoff,
    /// garbage, badauth: run only this case (repeatable).
    #[arg(long = "case")]
    pub cases: Vec<String>,
    /// Mint HS256 tokens with this secret (sub `chaos-<i>`, valid one hour).
    #[arg(long, env = "SQUALL_JWT_SECRET", conflicts_with = "token")]
    pub jwt_secret: Option<String>,
    /// Use this token for every socket.
    #[arg(long)]
    pub token: Option<String>,
    /// Where the token goes.
    #[arg(
        long,
        value_parser = names::<TokenPlacement>(TokenPlacement::NAMES),
        default_value_t = TokenPlacement::Query
    )]
    pub placement: TokenPlacement,
    /// Topics the chaos sockets subscribe to (squall protocol; repeatable).
    #[arg(long = "topic", default_value = "chaos")]
    pub topics: Vec<String>,
    /// The target does not speak the squall protocol: send no Subscribe,
    /// expect no Error replies, count no sequences.
    #[arg(long)]
    pub not_squall: bool,
    /// Allow a target outside 127.0.0.0/8 and ::1.
    #[arg(long)]
    pub allow_remote: bool,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
}

/// A value parser for one of the chaos crate's closed sets of names: clap
/// lists `names` in the help and refuses anything else, the crate's
/// `FromStr` makes the value. The names are defined in the crate, once.
pub(crate) fn names<T>(names: &'static [&'static str]) -> impl TypedValueParser<Value = T>
where
    T: FromStr + Clone + Send + Sync + 'static,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    PossibleValuesParser::new(names).try_map(|name| name.parse::<T>())
}

impl ChaosArgs {
    /// The step these arguments describe, starting at once.
    pub fn step(&self) -> ChaosStep {
        ChaosStep {
            count: self.count,
            rate: self.rate,
            after: self.after,
            mid_frame: self.mid_frame,
            mid_handshake: self.mid_handshake,
            hold: self.hold,
            trickle: self.trickle,
            backoff: self.backoff,
            cases: self.cases.clone(),
            ..ChaosStep::new(Duration::ZERO, self.action)
        }
    }

    /// The target these arguments describe; a CA file that does not load is
    /// a usage failure.
    pub fn target(&self) -> Result<ChaosTarget, Failure> {
        let tls = TlsClient::new(&TlsSettings {
            ca_file: self.tls_ca_file.clone(),
            insecure: self.tls_insecure,
        })
        .map_err(|e| Failure::usage(format!("chaos: --tls-ca-file: {e}")))?;
        let tokens = match (&self.jwt_secret, &self.token) {
            (Some(secret), _) => Some(tokens::hs256_source(secret.clone())),
            (None, Some(token)) => {
                let token = token.clone();
                Some(Arc::new(move |_| Some(token.clone())) as TokenSource)
            }
            (None, None) => None,
        };
        Ok(ChaosTarget {
            ws_url: self.target.clone(),
            tls,
            tokens,
            placement: self.placement,
            subscribe_frames: if self.not_squall {
                Vec::new()
            } else {
                self.topics.iter().map(|t| squall_subscribe(t)).collect()
            },
            squall_protocol: !self.not_squall,
            jwt_secret: self.jwt_secret.clone(),
            guard: LoopbackGuard::new(self.allow_remote),
        })
    }
}

/// Runs one fault now and prints its outcome.
pub fn run(args: ChaosArgs) -> Result<Exit, Failure> {
    if args.action == Action::Proxy {
        return Err(Failure::usage(
            "chaos: the proxy has its own command: squall proxy --listen ADDR --upstream ADDR --toxic SPEC",
        ));
    }
    let step = args.step();
    step.validate()
        .map_err(|e| Failure::usage(format!("chaos: {e}")))?;
    let bound = step.after
        + step.hold.unwrap_or(DEFAULT_HOLD)
        + Duration::from_secs(300)
        + step.rate.map_or(Duration::ZERO, |r| {
            Duration::from_secs_f64(step.count as f64 / r)
        });
    let target = args.target()?;
    if target.tls.is_insecure() {
        eprintln!("chaos: WARNING: --tls-insecure: the target's certificate is NOT verified");
    }
    let runtime = super::runtime("squall-chaos")?;
    let result = runtime.block_on(async {
        let config = AgentConfig {
            steps: vec![step],
            target,
            origin: Origin::now(),
            last_chaos: LastChaos::default(),
        };
        let mut agent = ChaosAgent::start(config).await?;
        let deadline = tokio::time::Instant::now() + bound;
        while !agent.is_finished() && tokio::time::Instant::now() < deadline {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
        Ok::<_, Error>(agent.finish(Duration::ZERO).await)
    });
    let report =
        crate::results::ChaosResult::from(result.map_err(|e| failure("chaos", e))?.remove(0));
    let findings_only = args.action == Action::Garbage;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("reports serialize")
        );
    } else {
        print!("{report}");
        if findings_only && report.mismatches() > 0 {
            println!(
                "{} of {} answers are findings about the target: RFC 6455 does not allow them (the checks ran; this is not a failure of squall)",
                report.mismatches(),
                report.checks.len()
            );
        }
    }
    Ok(if report.done == 0 {
        Exit::HarnessFailed
    } else if report.mismatches() > 0 && !findings_only {
        Exit::Breached
    } else {
        Exit::Passed
    })
}

/// What a chaos error means for the exit code: an address the guard refused
/// or a setting that makes no sense is a usage error (2); a socket, thread
/// or file that failed is the harness's (1).
pub(crate) fn failure(command: &str, e: Error) -> Failure {
    let message = format!("{command}: {e}");
    match e {
        Error::Endpoint(_)
        | Error::Spec(_)
        | Error::ToxicExists(_)
        | Error::ToxicNotFound(_)
        | Error::ProxyStepWithoutProxy => Failure::usage(message),
        Error::Io(_) => Failure::harness(message),
    }
}
