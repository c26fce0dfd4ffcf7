//! Privilege-escalation prevention for RBAC writes, as Kubernetes' policy-based RBAC storage:
//!
//! - creating or updating a Role or ClusterRole is allowed when the requester holds every
//!   permission it grants (in the role's namespace; cluster-wide for ClusterRoles), or may
//!   `escalate` that role. A ClusterRole with an `aggregationRule` needs full authority.
//! - creating or updating a RoleBinding or ClusterRoleBinding is allowed when the requester
//!   holds every permission of the referenced role (in the binding's namespace), or may
//!   `bind` that role. The role must exist.
//!
//! Updates that change only what the garbage collector needs (owner references, finalizers)
//! are not checked. `system:masters` is never checked.

use serde_json::Value;

use super::{Context, Plugin};
use crate::auth::rbac::{self, Attributes, Rule};
use faros_machinery::status::ApiError;

/// RBAC writes may not grant what the requester does not hold.
pub(super) struct RbacEscalation;

impl Plugin for RbacEscalation {
    fn validate(&self, ctx: &Context<'_>, obj: &Value, old: Option<&Value>) -> Result<(), ApiError> {
        check(ctx, obj, old)
    }
}

fn check(ctx: &Context<'_>, obj: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    let kind = &ctx.kind;
    let through_view = ctx.view_rules.is_some();
    // Masters are trusted, except through an export's view, which is bounded by what the
    // binding workspace shares whoever uses it.
    if !kind.builtin
        || kind.group != rbac::GROUP
        || (ctx.user.is_master() && !through_view)
        || ctx.subresource.is_some()
    {
        return Ok(());
    }
    if through_view
        && matches!(kind.resource.as_str(), "rolebindings" | "clusterrolebindings")
        && let Some(subject) = obj["subjects"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["kind"] != "ServiceAccount")
    {
        // Granting to users or groups would open the workspace to people rather than to
        // the workloads the export's owner manages there.
        return Err(rbac::forbidden_on(
            rbac::GROUP,
            &kind.resource,
            obj["metadata"]["name"].as_str().unwrap_or_default(),
            &format!(
                "through an APIExport view, bindings may name ServiceAccounts only, not {} {:?}",
                subject["kind"].as_str().unwrap_or_default(),
                subject["name"].as_str().unwrap_or_default()
            ),
        ));
    }
    if let Some(old) = old
        && only_gc_fields_changed(obj, old)
    {
        return Ok(());
    }
    let authorizer = &ctx.authorizer;
    let cluster = &ctx.cluster;
    // Through an export's view, the owner holds what the binding shares with it, and may
    // grant no more than that: no `escalate` or `bind` shortcut.
    let view_rules = ctx.view_rules;
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let namespace = if kind.namespaced {
        obj["metadata"]["namespace"].as_str().unwrap_or_default()
    } else {
        ""
    };
    let requested: Vec<Rule> = match kind.resource.as_str() {
        "roles" | "clusterroles" => {
            let escalate = Attributes::resource("escalate", rbac::GROUP, &kind.resource, namespace, name);
            if view_rules.is_none() && authorizer.allows(ctx.user, cluster, &escalate) {
                return Ok(());
            }
            let aggregated = obj["aggregationRule"]["clusterRoleSelectors"]
                .as_array()
                .is_some_and(|s| !s.is_empty());
            if aggregated {
                let owned = match view_rules {
                    Some(rules) => rules.to_vec(),
                    None => authorizer.rules_for(ctx.user, cluster, namespace),
                };
                if rbac::uncovered(&owned, &Rule::all()).is_empty() {
                    return Ok(());
                }
                return Err(rbac::forbidden_on(
                    rbac::GROUP,
                    &kind.resource,
                    name,
                    "must have cluster-admin privileges to use the aggregationRule",
                ));
            }
            Rule::list_from_json(&obj["rules"])
        }
        "rolebindings" | "clusterrolebindings" => {
            let role_ref = &obj["roleRef"];
            let ref_kind = role_ref["kind"].as_str().unwrap_or_default();
            let ref_name = role_ref["name"].as_str().unwrap_or_default();
            let resource = if ref_kind == "Role" { "roles" } else { "clusterroles" };
            let bind = Attributes::resource("bind", rbac::GROUP, resource, namespace, ref_name);
            if view_rules.is_none() && authorizer.allows(ctx.user, cluster, &bind) {
                return Ok(());
            }
            match authorizer.role_ref_rules(cluster, role_ref, namespace) {
                Some(rules) => rules.to_vec(),
                None => return Err(ApiError::not_found(rbac::GROUP, resource, ref_name)),
            }
        }
        _ => return Ok(()),
    };
    let owned = match view_rules {
        Some(rules) => rules.to_vec(),
        None => authorizer.rules_for(ctx.user, cluster, namespace),
    };
    let missing = rbac::uncovered(&owned, &requested);
    if missing.is_empty() {
        return Ok(());
    }
    let mut lines: Vec<String> = rbac::compact(&missing).iter().map(Rule::compact_string).collect();
    lines.sort();
    lines.dedup();
    let groups = ctx
        .user
        .groups
        .iter()
        .map(|g| format!("{g:?}"))
        .collect::<Vec<_>>()
        .join(" ");
    Err(rbac::forbidden_on(
        rbac::GROUP,
        &kind.resource,
        name,
        &format!(
            "user {:?} (groups=[{groups}]) is attempting to grant RBAC permissions not currently held:\n{}",
            ctx.user.name,
            lines.join("\n")
        ),
    ))
}

/// Whether `new` differs from `old` only in owner references and finalizers (and the
/// fields the server maintains).
fn only_gc_fields_changed(new: &Value, old: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            for field in [
                "ownerReferences",
                "finalizers",
                "resourceVersion",
                "managedFields",
                "generation",
            ] {
                meta.remove(field);
            }
        }
        v
    };
    strip(new) == strip(old)
}
