//! Byte pipes between a connection's single reader/writer tasks and the per-stream handles the
//! caller holds, shared by the SPDY and WebSocket transports.
//!
//! Outgoing data goes through one FIFO per connection, so a stream's FIN or the final status
//! can never overtake data written before it. The FIFO itself is unbounded, but every data
//! chunk holds permits from a per-connection byte budget until the writer task has written it:
//! a client that stops reading stalls writers instead of growing memory.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::PollSemaphore;

/// Bytes of outgoing data a connection may have queued but not yet written.
pub(crate) const OUT_BUDGET: usize = 256 * 1024;
/// Largest data chunk one write queues (one SPDY DATA frame or WebSocket message).
pub(crate) const MAX_CHUNK: usize = 32 * 1024;

/// One item for a connection's writer task, with the budget it holds until written.
pub(crate) struct Queued<T> {
    pub(crate) item: T,
    pub(crate) _permit: Option<OwnedSemaphorePermit>,
}

/// The sending side of a connection's outgoing FIFO.
pub(crate) struct Outbox<T> {
    tx: mpsc::UnboundedSender<Queued<T>>,
    budget: Arc<Semaphore>,
}

impl<T> Clone for Outbox<T> {
    fn clone(&self) -> Self {
        Outbox {
            tx: self.tx.clone(),
            budget: self.budget.clone(),
        }
    }
}

impl<T> Outbox<T> {
    pub(crate) fn new() -> (Self, mpsc::UnboundedReceiver<Queued<T>>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Outbox {
                tx,
                budget: Arc::new(Semaphore::new(OUT_BUDGET)),
            },
            rx,
        )
    }

    /// Queues a control item outside the budget. Only for items bounded by something else
    /// (one per stream, or one per connection), such as FINs and the final status.
    pub(crate) fn send_now(&self, item: T) -> bool {
        self.tx.send(Queued { item, _permit: None }).is_ok()
    }

    /// Queues an item after taking `cost` bytes of budget; waits while the writer is behind.
    pub(crate) async fn send(&self, item: T, cost: usize) -> bool {
        let cost = cost.clamp(1, OUT_BUDGET) as u32;
        let Ok(permit) = self.budget.clone().acquire_many_owned(cost).await else {
            return false;
        };
        self.tx
            .send(Queued {
                item,
                _permit: Some(permit),
            })
            .is_ok()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// How a transport frames a stream's data and its end.
pub(crate) trait Framing: Unpin {
    type Item;
    fn data(&self, chunk: Bytes) -> Self::Item;
    /// The item that half-closes the stream, if the transport has one.
    fn fin(&self) -> Option<Self::Item>;
}

/// State a stream's writer shares with whoever may end the stream on its behalf.
#[derive(Default)]
pub(crate) struct WriteState {
    closed: AtomicBool,
}

/// Ends the write side of a stream once, whoever gets there first: the handle's shutdown, its
/// drop, or the session finishing.
pub(crate) struct Closer<F: Framing> {
    framing: F,
    outbox: Outbox<F::Item>,
    state: Arc<WriteState>,
}

impl<F: Framing> Closer<F> {
    pub(crate) fn close(&self) {
        if !self.state.closed.swap(true, Ordering::AcqRel)
            && let Some(fin) = self.framing.fin()
        {
            self.outbox.send_now(fin);
        }
    }
}

/// The write side of one stream: each write becomes one chunk on the connection's FIFO.
pub(crate) struct ChunkWriter<F: Framing> {
    framing: F,
    outbox: Outbox<F::Item>,
    budget: PollSemaphore,
    state: Arc<WriteState>,
    /// Set when the peer reset the stream, so writes fail instead of vanishing.
    reset: Arc<AtomicBool>,
}

impl<F: Framing + Clone> ChunkWriter<F> {
    pub(crate) fn new(framing: F, outbox: Outbox<F::Item>, reset: Arc<AtomicBool>) -> Self {
        let budget = PollSemaphore::new(outbox.budget.clone());
        ChunkWriter {
            framing,
            outbox,
            budget,
            state: Arc::default(),
            reset,
        }
    }

    /// Queues `data` outside the budget, for the single final message of a session.
    pub(crate) fn send_final(&self, data: Bytes) -> bool {
        !self.state.closed.load(Ordering::Acquire) && self.outbox.send_now(self.framing.data(data))
    }

    pub(crate) fn closer(&self) -> Closer<F> {
        Closer {
            framing: self.framing.clone(),
            outbox: self.outbox.clone(),
            state: self.state.clone(),
        }
    }
}

impl<F: Framing> AsyncWrite for ChunkWriter<F> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.reset.load(Ordering::Acquire) {
            return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
        }
        if self.state.closed.load(Ordering::Acquire) || self.outbox.is_closed() {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let n = buf.len().min(MAX_CHUNK);
        let Some(permit) = ready!(self.budget.poll_acquire_many(cx, n as u32)) else {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        };
        let item = self.framing.data(Bytes::copy_from_slice(&buf[..n]));
        if self
            .outbox
            .tx
            .send(Queued {
                item,
                _permit: Some(permit),
            })
            .is_err()
        {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The writer task flushes whenever its queue runs dry.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.state.closed.swap(true, Ordering::AcqRel)
            && let Some(fin) = self.framing.fin()
        {
            self.outbox.send_now(fin);
        }
        Poll::Ready(Ok(()))
    }
}

impl<F: Framing> Drop for ChunkWriter<F> {
    fn drop(&mut self) {
        if !self.state.closed.swap(true, Ordering::AcqRel)
            && !self.reset.load(Ordering::Acquire)
            && let Some(fin) = self.framing.fin()
        {
            self.outbox.send_now(fin);
        }
    }
}

/// The read side of one stream, fed chunk by chunk by the connection's reader task through a
/// small bounded channel: a slow consumer holds up the reader, which is TCP back-pressure.
pub(crate) struct ChunkReader {
    rx: mpsc::Receiver<Bytes>,
    pending: Bytes,
    reset: Arc<AtomicBool>,
}

/// The reader task's end of a [`ChunkReader`].
pub(crate) struct ChunkFeed {
    tx: mpsc::Sender<Bytes>,
    reset: Arc<AtomicBool>,
}

/// Chunks a stream may have queued before the connection's reader waits for its consumer.
const FEED_DEPTH: usize = 8;

pub(crate) fn chunk_pipe() -> (ChunkFeed, ChunkReader) {
    let (tx, rx) = mpsc::channel(FEED_DEPTH);
    let reset = Arc::new(AtomicBool::new(false));
    (
        ChunkFeed {
            tx,
            reset: reset.clone(),
        },
        ChunkReader {
            rx,
            pending: Bytes::new(),
            reset,
        },
    )
}

impl ChunkFeed {
    /// Hands `chunk` to the consumer; false once it has gone away.
    pub(crate) async fn feed(&self, chunk: Bytes) -> bool {
        chunk.is_empty() || self.tx.send(chunk).await.is_ok()
    }

    /// The flag writers of the same stream check, so a reset fails both halves.
    pub(crate) fn reset_flag(&self) -> Arc<AtomicBool> {
        self.reset.clone()
    }

    /// Ends the stream abnormally: the consumer's next read fails once queued data is read.
    pub(crate) fn reset(self) {
        self.reset.store(true, Ordering::Release);
    }
}

impl ChunkReader {
    /// Reads the next chunk as it arrived, for message-oriented consumers (resize events).
    pub(crate) async fn next_chunk(&mut self) -> Option<Bytes> {
        if !self.pending.is_empty() {
            return Some(std::mem::take(&mut self.pending));
        }
        self.rx.recv().await
    }
}

impl AsyncRead for ChunkReader {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.pending.is_empty() {
            match ready!(self.rx.poll_recv(cx)) {
                Some(chunk) => self.pending = chunk,
                None if self.reset.load(Ordering::Acquire) => {
                    return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
                }
                None => return Poll::Ready(Ok(())),
            }
        }
        let n = self.pending.len().min(buf.remaining());
        buf.put_slice(&self.pending[..n]);
        self.pending.advance(n);
        Poll::Ready(Ok(()))
    }
}
