//! Which phase a Workspace is in, as far as this controller is concerned.

use faros_api::tenancy::Workspace;
use kube::ResourceExt;

use faros_api::tenancy::WORKSPACE_FINALIZER;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// No logical cluster yet: admission has not given it one.
    Unscheduled,
    /// Its logical cluster must be created.
    Scheduling,
    /// Its content (namespace, policy, bindings) must be created.
    Initializing,
    Ready,
    /// Being deleted and still holding its content finalizer.
    Deleting,
    /// Being deleted, with nothing left for this controller to do.
    Released,
}

impl Phase {
    pub(super) fn of(ws: &Workspace) -> Phase {
        if ws.spec.cluster.is_empty() {
            return Phase::Unscheduled;
        }
        if ws.metadata.deletion_timestamp.is_some() {
            return if ws.finalizers().iter().any(|f| f == WORKSPACE_FINALIZER) {
                Phase::Deleting
            } else {
                Phase::Released
            };
        }
        match ws.status.as_ref().map(|s| s.phase.as_str()).unwrap_or_default() {
            "Ready" => Phase::Ready,
            "Initializing" => Phase::Initializing,
            _ => Phase::Scheduling,
        }
    }
}

/// The workspace path from its URL (`.../clusters/<path>`).
pub(super) fn path_of(ws: &Workspace) -> String {
    ws.spec
        .url
        .rsplit_once("/clusters/")
        .map(|(_, p)| p.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace(cluster: &str, phase: &str, deleting: bool, finalizer: bool) -> Workspace {
        let mut metadata = serde_json::json!({"name": "w"});
        if deleting {
            metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z".into();
        }
        if finalizer {
            metadata["finalizers"] = serde_json::json!([WORKSPACE_FINALIZER]);
        }
        serde_json::from_value(serde_json::json!({
            "apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace",
            "metadata": metadata,
            "spec": {"cluster": cluster, "URL": "https://hub:6443/clusters/root:acme:w"},
            "status": {"phase": phase},
        }))
        .unwrap()
    }

    #[test]
    fn phases_follow_status_and_deletion() {
        assert_eq!(Phase::of(&workspace("", "", false, false)), Phase::Unscheduled);
        assert_eq!(Phase::of(&workspace("", "", true, true)), Phase::Unscheduled);
        assert_eq!(Phase::of(&workspace("c1", "", false, true)), Phase::Scheduling);
        assert_eq!(
            Phase::of(&workspace("c1", "Scheduling", false, true)),
            Phase::Scheduling
        );
        assert_eq!(
            Phase::of(&workspace("c1", "Initializing", false, true)),
            Phase::Initializing
        );
        assert_eq!(Phase::of(&workspace("c1", "Ready", false, true)), Phase::Ready);
        assert_eq!(Phase::of(&workspace("c1", "Ready", true, true)), Phase::Deleting);
        assert_eq!(Phase::of(&workspace("c1", "Terminating", true, false)), Phase::Released);
    }

    #[test]
    fn the_path_comes_from_the_url() {
        assert_eq!(path_of(&workspace("c1", "", false, false)), "root:acme:w");
    }
}
