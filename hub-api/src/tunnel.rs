//! The hub's end of the device tunnels: one reverse HTTP/2 session per connected agent, and
//! the one way other hub modules reach a device, [`Tunnels::request`].
//!
//! After the 101 on `…/agents/<name>/tunnel` the hub is the HTTP/2 *client* of the
//! connection the agent dialled (see `docs/tunnel.md`). Each exchange with the device is one
//! HTTP/2 request on its own stream, so a slow consumer holds back only its own stream, and
//! PINGs every [`faros_tunnel::KEEP_ALIVE_INTERVAL`] notice a dead peer within
//! [`faros_tunnel::KEEP_ALIVE_TIMEOUT`].
//!
//! The registry keeps at most one session per agent: a new tunnel from the same agent (it
//! reconnected before the hub noticed the old one was dead) replaces and closes the old one.
//! Every change is recorded as "dirty" for the `Connected` condition writer
//! (`apiserver::connected`), which reads the registry's current answer rather than a queue
//! of events, so quick flaps can never leave a stale condition behind.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::sync::Notify;

use faros_machinery::status::{ApiError, Reason};

/// How long a request waits for the device's response headers unless the caller says
/// otherwise. Bodies (a followed log, a proxied download) may stream for longer.
pub(crate) const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the agent has to complete the HTTP/2 handshake after the 101.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Per-stream and per-connection receive windows. Small windows keep an idle session cheap
/// and bound what a stalled reader can make the hub buffer.
const STREAM_WINDOW: u32 = 256 * 1024;
const CONNECTION_WINDOW: u32 = 1024 * 1024;
/// The most the hub buffers per stream towards the device.
const MAX_SEND_BUFFER: usize = 256 * 1024;
/// Device-local headers are small; anything larger is refused by h2.
const MAX_HEADER_LIST: u32 = 64 * 1024;

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
    #[error("the tunnel to agent {agent} failed: {source}")]
    Broken {
        agent: String,
        #[source]
        source: hyper::Error,
    },
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

struct Session {
    id: u64,
    sender: SendRequest<Body>,
    /// Ends the session's connection task (when replaced).
    close: Arc<Notify>,
}

/// Every device session this hub holds.
#[derive(Default)]
pub(crate) struct Tunnels {
    sessions: Mutex<HashMap<AgentKey, Session>>,
    next_id: AtomicU64,
    /// Agents whose session came or went since the condition writer last looked.
    dirty: Mutex<HashSet<AgentKey>>,
    changed: Notify,
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
    ) -> Result<http::Response<Incoming>, TunnelError> {
        let display = || format!("{}/{}", agent.namespace, agent.name);
        let mut sender = self.sender(agent).ok_or_else(|| TunnelError::NotConnected(display()))?;
        let exchange = async {
            sender.ready().await?;
            sender.send_request(request).await
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(response)) => Ok(response),
            // A session that just died reads as "not connected": that is what the caller
            // can act on, and the registry forgets it a moment later.
            Ok(Err(e)) if e.is_closed() || e.is_canceled() => Err(TunnelError::NotConnected(display())),
            Ok(Err(source)) => Err(TunnelError::Broken {
                agent: display(),
                source,
            }),
            Err(_) => Err(TunnelError::Timeout {
                agent: display(),
                after: timeout,
            }),
        }
    }

    /// Whether the agent has a session on this hub.
    pub(crate) fn is_connected(&self, agent: &AgentKey) -> bool {
        self.sender(agent).is_some()
    }

    /// How many sessions this hub holds.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn sender(&self, agent: &AgentKey) -> Option<SendRequest<Body>> {
        let sessions = self.lock();
        let session = sessions.get(agent)?;
        // A connection whose task ended but has not been unregistered yet.
        (!session.sender.is_closed()).then(|| session.sender.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<AgentKey, Session>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs one session over `io` (the upgraded connection) until the peer goes away, PINGs
    /// go unanswered, the same agent connects again, or `shutdown` flips.
    pub(crate) async fn run_session<T>(
        self: Arc<Self>,
        agent: AgentKey,
        io: T,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) where
        T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let handshake = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(faros_tunnel::KEEP_ALIVE_INTERVAL)
            .keep_alive_timeout(faros_tunnel::KEEP_ALIVE_TIMEOUT)
            .keep_alive_while_idle(true)
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_send_buf_size(MAX_SEND_BUFFER)
            .max_header_list_size(MAX_HEADER_LIST)
            .handshake::<_, Body>(io);
        let (sender, connection) = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => {
                tracing::info!(%agent, error = %e, "tunnel handshake failed");
                return;
            }
            Err(_) => {
                tracing::info!(%agent, "tunnel handshake timed out");
                return;
            }
        };
        let close = Arc::new(Notify::new());
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let replaced = self.lock().insert(
            agent.clone(),
            Session {
                id,
                sender,
                close: close.clone(),
            },
        );
        if let Some(old) = replaced {
            tracing::info!(%agent, "a new tunnel replaces the agent's previous one");
            old.close.notify_one();
        }
        self.mark(&agent);
        tracing::info!(%agent, session = id, sessions = self.len(), "tunnel connected");
        let started = std::time::Instant::now();
        let ended = tokio::select! {
            result = connection => match result {
                Ok(()) => "closed by the agent".to_string(),
                Err(e) => e.to_string(),
            },
            _ = close.notified() => "replaced by a newer tunnel".to_string(),
            _ = crate::stopped(&mut shutdown) => "the hub is shutting down".to_string(),
        };
        {
            let mut sessions = self.lock();
            if sessions.get(&agent).is_some_and(|s| s.id == id) {
                sessions.remove(&agent);
            }
        }
        self.mark(&agent);
        tracing::info!(%agent, session = id, reason = %ended, seconds = started.elapsed().as_secs(), "tunnel disconnected");
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

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> AgentKey {
        AgentKey {
            cluster: "c1".into(),
            namespace: "default".into(),
            name: name.into(),
        }
    }

    /// Runs the agent end of a session on `io`: an HTTP/2 server answering `hello`.
    fn serve_agent(io: tokio::io::DuplexStream) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let service = hyper::service::service_fn(|_req: http::Request<Incoming>| async {
                Ok::<_, std::convert::Infallible>(http::Response::new(Body::from("hello")))
            });
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(hyper_util::rt::TokioIo::new(io), service)
                .await;
        })
    }

    async fn body_text(response: http::Response<Incoming>) -> String {
        use http_body_util::BodyExt;
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn get() -> http::Request<Body> {
        http::Request::get(faros_tunnel::LIVE_PATH).body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn requests_reach_the_connected_agent_and_fail_fast_otherwise() {
        let tunnels = Tunnels::new();
        let (_stop_tx, stop) = tokio::sync::watch::channel(false);
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

        let (hub_end, agent_end) = tokio::io::duplex(64 * 1024);
        let agent = serve_agent(agent_end);
        tokio::spawn(
            tunnels
                .clone()
                .run_session(key("a1"), hyper_util::rt::TokioIo::new(hub_end), stop.clone()),
        );
        assert_eq!(tunnels.changed().await, vec![key("a1")]);
        assert!(tunnels.is_connected(&key("a1")));
        let response = tunnels
            .request(&key("a1"), get(), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(body_text(response).await, "hello");
        assert!(!tunnels.is_connected(&key("a2")));

        // The agent goes away: the session is forgotten and reported as a change.
        agent.abort();
        assert_eq!(tunnels.changed().await, vec![key("a1")]);
        assert!(!tunnels.is_connected(&key("a1")));
        assert_eq!(tunnels.len(), 0);
    }

    #[tokio::test]
    async fn a_new_session_of_the_same_agent_replaces_the_old() {
        let tunnels = Tunnels::new();
        let (_stop_tx, stop) = tokio::sync::watch::channel(false);
        let (hub1, agent1) = tokio::io::duplex(64 * 1024);
        let _a1 = serve_agent(agent1);
        let first = tokio::spawn(tunnels.clone().run_session(
            key("a1"),
            hyper_util::rt::TokioIo::new(hub1),
            stop.clone(),
        ));
        tunnels.changed().await;
        let (hub2, agent2) = tokio::io::duplex(64 * 1024);
        let _a2 = serve_agent(agent2);
        tokio::spawn(
            tunnels
                .clone()
                .run_session(key("a1"), hyper_util::rt::TokioIo::new(hub2), stop.clone()),
        );
        // The first session ends without unregistering its successor.
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
        assert_eq!(body_text(response).await, "hello");
    }

    #[tokio::test]
    async fn garbage_instead_of_http2_ends_the_session_quietly() {
        use tokio::io::AsyncWriteExt;
        let tunnels = Tunnels::new();
        let (_stop_tx, stop) = tokio::sync::watch::channel(false);
        let (hub_end, mut agent_end) = tokio::io::duplex(64 * 1024);
        let session = tokio::spawn(
            tunnels
                .clone()
                .run_session(key("a1"), hyper_util::rt::TokioIo::new(hub_end), stop),
        );
        agent_end.write_all(&[0xff; 4096]).await.unwrap();
        tokio::time::timeout(Duration::from_secs(15), session)
            .await
            .unwrap()
            .unwrap();
        assert!(!tunnels.is_connected(&key("a1")));
    }
}
