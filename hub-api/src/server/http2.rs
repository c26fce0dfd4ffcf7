//! HTTP/2 connections: hyper's, with the hub's limits, their writes batched, and closed
//! once idle.
//!
//! h2 keeps a 16 KiB write buffer and an 8 KiB read buffer, with the connection's other
//! state, for as long as a connection is open, and gives no way to hand them back between
//! requests. So a connection with no request in flight for [`CLOSE_IDLE_AFTER`] is told to go
//! away (GOAWAY); its client opens another when it next needs one. A device's connection,
//! which always carries its watches, is never idle.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use super::CLOSE_IDLE_AFTER;
use super::activity::{Activity, Handler, Tracked, idle_for};
use super::write_batching::BatchedWrites;
use crate::metrics::ConnectionGauges;

/// Streams one HTTP/2 connection may have open at once (hyper's default, said here because
/// the reset bound below follows it).
const MAX_CONCURRENT_STREAMS: u32 = 200;
/// What a client may send on one stream, and on the whole connection, before the hub reads
/// it. A device's connection carries its Lease renewals beside its tunnel streams, whose
/// readers (a `kubectl logs -f` whose user stopped reading) may stall: the connection's
/// window is many streams' worth, so a stalled stream holds back only itself.
const STREAM_WINDOW: u32 = 256 * 1024;
const CONNECTION_WINDOW: u32 = 8 * 1024 * 1024;
/// An HTTP/2 connection that sent nothing for this long is PINGed, and closed if the answer
/// takes longer than the timeout: a device whose network went silent loses its tunnel
/// session (and the Agent its `Connected` condition) within half a minute. A device renews
/// its Lease every 10 s on its connection, so a live one is rarely PINGed.
const PING_AFTER: Duration = Duration::from_secs(15);
const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// How every HTTP/2 connection is served.
pub(super) fn builder() -> http2::Builder<TokioExecutor> {
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .timer(TokioTimer::new())
        .keep_alive_interval(PING_AFTER)
        .keep_alive_timeout(PING_TIMEOUT)
        // One HTTP/2 connection may carry many clients' requests (client-go shares one per
        // host; a proxy or the agent simulator carries a whole fleet's). h2 closes the
        // connection, failing every request on it, once 20 streams the hub had not taken up
        // yet are at once reset by the client: under load, ordinary client timeouts. The
        // bound against a client that only opens and resets streams (the "rapid reset"
        // attack) stays, at as many streams as the connection may have open.
        .max_pending_accept_reset_streams(MAX_CONCURRENT_STREAMS as usize);
    builder
}

/// Serves HTTP/2 on `stream` with `handle` until the client leaves, the connection stays
/// idle, or `stop` turns true; the last two end it gracefully, letting requests in flight
/// finish.
pub(super) async fn serve<T, H>(
    stream: T,
    peer: SocketAddr,
    handle: H,
    builder: &http2::Builder<TokioExecutor>,
    gauges: &ConnectionGauges,
    mut stop: watch::Receiver<bool>,
) where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    H: Handler,
{
    let _active = gauges.http2_active();
    let activity = Arc::new(Activity::new());
    let service = Tracked {
        handle,
        activity: activity.clone(),
    };
    // Boxed: the connection's task keeps its largest state for its whole life.
    let mut conn = Box::pin(builder.serve_connection(TokioIo::new(BatchedWrites::new(stream)), service));
    let ended = tokio::select! {
        ended = conn.as_mut() => ended,
        () = idle_for(&activity, CLOSE_IDLE_AFTER) => {
            tracing::debug!(%peer, "closing an idle connection");
            conn.as_mut().graceful_shutdown();
            conn.await
        }
        () = super::stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(%peer, error = %e, "connection ended with error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::tests::answer;
    use bytes::Bytes;
    use http::{Request, Response, StatusCode};
    use http_body_util::{BodyExt, Empty};
    use hyper::body::Incoming;
    use hyper::client::conn::http2::SendRequest;
    use tokio::task::JoinHandle;
    use tokio::time::Instant;

    /// One connection served by [`serve`] over an in-memory pipe, and hyper's client on the
    /// other end.
    struct Served {
        sender: SendRequest<Empty<Bytes>>,
        client: JoinHandle<hyper::Result<()>>,
        gauges: ConnectionGauges,
        served: JoinHandle<()>,
        _stop: watch::Sender<bool>,
    }

    async fn serve_one() -> Served {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let gauges = crate::metrics::Metrics::new().connections.clone();
        let (stop, stopping) = watch::channel(false);
        let served = tokio::spawn({
            let gauges = gauges.clone();
            let peer = SocketAddr::from(([127, 0, 0, 1], 40000));
            async move { serve(server, peer, answer, &builder(), &gauges, stopping).await }
        });
        let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(TokioIo::new(client))
            .await
            .expect("HTTP/2 handshake");
        Served {
            sender,
            client: tokio::spawn(connection),
            gauges,
            served,
            _stop: stop,
        }
    }

    async fn send(sender: &mut SendRequest<Empty<Bytes>>, path: &str) -> Response<Incoming> {
        let request = Request::get(format!("https://hub{path}")).body(Empty::new()).unwrap();
        sender.send_request(request).await.expect("an answer")
    }

    async fn get(sender: &mut SendRequest<Empty<Bytes>>, path: &str) -> Bytes {
        let response = send(sender, path).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.into_body().collect().await.unwrap().to_bytes()
    }

    /// Waits (in paused time) for the client's side of the connection to end; returns how
    /// long that took.
    async fn closed(served: &mut Served) -> Duration {
        let began = Instant::now();
        let ended = tokio::time::timeout(3 * CLOSE_IDLE_AFTER, &mut served.client)
            .await
            .expect("the connection ends");
        assert!(ended.expect("the client's task").is_ok(), "ended gracefully");
        (&mut served.served).await.unwrap();
        assert_eq!(served.gauges.http2(), 0);
        began.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_idle_for_its_limit_is_told_to_go_away() {
        let mut served = serve_one().await;
        assert_eq!(get(&mut served.sender, "/first").await, "/first");
        // Short of the limit, the connection serves the next request; the limit counts again
        // from its response.
        tokio::time::sleep(CLOSE_IDLE_AFTER - Duration::from_secs(1)).await;
        assert_eq!(get(&mut served.sender, "/second").await, "/second");
        tokio::time::sleep(CLOSE_IDLE_AFTER - Duration::from_secs(1)).await;
        assert_eq!(served.gauges.http2(), 1, "still open");
        let waited = closed(&mut served).await;
        assert!(
            waited <= Duration::from_secs(2),
            "closed {waited:?} after the limit was near"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_in_flight_keeps_its_connection_past_the_idle_limit() {
        let mut served = serve_one().await;
        let mut hanging = send(&mut served.sender, "/hang").await.into_body();
        let first = hanging.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, "x");
        tokio::time::sleep(3 * CLOSE_IDLE_AFTER).await;
        assert_eq!(served.gauges.http2(), 1, "open while a stream is");
        assert!(!served.client.is_finished());
        assert_eq!(get(&mut served.sender, "/beside").await, "/beside");

        // The client gives the stream up; the connection is idle from then on.
        drop(hanging);
        let waited = closed(&mut served).await;
        assert!(
            waited >= CLOSE_IDLE_AFTER && waited <= CLOSE_IDLE_AFTER + Duration::from_secs(2),
            "closed {waited:?} after the last stream ended"
        );
    }
}
