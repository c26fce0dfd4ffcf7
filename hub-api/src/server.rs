//! The TLS listener: rustls handshakes, HTTP/1.1 and HTTP/2 on each connection, the
//! client-certificate identity attached to every request, and graceful shutdown (stop
//! accepting, let in-flight requests finish, end watches).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::auth::PeerIdentity;
use write_batching::BatchedWrites;

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

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
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
    let builder = Arc::new(builder);
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
        let acceptor = acceptor.clone();
        let router = router.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let identity = peer_identity(&tls, peer);
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
            let service = hyper::service::service_fn(move |mut request: http::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(identity.clone());
                router.clone().oneshot(request.map(axum::body::Body::new))
            });
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(BatchedWrites::new(tls, h2)), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%peer, error = %e, "connection ended with error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
        tracing::warn!("some connections did not finish before the drain timeout");
    }
}

fn peer_identity(tls: &tokio_rustls::server::TlsStream<tokio::net::TcpStream>, _peer: SocketAddr) -> PeerIdentity {
    let (_, session) = tls.get_ref();
    let identity = session
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|cert| crate::pki::client_cert_identity(cert.as_ref()));
    PeerIdentity(identity.map(Arc::new))
}
