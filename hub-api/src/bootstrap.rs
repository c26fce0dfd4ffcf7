//! Objects the hub creates at start-up, through its own API (so they are defaulted and
//! validated like anything a client creates): the root logical cluster and its namespaces,
//! the built-in WorkspaceTypes, and the `root:faros-system` workspace exporting the edge API.

use std::sync::Arc;

use http::{Method, StatusCode};
use kube::CustomResourceExt;
use serde_json::{Value, json};

use crate::apiserver::Hub;
use faros_api::edge::{EDGE_EXPORT, SYSTEM_CLUSTER, SYSTEM_PATH};
use faros_api::tenancy::{LOGICAL_CLUSTER_NAME, ROOT};

/// The ClusterRole (and its binding) in the system workspace letting users bind the edge API.
const EDGE_BINDER: &str = "faros:edge-api-binder";

/// Sends one request through the hub's own router as the hub itself.
async fn call(hub: &Arc<Hub>, method: Method, path: &str, body: Option<&Value>) -> anyhow::Result<(StatusCode, Value)> {
    crate::apiserver::call(hub, ("system:faros-bootstrap", &["system:masters"]), method, path, body).await
}

/// Creates `object` at `collection` unless it exists; errors on anything but 201/409.
async fn ensure(hub: &Arc<Hub>, collection: &str, object: Value) -> anyhow::Result<()> {
    let (status, body) = call(hub, Method::POST, collection, Some(&object)).await?;
    match status {
        StatusCode::CREATED | StatusCode::CONFLICT => Ok(()),
        other => anyhow::bail!(
            "bootstrap: creating {} in {collection} failed ({other}): {}",
            object["metadata"]["name"],
            body["message"]
        ),
    }
}

/// Creates `object` or, when it exists with other content, replaces its spec.
async fn ensure_spec(hub: &Arc<Hub>, collection: &str, object: Value) -> anyhow::Result<()> {
    ensure_field(hub, collection, object, "spec").await
}

/// Creates `object` or, when it exists, replaces its `field` (`spec`, `data`).
async fn ensure_field(hub: &Arc<Hub>, collection: &str, object: Value, field: &str) -> anyhow::Result<()> {
    let (status, body) = call(hub, Method::POST, collection, Some(&object)).await?;
    match status {
        StatusCode::CREATED => Ok(()),
        StatusCode::CONFLICT => {
            let name = object["metadata"]["name"].as_str().unwrap_or_default();
            let uri = format!("{collection}/{name}");
            let patch = json!({ field: object[field] });
            let (status, body) = call(hub, Method::PATCH, &uri, Some(&patch)).await?;
            if status.is_success() {
                Ok(())
            } else {
                anyhow::bail!("bootstrap: updating {uri} failed ({status}): {}", body["message"])
            }
        }
        other => anyhow::bail!(
            "bootstrap: creating in {collection} failed ({other}): {}",
            body["message"]
        ),
    }
}

/// `ca_pem` is the CA bundle clients trust, published with the hub's URL in `cluster-info`.
pub async fn run(hub: &Arc<Hub>, ca_pem: &str) -> anyhow::Result<()> {
    ensure(
        hub,
        "/apis/core.kcp.io/v1alpha1/logicalclusters",
        json!({
            "apiVersion": "core.kcp.io/v1alpha1", "kind": "LogicalCluster",
            "metadata": {"name": LOGICAL_CLUSTER_NAME, "annotations": {faros_api::tenancy::PATH_ANNOTATION: ROOT}},
            "spec": {},
        }),
    )
    .await?;
    for ns in ["default", "kube-system", "kube-public"] {
        ensure(
            hub,
            "/api/v1/namespaces",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )
        .await?;
    }
    cluster_info(hub, ca_pem).await?;
    let types = [
        (
            "root",
            json!({"defaultChildWorkspaceType": {"name": "universal", "path": ROOT}}),
        ),
        (
            "universal",
            json!({"defaultChildWorkspaceType": {"name": "universal", "path": ROOT}}),
        ),
        (
            "faros",
            json!({
                "defaultChildWorkspaceType": {"name": "faros", "path": ROOT},
                "defaultAPIBindings": [{"path": SYSTEM_PATH, "export": EDGE_EXPORT}],
            }),
        ),
    ];
    for (name, spec) in types {
        ensure_spec(
            hub,
            "/apis/tenancy.kcp.io/v1alpha1/workspacetypes",
            json!({"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "WorkspaceType", "metadata": {"name": name}, "spec": spec}),
        )
        .await?;
    }
    ensure(
        hub,
        "/apis/tenancy.kcp.io/v1alpha1/workspaces",
        json!({
            "apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace",
            "metadata": {"name": SYSTEM_CLUSTER},
            "spec": {"cluster": SYSTEM_CLUSTER, "type": {"name": "universal", "path": ROOT}},
        }),
    )
    .await?;
    export_edge_api(hub).await
}

/// The ConfigMap `cluster-info` in `kube-public`, as kubeadm publishes it: a kubeconfig with
/// only the hub's URL and CA bundle, which anyone may read (see `apiserver::join`). Replicas
/// of one hub share the CA; each start writes its own URL, the last one stays.
async fn cluster_info(hub: &Arc<Hub>, ca_pem: &str) -> anyhow::Result<()> {
    use crate::apiserver::join::{CLUSTER_INFO, CLUSTER_INFO_NAMESPACE};
    let kubeconfig = kube::config::Kubeconfig {
        clusters: vec![kube::config::NamedCluster {
            name: String::new(),
            cluster: Some(faros_kubeconfig::cluster(&hub.external_url, ca_pem)),
            other: Default::default(),
        }],
        ..Default::default()
    };
    ensure_field(
        hub,
        &format!("/api/v1/namespaces/{CLUSTER_INFO_NAMESPACE}/configmaps"),
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": CLUSTER_INFO, "namespace": CLUSTER_INFO_NAMESPACE},
            "data": {"kubeconfig": faros_kubeconfig::to_yaml(&kubeconfig)?},
        }),
        "data",
    )
    .await
}

/// APIResourceSchemas for the edge kinds and the APIExport offering them.
async fn export_edge_api(hub: &Arc<Hub>) -> anyhow::Result<()> {
    let base = format!("/clusters/{SYSTEM_PATH}");
    let mut schema_names = Vec::new();
    for crd in [
        crate::registry::system::crd_json(faros_api::edge::Agent::crd()),
        crate::registry::system::crd_json(faros_api::edge::Registration::crd()),
        crate::registry::system::crd_json(faros_api::workloads::Workload::crd()),
        crate::registry::system::crd_json(faros_api::workloads::Placement::crd()),
    ] {
        let schema = resource_schema(&crd);
        schema_names.push(schema["metadata"]["name"].clone());
        ensure(
            hub,
            &format!("{base}/apis/apis.kcp.io/v1alpha1/apiresourceschemas"),
            schema,
        )
        .await?;
    }
    ensure_spec(
        hub,
        &format!("{base}/apis/apis.kcp.io/v1alpha1/apiexports"),
        json!({
            "apiVersion": "apis.kcp.io/v1alpha1", "kind": "APIExport",
            "metadata": {"name": EDGE_EXPORT},
            "spec": {
                "latestResourceSchemas": schema_names,
                // The edge controllers manage registration credentials and heartbeats in
                // binding workspaces.
                "permissionClaims": [
                    {"group": "", "resource": "serviceaccounts"},
                    {"group": "", "resource": "secrets"},
                    {"group": "rbac.authorization.k8s.io", "resource": "roles"},
                    {"group": "rbac.authorization.k8s.io", "resource": "rolebindings"},
                    {"group": "coordination.k8s.io", "resource": "leases"},
                ],
            },
        }),
    )
    .await?;
    // Every signed-in user may bind the edge API into a workspace they manage.
    ensure(
        hub,
        &format!("{base}/apis/rbac.authorization.k8s.io/v1/clusterroles"),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": EDGE_BINDER},
            "rules": [{"apiGroups": ["apis.kcp.io"], "resources": ["apiexports"], "resourceNames": [EDGE_EXPORT], "verbs": ["bind"]}],
        }),
    )
    .await?;
    ensure(
        hub,
        &format!("{base}/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": EDGE_BINDER},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": EDGE_BINDER},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": crate::auth::AUTHENTICATED}],
        }),
    )
    .await
}

/// An APIResourceSchema from a CRD. The name carries a hash of the definition, since
/// schemas are immutable: a changed definition is a new schema the export then points to.
pub fn resource_schema(crd: &Value) -> Value {
    let spec = &crd["spec"];
    let versions: Vec<Value> = spec["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            let mut out = json!({
                "name": v["name"], "served": v["served"], "storage": v["storage"],
                "schema": v["schema"]["openAPIV3Schema"],
            });
            if !v["subresources"].is_null() {
                out["subresources"] = v["subresources"].clone();
            }
            if !v["additionalPrinterColumns"].is_null() {
                out["additionalPrinterColumns"] = v["additionalPrinterColumns"].clone();
            }
            if !v["selectableFields"].is_null() {
                out["selectableFields"] = v["selectableFields"].clone();
            }
            out
        })
        .collect();
    let schema_spec =
        json!({"group": spec["group"], "names": spec["names"], "scope": spec["scope"], "versions": versions});
    let digest = fnv1a(serde_json::to_string(&schema_spec).unwrap_or_default().as_bytes());
    let name = format!(
        "v{:08x}.{}.{}",
        digest as u32,
        spec["names"]["plural"].as_str().unwrap_or_default(),
        spec["group"].as_str().unwrap_or_default()
    );
    json!({"apiVersion": "apis.kcp.io/v1alpha1", "kind": "APIResourceSchema", "metadata": {"name": name}, "spec": schema_spec})
}

/// A stable 64-bit hash (FNV-1a): schema names must not change between builds.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf29ce484222325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    hash
}
