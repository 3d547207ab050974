//! A connection's outbound side: its queue of text frames (bounded by default) and
//! its close request, shared by the fan-out, the connection's reader and its
//! writer.
//!
//! The fan-out only ever calls [`Outbox::try_push`], which never waits: a full
//! queue is reported to the caller, which applies the slow-consumer policy.
//! Anyone may ask the writer to close the socket for a [`CloseCause`]
//! ([`Outbox::close`]); the first request wins.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use squall_proto::wire::{
    CLOSE_GOING_AWAY, CLOSE_INVALID_PAYLOAD, CLOSE_NORMAL, CLOSE_POLICY, CLOSE_PROTOCOL_ERROR,
    CLOSE_TOO_BIG, CLOSE_TRY_AGAIN_LATER,
};

/// Why the relay closes a connection; decides the Close frame's code and reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum CloseCause {
    /// The reader ended (the client left): the writer just stops.
    Done = 1,
    /// The relay is shutting down (1001).
    Shutdown,
    /// A text frame was not UTF-8 (1007).
    InvalidUtf8,
    /// A frame or message over the size limit (1009).
    TooBig,
    /// An RFC 6455 framing violation (1002).
    ProtocolError,
    /// Nothing received for the idle timeout (1008).
    IdleTimeout,
    /// Kept sending over the rate limit (1008).
    RateLimitAbuse,
    /// Its outbound queue was full (1013).
    SlowConsumer,
    /// Picked by `--bug kick-every` (1008 "kicked"): its subscriptions stay
    /// behind as ghosts.
    Kicked,
}

impl CloseCause {
    const ALL: [CloseCause; 9] = [
        CloseCause::Done,
        CloseCause::Shutdown,
        CloseCause::InvalidUtf8,
        CloseCause::TooBig,
        CloseCause::ProtocolError,
        CloseCause::IdleTimeout,
        CloseCause::RateLimitAbuse,
        CloseCause::SlowConsumer,
        CloseCause::Kicked,
    ];

    /// The Close frame's code.
    pub fn code(self) -> u16 {
        match self {
            CloseCause::Done => CLOSE_NORMAL,
            CloseCause::Shutdown => CLOSE_GOING_AWAY,
            CloseCause::InvalidUtf8 => CLOSE_INVALID_PAYLOAD,
            CloseCause::TooBig => CLOSE_TOO_BIG,
            CloseCause::ProtocolError => CLOSE_PROTOCOL_ERROR,
            CloseCause::IdleTimeout | CloseCause::RateLimitAbuse | CloseCause::Kicked => {
                CLOSE_POLICY
            }
            CloseCause::SlowConsumer => CLOSE_TRY_AGAIN_LATER,
        }
    }

    /// The Close frame's reason.
    pub fn reason(self) -> &'static str {
        match self {
            CloseCause::Done => "",
            CloseCause::Shutdown => "server shutting down",
            CloseCause::InvalidUtf8 => "invalid UTF-8",
            CloseCause::TooBig => "frame too big",
            CloseCause::ProtocolError => "protocol error",
            CloseCause::IdleTimeout => "idle timeout",
            CloseCause::RateLimitAbuse => "rate limit exceeded persistently",
            CloseCause::SlowConsumer => "slow consumer",
            CloseCause::Kicked => "kicked",
        }
    }
}

/// The sending half held by the registry and the reader.
#[derive(Debug)]
pub struct Outbox {
    tx: QueueTx,
    /// 0 while open, else the [`CloseCause`] (as `u8`) the writer acts on.
    cause: AtomicU8,
    /// Wakes the writer and the reader when a close is requested.
    closing: Notify,
}

#[derive(Debug)]
enum QueueTx {
    Bounded(mpsc::Sender<Utf8Bytes>),
    /// The sender, and the frames queued (tokio's unbounded sender has no length).
    Unbounded(mpsc::UnboundedSender<Utf8Bytes>, Arc<AtomicUsize>),
}

/// The receiving half, owned by the connection's writer.
#[derive(Debug)]
pub enum QueueRx {
    /// A bounded queue (the default).
    Bounded(mpsc::Receiver<Utf8Bytes>),
    /// No bound (`--bug unbounded-queue`), with the shared queued count.
    Unbounded(mpsc::UnboundedReceiver<Utf8Bytes>, Arc<AtomicUsize>),
}

/// What became of a non-waiting push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// The frame is queued.
    Queued,
    /// The queue is at its bound; the frame was not queued.
    Full,
    /// The writer is gone; the frame was not queued.
    Closed,
}

impl Outbox {
    /// A new outbox with a queue of `bound` frames, or no bound at all.
    pub fn new(bound: Option<usize>) -> (Self, QueueRx) {
        let (tx, rx) = match bound {
            Some(n) => {
                let (tx, rx) = mpsc::channel(n.max(1));
                (QueueTx::Bounded(tx), QueueRx::Bounded(rx))
            }
            None => {
                let (tx, rx) = mpsc::unbounded_channel();
                let queued = Arc::new(AtomicUsize::new(0));
                (
                    QueueTx::Unbounded(tx, queued.clone()),
                    QueueRx::Unbounded(rx, queued),
                )
            }
        };
        (
            Self {
                tx,
                cause: AtomicU8::new(0),
                closing: Notify::new(),
            },
            rx,
        )
    }

    /// Queues a frame without ever waiting.
    pub fn try_push(&self, frame: Utf8Bytes) -> Push {
        match &self.tx {
            QueueTx::Bounded(tx) => match tx.try_send(frame) {
                Ok(()) => Push::Queued,
                Err(mpsc::error::TrySendError::Full(_)) => Push::Full,
                Err(mpsc::error::TrySendError::Closed(_)) => Push::Closed,
            },
            QueueTx::Unbounded(tx, queued) => {
                // Counted before sending, so the writer never counts below zero.
                queued.fetch_add(1, Ordering::Relaxed);
                match tx.send(frame) {
                    Ok(()) => Push::Queued,
                    Err(_) => {
                        queued.fetch_sub(1, Ordering::Relaxed);
                        Push::Closed
                    }
                }
            }
        }
    }

    /// Queues a reply, waiting for room (backpressure on the connection's own
    /// reader). Returns false when the writer is gone.
    pub async fn push(&self, frame: Utf8Bytes) -> bool {
        match &self.tx {
            QueueTx::Bounded(tx) => tx.send(frame).await.is_ok(),
            QueueTx::Unbounded(..) => self.try_push(frame) == Push::Queued,
        }
    }

    /// Frames waiting in the queue.
    pub fn queued(&self) -> usize {
        match &self.tx {
            QueueTx::Bounded(tx) => tx.max_capacity() - tx.capacity(),
            QueueTx::Unbounded(_, queued) => queued.load(Ordering::Relaxed),
        }
    }

    /// Asks the writer to close the socket for `cause` and end. Returns true
    /// for the first request (the one that is acted on).
    pub fn close(&self, cause: CloseCause) -> bool {
        let first = self
            .cause
            .compare_exchange(0, cause as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if first {
            self.closing.notify_waiters();
        }
        first
    }

    /// Why a close was requested, if one was.
    pub fn close_cause(&self) -> Option<CloseCause> {
        let raw = self.cause.load(Ordering::Acquire);
        CloseCause::ALL.into_iter().find(|c| *c as u8 == raw)
    }

    /// True once `--bug kick-every` picked this connection: from then on it
    /// is a ghost, owed deliveries that are counted, not sent.
    pub fn is_kicked(&self) -> bool {
        self.close_cause() == Some(CloseCause::Kicked)
    }

    /// Waits until a close is requested and returns its cause.
    pub async fn closed(&self) -> CloseCause {
        loop {
            let notified = self.closing.notified();
            tokio::pin!(notified);
            // Register before checking, so a close between the check and the
            // await is not missed.
            notified.as_mut().enable();
            if let Some(cause) = self.close_cause() {
                return cause;
            }
            notified.await;
        }
    }
}

impl QueueRx {
    /// The next frame, or `None` once every sender is gone.
    pub async fn recv(&mut self) -> Option<Utf8Bytes> {
        match self {
            QueueRx::Bounded(rx) => rx.recv().await,
            QueueRx::Unbounded(rx, queued) => {
                let frame = rx.recv().await;
                queued.fetch_sub(usize::from(frame.is_some()), Ordering::Relaxed);
                frame
            }
        }
    }

    /// Refuses every further push ([`Push::Closed`]); what is queued can
    /// still be received.
    pub fn close(&mut self) {
        match self {
            QueueRx::Bounded(rx) => rx.close(),
            QueueRx::Unbounded(rx, _) => rx.close(),
        }
    }

    /// The next frame if one is already queued.
    pub fn try_recv(&mut self) -> Option<Utf8Bytes> {
        match self {
            QueueRx::Bounded(rx) => rx.try_recv().ok(),
            QueueRx::Unbounded(rx, queued) => {
                let frame = rx.try_recv().ok();
                queued.fetch_sub(usize::from(frame.is_some()), Ordering::Relaxed);
                frame
            }
        }
    }
}
