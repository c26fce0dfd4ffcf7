use clap::{Parser, Subcommand};

/// jemalloc rather than glibc's allocator: on the heartbeat path of a large fleet, glibc's
/// malloc and free took about a third of the hub's CPU (searching and merging its free
/// lists); with jemalloc the same fleet costs the hub about a third less CPU
/// (docs/benchmarks.md, "Fleet steady state"). It serves `malloc` for the C code linked in
/// too (the crate's `unprefixed_malloc_on_supported_platforms`): SQLite on glibc's malloc
/// beside it had the store's writer thread give memory back and fault it in again after every
/// burst of writes. Its options are compiled in from `.cargo/config.toml`.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
    Controllers(hub_api::controllers::ControllersOptions),
    /// Copy every object of a stopped hub from one storage backend to another.
    Migrate(hub_api::migrate::MigrateOptions),
    /// Back up and restore the embedded store.
    #[command(subcommand)]
    Snapshot(hub_api::snapshot::SnapshotCommand),
    /// Print the shell completion script of hub-api.
    Completion(faros_cli::CompletionArgs),
}

fn main() -> anyhow::Result<()> {
    let cli: Cli = faros_cli::parse(ENV_PREFIX);
    faros_cli::logging::init(cli.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Start(opts) => runtime.block_on(hub_api::start::run(opts)),
        Command::Controllers(opts) => runtime.block_on(hub_api::controllers::run(opts)),
        Command::Snapshot(command) => hub_api::snapshot::run(command),
        Command::Init(opts) => hub_api::init::run(opts),
        Command::Migrate(opts) => runtime.block_on(hub_api::migrate::run(opts)),
        Command::Completion(args) => {
            args.print(faros_cli::command::<Cli>(ENV_PREFIX), "hub-api");
            Ok(())
        }
    }
}
