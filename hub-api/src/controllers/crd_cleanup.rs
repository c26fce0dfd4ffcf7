//! CRD deletion: a CustomResourceDefinition being deleted first loses all of its objects,
//! then its cleanup finalizer, as in Kubernetes.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::registry::crd::CLEANUP_FINALIZER;

struct Context {
    client: Client,
}

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

pub async fn run(client: Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    Controller::new(crds, watcher::Config::default())
        .run(reconcile, error_policy, Arc::new(Context { client }))
        .for_each(|_| async {})
        .await;
}

fn error_policy(_crd: Arc<CustomResourceDefinition>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(%error, "CRD cleanup failed");
    Action::requeue(Duration::from_secs(2))
}

async fn reconcile(crd: Arc<CustomResourceDefinition>, ctx: Arc<Context>) -> Result<Action, Error> {
    if crd.metadata.deletion_timestamp.is_none() || !crd.finalizers().iter().any(|f| f == CLEANUP_FINALIZER) {
        return Ok(Action::await_change());
    }
    let Some(version) = crd.spec.versions.iter().find(|v| v.served) else {
        return remove_finalizer(&ctx.client, &crd).await;
    };
    let resource = ApiResource {
        group: crd.spec.group.clone(),
        version: version.name.clone(),
        api_version: format!("{}/{}", crd.spec.group, version.name),
        kind: crd.spec.names.kind.clone(),
        plural: crd.spec.names.plural.clone(),
    };
    // Listing without a namespace covers every namespace of a namespaced resource.
    let api: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &resource);
    let remaining = api.list(&ListParams::default()).await?;
    if remaining.items.is_empty() {
        return remove_finalizer(&ctx.client, &crd).await;
    }
    for object in remaining
        .items
        .iter()
        .filter(|o| o.metadata.deletion_timestamp.is_none())
    {
        let api: Api<DynamicObject> = match object.namespace() {
            Some(ns) => Api::namespaced_with(ctx.client.clone(), &ns, &resource),
            None => Api::all_with(ctx.client.clone(), &resource),
        };
        match api.delete(&object.name_any(), &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Action::requeue(Duration::from_secs(1)))
}

async fn remove_finalizer(client: &Client, crd: &CustomResourceDefinition) -> Result<Action, Error> {
    let finalizers: Vec<&String> = crd.finalizers().iter().filter(|f| *f != CLEANUP_FINALIZER).collect();
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": crd.resource_version()}});
    match api
        .patch(&crd.name_any(), &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        Ok(_) => Ok(Action::await_change()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}
