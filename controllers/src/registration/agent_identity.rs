//! The identity of each Agent that joins through a Registration, and the Registration's
//! Role letting it mint its first token.

use std::sync::Arc;
use std::time::Duration;

use faros_api::edge::{self, REGISTRATION_LABEL, Registration, reasons};
use faros_api::{Condition, conditions};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::runtime::{Next, cluster_of};
use faros_api::meta::now_rfc3339;

use super::Memo;
use super::objects::{
    AgentIdentity, create_or_get, ensure_binding, ensure_role, has_reported, meta, owned_by, owner, pending_in,
    registration_rules, rule,
};

/// Ensures the identity of `agent` (joining through `reg`) exists. Returns whether the agent
/// has an identity the registration may mint a first token for; false when the registration
/// does not admit it or the name is taken by a ServiceAccount that is not the agent's.
pub(super) async fn provision_agent(
    client: &Client,
    ns: &str,
    reg: &Registration,
    agent: &AgentIdentity,
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
        // Its own device tunnel, and no other device's: a session carries traffic for the
        // Agent named in its URL.
        rule(
            faros_api::EDGE_GROUP,
            &["agents/tunnel"],
            &["create"],
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
        // Its assignments: RBAC cannot narrow a list to some objects, so the hub lets these
        // through only for the placements of this agent (a list or watch must select
        // `edge.faros.sh/agent=<name>`).
        rule(faros_api::EDGE_GROUP, &["placements"], &["get", "list", "watch"], None),
        rule(
            faros_api::EDGE_GROUP,
            &["placements/status"],
            &["get", "update", "patch"],
            None,
        ),
    ];
    let roles: Api<Role> = Api::namespaced(client.clone(), ns);
    ensure_role(&roles, &account, ns, me.clone(), label, rules).await?;
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), ns);
    ensure_binding(&bindings, &account, ns, me, label).await?;
    Ok(true)
}

/// Adds or removes `account` in the token rule of the registration's Role.
pub(super) async fn update_pending(
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

pub(super) async fn reconcile_agent(
    agent: Arc<AgentIdentity>,
    client: Client,
    memo: Memo,
) -> Result<Next, kube::Error> {
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
            let agents: Api<AgentIdentity> = Api::namespaced(client.clone(), &ns);
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
