use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "hub-api",
    version,
    about = "The Faros hub: a Kubernetes-compatible API server for fleets of edge devices"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the hub API.
    Start(hub_api::start::StartOptions),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube=warn,hyper=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Start(opts) => runtime.block_on(hub_api::start::run(opts)),
    }
}
