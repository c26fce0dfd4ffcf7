//! APIResourceSchemas in use: a schema keeps a finalizer while any APIBinding serves it, so
//! deleting it waits until no binding does. Bound objects never vanish behind a binding
//! because its provider removed the schema (kcp keeps a bound copy for the same reason).

use std::sync::Arc;
use std::time::Duration;

use faros_api::apis::{APIBinding, APIResourceSchema};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};

use crate::finalizer;
use crate::runtime::{self, Clusters, Next, cluster_of};
use faros_api::apis::SCHEMA_IN_USE_FINALIZER;

pub async fn run(clusters: Clusters) {
    let all = clusters.clone();
    // A binding that stops serving a schema may let that schema's deletion finish.
    let binding_changes = runtime::related(|binding: &APIBinding, schema: &APIResourceSchema| {
        schema.metadata.deletion_timestamp.is_some() && serves(binding, schema)
    });
    runtime::run_with(
        "schema-in-use",
        clusters,
        move |schema: Arc<APIResourceSchema>, client: Client| {
            let all = all.clone();
            async move { reconcile(schema, client, all).await }
        },
        vec![binding_changes],
    )
    .await;
}

fn serves(binding: &APIBinding, schema: &APIResourceSchema) -> bool {
    binding.status.as_ref().is_some_and(|s| {
        s.api_export_cluster_name == cluster_of(schema)
            && s.bound_resources.iter().any(|r| r.schema.name == schema.name_any())
    })
}

async fn reconcile(schema: Arc<APIResourceSchema>, client: Client, clusters: Clusters) -> Result<Next, kube::Error> {
    let schemas: Api<APIResourceSchema> = Api::all(client);
    if schema.metadata.deletion_timestamp.is_none() {
        // Schemas from before the finalizer existed get it too.
        finalizer::add(&schemas, &*schema, SCHEMA_IN_USE_FINALIZER).await?;
        return Ok(Next::Done);
    }
    if !finalizer::has(&*schema, SCHEMA_IN_USE_FINALIZER) {
        return Ok(Next::Done);
    }
    let bindings: Api<APIBinding> = Api::all(clusters.wildcard());
    let in_use = bindings
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .any(|b| serves(b, &schema));
    if in_use {
        // Binding changes requeue this; the delay only covers a missed one.
        return Ok(Next::After(Duration::from_secs(60)));
    }
    finalizer::release(&schemas, &*schema, SCHEMA_IN_USE_FINALIZER).await?;
    Ok(Next::Done)
}
