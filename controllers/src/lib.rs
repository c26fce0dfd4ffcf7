//! Faros controllers: everything that reacts to objects. They are ordinary API clients
//! (kube-rs over loopback TLS with their own client certificate) and never reach into
//! storage, so the same code runs in-process with `--all-in-one` or as a separate
//! `hub-api controllers`. This crate depends on `faros-api` and `kube`,
//! never on the server.

mod agent_lifecycle;
mod apibinding;
mod crd_cleanup;
mod errors;
mod finalizer;
mod garbage_collector;
mod namespace;
mod policy;
mod registration;
mod runtime;
mod scheduler;
mod schema_in_use;
mod token;
mod workspace;

use std::sync::Arc;

use std::time::Duration;

use tokio::sync::watch;

/// `--agent-monitor-grace-period` default.
pub const DEFAULT_AGENT_GRACE_PERIOD: Duration = Duration::from_secs(40);
/// `--workload-eviction-timeout` default.
pub const DEFAULT_EVICTION_TIMEOUT: Duration = Duration::from_secs(300);

/// Signs the tokens of legacy ServiceAccount token Secrets; the hub holds the key.
pub trait TokenSigner: Send + Sync {
    /// A token for ServiceAccount `account` (name, uid) stored in Secret `secret` (name, uid).
    fn issue_legacy(
        &self,
        cluster: &str,
        namespace: &str,
        account: (&str, &str),
        secret: (&str, &str),
    ) -> anyhow::Result<String>;
    /// The CA bundle a token Secret carries as `ca.crt`.
    fn ca_pem(&self) -> &str;
}

/// What the controllers are given by the process that runs them.
#[derive(Clone)]
pub struct ControllerConfig {
    /// Without a signer (a process without the hub's signing key), token Secrets are not filled.
    pub token_signer: Option<Arc<dyn TokenSigner>>,
    /// How long an agent may go without a heartbeat before it is `Ready=Unknown`.
    pub agent_grace_period: Duration,
    /// How long an agent may be not ready before the scheduler moves its `Replicas` and
    /// `Singleton` placements elsewhere (`All` placements stay).
    pub eviction_timeout: Duration,
}

impl Default for ControllerConfig {
    fn default() -> ControllerConfig {
        ControllerConfig {
            token_signer: None,
            agent_grace_period: DEFAULT_AGENT_GRACE_PERIOD,
            eviction_timeout: DEFAULT_EVICTION_TIMEOUT,
        }
    }
}

/// Runs every controller until `shutdown` flips.
pub async fn run_all(config: kube::Config, controllers: ControllerConfig, mut shutdown: watch::Receiver<bool>) {
    let client = loop {
        match kube::Client::try_from(config.clone()) {
            Ok(client) => break client,
            Err(e) => {
                tracing::error!(error = %e, "controllers cannot build a client; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    let clusters = runtime::Clusters::new(client);
    // The edge controllers act as the owner of the edge API's export: they see binding
    // workspaces only through its view, so a workspace's accepted permission claims bound
    // what they may touch there.
    let edge = clusters.through_export(faros_api::edge::SYSTEM_PATH, faros_api::edge::EDGE_EXPORT);
    let tasks = vec![
        tokio::spawn(namespace::run(clusters.clone())),
        tokio::spawn(crd_cleanup::run(clusters.clone())),
        tokio::spawn(garbage_collector::run(clusters.clone())),
        tokio::spawn(workspace::run(clusters.clone())),
        tokio::spawn(apibinding::run(clusters.clone())),
        tokio::spawn(schema_in_use::run(clusters.clone())),
        tokio::spawn(registration::run(edge.clone())),
        tokio::spawn(agent_lifecycle::run(edge.clone(), controllers.agent_grace_period)),
        tokio::spawn(scheduler::run(edge, controllers.eviction_timeout)),
        tokio::spawn(token::run(clusters.clone(), controllers.token_signer)),
    ];
    // Aborted on shutdown, and also when this task itself is aborted.
    let _tasks: Vec<_> = tasks.into_iter().map(runtime::AbortOnDrop).collect();
    let _ = shutdown.wait_for(|stop| *stop).await;
}
