//! Admission of tenancy writes that depend on other objects, checked before anything is
//! stored: a new Workspace's type must exist and its logical cluster must be free, and a CRD
//! may not take the name of a resource an APIBinding serves in the same workspace.

use serde_json::Value;

use super::{ROOT, logical_cluster_key, resolve};
use crate::apiserver::handlers::Ctx;
use crate::apiserver::object;
use crate::auth::rbac;
use crate::error::{ApiError, FieldError};
use crate::registry::validation::is_dns1123_label;

const WORKSPACES_PREFIX: &str = "/tenancy.kcp.io/workspaces/";

pub fn check(ctx: &Ctx, obj: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    if ctx.req.subresource.is_some() {
        return Ok(());
    }
    match (ctx.kind.group.as_str(), ctx.kind.resource.as_str()) {
        (faros_api::tenancy::GROUP, "workspaces") if old.is_none() => check_new_workspace(ctx, obj),
        ("apiextensions.k8s.io", "customresourcedefinitions") if old.is_none() => check_crd_names(ctx, obj),
        _ => Ok(()),
    }
}

fn check_new_workspace(ctx: &Ctx, obj: &Value) -> Result<(), ApiError> {
    let name = object::name(obj);
    let mut errors = Vec::new();
    let type_name = obj["spec"]["type"]["name"].as_str().unwrap_or_default();
    let type_path = obj["spec"]["type"]["path"].as_str().unwrap_or(ROOT);
    // A missing path and a missing type answer alike.
    let found = resolve(&ctx.hub.cache, type_path).is_some_and(|cluster| {
        ctx.hub
            .cache
            .get(&format!("/tenancy.kcp.io/workspacetypes/{}/{type_name}", cluster.name))
            .is_some()
    });
    if !found {
        errors.push(FieldError::invalid(
            "spec.type",
            format!("WorkspaceType {type_path}:{type_name} does not exist"),
        ));
    } else if type_name == ROOT && type_path == ROOT {
        errors.push(FieldError::forbidden(
            "spec.type",
            "the root WorkspaceType is for the root workspace only",
        ));
    }
    // Only masters may choose the logical cluster (the strategy drops anyone else's choice);
    // it must be a fresh one, never another workspace's.
    if let Some(cluster) = obj["spec"]["cluster"].as_str() {
        let problems = is_dns1123_label(cluster);
        if !problems.is_empty() {
            errors.push(FieldError::invalid("spec.cluster", problems.join("; ")));
        } else if cluster == ROOT || cluster_in_use(ctx, cluster, name) {
            errors.push(FieldError::invalid(
                "spec.cluster",
                format!("logical cluster {cluster:?} already belongs to another workspace"),
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(
            &ctx.kind.kind,
            faros_api::tenancy::GROUP,
            name,
            errors,
        ))
    }
}

/// Whether `cluster` is held by any workspace but `name` in the requester's cluster (which,
/// if it exists, makes this create an AlreadyExists), or exists with no workspace at all.
fn cluster_in_use(ctx: &Ctx, cluster: &str, name: &str) -> bool {
    let same = format!("{WORKSPACES_PREFIX}{}/{name}", ctx.cluster);
    let (holders, _, _) = ctx
        .hub
        .cache
        .list(WORKSPACES_PREFIX, None, 0, |o| o.value["spec"]["cluster"] == cluster);
    if holders.iter().any(|o| o.key.as_ref() != same) {
        return true;
    }
    holders.is_empty() && ctx.hub.cache.get(&logical_cluster_key(cluster)).is_some()
}

/// A CRD may not serve a group and resource that an APIBinding already serves in this
/// workspace: the bound objects would vanish behind it (kcp refuses it as well).
fn check_crd_names(ctx: &Ctx, obj: &Value) -> Result<(), ApiError> {
    let group = obj["spec"]["group"].as_str().unwrap_or_default();
    let plural = obj["spec"]["names"]["plural"].as_str().unwrap_or_default();
    let prefix = format!("/apis.kcp.io/apibindings/{}/", ctx.cluster);
    let (bindings, _, _) = ctx.hub.cache.list(&prefix, None, 1, |o| {
        o.value["status"]["boundResources"]
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
                object::name(&binding.value)
            ),
        )),
    }
}
