//! The one generic REST store: get, list, create, update, patch, delete and deletecollection
//! for every kind, one file per verb. Kind-specific behaviour comes only from the kind's data
//! and strategy; watches are served by `apiserver::watch`.

mod context;
mod create;
mod delete;
mod filter;
mod get;
mod list;
mod patch;
mod rest;
mod update;

use axum::response::Response;
use bytes::Bytes;
use http::StatusCode;
use serde_json::{Value, json};

pub(crate) use context::{ClusterSet, Ctx, Scope, ViewAccess};
pub(crate) use create::prepare_create;
pub(crate) use filter::Filter;
pub(crate) use list::partial_metadata;

use crate::admission::{self, Operation};
use crate::apiserver::body::{self};
use crate::apiserver::query::FieldValidation;
use crate::apiserver::request::Verb;
use crate::tenancy::LogicalClusterRef;
use faros_api::tenancy::CLUSTER_ANNOTATION;
use faros_machinery::object;
use faros_machinery::status::{ApiError, ApiResult, FieldError, Reason};
use faros_machinery::validation::validate_object_meta;
use faros_storage::{Object, Revision, StorageError, WriteOp};

/// How many times a patch or delete re-reads and retries after losing a write race.
pub(super) const MAX_RETRIES: usize = 16;

pub async fn serve(ctx: Ctx, body: axum::body::Body) -> Response {
    let rest = match ctx.req.subresource.as_deref() {
        Some(sub) => ctx.kind.subresource(sub).and_then(|s| s.rest),
        None => ctx.kind.rest,
    };
    if let Some(rest) = rest {
        return rest::serve(&ctx, rest, body)
            .await
            .unwrap_or_else(crate::apiserver::response::error);
    }
    if let Some(why) = ctx.kind.strategy.writes_refused()
        && matches!(
            ctx.req.verb,
            Verb::Create | Verb::Update | Verb::Patch | Verb::DeleteCollection
        )
    {
        return crate::apiserver::response::error(ApiError::method_not_allowed(why));
    }
    if reads_latest(&ctx)
        && let Err(e) = ctx.hub.cache.sync().await
    {
        let name = ctx.req.name.clone().unwrap_or_default();
        return crate::apiserver::response::error(storage_error(&ctx, &name, e));
    }
    let result = match ctx.req.verb {
        Verb::Get => get::get(&ctx),
        Verb::List => list::list(&ctx),
        Verb::Watch => return crate::apiserver::watch::serve(ctx).await,
        Verb::Create => create::create(&ctx, body).await,
        Verb::Update => update::update(&ctx, body).await,
        Verb::Patch => patch::patch(&ctx, body).await,
        Verb::Delete => delete::delete(&ctx, body).await,
        Verb::DeleteCollection => delete::delete_collection(&ctx, body).await,
    };
    result.unwrap_or_else(crate::apiserver::response::error)
}

/// Whether a read must include every write acknowledged before it, including writes through
/// other hub processes sharing the store: a GET, LIST or WATCH of the most recent state (no
/// resourceVersion), or one naming a revision the cache has not reached yet. The cache then
/// first catches up with the store ([`faros_storage::Cache::sync`], free when this hub is
/// the store's only writer).
fn reads_latest(ctx: &Ctx) -> bool {
    if !matches!(ctx.req.verb, Verb::Get | Verb::List | Verb::Watch) || ctx.query.continue_token.is_some() {
        return false;
    }
    match (&ctx.query.resource_version, ctx.query.revision()) {
        (None, _) => true,
        (Some(_), Ok(Some(rv))) => rv > ctx.hub.cache.revision(),
        _ => false,
    }
}

pub(super) fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(e.to_string())
}

/// Why a write to an existing object failed: it lost a race with another writer (retried on
/// a fresh read when the client gave no precondition), or it was refused.
pub(super) enum WriteError {
    Raced,
    Refused(ApiError),
}

impl From<ApiError> for WriteError {
    fn from(e: ApiError) -> WriteError {
        WriteError::Refused(e)
    }
}

impl WriteError {
    /// What the client is told.
    pub(super) fn into_api(self, ctx: &Ctx, name: &str) -> ApiError {
        match self {
            WriteError::Raced => storage_error(ctx, name, StorageError::Conflict),
            WriteError::Refused(e) => e,
        }
    }
}

/// Stores `obj` in place of `current` unless another write came first; returns it with its
/// new resourceVersion.
pub(super) async fn replace(ctx: &Ctx, current: &Object, mut obj: Value) -> Result<Value, WriteError> {
    let revision = write_over(ctx, current, encode_replacement(&obj, current)).await?;
    object::meta_mut(&mut obj).insert("resourceVersion".into(), revision.to_string().into());
    Ok(obj)
}

/// Stores `obj` over `current` and answers with the object as written. The decoded tree is
/// freed before the write is awaited (see [`free_before_awaiting`]).
pub(super) async fn replace_and_answer(
    ctx: &Ctx,
    current: &Object,
    obj: Value,
    warnings: &[String],
) -> Result<Response, WriteError> {
    let value = encode_replacement(&obj, current);
    free_before_awaiting(obj);
    let revision = write_over(ctx, current, value.clone()).await?;
    Ok(ctx.respond_written(StatusCode::OK, &current.key, &value, revision, warnings))
}

/// `obj` encoded to replace `current`, with room for the object as it was and a little growth.
fn encode_replacement(obj: &Value, current: &Object) -> Bytes {
    encode_for_storage(obj, current.json().len() + 256)
}

/// Writes `value` over `current` unless another write came first; returns the new revision.
async fn write_over(ctx: &Ctx, current: &Object, value: Bytes) -> Result<Revision, WriteError> {
    let op = WriteOp::Update {
        key: current.key.to_string(),
        value,
        expected: current.mod_revision,
    };
    ctx.hub
        .cache
        .write(op)
        .await
        .map(|outcome| outcome.revision)
        .map_err(|e| write_failure(ctx, current.name(), e))
}

/// Frees a decoded object before its request awaits storage. A request decodes its trees on
/// one worker thread and may resume on another once the write is done. Freed there, every
/// node of a tree goes to that thread's allocator cache, overflowing it, and the first thread
/// refills its own from the allocator's shared arenas: the slow path both ways, on memory no
/// longer in the freeing core's cache. Freeing them where they were built, straight after
/// use, took a quarter off the hub's CPU per Lease renewal (docs/benchmarks.md).
pub(super) fn free_before_awaiting(decoded: Value) {
    drop(decoded);
}

/// Removes `current` unless another write came first.
pub(super) async fn remove(ctx: &Ctx, current: &Object) -> Result<(), WriteError> {
    let op = WriteOp::Delete {
        key: current.key.to_string(),
        expected: current.mod_revision,
    };
    ctx.hub
        .cache
        .write(op)
        .await
        .map(|_| ())
        .map_err(|e| write_failure(ctx, current.name(), e))
}

/// A storage failure of a conditional write to an existing object.
pub(super) fn write_failure(ctx: &Ctx, name: &str, e: StorageError) -> WriteError {
    match e {
        StorageError::Conflict => WriteError::Raced,
        e => WriteError::Refused(storage_error(ctx, name, e)),
    }
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
pub(super) fn check_type(ctx: &Ctx, obj: &mut Value) -> ApiResult<()> {
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
pub(super) fn admit(ctx: &Ctx, obj: &mut Value, old: Option<&Value>) -> ApiResult<Vec<String>> {
    let name = object::name(obj).to_string();
    let mut unknown = Vec::new();
    if let Some(result) = ctx.kind.strategy.normalize(obj) {
        let dropped =
            result.map_err(|e| ApiError::bad_request(format!("{} in body is invalid: {e}", ctx.kind.kind)))?;
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
        errors.extend(schema.validate(obj, old));
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
    admission::validate(&ctx.admission(operation)?, obj, old)?;
    Ok(warnings)
}

/// Refuses new objects in a namespace that is missing or being deleted.
pub(super) fn check_namespace(ctx: &Ctx, ns: &str) -> ApiResult<()> {
    let key = faros_storage::Prefix::resource("", "namespaces")
        .cluster(&ctx.one_cluster()?.name)
        .name(ns);
    match ctx.hub.cache.get(&key) {
        None => Err(ApiError::not_found("", "namespaces", ns)),
        Some(namespace) if object::is_deleting(&namespace.value()) => Err(ApiError::forbidden(format!(
            "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
            ctx.resource(),
            ctx.req.name.as_deref().unwrap_or_default()
        ))),
        Some(_) => Ok(()),
    }
}

pub(super) async fn read_object(ctx: &Ctx, body: axum::body::Body) -> ApiResult<Value> {
    let bytes = body::read(body).await?;
    faros_machinery::decode::decode_object(&bytes, &body::content_type(&ctx.headers))
}

/// The object's JSON as stored: without `metadata.resourceVersion`, which the cache splices
/// back in. Written straight from the object, not from a copy of it: every write (each
/// heartbeat) comes through here, into a buffer of `size_hint` bytes (the size the object
/// had, when it is replaced) rather than one grown a doubling at a time.
pub(super) fn encode_for_storage(obj: &Value, size_hint: usize) -> Bytes {
    let mut out = Vec::with_capacity(size_hint);
    serde_json::to_writer(&mut out, &WithoutRevision(obj)).expect("a JSON value always serialises into a Vec");
    Bytes::from(out)
}

/// An object serialised as it is, except for `metadata.resourceVersion`.
struct WithoutRevision<'a>(&'a Value);

impl serde::Serialize for WithoutRevision<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let Value::Object(top) = self.0 else {
            return self.0.serialize(serializer);
        };
        let mut map = serializer.serialize_map(Some(top.len()))?;
        for (key, value) in top {
            match value {
                Value::Object(meta) if key == "metadata" => {
                    map.serialize_key(key)?;
                    map.serialize_value(&Without(meta, "resourceVersion"))?;
                }
                _ => map.serialize_entry(key, value)?,
            }
        }
        map.end()
    }
}

/// A JSON object without one of its fields.
struct Without<'a>(&'a serde_json::Map<String, Value>, &'static str);

impl serde::Serialize for Without<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in self.0.iter().filter(|(key, _)| key.as_str() != self.1) {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

pub(super) fn stamp_cluster(cluster: &LogicalClusterRef, obj: &mut Value) {
    let meta = object::meta_mut(obj);
    let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
    if !annotations.is_object() {
        *annotations = json!({});
    }
    if let Some(map) = annotations.as_object_mut() {
        map.insert(CLUSTER_ANNOTATION.into(), cluster.name.as_str().into());
    }
}

#[cfg(test)]
mod tests;
