//! Batched writes for a busy HTTP/2 connection.
//!
//! A connection that many callers share (client-go's one per host, a proxy, the agent
//! simulator carrying a whole fleet) finishes responses one after another. The `h2` crate
//! writes out whatever it holds each time its connection task runs, and tokio runs that task
//! right after the request task that woke it: every response became its own TLS record and
//! its own system call, about one `writev` per renewal at a fleet's rate. Here the first
//! small write after a flush, on a connection that flushed moments ago, waits until the
//! worker has run the other tasks it has ready: the responses that finish meanwhile join it
//! in `h2`'s buffer and go out together. A connection that is not busy (a device's, renewing
//! every few seconds) and a large write (a list) never wait.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker, ready};
use std::time::{Duration, Instant};

use futures::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection that flushed less than this long ago counts as busy.
const BUSY: Duration = Duration::from_millis(1);
/// Writes of at least this many bytes go out at once: the batch is already worth a record.
const SMALL: usize = 8 * 1024;

/// Where the writes since the last flush are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Turn {
    /// Nothing written since the last flush.
    Flushed,
    /// The first write is waiting for the worker's turn to come round.
    Waiting,
    /// Writing until the next flush.
    Writing,
}

/// Marks the turn over when the worker gets round to it, and wakes the connection's task.
#[derive(Default)]
struct TurnOver {
    over: AtomicBool,
    task: AtomicWaker,
}

impl Wake for TurnOver {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.over.store(true, Ordering::Release);
        self.task.wake();
    }
}

pub(crate) struct BatchedWrites<T> {
    inner: T,
    /// How recent a flush makes the connection busy; none for HTTP/1.1, whose connection
    /// has one response at a time to send.
    busy: Option<Duration>,
    turn: Turn,
    flushed_at: Option<Instant>,
    /// Made the first time the connection waits, kept for the next times.
    turn_over: Option<Arc<TurnOver>>,
}

impl<T> BatchedWrites<T> {
    /// `batched`: the connection speaks HTTP/2.
    pub(crate) fn new(inner: T, batched: bool) -> BatchedWrites<T> {
        BatchedWrites {
            inner,
            busy: batched.then_some(BUSY),
            turn: Turn::Flushed,
            flushed_at: None,
            turn_over: None,
        }
    }

    /// Whether a write of `len` bytes waits for the worker's turn to come round.
    fn waits(&mut self, len: usize, cx: &mut Context<'_>) -> bool {
        match self.turn {
            Turn::Flushed
                if len < SMALL
                    && let (Some(busy), Some(at)) = (self.busy, self.flushed_at)
                    && at.elapsed() < busy =>
            {
                let turn_over = self.turn_over.get_or_insert_with(Arc::default);
                turn_over.over.store(false, Ordering::Relaxed);
                turn_over.task.register(cx.waker());
                // tokio wakes a yielding task once its worker has run every task it has
                // ready (or after a few dozen of them): here, the request tasks woken by the
                // same commit, about to add their responses. The responses' own wake-ups
                // of this task come sooner, and find it still waiting below.
                let waker = Waker::from(turn_over.clone());
                let _ = std::pin::pin!(tokio::task::yield_now()).poll(&mut Context::from_waker(&waker));
                self.turn = Turn::Waiting;
                true
            }
            Turn::Waiting
                if len < SMALL
                    && let Some(turn_over) = &self.turn_over
                    && !turn_over.over.load(Ordering::Acquire) =>
            {
                turn_over.task.register(cx.waker());
                true
            }
            _ => {
                self.turn = Turn::Writing;
                false
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for BatchedWrites<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for BatchedWrites<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.waits(buf.len(), cx) {
            return Poll::Pending;
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.waits(bufs.iter().map(|b| b.len()).sum(), cx) {
            return Poll::Pending;
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        // Told that writes are not vectored, h2 copies a DATA frame of up to 1 KiB (a
        // renewal's answer) into its buffer, where the next responses join it; a vectored
        // writer gets the frame chained instead, and h2 takes no other frame until that one
        // is written. Larger frames (lists, logs) are still chained, in two writes.
        self.busy.is_none() && self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let flushed = ready!(Pin::new(&mut self.inner).poll_flush(cx));
        if flushed.is_ok() && self.turn != Turn::Flushed {
            self.turn = Turn::Flushed;
            self.flushed_at = Some(Instant::now());
        }
        Poll::Ready(flushed)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    use tokio::io::AsyncReadExt;

    use super::*;

    struct Wakes(AtomicUsize);

    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn write(io: &mut BatchedWrites<tokio::io::DuplexStream>, cx: &mut Context<'_>, bytes: &[u8]) -> Poll<usize> {
        Pin::new(io).poll_write(cx, bytes).map(|r| r.unwrap())
    }

    fn flush(io: &mut BatchedWrites<tokio::io::DuplexStream>, cx: &mut Context<'_>) {
        assert!(Pin::new(io).poll_flush(cx).is_ready());
    }

    /// On a busy HTTP/2 connection the first small write after a flush waits one turn (its
    /// task woken to come back), the rest of the batch goes through, and nothing is lost.
    /// Polled outside a runtime, where the deferred wake-up happens at once.
    #[test]
    fn a_busy_connection_holds_its_first_small_write_one_turn() {
        let wakes = Arc::new(Wakes(AtomicUsize::new(0)));
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        let (inner, mut peer) = tokio::io::duplex(1 << 20);
        // h2 copies small frames into its buffer only for a writer that is not vectored.
        assert!(!BatchedWrites::new(tokio::io::duplex(1).0, true).is_write_vectored());
        // Busy for a minute after each flush, so that the test does not depend on its speed.
        let mut io = BatchedWrites::new(inner, true);
        io.busy = Some(Duration::from_secs(60));

        // Never flushed: not busy, so nothing waits.
        assert_eq!(write(&mut io, &mut cx, b"a"), Poll::Ready(1));
        flush(&mut io, &mut cx);
        // Flushed a moment ago: the next small write waits once, then goes.
        assert!(write(&mut io, &mut cx, b"b").is_pending());
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
        // Until its turn is over, the connection's task woken by anything else (the next
        // response) finds the write still waiting; a batch grown large goes at once.
        let turn_over = io.turn_over.clone().unwrap();
        turn_over.over.store(false, Ordering::SeqCst);
        assert!(write(&mut io, &mut cx, b"b").is_pending());
        turn_over.wake_by_ref();
        assert_eq!(wakes.0.load(Ordering::SeqCst), 2);
        assert_eq!(write(&mut io, &mut cx, b"bc"), Poll::Ready(2));
        assert_eq!(write(&mut io, &mut cx, b"d"), Poll::Ready(1));
        flush(&mut io, &mut cx);
        assert!(write(&mut io, &mut cx, b"x").is_pending());
        io.turn_over.as_ref().unwrap().over.store(false, Ordering::SeqCst);
        let grown = vec![b'x'; SMALL];
        assert_eq!(write(&mut io, &mut cx, &grown), Poll::Ready(SMALL));
        flush(&mut io, &mut cx);
        // A large write goes at once, busy or not.
        let large = vec![b'e'; SMALL];
        assert_eq!(write(&mut io, &mut cx, &large), Poll::Ready(SMALL));
        flush(&mut io, &mut cx);
        // A flush with nothing written is not a batch sent: an idle connection that h2
        // flushes for its pings does not look busy.
        let at = io.flushed_at;
        flush(&mut io, &mut cx);
        assert_eq!(io.flushed_at, at);
        // Once the flush is older than the window, writes go at once again.
        io.busy = Some(Duration::ZERO);
        assert_eq!(write(&mut io, &mut cx, b"f"), Poll::Ready(1));
        // Woken once for each wait, and once for the turn ended by hand above.
        assert_eq!(wakes.0.load(Ordering::SeqCst), 3);
        drop(io);

        let mut received = Vec::new();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(peer.read_to_end(&mut received)).unwrap();
        let mut expected = b"abcd".to_vec();
        expected.extend_from_slice(&grown);
        expected.extend_from_slice(&large);
        expected.push(b'f');
        assert_eq!(received, expected);
    }

    /// HTTP/1.1 connections never wait.
    #[tokio::test]
    async fn a_connection_without_batching_writes_at_once() {
        let waker = Waker::from(Arc::new(Wakes(AtomicUsize::new(0))));
        let mut cx = Context::from_waker(&waker);
        let (inner, _peer) = tokio::io::duplex(1 << 16);
        let mut io = BatchedWrites::new(inner, false);
        assert_eq!(io.busy, None);
        assert_eq!(io.is_write_vectored(), io.inner.is_write_vectored());
        for _ in 0..3 {
            assert_eq!(write(&mut io, &mut cx, b"a"), Poll::Ready(1));
            flush(&mut io, &mut cx);
        }
    }
}
