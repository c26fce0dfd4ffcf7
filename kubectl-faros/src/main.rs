//! `kubectl-faros`: the kubectl plugin for Faros (`kubectl faros ...`).
//!
//! kubectl runs any `kubectl-faros` found on `PATH` for `kubectl faros ...`, passing the
//! remaining arguments and the environment (`KUBECONFIG` included) through.

mod agent;
mod bind;
mod complete;
mod deploy;
mod kubeconfig;
mod output;
mod paths;
mod reach;
mod session;
mod top;
mod workload;
mod workspace;

use clap::{Parser, Subcommand};

use crate::session::{ConfigFlags, Session};

#[derive(Parser, Debug)]
#[command(
    name = "kubectl faros",
    bin_name = "kubectl faros",
    version = faros_cli::build::VERSION_LINE,
    about = "Faros workspaces, API bindings, edge agents and their workloads, from kubectl",
    long_about = "Faros workspaces, API bindings, edge agents and their workloads, from kubectl.\n\n\
        Workspaces are isolated logical clusters on one hub, addressed by paths such as root:acme:plant-7 \
        (kcp's tenancy.kcp.io API). Switching workspaces edits your kubeconfig the way kcp's `kubectl ws` does: \
        the context `workspace.kcp.io/current` points at <hub>/clusters/<path> with your CA and credentials, \
        and `workspace.kcp.io/previous` remembers where you came from.",
    after_help = "Examples:\n  \
        kubectl faros workspace create tenant1 --type faros --enter\n  \
        kubectl faros agent generate agent1 -o agent1.kubeconfig\n  \
        kubectl faros ws tree\n  \
        kubectl faros ws ..\n  \
        kubectl faros bind\n  \
        kubectl faros deploy web --image localhost/demo:1 --port 8080 --selector site=north\n  \
        kubectl faros workload list --agent dev1"
)]
struct Cli {
    #[command(flatten)]
    config: ConfigFlags,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create, enter, list and delete workspaces.
    #[command(visible_alias = "ws", alias = "workspaces")]
    Workspace(workspace::WorkspaceArgs),
    /// Bind an APIExport into the current workspace (default: the Faros edge API).
    Bind(bind::BindArgs),
    /// Register edge agents, list them, revoke registrations, cordon and drain them.
    #[command(alias = "agents")]
    Agent(agent::AgentArgs),
    /// Run a container image or a process on agents: create or update a Workload.
    Deploy(Box<deploy::DeployArgs>),
    /// What runs on which agent: list placements, describe a workload per device.
    #[command(alias = "workloads", visible_alias = "wl")]
    Workload(workload::WorkloadArgs),
    /// The log of a workload on an agent (then as `kubectl logs`: -f, --tail, -c, ...).
    Logs(reach::ReachArgs),
    /// Run a command in a workload on an agent (then as `kubectl exec`: -it, -c, -- CMD).
    Exec(reach::ReachArgs),
    /// Forward local ports to a workload on an agent (then as `kubectl port-forward`).
    #[command(name = "port-forward")]
    PortForward(reach::ReachArgs),
    /// Print the plugin's version and the hub's.
    Version(VersionArgs),
    /// Print the shell completion script of the `kubectl-faros` binary (`kubectl faros` itself
    /// completes through kubectl and `kubectl_complete-faros`).
    Completion(faros_cli::CompletionArgs),
}

#[derive(clap::Args, Debug)]
struct VersionArgs {
    /// Only the plugin's version: do not ask the hub.
    #[arg(long)]
    client: bool,
}

fn main() {
    // kube-rs builds its TLS configuration from rustls' process-wide provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => fail(anyhow::Error::new(e).context("starting the async runtime")),
    };
    let mut args = std::env::args_os();
    if args.nth(1).is_some_and(|first| first == complete::REQUEST) {
        use clap::CommandFactory;
        let words = args.map(|w| w.to_string_lossy().into_owned()).collect();
        runtime.block_on(complete::run(Cli::command(), words));
        return;
    }
    let cli = Cli::parse();
    if let Err(e) = runtime.block_on(run(cli)) {
        fail(e);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Completion(args) => {
            use clap::CommandFactory;
            args.print(Cli::command(), "kubectl-faros");
            return Ok(());
        }
        Command::Version(args) => {
            println!("Client Version: {}", faros_cli::build::VERSION_LINE);
            if args.client {
                return Ok(());
            }
        }
        _ => {}
    }
    let mut session = Session::load(&cli.config).await?;
    match cli.command {
        Command::Workspace(args) => workspace::run(&mut session, args).await,
        Command::Bind(args) => bind::run(&session, args).await,
        Command::Agent(args) => agent::run(&session, args).await,
        Command::Deploy(args) => deploy::run(&session, *args).await,
        Command::Workload(args) => workload::run(&session, args).await,
        Command::Logs(args) => reach::run(&session, &cli.config, reach::Verb::Logs, args).await,
        Command::Exec(args) => reach::run(&session, &cli.config, reach::Verb::Exec, args).await,
        Command::PortForward(args) => reach::run(&session, &cli.config, reach::Verb::PortForward, args).await,
        Command::Version(_) => server_version(&session).await,
        Command::Completion(_) => Ok(()),
    }
}

/// `Server Version: v1.32.0+faros-0.1.0 (commit <sha>, built <date>)`, from the hub's `/version`.
async fn server_version(session: &Session) -> anyhow::Result<()> {
    let info = session
        .client()?
        .apiserver_version()
        .await
        .map_err(|e| session::api_error(e, "reading the hub's version", session.base()))?;
    println!(
        "Server Version: {} (commit {}, built {})",
        info.git_version, info.git_commit, info.build_date
    );
    Ok(())
}

fn fail(e: anyhow::Error) -> ! {
    eprintln!("error: {e:#}");
    std::process::exit(1);
}
