//! The HTTP face of the hub: request info, authentication, workspace resolution,
//! authorization, then either a non-resource endpoint (health, version, discovery, OpenAPI)
//! or the generic resource handlers.

pub mod body;
pub(crate) mod connected;
mod device;
pub mod discovery;
mod gc_support;
pub(crate) mod inflight;
pub(crate) mod join;
pub mod managed_fields;
pub mod openapi;
pub mod patch;
mod pod_streams;
pub mod query;
pub(crate) mod relay;
pub mod request;
pub mod response;
pub mod store;
pub mod watch;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::Response;
use http::{HeaderValue, Method, StatusCode, header};
use serde_json::json;
use tokio::sync::watch as signal;

use crate::auth::{Authenticator, Outcome, User};
use crate::registry::{Catalog, ResourceKind};
use crate::tenancy;
use crate::tenancy::ClusterScope;
use crate::tenancy::export_view::{Access, ExportView};
use faros_machinery::status::{ApiError, ApiResult};
use faros_storage::Cache;
use request::{ClusterTarget, Target};

/// Shared state of a running hub.
pub struct Hub {
    pub cache: Arc<Cache>,
    pub catalog: Catalog,
    pub authenticator: Authenticator,
    pub authorizer: crate::auth::Authorizer,
    /// Flips to true when the hub shuts down; open watches end.
    pub shutdown: signal::Receiver<bool>,
    /// `host:port` clients use to reach the hub (for discovery's server addresses).
    pub external_address: String,
    /// `https://host:port`, the base of every workspace URL.
    pub external_url: String,
    /// The audit log (`--audit-log-path`).
    pub audit: Option<crate::auth::audit::AuditLog>,
    /// The device tunnels this hub holds.
    pub(crate) tunnels: Arc<crate::tunnel::Tunnels>,
    /// Relaying to the replica that holds a device's tunnel (None for a lone hub).
    pub(crate) relay: Option<Arc<relay::Relay>>,
    /// What `/livez`, `/readyz` and `/healthz` check.
    pub(crate) health: Arc<crate::health::Health>,
    /// What `/metrics` reports.
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    /// Workspace paths requests named before.
    pub(crate) paths: tenancy::ResolvedPaths,
    /// The caps on requests served at once.
    pub(crate) inflight: inflight::InflightLimits,
}

/// How long a request that arrives while the hub starts waits for it before it is told to
/// come back.
const STARTUP_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Marks a request this process sends itself through [`call`]: it passes while the hub is
/// still starting.
#[derive(Debug, Clone, Copy)]
struct InProcess;

impl Hub {
    /// Sends a device-internal request to the agent's device: over its tunnel if this
    /// replica holds it, else through the replica that does.
    pub(crate) async fn device_request(
        &self,
        agent: &crate::tunnel::AgentKey,
        request: http::Request<axum::body::Body>,
        timeout: std::time::Duration,
    ) -> Result<http::Response<axum::body::Body>, crate::tunnel::TunnelError> {
        if !self.tunnels.is_connected(agent)
            && let Some(relay) = &self.relay
            && let Some(owner) = relay.owner(self, agent)
        {
            return Ok(relay
                .forward(owner, agent, request, timeout)
                .await?
                .map(axum::body::Body::new));
        }
        self.tunnels.request(agent, request, timeout).await
    }

    /// Whether some replica (this one or a live peer) holds the agent's tunnel.
    pub(crate) fn device_connected(&self, agent: &crate::tunnel::AgentKey) -> bool {
        self.tunnels.is_connected(agent) || self.relay.as_ref().is_some_and(|r| r.owner(self, agent).is_some())
    }
}

pub fn router(hub: Arc<Hub>) -> Router {
    Router::new().fallback(handle).with_state(hub)
}

/// A kube-rs client whose requests go through the router in this process, as `user` with
/// `groups` (as a client certificate would carry them): the transport of the in-process
/// controllers. Their requests are authenticated, authorized, admitted, audited and counted
/// as any client's, and their watches are the same streams; only TLS, the socket and HTTP
/// framing are left out, which on a fleet's heartbeats is most of what the controllers cost.
pub(crate) fn in_process_client(hub: Arc<Hub>, user: &str, groups: &[&str]) -> kube::Client {
    in_process_client_with(hub, user, groups, None)
}

/// [`in_process_client`] for controllers that read only objects' metadata: its watches leave
/// out updates that keep the metadata (see [`watch::MetadataWatch`]).
pub(crate) fn in_process_metadata_client(hub: Arc<Hub>, user: &str, groups: &[&str]) -> kube::Client {
    in_process_client_with(hub, user, groups, Some(watch::MetadataWatch))
}

fn in_process_client_with(
    hub: Arc<Hub>,
    user: &str,
    groups: &[&str],
    metadata_watch: Option<watch::MetadataWatch>,
) -> kube::Client {
    use tower::ServiceExt;
    let identity = crate::auth::PeerIdentity::of(user, groups);
    let router = router(hub);
    let service = tower::service_fn(move |request: http::Request<kube::client::Body>| {
        let mut request = request.map(axum::body::Body::new);
        request.extensions_mut().insert(identity.clone());
        if let Some(marker) = metadata_watch {
            request.extensions_mut().insert(marker);
        }
        // Each request is a task of its own, as a server spawns one per stream: callers
        // that keep many requests in flight from one task (the lifecycle controller marking
        // a site that went dark) would otherwise run every handler on that one thread. A
        // caller that gives up ends its handler, as a client hanging up does (a controller
        // that lost its leadership leaves no write behind).
        let mut handler = faros_controllers::AbortOnDrop(tokio::spawn(tracing::Instrument::in_current_span(
            router.clone().oneshot(request),
        )));
        async move {
            match (&mut handler.0).await {
                Ok(Ok(response)) => Ok(response),
                Ok(Err(never)) => match never {},
                Err(failed) => Err(tower::BoxError::from(failed)),
            }
        }
    });
    // As a client built from a kubeconfig does, answers of 429, 503 and 504 (storage briefly
    // unavailable, a revision another replica wrote not seen yet) are retried after a pause.
    let service = tower::ServiceBuilder::new()
        .layer(tower::retry::RetryLayer::new(
            kube::client::retry::RetryPolicy::server_retry(),
        ))
        .service(service);
    kube::Client::new(service, "default")
}

/// Sends one request through the router in this process, as `user` (name and groups, as a
/// client certificate would carry them): the hub's own bootstrap writes this way, and
/// handler tests do. Writes are JSON, patches JSON merge patches.
pub(crate) async fn call(
    hub: &Arc<Hub>,
    user: (&str, &[&str]),
    method: Method,
    path: &str,
    body: Option<&serde_json::Value>,
) -> anyhow::Result<(StatusCode, serde_json::Value)> {
    use http_body_util::BodyExt;
    let response = send(hub, user, method, path, body).await?;
    let status = response.status();
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    ))
}

/// [`call`], answering with the response as it streams (a watch).
pub(crate) async fn send(
    hub: &Arc<Hub>,
    user: (&str, &[&str]),
    method: Method,
    path: &str,
    body: Option<&serde_json::Value>,
) -> anyhow::Result<Response> {
    use tower::ServiceExt;
    let content_type = if method == Method::PATCH {
        "application/merge-patch+json"
    } else {
        "application/json"
    };
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, content_type)
        .extension(InProcess)
        .extension(crate::auth::PeerIdentity::of(user.0, user.1))
        .body(axum::body::Body::from(match body {
            Some(v) => serde_json::to_vec(v)?,
            None => Vec::new(),
        }))?;
    Ok(router(hub.clone()).oneshot(request).await?)
}

async fn handle(State(hub): State<Arc<Hub>>, request: Request) -> Response {
    let started = std::time::Instant::now();
    let path = request.uri().path().to_string();
    if path == relay::RELAY_PATH {
        return relay::serve(&hub, request).await;
    }
    // Probes: anyone may ask whether the hub lives and is ready (single checks, which give
    // reasons, need a permission).
    if let Some((endpoint, None)) = crate::health::Endpoint::parse(&path) {
        return crate::health::response(crate::health::serve(&hub, endpoint, None, request.uri().query()).await);
    }
    if let Some(response) = public_endpoint(&hub, &path) {
        return response;
    }
    // Until the start-up objects exist, only the hub's own requests are served; others
    // wait for them a while.
    if !hub.health.bootstrapped()
        && request.extensions().get::<InProcess>().is_none()
        && !hub.health.wait_bootstrapped(STARTUP_WAIT).await
    {
        let mut starting = ApiError::new(
            faros_machinery::status::Reason::ServiceUnavailable,
            "the hub is starting",
        );
        starting.retry_after = Some(1);
        return response::error(starting);
    }
    let _in_flight = hub.metrics.in_flight(request.method());
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut record = crate::auth::audit::Record::new(request.method(), request.uri());
    let mut outcome = hub.authenticator.authenticate(&request, &hub.cache);
    // A token signed with a key the issuer has just rotated in: fetch its keys and look again.
    if outcome == Outcome::Invalid {
        let token = crate::auth::bearer(&request).map(str::to_string);
        if let Some(token) = token
            && hub.authenticator.refresh_keys_for(&token).await
        {
            outcome = hub.authenticator.authenticate(&request, &hub.cache);
        }
    }
    let response = match outcome {
        Outcome::Authenticated(user) => {
            record.user = Some(user.clone());
            match route(hub.clone(), user, request, &mut record).await {
                Ok(response) => response,
                Err(e) => response::error(e),
            }
        }
        // Anonymous requests reach only the public endpoints, and `cluster-info`.
        Outcome::Anonymous => join::cluster_info(&hub, request.method(), &path)
            .unwrap_or_else(|| response::error(ApiError::unauthorized())),
        Outcome::Invalid => response::error(ApiError::unauthorized()),
    };
    let streaming = hub.metrics.request(
        &record,
        content_type.as_deref(),
        response.status().as_u16(),
        started.elapsed(),
    );
    if let Some(audit) = &hub.audit {
        audit.log(&record, response.status().as_u16(), started);
    }
    match streaming {
        Some(open) => held_while_streaming(response, open),
        None => response,
    }
}

/// `response` with `guard` dropped only when its body ends (a watch closes, a stream stops).
fn held_while_streaming(response: Response, guard: crate::metrics::GaugeGuard) -> Response {
    use http_body_util::BodyExt;
    let (parts, body) = response.into_parts();
    let body = body.map_frame(move |frame| {
        let _held = &guard;
        frame
    });
    Response::from_parts(parts, axum::body::Body::new(body))
}

/// Endpoints anyone may call, with or without credentials.
fn public_endpoint(hub: &Hub, path: &str) -> Option<Response> {
    let path = path.trim_end_matches('/');
    match path {
        "/version" => Some(response::json(StatusCode::OK, &version_info())),
        // The ServiceAccount issuer's discovery documents, so others can verify its tokens.
        "/.well-known/openid-configuration" => hub
            .authenticator
            .service_accounts()
            .map(|sa| response::json(StatusCode::OK, &sa.discovery_document())),
        "/openid/v1/jwks" => hub.authenticator.service_accounts().map(|sa| {
            response::bytes(
                StatusCode::OK,
                serde_json::to_vec(&sa.jwks()).unwrap_or_default(),
                "application/jwk-set+json",
            )
        }),
        _ => None,
    }
}

/// Kubernetes' version.Info. `major` and `minor` are the Kubernetes API level the hub serves
/// (kubectl dispatchers pick a client by them); the build is Faros' own.
pub fn version_info() -> serde_json::Value {
    use faros_cli::build::{BUILD_DATE, GIT_COMMIT, VERSION};
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": format!("v1.32.0+faros-{VERSION}"),
        "gitCommit": GIT_COMMIT,
        // Whether the tree had uncommitted changes is not recorded.
        "gitTreeState": "",
        "buildDate": BUILD_DATE,
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    })
}

/// Resolves a workspace path to its logical cluster. Unknown workspaces and those the user
/// may not enter answer identically, so existence does not leak.
fn resolve_cluster(hub: &Hub, user: &User, target: &ClusterTarget) -> ApiResult<ClusterScope> {
    let denied = || ApiError::forbidden("workspace access not permitted");
    match target {
        ClusterTarget::Wildcard if user.is_master() => Ok(ClusterScope::All),
        ClusterTarget::Wildcard => Err(denied()),
        ClusterTarget::Path(path) => {
            let cluster = hub.paths.resolve(&hub.cache, path).ok_or_else(denied)?;
            if hub.authorizer.may_enter(user, &cluster.name) {
                Ok(ClusterScope::One(cluster))
            } else {
                Err(denied())
            }
        }
    }
}

/// A request that passed the workspace gate: where it goes and as whom.
struct Entered {
    cluster: ClusterScope,
    user: User,
    /// Set when the request goes through an APIExport's view.
    view: Option<EnteredView>,
}

struct EnteredView {
    view: Arc<ExportView>,
    /// What the cluster shares with the export's owner (None for the `*` view).
    access: Option<Access>,
}

async fn route(
    hub: Arc<Hub>,
    user: User,
    request: Request,
    record: &mut crate::auth::audit::Record,
) -> ApiResult<Response> {
    let (parts, body) = request.into_parts();
    // Request info: what is asked of which workspace.
    let query = query::Query::parse(parts.uri.query())?;
    let info = request::parse(&parts.method, parts.uri.path(), query.watch)?;
    join::refuse_expired_registration(&hub, &user)?;
    if !user.is_master() {
        // RBAC changes acknowledged before this request arrived are in force for it.
        hub.authorizer.sync().await;
    }
    if info.view.is_none()
        && info.base.is_empty()
        && let Target::NonResource(path) = &info.target
        && hub_wide(path)
    {
        return serve_hub_wide(&hub, user, path, &parts, record).await;
    }
    // What is asked is recorded before any gate, so that refusals are audited and counted
    // with it too.
    let attributes = match &info.target {
        Target::Resource(resource) => {
            let attributes = request_attributes(resource, query.field_selector.as_deref());
            record.verb = resource.verb.to_string();
            record.group = resource.group.clone();
            record.version = resource.version.clone();
            record.resource = resource.resource.clone();
            record.subresource = resource.subresource.clone().unwrap_or_default();
            record.namespace = resource.namespace.clone().unwrap_or_default();
            record.name = attributes.resource.as_ref().map(|r| r.name.clone()).unwrap_or_default();
            Some(attributes)
        }
        Target::NonResource(_) => None,
    };
    // Workspace: the cluster (or all of them), the effective user, the export's view if any.
    let entered = enter(&hub, user, &info, &parts, record)?;
    // The cap on requests in flight, for the effective user (after impersonation, as
    // kube-apiserver counts), once the request is recorded.
    let _counted = hub
        .inflight
        .admit(&parts.method, &info.target, &entered.user)
        .map_err(|kind| {
            hub.metrics.dropped(kind);
            inflight::too_many_requests()
        })?;
    let resource = match info.target {
        Target::NonResource(path) => return serve_non_resource(&hub, entered, &path, &info.base, &parts, record).await,
        Target::Resource(r) => r,
    };
    let attributes = attributes.unwrap_or_else(|| request_attributes(&resource, query.field_selector.as_deref()));
    // Authorization, then the kind: without permission, a resource that does not exist looks
    // the same as one that does.
    let Entered { cluster, user, view } = entered;
    if cluster == ClusterScope::All && !resource.verb.is_collection_read() {
        return Err(ApiError::method_not_allowed(
            "only list and watch are supported across all workspaces",
        ));
    }
    let (kind, scope) = authorize(&hub, &cluster, &user, view, &resource, &attributes)?;
    crate::auth::agents::restrict(
        &user,
        &attributes,
        query.label_selector.as_deref(),
        query.field_selector.as_deref(),
    )?;
    if resource.namespace.is_some() && !kind.namespaced {
        return Err(ApiError::no_such_resource());
    }
    // The device's and pods' streams are boxed: their futures are several times the size of
    // the store's, and inline they would make every request's future, which the router
    // allocates and moves for each request (each heartbeat), that large too.
    if let (ClusterScope::One(one), store::Scope::Direct) = (&cluster, &scope)
        && device::serves(&kind, resource.subresource.as_deref())
    {
        return Box::pin(device::serve(&hub, one, &kind, &resource, parts, body)).await;
    }
    if let (ClusterScope::One(one), store::Scope::Direct) = (&cluster, &scope)
        && pod_streams::serves(&kind, resource.subresource.as_deref())
    {
        return Box::pin(pod_streams::serve(&hub, one, &kind, &resource, parts, record.clone())).await;
    }
    if let Some(sub) = resource.subresource.as_deref()
        && !kind.serves_subresource(sub, resource.verb.as_str())
    {
        return Err(ApiError::no_such_resource());
    }
    let representation = body::negotiate(&parts.headers)?;
    let ctx = store::Ctx {
        hub: hub.clone(),
        cluster,
        req: resource,
        kind,
        query,
        user,
        headers: parts.headers,
        representation,
        scope,
        metadata_watch: parts.extensions.get::<watch::MetadataWatch>().is_some(),
    };
    Ok(store::serve(ctx, body).await)
}

/// The workspace stage: an ordinary request enters its workspace (after impersonation, if
/// asked for); one through an APIExport's view enters through the view's gate.
fn enter(
    hub: &Hub,
    user: User,
    info: &request::RequestInfo,
    parts: &http::request::Parts,
    record: &mut crate::auth::audit::Record,
) -> ApiResult<Entered> {
    let entered = match &info.view {
        None => enter_workspace(hub, user, &info.cluster, &parts.headers, record)?,
        Some(view) => {
            if crate::auth::impersonation::requested(&parts.headers) {
                return Err(ApiError::forbidden(
                    "impersonation is not supported through an APIExport view",
                ));
            }
            let verb = match &info.target {
                Target::Resource(r) => r.verb.to_string(),
                Target::NonResource(_) => crate::auth::rbac::non_resource_verb(&parts.method),
            };
            enter_view(hub, user, view, &info.cluster, &verb)?
        }
    };
    record.workspace = entered.cluster.path().to_string();
    record.cluster = entered.cluster.name().to_string();
    if let Some(view) = &entered.view {
        record.api_export = Some(format!("{}:{}", view.view.cluster, view.view.name));
    }
    Ok(entered)
}

/// Paths about the whole hub rather than a workspace: `/metrics` and the single health
/// checks (`/readyz/<check>`).
fn hub_wide(path: &str) -> bool {
    path == "/metrics" || matches!(crate::health::Endpoint::parse(path), Some((_, Some(_))))
}

/// Serves a [`hub_wide`] path. Like kube-apiserver, which authorises them by its cluster's
/// RBAC, the hub asks the root workspace's, without the user having to enter it: the
/// default `system:monitoring` ClusterRole grants them to the group of that name.
async fn serve_hub_wide(
    hub: &Hub,
    user: User,
    path: &str,
    parts: &http::request::Parts,
    record: &mut crate::auth::audit::Record,
) -> ApiResult<Response> {
    use faros_api::tenancy::ROOT;
    let verb = crate::auth::rbac::non_resource_verb(&parts.method);
    record.verb = verb.clone();
    record.workspace = ROOT.to_string();
    record.cluster = ROOT.to_string();
    let user = if crate::auth::impersonation::requested(&parts.headers) {
        let effective = crate::auth::impersonation::apply(&hub.authorizer, user.clone(), ROOT, &parts.headers)?;
        record.impersonator = Some(user);
        record.user = Some(effective.clone());
        effective
    } else {
        user
    };
    hub.authorizer
        .check(&user, ROOT, &crate::auth::rbac::Attributes::non_resource(&verb, path))?;
    if parts.method != Method::GET && parts.method != Method::HEAD {
        return Err(ApiError::method_not_allowed(format!(
            "{} is not supported on {path}",
            parts.method
        )));
    }
    match crate::health::Endpoint::parse(path) {
        Some((endpoint, check)) => Ok(crate::health::response(
            crate::health::serve(hub, endpoint, check, parts.uri.query()).await,
        )),
        None => Ok(response::bytes(
            StatusCode::OK,
            hub.metrics.render(hub).into_bytes(),
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        )),
    }
}

/// Discovery, OpenAPI and the other paths that are not resources.
async fn serve_non_resource(
    hub: &Hub,
    entered: Entered,
    path: &str,
    base: &str,
    parts: &http::request::Parts,
    record: &mut crate::auth::audit::Record,
) -> ApiResult<Response> {
    let Entered { cluster, user, view } = entered;
    let verb = crate::auth::rbac::non_resource_verb(&parts.method);
    record.verb = verb.clone();
    if let (ClusterScope::One(cluster), None) = (&cluster, &view) {
        hub.authorizer.check(
            &user,
            &cluster.name,
            &crate::auth::rbac::Attributes::non_resource(&verb, path),
        )?;
    }
    if parts.method != Method::GET && parts.method != Method::HEAD {
        return Err(ApiError::method_not_allowed(format!(
            "{} is not supported on {path}",
            parts.method
        )));
    }
    // A workspace's view of the hub's health: the list alone, since the reasons a single
    // check gives (a store's address) are the operator's, not a tenant's.
    if let Some((endpoint, None)) = crate::health::Endpoint::parse(path) {
        return Ok(crate::health::response(
            crate::health::serve(hub, endpoint, None, parts.uri.query()).await,
        ));
    }
    let kinds = match &view {
        Some(EnteredView {
            view,
            access: Some(access),
        }) => view.kinds_shared(access),
        Some(entered) => entered.view.kinds(),
        None => match &cluster {
            ClusterScope::All => return Err(ApiError::no_such_resource()),
            ClusterScope::One(cluster) => hub.catalog.all_kinds(&cluster.name),
        },
    };
    non_resource(hub, &kinds, base, path, &parts.headers)
}

/// The authorization stage, then the kind: directly, the user's RBAC in the workspace; through
/// a view, what the binding workspace shares with the export's owner.
fn authorize(
    hub: &Hub,
    cluster: &ClusterScope,
    user: &User,
    view: Option<EnteredView>,
    resource: &request::ResourceRequest,
    attributes: &crate::auth::rbac::Attributes,
) -> ApiResult<(Arc<ResourceKind>, store::Scope)> {
    Ok(match view {
        Some(entered) => {
            let (kind, claim) = entered
                .view
                .lookup(&resource.group, &resource.version, &resource.resource)
                .ok_or_else(ApiError::no_such_resource)?;
            let rules = match &entered.access {
                Some(access) if !access.allows(&kind, claim.as_ref()) => {
                    return Err(match claim {
                        Some(_) => ApiError::forbidden(format!(
                            "this workspace has not accepted the permission claim of APIExport {:?} on {}",
                            entered.view.name,
                            group_resource(&kind.group, &kind.resource)
                        )),
                        // An exported resource this workspace does not serve (e.g. shadowed
                        // by a CRD of its own).
                        None => ApiError::no_such_resource(),
                    });
                }
                // Only RBAC writes read them (what the owner may grant through the view).
                Some(access) if kind.builtin && kind.group == crate::auth::rbac::GROUP => entered.view.rules(access),
                Some(_) | None => Vec::new(),
            };
            let scope = store::Scope::Export(Arc::new(store::ViewAccess {
                view: entered.view,
                kind: kind.clone(),
                claim,
                rules,
            }));
            (kind, scope)
        }
        None => {
            // Authorized before the kind is looked up, as kube-apiserver does: without
            // permission, a resource that does not exist looks the same as one that does.
            let kind = match &cluster {
                ClusterScope::One(cluster) => {
                    hub.authorizer.check(user, &cluster.name, attributes)?;
                    hub.catalog
                        .lookup(&cluster.name, &resource.group, &resource.version, &resource.resource)
                }
                // The wildcard view serves kinds that mean the same everywhere: built-in and
                // system kinds, and resources exported under one identity.
                ClusterScope::All => {
                    hub.catalog
                        .lookup_wildcard(&resource.group, &resource.version, &resource.resource)
                }
            }
            .ok_or_else(ApiError::no_such_resource)?;
            (kind, store::Scope::Direct)
        }
    })
}

/// The attributes of a resource request, as kube-apiserver's RequestInfoFactory derives
/// them: a Namespace object is in its own namespace, and a list or watch pinned to one name
/// by a `metadata.name=` field selector is about that name (so `resourceNames` apply).
fn request_attributes(req: &request::ResourceRequest, field_selector: Option<&str>) -> crate::auth::rbac::Attributes {
    let mut name = req.name.clone().unwrap_or_default();
    if name.is_empty()
        && req.verb.is_collection_read()
        && let Some(selector) = field_selector
        && let Ok(parsed) = faros_machinery::selector::FieldSelector::parse(selector)
        && let Some(pinned) = parsed.exact("metadata.name")
        && !pinned.is_empty()
        && pinned != "."
        && pinned != ".."
        && !pinned.contains(['/', '%'])
    {
        name = pinned.to_string();
    }
    let namespace = match &req.namespace {
        Some(ns) => ns.clone(),
        None if req.resource == "namespaces" && req.group.is_empty() => req.name.clone().unwrap_or_default(),
        None => String::new(),
    };
    crate::auth::rbac::Attributes {
        verb: req.verb.to_string(),
        resource: Some(crate::auth::rbac::ResourceAttributes {
            group: req.group.clone(),
            resource: req.resource.clone(),
            subresource: req.subresource.clone(),
            namespace,
            name,
        }),
        path: String::new(),
    }
}

fn group_resource(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

/// The gate of an ordinary request: the workspace must exist and the user may enter it
/// (after impersonation, if asked for).
fn enter_workspace(
    hub: &Hub,
    user: User,
    target: &ClusterTarget,
    headers: &http::HeaderMap,
    record: &mut crate::auth::audit::Record,
) -> ApiResult<Entered> {
    let cluster = resolve_cluster(hub, &user, target)?;
    if !crate::auth::impersonation::requested(headers) {
        return Ok(Entered {
            cluster,
            user,
            view: None,
        });
    }
    let ClusterScope::One(one) = &cluster else {
        return Err(ApiError::forbidden("workspace access not permitted"));
    };
    let effective = crate::auth::impersonation::apply(&hub.authorizer, user.clone(), &one.name, headers)?;
    if !hub.authorizer.may_enter(&effective, &one.name) {
        return Err(ApiError::forbidden("workspace access not permitted"));
    }
    record.impersonator = Some(user);
    record.user = Some(effective.clone());
    Ok(Entered {
        cluster,
        user: effective,
        view: None,
    })
}

/// The gate of an APIExport view: the user needs `<verb>` on `apiexports/content` of the
/// export in its workspace (as in kcp), and a single target cluster must bind the export.
/// A missing export, a denied user and an unbound cluster answer alike.
fn enter_view(
    hub: &Hub,
    user: User,
    reference: &request::ExportViewRef,
    target: &ClusterTarget,
    verb: &str,
) -> ApiResult<Entered> {
    let denied = || ApiError::forbidden("workspace access not permitted");
    let export_cluster = hub.paths.resolve(&hub.cache, &reference.workspace).ok_or_else(denied)?;
    let mut content =
        crate::auth::rbac::Attributes::resource(verb, faros_api::apis::GROUP, "apiexports", "", &reference.export);
    if let Some(resource) = content.resource.as_mut() {
        resource.subresource = Some("content".into());
    }
    if !hub.authorizer.allows(&user, &export_cluster.name, &content) {
        return Err(denied());
    }
    let view = Arc::new(ExportView::load(&hub.catalog, &export_cluster.name, &reference.export).ok_or_else(denied)?);
    let (cluster, access) = match target {
        ClusterTarget::Wildcard => (ClusterScope::All, None),
        ClusterTarget::Path(path) => {
            let cluster = hub.paths.resolve(&hub.cache, path).ok_or_else(denied)?;
            let access = view.access_in(&hub.cache, &cluster.name, None).ok_or_else(denied)?;
            (ClusterScope::One(cluster), Some(access))
        }
    };
    Ok(Entered {
        cluster,
        user,
        view: Some(EnteredView { view, access }),
    })
}

fn non_resource(
    hub: &Hub,
    kinds: &[Arc<ResourceKind>],
    base: &str,
    path: &str,
    headers: &http::HeaderMap,
) -> ApiResult<Response> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let kinds = || kinds;
    let found = |v: Option<serde_json::Value>| {
        v.map(|v| response::json(StatusCode::OK, &v))
            .ok_or_else(ApiError::no_such_resource)
    };
    let parts: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    match parts.as_slice() {
        ["version"] => Ok(response::json(StatusCode::OK, &version_info())),
        ["api"] | ["apis"] => {
            let legacy = parts[0] == "api";
            if let Some(version) = discovery::negotiate_aggregated(accept) {
                let body = discovery::aggregated(kinds(), legacy, version);
                let mut response = response::json(StatusCode::OK, &body);
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(discovery::aggregated_content_type(version)),
                );
                return Ok(response);
            }
            if legacy {
                Ok(response::json(
                    StatusCode::OK,
                    &discovery::api_versions(&hub.external_address),
                ))
            } else {
                Ok(response::json(StatusCode::OK, &discovery::api_group_list(kinds())))
            }
        }
        ["api", version] => found(discovery::api_resource_list(kinds(), "", version)),
        ["apis", group] => found(discovery::api_group(kinds(), group)),
        ["apis", group, version] => found(discovery::api_resource_list(kinds(), group, version)),
        ["openapi", "v2"] => {
            let (content_type, body) = openapi::v2_stub(accept);
            Ok(response::bytes(StatusCode::OK, body, content_type))
        }
        ["openapi", "v3"] => Ok(response::json(StatusCode::OK, &openapi::index(kinds(), base))),
        ["openapi", "v3", "api", version] => found(openapi::group_version(kinds(), "", version)),
        ["openapi", "v3", "apis", group, version] => found(openapi::group_version(kinds(), group, version)),
        _ => Err(ApiError::no_such_resource()),
    }
}

#[cfg(test)]
mod tests {
    /// The size of the future an async function of two arguments returns, without calling it.
    fn future_size<A, B, R>(_: &impl FnOnce(A, B) -> R) -> usize {
        std::mem::size_of::<R>()
    }

    /// The router allocates and moves each request's future (every heartbeat's): the paths
    /// with large futures of their own (device and pod streams) are boxed, so that it stays
    /// well under 8 KiB (5.4 KiB in a test build). Unboxed, it was 14 KiB.
    #[test]
    fn a_request_future_stays_small() {
        let size = future_size(&super::handle);
        assert!(size <= 8 * 1024, "a request's future takes {size} bytes");
    }
}
