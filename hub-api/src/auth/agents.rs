//! What an edge agent's own credential may do with Placements, beyond what RBAC can say.
//!
//! An agent must see the assignments of its own device and nothing else, yet RBAC can only
//! name objects, not filter a list. As Kubernetes' node authorizer does for a kubelet's
//! pods, the hub narrows what the agent identity (the ServiceAccount `faros-agent-<name>`
//! its Registration made) may do: a list or watch of placements must select the label
//! `edge.faros.sh/agent=<name>`, which the hub keeps equal to `spec.agent`, or the field
//! `spec.agent=<name>`; a read of one
//! placement, or a status write, must be of a placement of that agent (checked once the
//! object is at hand: here for reads, in admission for writes). RBAC still has to allow the
//! request first: this only ever takes rights away.

use faros_api::edge::{AGENT_ACCOUNT_PREFIX, AGENT_LABEL};
use faros_machinery::selector::{FieldSelector, LabelSelector};
use faros_machinery::status::ApiError;

use super::User;
use super::rbac::{Attributes, forbidden_on};

/// The resource the restriction guards.
const PLACEMENTS: &str = "placements";

/// The namespace and name of the agent `user` is, when it is an agent's own identity.
pub(crate) fn agent_of(user: &User) -> Option<(&str, &str)> {
    let (namespace, account) = super::serviceaccount::split_username(&user.name)?;
    let agent = account.strip_prefix(AGENT_ACCOUNT_PREFIX)?;
    (!agent.is_empty()).then_some((namespace, agent))
}

/// Whether `group`/`resource` is the Placement kind.
pub(crate) fn is_placement(group: &str, resource: &str) -> bool {
    group == faros_api::EDGE_GROUP && resource == PLACEMENTS
}

/// Refuses an agent's read of another agent's placement.
pub(crate) fn may_read(
    user: &User,
    group: &str,
    resource: &str,
    object: &faros_storage::Object,
) -> Result<(), ApiError> {
    match agent_of(user) {
        Some((_, agent)) if is_placement(group, resource) => may_touch(agent, &object.value()),
        _ => Ok(()),
    }
}

/// For an agent's get of a placement that does not exist: the same refusal as for another
/// agent's, so that names cannot be probed (as Kubernetes' node authorizer answers).
pub(crate) fn may_read_missing(user: &User, group: &str, resource: &str, name: &str) -> Result<(), ApiError> {
    match agent_of(user) {
        Some((_, agent)) if is_placement(group, resource) => {
            may_touch(agent, &serde_json::json!({"metadata": {"name": name}}))
        }
        _ => Ok(()),
    }
}

/// Refuses agent `agent` anything of a placement assigned to another agent.
pub(crate) fn may_touch(agent: &str, placement: &serde_json::Value) -> Result<(), ApiError> {
    if placement["spec"]["agent"].as_str() == Some(agent) {
        return Ok(());
    }
    Err(forbidden_on(
        faros_api::EDGE_GROUP,
        PLACEMENTS,
        faros_machinery::object::name(placement),
        &format!("agent {agent:?} may read and report on its own placements only"),
    ))
}

/// Refuses an agent's list or watch of placements that could return another agent's.
pub(crate) fn restrict(
    user: &User,
    attributes: &Attributes,
    label_selector: Option<&str>,
    field_selector: Option<&str>,
) -> Result<(), ApiError> {
    let Some((_, agent)) = agent_of(user) else {
        return Ok(());
    };
    let Some(resource) = &attributes.resource else {
        return Ok(());
    };
    if !is_placement(&resource.group, &resource.resource) || !matches!(attributes.verb.as_str(), "list" | "watch") {
        return Ok(());
    }
    let by_label = label_selector
        .and_then(|s| LabelSelector::parse(s).ok())
        .is_some_and(|s| s.exact(AGENT_LABEL) == Some(agent));
    let by_field = field_selector
        .and_then(|s| FieldSelector::parse(s).ok())
        .is_some_and(|s| s.exact("spec.agent") == Some(agent));
    if by_label || by_field {
        return Ok(());
    }
    Err(forbidden_on(
        faros_api::EDGE_GROUP,
        PLACEMENTS,
        "",
        &format!(
            "agent {agent:?} may {} only its own placements: select them with the label selector {AGENT_LABEL}={agent} (or the field selector spec.agent={agent})",
            attributes.verb
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(name: &str) -> User {
        User::authenticated(format!("system:serviceaccount:plant:{name}"), vec![], "uid")
    }

    fn list(resource: &str) -> Attributes {
        Attributes::resource("list", faros_api::EDGE_GROUP, resource, "plant", "")
    }

    #[test]
    fn agents_list_only_their_own_placements() {
        let dev1 = agent("faros-agent-dev1");
        assert!(restrict(&dev1, &list("placements"), Some("edge.faros.sh/agent=dev1"), None).is_ok());
        assert!(restrict(&dev1, &list("placements"), Some("edge.faros.sh/agent in (dev1)"), None).is_ok());
        assert!(restrict(&dev1, &list("placements"), None, Some("spec.agent=dev1")).is_ok());
        for refused in [
            None,
            Some(""),
            Some("edge.faros.sh/agent=dev2"),
            Some("edge.faros.sh/agent in (dev1,dev2)"),
            Some("edge.faros.sh/agent!=dev2"),
            Some("((("),
        ] {
            let err = restrict(&dev1, &list("placements"), refused, refused).unwrap_err();
            assert_eq!(err.code().as_u16(), 403, "{refused:?}");
        }
        // Other kinds and other users are RBAC's alone.
        assert!(restrict(&dev1, &list("agents"), None, None).is_ok());
        assert!(restrict(&agent("faros-reg-r"), &list("placements"), None, None).is_ok());
        assert!(
            restrict(
                &User::authenticated("alice", vec![], "u"),
                &list("placements"),
                None,
                None
            )
            .is_ok()
        );
    }

    #[test]
    fn agent_identities() {
        assert_eq!(agent_of(&agent("faros-agent-dev1")), Some(("plant", "dev1")));
        assert_eq!(agent_of(&agent("faros-agent-")), None);
        assert_eq!(agent_of(&agent("default")), None);
    }
}
