//! Several hub replicas: a device's tunnel lands on one of them, and the others relay to it,
//! so that any replica serves `kubectl logs`, `exec`, `port-forward`, `agents/proxy` and
//! `agents/live` for any device.
//!
//! Two kinds of records, both `coordination.k8s.io/v1` Leases in `root` / `kube-system`,
//! where tenants never see them:
//!
//! - **Replicas.** Each replica keeps a Lease named after itself (label
//!   `faros.sh/hub-replica`), renewed every [`RENEW_INTERVAL`], whose annotation says where
//!   its peers reach it. A replica whose Lease ran out is considered gone.
//! - **Tunnel owners.** When a replica gains a device's session it records itself as the
//!   holder of that device's Lease (`tunnel-<hash of the agent>`, the agent written out in an
//!   annotation); when it loses the session it removes the Lease only if it still holds it, so
//!   a device that moved to another replica is never unrecorded by the one it left. These
//!   Leases are written once per connect and disconnect, never renewed: the owner's
//!   liveness is its replica Lease.
//!
//! A replica that is asked for a device it does not hold looks the owner up in its cache
//! and forwards the request over HTTP/2 to the owner's [`RELAY_PATH`], authenticated with a
//! client certificate from the shared CA (user `system:hub:<replica>`, groups
//! `system:masters` and [`PEER_GROUP`]). The owner hands it to its session as if it had come
//! in itself; request and response bodies stream both ways, so exec and port-forward relay
//! like logs. Authorization and the audit record stay with the replica the user reached.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderName, HeaderValue, Method, StatusCode};
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{Value, json};

use super::Hub;
use crate::auth::PeerIdentity;
use crate::tunnel::{AgentKey, TunnelError};
use faros_machinery::status::ApiError;

/// Where a replica accepts requests relayed by its peers.
pub(crate) const RELAY_PATH: &str = "/internal/relay";
/// The group of the certificates replicas present to each other.
pub(crate) const PEER_GROUP: &str = "system:hubs";
/// Where the records live.
const WORKSPACE: &str = faros_api::tenancy::ROOT;
const NAMESPACE: &str = "kube-system";
const REPLICA_LABEL: &str = "faros.sh/hub-replica";
const PEER_ANNOTATION: &str = "faros.sh/peer-address";
const AGENT_ANNOTATION: &str = "faros.sh/tunnel-agent";
/// How often a replica renews its Lease, and how long the Lease lasts without renewal.
const RENEW_INTERVAL: Duration = Duration::from_secs(10);
const REPLICA_LEASE_SECONDS: i64 = 30;
/// Who the records are written as.
const WRITER: (&str, &[&str]) = ("system:faros-relay", &["system:masters"]);
/// The relayed request's target, in headers of the request to the owner.
const CLUSTER_HEADER: HeaderName = HeaderName::from_static("faros-relay-cluster");
const NAMESPACE_HEADER: HeaderName = HeaderName::from_static("faros-relay-namespace");
const NAME_HEADER: HeaderName = HeaderName::from_static("faros-relay-agent");
const PATH_HEADER: HeaderName = HeaderName::from_static("faros-relay-path");
/// Set by an owner that no longer holds the session: the device is simply not connected.
const MISS_HEADER: HeaderName = HeaderName::from_static("faros-relay-miss");
/// How long connecting to a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// This replica's part in relaying.
pub(crate) struct Relay {
    /// This replica's name, also its Lease's.
    pub(crate) replica: String,
    /// `host:port` at which the other replicas reach this one.
    peer_address: String,
    tls: Arc<rustls::ClientConfig>,
    /// One HTTP/2 connection per peer, made on first use and again after it broke.
    peers: tokio::sync::Mutex<HashMap<String, SendRequest<Body>>>,
}

impl Relay {
    /// `replica` names this replica; `peer_address` is where the others reach it; the PKI
    /// issues the certificate it presents to them.
    pub(crate) fn new(replica: String, peer_address: String, pki: &crate::pki::Pki) -> anyhow::Result<Relay> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pki.ca_cert_der().clone())?;
        let (cert, key) = pki.issue_client_cert(
            &format!("system:hub:{replica}"),
            &["system:masters", PEER_GROUP],
            Duration::from_secs(365 * 24 * 3600),
        )?;
        let chain = CertificateDer::pem_slice_iter(cert.as_bytes()).collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes())?;
        let mut tls = rustls::ClientConfig::builder_with_provider(crate::pki::ring_provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)?;
        tls.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Relay {
            replica,
            peer_address,
            tls: Arc::new(tls),
            peers: Default::default(),
        })
    }

    /// A fresh replica name: `hub-` and random hex (a valid Lease name).
    pub(crate) fn new_replica_name() -> String {
        format!("hub-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
    }

    /// Keeps this replica's Lease renewed until shutdown, then removes it so that peers stop
    /// relaying here at once.
    pub(crate) async fn run(self: Arc<Self>, hub: Arc<Hub>) {
        let mut shutdown = hub.shutdown.clone();
        loop {
            if let Err(e) = self.renew(&hub).await {
                tracing::warn!(replica = %self.replica, error = %e, "could not renew this replica's Lease");
            }
            tokio::select! {
                _ = tokio::time::sleep(RENEW_INTERVAL) => {}
                _ = crate::stopped(&mut shutdown) => break,
            }
        }
        let path = lease_path(Some(&self.replica));
        let _ = super::call(&hub, WRITER, Method::DELETE, &path, None).await;
    }

    async fn renew(&self, hub: &Arc<Hub>) -> anyhow::Result<()> {
        let lease = json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.replica,
                "namespace": NAMESPACE,
                "labels": {REPLICA_LABEL: "true"},
                "annotations": {PEER_ANNOTATION: self.peer_address},
            },
            "spec": {
                "holderIdentity": self.replica,
                "leaseDurationSeconds": REPLICA_LEASE_SECONDS,
                "renewTime": micro_time_now(),
            },
        });
        upsert(hub, &self.replica, &lease).await
    }

    /// Brings the device's owner record in line with this replica's sessions: recorded as
    /// the holder while it holds the session, removed (if still ours) once it does not.
    pub(crate) async fn record_owner(&self, hub: &Arc<Hub>, agent: &AgentKey) -> anyhow::Result<()> {
        let name = owner_lease_name(agent);
        let current = lease(hub, &name)
            .map(|l| l.value())
            .filter(|l| l["metadata"]["annotations"][AGENT_ANNOTATION] == agent.to_string());
        let ours = current
            .as_ref()
            .is_some_and(|l| l["spec"]["holderIdentity"] == self.replica.as_str());
        if hub.tunnels.is_connected(agent) {
            if ours {
                return Ok(());
            }
            let lease = json!({
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {
                    "name": name,
                    "namespace": NAMESPACE,
                    "annotations": {AGENT_ANNOTATION: agent.to_string()},
                },
                "spec": {"holderIdentity": self.replica, "acquireTime": micro_time_now()},
            });
            return upsert(hub, &name, &lease).await;
        }
        let Some(current) = current.filter(|_| ours) else {
            return Ok(());
        };
        // Only the version we read: if another replica took the device meanwhile, its
        // record stays.
        let options = json!({
            "apiVersion": "v1", "kind": "DeleteOptions",
            "preconditions": {"resourceVersion": current["metadata"]["resourceVersion"]},
        });
        let (code, body) = super::call(hub, WRITER, Method::DELETE, &lease_path(Some(&name)), Some(&options)).await?;
        match code {
            c if c.is_success() || c == StatusCode::NOT_FOUND || c == StatusCode::CONFLICT => Ok(()),
            _ => anyhow::bail!("{code}: {}", body["message"]),
        }
    }

    /// The peer address of the live replica other than this one that holds the device's
    /// session, if any.
    pub(crate) fn owner(&self, hub: &Hub, agent: &AgentKey) -> Option<(String, String)> {
        let record = lease(hub, &owner_lease_name(agent))?;
        let record = &record.value();
        if record["metadata"]["annotations"][AGENT_ANNOTATION] != agent.to_string() {
            return None;
        }
        let holder = record["spec"]["holderIdentity"].as_str()?;
        if holder == self.replica {
            return None;
        }
        let replica = lease(hub, holder)?;
        let replica = &replica.value();
        if !alive(replica) {
            return None;
        }
        let address = replica["metadata"]["annotations"][PEER_ANNOTATION].as_str()?;
        Some((holder.to_string(), address.to_string()))
    }

    /// Sends `request` (a device-internal request, as for [`crate::tunnel::Tunnels::request`])
    /// to replica `owner` at `address`, which holds the agent's session.
    pub(crate) async fn forward(
        &self,
        (owner, address): (String, String),
        agent: &AgentKey,
        request: http::Request<Body>,
        timeout: Duration,
    ) -> Result<http::Response<Incoming>, TunnelError> {
        let display = format!("{}/{}", agent.namespace, agent.name);
        let unreachable = |reason: String| TunnelError::Relay {
            agent: display.clone(),
            replica: owner.clone(),
            reason,
        };
        let (parts, body) = request.into_parts();
        let inner_path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
        let uri: http::Uri = format!("https://{address}{RELAY_PATH}")
            .parse()
            .map_err(|e: http::uri::InvalidUri| unreachable(e.to_string()))?;
        let mut out = http::Request::new(body);
        *out.method_mut() = parts.method;
        *out.uri_mut() = uri;
        *out.headers_mut() = parts.headers;
        for (name, value) in [
            (CLUSTER_HEADER, &agent.cluster),
            (NAMESPACE_HEADER, &agent.namespace),
            (NAME_HEADER, &agent.name),
            (PATH_HEADER, &inner_path),
        ] {
            let value = HeaderValue::from_str(value).map_err(|e| unreachable(e.to_string()))?;
            out.headers_mut().insert(name, value);
        }
        let mut sender = self.peer(&address).await.map_err(|e| unreachable(format!("{e:#}")))?;
        let exchange = async {
            sender.ready().await?;
            sender.send_request(out).await
        };
        let response = match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => {
                self.peers.lock().await.remove(&address);
                return Err(unreachable(e.to_string()));
            }
            Err(_) => {
                return Err(TunnelError::Timeout {
                    agent: display,
                    after: timeout,
                });
            }
        };
        if response.headers().contains_key(MISS_HEADER) {
            return Err(TunnelError::NotConnected(display));
        }
        Ok(response)
    }

    /// The connection to `address`, made if there is none that still works.
    async fn peer(&self, address: &str) -> anyhow::Result<SendRequest<Body>> {
        let mut peers = self.peers.lock().await;
        if let Some(sender) = peers.get(address).filter(|s| !s.is_closed()) {
            return Ok(sender.clone());
        }
        let (host, _) = address
            .rsplit_once(':')
            .ok_or_else(|| anyhow::anyhow!("peer address {address} has no port"))?;
        let name = ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']').to_string())?;
        let connect = async {
            let tcp = tokio::net::TcpStream::connect(address).await?;
            tcp.set_nodelay(true)?;
            let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await?;
            anyhow::ensure!(
                tls.get_ref().1.alpn_protocol() == Some(b"h2"),
                "the peer did not negotiate HTTP/2"
            );
            let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .keep_alive_interval(Duration::from_secs(10))
                .keep_alive_timeout(Duration::from_secs(10))
                .handshake::<_, Body>(TokioIo::new(tls))
                .await?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "connection to a peer replica ended");
                }
            });
            anyhow::Ok(sender)
        };
        let sender = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| anyhow::anyhow!("connecting timed out"))??;
        peers.insert(address.to_string(), sender.clone());
        Ok(sender)
    }
}

/// Serves a request a peer relayed: checks that a replica sent it, and hands it to the
/// device's session here.
pub(crate) async fn serve(hub: &Arc<Hub>, request: axum::extract::Request) -> Response {
    let is_peer = request
        .extensions()
        .get::<PeerIdentity>()
        .and_then(|p| p.0.as_ref())
        .is_some_and(|peer| {
            let (user, groups) = &**peer;
            user.starts_with("system:hub:")
                && groups.iter().any(|g| g == PEER_GROUP)
                && groups.iter().any(|g| g == "system:masters")
        });
    if !is_peer {
        return super::response::error(ApiError::forbidden(format!(
            "{RELAY_PATH} is for the hub's replicas only"
        )));
    }
    let (mut parts, body) = request.into_parts();
    let header = |name: &HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (Some(cluster), Some(namespace), Some(name), Some(path)) = (
        header(&CLUSTER_HEADER),
        header(&NAMESPACE_HEADER),
        header(&NAME_HEADER),
        header(&PATH_HEADER),
    ) else {
        return super::response::error(ApiError::bad_request("a relayed request names its agent and path"));
    };
    let agent = AgentKey {
        cluster,
        namespace,
        name,
    };
    for name in [CLUSTER_HEADER, NAMESPACE_HEADER, NAME_HEADER, PATH_HEADER] {
        parts.headers.remove(name);
    }
    let Ok(uri) = path.parse::<http::Uri>() else {
        return super::response::error(ApiError::bad_request("the relayed path is not a path"));
    };
    let mut inner = http::Request::new(Body::new(body));
    *inner.method_mut() = parts.method;
    *inner.uri_mut() = uri;
    *inner.headers_mut() = parts.headers;
    match hub
        .tunnels
        .request(&agent, inner, crate::tunnel::DEFAULT_REQUEST_TIMEOUT)
        .await
    {
        Ok(response) => response.map(Body::new),
        Err(e @ TunnelError::NotConnected(_)) => {
            let mut response = super::response::error(ApiError::from(e));
            response
                .headers_mut()
                .insert(MISS_HEADER, HeaderValue::from_static("1"));
            response
        }
        Err(e) => super::response::error(ApiError::from(e)),
    }
}

/// The owner record's name: Lease names are short, agent keys need not be.
fn owner_lease_name(agent: &AgentKey) -> String {
    format!(
        "tunnel-{:016x}",
        faros_api::workloads::fnv1a(agent.to_string().as_bytes())
    )
}

fn lease_path(name: Option<&str>) -> String {
    let base = format!("/clusters/{WORKSPACE}/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases");
    match name {
        Some(name) => format!("{base}/{name}"),
        None => base,
    }
}

/// A record as the cache holds it (shared, not copied: the sweep asks for every agent).
fn lease(hub: &Hub, name: &str) -> Option<std::sync::Arc<faros_storage::Object>> {
    let kind = hub.catalog.lookup(WORKSPACE, "coordination.k8s.io", "v1", "leases")?;
    hub.cache.get(&kind.key(WORKSPACE, Some(NAMESPACE), name))
}

/// Whether a replica's Lease was renewed within its duration (by this replica's clock).
fn alive(replica: &Value) -> bool {
    let Some(renewed) = replica["spec"]["renewTime"]
        .as_str()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
    else {
        return false;
    };
    let seconds = replica["spec"]["leaseDurationSeconds"]
        .as_i64()
        .unwrap_or(REPLICA_LEASE_SECONDS);
    jiff::Timestamp::now().as_second() - renewed.as_second() <= seconds
}

fn micro_time_now() -> Value {
    serde_json::to_value(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
        jiff::Timestamp::now(),
    ))
    .unwrap_or(Value::Null)
}

/// Creates the Lease, or replaces it whatever it holds (records are last-writer-wins; the
/// one conditional write, an owner's removal, is done apart).
async fn upsert(hub: &Arc<Hub>, name: &str, lease: &Value) -> anyhow::Result<()> {
    let collection = lease_path(None);
    let (mut code, mut body) = super::call(hub, WRITER, Method::POST, &collection, Some(lease)).await?;
    if code == StatusCode::NOT_FOUND {
        // The namespace is missing on a fresh hub.
        let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}});
        let namespaces = format!("/clusters/{WORKSPACE}/api/v1/namespaces");
        super::call(hub, WRITER, Method::POST, &namespaces, Some(&namespace)).await?;
        (code, body) = super::call(hub, WRITER, Method::POST, &collection, Some(lease)).await?;
    }
    if code == StatusCode::CONFLICT {
        (code, body) = super::call(hub, WRITER, Method::PUT, &lease_path(Some(name)), Some(lease)).await?;
    }
    anyhow::ensure!(code.is_success(), "{code}: {}", body["message"]);
    Ok(())
}
