//! Taking over a request's connection once its `101 Switching Protocols` response is sent.
//!
//! hyper hands an upgraded connection to the handler through the request's
//! `hyper::upgrade::OnUpgrade` only when it serves the connection in its upgradeable mode,
//! which shuts the stream down when the connection ends. The hub's HTTP/1.1 connections are
//! served so that hyper hands the stream back instead (see `http1`), and pass an upgraded one
//! on through [`PendingUpgrade`]. Handlers ask [`on`], which serves either way.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;

/// What an upgraded connection can be: a byte stream both ways.
trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// A request's connection, switched to the protocol its 101 response agreed to.
pub(crate) struct Upgraded(Box<dyn Stream>);

impl Upgraded {
    pub(super) fn new(stream: impl AsyncRead + AsyncWrite + Send + Unpin + 'static) -> Upgraded {
        Upgraded(Box::new(stream))
    }
}

/// Put into the extensions of an HTTP/1.1 request that asks to switch protocols: the
/// connection arrives here once its 101 response is sent. Extensions must be `Clone`, hence
/// the shared slot.
#[derive(Clone)]
pub(super) struct PendingUpgrade(Arc<Mutex<Option<oneshot::Receiver<Upgraded>>>>);

impl PendingUpgrade {
    pub(super) fn new(receiver: oneshot::Receiver<Upgraded>) -> PendingUpgrade {
        PendingUpgrade(Arc::new(Mutex::new(Some(receiver))))
    }
}

/// The connection of `request`, once the 101 response to it is sent; `None` when the
/// connection ended (or was not switched) instead.
pub(crate) fn on<B>(request: &mut http::Request<B>) -> impl Future<Output = Option<Upgraded>> + Send + 'static {
    let pending = request
        .extensions_mut()
        .remove::<PendingUpgrade>()
        .and_then(|pending| pending.0.lock().unwrap_or_else(|e| e.into_inner()).take());
    let from_hyper = pending.is_none().then(|| hyper::upgrade::on(request));
    async move {
        match (pending, from_hyper) {
            (Some(pending), _) => pending.await.ok(),
            (None, Some(from_hyper)) => from_hyper.await.ok().map(|io| Upgraded::new(TokioIo::new(io))),
            (None, None) => None,
        }
    }
}

impl AsyncRead for Upgraded {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Upgraded {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write_vectored(cx, data)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}
