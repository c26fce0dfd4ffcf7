//! `fleet-bench`: one hub holding a fleet of simulated agents in steady state.
//!
//! For each fleet size: a fresh release hub (`--all-in-one`), a `faros` workspace and one
//! `edge-agent simulate --count N` process (the real agent loop for each agent, their
//! requests sharing HTTP/2 connections), both on this machine. It waits until the hub counts
//! N agents `Ready=True` (its `faros_agents` metric), lets the fleet settle, then measures a
//! steady window: the hub's and the simulator's CPU and RSS (at the start and the end of the
//! window, so growth shows), and how fast the hub answered Lease renewals (its
//! `apiserver_request_duration_seconds` histogram for `PUT leases`, over the window).
//! Finally it kills the simulator and times until the hub has marked every agent
//! `Ready=Unknown`, against the grace period.
//!
//! Usage: `fleet-bench --agents 10000,30000,100000 --steady 120` after `cargo build --release
//! -p hub-api -p edge-agent -p faros-bench --features edge-agent/jemalloc` (the simulator on
//! jemalloc, as measured in docs/benchmarks.md; it runs on glibc's allocator without it).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use faros_bench::fleet::fleet_workspace;
use faros_bench::hub::{HubProcess, SpawnOptions, cpu_time, memory_of, scrape};
use faros_bench::machine::Machine;

#[derive(Parser)]
#[command(name = "fleet-bench")]
struct Args {
    /// The hub binary.
    #[arg(long, default_value = "target/release/hub-api")]
    hub_binary: PathBuf,
    /// The agent binary (its `simulate` subcommand).
    #[arg(long, default_value = "target/release/edge-agent")]
    agent_binary: PathBuf,
    /// Fleet sizes, each against a fresh hub.
    #[arg(long, value_delimiter = ',', default_value = "10000")]
    agents: Vec<usize>,
    /// The agents' heartbeat interval, in seconds.
    #[arg(long, default_value_t = 10)]
    heartbeat_interval_seconds: u64,
    /// Seconds of settling after every agent is Ready, before the window.
    #[arg(long, default_value_t = 30)]
    settle: u64,
    /// Seconds of the measured steady window.
    #[arg(long, default_value_t = 120)]
    steady: u64,
    /// The hub's `--agent-monitor-grace-period`, in seconds.
    #[arg(long, default_value_t = 40)]
    grace: u64,
    /// Extra hub flags.
    #[arg(long, allow_hyphen_values = true)]
    hub_arg: Vec<String>,
}

/// What one fleet size measured.
struct Run {
    agents: usize,
    ready_after: Duration,
    hub_cpu: f64,
    simulator_cpu: f64,
    hub_rss_mib: (f64, f64),
    simulator_rss_mib: (f64, f64),
    writes_per_second: f64,
    /// Share of Lease renewals answered within each bucket bound (seconds).
    renewals: Vec<(f64, f64)>,
    renewals_counted: f64,
    unknown_after_kill: Duration,
}

fn agents_with(metrics: &BTreeMap<String, f64>, ready: &str) -> usize {
    metrics
        .get(&format!("faros_agents{{ready=\"{ready}\"}}"))
        .copied()
        .unwrap_or(0.0) as usize
}

/// Cumulative bucket counts of the Lease PUT latency histogram: (upper bound, count).
fn renewal_buckets(metrics: &BTreeMap<String, f64>) -> Vec<(f64, f64)> {
    let mut buckets: Vec<(f64, f64)> = metrics
        .iter()
        .filter(|(name, _)| {
            name.starts_with("apiserver_request_duration_seconds_bucket{")
                && name.contains("verb=\"PUT\"")
                && name.contains("resource=\"leases\"")
        })
        .filter_map(|(name, count)| {
            let le = name.split("le=\"").nth(1)?.split('"').next()?;
            let bound = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
            Some((bound, *count))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    buckets
}

/// Writes committed so far: the sum of the commit group size histogram.
fn writes_committed(metrics: &BTreeMap<String, f64>) -> f64 {
    metrics
        .get("faros_storage_write_group_size_sum")
        .copied()
        .unwrap_or(0.0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

async fn measure(args: &Args, agents: usize) -> anyhow::Result<Run> {
    let mut hub_args = args.hub_arg.clone();
    hub_args.push(format!("--agent-monitor-grace-period={}s", args.grace));
    let (hub, _, admin) = HubProcess::start(&SpawnOptions {
        binary: &args.hub_binary,
        all_in_one: true,
        log_level: "warn",
        extra_args: &hub_args,
        keep_dir: false,
    })
    .await?;
    let fleet = fleet_workspace(&hub, &admin).await?;
    let mut simulator = faros_bench::fleet::spawn_simulator(
        &args.agent_binary,
        &fleet,
        &hub.dir,
        agents,
        args.heartbeat_interval_seconds,
        false,
    )?;
    let simulator_pid = simulator.id().context("the simulator exited at once")?;
    let started = Instant::now();
    loop {
        if let Some(status) = simulator.try_wait()? {
            anyhow::bail!(
                "the simulator exited ({status}); see {}",
                hub.dir.join("simulator.log").display()
            );
        }
        if agents_with(&scrape(&admin).await?, "True") >= agents {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(3600),
            "the fleet was not Ready within an hour"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let ready_after = started.elapsed();
    eprintln!("{agents} agents Ready after {:.1} s", ready_after.as_secs_f64());
    tokio::time::sleep(Duration::from_secs(args.settle)).await;

    let before = scrape(&admin).await?;
    let hub_rss_start = memory_of(hub.pid)?.rss_kib;
    let simulator_rss_start = memory_of(simulator_pid)?.rss_kib;
    let hub_cpu_start = cpu_time(hub.pid).unwrap_or_default();
    let simulator_cpu_start = cpu_time(simulator_pid).unwrap_or_default();
    let window = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.steady)).await;
    let wall = window.elapsed().as_secs_f64();
    let hub_cpu = cpu_time(hub.pid).unwrap_or_default().saturating_sub(hub_cpu_start);
    let simulator_cpu = cpu_time(simulator_pid)
        .unwrap_or_default()
        .saturating_sub(simulator_cpu_start);
    let hub_rss_end = memory_of(hub.pid)?.rss_kib;
    let simulator_rss_end = memory_of(simulator_pid)?.rss_kib;
    let after = scrape(&admin).await?;
    let ready_now = agents_with(&after, "True");
    anyhow::ensure!(
        ready_now >= agents,
        "only {ready_now} of {agents} agents were Ready at the end of the window"
    );

    let (start, end) = (renewal_buckets(&before), renewal_buckets(&after));
    let total = end.last().map(|b| b.1).unwrap_or(0.0) - start.last().map(|b| b.1).unwrap_or(0.0);
    let renewals = end
        .iter()
        .zip(start.iter().chain(std::iter::repeat(&(0.0, 0.0))))
        .map(|(e, s)| (e.0, if total > 0.0 { (e.1 - s.1) / total } else { 0.0 }))
        .collect();
    let writes_per_second = (writes_committed(&after) - writes_committed(&before)) / wall;

    // An agent killed: every one of them at once.
    simulator.start_kill()?;
    simulator.wait().await?;
    let killed = Instant::now();
    loop {
        if agents_with(&scrape(&admin).await?, "Unknown") >= agents {
            break;
        }
        anyhow::ensure!(
            killed.elapsed() < Duration::from_secs(args.grace * 10),
            "agents were still Ready long after their simulator was killed"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let unknown_after_kill = killed.elapsed();
    for finding in hub.log_findings() {
        eprintln!("hub log: {finding}");
    }
    Ok(Run {
        agents,
        ready_after,
        hub_cpu: hub_cpu.as_secs_f64() / wall,
        simulator_cpu: simulator_cpu.as_secs_f64() / wall,
        hub_rss_mib: (mib(hub_rss_start), mib(hub_rss_end)),
        simulator_rss_mib: (mib(simulator_rss_start), mib(simulator_rss_end)),
        writes_per_second,
        renewals,
        renewals_counted: total,
        unknown_after_kill,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let machine = Machine::probe();
    println!(
        "# fleet-bench: heartbeats every {} s, steady window {} s, grace {} s; {}, {} cores, load average {}\n",
        args.heartbeat_interval_seconds,
        args.steady,
        args.grace,
        machine.cpu_model,
        machine.cores,
        machine.load_average
    );
    // The hub allows an agent the grace period, or three heartbeat intervals if longer.
    // The target: every killed agent Unknown within its grace period and 5 s.
    let allowed = args.grace.max(3 * args.heartbeat_interval_seconds) + 5;
    println!(
        "| agents | all Ready after | hub CPU | hub RSS start → end of window | simulator CPU | simulator RSS | writes/s | Lease renewals within 5 / 25 / 50 / 100 ms | all Unknown after the kill (allowed {allowed} s) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for &agents in &args.agents {
        let run = measure(&args, agents).await?;
        let within = |bound: f64| {
            run.renewals
                .iter()
                .find(|(le, _)| (*le - bound).abs() < 1e-9)
                .map(|(_, share)| format!("{:.2}%", share * 100.0))
                .unwrap_or_else(|| "?".into())
        };
        println!(
            "| {} | {:.1} s | {:.2} cores | {:.0} → {:.0} MiB | {:.2} cores | {:.0} → {:.0} MiB | {:.0} | {} / {} / {} / {} of {:.0} | {:.1} s |",
            run.agents,
            run.ready_after.as_secs_f64(),
            run.hub_cpu,
            run.hub_rss_mib.0,
            run.hub_rss_mib.1,
            run.simulator_cpu,
            run.simulator_rss_mib.0,
            run.simulator_rss_mib.1,
            run.writes_per_second,
            within(0.005),
            within(0.025),
            within(0.05),
            within(0.1),
            run.renewals_counted,
            run.unknown_after_kill.as_secs_f64(),
        );
    }
    Ok(())
}
