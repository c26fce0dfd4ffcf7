//! A Registration's own credential: ServiceAccount, Role, RoleBinding and token Secret, and
//! its status.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use faros_api::edge::{self, REGISTRATION_LABEL, REVOKE_FINALIZER, Registration, reasons};
use faros_api::meta::{SA_NAME_ANNOTATION, TOKEN_SECRET_TYPE};
use faros_api::{Condition, conditions};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};

use crate::finalizer;
use crate::runtime::{self, Next};
use faros_api::meta::now_rfc3339;

use super::agent_identity::provision_agent;
use super::objects::{
    AgentIdentity, create_or_get, ensure_binding, ensure_role, has_reported, meta, owned_by, owner, registration_rules,
};
use super::{Apis, RESYNC, TOKEN_POLL, revocation};

/// Reconciles a Registration; when the workspace has not accepted the edge API's permission
/// claims (so the credentials cannot be managed there), says so in its status.
pub(super) async fn reconcile_registration(reg: Arc<Registration>, client: Client) -> Result<Next, kube::Error> {
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

pub(super) async fn manage_registration(reg: Arc<Registration>, client: Client) -> Result<Next, kube::Error> {
    let name = reg.name_any();
    let Some(ns) = reg.namespace() else {
        return Ok(Next::Done);
    };
    let apis = Apis::new(&client, &ns);
    let registrations = &apis.registrations;
    let account = edge::registration_account(&name);
    let secret_name = edge::registration_token_secret(&name);
    let (accounts, secrets, roles, bindings) = (&apis.accounts, &apis.secrets, &apis.roles, &apis.bindings);

    if reg.metadata.deletion_timestamp.is_some() {
        return revocation::revoke(&reg, &apis).await;
    }
    if !finalizer::has(&*reg, REVOKE_FINALIZER) {
        finalizer::add(registrations, &*reg, REVOKE_FINALIZER).await?;
        // The update comes back as an event and is reconciled then.
        return Ok(Next::Done);
    }

    let me = owner(&*reg);
    let label = (REGISTRATION_LABEL, name.as_str());
    let sa = ServiceAccount {
        metadata: meta(&account, &ns, me.clone(), label),
        ..Default::default()
    };
    let sa = create_or_get(accounts, &sa).await?;
    if !owned_by(&sa.metadata, &me.uid) {
        let message = format!("ServiceAccount {account} exists and does not belong to this Registration");
        set_registration_status(
            registrations,
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
    let agents: Api<AgentIdentity> = Api::namespaced(client.clone(), &ns);
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
        roles,
        &account,
        &ns,
        me.clone(),
        label,
        registration_rules(expired, &pending),
    )
    .await?;
    ensure_binding(bindings, &account, &ns, me.clone(), label).await?;

    let mut secret = Secret {
        metadata: meta(&secret_name, &ns, me.clone(), label),
        type_: Some(TOKEN_SECRET_TYPE.into()),
        ..Default::default()
    };
    secret.metadata.annotations = Some([(SA_NAME_ANNOTATION.to_string(), account.clone())].into());
    let secret = create_or_get(secrets, &secret).await?;
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
    set_registration_status(registrations, &reg, secret_ref, condition).await?;
    Ok(next)
}

pub(super) async fn set_registration_status(
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
