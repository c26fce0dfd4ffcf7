//! POST: a new object.

use std::borrow::Cow;

use axum::response::Response;
use http::StatusCode;
use serde_json::Value;

use super::context::Ctx;
use super::{
    admit, check_namespace, check_type, encode_for_storage, free_before_awaiting, read_object, stamp_cluster,
    storage_error,
};
use crate::admission::{self, Operation};
use faros_machinery::object;
use faros_machinery::status::{ApiError, ApiResult, FieldError};
use faros_storage::WriteOp;

pub(super) async fn create(ctx: &Ctx, body: axum::body::Body) -> ApiResult<Response> {
    if ctx.req.name.is_some() || ctx.req.subresource.is_some() {
        return Err(ApiError::method_not_allowed("POST is only supported on collections"));
    }
    let mut obj = read_object(ctx, body).await?;
    let warnings = prepare_create(ctx, &mut obj)?;
    let name = object::name(&obj).to_string();
    if ctx.query.dry_run {
        return Ok(ctx.with_status_code(StatusCode::CREATED, &obj, &warnings));
    }
    let key = ctx.key(&name)?;
    let stored = ctx.to_stored(&obj);
    // No earlier size to go by: the buffer grows as it fills.
    let value = encode_for_storage(&stored, 0);
    // An object stored in another kind's shape is answered from its tree in this one; any
    // other is answered from what was stored, and its tree freed before the write.
    let projected = matches!(stored, Cow::Owned(_));
    drop(stored);
    let answer_tree = if projected {
        Some(obj)
    } else {
        free_before_awaiting(obj);
        None
    };
    let write = WriteOp::Create {
        key: key.clone(),
        value: value.clone(),
    };
    let outcome = ctx
        .hub
        .cache
        .write(write)
        .await
        .map_err(|e| storage_error(ctx, &name, e))?;
    Ok(match answer_tree {
        Some(mut obj) => {
            object::meta_mut(&mut obj).insert("resourceVersion".into(), outcome.revision.to_string().into());
            ctx.with_status_code(StatusCode::CREATED, &obj, &warnings)
        }
        None => ctx.respond_written(StatusCode::CREATED, &key, &value, outcome.revision, &warnings),
    })
}

/// Everything a create does before storage: type and namespace checks, server-set fields,
/// defaulting and validation, done to `obj` in place; returns the warnings. Shared with
/// server-side apply of a missing object.
pub fn prepare_create(ctx: &Ctx, obj: &mut Value) -> ApiResult<Vec<String>> {
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
    if ctx.kind.tracks_generation {
        meta.insert("generation".into(), 1.into());
    } else if meta.get("generation").and_then(Value::as_i64) == Some(0) {
        // Kubernetes omits a zero generation; protobuf bodies (kubectl's for built-in kinds)
        // carry one.
        meta.remove("generation");
    }
    if ctx.kind.has_status() && !ctx.kind.builtin {
        // Status is written through the subresource only.
        if let Some(map) = obj.as_object_mut() {
            map.remove("status");
        }
    }
    if ctx.kind.namespaced {
        let ns = object::namespace(obj).to_string();
        check_namespace(ctx, &ns)?;
    }
    let cluster = ctx.one_cluster()?;
    let env = crate::registry::WriteEnv {
        cluster: &cluster.name,
        path: &cluster.path,
        external_url: &ctx.hub.external_url,
        user: &ctx.user,
    };
    admission::mutate(&ctx.admission(Operation::Create)?, obj);
    ctx.kind.strategy.prepare_for_create(obj, &env);
    stamp_cluster(cluster, obj);
    let warnings = admit(ctx, obj, None)?;
    crate::apiserver::managed_fields::record_update(ctx, obj, None);
    Ok(warnings)
}
