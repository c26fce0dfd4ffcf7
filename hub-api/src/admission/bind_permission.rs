//! Who may bind an APIExport, and who writes a binding's status.

use serde_json::Value;

use super::{Context, Plugin};
use crate::auth::rbac::{self, Attributes};
use faros_machinery::status::ApiError;

/// Creating an APIBinding needs `bind` on the APIExport in the export's workspace (as in
/// kcp): binding grants the export's owner a view into the workspace, and uses the export,
/// so neither side is chosen by the other alone. A missing export and a refused one answer
/// alike. Only the hub writes a binding's status. `system:masters` is never checked.
pub(super) struct BindPermission;

impl Plugin for BindPermission {
    fn validate(&self, ctx: &Context<'_>, obj: &Value, old: Option<&Value>) -> Result<(), ApiError> {
        check(ctx, obj, old)
    }
}

fn check(ctx: &Context<'_>, obj: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    let kind = &ctx.kind;
    if kind.group != faros_api::apis::GROUP || kind.resource != "apibindings" || ctx.user.is_master() {
        return Ok(());
    }
    if ctx.subresource == Some("status") {
        // What a binding serves is decided from its status: only the hub's controllers set it.
        return Err(rbac::forbidden_on(
            faros_api::apis::GROUP,
            "apibindings",
            obj["metadata"]["name"].as_str().unwrap_or_default(),
            "the status of an APIBinding is set by the hub",
        ));
    }
    if old.is_some() {
        return Ok(());
    }
    let export = &obj["spec"]["reference"]["export"];
    let name = export["name"].as_str().unwrap_or_default();
    let path = export["path"].as_str().filter(|p| !p.is_empty());
    let denied = || {
        rbac::forbidden_on(
            faros_api::apis::GROUP,
            "apibindings",
            obj["metadata"]["name"].as_str().unwrap_or_default(),
            &format!(
                "no permission to bind to APIExport {}:{name}",
                path.unwrap_or(ctx.cluster_path)
            ),
        )
    };
    let export_cluster = match path {
        Some(path) => crate::tenancy::resolve(ctx.cache, path).ok_or_else(denied)?.name.into(),
        None => ctx.cluster.to_string(),
    };
    let bind = Attributes::resource("bind", faros_api::apis::GROUP, "apiexports", "", name);
    if ctx.authorizer.allows(ctx.user, &export_cluster, &bind) {
        Ok(())
    } else {
        Err(denied())
    }
}
