//! Faros controllers: everything that reacts to objects. They are ordinary API clients
//! (kube-rs, with their own identity) and never reach into storage, so the same code runs
//! in-process with `--all-in-one` (its requests handed to the hub's router without a
//! network in between) or as a separate `hub-api controllers` (over TLS). This crate depends on `faros-api` and `kube`,
//! never on the server.

mod agent_lifecycle;
mod apibinding;
mod crd_cleanup;
mod errors;
mod finalizer;
mod garbage_collector;
mod leader;
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

pub use leader::{LEASE_NAME, LEASE_NAMESPACE, LEASE_WORKSPACE, LeaderElection};
pub use runtime::AbortOnDrop;

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

/// What the controllers report about their work; the process that runs them decides where
/// it goes (the hub exports it as metrics and health checks).
pub trait ControllerObserver: Send + Sync + 'static {
    /// The controllers' loop began: they run, or wait for the lead.
    fn started(&self);
    /// Whether this process's controllers run now (false while another process leads).
    fn running(&self, running: bool);
    /// How many objects wait in `controller`'s queue, not counting those being reconciled.
    fn queue_depth(&self, controller: &'static str, depth: usize);
    /// One reconcile by `controller` ended after `took`, `failed` when it returned an error.
    fn reconciled(&self, controller: &'static str, took: Duration, failed: bool);
    /// This process wrote the controllers' Lease as its holder (acquired or renewed it) at
    /// `at`, by its own clock.
    fn lease_renewed(&self, at: std::time::Instant) {
        let _ = at;
    }
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
    /// Told what the controllers do (None: nobody listens).
    pub observer: Option<Arc<dyn ControllerObserver>>,
    /// For the controllers that read objects' metadata alone (the garbage collector): a
    /// client whose watches may leave out updates that change nothing in the metadata but
    /// its resourceVersion and managedFields, such as heartbeats. None: they use the
    /// client every controller uses, and see every update.
    pub metadata_client: Option<kube::Client>,
}

impl Default for ControllerConfig {
    fn default() -> ControllerConfig {
        ControllerConfig {
            token_signer: None,
            agent_grace_period: DEFAULT_AGENT_GRACE_PERIOD,
            eviction_timeout: DEFAULT_EVICTION_TIMEOUT,
            observer: None,
            metadata_client: None,
        }
    }
}

/// Runs every controller until `shutdown` flips. With `election`, they run only while this
/// process leads: they stop when it loses the lead and start again when it regains it, and
/// a clean shutdown gives the lead up at once.
pub async fn run_all(
    client: kube::Client,
    controllers: ControllerConfig,
    election: Option<LeaderElection>,
    mut shutdown: watch::Receiver<bool>,
) {
    let observer = controllers.observer.clone();
    let running = |now: bool| {
        if let Some(observer) = &observer {
            observer.running(now);
        }
    };
    if let Some(observer) = &observer {
        observer.started();
    }
    let clusters = runtime::Clusters::new(client, observer.clone());
    let metadata_clusters = match &controllers.metadata_client {
        Some(client) => runtime::Clusters::new(client.clone(), observer.clone()),
        None => clusters.clone(),
    };
    let Some(election) = election else {
        let _running = start(&clusters, &metadata_clusters, &controllers);
        running(true);
        stopped(&mut shutdown).await;
        running(false);
        return;
    };
    let identity = election.identity.clone();
    let mut candidate = leader::Candidate::new(clusters.cluster(LEASE_WORKSPACE), election, observer.clone());
    loop {
        tokio::select! {
            _ = candidate.acquire() => {}
            _ = stopped(&mut shutdown) => {
                // The lead may have been lost only by renewals that failed: the Lease can
                // still name this process.
                candidate.release().await;
                return;
            }
        }
        tracing::info!(%identity, "leading: the controllers start");
        let tasks = start(&clusters, &metadata_clusters, &controllers);
        running(true);
        tokio::select! {
            _ = candidate.hold() => {
                drop(tasks);
                running(false);
                tracing::warn!(%identity, "lost the lead: the controllers stop");
            }
            _ = stopped(&mut shutdown) => {
                drop(tasks);
                running(false);
                candidate.release().await;
                return;
            }
        }
    }
}

/// Resolves once `shutdown` flips (or its sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Starts every controller; they stop when the returned handles are dropped.
fn start(
    clusters: &runtime::Clusters,
    metadata_clusters: &runtime::Clusters,
    controllers: &ControllerConfig,
) -> Vec<runtime::AbortOnDrop<()>> {
    // The edge controllers act as the owner of the edge API's export: they see binding
    // workspaces only through its view, so a workspace's accepted permission claims bound
    // what they may touch there.
    let edge = clusters.through_export(faros_api::edge::SYSTEM_PATH, faros_api::edge::EDGE_EXPORT);
    let tasks = vec![
        tokio::spawn(namespace::run(clusters.clone())),
        tokio::spawn(crd_cleanup::run(clusters.clone())),
        tokio::spawn(garbage_collector::run(metadata_clusters.clone())),
        tokio::spawn(workspace::run(clusters.clone())),
        tokio::spawn(apibinding::run(clusters.clone())),
        tokio::spawn(schema_in_use::run(clusters.clone())),
        tokio::spawn(registration::run(edge.clone())),
        tokio::spawn(agent_lifecycle::run(edge.clone(), controllers.agent_grace_period)),
        tokio::spawn(scheduler::run(edge, controllers.eviction_timeout)),
        tokio::spawn(token::run(clusters.clone(), controllers.token_signer.clone())),
    ];
    tasks.into_iter().map(runtime::AbortOnDrop).collect()
}
