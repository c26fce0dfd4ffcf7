//! The default RBAC policy every workspace starts with, modelled on Kubernetes' bootstrap
//! policy: `cluster-admin`; the aggregated `admin`, `edit` and `view` (their permissions come
//! from the `system:aggregate-to-*` roles and from any ClusterRole carrying the same
//! aggregation labels); `system:discovery`, `system:basic-user` and
//! `system:public-info-viewer` bound to everyone, so any user who may enter a workspace can
//! discover its API and ask what they may do; `cluster-admin` bound to `system:masters`; and
//! `system:monitoring` (metrics and health checks) bound to the group of the same name.
//!
//! They are not stored in any workspace: the hub's authorizer holds them once and every
//! workspace's evaluation consults them, as kcp's bootstrap policy. A workspace stores only
//! the ClusterRoleBinding making its creator (recorded in the `tenancy.kcp.io/owner`
//! annotation) its cluster-admin, written when it initialises.

use serde_json::{Value, json};

/// Label of the default policy objects (as Kubernetes' bootstrap policy).
pub const BOOTSTRAP_LABEL: &str = "kubernetes.io/bootstrapping";
pub const BOOTSTRAP_VALUE: &str = "rbac-defaults";
/// Name of the ClusterRoleBinding that makes a workspace's creator its admin.
pub const OWNER_BINDING: &str = "workspace-admin";

const AGGREGATE_TO_ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";
const AGGREGATE_TO_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
const AGGREGATE_TO_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const ALL: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

fn urls(urls: &[&str], verbs: &[&str]) -> Value {
    json!({"nonResourceURLs": urls, "verbs": verbs})
}

fn metadata(name: &str, extra_labels: &[(&str, &str)]) -> Value {
    let mut labels = serde_json::Map::new();
    labels.insert(BOOTSTRAP_LABEL.into(), BOOTSTRAP_VALUE.into());
    for (k, v) in extra_labels {
        labels.insert((*k).into(), (*v).into());
    }
    json!({
        "name": name,
        "labels": labels,
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
    })
}

fn cluster_role(name: &str, labels: &[(&str, &str)], rules: Vec<Value>) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": metadata(name, labels),
        "rules": rules,
    })
}

fn aggregated_role(name: &str, labels: &[(&str, &str)], selector_label: &str) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": metadata(name, labels),
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {selector_label: "true"}}]},
        "rules": [],
    })
}

fn binding(name: &str, role: &str, groups: &[&str]) -> Value {
    let subjects: Vec<Value> = groups
        .iter()
        .map(|g| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g}))
        .collect();
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": metadata(name, &[]),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": subjects,
    })
}

/// The default ClusterRoles, then the default ClusterRoleBindings.
pub fn default_objects() -> Vec<Value> {
    let tenancy = "tenancy.kcp.io";
    let apis = "apis.kcp.io";
    let edge = "edge.faros.sh";
    vec![
        cluster_role(
            "cluster-admin",
            &[],
            vec![rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])],
        ),
        aggregated_role("admin", &[], AGGREGATE_TO_ADMIN),
        aggregated_role("edit", &[(AGGREGATE_TO_ADMIN, "true")], AGGREGATE_TO_EDIT),
        aggregated_role("view", &[(AGGREGATE_TO_EDIT, "true")], AGGREGATE_TO_VIEW),
        cluster_role(
            "system:aggregate-to-admin",
            &[(AGGREGATE_TO_ADMIN, "true")],
            vec![
                rule(&["rbac.authorization.k8s.io"], &["roles", "rolebindings"], ALL),
                rule(&["authorization.k8s.io"], &["localsubjectaccessreviews"], &["create"]),
                rule(&[tenancy], &["workspaces"], WRITE),
                rule(&[apis], &["apibindings"], WRITE),
            ],
        ),
        cluster_role(
            "system:aggregate-to-edit",
            &[(AGGREGATE_TO_EDIT, "true")],
            vec![
                rule(&[""], &["configmaps", "secrets", "serviceaccounts", "events"], WRITE),
                rule(&["events.k8s.io"], &["events"], WRITE),
                rule(&[""], &["secrets"], READ),
                rule(&[""], &["serviceaccounts"], &["impersonate"]),
                rule(&[""], &["serviceaccounts/token"], &["create"]),
                rule(&["coordination.k8s.io"], &["leases"], WRITE),
                rule(&[edge], &["*"], WRITE),
            ],
        ),
        cluster_role(
            "system:aggregate-to-view",
            &[(AGGREGATE_TO_VIEW, "true")],
            vec![
                rule(
                    &[""],
                    &[
                        "configmaps",
                        "serviceaccounts",
                        "events",
                        "namespaces",
                        "namespaces/status",
                    ],
                    READ,
                ),
                rule(&["events.k8s.io"], &["events"], READ),
                rule(&["coordination.k8s.io"], &["leases"], READ),
                rule(&[tenancy], &["workspaces", "workspacetypes"], READ),
                rule(&[apis], &["apibindings"], READ),
                rule(&[edge], &["*"], READ),
            ],
        ),
        cluster_role(
            "system:discovery",
            &[],
            vec![urls(
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
                &["get"],
            )],
        ),
        cluster_role(
            "system:basic-user",
            &[],
            vec![
                rule(
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                    &["create"],
                ),
                rule(&["authentication.k8s.io"], &["selfsubjectreviews"], &["create"]),
            ],
        ),
        // For webhook authenticators and authorizers (bound by whoever runs one): to ask the
        // hub whose a token is and what someone may do.
        cluster_role(
            "system:auth-delegator",
            &[],
            vec![
                rule(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
                rule(&["authorization.k8s.io"], &["subjectaccessreviews"], &["create"]),
            ],
        ),
        cluster_role(
            "system:public-info-viewer",
            &[],
            vec![urls(
                &["/healthz", "/livez", "/readyz", "/version", "/version/"],
                &["get"],
            )],
        ),
        // Kubernetes' role for monitoring systems: metrics and the single health checks.
        cluster_role(
            "system:monitoring",
            &[],
            vec![urls(
                &[
                    "/healthz",
                    "/healthz/*",
                    "/livez",
                    "/livez/*",
                    "/metrics",
                    "/readyz",
                    "/readyz/*",
                ],
                &["get"],
            )],
        ),
        binding("cluster-admin", "cluster-admin", &["system:masters"]),
        binding("system:monitoring", "system:monitoring", &["system:monitoring"]),
        binding("system:discovery", "system:discovery", &["system:authenticated"]),
        binding("system:basic-user", "system:basic-user", &["system:authenticated"]),
        binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            &["system:authenticated", "system:unauthenticated"],
        ),
    ]
}

/// The ClusterRoleBinding making `owner` (an [`crate::tenancy::OWNER_ANNOTATION`] value) cluster-admin.
pub fn owner_binding(owner: &str) -> Option<Value> {
    let owner: Value = serde_json::from_str(owner).ok()?;
    let name = owner["username"].as_str().filter(|n| !n.is_empty())?;
    Some(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": OWNER_BINDING, "labels": {"tenancy.kcp.io/owner-binding": "true"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": name}],
    }))
}
