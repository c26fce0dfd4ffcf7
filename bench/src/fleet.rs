//! A `faros` workspace for the benchmarks' devices, and waiting on what they report.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use faros_api::edge::Agent;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use serde_json::json;

use crate::hub::HubProcess;

/// The binaries a fleet benchmark runs (release builds by default).
#[derive(Debug, Clone, clap::Args)]
pub struct Binaries {
    /// The hub binary.
    #[arg(long, default_value = "target/release/hub-api")]
    pub hub_binary: PathBuf,
    /// The agent binary (`edge-agent`, also its `simulate` subcommand).
    #[arg(long, default_value = "target/release/edge-agent")]
    pub agent_binary: PathBuf,
    /// The plugin binary (`kubectl-faros`).
    #[arg(long, default_value = "target/release/kubectl-faros")]
    pub plugin_binary: PathBuf,
}

/// Creates workspace `root:fleet` of type `faros`, waits until it is Ready, and writes a
/// copy of the admin kubeconfig pointing at it.
pub async fn fleet_workspace(hub: &HubProcess, admin: &kube::Client) -> anyhow::Result<PathBuf> {
    let resource = ApiResource {
        group: "tenancy.kcp.io".into(),
        version: "v1alpha1".into(),
        api_version: "tenancy.kcp.io/v1alpha1".into(),
        kind: "Workspace".into(),
        plural: "workspaces".into(),
    };
    let api: Api<DynamicObject> = Api::all_with(admin.clone(), &resource);
    let ws: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace",
        "metadata": {"name": "fleet"}, "spec": {"type": {"name": "faros"}},
    }))?;
    api.create(&PostParams::default(), &ws).await?;
    wait_for("the fleet workspace Ready", Duration::from_secs(60), || async {
        Ok(api.get("fleet").await?.data["status"]["phase"] == "Ready")
    })
    .await?;
    let mut kubeconfig = kube::config::Kubeconfig::read_from(hub.kubeconfig())?;
    for cluster in kubeconfig.clusters.iter_mut().filter_map(|c| c.cluster.as_mut()) {
        let server = cluster.server.clone().unwrap_or_default();
        cluster.server = Some(format!("{}/clusters/root:fleet", server.trim_end_matches('/')));
    }
    let path = hub.dir.join("fleet.kubeconfig");
    faros_kubeconfig::write(&path, &kubeconfig)?;
    Ok(path)
}

/// Starts `edge-agent simulate` with `count` agents `sim-0` … heartbeating every
/// `heartbeat_interval_seconds`, as `kubeconfig`'s user, its state and log (`simulator.log`)
/// in `dir`. The process is killed when the handle is dropped.
pub fn spawn_simulator(
    agent_binary: &std::path::Path,
    kubeconfig: &std::path::Path,
    dir: &std::path::Path,
    count: usize,
    heartbeat_interval_seconds: u64,
    tunnels: bool,
) -> anyhow::Result<tokio::process::Child> {
    tokio::process::Command::new(agent_binary)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--state-dir")
        .arg(dir.join("simulator"))
        .args(["simulate", "--count", &count.to_string(), "--prefix", "sim-"])
        .args(["--heartbeat-interval-seconds", &heartbeat_interval_seconds.to_string()])
        .args(tunnels.then_some("--tunnels"))
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::from(std::fs::File::create(
            dir.join("simulator.log"),
        )?))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", agent_binary.display()))
}

/// A client for a kubeconfig file.
pub async fn client(kubeconfig: &std::path::Path) -> anyhow::Result<kube::Client> {
    let config =
        kube::Config::from_custom_kubeconfig(kube::config::Kubeconfig::read_from(kubeconfig)?, &Default::default())
            .await?;
    Ok(kube::Client::try_from(config)?)
}

/// Whether the agent reports condition `type_` as True.
pub fn has_condition(agent: &Agent, type_: &str) -> bool {
    agent
        .status
        .as_ref()
        .and_then(|s| faros_api::conditions::find(&s.conditions, type_))
        .is_some_and(|c| c.is_true())
}

/// Polls `check` every half second until it says true; errors after `timeout`, with the
/// last error if the check kept failing.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) if Instant::now() > deadline => return Err(e.context(format!("waiting for {what}"))),
            Err(_) => {}
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
