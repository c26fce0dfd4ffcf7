//! What the agent answers on its tunnel: the hub's requests, one HTTP/2 stream each.
//!
//! The requests come on the agent's own connection to the hub, whose certificate it
//! verified, and the hub authorized each (per object and subresource) before sending it, so
//! there is no second authentication here; what the device allows is still the device's to say (`--allow-ports`).

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use faros_tunnel::InstanceRequest;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::sync::watch;

use crate::workloads::podman::PodmanConfig;
use crate::workloads::{Layout, StatusBoard, WorkloadSummary};

/// The body of every request and answer on the tunnel.
pub type TunnelBody = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// How long connecting to a device-local port may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where `kubectl exec` may run a command, beyond the hub's authorization of `pods/exec`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ExecPolicy {
    /// Nowhere: the device refuses every exec.
    None,
    /// In containers only (the default): a process workload has no container, and a
    /// command for it would run on the device itself.
    #[default]
    Containers,
    /// In containers, and on the device itself for process workloads.
    All,
}

/// Which device-local ports `agents/<name>/proxy` may reach.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortPolicy {
    /// Any port (`--allow-ports '*'`).
    Any,
    /// These ports, plus the ports the device's workloads publish.
    Listed(BTreeSet<u16>),
}

impl PortPolicy {
    /// Parses `--allow-ports`: `*`, or ports and ranges (`8080,9000-9010`).
    pub fn parse(values: &[String]) -> Result<PortPolicy, String> {
        let mut ports = BTreeSet::new();
        for value in values
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
        {
            if value == "*" {
                return Ok(PortPolicy::Any);
            }
            let bad = || format!("{value:?} is not a port (1-65535), a range such as 9000-9010, or *");
            let port = |s: &str| s.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad);
            match value.split_once('-') {
                Some((lo, hi)) => {
                    let (lo, hi) = (port(lo)?, port(hi)?);
                    if lo > hi {
                        return Err(bad());
                    }
                    ports.extend(lo..=hi);
                }
                None => {
                    ports.insert(port(value)?);
                }
            }
        }
        Ok(PortPolicy::Listed(ports))
    }
}

/// The tunnel's request handler: what it needs to know of the device and its workloads.
#[derive(Clone)]
pub struct Handler {
    pub ports: PortPolicy,
    /// Where `kubectl exec` may run commands (`--allow-exec`).
    pub exec: ExecPolicy,
    pub state_dir: PathBuf,
    /// The placements this agent runs, with the runtime of each.
    pub board: StatusBoard,
    pub summary: watch::Receiver<WorkloadSummary>,
    /// How podman is called, for the logs, exec and ports of containers.
    pub podman: PodmanConfig,
    /// Where placements keep their files (the process runtime's record and logs).
    pub layout: Layout,
}

impl Handler {
    /// Answers one request of the hub; public for the tests that drive it directly.
    pub async fn handle(self: Arc<Self>, request: Request<TunnelBody>) -> Result<Response<TunnelBody>, Infallible> {
        let path = request.uri().path().to_string();
        let response = if path == faros_tunnel::LIVE_PATH {
            self.live().await
        } else if let Some((port, _)) = faros_tunnel::parse_proxy_path(&path) {
            self.proxy(port, request).await
        } else if let Some(instance) = faros_tunnel::parse_instance_path(&path) {
            match (instance, request.method()) {
                (InstanceRequest::Log { placement, container }, &Method::GET) => {
                    self.log(&placement, &container, &request).await
                }
                (InstanceRequest::Exec { placement, container }, &Method::POST) => {
                    self.exec(&placement, &container, request).await
                }
                (InstanceRequest::PortForward { placement, port }, &Method::POST) => {
                    self.port_forward(&placement, port, request).await
                }
                (_, method) => refused(
                    StatusCode::METHOD_NOT_ALLOWED,
                    format!("{method} is not how {path:?} is asked for"),
                ),
            }
        } else {
            refused(
                StatusCode::NOT_FOUND,
                format!("this agent serves no {path:?} on its tunnel"),
            )
        };
        Ok(response)
    }

    async fn live(&self) -> Response<TunnelBody> {
        let workloads = self.summary.borrow().workloads.clone();
        let state = super::live::sample(&self.state_dir, workloads).await;
        let body = serde_json::to_vec(&state).unwrap_or_default();
        let mut response = Response::new(full(body));
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    }

    pub(super) fn allows(&self, port: u16) -> bool {
        match &self.ports {
            PortPolicy::Any => true,
            PortPolicy::Listed(ports) => ports.contains(&port) || self.board.endpoint_ports().contains(&port),
        }
    }

    /// Relays the request to `127.0.0.1:<port>` over HTTP/1.1, streaming both bodies.
    async fn proxy(&self, port: u16, request: Request<TunnelBody>) -> Response<TunnelBody> {
        if !self.allows(port) {
            return refused(
                StatusCode::FORBIDDEN,
                format!(
                    "port {port} is not open to the proxy on this device: it is neither published by a workload \
                     nor in the agent's --allow-ports"
                ),
            );
        }
        let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(("127.0.0.1", port))).await
        {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => {
                return refused(
                    StatusCode::BAD_GATEWAY,
                    format!("cannot reach 127.0.0.1:{port} on the device: {e}"),
                );
            }
            Err(_) => {
                return refused(
                    StatusCode::GATEWAY_TIMEOUT,
                    format!("127.0.0.1:{port} on the device did not accept a connection within {CONNECT_TIMEOUT:?}"),
                );
            }
        };
        let _ = tcp.set_nodelay(true);
        let (mut sender, connection) = match hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await {
            Ok(pair) => pair,
            Err(e) => return refused(StatusCode::BAD_GATEWAY, format!("127.0.0.1:{port}: {e}")),
        };
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(port, error = %e, "device-local connection ended");
            }
        });
        let (mut parts, body) = request.into_parts();
        let (_, path) = faros_tunnel::parse_proxy_path(parts.uri.path()).unwrap_or((port, "/".into()));
        let path_and_query = match parts.uri.query() {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        parts.uri = match path_and_query.parse() {
            Ok(uri) => uri,
            Err(e) => return refused(StatusCode::BAD_REQUEST, format!("cannot relay {path_and_query:?}: {e}")),
        };
        parts.version = http::Version::HTTP_11;
        faros_tunnel::strip_hop_by_hop(&mut parts.headers);
        if let Ok(host) = HeaderValue::from_str(&format!("127.0.0.1:{port}")) {
            parts.headers.insert(header::HOST, host);
        }
        match sender.send_request(Request::from_parts(parts, body)).await {
            Ok(response) => {
                let (mut parts, body) = response.into_parts();
                faros_tunnel::strip_hop_by_hop(&mut parts.headers);
                Response::from_parts(parts, body.map_err(Into::into).boxed())
            }
            Err(e) => refused(
                StatusCode::BAD_GATEWAY,
                format!("127.0.0.1:{port} failed to answer: {e}"),
            ),
        }
    }
}

fn full(bytes: impl Into<Bytes>) -> TunnelBody {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

/// An answer of the agent itself (not of a device-local server), marked so the hub turns
/// it into a Kubernetes `Status` with `message`.
pub(super) fn refused(code: StatusCode, message: String) -> Response<TunnelBody> {
    let mut response = Response::new(full(message));
    *response.status_mut() = code;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(faros_tunnel::REFUSED_HEADER, HeaderValue::from_static("1"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_policies() {
        let parse = |v: &[&str]| PortPolicy::parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(parse(&[]), Ok(PortPolicy::Listed(BTreeSet::new())));
        assert_eq!(
            parse(&["8080, 9000-9002", "22"]),
            Ok(PortPolicy::Listed([22, 8080, 9000, 9001, 9002].into()))
        );
        assert_eq!(parse(&["8080", "*"]), Ok(PortPolicy::Any));
        for bad in ["0", "65536", "http", "9-3", "1-"] {
            assert!(parse(&[bad]).is_err(), "{bad}");
        }
    }
}
