//! APIBindings: resolve the referenced APIExport, check its schemas against what the
//! binding workspace already serves, and record the bound resources (with the export's
//! identity) in status. The hub's catalog serves a workspace's bound resources from that
//! status, so a conflicting binding is reported, never silently shadowing a local CRD.

use std::sync::Arc;
use std::time::Duration;

use faros_api::apis::{APIBinding, APIExport, APIResourceSchema, BoundResource, BoundSchema};
use faros_api::{Condition, conditions};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::errors::is_not_found;
use crate::finalizer;
use crate::runtime::{self, Clusters, Next, cluster_of};
use faros_api::apis::BINDING_FINALIZER;
use faros_api::meta::now_rfc3339;

pub async fn run(clusters: Clusters) {
    let all = clusters.clone();
    // A binding follows its export: new schemas, changed claims, deletion.
    let export_changes = runtime::related(|export: &APIExport, binding: &APIBinding| {
        binding.spec.reference.export.name == export.name_any()
            && binding
                .status
                .as_ref()
                .is_none_or(|s| s.api_export_cluster_name.is_empty() || s.api_export_cluster_name == cluster_of(export))
    });
    runtime::run_with(
        "apibinding",
        clusters,
        move |binding: Arc<APIBinding>, client: Client| {
            let clusters = all.clone();
            async move { reconcile(binding, client, clusters).await }
        },
        vec![export_changes],
    )
    .await;
}

enum Outcome {
    Bound {
        export_cluster: String,
        resources: Vec<BoundResource>,
        claims: Vec<faros_api::apis::PermissionClaim>,
    },
    /// Not (yet) bindable: the failing condition's type, reason and message.
    Waiting(&'static str, &'static str, String),
}

async fn reconcile(binding: Arc<APIBinding>, client: Client, clusters: Clusters) -> Result<Next, kube::Error> {
    if binding.metadata.deletion_timestamp.is_some() {
        return finalize(&binding, &client).await;
    }
    if !finalizer::has(&*binding, BINDING_FINALIZER) {
        // Bindings from before the finalizer existed get it before anything else.
        finalizer::add(&Api::all(client.clone()), &*binding, BINDING_FINALIZER).await?;
        return Ok(Next::Done);
    }
    let outcome = evaluate(&binding, &client, &clusters).await?;
    let mut list = binding
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let now = now_rfc3339();
    let mut status = binding.status.clone().unwrap_or_default();
    let retry = match outcome {
        Outcome::Bound {
            export_cluster,
            resources,
            claims,
        } => {
            conditions::set_condition(&mut list, Condition::new("APIExportValid", true, "Valid", ""), &now);
            conditions::set_condition(
                &mut list,
                Condition::new("InitialBindingCompleted", true, "Bound", ""),
                &now,
            );
            conditions::set_condition(&mut list, Condition::new("Ready", true, "Bound", ""), &now);
            let answered = &binding.spec.permission_claims;
            let pending: Vec<String> = claims
                .iter()
                .filter(|c| !answered.iter().any(|a| a.same_resource(c)))
                .map(claim_name)
                .collect();
            let claims_condition = if pending.is_empty() {
                Condition::new("PermissionClaimsAccepted", true, "AllClaimsAnswered", "")
            } else {
                Condition::new(
                    "PermissionClaimsAccepted",
                    false,
                    "ClaimsPending",
                    &format!(
                        "the APIExport claims {}: accept or reject them in spec.permissionClaims",
                        pending.join(", ")
                    ),
                )
            };
            conditions::set_condition(&mut list, claims_condition, &now);
            status.phase = "Bound".into();
            status.api_export_cluster_name = export_cluster;
            status.bound_resources = resources;
            status.applied_permission_claims = faros_api::apis::applied_claims(&claims, answered);
            status.export_permission_claims = claims;
            None
        }
        Outcome::Waiting(condition, reason, message) => {
            if condition == "APIExportValid" {
                conditions::set_condition(
                    &mut list,
                    Condition::new("APIExportValid", false, reason, &message),
                    &now,
                );
            } else {
                conditions::set_condition(&mut list, Condition::new("APIExportValid", true, "Valid", ""), &now);
            }
            // Once bound, the binding keeps serving what it bound: the initial binding stays
            // completed (as in kcp) while Ready says what is wrong now.
            if status.phase != "Bound" {
                conditions::set_condition(
                    &mut list,
                    Condition::new("InitialBindingCompleted", false, reason, &message),
                    &now,
                );
                status.phase = "Binding".into();
            }
            conditions::set_condition(&mut list, Condition::new("Ready", false, reason, &message), &now);
            Some(Duration::from_secs(2))
        }
    };
    status.conditions = list;
    if Some(&status) != binding.status.as_ref() {
        let api: Api<APIBinding> = Api::all(client);
        api.patch_status(
            &binding.name_any(),
            &PatchParams::default(),
            &Patch::Merge(runtime::status_patch(binding.status.as_ref(), &status)),
        )
        .await?;
    }
    Ok(retry.map(Next::After).unwrap_or(Next::Done))
}

fn claim_name(claim: &faros_api::apis::PermissionClaim) -> String {
    if claim.group.is_empty() {
        claim.resource.clone()
    } else {
        format!("{}.{}", claim.resource, claim.group)
    }
}

async fn evaluate(binding: &APIBinding, client: &Client, clusters: &Clusters) -> Result<Outcome, kube::Error> {
    let reference = &binding.spec.reference.export;
    let own_cluster = cluster_of(binding);
    let export_location = if reference.path.is_empty() {
        own_cluster.clone()
    } else {
        reference.path.clone()
    };
    let exports: Api<APIExport> = Api::all(clusters.cluster(&export_location));
    let export = match exports.get_opt(&reference.name).await {
        Ok(Some(export)) => export,
        Ok(None) | Err(kube::Error::Api(_)) => {
            return Ok(Outcome::Waiting(
                "APIExportValid",
                "APIExportNotFound",
                format!("APIExport {export_location}:{} not found", reference.name),
            ));
        }
        Err(e) => return Err(e),
    };
    let identity = export
        .status
        .as_ref()
        .map(|s| s.identity_hash.clone())
        .unwrap_or_default();
    if identity.is_empty() {
        return Ok(Outcome::Waiting(
            "APIExportValid",
            "MissingIdentityHash",
            "the APIExport has no identity yet".into(),
        ));
    }
    // Bound objects are stored under the identity they were bound with: an export of the
    // same name with another identity (one deleted and created anew before identities were
    // derived from place and name) would silently hide them.
    let bound_identity = binding
        .status
        .as_ref()
        .and_then(|s| s.bound_resources.first())
        .map(|r| r.schema.identity_hash.as_str())
        .filter(|bound| !bound.is_empty());
    if bound_identity.is_some_and(|bound| bound != identity) {
        return Ok(Outcome::Waiting(
            "APIExportValid",
            "IdentityChanged",
            format!(
                "APIExport {export_location}:{} has another identity than the one this binding's objects are \
                 stored under; delete this binding and bind again to use the new export",
                reference.name
            ),
        ));
    }
    let export_cluster = cluster_of(&export);
    let schemas: Api<APIResourceSchema> = Api::all(clusters.cluster(&export_cluster));
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let others: Api<APIBinding> = Api::all(client.clone());
    let other_bindings = others.list(&ListParams::default()).await?.items;
    let mut resources = Vec::new();
    for name in &export.spec.latest_resource_schemas {
        let Some(schema) = schemas.get_opt(name).await? else {
            return Ok(Outcome::Waiting(
                "APIExportValid",
                "APIResourceSchemaNotFound",
                format!("APIResourceSchema {name} not found in the export's workspace"),
            ));
        };
        let group = schema.spec.group.clone();
        let plural = schema.spec.names.plural.clone();
        if crds.get_opt(&format!("{plural}.{group}")).await?.is_some() {
            return Ok(Outcome::Waiting(
                "InitialBindingCompleted",
                "NamingConflicts",
                format!("a CustomResourceDefinition {plural}.{group} already exists in this workspace"),
            ));
        }
        let clash = other_bindings.iter().any(|b| {
            b.name_any() != binding.name_any()
                && b.status.as_ref().is_some_and(|s| {
                    s.bound_resources
                        .iter()
                        .any(|r| r.group == group && r.resource == plural && r.schema.identity_hash != identity)
                })
        });
        if clash {
            return Ok(Outcome::Waiting(
                "InitialBindingCompleted",
                "NamingConflicts",
                format!("{plural}.{group} is already bound from another APIExport"),
            ));
        }
        resources.push(BoundResource {
            group,
            resource: plural,
            schema: BoundSchema {
                name: name.clone(),
                uid: schema.metadata.uid.clone().unwrap_or_default(),
                identity_hash: identity.clone(),
            },
            storage_versions: schema
                .spec
                .versions
                .iter()
                .filter(|v| v.storage)
                .map(|v| v.name.clone())
                .collect(),
        });
    }
    let claims = export.spec.permission_claims.clone();
    Ok(Outcome::Bound {
        export_cluster,
        resources,
        claims,
    })
}

/// A binding being deleted takes the objects of its resources with it, as in kcp: they are
/// deleted through the workspace's API (their own finalizers honoured) while the binding
/// still serves them, and the binding goes once none remain.
async fn finalize(binding: &APIBinding, client: &Client) -> Result<Next, kube::Error> {
    if !finalizer::has(binding, BINDING_FINALIZER) {
        return Ok(Next::Done);
    }
    let bound = binding
        .status
        .as_ref()
        .map(|s| s.bound_resources.clone())
        .unwrap_or_default();
    let others: Api<APIBinding> = Api::all(client.clone());
    let others = others.list(&ListParams::default()).await?.items;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut remaining = Vec::new();
    for resource in &bound {
        // Another binding of the same export keeps serving these objects.
        let shared = others.iter().any(|b| {
            b.name_any() != binding.name_any()
                && b.metadata.deletion_timestamp.is_none()
                && b.status.as_ref().is_some_and(|s| {
                    s.bound_resources.iter().any(|r| {
                        r.group == resource.group
                            && r.resource == resource.resource
                            && r.schema.identity_hash == resource.schema.identity_hash
                    })
                })
        });
        // A local CRD of the same name is what the workspace serves under that name now;
        // its objects are not the binding's to delete.
        let shadowed = crds
            .get_opt(&format!("{}.{}", resource.resource, resource.group))
            .await?
            .is_some();
        if shared || shadowed {
            continue;
        }
        let Some(api_resource) = served(client, &resource.group, &resource.resource).await? else {
            continue;
        };
        let left = delete_all(client, &api_resource).await?;
        if left > 0 {
            remaining.push(format!("{}.{} has {left} objects", resource.resource, resource.group));
        }
    }
    if remaining.is_empty() {
        finalizer::release(&Api::all(client.clone()), binding, BINDING_FINALIZER).await?;
        return Ok(Next::Done);
    }
    let message = format!("Some resources are remaining: {}", remaining.join(", "));
    let mut list = binding
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let changed = conditions::set_condition(
        &mut list,
        Condition::new("BindingResourceDeleteSuccess", false, "SomeResourcesRemain", &message),
        &now_rfc3339(),
    );
    if changed {
        let api: Api<APIBinding> = Api::all(client.clone());
        api.patch_status(
            &binding.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": list}})),
        )
        .await?;
    }
    Ok(Next::After(Duration::from_secs(1)))
}

/// The resource the workspace serves as `resource.group`, at its preferred version.
async fn served(client: &Client, group: &str, resource: &str) -> Result<Option<ApiResource>, kube::Error> {
    let group = match kube::discovery::oneshot::group(client, group).await {
        Ok(group) => group,
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(kube::Error::Discovery(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(group
        .recommended_resources()
        .into_iter()
        .find(|(r, _)| r.plural == resource)
        .map(|(r, _)| r))
}

/// Asks for every object of `resource` to be deleted; returns how many are still there.
async fn delete_all(client: &Client, resource: &ApiResource) -> Result<usize, kube::Error> {
    let all: Api<DynamicObject> = Api::all_with(client.clone(), resource);
    let objects = all.list(&ListParams::default()).await?.items;
    for object in objects.iter().filter(|o| o.metadata.deletion_timestamp.is_none()) {
        let api: Api<DynamicObject> = match object.namespace() {
            Some(ns) => Api::namespaced_with(client.clone(), &ns, resource),
            None => Api::all_with(client.clone(), resource),
        };
        match api.delete(&object.name_any(), &DeleteParams::background()).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(objects.len())
}
