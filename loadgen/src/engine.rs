//! The engine: opens the connections on schedule, collects a snapshot a
//! second, ends the drain when deliveries stop (or at `drain_max`), honours
//! Ctrl-C, enforces the run's hard deadline, and builds the report.

use crate::auth::Minter;
use crate::connect::ConnectOptions;
use crate::frames::Frames;
use crate::layout::Layout;
use crate::limits::raise_open_file_limit;
use crate::plan::{Auth, HARD_SLACK, LoadPlan, Protocol};
use crate::pool::{self, Pool};
use crate::report::{LoadReport, PublisherCount};
use crate::schedule::Schedule;
use crate::snapshot::{LoadSnapshot, Phase};
use crate::stats::{Collector, Stats};
use crate::{Origin, connection};
use squall_proto::{Endpoint, TlsClient};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

/// Connection attempts in flight at once per target (TCP connect + upgrade):
/// below the usual listen backlog of 128, so that a ramp never overflows the
/// target's accept queue (overflows become 1 s SYN retransmits, which would
/// show as handshake latency the target did not cause).
const MAX_PENDING_CONNECTS_PER_TARGET: usize = 100;

/// When publishing ends, when the drain ends (what arrives later is `late`)
/// and when the run ends (ns from the origin). The run's end starts at
/// `duration + max(drain, drain_max)` and moves earlier once deliveries
/// have stopped; Ctrl-C moves all three earlier. Atomics, because every
/// connection reads them on every turn of its loop: no lock shared by
/// thousands of tasks, and so nothing that could be held across an
/// `.await`. Each is a single value that only ever moves earlier
/// (`fetch_min`); `Acquire`/`Release` is enough, since a connection that
/// reads a stale value is woken by its `wake` channel right after and reads
/// again.
#[derive(Debug)]
pub(crate) struct Deadlines {
    publish_end_ns: AtomicU64,
    drain_end_ns: AtomicU64,
    run_end_ns: AtomicU64,
}

impl Deadlines {
    fn new(publish_end_ns: u64, drain_end_ns: u64, run_end_ns: u64) -> Self {
        Self {
            publish_end_ns: AtomicU64::new(publish_end_ns),
            drain_end_ns: AtomicU64::new(drain_end_ns),
            run_end_ns: AtomicU64::new(run_end_ns),
        }
    }

    /// Nothing is published at or after this time.
    pub fn publish_end_ns(&self) -> u64 {
        self.publish_end_ns.load(Ordering::Acquire)
    }

    /// Deliveries at or after this time are `late`; no socket reconnects
    /// after it.
    pub fn drain_end_ns(&self) -> u64 {
        self.drain_end_ns.load(Ordering::Acquire)
    }

    /// Every connection ends at this time.
    pub fn run_end_ns(&self) -> u64 {
        self.run_end_ns.load(Ordering::Acquire)
    }

    /// Ends publishing at `now_ns` and the drain and the run `drain_ns`
    /// later (never later than planned).
    fn stop_at(&self, now_ns: u64, drain_ns: u64) {
        self.run_end_ns
            .fetch_min(now_ns + drain_ns, Ordering::AcqRel);
        self.drain_end_ns
            .fetch_min(now_ns + drain_ns, Ordering::AcqRel);
        self.publish_end_ns.fetch_min(now_ns, Ordering::AcqRel);
    }

    /// Ends the run at `now_ns` (the drain is over and quiet).
    fn end_at(&self, now_ns: u64) {
        self.run_end_ns.fetch_min(now_ns, Ordering::AcqRel);
    }
}

/// What every connection task shares.
pub(crate) struct Ctx {
    pub plan: LoadPlan,
    pub origin: Origin,
    pub layout: Layout,
    pub schedule: Schedule,
    pub frames: Frames,
    /// The plan's targets, resolved and accepted by its loopback guard.
    pub targets: Vec<Endpoint>,
    /// What every connection attempt shares: the TLS client of `wss://`
    /// targets, built once for the run.
    pub connect: ConnectOptions,
    pub minter: Option<Minter>,
    pub stats: Stats,
    pub deadlines: Deadlines,
    /// Per target, the connection attempts (first connects and reconnects)
    /// in flight. A tokio `Semaphore`: unlike the std mutexes of `Stats`,
    /// its permit *is* held across awaits on purpose (the connect and
    /// upgrade), which an async semaphore allows: a task waiting for a
    /// permit yields instead of blocking a worker thread, and the
    /// connection drops the permit as soon as the upgrade ends.
    pub pending: Vec<Arc<Semaphore>>,
}

/// Runs a checked plan against its `targets`, which
/// [`LoadPlan::check_and_resolve`] resolved through the plan's loopback guard
/// (with the TLS client it built, when a target is `wss://`), speaking its
/// `frames`.
pub(crate) async fn run(
    plan: LoadPlan,
    (targets, tls): (Vec<Endpoint>, Option<TlsClient>),
    frames: Frames,
    origin: Origin,
    mut stop: watch::Receiver<bool>,
    snapshots: mpsc::UnboundedSender<LoadSnapshot>,
) -> LoadReport {
    raise_open_file_limit();
    let layout = Layout::grouped(
        u64::from(plan.group.count),
        plan.targets.len() as u64,
        u64::from(plan.topics),
        plan.peak_connections(),
        plan.publishers,
        u64::from(plan.subscriptions_per_connection),
    );
    let schedule = Schedule::new(&plan, &layout);
    let publish_end_ns = plan.duration.as_nanos() as u64;
    let drain_ns = plan.drain.as_nanos() as u64;
    let drain_limit_ns = plan.drain_limit().as_nanos() as u64;
    let hard_end_ns = publish_end_ns + drain_limit_ns + HARD_SLACK.as_nanos() as u64;
    // Tells the launcher and every connection that the deadlines moved.
    let (moved_tx, moved_rx) = watch::channel(());
    let stats = Stats::new(layout.publishers(), u64::from(plan.topics));
    let ctx = Arc::new(Ctx {
        pending: targets
            .iter()
            .map(|_| Arc::new(Semaphore::new(MAX_PENDING_CONNECTS_PER_TARGET)))
            .collect(),
        targets,
        connect: ConnectOptions {
            tls,
            subprotocol: frames.subprotocol().map(str::to_string),
        },
        minter: match &plan.auth {
            Auth::Jwt(jwt) => Some(Minter::new(jwt).expect("checked plan")),
            Auth::None => None,
        },
        frames,
        layout,
        schedule,
        origin,
        stats,
        deadlines: Deadlines::new(
            publish_end_ns,
            publish_end_ns + drain_ns,
            publish_end_ns + drain_limit_ns,
        ),
        plan,
    });
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let pool = Pool::new(pool::threads_for(&ctx.plan, cores), "squall-load");
    let mut launcher = tokio::spawn(launch(ctx.clone(), pool, moved_rx, hard_end_ns));
    let mut collector = Collector::default();
    let mut stopped = *stop.borrow();
    if stopped {
        stop_now(&ctx, &moved_tx);
    }
    // False once the stop sender is gone: nobody can stop the run any more.
    let mut stoppable = true;
    let mut next_tick =
        1_000_000_000u64.max(origin.elapsed_ns().div_ceil(1_000_000_000) * 1_000_000_000);
    // What is due is known in full once publishing is over: the tables are
    // refreshed then too, not only on the next tick.
    let mut refreshed_at_publish_end = false;
    let mut drained = false;
    loop {
        let publish_end = ctx.deadlines.publish_end_ns();
        let drain_check = if drained { None } else { drain_check_ns(&ctx) };
        tokio::select! {
            _ = &mut launcher => break,
            _ = tokio::time::sleep_until(origin.instant_at(next_tick)) => {
                let now = origin.elapsed_ns();
                ctx.stats.due.refresh(&ctx.schedule, now);
                let snap = collector.snapshot(&ctx.stats, now, phase(&ctx, now, stopped), wanted(&ctx, now));
                let _ = snapshots.send(snap);
                next_tick = (now / 1_000_000_000 + 1) * 1_000_000_000;
            }
            _ = tokio::time::sleep_until(origin.instant_at(publish_end)), if !refreshed_at_publish_end => {
                refreshed_at_publish_end = true;
                ctx.stats.due.refresh(&ctx.schedule, origin.elapsed_ns());
            }
            _ = tokio::time::sleep_until(origin.instant_at(drain_check.unwrap_or(0))), if drain_check.is_some() => {
                let now = origin.elapsed_ns();
                if drain_check_ns(&ctx).is_some_and(|at| at <= now) {
                    drained = true;
                    ctx.stats.due.refresh(&ctx.schedule, now);
                    ctx.deadlines.end_at(now);
                    moved_tx.send_replace(());
                }
            }
            changed = stop.changed(), if stoppable && !stopped => {
                if changed.is_err() {
                    stoppable = false;
                    continue;
                }
                if *stop.borrow() {
                    stopped = true;
                    stop_now(&ctx, &moved_tx);
                }
            }
        }
    }
    let stopped_early = *stop.borrow();
    for j in 0..ctx.layout.publishers() {
        let c = ctx.layout.connection_of_publisher(j);
        if ctx.plan.runs_connection(c) && !ctx.stats.has_publisher(j) {
            let scheduled = ctx.schedule.count(j);
            ctx.stats
                .publisher_done(j, PublisherCount { scheduled, sent: 0 });
        }
    }
    let now = origin.elapsed_ns();
    let last = collector.snapshot(&ctx.stats, now, Phase::Done, 0);
    let _ = snapshots.send(last);
    drop(moved_tx);
    let mut report = collector.report(&ctx.stats, now, !stopped_early);
    if matches!(ctx.plan.protocol, Protocol::Nostr(_)) {
        // A Nostr run reports the relay's answers, even when there were none.
        report.nostr.get_or_insert_with(Default::default);
    }
    report
}

/// When the drain may end early: once `drain` has passed since the end of
/// publishing and no delivery has arrived for `drain` (quiet). `None` when
/// the run's end cannot move earlier than it is.
fn drain_check_ns(ctx: &Ctx) -> Option<u64> {
    let drain_end = ctx.deadlines.drain_end_ns();
    let run_end = ctx.deadlines.run_end_ns();
    if run_end <= drain_end {
        return None;
    }
    let quiet = ctx.plan.drain.as_nanos() as u64;
    let at = drain_end.max(ctx.stats.last_delivery_ns() + quiet);
    (at < run_end).then_some(at)
}

/// Ends publishing now and the run after the drain, and says so.
fn stop_now(ctx: &Ctx, moved: &watch::Sender<()>) {
    let drain = ctx.plan.drain.as_nanos() as u64;
    ctx.deadlines.stop_at(ctx.origin.elapsed_ns(), drain);
    moved.send_replace(());
}

/// The phase at `now_ns` (`Done` is only for the last snapshot).
fn phase(ctx: &Ctx, now_ns: u64, stopped: bool) -> Phase {
    if stopped || now_ns >= ctx.deadlines.publish_end_ns() {
        Phase::Drain
    } else if ctx.schedule.ramping(now_ns) {
        Phase::Ramp
    } else {
        Phase::Steady
    }
}

/// Sockets this shard should have open at `now_ns`.
fn wanted(ctx: &Ctx, now_ns: u64) -> u64 {
    ctx.plan
        .shard_share_of(ctx.schedule.wanted_connections(now_ns))
}

/// Opens this shard's connections on schedule, each on its runtime of
/// `pool`, then waits for them all, at most until the hard deadline
/// (then aborts the rest, counted `abandoned`). Every connection gets a
/// clone of `moved`, which says when the deadlines moved. The pool ends
/// with it, when every connection has.
async fn launch(ctx: Arc<Ctx>, pool: Pool, mut moved: watch::Receiver<()>, hard_end_ns: u64) {
    let mut tasks = JoinSet::new();
    let mut listening = true;
    for c in ctx.plan.shard_connections() {
        let Some(open_ns) = ctx.schedule.open_ns(c) else {
            break;
        };
        let pending = &ctx.pending[ctx.layout.target_of(c)];
        let wait = tokio::time::sleep_until(ctx.origin.instant_at(open_ns));
        tokio::pin!(wait);
        // Wait for the connection's time and a free slot, but never past the
        // end of publishing: a target that does not answer must not keep the
        // launcher (and the run) going.
        let permit = loop {
            let publish_end = ctx.deadlines.publish_end_ns();
            if open_ns >= publish_end || ctx.origin.elapsed_ns() >= publish_end {
                break None;
            }
            tokio::select! {
                permit = pending.clone().acquire_owned(), if wait.is_elapsed() => {
                    break permit.ok();
                }
                _ = &mut wait, if !wait.is_elapsed() => {}
                _ = tokio::time::sleep_until(ctx.origin.instant_at(publish_end)) => {}
                changed = moved.changed(), if listening => {
                    listening = changed.is_ok();
                }
            }
        };
        let Some(permit) = permit else { break };
        let close_ns = ctx.schedule.close_ns(c, open_ns);
        let mut wake = moved.clone();
        wake.mark_unchanged();
        tasks.spawn_on(
            connection::run(ctx.clone(), c, close_ns, permit, wake),
            pool.handle(c),
        );
    }
    let close_ns = ctx.plan.timeouts.close.as_nanos() as u64;
    loop {
        let end = (ctx.deadlines.run_end_ns() + close_ns + 1_000_000_000).min(hard_end_ns);
        tokio::select! {
            joined = tasks.join_next() => {
                if joined.is_none() {
                    return;
                }
            }
            _ = tokio::time::sleep_until(ctx.origin.instant_at(end)) => break,
            changed = moved.changed(), if listening => {
                listening = changed.is_ok();
            }
        }
    }
    let abandoned = tasks.len() as u64;
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    if abandoned > 0 {
        ctx.stats.with_connections(|s| {
            *s.errors.entry("abandoned".to_string()).or_default() += abandoned;
        });
    }
}
