//! The standalone commands: `squall chaos ACTION --target URL ...` runs one
//! fault now and prints its outcome; `squall proxy --listen ADDR --upstream
//! ADDR [--toxic SPEC]... [--api ADDR]` runs the fault proxy until Ctrl-C
//! (or `--duration`). Both are sync functions that build their own tokio
//! runtime; the CLI calls them from `main` and returns their exit code.

use crate::agent::{AgentConfig, ChaosAgent, LastChaos};
use crate::proxy::FaultProxy;
use crate::proxy::toxics::ToxicSpec;
use crate::report::StepReport;
use crate::scenario::{Action, Backoff, ChaosStep, DEFAULT_HOLD};
use crate::target::{ChaosTarget, TokenPlacement, squall_subscribe};
use crate::{Error, LoopbackGuard, tokens};
use squall_proto::duration::parse_duration;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// `squall chaos ACTION --target URL [--count N] [--rate R] ...`
#[derive(Debug, Clone, clap::Args)]
pub struct ChaosArgs {
    /// The fault: reset, drop, halfopen, vanish, slowloris, garbage, badauth, storm.
    #[arg(value_enum)]
    pub action: Action,
    /// The target's WebSocket URL, e.g. ws://127.0.0.1:8080/ws.
    #[arg(long)]
    pub target: String,
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
    /// halfopen, vanish, slowloris: how long each socket is held [default: 10s].
    #[arg(long, value_parser = parse_duration)]
    pub hold: Option<Duration>,
    /// slowloris: the pause between two bytes.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub trickle: Duration,
    /// storm: how clients reconnect.
    #[arg(long, value_enum, default_value_t = Backoff::None)]
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
    #[arg(long, value_enum, default_value_t = TokenPlacement::Query)]
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

impl ChaosArgs {
    /// The step these arguments describe, starting at once.
    pub fn step(&self) -> ChaosStep {
        ChaosStep {
            count: self.count,
            rate: self.rate,
            after: self.after,
            mid_frame: self.mid_frame,
            hold: self.hold,
            trickle: self.trickle,
            backoff: self.backoff,
            cases: self.cases.clone(),
            ..ChaosStep::new(Duration::ZERO, self.action)
        }
    }

    /// The target these arguments describe.
    pub fn target(&self) -> ChaosTarget {
        let tokens = match (&self.jwt_secret, &self.token) {
            (Some(secret), _) => Some(tokens::hs256_source(secret.clone())),
            (None, Some(token)) => {
                let token = token.clone();
                Some(Arc::new(move |_| Some(token.clone())) as crate::target::TokenSource)
            }
            (None, None) => None,
        };
        ChaosTarget {
            ws_url: self.target.clone(),
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
        }
    }
}

/// Runs one fault now and prints its outcome. Exit codes: 0 done and every
/// check passed, 1 nothing could be done (harness or target down), 2 usage
/// (bad arguments, refused address), 3 a check did not pass.
pub fn run_chaos(args: ChaosArgs) -> ExitCode {
    if args.action == Action::Proxy {
        eprintln!(
            "squall chaos: the proxy has its own command: squall proxy --listen ADDR --upstream ADDR --toxic SPEC"
        );
        return ExitCode::from(2);
    }
    let step = args.step();
    if let Err(why) = step.validate() {
        eprintln!("squall chaos: {why}");
        return ExitCode::from(2);
    }
    let bound = step.after
        + step.hold.unwrap_or(DEFAULT_HOLD)
        + Duration::from_secs(300)
        + step.rate.map_or(Duration::ZERO, |r| {
            Duration::from_secs_f64(step.count as f64 / r)
        });
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("squall chaos: cannot start a runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        let config = AgentConfig {
            steps: vec![step],
            target: args.target(),
            origin: std::time::Instant::now(),
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
    let report = match result {
        Ok(mut reports) => reports.remove(0),
        Err(e) => {
            eprintln!("squall chaos: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("reports serialize")
        );
    } else {
        print!("{}", summary(&report));
    }
    ExitCode::from(match report {
        r if r.mismatches() > 0 => 3,
        r if r.done == 0 => 1,
        _ => 0,
    })
}

/// A human-readable account of a step's outcome.
pub fn summary(report: &StepReport) -> String {
    use std::fmt::Write as _;
    let mut out = format!(
        "{}: {}/{} done, {} failed, {}",
        report.action,
        report.done,
        report.count,
        report.failed,
        report.state.as_str()
    );
    if let Some(per_s) = report.per_s {
        let _ = write!(out, ", {per_s:.0}/s");
    }
    out.push('\n');
    for (kind, n) in &report.errors {
        let _ = writeln!(out, "  error {kind}: {n}");
    }
    for check in &report.checks {
        let mark = if check.passed { "ok  " } else { "FAIL" };
        let _ = writeln!(
            out,
            "  {mark} {:<20} expected {:<16} seen {}",
            check.case, check.expected, check.seen
        );
    }
    let figures = [
        ("server closed", report.server_closed.map(|n| n.to_string())),
        (
            "reconnect all",
            report.reconnect_all_ms.map(|ms| format!("{ms:.1} ms")),
        ),
        (
            "not reconnected",
            report.not_reconnected.map(|n| n.to_string()),
        ),
        ("missed", report.missed.map(|n| n.to_string())),
        ("note", report.note.clone()),
    ];
    for (name, value) in figures {
        if let Some(value) = value {
            let _ = writeln!(out, "  {name}: {value}");
        }
    }
    out
}

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
    /// Allow an upstream outside 127.0.0.0/8 and ::1.
    #[arg(long)]
    pub allow_remote: bool,
}

/// Runs the fault proxy until Ctrl-C or `--duration`. Exit codes: 0 ran and
/// stopped, 1 could not bind, 2 usage (bad upstream, refused address, bad toxic).
pub fn run_proxy(args: ProxyArgs) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("squall proxy: cannot start a runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        let guard = LoopbackGuard::new(args.allow_remote);
        let (host, port) = args
            .upstream
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
            .ok_or_else(|| Error::Invalid(format!("--upstream {:?}: expected HOST:PORT", args.upstream)))?;
        let upstream = guard.resolve(host, port)?;
        let proxy = FaultProxy::start(args.listen, upstream, &guard).await?;
        for toxic in &args.toxics {
            proxy.toxics().add(toxic.clone())?;
        }
        eprintln!("squall proxy: {} -> {upstream}, {} toxic(s)", proxy.local_addr(), args.toxics.len());
        if let Some(api) = args.api {
            let bound = proxy.start_api(api).await?;
            eprintln!("squall proxy: control API on http://{bound}/toxics");
        }
        match args.duration {
            Some(d) => tokio::select! { _ = tokio::time::sleep(d) => {}, _ = tokio::signal::ctrl_c() => {} },
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        proxy.stop();
        Ok::<_, Error>(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("squall proxy: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
