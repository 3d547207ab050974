//! One connection's life, in one task: connect, subscribe, publish on
//! schedule, receive, close, hand in its accounting; and, when the target
//! ends its socket, count the drop, keep owing, and reconnect if the plan
//! says so.
//!
//! The task waits on three things at once: the next frame, the next timer
//! (a message due, the subscription's acknowledgement deadline, the next
//! update of its share of `due` and `overdue`, the planned end) and a change
//! of the run's deadlines (Ctrl-C, the end of the drain). Sends happen
//! between waits, each batch under the send timeout; reading keeps answering
//! the server's pings (tungstenite queues the pong and flushes it on the
//! next read).
//!
//! A socket that the target ends (a close frame, a reset, an end of stream,
//! a broken frame) is counted in `connections.dropped` by cause, and the
//! task goes on without it: its subscriptions keep their duty (what was sent
//! after the drop is owed and, not arriving, lost), its share of `due` and
//! `overdue` keeps growing, and with [`crate::LoadPlan::reconnect`] it
//! connects again after a jittered backoff, subscribes again and carries on
//! (its publisher sends what fell due meanwhile). It hands in at the end of
//! the run like any other.

use crate::connect::{self, SocketError};
use crate::engine::Ctx;
use crate::frames::{Acknowledgement, Control, Outgoing};
use crate::nostr::EventId;
use crate::nostr::ahead::SIGN_AHEAD;
use crate::nostr::session::{Outcome, Session};
use crate::plan::{Auth, Reconnect, Transport};
use crate::receive::{Inbox, Progress};
use crate::report::PublisherCount;
use crate::script;
use crate::socket::{Broken, Incoming, Socket, SseOpen, SseSocket};
use crate::stamp::Stamp;
use crate::template::fill;
use rand::RngExt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, watch};

/// Most messages sent in one go when behind schedule, before reading again;
/// also the most frames read in one go before looking at the clock again.
const MAX_BATCH: usize = 64;

/// Own messages owed before a publisher that got none of them back counts
/// as evidence that the target does not echo to the sender.
const MIN_ECHO_EVIDENCE: u64 = 10;

/// During publishing, a connection notes the time of its deliveries for
/// the drain's quiet test at most this often (in the drain, every time).
const NOTE_DELIVERY_NS: u64 = 10_000_000;

const SECOND_NS: u64 = 1_000_000_000;

/// A connection updates its share of `due` and `overdue` once a second, at
/// one of [`PROGRESS_MOMENTS`] moments after the whole second (connection
/// `c` at moment `c % PROGRESS_MOMENTS`): [`PROGRESS_FIRST_NS`],
/// [`PROGRESS_STEP_NS`] later, and so on.
const PROGRESS_MOMENTS: u64 = 4;
/// The first of those moments, after the engine's refresh of the due table.
const PROGRESS_FIRST_NS: u64 = 100_000_000;
/// The time between two of those moments.
const PROGRESS_STEP_NS: u64 = 200_000_000;

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// At the end of the run (drain over): its subscriptions count for loss.
    Completed,
    /// Earlier, as planned (the wanted connection count fell): excluded.
    Planned,
    /// Earlier, because squall gave up on it (a send timeout; counted in
    /// `errors`): excluded, unless the target had dropped it before.
    Stopped,
    /// Never established (counted in `failed` and `errors`).
    Failed,
    /// The target ended it (counted in `dropped`) and it did not come back
    /// (or, mid-run, before a reconnect): it still owes.
    Dropped,
}

/// The subscription's acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ack {
    /// Nothing to subscribe to.
    NotNeeded,
    /// Subscribe sent; waiting for `remaining` acknowledgements until the deadline.
    Waiting { deadline_ns: u64, remaining: usize },
    /// Acknowledged: the inbox tracks the topics.
    Done,
    /// Did not come in time (counted); may still come.
    TimedOut,
}

/// Most Nostr events signed ahead in one go before the task yields.
const MAX_SIGN_BATCH: usize = 64;

/// The publishing side of a connection.
struct Publisher {
    j: u64,
    topic: u64,
    template: Outgoing,
    next_seq: u64,
    sent: u64,
}

/// What a wait ended with.
enum Event<'a> {
    Incoming(Incoming<'a>),
    Timer,
    Deadlines,
}

/// Runs connection `c` from its opening to its end. `close_ns` is its
/// planned close, if the plan wants it gone before the end of the run.
/// `wake` changes when the run's deadlines move.
pub(crate) async fn run(
    ctx: Arc<Ctx>,
    c: u64,
    close_ns: Option<u64>,
    permit: OwnedSemaphorePermit,
    wake: watch::Receiver<()>,
) {
    let publisher = ctx.layout.publisher_of_connection(c).map(|j| {
        let topic = ctx.layout.topic_of_publisher(j);
        Publisher {
            j,
            topic,
            template: ctx.frames.publish(c, j, topic),
            next_seq: 0,
            sent: 0,
        }
    });
    let publisher_keys = publisher.as_ref().and_then(|p| match &p.template {
        Outgoing::Nostr(ahead) => Some(ahead.keys()),
        Outgoing::Text(_) => None,
    });
    let relay_url = &ctx.plan.targets[ctx.layout.target_of(c)];
    let nostr = ctx.frames.nostr_session(c, relay_url, publisher_keys);
    let mut conn = Conn {
        ctx: &ctx,
        c,
        close_ns,
        wake,
        wake_open: true,
        inbox: Inbox::default(),
        ack: Ack::NotNeeded,
        duty_started: false,
        listed: false,
        dropped_ns: None,
        ever_dropped: false,
        reported: Progress::default(),
        next_progress_ns: 0,
        noted_ns: 0,
        replies: Vec::new(),
        publisher,
        nostr,
    };
    // The first messages (one batch) are signed before the socket opens:
    // the first may be due as soon as it does. The serve loop signs the rest.
    conn.sign_ahead(conn.now_ns());
    // The rare, large futures (opening, reconnecting, closing, a publish
    // batch, replies) are boxed, so that the task every socket keeps for
    // its life holds only its small, frequent state.
    let mut attempt = Box::pin(conn.open(permit)).await;
    let end = loop {
        let end = match attempt {
            Ok(ws) => conn.live(ws).await,
            Err(end) => end,
        };
        if end != End::Dropped {
            break end;
        }
        match Box::pin(conn.reconnect()).await {
            Some(again) => attempt = again,
            None => break Box::pin(conn.stay_down()).await,
        }
    };
    conn.hand_in(end);
}

struct Conn<'a> {
    ctx: &'a Ctx,
    c: u64,
    close_ns: Option<u64>,
    /// Changes when the run's deadlines move.
    wake: watch::Receiver<()>,
    /// False once the engine dropped the sending half (nothing moves any more).
    wake_open: bool,
    inbox: Inbox,
    ack: Ack,
    /// Whether the subscriptions' duty has started (first acknowledgement).
    duty_started: bool,
    /// Whether it counts now among its topics' acknowledged subscribers.
    listed: bool,
    /// When the target ended its socket, until it is back (acknowledged).
    dropped_ns: Option<u64>,
    /// Whether the target ever ended its socket.
    ever_dropped: bool,
    /// Its share of `due` and `overdue` as last added to the tally.
    reported: Progress,
    /// When to update that share next.
    next_progress_ns: u64,
    /// When it last noted a delivery for the drain's quiet test.
    noted_ns: u64,
    /// Frames to send back before waiting again (keepalive answers).
    replies: Vec<String>,
    publisher: Option<Publisher>,
    /// Nostr only: the subscriptions' `EOSE`s, the publishes awaiting
    /// their `OK`, the answers to `AUTH`.
    nostr: Option<Session>,
}

impl Conn<'_> {
    /// Hands in the publisher's count and the subscriptions' pairs.
    fn hand_in(&mut self, end: End) {
        let ctx = self.ctx;
        if let Some(p) = &self.publisher {
            let scheduled = ctx.schedule.count(p.j);
            ctx.stats.publisher_done(
                p.j,
                PublisherCount {
                    scheduled,
                    sent: p.sent,
                },
            );
        }
        if !self.inbox.is_tracking() {
            return;
        }
        // A socket the target ended still owes; one squall ended does not.
        let counted = match end {
            End::Completed | End::Dropped => true,
            End::Stopped | End::Failed => self.ever_dropped,
            End::Planned => false,
        };
        if counted {
            self.update_progress(self.now_ns());
        } else {
            self.report_progress(Progress::default());
        }
        let own = self.publisher.as_ref().map(|p| (p.j, p.sent));
        let is_own = |j: u64| own.is_some_and(|(o, _)| o == j);
        let heard_others = self
            .inbox
            .pairs(&ctx.layout)
            .any(|(j, t)| !is_own(j) && t.distinct() > 0);
        let mut echo_absent = false;
        let pairs: Vec<(u64, u64, u64)> = self
            .inbox
            .pairs(&ctx.layout)
            .map(|(j, t)| (j, t.from(), t.distinct()))
            .filter(|&(j, from, _)| from < ctx.schedule.count(j))
            .filter(|&(j, from, distinct)| {
                // Not one of its own messages back, many sent since the duty
                // began, others heard: the target does not echo to the sender.
                let silent_self = is_own(j)
                    && distinct == 0
                    && heard_others
                    && own.is_some_and(|(_, sent)| sent.saturating_sub(from) >= MIN_ECHO_EVIDENCE);
                echo_absent |= silent_self;
                !silent_self
            })
            .collect();
        ctx.stats.subscriber_done(pairs, counted, echo_absent);
    }

    fn now_ns(&self) -> u64 {
        self.ctx.origin.elapsed_ns()
    }

    /// The end of this connection: its planned close or the end of the run.
    fn end_ns(&self) -> u64 {
        let run_end = self.ctx.deadlines.run_end_ns();
        self.close_ns.map_or(run_end, |c| c.min(run_end))
    }

    /// The last moment a dropped socket may reconnect: the end of the drain
    /// (a relay does not replay what a socket missed) or its planned close.
    fn reconnect_end_ns(&self) -> u64 {
        self.end_ns().min(self.ctx.deadlines.drain_end_ns())
    }

    /// Completes when the run's deadlines move (never, once nothing can
    /// move them any more).
    async fn moved(wake: &mut watch::Receiver<()>, open: &mut bool) {
        if *open && wake.changed().await.is_ok() {
            return;
        }
        *open = false;
        std::future::pending::<()>().await;
    }

    /// Runs `fut` until it completes or `until(self)` passes (`None`),
    /// rereading the limit whenever the deadlines move.
    async fn bounded<F: Future>(&mut self, fut: F, until: fn(&Self) -> u64) -> Option<F::Output> {
        tokio::pin!(fut);
        loop {
            let until_ns = until(self);
            if self.now_ns() >= until_ns {
                return None;
            }
            tokio::select! {
                out = &mut fut => return Some(out),
                _ = tokio::time::sleep_until(self.ctx.origin.instant_at(until_ns)) => {}
                _ = Self::moved(&mut self.wake, &mut self.wake_open) => {}
            }
        }
    }

    /// Waits without a socket until `at_ns` or the connection's end,
    /// keeping its share of `due` and `overdue` up to date.
    async fn wait_until(&mut self, at_ns: u64) {
        loop {
            let now = self.now_ns();
            if now >= self.next_progress_ns {
                self.update_progress(now);
            }
            let until = at_ns.min(self.end_ns());
            if now >= until {
                return;
            }
            let wake = if self.inbox.is_tracking() {
                until.min(self.next_progress_ns)
            } else {
                until
            };
            tokio::select! {
                _ = tokio::time::sleep_until(self.ctx.origin.instant_at(wake)) => {}
                _ = Self::moved(&mut self.wake, &mut self.wake_open) => {}
            }
        }
    }

    /// A socket the target dropped and that does not come back: waits for
    /// the end of the run (or its planned close), still owing.
    async fn stay_down(&mut self) -> End {
        self.wait_until(u64::MAX).await;
        if self.end_ns() < self.ctx.deadlines.run_end_ns() {
            End::Planned
        } else {
            End::Dropped
        }
    }

    /// Counts a socket the target ended, by `cause`; the subscriptions keep
    /// their duty.
    fn dropped_by_target(&mut self, cause: &str) -> End {
        self.ctx.stats.dropped(cause);
        self.ever_dropped = true;
        self.dropped_ns = Some(self.now_ns());
        End::Dropped
    }

    /// Takes its subscriptions off (`false`) or puts them on its topics'
    /// count of acknowledged subscribers.
    fn list(&mut self, on: bool) {
        if self.listed != on {
            self.listed = on;
            let topics = self.ctx.layout.subscriptions_of(self.c);
            self.ctx.stats.subscribed(&topics, on);
        }
    }

    /// Opens the socket and subscribes: the first time, counted in
    /// `attempted`, `established`, `failed` and the handshake latencies
    /// (the whole opening, and its TLS handshake).
    async fn open(&mut self, permit: OwnedSemaphorePermit) -> Result<Socket, End> {
        let ctx = self.ctx;
        ctx.stats.with_connections(|s| s.attempted += 1);
        let start = self.now_ns();
        let result = self.dial(permit, self.end_ns()).await;
        let (mut ws, tls_handshake) = match result {
            Ok(opened) => opened,
            Err(kind) => {
                ctx.stats.with_connections(|s| {
                    s.failed += 1;
                    *s.errors.entry(kind).or_default() += 1;
                });
                return Err(End::Failed);
            }
        };
        let took_us = (self.now_ns() - start) / 1000;
        ctx.stats.with_connections(|s| {
            s.established += 1;
            s.handshake.record_us(took_us);
            if let Some(tls) = tls_handshake {
                s.tls_handshake.record_us(tls.as_micros() as u64);
            }
        });
        ctx.stats.set_open(true);
        match self.subscribe(&mut ws).await {
            Ok(()) => Ok(ws),
            Err(end) => {
                ctx.stats.set_open(false);
                Err(end)
            }
        }
    }

    /// After a drop: waits a jittered backoff and connects again, until it
    /// is back or may no longer try (`None`: no reconnect planned, or the
    /// drain is over). Failed attempts count as `reconnect_<kind>`.
    async fn reconnect(&mut self) -> Option<Result<Socket, End>> {
        let policy = self.ctx.plan.reconnect.clone()?;
        for attempt in 0u32.. {
            let at = self.now_ns() + backoff(&policy, attempt).as_nanos() as u64;
            self.wait_until(at).await;
            if self.now_ns() >= self.reconnect_end_ns() {
                return None;
            }
            let pending = self.ctx.pending[self.ctx.layout.target_of(self.c)].clone();
            let permit = self
                .bounded(pending.acquire_owned(), Self::reconnect_end_ns)
                .await?
                .ok()?;
            let until = self.reconnect_end_ns();
            let dialed = self.bounded(self.dial(permit, until), Self::reconnect_end_ns);
            match dialed.await {
                None => return None,
                Some(Ok((mut ws, _))) => {
                    self.ctx.stats.set_open(true);
                    return Some(match self.subscribe(&mut ws).await {
                        Ok(()) => Ok(ws),
                        Err(end) => {
                            self.ctx.stats.set_open(false);
                            Err(end)
                        }
                    });
                }
                Some(Err(kind)) => {
                    self.ctx.stats.error(&format!("reconnect_{kind}"));
                }
            }
        }
        None
    }

    /// Mints the token and connects under the connect timeout, at most
    /// until `until_ns`: over WebSocket, TCP, TLS and the upgrade, then the
    /// script's connect-time steps (each under its own timeout); over SSE,
    /// every stream up to its `200`. The socket and its TLS handshake's
    /// time, or the error kind if it failed. The future does not borrow the
    /// connection.
    fn dial(
        &self,
        permit: OwnedSemaphorePermit,
        until_ns: u64,
    ) -> impl Future<Output = Result<(Socket, Option<Duration>), String>> + use<> {
        let ctx = self.ctx;
        let plan = &ctx.plan;
        let token = match (&plan.auth, &ctx.minter) {
            (Auth::Jwt(jwt), Some(minter)) => minter
                .mint(self.c)
                .map(|token| Some((token, jwt.placement)))
                .map_err(|_| "jwt".to_string()),
            _ => Ok(None),
        };
        let target = ctx.targets[ctx.layout.target_of(self.c)].clone();
        let options = ctx.connect.clone();
        let source = self.source_addr();
        let limit =
            Duration::from_nanos(until_ns.saturating_sub(self.now_ns())).min(plan.timeouts.connect);
        let script = ctx.frames.script().cloned();
        let (c, send_timeout) = (self.c, plan.timeouts.send);
        let sse = match &plan.transport {
            Transport::Websocket => None,
            Transport::Sse(sse) => Some((
                self.stream_paths(target.path()),
                self.publisher.as_ref().map(|p| {
                    let topic = ctx.frames.topic_name(p.topic);
                    (fill(&sse.publish_path, &topic, c), sse.content_type.clone())
                }),
            )),
        };
        async move {
            let token = token?;
            let token = token.as_ref().map(|(t, p)| (t.as_str(), *p));
            if let Some((streams, publish)) = sse {
                let open = SseSocket::open(SseOpen {
                    target: &target,
                    source,
                    tls: options.tls.as_ref(),
                    token,
                    streams,
                    publish: publish
                        .as_ref()
                        .map(|(path, ct)| (path.clone(), ct.as_str())),
                });
                let result = tokio::time::timeout(limit, open).await;
                drop(permit);
                return match result {
                    Ok(Ok((socket, tls_handshake))) => {
                        Ok((Socket::Sse(Box::new(socket)), tls_handshake))
                    }
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(SocketError::Timeout.to_string()),
                };
            }
            let result = connect::connect(&target, source, token, limit, &options).await;
            drop(permit);
            let mut opened = result.map_err(|e| e.to_string())?;
            if let Some(script) = script {
                script::greet(&mut opened.socket, &script, c, send_timeout)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok((Socket::ws(opened.socket), opened.tls_handshake))
        }
    }

    /// The paths of the SSE streams of this connection, from the target's
    /// `path` with its placeholders: one per subscribed topic when it holds
    /// `{topic}`, else one (with `{topics}` the names comma-joined); none
    /// for a connection without subscriptions.
    fn stream_paths(&self, path: &str) -> Vec<String> {
        let frames = &self.ctx.frames;
        let topics = self.ctx.layout.subscriptions_of(self.c);
        if topics.is_empty() {
            Vec::new()
        } else if path.contains("{topic}") {
            topics
                .iter()
                .map(|&k| fill(path, &frames.topic_name(k), self.c))
                .collect()
        } else {
            let names: Vec<String> = topics.iter().map(|&k| frames.topic_name(k)).collect();
            vec![fill(
                &path.replace("{topics}", &names.join(",")),
                "",
                self.c,
            )]
        }
    }

    /// The local address to connect from: the default for the first
    /// `sockets_per_source` connections of the run (all targets together:
    /// they share the source address's ephemeral ports), then the extra ones
    /// in turn (for a `127.x` target without any given: 127.0.0.2, ...).
    fn source_addr(&self) -> Option<IpAddr> {
        let plan = &self.ctx.plan;
        let index = (self.c / plan.sockets_per_source) as usize;
        if index == 0 {
            return None;
        }
        if !plan.source_addrs.is_empty() {
            return Some(plan.source_addrs[(index - 1) % plan.source_addrs.len()]);
        }
        let target = self.ctx.targets[self.ctx.layout.target_of(self.c)].addr;
        match target.ip() {
            IpAddr::V4(ip) if ip.is_loopback() => {
                let last = 2 + (index - 1) % 253; // 127.0.0.2 ..= 127.0.0.254
                Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last as u8)))
            }
            _ => None,
        }
    }

    /// Sends the subscribe frames (the first time, or again after a
    /// reconnect); the end (counted) if that failed.
    async fn subscribe(&mut self, ws: &mut Socket) -> Result<(), End> {
        let topics = self.ctx.layout.subscriptions_of(self.c);
        if topics.is_empty() {
            self.back(self.now_ns());
            return Ok(());
        }
        let frames = self.ctx.frames.subscribe(self.c, &topics);
        if let Some(session) = &mut self.nostr {
            session.subscribing(&frames);
        }
        let count = frames.len();
        self.send_all(ws, frames).await?;
        let now = self.now_ns();
        if !self.inbox.is_tracking() {
            for &topic in &topics {
                self.inbox.track(topic, &self.ctx.layout);
            }
        }
        match self.ctx.frames.acknowledgement(count) {
            Acknowledgement::Replies(remaining) => {
                let wait = self.ctx.plan.timeouts.subscribe_ack.as_nanos() as u64;
                self.ack = Ack::Waiting {
                    deadline_ns: now + wait,
                    remaining,
                };
            }
            Acknowledgement::Settle(settle) => {
                self.acknowledged(now + settle.as_nanos() as u64);
            }
        }
        Ok(())
    }

    /// The subscriptions count from `ack_ns` on: the first time, each pair's
    /// duty starts (a connection's own messages are owed to it only if the
    /// target echoes to the sender, `plan.echo`); after a reconnect, the
    /// duty goes on from where it started.
    fn acknowledged(&mut self, ack_ns: u64) {
        if !self.duty_started {
            let schedule = &self.ctx.schedule;
            let own = self
                .publisher
                .as_ref()
                .filter(|_| !self.ctx.plan.echo)
                .map(|p| p.j);
            self.inbox.acknowledge(&self.ctx.layout, |j| {
                if Some(j) == own {
                    u64::MAX
                } else {
                    schedule.first_after(j, ack_ns)
                }
            });
            self.duty_started = true;
        }
        self.ack = Ack::Done;
        self.list(true);
        self.back(ack_ns);
    }

    /// The socket is back (acknowledged again) at `at_ns` after a drop:
    /// counted in `reconnects`, with the time since the drop.
    fn back(&mut self, at_ns: u64) {
        if let Some(dropped) = self.dropped_ns.take() {
            let us = at_ns.saturating_sub(dropped) / 1000;
            self.ctx.stats.with_connections(|s| {
                s.reconnects += 1;
                s.reconnect.record_us(us);
            });
        }
    }

    /// Updates its share of `due` and `overdue` from the publishers' table.
    fn update_progress(&mut self, now_ns: u64) {
        // After the engine's refresh on the whole second, before the next
        // snapshot: at one of a few fixed moments, so that the timers of
        // all connections fire together rather than one wake-up each.
        let offset = PROGRESS_FIRST_NS + (self.c % PROGRESS_MOMENTS) * PROGRESS_STEP_NS;
        let mut next = now_ns / SECOND_NS * SECOND_NS + offset;
        if next <= now_ns {
            next += SECOND_NS;
        }
        self.next_progress_ns = next;
        if !self.inbox.is_tracking() {
            return;
        }
        let due = &self.ctx.stats.due;
        let progress = self
            .inbox
            .progress(&self.ctx.layout, now_ns, |j, n| due.limits(j, n));
        self.report_progress(progress);
    }

    /// Adds the change of its share to its stripe.
    fn report_progress(&mut self, now: Progress) {
        let was = self.reported;
        if now != was {
            self.ctx.stats.with_tally(self.c, |tally| {
                tally.due += now.due as i64 - was.due as i64;
                tally.overdue += now.overdue as i64 - was.overdue as i64;
            });
            self.reported = now;
        }
    }

    /// When the next message of this connection is due, if it still publishes.
    fn next_due_ns(&self) -> Option<u64> {
        let p = self.publisher.as_ref()?;
        let due = self.ctx.schedule.due_ns(p.j, p.next_seq)?;
        (due < self.ctx.deadlines.publish_end_ns()).then_some(due)
    }

    /// Signs the publisher's Nostr events that are due within
    /// [`SIGN_AHEAD`] of `now_ns`, at most [`MAX_SIGN_BATCH`] of them; true
    /// when it stopped at that bound with more to sign.
    fn sign_ahead(&mut self, now_ns: u64) -> bool {
        let ctx = self.ctx;
        let Some(p) = self.publisher.as_mut() else {
            return false;
        };
        let Outgoing::Nostr(ahead) = &mut p.template else {
            return false;
        };
        let horizon = now_ns.saturating_add(SIGN_AHEAD.as_nanos() as u64);
        let publish_end = ctx.deadlines.publish_end_ns();
        for _ in 0..MAX_SIGN_BATCH {
            let seq = ahead.next();
            match ctx.schedule.due_ns(p.j, seq) {
                Some(due) if due <= horizon && due < publish_end => ahead.sign(Stamp {
                    publisher: p.j,
                    seq,
                    scheduled_ns: due,
                }),
                _ => return false,
            }
        }
        true
    }

    /// When the publisher's next unsigned Nostr event comes within
    /// [`SIGN_AHEAD`] of its due time (Nostr publishers only).
    fn next_sign_ns(&self) -> Option<u64> {
        let p = self.publisher.as_ref()?;
        let Outgoing::Nostr(ahead) = &p.template else {
            return None;
        };
        let due = self.ctx.schedule.due_ns(p.j, ahead.next())?;
        (due < self.ctx.deadlines.publish_end_ns())
            .then(|| due.saturating_sub(SIGN_AHEAD.as_nanos() as u64))
    }

    /// Publishes, receives and waits until the end; then closes.
    async fn live(&mut self, mut ws: Socket) -> End {
        let end = self.serve(&mut ws).await;
        // Publishes of this socket still without an `OK` will get none.
        let (ctx, c) = (self.ctx, self.c);
        if let Some(session) = &mut self.nostr {
            ctx.stats.with_tally(c, |t| session.finish(t.nostr_mut()));
        }
        if matches!(end, End::Completed | End::Planned) {
            Box::pin(ws.close(self.ctx.plan.timeouts.close)).await;
        }
        self.ctx.stats.set_open(false);
        self.list(false);
        end
    }

    async fn serve(&mut self, ws: &mut Socket) -> End {
        // One timer for the task's life, moved only when the wake time does
        // (arming a timer takes a lock of the runtime's timer wheel).
        let timer = tokio::time::sleep_until(self.ctx.origin.instant_at(self.end_ns()));
        tokio::pin!(timer);
        // Likewise one wait on the deadlines for the socket's life, renewed
        // only when they move (each new wait registers with the watch, a
        // lock shared by every connection). It waits on a clone: the
        // connection's own receiver may see these moves once more later,
        // which only makes a wait there look at the deadlines again.
        let moved = deadlines_moved(self.wake.clone());
        tokio::pin!(moved);
        let mut armed = None;
        loop {
            if !self.replies.is_empty() {
                // The answers the last frames asked for (keepalives).
                let replies = std::mem::take(&mut self.replies);
                if let Err(end) = Box::pin(self.send_all(ws, replies)).await {
                    return end;
                }
            }
            let now = self.now_ns();
            // Over SSE a publisher waits for its last response before the
            // next `POST`: the response wakes the loop, not the timer.
            let due = self.next_due_ns().filter(|_| ws.publish_room() > 0);
            if due.is_some_and(|d| d <= now) {
                // Everything due goes out, even at the planned end: the
                // schedule only holds messages due before it.
                if let Err(e) = Box::pin(self.publish(ws)).await {
                    return match e {
                        None => {
                            self.ctx.stats.error(&SocketError::SendTimeout.to_string());
                            End::Stopped
                        }
                        Some(broken) => {
                            self.ctx.stats.error(&broken.error);
                            self.dropped_by_target(&broken.cause)
                        }
                    };
                }
                continue;
            }
            let end_ns = self.end_ns();
            if now >= end_ns {
                let run_end = self.ctx.deadlines.run_end_ns();
                return if end_ns >= run_end {
                    End::Completed
                } else {
                    End::Planned
                };
            }
            if let Ack::Waiting { deadline_ns, .. } = self.ack
                && now >= deadline_ns
            {
                self.ctx.stats.error("subscribe_timeout");
                self.ack = Ack::TimedOut;
            }
            if now >= self.next_progress_ns {
                self.update_progress(now);
            }
            if self.sign_ahead(now) {
                // More to sign: let other tasks run first.
                tokio::task::yield_now().await;
                continue;
            }
            let mut wake = end_ns;
            if let Some(d) = due {
                wake = wake.min(d);
            }
            if let Some(s) = self.next_sign_ns() {
                wake = wake.min(s);
            }
            if let Ack::Waiting { deadline_ns, .. } = self.ack {
                wake = wake.min(deadline_ns);
            }
            if self.inbox.is_tracking() {
                wake = wake.min(self.next_progress_ns);
            }
            if armed != Some(wake) {
                timer.as_mut().reset(self.ctx.origin.instant_at(wake));
                armed = Some(wake);
            }
            let event = tokio::select! {
                incoming = ws.next() => Event::Incoming(incoming),
                _ = &mut timer => {
                    armed = None;
                    Event::Timer
                }
                wake = &mut moved => {
                    moved.set(deadlines_moved(wake));
                    Event::Deadlines
                }
            };
            match event {
                Event::Incoming(incoming) => {
                    if let Some(end) = self.on_frame(incoming) {
                        return end;
                    }
                    // Take what else is already buffered before waiting again.
                    for _ in 1..MAX_BATCH {
                        match ws.next_now() {
                            Some(incoming) => {
                                if let Some(end) = self.on_frame(incoming) {
                                    return end;
                                }
                            }
                            None => break,
                        }
                    }
                }
                Event::Timer | Event::Deadlines => {}
            }
        }
    }

    /// Handles one read; `Some` when the connection is over (the target
    /// ended it: counted in `errors` and `dropped`).
    fn on_frame(&mut self, incoming: Incoming<'_>) -> Option<End> {
        let now = self.now_ns();
        let bytes: &[u8] = match incoming {
            Incoming::Data(bytes) => bytes,
            Incoming::Nothing => return None,
            Incoming::Error(key) => {
                self.ctx.stats.error(&key);
                return None;
            }
            Incoming::Ended { error, cause } => {
                self.ctx.stats.error(&error);
                return Some(self.dropped_by_target(&cause));
            }
        };
        let late_from = self.ctx.deadlines.drain_end_ns();
        let (inbox, layout) = (&mut self.inbox, &self.ctx.layout);
        // Nostr: only live EVENT frames deliver (not stored events before a
        // subscription's EOSE, not an OK or NOTICE quoting a stamp).
        let stamps = if self.nostr.as_ref().is_none_or(|s| s.is_delivery(bytes)) {
            self.ctx.stats.with_tally(self.c, |tally| {
                inbox.receive_at(bytes, now, late_from, layout, tally)
            })
        } else {
            0
        };
        if stamps > 0 {
            if now >= self.ctx.deadlines.publish_end_ns()
                || now.saturating_sub(self.noted_ns) >= NOTE_DELIVERY_NS
            {
                self.noted_ns = now;
                self.ctx.stats.delivered(now);
            }
            return None;
        }
        let Ok(text) = std::str::from_utf8(bytes) else {
            return None;
        };
        match self.ctx.frames.control(text) {
            Control::Subscribed => self.one_acknowledged(now),
            Control::Error(code) => self.ctx.stats.error(&format!("relay_error_{code}")),
            Control::Reply(frame) => self.replies.push(frame),
            Control::Nostr(message) => {
                let (ctx, c) = (self.ctx, self.c);
                let outcome = match &mut self.nostr {
                    Some(session) => ctx
                        .stats
                        .with_tally(c, |t| session.on_message(message, now, t.nostr_mut())),
                    None => Outcome::Nothing,
                };
                match outcome {
                    Outcome::Subscribed => self.one_acknowledged(now),
                    Outcome::Reply(frames) => self.replies.extend(frames),
                    Outcome::Nothing => {}
                }
            }
            Control::Other => {}
        }
        None
    }

    /// One subscription's acknowledgement arrived at `now`.
    fn one_acknowledged(&mut self, now: u64) {
        match &mut self.ack {
            Ack::Waiting { remaining, .. } if *remaining > 1 => *remaining -= 1,
            // A late acknowledgement still starts the duty (from now on);
            // the timeout it missed stays counted.
            Ack::Waiting { .. } | Ack::TimedOut => self.acknowledged(now),
            Ack::NotNeeded | Ack::Done => {}
        }
    }

    /// Sends `frames` under the send timeout; the end of the connection
    /// (counted) if that failed.
    async fn send_all(&mut self, ws: &mut Socket, frames: Vec<String>) -> Result<(), End> {
        let sent = tokio::time::timeout(self.ctx.plan.timeouts.send, async {
            for frame in frames {
                ws.feed(frame).await?;
            }
            ws.flush().await
        })
        .await;
        match sent {
            Ok(Ok(())) => Ok(()),
            Ok(Err(broken)) => {
                self.ctx.stats.error(&broken.error);
                Err(self.dropped_by_target(&broken.cause))
            }
            Err(_) => {
                self.ctx.stats.error(&SocketError::SendTimeout.to_string());
                Err(End::Stopped)
            }
        }
    }

    /// Sends every message due now (at most [`MAX_BATCH`], and what the
    /// socket has room for), under the send timeout: `Err(None)` when that
    /// passed, `Err(Some(broken))` when the socket failed.
    async fn publish(&mut self, ws: &mut Socket) -> Result<(), Option<Broken>> {
        let ctx = self.ctx;
        let publish_end = self.ctx.deadlines.publish_end_ns();
        let Some(p) = self.publisher.as_mut() else {
            return Ok(());
        };
        let nostr = &mut self.nostr;
        let mut lags = [0u64; MAX_BATCH];
        // Nostr: each event's id and scheduled time, to match its `OK`.
        let mut events = [(EventId([0; 32]), 0u64); MAX_BATCH];
        let mut signed_late = 0;
        let mut batch = 0;
        let room = MAX_BATCH.min(ws.publish_room());
        let result = tokio::time::timeout(ctx.plan.timeouts.send, async {
            while batch < room {
                let now = ctx.origin.elapsed_ns();
                let Some(due) = ctx.schedule.due_ns(p.j, p.next_seq) else {
                    break;
                };
                if due > now || due >= publish_end {
                    break;
                }
                let stamp = Stamp {
                    publisher: p.j,
                    seq: p.next_seq,
                    scheduled_ns: due,
                };
                let frame = match &mut p.template {
                    Outgoing::Text(template) => template.frame(stamp, p.next_seq),
                    Outgoing::Nostr(ahead) => {
                        let ready = ahead.take(p.next_seq).unwrap_or_else(|| {
                            // Signing ahead fell behind: sign now, counted.
                            signed_late += 1;
                            ahead.sign(stamp);
                            ahead.take(stamp.seq).expect("just signed")
                        });
                        events[batch] = (ready.id, due);
                        ready.frame
                    }
                };
                ws.feed(frame).await?;
                lags[batch] = (now - due) / 1000;
                batch += 1;
                p.next_seq += 1;
                p.sent += 1;
            }
            ws.flush().await
        })
        .await;
        ctx.stats.with_tally(self.c, |tally| {
            tally.sent += batch as u64;
            if let Some(topic) = tally.topic(p.topic) {
                topic.sent += batch as u64;
            }
            for &lag in &lags[..batch] {
                if tally.send_lag.record_us(lag) {
                    tally.clamped += 1;
                }
            }
            if let Some(session) = nostr {
                let stats = tally.nostr_mut();
                stats.signed_late += signed_late;
                for &(id, due) in &events[..batch] {
                    session.published(id, due, stats);
                }
            }
        });
        ctx.stats.due.sent(p.j, p.sent);
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Some(e)),
            Err(_) => Err(None),
        }
    }
}

/// Completes when the run's deadlines move, handing back the receiver
/// (never, once nothing can move them any more).
async fn deadlines_moved(mut wake: watch::Receiver<()>) -> watch::Receiver<()> {
    if wake.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
    wake
}

/// The wait before reconnect attempt `attempt` (0 for the first): a random
/// time between half and all of `min(max, initial * 2^attempt)`, so that
/// sockets dropped together do not all come back at once.
fn backoff(policy: &Reconnect, attempt: u32) -> Duration {
    let full = policy
        .initial
        .saturating_mul(1u32 << attempt.min(20))
        .min(policy.max);
    rand::rng().random_range(full / 2..=full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_max_with_jitter() {
        let policy = Reconnect {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        for _ in 0..100 {
            let first = backoff(&policy, 0);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let third = backoff(&policy, 2);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
            let late = backoff(&policy, 40);
            assert!(late >= Duration::from_millis(500) && late <= Duration::from_secs(1));
        }
    }
}
