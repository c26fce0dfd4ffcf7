//! Registrations and the per-agent identities they hand out.
//!
//! For each Registration `R` in namespace `N` the controller keeps, all owned by `R`:
//!
//! - ServiceAccount `faros-reg-R`, whose legacy token (Secret `faros-reg-R-token`, filled by
//!   the hub's token controller) is the registration credential a device starts with;
//! - Role `faros-reg-R`: `create` on `agents`, and `create` on `serviceaccounts/token`
//!   restricted by `resourceNames` to the identities of agents that joined through `R` and
//!   have not reported yet (the rule is left out when there are none: an empty
//!   `resourceNames` would mean *every* ServiceAccount);
//! - RoleBinding `faros-reg-R`.
//!
//! `R` is Ready once the Secret holds a token. A finalizer makes deleting `R` revoke the
//! token before the object goes (the owner references are the backstop).
//!
//! When an Agent labelled `edge.faros.sh/registration: R` appears and `R` admits its name,
//! the controller creates the agent's own identity, owned by the Agent: ServiceAccount, Role
//! and RoleBinding `faros-agent-<name>`, allowing only its own Agent (and status), its heartbeat
//! Lease and minting tokens for itself. The agent exchanges the registration credential for
//! a bound token of that ServiceAccount; once it has reported, `R` no longer lets anyone mint
//! tokens for it, and revoking `R` leaves joined agents working.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faros_api::edge::{self, Agent, REGISTRATION_LABEL, REVOKE_FINALIZER, Registration, reasons};
use faros_api::meta::{SA_NAME_ANNOTATION, TOKEN_SECRET_TYPE};
use faros_api::{Condition, conditions};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use crate::errors::{is_conflict, is_forbidden, is_not_found};
use crate::finalizer;
use crate::runtime::{self, Clusters, Next, cluster_of};
use faros_api::meta::now_rfc3339;

/// How often a Registration is looked at even when nothing about it changes (its Role is
/// recomputed from the agents that name it).
const RESYNC: Duration = Duration::from_secs(300);
/// How often a Registration waiting for its token is looked at again.
const TOKEN_POLL: Duration = Duration::from_secs(1);

/// (cluster, namespace, name) of an Agent → (its uid, whether it had reported) when last
/// handled in full.
type Memo = Arc<Mutex<HashMap<(String, String, String), (String, bool)>>>;

pub async fn run(clusters: Clusters) {
    // Agents already handled in the state they are in: status writes (heartbeats) then cost
    // nothing here.
    let memo: Memo = Arc::default();
    let registrations = runtime::run("registration", clusters.clone(), reconcile_registration);
    let agents = runtime::run("agent-identity", clusters, move |agent: Arc<Agent>, client: Client| {
        let memo = memo.clone();
        async move { reconcile_agent(agent, client, memo).await }
    });
    futures::future::join(registrations, agents).await;
}

fn owner<K: Resource<DynamicType = ()>>(object: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: object.meta().name.clone().unwrap_or_default(),
        uid: object.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn owned_by(meta: &ObjectMeta, uid: &str) -> bool {
    meta.owner_references
        .as_ref()
        .is_some_and(|refs| refs.iter().any(|r| r.uid == uid))
}

fn meta(name: &str, namespace: &str, owner: OwnerReference, label: (&str, &str)) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(namespace.into()),
        owner_references: Some(vec![owner]),
        labels: Some([(label.0.to_string(), label.1.to_string())].into()),
        ..Default::default()
    }
}

fn rule(group: &str, resources: &[&str], verbs: &[&str], names: Option<Vec<String>>) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.into()]),
        resources: Some(resources.iter().map(|r| r.to_string()).collect()),
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
        resource_names: names,
        non_resource_urls: None,
    }
}

/// Creates `object` unless an object of that name exists; returns what is stored.
async fn create_or_get<K>(api: &Api<K>, object: &K) -> Result<K, kube::Error>
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
async fn ensure_role(
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
async fn ensure_binding(
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
fn registration_rules(expired: bool, pending: &BTreeSet<String>) -> Vec<PolicyRule> {
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
fn pending_in(role: &Role) -> BTreeSet<String> {
    role.rules
        .iter()
        .flatten()
        .filter(|r| r.resources.iter().flatten().any(|res| res == "serviceaccounts/token"))
        .flat_map(|r| r.resource_names.iter().flatten().cloned())
        .collect()
}

fn has_reported(agent: &Agent) -> bool {
    agent.status.as_ref().is_some_and(|s| s.observed_generation.is_some())
}

/// Reconciles a Registration; when the workspace has not accepted the edge API's permission
/// claims (so the credentials cannot be managed there), says so in its status.
async fn reconcile_registration(reg: Arc<Registration>, client: Client) -> Result<Next, kube::Error> {
    match manage_registration(reg.clone(), client.clone()).await {
        Err(kube::Error::Api(status)) if status.code == 403 => {
            let Some(ns) = reg.namespace() else {
                return Ok(Next::Done);
            };
            let message = format!(
                "the edge controllers may not manage this Registration's credentials in this workspace ({}); \
                 accept the permission claims of the {} APIBinding (spec.permissionClaims)",
                status.message,
                faros_api::EDGE_GROUP
            );
            let registrations: Api<Registration> = Api::namespaced(client, &ns);
            set_registration_status(
                &registrations,
                &reg,
                None,
                Condition::new(reasons::READY, false, "PermissionClaimsNotAccepted", &message),
            )
            .await?;
            Ok(Next::After(Duration::from_secs(3)))
        }
        other => other,
    }
}

async fn manage_registration(reg: Arc<Registration>, client: Client) -> Result<Next, kube::Error> {
    let name = reg.name_any();
    let Some(ns) = reg.namespace() else {
        return Ok(Next::Done);
    };
    let registrations: Api<Registration> = Api::namespaced(client.clone(), &ns);
    let account = edge::registration_account(&name);
    let secret_name = edge::registration_token_secret(&name);
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let roles: Api<Role> = Api::namespaced(client.clone(), &ns);
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), &ns);

    if reg.metadata.deletion_timestamp.is_some() {
        if !finalizer::has(&*reg, REVOKE_FINALIZER) {
            return Ok(Next::Done);
        }
        // Revoke first: the token dies with its Secret and ServiceAccount. Where the
        // workspace does not (or no longer) accept the edge API's claims, those objects are
        // out of reach here; they are owned by the Registration, so the garbage collector
        // removes them once it is gone, and its deletion must not wait on access it lacks.
        let gone = |r: Result<(), kube::Error>| match r {
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) if is_forbidden(&e) => Ok(()),
            other => other,
        };
        gone(
            secrets
                .delete(&secret_name, &DeleteParams::background())
                .await
                .map(|_| ()),
        )?;
        gone(bindings.delete(&account, &DeleteParams::background()).await.map(|_| ()))?;
        gone(roles.delete(&account, &DeleteParams::background()).await.map(|_| ()))?;
        gone(accounts.delete(&account, &DeleteParams::background()).await.map(|_| ()))?;
        finalizer::release(&registrations, &*reg, REVOKE_FINALIZER).await?;
        tracing::info!(cluster = %cluster_of(&*reg), namespace = %ns, registration = %name, "registration revoked");
        return Ok(Next::Done);
    }
    if !finalizer::has(&*reg, REVOKE_FINALIZER) {
        finalizer::add(&registrations, &*reg, REVOKE_FINALIZER).await?;
        // The update comes back as an event and is reconciled then.
        return Ok(Next::Done);
    }

    let me = owner(&*reg);
    let label = (REGISTRATION_LABEL, name.as_str());
    let sa = ServiceAccount {
        metadata: meta(&account, &ns, me.clone(), label),
        ..Default::default()
    };
    let sa = create_or_get(&accounts, &sa).await?;
    if !owned_by(&sa.metadata, &me.uid) {
        let message = format!("ServiceAccount {account} exists and does not belong to this Registration");
        set_registration_status(
            &registrations,
            &reg,
            None,
            Condition::new(reasons::READY, false, "Conflict", &message),
        )
        .await?;
        return Ok(Next::After(Duration::from_secs(10)));
    }

    // Agents that name this registration: provision those it admits and that have no
    // identity yet; the ones that have not reported may still mint their first token.
    let now = jiff::Timestamp::now();
    let expired = reg.spec.expired(now);
    let agents: Api<Agent> = Api::namespaced(client.clone(), &ns);
    let selector = format!("{REGISTRATION_LABEL}={name}");
    let mut pending = BTreeSet::new();
    for agent in agents.list(&ListParams::default().labels(&selector)).await?.items {
        if agent.metadata.deletion_timestamp.is_some() || has_reported(&agent) {
            continue;
        }
        if provision_agent(&client, &ns, &reg, &agent, now).await? {
            pending.insert(edge::agent_account(&agent.name_any()));
        }
    }
    ensure_role(
        &roles,
        &account,
        &ns,
        me.clone(),
        label,
        registration_rules(expired, &pending),
    )
    .await?;
    ensure_binding(&bindings, &account, &ns, me.clone(), label).await?;

    let mut secret = Secret {
        metadata: meta(&secret_name, &ns, me.clone(), label),
        type_: Some(TOKEN_SECRET_TYPE.into()),
        ..Default::default()
    };
    secret.metadata.annotations = Some([(SA_NAME_ANNOTATION.to_string(), account.clone())].into());
    let secret = create_or_get(&secrets, &secret).await?;
    let has_token = secret
        .data
        .as_ref()
        .and_then(|d| d.get("token"))
        .is_some_and(|t| !t.0.is_empty());

    let (condition, next) = if expired {
        (
            Condition::new(
                reasons::READY,
                false,
                reasons::EXPIRED,
                "the registration has expired and admits no new agents",
            ),
            Next::After(RESYNC),
        )
    } else if has_token {
        let next = match reg
            .spec
            .expiration_time
            .as_deref()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        {
            Some(at) => {
                let left = at.duration_since(now).unsigned_abs();
                Next::After(left.min(RESYNC) + Duration::from_millis(100))
            }
            None => Next::After(RESYNC),
        };
        let message = format!("agents join with the token in Secret {secret_name}");
        (
            Condition::new(reasons::READY, true, reasons::TOKEN_ISSUED, &message),
            next,
        )
    } else {
        let message = format!("waiting for the hub to issue the token of ServiceAccount {account}");
        (
            Condition::new(reasons::READY, false, reasons::TOKEN_PENDING, &message),
            Next::After(TOKEN_POLL),
        )
    };
    let secret_ref = has_token.then_some(secret_name);
    set_registration_status(&registrations, &reg, secret_ref, condition).await?;
    Ok(next)
}

async fn set_registration_status(
    api: &Api<Registration>,
    reg: &Registration,
    token_secret: Option<String>,
    mut condition: Condition,
) -> Result<(), kube::Error> {
    let mut status = reg.status.clone().unwrap_or_default();
    condition.observed_generation = reg.metadata.generation;
    conditions::set_condition(&mut status.conditions, condition, &now_rfc3339());
    status.token_secret_ref = token_secret.map(|name| edge::LocalObjectReference { name });
    status.service_account_name = if status.token_secret_ref.is_some() {
        edge::registration_account(&reg.name_any())
    } else {
        String::new()
    };
    status.observed_generation = reg.metadata.generation;
    if reg.status.as_ref() == Some(&status) {
        return Ok(());
    }
    api.patch_status(
        &reg.name_any(),
        &PatchParams::default(),
        &Patch::Merge(runtime::status_patch(reg.status.as_ref(), &status)),
    )
    .await?;
    Ok(())
}

/// Ensures the identity of `agent` (joining through `reg`) exists. Returns whether the agent
/// has an identity the registration may mint a first token for; false when the registration
/// does not admit it or the name is taken by a ServiceAccount that is not the agent's.
async fn provision_agent(
    client: &Client,
    ns: &str,
    reg: &Registration,
    agent: &Agent,
    now: jiff::Timestamp,
) -> Result<bool, kube::Error> {
    let name = agent.name_any();
    let account = edge::agent_account(&name);
    let uid = agent.uid().unwrap_or_default();
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let me = owner(agent);
    let label = (edge::AGENT_LABEL, name.as_str());
    match accounts.get_opt(&account).await? {
        // A ServiceAccount of an earlier Agent of the same name: wait for the garbage
        // collector rather than hand its tokens to a newcomer.
        Some(sa) if !owned_by(&sa.metadata, &uid) => return Ok(false),
        Some(_) => {}
        None => {
            if !reg.spec.admits(&name, now) {
                return Ok(false);
            }
            let sa = ServiceAccount {
                metadata: meta(&account, ns, me.clone(), label),
                ..Default::default()
            };
            let sa = create_or_get(&accounts, &sa).await?;
            if !owned_by(&sa.metadata, &uid) {
                return Ok(false);
            }
        }
    }
    let lease = edge::lease_name(&name);
    let rules = vec![
        rule(
            faros_api::EDGE_GROUP,
            &["agents", "agents/status"],
            &["get", "list", "watch", "update", "patch"],
            Some(vec![name.clone()]),
        ),
        rule(
            "coordination.k8s.io",
            &["leases"],
            &["get", "create", "update"],
            Some(vec![lease]),
        ),
        // Create cannot be restricted by name (the name is in the body), so creating the
        // heartbeat Lease the first time needs this.
        rule("coordination.k8s.io", &["leases"], &["create"], None),
        rule("", &["serviceaccounts/token"], &["create"], Some(vec![account.clone()])),
    ];
    let roles: Api<Role> = Api::namespaced(client.clone(), ns);
    ensure_role(&roles, &account, ns, me.clone(), label, rules).await?;
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), ns);
    ensure_binding(&bindings, &account, ns, me, label).await?;
    Ok(true)
}

/// Adds or removes `account` in the token rule of the registration's Role.
async fn update_pending(
    client: &Client,
    ns: &str,
    reg: &Registration,
    account: &str,
    pending: bool,
) -> Result<(), kube::Error> {
    let roles: Api<Role> = Api::namespaced(client.clone(), ns);
    let role_name = edge::registration_account(&reg.name_any());
    let Some(role) = roles.get_opt(&role_name).await? else {
        // Not there yet: the registration's own reconcile computes it from the agents.
        return Ok(());
    };
    let mut names = pending_in(&role);
    let changed = if pending {
        names.insert(account.to_string())
    } else {
        names.remove(account)
    };
    if !changed {
        return Ok(());
    }
    let expired = reg.spec.expired(jiff::Timestamp::now());
    let mut updated = role;
    updated.rules = Some(registration_rules(expired, &names));
    // Replaced with the read resourceVersion: a concurrent change is a conflict, retried.
    roles.replace(&role_name, &PostParams::default(), &updated).await?;
    Ok(())
}

async fn reconcile_agent(agent: Arc<Agent>, client: Client, memo: Memo) -> Result<Next, kube::Error> {
    let Some(reg_name) = agent.labels().get(REGISTRATION_LABEL).cloned() else {
        return Ok(Next::Done);
    };
    let Some(ns) = agent.namespace() else {
        return Ok(Next::Done);
    };
    if agent.metadata.deletion_timestamp.is_some() {
        return Ok(Next::Done);
    }
    let name = agent.name_any();
    let uid = agent.uid().unwrap_or_default();
    let reported = has_reported(&agent);
    let key = (cluster_of(&*agent), ns.clone(), name.clone());
    if memo.lock().unwrap_or_else(|e| e.into_inner()).get(&key) == Some(&(uid.clone(), reported)) {
        return Ok(Next::Done);
    }
    let registrations: Api<Registration> = Api::namespaced(client.clone(), &ns);
    let Some(reg) = registrations.get_opt(&reg_name).await? else {
        // Revoked (or never existed): joined agents keep their identity; nobody new joins.
        memo.lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, (uid, reported));
        return Ok(Next::Done);
    };
    if reg.metadata.deletion_timestamp.is_some() {
        return Ok(Next::Done);
    }
    let account = edge::agent_account(&name);
    if reported {
        // Joined: from now on only the agent's own credential mints its tokens.
        update_pending(&client, &ns, &reg, &account, false).await?;
    } else if provision_agent(&client, &ns, &reg, &agent, jiff::Timestamp::now()).await? {
        update_pending(&client, &ns, &reg, &account, true).await?;
        tracing::info!(cluster = %key.0, namespace = %ns, agent = %name, registration = %reg_name, "agent identity ready");
    } else {
        let now = jiff::Timestamp::now();
        if reg.spec.admits(&name, now) {
            // The name is held by a ServiceAccount of an earlier Agent; look again soon.
            return Ok(Next::After(Duration::from_secs(2)));
        }
        let message = format!("Registration {reg_name} does not admit an agent named {name}");
        let mut status = agent.status.clone().unwrap_or_default();
        let condition = Condition::new(reasons::READY, false, reasons::NOT_ADMITTED, &message);
        if conditions::set_condition(&mut status.conditions, condition, &now_rfc3339()) {
            let agents: Api<Agent> = Api::namespaced(client.clone(), &ns);
            let patch = json!({"status": {"conditions": status.conditions}});
            agents
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await?;
        }
        return Ok(Next::Done);
    }
    memo.lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, (uid, reported));
    Ok(Next::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

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
