use clap::{Parser, Subcommand};

/// Every flag `--some-flag` may also be set as `FAROS_HUB_SOME_FLAG`, or as `some-flag:` in
/// the YAML file of `--config` (flags win over the environment, which wins over the file).
const ENV_PREFIX: &str = "FAROS_HUB_";

#[derive(Parser)]
#[command(
    name = "hub-api",
    version = faros_cli::build::VERSION_LINE,
    about = "The Faros hub: a Kubernetes-compatible API server for fleets of edge devices"
)]
struct Cli {
    /// How log lines are written to stderr: `text`, or `json` (one object per line).
    #[arg(long, global = true, value_enum, default_value_t)]
    log_format: faros_cli::logging::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once at start-up
enum Command {
    /// Serve the hub API.
    Start(hub_api::start::StartOptions),
    /// Create the identity (CA, serving certificate, ServiceAccount key) replicas share.
    Init(hub_api::init::InitOptions),
    /// Run the controllers out of process, against a hub reached through a kubeconfig.
    Controllers(ControllersOptions),
    /// Copy every object of a stopped hub from one storage backend to another.
    Migrate(hub_api::migrate::MigrateOptions),
    /// Back up and restore the embedded store.
    #[command(subcommand)]
    Snapshot(hub_api::snapshot::SnapshotCommand),
    /// Print the shell completion script of hub-api.
    Completion(faros_cli::CompletionArgs),
}

#[derive(clap::Args)]
struct ControllersOptions {
    /// Kubeconfig of a privileged (system:masters) user of the hub (default: $KUBECONFIG).
    #[arg(long)]
    kubeconfig: Option<std::path::PathBuf>,
    /// Context to use (default: the current context).
    #[arg(long)]
    context: Option<String>,
    /// How long an agent may go without a heartbeat before it is marked Ready=Unknown.
    #[arg(long, default_value = "40s", value_parser = faros_machinery::duration::parse)]
    agent_monitor_grace_period: std::time::Duration,
    /// How long an agent may be not ready before the scheduler moves its Replicas and
    /// Singleton workloads to other agents (All workloads stay).
    #[arg(long, default_value = "5m", value_parser = faros_machinery::duration::parse)]
    workload_eviction_timeout: std::time::Duration,
    #[command(flatten)]
    leader_election: hub_api::leader_flags::LeaderElectionOptions,
}

/// `hub-api controllers`: the same controllers as `start --all-in-one`, over the network.
async fn run_controllers(opts: ControllersOptions) -> anyhow::Result<()> {
    use anyhow::Context;
    let path = opts
        .kubeconfig
        .clone()
        .or_else(|| std::env::var_os("KUBECONFIG").map(Into::into))
        .context("--kubeconfig (or KUBECONFIG) must name the kubeconfig of a privileged user of the hub")?;
    let kubeconfig =
        kube::config::Kubeconfig::read_from(&path).with_context(|| format!("reading {}", path.display()))?;
    let options = kube::config::KubeConfigOptions {
        context: opts.context.clone(),
        ..Default::default()
    };
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .context("loading the kubeconfig")?;
    // The controllers address workspaces themselves (`/clusters/<path>`): keep only the host.
    let base = format!(
        "{}://{}",
        config.cluster_url.scheme_str().unwrap_or("https"),
        config.cluster_url.authority().map(|a| a.as_str()).unwrap_or_default()
    );
    config.cluster_url = base.parse().context("the kubeconfig's server URL")?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    // This process has no signing key: token Secrets are filled by a hub that has one.
    let controllers = faros_controllers::ControllerConfig {
        agent_grace_period: opts.agent_monitor_grace_period,
        eviction_timeout: opts.workload_eviction_timeout,
        ..Default::default()
    };
    let election = opts
        .leader_election
        .election(faros_controllers::LeaderElection::default_identity())?;
    let controllers = tokio::spawn(faros_controllers::run_all(config, controllers, election, stopped));
    tracing::info!(server = %base, "controllers running");
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    let _ = stop.send(true);
    let _ = controllers.await;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli: Cli = faros_cli::parse(ENV_PREFIX);
    faros_cli::logging::init(cli.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Start(opts) => runtime.block_on(hub_api::start::run(opts)),
        Command::Controllers(opts) => runtime.block_on(run_controllers(opts)),
        Command::Snapshot(command) => hub_api::snapshot::run(command),
        Command::Init(opts) => hub_api::init::run(opts),
        Command::Migrate(opts) => runtime.block_on(hub_api::migrate::run(opts)),
        Command::Completion(args) => {
            args.print(faros_cli::command::<Cli>(ENV_PREFIX), "hub-api");
            Ok(())
        }
    }
}
