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
use crate::target::{self, ChaosTarget};
use squall_proto::Origin;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinSet;

/// The chaos actions that started, shared by the agent (which records) and
/// the watchdog (which names the last one before a hang, with its age).
/// Cheap to clone.
///
/// The `std::sync::Mutex` guards the ring of the last [`CHAOS_MEMORY`]
/// actions with their start times. It is taken once per step start (by the
/// agent) and once per hang (by the watchdog, on its own thread, under the
/// watchdog's own lock, which this one never takes): two threads that never
/// contend for long, which is what a plain blocking mutex is for. Every
/// critical section is a push, a pop or a short scan with no `.await`
/// inside (the workspace denies clippy::await_holding_lock) and no other
/// lock taken.
#[derive(Debug, Clone, Default)]
pub struct LastChaos(Arc<Mutex<VecDeque<ChaosMark>>>);

/// How many started actions [`LastChaos`] remembers.
const CHAOS_MEMORY: usize = 1024;

/// One chaos action that started.
#[derive(Debug, Clone, PartialEq)]
struct ChaosMark {
    at_s: f64,
    action: String,
    count: u64,
}

impl LastChaos {
    /// Records that `action` (`count` of it) started at `at_s`, seconds
    /// from the origin.
    pub fn record(&self, at_s: f64, action: &str, count: u64) {
        let mut seen = self.0.lock().expect("last chaos lock");
        if seen.len() == CHAOS_MEMORY {
            seen.pop_front();
        }
        seen.push_back(ChaosMark {
            at_s,
            action: action.to_string(),
            count,
        });
    }

    /// The last action that started, e.g. `"reset x200 at 10.0s"`.
    pub fn get(&self) -> Option<String> {
        self.0
            .lock()
            .expect("last chaos lock")
            .back()
            .map(|m| format!("{} x{} at {:.1}s", m.action, m.count, m.at_s))
    }

    /// The last action that started at or before `t_s`, with how long
    /// before: `"reset x200, 8.0 s before"`, so that a reader can tell a
    /// cause from a coincidence.
    pub fn before(&self, t_s: f64) -> Option<String> {
        let seen = self.0.lock().expect("last chaos lock");
        seen.iter()
            .rev()
            .find(|m| m.at_s <= t_s)
            .map(|m| format!("{} x{}, {:.1} s before", m.action, m.count, t_s - m.at_s))
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
    pub origin: Origin,
    /// Where the agent records the last action it started.
    pub last_chaos: LastChaos,
}

/// One step as the agent runs it.
#[derive(Debug)]
struct StepSlot {
    progress: Arc<Progress>,
    /// The step's state and outcome (the counters live in `progress`). Written
    /// by the step's task when it starts and when it ends, read by
    /// [`ChaosAgent::reports`] once a second: a `std::sync::Mutex` per step,
    /// since the writes are rare and each critical section is one field set
    /// or one clone. The task takes it only after its fault's `.await`s have
    /// returned and never holds it across one (the workspace denies
    /// clippy::await_holding_lock).
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
            step.validate()?;
        }
        let endpoint = target::endpoint(&config.target.ws_url, &config.target.guard)?;
        let proxy = if config.steps.iter().any(|s| s.action == Action::Proxy) {
            let listen = SocketAddr::new(loopback_like(endpoint.addr), 0);
            Some(Arc::new(
                FaultProxy::start(listen, endpoint.addr, &config.target.guard).await?,
            ))
        } else {
            None
        };
        let load_url = match &proxy {
            // The proxy passes bytes: TLS goes through it end to end.
            Some(proxy) => format!(
                "{}://{}{}",
                endpoint.url.scheme,
                proxy.local_addr(),
                endpoint.path()
            ),
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
        let origin = config.origin;
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
                let at_ns = u64::try_from(ctx.step.at.as_nanos()).unwrap_or(u64::MAX);
                tokio::time::sleep_until(origin.instant_at(at_ns)).await;
                let at_s = origin.elapsed_s();
                last.record(at_s, ctx.step.action.as_str(), ctx.step.count);
                slots[index].report.lock().expect("report lock").state = StepState::Running;
                let outcome = match (&proxy, ctx.step.action) {
                    (Some(proxy), Action::Proxy) => run_proxy_step(proxy, &ctx).await,
                    _ => faults::run(ctx.clone()).await,
                };
                let mut report = slots[index].report.lock().expect("report lock");
                report.finished_s = Some(origin.elapsed_s());
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

    /// Connections the fault proxy's toxics have ended so far
    /// ([`crate::proxy::ToxicSet::cut`]); 0 without a proxy.
    pub fn proxy_cut(&self) -> u64 {
        self.proxy.as_ref().map_or(0, |p| p.toxics().cut())
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
        // Gone already if removed over the control API: nothing to undo.
        let _ = proxy.toxics().remove(&toxic.name);
    }
    Ok(Findings::default())
}
