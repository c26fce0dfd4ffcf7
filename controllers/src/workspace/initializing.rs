//! Initializing: the child gets what it owns — its LogicalCluster, its `default` namespace,
//! the binding making its creator admin — and the APIBindings its WorkspaceType (and the
//! types it extends) asks for; once they are all bound, the workspace is Ready. The default
//! RBAC policy is not written: the hub's authorizer holds it for every workspace.

use std::future::Future;
use std::time::Duration;

use faros_api::Condition;
use faros_api::apis::{APIBinding, APIExport, CLAIM_ACCEPTED, PermissionClaim};
use faros_api::tenancy::{
    APIExportReference, LOGICAL_CLUSTER_NAME, LogicalCluster, OWNER_ANNOTATION, Workspace, WorkspaceType,
};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use super::Target;
use super::scheduling::{ensure_logical_cluster, scheduled};
use crate::errors::is_conflict;
use crate::runtime::{Next, cluster_of};

/// How deep `extend.with` is followed (as admission bounds it).
const MAX_EXTENSIONS: usize = 16;

pub(super) async fn reconcile(target: &Target<'_>) -> Result<Next, kube::Error> {
    let ws = target.ws;
    let type_path = ws.spec.type_.as_ref().map(|t| {
        if t.path.is_empty() {
            faros_api::tenancy::ROOT.to_string()
        } else {
            t.path.clone()
        }
    });
    // Independent of each other: created at once, each a single write (409 when it exists).
    let parent = cluster_of(ws);
    let (_, _, _, workspace_type) = futures::try_join!(
        ensure_logical_cluster(&target.child, ws, &parent, &target.path),
        ensure_default_namespace(&target.child),
        crate::policy::initialize(
            &target.child,
            ws.annotations().get(OWNER_ANNOTATION).map(String::as_str),
        ),
        async {
            match (&ws.spec.type_, &type_path) {
                (Some(t), Some(path)) => {
                    let types: Api<WorkspaceType> = Api::all(target.clusters.cluster(path));
                    types.get_opt(&t.name).await.map(Some)
                }
                _ => Ok(None),
            }
        },
    )?;
    if let (Some(type_ref), Some(type_path), Some(workspace_type)) = (&ws.spec.type_, &type_path, workspace_type) {
        let Some(workspace_type) = workspace_type else {
            let message = format!("WorkspaceType {}:{} does not exist", type_path, type_ref.name);
            let condition = Condition::new("WorkspaceInitialized", false, "WorkspaceTypeNotFound", &message);
            target.set_status("Initializing", vec![scheduled(), condition]).await?;
            return Ok(Next::After(Duration::from_secs(5)));
        };
        if let Some(next) = bind_defaults(target, workspace_type, type_path).await? {
            return Ok(next);
        }
    }
    // The LogicalCluster first: once the Workspace is Ready nothing returns to it.
    let logical: Api<LogicalCluster> = Api::all(target.child.clone());
    let status = json!({"status": {"phase": "Ready", "URL": ws.spec.url}});
    logical
        .patch_status(LOGICAL_CLUSTER_NAME, &PatchParams::default(), &Patch::Merge(status))
        .await?;
    let initialized = Condition::new("WorkspaceInitialized", true, "Initialized", "");
    target.set_status("Ready", vec![scheduled(), initialized]).await?;
    Ok(Next::Done)
}

async fn ensure_default_namespace(child: &Client) -> Result<(), kube::Error> {
    let namespaces: Api<Namespace> = Api::all(child.clone());
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}});
    match namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(ns).expect("valid namespace"),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_conflict(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates the APIBindings the type asks for; `Some` (when to look again) until they are
/// all bound.
async fn bind_defaults(
    target: &Target<'_>,
    workspace_type: WorkspaceType,
    type_path: &str,
) -> Result<Option<Next>, kube::Error> {
    let ws = target.ws;
    let defaults = default_api_bindings(workspace_type, type_path, |path, name| {
        let types: Api<WorkspaceType> = Api::all(target.clusters.cluster(&path));
        async move { types.get_opt(&name).await }
    })
    .await?;
    let bindings: Api<APIBinding> = Api::all(target.child.clone());
    let mut unbound = Vec::new();
    for default in &defaults {
        // The workspace type's author chose this export for every workspace of the type:
        // its permission claims are accepted with it.
        let exports: Api<APIExport> = Api::all(target.clusters.cluster(&default.path));
        let export = exports.get_opt(&default.export).await?;
        let binding = default_binding(default, export.as_ref());
        let existing = match bindings.get_opt(&default.export).await? {
            Some(b) => b,
            None => match create_as_owner(&target.child, ws, &binding).await {
                Ok(b) => b,
                Err(e) if is_conflict(&e) => bindings.get(&default.export).await?,
                Err(kube::Error::Api(status)) if status.code == 403 => {
                    let message = format!(
                        "the workspace's creator may not bind APIExport {}:{} ({})",
                        default.path, default.export, status.message
                    );
                    let condition = Condition::new("WorkspaceInitialized", false, "APIBindingForbidden", &message);
                    target.set_status("Initializing", vec![scheduled(), condition]).await?;
                    return Ok(Some(Next::After(Duration::from_secs(10))));
                }
                Err(e) => return Err(e),
            },
        };
        if existing.status.as_ref().is_none_or(|s| s.phase != "Bound") {
            unbound.push(existing.name_any());
        }
    }
    if !unbound.is_empty() {
        let message = format!("waiting for APIBindings to be bound: {}", unbound.join(", "));
        let condition = Condition::new("WorkspaceInitialized", false, "APIBindingsPending", &message);
        target.set_status("Initializing", vec![scheduled(), condition]).await?;
        return Ok(Some(Next::After(Duration::from_millis(200))));
    }
    Ok(None)
}

/// The default API bindings of a type and of every type it extends (each export once).
/// `lookup` finds a type by workspace path and name.
async fn default_api_bindings<F, Fut>(
    workspace_type: WorkspaceType,
    type_path: &str,
    lookup: F,
) -> Result<Vec<APIExportReference>, kube::Error>
where
    F: Fn(String, String) -> Fut,
    Fut: Future<Output = Result<Option<WorkspaceType>, kube::Error>>,
{
    let mut seen = vec![(type_path.to_string(), workspace_type.name_any())];
    let mut pending = vec![(type_path.to_string(), workspace_type)];
    let mut defaults: Vec<APIExportReference> = Vec::new();
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
            if seen.len() >= MAX_EXTENSIONS || seen.contains(&(path.clone(), extended.name.clone())) {
                continue;
            }
            seen.push((path.clone(), extended.name.clone()));
            if let Some(t) = lookup(path.clone(), extended.name.clone()).await? {
                pending.push((path, t));
            }
        }
    }
    Ok(defaults)
}

/// The APIBinding a workspace type asks for. The type's author chose this export for every
/// workspace of the type, so the export's permission claims are accepted with it.
fn default_binding(default: &APIExportReference, export: Option<&APIExport>) -> Value {
    let claims: Vec<PermissionClaim> = export
        .map(|e| e.spec.permission_claims.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|c| PermissionClaim {
            state: CLAIM_ACCEPTED.into(),
            ..c
        })
        .collect();
    json!({
        "apiVersion": "apis.kcp.io/v1alpha1", "kind": "APIBinding",
        "metadata": {"name": default.export},
        "spec": {
            "reference": {"export": {"path": default.path, "name": default.export}},
            "permissionClaims": claims,
        },
    })
}

/// Creates a default APIBinding as the workspace's creator (impersonated), so the creator
/// must hold `bind` on the export as if binding it by hand: a workspace type cannot hand out
/// exports its users may not bind. Workspaces without a recorded creator are the hub's own.
async fn create_as_owner(child: &Client, ws: &Workspace, binding: &Value) -> Result<APIBinding, kube::Error> {
    let owner: Option<Value> = ws
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn workspace_type(name: &str, defaults: &[(&str, &str)], extends: &[(&str, &str)]) -> WorkspaceType {
        let defaults: Vec<Value> = defaults.iter().map(|(p, e)| json!({"path": p, "export": e})).collect();
        let extends: Vec<Value> = extends.iter().map(|(p, n)| json!({"path": p, "name": n})).collect();
        serde_json::from_value(json!({
            "apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "WorkspaceType",
            "metadata": {"name": name},
            "spec": {"defaultAPIBindings": defaults, "extend": {"with": extends}},
        }))
        .unwrap()
    }

    /// Resolves types from a fixed set, as the hub would by path and name.
    async fn defaults_of(
        types: &HashMap<(String, String), WorkspaceType>,
        root: &WorkspaceType,
        path: &str,
    ) -> Vec<String> {
        let lookup = |path: String, name: String| {
            let found = types.get(&(path, name)).cloned();
            async move { Ok(found) }
        };
        default_api_bindings(root.clone(), path, lookup)
            .await
            .unwrap()
            .into_iter()
            .map(|d| format!("{}:{}", d.path, d.export))
            .collect()
    }

    #[tokio::test]
    async fn defaults_come_from_the_type_and_all_it_extends_once_each() {
        let mut types = HashMap::new();
        let key = |p: &str, n: &str| (p.to_string(), n.to_string());
        // `edge` in root:org extends `base` of the same workspace (no path) and root's `shared`,
        // which extends `edge` back: the cycle ends, and each export is bound once.
        let edge = workspace_type(
            "edge",
            &[("root:faros-system", "edge.faros.sh")],
            &[("", "base"), ("root", "shared")],
        );
        types.insert(
            key("root:org", "base"),
            workspace_type("base", &[("root:org", "metrics")], &[]),
        );
        types.insert(
            key("root", "shared"),
            workspace_type(
                "shared",
                &[("root:org", "metrics"), ("root", "audit")],
                &[("root:org", "edge")],
            ),
        );
        types.insert(key("root:org", "edge"), edge.clone());
        let mut bound = defaults_of(&types, &edge, "root:org").await;
        bound.sort();
        assert_eq!(
            bound,
            ["root:audit", "root:faros-system:edge.faros.sh", "root:org:metrics"]
        );
    }

    #[test]
    fn a_default_binding_accepts_the_exports_claims() {
        let default: APIExportReference =
            serde_json::from_value(json!({"path": "root:faros-system", "export": "edge.faros.sh"})).unwrap();
        let export: APIExport = serde_json::from_value(json!({
            "apiVersion": "apis.kcp.io/v1alpha1", "kind": "APIExport",
            "metadata": {"name": "edge.faros.sh"},
            "spec": {"permissionClaims": [{"group": "", "resource": "secrets", "all": true}]},
        }))
        .unwrap();
        let binding = default_binding(&default, Some(&export));
        assert_eq!(
            binding["spec"]["reference"]["export"],
            json!({"path": "root:faros-system", "name": "edge.faros.sh"})
        );
        assert_eq!(binding["spec"]["permissionClaims"][0]["state"], CLAIM_ACCEPTED);
        assert_eq!(binding["spec"]["permissionClaims"][0]["resource"], "secrets");
        assert_eq!(default_binding(&default, None)["spec"]["permissionClaims"], json!([]));
    }
}
