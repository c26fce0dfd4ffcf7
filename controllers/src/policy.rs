//! Gives a new workspace the default RBAC policy ([`faros_api::policy`]) and makes its
//! creator its admin.

use crate::errors::is_conflict;
use faros_api::policy::{default_objects, owner_binding};
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use kube::core::GroupVersionKind;

/// Creates the default policy (and the owner's binding) in the workspace `client` is scoped
/// to. Objects that exist are left alone.
pub async fn initialize(client: &kube::Client, owner: Option<&str>) -> Result<(), kube::Error> {
    let mut objects = default_objects();
    objects.extend(owner.and_then(owner_binding));
    for object in objects {
        let kind = object["kind"].as_str().unwrap_or("ClusterRole");
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("rbac.authorization.k8s.io", "v1", kind));
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let object: DynamicObject = serde_json::from_value(object).expect("default policy objects are valid");
        match api.create(&PostParams::default(), &object).await {
            Ok(_) => {}
            Err(e) if is_conflict(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
