//! `workspace-bench`: how fast the hub creates workspaces (Workspace object → Ready, with the
//! logical cluster, its default namespace and the creator's admin binding initialised), what
//! an empty workspace costs in memory, measured at several workspace counts, and how fast
//! all of them are deleted again.
//!
//! Usage: `workspace-bench --hub-binary target/release/hub-api --counts 1000,10000`

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use faros_bench::hub::{HubProcess, SpawnOptions, cpu_time, memory_of};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, PostParams};
use kube::runtime::watcher;
use serde_json::json;
use tokio::sync::Notify;

#[derive(Parser)]
#[command(name = "workspace-bench")]
struct Args {
    /// The hub binary [default: target/release/hub-api].
    #[arg(long, default_value = "target/release/hub-api")]
    hub_binary: PathBuf,
    /// Workspace totals at which memory is measured, ascending.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    counts: Vec<usize>,
    /// Concurrent creators (and deleters).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Skip deleting the workspaces at the end.
    #[arg(long)]
    no_delete: bool,
    /// Run the controllers as their own process (`hub-api controllers`), so that the hub's
    /// memory and the controllers' are measured apart.
    #[arg(long)]
    controllers_apart: bool,
    /// Create the workspaces as a tenant (a token user allowed to create workspaces in root)
    /// rather than as the hub's admin, as a platform's users would.
    #[arg(long)]
    as_tenant: bool,
    /// Extra hub flags, e.g. `--watch-cache-events=10000`.
    #[arg(long, allow_hyphen_values = true)]
    hub_arg: Vec<String>,
}

fn workspaces() -> ApiResource {
    ApiResource {
        group: "tenancy.kcp.io".into(),
        version: "v1alpha1".into(),
        api_version: "tenancy.kcp.io/v1alpha1".into(),
        kind: "Workspace".into(),
        plural: "workspaces".into(),
    }
}

const TENANT_TOKEN: &str = "bench-tenant-token";
const TENANT_GROUP: &str = "bench-tenants";

/// A client of the tenant, once the admin let its group create workspaces in root.
async fn tenant_client(hub: &HubProcess, admin: &kube::Client) -> anyhow::Result<kube::Client> {
    let role: ClusterRole = serde_json::from_value(json!({
        "metadata": {"name": "workspace-creator"},
        "rules": [{"apiGroups": ["tenancy.kcp.io"], "resources": ["workspaces"], "verbs": ["create", "get", "list", "watch"]}],
    }))?;
    Api::<ClusterRole>::all(admin.clone())
        .create(&PostParams::default(), &role)
        .await?;
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "bench-tenants-create-workspaces"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "workspace-creator"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": TENANT_GROUP}],
    }))?;
    Api::<ClusterRoleBinding>::all(admin.clone())
        .create(&PostParams::default(), &binding)
        .await?;
    // The admin's kubeconfig with the tenant's token instead of the admin's certificate.
    let mut kubeconfig = kube::config::Kubeconfig::read_from(hub.kubeconfig())?;
    for named in &mut kubeconfig.auth_infos {
        named.auth_info = Some(faros_kubeconfig::Credential::Token(TENANT_TOKEN).into());
    }
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

/// The bench workspaces that are Ready and those that exist, as one watch sees them: a
/// readiness check that lists every workspace each round would cost the hub more than the
/// workspaces themselves at 10,000.
#[derive(Default)]
struct Seen {
    ready: HashSet<String>,
    present: HashSet<String>,
}

struct Tracker {
    seen: Mutex<Seen>,
    changed: Notify,
}

impl Tracker {
    fn start(api: Api<DynamicObject>) -> Arc<Tracker> {
        let tracker = Arc::new(Tracker {
            seen: Mutex::new(Seen::default()),
            changed: Notify::new(),
        });
        let this = tracker.clone();
        tokio::spawn(async move {
            let mut events = watcher::watcher(api, watcher::Config::default()).boxed();
            while let Ok(Some(event)) = events.try_next().await {
                let mut seen = this.seen.lock().unwrap_or_else(|e| e.into_inner());
                match event {
                    watcher::Event::Apply(w) | watcher::Event::InitApply(w) => {
                        let name = w.metadata.name.clone().unwrap_or_default();
                        if !name.starts_with("bench-") {
                            continue;
                        }
                        if w.data["status"]["phase"] == "Ready" {
                            seen.ready.insert(name.clone());
                        }
                        seen.present.insert(name);
                    }
                    watcher::Event::Delete(w) => {
                        let name = w.metadata.name.clone().unwrap_or_default();
                        seen.present.remove(&name);
                    }
                    _ => {}
                }
                drop(seen);
                this.changed.notify_waiters();
            }
        });
        tracker
    }

    /// Waits until `done` holds of what the watch has seen.
    async fn wait(&self, done: impl Fn(&Seen) -> bool) {
        loop {
            let changed = self.changed.notified();
            if done(&self.seen.lock().unwrap_or_else(|e| e.into_inner())) {
                return;
            }
            // A timeout as well: a notification between the check and the wait is not lost
            // for longer than this.
            let _ = tokio::time::timeout(Duration::from_millis(100), changed).await;
        }
    }
}

/// Runs `op` for every index in `range` with `concurrency` requests in flight.
async fn for_each<F, Fut>(range: std::ops::Range<usize>, concurrency: usize, op: F) -> anyhow::Result<()>
where
    F: Fn(usize) -> Fut + Clone,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let next = Arc::new(AtomicUsize::new(range.start));
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..concurrency)
        .map(|_| {
            let next = next.clone();
            let op = op.clone();
            async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= range.end {
                        return Ok(());
                    }
                    op(i).await?;
                }
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    results.into_iter().collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut hub_args = args.hub_arg.clone();
    let tokens = std::env::temp_dir().join(format!("faros-workspace-bench-{}.csv", uuid::Uuid::new_v4()));
    if args.as_tenant {
        std::fs::write(&tokens, format!("{TENANT_TOKEN},bench-tenant,2001,{TENANT_GROUP}\n"))?;
        hub_args.extend(["--token-auth-file".to_string(), tokens.display().to_string()]);
    }
    let (mut hub, _, client) = HubProcess::start(&SpawnOptions {
        binary: &args.hub_binary,
        all_in_one: !args.controllers_apart,
        log_level: "warn",
        extra_args: &hub_args,
        keep_dir: false,
    })
    .await?;
    let creator = match args.as_tenant {
        true => tenant_client(&hub, &client).await?,
        false => client.clone(),
    };
    let _ = std::fs::remove_file(&tokens);
    let controllers = match args.controllers_apart {
        true => Some(
            tokio::process::Command::new(&args.hub_binary)
                .args(["controllers", "--leader-elect=false", "--kubeconfig"])
                .arg(hub.kubeconfig())
                .env("RUST_LOG", "warn")
                .stdout(std::process::Stdio::null())
                .kill_on_drop(true)
                .spawn()?,
        ),
        false => None,
    };
    let controllers_pid = controllers.as_ref().and_then(|c| c.id());
    // CPU seconds used so far by the hub, and by the controllers when they run apart.
    let hub_pid = hub.pid;
    let cpu = move || {
        let seconds = |pid: Option<u32>| pid.and_then(cpu_time).map_or(0.0, |d| d.as_secs_f64());
        (seconds(Some(hub_pid)), seconds(controllers_pid))
    };
    let cpu_since = move |(hub_before, controllers_before): (f64, f64)| {
        let (hub_now, controllers_now) = cpu();
        match controllers_pid {
            Some(_) => format!(
                "{:.1} s (controllers apart: {:.1} s)",
                hub_now - hub_before,
                controllers_now - controllers_before
            ),
            None => format!("{:.1} s", hub_now - hub_before),
        }
    };
    let controllers_rss = || -> anyhow::Result<String> {
        match controllers.as_ref().and_then(|c| c.id()) {
            Some(pid) => Ok(format!(
                " (controllers apart: {:.1} MiB)",
                memory_of(pid)?.rss_kib as f64 / 1024.0
            )),
            None => Ok(String::new()),
        }
    };
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &workspaces());
    // Let start-up work (system workspace, bindings) settle before the baseline.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let baseline = hub.memory()?.rss_kib;
    let baseline_controllers = controllers_rss()?;
    let tracker = Tracker::start(api.clone());
    println!("| workspaces | created in | rate (workspaces/s) | hub CPU | hub RSS | RSS per workspace |");
    println!("|---|---|---|---|---|---|");
    let mut created = 0usize;
    for &target in &args.counts {
        let end = target.max(created);
        let batch = end - created;
        let started = Instant::now();
        let cpu_before = cpu();
        let creating: Api<DynamicObject> = Api::all_with(creator.clone(), &workspaces());
        for_each(created..end, args.concurrency, |i| {
            let api = creating.clone();
            async move {
                let ws: DynamicObject = serde_json::from_value(json!({
                    "apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace",
                    "metadata": {"name": format!("bench-{i}")},
                    "spec": {"type": {"name": "universal"}},
                }))?;
                api.create(&PostParams::default(), &ws).await?;
                Ok(())
            }
        })
        .await?;
        // Done when every workspace reports Ready.
        tracker.wait(|s| s.ready.len() >= end).await;
        let elapsed = started.elapsed();
        let step_cpu = cpu_since(cpu_before);
        created = end;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss = hub.memory()?.rss_kib;
        let per = (rss.saturating_sub(baseline) as f64) / created as f64;
        println!(
            "| {created} | {:.1} s | {:.1} | {step_cpu} | {:.1} MiB{} | {:.1} KiB |",
            elapsed.as_secs_f64(),
            batch as f64 / elapsed.as_secs_f64(),
            rss as f64 / 1024.0,
            controllers_rss()?,
            per
        );
    }
    println!(
        "\nbaseline RSS before any workspace: {:.1} MiB{}",
        baseline as f64 / 1024.0,
        baseline_controllers
    );
    if !args.no_delete {
        // Deleted when the Workspace objects are gone: each one's content (namespace,
        // bindings, LogicalCluster) first, then its finalizer.
        let started = Instant::now();
        let cpu_before = cpu();
        for_each(0..created, args.concurrency, |i| {
            let api = api.clone();
            async move {
                api.delete(&format!("bench-{i}"), &DeleteParams::background()).await?;
                Ok(())
            }
        })
        .await?;
        let issued = started.elapsed();
        tracker.wait(|s| s.present.is_empty()).await;
        let elapsed = started.elapsed();
        println!(
            "deleted {created} workspaces in {:.1} s ({:.1}/s; delete requests issued in {:.1} s); hub CPU {}; hub RSS after: {:.1} MiB",
            elapsed.as_secs_f64(),
            created as f64 / elapsed.as_secs_f64(),
            issued.as_secs_f64(),
            cpu_since(cpu_before),
            hub.memory()?.rss_kib as f64 / 1024.0
        );
    }
    if let Some(mut controllers) = controllers {
        controllers.kill().await?;
    }
    hub.stop().await?;
    Ok(())
}
