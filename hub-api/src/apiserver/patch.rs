//! PATCH: JSON patch (RFC 6902), JSON merge patch (RFC 7386), strategic merge patch for
//! built-in kinds, and apply patches.

use axum::response::Response;
use serde_json::Value;

use super::store::Ctx;
use faros_machinery::decode;
use faros_machinery::status::{ApiError, ApiResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

const ACCEPTED: &str = "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml";

impl PatchType {
    pub fn from_media_type(media: &str, builtin: bool) -> ApiResult<PatchType> {
        match media {
            "application/json-patch+json" => Ok(PatchType::Json),
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Ok(PatchType::Apply),
            "application/strategic-merge-patch+json" if builtin => Ok(PatchType::Strategic),
            // Custom resources have no Go struct tags to merge by, so Kubernetes refuses SMP
            // for them with exactly this status; kubectl falls back to merge patch on it.
            "application/strategic-merge-patch+json" => Err(ApiError::unsupported_media_type(format!(
                "the body of the request was in an unknown format - accepted media types include: {ACCEPTED}"
            ))),
            other => {
                let accepted = if builtin {
                    format!("{ACCEPTED}, application/strategic-merge-patch+json")
                } else {
                    ACCEPTED.to_string()
                };
                Err(ApiError::unsupported_media_type(format!(
                    "the body of the request was in an unknown format ({other:?}) - accepted media types include: {accepted}"
                )))
            }
        }
    }
}

/// Decodes the patch document of the given type.
pub fn decode(patch_type: PatchType, raw: &[u8]) -> ApiResult<Value> {
    let value = match patch_type {
        PatchType::Apply => decode::decode_yaml(raw)?,
        _ => decode::decode_json(raw)?,
    };
    match (patch_type, &value) {
        (PatchType::Json, Value::Array(_)) => Ok(value),
        (PatchType::Json, _) => Err(ApiError::bad_request("a JSON patch must be an array of operations")),
        (_, Value::Object(_)) => Ok(value),
        _ => Err(ApiError::bad_request("the patch must be a JSON object")),
    }
}

/// Applies `patch` to `current`, returning the candidate object (validated by the caller).
pub fn apply(ctx: &Ctx, patch_type: PatchType, current: &Value, patch: &Value) -> ApiResult<Value> {
    // JSON and merge patches change a copy of the object; the other two build a new one.
    let doc = match patch_type {
        PatchType::Json => {
            let mut doc = current.clone();
            decode::apply_json_patch(&mut doc, patch)?;
            doc
        }
        PatchType::Merge => {
            let mut doc = current.clone();
            decode::apply_merge_patch(&mut doc, patch);
            doc
        }
        PatchType::Strategic => {
            // The patch strategies are those the kind's published schema declares, so the
            // server merges as kubectl computed the patch.
            let schema = super::openapi::builtin_kind_schema(&ctx.kind);
            let meta = faros_machinery::strategic_merge::SchemaPatchMeta::new(super::openapi::definitions(), &schema);
            faros_machinery::strategic_merge::apply(current, patch, &meta)
                .map_err(|e| ApiError::bad_request(format!("invalid strategic merge patch: {}", e.0)))?
        }
        PatchType::Apply => super::managed_fields::apply(ctx, current, patch)?,
    };
    if !doc.is_object() {
        return Err(ApiError::bad_request("the patched object must be a JSON object"));
    }
    Ok(doc)
}

/// Server-side apply to an object that does not exist yet creates it (201).
pub async fn apply_create(ctx: &Ctx, patch: Value) -> ApiResult<Response> {
    super::managed_fields::apply_create(ctx, patch).await
}
