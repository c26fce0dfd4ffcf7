//! PUT, and the update rules every write to an existing object follows.

use axum::response::Response;
use http::StatusCode;
use serde_json::Value;

use super::context::Ctx;
use super::{
    WriteError, admit, check_type, free_before_awaiting, read_object, remove, replace, replace_and_answer,
    stamp_cluster, storage_error,
};
use faros_machinery::object;
use faros_machinery::status::{ApiError, ApiResult, FieldError};
use faros_storage::{Object, StorageError};

pub(super) async fn update(ctx: &Ctx, body: axum::body::Body) -> ApiResult<Response> {
    let name = ctx.req.name.clone().unwrap_or_default();
    let mut obj = read_object(ctx, body).await?;
    check_type(ctx, &mut obj)?;
    let body_name = object::name(&obj);
    if !body_name.is_empty() && body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let precondition = crate::apiserver::query::parse_revision(obj["metadata"]["resourceVersion"].as_str())?;
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
    let current = ctx
        .hub
        .cache
        .get(&ctx.key(&name)?)
        .ok_or_else(|| ctx.not_found(&name))?;
    write_update(ctx, &current, ctx.served(&current), obj, precondition, false)
        .await
        .map_err(|e| e.into_api(ctx, &name))
}

/// Applies the update rules (immutable fields, subresource split, generation, finalizers)
/// to `new` against `current` (`old` is `current` as this kind serves it, decoded once by
/// the caller and given up to this write, which takes its managedFields when they stay as
/// they are), validates, and stores it.
/// `applied`: `new` comes from server-side apply, which already computed its managedFields.
pub(super) async fn write_update(
    ctx: &Ctx,
    current: &Object,
    mut old: Value,
    mut new: Value,
    precondition: Option<u64>,
    applied: bool,
) -> Result<Response, WriteError> {
    let applied_fields = applied.then(|| new["metadata"]["managedFields"].clone());
    let name = current.name().to_string();
    if let Some(rv) = precondition
        && rv != current.mod_revision
    {
        return Err(storage_error(ctx, &name, StorageError::Conflict).into());
    }
    let subresource = ctx.req.subresource.as_deref();
    match subresource {
        Some("status") => keep_stored_but_status(&mut new, &old),
        Some("finalize") => {
            let finalizers = new["spec"]["finalizers"].clone();
            let mut merged = old.clone();
            merged["spec"]["finalizers"] = finalizers;
            new = merged;
        }
        _ => {
            if ctx.kind.has_status() {
                match old.get("status") {
                    Some(status) => new["status"] = status.clone(),
                    None => {
                        if let Some(map) = new.as_object_mut() {
                            map.remove("status");
                        }
                    }
                }
            }
            ctx.kind.strategy.prepare_for_update(&mut new, &old);
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
    stamp_cluster(ctx.one_cluster()?, &mut new);
    if ctx.kind.tracks_generation && subresource.is_none() && object::spec_changed(&new, &old, ctx.kind.has_status()) {
        let generation = old["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
        object::meta_mut(&mut new).insert("generation".into(), generation.into());
    }
    let warnings = admit(ctx, &mut new, Some(&old))?;
    object::meta_mut(&mut new).insert("resourceVersion".into(), current.mod_revision.to_string().into());
    // Asked before managedFields are recorded, which it does not look at.
    if object::same_content(&new, &old) {
        // A no-op write keeps the resourceVersion and wakes no watcher.
        return Ok(ctx.with_status_code(StatusCode::OK, &old, &warnings));
    }
    match applied_fields {
        Some(fields) if fields.is_array() => {
            object::meta_mut(&mut new).insert("managedFields".into(), fields);
        }
        Some(_) => {
            object::meta_mut(&mut new).remove("managedFields");
        }
        None => crate::apiserver::managed_fields::record_update(ctx, &mut new, Some(&mut old)),
    }
    if ctx.query.dry_run {
        return Ok(ctx.with_status_code(StatusCode::OK, &new, &warnings));
    }
    // Removing the last finalizer of an object being deleted completes the deletion.
    if object::is_deleting(&new) && object::finalizers(&new).is_empty() && !ctx.kind.strategy.blocks_deletion(&new) {
        remove(ctx, current).await?;
        return Ok(ctx.with_status_code(StatusCode::OK, &new, &warnings));
    }
    free_before_awaiting(old);
    match ctx.kind.strategy.unproject(&new) {
        // Stored in another kind's shape: answered in this one, at the new revision.
        Some(stored) => {
            let written = replace(ctx, current, stored).await?;
            object::meta_mut(&mut new).insert("resourceVersion".into(), written["metadata"]["resourceVersion"].clone());
            Ok(ctx.with_status_code(StatusCode::OK, &new, &warnings))
        }
        None => replace_and_answer(ctx, current, new, &warnings).await,
    }
}

/// Through the status subresource only status changes: every other top-level field of `new`
/// becomes the stored object's. A field the request sent as stored (as a patch leaves it) is
/// kept, not copied from `old` again: a fleet's status writes would otherwise copy each
/// Agent's metadata and spec; its status, the device facts, is most of it and never copied.
fn keep_stored_but_status(new: &mut Value, old: &Value) {
    let (Some(new), Some(old)) = (new.as_object_mut(), old.as_object()) else {
        // Both are objects: the request's type was checked and the stored one was.
        return;
    };
    new.retain(|key, _| key == "status" || old.contains_key(key));
    for (key, stored) in old.iter().filter(|(key, _)| *key != "status") {
        match new.get_mut(key) {
            Some(sent) if sent == stored => {}
            Some(sent) => *sent = stored.clone(),
            None => {
                new.insert(key.clone(), stored.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::keep_stored_but_status;

    #[test]
    fn a_status_write_keeps_everything_else_as_stored() {
        let old = json!({
            "apiVersion": "edge.faros.sh/v1alpha1",
            "kind": "Agent",
            "metadata": {"name": "a", "labels": {"site": "x"}, "resourceVersion": "5"},
            "spec": {"heartbeatIntervalSeconds": 10},
            "status": {"phase": "Old"},
        });
        // Changed, added and removed fields outside status are all undone; status is taken.
        let mut new = json!({
            "apiVersion": "edge.faros.sh/v1alpha1",
            "metadata": {"name": "a", "labels": {"site": "y"}},
            "spec": {"heartbeatIntervalSeconds": 10},
            "extra": true,
            "status": {"phase": "New"},
        });
        keep_stored_but_status(&mut new, &old);
        let mut expected = old.clone();
        expected["status"] = json!({"phase": "New"});
        assert_eq!(new, expected);

        // Without a status, the write clears it (as a PUT of the status subresource does).
        let mut cleared = json!({"metadata": {"name": "a"}});
        keep_stored_but_status(&mut cleared, &old);
        let mut expected = old.clone();
        expected.as_object_mut().unwrap().remove("status");
        assert_eq!(cleared, expected);
    }
}
