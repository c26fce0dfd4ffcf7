//! What hyper is doing with a connection, as the hub's service and the connection's stream
//! see it: requests begun and finished, and when the last one finished. Each protocol's
//! serve loop decides from it when a connection is idle.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::upgrade::{PendingUpgrade, Upgraded};

pub(super) struct Activity {
    /// Requests begun, and requests whose response is sent (or abandoned).
    begun: AtomicU64,
    finished: AtomicU64,
    /// When the connection began, and how long after that its last request finished (in
    /// milliseconds): when it last had something to do.
    began: Instant,
    last_finished: AtomicU64,
    /// Whether the stream was written to since it was last flushed. hyper flushes the stream
    /// only once its own write buffer is empty: when this is false, it holds nothing unsent.
    pub(super) unflushed: AtomicBool,
    /// The request being answered asked to switch protocols: where its stream goes if the
    /// answer is 101.
    pub(super) upgrade: Mutex<Option<oneshot::Sender<Upgraded>>>,
}

impl Activity {
    pub(super) fn new() -> Activity {
        Activity {
            begun: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            began: Instant::now(),
            last_finished: AtomicU64::new(0),
            unflushed: AtomicBool::new(false),
            upgrade: Mutex::new(None),
        }
    }

    /// Requests begun and finished so far.
    pub(super) fn counts(&self) -> (u64, u64) {
        (
            self.begun.load(Ordering::Relaxed),
            self.finished.load(Ordering::Relaxed),
        )
    }

    /// Since when the connection has had no request in flight, or `None` while it has.
    pub(super) fn idle_since(&self) -> Option<Instant> {
        let (begun, finished) = self.counts();
        (begun == finished).then(|| self.began + Duration::from_millis(self.last_finished.load(Ordering::Relaxed)))
    }

    fn finish(&self) {
        let after = Instant::now().saturating_duration_since(self.began);
        self.last_finished
            .store(u64::try_from(after.as_millis()).unwrap_or(u64::MAX), Ordering::Relaxed);
        self.finished.fetch_add(1, Ordering::Relaxed);
    }
}

/// Resolves once the connection has had no request in flight for `limit`. It wakes once per
/// `limit` while requests are in flight (a device's connection always has its watches), and
/// not at all per request.
pub(super) async fn idle_for(activity: &Activity, limit: Duration) {
    let mut deadline = Instant::now() + limit;
    loop {
        tokio::time::sleep_until(deadline).await;
        match activity.idle_since() {
            Some(since) if since + limit <= Instant::now() => return,
            Some(since) => deadline = since + limit,
            None => deadline = Instant::now() + limit,
        }
    }
}

/// What answers a connection's requests: the hub's router, or a test's handler.
pub(super) trait Handler: Send + Sync + Unpin + 'static {
    fn answer(&self, request: Request<Incoming>) -> impl Future<Output = Response<Body>> + Send + 'static;
}

impl<F, Fut> Handler for F
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + Unpin + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    fn answer(&self, request: Request<Incoming>) -> impl Future<Output = Response<Body>> + Send + 'static {
        self(request)
    }
}

/// Counts a request finished when dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// The hub's handler, counting requests in and out.
pub(super) struct Tracked<H> {
    pub(super) handle: H,
    pub(super) activity: Arc<Activity>,
}

impl<H: Handler> hyper::service::Service<Request<Incoming>> for Tracked<H> {
    type Response = Response<CountedBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<CountedBody>, Infallible>> + Send>>;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        self.activity.begun.fetch_add(1, Ordering::Relaxed);
        let in_flight = InFlight(self.activity.clone());
        if asks_to_switch(&request) {
            let (sender, receiver) = oneshot::channel();
            *self.activity.upgrade.lock().unwrap_or_else(|e| e.into_inner()) = Some(sender);
            request.extensions_mut().insert(PendingUpgrade::new(receiver));
        }
        let response = self.handle.answer(request);
        let activity = self.activity.clone();
        Box::pin(async move {
            let response = response.await;
            if response.status() != StatusCode::SWITCHING_PROTOCOLS {
                activity.upgrade.lock().unwrap_or_else(|e| e.into_inner()).take();
            }
            Ok(response.map(|body| CountedBody {
                body,
                _in_flight: in_flight,
            }))
        })
    }
}

/// Whether a request asks to switch protocols, as hyper reads it: only HTTP/1.1 can.
fn asks_to_switch<B>(request: &Request<B>) -> bool {
    request.version() == http::Version::HTTP_11 && request.headers().contains_key(header::UPGRADE)
}

/// A response's body, its request counted finished when hyper is done with it.
pub(super) struct CountedBody {
    body: Body,
    _in_flight: InFlight,
}

impl http_body::Body for CountedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
