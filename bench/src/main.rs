//! `hub-bench`: start-up time, CRUD throughput and latency, watch fan-out and memory of the
//! Faros hub, measured against the real `hub-api` binary through kube-rs. Builds nothing:
//! point it at a release build of the hub (`cargo build --release -p hub-api`).

mod crud;
mod watch;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};

use faros_bench::hub::{HubProcess, Memory, SpawnOptions, Startup};
use faros_bench::stats::ms;
use faros_bench::{machine, stats};

use crate::crud::PhaseResult;
use crate::watch::{Transport, WatchResult};

#[derive(Debug, Parser)]
#[command(name = "hub-bench", about = "Benchmark the Faros hub (hub-api) through kube-rs")]
struct Args {
    /// The hub binary [default: hub-api next to this binary, i.e. target/release/hub-api].
    #[arg(long)]
    hub_binary: Option<PathBuf>,
    /// How many fresh starts to time (spawn → /readyz 200); 0 skips them.
    #[arg(long, default_value_t = 5)]
    startup_runs: usize,
    /// Concurrency levels as CLIENTS:OPS[:LIST_OPS] (LIST_OPS defaults to OPS).
    #[arg(long, value_delimiter = ',', default_value = "1:1000,64:5000")]
    levels: Vec<LevelSpec>,
    /// How many ConfigMaps the listed namespace holds.
    #[arg(long, default_value_t = 1000)]
    list_size: usize,
    /// Size of each ConfigMap's payload value in bytes.
    #[arg(long, default_value_t = 256)]
    value_bytes: usize,
    /// Concurrent watches in the watch fan-out phase.
    #[arg(long, default_value_t = 1000)]
    watchers: usize,
    /// HTTP/2 connections (h2) or kube::Client instances (kube) the watches are spread over.
    #[arg(long, default_value_t = 10)]
    watch_connections: usize,
    /// Measured writes in the watch phase (after one probe write and the warm-up writes).
    #[arg(long, default_value_t = 200)]
    watch_writes: usize,
    /// Unmeasured writes after the probe write.
    #[arg(long, default_value_t = 5)]
    watch_warmup: usize,
    /// Keep this many watches open on an otherwise unused namespace during the CRUD phases
    /// (over HTTP/2, spread like --watch-connections): what unrelated watches cost.
    #[arg(long, default_value_t = 0)]
    idle_watchers: usize,
    /// Watch transports to measure: h2 (raw streams multiplexed on HTTP/2 connections) and
    /// kube (kube-rs Api::watch, HTTP/1.1).
    #[arg(long, value_delimiter = ',', default_value = "h2,kube")]
    watch_transports: Vec<Transport>,
    /// Run the hub without --all-in-one (no controllers).
    #[arg(long)]
    without_controllers: bool,
    /// Extra argument for `hub-api start` (repeatable), e.g. `--hub-arg=--watch-cache-events=10000`.
    #[arg(long = "hub-arg", allow_hyphen_values = true)]
    hub_args: Vec<String>,
    /// RUST_LOG for the hub; its output goes to hub.log in the data directory.
    #[arg(long, default_value = "warn")]
    hub_log_level: String,
    /// Keep the hub's data directories (and logs) instead of deleting them.
    #[arg(long)]
    keep_data: bool,
    /// Also write the Markdown report to this file.
    #[arg(long)]
    output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy)]
struct LevelSpec {
    clients: usize,
    ops: usize,
    list_ops: usize,
}

impl std::str::FromStr for LevelSpec {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<LevelSpec> {
        let parts: Vec<usize> = s
            .split(':')
            .map(|p| p.trim().parse::<usize>())
            .collect::<Result<_, _>>()
            .with_context(|| format!("level {s:?} is not CLIENTS:OPS[:LIST_OPS]"))?;
        match parts.as_slice() {
            [clients, ops] if *clients > 0 => Ok(LevelSpec {
                clients: *clients,
                ops: *ops,
                list_ops: *ops,
            }),
            [clients, ops, list_ops] if *clients > 0 => Ok(LevelSpec {
                clients: *clients,
                ops: *ops,
                list_ops: *list_ops,
            }),
            _ => anyhow::bail!("level {s:?} is not CLIENTS:OPS[:LIST_OPS] with CLIENTS > 0"),
        }
    }
}

const NS: &str = "bench";
const LIST_NS: &str = "bench-list";
const WATCH_NS: &str = "bench-watch";
const IDLE_NS: &str = "bench-idle";

struct MemoryPoint {
    when: &'static str,
    memory: Memory,
    configmaps: usize,
    namespaces: usize,
    db_bytes: u64,
}

struct Report {
    machine: machine::Machine,
    commit: Option<String>,
    hub_binary: PathBuf,
    all_in_one: bool,
    hub_args: Vec<String>,
    list_size: usize,
    args: String,
    startups: Vec<Startup>,
    stops: Vec<Option<Duration>>,
    /// Start-up on the data the load left behind, and how many ConfigMaps that was.
    restart: (Startup, usize),
    phases: Vec<PhaseResult>,
    watches: Vec<WatchResult>,
    memory: Vec<MemoryPoint>,
    load_after: String,
    /// Warning/error lines the hub logged while it served the bench, and while it stopped.
    hub_findings: Vec<String>,
    hub_stop_findings: Vec<String>,
    total: Duration,
}

fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn default_hub_binary() -> PathBuf {
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
    {
        let candidate = dir.join("hub-api");
        if candidate.exists() {
            return candidate;
        }
    }
    workspace_dir().join("target/release/hub-api")
}

fn progress(msg: impl AsRef<str>) {
    eprintln!("hub-bench: {}", msg.as_ref());
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let hub_binary = args.hub_binary.clone().unwrap_or_else(default_hub_binary);
    anyhow::ensure!(
        hub_binary.exists(),
        "{} does not exist; build it with `cargo build --release -p hub-api` or pass --hub-binary",
        hub_binary.display()
    );
    let began = std::time::Instant::now();
    let machine = machine::Machine::probe();
    progress(format!(
        "{} ({} cores), load average {}",
        machine.cpu_model, machine.cores, machine.load_average
    ));
    let spawn = SpawnOptions {
        binary: &hub_binary,
        all_in_one: !args.without_controllers,
        log_level: &args.hub_log_level,
        extra_args: &args.hub_args,
        keep_dir: args.keep_data,
    };

    // Start-up: fresh data directory each time (so it includes creating the CA, serving
    // certificate and database).
    let mut startups = Vec::new();
    let mut stops = Vec::new();
    for run in 0..args.startup_runs {
        let (mut hub, startup, _client) = HubProcess::start(&spawn).await?;
        progress(format!(
            "start-up {}: serving line {} ms, ready {} ms",
            run + 1,
            ms(stats::micros(startup.to_line)),
            ms(stats::micros(startup.to_ready))
        ));
        startups.push(startup);
        stops.push(hub.stop().await?);
    }

    let (mut hub, startup, admin) = HubProcess::start(&spawn).await?;
    progress(format!(
        "hub pid {} on port {} ({}), ready in {} ms",
        hub.pid,
        hub.port,
        hub.dir.display(),
        ms(stats::micros(startup.to_ready))
    ));
    if args.startup_runs == 0 {
        startups.push(startup);
    }
    let config = hub.config().await?;

    // Let the controllers settle before the idle reading.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut memory = vec![memory_point(&hub, &admin, "idle after start-up").await?];

    let result = drive(&args, &hub, &config, &admin).await;
    let (phases, watches) = match result {
        Ok(r) => r,
        Err(e) => {
            let findings = hub.log_findings();
            if !findings.is_empty() {
                eprintln!("hub log ({}):", hub.log_path().display());
                for line in findings.iter().take(20) {
                    eprintln!("  {line}");
                }
            }
            return Err(e);
        }
    };

    // Idle again: every bench client is gone; give the hub a moment to notice.
    tokio::time::sleep(Duration::from_secs(3)).await;
    memory.push(memory_point(&hub, &admin, "idle after the load").await?);
    drop(admin);
    let hub_findings = hub.log_findings();

    // The same data after a restart: what the objects cost without the event window, the
    // closed connections' buffers and allocator fragmentation.
    let (restart, admin) = hub.restart(&spawn).await?;
    progress(format!(
        "restarted on the same data: ready in {} ms",
        ms(stats::micros(restart.to_ready))
    ));
    tokio::time::sleep(Duration::from_secs(2)).await;
    memory.push(memory_point(&hub, &admin, "idle after a restart on the same data").await?);
    drop(admin);
    let load_after = machine::load_average();
    let stop = hub.stop().await?;
    progress(format!("hub stopped in {stop:?}"));
    let hub_stop_findings = hub.log_findings().split_off(hub_findings.len());

    let report = Report {
        machine,
        commit: machine::git_commit(&workspace_dir()),
        hub_binary,
        all_in_one: !args.without_controllers,
        hub_args: args.hub_args.clone(),
        list_size: args.list_size,
        args: std::env::args().skip(1).collect::<Vec<_>>().join(" "),
        startups,
        stops,
        restart: (restart, memory[memory.len() - 2].configmaps),
        phases,
        watches,
        memory,
        load_after,
        hub_findings,
        hub_stop_findings,
        total: began.elapsed(),
    };
    let markdown = render(&report);
    print!("{markdown}");
    if let Some(path) = &args.output {
        std::fs::write(path, &markdown).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

async fn drive(
    args: &Args,
    hub: &HubProcess,
    config: &kube::Config,
    admin: &kube::Client,
) -> anyhow::Result<(Vec<PhaseResult>, Vec<WatchResult>)> {
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    let mut names = vec![NS, LIST_NS, WATCH_NS];
    if args.idle_watchers > 0 {
        names.push(IDLE_NS);
    }
    for name in names {
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                ..Default::default()
            },
            ..Default::default()
        };
        namespaces.create(&PostParams::default(), &ns).await?;
    }
    progress(format!("creating {} ConfigMaps to list", args.list_size));
    crud::populate(admin, LIST_NS, "item", args.list_size, 16, args.value_bytes).await?;

    let idle = if args.idle_watchers > 0 {
        let api: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(admin.clone(), IDLE_NS);
        let from = api
            .list(&kube::api::ListParams::default().limit(1))
            .await?
            .metadata
            .resource_version
            .unwrap_or_default();
        progress(format!(
            "opening {} idle watches on {IDLE_NS} for the CRUD phases",
            args.idle_watchers
        ));
        Some(
            watch::IdleWatches::open(
                &hub.kubeconfig(),
                IDLE_NS,
                &from,
                args.idle_watchers,
                args.watch_connections,
            )
            .await?,
        )
    } else {
        None
    };

    let mut phases = Vec::new();
    for level in &args.levels {
        let mut clients = crud::Level::new(
            config,
            hub.pid,
            level.clients,
            NS,
            LIST_NS,
            args.list_size,
            args.value_bytes,
        )
        .await?;
        for (op, n) in [
            ("create", level.ops),
            ("update", level.ops),
            ("get", level.ops),
            ("list", level.list_ops),
        ] {
            if n == 0 {
                continue;
            }
            let phase = tokio::time::timeout(Duration::from_secs(1800), async {
                match op {
                    "create" => clients.create(n).await,
                    "update" => clients.update(n).await,
                    "get" => clients.get(n).await,
                    _ => clients.list(n).await,
                }
            })
            .await
            .with_context(|| format!("{op} with {} clients did not finish in 30 minutes", level.clients))??;
            progress(format!(
                "{op:>6} x{:<3} {:>8.0} ops/s  p50 {} ms  p99 {} ms  errors {}  (rss {} MiB)",
                level.clients,
                phase.throughput(),
                ms(phase.latency.p50),
                ms(phase.latency.p99),
                phase.error_count(),
                hub.memory().map(|m| m.rss_kib / 1024).unwrap_or(0)
            ));
            for (class, (count, example)) in &phase.errors {
                progress(format!("    {count} x {class}: {example}"));
            }
            phases.push(phase);
        }
    }

    if let Some(idle) = idle {
        let bytes = idle.close().await;
        progress(format!("idle watches closed; they received {bytes} bytes"));
    }

    let mut watches = Vec::new();
    for &transport in &args.watch_transports {
        if args.watchers == 0 {
            break;
        }
        progress(format!(
            "watch fan-out: {} watchers over {} ({})",
            args.watchers,
            args.watch_connections,
            transport.name()
        ));
        let opts = watch::WatchOptions {
            watchers: args.watchers,
            connections: args.watch_connections,
            writes: args.watch_writes,
            warmup: args.watch_warmup,
            namespace: WATCH_NS.to_string(),
            value_bytes: args.value_bytes,
            hub_pid: hub.pid,
        };
        let rss_during = hub.memory().ok();
        let result = watch::run(config, &hub.kubeconfig(), transport, &opts).await?;
        progress(format!(
            "  setup {} ms; delivery p50 {} ms p99 {} ms; all watchers p50 {} ms p99 {} ms; {}/{} delivered; {} errors (rss before {} MiB)",
            result.setup.as_millis(),
            ms(result.delivery.p50),
            ms(result.delivery.p99),
            ms(result.all.p50),
            ms(result.all.p99),
            result.delivered,
            result.expected,
            result.errors.len(),
            rss_during.map(|m| m.rss_kib / 1024).unwrap_or(0),
        ));
        for e in result.errors.iter().take(10) {
            progress(format!("    {e}"));
        }
        watches.push(result);
    }
    Ok((phases, watches))
}

/// Counts stored objects of the kinds the bench writes (ConfigMaps, Namespaces) with raw
/// lists, and reads the hub's memory.
async fn memory_point(hub: &HubProcess, admin: &kube::Client, when: &'static str) -> anyhow::Result<MemoryPoint> {
    let count = |path: &'static str| async move {
        let body = admin.request_text(http::Request::get(path).body(Vec::new())?).await?;
        let v: serde_json::Value = serde_json::from_str(&body)?;
        anyhow::Ok(v["items"].as_array().map(Vec::len).unwrap_or(0))
    };
    let configmaps = count("/api/v1/configmaps").await?;
    let namespaces = count("/api/v1/namespaces").await?;
    Ok(MemoryPoint {
        when,
        memory: hub.memory()?,
        configmaps,
        namespaces,
        db_bytes: hub.db_bytes(),
    })
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

fn render(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### Machine\n");
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(out, "| CPU | {} |", r.machine.cpu_model);
    let _ = writeln!(out, "| cores | {} |", r.machine.cores);
    let _ = writeln!(out, "| memory | {} |", r.machine.memory);
    let _ = writeln!(out, "| kernel | {} |", r.machine.kernel);
    let _ = writeln!(
        out,
        "| load average (1/5/15 min) | {} at start, {} at end |",
        r.machine.load_average, r.load_after
    );
    let _ = writeln!(
        out,
        "| hub | `{}`{}{}{} |",
        r.hub_binary.display(),
        if r.all_in_one { " `--all-in-one`" } else { "" },
        if r.hub_args.is_empty() {
            String::new()
        } else {
            format!(" `{}`", r.hub_args.join(" "))
        },
        r.commit.as_deref().map(|c| format!(" at `{c}`")).unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "| bench | `hub-bench {}` ({} s in all) |",
        r.args,
        r.total.as_secs()
    );

    if !r.startups.is_empty() {
        let to_line: Vec<Duration> = r.startups.iter().map(|s| s.to_line).collect();
        let to_ready: Vec<Duration> = r.startups.iter().map(|s| s.to_ready).collect();
        let stops: Vec<Duration> = r.stops.iter().flatten().copied().collect();
        let _ = writeln!(
            out,
            "\n### Start-up (fresh data directory, {} runs)\n",
            r.startups.len()
        );
        let _ = writeln!(out, "| | median | min | max |\n|---|---:|---:|---:|");
        let row = |out: &mut String, label: &str, v: &[Duration]| {
            if v.is_empty() {
                return;
            }
            let min = v.iter().min().copied().unwrap_or_default();
            let max = v.iter().max().copied().unwrap_or_default();
            let med = stats::median(v).unwrap_or_default();
            let _ = writeln!(
                out,
                "| {label} | {} ms | {} ms | {} ms |",
                ms(stats::micros(med)),
                ms(stats::micros(min)),
                ms(stats::micros(max))
            );
        };
        row(&mut out, "spawn → \"serving on\" printed", &to_line);
        row(&mut out, "spawn → `/readyz` 200 (admin credentials)", &to_ready);
        row(&mut out, "SIGTERM → exit (idle)", &stops);
        let (restart, objects) = r.restart;
        let _ = writeln!(
            out,
            "| restart with {objects} ConfigMaps stored: spawn → `/readyz` 200 | {} ms (1 run) | | |",
            ms(stats::micros(restart.to_ready))
        );
    }

    if !r.phases.is_empty() {
        let _ = writeln!(out, "\n### ConfigMap create / update / get / list (kube-rs)\n");
        let _ = writeln!(
            out,
            "| operation | clients | ops | errors | throughput | p50 | p99 | max | hub CPU | bench CPU |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for p in &r.phases {
            let op = if p.op == "list" {
                format!("list ({} items)", r.list_size)
            } else {
                p.op.to_string()
            };
            let _ = writeln!(
                out,
                "| {op} | {} | {} | {} | {:.0} ops/s | {} ms | {} ms | {} ms | {:.2} | {:.2} |",
                p.clients,
                p.ops,
                p.error_count(),
                p.throughput(),
                ms(p.latency.p50),
                ms(p.latency.p99),
                ms(p.latency.max),
                p.cpu.hub,
                p.cpu.bench
            );
        }
        let errors: Vec<_> = r
            .phases
            .iter()
            .flat_map(|p| p.errors.iter().map(move |(class, (n, ex))| (p, class, n, ex)))
            .collect();
        if !errors.is_empty() {
            let _ = writeln!(out, "\nErrors:\n");
            for (p, class, n, ex) in errors {
                let _ = writeln!(out, "- {} ×{}: {n} × {class} — {ex}", p.op, p.clients);
            }
        }
    }

    if !r.watches.is_empty() {
        let _ = writeln!(out, "\n### Watch fan-out (one namespace, sequential creates)\n");
        let _ = writeln!(
            out,
            "| transport | watchers | connections | measured writes | delivered | watch set-up | write p50 | hub CPU | bench CPU |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for w in &r.watches {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {}/{} | {} ms | {} ms | {:.2} | {:.2} |",
                w.transport.name(),
                w.watchers,
                w.connections,
                w.writes,
                w.delivered,
                w.expected,
                w.setup.as_millis(),
                ms(w.write.p50),
                w.cpu.hub,
                w.cpu.bench
            );
        }
        let _ = writeln!(
            out,
            "\n| transport | latency | p50 | p99 | max |\n|---|---|---:|---:|---:|"
        );
        for w in &r.watches {
            for (label, s) in [
                ("write acknowledged → event at a watcher", &w.delivery),
                ("write acknowledged → event at all watchers", &w.all),
                ("write sent → event at all watchers", &w.send_all),
            ] {
                let _ = writeln!(
                    out,
                    "| {} | {label} | {} ms | {} ms | {} ms |",
                    w.transport.name(),
                    ms(s.p50),
                    ms(s.p99),
                    ms(s.max)
                );
            }
        }
        for w in &r.watches {
            if w.delivery.min < 0 {
                let _ = writeln!(
                    out,
                    "\n{}: the earliest delivery came {} ms before the writer saw its acknowledgement.",
                    w.transport.name(),
                    ms(-w.delivery.min)
                );
            }
            for e in w.errors.iter().take(10) {
                let _ = writeln!(out, "\n- {}: {e}", w.transport.name());
            }
        }
    }

    if !r.memory.is_empty() {
        let _ = writeln!(out, "\n### Hub memory\n");
        let _ = writeln!(
            out,
            "| when | ConfigMaps | Namespaces | VmRSS | VmHWM (peak) | threads | database files |\n|---|---:|---:|---:|---:|---:|---:|"
        );
        for m in &r.memory {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} MiB | {} MiB | {} | {:.1} MiB |",
                m.when,
                m.configmaps,
                m.namespaces,
                mib(m.memory.rss_kib),
                mib(m.memory.hwm_kib),
                m.memory.threads,
                m.db_bytes as f64 / 1024.0 / 1024.0
            );
        }
    }

    let _ = writeln!(
        out,
        "\nHub log: {} warning/error lines while serving the bench, {} while stopping and restarting.",
        r.hub_findings.len(),
        r.hub_stop_findings.len()
    );
    for (label, lines) in [
        ("While serving", &r.hub_findings),
        ("While stopping and restarting", &r.hub_stop_findings),
    ] {
        if lines.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "\n{label} (first {} of {}):\n\n```",
            lines.len().min(10),
            lines.len()
        );
        for line in lines.iter().take(10) {
            let _ = writeln!(out, "{line}");
        }
        let _ = writeln!(out, "```");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::LevelSpec;

    #[test]
    fn level_specs() {
        let l: LevelSpec = "64:5000".parse().unwrap();
        assert_eq!((l.clients, l.ops, l.list_ops), (64, 5000, 5000));
        let l: LevelSpec = "1:1000:200".parse().unwrap();
        assert_eq!((l.clients, l.ops, l.list_ops), (1, 1000, 200));
        assert!("0:10".parse::<LevelSpec>().is_err());
        assert!("x".parse::<LevelSpec>().is_err());
    }
}
