//! One upgraded WebSocket connection: a reader (client frames → protocol
//! actions, idle timeout, rate limit) and a writer (outbound queue → socket,
//! pings, the Close frame), run side by side on the two halves of the socket.
//!
//! Either side can end the connection: the reader by asking the writer to
//! close ([`Outbox::close`]), the fan-out or shutdown the same way. The writer
//! sends the Close frame; the reader then waits, for a bounded time, for the
//! client's reply. When the reader ends, the writer is told to stop, and the
//! connection leaves the registry.

use std::collections::HashSet;
use std::io::ErrorKind;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::ProtocolError as WsProtocolError;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::config::RelayConfig;
use crate::metrics::AbnormalEnd;
use crate::outbox::{CloseCause, Outbox, QueueRx};
use crate::rate_limit::{RateLimiter, Verdict};
use crate::registry::{ConnId, text_frame};
use crate::server::{Admitted, Shared};
use squall_proto::tls::Stream;
use squall_proto::wire::{ClientMessage, ErrorData, PingData, ServerMessage, Status, Topics};

type Ws = WebSocketStream<Stream>;

/// Read buffer per connection: small, since most connections are idle.
const READ_BUFFER_BYTES: usize = 2 * 1024;
/// Outbound bytes buffered before a write is forced (a flush ends each batch).
const WRITE_BUFFER_BYTES: usize = 8 * 1024;
/// Frames written per flush at most.
const WRITE_BATCH: usize = 64;
/// How long sending a Close frame may take before the socket is dropped: a
/// slow consumer must first read what the kernel still holds for it.
const CLOSE_SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for the client's reply to our Close frame.
const CLOSE_REPLY_TIMEOUT: Duration = Duration::from_secs(2);
/// Read errors tolerated while waiting for that reply.
const DRAIN_MAX_ERRORS: usize = 16;

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
    let config = Some(ws_config(&shared.config));
    let ws = WebSocketStream::from_partially_read(stream, rest, Role::Server, config).await;
    let registry = &shared.registry;
    let (id, outbox, rx) = registry.register(&user);
    registry.metrics.accepted.fetch_add(1, Relaxed);
    if shared.is_shutting_down() {
        // Registered after shutdown closed everyone: close this one too.
        outbox.close(CloseCause::Shutdown);
    }
    let (sink, stream) = ws.split();
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
            let ended = session.read(stream).await;
            // Stops the writer if the reader ended first.
            session.outbox.close(CloseCause::Done);
            ended
        },
        write(sink, rx, &outbox, shared),
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
    async fn read(&mut self, mut stream: SplitStream<Ws>) -> Ended {
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
                    return Box::pin(drain(&mut stream, self.shared, kicked)).await;
                }
                next = tokio::time::timeout(idle, stream.next()) => next,
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
                // Pings are answered and Close frames replied to by tungstenite.
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
        let frame = text_frame(msg);
        let metrics = &self.shared.registry.metrics;
        metrics.messages_out.fetch_add(1, Relaxed);
        metrics.bytes_out.fetch_add(frame.len() as u64, Relaxed);
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
async fn drain(stream: &mut SplitStream<Ws>, shared: &Shared, kicked: Option<&str>) -> Ended {
    let _ = tokio::time::timeout(CLOSE_REPLY_TIMEOUT, async {
        let mut errors = 0;
        while let Some(next) = stream.next().await {
            match next {
                Err(_) => {
                    errors += 1;
                    if errors >= DRAIN_MAX_ERRORS {
                        break;
                    }
                }
                Ok(Message::Text(text)) => {
                    if let Some(user) = kicked {
                        relay_publication(shared, user, &text);
                    }
                }
                Ok(_) => {}
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

/// The writer: drains the queue into the socket in batches, pings on
/// schedule, and sends the Close frame when asked.
async fn write(
    mut sink: SplitSink<Ws, Message>,
    mut rx: QueueRx,
    outbox: &Outbox,
    shared: &Shared,
) {
    let period = shared.config.ping_interval;
    let mut ping = tokio::time::interval_at(Instant::now() + period, period);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // One close waiter for the whole loop, not one registration per batch.
    let closed = outbox.closed();
    tokio::pin!(closed);
    loop {
        let first = tokio::select! {
            biased;
            cause = &mut closed => return Box::pin(send_close(&mut sink, &mut rx, cause, shared)).await,
            frame = rx.recv() => match frame {
                Some(frame) => Message::Text(frame),
                None => return,
            },
            _ = ping.tick() => Message::Ping(Bytes::new()),
        };
        let batch = async {
            if let Some(stall) = shared.config.bugs.stall {
                Box::pin(tokio::time::sleep(stall.wait_at(shared.started.elapsed()))).await;
            }
            if let Some(cap) = &shared.cap {
                // One slot per frame, and the frames written at once: past
                // the capacity the queue, not the socket, holds the backlog.
                Box::pin(tokio::time::sleep(cap.reserve())).await;
            }
            sink.feed(first).await?;
            for _ in 1..WRITE_BATCH {
                if shared.cap.is_some() {
                    break;
                }
                match rx.try_recv() {
                    Some(frame) => sink.feed(Message::Text(frame)).await?,
                    None => break,
                }
            }
            sink.flush().await
        };
        tokio::select! {
            biased;
            cause = &mut closed => return Box::pin(send_close(&mut sink, &mut rx, cause, shared)).await,
            written = batch => if written.is_err() { return },
        }
    }
}

/// Sends what is already queued, then the Close frame, all within
/// [`CLOSE_SEND_TIMEOUT`]. A slow consumer gets the Close at once: its queue
/// is what it could not keep up with. A kicked connection (`--bug
/// kick-every`) then shuts its queue and counts what a fan-out still pushed
/// into it after the flush as its ghost's (`kicked_undelivered`), so no
/// delivery is lost uncounted.
async fn send_close(
    sink: &mut SplitSink<Ws, Message>,
    rx: &mut QueueRx,
    cause: CloseCause,
    shared: &Shared,
) {
    let frame = CloseFrame {
        code: cause.code().into(),
        reason: cause.reason().into(),
    };
    let flush_then_close = async {
        if cause != CloseCause::SlowConsumer {
            while let Some(queued) = rx.try_recv() {
                sink.feed(Message::Text(queued)).await?;
            }
        }
        sink.send(Message::Close(Some(frame))).await
    };
    let _ = tokio::time::timeout(CLOSE_SEND_TIMEOUT, flush_then_close).await;
    if cause == CloseCause::Kicked {
        rx.close();
        let mut left = 0;
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
/// would cost more than everything else of an idle connection), a bounded
/// write buffer, and frame/message limits at `max_frame_bytes`.
fn ws_config(config: &RelayConfig) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(2 * config.max_frame_bytes + 64 * 1024)
        .max_message_size(Some(config.max_frame_bytes))
        .max_frame_size(Some(config.max_frame_bytes))
}
