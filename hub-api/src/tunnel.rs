//! The hub's end of the device tunnels: one session per connected agent, and the one way
//! other hub modules reach a device, [`Tunnels::request`].
//!
//! A session is the agent's control stream (`POST …/agents/<name>/tunnel` on the agent's own
//! HTTP/2 connection, see `docs/tunnel.md`). For each request it has for the device, the hub
//! sends a session number down that stream and waits for the agent to open the matching
//! accepted stream (`…/tunnel?session=<n>`); the hub's answer on it carries the request, the
//! agent's request body the device's answer. Each exchange is therefore one HTTP/2 stream of
//! the agent's connection, so a slow consumer holds back only its own stream, and an idle
//! session is one open stream, not a connection of its own.
//!
//! The registry keeps at most one session per agent: a new control stream from the same
//! agent (it reconnected before the hub noticed the old one was dead) replaces and closes the
//! old one. Every change is recorded as "dirty" for the `Connected` condition writer
//! (`apiserver::connected`), which reads the registry's current answer rather than a queue
//! of events, so quick flaps can never leave a stale condition behind.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures::FutureExt;
use http_body::Frame;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use faros_machinery::status::{ApiError, Reason};

/// How long a request waits for the device's response headers unless the caller says
/// otherwise. Bodies (a followed log, a proxied download) may stream for longer.
pub(crate) const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Session numbers sent but not yet taken up by the agent's control stream reader.
const DIAL_QUEUE: usize = 64;

/// One agent: its logical cluster, namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct AgentKey {
    pub cluster: String,
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for AgentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}|{}/{}", self.cluster, self.namespace, self.name)
    }
}

/// Why a request could not be carried to a device.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TunnelError {
    #[error("agent {0} is not connected")]
    NotConnected(String),
    #[error("agent {agent} did not answer within {}s", .after.as_secs())]
    Timeout { agent: String, after: Duration },
    #[error("agent {agent} is connected to hub replica {replica}, which cannot be reached: {reason}")]
    Relay {
        agent: String,
        replica: String,
        reason: String,
    },
    #[error("the tunnel to agent {agent} failed: {reason}")]
    Broken { agent: String, reason: String },
}

impl From<TunnelError> for ApiError {
    fn from(e: TunnelError) -> ApiError {
        let reason = match &e {
            TunnelError::NotConnected(_) | TunnelError::Broken { .. } | TunnelError::Relay { .. } => {
                Reason::ServiceUnavailable
            }
            TunnelError::Timeout { .. } => Reason::Timeout,
        };
        ApiError::new(reason, e.to_string())
    }
}

/// Why an accepted stream was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AcceptError {
    #[error("agent {0} has no tunnel session on this hub")]
    NoSession(String),
    #[error("no request {id} of agent {agent} is waiting: it was answered, it gave up, or it never was")]
    NotWaiting { agent: String, id: u64 },
}

/// A request the agent has been told of but has not picked up yet.
struct Waiting {
    request: http::Request<Body>,
    /// Where the device's answer (the accepted stream's body) goes.
    answer: oneshot::Sender<Body>,
}

struct Session {
    id: u64,
    dials: mpsc::Sender<u64>,
    waiting: Mutex<HashMap<u64, Waiting>>,
    /// Cancelled when the session ends: its control stream and every stream it accepted
    /// end with it.
    closed: CancellationToken,
}

impl Session {
    fn take(&self, id: u64) -> Option<Waiting> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner()).remove(&id)
    }
}

/// Every device session this hub holds.
#[derive(Default)]
pub(crate) struct Tunnels {
    sessions: Mutex<HashMap<AgentKey, Arc<Session>>>,
    next_id: AtomicU64,
    /// Agents whose session came or went since the condition writer last looked.
    dirty: Mutex<HashSet<AgentKey>>,
    changed: Notify,
    /// The parent of every session's token: cancelled when the hub shuts down.
    stopping: CancellationToken,
}

impl Tunnels {
    pub(crate) fn new() -> Arc<Tunnels> {
        Arc::new(Tunnels::default())
    }

    /// Sends `request` to the agent's device over its tunnel and waits at most `timeout` for
    /// the response headers. The request's path is one of the agent's internal paths
    /// (`faros_tunnel::LIVE_PATH`, `faros_tunnel::proxy_path`, …); the response body streams.
    /// Answers `TunnelError::NotConnected` at once when the agent has no session here.
    pub(crate) async fn request(
        &self,
        agent: &AgentKey,
        request: http::Request<Body>,
        timeout: Duration,
    ) -> Result<http::Response<Body>, TunnelError> {
        let display = || format!("{}/{}", agent.namespace, agent.name);
        let session = self
            .session(agent)
            .ok_or_else(|| TunnelError::NotConnected(display()))?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let (answer, answered) = oneshot::channel();
        session
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, Waiting { request, answer });
        // Whatever happens below, the request does not stay behind for a late stream.
        let _forget = scopeguard(|| drop(session.take(id)));
        let exchange = async {
            session
                .dials
                .send(id)
                .await
                .map_err(|_| TunnelError::NotConnected(display()))?;
            let from_device = answered.await.map_err(|_| TunnelError::NotConnected(display()))?;
            faros_tunnel::wire::read_response(Closing::new(from_device, &session.closed))
                .await
                .map_err(|e| TunnelError::Broken {
                    agent: display(),
                    reason: e.to_string(),
                })
        };
        // A session that ends meanwhile reads as "not connected": that is what the caller
        // can act on, and the registry forgets it a moment later.
        let exchange = async {
            tokio::select! {
                result = exchange => result,
                _ = session.closed.cancelled() => Err(TunnelError::NotConnected(display())),
            }
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(response)) => Ok(response.map(Body::new)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(TunnelError::Timeout {
                agent: display(),
                after: timeout,
            }),
        }
    }

    /// Opens the agent's session on its control stream: `from_agent` is the stream's request
    /// body (the agent's keep-alives), the returned body its response (the session numbers).
    /// The session lasts as long as that body: until the agent's stream or connection ends,
    /// its keep-alives stop, the same agent opens a newer session, or the hub shuts down.
    pub(crate) fn open(self: &Arc<Self>, agent: AgentKey, from_agent: Body) -> Body {
        let (dials, numbers) = mpsc::channel(DIAL_QUEUE);
        // Already cancelled when the hub is shutting down: the session ends at once.
        let closed = self.stopping.child_token();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let session = Arc::new(Session {
            id,
            dials,
            waiting: Mutex::default(),
            closed: closed.clone(),
        });
        let replaced = self.lock().insert(agent.clone(), session);
        if let Some(old) = replaced {
            tracing::info!(%agent, "a new tunnel replaces the agent's previous one");
            old.closed.cancel();
        }
        self.mark(&agent);
        tracing::info!(%agent, session = id, sessions = self.len(), "tunnel connected");
        Body::new(ControlStream {
            numbers,
            from_agent,
            silence: Box::pin(tokio::time::sleep(faros_tunnel::KEEP_ALIVE_TIMEOUT)),
            closed: Box::pin(closed.cancelled_owned()),
            registration: Registration {
                tunnels: Arc::downgrade(self),
                agent,
                id,
                started: std::time::Instant::now(),
                ended: "the agent's stream ended",
            },
        })
    }

    /// Hands the waiting request `id` to the agent's accepted stream: `from_device` is that
    /// stream's request body (the device's answer); the returned body, its response, carries
    /// the request.
    pub(crate) fn accept(&self, agent: &AgentKey, id: u64, from_device: Body) -> Result<Body, AcceptError> {
        let display = || format!("{}/{}", agent.namespace, agent.name);
        let session = self.session(agent).ok_or_else(|| AcceptError::NoSession(display()))?;
        let not_waiting = || AcceptError::NotWaiting { agent: display(), id };
        let waiting = session.take(id).ok_or_else(not_waiting)?;
        let (parts, body) = waiting.request.into_parts();
        let answered = CancellationToken::new();
        let from_device = Answer {
            inner: from_device,
            answered: answered.clone(),
        };
        waiting.answer.send(Body::new(from_device)).map_err(|_| not_waiting())?;
        let head = faros_tunnel::wire::encode_request_head(&parts.method, &parts.uri, &parts.headers);
        let to_device = faros_tunnel::wire::Prefixed::new(head, body);
        Ok(Body::new(Closing::new(to_device, &session.closed).until(&answered)))
    }

    /// Whether the agent has a session on this hub.
    pub(crate) fn is_connected(&self, agent: &AgentKey) -> bool {
        self.session(agent).is_some()
    }

    /// How many sessions this hub holds.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Ends every session and refuses new ones: the hub is shutting down.
    pub(crate) fn shut_down(&self) {
        self.stopping.cancel();
    }

    fn session(&self, agent: &AgentKey) -> Option<Arc<Session>> {
        let sessions = self.lock();
        let session = sessions.get(agent)?;
        // A session that ended but has not been unregistered yet.
        (!session.closed.is_cancelled()).then(|| session.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<AgentKey, Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn mark(&self, agent: &AgentKey) {
        self.dirty
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(agent.clone());
        self.changed.notify_one();
    }

    /// Waits until some agent's session came or went, and returns which (each once).
    pub(crate) async fn changed(&self) -> Vec<AgentKey> {
        loop {
            let taken: Vec<AgentKey> = self.dirty.lock().unwrap_or_else(|e| e.into_inner()).drain().collect();
            if !taken.is_empty() {
                return taken;
            }
            self.changed.notified().await;
        }
    }
}

/// Runs `f` when dropped.
fn scopeguard(f: impl FnOnce()) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}

/// A session's place in the registry, given up when its control stream goes.
struct Registration {
    tunnels: Weak<Tunnels>,
    agent: AgentKey,
    id: u64,
    started: std::time::Instant,
    ended: &'static str,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let Some(tunnels) = self.tunnels.upgrade() else {
            return;
        };
        let removed = {
            let mut sessions = tunnels.lock();
            match sessions.get(&self.agent) {
                Some(s) if s.id == self.id => sessions.remove(&self.agent),
                _ => None,
            }
        };
        // Its requests still waiting fail now, and its accepted streams end.
        if let Some(session) = removed {
            session.closed.cancel();
        }
        tunnels.mark(&self.agent);
        let agent = &self.agent;
        tracing::info!(%agent, session = self.id, reason = self.ended, seconds = self.started.elapsed().as_secs(), "tunnel disconnected");
    }
}

/// The response body of a control stream: the session numbers of requests for the device.
/// It also reads the agent's keep-alives, and ends (ending the session) when they stop.
struct ControlStream {
    numbers: mpsc::Receiver<u64>,
    from_agent: Body,
    silence: Pin<Box<tokio::time::Sleep>>,
    closed: Pin<Box<WaitForCancellationFutureOwned>>,
    registration: Registration,
}

impl http_body::Body for ControlStream {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.closed.poll_unpin(cx).is_ready() {
            this.registration.ended = "replaced by a newer tunnel, or the hub is shutting down";
            return Poll::Ready(None);
        }
        loop {
            match Pin::new(&mut this.from_agent).poll_frame(cx) {
                Poll::Ready(Some(Ok(_))) => {
                    let deadline = tokio::time::Instant::now() + faros_tunnel::KEEP_ALIVE_TIMEOUT;
                    this.silence.as_mut().reset(deadline);
                }
                Poll::Ready(Some(Err(_))) | Poll::Ready(None) => {
                    this.registration.ended = "the agent closed its stream";
                    return Poll::Ready(None);
                }
                Poll::Pending => break,
            }
        }
        if this.silence.as_mut().poll(cx).is_ready() {
            this.registration.ended = "the agent's keep-alives stopped";
            return Poll::Ready(None);
        }
        match this.numbers.poll_recv(cx) {
            Poll::Ready(Some(id)) => Poll::Ready(Some(Ok(Frame::data(faros_tunnel::wire::session_frame(id))))),
            // The registry no longer holds the session's sender.
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A body of an accepted stream that fails once its session ends, so that a followed log
/// or an exec ends with the session rather than outliving it; the hub's half of the stream
/// also ends, cleanly, once the device's answer has ([`Answer`]).
struct Closing<B> {
    inner: B,
    closed: Pin<Box<WaitForCancellationFutureOwned>>,
    answered: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
}

impl<B> Closing<B> {
    fn new(inner: B, closed: &CancellationToken) -> Closing<B> {
        Closing {
            inner,
            closed: Box::pin(closed.clone().cancelled_owned()),
            answered: None,
        }
    }

    fn until(mut self, answered: &CancellationToken) -> Closing<B> {
        self.answered = Some(Box::pin(answered.clone().cancelled_owned()));
        self
    }
}

impl<B> http_body::Body for Closing<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.closed.poll_unpin(cx).is_ready() {
            return Poll::Ready(Some(Err("the device's tunnel session ended".into())));
        }
        if let Some(answered) = &mut self.answered
            && answered.poll_unpin(cx).is_ready()
        {
            return Poll::Ready(None);
        }
        Pin::new(&mut self.inner).poll_frame(cx).map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The device's answer on an accepted stream. When it has ended (or its reader gave up), the
/// hub ends its own half of the stream: the agent holds that half open until then, since
/// HTTP/2 resets a stream whose client lets go of the answer early, and a reset would cut
/// the end of the device's answer off.
struct Answer {
    inner: Body,
    answered: CancellationToken,
}

impl http_body::Body for Answer {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.answered.cancel();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        self.answered.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use futures::channel::mpsc::{UnboundedSender, unbounded};
    use http_body_util::BodyExt;

    fn key(name: &str) -> AgentKey {
        AgentKey {
            cluster: "c1".into(),
            namespace: "default".into(),
            name: name.into(),
        }
    }

    /// A request body fed by the returned sender, as an agent's stream is.
    fn fed() -> (UnboundedSender<Bytes>, Body) {
        let (tx, rx) = unbounded::<Bytes>();
        (tx, Body::from_stream(rx.map(Ok::<_, std::convert::Infallible>)))
    }

    /// Plays the agent of one session: reads session numbers off the control stream and
    /// answers each request with `hello` and the path it asked for.
    fn serve_agent(tunnels: Arc<Tunnels>, agent: AgentKey, control: Body) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut control = control;
            let mut reader = faros_tunnel::wire::SessionReader::default();
            while let Some(Ok(frame)) = control.frame().await {
                reader.push(&frame.into_data().unwrap_or_default());
                while let Some(id) = reader.next_session() {
                    let (tx, from_device) = fed();
                    let to_device = tunnels.accept(&agent, id, from_device).unwrap();
                    tokio::spawn(async move {
                        let request = faros_tunnel::wire::read_request(to_device).await.unwrap();
                        let head =
                            faros_tunnel::wire::encode_response_head(http::StatusCode::OK, &http::HeaderMap::new());
                        tx.unbounded_send(head).unwrap();
                        tx.unbounded_send(Bytes::from(format!("hello {}", request.uri())))
                            .unwrap();
                    });
                }
            }
        })
    }

    async fn body_text(response: http::Response<Body>) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn get() -> http::Request<Body> {
        http::Request::get(faros_tunnel::LIVE_PATH).body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn requests_reach_the_connected_agent_and_fail_fast_otherwise() {
        let tunnels = Tunnels::new();
        let err = tunnels
            .request(&key("a1"), get(), Duration::from_secs(1))
            .await
            .unwrap_err();
        let status = ApiError::from(err);
        assert_eq!(status.code(), http::StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            status.to_status()["message"]
                .as_str()
                .unwrap()
                .contains("default/a1 is not connected")
        );

        let (keep_alive, from_agent) = fed();
        let control = tunnels.open(key("a1"), from_agent);
        let agent = serve_agent(tunnels.clone(), key("a1"), control);
        assert_eq!(tunnels.changed().await, vec![key("a1")]);
        assert!(tunnels.is_connected(&key("a1")));
        for _ in 0..3 {
            let response = tunnels
                .request(&key("a1"), get(), Duration::from_secs(5))
                .await
                .unwrap();
            assert_eq!(body_text(response).await, "hello /v1/live");
        }
        assert!(!tunnels.is_connected(&key("a2")));

        // The agent goes away: the session is forgotten and reported as a change.
        drop(keep_alive);
        agent.await.unwrap();
        assert_eq!(tunnels.changed().await, vec![key("a1")]);
        assert!(!tunnels.is_connected(&key("a1")));
        assert_eq!(tunnels.len(), 0);
    }

    #[tokio::test]
    async fn a_new_session_of_the_same_agent_replaces_the_old() {
        let tunnels = Tunnels::new();
        let (_keep1, from_agent) = fed();
        let first = serve_agent(tunnels.clone(), key("a1"), tunnels.open(key("a1"), from_agent));
        let (_keep2, from_agent) = fed();
        let _second = serve_agent(tunnels.clone(), key("a1"), tunnels.open(key("a1"), from_agent));
        // The first control stream ends without unregistering its successor.
        tokio::time::timeout(Duration::from_secs(5), first)
            .await
            .unwrap()
            .unwrap();
        assert!(tunnels.is_connected(&key("a1")));
        assert_eq!(tunnels.len(), 1);
        let response = tunnels
            .request(&key("a1"), get(), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(body_text(response).await, "hello /v1/live");
    }

    #[tokio::test]
    async fn late_strange_and_garbled_streams_are_refused_one_by_one() {
        let tunnels = Tunnels::new();
        let (_keep, from_agent) = fed();
        let control = tunnels.open(key("a1"), from_agent);
        // Nobody reads the control stream: the request times out and is forgotten.
        let err = tunnels
            .request(&key("a1"), get(), Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(err, TunnelError::Timeout { .. }), "{err}");
        assert!(matches!(
            tunnels.accept(&key("a1"), 1, Body::empty()),
            Err(AcceptError::NotWaiting { .. })
        ));
        assert!(matches!(
            tunnels.accept(&key("a2"), 1, Body::empty()),
            Err(AcceptError::NoSession(_))
        ));
        // A stream whose head is garbage fails that one request, not the session.
        let answering = {
            let tunnels = tunnels.clone();
            tokio::spawn(async move {
                let mut control = control;
                // The number of the request that timed out comes first; its stream is refused.
                let mut reader = faros_tunnel::wire::SessionReader::default();
                loop {
                    reader.push(&control.frame().await.unwrap().unwrap().into_data().unwrap());
                    while let Some(id) = reader.next_session() {
                        let (tx, from_device) = fed();
                        if tunnels.accept(&key("a1"), id, from_device).is_ok() {
                            tx.unbounded_send(Bytes::from_static(&[0, 0, 0, 2, 0xff, 0xff]))
                                .unwrap();
                            return (control, tx);
                        }
                    }
                }
            })
        };
        let err = tunnels
            .request(&key("a1"), get(), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(err, TunnelError::Broken { .. }), "{err}");
        let _kept = answering.await.unwrap();
        assert!(tunnels.is_connected(&key("a1")));
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_without_keep_alives_ends() {
        let tunnels = Tunnels::new();
        let (keep_alive, from_agent) = fed();
        let mut control = tunnels.open(key("a1"), from_agent);
        tunnels.changed().await;
        // Keep-alives hold it open past the timeout…
        for _ in 0..3 {
            tokio::time::sleep(faros_tunnel::KEEP_ALIVE_INTERVAL).await;
            keep_alive.unbounded_send(Bytes::from_static(b"\n")).unwrap();
            assert!(
                tokio::time::timeout(Duration::from_millis(1), control.frame())
                    .await
                    .is_err()
            );
        }
        assert!(tunnels.is_connected(&key("a1")));
        // …and their absence ends it.
        let ended = tokio::time::timeout(faros_tunnel::KEEP_ALIVE_TIMEOUT * 2, control.frame()).await;
        assert!(matches!(ended, Ok(None)), "the control stream ends");
        drop(control);
        assert!(!tunnels.is_connected(&key("a1")));
    }

    #[tokio::test]
    async fn shutting_down_ends_sessions_and_their_streams() {
        let tunnels = Tunnels::new();
        let (_keep, from_agent) = fed();
        let mut control = tunnels.open(key("a1"), from_agent);
        let (_tx, from_device) = fed();
        let request = tunnels.clone();
        let pending = tokio::spawn(async move { request.request(&key("a1"), get(), Duration::from_secs(5)).await });
        let frame = control.frame().await.unwrap().unwrap().into_data().unwrap();
        let id = u64::from_be_bytes(frame[..8].try_into().unwrap());
        let mut to_device = tunnels.accept(&key("a1"), id, from_device).unwrap();
        // The head reaches the agent; then the hub stops.
        assert!(to_device.frame().await.unwrap().is_ok());
        tunnels.shut_down();
        assert!(control.frame().await.is_none());
        assert!(to_device.frame().await.unwrap().is_err());
        drop(control);
        assert!(pending.await.unwrap().is_err());
        assert!(!tunnels.is_connected(&key("a1")));
    }
}
