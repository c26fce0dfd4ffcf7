//! Namespace lifecycle: a namespace being deleted is emptied of every namespaced object
//! (their own finalizers honoured), its status reports what remains, and once it is empty
//! the `kubernetes` finalizer is removed so the namespace itself goes away.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::discovery::{Discovery, Scope, verbs};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::runtime::{self, Clusters, Next};

pub async fn run(clusters: Clusters) {
    // Only namespaces being deleted need anything.
    runtime::run_unsettled(
        "namespace",
        clusters,
        |ns: &Namespace| ns.metadata.deletion_timestamp.is_none(),
        reconcile,
    )
    .await;
}

async fn reconcile(ns: Arc<Namespace>, client: Client) -> Result<Next, kube::Error> {
    if ns.metadata.deletion_timestamp.is_none() {
        return Ok(Next::Done);
    }
    let name = ns.name_any();
    let remaining = delete_content(&client, &name).await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if remaining.is_empty() {
        let has_finalizer = ns
            .spec
            .as_ref()
            .and_then(|s| s.finalizers.as_ref())
            .is_some_and(|f| !f.is_empty());
        if has_finalizer {
            let mut finalized = (*ns).clone();
            finalized.spec = Some(k8s_openapi::api::core::v1::NamespaceSpec {
                finalizers: Some(Vec::new()),
            });
            namespaces
                .replace_subresource("finalize", &name, &PostParams::default(), &finalized)
                .await?;
        }
        return Ok(Next::Done);
    }
    let message = format!("Some resources are remaining: {}", remaining.join(", "));
    let status = json!({"status": {
        "phase": "Terminating",
        "conditions": [{
            "type": "NamespaceContentRemaining",
            "status": "True",
            "reason": "SomeResourcesRemain",
            "message": message,
            "lastTransitionTime": faros_api::meta::now_rfc3339(),
        }],
    }});
    let already = ns
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.message.as_deref() == Some(message.as_str())));
    if !already {
        namespaces
            .patch_status(
                &name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(status),
            )
            .await?;
    }
    Ok(Next::After(Duration::from_secs(1)))
}

/// Deletes everything namespaced in `ns`; returns "<count> <resource>" for what remains.
pub async fn delete_content(client: &Client, ns: &str) -> Result<Vec<String>, kube::Error> {
    // Aggregated discovery: two requests for every group rather than one per group version.
    let discovery = Discovery::new(client.clone()).run_aggregated().await?;
    let mut remaining = Vec::new();
    for group in discovery.groups() {
        for (resource, caps) in group.recommended_resources() {
            if caps.scope != Scope::Namespaced || !caps.supports_operation(verbs::LIST) {
                continue;
            }
            // What cannot be created is not content of its own but a view of other objects
            // (the Pods shown for Placements): deleting it would only act on those, which are
            // deleted in their own right.
            if !caps.supports_operation(verbs::CREATE) {
                continue;
            }
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
            let objects = api.list(&ListParams::default()).await?;
            if objects.items.is_empty() {
                continue;
            }
            let pending = objects
                .items
                .iter()
                .filter(|o| o.metadata.deletion_timestamp.is_none())
                .count();
            if pending > 0 {
                if caps.supports_operation(verbs::DELETE_COLLECTION) {
                    api.delete_collection(&DeleteParams::background(), &ListParams::default())
                        .await?;
                } else {
                    for o in &objects.items {
                        let _ = api.delete(&o.name_any(), &DeleteParams::background()).await;
                    }
                }
            }
            remaining.push(format!(
                "{}.{} has {} resource instances",
                resource.plural,
                resource.group,
                objects.items.len()
            ));
        }
    }
    Ok(remaining)
}
