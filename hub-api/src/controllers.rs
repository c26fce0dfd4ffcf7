//! `hub-api controllers`: the controllers out of process, against a hub reached through a
//! kubeconfig. With `--metrics-bind-address` they serve their own `/metrics` (the metrics the
//! hub exports for its in-process controllers, under the same names) and health checks, as
//! kube-controller-manager serves its own beside kube-apiserver's.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::extract::{Request, State};
use axum::response::Response;
use http::{Method, StatusCode};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::apiserver::response;
use crate::health::{self, Endpoint};
use crate::metrics::ControllerMetrics;
use faros_controllers::{ControllerConfig, ControllerObserver, LeaderElection};

#[derive(Debug, Clone, clap::Args)]
pub struct ControllersOptions {
    /// Kubeconfig of a privileged (system:masters) user of the hub (default: $KUBECONFIG).
    #[arg(long)]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// Context to use (default: the current context).
    #[arg(long)]
    pub context: Option<String>,
    /// How long an agent may go without a heartbeat before it is marked Ready=Unknown.
    #[arg(long, default_value = "40s", value_parser = faros_machinery::duration::parse)]
    pub agent_monitor_grace_period: Duration,
    /// How long an agent may be not ready before the scheduler moves its Replicas and
    /// Singleton workloads to other agents (All workloads stay).
    #[arg(long, default_value = "5m", value_parser = faros_machinery::duration::parse)]
    pub workload_eviction_timeout: Duration,
    /// Where to serve `/metrics` (Prometheus text) and `/healthz`, `/livez`, `/readyz`, over
    /// plain HTTP to anyone who connects: `HOST:PORT`, `:PORT` for every interface, or `0` for
    /// nowhere. Off by default, as in the controller-runtime managers kubebuilder generates,
    /// whose flag of this name also defaults to `0`: with neither TLS nor authentication in
    /// front of it, which interface may expose it (the loopback, a pod's own address) is the
    /// operator's call.
    #[arg(long, default_value = "0", value_parser = BindAddress::parse)]
    pub metrics_bind_address: BindAddress,
    #[command(flatten)]
    pub leader_election: crate::leader_flags::LeaderElectionOptions,
}

/// `--metrics-bind-address`: an address, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindAddress(Option<SocketAddr>);

impl BindAddress {
    /// `0` (off), `:PORT` (every IPv4 interface, as Go's listeners read it) or `HOST:PORT`
    /// with an IP address for the host.
    fn parse(text: &str) -> Result<BindAddress, String> {
        if text == "0" {
            return Ok(BindAddress(None));
        }
        let full = match text.strip_prefix(':') {
            Some(port) => format!("0.0.0.0:{port}"),
            None => text.to_string(),
        };
        full.parse()
            .map(|address| BindAddress(Some(address)))
            .map_err(|_| format!("{text:?} is not `0`, `:PORT` or `IP:PORT`"))
    }
}

/// Runs the same controllers as `start --all-in-one`, over the network, until SIGINT or
/// SIGTERM.
pub async fn run(opts: ControllersOptions) -> anyhow::Result<()> {
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
    let election = opts.leader_election.election(LeaderElection::default_identity())?;
    let reports = Arc::new(Reports::new(election.as_ref().map(|e| e.lease_duration)));
    // Bound before the controllers start, so that an address in use fails at once.
    let listener = match opts.metrics_bind_address.0 {
        Some(address) => Some(
            TcpListener::bind(address)
                .await
                .with_context(|| format!("--metrics-bind-address {address}"))?,
        ),
        None => None,
    };
    // This process has no signing key: token Secrets are filled by a hub that has one.
    let controllers = ControllerConfig {
        agent_grace_period: opts.agent_monitor_grace_period,
        eviction_timeout: opts.workload_eviction_timeout,
        observer: Some(reports.clone()),
        ..Default::default()
    };
    let (stop, stopped) = watch::channel(false);
    let client = kube::Client::try_from(config).context("building the client from the kubeconfig")?;
    let controllers = tokio::spawn(faros_controllers::run_all(client, controllers, election, stopped));
    tracing::info!(server = %base, "controllers running");
    let (stop_serving, serving_stopped) = watch::channel(false);
    let server = match listener {
        Some(listener) => {
            tracing::info!(address = %listener.local_addr()?, "serving metrics and health checks over HTTP");
            Some(tokio::spawn(serve(listener, reports.clone(), serving_stopped)))
        }
        None => None,
    };
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    // Not ready from now on; the endpoints answer until the controllers have stopped (and
    // given their Lease up).
    reports.shutting_down.store(true, Ordering::Release);
    let _ = stop.send(true);
    let _ = controllers.await;
    let _ = stop_serving.send(true);
    if let Some(server) = server {
        let _ = server.await;
    }
    Ok(())
}

/// What the controllers report, kept for `/metrics` and the health checks.
struct Reports {
    registry: Registry,
    metrics: ControllerMetrics,
    /// The controllers' loop began (they run, or wait for the lead).
    started: AtomicBool,
    /// With leader election: how long the Lease lasts without renewal.
    lease_duration: Option<Duration>,
    lease: Mutex<Lease>,
    shutting_down: AtomicBool,
}

/// This process's part in the election, as the controllers reported it.
#[derive(Default)]
struct Lease {
    /// The controllers run (this process leads).
    running: bool,
    /// When this process last wrote the Lease as its holder.
    renewed: Option<Instant>,
}

impl Reports {
    fn new(lease_duration: Option<Duration>) -> Reports {
        let mut registry = Registry::default();
        let metrics = ControllerMetrics::register(&mut registry);
        Reports {
            registry,
            metrics,
            started: AtomicBool::new(false),
            lease_duration,
            lease: Mutex::new(Lease::default()),
            shutting_down: AtomicBool::new(false),
        }
    }

    fn lease(&self) -> std::sync::MutexGuard<'_, Lease> {
        self.lease.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fails while the controllers run on a Lease this process has not renewed for a whole
    /// lease duration: another process may have taken it and run its own (a renewal that
    /// hangs, say). Like kube-controller-manager's `leaderElection` check, it passes while
    /// this process waits for the lead.
    fn lease_check(&self, now: Instant) -> Result<(), String> {
        let Some(duration) = self.lease_duration else {
            return Ok(());
        };
        let lease = self.lease();
        match lease.renewed {
            Some(renewed) if lease.running && now.saturating_duration_since(renewed) > duration => Err(format!(
                "the controllers run but their Lease was last renewed {:?} ago, longer than its duration {duration:?}",
                now.saturating_duration_since(renewed)
            )),
            _ => Ok(()),
        }
    }
}

impl ControllerObserver for Reports {
    fn started(&self) {
        self.started.store(true, Ordering::Release);
    }

    fn running(&self, running: bool) {
        self.lease().running = running;
        self.metrics.running(running);
    }

    fn queue_depth(&self, controller: &'static str, depth: usize) {
        self.metrics.queue_depth(controller, depth);
    }

    fn reconciled(&self, controller: &'static str, took: Duration, failed: bool) {
        self.metrics.reconciled(controller, took, failed);
    }

    fn lease_renewed(&self, at: Instant) {
        self.lease().renewed = Some(at);
    }
}

/// The checks of `hub-api controllers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ControllersCheck {
    Ping,
    /// The controllers' loop began: they could make a client.
    ControllersStarted,
    /// See [`Reports::lease_check`].
    LeaderElection,
    /// Shutdown has not begun.
    Shutdown,
}

impl ControllersCheck {
    fn of(endpoint: Endpoint, reports: &Reports) -> Vec<ControllersCheck> {
        let mut checks = vec![ControllersCheck::Ping];
        if endpoint != Endpoint::Livez {
            checks.push(ControllersCheck::ControllersStarted);
        }
        if reports.lease_duration.is_some() {
            checks.push(ControllersCheck::LeaderElection);
        }
        if endpoint == Endpoint::Readyz {
            checks.push(ControllersCheck::Shutdown);
        }
        checks
    }
}

impl health::Check for ControllersCheck {
    type Subject = Reports;

    fn name(self) -> &'static str {
        match self {
            ControllersCheck::Ping => "ping",
            ControllersCheck::ControllersStarted => "controllers-started",
            ControllersCheck::LeaderElection => "leader-election",
            ControllersCheck::Shutdown => "shutdown",
        }
    }

    async fn run(self, reports: &Reports) -> Result<(), String> {
        match self {
            ControllersCheck::Ping => Ok(()),
            ControllersCheck::ControllersStarted => {
                if reports.started.load(Ordering::Acquire) {
                    Ok(())
                } else {
                    Err("the controllers have not started: they cannot make a client yet".into())
                }
            }
            ControllersCheck::LeaderElection => reports.lease_check(Instant::now()),
            ControllersCheck::Shutdown => {
                if reports.shutting_down.load(Ordering::Acquire) {
                    Err("the controllers are shutting down".into())
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// Serves `/metrics` and the health checks on `listener` until `stop` flips.
async fn serve(listener: TcpListener, reports: Arc<Reports>, mut stop: watch::Receiver<bool>) {
    let router = axum::Router::new().fallback(endpoint).with_state(reports);
    let stopped = async move { crate::stopped(&mut stop).await };
    if let Err(e) = axum::serve(listener, router).with_graceful_shutdown(stopped).await {
        tracing::error!(error = %e, "serving metrics and health checks failed");
    }
}

async fn endpoint(State(reports): State<Arc<Reports>>, request: Request) -> Response {
    let path = request.uri().path();
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return response::bytes(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} is not supported on {path}\n", request.method()),
            "text/plain; charset=utf-8",
        );
    }
    if path == "/metrics" {
        return response::bytes(
            StatusCode::OK,
            crate::metrics::text(&reports.registry),
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        );
    }
    match Endpoint::parse(path) {
        Some((endpoint, check)) => {
            let checks = ControllersCheck::of(endpoint, &reports);
            health::response(health::answer(&*reports, endpoint, &checks, check, request.uri().query()).await)
        }
        None => response::bytes(
            StatusCode::NOT_FOUND,
            "404 page not found\n",
            "text/plain; charset=utf-8",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_addresses() {
        assert_eq!(BindAddress::parse("0"), Ok(BindAddress(None)));
        assert_eq!(
            BindAddress::parse(":8080"),
            Ok(BindAddress(Some("0.0.0.0:8080".parse().unwrap())))
        );
        assert_eq!(
            BindAddress::parse("[::1]:8080"),
            Ok(BindAddress(Some("[::1]:8080".parse().unwrap())))
        );
        assert!(BindAddress::parse("localhost:8080").is_err());
        assert!(BindAddress::parse("127.0.0.1").is_err());
    }

    /// The check passes while waiting for the lead and while the Lease is fresh; it fails
    /// once the controllers run on a Lease older than its duration, and passes again when
    /// they stop.
    #[test]
    fn a_leader_that_stopped_renewing_fails_its_check() {
        let reports = Reports::new(Some(Duration::from_secs(15)));
        let start = Instant::now();
        assert!(reports.lease_check(start).is_ok(), "no lead yet");
        reports.lease_renewed(start);
        reports.running(true);
        assert!(reports.lease_check(start + Duration::from_secs(14)).is_ok());
        let stale = reports.lease_check(start + Duration::from_secs(16)).unwrap_err();
        assert!(stale.contains("last renewed 16s ago"), "{stale}");
        reports.running(false);
        assert!(reports.lease_check(start + Duration::from_secs(16)).is_ok(), "stopped");

        let unelected = Reports::new(None);
        unelected.running(true);
        assert!(unelected.lease_check(start + Duration::from_secs(3600)).is_ok());
        assert!(!ControllersCheck::of(Endpoint::Readyz, &unelected).contains(&ControllersCheck::LeaderElection));
    }
}
