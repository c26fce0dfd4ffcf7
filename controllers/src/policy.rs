//! Makes a new workspace's creator its admin. The default RBAC policy
//! ([`faros_api::policy`]) is not written into workspaces: the hub's authorizer consults it
//! for every workspace.

use crate::errors::is_conflict;
use faros_api::policy::owner_binding;
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::api::{Api, PostParams};

/// Creates the binding making `owner` (a `tenancy.kcp.io/owner` annotation) cluster-admin of
/// the workspace `client` is scoped to, unless it exists.
pub async fn initialize(client: &kube::Client, owner: Option<&str>) -> Result<(), kube::Error> {
    let Some(binding) = owner.and_then(owner_binding) else {
        return Ok(());
    };
    let api: Api<ClusterRoleBinding> = Api::all(client.clone());
    let binding = serde_json::from_value(binding).expect("the owner's binding is valid");
    match api.create(&PostParams::default(), &binding).await {
        Ok(_) => Ok(()),
        Err(e) if is_conflict(&e) => Ok(()),
        Err(e) => Err(e),
    }
}
