//! APIResourceSchemas in use: a schema keeps a finalizer while any APIBinding serves it, so
//! deleting it waits until no binding does. Bound objects never vanish behind a binding
//! because its provider removed the schema (kcp keeps a bound copy for the same reason).

use std::sync::Arc;
use std::time::Duration;

use faros_api::apis::{APIBinding, APIResourceSchema};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

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
    let has_finalizer = schema.finalizers().iter().any(|f| f == SCHEMA_IN_USE_FINALIZER);
    if schema.metadata.deletion_timestamp.is_none() {
        if !has_finalizer {
            // Schemas from before the finalizer existed get it too.
            let mut finalizers = schema.finalizers().to_vec();
            finalizers.push(SCHEMA_IN_USE_FINALIZER.into());
            set_finalizers(&client, &schema, finalizers).await?;
        }
        return Ok(Next::Done);
    }
    if !has_finalizer {
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
    let kept: Vec<String> = schema
        .finalizers()
        .iter()
        .filter(|f| *f != SCHEMA_IN_USE_FINALIZER)
        .cloned()
        .collect();
    set_finalizers(&client, &schema, kept).await?;
    Ok(Next::Done)
}

async fn set_finalizers(
    client: &Client,
    schema: &APIResourceSchema,
    finalizers: Vec<String>,
) -> Result<(), kube::Error> {
    let api: Api<APIResourceSchema> = Api::all(client.clone());
    let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": schema.resource_version()}});
    match api
        .patch(&schema.name_any(), &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        other => other.map(|_| ()),
    }
}
