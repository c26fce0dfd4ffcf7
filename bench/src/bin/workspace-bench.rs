//! `workspace-bench`: how fast the hub creates workspaces (Workspace object → Ready, with the
//! logical cluster, its default namespace and default roles initialised) and what an empty
//! workspace costs in memory, measured at several workspace counts.
//!
//! Usage: `workspace-bench --hub-binary target/release/hub-api --counts 1000,10000`

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use faros_bench::hub::{HubProcess, SpawnOptions};
use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, PostParams};
use serde_json::json;

#[derive(Parser)]
#[command(name = "workspace-bench")]
struct Args {
    /// The hub binary [default: target/release/hub-api].
    #[arg(long, default_value = "target/release/hub-api")]
    hub_binary: PathBuf,
    /// Workspace totals at which memory is measured, ascending.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    counts: Vec<usize>,
    /// Concurrent creators.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (mut hub, _, client) = HubProcess::start(&SpawnOptions {
        binary: &args.hub_binary,
        all_in_one: true,
        log_level: "warn",
        extra_args: &[],
        keep_dir: false,
    })
    .await?;
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &workspaces());
    // Let start-up work (system workspace, bindings) settle before the baseline.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let baseline = hub.memory()?.rss_kib;
    println!("| workspaces | created in | rate (workspaces/s) | hub RSS | RSS per workspace |");
    println!("|---|---|---|---|---|");
    let mut created = 0usize;
    for &target in &args.counts {
        let batch = target.saturating_sub(created);
        let started = Instant::now();
        let next = Arc::new(AtomicUsize::new(created));
        let end = created + batch;
        let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..args.concurrency)
            .map(|_| {
                let api = api.clone();
                let next = next.clone();
                async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= end {
                            return Ok(());
                        }
                        let ws: DynamicObject = serde_json::from_value(json!({
                            "apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace",
                            "metadata": {"name": format!("bench-{i}")},
                            "spec": {"type": {"name": "universal"}},
                        }))?;
                        api.create(&PostParams::default(), &ws).await?;
                    }
                }
            })
            .buffer_unordered(args.concurrency)
            .collect()
            .await;
        for r in results {
            r?;
        }
        // Done when every workspace reports Ready.
        loop {
            let list = api.list(&ListParams::default()).await?;
            let ready = list
                .items
                .iter()
                .filter(|w| w.metadata.name.as_deref().is_some_and(|n| n.starts_with("bench-")))
                .filter(|w| w.data["status"]["phase"] == "Ready")
                .count();
            if ready >= end {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let elapsed = started.elapsed();
        created = end;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss = hub.memory()?.rss_kib;
        let per = (rss.saturating_sub(baseline) as f64) / created as f64;
        println!(
            "| {created} | {:.1} s | {:.1} | {:.1} MiB | {:.1} KiB |",
            elapsed.as_secs_f64(),
            batch as f64 / elapsed.as_secs_f64(),
            rss as f64 / 1024.0,
            per
        );
    }
    println!(
        "\nbaseline RSS before any workspace: {:.1} MiB",
        baseline as f64 / 1024.0
    );
    hub.stop().await?;
    Ok(())
}
