//! The chaos agent: runs a scenario's `[[chaos]]` steps on schedule,
//! relative to the run's origin, and reports their progress and outcome.
//!
//! When a step is a `proxy` step the agent starts a [`FaultProxy`] in front
//! of the target at once, and the load must connect through it: see
//! [`ChaosAgent::load_url`].

use crate::Error;
use crate::faults::{self, FaultContext};
use crate::proxy::FaultProxy;
use crate::report::{Findings, Progress, StepReport, StepState};
use crate::scenario::{Action, ChaosStep};
use crate::target::{ChaosTarget, Endpoint};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// The chaos actions that started, shared by the agent (which records) and
/// the watchdog (which names the last one before a hang). Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct LastChaos(Arc<Mutex<VecDeque<(f64, String)>>>);

/// How many started actions [`LastChaos`] remembers.
const CHAOS_MEMORY: usize = 1024;

impl LastChaos {
    /// Records that `action` (`count` of it) started at `at_s`, seconds
    /// from the origin.
    pub fn record(&self, at_s: f64, action: &str, count: u64) {
        let mut seen = self.0.lock().expect("last chaos lock");
        if seen.len() == CHAOS_MEMORY {
            seen.pop_front();
        }
        seen.push_back((at_s, format!("{action} x{count} at {at_s:.1}s")));
    }

    /// The last action that started, e.g. `"reset x200 at 10.0s"`.
    pub fn get(&self) -> Option<String> {
        self.0
            .lock()
            .expect("last chaos lock")
            .back()
            .map(|(_, what)| what.clone())
    }

    /// The last action that started at or before `t_s`.
    pub fn before(&self, t_s: f64) -> Option<String> {
        let seen = self.0.lock().expect("last chaos lock");
        seen.iter()
            .rev()
            .find(|(at, _)| *at <= t_s)
            .map(|(_, what)| what.clone())
    }
}

/// What the agent needs from the CLI.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The scenario's `[[chaos]]` steps.
    pub steps: Vec<ChaosStep>,
    /// The target, its tokens and the guard.
    pub target: ChaosTarget,
    /// The run's origin: step `at`s count from here.
    pub origin: std::time::Instant,
    /// Where the agent records the last action it started.
    pub last_chaos: LastChaos,
}

/// One step as the agent runs it.
#[derive(Debug)]
struct StepSlot {
    progress: Arc<Progress>,
    report: Mutex<StepReport>,
}

/// A running chaos agent.
#[derive(Debug)]
pub struct ChaosAgent {
    slots: Arc<Vec<StepSlot>>,
    proxy: Option<Arc<FaultProxy>>,
    load_url: String,
    tasks: JoinSet<()>,
}

impl ChaosAgent {
    /// Validates the steps, resolves and guards the target, starts the fault
    /// proxy when a step needs one, and schedules every step. Needs a tokio
    /// runtime (multi-threaded for thousands of resets per second).
    pub async fn start(config: AgentConfig) -> Result<Self, Error> {
        for step in &config.steps {
            step.validate().map_err(Error::Invalid)?;
        }
        let endpoint = Endpoint::parse(&config.target.ws_url, &config.target.guard)?;
        let proxy = if config.steps.iter().any(|s| s.action == Action::Proxy) {
            let listen = SocketAddr::new(loopback_like(endpoint.addr), 0);
            Some(Arc::new(
                FaultProxy::start(listen, endpoint.addr, &config.target.guard).await?,
            ))
        } else {
            None
        };
        let load_url = match &proxy {
            Some(proxy) => format!("ws://{}{}", proxy.local_addr(), endpoint.path),
            None => config.target.ws_url.clone(),
        };
        let slots: Arc<Vec<StepSlot>> = Arc::new(
            config
                .steps
                .iter()
                .map(|s| StepSlot {
                    progress: Arc::new(Progress::default()),
                    report: Mutex::new(StepReport::pending(
                        s.at.as_secs_f64(),
                        s.action.as_str(),
                        s.planned(),
                    )),
                })
                .collect(),
        );
        let origin = Instant::from_std(config.origin);
        let mut tasks = JoinSet::new();
        for (index, step) in config.steps.into_iter().enumerate() {
            let ctx = Arc::new(FaultContext {
                step,
                target: config.target.clone(),
                endpoint: endpoint.clone(),
                progress: slots[index].progress.clone(),
            });
            let (slots, proxy, last) = (slots.clone(), proxy.clone(), config.last_chaos.clone());
            tasks.spawn(async move {
                tokio::time::sleep_until(origin + ctx.step.at).await;
                let at_s = origin.elapsed().as_secs_f64();
                last.record(at_s, ctx.step.action.as_str(), ctx.step.count);
                slots[index].report.lock().expect("report lock").state = StepState::Running;
                let outcome = match (&proxy, ctx.step.action) {
                    (Some(proxy), Action::Proxy) => run_proxy_step(proxy, &ctx).await,
                    _ => faults::run(ctx.clone()).await,
                };
                let mut report = slots[index].report.lock().expect("report lock");
                report.finished_s = Some(origin.elapsed().as_secs_f64());
                match outcome {
                    Ok(findings) => {
                        findings.fill(&mut report);
                        report.state = StepState::Finished;
                    }
                    Err(e) => {
                        report.note = Some(e.to_string());
                        report.state = StepState::Failed;
                    }
                }
            });
        }
        Ok(Self {
            slots,
            proxy,
            load_url,
            tasks,
        })
    }

    /// The URL the load should connect to: the fault proxy's when a step is
    /// a `proxy` step (same path and query), else the target's own.
    pub fn load_url(&self) -> &str {
        &self.load_url
    }

    /// The fault proxy, when a step needed one.
    pub fn proxy(&self) -> Option<&FaultProxy> {
        self.proxy.as_deref()
    }

    /// Every step's progress and outcome so far, in scenario order. Cheap
    /// enough for the once-a-second snapshot.
    pub fn reports(&self) -> Vec<StepReport> {
        self.slots
            .iter()
            .map(|slot| {
                let mut report = slot.report.lock().expect("report lock").clone();
                slot.progress.fill(&mut report);
                report
            })
            .collect()
    }

    /// Whether every step has ended.
    pub fn is_finished(&mut self) -> bool {
        while self.tasks.try_join_next().is_some() {}
        self.tasks.is_empty()
    }

    /// Waits up to `grace` for running steps to end, cancels the rest (their
    /// sockets close), stops the proxy, and returns the final reports.
    /// Steps whose `at` had not come are left `pending`.
    pub async fn finish(mut self, grace: Duration) -> Vec<StepReport> {
        let _ = tokio::time::timeout(grace, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        self.tasks.shutdown().await;
        if let Some(proxy) = &self.proxy {
            proxy.stop();
        }
        self.reports()
    }
}

/// The proxy listens on the same loopback family as the target.
fn loopback_like(target: SocketAddr) -> std::net::IpAddr {
    match target {
        SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
        SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
    }
}

/// Adds the step's toxics, holds them (to the end of the run when the step
/// sets no hold: the agent is cancelled then), and removes them.
async fn run_proxy_step(proxy: &FaultProxy, ctx: &FaultContext) -> Result<Findings, Error> {
    for toxic in &ctx.step.toxics {
        proxy.toxics().add(toxic.clone())?;
        ctx.progress.done();
    }
    match ctx.step.hold {
        Some(hold) => tokio::time::sleep(hold).await,
        None => std::future::pending::<()>().await,
    }
    for toxic in &ctx.step.toxics {
        proxy.toxics().remove(&toxic.name);
    }
    Ok(Findings::default())
}
