//! The chaos side of a run: the chaos agent (the scenario's `[[chaos]]`
//! steps, on schedule from the run's origin) and the hang watchdog, both from
//! the chaos crate, wired to the target and the load's own tokens; their
//! state for the once-a-second snapshot, and their records for the results.

use crate::exit::Failure;
use crate::scenario::plan::Plan;
use crate::snapshot::{ChaosEventSnap, WatchdogSnap};
use crate::target::{Target, TargetSpec};
use squall_chaos::agent::{AgentConfig, ChaosAgent, LastChaos};
use squall_chaos::report::{StepReport, StepState};
use squall_chaos::target::{ChaosTarget, TokenPlacement, TokenSource};
use squall_chaos::watchdog::probe::{Greeting, Keepalive, PingStyle};
use squall_chaos::watchdog::{
    HangRecord, Progress, TargetProcess, TopicProgress, Watchdog, WatchdogConfig,
};
use squall_loadgen::auth::Minter;
use squall_loadgen::frames::Frames;
use squall_loadgen::{Auth, LoadPlan, LoadSnapshot, Placement, Protocol};
use squall_proto::{LoopbackGuard, Origin};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Chaos sockets are users `CHAOS_CONN + i`, apart from the load's.
const CHAOS_CONN: u64 = 1 << 40;

/// The chaos agent and the watchdog of one run.
pub struct ChaosSide {
    agent: Option<ChaosAgent>,
    /// Judging until the end of the drain; `None` once stopped.
    watchdog: Option<Watchdog>,
    /// The hangs of the stopped watchdog.
    hangs: Vec<HangRecord>,
    /// What each step looked like in the last snapshot.
    shown: Vec<(StepState, u64)>,
}

/// What the chaos side leaves for the results file.
#[derive(Debug)]
pub struct ChaosRecord {
    /// Hangs detected.
    pub hangs: Vec<HangRecord>,
    /// Every chaos step's outcome.
    pub steps: Vec<StepReport>,
    /// Load sockets the fault proxy's toxics ended (squall's doing).
    pub proxy_cut: u64,
}

impl ChaosSide {
    /// Starts the watchdog and the agent. Returns the URLs the load should
    /// use: the first goes through the fault proxy when a step needs one.
    pub async fn start(
        plan: &Plan,
        target: &Target,
        origin: Origin,
        out_dir: &Path,
        run_name: &str,
        allow_remote: bool,
    ) -> Result<(ChaosSide, Vec<String>), Failure> {
        let guard = LoopbackGuard::new(allow_remote);
        let tokens = token_source(&plan.load.auth).map_err(Failure::harness)?;
        let placement = match &plan.load.auth {
            Auth::Jwt(jwt) if jwt.placement == Placement::Header => TokenPlacement::Header,
            _ => TokenPlacement::Query,
        };
        let squall_protocol = matches!(plan.load.protocol, Protocol::Squall);
        // The load's own frames: the plan passed the engine's check.
        let frames = Frames::new(&plan.load).map_err(|e| Failure::harness(e.to_string()))?;
        // One TLS client for the watchdog's probes and the chaos sockets,
        // with the load's trust (`tls_ca_file`, `tls_insecure`).
        let tls = target
            .tls_client()
            .map_err(|e| Failure::harness(e.to_string()))?;
        let first_url = target.urls()[0].clone();
        let mut config = WatchdogConfig::new(plan.watchdog.clone(), origin, out_dir, run_name);
        config.health_url = target.endpoints.health.clone();
        // Over SSE there is no WebSocket to probe: the health URL and the
        // load's progress decide.
        config.ws_url = matches!(plan.load.transport, squall_loadgen::Transport::Websocket)
            .then(|| first_url.clone());
        config.tokens = tokens.clone();
        config.placement = placement;
        // The reference relay answers the protocol's own Ping (which goes
        // through its message path); any other relay gets RFC 6455 ping
        // frames, which every WebSocket server must answer, so that a relay
        // without Ping/Pong is never taken for a hung one.
        let builtin = matches!(plan.target.spec, TargetSpec::Builtin { .. });
        config.ping = if squall_protocol && builtin {
            PingStyle::Squall
        } else {
            PingStyle::Frame
        };
        // A protocol with a subprotocol or opening frames (GraphQL over
        // WebSocket) closes a probe that does not say them, and one with
        // text keepalives (Socket.IO) a probe that does not answer them.
        config.greeting = Greeting {
            subprotocol: frames.subprotocol().map(str::to_string),
            frames: frames
                .script()
                .map(|s| s.opening(CHAOS_CONN))
                .unwrap_or_default(),
            keepalive: frames
                .script()
                .cloned()
                .map(|script| Keepalive::new(move |frame: &str| script.keepalive_reply(frame))),
        };
        config.metrics_url = target.endpoints.metrics.clone();
        config.target = target.pid().map(|pid| TargetProcess {
            pid,
            stderr_tail: target.stderr_tail(),
        });
        config.guard = guard;
        config.tls = tls.clone();
        config.progress_fed = true;
        let last_chaos = LastChaos::default();
        config.last_chaos = last_chaos.clone();
        let watchdog =
            Watchdog::spawn(config).map_err(|e| Failure::harness(format!("watchdog: {e}")))?;

        let mut urls = target.urls().to_vec();
        let agent = if plan.chaos.is_empty() {
            None
        } else {
            let chaos_target = ChaosTarget {
                ws_url: first_url,
                tls,
                tokens,
                placement,
                subscribe_frames: subscribe_frames(plan, &frames),
                subprotocol: frames.subprotocol().map(str::to_string),
                squall_protocol,
                jwt_secret: match &plan.load.auth {
                    Auth::Jwt(jwt) => match &jwt.key {
                        squall_loadgen::JwtKey::HS256(secret) => Some(secret.clone()),
                        _ => None,
                    },
                    Auth::None => None,
                },
                guard,
            };
            let agent = ChaosAgent::start(AgentConfig {
                steps: plan.chaos.clone(),
                target: chaos_target,
                origin,
                last_chaos,
            })
            .await
            .map_err(|e| Failure::harness(format!("chaos agent: {e}")))?;
            urls[0] = agent.load_url().to_string();
            Some(agent)
        };
        let shown = vec![(StepState::Pending, 0); plan.chaos.len()];
        Ok((
            ChaosSide {
                agent,
                watchdog: Some(watchdog),
                hangs: Vec::new(),
                shown,
            },
            urls,
        ))
    }

    /// Hands the load's progress to the watchdog, so that it tells a hang
    /// (nothing delivered while due) from a slow target and sees a topic that
    /// stops. Called once a second with each snapshot.
    pub fn note_progress(&self, s: &LoadSnapshot, load: &LoadPlan) {
        let Some(watchdog) = &self.watchdog else {
            return;
        };
        watchdog.note_progress(Progress {
            at_s: s.t_s,
            due: s.messages.due,
            received: s.messages.received,
            overdue: s.messages.overdue,
            established: s.connections.established,
            topics: s
                .topics
                .iter()
                .enumerate()
                .map(|(k, t)| TopicProgress {
                    name: load.topic_name(k as u64),
                    sent: t.sent,
                    received: t.received,
                    subscribers: t.subscribers,
                })
                .collect(),
        });
    }

    /// Tells the watchdog that the target process squall owns has ended:
    /// an `exited` hang at once.
    pub fn target_exited(&self, how: String) {
        if let Some(watchdog) = &self.watchdog {
            watchdog.target_exited(how);
        }
    }

    /// Stops the watchdog's judging at the end of the drain, before squall
    /// closes its own sockets (which a relay may be slow to take), keeping
    /// its hangs for the results.
    pub async fn stop_watchdog(&mut self) {
        if let Some(watchdog) = self.watchdog.take() {
            // Stopping waits for hang files being written (bounded by gdb's own timeout).
            self.hangs = tokio::task::spawn_blocking(move || watchdog.stop())
                .await
                .unwrap_or_default();
        }
    }

    /// The watchdog's state now.
    pub fn watchdog(&self) -> WatchdogSnap {
        self.watchdog
            .as_ref()
            .map(|w| w.status().into())
            .unwrap_or_else(|| WatchdogSnap {
                state: "off".into(),
                hangs: self.hangs.len() as u64,
                ..Default::default()
            })
    }

    /// The chaos steps that started, moved on or ended since the last call.
    pub fn events(&mut self) -> Vec<ChaosEventSnap> {
        let Some(agent) = &self.agent else {
            return Vec::new();
        };
        let mut events = Vec::new();
        for (report, shown) in agent.reports().into_iter().zip(&mut self.shown) {
            let now = (report.state, report.done);
            if now == *shown {
                continue;
            }
            *shown = now;
            events.push(ChaosEventSnap {
                at_s: report.at_s,
                action: report.action,
                count: report.count,
                done: report.done,
                state: report.state.as_str().to_string(),
            });
        }
        events
    }

    /// Load sockets the fault proxy's toxics have ended so far: only the
    /// load goes through the proxy (the watchdog and the chaos sockets go
    /// to the target itself).
    pub fn proxy_cut(&self) -> u64 {
        self.agent.as_ref().map_or(0, ChaosAgent::proxy_cut)
    }

    /// Ends the chaos steps (waiting `grace` for running ones) and the watchdog.
    pub async fn finish(mut self, grace: Duration) -> ChaosRecord {
        let proxy_cut = self.proxy_cut();
        let steps = match self.agent.take() {
            Some(agent) => agent.finish(grace).await,
            None => Vec::new(),
        };
        self.stop_watchdog().await;
        ChaosRecord {
            hangs: self.hangs,
            steps,
            proxy_cut,
        }
    }
}

/// Tokens for chaos sockets and the watchdog, minted like the load's.
fn token_source(auth: &Auth) -> Result<Option<TokenSource>, String> {
    match auth {
        Auth::None => Ok(None),
        Auth::Jwt(jwt) => {
            let minter = Arc::new(Minter::new(jwt).map_err(|e| e.to_string())?);
            Ok(Some(Arc::new(move |i: u64| {
                minter.mint(CHAOS_CONN.saturating_add(i)).ok()
            })))
        }
    }
}

/// What chaos sockets send after the upgrade: a subscription to one topic
/// each, round robin over the topics, in the run's protocol (the engine's
/// own frames; a script's connect-time steps are left out: chaos sockets
/// misbehave on purpose).
fn subscribe_frames(plan: &Plan, frames: &Frames) -> Vec<String> {
    (0..u64::from(plan.load.topics))
        .flat_map(|k| frames.subscribe(CHAOS_CONN + k, &[k]))
        .collect()
}
