//! The Agent subresources that reach the device itself: `tunnel` (the agent's control stream
//! and the streams it accepts, see [`crate::tunnel`]), `proxy/<port>/<path>` (an HTTP request relayed to a device-local port) and
//! `live` (the device's state, asked for now). They pass the same stages as every request —
//! authentication, the workspace, RBAC on the subresource and the object's name — and are
//! answered here instead of by the generic store.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, Method, StatusCode, header};
use http_body_util::BodyExt;

use super::Hub;
use super::request::ResourceRequest;
use crate::registry::ResourceKind;
use crate::tenancy::LogicalClusterRef;
use crate::tunnel::AgentKey;
use faros_machinery::status::{ApiError, ApiResult, Reason};
use faros_tunnel::{LIVE_SUBRESOURCE, PROXY_SUBRESOURCE, TUNNEL_SUBRESOURCE};

/// How long the device has to answer `live`.
const LIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// The most of a refusal's explanation the hub reads from the agent.
const MAX_REFUSAL: usize = 4096;

/// Whether `sub` of `kind` is answered here.
pub(super) fn serves(kind: &ResourceKind, sub: Option<&str>) -> bool {
    matches!(sub, Some(TUNNEL_SUBRESOURCE | PROXY_SUBRESOURCE | LIVE_SUBRESOURCE))
        && sub.is_some_and(|sub| kind.subresource(sub).is_some())
}

/// Answers an authorized request for one of the device subresources of an Agent.
pub(super) async fn serve(
    hub: &Arc<Hub>,
    cluster: &LogicalClusterRef,
    kind: &ResourceKind,
    req: &ResourceRequest,
    parts: http::request::Parts,
    body: Body,
) -> ApiResult<Response> {
    let (Some(namespace), Some(name)) = (req.namespace.as_deref(), req.name.as_deref()) else {
        return Err(ApiError::no_such_resource());
    };
    // The device is reached only for an Agent that exists: a deleted agent's lingering
    // session must not stay usable.
    if hub
        .cache
        .get(&kind.key(cluster.name.as_str(), Some(namespace), name))
        .is_none()
    {
        return Err(ApiError::not_found(&kind.group, &kind.resource, name));
    }
    let agent = AgentKey {
        cluster: cluster.name.to_string(),
        namespace: namespace.to_string(),
        name: name.to_string(),
    };
    match req.subresource.as_deref() {
        Some(TUNNEL_SUBRESOURCE) => tunnel(hub, agent, parts, body),
        Some(PROXY_SUBRESOURCE) => proxy(hub, &agent, parts, body).await,
        Some(LIVE_SUBRESOURCE) if parts.method == Method::GET => live(hub, &agent).await,
        Some(LIVE_SUBRESOURCE) => Err(ApiError::method_not_allowed(format!(
            "{} is not supported on agents/live; use GET",
            parts.method
        ))),
        _ => Err(ApiError::no_such_resource()),
    }
}

/// One of the agent's tunnel streams: its control stream, or (with `?session=<n>`) the
/// stream that takes up request `n`. Both answer at once and stream for as long as they last.
fn tunnel(hub: &Arc<Hub>, agent: AgentKey, parts: http::request::Parts, body: Body) -> ApiResult<Response> {
    let speaks = parts
        .headers
        .get(faros_tunnel::PROTOCOL_HEADER)
        .is_some_and(|v| v.as_bytes() == faros_tunnel::PROTOCOL_VERSION.as_bytes());
    if parts.method != Method::POST || !speaks {
        return Err(ApiError::bad_request(format!(
            "agents/tunnel carries the edge agent's tunnel: a POST with `{}: {}` (an agent that \
             asks otherwise speaks another tunnel protocol than this hub; upgrade it)",
            faros_tunnel::PROTOCOL_HEADER,
            faros_tunnel::PROTOCOL_VERSION
        )));
    }
    let session = super::pod_streams::query_param(&parts, faros_tunnel::SESSION_PARAMETER);
    let body = match session {
        None => hub.tunnels.open(agent, body),
        Some(id) => {
            let id = id.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!(
                    "{}={id:?} is not a session number",
                    faros_tunnel::SESSION_PARAMETER
                ))
            })?;
            hub.tunnels
                .accept(&agent, id, body)
                .map_err(|e| ApiError::new(Reason::NotFound, e.to_string()))?
        }
    };
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    Ok(response)
}

/// The port and device-local path of `…/agents/<name>/proxy/<port>[/<path>]`, from the raw
/// URL path (the request info keeps only the subresource).
fn proxy_target(path: &str, name: &str) -> ApiResult<(u16, String)> {
    let marker = format!("/agents/{name}/{PROXY_SUBRESOURCE}");
    let rest = path
        .find(&marker)
        .map(|i| &path[i + marker.len()..])
        .ok_or_else(ApiError::no_such_resource)?;
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    let (port, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let port = port.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| {
        ApiError::bad_request(format!(
            "agents/proxy needs a device port: …/agents/{name}/proxy/<port>/<path> with a port from 1 to 65535, not {port:?}"
        ))
    })?;
    Ok((port, tail.to_string()))
}

/// Relays one HTTP request to a device-local port and streams the answer back.
async fn proxy(hub: &Arc<Hub>, agent: &AgentKey, parts: http::request::Parts, body: Body) -> ApiResult<Response> {
    let (port, path) = proxy_target(parts.uri.path(), &agent.name)?;
    let uri = faros_tunnel::proxy_path(port, &path, parts.uri.query());
    let mut headers = parts.headers;
    faros_tunnel::strip_hop_by_hop(&mut headers);
    // The caller's credentials are for the hub, never for the device (kube-apiserver drops
    // them after authentication for the same reason); impersonation was already applied.
    headers.remove(header::AUTHORIZATION);
    let impersonation: Vec<_> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("impersonate-"))
        .cloned()
        .collect();
    for name in impersonation {
        headers.remove(name);
    }
    let mut request = http::Request::builder()
        .method(parts.method)
        .uri(uri)
        .body(body)
        .map_err(|e| ApiError::bad_request(format!("cannot relay this request: {e}")))?;
    *request.headers_mut() = headers;
    let response = hub
        .device_request(agent, request, crate::tunnel::DEFAULT_REQUEST_TIMEOUT)
        .await?;
    relay(agent, response).await
}

/// The device's answer as the caller's response; a refusal by the agent itself becomes a
/// Kubernetes `Status`.
async fn relay(agent: &AgentKey, response: http::Response<Body>) -> ApiResult<Response> {
    let (mut parts, body) = accepted(agent, response).await?.into_parts();
    faros_tunnel::strip_hop_by_hop(&mut parts.headers);
    Ok(Response::from_parts(parts, body))
}

/// The device's answer, unless the agent itself refused the request: that becomes a
/// Kubernetes `Status` naming the agent.
pub(super) async fn accepted(agent: &AgentKey, response: http::Response<Body>) -> ApiResult<http::Response<Body>> {
    let (parts, body) = response.into_parts();
    if parts.headers.contains_key(faros_tunnel::REFUSED_HEADER) {
        let bytes = http_body_util::Limited::new(body, MAX_REFUSAL)
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let reason = match parts.status {
            StatusCode::FORBIDDEN => Reason::Forbidden,
            StatusCode::NOT_FOUND => Reason::NotFound,
            StatusCode::BAD_REQUEST => Reason::BadRequest,
            StatusCode::GATEWAY_TIMEOUT => Reason::Timeout,
            _ => Reason::ServiceUnavailable,
        };
        return Err(ApiError::new(
            reason,
            format!(
                "agent {}/{}: {}",
                agent.namespace,
                agent.name,
                String::from_utf8_lossy(&bytes).trim()
            ),
        ));
    }
    Ok(http::Response::from_parts(parts, body))
}

/// Asks the device for its live state.
async fn live(hub: &Arc<Hub>, agent: &AgentKey) -> ApiResult<Response> {
    let request = http::Request::get(faros_tunnel::LIVE_PATH)
        .header(header::ACCEPT, "application/json")
        .body(Body::empty())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let response = hub.device_request(agent, request, LIVE_TIMEOUT).await?;
    relay(agent, response).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_targets() {
        let base = "/clusters/root:t/apis/edge.faros.sh/v1alpha1/namespaces/default/agents/dev1/proxy";
        assert_eq!(
            proxy_target(&format!("{base}/8080/"), "dev1").unwrap(),
            (8080, "/".into())
        );
        assert_eq!(
            proxy_target(&format!("{base}/8080"), "dev1").unwrap(),
            (8080, "/".into())
        );
        assert_eq!(
            proxy_target(&format!("{base}/8080/a/b.html"), "dev1").unwrap(),
            (8080, "/a/b.html".into())
        );
        for bad in ["", "/", "/0/", "/http/", "/99999/x"] {
            let e = proxy_target(&format!("{base}{bad}"), "dev1").unwrap_err();
            assert_eq!(e.code(), StatusCode::BAD_REQUEST, "{bad}");
        }
        // A namespace called like the resource does not confuse the split.
        let odd = "/apis/edge.faros.sh/v1alpha1/namespaces/agents/agents/proxy/proxy/81/x";
        assert_eq!(proxy_target(odd, "proxy").unwrap(), (81, "/x".into()));
    }
}
