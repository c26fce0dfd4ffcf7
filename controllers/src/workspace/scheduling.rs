//! Scheduling: the child's LogicalCluster object is created, recording its path and its
//! owning Workspace; then the workspace is Initializing.

use std::time::Duration;

use faros_api::Condition;
use faros_api::tenancy::{LOGICAL_CLUSTER_NAME, LogicalCluster, PATH_ANNOTATION, Workspace};
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use super::Target;
use crate::errors::is_conflict;
use crate::runtime::{Next, cluster_of};

pub(super) async fn reconcile(target: &Target<'_>) -> Result<Next, kube::Error> {
    ensure_logical_cluster(&target.child, target.ws, &cluster_of(target.ws), &target.path).await?;
    let condition = Condition::new("WorkspaceScheduled", true, "Scheduled", "");
    target.set_status("Initializing", condition).await?;
    Ok(Next::After(Duration::from_millis(10)))
}

pub(super) async fn ensure_logical_cluster(
    child: &Client,
    ws: &Workspace,
    parent: &str,
    path: &str,
) -> Result<(), kube::Error> {
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
