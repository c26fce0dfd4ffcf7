//! CRD deletion: a CustomResourceDefinition being deleted first loses all of its objects,
//! then its cleanup finalizer, as in Kubernetes.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams};
use kube::{Client, ResourceExt};

use crate::errors::is_not_found;
use crate::finalizer;
use crate::runtime::{self, Clusters, Next};
use faros_api::meta::CRD_CLEANUP_FINALIZER as CLEANUP_FINALIZER;

pub async fn run(clusters: Clusters) {
    runtime::run("crd-cleanup", clusters, reconcile).await;
}

async fn reconcile(crd: Arc<CustomResourceDefinition>, client: Client) -> Result<Next, kube::Error> {
    if crd.metadata.deletion_timestamp.is_none() || !finalizer::has(&*crd, CLEANUP_FINALIZER) {
        return Ok(Next::Done);
    }
    let Some(version) = crd.spec.versions.iter().find(|v| v.served) else {
        return remove_finalizer(&client, &crd).await;
    };
    let resource = ApiResource {
        group: crd.spec.group.clone(),
        version: version.name.clone(),
        api_version: format!("{}/{}", crd.spec.group, version.name),
        kind: crd.spec.names.kind.clone(),
        plural: crd.spec.names.plural.clone(),
    };
    // Listing without a namespace covers every namespace of a namespaced resource.
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let remaining = api.list(&ListParams::default()).await?;
    if remaining.items.is_empty() {
        return remove_finalizer(&client, &crd).await;
    }
    for object in remaining
        .items
        .iter()
        .filter(|o| o.metadata.deletion_timestamp.is_none())
    {
        let api: Api<DynamicObject> = match object.namespace() {
            Some(ns) => Api::namespaced_with(client.clone(), &ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        match api.delete(&object.name_any(), &DeleteParams::background()).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Next::After(Duration::from_secs(1)))
}

async fn remove_finalizer(client: &Client, crd: &CustomResourceDefinition) -> Result<Next, kube::Error> {
    finalizer::release(&Api::all(client.clone()), crd, CLEANUP_FINALIZER).await?;
    Ok(Next::Done)
}
