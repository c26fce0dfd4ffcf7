use clap::Parser;

/// The Faros device agent: reconciles this device's `Agent` object and reports its status.
#[derive(Parser)]
#[command(name = "edge-agent", version)]
struct Cli {
    /// Kubeconfig for the agent's workspace.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<std::path::PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    anyhow::bail!(
        "edge-agent cannot run yet: the {}/{} API is not served by the hub",
        faros_api::EDGE_GROUP,
        faros_api::EDGE_VERSION
    )
}
