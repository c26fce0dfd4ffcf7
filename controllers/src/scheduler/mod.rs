//! The workload scheduler: turns each Workload into one Placement per chosen Agent, keeps
//! those in line with the template, and reports in the Workload's status how they fare.
//!
//! It serves every workspace through the edge export's view, like the registration
//! controller. Agents (labels, readiness, capacity, runtimes, cordon, deletion) and
//! Placements (the device's reports, deletion) requeue the Workloads of their namespace.
//! Each pass reads the namespace's Agents and Placements afresh, so a decision never rests
//! on a cache that has not yet seen the placements the previous pass made.
//!
//! Placements are owned by their Workload (controller, blockOwnerDeletion): deleting the
//! Workload lets the garbage collector remove them, and the devices stop what they ran.

mod choose;
mod status;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use faros_api::edge::{AGENT_LABEL, Agent};
use faros_api::meta::now_rfc3339;
use faros_api::workloads::{
    LabelSelector, Placement, PlacementSpec, PlacementStrategy, SchedulingPolicy, WORKLOAD_LABEL, Workload,
    placement_name, validate_spec,
};
use futures::{FutureExt, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};

use crate::errors::{is_conflict, is_not_found};
use crate::runtime::{self, Clusters, Next, cluster_of};

/// How often a Workload is looked at even when nothing about it changes.
const RESYNC: Duration = Duration::from_secs(300);
/// Placement writes one pass keeps in flight.
const WRITES_IN_FLIGHT: usize = 16;

/// One placement write of a pass.
type Write<'a> = futures::future::BoxFuture<'a, Result<(), kube::Error>>;

pub(crate) async fn run(clusters: Clusters, eviction_timeout: Duration) {
    runtime::run_with(
        "scheduler",
        clusters,
        move |workload: Arc<Workload>, client: Client| reconcile(workload, client, eviction_timeout),
        vec![
            // Every status report of the fleet comes by; only those that change what a pass
            // decides on requeue the namespace's workloads (each pass lists its agents).
            runtime::related_by::<Workload, choose::AgentInputs>(choose::fingerprint, same_namespace),
            runtime::related::<Workload, Placement>(|placement, workload| {
                same_namespace(placement, workload)
                    && workload.metadata.name.as_deref() == Some(placement.spec.workload.as_str())
            }),
        ],
    )
    .await
}

fn same_namespace<R: Resource>(object: &R, workload: &Workload) -> bool {
    object.meta().namespace == workload.metadata.namespace && cluster_of(object) == cluster_of(workload)
}

async fn reconcile(workload: Arc<Workload>, client: Client, eviction_timeout: Duration) -> Result<Next, kube::Error> {
    let Some(ns) = workload.namespace() else {
        return Ok(Next::Done);
    };
    // Its placements go with it through the garbage collector.
    if workload.metadata.deletion_timestamp.is_some() {
        return Ok(Next::Done);
    }
    let workloads: Api<Workload> = Api::namespaced(client.clone(), &ns);
    let now = now_rfc3339();
    let problems = validate_spec(&workload.spec);
    if !problems.is_empty() {
        // Admission refuses these; one stored before it did is reported, never acted on.
        let new = status::invalid(&workload, &problems, &now);
        write_status(&workloads, &workload, new).await?;
        return Ok(Next::Done);
    }

    let name = workload.name_any();
    let agents: Api<Agent> = Api::namespaced(client.clone(), &ns);
    let placements: Api<Placement> = Api::namespaced(client.clone(), &ns);
    // The hub picks the selected agents: the others do not matter to this workload.
    let selected = ListParams::default().labels(&label_query(workload.spec.selector.as_ref()));
    let agents = agents.list(&selected).await?.items;
    // Choosing among agents by load needs every placement of the namespace; placing on all
    // of them by labels alone needs only this workload's own.
    let spec = &workload.spec.placement;
    let by_load = spec.strategy != PlacementStrategy::All || spec.scheduling == SchedulingPolicy::ResourceAware;
    let scope = if by_load {
        ListParams::default()
    } else {
        ListParams::default().labels(&format!("{WORKLOAD_LABEL}={name}"))
    };
    let all = placements.list(&scope).await?.items;
    let plan = choose::plan(&workload, &agents, &all, jiff::Timestamp::now(), eviction_timeout);
    let cluster = cluster_of(&*workload);

    let removals: Vec<Write<'_>> = plan
        .remove
        .iter()
        .map(|(placement, agent, why)| {
            let placements = &placements;
            async move {
                match placements.delete(placement, &DeleteParams::background()).await {
                    Ok(_) => {
                        tracing::debug!(placement = %placement, %agent, reason = ?why, "placement removed");
                        Ok(())
                    }
                    Err(e) if is_not_found(&e) => Ok(()),
                    Err(e) => Err(e),
                }
            }
            .boxed()
        })
        .collect();
    all_of(removals).await?;

    let hash = workload.spec.template.hash();
    let owner = owner(&workload);
    let by_name: BTreeMap<&str, &Placement> = all
        .iter()
        .filter_map(|p| p.metadata.name.as_deref().map(|n| (n, p)))
        .collect();
    let updates: Vec<Write<'_>> = plan
        .keep
        .iter()
        .filter_map(|(_, placement)| by_name.get(placement.as_str()))
        .map(|existing| ensure_current(&placements, existing, &workload, &owner, &hash).boxed())
        .collect();
    all_of(updates).await?;
    let creations: Vec<Write<'_>> = plan
        .create
        .iter()
        .map(|agent| {
            let wanted = Placement {
                metadata: ObjectMeta {
                    name: Some(placement_name(&name, agent)),
                    namespace: Some(ns.clone()),
                    labels: Some(
                        [
                            (WORKLOAD_LABEL.to_string(), name.clone()),
                            (AGENT_LABEL.to_string(), agent.clone()),
                        ]
                        .into(),
                    ),
                    owner_references: Some(vec![owner.clone()]),
                    ..Default::default()
                },
                spec: PlacementSpec {
                    workload: name.clone(),
                    agent: agent.clone(),
                    template: workload.spec.template.clone(),
                    template_hash: hash.clone(),
                },
                status: None,
            };
            let (placements, workload, owner, hash) = (&placements, &workload, &owner, &hash);
            async move {
                match placements.create(&PostParams::default(), &wanted).await {
                    Ok(_) => Ok(()),
                    // Names are deterministic: it exists (made by an earlier pass, or being deleted).
                    Err(e) if is_conflict(&e) => {
                        match placements.get_opt(&placement_name(&workload.name_any(), agent)).await? {
                            Some(existing) => ensure_current(placements, &existing, workload, owner, hash).await,
                            None => Ok(()),
                        }
                    }
                    Err(e) => Err(e),
                }
            }
            .boxed()
        })
        .collect();
    all_of(creations).await?;
    if !plan.create.is_empty() || !plan.remove.is_empty() {
        tracing::info!(
            %cluster,
            namespace = %ns,
            workload = %name,
            created = plan.create.len(),
            removed = plan.remove.len(),
            "placements changed"
        );
    }

    let kept: Vec<&Placement> = plan
        .keep
        .iter()
        .filter_map(|(_, p)| by_name.get(p.as_str()).copied())
        .collect();
    let new = status::aggregate(&workload, &plan, &kept, &now);
    write_status(&workloads, &workload, new).await?;
    Ok(Next::After(plan.recheck.map_or(RESYNC, |r| r.min(RESYNC))))
}

/// Runs `writes` a few at a time: a rollout onto thousands of agents is bounded by round
/// trips, not by the hub. Every write is attempted; the first error is returned.
async fn all_of(writes: Vec<Write<'_>>) -> Result<(), kube::Error> {
    let results: Vec<Result<(), kube::Error>> = futures::stream::iter(writes)
        .buffer_unordered(WRITES_IN_FLIGHT)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Brings a placement's spec (and owner) in line with the workload: a changed template is
/// replaced in place, and the device replaces what it runs.
async fn ensure_current(
    api: &Api<Placement>,
    existing: &Placement,
    workload: &Workload,
    owner: &OwnerReference,
    hash: &str,
) -> Result<(), kube::Error> {
    let owned = existing
        .metadata
        .owner_references
        .as_ref()
        .is_some_and(|refs| refs.iter().any(|r| r.uid == owner.uid));
    if existing.spec.template_hash == hash && existing.spec.template == workload.spec.template && owned {
        return Ok(());
    }
    let mut wanted = existing.clone();
    wanted.spec.template = workload.spec.template.clone();
    wanted.spec.template_hash = hash.to_string();
    wanted.metadata.owner_references = Some(vec![owner.clone()]);
    // A replace (preconditioned on the resourceVersion read) sets the template whole: a
    // merge patch would keep fields the new template leaves out.
    match api.replace(&existing.name_any(), &PostParams::default(), &wanted).await {
        Ok(_) => {
            tracing::debug!(namespace = ?existing.namespace(), placement = %existing.name_any(), template = %hash, "placement updated");
            Ok(())
        }
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

/// `selector` as a `labelSelector` query (empty: every agent).
fn label_query(selector: Option<&LabelSelector>) -> String {
    let Some(selector) = selector else {
        return String::new();
    };
    let mut terms: Vec<String> = selector.match_labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    for r in &selector.match_expressions {
        terms.push(match r.operator.as_str() {
            "In" => format!("{} in ({})", r.key, r.values.join(",")),
            "NotIn" => format!("{} notin ({})", r.key, r.values.join(",")),
            "Exists" => r.key.clone(),
            "DoesNotExist" => format!("!{}", r.key),
            // Validation refuses other operators; were one stored, the plan matches nothing
            // with it, so asking for every agent changes no decision.
            _ => continue,
        });
    }
    terms.join(",")
}

fn owner(workload: &Workload) -> OwnerReference {
    OwnerReference {
        api_version: Workload::api_version(&()).into_owned(),
        kind: Workload::kind(&()).into_owned(),
        name: workload.name_any(),
        uid: workload.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Writes `new` through the status subresource unless it is what the Workload has.
async fn write_status(
    api: &Api<Workload>,
    workload: &Workload,
    new: faros_api::workloads::WorkloadStatus,
) -> Result<(), kube::Error> {
    if workload.status.as_ref() == Some(&new) {
        return Ok(());
    }
    let patch = runtime::status_patch(workload.status.as_ref(), &new);
    match api
        .patch_status(&workload.name_any(), &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faros_api::workloads::LabelSelectorRequirement;

    #[test]
    fn selectors_become_label_queries() {
        assert_eq!(label_query(None), "");
        let requirement = |key: &str, operator: &str, values: &[&str]| LabelSelectorRequirement {
            key: key.into(),
            operator: operator.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
        };
        let selector = LabelSelector {
            match_labels: [("site".to_string(), "north".to_string())].into(),
            match_expressions: vec![
                requirement("tier", "In", &["a", "b"]),
                requirement("zone", "NotIn", &["c"]),
                requirement("gpu", "Exists", &[]),
                requirement("old", "DoesNotExist", &[]),
            ],
        };
        assert_eq!(
            label_query(Some(&selector)),
            "site=north,tier in (a,b),zone notin (c),gpu,!old"
        );
    }
}
