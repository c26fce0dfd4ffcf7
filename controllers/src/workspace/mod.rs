//! Workspace lifecycle: Scheduling → Initializing → Ready, and deletion, one module per
//! phase.
//!
//! One pass creates what a workspace owns — its LogicalCluster, its `default` namespace and
//! the binding making its creator admin (the default RBAC policy is the hub's, shared by
//! every workspace) — and the APIBindings its WorkspaceType asks for; a workspace without
//! bindings to wait for goes from Scheduling to Ready in one status write, and Initializing
//! is only written while something is awaited.
//! Deleting a Workspace deletes its child workspaces first, then everything in its logical
//! cluster, then lets the Workspace go.

mod deletion;
mod initializing;
mod phase;
mod scheduling;

use std::sync::Arc;

use faros_api::tenancy::Workspace;
use faros_api::{Condition, conditions};
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::runtime::{self, Clusters, Next};
use faros_api::meta::now_rfc3339;
use phase::Phase;

pub async fn run(clusters: Clusters) {
    let all = clusters.clone();
    runtime::run_unsettled(
        "workspace",
        clusters,
        settled,
        move |ws: Arc<Workspace>, parent: Client| {
            let clusters = all.clone();
            async move { reconcile(ws, parent, clusters).await }
        },
    )
    .await;
}

/// Ready (or not yet scheduled, or released) workspaces need nothing until they change.
fn settled(ws: &Workspace) -> bool {
    matches!(Phase::of(ws), Phase::Unscheduled | Phase::Released | Phase::Ready)
}

/// What one reconcile of a workspace works with.
struct Target<'a> {
    ws: &'a Workspace,
    /// The Workspaces of the parent logical cluster.
    workspaces: Api<Workspace>,
    /// A client of the child logical cluster.
    child: Client,
    /// The child's workspace path.
    path: String,
    clusters: &'a Clusters,
}

impl Target<'_> {
    /// Moves the workspace to `phase`, recording `conditions`; a status that would not
    /// change is not written.
    async fn set_status(&self, phase: &str, conditions: Vec<Condition>) -> Result<(), kube::Error> {
        let current = self.ws.status.as_ref();
        let mut list = current.map(|s| s.conditions.clone()).unwrap_or_default();
        let now = now_rfc3339();
        let mut changed = current.is_none_or(|s| s.phase != phase);
        for condition in conditions {
            changed |= conditions::set_condition(&mut list, condition, &now);
        }
        if !changed {
            return Ok(());
        }
        let status = json!({"status": {"phase": phase, "conditions": list}});
        self.workspaces
            .patch_status(&self.ws.name_any(), &PatchParams::default(), &Patch::Merge(status))
            .await?;
        Ok(())
    }
}

async fn reconcile(ws: Arc<Workspace>, parent: Client, clusters: Clusters) -> Result<Next, kube::Error> {
    let phase = Phase::of(&ws);
    if matches!(phase, Phase::Unscheduled | Phase::Released | Phase::Ready) {
        return Ok(Next::Done);
    }
    // Addressed by path: the path resolves as soon as the Workspace names its cluster,
    // before the child's LogicalCluster object exists.
    let path = phase::path_of(&ws);
    let child = clusters.cluster(if path.is_empty() { &ws.spec.cluster } else { &path });
    let target = Target {
        ws: &ws,
        workspaces: Api::all(parent),
        child,
        path,
        clusters: &clusters,
    };
    match phase {
        Phase::Deleting => deletion::reconcile(&target).await,
        Phase::Scheduling | Phase::Initializing => initializing::reconcile(&target).await,
        Phase::Unscheduled | Phase::Released | Phase::Ready => Ok(Next::Done),
    }
}
