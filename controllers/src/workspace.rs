//! Workspace lifecycle: Scheduling → Initializing → Ready, and deletion.
//!
//! Initializing creates the child's LogicalCluster object, its `default` namespace, the
//! workspace creator's admin binding, and the APIBindings its WorkspaceType asks for; the
//! workspace is Ready once they are bound. Deleting a Workspace deletes its child workspaces
//! first, then everything in its logical cluster, then lets the Workspace go.

use std::sync::Arc;
use std::time::Duration;

use faros_api::tenancy::{LogicalCluster, PATH_ANNOTATION, Workspace, WorkspaceType};
use faros_api::{Condition, conditions};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::discovery::{Discovery, Scope, verbs};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::runtime::{self, Clusters, Next, cluster_of};
use faros_api::meta::now_rfc3339;
use faros_api::tenancy::{LOGICAL_CLUSTER_NAME, OWNER_ANNOTATION, WORKSPACE_FINALIZER};

pub async fn run(clusters: Clusters) {
    let all = clusters.clone();
    runtime::run("workspace", clusters, move |ws: Arc<Workspace>, parent: Client| {
        let clusters = all.clone();
        async move { reconcile(ws, parent, clusters).await }
    })
    .await;
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// The workspace path from its URL (`.../clusters/<path>`).
fn path_of(ws: &Workspace) -> String {
    ws.spec
        .url
        .rsplit_once("/clusters/")
        .map(|(_, p)| p.to_string())
        .unwrap_or_default()
}

async fn reconcile(ws: Arc<Workspace>, parent: Client, clusters: Clusters) -> Result<Next, kube::Error> {
    let child_cluster = ws.spec.cluster.clone();
    if child_cluster.is_empty() {
        return Ok(Next::Done);
    }
    // Addressed by path: the path resolves as soon as the Workspace names its cluster,
    // before the child's LogicalCluster object exists.
    let path = path_of(&ws);
    let child = clusters.cluster(if path.is_empty() { &child_cluster } else { &path });
    let workspaces: Api<Workspace> = Api::all(parent.clone());
    if ws.metadata.deletion_timestamp.is_some() {
        if !ws.finalizers().iter().any(|f| f == WORKSPACE_FINALIZER) {
            return Ok(Next::Done);
        }
        if ws.status.as_ref().is_none_or(|s| s.phase != "Terminating") {
            let status = json!({"status": {"phase": "Terminating"}});
            workspaces
                .patch_status(&ws.name_any(), &PatchParams::default(), &Patch::Merge(status))
                .await?;
        }
        match purge(&child).await? {
            Purge::Done => {}
            Purge::Waiting(message) => {
                let already = ws
                    .status
                    .as_ref()
                    .is_some_and(|s| s.conditions.iter().any(|c| c.message == message));
                if !already && !message.is_empty() {
                    set_status(
                        &workspaces,
                        &ws,
                        "Terminating",
                        Condition::new("WorkspaceContentDeleted", false, "SomeResourcesRemain", &message),
                    )
                    .await?;
                }
                return Ok(Next::After(Duration::from_millis(500)));
            }
        }
        let kept: Vec<&String> = ws.finalizers().iter().filter(|f| *f != WORKSPACE_FINALIZER).collect();
        let patch = json!({"metadata": {"finalizers": kept, "resourceVersion": ws.resource_version()}});
        match workspaces
            .patch(&ws.name_any(), &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(&e) || is_conflict(&e) => {}
            Err(e) => return Err(e),
        }
        return Ok(Next::Done);
    }

    let phase = ws.status.as_ref().map(|s| s.phase.as_str()).unwrap_or_default();
    if phase == "Ready" {
        return Ok(Next::Done);
    }
    ensure_logical_cluster(&child, &ws, &cluster_of(&*ws), &path).await?;
    if phase != "Initializing" {
        set_status(
            &workspaces,
            &ws,
            "Initializing",
            Condition::new("WorkspaceScheduled", true, "Scheduled", ""),
        )
        .await?;
        return Ok(Next::After(Duration::from_millis(10)));
    }

    // Initializing: namespaces and the bindings of the workspace's type.
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(child.clone());
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}});
    match namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(ns).expect("valid namespace"),
        )
        .await
    {
        Ok(_) => {}
        Err(e) if is_conflict(&e) => {}
        Err(e) => return Err(e),
    }
    // The default RBAC policy, and the creator as the workspace's admin.
    crate::policy::initialize(&child, ws.annotations().get(OWNER_ANNOTATION).map(String::as_str)).await?;
    let Some(type_ref) = ws.spec.type_.clone() else {
        return Ok(Next::Done);
    };
    let type_path = if type_ref.path.is_empty() {
        faros_api::tenancy::ROOT.to_string()
    } else {
        type_ref.path.clone()
    };
    let types: Api<WorkspaceType> = Api::all(clusters.cluster(&type_path));
    let workspace_type = match types.get_opt(&type_ref.name).await? {
        Some(t) => t,
        None => {
            let message = format!("WorkspaceType {}:{} does not exist", type_path, type_ref.name);
            set_status(
                &workspaces,
                &ws,
                "Initializing",
                Condition::new("WorkspaceInitialized", false, "WorkspaceTypeNotFound", &message),
            )
            .await?;
            return Ok(Next::After(Duration::from_secs(5)));
        }
    };
    let defaults = default_api_bindings(&clusters, workspace_type, &type_path).await?;
    let bindings: Api<faros_api::apis::APIBinding> = Api::all(child.clone());
    let mut all_bound = true;
    for default in &defaults {
        // The workspace type's author chose this export for every workspace of the type:
        // its permission claims are accepted with it.
        let exports: Api<faros_api::apis::APIExport> = Api::all(clusters.cluster(&default.path));
        let claims: Vec<faros_api::apis::PermissionClaim> = match exports.get_opt(&default.export).await? {
            Some(export) => export
                .spec
                .permission_claims
                .into_iter()
                .map(|c| faros_api::apis::PermissionClaim {
                    state: faros_api::apis::CLAIM_ACCEPTED.into(),
                    ..c
                })
                .collect(),
            None => Vec::new(),
        };
        let binding = json!({
            "apiVersion": "apis.kcp.io/v1alpha1", "kind": "APIBinding",
            "metadata": {"name": default.export},
            "spec": {
                "reference": {"export": {"path": default.path, "name": default.export}},
                "permissionClaims": claims,
            },
        });
        let existing = match bindings.get_opt(&default.export).await? {
            Some(b) => b,
            None => match create_as_owner(&child, &ws, &binding).await {
                Ok(b) => b,
                Err(e) if is_conflict(&e) => bindings.get(&default.export).await?,
                Err(kube::Error::Api(status)) if status.code == 403 => {
                    let message = format!(
                        "the workspace's creator may not bind APIExport {}:{} ({})",
                        default.path, default.export, status.message
                    );
                    set_status(
                        &workspaces,
                        &ws,
                        "Initializing",
                        Condition::new("WorkspaceInitialized", false, "APIBindingForbidden", &message),
                    )
                    .await?;
                    return Ok(Next::After(Duration::from_secs(10)));
                }
                Err(e) => return Err(e),
            },
        };
        all_bound &= existing.status.as_ref().is_some_and(|s| s.phase == "Bound");
    }
    if !all_bound {
        return Ok(Next::After(Duration::from_millis(200)));
    }
    set_status(
        &workspaces,
        &ws,
        "Ready",
        Condition::new("WorkspaceInitialized", true, "Initialized", ""),
    )
    .await?;
    let logical: Api<LogicalCluster> = Api::all(child);
    let status = json!({"status": {"phase": "Ready", "URL": ws.spec.url}});
    logical
        .patch_status(LOGICAL_CLUSTER_NAME, &PatchParams::default(), &Patch::Merge(status))
        .await?;
    Ok(Next::Done)
}

/// The default API bindings of a type and of every type it extends (each export once).
async fn default_api_bindings(
    clusters: &Clusters,
    workspace_type: WorkspaceType,
    type_path: &str,
) -> Result<Vec<faros_api::tenancy::APIExportReference>, kube::Error> {
    let mut seen = vec![(type_path.to_string(), workspace_type.name_any())];
    let mut pending = vec![(type_path.to_string(), workspace_type)];
    let mut defaults: Vec<faros_api::tenancy::APIExportReference> = Vec::new();
    while let Some((current_path, current)) = pending.pop() {
        for default in &current.spec.default_api_bindings {
            if !defaults.iter().any(|d| d.export == default.export) {
                defaults.push(default.clone());
            }
        }
        for extended in &current.spec.extend.with {
            // Without a path, a type of the same workspace as the one extending it.
            let path = if extended.path.is_empty() {
                current_path.clone()
            } else {
                extended.path.clone()
            };
            // Bounded like the admission check: a cycle or a long chain ends here.
            if seen.len() >= 16 || seen.contains(&(path.clone(), extended.name.clone())) {
                continue;
            }
            seen.push((path.clone(), extended.name.clone()));
            let types: Api<WorkspaceType> = Api::all(clusters.cluster(&path));
            if let Some(t) = types.get_opt(&extended.name).await? {
                pending.push((path, t));
            }
        }
    }
    Ok(defaults)
}

/// Creates a default APIBinding as the workspace's creator (impersonated), so the creator
/// must hold `bind` on the export as if binding it by hand: a workspace type cannot hand out
/// exports its users may not bind. Workspaces without a recorded creator are the hub's own.
async fn create_as_owner(
    child: &Client,
    ws: &Workspace,
    binding: &serde_json::Value,
) -> Result<faros_api::apis::APIBinding, kube::Error> {
    let owner: Option<serde_json::Value> = ws
        .annotations()
        .get(OWNER_ANNOTATION)
        .and_then(|o| serde_json::from_str(o).ok());
    let mut request = http::Request::post("/apis/apis.kcp.io/v1alpha1/apibindings")
        .header(http::header::CONTENT_TYPE, "application/json");
    if let Some(owner) = &owner
        && let Some(name) = owner["username"].as_str().filter(|n| !n.is_empty())
    {
        request = request.header("Impersonate-User", name);
        for group in owner["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| g.as_str())
        {
            request = request.header("Impersonate-Group", group);
        }
        if let Some(uid) = owner["uid"].as_str().filter(|u| !u.is_empty()) {
            request = request.header("Impersonate-Uid", uid);
        }
    }
    let request = request
        .body(serde_json::to_vec(binding).unwrap_or_default())
        .map_err(kube::Error::HttpError)?;
    child.request(request).await
}

async fn set_status(
    api: &Api<Workspace>,
    ws: &Workspace,
    phase: &str,
    condition: Condition,
) -> Result<(), kube::Error> {
    let mut list = ws.status.as_ref().map(|s| s.conditions.clone()).unwrap_or_default();
    conditions::set_condition(&mut list, condition, &now_rfc3339());
    let status = json!({"status": {"phase": phase, "conditions": list}});
    api.patch_status(&ws.name_any(), &PatchParams::default(), &Patch::Merge(status))
        .await?;
    Ok(())
}

async fn ensure_logical_cluster(child: &Client, ws: &Workspace, parent: &str, path: &str) -> Result<(), kube::Error> {
    let api: Api<LogicalCluster> = Api::all(child.clone());
    if api.get_opt(LOGICAL_CLUSTER_NAME).await?.is_some() {
        return Ok(());
    }
    let object = json!({
        "apiVersion": "core.kcp.io/v1alpha1", "kind": "LogicalCluster",
        "metadata": {"name": LOGICAL_CLUSTER_NAME, "annotations": {PATH_ANNOTATION: path}},
        "spec": {"owner": {"cluster": parent, "name": ws.name_any(), "uid": ws.uid().unwrap_or_default()}},
    });
    match api
        .create(
            &PostParams::default(),
            &serde_json::from_value(object).expect("valid logical cluster"),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_conflict(&e) => Ok(()),
        Err(e) => Err(e),
    }
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
    let discovery = Discovery::new(child.clone()).run().await?;
    let mut left = 0usize;
    let mut held: std::collections::BTreeMap<String, usize> = Default::default();
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
                    left += 1;
                    let what = if resource.group.is_empty() {
                        resource.plural.clone()
                    } else {
                        format!("{}.{}", resource.plural, resource.group)
                    };
                    for finalizer in object.finalizers() {
                        *held.entry(format!("{finalizer} on {what}")).or_default() += 1;
                    }
                    if object.metadata.deletion_timestamp.is_some() {
                        continue;
                    }
                    let scoped: Api<DynamicObject> = match object.namespace() {
                        Some(ns) => Api::namespaced_with(child.clone(), &ns, &resource),
                        None => Api::all_with(child.clone(), &resource),
                    };
                    match scoped.delete(&object.name_any(), &DeleteParams::background()).await {
                        Ok(_) => {}
                        Err(e) if is_not_found(&e) || is_conflict(&e) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    }
    if left > 0 {
        let holders: Vec<String> = held.iter().map(|(held, n)| format!("{held} ({n})")).collect();
        return Ok(Purge::Waiting(if holders.is_empty() {
            String::new()
        } else {
            format!("Some content is held by finalizers: {}", holders.join(", "))
        }));
    }
    let logical: Api<LogicalCluster> = Api::all(child.clone());
    match logical.delete(LOGICAL_CLUSTER_NAME, &DeleteParams::background()).await {
        Ok(_) => Ok(Purge::Done),
        Err(e) if is_not_found(&e) => Ok(Purge::Done),
        Err(e) => Err(e),
    }
}
