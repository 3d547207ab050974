//! A connection's outbound side: its queue of encoded frames (bounded by
//! default) and its close request, shared by the fan-out, the connection's
//! reader and its writer.
//!
//! The fan-out only ever calls [`Outbox::try_push`], which never waits: a full
//! queue is reported to the caller, which applies the slow-consumer policy.
//! Anyone may ask the writer to close the socket for a [`CloseCause`]
//! ([`Outbox::close`]); the first request wins.
//!
//! The queue is a `VecDeque` behind a leaf mutex (held for a push or a take,
//! never across anything else), so an idle connection's queue costs a few
//! dozen bytes, not the kilobyte and a half a tokio channel allocates up front.
//! The writer takes everything queued at once ([`QueueRx::take`]) and is woken
//! only when it waits on an empty queue: one wake per burst, not per frame.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::mem;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

use bytes::Bytes;
use tokio::sync::Notify;

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

/// The sending half, held by the registry and the reader.
#[derive(Debug)]
pub struct Outbox {
    queue: Mutex<Queue>,
    /// Frames the queue holds at most (those being written count); `None`:
    /// no bound (`--bug unbounded-queue`).
    bound: Option<usize>,
    /// 0 while open, else the [`CloseCause`] (as `u8`) the writer acts on.
    cause: AtomicU8,
    /// Wakes the writer and the reader when a close is requested.
    closing: Notify,
}

#[derive(Debug, Default)]
struct Queue {
    frames: VecDeque<Bytes>,
    /// Frames the writer took and has not finished writing.
    writing: usize,
    /// No more pushes: the writer is gone or shut the queue.
    shut: bool,
    /// The writer, waiting for a frame.
    writer: Option<Waker>,
    /// The reader, waiting for room ([`Outbox::push`]).
    room: Option<Waker>,
}

impl Queue {
    fn is_full(&self, bound: Option<usize>) -> bool {
        bound.is_some_and(|bound| self.frames.len() + self.writing >= bound)
    }
}

/// The receiving half, owned by the connection's writer. Dropping it shuts
/// the queue: later pushes are [`Push::Closed`].
#[derive(Debug)]
pub struct QueueRx {
    outbox: Arc<Outbox>,
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
    pub fn new(bound: Option<usize>) -> (Arc<Self>, QueueRx) {
        let outbox = Arc::new(Self {
            queue: Mutex::default(),
            bound: bound.map(|n| n.max(1)),
            cause: AtomicU8::new(0),
            closing: Notify::new(),
        });
        let rx = QueueRx {
            outbox: outbox.clone(),
        };
        (outbox, rx)
    }

    /// The queue, locked. Nothing panics while holding it, but a poisoned
    /// lock would still hold a consistent queue, so poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues an encoded frame without ever waiting.
    pub fn try_push(&self, frame: Bytes) -> Push {
        let queue = self.lock();
        if queue.shut {
            return Push::Closed;
        }
        if queue.is_full(self.bound) {
            return Push::Full;
        }
        enqueue(queue, frame);
        Push::Queued
    }

    /// Queues a reply, waiting for room (backpressure on the connection's own
    /// reader). Returns false when the writer is gone.
    pub async fn push(&self, frame: Bytes) -> bool {
        let mut frame = Some(frame);
        poll_fn(|cx| {
            let mut queue = self.lock();
            if queue.shut {
                return Poll::Ready(false);
            }
            if queue.is_full(self.bound) {
                queue.room = Some(cx.waker().clone());
                return Poll::Pending;
            }
            if let Some(frame) = frame.take() {
                enqueue(queue, frame);
            }
            Poll::Ready(true)
        })
        .await
    }

    /// Frames waiting in the queue or being written.
    pub fn queued(&self) -> usize {
        let queue = self.lock();
        queue.frames.len() + queue.writing
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
    /// Waits for frames, then moves every queued frame into `batch` (which
    /// the previous batch left empty, so its allocation is reused). The
    /// frames count against the bound until the next call, which means the
    /// batch was written.
    pub async fn take(&mut self, batch: &mut VecDeque<Bytes>) {
        poll_fn(|cx| {
            if self.take_or_register(batch, Some(cx.waker())) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// [`take`](Self::take) without waiting: false when nothing is queued.
    pub fn try_take(&mut self, batch: &mut VecDeque<Bytes>) -> bool {
        self.take_or_register(batch, None)
    }

    /// Moves the queued frames into `batch`; when there are none, leaves
    /// `waker` (if any) to be woken by the next push.
    fn take_or_register(&mut self, batch: &mut VecDeque<Bytes>, waker: Option<&Waker>) -> bool {
        debug_assert!(batch.is_empty(), "the previous batch was written");
        let mut queue = self.outbox.lock();
        // The previous batch is written: its frames leave the bound.
        let room = queue.room.take();
        if queue.frames.is_empty() {
            queue.writing = 0;
            if let Some(waker) = waker {
                queue.writer = Some(waker.clone());
            }
        } else {
            mem::swap(&mut queue.frames, batch);
            queue.writing = batch.len();
        }
        drop(queue);
        if let Some(room) = room {
            room.wake();
        }
        !batch.is_empty()
    }

    /// Refuses every further push ([`Push::Closed`]); what is queued can
    /// still be received.
    pub fn close(&mut self) {
        self.outbox.lock().shut = true;
    }

    /// The next frame if one is already queued.
    pub fn try_recv(&mut self) -> Option<Bytes> {
        self.outbox.lock().frames.pop_front()
    }
}

impl Drop for QueueRx {
    fn drop(&mut self) {
        let mut queue = self.outbox.lock();
        queue.shut = true;
        queue.writing = 0;
        let frames = mem::take(&mut queue.frames);
        let room = queue.room.take();
        drop(queue);
        drop(frames);
        if let Some(room) = room {
            room.wake();
        }
    }
}

/// Queues `frame` and wakes the writer if it waits, after letting go of the
/// queue's lock.
fn enqueue(mut queue: MutexGuard<'_, Queue>, frame: Bytes) {
    queue.frames.push_back(frame);
    let writer = queue.writer.take();
    drop(queue);
    if let Some(writer) = writer {
        writer.wake();
    }
}
