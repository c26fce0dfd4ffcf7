//! The garbage collector: deletes dependents whose owners (matched by uid within the same
//! logical cluster) are gone, and carries out Foreground and Orphan deletion of owners.
//!
//! Each pass lists every resource once through the API — built-in and system kinds through
//! the `/clusters/*` view, custom and bound resources per workspace that has them — and
//! works on the resulting owner graph, so a pass is linear in the number of objects.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::discovery::{Discovery, Scope, verbs};
use kube::{Client, ResourceExt};
use serde_json::json;

use super::runtime::{Clusters, cluster_of};
use crate::apiserver::handlers::{FOREGROUND_FINALIZER, ORPHAN_FINALIZER};

const PASS_INTERVAL: Duration = Duration::from_secs(2);

pub async fn run(clusters: Clusters) {
    let mut failures = 0;
    loop {
        match pass(&clusters).await {
            Ok(()) => {
                failures = 0;
                tokio::time::sleep(PASS_INTERVAL).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "garbage collection pass failed");
                super::backoff_sleep(&mut failures).await;
            }
        }
    }
}

struct Node {
    resource: ApiResource,
    namespaced: bool,
    object: DynamicObject,
}

/// Groups served identically in every workspace, listed once through `/clusters/*`.
const STATIC_GROUPS: &[&str] = &[
    "",
    "coordination.k8s.io",
    "rbac.authorization.k8s.io",
    "apiextensions.k8s.io",
    "tenancy.kcp.io",
    "core.kcp.io",
    "apis.kcp.io",
];

fn api_for(clusters: &Clusters, node: &Node) -> Api<DynamicObject> {
    let client = clusters.cluster(&cluster_of(&node.object));
    match (node.namespaced, node.object.namespace()) {
        (true, Some(ns)) => Api::namespaced_with(client, &ns, &node.resource),
        _ => Api::all_with(client, &node.resource),
    }
}

/// Lists every deletable resource `discovery` knows whose group passes `wanted`, through
/// `client`.
async fn collect(
    client: &Client,
    discovery: &Discovery,
    wanted: impl Fn(&str) -> bool,
    nodes: &mut Vec<Node>,
) -> Result<(), kube::Error> {
    for group in discovery.groups() {
        if !wanted(group.name()) {
            continue;
        }
        for (resource, caps) in group.recommended_resources() {
            if !caps.supports_operation(verbs::LIST) || !caps.supports_operation(verbs::DELETE) {
                continue;
            }
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
            for object in api.list(&ListParams::default()).await?.items {
                nodes.push(Node {
                    resource: resource.clone(),
                    namespaced: caps.scope == Scope::Namespaced,
                    object,
                });
            }
        }
    }
    Ok(())
}

async fn pass(clusters: &Clusters) -> Result<(), kube::Error> {
    let root = clusters.cluster(crate::tenancy::ROOT);
    let discovery = Discovery::new(root).run().await?;
    let mut nodes = Vec::new();
    collect(
        &clusters.wildcard(),
        &discovery,
        |g| STATIC_GROUPS.contains(&g),
        &mut nodes,
    )
    .await?;
    // Custom and bound resources differ per workspace: visit the workspaces that have any.
    let mut extra: HashSet<String> = HashSet::new();
    for node in &nodes {
        let kind = node.resource.kind.as_str();
        if kind == "CustomResourceDefinition" || (kind == "APIBinding" && node.resource.group == "apis.kcp.io") {
            extra.insert(cluster_of(&node.object));
        }
    }
    for cluster in extra {
        let client = clusters.cluster(&cluster);
        let discovery = Discovery::new(client.clone()).run().await?;
        collect(&client, &discovery, |g| !STATIC_GROUPS.contains(&g), &mut nodes).await?;
    }
    let alive: HashSet<(String, String)> = nodes
        .iter()
        .filter_map(|n| Some((cluster_of(&n.object), n.object.uid()?)))
        .collect();
    // owner (cluster, uid) -> indexes of its dependents
    let mut dependents: HashMap<(String, String), Vec<usize>> = HashMap::new();
    for (i, node) in nodes.iter().enumerate() {
        for owner in node.object.owner_references() {
            dependents
                .entry((cluster_of(&node.object), owner.uid.clone()))
                .or_default()
                .push(i);
        }
    }

    for node in &nodes {
        let cluster = cluster_of(&node.object);
        let refs = node.object.owner_references();
        if refs.is_empty() || node.object.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let live: Vec<_> = refs
            .iter()
            .filter(|r| alive.contains(&(cluster.clone(), r.uid.clone())))
            .collect();
        let api = api_for(clusters, node);
        if live.is_empty() {
            ignore_gone(api.delete(&node.object.name_any(), &DeleteParams::background()).await)?;
        } else if live.len() < refs.len() {
            let patch =
                json!({"metadata": {"ownerReferences": live, "resourceVersion": node.object.resource_version()}});
            ignore_gone(
                api.patch(&node.object.name_any(), &PatchParams::default(), &Patch::Merge(patch))
                    .await,
            )?;
        }
    }

    for node in nodes.iter().filter(|n| n.object.metadata.deletion_timestamp.is_some()) {
        let finalizers = node.object.finalizers();
        let orphan = finalizers.iter().any(|f| f == ORPHAN_FINALIZER);
        let foreground = finalizers.iter().any(|f| f == FOREGROUND_FINALIZER);
        if !orphan && !foreground {
            continue;
        }
        let Some(uid) = node.object.uid() else { continue };
        let key = (cluster_of(&node.object), uid.clone());
        let deps = dependents.get(&key).cloned().unwrap_or_default();
        if orphan {
            for &d in &deps {
                let dep = &nodes[d];
                let kept: Vec<_> = dep.object.owner_references().iter().filter(|r| r.uid != uid).collect();
                let patch =
                    json!({"metadata": {"ownerReferences": kept, "resourceVersion": dep.object.resource_version()}});
                ignore_gone(
                    api_for(clusters, dep)
                        .patch(&dep.object.name_any(), &PatchParams::default(), &Patch::Merge(patch))
                        .await,
                )?;
            }
            remove_finalizer(clusters, node, ORPHAN_FINALIZER).await?;
        } else if foreground {
            if deps.is_empty() {
                remove_finalizer(clusters, node, FOREGROUND_FINALIZER).await?;
                continue;
            }
            for &d in &deps {
                let dep = &nodes[d];
                if dep.object.metadata.deletion_timestamp.is_none() {
                    ignore_gone(
                        api_for(clusters, dep)
                            .delete(&dep.object.name_any(), &DeleteParams::foreground())
                            .await,
                    )?;
                }
            }
        }
    }
    Ok(())
}

async fn remove_finalizer(clusters: &Clusters, node: &Node, finalizer: &str) -> Result<(), kube::Error> {
    let kept: Vec<&String> = node.object.finalizers().iter().filter(|f| *f != finalizer).collect();
    let patch = json!({"metadata": {"finalizers": kept, "resourceVersion": node.object.resource_version()}});
    ignore_gone(
        api_for(clusters, node)
            .patch(&node.object.name_any(), &PatchParams::default(), &Patch::Merge(patch))
            .await,
    )
}

/// A 404 or 409 means the object changed meanwhile; the next pass looks again.
fn ignore_gone<T>(result: Result<T, kube::Error>) -> Result<(), kube::Error> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}
