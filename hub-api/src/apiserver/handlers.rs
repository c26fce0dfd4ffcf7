//! The one generic REST path: get, list, create, update, patch, delete and deletecollection
//! for every kind. Kind-specific behaviour comes only from the kind's data and strategy.

use std::sync::Arc;

use axum::response::Response;
use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde_json::{Map, Value, json};

use super::body::{self, Representation};
use super::object;
use super::query::{FieldValidation, Propagation, Query, ResourceVersionMatch};
use super::request::ResourceRequest;
use super::{Hub, response};
use crate::admission::{self, Operation};
use crate::auth::User;
use crate::registry::ResourceKind;
use faros_api::meta::{FOREGROUND_FINALIZER, ORPHAN_FINALIZER};
use faros_api::tenancy::CLUSTER_ANNOTATION;
use faros_machinery::selector::{FieldSelector, LabelSelector};
use faros_machinery::status::{ApiError, ApiResult, FieldError, Reason};
use faros_machinery::table;
use faros_machinery::validation::validate_object_meta;
use faros_storage::Object;
use faros_storage::{StorageError, WriteOp};

/// Everything about one resource request, decoded.
pub struct Ctx {
    pub hub: Arc<Hub>,
    /// The logical cluster the request is served from ("*" for the wildcard view).
    pub cluster: String,
    /// Its workspace path, e.g. `root:acme`.
    pub cluster_path: String,
    pub req: ResourceRequest,
    pub kind: Arc<ResourceKind>,
    pub query: Query,
    pub user: User,
    pub headers: HeaderMap,
    pub representation: Representation,
    pub scope: Scope,
}

/// Under whose authority a request acts in its cluster.
pub enum Scope {
    /// The requester's own RBAC in the cluster (checked before the handlers run).
    Direct,
    /// An APIExport owner's, through the export's view.
    Export(Arc<ViewAccess>),
}

/// What the export's owner may reach with one request through the export's view.
pub struct ViewAccess {
    pub view: Arc<crate::tenancy::export_view::ExportView>,
    /// The requested kind.
    pub kind: Arc<ResourceKind>,
    /// The claim granting it (None: one of the export's own resources).
    pub claim: Option<faros_api::apis::PermissionClaim>,
    /// What the owner holds in the (single) target cluster, as RBAC rules.
    pub rules: Vec<crate::auth::rbac::Rule>,
}

impl ViewAccess {
    /// Whether `cluster` shares the kind with the owner (as of `revision`, if given).
    pub fn shared_in(&self, cache: &faros_storage::Cache, cluster: &str, revision: Option<u64>) -> bool {
        self.view
            .access_in(cache, cluster, revision)
            .is_some_and(|access| access.allows(&self.kind, self.claim.as_ref()))
    }

    /// Every cluster sharing the kind with the owner (as of `revision`, if given).
    pub fn clusters(&self, cache: &faros_storage::Cache, revision: Option<u64>) -> ClusterSet {
        ClusterSet {
            clusters: self
                .view
                .clusters_sharing(cache, &self.kind, self.claim.as_ref(), revision),
        }
    }
}

impl Scope {
    /// Across all clusters, the clusters whose objects the request may see (as of
    /// `revision`, if given); None when not restricted. Through an export's view, only the
    /// clusters whose bindings share the kind now.
    pub fn visible_clusters(&self, cache: &faros_storage::Cache, revision: Option<u64>) -> Option<ClusterSet> {
        match self {
            Scope::Export(access) => Some(access.clusters(cache, revision)),
            Scope::Direct => None,
        }
    }
}

/// Logical clusters a cross-cluster list or watch is restricted to.
pub struct ClusterSet {
    pub clusters: std::collections::HashSet<String>,
}

impl ClusterSet {
    /// Whether the object at `key` is in the set.
    pub fn admits(&self, key: &str) -> bool {
        faros_storage::Key::parse(key).is_some_and(|k| self.clusters.contains(k.cluster))
    }
}

/// How many times a patch or delete re-reads and retries after losing a write race.
const MAX_RETRIES: usize = 16;

impl Ctx {
    /// What admission sees of this request.
    fn admission(&self, operation: Operation) -> admission::Context<'_> {
        admission::Context {
            operation,
            cluster: &self.cluster,
            cluster_path: &self.cluster_path,
            kind: &self.kind,
            subresource: self.req.subresource.as_deref(),
            user: &self.user,
            view_rules: match &self.scope {
                Scope::Export(access) => Some(&access.rules),
                Scope::Direct => None,
            },
            cache: &self.hub.cache,
            authorizer: &self.hub.authorizer,
        }
    }

    fn group(&self) -> &str {
        &self.kind.group
    }

    fn resource(&self) -> &str {
        &self.kind.resource
    }

    fn key(&self, name: &str) -> String {
        object::storage_key(&self.kind, &self.cluster, self.req.namespace.as_deref(), name)
    }

    fn not_found(&self, name: &str) -> ApiError {
        ApiError::not_found(self.group(), self.resource(), name)
    }

    fn with_status_code(&self, code: StatusCode, obj: &Value, warnings: &[String]) -> Response {
        let body = if self.representation == Representation::Table {
            let include = table::IncludeObject::parse(self.query.include_object.as_deref()).unwrap_or_default();
            self.kind.table_convertor().table(
                std::iter::once(obj),
                include,
                json!({"resourceVersion": obj["metadata"]["resourceVersion"]}),
                true,
                jiff::Timestamp::now(),
            )
        } else if self.representation == Representation::Metadata {
            partial_metadata(obj)
        } else {
            obj.clone()
        };
        response::with_warnings(response::json(code, &body), warnings)
    }
}

pub async fn serve(ctx: Ctx, body: axum::body::Body) -> Response {
    let result = match ctx.req.verb {
        "get" => get(&ctx),
        "list" => list(&ctx),
        "watch" => return super::watch::serve(ctx).await,
        "create" => create(&ctx, body).await,
        "update" => update(&ctx, body).await,
        "patch" => patch(&ctx, body).await,
        "delete" => delete(&ctx, body).await,
        "deletecollection" => delete_collection(&ctx, body).await,
        _ => Err(ApiError::method_not_allowed("unsupported verb")),
    };
    result.unwrap_or_else(crate::apiserver::response::error)
}

fn get(ctx: &Ctx) -> ApiResult<Response> {
    let name = ctx.req.name.as_deref().unwrap_or_default();
    let object = ctx.hub.cache.get(&ctx.key(name)).ok_or_else(|| ctx.not_found(name))?;
    Ok(ctx.with_status_code(StatusCode::OK, &object.value, &[]))
}

/// Compiled label and field selectors of a list or watch.
pub struct Filter {
    labels: LabelSelector,
    fields: FieldSelector,
    kind: Arc<ResourceKind>,
    field_paths: Vec<(String, faros_machinery::jsonpath::JsonPath)>,
    /// A namespace the key prefix does not already pin (the `*` view keys start with the
    /// logical cluster, so its namespace is checked per object).
    namespace: Option<String>,
    /// The name in the path of a watch (`.../configmaps/<name>?watch=1`): the request was
    /// authorized for that name only.
    name: Option<String>,
}

impl Filter {
    /// The filter of a list or watch request: its selectors, and its namespace when the
    /// request spans every logical cluster.
    pub fn for_request(ctx: &Ctx) -> ApiResult<Filter> {
        let mut filter = Filter::new(&ctx.kind, &ctx.query)?;
        if ctx.cluster == "*" {
            filter.namespace = ctx.req.namespace.clone();
        }
        filter.name = ctx.req.name.clone();
        Ok(filter)
    }

    pub fn new(kind: &Arc<ResourceKind>, query: &Query) -> ApiResult<Filter> {
        let labels = match &query.label_selector {
            Some(s) => LabelSelector::parse(s)
                .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?,
            None => LabelSelector::everything(),
        };
        let fields = match &query.field_selector {
            Some(s) => {
                FieldSelector::parse(s).map_err(|e| ApiError::bad_request(format!("invalid field selector: {e}")))?
            }
            None => FieldSelector::everything(),
        };
        let mut field_paths = Vec::new();
        for requirement in fields.requirements() {
            let field = requirement.field.as_str();
            let known = matches!(field, "metadata.name" | "metadata.namespace")
                || kind.strategy.selectable_fields().contains(&field);
            if known {
                continue;
            }
            if kind.crd_selectable_fields.iter().any(|f| f == field) {
                let path = faros_machinery::jsonpath::JsonPath::parse(field)
                    .map_err(|e| ApiError::bad_request(format!("field label not supported: {field}: {e}")))?;
                field_paths.push((field.to_string(), path));
                continue;
            }
            return Err(ApiError::bad_request(format!("field label not supported: {field}")));
        }
        Ok(Filter {
            labels,
            fields,
            kind: kind.clone(),
            field_paths,
            namespace: None,
            name: None,
        })
    }

    pub fn is_everything(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty() && self.namespace.is_none() && self.name.is_none()
    }

    /// Exact `metadata.name=` pin, which turns a list into a point lookup.
    pub fn exact_name(&self) -> Option<&str> {
        self.name.as_deref().or_else(|| self.fields.exact("metadata.name"))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        if let Some(ns) = &self.namespace
            && object::namespace(obj) != ns
        {
            return false;
        }
        if let Some(name) = &self.name
            && object::name(obj) != name
        {
            return false;
        }
        let labels = obj["metadata"]["labels"].as_object();
        if !self.labels.matches(labels) {
            return false;
        }
        if self.fields.is_empty() {
            return true;
        }
        self.fields.matches(|field| match field {
            "metadata.name" => Some(object::name(obj).to_string()),
            "metadata.namespace" => Some(object::namespace(obj).to_string()),
            other => {
                if let Some((_, path)) = self.field_paths.iter().find(|(f, _)| f == other) {
                    return path.find(obj).first().map(|v| match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    });
                }
                self.kind.strategy.field_value(obj, other)
            }
        })
    }
}

/// The continue token: where the next page starts and the revision of the first page.
fn encode_continue(revision: u64, last_key: &str, prefix: &str) -> String {
    let token = json!({"rv": revision, "start": last_key.strip_prefix(prefix).unwrap_or(last_key)});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token.to_string())
}

fn decode_continue(token: &str, prefix: &str) -> ApiResult<(u64, String)> {
    let invalid = || ApiError::bad_request("continue key is not valid: malformed token");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| invalid())?;
    let value: Value = serde_json::from_slice(&raw).map_err(|_| invalid())?;
    let rv = value["rv"].as_u64().ok_or_else(invalid)?;
    let start = value["start"].as_str().ok_or_else(invalid)?;
    if start.contains("..") {
        return Err(invalid());
    }
    Ok((rv, format!("{prefix}{start}")))
}

fn list(ctx: &Ctx) -> ApiResult<Response> {
    let filter = Filter::for_request(ctx)?;
    let prefix = object::collection_prefix(&ctx.kind, Some(&ctx.cluster), ctx.req.namespace.as_deref());
    check_list_revision(ctx)?;
    let (snapshot, start_after) = match &ctx.query.continue_token {
        Some(token) => {
            let (rv, start) = decode_continue(token, &prefix)?;
            (Some(rv), Some(start))
        }
        None => match (ctx.query.resource_version_match, ctx.query.revision()?) {
            (Some(ResourceVersionMatch::Exact), Some(rv)) => (Some(rv), None),
            _ => (None, None),
        },
    };
    let limit = ctx.query.limit;
    // Who shares what is decided now, even for a page of an older snapshot.
    let visible = match ctx.cluster.as_str() {
        "*" => ctx.scope.visible_clusters(&ctx.hub.cache, None),
        _ => None,
    };
    let admits = |o: &Object| visible.as_ref().is_none_or(|v| v.admits(&o.key)) && filter.matches(&o.value);
    let (items, revision, more) = match filter
        .exact_name()
        .filter(|_| ctx.cluster != "*" && (ctx.req.namespace.is_some() || !ctx.kind.namespaced))
    {
        Some(name) => {
            let items: Vec<Arc<Object>> = ctx
                .hub
                .cache
                .get(&format!("{prefix}{name}"))
                .filter(|o| admits(o))
                .into_iter()
                .collect();
            (items, ctx.hub.cache.revision(), false)
        }
        None => match snapshot {
            // Continued pages (and Exact reads) come from the first page's snapshot.
            Some(rv) => ctx
                .hub
                .cache
                .list_at(&prefix, start_after.as_deref(), limit, rv, admits)
                .map_err(|_| {
                    ApiError::expired(
                        "The provided continue parameter is too old to display a consistent list result. \
                         You can start a new list without the continue parameter.",
                    )
                })?,
            None => ctx.hub.cache.list(&prefix, start_after.as_deref(), limit, admits),
        },
    };
    let mut list_meta = Map::new();
    list_meta.insert("resourceVersion".into(), revision.to_string().into());
    if more && let Some(last) = items.last() {
        list_meta.insert("continue".into(), encode_continue(revision, &last.key, &prefix).into());
    }
    if ctx.representation == Representation::Table {
        let include =
            table::IncludeObject::parse(ctx.query.include_object.as_deref()).map_err(ApiError::bad_request)?;
        let body = ctx.kind.table_convertor().table(
            items.iter().map(|o| &o.value),
            include,
            Value::Object(list_meta),
            true,
            jiff::Timestamp::now(),
        );
        return Ok(response::json(StatusCode::OK, &body));
    }
    // Items are written straight into the response: no intermediate list Value.
    let mut out = Vec::with_capacity(64 + items.len() * 512);
    let (list_kind, api_version) = if ctx.representation == Representation::Metadata {
        (
            "PartialObjectMetadataList".to_string(),
            METADATA_API_VERSION.to_string(),
        )
    } else {
        (ctx.kind.list_kind.clone(), ctx.kind.api_version())
    };
    out.extend_from_slice(b"{\"kind\":");
    serde_json::to_writer(&mut out, &list_kind).map_err(internal)?;
    out.extend_from_slice(b",\"apiVersion\":");
    serde_json::to_writer(&mut out, &api_version).map_err(internal)?;
    out.extend_from_slice(b",\"metadata\":");
    serde_json::to_writer(&mut out, &list_meta).map_err(internal)?;
    out.extend_from_slice(b",\"items\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        if ctx.representation == Representation::Metadata {
            serde_json::to_writer(&mut out, &partial_metadata(&item.value)).map_err(internal)?;
        } else {
            serde_json::to_writer(&mut out, &item.value).map_err(internal)?;
        }
    }
    out.extend_from_slice(b"]}");
    Ok(response::bytes(StatusCode::OK, out, "application/json"))
}

const METADATA_API_VERSION: &str = "meta.k8s.io/v1";

/// An object as a metadata-only client (client-go's metadata informers) asks for it.
pub fn partial_metadata(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": METADATA_API_VERSION, "metadata": obj["metadata"]})
}

/// `resourceVersion` + `resourceVersionMatch` on a list: the cache is always current and can
/// roll back to any revision in its window, so only a revision from the future is refused
/// here (one older than the window is 410 when the list is served).
fn check_list_revision(ctx: &Ctx) -> ApiResult<()> {
    let requested = ctx.query.revision()?;
    let current = ctx.hub.cache.revision();
    match (ctx.query.resource_version_match, requested) {
        (Some(ResourceVersionMatch::Exact), None) => Err(ApiError::bad_request(
            "resourceVersionMatch=Exact requires a non-zero resourceVersion",
        )),
        (_, Some(rv)) if rv > current => {
            let mut err = ApiError::new(
                Reason::Timeout,
                format!("Too large resource version: {rv}, current: {current}"),
            );
            err.retry_after = Some(1);
            Err(err)
        }
        _ => Ok(()),
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(e.to_string())
}

pub fn storage_error(ctx: &Ctx, name: &str, e: StorageError) -> ApiError {
    match e {
        StorageError::AlreadyExists => ApiError::already_exists(ctx.group(), ctx.resource(), name),
        StorageError::NotFound => ctx.not_found(name),
        StorageError::Conflict => ApiError::conflict(
            ctx.group(),
            ctx.resource(),
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        ),
        StorageError::Unavailable(msg) => {
            let mut err = ApiError::new(Reason::ServiceUnavailable, format!("storage is unavailable: {msg}"));
            err.retry_after = Some(1);
            err
        }
    }
}

/// Checks that apiVersion/kind in a body, when given, name this endpoint's kind.
fn check_type(ctx: &Ctx, obj: &mut Value) -> ApiResult<()> {
    let api_version = ctx.kind.api_version();
    let given_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let given_kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    if (!given_version.is_empty() && given_version != api_version)
        || (!given_kind.is_empty() && given_kind != ctx.kind.kind)
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({given_version}) does not match the expected API version ({api_version}) or the kind ({given_kind}) does not match {}",
            ctx.kind.kind
        )));
    }
    obj["apiVersion"] = api_version.into();
    obj["kind"] = ctx.kind.kind.clone().into();
    if !obj.get("metadata").is_none_or(Value::is_object) {
        return Err(ApiError::bad_request("metadata must be an object"));
    }
    Ok(())
}

/// Validation, pruning and defaulting shared by every write. Returns warnings.
fn admit(ctx: &Ctx, obj: &mut Value, old: Option<&Value>) -> ApiResult<Vec<String>> {
    let name = object::name(obj).to_string();
    let mut unknown = Vec::new();
    if let Some(result) = ctx.kind.strategy.normalize(obj) {
        let (normalized, dropped) =
            result.map_err(|e| ApiError::bad_request(format!("{} in body is invalid: {e}", ctx.kind.kind)))?;
        *obj = normalized;
        unknown.extend(dropped);
    }
    if let Some(schema) = &ctx.kind.schema {
        unknown.extend(
            schema
                .prune(obj)
                .into_iter()
                .map(|p| p.trim_start_matches('.').to_string()),
        );
        schema.apply_defaults(obj);
    }
    let mut warnings = Vec::new();
    if !unknown.is_empty() {
        match ctx.query.field_validation {
            FieldValidation::Strict => {
                let detail = unknown
                    .iter()
                    .map(|f| format!("unknown field \"{f}\""))
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(ApiError::bad_request(format!("strict decoding error: {detail}")));
            }
            FieldValidation::Warn => warnings.extend(unknown.iter().map(|f| format!("unknown field \"{f}\""))),
            FieldValidation::Ignore => {}
        }
    }
    let mut errors = validate_object_meta(&obj["metadata"], ctx.kind.namespaced, ctx.kind.name_rule);
    if let Some(schema) = &ctx.kind.schema {
        errors.extend(schema.validate(obj));
    }
    errors.extend(ctx.kind.strategy.validate(obj, old));
    if let Some(old) = old {
        let new_finalizers = object::finalizers(obj);
        let old_finalizers = object::finalizers(old);
        if object::is_deleting(old) && new_finalizers.iter().any(|f| !old_finalizers.contains(f)) {
            errors.push(FieldError::forbidden(
                "metadata.finalizers",
                "no new finalizers can be added if the object is being deleted",
            ));
        }
    }
    let mut seen_owners = std::collections::HashSet::new();
    for owner in obj["metadata"]["ownerReferences"].as_array().into_iter().flatten() {
        if !seen_owners.insert(owner["uid"].as_str().unwrap_or_default().to_string()) {
            warnings.push(format!(
                ".metadata.ownerReferences contains duplicate entries; API server dedups owner references, uid={}",
                owner["uid"]
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(&ctx.kind.kind, ctx.group(), &name, errors));
    }
    let operation = if old.is_some() {
        Operation::Update
    } else {
        Operation::Create
    };
    admission::validate(&ctx.admission(operation), obj, old)?;
    Ok(warnings)
}

/// Refuses new objects in a namespace that is missing or being deleted.
fn check_namespace(ctx: &Ctx, ns: &str) -> ApiResult<()> {
    let key = faros_storage::Prefix::resource("", "namespaces")
        .cluster(&ctx.cluster)
        .name(ns);
    match ctx.hub.cache.get(&key) {
        None => Err(ApiError::not_found("", "namespaces", ns)),
        Some(namespace) if object::is_deleting(&namespace.value) => Err(ApiError::forbidden(format!(
            "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
            ctx.resource(),
            ctx.req.name.as_deref().unwrap_or_default()
        ))),
        Some(_) => Ok(()),
    }
}

async fn read_object(ctx: &Ctx, body: axum::body::Body) -> ApiResult<Value> {
    let bytes = body::read(body).await?;
    body::decode_object(&bytes, &body::content_type(&ctx.headers))
}

fn encode_for_storage(obj: &Value) -> Bytes {
    let mut stored = obj.clone();
    if let Some(meta) = stored.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    Bytes::from(serde_json::to_vec(&stored).unwrap_or_default())
}

fn stamp_cluster(ctx: &Ctx, obj: &mut Value) {
    let meta = object::meta_mut(obj);
    let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
    if !annotations.is_object() {
        *annotations = json!({});
    }
    if let Some(map) = annotations.as_object_mut() {
        map.insert(CLUSTER_ANNOTATION.into(), ctx.cluster.clone().into());
    }
}

async fn create(ctx: &Ctx, body: axum::body::Body) -> ApiResult<Response> {
    if ctx.req.name.is_some() || ctx.req.subresource.is_some() {
        return Err(ApiError::method_not_allowed("POST is only supported on collections"));
    }
    let mut obj = read_object(ctx, body).await?;
    let (obj, warnings) = prepare_create(ctx, &mut obj)?;
    let name = object::name(&obj).to_string();
    if ctx.query.dry_run {
        return Ok(ctx.with_status_code(StatusCode::CREATED, &obj, &warnings));
    }
    let key = ctx.key(&name);
    let outcome = ctx
        .hub
        .cache
        .write(WriteOp::Create {
            key,
            value: encode_for_storage(&obj),
        })
        .await
        .map_err(|e| storage_error(ctx, &name, e))?;
    let mut obj = obj;
    object::meta_mut(&mut obj).insert("resourceVersion".into(), outcome.revision.to_string().into());
    Ok(ctx.with_status_code(StatusCode::CREATED, &obj, &warnings))
}

/// Everything a create does before storage: type and namespace checks, server-set fields,
/// defaulting and validation. Shared with server-side apply of a missing object.
pub fn prepare_create(ctx: &Ctx, obj: &mut Value) -> ApiResult<(Value, Vec<String>)> {
    check_type(ctx, obj)?;
    let meta = object::meta_mut(obj);
    if ctx.kind.namespaced {
        let url_ns = ctx.req.namespace.clone().unwrap_or_default();
        match meta.get("namespace").and_then(Value::as_str) {
            Some(ns) if !ns.is_empty() && ns != url_ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => {}
        }
        meta.insert("namespace".into(), url_ns.into());
    } else {
        meta.remove("namespace");
    }
    let has_name = meta.get("name").and_then(Value::as_str).is_some_and(|n| !n.is_empty());
    if !has_name {
        match meta.get("generateName").and_then(Value::as_str) {
            Some(prefix) if !prefix.is_empty() => {
                let generated = format!("{prefix}{}", object::random_suffix());
                meta.insert("name".into(), generated.into());
            }
            _ => {
                return Err(ApiError::invalid(
                    &ctx.kind.kind,
                    &ctx.kind.group,
                    "",
                    vec![FieldError::required(
                        "metadata.name",
                        "name or generateName is required",
                    )],
                ));
            }
        }
    }
    for field in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
        "managedFields",
    ] {
        meta.remove(field);
    }
    meta.insert("uid".into(), uuid::Uuid::new_v4().to_string().into());
    meta.insert("creationTimestamp".into(), faros_api::meta::now_rfc3339().into());
    meta.insert("generation".into(), 1.into());
    if ctx.kind.status_subresource && !ctx.kind.builtin {
        // Status is written through the subresource only.
        if let Some(map) = obj.as_object_mut() {
            map.remove("status");
        }
    }
    if ctx.kind.namespaced {
        let ns = object::namespace(obj).to_string();
        check_namespace(ctx, &ns)?;
    }
    let env = crate::registry::WriteEnv {
        cluster: &ctx.cluster,
        path: &ctx.cluster_path,
        external_url: &ctx.hub.external_url,
        user: &ctx.user,
    };
    admission::mutate(&ctx.admission(Operation::Create), obj);
    ctx.kind.strategy.prepare_for_create(obj, &env);
    stamp_cluster(ctx, obj);
    let warnings = admit(ctx, obj, None)?;
    super::managed_fields::record_update(ctx, obj, None);
    Ok((obj.clone(), warnings))
}

async fn update(ctx: &Ctx, body: axum::body::Body) -> ApiResult<Response> {
    let name = ctx.req.name.clone().unwrap_or_default();
    let mut obj = read_object(ctx, body).await?;
    check_type(ctx, &mut obj)?;
    let body_name = object::name(&obj);
    if !body_name.is_empty() && body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let precondition = super::query::parse_revision(obj["metadata"]["resourceVersion"].as_str())?;
    if precondition.is_none() && !ctx.kind.allow_unconditional_update {
        return Err(ApiError::invalid(
            &ctx.kind.kind,
            &ctx.kind.group,
            &name,
            vec![FieldError::invalid(
                "metadata.resourceVersion",
                "0x0: must be specified for an update",
            )],
        ));
    }
    let current = ctx.hub.cache.get(&ctx.key(&name)).ok_or_else(|| ctx.not_found(&name))?;
    write_update(ctx, &current, obj, precondition, false).await
}

/// Applies the update rules (immutable fields, subresource split, generation, finalizers)
/// to `new` against `current`, validates, and stores it.
/// `applied`: `new` comes from server-side apply, which already computed its managedFields.
async fn write_update(
    ctx: &Ctx,
    current: &Object,
    mut new: Value,
    precondition: Option<u64>,
    applied: bool,
) -> ApiResult<Response> {
    let applied_fields = applied.then(|| new["metadata"]["managedFields"].clone());
    let name = object::name(&current.value).to_string();
    if let Some(rv) = precondition
        && rv != current.mod_revision
    {
        return Err(storage_error(ctx, &name, StorageError::Conflict));
    }
    let old = &current.value;
    let subresource = ctx.req.subresource.as_deref();
    match subresource {
        Some("status") => {
            // Only status changes through the status subresource.
            let status = new.get("status").cloned();
            let mut merged = old.clone();
            match status {
                Some(status) => merged["status"] = status,
                None => {
                    if let Some(map) = merged.as_object_mut() {
                        map.remove("status");
                    }
                }
            }
            new = merged;
        }
        Some("finalize") => {
            let finalizers = new["spec"]["finalizers"].clone();
            let mut merged = old.clone();
            merged["spec"]["finalizers"] = finalizers;
            new = merged;
        }
        _ => {
            if ctx.kind.status_subresource {
                match old.get("status") {
                    Some(status) => new["status"] = status.clone(),
                    None => {
                        if let Some(map) = new.as_object_mut() {
                            map.remove("status");
                        }
                    }
                }
            }
            ctx.kind.strategy.prepare_for_update(&mut new, old);
        }
    }
    {
        let old_meta = &old["metadata"];
        let meta = object::meta_mut(&mut new);
        for field in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "namespace",
            "name",
            "generation",
        ] {
            match old_meta.get(field) {
                Some(v) => meta.insert(field.into(), v.clone()),
                None => meta.remove(field),
            };
        }
        meta.remove("resourceVersion");
        meta.remove("selfLink");
    }
    stamp_cluster(ctx, &mut new);
    if subresource.is_none() && object::spec_changed(&new, old, ctx.kind.status_subresource) {
        let generation = old["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
        object::meta_mut(&mut new).insert("generation".into(), generation.into());
    }
    let warnings = admit(ctx, &mut new, Some(old))?;
    match applied_fields {
        Some(fields) if fields.is_array() => {
            object::meta_mut(&mut new).insert("managedFields".into(), fields);
        }
        Some(_) => {
            object::meta_mut(&mut new).remove("managedFields");
        }
        None => super::managed_fields::record_update(ctx, &mut new, Some(old)),
    }
    object::meta_mut(&mut new).insert("resourceVersion".into(), current.mod_revision.to_string().into());
    if object::same_content(&new, old) {
        // A no-op write keeps the resourceVersion and wakes no watcher.
        return Ok(ctx.with_status_code(StatusCode::OK, old, &warnings));
    }
    if ctx.query.dry_run {
        return Ok(ctx.with_status_code(StatusCode::OK, &new, &warnings));
    }
    // Removing the last finalizer of an object being deleted completes the deletion.
    if object::is_deleting(&new) && object::finalizers(&new).is_empty() && !blocks_deletion(&ctx.kind, &new) {
        ctx.hub
            .cache
            .write(WriteOp::Delete {
                key: current.key.to_string(),
                expected: current.mod_revision,
            })
            .await
            .map_err(|e| storage_error(ctx, &name, e))?;
        return Ok(ctx.with_status_code(StatusCode::OK, &new, &warnings));
    }
    let outcome = ctx
        .hub
        .cache
        .write(WriteOp::Update {
            key: current.key.to_string(),
            value: encode_for_storage(&new),
            expected: current.mod_revision,
        })
        .await
        .map_err(|e| storage_error(ctx, &name, e))?;
    object::meta_mut(&mut new).insert("resourceVersion".into(), outcome.revision.to_string().into());
    Ok(ctx.with_status_code(StatusCode::OK, &new, &warnings))
}

/// Kinds whose deletion waits on something besides metadata.finalizers (a Namespace waits
/// for its `spec.finalizers`).
fn blocks_deletion(kind: &ResourceKind, obj: &Value) -> bool {
    kind.builtin && kind.resource == "namespaces" && obj["spec"]["finalizers"].as_array().is_some_and(|f| !f.is_empty())
}

async fn patch(ctx: &Ctx, body: axum::body::Body) -> ApiResult<Response> {
    let name = ctx.req.name.clone().unwrap_or_default();
    let media = body::content_type(&ctx.headers);
    let patch_type = super::patch::PatchType::from_media_type(&media, ctx.kind.builtin)?;
    let raw = body::read(body).await?;
    let patch = super::patch::decode(patch_type, &raw)?;
    if patch_type == super::patch::PatchType::Apply && ctx.query.field_manager.is_none() {
        return Err(ApiError::bad_request(
            "PATCH requests with apply content type (application/apply-patch+yaml) require a fieldManager",
        ));
    }
    for _ in 0..MAX_RETRIES {
        let current = match ctx.hub.cache.get(&ctx.key(&name)) {
            Some(current) => current,
            None if patch_type == super::patch::PatchType::Apply && ctx.req.subresource.is_none() => {
                return super::patch::apply_create(ctx, patch).await;
            }
            None => return Err(ctx.not_found(&name)),
        };
        let patched = super::patch::apply(ctx, patch_type, &current.value, &patch)?;
        // A resourceVersion in the patch body is a precondition (`kubectl diff`, kubectl's
        // optimistic concurrency); without one, a lost race is retried on fresh data.
        let precondition = super::query::parse_revision(patch["metadata"]["resourceVersion"].as_str())
            .ok()
            .flatten();
        let applied = patch_type == super::patch::PatchType::Apply;
        match write_update(ctx, &current, patched, precondition, applied).await {
            Err(e)
                if precondition.is_none()
                    && e.reason == Reason::Conflict
                    && e.causes.is_empty()
                    && e.message.contains("has been modified") =>
            {
                continue;
            }
            other => return other,
        }
    }
    Err(storage_error(ctx, &name, StorageError::Conflict))
}

/// DeleteOptions from the body and the query (the body wins, as in Kubernetes).
struct DeleteOptions {
    propagation: Propagation,
    precondition_uid: Option<String>,
    precondition_rv: Option<u64>,
    dry_run: bool,
    /// `orphanDependents: false` was given: a deletion left pending answers 202 rather than
    /// 200, the one case where Kubernetes does so.
    accepted_if_pending: bool,
}

async fn delete_options(ctx: &Ctx, body: axum::body::Body) -> ApiResult<DeleteOptions> {
    let bytes = body::read(body).await?;
    let mut opts = DeleteOptions {
        propagation: ctx.query.propagation_policy.unwrap_or(Propagation::Background),
        precondition_uid: None,
        precondition_rv: None,
        dry_run: ctx.query.dry_run,
        accepted_if_pending: ctx.query.orphan_dependents == Some(false),
    };
    if ctx.query.orphan_dependents == Some(true) && ctx.query.propagation_policy.is_none() {
        opts.propagation = Propagation::Orphan;
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(opts);
    }
    let value = body::decode_json(&bytes)?;
    if let Some(p) = value["propagationPolicy"].as_str() {
        opts.propagation = super::query::parse_propagation(p)?;
    } else if value["orphanDependents"] == Value::Bool(true) {
        opts.propagation = Propagation::Orphan;
    }
    opts.accepted_if_pending |= value["orphanDependents"] == Value::Bool(false);
    opts.precondition_uid = value["preconditions"]["uid"].as_str().map(str::to_string);
    opts.precondition_rv = super::query::parse_revision(value["preconditions"]["resourceVersion"].as_str())?;
    if let Some(dry) = value["dryRun"].as_array() {
        opts.dry_run |= dry.iter().any(|d| d == "All");
    }
    Ok(opts)
}

async fn delete(ctx: &Ctx, body: axum::body::Body) -> ApiResult<Response> {
    if ctx.req.subresource.is_some() {
        return Err(ApiError::method_not_allowed("DELETE is not supported on subresources"));
    }
    let name = ctx.req.name.clone().unwrap_or_default();
    let opts = delete_options(ctx, body).await?;
    for _ in 0..MAX_RETRIES {
        let current = ctx.hub.cache.get(&ctx.key(&name)).ok_or_else(|| ctx.not_found(&name))?;
        match delete_one(ctx, &current, &opts).await {
            Err(e)
                if e.reason == Reason::Conflict
                    && opts.precondition_rv.is_none()
                    && e.message.contains("has been modified") =>
            {
                continue;
            }
            Ok((code, body)) => return Ok(response::json(code, &body)),
            Err(e) => return Err(e),
        }
    }
    Err(storage_error(ctx, &name, StorageError::Conflict))
}

/// Deletes or marks one object; returns the status code and the body to send.
async fn delete_one(ctx: &Ctx, current: &Object, opts: &DeleteOptions) -> ApiResult<(StatusCode, Value)> {
    let name = object::name(&current.value).to_string();
    if let Some(uid) = &opts.precondition_uid
        && uid != object::uid(&current.value)
    {
        return Err(ApiError::conflict(
            ctx.group(),
            ctx.resource(),
            &name,
            &format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                object::uid(&current.value)
            ),
        ));
    }
    if let Some(rv) = opts.precondition_rv
        && rv != current.mod_revision
    {
        return Err(ApiError::conflict(
            ctx.group(),
            ctx.resource(),
            &name,
            &format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                current.mod_revision
            ),
        ));
    }
    let mut obj = current.value.clone();
    let mut finalizers = object::finalizers(&obj);
    let propagation_finalizer = match opts.propagation {
        Propagation::Foreground => Some(FOREGROUND_FINALIZER),
        Propagation::Orphan => Some(ORPHAN_FINALIZER),
        Propagation::Background => None,
    };
    let already_deleting = object::is_deleting(&obj);
    let mut changed = false;
    // The propagation finalizer only matters when something may depend on this object,
    // so it is added only when the object is marked (it has finalizers) or has dependents.
    if let Some(f) = propagation_finalizer
        && !already_deleting
        && !finalizers.iter().any(|x| x == f)
        && super::gc_support::may_have_dependents(ctx, &obj)
    {
        finalizers.push(f.to_string());
        changed = true;
    }
    if finalizers.is_empty() && !blocks_deletion(&ctx.kind, &obj) {
        if opts.dry_run {
            return Ok((StatusCode::OK, obj));
        }
        ctx.hub
            .cache
            .write(WriteOp::Delete {
                key: current.key.to_string(),
                expected: current.mod_revision,
            })
            .await
            .map_err(|e| storage_error(ctx, &name, e))?;
        return Ok((StatusCode::OK, obj));
    }
    // Graceful: mark it and let the finalizers' owners finish.
    {
        let meta = object::meta_mut(&mut obj);
        if !already_deleting {
            meta.insert("deletionTimestamp".into(), faros_api::meta::now_rfc3339().into());
            meta.insert("deletionGracePeriodSeconds".into(), 0.into());
            let generation = meta.get("generation").and_then(Value::as_i64).unwrap_or(1) + 1;
            meta.insert("generation".into(), generation.into());
            changed = true;
        }
        meta.insert("finalizers".into(), json!(finalizers));
        meta.remove("resourceVersion");
    }
    if ctx.kind.builtin && ctx.kind.resource == "namespaces" && obj["status"]["phase"] != "Terminating" {
        obj["status"]["phase"] = "Terminating".into();
        changed = true;
    }
    let pending = if opts.accepted_if_pending {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    if !changed || opts.dry_run {
        return Ok((pending, current.value.clone()));
    }
    let outcome = ctx
        .hub
        .cache
        .write(WriteOp::Update {
            key: current.key.to_string(),
            value: encode_for_storage(&obj),
            expected: current.mod_revision,
        })
        .await
        .map_err(|e| storage_error(ctx, &name, e))?;
    object::meta_mut(&mut obj).insert("resourceVersion".into(), outcome.revision.to_string().into());
    Ok((pending, obj))
}

async fn delete_collection(ctx: &Ctx, body: axum::body::Body) -> ApiResult<Response> {
    let opts = delete_options(ctx, body).await?;
    let filter = Filter::new(&ctx.kind, &ctx.query)?;
    let prefix = object::collection_prefix(&ctx.kind, Some(&ctx.cluster), ctx.req.namespace.as_deref());
    let (items, revision, _) = ctx.hub.cache.list(&prefix, None, 0, |o| filter.matches(&o.value));
    let mut deleted = Vec::with_capacity(items.len());
    for item in items {
        match delete_one(ctx, &item, &opts).await {
            Ok((_, obj)) => deleted.push(obj),
            // Gone or changed meanwhile: someone else is already handling it.
            Err(e) if matches!(e.reason, Reason::NotFound | Reason::Conflict) => {}
            Err(e) => return Err(e),
        }
    }
    let body = json!({
        "kind": ctx.kind.list_kind,
        "apiVersion": ctx.kind.api_version(),
        "metadata": {"resourceVersion": revision.to_string()},
        "items": deleted,
    });
    Ok(response::json(StatusCode::OK, &body))
}
