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

mod agent_identity;
mod credentials;
mod objects;
mod revocation;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faros_api::edge::Registration;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::Client;
use kube::api::Api;

use crate::runtime::{self, Clusters};

use agent_identity::reconcile_agent;
use credentials::reconcile_registration;

/// How often a Registration is looked at even when nothing about it changes (its Role is
/// recomputed from the agents that name it).
const RESYNC: Duration = Duration::from_secs(300);
/// How often a Registration waiting for its token is looked at again.
const TOKEN_POLL: Duration = Duration::from_secs(1);

/// (cluster, namespace, name) of an Agent → (its uid, whether it had reported) when last
/// handled in full.
type Memo = Arc<Mutex<HashMap<(String, String, String), (String, bool)>>>;

/// The APIs a Registration's credentials live in: its own namespace.
struct Apis {
    registrations: Api<Registration>,
    accounts: Api<ServiceAccount>,
    secrets: Api<Secret>,
    roles: Api<Role>,
    bindings: Api<RoleBinding>,
}

impl Apis {
    fn new(client: &Client, ns: &str) -> Apis {
        Apis {
            registrations: Api::namespaced(client.clone(), ns),
            accounts: Api::namespaced(client.clone(), ns),
            secrets: Api::namespaced(client.clone(), ns),
            roles: Api::namespaced(client.clone(), ns),
            bindings: Api::namespaced(client.clone(), ns),
        }
    }
}

pub async fn run(clusters: Clusters) {
    // Agents already handled in the state they are in: status writes (heartbeats) then cost
    // nothing here.
    let memo: Memo = Arc::default();
    let registrations = runtime::run("registration", clusters.clone(), reconcile_registration);
    let agents = runtime::run(
        "agent-identity",
        clusters,
        move |agent: Arc<objects::AgentIdentity>, client: Client| {
            let memo = memo.clone();
            async move { reconcile_agent(agent, client, memo).await }
        },
    );
    futures::future::join(registrations, agents).await;
}
