//! The TLS listener: rustls handshakes, HTTP/1.1 or HTTP/2 on each connection as ALPN
//! agreed, the client-certificate identity attached to every request, and graceful shutdown
//! (stop accepting, let in-flight requests finish, end watches).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::TokioExecutor;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::auth::PeerIdentity;
use crate::metrics::ConnectionGauges;

mod activity;
mod http1;
mod http2;
pub(crate) mod upgrade;
mod write_batching;

/// How long in-flight requests may take to finish once shutdown begins.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a connection may stay open with no request in flight before the hub closes it,
/// as kube-apiserver does (and as long as Go's and kube-rs' clients keep theirs): what
/// an idle client costs the hub is bounded in time as well as in size.
const CLOSE_IDLE_AFTER: Duration = Duration::from_secs(90);

/// What every connection's task shares.
struct Shared {
    acceptor: TlsAcceptor,
    router: Router,
    http1: hyper::server::conn::http1::Builder,
    http2: hyper::server::conn::http2::Builder<TokioExecutor>,
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
    let shared = Arc::new(Shared {
        acceptor: TlsAcceptor::from(tls),
        router,
        http1: http1::builder(),
        http2: http2::builder(),
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
    if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
        http2::serve(tls, peer, handle, &shared.http2, &shared.gauges, stopping).await;
    } else {
        http1::serve(tls, peer, handle, &shared.http1, &shared.gauges, stopping).await;
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
    use std::future::Future;

    use axum::body::Body;
    use http::{Request, Response, StatusCode, header};
    use hyper::body::Incoming;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    pub(super) const BIG: usize = 256 * 1024;

    /// The handler the protocols' tests serve: `GET /big` answers 256 KiB, `GET /hang` a byte
    /// and then a body that never ends, a request asking to switch protocols 101 (then echoes
    /// what the client sends), and anything else its own path.
    pub(super) fn answer(mut request: Request<Incoming>) -> impl Future<Output = Response<Body>> + Send + Unpin {
        let response = if request.headers().contains_key(header::UPGRADE) {
            let upgraded = super::upgrade::on(&mut request);
            tokio::spawn(async move {
                let mut stream = upgraded.await.expect("the connection is handed over");
                let mut buf = [0u8; 64];
                loop {
                    let n = stream.read(&mut buf).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    stream.write_all(&buf[..n]).await.unwrap();
                }
            });
            Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header(header::CONNECTION, "Upgrade")
                .header(header::UPGRADE, "echo")
                .body(Body::empty())
                .unwrap()
        } else if request.uri().path() == "/big" {
            Response::new(Body::from(vec![b'x'; BIG]))
        } else if request.uri().path() == "/hang" {
            let first = futures::stream::once(std::future::ready(Ok::<_, std::io::Error>(bytes::Bytes::from_static(
                b"x",
            ))));
            Response::new(Body::from_stream(futures::StreamExt::chain(
                first,
                futures::stream::pending(),
            )))
        } else {
            Response::new(Body::from(request.uri().path().to_owned()))
        };
        std::future::ready(response)
    }

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
