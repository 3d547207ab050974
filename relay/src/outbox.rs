//! A connection's outbound side: its queue of text frames (bounded by default) and
//! its close request, shared by the fan-out, the connection's reader and its
//! writer.
//!
//! The fan-out only ever calls [`Outbox::try_push`], which never waits: a full
//! queue is reported to the caller, which applies the slow-consumer policy.
//! Anyone may ask the writer to close the socket with a code
//! ([`Outbox::close`]); the first request wins.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};

use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// The sending half held by the registry and the reader.
#[derive(Debug)]
pub struct Outbox {
    tx: QueueTx,
    /// 0 while open, else the close code the writer must send.
    close_code: AtomicU16,
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
                close_code: AtomicU16::new(0),
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

    /// Asks the writer to send a Close frame with `code` and end. Returns true
    /// for the first request (the one whose code is sent).
    pub fn close(&self, code: u16) -> bool {
        let first = self
            .close_code
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if first {
            self.closing.notify_waiters();
        }
        first
    }

    /// The requested close code, if a close was requested.
    pub fn close_code(&self) -> Option<u16> {
        match self.close_code.load(Ordering::Acquire) {
            0 => None,
            code => Some(code),
        }
    }

    /// Waits until a close is requested and returns its code.
    pub async fn closed(&self) -> u16 {
        loop {
            let notified = self.closing.notified();
            tokio::pin!(notified);
            // Register before checking, so a close between the check and the
            // await is not missed.
            notified.as_mut().enable();
            if let Some(code) = self.close_code() {
                return code;
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
