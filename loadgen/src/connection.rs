//! One connection's life, in one task: connect, subscribe, publish on
//! schedule, receive, close, hand in its accounting.
//!
//! The task waits on three things at once: the next frame, the next timer
//! (a message due, the subscription's acknowledgement deadline, the planned
//! end) and a change of the run's deadlines (Ctrl-C). Sends happen between
//! waits, each batch under the send timeout; reading keeps answering the
//! server's pings (tungstenite queues the pong and flushes it on the next read).

use crate::connect::{self, Socket, SocketError};
use crate::engine::Ctx;
use crate::frames::{Control, PublishTemplate};
use crate::plan::{Auth, Protocol};
use crate::receive::Inbox;
use crate::report::PublisherCount;
use crate::stamp::Stamp;
use futures_util::{FutureExt, SinkExt, StreamExt};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

/// Most messages sent in one go when behind schedule, before reading again;
/// also the most frames read in one go before looking at the clock again.
const MAX_BATCH: usize = 64;

/// Own messages owed before a publisher that got none of them back counts
/// as evidence that the target does not echo to the sender.
const MIN_ECHO_EVIDENCE: u64 = 10;

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// At the end of the run (drain over): its subscriptions count for loss.
    Completed,
    /// Earlier, as planned (the wanted connection count fell).
    Planned,
    /// Earlier, because something went wrong (counted in `errors`).
    Abnormal,
}

/// The subscription's acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ack {
    /// Nothing to subscribe to.
    NotNeeded,
    /// Subscribe sent; waiting for the `subscribed` Status until the deadline.
    Waiting { deadline_ns: u64 },
    /// Acknowledged: the inbox tracks the topics.
    Done,
    /// Did not come in time (counted); may still come.
    TimedOut,
}

/// The publishing side of a connection.
struct Publisher {
    j: u64,
    template: PublishTemplate,
    next_seq: u64,
    sent: u64,
}

/// What a wait ended with.
enum Event {
    Frame(Option<Result<Message, tokio_tungstenite::tungstenite::Error>>),
    Timer,
    Deadlines,
}

/// Runs connection `c` from its opening to its end. `close_ns` is its
/// planned close, if the plan wants it gone before the end of the run.
/// `wake` completes (its sender dropped) when the run's deadlines move.
pub(crate) async fn run(
    ctx: Arc<Ctx>,
    c: u64,
    close_ns: Option<u64>,
    permit: OwnedSemaphorePermit,
    wake: oneshot::Receiver<()>,
) {
    let publisher = ctx.layout.publisher_of_connection(c).map(|j| Publisher {
        j,
        template: ctx.frames.publish(c, ctx.layout.topic_of_publisher(j)),
        next_seq: 0,
        sent: 0,
    });
    let mut conn = Conn {
        ctx: &ctx,
        c,
        close_ns,
        wake: Some(wake),
        inbox: Inbox::default(),
        ack: Ack::NotNeeded,
        publisher,
    };
    let end = match conn.open(permit).await {
        Some(ws) => conn.live(ws).await,
        None => End::Abnormal,
    };
    conn.hand_in(end);
}

struct Conn<'a> {
    ctx: &'a Ctx,
    c: u64,
    close_ns: Option<u64>,
    /// Completes when the run's deadlines move; `None` once it has.
    wake: Option<oneshot::Receiver<()>>,
    inbox: Inbox,
    ack: Ack,
    publisher: Option<Publisher>,
}

impl Conn<'_> {
    /// Hands in the publisher's count and the subscriptions' pairs.
    fn hand_in(&self, end: End) {
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
        ctx.stats
            .subscriber_done(pairs, end == End::Completed, echo_absent);
    }

    fn now_ns(&self) -> u64 {
        self.ctx.origin.elapsed_ns()
    }

    /// The end of this connection: its planned close or the end of the run.
    fn end_ns(&self) -> u64 {
        let run_end = self.ctx.deadlines.run_end_ns();
        self.close_ns.map_or(run_end, |c| c.min(run_end))
    }

    /// Connects and subscribes; `None` (counted) if it failed.
    async fn open(&mut self, permit: OwnedSemaphorePermit) -> Option<Socket> {
        let ctx = self.ctx;
        let plan = &ctx.plan;
        ctx.stats.with_connections(|s| s.attempted += 1);
        let token = match (&plan.auth, &ctx.minter) {
            (Auth::Jwt(jwt), Some(minter)) => match minter.mint(self.c) {
                Ok(token) => Some((token, jwt.placement)),
                Err(_) => return self.failed("jwt"),
            },
            _ => None,
        };
        let target = &ctx.targets[ctx.layout.target_of(self.c)];
        let source = self.source_addr();
        let start = self.now_ns();
        let limit =
            Duration::from_nanos(self.end_ns().saturating_sub(start)).min(plan.timeouts.connect);
        let result = connect::connect(
            target,
            source,
            token.as_ref().map(|(t, p)| (t.as_str(), *p)),
            limit,
        )
        .await;
        drop(permit);
        let mut ws = match result {
            Ok(ws) => ws,
            Err(e) => return self.failed(&e.to_string()),
        };
        let took_us = (self.now_ns() - start) / 1000;
        ctx.stats.with_connections(|s| {
            s.established += 1;
            s.handshake.record_us(took_us);
        });
        ctx.stats.set_open(true);
        if self.subscribe(&mut ws).await {
            Some(ws)
        } else {
            ctx.stats.set_open(false);
            None
        }
    }

    fn failed(&self, kind: &str) -> Option<Socket> {
        self.ctx.stats.with_connections(|s| {
            s.failed += 1;
            *s.errors.entry(kind.to_string()).or_default() += 1;
        });
        None
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

    /// Sends the subscribe frames; false (counted) if that failed.
    async fn subscribe(&mut self, ws: &mut Socket) -> bool {
        let topics = self.ctx.layout.subscriptions_of(self.c);
        if topics.is_empty() {
            return true;
        }
        let frames = self.ctx.frames.subscribe(self.c, &topics);
        let sent = tokio::time::timeout(self.ctx.plan.timeouts.send, async {
            for frame in frames {
                ws.feed(Message::Text(frame.into())).await?;
            }
            ws.flush().await
        })
        .await;
        match sent {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                self.ctx.stats.error(&connect::ws_kind(&e).to_string());
                return false;
            }
            Err(_) => {
                self.ctx.stats.error("send_timeout");
                return false;
            }
        }
        let now = self.now_ns();
        for &topic in &topics {
            self.inbox.track(topic, &self.ctx.layout);
        }
        match &self.ctx.plan.protocol {
            Protocol::Squall => {
                let wait = self.ctx.plan.timeouts.subscribe_ack.as_nanos() as u64;
                self.ack = Ack::Waiting {
                    deadline_ns: now + wait,
                };
            }
            Protocol::Template { settle, .. } => {
                self.acknowledged(now + settle.as_nanos() as u64);
            }
        }
        true
    }

    /// The subscriptions count from `ack_ns` on. A connection's own messages
    /// are owed to it only if the target echoes to the sender (`plan.echo`).
    fn acknowledged(&mut self, ack_ns: u64) {
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
        self.ack = Ack::Done;
    }

    /// When the next message of this connection is due, if it still publishes.
    fn next_due_ns(&self) -> Option<u64> {
        let p = self.publisher.as_ref()?;
        let due = self.ctx.schedule.due_ns(p.j, p.next_seq)?;
        (due < self.ctx.deadlines.publish_end_ns()).then_some(due)
    }

    /// Publishes, receives and waits until the end; then closes.
    async fn live(&mut self, mut ws: Socket) -> End {
        let end = self.serve(&mut ws).await;
        if end != End::Abnormal {
            let close = CloseFrame {
                code: 1000.into(),
                reason: "squall run over".into(),
            };
            let _ = tokio::time::timeout(self.ctx.plan.timeouts.close, ws.close(Some(close))).await;
        }
        self.ctx.stats.set_open(false);
        end
    }

    async fn serve(&mut self, ws: &mut Socket) -> End {
        // One timer for the task's life, moved only when the wake time does
        // (arming a timer takes a lock of the runtime's timer wheel).
        let timer = tokio::time::sleep_until(self.ctx.origin.instant_at(self.end_ns()));
        tokio::pin!(timer);
        let mut armed = None;
        loop {
            let now = self.now_ns();
            let due = self.next_due_ns();
            if due.is_some_and(|d| d <= now) {
                // Everything due goes out, even at the planned end: the
                // schedule only holds messages due before it.
                if let Err(e) = self.publish(ws).await {
                    self.ctx.stats.error(&e.to_string());
                    return End::Abnormal;
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
            let mut wake = end_ns;
            if let Some(d) = due {
                wake = wake.min(d);
            }
            if let Ack::Waiting { deadline_ns, .. } = self.ack {
                wake = wake.min(deadline_ns);
            }
            if armed != Some(wake) {
                timer.as_mut().reset(self.ctx.origin.instant_at(wake));
                armed = Some(wake);
            }
            let deadlines_moved = async {
                match self.wake.as_mut() {
                    Some(wake) => {
                        let _ = wake.await;
                    }
                    None => std::future::pending().await,
                }
            };
            let event = tokio::select! {
                frame = ws.next() => Event::Frame(frame),
                _ = &mut timer => {
                    armed = None;
                    Event::Timer
                }
                _ = deadlines_moved => {
                    self.wake = None;
                    Event::Deadlines
                }
            };
            match event {
                Event::Frame(frame) => {
                    if let Some(end) = self.on_frame(frame) {
                        return end;
                    }
                    // Take what else is already buffered before waiting again.
                    for _ in 1..MAX_BATCH {
                        match ws.next().now_or_never() {
                            Some(frame) => {
                                if let Some(end) = self.on_frame(frame) {
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

    /// Handles one read; `Some` when the connection is over.
    fn on_frame(
        &mut self,
        frame: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) -> Option<End> {
        let now = self.now_ns();
        let bytes: &[u8] = match &frame {
            Some(Ok(Message::Text(text))) => text.as_bytes(),
            Some(Ok(Message::Binary(bin))) => bin,
            Some(Ok(Message::Close(close))) => {
                let code = close.as_ref().map_or(1005, |f| u16::from(f.code));
                self.ctx.stats.error(&format!("closed_by_server_{code}"));
                return Some(End::Abnormal);
            }
            Some(Ok(_)) => return None,
            Some(Err(e)) => {
                self.ctx.stats.error(&connect::ws_kind(e).to_string());
                return Some(End::Abnormal);
            }
            None => {
                self.ctx.stats.error("eof");
                return Some(End::Abnormal);
            }
        };
        let (inbox, layout) = (&mut self.inbox, &self.ctx.layout);
        let stamps = self
            .ctx
            .stats
            .with_tally(self.c, |tally| inbox.receive(bytes, now, layout, tally));
        if stamps > 0 {
            return None;
        }
        let Ok(text) = std::str::from_utf8(bytes) else {
            return None;
        };
        match self.ctx.frames.control(text) {
            Control::Subscribed => {
                // A late acknowledgement still starts the duty (from now on);
                // the timeout it missed stays counted.
                if matches!(self.ack, Ack::Waiting { .. } | Ack::TimedOut) {
                    self.acknowledged(now);
                }
            }
            Control::Error(code) => self.ctx.stats.error(&format!("relay_error_{code}")),
            Control::Other => {}
        }
        None
    }

    /// Sends every message due now (at most [`MAX_BATCH`]), under the send timeout.
    async fn publish(&mut self, ws: &mut Socket) -> Result<(), SocketError> {
        let ctx = self.ctx;
        let publish_end = self.ctx.deadlines.publish_end_ns();
        let Some(p) = self.publisher.as_mut() else {
            return Ok(());
        };
        let mut lags = [0u64; MAX_BATCH];
        let mut batch = 0;
        let result = tokio::time::timeout(ctx.plan.timeouts.send, async {
            while batch < MAX_BATCH {
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
                ws.feed(Message::Text(p.template.frame(stamp).into()))
                    .await?;
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
            for &lag in &lags[..batch] {
                if tally.send_lag.record_us(lag) {
                    tally.clamped += 1;
                }
            }
        });
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(connect::ws_kind(&e)),
            Err(_) => Err(SocketError::SendTimeout),
        }
    }
}
