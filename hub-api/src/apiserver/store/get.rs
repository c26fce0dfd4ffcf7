//! GET of one object.

use axum::response::Response;
use http::StatusCode;

use super::context::Ctx;
use faros_machinery::status::ApiResult;

pub(super) fn get(ctx: &Ctx) -> ApiResult<Response> {
    let name = ctx.req.name.as_deref().unwrap_or_default();
    let Some(object) = ctx.hub.cache.get(&ctx.key(name)?) else {
        // An agent learns nothing of other agents' placements, not even which exist.
        crate::auth::agents::may_read_missing(&ctx.user, &ctx.kind.group, &ctx.kind.resource, name)?;
        return Err(ctx.not_found(name));
    };
    crate::auth::agents::may_read(&ctx.user, &ctx.kind.group, &ctx.kind.resource, &object)?;
    Ok(ctx.respond_stored(StatusCode::OK, &object))
}
