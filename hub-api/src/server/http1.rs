//! HTTP/1.1 connections, which hold hyper's buffers only while they serve.
//!
//! hyper keeps a read buffer (8 KiB reserved for the next request's head, and more after a
//! request that needed it) and an 8 KiB header write buffer for as long as it serves a
//! connection: 24 KiB, most of what an idle TLS connection cost the hub while hyper held
//! it. Clients that keep their connection open between requests (kube-rs, the Python
//! client, Prometheus between scrapes) would hold them for nothing.
//!
//! So hyper serves a connection only while it is in use. Once no request has been in flight
//! for [`IDLE_AFTER`], and everything hyper wrote has been flushed, hyper is asked to end the
//! connection, which it does at once when it is between requests (with part of a next
//! request's head read, it serves that request first); it hands back the stream instead of
//! shutting it down. The connection then waits for its client's next byte holding the TLS stream alone, and a fresh
//! hyper connection serves it from that byte on. The client sees one keep-alive connection.
//! A connection idle for [`CLOSE_IDLE_AFTER`] is closed, and so is one whose client began a
//! request's head and did not finish it within [`HEAD_TIMEOUT`].
//!
//! hyper ends its part the same way when it has answered a request with 101: the stream then
//! goes to the handler, through [`super::upgrade::on`].

use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::watch;
use tokio::time::Instant;

use super::CLOSE_IDLE_AFTER;
use super::activity::{Activity, Handler, Tracked};
use super::upgrade::Upgraded;
use crate::metrics::ConnectionGauges;

/// How long a connection stays with hyper after its last response was sent. Long enough
/// that a client making requests one after another is served by one hyper connection; short
/// enough that one polling every few seconds holds no buffers between its requests.
const IDLE_AFTER: Duration = Duration::from_secs(2);
/// How long hyper waits for a request's head, from when it began to wait: a client that
/// sends part of one and stalls is disconnected. (hyper serves a connection that has nothing
/// to read for only [`IDLE_AFTER`], so this bounds only heads begun.)
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// How every HTTP/1.1 connection is served.
pub(super) fn builder() -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(HEAD_TIMEOUT);
    builder
}

/// Why hyper's part of a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ended {
    /// The client closed its side, asked for the connection to close, or was switched to
    /// another protocol.
    Closed,
    /// It was idle and gave its buffers up; the stream stays open.
    Idle,
    /// The server is shutting down.
    Stopping,
}

/// Serves HTTP/1.1 on `stream` with `handle` until the client leaves or `stop` turns true.
pub(crate) async fn serve<T, H>(
    stream: T,
    peer: SocketAddr,
    handle: H,
    builder: &http1::Builder,
    gauges: &ConnectionGauges,
    mut stop: watch::Receiver<bool>,
) where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    H: Handler,
{
    let activity = Arc::new(Activity::new());
    let mut service = Tracked {
        handle,
        activity: activity.clone(),
    };
    let mut stream = Resumed {
        inner: stream,
        unread: Bytes::new(),
        activity: activity.clone(),
    };
    loop {
        let active = gauges.http1_active();
        // Boxed, so that its buffers and state are given back while the connection is idle.
        let mut conn = Box::new(builder.serve_connection(TokioIo::new(stream), service));
        let ended = serve_until_idle(&mut conn, &activity, &mut stop).await;
        let parts = conn.into_parts();
        drop(active);
        service = parts.service;
        stream = parts.io.into_inner();
        stream.unread = joined(parts.read_buf, std::mem::take(&mut stream.unread));
        let upgrade = activity.upgrade.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(upgrade) = upgrade {
            // hyper answered 101 and stopped: the rest of the stream is the new protocol's.
            let _ = upgrade.send(Upgraded::new(stream));
            return;
        }
        match ended {
            Err(e) => {
                tracing::debug!(%peer, error = %e, "connection ended with error");
                return;
            }
            Ok(Ended::Closed | Ended::Stopping) => {
                let _ = stream.shutdown().await;
                return;
            }
            // Bytes of a next request already read (hyper, which serves a head it has begun,
            // does not end so today): a new hyper connection serves them at once.
            Ok(Ended::Idle) if !stream.unread.is_empty() => {}
            Ok(Ended::Idle) => {
                let _idle = gauges.http1_idle();
                // Nothing is in flight, so the connection is idle since its last response.
                let close_at = activity.idle_since().unwrap_or_else(Instant::now) + CLOSE_IDLE_AFTER;
                let mut first = [0u8; 1];
                tokio::select! {
                    read = stream.inner.read(&mut first) => match read {
                        Ok(0) => {
                            let _ = stream.shutdown().await;
                            return;
                        }
                        Ok(_) => stream.unread = Bytes::copy_from_slice(&first),
                        Err(_) => return,
                    },
                    () = tokio::time::sleep_until(close_at) => {
                        tracing::debug!(%peer, "closed an idle connection");
                        let _ = stream.shutdown().await;
                        return;
                    }
                    () = super::stopped(&mut stop) => {
                        let _ = stream.shutdown().await;
                        return;
                    }
                }
            }
        }
    }
}

/// Polls `conn` until it ends: on its own, or because it stayed idle or the server stops.
async fn serve_until_idle<T, H>(
    conn: &mut http1::Connection<TokioIo<Resumed<T>>, Tracked<H>>,
    activity: &Activity,
    stop: &mut watch::Receiver<bool>,
) -> hyper::Result<Ended>
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    H: Handler,
{
    let idle = tokio::time::sleep(IDLE_AFTER);
    tokio::pin!(idle);
    let stopping = super::stopped(stop);
    tokio::pin!(stopping);
    let mut counted = None;
    let mut asked = None;
    poll_fn(|cx| {
        loop {
            if let Poll::Ready(result) = conn.poll_without_shutdown(cx) {
                return Poll::Ready(result.map(|()| asked.unwrap_or(Ended::Closed)));
            }
            if asked.is_some() {
                return Poll::Pending;
            }
            if stopping.as_mut().poll(cx).is_ready() {
                asked = Some(Ended::Stopping);
                Pin::new(&mut *conn).graceful_shutdown();
                continue;
            }
            // Requests begin and finish inside hyper's poll, in this task: what the counts say
            // now is what hyper is doing.
            let counts = activity.counts();
            if counts.0 != counts.1 {
                return Poll::Pending;
            }
            if counted != Some(counts) {
                counted = Some(counts);
                idle.as_mut().reset(Instant::now() + IDLE_AFTER);
            }
            // A response still in hyper's write buffer (a client not reading) would be lost
            // with it; the connection stays until it is flushed.
            if activity.unflushed.load(Ordering::Relaxed) || idle.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            // hyper, between requests, ends at once. With part of a request's head read, it
            // goes on until the head is whole (or [`HEAD_TIMEOUT`] passed).
            asked = Some(Ended::Idle);
            Pin::new(&mut *conn).graceful_shutdown();
        }
    })
    .await
}

/// `first` followed by `then`, copied only when both hold something.
fn joined(first: Bytes, then: Bytes) -> Bytes {
    if then.is_empty() {
        return first;
    }
    if first.is_empty() {
        return then;
    }
    let mut both = BytesMut::with_capacity(first.len() + then.len());
    both.extend_from_slice(&first);
    both.extend_from_slice(&then);
    both.freeze()
}

/// A connection's stream, what was read of it but not yet served in front, and its writes
/// and flushes reported to the connection's [`Activity`].
struct Resumed<T> {
    inner: T,
    unread: Bytes,
    activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Resumed<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.unread.is_empty() {
            let n = this.unread.len().min(buf.remaining());
            buf.put_slice(&this.unread[..n]);
            this.unread.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Resumed<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if !data.is_empty() {
            this.activity.unflushed.store(true, Ordering::Relaxed);
        }
        Pin::new(&mut this.inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if data.iter().any(|slice| !slice.is_empty()) {
            this.activity.unflushed.store(true, Ordering::Relaxed);
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, data)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let flushed = Pin::new(&mut this.inner).poll_flush(cx);
        if let Poll::Ready(Ok(())) = flushed {
            this.activity.unflushed.store(false, Ordering::Relaxed);
        }
        flushed
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::tests::{BIG, answer};
    use tokio::io::DuplexStream;

    /// A connection served by [`serve`] over an in-memory pipe of `capacity` bytes each way,
    /// answering `GET /big` with 256 KiB, a request asking to switch protocols with 101 (then
    /// echoing what the client sends), and anything else with its own path.
    struct Served {
        client: DuplexStream,
        gauges: ConnectionGauges,
        stop: watch::Sender<bool>,
        served: tokio::task::JoinHandle<()>,
    }

    fn serve_one(capacity: usize) -> Served {
        let (client, server) = tokio::io::duplex(capacity);
        let gauges = crate::metrics::Metrics::new().connections.clone();
        let (stop, stopping) = watch::channel(false);
        let served = tokio::spawn({
            let gauges = gauges.clone();
            let peer = SocketAddr::from(([127, 0, 0, 1], 40000));
            async move { serve(server, peer, answer, &builder(), &gauges, stopping).await }
        });
        Served {
            client,
            gauges,
            stop,
            served,
        }
    }

    /// Reads one response (with a `content-length`) and returns its head and body; nothing
    /// may follow it.
    async fn read_response(client: &mut DuplexStream) -> (String, Vec<u8>) {
        let (head, body, after) = read_response_and_after(client).await;
        assert!(after.is_empty(), "{} bytes after the response", after.len());
        (head, body)
    }

    /// Reads one response (with a `content-length`) and returns its head, its body and what
    /// came after it in the same reads.
    async fn read_response_and_after(client: &mut DuplexStream) -> (String, Vec<u8>, Vec<u8>) {
        let mut bytes = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8(bytes[..end].to_vec()).unwrap();
                let length = head
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length: "))
                    .map_or(0, |n| n.parse::<usize>().unwrap());
                if bytes.len() >= end + 4 + length {
                    let body = bytes[end + 4..end + 4 + length].to_vec();
                    return (head, body, bytes[end + 4 + length..].to_vec());
                }
            }
            let n = client.read(&mut buf).await.unwrap();
            assert!(n > 0, "connection closed after {} bytes", bytes.len());
            bytes.extend_from_slice(&buf[..n]);
        }
    }

    async fn get(client: &mut DuplexStream, path: &str) -> (String, Vec<u8>) {
        client
            .write_all(format!("GET {path} HTTP/1.1\r\nhost: hub\r\n\r\n").as_bytes())
            .await
            .unwrap();
        read_response(client).await
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_gives_hyper_up_and_serves_the_next_request_on_the_same_stream() {
        let mut served = serve_one(64 * 1024);
        let (head, body) = get(&mut served.client, "/first").await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(body, b"/first");
        assert_eq!(served.gauges.http1(), (1, 0), "served by hyper right after a request");

        tokio::time::sleep(IDLE_AFTER + Duration::from_millis(100)).await;
        assert_eq!(served.gauges.http1(), (0, 1), "idle without hyper");

        let (head, body) = get(&mut served.client, "/second").await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(body, b"/second");
        assert_eq!(served.gauges.http1(), (1, 0));

        drop(served.client);
        served.served.await.unwrap();
        assert_eq!(served.gauges.http1(), (0, 0), "nothing counted once the client left");
    }

    /// Waits for the server to close the connection, checks that it sent nothing more and
    /// that nothing of it is counted open.
    async fn closed(served: &mut Served) {
        let mut rest = Vec::new();
        served.client.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "closed with nothing sent");
        (&mut served.served).await.unwrap();
        assert_eq!(served.gauges.http1(), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_idle_for_its_limit_is_closed() {
        let mut served = serve_one(64 * 1024);
        let _ = get(&mut served.client, "/first").await;
        // Short of the limit, the connection serves the next request; the limit counts again
        // from its response.
        tokio::time::sleep(CLOSE_IDLE_AFTER - Duration::from_secs(1)).await;
        let (_, body) = get(&mut served.client, "/second").await;
        assert_eq!(body, b"/second");
        tokio::time::sleep(CLOSE_IDLE_AFTER - Duration::from_secs(1)).await;
        assert_eq!(served.gauges.http1(), (0, 1), "still open, idle");

        let closed_after = Instant::now();
        closed(&mut served).await;
        let waited = closed_after.elapsed();
        assert!(
            waited <= Duration::from_secs(2),
            "closed {waited:?} after the limit was near"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_keeps_its_connection_past_the_idle_limit() {
        let mut served = serve_one(64 * 1024);
        served
            .client
            .write_all(b"GET /hang HTTP/1.1\r\nhost: hub\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(3 * CLOSE_IDLE_AFTER).await;
        assert_eq!(served.gauges.http1(), (1, 0), "served by hyper");
        assert!(!served.served.is_finished());
        let mut head = [0u8; 16];
        served.client.read_exact(&mut head).await.unwrap();
        assert!(head.starts_with(b"HTTP/1.1 200"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_head_not_finished_in_time_closes_the_connection() {
        let began = Instant::now();
        let mut served = serve_one(64 * 1024);
        served.client.write_all(b"GET /slow HTTP/1.1\r\nhost: h").await.unwrap();
        closed(&mut served).await;
        let waited = began.elapsed();
        assert!(
            waited >= HEAD_TIMEOUT && waited <= HEAD_TIMEOUT + Duration::from_secs(1),
            "closed after {waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_head_sent_in_parts_across_the_idle_period_is_served_whole() {
        let mut served = serve_one(64 * 1024);
        served.client.write_all(b"GET /slow HTTP/1.1\r\nhost: h").await.unwrap();
        tokio::time::sleep(3 * IDLE_AFTER).await;
        served.client.write_all(b"ub\r\n\r\n").await.unwrap();
        let (head, body) = read_response(&mut served.client).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(body, b"/slow");
    }

    #[tokio::test(start_paused = true)]
    async fn a_response_the_client_has_not_read_yet_is_kept_whole() {
        // The pipe holds 8 KiB: most of the 256 KiB stays in hyper's write buffer, its body
        // finished, while the client reads nothing for several idle periods.
        let mut served = serve_one(8 * 1024);
        served
            .client
            .write_all(b"GET /big HTTP/1.1\r\nhost: hub\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(5 * IDLE_AFTER).await;
        assert_eq!(
            served.gauges.http1(),
            (1, 0),
            "hyper keeps a connection with unsent bytes"
        );
        let (head, body) = read_response(&mut served.client).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(body, vec![b'x'; BIG]);
        let (_, body) = get(&mut served.client, "/after").await;
        assert_eq!(body, b"/after");
    }

    #[tokio::test(start_paused = true)]
    async fn a_switched_connection_goes_to_the_handler_with_what_followed_the_request() {
        let mut served = serve_one(64 * 1024);
        // A request served after the connection was idle, so that the switch is made by a
        // hyper connection that resumed the stream.
        let _ = get(&mut served.client, "/before").await;
        tokio::time::sleep(2 * IDLE_AFTER).await;
        served
            .client
            .write_all(b"GET /echo HTTP/1.1\r\nhost: hub\r\nconnection: Upgrade\r\nupgrade: echo\r\n\r\nearly")
            .await
            .unwrap();
        let (head, _, mut echoed) = read_response_and_after(&mut served.client).await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        while echoed.len() < 5 {
            let mut more = [0u8; 5];
            let n = served.client.read(&mut more).await.unwrap();
            assert!(n > 0, "the handler echoes");
            echoed.extend_from_slice(&more[..n]);
        }
        assert_eq!(echoed, b"early");
        let mut echoed = [0u8; 5];
        // Long after hyper would have given an idle connection up, the stream is the
        // handler's.
        tokio::time::sleep(3 * IDLE_AFTER).await;
        served.client.write_all(b"later").await.unwrap();
        served.client.read_exact(&mut echoed).await.unwrap();
        assert_eq!(&echoed, b"later");
        served.served.await.unwrap();
        assert_eq!(
            served.gauges.http1(),
            (0, 0),
            "a switched connection is no longer HTTP's"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn stopping_ends_an_idle_connection_and_lets_a_busy_one_finish_its_request() {
        let mut idle = serve_one(64 * 1024);
        let _ = get(&mut idle.client, "/").await;
        tokio::time::sleep(2 * IDLE_AFTER).await;
        idle.stop.send(true).unwrap();
        idle.served.await.unwrap();
        let mut rest = Vec::new();
        idle.client.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "closed with nothing more sent");

        let mut busy = serve_one(8 * 1024);
        busy.client
            .write_all(b"GET /big HTTP/1.1\r\nhost: hub\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        busy.stop.send(true).unwrap();
        let (_, body) = read_response(&mut busy.client).await;
        assert_eq!(body.len(), BIG);
        let mut rest = Vec::new();
        busy.client.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "closed once the response was sent");
        busy.served.await.unwrap();
    }
}
