//! `hub-api start`: bring up storage, PKI, the API server and (with `--all-in-one`) the
//! controllers, then run until SIGINT/SIGTERM.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::apiserver::{self, Hub};
use crate::auth::Authenticator;
use crate::auth::serviceaccount::ServiceAccounts;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::pki::Pki;
use crate::registry::Catalog;
use faros_controllers::{ControllerConfig, ControllerObserver, TokenSigner};
use faros_storage::{Backend, Cache, EtcdBackend, EtcdOptions, SqliteBackend};

#[derive(Debug, Clone, clap::Args)]
pub struct StartOptions {
    /// Also run the controllers (garbage collector, namespace lifecycle, ...) in this process.
    #[arg(long)]
    pub all_in_one: bool,
    /// Where the database, PKI and admin kubeconfig live.
    #[arg(long, default_value = ".faros")]
    pub data_dir: PathBuf,
    /// Where the CA, the serving certificate and the ServiceAccount signing key live
    /// (default: `<data-dir>/pki`). The replicas of one hub share one, made by `hub-api init`,
    /// so that a credential issued by one is valid on all.
    #[arg(long)]
    pub pki_dir: Option<PathBuf>,
    /// The host name or IP (no port) at which the other replicas of this hub reach this one.
    /// With it, a device's tunnel lands on one replica and the others forward its requests
    /// there. It is added to the serving certificate's names. Default with `--storage etcd`:
    /// the bind address (unless that is 0.0.0.0 or ::); relaying is off on SQLite.
    #[arg(long)]
    pub peer_advertise_address: Option<String>,
    #[command(flatten)]
    pub storage: StorageOptions,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind_address: IpAddr,
    /// Port to serve HTTPS on (0 picks a free port).
    #[arg(long, default_value_t = 6443)]
    pub secure_port: u16,
    /// Extra subject alternative names for the serving certificate (repeatable).
    #[arg(long = "tls-san")]
    pub tls_sans: Vec<String>,
    /// How many recent events the watch cache keeps for watches resuming from a revision
    /// (and for continued pages of lists).
    #[arg(long, default_value_t = 100_000)]
    pub watch_cache_events: usize,
    /// How many bytes those events may keep alive besides the current objects: the objects
    /// writes replaced, deletions' last states (a quantity: 128Mi, 1Gi).
    #[arg(long, default_value = "128Mi", value_parser = parse_bytes)]
    pub watch_cache_bytes: usize,
    /// How old the oldest of those events may be.
    #[arg(long, default_value = "5m", value_parser = faros_machinery::duration::parse)]
    pub watch_cache_age: Duration,
    /// The host clients use to reach the hub, written into kubeconfigs (default: the bind
    /// address, or localhost when binding to all interfaces).
    #[arg(long)]
    pub external_hostname: Option<String>,
    /// How long an agent may go without a heartbeat before the hub marks it Ready=Unknown.
    #[arg(long, default_value = "40s", value_parser = faros_machinery::duration::parse)]
    pub agent_monitor_grace_period: Duration,
    /// How long an agent may be not ready before the scheduler moves its Replicas and
    /// Singleton workloads to other agents (All workloads stay).
    #[arg(long, default_value = "5m", value_parser = faros_machinery::duration::parse)]
    pub workload_eviction_timeout: Duration,
    /// How long after SIGTERM the hub keeps serving while `/readyz` fails, so that load
    /// balancers stop sending it requests before it stops listening.
    #[arg(long, default_value = "0s", value_parser = faros_machinery::duration::parse)]
    pub shutdown_delay_duration: Duration,
    /// How many reading requests (GET, LIST) the hub serves at once; beyond it they are
    /// answered 429 with `Retry-After` (0: no cap). Watches, streams to devices and
    /// `system:masters` are not counted.
    #[arg(long, default_value_t = 400)]
    pub max_requests_inflight: usize,
    /// How many writing requests (POST, PUT, PATCH, DELETE) the hub serves at once; beyond it
    /// they are answered 429 with `Retry-After` (0: no cap).
    #[arg(long, default_value_t = 200)]
    pub max_mutating_requests_inflight: usize,
    #[command(flatten)]
    pub auth: crate::auth::AuthOptions,
    #[command(flatten)]
    pub leader_election: crate::leader_flags::LeaderElectionOptions,
}

/// Where objects are stored.
#[derive(Debug, Clone, clap::Args)]
pub struct StorageOptions {
    /// The storage backend: `sqlite` (a database in --data-dir, for one hub process) or `etcd`
    /// (an etcd v3 cluster, which several hub processes may share).
    #[arg(long = "storage", value_enum, default_value_t = StorageKind::Sqlite)]
    pub kind: StorageKind,
    /// etcd client URLs, comma-separated (with --storage etcd).
    #[arg(long, value_delimiter = ',')]
    pub etcd_servers: Vec<String>,
    #[command(flatten)]
    pub etcd: EtcdFlags,
    /// How often etcd's history is compacted, keeping one interval of it (0 never compacts).
    #[arg(long, default_value = "5m", value_parser = faros_machinery::duration::parse)]
    pub etcd_compaction_interval: Duration,
}

/// How the hub authenticates to etcd and where its keys live there (`start` and `migrate`).
#[derive(Debug, Clone, clap::Args)]
pub struct EtcdFlags {
    /// CA bundle that signed the etcd members' serving certificates.
    #[arg(long)]
    pub etcd_cafile: Option<PathBuf>,
    /// Client certificate for etcd.
    #[arg(long)]
    pub etcd_certfile: Option<PathBuf>,
    /// Key of the client certificate for etcd.
    #[arg(long)]
    pub etcd_keyfile: Option<PathBuf>,
    /// Every key the hub stores in etcd is under this prefix.
    #[arg(long, default_value = "/faros")]
    pub etcd_prefix: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StorageKind {
    Sqlite,
    Etcd,
}

/// How often the SQLite files are compacted.
const SQLITE_COMPACTION_INTERVAL: Duration = Duration::from_secs(300);

/// The embedded store's file in the data directory.
pub const DATABASE_FILE: &str = "hub.db";
/// How long after start the hub waits for devices to reconnect their tunnels before it
/// marks the Agents still saying `Connected=True` as disconnected.
const CONNECTED_GRACE: Duration = Duration::from_secs(15);
/// Who the in-process controllers are to the hub's authorizer and audit log.
const CONTROLLERS_USER: &str = "system:faros-controllers";

/// How long the in-process controllers get to stop (and give up their Lease) at shutdown.
const CONTROLLERS_STOP_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn run(opts: StartOptions) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    std::fs::create_dir_all(&opts.data_dir).with_context(|| format!("creating {}", opts.data_dir.display()))?;
    let mut sans = opts.tls_sans.clone();
    sans.push(opts.bind_address.to_string());
    if let Some(host) = &opts.external_hostname {
        sans.push(host.clone());
    }
    // On etcd there may be several replicas: relay between them by default, reached at the
    // bind address unless told otherwise.
    let peer_host = opts.peer_advertise_address.clone().or_else(|| {
        (matches!(opts.storage.kind, StorageKind::Etcd) && !opts.bind_address.is_unspecified())
            .then(|| opts.bind_address.to_string())
    });
    if let Some(host) = &peer_host {
        sans.push(host.clone());
    }
    let pki_dir = opts.pki_dir.clone().unwrap_or_else(|| opts.data_dir.join("pki"));
    let mut pki = Pki::load_or_create_in(&pki_dir, &sans).context("preparing certificates")?;
    // What clients must trust: the hub CA, plus the chain of a --tls-cert-file.
    let trust_pem = crate::auth::apply_serving_cert(&mut pki, &opts.auth)?;

    let (backend, compaction_interval) = open_storage(&opts.storage, &opts.data_dir).await?;
    let metrics = Arc::new(Metrics::new());
    backend.observe_commits(metrics.clone());
    let health = Arc::new(Health::new(Arc::downgrade(&backend), opts.all_in_one));
    let window = faros_storage::Window {
        events: opts.watch_cache_events,
        bytes: opts.watch_cache_bytes,
        age: opts.watch_cache_age,
    };
    let cache = Cache::start(backend, window)
        .await
        .map_err(|e| anyhow::anyhow!("loading storage: {e}"))?;

    let listener = TcpListener::bind(SocketAddr::new(opts.bind_address, opts.secure_port))
        .await
        .with_context(|| format!("binding {}:{}", opts.bind_address, opts.secure_port))?;
    let port = listener.local_addr()?.port();
    let host = opts.external_hostname.clone().unwrap_or_else(|| {
        if opts.bind_address.is_unspecified() {
            "localhost".to_string()
        } else {
            opts.bind_address.to_string()
        }
    });
    let host_port = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let server_url = format!("https://{host_port}");

    let (cert, key) =
        pki.issue_client_cert("faros-admin", &["system:masters"], Duration::from_secs(365 * 24 * 3600))?;
    let admin_kubeconfig = opts.data_dir.join("admin.kubeconfig");
    faros_kubeconfig::write(
        &admin_kubeconfig,
        &faros_kubeconfig::all_named(
            "root",
            &server_url,
            &trust_pem,
            faros_kubeconfig::Credential::ClientCert {
                cert_pem: &cert,
                key_pem: &key,
            },
            None,
        ),
    )?;

    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    // The controllers stop before everything else, while the hub still serves them.
    let (stop_controllers, _) = tokio::sync::watch::channel(false);
    let hub = Arc::new(Hub {
        cache: cache.clone(),
        catalog: Catalog::new(cache.clone()),
        authenticator: Authenticator::from_options(&opts.auth, &pki_dir, &server_url, &trust_pem)?,
        authorizer: crate::auth::Authorizer::new(cache.clone()),
        shutdown: shutdown_rx.clone(),
        external_address: host_port.clone(),
        external_url: server_url.clone(),
        audit: match &opts.auth.audit_log_path {
            Some(path) => Some(crate::auth::audit::AuditLog::open(path)?),
            None => None,
        },
        tunnels: crate::tunnel::Tunnels::new(),
        relay: match &peer_host {
            Some(host) => {
                let address = if host.contains(':') {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                };
                let relay = apiserver::relay::Relay::new(apiserver::relay::Relay::new_replica_name(), address, &pki)
                    .context("preparing the relay between replicas")?;
                Some(Arc::new(relay))
            }
            None => None,
        },
        health: health.clone(),
        metrics: metrics.clone(),
        paths: Default::default(),
        inflight: apiserver::inflight::InflightLimits::new(
            opts.max_requests_inflight,
            opts.max_mutating_requests_inflight,
        ),
    });
    if let Some(relay) = &hub.relay {
        tracing::info!(replica = %relay.replica, "relaying device requests between replicas");
        tokio::spawn(relay.clone().run(hub.clone()));
    }
    tokio::spawn({
        let hub = hub.clone();
        async move { hub.catalog.forget_deleted(hub.shutdown.clone()).await }
    });
    tokio::spawn({
        let hub = hub.clone();
        async move { hub.authenticator.keep_keys_fresh(hub.shutdown.clone()).await }
    });
    let client_ca = match &opts.auth.client_ca_file {
        Some(path) => Some(std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?),
        None => None,
    };
    let tls = Arc::new(pki.server_config(client_ca.as_deref())?);
    let router = apiserver::router(hub.clone());
    // Serving begins before the start-up objects exist, so that probes see the hub start;
    // other clients are asked to come back until they do.
    let server = tokio::spawn(crate::server::serve(
        listener,
        tls,
        router,
        hub.metrics.connections.clone(),
        {
            let mut rx = shutdown_rx.clone();
            async move { crate::stopped(&mut rx).await }
        },
    ));
    crate::bootstrap::run(&hub, &trust_pem).await?;
    health.bootstrap_done();
    // Devices reconnect within a few seconds of a restart; only then is a stale
    // `Connected=True` corrected.
    tokio::spawn(apiserver::connected::run(hub.clone(), CONNECTED_GRACE));
    tracing::info!(
        url = %server_url,
        kubeconfig = %admin_kubeconfig.display(),
        ready_in_ms = started.elapsed().as_millis() as u64,
        "hub-api is serving"
    );
    println!(
        "hub-api serving on {server_url}; admin kubeconfig: {}",
        admin_kubeconfig.display()
    );

    let controllers = if opts.all_in_one {
        // Through the router in this process: the controllers' requests are authenticated,
        // authorized, admitted and counted as any client's, without TLS, a socket and HTTP
        // framing in between (their watches carry every heartbeat of the fleet).
        let client = crate::apiserver::in_process_client(hub.clone(), CONTROLLERS_USER, &["system:masters"]);
        let controllers = ControllerConfig {
            token_signer: hub
                .authenticator
                .service_accounts()
                .map(|signer| signer.clone() as Arc<dyn TokenSigner>),
            agent_grace_period: opts.agent_monitor_grace_period,
            eviction_timeout: opts.workload_eviction_timeout,
            observer: Some(Arc::new(ControllerReports {
                metrics: metrics.clone(),
                health: health.clone(),
            })),
            // The garbage collector reads metadata alone: the fleet's renewals pass it by.
            metadata_client: Some(crate::apiserver::in_process_metadata_client(
                hub.clone(),
                CONTROLLERS_USER,
                &["system:masters"],
            )),
        };
        // A replica that relays is known to its peers by its name (its own Lease in
        // `kube-system` carries its address): the controllers' Lease then says which
        // replica leads.
        let identity = match &hub.relay {
            Some(relay) => faros_controllers::LeaderElection::identity_for(&relay.replica),
            None => faros_controllers::LeaderElection::default_identity(),
        };
        let election = opts.leader_election.election(identity)?;
        Some(tokio::spawn(faros_controllers::run_all(
            client,
            controllers,
            election,
            stop_controllers.subscribe(),
        )))
    } else {
        None
    };

    // Compaction keeps the store from growing without bound.
    let compactor = compaction_interval.map(|interval| {
        let cache = cache.clone();
        let mut stop = shutdown_rx.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.tick().await;
            loop {
                tokio::select! {
                    _ = ticker.tick() => {
                        if let Err(e) = cache.compact().await {
                            tracing::warn!(error = %e, "compaction failed");
                        }
                    }
                    _ = crate::stopped(&mut stop) => break,
                }
            }
        })
    });

    wait_for_signal().await;
    tracing::info!("shutting down");
    let shutdown_began = tokio::time::Instant::now();
    health.shutdown_begins();
    // Controllers go first, while the hub still serves them: they give their Lease up and
    // stop with nothing in flight. Stopped after the hub, they would spend their last
    // moments failing to reach it.
    if let Some(mut controllers) = controllers {
        let _ = stop_controllers.send(true);
        if tokio::time::timeout(CONTROLLERS_STOP_TIMEOUT, &mut controllers)
            .await
            .is_err()
        {
            controllers.abort();
            let _ = controllers.await;
        }
    }
    tokio::time::sleep_until(shutdown_began + opts.shutdown_delay_duration).await;
    // The listener stops accepting; requests in flight finish; watches and device tunnels
    // end.
    let _ = shutdown_tx.send(true);
    hub.tunnels.shut_down();
    if let Some(compactor) = compactor {
        compactor.abort();
    }
    let _ = server.await;
    drop(hub);
    // The last reference to the backend goes with the cache; its writer commits what is
    // queued and checkpoints before the process exits.
    drop(cache);
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(())
}

/// The backend `options` choose, and how often to compact it (None: never).
pub(crate) async fn open_storage(
    options: &StorageOptions,
    data_dir: &std::path::Path,
) -> anyhow::Result<(Arc<dyn Backend>, Option<Duration>)> {
    let etcd_flags_given = !options.etcd_servers.is_empty()
        || options.etcd.etcd_cafile.is_some()
        || options.etcd.etcd_certfile.is_some()
        || options.etcd.etcd_keyfile.is_some();
    match options.kind {
        StorageKind::Sqlite => {
            anyhow::ensure!(!etcd_flags_given, "the --etcd-* flags need --storage etcd");
            let backend = SqliteBackend::open(&data_dir.join(DATABASE_FILE)).map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok((Arc::new(backend), Some(SQLITE_COMPACTION_INTERVAL)))
        }
        StorageKind::Etcd => {
            anyhow::ensure!(
                !options.etcd_servers.is_empty(),
                "--storage etcd needs --etcd-servers (the client URLs of the etcd members)"
            );
            let etcd = EtcdOptions {
                ca_file: options.etcd.etcd_cafile.clone(),
                cert_file: options.etcd.etcd_certfile.clone(),
                key_file: options.etcd.etcd_keyfile.clone(),
                prefix: options.etcd.etcd_prefix.clone(),
                ..EtcdOptions::new(options.etcd_servers.clone())
            };
            let backend = EtcdBackend::connect(etcd)
                .await
                .map_err(|e| anyhow::anyhow!("opening etcd storage: {e}"))?;
            tracing::info!(servers = %options.etcd_servers.join(","), prefix = %options.etcd.etcd_prefix, "storage: etcd");
            let interval = Some(options.etcd_compaction_interval).filter(|i| !i.is_zero());
            Ok((Arc::new(backend), interval))
        }
    }
}

/// The in-process controllers report to the hub's metrics and health checks.
struct ControllerReports {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

impl ControllerObserver for ControllerReports {
    fn started(&self) {
        self.health.controllers_started();
    }

    fn running(&self, running: bool) {
        self.metrics.controllers.running(running);
    }

    fn queue_depth(&self, controller: &'static str, depth: usize) {
        self.metrics.controllers.queue_depth(controller, depth);
    }

    fn reconciled(&self, controller: &'static str, took: Duration, failed: bool) {
        self.metrics.controllers.reconciled(controller, took, failed);
    }
}

/// The in-process controllers fill token Secrets with this hub's own signing key.
impl TokenSigner for ServiceAccounts {
    fn issue_legacy(
        &self,
        cluster: &str,
        namespace: &str,
        account: (&str, &str),
        secret: (&str, &str),
    ) -> anyhow::Result<String> {
        ServiceAccounts::issue_legacy(self, cluster, namespace, account, secret)
    }

    fn ca_pem(&self) -> &str {
        ServiceAccounts::ca_pem(self)
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// A size in bytes written as a Kubernetes quantity (`64Mi`, `1G`, `500000`).
fn parse_bytes(s: &str) -> Result<usize, String> {
    faros_api::workloads::Quantity(s.to_string())
        .value()
        .filter(|v| *v > 0)
        .and_then(|v| usize::try_from(v).ok())
        .ok_or_else(|| format!("{s:?} is not a size such as 64Mi, 1Gi or 100000000"))
}
