//! Workloads and Placements: what the schema cannot check of a Workload, the labels that make
//! a Placement findable by its agent, and that an agent reports only on its own placements.

use serde_json::Value;

use super::{Context, Operation, Plugin};
use crate::auth::agents;
use faros_api::edge::AGENT_LABEL;
use faros_api::workloads::{ProblemKind, WORKLOAD_LABEL, WorkloadSpec, validate_spec};
use faros_machinery::object;
use faros_machinery::status::{ApiError, FieldError};

pub(super) struct Workloads;

impl Plugin for Workloads {
    fn mutate(&self, ctx: &Context<'_>, obj: &mut Value) {
        if ctx.subresource.is_none() && ctx.is(faros_api::EDGE_GROUP, "placements") {
            label_placement(obj);
        }
    }

    fn validate(&self, ctx: &Context<'_>, obj: &Value, old: Option<&Value>) -> Result<(), ApiError> {
        if ctx.is(faros_api::EDGE_GROUP, "workloads") && ctx.subresource.is_none() {
            return check_workload(obj);
        }
        if !ctx.is(faros_api::EDGE_GROUP, "placements") {
            return Ok(());
        }
        if let Some((_, agent)) = agents::agent_of(ctx.user) {
            // Judged by the stored object: a write cannot move a placement to its author.
            agents::may_touch(agent, old.unwrap_or(obj))?;
        }
        match (ctx.operation, old) {
            (Operation::Update, Some(old)) if ctx.subresource.is_none() => check_placement_update(obj, old),
            _ => Ok(()),
        }
    }
}

/// The agent and workload labels always say what the spec says, so a label-selected list
/// is exactly an agent's (or a workload's) placements.
fn label_placement(obj: &mut Value) {
    let spec = &obj["spec"];
    let labels: Vec<(&str, String)> = [(AGENT_LABEL, &spec["agent"]), (WORKLOAD_LABEL, &spec["workload"])]
        .into_iter()
        .filter_map(|(label, v)| Some((label, v.as_str()?.to_string())))
        .collect();
    if labels.is_empty() {
        return;
    }
    let metadata = &mut obj["metadata"];
    if !metadata["labels"].is_object() {
        metadata["labels"] = Value::Object(Default::default());
    }
    for (label, value) in labels {
        metadata["labels"][label] = Value::String(value);
    }
}

fn check_workload(obj: &Value) -> Result<(), ApiError> {
    let invalid = |causes| ApiError::invalid("Workload", faros_api::EDGE_GROUP, object::name(obj), causes);
    let spec: WorkloadSpec = serde_json::from_value(obj["spec"].clone())
        .map_err(|e| invalid(vec![FieldError::invalid("spec", e.to_string())]))?;
    let problems = validate_spec(&spec);
    if problems.is_empty() {
        return Ok(());
    }
    Err(invalid(
        problems
            .into_iter()
            .map(|p| match p.kind {
                ProblemKind::Invalid => FieldError::invalid(p.path, p.detail),
                ProblemKind::Required => FieldError::required(p.path, p.detail),
                ProblemKind::Duplicate => FieldError::duplicate(p.path, p.detail),
                ProblemKind::NotSupported => FieldError::not_supported(p.path, p.detail),
                ProblemKind::Forbidden => FieldError::forbidden(p.path, p.detail),
            })
            .collect(),
    ))
}

/// A placement stays with its workload and agent; the labels must keep saying so.
fn check_placement_update(obj: &Value, old: &Value) -> Result<(), ApiError> {
    let mut causes = Vec::new();
    for (field, label) in [("agent", AGENT_LABEL), ("workload", WORKLOAD_LABEL)] {
        let value = &obj["spec"][field];
        if *value != old["spec"][field] {
            causes.push(FieldError::invalid(format!("spec.{field}"), "field is immutable"));
        } else if obj["metadata"]["labels"][label] != *value {
            causes.push(FieldError::invalid(
                format!("metadata.labels[{label}]"),
                format!("must equal spec.{field} ({value})"),
            ));
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "Placement",
            faros_api::EDGE_GROUP,
            object::name(obj),
            causes,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn placements_are_labelled_from_their_spec() {
        let mut obj = json!({"metadata": {"name": "p", "labels": {"edge.faros.sh/agent": "forged"}}, "spec": {"agent": "dev1", "workload": "web"}});
        label_placement(&mut obj);
        assert_eq!(
            obj["metadata"]["labels"],
            json!({"edge.faros.sh/agent": "dev1", "edge.faros.sh/workload": "web"})
        );
    }

    #[test]
    fn placements_keep_their_agent() {
        let old = json!({"metadata": {"name": "p", "labels": {"edge.faros.sh/agent": "dev1", "edge.faros.sh/workload": "web"}}, "spec": {"agent": "dev1", "workload": "web"}});
        assert!(check_placement_update(&old, &old).is_ok());
        let mut moved = old.clone();
        moved["spec"]["agent"] = json!("dev2");
        assert!(check_placement_update(&moved, &old).is_err());
        let mut relabelled = old.clone();
        relabelled["metadata"]["labels"]["edge.faros.sh/agent"] = json!("dev2");
        assert!(check_placement_update(&relabelled, &old).is_err());
    }

    #[test]
    fn workloads_are_checked_with_field_paths() {
        let obj = json!({"metadata": {"name": "web"}, "spec": {"template": {"containers": [{"name": "web", "image": "Not An Image"}]}}});
        let err = check_workload(&obj).unwrap_err();
        assert_eq!(err.code().as_u16(), 422);
        assert!(err.to_string().contains("spec.template.containers[0].image"), "{err}");
    }
}
