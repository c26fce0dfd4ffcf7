//! `pods/log`, `pods/exec` and `pods/portforward` of the Pods that show Placements: the hub
//! speaks kubectl's protocols itself (`faros-streaming`: WebSocket and SPDY, every kubectl
//! from 1.27 on) and carries plain bytes to the instance's device over its tunnel, one
//! HTTP/2 stream per log, command or forwarded connection (`faros_tunnel::instance`).
//! kubectl's own bytes never reach a device, so the devices need to understand none of its
//! protocols, and what crosses the tunnel is bounded and framed by the hub.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use faros_streaming::{ExecOptions, ExecOutcome, ExecSession, ExecUpgrade, PortForwardUpgrade};
use faros_tunnel::frames;
use http::header;
use http_body_util::BodyExt;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::Hub;
use super::request::ResourceRequest;
use crate::auth::audit::{Record, Session};
use crate::registry::ResourceKind;
use crate::tenancy::LogicalClusterRef;
use crate::tunnel::{AgentKey, DEFAULT_REQUEST_TIMEOUT};
use faros_machinery::status::{ApiError, ApiResult};

/// The subresources answered here.
const LOG: &str = "log";
const EXEC: &str = "exec";
const ATTACH: &str = "attach";
const PORTFORWARD: &str = "portforward";
/// Frames in flight from kubectl towards a device.
const FRAMES_IN_FLIGHT: usize = 16;

/// Whether `sub` of `kind` is one of the Pod streams.
pub(super) fn serves(kind: &ResourceKind, sub: Option<&str>) -> bool {
    kind.group.is_empty()
        && kind.resource == "pods"
        && kind.storage_group == faros_api::EDGE_GROUP
        && matches!(sub, Some(LOG | EXEC | ATTACH | PORTFORWARD))
}

/// Answers an authorized `pods/<sub>` request.
pub(super) async fn serve(
    hub: &Arc<Hub>,
    cluster: &LogicalClusterRef,
    kind: &ResourceKind,
    req: &ResourceRequest,
    parts: http::request::Parts,
    record: Record,
) -> ApiResult<Response> {
    let (Some(namespace), Some(name)) = (req.namespace.as_deref(), req.name.as_deref()) else {
        return Err(ApiError::no_such_resource());
    };
    let stored = hub
        .cache
        .get(&kind.key(cluster.name.as_str(), Some(namespace), name))
        .ok_or_else(|| ApiError::not_found("", "pods", name))?;
    let pod = kind.strategy.project(&stored).unwrap_or_else(|| stored.value());
    let instance = Instance::of(&pod, cluster, namespace, name)?;
    match req.subresource.as_deref() {
        Some(LOG) => log(hub, &instance, &parts).await,
        Some(EXEC) => exec(hub, instance, parts, record).await,
        Some(ATTACH) => Err(ApiError::bad_request(
            "attach is not supported for workload instances: use kubectl exec, or kubectl logs -f for the output",
        )),
        Some(PORTFORWARD) => port_forward(hub, instance, parts, record),
        _ => Err(ApiError::no_such_resource()),
    }
}

/// One Pod's instance: where it runs and what it holds.
struct Instance {
    agent: AgentKey,
    name: String,
    uid: String,
    phase: String,
    containers: Vec<String>,
    default_container: Option<String>,
}

impl Instance {
    fn of(pod: &Value, cluster: &LogicalClusterRef, namespace: &str, name: &str) -> ApiResult<Instance> {
        let agent = pod["spec"]["nodeName"].as_str().unwrap_or_default().to_string();
        if agent.is_empty() {
            return Err(ApiError::bad_request(format!("pod {name} is not on any agent")));
        }
        let containers: Vec<String> = pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect();
        Ok(Instance {
            agent: AgentKey {
                cluster: cluster.name.to_string(),
                namespace: namespace.to_string(),
                name: agent,
            },
            name: name.to_string(),
            uid: pod["metadata"]["uid"].as_str().unwrap_or_default().to_string(),
            phase: pod["status"]["phase"].as_str().unwrap_or("Pending").to_string(),
            default_container: pod["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"]
                .as_str()
                .map(str::to_string),
            containers,
        })
    }

    /// The container asked for (or the default one), checked as kube-apiserver checks it.
    fn container(&self, asked: Option<&str>) -> ApiResult<String> {
        let chosen = asked
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .or_else(|| self.default_container.clone())
            .or_else(|| self.containers.first().cloned())
            .unwrap_or_default();
        if !self.containers.contains(&chosen) {
            return Err(ApiError::bad_request(format!(
                "container {chosen} is not valid for pod {}",
                self.name
            )));
        }
        Ok(chosen)
    }
}

/// The query parameter `key` of a request, percent-decoded.
pub(super) fn query_param(parts: &http::request::Parts, key: &str) -> Option<String> {
    let query = parts.uri.query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// A request to the instance's device, with its body.
fn tunnel_request(method: http::Method, path: String, body: Body) -> ApiResult<http::Request<Body>> {
    http::Request::builder()
        .method(method)
        .uri(path)
        .body(body)
        .map_err(|e| ApiError::bad_request(format!("cannot relay this request: {e}")))
}

/// A body fed by a channel: what kubectl sends, framed, on its way to the device.
fn channel_body(rx: mpsc::Receiver<Bytes>) -> Body {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (Ok::<_, Infallible>(chunk), rx))
    });
    Body::from_stream(stream)
}

async fn log(hub: &Arc<Hub>, instance: &Instance, parts: &http::request::Parts) -> ApiResult<Response> {
    if parts.method != http::Method::GET {
        return Err(ApiError::method_not_allowed(format!(
            "{} is not supported on pods/log; use GET",
            parts.method
        )));
    }
    let container = instance.container(query_param(parts, "container").as_deref())?;
    let path = faros_tunnel::log_path(&instance.name, &container, parts.uri.query());
    let request = tunnel_request(http::Method::GET, path, Body::empty())?;
    let response = hub
        .device_request(&instance.agent, request, DEFAULT_REQUEST_TIMEOUT)
        .await?;
    let response = super::device::accepted(&instance.agent, response).await?;
    // kubectl reads the log line by line until the body ends; each chunk the device sends is
    // passed on as it comes.
    let mut out = Response::new(Body::new(response.into_body()));
    out.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(out)
}

async fn exec(hub: &Arc<Hub>, instance: Instance, parts: http::request::Parts, record: Record) -> ApiResult<Response> {
    if matches!(instance.phase.as_str(), "Succeeded" | "Failed") {
        return Err(ApiError::bad_request(format!(
            "cannot exec into a container in a completed pod; current phase is {}",
            instance.phase
        )));
    }
    let options = ExecOptions::from_query(parts.uri.query()).map_err(ApiError::bad_request)?;
    if options.command.is_empty() {
        return Err(ApiError::bad_request(
            "you must specify at least one command for the container",
        ));
    }
    let container = instance.container(options.container.as_deref())?;
    let mut request = http::Request::from_parts(parts, ());
    let upgrade = match ExecUpgrade::negotiate(&request) {
        Ok(upgrade) => upgrade,
        Err(refusal) => return Ok(refusal.into_response().into_response()),
    };
    let on_upgrade = crate::server::upgrade::on(&mut request);
    // The device starts the command before kubectl's connection is switched, so that an
    // agent that is away, or a command that cannot start, is a plain error response.
    let (tx, rx) = mpsc::channel::<Bytes>(FRAMES_IN_FLIGHT);
    let path = faros_tunnel::exec_path(&instance.name, &container, request.uri().query());
    let to_device = tunnel_request(http::Method::POST, path, channel_body(rx))?;
    let response = hub
        .device_request(&instance.agent, to_device, DEFAULT_REQUEST_TIMEOUT)
        .await?;
    let response = super::device::accepted(&instance.agent, response).await?;
    let switching = upgrade.response();
    let hub = hub.clone();
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        let Some(io) = on_upgrade.await else { return };
        let Ok(session) = upgrade.accept(io, &options).await else {
            return;
        };
        let (bytes_in, bytes_out, outcome) = relay_exec(session, tx, response.into_body()).await;
        if let Some(audit) = &hub.audit {
            let session = Session {
                device: format!("{}/{}", instance.agent.namespace, instance.agent.name),
                command: options.command.clone(),
                started,
                bytes_in,
                bytes_out,
                outcome,
            };
            audit.session(&record, &session);
        }
    });
    Ok(switching.map(|()| Body::empty()))
}

/// Copies kubectl's stdin and resizes to the device as frames, and the device's frames to
/// kubectl, until the command ends or either side goes away. Returns the bytes of stdin and
/// of output relayed, and how it ended, for the audit log.
async fn relay_exec(mut session: ExecSession, tx: mpsc::Sender<Bytes>, mut from_device: Body) -> (u64, u64, String) {
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = sent.clone();
    let mut received = 0u64;
    let stdin = session.take_stdin();
    let mut stdout = session.take_stdout();
    let mut stderr = session.take_stderr();
    let resizes = session.take_resizes();
    let disconnected = session.disconnected();
    let to_device = {
        let tx = tx.clone();
        async move {
            if let Some(mut stdin) = stdin {
                let mut buf = vec![0u8; frames::MAX_PAYLOAD];
                loop {
                    match stdin.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            counted.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                            if tx.send(frames::encode(frames::STDIN, &buf[..n])).await.is_err() {
                                return;
                            }
                        }
                    }
                }
                let _ = tx.send(frames::encode(frames::CLOSE_STDIN, &[])).await;
            }
            // Keep the stream open: closing it would read as the hub going away.
            std::future::pending::<()>().await
        }
    };
    let resizing = async move {
        if let Some(mut resizes) = resizes {
            while let Some(size) = resizes.next().await {
                let json = serde_json::json!({"width": size.width, "height": size.height});
                if tx
                    .send(frames::encode(frames::RESIZE, json.to_string().as_bytes()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
        std::future::pending::<()>().await
    };
    let from_device = async {
        let mut decoder = frames::Decoder::default();
        while let Some(frame) = from_device.frame().await {
            let Ok(frame) = frame else {
                return ExecOutcome::Failed("the connection to the agent was lost".into());
            };
            let Ok(data) = frame.into_data() else { continue };
            decoder.push(&data);
            loop {
                match decoder.next_frame() {
                    Ok(Some((frames::STDOUT, bytes))) => {
                        received += bytes.len() as u64;
                        if let Some(out) = stdout.as_mut() {
                            let _ = out.write_all(&bytes).await;
                        }
                    }
                    Ok(Some((frames::STDERR, bytes))) => {
                        received += bytes.len() as u64;
                        if let Some(err) = stderr.as_mut() {
                            let _ = err.write_all(&bytes).await;
                        }
                    }
                    Ok(Some((frames::EXIT, bytes))) => return exit_outcome(&bytes),
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e) => return ExecOutcome::Failed(format!("the agent sent a broken stream: {e}")),
                }
            }
        }
        ExecOutcome::Failed("the agent ended the command without an exit status".into())
    };
    let outcome = tokio::select! {
        outcome = from_device => Some(outcome),
        () = to_device => None,
        () = resizing => None,
        () = disconnected => None,
    };
    let sent = sent.load(std::sync::atomic::Ordering::Relaxed);
    let Some(outcome) = outcome else {
        return (sent, received, "the client went away".into());
    };
    let described = match &outcome {
        ExecOutcome::Exited(code) => format!("exit code {code}"),
        ExecOutcome::Failed(why) => why.clone(),
    };
    // The outputs end before the status, as kubectl expects.
    for out in [stdout.as_mut(), stderr.as_mut()].into_iter().flatten() {
        let _ = out.shutdown().await;
    }
    drop((stdout, stderr));
    let _ = session.finish(outcome).await;
    (sent, received, described)
}

fn exit_outcome(bytes: &[u8]) -> ExecOutcome {
    let value: Value = serde_json::from_slice(bytes).unwrap_or_default();
    match (value["exitCode"].as_i64(), value["error"].as_str()) {
        (Some(code), _) => ExecOutcome::Exited(i32::try_from(code).unwrap_or(1)),
        (None, Some(error)) => ExecOutcome::Failed(error.to_string()),
        (None, None) => ExecOutcome::Failed("the agent sent an exit status the hub cannot read".into()),
    }
}

fn port_forward(
    hub: &Arc<Hub>,
    instance: Instance,
    parts: http::request::Parts,
    record: Record,
) -> ApiResult<Response> {
    if instance.phase != "Running" {
        return Err(ApiError::bad_request(format!(
            "unable to forward ports to pod {}: it is not running (phase {})",
            instance.name, instance.phase
        )));
    }
    let mut request = http::Request::from_parts(parts, ());
    let upgrade = match PortForwardUpgrade::negotiate(&request) {
        Ok(upgrade) => upgrade,
        Err(refusal) => return Ok(refusal.into_response().into_response()),
    };
    let on_upgrade = crate::server::upgrade::on(&mut request);
    let switching = upgrade.response();
    let hub = hub.clone();
    let instance = Arc::new(instance);
    let record = Arc::new(record);
    tokio::spawn(async move {
        let Some(io) = on_upgrade.await else { return };
        let connect = move |port: u16| {
            let hub = hub.clone();
            let instance = instance.clone();
            let record = record.clone();
            async move { forward(hub, instance, record, port).await }
        };
        upgrade.serve(io, connect).await;
    });
    Ok(switching.map(|()| Body::empty()))
}

/// One forwarded connection: a byte pipe to `port` of the instance, through the tunnel,
/// recorded in the audit log when the instance's side ends.
async fn forward(
    hub: Arc<Hub>,
    instance: Arc<Instance>,
    record: Arc<Record>,
    port: u16,
) -> Result<tokio::io::DuplexStream, String> {
    let started = std::time::Instant::now();
    let refused = |cause: String| {
        format!(
            "error forwarding port {port} to pod {}, uid {}: {cause}",
            instance.name, instance.uid
        )
    };
    let (tx, rx) = mpsc::channel::<Bytes>(FRAMES_IN_FLIGHT);
    let path = faros_tunnel::portforward_path(&instance.name, port);
    let request = tunnel_request(http::Method::POST, path, channel_body(rx)).map_err(|e| refused(e.to_string()))?;
    let response = hub
        .device_request(&instance.agent, request, DEFAULT_REQUEST_TIMEOUT)
        .await
        .map_err(|e| refused(ApiError::from(e).to_string()))?;
    let response = super::device::accepted(&instance.agent, response)
        .await
        .map_err(|e| refused(e.to_string()))?;
    let (local, remote) = tokio::io::duplex(frames::MAX_PAYLOAD);
    let (mut read_half, mut write_half) = tokio::io::split(remote);
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = sent.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; frames::MAX_PAYLOAD];
        loop {
            match read_half.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    counted.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                    if tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    tokio::spawn(async move {
        let mut body = response.into_body();
        let mut received = 0u64;
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                received += data.len() as u64;
                if write_half.write_all(&data).await.is_err() {
                    break;
                }
            }
        }
        let _ = write_half.shutdown().await;
        if let Some(audit) = &hub.audit {
            let session = Session {
                device: format!("{}/{}", instance.agent.namespace, instance.agent.name),
                command: vec![format!("port {port}")],
                started,
                bytes_in: sent.load(std::sync::atomic::Ordering::Relaxed),
                bytes_out: received,
                outcome: "closed".into(),
            };
            audit.session(&record, &session);
        }
    });
    Ok(local)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_statuses() {
        assert!(matches!(exit_outcome(br#"{"exitCode":3}"#), ExecOutcome::Exited(3)));
        assert!(
            matches!(exit_outcome(br#"{"error":"no such container"}"#), ExecOutcome::Failed(m) if m == "no such container")
        );
        assert!(matches!(exit_outcome(b"garbage"), ExecOutcome::Failed(_)));
    }
}
