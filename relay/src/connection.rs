//! One upgraded WebSocket connection: a reader (client frames → protocol
//! actions, idle timeout, rate limit) and a writer (outbound queue → socket,
//! pings, the Close frame), run side by side on the two halves of the socket.
//!
//! The reader parses with tungstenite's protocol state machine
//! (`WebSocketContext`: masking, fragments, UTF-8, size limits). The Pong and
//! Close replies it makes are not written by it: they are captured and queued
//! to the writer like any frame, so only the writer ever writes. The writer
//! owns the write half and writes encoded frames ([`crate::frame`]) as they
//! are, every frame queued since its last write in one vectored write.
//!
//! Either side can end the connection: the reader by asking the writer to
//! close ([`Outbox::close`]), the fan-out or shutdown the same way. The writer
//! sends the Close frame; the reader then waits, for a bounded time, for the
//! client's reply. When the reader ends, the writer is told to stop, and the
//! connection leaves the registry.

use std::collections::{HashSet, VecDeque};
use std::future::poll_fn;
use std::io::{self, ErrorKind, IoSlice, Read, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf, WriteHalf};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::error::ProtocolError as WsProtocolError;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig, WebSocketContext};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::config::RelayConfig;
use crate::frame;
use crate::metrics::AbnormalEnd;
use crate::outbox::{CloseCause, Outbox, Push, QueueRx};
use crate::rate_limit::{RateLimiter, Verdict};
use crate::registry::ConnId;
use crate::server::{Admitted, Shared};
use squall_proto::tls::Stream;
use squall_proto::wire::{ClientMessage, ErrorData, PingData, ServerMessage, Status, Topics};

/// Read buffer per connection: small, since most connections are idle.
const READ_BUFFER_BYTES: usize = 2 * 1024;
/// Frames handed to one vectored write at most.
const WRITE_SLICES: usize = 64;
/// How long sending a Close frame may take before the socket is dropped: a
/// slow consumer must first read what the kernel still holds for it.
const CLOSE_SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for the client's reply to our Close frame.
const CLOSE_REPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// The client closed with a closing handshake.
    Clean,
    /// The relay closed it (shutdown, slow consumer, limits, abuse).
    ByRelay,
    /// Without a closing handshake.
    Abnormal(AbnormalEnd),
}

/// Serves one admitted connection until it ends, then removes it from the
/// registry.
pub(crate) async fn serve(stream: Stream, admitted: Admitted, shared: &Shared) {
    let Admitted {
        user,
        rest,
        _permit,
    } = admitted;
    let registry = &shared.registry;
    let (id, outbox, rx) = registry.register(&user);
    registry.metrics.accepted.fetch_add(1, Relaxed);
    if shared.is_shutting_down() {
        // Registered after shutdown closed everyone: close this one too.
        outbox.close(CloseCause::Shutdown);
    }
    let (read_half, write_half) = tokio::io::split(stream);
    let mut reader = Reader {
        ctx: WebSocketContext::from_partially_read(
            rest,
            Role::Server,
            Some(ws_config(&shared.config)),
        ),
        io: read_half,
        replies: Vec::new(),
        outbox: outbox.clone(),
        forward: true,
        ended: false,
        shared,
    };
    let mut session = Session {
        id,
        user,
        outbox: outbox.clone(),
        topics: HashSet::new(),
        limiter: RateLimiter::new(shared.config.rate_limit, Instant::now().into_std()),
        shared,
    };
    let (ended, ()) = tokio::join!(
        async {
            let ended = session.read(&mut reader).await;
            // Stops the writer if the reader ended first.
            session.outbox.close(CloseCause::Done);
            ended
        },
        write(write_half, rx, &outbox, shared),
    );
    let abnormal = match ended {
        Ended::Clean => {
            registry.metrics.closed_cleanly.fetch_add(1, Relaxed);
            None
        }
        Ended::ByRelay => None,
        Ended::Abnormal(why) => {
            registry.metrics.end_abnormally(why);
            Some(why)
        }
    };
    tracing::debug!(id, ?ended, "connection ended");
    registry
        .disconnect(id, &session.user, &session.topics, abnormal)
        .await;
}

/// The reader's state.
struct Session<'a> {
    id: ConnId,
    user: Arc<str>,
    outbox: Arc<Outbox>,
    /// Topics this connection subscribes to (for cleanup).
    topics: HashSet<String>,
    limiter: RateLimiter,
    shared: &'a Shared,
}

impl Session<'_> {
    async fn read(&mut self, reader: &mut Reader<'_>) -> Ended {
        let idle = self.shared.config.idle_timeout;
        // One close waiter for the whole loop, not one registration per frame.
        let outbox = self.outbox.clone();
        let closed = outbox.closed();
        tokio::pin!(closed);
        loop {
            let next = tokio::select! {
                biased;
                // Boxed, like every rarely taken path here: an idle
                // connection's task then only holds the small hot states.
                cause = &mut closed => {
                    let kicked = (cause == CloseCause::Kicked).then_some(&*self.user);
                    return Box::pin(drain(reader, self.shared, kicked)).await;
                }
                next = tokio::time::timeout(idle, reader.next()) => next,
            };
            match next {
                Err(_) => {
                    self.outbox.close(CloseCause::IdleTimeout);
                    return Ended::Abnormal(AbnormalEnd::Timeout);
                }
                Ok(None) => return Ended::Clean,
                Ok(Some(Err(e))) => return self.read_error(e),
                Ok(Some(Ok(Message::Text(text)))) => self.on_text(&text).await,
                Ok(Some(Ok(Message::Binary(_)))) => {
                    self.reply(error_msg(
                        "unsupported",
                        "binary frames are not part of the protocol",
                    ))
                    .await;
                }
                // Pings are answered and Close frames replied to by the
                // reader's tungstenite state, through the writer.
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// Classifies a read error, asking the writer to send the matching close code.
    fn read_error(&self, e: WsError) -> Ended {
        let close_with = |cause| {
            self.outbox.close(cause);
            Ended::ByRelay
        };
        match e {
            WsError::ConnectionClosed | WsError::AlreadyClosed => Ended::Clean,
            WsError::Capacity(_) => close_with(CloseCause::TooBig),
            WsError::Utf8(_) => close_with(CloseCause::InvalidUtf8),
            WsError::Protocol(WsProtocolError::ResetWithoutClosingHandshake) => {
                Ended::Abnormal(AbnormalEnd::Eof)
            }
            WsError::Protocol(_) => close_with(CloseCause::ProtocolError),
            WsError::Io(e) => match e.kind() {
                ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::BrokenPipe => Ended::Abnormal(AbnormalEnd::Reset),
                ErrorKind::UnexpectedEof => Ended::Abnormal(AbnormalEnd::Eof),
                _ => Ended::Abnormal(AbnormalEnd::Error),
            },
            _ => Ended::Abnormal(AbnormalEnd::Error),
        }
    }

    async fn on_text(&mut self, text: &str) {
        let registry = &self.shared.registry;
        registry.metrics.messages_in.fetch_add(1, Relaxed);
        registry
            .metrics
            .bytes_in
            .fetch_add(text.len() as u64, Relaxed);
        match self.limiter.check(Instant::now().into_std()) {
            Verdict::Allow => {}
            Verdict::Refuse => {
                registry.metrics.rate_limited.fetch_add(1, Relaxed);
                let limit = self.shared.config.rate_limit;
                let message = format!("over {limit} messages per second; message dropped");
                return self.reply(error_msg("rate_limited", &message)).await;
            }
            Verdict::Abuse => {
                registry.metrics.rate_limited.fetch_add(1, Relaxed);
                self.outbox.close(CloseCause::RateLimitAbuse);
                return;
            }
        }
        match ClientMessage::parse(text) {
            Err(e) => self.reply(error_msg(e.code, &e.message)).await,
            Ok(ClientMessage::Subscribe(topics)) => {
                registry.subscribe(self.id, &self.outbox, &topics.topics);
                self.topics.extend(topics.topics.iter().cloned());
                self.reply(status("subscribed", topics)).await;
            }
            Ok(ClientMessage::Unsubscribe(topics)) => {
                registry.unsubscribe(self.id, topics.topics.iter().map(String::as_str));
                for topic in &topics.topics {
                    self.topics.remove(topic);
                }
                self.reply(status("unsubscribed", topics)).await;
            }
            Ok(ClientMessage::Broadcast(b)) => {
                registry.broadcast(&b.topic, &self.user, b.payload);
            }
            Ok(ClientMessage::Direct(d)) => {
                if registry.direct(&d.to, &self.user, d.payload).is_none() {
                    let message = format!("no connected user {:?}", d.to);
                    self.reply(error_msg("unknown_recipient", &message)).await;
                }
            }
            Ok(ClientMessage::Ping(PingData { timestamp })) => {
                self.reply(ServerMessage::Pong(PingData { timestamp }))
                    .await;
            }
        }
    }

    /// Queues a reply to this client, waiting for room at most the idle
    /// timeout; a client that reads nothing for that long is a slow consumer.
    async fn reply(&self, msg: ServerMessage<'_>) {
        let frame = frame::text(msg);
        let metrics = &self.shared.registry.metrics;
        metrics.messages_out.fetch_add(1, Relaxed);
        metrics
            .bytes_out
            .fetch_add(frame::payload_len(&frame) as u64, Relaxed);
        let push = tokio::time::timeout(self.shared.config.idle_timeout, self.outbox.push(frame));
        let waited = Box::pin(push).await;
        if waited.is_err() && self.outbox.close(CloseCause::SlowConsumer) {
            metrics.slow_consumers.fetch_add(1, Relaxed);
        }
    }
}

/// After the relay asked to close: waits (bounded) for the client's Close reply.
///
/// `kicked` (the user) when `--bug kick-every` closed the connection: the
/// relay is otherwise sound, so the Broadcasts and Directs the client sent
/// before it saw the Close frame are still relayed. The only loss a kick
/// causes is then what the ghosts count (`kicked_undelivered_total`), the
/// known answer a test compares with.
async fn drain(reader: &mut Reader<'_>, shared: &Shared, kicked: Option<&str>) -> Ended {
    // The writer sent our Close: tungstenite's echo of the client's reply
    // must not follow it.
    reader.forward = false;
    let _ = tokio::time::timeout(CLOSE_REPLY_TIMEOUT, async {
        while let Some(next) = reader.next().await {
            if let (Ok(Message::Text(text)), Some(user)) = (next, kicked) {
                relay_publication(shared, user, &text);
            }
        }
    })
    .await;
    Ended::ByRelay
}

/// A kicked connection's last Broadcast or Direct, relayed with no reply
/// (its outbox is closing); anything else it sends is ignored.
fn relay_publication(shared: &Shared, user: &str, text: &str) {
    let registry = &shared.registry;
    registry.metrics.messages_in.fetch_add(1, Relaxed);
    registry
        .metrics
        .bytes_in
        .fetch_add(text.len() as u64, Relaxed);
    match ClientMessage::parse(text) {
        Ok(ClientMessage::Broadcast(b)) => {
            registry.broadcast(&b.topic, user, b.payload);
        }
        Ok(ClientMessage::Direct(d)) => {
            registry.direct(&d.to, user, d.payload);
        }
        _ => {}
    }
}

/// The client side of one upgraded socket as tungstenite's state machine
/// reads it.
struct Reader<'a> {
    ctx: WebSocketContext,
    io: ReadHalf<Stream>,
    /// What tungstenite wrote (its Pong and Close replies), not yet queued.
    replies: Vec<u8>,
    outbox: Arc<Outbox>,
    /// Queue those replies to the writer (false once the relay sent its own
    /// Close: the echo of the client's reply is not sent).
    forward: bool,
    /// An error or the end was returned: nothing more is read.
    ended: bool,
    shared: &'a Shared,
}

impl Reader<'_> {
    /// The next message; `None` once the connection is closed (after a
    /// closing handshake or any error, which is returned once).
    async fn next(&mut self) -> Option<Result<Message, WsError>> {
        if self.ended {
            return None;
        }
        let read = poll_fn(|cx| {
            let mut io = Io {
                read: &mut self.io,
                cx,
                replies: &mut self.replies,
            };
            let read = self.ctx.read(&mut io);
            if !self.replies.is_empty() {
                let replies = Bytes::from(std::mem::take(&mut self.replies));
                if self.forward {
                    queue_replies(&self.outbox, replies, self.shared);
                }
            }
            match read {
                Err(WsError::Io(e)) if e.kind() == ErrorKind::WouldBlock => Poll::Pending,
                read => Poll::Ready(read),
            }
        })
        .await;
        match read {
            Ok(message) => Some(Ok(message)),
            Err(e) => {
                self.ended = true;
                match e {
                    WsError::ConnectionClosed | WsError::AlreadyClosed => None,
                    e => Some(Err(e)),
                }
            }
        }
    }
}

/// Queues tungstenite's replies, frame by frame, as the fan-out queues
/// deliveries: never waiting, a full queue is a slow consumer.
fn queue_replies(outbox: &Outbox, replies: Bytes, shared: &Shared) {
    for reply in frame::split(replies) {
        if outbox.try_push(reply) == Push::Full && outbox.close(CloseCause::SlowConsumer) {
            shared.registry.metrics.slow_consumers.fetch_add(1, Relaxed);
        }
    }
}

/// The socket as tungstenite's blocking-style calls see it: reads from the
/// read half (`WouldBlock` while it is pending, the waker registered), writes
/// captured into `replies`.
struct Io<'a, 'b> {
    read: &'a mut ReadHalf<Stream>,
    cx: &'a mut Context<'b>,
    replies: &'a mut Vec<u8>,
}

impl Read for Io<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut buf = ReadBuf::new(buf);
        match Pin::new(&mut *self.read).poll_read(self.cx, &mut buf) {
            Poll::Ready(Ok(())) => Ok(buf.filled().len()),
            Poll::Ready(Err(e)) => Err(e),
            Poll::Pending => Err(ErrorKind::WouldBlock.into()),
        }
    }
}

impl Write for Io<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.replies.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The writer: takes every queued frame at once and writes them, pings on
/// schedule, and sends the Close frame when asked.
async fn write(mut io: WriteHalf<Stream>, mut rx: QueueRx, outbox: &Outbox, shared: &Shared) {
    let period = shared.config.ping_interval;
    let mut ping = tokio::time::interval_at(Instant::now() + period, period);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // One close waiter for the whole loop, not one registration per batch.
    let closed = outbox.closed();
    tokio::pin!(closed);
    let mut batch = Batch::default();
    loop {
        tokio::select! {
            biased;
            cause = &mut closed => {
                return Box::pin(send_close(&mut io, &mut rx, &mut batch, cause, shared)).await;
            }
            () = rx.take(&mut batch.frames) => {}
            _ = ping.tick() => batch.frames.push_back(frame::ping()),
        }
        let written = async {
            if let Some(stall) = shared.config.bugs.stall {
                Box::pin(tokio::time::sleep(stall.wait_at(shared.started.elapsed()))).await;
            }
            match &shared.cap {
                // One slot per frame, each written in its slot: past the
                // capacity the queue, not the socket, holds the backlog.
                Some(cap) => Box::pin(write_in_slots(&mut io, &mut batch, cap)).await,
                None => write_batch(&mut io, &mut batch, usize::MAX).await,
            }
        };
        tokio::select! {
            biased;
            cause = &mut closed => {
                return Box::pin(send_close(&mut io, &mut rx, &mut batch, cause, shared)).await;
            }
            written = written => match written {
                Ok(Written::All) => {}
                Ok(Written::Close) | Err(_) => return,
            },
        }
    }
}

/// How far a batch was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Written {
    /// Every frame.
    All,
    /// Up to a Close frame (tungstenite's echo of the client's): the frames
    /// after it were dropped, and nothing more may be written.
    Close,
}

/// The frames the writer took and is writing; empty between batches (its
/// allocation kept).
#[derive(Debug, Default)]
struct Batch {
    frames: VecDeque<Bytes>,
    /// The front frame is partly written: it must be finished before
    /// anything else goes out.
    started: bool,
}

/// Writes `most` frames of `batch` (or all), front first, [`WRITE_SLICES`]
/// frames per vectored write, stopping early after a Close frame.
async fn write_batch(
    io: &mut WriteHalf<Stream>,
    batch: &mut Batch,
    mut most: usize,
) -> io::Result<Written> {
    let Batch { frames, started } = batch;
    let written = poll_fn(|cx| -> Poll<io::Result<Written>> {
        while most > 0 && !frames.is_empty() {
            let mut slices = [IoSlice::new(&[]); WRITE_SLICES];
            let mut n = 0;
            for frame in frames.iter().take(WRITE_SLICES.min(most)) {
                slices[n] = IoSlice::new(frame);
                n += 1;
                if frame::is_close(frame) {
                    break;
                }
            }
            // One frame (the usual burst) is a plain send, not a writev.
            let mut written = ready!(match n {
                1 => Pin::new(&mut *io).poll_write(cx, &slices[0]),
                n => Pin::new(&mut *io).poll_write_vectored(cx, &slices[..n]),
            })?;
            if written == 0 {
                return Poll::Ready(Err(ErrorKind::WriteZero.into()));
            }
            while let Some(front) = frames.front_mut() {
                if written < front.len() {
                    bytes::Buf::advance(front, written);
                    *started = true;
                    break;
                }
                written -= front.len();
                *started = false;
                most -= 1;
                if frame::is_close(front) {
                    frames.clear();
                    return Poll::Ready(Ok(Written::Close));
                }
                frames.pop_front();
            }
        }
        Poll::Ready(Ok(Written::All))
    })
    .await?;
    poll_fn(|cx| Pin::new(&mut *io).poll_flush(cx)).await?;
    Ok(written)
}

/// `--bug cap`: writes `batch` one frame per slot of the capacity schedule.
async fn write_in_slots(
    io: &mut WriteHalf<Stream>,
    batch: &mut Batch,
    cap: &crate::bugs::CapSchedule,
) -> io::Result<Written> {
    while !batch.frames.is_empty() {
        tokio::time::sleep(cap.reserve()).await;
        if write_batch(io, batch, 1).await? == Written::Close {
            return Ok(Written::Close);
        }
    }
    Ok(Written::All)
}

/// Sends what is already queued, then the Close frame, all within
/// [`CLOSE_SEND_TIMEOUT`]. A slow consumer gets the Close at once: its queue
/// is what it could not keep up with. When the reader ended (`Done`: the
/// client closed, and its Close was answered, or the socket is gone) no
/// Close of ours is sent. A kicked connection (`--bug kick-every`) then
/// shuts its queue and counts what a fan-out still pushed into it after the
/// flush as its ghost's (`kicked_undelivered`), so no delivery is lost
/// uncounted.
async fn send_close(
    io: &mut WriteHalf<Stream>,
    rx: &mut QueueRx,
    batch: &mut Batch,
    cause: CloseCause,
    shared: &Shared,
) {
    let flush_then_close = async {
        if cause == CloseCause::SlowConsumer {
            // Only the frame half on the wire is finished.
            batch.frames.truncate(usize::from(batch.started));
        } else {
            loop {
                if write_batch(io, batch, usize::MAX).await? == Written::Close {
                    return Ok(());
                }
                if !rx.try_take(&mut batch.frames) {
                    break;
                }
            }
        }
        if cause == CloseCause::Done {
            return Ok(());
        }
        batch
            .frames
            .push_back(frame::close(cause.code(), cause.reason()));
        write_batch(io, batch, usize::MAX).await.map(drop)
    };
    let _: Result<io::Result<()>, _> =
        tokio::time::timeout(CLOSE_SEND_TIMEOUT, flush_then_close).await;
    if cause == CloseCause::Kicked {
        rx.close();
        let mut left = batch.frames.iter().filter(|f| !frame::is_close(f)).count() as u64;
        while rx.try_recv().is_some() {
            left += 1;
        }
        if left > 0 {
            let metrics = &shared.registry.metrics;
            metrics.kicked_undelivered.fetch_add(left, Relaxed);
        }
    }
}

fn error_msg<'a>(code: &'a str, message: &'a str) -> ServerMessage<'a> {
    ServerMessage::Error(ErrorData { code, message })
}

fn status(status: &str, details: Topics) -> ServerMessage<'_> {
    ServerMessage::Status(Status { status, details })
}

/// tungstenite's limits, explicit: a small read buffer (its 128 KiB default
/// would cost more than everything else of an idle connection), and
/// frame/message limits at `max_frame_bytes`. (It writes only its small
/// replies, captured by [`Io`].)
fn ws_config(config: &RelayConfig) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(Some(config.max_frame_bytes))
        .max_frame_size(Some(config.max_frame_bytes))
}
