//! `workspace-bench`: how fast the hub creates workspaces (Workspace object → Ready, with the
//! logical cluster, its default namespace and default roles initialised) and what an empty
//! workspace costs in memory, measured at several workspace counts.
//!
//! Usage: `workspace-bench --hub-binary target/release/hub-api --counts 1000,10000`

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
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

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS")
}

fn start_hub(binary: &PathBuf, dir: &PathBuf) -> anyhow::Result<(Child, PathBuf)> {
    let mut child = Command::new(binary)
        .args(["start", "--all-in-one", "--secure-port", "0", "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.contains("serving on") => break,
            Some(_) => continue,
            None => anyhow::bail!("hub exited"),
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Ok((child, dir.join("admin.kubeconfig")))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = std::env::temp_dir().join(format!("faros-ws-bench-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let (mut child, kubeconfig) = start_hub(&args.hub_binary, &dir)?;
    let config =
        kube::Config::from_custom_kubeconfig(kube::config::Kubeconfig::read_from(&kubeconfig)?, &Default::default())
            .await?;
    let client = kube::Client::try_from(config)?;
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &workspaces());
    // Let start-up work (system workspace, bindings) settle before the baseline.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pid = child.id();
    let baseline = rss_kib(pid)?;
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
        let rss = rss_kib(pid)?;
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
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
