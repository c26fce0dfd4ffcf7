//! CRDs may not hide resources an APIBinding serves.

use serde_json::Value;

use super::{Context, Plugin};
use crate::auth::rbac;
use crate::tenancy::export_view::bindings_prefix;
use faros_machinery::object;
use faros_machinery::status::ApiError;

/// A CRD may not serve a group and resource that an APIBinding already serves in this
/// workspace: the bound objects would vanish behind it (kcp refuses it as well).
pub(super) struct CrdNames;

impl Plugin for CrdNames {
    fn validate(&self, ctx: &Context<'_>, obj: &Value, old: Option<&Value>) -> Result<(), ApiError> {
        if old.is_none() && ctx.subresource.is_none() && ctx.is("apiextensions.k8s.io", "customresourcedefinitions") {
            check(ctx, obj)
        } else {
            Ok(())
        }
    }
}

fn check(ctx: &Context<'_>, obj: &Value) -> Result<(), ApiError> {
    let group = obj["spec"]["group"].as_str().unwrap_or_default();
    let plural = obj["spec"]["names"]["plural"].as_str().unwrap_or_default();
    let prefix = bindings_prefix().cluster(ctx.cluster);
    let (bindings, _, _) = ctx.cache.list(prefix.as_str(), None, 1, |o| {
        o.value()["status"]["boundResources"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["group"] == group && r["resource"] == plural)
    });
    match bindings.first() {
        None => Ok(()),
        Some(binding) => Err(rbac::forbidden_on(
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            object::name(obj),
            &format!(
                "{plural}.{group} is already served in this workspace through APIBinding {:?}",
                object::name(&binding.value())
            ),
        )),
    }
}
