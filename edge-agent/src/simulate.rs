//! `edge-agent simulate`: N agents in one process, for load tests. Each runs the same agent
//! loop as a real device (its own Lease, status writes, spec handling); they share one
//! client, one connection pool and one watch of the namespace's simulated Agents, so a
//! thousand agents cost a thousand small state machines rather than a thousand connections.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use faros_api::edge::{Agent, AgentSpec};
use faros_api::workloads::{RUNTIME_PODMAN, RUNTIME_PROCESS, Resources};
use futures::StreamExt;
use kube::api::{Api, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use tokio::sync::{Notify, mpsc, watch};

use crate::agent::{self, AgentContext, Capacity, Facts, MachineFacts, WorkloadReport};
use crate::backoff::{Backoff, spread};
use crate::workloads::fake::Fake;
use crate::workloads::{
    AgentRef, AnyRuntime, Layout, Reconciler, ReconcilerOptions, Reporter, RuntimeSet, StatusBoard,
    demultiplex_placements,
};

/// The label marking simulated agents.
pub const SIMULATED_LABEL: &str = "edge.faros.sh/simulated";

pub struct Options {
    pub count: usize,
    pub namespace: String,
    pub prefix: String,
    pub heartbeat_interval_seconds: Option<i64>,
    /// What each simulated device pretends to offer (this machine's facts otherwise).
    pub capacity: Capacity,
    pub reserved: Resources,
    /// Placement status writes per second of each simulated device.
    pub status_writes_per_second: f64,
    /// Each simulated device also keeps a tunnel to the hub, opened with this configuration
    /// (`--tunnels`): what idle sessions cost the hub is then measured, not guessed.
    pub tunnels: Option<kube::Config>,
}

/// Simulated devices whose tunnels share one connection: a real device's connection
/// carries one tunnel, and the hub lets a connection have 200 streams open at once.
const TUNNELS_PER_CONNECTION: usize = 100;

pub async fn run(client: Client, opts: Options, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let api: Api<Agent> = Api::namespaced(client.clone(), &opts.namespace);
    let names: Vec<String> = (0..opts.count).map(|i| format!("{}{i}", opts.prefix)).collect();
    let mut senders = HashMap::new();
    let mut receivers = Vec::new();
    for name in &names {
        let (tx, rx) = watch::channel(None);
        senders.insert(name.clone(), tx);
        receivers.push(rx);
    }
    tokio::spawn(demultiplex(api.clone(), senders));
    let board = StatusBoard::new();
    let machine = MachineFacts::default();
    let mut placement_senders = HashMap::new();
    let mut tasks = Vec::new();
    let mut tunnel_streams = None;
    for (i, (name, rx)) in names.into_iter().zip(receivers).enumerate() {
        let (assignments, assigned) = mpsc::channel(16);
        placement_senders.insert(name.clone(), assignments);
        let workloads = start_reconciler(&opts.namespace, &name, board.clone(), assigned, shutdown.clone()).await;
        if let Some(config) = &opts.tunnels {
            if i % TUNNELS_PER_CONNECTION == 0 {
                tunnel_streams = Some(crate::client::connect(config)?.1);
            }
            let streams = tunnel_streams.clone().expect("made for the first agent of each group");
            let dialer = crate::tunnel::Dialer::new(streams, &opts.namespace, &name);
            let handler = simulated_handler(&opts.namespace, &name, board.clone(), workloads.1.clone());
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                // Spread the dials as the heartbeats are spread.
                tokio::time::sleep(spread(Duration::from_secs(5))).await;
                crate::tunnel::run(dialer, handler, shutdown).await;
            });
        }
        let ctx = AgentContext {
            client: client.clone(),
            namespace: opts.namespace.clone(),
            name: name.clone(),
            facts: Facts::Simulated {
                hostname: name.clone(),
                machine: machine.clone(),
            },
            applied_file: None,
            workloads: Some(WorkloadReport {
                capacity: opts.capacity,
                reserved: opts.reserved,
                runtimes: workloads.0,
                summary: workloads.1,
            }),
        };
        let api = api.clone();
        let shutdown = shutdown.clone();
        let interval = opts.heartbeat_interval_seconds;
        tasks.push(tokio::spawn(async move {
            // Spread the agents' heartbeats over an interval instead of all at once.
            tokio::time::sleep(spread(Duration::from_secs(1))).await;
            // Boxed, so that the task does not keep room for the create while the agent runs.
            Box::pin(ensure_agent(&api, &name, interval)).await;
            if let Err(e) = agent::run(ctx, rx, shutdown).await {
                tracing::error!(agent = %name, error = %e, "simulated agent failed");
            }
        }));
    }
    tokio::spawn(demultiplex_placements(
        Api::namespaced(client.clone(), &opts.namespace),
        placement_senders,
    ));
    // Each simulated device has its own budget, as real ones do.
    let reporter = Reporter::new(
        Api::namespaced(client.clone(), &opts.namespace),
        board,
        opts.status_writes_per_second * opts.count.max(1) as f64,
        16,
    );
    tokio::spawn(reporter.run(shutdown.clone()));
    tracing::info!(count = opts.count, namespace = %opts.namespace, "simulated agents running");
    for task in tasks {
        let _ = task.await;
    }
    Ok(())
}

/// What a simulated device answers on its tunnel: its live state and summary; it runs no
/// commands and opens no ports.
fn simulated_handler(
    namespace: &str,
    name: &str,
    board: StatusBoard,
    summary: watch::Receiver<crate::workloads::WorkloadSummary>,
) -> crate::tunnel::Handler {
    let agent = AgentRef {
        namespace: namespace.to_string(),
        name: name.to_string(),
    };
    crate::tunnel::Handler {
        ports: crate::tunnel::PortPolicy::Listed(Default::default()),
        exec: crate::tunnel::ExecPolicy::None,
        state_dir: "/nonexistent".into(),
        board,
        summary,
        podman: crate::workloads::podman::PodmanConfig {
            binary: "podman".into(),
            env: Vec::new(),
            agent,
            stop_grace: Duration::from_secs(1),
            poll_interval: Duration::from_secs(60),
        },
        layout: Layout::new(Path::new("/nonexistent")),
    }
}

/// The placement reconciler of one simulated agent, over fake runtimes that claim both
/// runtime names; returns the runtimes it offers and its summary.
async fn start_reconciler(
    namespace: &str,
    name: &str,
    board: StatusBoard,
    assigned: mpsc::Receiver<crate::workloads::Assignment>,
    shutdown: watch::Receiver<bool>,
) -> (Vec<String>, watch::Receiver<crate::workloads::WorkloadSummary>) {
    let fakes = vec![
        AnyRuntime::Fake(Fake::new(RUNTIME_PODMAN)),
        AnyRuntime::Fake(Fake::new(RUNTIME_PROCESS)),
    ];
    let runtimes = RuntimeSet::detect(fakes, None, Arc::new(Notify::new())).await;
    let names = runtimes.names();
    let opts = ReconcilerOptions {
        agent: AgentRef {
            namespace: namespace.to_string(),
            name: name.to_string(),
        },
        // Never written to: the fake runtime touches no files and nothing is persisted.
        layout: Layout::new(Path::new("/nonexistent")),
        persist: false,
        address: "127.0.0.1".into(),
    };
    let (reconciler, summary) = Reconciler::new(opts, runtimes, board);
    tokio::spawn(reconciler.run(assigned, shutdown));
    (names, summary)
}

async fn ensure_agent(api: &Api<Agent>, name: &str, interval: Option<i64>) {
    let mut agent = Agent::new(
        name,
        AgentSpec {
            heartbeat_interval_seconds: interval,
            ..Default::default()
        },
    );
    agent
        .labels_mut()
        .insert(SIMULATED_LABEL.to_string(), "true".to_string());
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    loop {
        match api.create(&PostParams::default(), &agent).await {
            Ok(_) => return,
            Err(kube::Error::Api(s)) if s.code == 409 => return,
            Err(e) => {
                tracing::warn!(agent = %name, error = %e, "cannot create the Agent; retrying");
                backoff.wait().await;
            }
        }
    }
}

/// One watch of all simulated Agents, fanned out to each agent's channel.
async fn demultiplex(api: Api<Agent>, senders: HashMap<String, watch::Sender<Option<Agent>>>) {
    let config = watcher::Config::default().labels(&format!("{SIMULATED_LABEL}=true"));
    let mut events = watcher::watcher(api, config).default_backoff().boxed();
    let mut listed = HashSet::new();
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Init) => listed.clear(),
            Ok(Event::InitApply(agent)) => {
                listed.insert(agent.name_any());
                if let Some(tx) = senders.get(&agent.name_any()) {
                    tx.send_replace(Some(agent::without_managed_fields(agent)));
                }
            }
            Ok(Event::InitDone) => {
                for (name, tx) in &senders {
                    if !listed.contains(name) {
                        tx.send_replace(None);
                    }
                }
            }
            Ok(Event::Apply(agent)) => {
                if let Some(tx) = senders.get(&agent.name_any()) {
                    tx.send_replace(Some(agent::without_managed_fields(agent)));
                }
            }
            Ok(Event::Delete(agent)) => {
                if let Some(tx) = senders.get(&agent.name_any()) {
                    tx.send_replace(None);
                }
            }
            Err(e) => tracing::debug!(error = %e, "watch failed; retrying"),
        }
    }
}
