//! PATCH: JSON, merge, strategic merge and apply patches on a fresh read, retried on lost races.

use axum::response::Response;

use super::context::Ctx;
use super::update::write_update;
use super::{MAX_RETRIES, WriteError, storage_error};
use crate::apiserver::body::{self};
use faros_machinery::status::{ApiError, ApiResult};
use faros_storage::StorageError;

pub(super) async fn patch(ctx: &Ctx, body: axum::body::Body) -> ApiResult<Response> {
    let name = ctx.req.name.clone().unwrap_or_default();
    let media = body::content_type(&ctx.headers);
    let patch_type = crate::apiserver::patch::PatchType::from_media_type(&media, ctx.kind.builtin)?;
    let raw = body::read(body).await?;
    let patch = crate::apiserver::patch::decode(patch_type, &raw)?;
    if patch_type == crate::apiserver::patch::PatchType::Apply && ctx.query.field_manager.is_none() {
        return Err(ApiError::bad_request(
            "PATCH requests with apply content type (application/apply-patch+yaml) require a fieldManager",
        ));
    }
    for _ in 0..MAX_RETRIES {
        let current = match ctx.hub.cache.get(&ctx.key(&name)?) {
            Some(current) => current,
            None if patch_type == crate::apiserver::patch::PatchType::Apply && ctx.req.subresource.is_none() => {
                return crate::apiserver::patch::apply_create(ctx, patch).await;
            }
            None => return Err(ctx.not_found(&name)),
        };
        let served = ctx.served(&current);
        let patched = crate::apiserver::patch::apply(ctx, patch_type, &served, &patch)?;
        // A resourceVersion in the patch body is a precondition (`kubectl diff`, kubectl's
        // optimistic concurrency); without one, a lost race is retried on fresh data.
        let precondition = crate::apiserver::query::parse_revision(patch["metadata"]["resourceVersion"].as_str())
            .ok()
            .flatten();
        let applied = patch_type == crate::apiserver::patch::PatchType::Apply;
        match write_update(ctx, &current, served, patched, precondition, applied).await {
            Err(WriteError::Raced) if precondition.is_none() => continue,
            other => return other.map_err(|e| e.into_api(ctx, &name)),
        }
    }
    Err(storage_error(ctx, &name, StorageError::Conflict))
}
