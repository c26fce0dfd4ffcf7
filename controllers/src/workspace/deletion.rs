//! Deleting: the workspace's logical cluster is emptied, children first, then the Workspace
//! lets go of its content finalizer.

use std::collections::BTreeMap;
use std::time::Duration;

use faros_api::Condition;
use faros_api::tenancy::{LOGICAL_CLUSTER_NAME, LogicalCluster, WORKSPACE_FINALIZER, Workspace};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::discovery::{Discovery, Scope, verbs};
use kube::{Client, ResourceExt};
use serde_json::json;

use super::Target;
use crate::errors::{is_conflict, is_not_found};
use crate::finalizer;
use crate::runtime::Next;

pub(super) async fn reconcile(target: &Target<'_>) -> Result<Next, kube::Error> {
    let ws = target.ws;
    if ws.status.as_ref().is_none_or(|s| s.phase != "Terminating") {
        let status = json!({"status": {"phase": "Terminating"}});
        target
            .workspaces
            .patch_status(&ws.name_any(), &PatchParams::default(), &Patch::Merge(status))
            .await?;
    }
    if let Purge::Waiting(message) = purge(&target.child).await? {
        let already = ws
            .status
            .as_ref()
            .is_some_and(|s| s.conditions.iter().any(|c| c.message == message));
        if !already && !message.is_empty() {
            let condition = Condition::new("WorkspaceContentDeleted", false, "SomeResourcesRemain", &message);
            target.set_status("Terminating", vec![condition]).await?;
        }
        return Ok(Next::After(Duration::from_millis(500)));
    }
    finalizer::release(&target.workspaces, ws, WORKSPACE_FINALIZER).await?;
    Ok(Next::Done)
}

enum Purge {
    Done,
    /// Still emptying; what holds it up, if anything but time.
    Waiting(String),
}

/// Deletes everything in a logical cluster, children workspaces first, as any client would:
/// finalizers run as usual (namespaces empty themselves, bindings take their objects, the
/// edge controllers revoke credentials), and objects a finalizer holds are reported.
async fn purge(child: &Client) -> Result<Purge, kube::Error> {
    let children: Api<Workspace> = Api::all(child.clone());
    let remaining = children.list(&ListParams::default()).await?.items;
    if !remaining.is_empty() {
        for ws in remaining.iter().filter(|w| w.metadata.deletion_timestamp.is_none()) {
            match children.delete(&ws.name_any(), &DeleteParams::background()).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e),
            }
        }
        return Ok(Purge::Waiting(format!(
            "waiting for {} child workspace(s) to be deleted",
            remaining.len()
        )));
    }
    // Aggregated discovery: two requests for every group, where asking group by group takes
    // one per group version, for each workspace deleted.
    let discovery = Discovery::new(child.clone()).run_aggregated().await?;
    let mut left = 0usize;
    let mut held: BTreeMap<String, usize> = BTreeMap::new();
    // Namespaced objects first, then cluster-scoped ones; RBAC only once everything else is
    // gone, so the workspace's own admins can still clear a finalizer that holds it up; the
    // LogicalCluster itself last.
    let passes = [
        (Scope::Namespaced, false),
        (Scope::Cluster, false),
        (Scope::Namespaced, true),
        (Scope::Cluster, true),
    ];
    for (pass_scope, rbac_pass) in passes {
        if rbac_pass && left > 0 {
            break;
        }
        for group in discovery.groups() {
            for (resource, caps) in group.recommended_resources() {
                let is_rbac = resource.group == "rbac.authorization.k8s.io";
                if caps.scope != pass_scope || is_rbac != rbac_pass || !caps.supports_operation(verbs::LIST) {
                    continue;
                }
                let api: Api<DynamicObject> = Api::all_with(child.clone(), &resource);
                for object in api.list(&ListParams::default()).await?.items {
                    if resource.kind == "LogicalCluster" {
                        continue;
                    }
                    let what = if resource.group.is_empty() {
                        resource.plural.clone()
                    } else {
                        format!("{}.{}", resource.plural, resource.group)
                    };
                    let mut remains = |object: &DynamicObject| {
                        left += 1;
                        for finalizer in object.finalizers() {
                            *held.entry(format!("{finalizer} on {what}")).or_default() += 1;
                        }
                    };
                    if object.metadata.deletion_timestamp.is_some() {
                        remains(&object);
                        continue;
                    }
                    let scoped: Api<DynamicObject> = match object.namespace() {
                        Some(ns) => Api::namespaced_with(child.clone(), &ns, &resource),
                        None => Api::all_with(child.clone(), &resource),
                    };
                    // Only what a finalizer keeps remains: an object deleted at once does not
                    // hold up the next pass, so an empty workspace is done in one reconcile
                    // once its namespaces are.
                    match scoped.delete(&object.name_any(), &DeleteParams::background()).await {
                        // The object back (rather than a Status): a finalizer keeps it.
                        Ok(outcome) => {
                            if let Some(kept) = outcome.left() {
                                remains(&kept);
                            }
                        }
                        Err(e) if is_not_found(&e) => {}
                        Err(e) if is_conflict(&e) => remains(&object),
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    }
    if left > 0 {
        return Ok(Purge::Waiting(held_by(&held)));
    }
    let logical: Api<LogicalCluster> = Api::all(child.clone());
    match logical.delete(LOGICAL_CLUSTER_NAME, &DeleteParams::background()).await {
        Ok(_) => Ok(Purge::Done),
        Err(e) if is_not_found(&e) => Ok(Purge::Done),
        Err(e) => Err(e),
    }
}

/// What the workspace condition says holds the content up: each finalizer on each resource,
/// with how many objects it holds.
fn held_by(held: &BTreeMap<String, usize>) -> String {
    if held.is_empty() {
        return String::new();
    }
    let holders: Vec<String> = held.iter().map(|(held, n)| format!("{held} ({n})")).collect();
    format!("Some content is held by finalizers: {}", holders.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_are_named_with_their_counts() {
        assert_eq!(held_by(&BTreeMap::new()), "");
        let held = BTreeMap::from([
            ("example.com/keep on widgets.example.com".to_string(), 2),
            ("kubernetes on namespaces".to_string(), 1),
        ]);
        assert_eq!(
            held_by(&held),
            "Some content is held by finalizers: example.com/keep on widgets.example.com (2), kubernetes on namespaces (1)"
        );
    }
}
