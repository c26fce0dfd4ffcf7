//! DELETE of one object and of a collection: preconditions, propagation, finalizers.

use axum::response::Response;
use http::StatusCode;
use serde_json::{Value, json};

use super::context::Ctx;
use super::filter::Filter;
use super::{MAX_RETRIES, WriteError, remove, replace, storage_error};
use crate::apiserver::body::{self};
use crate::apiserver::query::Propagation;
use crate::apiserver::response;
use faros_api::meta::{FOREGROUND_FINALIZER, ORPHAN_FINALIZER};
use faros_machinery::object;
use faros_machinery::status::{ApiError, ApiResult, Reason};
use faros_storage::{Object, StorageError};

/// DeleteOptions from the body and the query (the body wins, as in Kubernetes).
pub(super) struct DeleteOptions {
    propagation: Propagation,
    precondition_uid: Option<String>,
    precondition_rv: Option<u64>,
    dry_run: bool,
    /// `orphanDependents: false` was given: a deletion left pending answers 202 rather than
    /// 200, the one case where Kubernetes does so.
    accepted_if_pending: bool,
}

pub(super) async fn delete_options(ctx: &Ctx, body: axum::body::Body) -> ApiResult<DeleteOptions> {
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
    let value = faros_machinery::decode::decode_json(&bytes)?;
    if let Some(p) = value["propagationPolicy"].as_str() {
        opts.propagation = crate::apiserver::query::parse_propagation(p)?;
    } else if value["orphanDependents"] == Value::Bool(true) {
        opts.propagation = Propagation::Orphan;
    }
    opts.accepted_if_pending |= value["orphanDependents"] == Value::Bool(false);
    opts.precondition_uid = value["preconditions"]["uid"].as_str().map(str::to_string);
    opts.precondition_rv = crate::apiserver::query::parse_revision(value["preconditions"]["resourceVersion"].as_str())?;
    if let Some(dry) = value["dryRun"].as_array() {
        opts.dry_run |= dry.iter().any(|d| d == "All");
    }
    Ok(opts)
}

pub(super) async fn delete(ctx: &Ctx, body: axum::body::Body) -> ApiResult<Response> {
    if ctx.req.subresource.is_some() {
        return Err(ApiError::method_not_allowed("DELETE is not supported on subresources"));
    }
    let name = ctx.req.name.clone().unwrap_or_default();
    let opts = delete_options(ctx, body).await?;
    for _ in 0..MAX_RETRIES {
        let current = ctx
            .hub
            .cache
            .get(&ctx.key(&name)?)
            .ok_or_else(|| ctx.not_found(&name))?;
        let stored = current.value();
        if let Some(updated) = ctx.kind.strategy.delete_as_update(&stored) {
            // The object stays; what it stands for starts over. The answer is the object as
            // it was, as a deletion's is.
            let served = ctx.kind.strategy.project(&current);
            let uid = object::uid(served.as_ref().unwrap_or(&stored));
            check_preconditions(ctx, &name, uid, current.mod_revision, &opts)?;
            if !opts.dry_run {
                match replace(ctx, &current, updated).await {
                    Err(WriteError::Raced) if opts.precondition_rv.is_none() => continue,
                    Err(e) => return Err(e.into_api(ctx, &name)),
                    Ok(_) => {}
                }
            }
            return Ok(ctx.respond_stored(StatusCode::OK, &current));
        }
        match delete_one(ctx, &current, &opts).await {
            Err(WriteError::Raced) if opts.precondition_rv.is_none() => continue,
            Ok((code, body)) => return Ok(response::json(code, &body)),
            Err(e) => return Err(e.into_api(ctx, &name)),
        }
    }
    Err(storage_error(ctx, &name, StorageError::Conflict))
}

/// The client's preconditions on the object's UID (as served) and resourceVersion.
fn check_preconditions(ctx: &Ctx, name: &str, uid: &str, mod_revision: u64, opts: &DeleteOptions) -> ApiResult<()> {
    if let Some(wanted) = &opts.precondition_uid
        && wanted != uid
    {
        return Err(ApiError::conflict(
            ctx.group(),
            ctx.resource(),
            name,
            &format!("Precondition failed: UID in precondition: {wanted}, UID in object meta: {uid}"),
        ));
    }
    if let Some(rv) = opts.precondition_rv
        && rv != mod_revision
    {
        return Err(ApiError::conflict(
            ctx.group(),
            ctx.resource(),
            name,
            &format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {mod_revision}"
            ),
        ));
    }
    Ok(())
}

/// Deletes or marks one object; returns the status code and the body to send.
pub(super) async fn delete_one(
    ctx: &Ctx,
    current: &Object,
    opts: &DeleteOptions,
) -> Result<(StatusCode, Value), WriteError> {
    let name = current.name().to_string();
    let mut obj = current.value();
    check_preconditions(ctx, &name, object::uid(&obj), current.mod_revision, opts)?;
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
        && crate::apiserver::gc_support::may_have_dependents(ctx, &obj)
    {
        finalizers.push(f.to_string());
        changed = true;
    }
    if finalizers.is_empty() && !ctx.kind.strategy.blocks_deletion(&obj) {
        if opts.dry_run {
            return Ok((StatusCode::OK, ctx.served(current)));
        }
        remove(ctx, current).await?;
        return Ok((StatusCode::OK, ctx.served(current)));
    }
    // Graceful: mark it and let the finalizers' owners finish.
    {
        let meta = object::meta_mut(&mut obj);
        if !already_deleting {
            meta.insert("deletionTimestamp".into(), faros_api::meta::now_rfc3339().into());
            meta.insert("deletionGracePeriodSeconds".into(), 0.into());
            // Controllers of an object being deleted see a new generation, if it has one.
            if let Some(generation) = meta.get("generation").and_then(Value::as_i64).filter(|g| *g > 0) {
                meta.insert("generation".into(), (generation + 1).into());
            }
            changed = true;
        }
        meta.insert("finalizers".into(), json!(finalizers));
        meta.remove("resourceVersion");
    }
    changed |= ctx.kind.strategy.prepare_for_delete(&mut obj);
    let pending = if opts.accepted_if_pending {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    if !changed || opts.dry_run {
        return Ok((pending, ctx.served(current)));
    }
    let marked = replace(ctx, current, obj).await?;
    let revision = marked["metadata"]["resourceVersion"].as_str().unwrap_or_default();
    let served = match ctx.kind.strategy.project(current) {
        Some(mut served) => {
            // Shown as the stored object now is: marked, at its new revision.
            let meta = object::meta_mut(&mut served);
            for field in [
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "finalizers",
            ] {
                if let Some(v) = marked["metadata"].get(field) {
                    meta.insert(field.into(), v.clone());
                }
            }
            meta.insert("resourceVersion".into(), revision.into());
            served
        }
        None => marked,
    };
    Ok((pending, served))
}

pub(super) async fn delete_collection(ctx: &Ctx, body: axum::body::Body) -> ApiResult<Response> {
    let opts = delete_options(ctx, body).await?;
    let filter = Filter::new(&ctx.kind, &ctx.query)?;
    let prefix = ctx
        .kind
        .collection_prefix(ctx.cluster.one().map(|c| c.name.as_str()), ctx.req.namespace.as_deref());
    let (items, revision, _) = ctx.hub.cache.list(&prefix, None, 0, |o| filter.matches(o));
    let mut deleted = Vec::with_capacity(items.len());
    for item in items {
        match delete_one(ctx, &item, &opts).await {
            Ok((_, obj)) => deleted.push(obj),
            // Gone or changed meanwhile: someone else is already handling it.
            Err(WriteError::Raced) => {}
            Err(WriteError::Refused(e)) if matches!(e.reason, Reason::NotFound | Reason::Conflict) => {}
            Err(WriteError::Refused(e)) => return Err(e),
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
