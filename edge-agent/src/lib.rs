//! The Faros device agent. It joins the hub with a registration kubeconfig, switches to its
//! own rotating credential, reconciles its `Agent` (spec in, status out), heartbeats with a
//! Lease, runs the workloads placed on the device, and survives the hub going away.
//!
//! A library with a thin binary (`main.rs`) so that the integration tests can drive the
//! workload runtimes directly; [`main`] is the whole command line.

mod agent;
mod backoff;
mod client;
mod facts;
mod identity;
mod join;
mod simulate;
/// Public for the tests that drive the agent's tunnel service directly.
pub mod tunnel;
pub mod workloads;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use faros_api::workloads::{Quantity, RUNTIME_PODMAN, RUNTIME_PROCESS, Resources};
use kube::ResourceExt;
use kube::api::Api;
use tokio::sync::{Notify, mpsc, watch};

use workloads::podman::{Podman, PodmanConfig};
use workloads::process::{ProcessConfig, Processes};
use workloads::{AgentRef, AnyRuntime, Layout, Reconciler, ReconcilerOptions, Reporter, RuntimeSet, StatusBoard};

/// Every flag `--some-flag` may also be set as `FAROS_AGENT_SOME_FLAG`, or as `some-flag:` in
/// the YAML file of `--config` (flags win over the environment, which wins over the file).
const ENV_PREFIX: &str = "FAROS_AGENT_";

/// The Faros device agent: reconciles this device's `Agent` object and reports its status.
#[derive(Parser)]
#[command(name = "edge-agent", version = faros_cli::build::VERSION_LINE)]
struct Cli {
    /// Kubeconfig to start with: a registration kubeconfig from `kubectl faros agent
    /// generate` (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, global = true)]
    kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current context).
    #[arg(long, global = true)]
    context: Option<String>,
    /// Namespace of the Agent (default: the kubeconfig context's namespace, else `default`).
    #[arg(long, global = true)]
    namespace: Option<String>,
    /// Name of this device's Agent (default: the host name).
    #[arg(long, global = true)]
    name: Option<String>,
    /// Where the agent keeps its own credential (default: $STATE_DIRECTORY under systemd,
    /// /var/lib/faros-agent as root, else $XDG_STATE_HOME/faros-agent).
    #[arg(long, global = true)]
    state_dir: Option<PathBuf>,
    /// The Registration the kubeconfig's token belongs to (default: asked from the hub).
    #[arg(long)]
    registration: Option<String>,
    /// Lifetime of the agent's own tokens; each is renewed after 80% of it.
    #[arg(long, default_value_t = 86400, value_parser = clap::value_parser!(i64).range(600..=2_592_000))]
    token_expiration_seconds: i64,
    /// Renew the token this often instead of at 80% of its lifetime (for tests).
    #[arg(long, hide = true)]
    rotate_every_seconds: Option<u64>,
    #[command(flatten)]
    workloads: WorkloadArgs,
    /// Device-local ports the hub may reach through `agents/<name>/proxy`, besides those the
    /// device's workloads publish: ports and ranges (`8080,9000-9010`), or `*` for any.
    #[arg(long, value_delimiter = ',', value_name = "PORTS")]
    allow_ports: Vec<String>,
    /// Where `kubectl exec` may run commands: `containers` (the default), `all` (also on the
    /// device itself, for process workloads) or `none`.
    #[arg(long, value_enum, default_value_t = tunnel::ExecPolicy::Containers)]
    allow_exec: tunnel::ExecPolicy,
    /// How log lines are written to stderr: `text`, or `json` (one object per line).
    #[arg(long, global = true, value_enum, default_value_t)]
    log_format: faros_cli::logging::LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

/// How the agent runs workloads and what it reports about the device's room for them.
#[derive(Args)]
struct WorkloadArgs {
    /// The runtimes to offer, of `podman` and `process` (default: every one that works here).
    #[arg(long, value_delimiter = ',', global = true)]
    runtimes: Option<Vec<String>>,
    /// The podman binary.
    #[arg(long, default_value = "podman", global = true)]
    podman: PathBuf,
    /// The cpu the device offers, as a quantity (`4`, `3500m`; default: its cpus).
    #[arg(long, value_parser = parse_cpu, global = true)]
    capacity_cpu: Option<i64>,
    /// The memory the device offers, as a quantity (`8Gi`; default: its memory).
    #[arg(long, value_parser = parse_memory, global = true)]
    capacity_memory: Option<i64>,
    /// The cpu kept for the device itself, not for workloads (`500m`).
    #[arg(long, value_parser = parse_cpu, default_value = "0", global = true)]
    reserved_cpu: i64,
    /// The memory kept for the device itself (`256Mi`).
    #[arg(long, value_parser = parse_memory, default_value = "0", global = true)]
    reserved_memory: i64,
    /// Largest size of a process's stdout and stderr files before they are rotated.
    #[arg(long, default_value_t = 10 * 1024 * 1024, global = true)]
    process_log_max_bytes: u64,
    /// How long a workload may take to stop before it is killed.
    #[arg(long, default_value_t = 10, global = true)]
    stop_grace_seconds: u64,
    /// How often the runtimes are checked for ended workloads, in milliseconds.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(50..=60_000), global = true)]
    poll_interval_ms: u64,
    /// Placement status writes per second at most, all placements together.
    #[arg(long, default_value_t = 10.0, global = true)]
    status_writes_per_second: f64,
}

fn parse_quantity(s: &str, millis: bool) -> Result<i64, String> {
    let q = Quantity(s.to_string());
    let value = if millis { q.millis() } else { q.value() };
    value
        .filter(|v| *v >= 0)
        .ok_or_else(|| format!("{s:?} is not a quantity such as 2, 500m, 512Mi or 4G"))
}

fn parse_cpu(s: &str) -> Result<i64, String> {
    parse_quantity(s, true)
}

fn parse_memory(s: &str) -> Result<i64, String> {
    parse_quantity(s, false)
}

impl WorkloadArgs {
    fn capacity(&self) -> agent::Capacity {
        agent::Capacity {
            cpu_millis: self.capacity_cpu,
            memory_bytes: self.capacity_memory,
        }
    }

    fn reserved(&self) -> Resources {
        Resources {
            cpu_millis: self.reserved_cpu,
            memory_bytes: self.reserved_memory,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run N simulated agents in this process, sharing one client whose requests share HTTP/2
    /// connections (for load tests).
    Simulate {
        /// How many agents.
        #[arg(long, default_value_t = 10)]
        count: usize,
        /// Agent names are PREFIX0, PREFIX1, ...
        #[arg(long, default_value = "sim-")]
        prefix: String,
        /// Heartbeat interval of the agents created.
        #[arg(long)]
        heartbeat_interval_seconds: Option<i64>,
        /// Each agent also keeps its tunnel to the hub open, as a real device does.
        #[arg(long)]
        tunnels: bool,
    },
    /// Enrol this device with the line `kubectl faros agent generate --print-join-command`
    /// prints: check the hub's CA against --ca-cert-hash and the token with the hub, write
    /// the agent's configuration, and (as root under systemd) install and start the service.
    Join(join::JoinArgs),
    /// Undo `join`: stop and remove the service it installed, remove the agent's
    /// configuration, state and credential.
    Reset(join::ResetArgs),
    /// Print the shell completion script of edge-agent.
    Completion(faros_cli::CompletionArgs),
}

/// The `edge-agent` command: parses the command line and runs until stopped.
pub fn main() -> std::process::ExitCode {
    let cli: Cli = faros_cli::parse(ENV_PREFIX);
    if let Some(Command::Completion(args)) = &cli.command {
        args.print(faros_cli::command::<Cli>(ENV_PREFIX), "edge-agent");
        return std::process::ExitCode::SUCCESS;
    }
    faros_cli::logging::init(cli.log_format);
    // One TLS provider for every connection (ring, as the hub uses).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let result = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(async_main(cli)));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One clear line (and its causes) for the journal, not a backtrace.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Flips to true on SIGTERM or SIGINT.
fn shutdown_signal() -> anyhow::Result<watch::Receiver<bool>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("stopping");
        let _ = tx.send(true);
    });
    Ok(rx)
}

/// Whether this process runs as root (its effective user id is 0).
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

fn default_state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("STATE_DIRECTORY") {
        // systemd's StateDirectory= (may list several, colon-separated).
        let first = dir.to_string_lossy().split(':').next().unwrap_or_default().to_string();
        return PathBuf::from(first);
    }
    if running_as_root() {
        return PathBuf::from("/var/lib/faros-agent");
    }
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("faros-agent")
}

/// `--name`, else the host name; an object name either way.
fn agent_name(cli: &Cli) -> anyhow::Result<String> {
    let name = cli
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| facts::hostname().to_lowercase());
    if !valid_name(&name) {
        bail!(
            "{name:?} is not a valid agent name (lowercase letters, digits, '-' and '.'); set --name or FAROS_AGENT_NAME"
        );
    }
    Ok(name)
}

/// Agent names are object names: lowercase DNS subdomains.
fn valid_name(name: &str) -> bool {
    faros_api::meta::is_dns_subdomain(name)
}

async fn async_main(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Some(Command::Join(args)) => {
            let device = join::Device {
                name: agent_name(&cli)?,
                namespace: cli
                    .namespace
                    .clone()
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| "default".into()),
                state_dir: cli.state_dir.clone(),
            };
            return join::join(args, &device).await;
        }
        Some(Command::Reset(args)) => return join::reset(args, cli.state_dir.clone()),
        _ => {}
    }
    let shutdown = shutdown_signal()?;
    let bootstrap = identity::Bootstrap::load(cli.kubeconfig.as_deref(), cli.context.clone()).await?;
    let namespace = cli
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .or_else(|| bootstrap.namespace())
        .unwrap_or_else(|| "default".to_string());
    if let Some(Command::Simulate {
        count,
        prefix,
        heartbeat_interval_seconds,
        tunnels,
    }) = cli.command
    {
        let (client, _) = client::connect(&bootstrap.config)?;
        let opts = simulate::Options {
            count,
            namespace,
            prefix,
            heartbeat_interval_seconds,
            capacity: cli.workloads.capacity(),
            reserved: cli.workloads.reserved(),
            status_writes_per_second: cli.workloads.status_writes_per_second,
            tunnels: tunnels.then(|| bootstrap.config.clone()),
        };
        return simulate::run(client, opts, shutdown).await;
    }

    let name = agent_name(&cli)?;
    let state_dir = cli.state_dir.clone().unwrap_or_else(default_state_dir);
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("creating the state directory {}", state_dir.display()))?;
    tracing::info!(agent = %name, %namespace, server = %bootstrap.config.cluster_url, state = %state_dir.display(), version = facts::AGENT_VERSION, "starting");

    if let Some(unknown) = cli
        .workloads
        .runtimes
        .iter()
        .flatten()
        .find(|r| ![RUNTIME_PODMAN, RUNTIME_PROCESS].contains(&r.as_str()))
    {
        bail!("--runtimes: {unknown:?} is not a runtime; the runtimes are {RUNTIME_PODMAN} and {RUNTIME_PROCESS}");
    }
    // Workloads first: what the device runs is re-adopted and supervised from the state
    // directory before, and whether or not, the hub answers.
    let agent_ref = AgentRef {
        namespace: namespace.clone(),
        name: name.clone(),
    };
    let args = &cli.workloads;
    let layout = Layout::new(&state_dir);
    let wake = Arc::new(Notify::new());
    let poll = Duration::from_millis(args.poll_interval_ms);
    let stop_grace = Duration::from_secs(args.stop_grace_seconds);
    let podman = PodmanConfig {
        binary: args.podman.clone(),
        env: Vec::new(),
        agent: agent_ref.clone(),
        stop_grace,
        poll_interval: poll,
    };
    let candidates = vec![
        AnyRuntime::Podman(Podman::new(podman.clone())),
        AnyRuntime::Process(Processes::new(
            ProcessConfig {
                layout: layout.clone(),
                log_max_bytes: args.process_log_max_bytes,
                stop_grace,
                poll_interval: poll,
            },
            wake.clone(),
        )),
    ];
    let runtimes = RuntimeSet::detect(candidates, args.runtimes.as_deref(), wake).await;
    let runtime_names = runtimes.names();
    tracing::info!(runtimes = ?runtime_names, "workload runtimes");
    let device = facts::collect();
    let address = device.addresses.first().cloned().unwrap_or_else(|| "127.0.0.1".into());
    let board = StatusBoard::new();
    let opts = ReconcilerOptions {
        agent: agent_ref,
        layout: layout.clone(),
        persist: true,
        address,
    };
    let ports = tunnel::PortPolicy::parse(&cli.allow_ports).map_err(|e| anyhow::anyhow!("--allow-ports: {e}"))?;
    let (reconciler, summary) = Reconciler::new(opts, runtimes, board.clone());
    let tunnel_handler = tunnel::Handler {
        ports,
        exec: cli.allow_exec,
        state_dir: state_dir.clone(),
        board: board.clone(),
        summary: summary.clone(),
        podman,
        layout: layout.clone(),
    };
    let (assignments, assigned) = mpsc::channel(64);
    tokio::spawn(reconciler.run(assigned, shutdown.clone()));

    let join = identity::JoinOptions {
        namespace: &namespace,
        name: &name,
        state_dir: &state_dir,
        registration: cli.registration.clone(),
        token_seconds: cli.token_expiration_seconds,
    };
    let mut stop = shutdown.clone();
    let identity = tokio::select! {
        identity = identity::establish(&bootstrap, &join) => identity?,
        _ = stop.wait_for(|s| *s) => return Ok(()),
    };

    let dialer = tunnel::Dialer::new(identity.streams.clone(), &namespace, &name);
    tokio::spawn(tunnel::run(dialer, tunnel_handler, shutdown.clone()));
    let (tx, rx) = watch::channel(None);
    let api: Api<faros_api::edge::Agent> = Api::namespaced(identity.client.clone(), &namespace);
    tokio::spawn(agent::watch_own(api, name.clone(), tx));
    let placements = Api::namespaced(identity.client.clone(), &namespace);
    tokio::spawn(workloads::watch_placements(
        placements.clone(),
        name.clone(),
        assignments,
    ));
    let reporter = Reporter::new(placements, board, args.status_writes_per_second, 4);
    tokio::spawn(reporter.run(shutdown.clone()));
    if let Some(stored) = identity.stored {
        let objects = rx.clone();
        let uid = move || objects.borrow().as_ref().and_then(|a| a.uid());
        let every = cli.rotate_every_seconds.map(std::time::Duration::from_secs);
        tokio::spawn(identity::rotate(identity.client.clone(), stored, uid, every));
    }
    let ctx = agent::AgentContext {
        client: identity.client,
        namespace,
        name,
        facts: agent::Facts::Device,
        applied_file: Some(state_dir.join("applied.json")),
        workloads: Some(agent::WorkloadReport {
            capacity: args.capacity(),
            reserved: args.reserved(),
            runtimes: runtime_names,
            summary,
        }),
    };
    agent::run(ctx, rx, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("agent1"));
        assert!(valid_name("edge-7.plant"));
        assert!(!valid_name("Agent1"));
        assert!(!valid_name("-a"));
        assert!(!valid_name(""));
    }
}
