//! The objects a Registration's controller writes: owned metadata, RBAC rules, and
//! create-or-get helpers.

use std::collections::BTreeSet;

use faros_api::edge::Agent;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use kube::api::{Api, DeleteParams, PostParams};

use crate::errors::is_conflict;
use crate::runtime::Partial;

pub(super) fn owner<K: Resource<DynamicType = ()>>(object: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: object.meta().name.clone().unwrap_or_default(),
        uid: object.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

pub(super) fn owned_by(meta: &ObjectMeta, uid: &str) -> bool {
    meta.owner_references
        .as_ref()
        .is_some_and(|refs| refs.iter().any(|r| r.uid == uid))
}

pub(super) fn meta(name: &str, namespace: &str, owner: OwnerReference, label: (&str, &str)) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(namespace.into()),
        owner_references: Some(vec![owner]),
        labels: Some([(label.0.to_string(), label.1.to_string())].into()),
        ..Default::default()
    }
}

pub(super) fn rule(group: &str, resources: &[&str], verbs: &[&str], names: Option<Vec<String>>) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.into()]),
        resources: Some(resources.iter().map(|r| r.to_string()).collect()),
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
        resource_names: names,
        non_resource_urls: None,
    }
}

/// Creates `object` unless an object of that name exists; returns what is stored.
pub(super) async fn create_or_get<K>(api: &Api<K>, object: &K) -> Result<K, kube::Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    match api.create(&PostParams::default(), object).await {
        Ok(created) => Ok(created),
        Err(e) if is_conflict(&e) => api.get(&object.meta().name.clone().unwrap_or_default()).await,
        Err(e) => Err(e),
    }
}

/// Makes the Role `name` hold exactly `rules` and `owner`, creating it if needed.
pub(super) async fn ensure_role(
    api: &Api<Role>,
    name: &str,
    namespace: &str,
    owner: OwnerReference,
    label: (&str, &str),
    rules: Vec<PolicyRule>,
) -> Result<(), kube::Error> {
    let wanted = Role {
        metadata: meta(name, namespace, owner.clone(), label),
        rules: Some(rules),
    };
    let mut existing = create_or_get(api, &wanted).await?;
    let owners = existing.metadata.owner_references.clone().unwrap_or_default();
    if existing.rules != wanted.rules || !owners.iter().any(|r| r.uid == owner.uid) {
        existing.rules = wanted.rules;
        existing.metadata.owner_references = Some(vec![owner]);
        api.replace(name, &PostParams::default(), &existing).await?;
    }
    Ok(())
}

/// Makes RoleBinding `name` bind Role `name` to ServiceAccount `name`.
pub(super) async fn ensure_binding(
    api: &Api<RoleBinding>,
    name: &str,
    namespace: &str,
    owner: OwnerReference,
    label: (&str, &str),
) -> Result<(), kube::Error> {
    let wanted = RoleBinding {
        metadata: meta(name, namespace, owner, label),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: name.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: name.into(),
            namespace: Some(namespace.into()),
            api_group: None,
        }]),
    };
    let existing = create_or_get(api, &wanted).await?;
    if existing.role_ref != wanted.role_ref {
        // roleRef is immutable: replace the binding.
        api.delete(name, &DeleteParams::background()).await?;
        api.create(&PostParams::default(), &wanted).await?;
    } else if existing.subjects != wanted.subjects {
        let mut fixed = existing;
        fixed.subjects = wanted.subjects;
        api.replace(name, &PostParams::default(), &fixed).await?;
    }
    Ok(())
}

/// The rules of a Registration's Role: register agents, and mint tokens for the agents in
/// `pending` only. An expired registration gets no rules at all.
pub(super) fn registration_rules(expired: bool, pending: &BTreeSet<String>) -> Vec<PolicyRule> {
    if expired {
        return Vec::new();
    }
    let mut rules = vec![rule(faros_api::EDGE_GROUP, &["agents"], &["create"], None)];
    if !pending.is_empty() {
        rules.push(rule(
            "",
            &["serviceaccounts/token"],
            &["create"],
            Some(pending.iter().cloned().collect()),
        ));
    }
    rules
}

/// The ServiceAccounts a Role currently lets its holder mint tokens for.
pub(super) fn pending_in(role: &Role) -> BTreeSet<String> {
    role.rules
        .iter()
        .flatten()
        .filter(|r| r.resources.iter().flatten().any(|res| res == "serviceaccounts/token"))
        .flat_map(|r| r.resource_names.iter().flatten().cloned())
        .collect()
}

/// An Agent as the registration controllers read it: its metadata with its labels (the
/// registration it joins through) and, of its status, whether it reported and its conditions.
/// The device facts are skipped over: the controllers see every Agent status write of a fleet.
pub(super) type AgentIdentity =
    Partial<Agent, serde::de::IgnoredAny, IdentityStatus, std::collections::BTreeMap<String, String>>;

#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct IdentityStatus {
    observed_generation: Option<i64>,
    #[serde(default)]
    pub(super) conditions: Vec<faros_api::Condition>,
}

pub(super) fn has_reported(agent: &AgentIdentity) -> bool {
    agent.status.as_ref().is_some_and(|s| s.observed_generation.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_is_read_for_its_identity_without_its_facts() {
        let agent = serde_json::json!({
            "apiVersion": "edge.faros.sh/v1alpha1",
            "kind": "Agent",
            "metadata": {"name": "dev-1", "namespace": "default", "uid": "u1",
                         "labels": {(faros_api::edge::REGISTRATION_LABEL): "reg"}},
            "spec": {"heartbeatIntervalSeconds": 10},
            "status": {"observedGeneration": 1, "device": {"hostname": "dev-1", "cpus": 4},
                       "conditions": [{"type": "Ready", "status": "True", "reason": "Ready"}]},
        });
        let read: AgentIdentity = serde_json::from_value(agent).unwrap();
        assert!(has_reported(&read));
        assert_eq!(
            kube::ResourceExt::labels(&read)[faros_api::edge::REGISTRATION_LABEL],
            "reg"
        );
        assert_eq!(read.status.as_ref().unwrap().conditions[0].type_, "Ready");
        assert_eq!(owner(&read).kind, "Agent");
        assert_eq!(owner(&read).uid, "u1");

        let joining: AgentIdentity =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "dev-2"}, "status": null})).unwrap();
        assert!(!has_reported(&joining));
    }

    #[test]
    fn an_empty_pending_set_grants_no_tokens() {
        let rules = registration_rules(false, &BTreeSet::new());
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].resources.as_deref(), Some(&["agents".to_string()][..]));
        assert!(registration_rules(true, &["x".to_string()].into()).is_empty());
        let with = registration_rules(false, &["faros-agent-a".to_string()].into());
        assert_eq!(
            with[1].resource_names.as_deref(),
            Some(&["faros-agent-a".to_string()][..])
        );
        let role = Role {
            rules: Some(with),
            ..Default::default()
        };
        assert_eq!(pending_in(&role), ["faros-agent-a".to_string()].into());
    }
}
