//! The TLS listener: rustls handshakes, HTTP/1.1 or HTTP/2 on each connection as ALPN
//! agreed, the client-certificate identity attached to every request, and graceful shutdown
//! (stop accepting, let in-flight requests finish, end watches).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::auth::PeerIdentity;
use crate::metrics::ConnectionGauges;
use write_batching::BatchedWrites;

mod http1;
pub(crate) mod upgrade;
mod write_batching;

/// How long in-flight requests may take to finish once shutdown begins.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);
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

/// What every connection's task shares.
struct Shared {
    acceptor: TlsAcceptor,
    router: Router,
    http1: hyper::server::conn::http1::Builder,
    /// HTTP/2 through hyper-util's builder, which also reads the preface a client sends.
    http2: auto::Builder<TokioExecutor>,
    gauges: ConnectionGauges,
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    gauges: ConnectionGauges,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut http2 = auto::Builder::new(TokioExecutor::new());
    http2
        .http2()
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
    let shared = Arc::new(Shared {
        acceptor: TlsAcceptor::from(tls),
        router,
        http1: hyper::server::conn::http1::Builder::new(),
        http2,
        gauges,
    });
    // Turned true to ask every connection to finish; closed once every connection has.
    let (stop, stopping) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Typically EMFILE; back off briefly rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(stream, peer, shared.clone(), stopping.clone()));
    }
    drop(listener);
    drop(stopping);
    let _ = stop.send(true);
    if tokio::time::timeout(DRAIN_TIMEOUT, stop.closed()).await.is_err() {
        tracing::warn!("some connections did not finish before the drain timeout");
    }
}

/// One client connection, from its TLS handshake to its end.
///
/// Its task is allocated once, at the size of its largest state, and kept for the
/// connection's life. So the states that are large but short (the handshake) or that only
/// one protocol has (an HTTP/2 connection) are boxed, and so is the TLS stream, which the
/// task would otherwise hold in several places: an idle HTTP/1.1 connection then holds little
/// besides rustls' own state.
async fn connection(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>, mut stopping: watch::Receiver<bool>) {
    let handshake = Box::pin(tokio::time::timeout(
        Duration::from_secs(10),
        shared.acceptor.accept(stream),
    ));
    let tls = tokio::select! {
        handshake = handshake => match handshake {
            Ok(Ok(tls)) => Box::new(tls),
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => return,
        },
        // A handshake not done yet would hold the drain up.
        () = stopped(&mut stopping) => return,
    };
    let identity = peer_identity(&tls, peer);
    let router = shared.router.clone();
    let handle = move |mut request: http::Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(identity.clone());
        let response = router.clone().oneshot(request.map(axum::body::Body::new));
        async move {
            match response.await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        }
    };
    // HTTP/2 over TLS is agreed by ALPN (RFC 9113, section 3.2); anything else is HTTP/1.1.
    if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
        http1::serve(tls, peer, handle, &shared.http1, &shared.gauges, stopping).await;
        return;
    }
    let _active = shared.gauges.http2_active();
    let service = hyper::service::service_fn(move |request| {
        let response = handle(request);
        async move { Ok::<_, std::convert::Infallible>(response.await) }
    });
    let mut conn = Box::pin(
        shared
            .http2
            .serve_connection_with_upgrades(TokioIo::new(BatchedWrites::new(tls)), service),
    );
    let ended = tokio::select! {
        ended = conn.as_mut() => ended,
        () = stopped(&mut stopping) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(%peer, error = %e, "connection ended with error");
    }
}

/// Resolves once the server asks its connections to finish (or is gone).
async fn stopped(stopping: &mut watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}

fn peer_identity(tls: &tokio_rustls::server::TlsStream<TcpStream>, _peer: SocketAddr) -> PeerIdentity {
    let (_, session) = tls.get_ref();
    let identity = session
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|cert| crate::pki::client_cert_identity(cert.as_ref()));
    PeerIdentity(identity.map(Arc::new))
}

#[cfg(test)]
mod tests {
    fn future_size<A, B, C, D, R>(_: &impl FnOnce(A, B, C, D) -> R) -> usize {
        std::mem::size_of::<R>()
    }

    /// Every open connection keeps its task's allocation: 8.6 KB in a release build before
    /// the handshake, the TLS stream and the HTTP/2 connection were boxed, 1 KB after.
    #[test]
    fn a_connection_task_stays_small() {
        let size = future_size(&super::connection);
        assert!(size <= 2 * 1024, "a connection's task takes {size} bytes");
    }
}
