//! The device end of the tunnel: on the agent's own connection to the hub (the pool under
//! its API client), the agent holds a control stream open on its Agent's `tunnel`
//! subresource and, for each session number the hub sends down it, opens the stream that
//! takes up that request, serves it, and sends the answer back on it (see `docs/tunnel.md`).
//! When the control stream ends, the agent opens it again with its usual capped, jittered
//! backoff.
//!
//! The streams go out with the agent's own server, CA and credential (the token file is read
//! for every request, so rotation applies at once).

mod instance;
mod live;
mod serve;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::{anyhow, bail};
use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::{oneshot, watch};
use tower::BoxError;

use crate::backoff::{Backoff, spread};
use crate::client::{Streams, TransportBody};
pub use serve::{ExecPolicy, Handler, PortPolicy, TunnelBody};

/// How long the hub may take to answer the opening of a stream.
const OPEN_TIMEOUT: Duration = Duration::from_secs(15);
/// A session that lasted this long was healthy: the next one starts the backoff afresh.
const HEALTHY_SESSION: Duration = Duration::from_secs(30);
/// The most of a refusal's body the agent reads to log it.
const MAX_REFUSAL: usize = 4096;

/// Where and how the agent opens its tunnel's streams.
pub(crate) struct Dialer {
    streams: Streams,
    /// `/apis/edge.faros.sh/v1alpha1/namespaces/<ns>/agents/<name>/tunnel`, below the
    /// server URL (and its workspace path), which the client puts in front.
    path: String,
    agent: String,
}

impl Dialer {
    pub(crate) fn new(streams: Streams, namespace: &str, name: &str) -> Dialer {
        Dialer {
            streams,
            path: format!(
                "/apis/{}/{}/namespaces/{namespace}/agents/{name}/{}",
                faros_api::EDGE_GROUP,
                faros_api::EDGE_VERSION,
                faros_tunnel::TUNNEL_SUBRESOURCE
            ),
            agent: name.to_string(),
        }
    }

    /// A POST of the tunnel protocol to `path`, with `body`.
    fn stream_request(&self, path: String, body: TransportBody) -> anyhow::Result<Request<TransportBody>> {
        Ok(Request::post(path)
            .header(faros_tunnel::PROTOCOL_HEADER, faros_tunnel::PROTOCOL_VERSION)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(
                header::USER_AGENT,
                format!("edge-agent/{}", crate::facts::AGENT_VERSION),
            )
            .body(body)?)
    }

    /// Opens the control stream; the answer's body carries the session numbers.
    async fn open(&self) -> anyhow::Result<hyper::body::Incoming> {
        let keep_alive = KeepAlive(tokio::time::interval_at(
            tokio::time::Instant::now() + faros_tunnel::KEEP_ALIVE_INTERVAL,
            faros_tunnel::KEEP_ALIVE_INTERVAL,
        ));
        let request = self.stream_request(self.path.clone(), keep_alive.boxed_unsync())?;
        let response = tokio::time::timeout(OPEN_TIMEOUT, self.streams.send(request))
            .await
            .map_err(|_| anyhow!("the hub did not answer within {OPEN_TIMEOUT:?}"))?
            .map_err(|e| anyhow!("asking the hub for the tunnel: {e}"))?;
        if response.status() != StatusCode::OK {
            let code = response.status();
            let body = http_body_util::Limited::new(response.into_body(), MAX_REFUSAL)
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            let message = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|s| s["message"].as_str().map(str::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            bail!("the hub refused the tunnel: {code}: {message}");
        }
        Ok(response.into_body())
    }

    /// Takes up request `id`: opens its stream, reads the request off the hub's answer,
    /// serves it, and sends the device's answer back on the same stream.
    async fn accept(self: Arc<Self>, id: u64, handler: Arc<Handler>) {
        let (answer, answered) = oneshot::channel();
        let path = format!("{}?{}={id}", self.path, faros_tunnel::SESSION_PARAMETER);
        let request = match self.stream_request(path, Deferred::Waiting(answered).boxed_unsync()) {
            Ok(request) => request,
            Err(e) => return tracing::warn!(agent = %self.agent, error = %e, "cannot build a tunnel stream"),
        };
        let response = match tokio::time::timeout(OPEN_TIMEOUT, self.streams.send(request)).await {
            Ok(Ok(response)) if response.status() == StatusCode::OK => response,
            // The request gave up meanwhile, or the session ended: nothing to answer.
            Ok(Ok(response)) => {
                return tracing::debug!(agent = %self.agent, id, status = %response.status(), "the hub has no request for this stream");
            }
            Ok(Err(e)) => return tracing::debug!(agent = %self.agent, id, error = %e, "cannot open a tunnel stream"),
            Err(_) => return tracing::debug!(agent = %self.agent, id, "the hub did not answer a tunnel stream"),
        };
        let request = match faros_tunnel::wire::read_request(response.into_body()).await {
            Ok(request) => request.map(|body| Held(Some(body)).boxed()),
            Err(e) => return tracing::warn!(agent = %self.agent, id, error = %e, "a tunnel stream without a request"),
        };
        let Ok(response) = handler.handle(request).await;
        let (parts, body) = response.into_parts();
        let head = faros_tunnel::wire::encode_response_head(parts.status, &parts.headers);
        let _ = answer.send(faros_tunnel::wire::Prefixed::new(head, body).boxed_unsync());
    }

    /// Runs one session: opens the control stream and takes up every request sent down it,
    /// until the stream ends. Returns when the stream was opened (None: it was not), and how
    /// the session ended.
    async fn session(self: &Arc<Self>, handler: &Arc<Handler>) -> (Option<tokio::time::Instant>, anyhow::Result<()>) {
        let mut numbers = match self.open().await {
            Ok(numbers) => numbers,
            Err(e) => return (None, Err(e)),
        };
        tracing::info!(agent = %self.agent, "tunnel connected");
        let opened = tokio::time::Instant::now();
        let mut reader = faros_tunnel::wire::SessionReader::default();
        while let Some(frame) = numbers.frame().await {
            let data = match frame {
                Ok(frame) => frame.into_data().unwrap_or_default(),
                Err(e) => return (Some(opened), Err(anyhow!("the tunnel broke: {e}"))),
            };
            reader.push(&data);
            while let Some(id) = reader.next_session() {
                tokio::spawn(self.clone().accept(id, handler.clone()));
            }
        }
        (Some(opened), Ok(()))
    }
}

/// The hub's half of an accepted stream, as the request's body. Dropped before its end (the
/// handler is done with it), it is read to its end in the background: letting go of it
/// would make HTTP/2 reset the whole stream, cutting off the end of the device's answer. The
/// hub ends its half once that answer has ended, and the wait is bounded all the same.
struct Held(Option<faros_tunnel::wire::Prefixed<hyper::body::Incoming>>);

/// How long a stream's hub half is held open after its request was served.
const HOLD: Duration = Duration::from_secs(30);

impl Body for Held {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.0.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx).map_err(BoxError::from),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.as_ref().is_none_or(|body| body.is_end_stream())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(mut body) = self.0.take().filter(|b| !b.is_end_stream())
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                let _ = tokio::time::timeout(HOLD, async { while let Some(Ok(_)) = body.frame().await {} }).await;
            });
        }
    }
}

/// The control stream's request body: a byte every keep-alive interval, so the hub knows
/// the session is still there while the network is otherwise silent.
struct KeepAlive(tokio::time::Interval);

impl Body for KeepAlive {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.0
            .poll_tick(cx)
            .map(|_| Some(Ok(Frame::data(Bytes::from_static(b"\n")))))
    }
}

/// An accepted stream's request body, known only once the device answered: the stream is
/// opened first, because the request it takes up arrives on the hub's answer to it.
enum Deferred {
    Waiting(oneshot::Receiver<TransportBody>),
    Streaming(TransportBody),
}

impl Body for Deferred {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            match &mut *self {
                Deferred::Waiting(answered) => match Pin::new(answered).poll(cx) {
                    Poll::Ready(Ok(body)) => *self = Deferred::Streaming(body),
                    // Dropped unanswered: the stream fails rather than end as if complete.
                    Poll::Ready(Err(_)) => return Poll::Ready(Some(Err("the request was not answered".into()))),
                    Poll::Pending => return Poll::Pending,
                },
                Deferred::Streaming(body) => return Pin::new(body).poll_frame(cx),
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Deferred::Waiting(_) => SizeHint::default(),
            Deferred::Streaming(body) => body.size_hint(),
        }
    }
}

/// Keeps the tunnel up until `shutdown` flips: dials, serves, and dials again.
pub(crate) async fn run(dialer: Dialer, handler: Handler, mut shutdown: watch::Receiver<bool>) {
    let dialer = Arc::new(dialer);
    let handler = Arc::new(handler);
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    let mut failures = 0u32;
    loop {
        let delay = tokio::select! {
            (opened, outcome) = dialer.session(&handler) => match (opened, outcome) {
                (Some(opened), result) => {
                    match result {
                        Ok(()) => tracing::info!(agent = %dialer.agent, "the hub closed the tunnel"),
                        Err(e) => tracing::warn!(agent = %dialer.agent, error = %format!("{e:#}"), "the tunnel broke"),
                    }
                    failures = 0;
                    if opened.elapsed() >= HEALTHY_SESSION {
                        backoff.reset();
                    }
                    // Spread the reconnects of a fleet whose hub just restarted.
                    backoff.next_delay().max(spread(Duration::from_secs(1)))
                }
                (None, Err(e)) => {
                    failures += 1;
                    let delay = backoff.next_delay();
                    if failures == 1 || failures.is_power_of_two() {
                        tracing::warn!(agent = %dialer.agent, error = %format!("{e:#}"), failures, retry_in_ms = delay.as_millis() as u64, "cannot open the tunnel; retrying");
                    }
                    delay
                }
                (None, Ok(())) => backoff.next_delay(),
            },
            _ = stopped(&mut shutdown) => return,
        };
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stopped(&mut shutdown) => return,
        }
    }
}

async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}
