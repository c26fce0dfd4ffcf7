use clap::Parser;

/// kubectl plugin for Faros: `kubectl faros ...`.
#[derive(Parser)]
#[command(name = "kubectl-faros", version)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    anyhow::bail!("no subcommands are available yet")
}
