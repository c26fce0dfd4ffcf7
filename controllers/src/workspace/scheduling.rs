//! Scheduling: the child's LogicalCluster object, recording its path and its owning
//! Workspace, which makes the logical cluster exist.

use faros_api::Condition;
use faros_api::tenancy::{LOGICAL_CLUSTER_NAME, LogicalCluster, PATH_ANNOTATION, Workspace};
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::errors::is_conflict;

/// What the workspace's status records once its LogicalCluster exists.
pub(super) fn scheduled() -> Condition {
    Condition::new("WorkspaceScheduled", true, "Scheduled", "")
}

/// Creates the LogicalCluster unless it exists (one write, no read first: an existing one
/// answers 409).
pub(super) async fn ensure_logical_cluster(
    child: &Client,
    ws: &Workspace,
    parent: &str,
    path: &str,
) -> Result<(), kube::Error> {
    let api: Api<LogicalCluster> = Api::all(child.clone());
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
