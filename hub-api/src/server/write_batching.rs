//! Batched writes for a busy HTTP/2 connection.
//!
//! A connection that many callers share (client-go's one per host, a proxy, the agent
//! simulator carrying a whole fleet) finishes responses one after another. The `h2` crate
//! writes out whatever it holds each time its connection task runs, and tokio runs that task
//! right after the request task that woke it: every response became its own TLS record and
//! its own system call, about one `writev` per Lease renewal at a fleet's rate.
//!
//! Here an HTTP/2 connection's writes are held in a batch of at most one record's plaintext
//! until `h2` flushes. A flush of a small batch that came in one write (what `h2` had
//! gathered when its task ran), on a connection that flushed moments ago, waits until the
//! worker has run the other tasks it has ready: the responses that finish meanwhile join the
//! batch and go out with it. A write too large to hold goes out at once, together with what
//! is held, in one vectored write: a list's 16 KiB DATA frame leaves in one system call, as
//! it would without the batch. A connection that is not busy (a device's, renewing every few
//! seconds) never waits, and the batch's memory is given back at every flush, so an idle
//! connection holds none.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker, ready};
use std::time::{Duration, Instant};

use futures::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection that flushed less than this long ago counts as busy.
const BUSY: Duration = Duration::from_millis(1);
/// A flush polled again this long after it began to wait goes, whether or not its turn came:
/// the turn ends when the worker that polled the flush has run its other ready tasks, and a
/// long one among them would hold the batch up.
const LONGEST_WAIT: Duration = Duration::from_millis(1);
/// A batch of at least this many bytes goes out without waiting: it is already worth a
/// record.
const SMALL: usize = 8 * 1024;
/// The most a batch holds: the plaintext of one TLS record.
const RECORD: usize = 16 * 1024;

/// Whether the batch being written has waited for the worker's turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Turn {
    /// Not yet.
    Open,
    /// Its flush waits, since this instant, for the worker's turn to come round.
    Waiting(Instant),
    /// It waited, or does not wait: it goes out at the next flush.
    Taken,
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
    /// How recent a flush makes the connection busy.
    busy: Duration,
    /// What is held until the next flush; no capacity while nothing is.
    batch: Vec<u8>,
    /// Writes since the last flush.
    writes: usize,
    /// A write too large to hold went out since the last flush.
    sent_large: bool,
    turn: Turn,
    flushed_at: Option<Instant>,
    /// Made the first time the connection waits, kept for the next times.
    turn_over: Option<Arc<TurnOver>>,
}

impl<T> BatchedWrites<T> {
    pub(crate) fn new(inner: T) -> BatchedWrites<T> {
        BatchedWrites {
            inner,
            busy: BUSY,
            batch: Vec::new(),
            writes: 0,
            sent_large: false,
            turn: Turn::Open,
            flushed_at: None,
            turn_over: None,
        }
    }

    /// Whether the flush of the batch waits for the worker's turn to come round.
    fn waits(&mut self, cx: &mut Context<'_>) -> bool {
        let small = self.batch.len() < SMALL && !self.sent_large;
        match self.turn {
            // Only a batch of one write waits: h2 hands over what it gathered in one write
            // when its task has nothing more to send, and in two (its buffer, then the rest
            // of the frame's payload) when it flushes to make room after a frame of 1 KiB or
            // more. Waiting there would cost every such response a turn and gather nothing,
            // since h2 takes no other frame until that one is out.
            Turn::Open
                if small
                    && self.writes == 1
                    && let Some(at) = self.flushed_at
                    && at.elapsed() < self.busy =>
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
                self.turn = Turn::Waiting(Instant::now());
                true
            }
            Turn::Waiting(since)
                if small
                    && since.elapsed() < LONGEST_WAIT
                    && let Some(turn_over) = &self.turn_over =>
            {
                // Registered before the turn is read: a turn that ends in between still
                // wakes the task that polls now.
                turn_over.task.register(cx.waker());
                if !turn_over.over.load(Ordering::Acquire) {
                    return true;
                }
                self.turn = Turn::Taken;
                false
            }
            _ => {
                self.turn = Turn::Taken;
                false
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> BatchedWrites<T> {
    /// Writes out the whole batch and gives its memory back (also when a large write has
    /// already emptied it).
    fn poll_send_batch(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.batch.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.batch))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.batch.drain(..n);
        }
        self.batch = Vec::new();
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for BatchedWrites<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let read = ready!(Pin::new(&mut this.inner).poll_read(cx, buf));
        let ended = read.is_err() || (buf.filled().len() == before && buf.remaining() > 0);
        if ended && !this.batch.is_empty() {
            // h2 drops a connection whose peer stopped sending without flushing it first, and
            // a peer that only half-closed still reads: what is held goes now, as it would
            // have gone at once without the batch. The read's outcome reaches h2 either way.
            let _ = this.poll_send_batch(cx);
        }
        Poll::Ready(read)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for BatchedWrites<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if this.batch.len() + data.len() <= RECORD {
            if this.batch.capacity() == 0 {
                this.batch.reserve_exact(RECORD);
            }
            this.batch.extend_from_slice(data);
            this.writes += 1;
            return Poll::Ready(Ok(data.len()));
        }
        // Too large to hold: what is held goes out with it, in one system call.
        loop {
            let held = this.batch.len();
            let n = ready!(
                Pin::new(&mut this.inner).poll_write_vectored(cx, &[IoSlice::new(&this.batch), IoSlice::new(data)])
            )?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            this.writes += 1;
            this.sent_large = true;
            if n > held {
                this.batch.clear();
                return Poll::Ready(Ok(n - held));
            }
            this.batch.drain(..n);
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| &**b);
        self.poll_write(cx, first)
    }

    fn is_write_vectored(&self) -> bool {
        // Told that writes are not vectored, h2 copies a DATA frame under 1 KiB (a
        // renewal's answer) into its buffer, beside the frames before it, and hands them
        // over together; a vectored writer gets every frame over 256 bytes on its own, and
        // h2 takes no other frame until that one is written.
        false
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.batch.is_empty() && this.waits(cx) {
            return Poll::Pending;
        }
        ready!(this.poll_send_batch(cx))?;
        let flushed = ready!(Pin::new(&mut this.inner).poll_flush(cx));
        // A flush with nothing written is not a batch sent: an idle connection that h2
        // flushes for its pings does not look busy.
        if flushed.is_ok() && this.writes > 0 {
            this.writes = 0;
            this.sent_large = false;
            this.turn = Turn::Open;
            this.flushed_at = Some(Instant::now());
        }
        Poll::Ready(flushed)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_send_batch(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    struct Wakes(AtomicUsize);

    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A stream that records each write it is handed (the slices of a vectored write
    /// joined), takes at most `limit` bytes a write, and reads as a peer that has closed.
    #[derive(Default)]
    struct Recorder {
        writes: Vec<Vec<u8>>,
        limit: Option<usize>,
        shut_down: bool,
    }

    impl AsyncRead for Recorder {
        fn poll_read(self: Pin<&mut Self>, _: &mut Context<'_>, _: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Recorder {
        fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            self.poll_write_vectored(cx, &[IoSlice::new(buf)])
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let mut joined: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            joined.truncate(self.limit.unwrap_or(usize::MAX));
            let n = joined.len();
            self.writes.push(joined);
            Poll::Ready(Ok(n))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.shut_down = true;
            Poll::Ready(Ok(()))
        }
    }

    struct Fixture {
        io: BatchedWrites<Recorder>,
        wakes: Arc<Wakes>,
        waker: Waker,
    }

    impl Fixture {
        /// An HTTP/2 connection that counts as busy for a minute after each flush, so
        /// that the test does not depend on its own speed.
        fn busy() -> Fixture {
            let mut io = BatchedWrites::new(Recorder::default());
            io.busy = Duration::from_secs(60);
            let wakes = Arc::new(Wakes(AtomicUsize::new(0)));
            let waker = Waker::from(wakes.clone());
            Fixture { io, wakes, waker }
        }

        fn write(&mut self, bytes: &[u8]) -> usize {
            let mut cx = Context::from_waker(&self.waker);
            match Pin::new(&mut self.io).poll_write(&mut cx, bytes) {
                Poll::Ready(n) => n.unwrap(),
                Poll::Pending => panic!("a write never waits"),
            }
        }

        fn flush(&mut self) -> Poll<()> {
            let mut cx = Context::from_waker(&self.waker);
            Pin::new(&mut self.io).poll_flush(&mut cx).map(|r| r.unwrap())
        }

        /// Writes one byte and flushes it: the connection is then busy.
        fn send_one(&mut self) {
            self.write(b"0");
            assert_eq!(self.flush(), Poll::Ready(()));
        }

        /// Starts a small batch whose flush waits for its turn; returns the turn.
        fn start_waiting(&mut self, bytes: &[u8]) -> Arc<TurnOver> {
            self.write(bytes);
            assert!(self.flush().is_pending());
            let turn_over = self.io.turn_over.clone().unwrap();
            // Outside a runtime the deferred wake-up comes at once; here the turn has not.
            turn_over.over.store(false, Ordering::SeqCst);
            turn_over
        }

        fn wakes(&self) -> usize {
            self.wakes.0.load(Ordering::SeqCst)
        }

        fn written(&self) -> Vec<Vec<u8>> {
            self.io.inner.writes.clone()
        }
    }

    /// On a busy HTTP/2 connection writes are held until the flush; the flush of a small
    /// batch of one write waits one turn (the task woken to come back), more joins it
    /// meanwhile, and the batch then goes out in one write, its memory given back.
    #[test]
    fn a_busy_connection_sends_small_writes_together_after_one_turn() {
        let mut f = Fixture::busy();
        assert!(
            !f.io.is_write_vectored(),
            "h2 copies small frames together only for a writer that is not vectored"
        );

        // Never flushed: not busy, so a batch of one write does not wait.
        assert_eq!(f.write(b"a"), 1);
        assert!(f.written().is_empty(), "held until the flush");
        assert_eq!(f.flush(), Poll::Ready(()));
        assert_eq!(f.written(), [b"a".to_vec()]);
        assert_eq!(f.io.batch.capacity(), 0, "the batch's memory is given back");

        // Flushed a moment ago: the next flush waits one turn, and what is written
        // meanwhile joins the batch.
        f.write(b"b");
        assert!(f.flush().is_pending());
        assert_eq!(f.wakes(), 1);
        let turn_over = f.io.turn_over.clone().unwrap();
        turn_over.over.store(false, Ordering::SeqCst);
        f.write(b"c");
        assert!(f.flush().is_pending(), "woken by anything else, the flush still waits");
        assert_eq!(f.written().len(), 1);
        turn_over.wake_by_ref();
        assert_eq!(f.wakes(), 2);
        f.write(b"d");
        assert_eq!(f.flush(), Poll::Ready(()));
        assert_eq!(f.written()[1..], [b"bcd".to_vec()]);

        // A batch of two writes (h2's buffer, then the rest of a payload of 1 KiB or more,
        // which h2 flushes to make room after) goes at once: h2 takes nothing while it waits.
        let payload = vec![b'p'; 2048];
        f.write(b"head");
        f.write(&payload);
        assert_eq!(f.flush(), Poll::Ready(()));
        assert_eq!(f.written()[2], [b"head".as_slice(), &payload].concat());

        // A batch of one large write goes without waiting.
        let large = vec![b'x'; SMALL];
        f.write(&large);
        assert_eq!(f.flush(), Poll::Ready(()));
        assert_eq!(f.written()[3], large);

        // A flush with nothing written is not a batch sent: an idle connection that h2
        // flushes for its pings does not look busy.
        let at = f.io.flushed_at;
        assert_eq!(f.flush(), Poll::Ready(()));
        assert_eq!(f.io.flushed_at, at);

        // Once the last flush is older than the window, a small batch goes at once again.
        f.io.busy = Duration::ZERO;
        f.write(b"f");
        assert_eq!(f.flush(), Poll::Ready(()));
        assert_eq!(f.written()[4], b"f".to_vec());
        // Woken once for the wait, and once for the turn ended by hand above.
        assert_eq!(f.wakes(), 2);
        // An empty write is no write: nothing held, no memory taken.
        assert_eq!(f.write(b""), 0);
        assert_eq!((f.io.writes, f.io.batch.capacity()), (0, 0));
    }

    /// A waiting flush goes before its turn once what joined the batch makes it large, or
    /// once it is polled again after waiting longer than it may.
    #[test]
    fn a_waiting_flush_goes_when_its_batch_grows_or_waited_long_enough() {
        let mut f = Fixture::busy();
        f.send_one();
        f.start_waiting(b"a");
        let more = vec![b'm'; SMALL];
        f.write(&more);
        assert_eq!(f.flush(), Poll::Ready(()), "a batch grown large goes");
        assert_eq!(f.written()[1], [b"a".as_slice(), &more].concat());

        f.start_waiting(b"b");
        assert!(f.flush().is_pending());
        f.io.turn = Turn::Waiting(Instant::now().checked_sub(LONGEST_WAIT * 2).unwrap());
        assert_eq!(f.flush(), Poll::Ready(()), "a batch that waited long enough goes");
        assert_eq!(f.written()[2], b"b".to_vec());
    }

    /// A write that would overflow the batch goes out at once, in one vectored write with
    /// what is held (a DATA frame stays in one system call), and its flush does not wait;
    /// the batch's memory is given back at that flush. A stream that takes less than offered
    /// loses nothing, whether the rest is the large write's or the batch's own.
    #[test]
    fn a_large_write_goes_out_at_once_with_what_is_held() {
        let mut f = Fixture::busy();
        f.send_one();

        let head = [9u8; 9];
        let payload = vec![b'p'; RECORD];
        assert_eq!(f.write(&head), 9);
        assert_eq!(f.write(&payload), RECORD);
        assert_eq!(f.written()[1..], [[head.as_slice(), &payload].concat()]);
        assert!(f.io.batch.is_empty());
        assert_eq!(
            f.flush(),
            Poll::Ready(()),
            "a batch that sent a large write does not wait"
        );
        assert_eq!(f.io.batch.capacity(), 0, "the batch's memory is given back");
        f.write(b"tail");
        f.io.busy = Duration::ZERO;
        assert_eq!(f.flush(), Poll::Ready(()));
        assert_eq!(f.written()[2], b"tail".to_vec());

        // The stream takes 4 bytes a write: the held bytes go first, then the large
        // write's own, and every byte arrives once, in order.
        f.io.inner.limit = Some(4);
        f.write(&head);
        let taken = f.write(&payload);
        assert_eq!(taken, 4 - (9 % 4));
        assert_eq!(f.flush(), Poll::Ready(()));
        let mut expected = head.to_vec();
        expected.extend_from_slice(&payload[..taken]);
        assert_eq!(f.written()[3..].concat(), expected);

        // A held batch written out 4 bytes at a time at its flush.
        let sent = f.written().len();
        f.write(b"abcdefghij");
        assert_eq!(f.flush(), Poll::Ready(()));
        assert_eq!(
            f.written()[sent..],
            [b"abcd".to_vec(), b"efgh".to_vec(), b"ij".to_vec()]
        );
    }

    /// What is held is not lost when the connection ends without a flush: at shutdown, and
    /// when a read finds the peer gone (h2 then drops the connection unflushed).
    #[test]
    fn a_held_batch_goes_out_when_the_connection_ends() {
        let mut f = Fixture::busy();
        f.send_one();
        f.start_waiting(b"answer");
        let mut cx = Context::from_waker(&f.waker);
        let mut space = [0u8; 16];
        let mut buf = ReadBuf::new(&mut space);
        assert!(matches!(
            Pin::new(&mut f.io).poll_read(&mut cx, &mut buf),
            Poll::Ready(Ok(()))
        ));
        assert!(buf.filled().is_empty(), "the end of the stream reaches the reader");
        assert_eq!(f.written()[1], b"answer".to_vec());

        f.write(b"last");
        let mut cx = Context::from_waker(&f.waker);
        assert!(matches!(
            Pin::new(&mut f.io).poll_shutdown(&mut cx),
            Poll::Ready(Ok(()))
        ));
        assert_eq!(f.written()[2], b"last".to_vec());
        assert!(f.io.inner.shut_down);
    }
}
