//! `workload-bench`: one `All` Workload rolled out onto a fleet of simulated agents.
//!
//! Starts the hub (`--all-in-one`), a `faros` workspace and `edge-agent simulate --count N`
//! (the real agent loop with a runtime that pretends to run what it is given), waits until
//! every agent is Ready, then creates one Workload selecting them all and measures: the time
//! until every Placement reports Running, the hub's CPU and RSS during the rollout, the
//! writes per second (the growth of the store's resourceVersion, one per write), and what a
//! per-device view costs with N placements in the namespace (`kubectl faros workload list
//! --agent X` and the label-selected list under it), and then, with every placement
//! Running, the hub's CPU and the scheduler's passes over the 40 s that hold the agents'
//! five-minute status reports. Finally it deletes the Workload and times until every
//! placement is gone.
//!
//! Usage: `workload-bench --agents 10000` after `cargo build --release -p hub-api -p
//! edge-agent -p kubectl-faros -p faros-bench`.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use faros_api::edge::Agent;
use faros_api::workloads::{Placement, PlacementPhase, Workload};
use faros_bench::fleet::{fleet_workspace, has_condition, wait_for};
use faros_bench::hub::{CpuMeter, HubProcess, SpawnOptions, scrape};
use faros_bench::stats::Summary;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

#[derive(Parser)]
#[command(name = "workload-bench")]
struct Args {
    #[command(flatten)]
    binaries: faros_bench::fleet::Binaries,
    /// Simulated agents.
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// Their heartbeat interval.
    #[arg(long, default_value_t = 10)]
    heartbeat_interval_seconds: u64,
    /// Runs of each per-device view timing.
    #[arg(long, default_value_t = 20)]
    view_runs: usize,
    /// Each simulated agent also keeps its tunnel to the hub open (`simulate --tunnels`).
    #[arg(long)]
    tunnels: bool,
    /// Extra hub flags, e.g. `--watch-cache-events=10000`.
    #[arg(long, allow_hyphen_values = true)]
    hub_arg: Vec<String>,
}

const NAMESPACE: &str = "default";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (mut hub, _, admin) = HubProcess::start(&SpawnOptions {
        binary: &args.binaries.hub_binary,
        all_in_one: true,
        log_level: "warn",
        extra_args: &args.hub_arg,
        keep_dir: false,
    })
    .await?;
    let fleet = fleet_workspace(&hub, &admin).await?;
    let client = faros_bench::fleet::client(&fleet).await?;

    let mut simulator = faros_bench::fleet::spawn_simulator(
        &args.binaries.agent_binary,
        &fleet,
        &hub.dir,
        args.agents,
        args.heartbeat_interval_seconds,
        args.tunnels,
    )?;
    let started = Instant::now();
    let agents: Api<Agent> = Api::namespaced(client.clone(), NAMESPACE);
    wait_for("every agent Ready", Duration::from_secs(1800), || async {
        let list = agents.list(&ListParams::default()).await?;
        let ready = list.items.iter().filter(|a| has_condition(a, "Ready")).count();
        Ok(ready >= args.agents)
    })
    .await?;
    println!(
        "{} agents Ready {:.1} s after the simulator started",
        args.agents,
        started.elapsed().as_secs_f64()
    );
    if args.tunnels {
        wait_for("every agent Connected", Duration::from_secs(1800), || async {
            let list = agents.list(&ListParams::default()).await?;
            let connected = list.items.iter().filter(|a| has_condition(a, "Connected")).count();
            Ok(connected >= args.agents)
        })
        .await?;
        println!(
            "{} tunnels connected {:.1} s after the simulator started",
            args.agents,
            started.elapsed().as_secs_f64()
        );
    }
    // Steady state before the rollout, for comparison.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let meter = CpuMeter::start(hub.pid);
    let idle_rv = store_revision(&client).await?;
    let idle_began = Instant::now();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let idle = meter.stop();
    // Heartbeats and periodic reports go on during the rollout: counted apart.
    let idle_writes_per_second =
        store_revision(&client).await?.saturating_sub(idle_rv) as f64 / idle_began.elapsed().as_secs_f64();
    let idle_rss = hub.memory()?.rss_kib;

    // The rollout.
    let workloads: Api<Workload> = Api::namespaced(client.clone(), NAMESPACE);
    let workload: Workload = serde_json::from_value(json!({
        "apiVersion": "edge.faros.sh/v1alpha1", "kind": "Workload",
        "metadata": {"name": "bench", "namespace": NAMESPACE},
        "spec": {"template": {"containers": [{"name": "app", "image": "localhost/demo:1", "ports": [{"containerPort": 8080}]}]}},
    }))?;
    let rv_before = store_revision(&client).await?;
    let meter = CpuMeter::start(hub.pid);
    let rollout_began = Instant::now();
    workloads.create(&PostParams::default(), &workload).await?;
    let placements: Api<Placement> = Api::namespaced(client.clone(), NAMESPACE);
    let mut peak_rss = 0;
    let mut scheduled_at = None;
    let deadline = rollout_began + Duration::from_secs(1800);
    loop {
        peak_rss = peak_rss.max(hub.memory()?.rss_kib);
        if let Ok(list) = placements.list(&ListParams::default()).await {
            if scheduled_at.is_none() && list.items.len() >= args.agents {
                scheduled_at = Some(rollout_began.elapsed());
            }
            let running = list
                .items
                .iter()
                .filter(|p| p.status.as_ref().is_some_and(|s| s.phase == PlacementPhase::Running))
                .count();
            if running >= args.agents {
                break;
            }
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for every placement Running");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let rollout = rollout_began.elapsed();
    let busy = meter.stop();
    let writes = store_revision(&client).await?.saturating_sub(rv_before);
    let after_rss = hub.memory()?.rss_kib;

    // The per-device view with every placement in the namespace.
    let view = time_runs(args.view_runs, || {
        let plugin = args.binaries.plugin_binary.clone();
        let kubeconfig = fleet.clone();
        async move {
            let out = tokio::process::Command::new(&plugin)
                .args(["workload", "list", "--agent", "sim-7"])
                .env("KUBECONFIG", &kubeconfig)
                .output()
                .await?;
            if !out.status.success() {
                bail!("kubectl faros workload list: {}", String::from_utf8_lossy(&out.stderr));
            }
            Ok(())
        }
    })
    .await?;
    let selected = time_runs(args.view_runs * 5, || {
        let placements = placements.clone();
        async move {
            let list = placements
                .list(&ListParams::default().labels("edge.faros.sh/agent=sim-7"))
                .await?;
            anyhow::ensure!(list.items.len() == 1, "{} placements for sim-7", list.items.len());
            Ok(())
        }
    })
    .await?;

    // Steady state with every placement Running: the agents go on reporting, and the
    // scheduler is to look at the workload again only when something it decides on changes.
    let passes = |metrics: &std::collections::BTreeMap<String, f64>| {
        metrics
            .get("faros_controller_reconcile_duration_seconds_count{controller=\"scheduler\"}")
            .copied()
            .unwrap_or(0.0)
    };
    // The window holds the agents' periodic reports: each reports its status 270-300 s
    // after its last status write, which for every agent came with its placement.
    let reports_due = rollout_began + rollout + Duration::from_secs(270);
    tokio::time::sleep_until(reports_due.into()).await;
    let passes_before = passes(&scrape(&admin).await?);
    let meter = CpuMeter::start(hub.pid);
    let placed_began = Instant::now();
    tokio::time::sleep(Duration::from_secs(40)).await;
    let placed = meter.stop();
    let placed_passes = passes(&scrape(&admin).await?) - passes_before;
    let placed_window = placed_began.elapsed().as_secs_f64();

    // Removal.
    let removal_began = Instant::now();
    workloads.delete("bench", &DeleteParams::default()).await?;
    wait_for("every placement gone", Duration::from_secs(1800), || async {
        Ok(placements.list(&ListParams::default().limit(1)).await?.items.is_empty())
    })
    .await?;
    let removal = removal_began.elapsed();

    println!();
    println!("| {} agents | value |", args.agents);
    println!("|---|---|");
    if let Some(s) = scheduled_at {
        println!("| every Placement created | {:.1} s |", s.as_secs_f64());
    }
    println!("| every Placement Running | {:.1} s |", rollout.as_secs_f64());
    let background = idle_writes_per_second * rollout.as_secs_f64();
    println!(
        "| writes during the rollout | {writes} ({:.0}/s), of which heartbeats and periodic reports at the steady-state rate ({:.0}/s) ≈ {:.0}; the rest ≈ {:.1} per placement |",
        writes as f64 / rollout.as_secs_f64(),
        idle_writes_per_second,
        background,
        (writes as f64 - background).max(0.0) / args.agents as f64
    );
    println!(
        "| hub CPU, steady state before / during the rollout | {:.2} / {:.2} cores (simulator and bench not counted) |",
        idle.hub, busy.hub
    );
    println!(
        "| with every Placement Running, over {placed_window:.0} s holding the agents' five-minute status reports: hub CPU, scheduler passes | {:.2} cores, {placed_passes:.0} |",
        placed.hub
    );
    println!(
        "| hub RSS before / peak / after the rollout | {:.0} / {:.0} / {:.0} MiB |",
        idle_rss as f64 / 1024.0,
        peak_rss as f64 / 1024.0,
        after_rss as f64 / 1024.0
    );
    println!(
        "| `kubectl faros workload list --agent sim-7` ({} runs, process start included) | median {:.1} ms, max {:.1} ms |",
        args.view_runs,
        view.p50 as f64 / 1000.0,
        view.max as f64 / 1000.0
    );
    println!(
        "| label-selected list of one agent's placements ({} runs) | median {:.1} ms, p99 {:.1} ms |",
        args.view_runs * 5,
        selected.p50 as f64 / 1000.0,
        selected.p99 as f64 / 1000.0
    );
    println!(
        "| Workload deleted → every Placement gone | {:.1} s |",
        removal.as_secs_f64()
    );
    let findings = hub.log_findings();
    println!("| warnings or errors in the hub log | {} |", findings.len());
    for line in findings.iter().take(5) {
        println!("  {line}");
    }
    simulator.start_kill()?;
    hub.stop().await?;
    Ok(())
}

/// The store's current resourceVersion: every write increments it by one.
async fn store_revision(client: &kube::Client) -> anyhow::Result<u64> {
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let list = namespaces.list(&ListParams::default().limit(1)).await?;
    list.metadata
        .resource_version
        .as_deref()
        .and_then(|rv| rv.parse().ok())
        .context("a list without a numeric resourceVersion")
}

async fn time_runs<F, Fut>(runs: usize, mut run: F) -> anyhow::Result<Summary>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let began = Instant::now();
        run().await?;
        samples.push(began.elapsed());
    }
    Ok(Summary::of_durations(&samples))
}
