//! `tunnel-bench`: what reaching a device through the hub costs, next to reaching it
//! directly.
//!
//! Starts the hub (`--all-in-one`), a `faros` workspace and one real `edge-agent` whose
//! tunnel carries the traffic, and serves HTTP on a loopback port of the "device" (this
//! process). The same requests then go four ways, side by side in one run:
//!
//! - **direct**: HTTP/1.1 to the device port, the baseline;
//! - **proxy**: HTTPS + HTTP/2 to the hub's `agents/<name>/proxy/<port>/...`, one connection
//!   multiplexed the way client-go and browsers use it;
//! - **port-forward** with each kubectl given (`kubectl port-forward` to a workload
//!   instance; 1.32 speaks WebSocket, 1.27 SPDY), HTTP/1.1 through the local port it opens.
//!
//! For each: sequential request latency (64-byte answers on one kept-alive connection),
//! request rate with `--concurrency` clients, and the throughput of a `--bytes` download,
//! with the CPU time the hub, the agent and kubectl spend per GiB carried.
//!
//! Usage: `tunnel-bench` after `cargo build --release -p hub-api -p edge-agent -p
//! kubectl-faros -p faros-bench`.

use std::convert::Infallible;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use clap::Parser;
use faros_api::edge::Agent;
use faros_bench::fleet::{fleet_workspace, has_condition, wait_for};
use faros_bench::h2::Target;
use faros_bench::hub::{HubProcess, SpawnOptions, cpu_time};
use faros_bench::stats::{Summary, ms};
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

#[derive(Parser)]
#[command(name = "tunnel-bench")]
struct Args {
    #[command(flatten)]
    binaries: faros_bench::fleet::Binaries,
    /// The kubectl versions whose `port-forward` is measured.
    #[arg(long, value_delimiter = ',', default_value = "1.32,1.27")]
    kubectl: Vec<String>,
    /// Sequential requests per route for the latency figures.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Concurrent clients for the request-rate figures.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Size of each download for the throughput figures.
    #[arg(long, default_value_t = 256 << 20)]
    bytes: u64,
    /// Downloads per route; the table gives the median and the spread.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
}

const AGENT: &str = "dev1";
const NAMESPACE: &str = "default";
/// The answer size of the latency and rate figures.
const SMALL: u64 = 64;
/// Requests each route gets before it is measured (connections, caches, windows).
const WARM_UP: usize = 100;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let machine = faros_bench::machine::Machine::probe();
    println!(
        "{} ({} cores, {}), {}; load average {}",
        machine.cpu_model, machine.cores, machine.memory, machine.kernel, machine.load_average
    );
    let device_port = device_server().await?;

    let (hub, _, admin) = HubProcess::start(&SpawnOptions {
        binary: &args.binaries.hub_binary,
        all_in_one: true,
        log_level: "warn",
        extra_args: &[],
        keep_dir: false,
    })
    .await?;
    let fleet = fleet_workspace(&hub, &admin).await?;
    let client = faros_bench::fleet::client(&fleet).await?;

    let agent_kubeconfig = hub.dir.join(format!("{AGENT}.kubeconfig"));
    plugin(
        &args.binaries.plugin_binary,
        &fleet,
        &["agent", "generate", AGENT, "-o"],
        &agent_kubeconfig,
    )
    .await?;
    let agent = tokio::process::Command::new(&args.binaries.agent_binary)
        .arg("--state-dir")
        .arg(hub.dir.join("agent-state"))
        .args(["--runtimes", "process", "--allow-ports", &device_port.to_string()])
        .env("KUBECONFIG", &agent_kubeconfig)
        .env("FAROS_AGENT_NAME", AGENT)
        .env("FAROS_AGENT_NAMESPACE", NAMESPACE)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(hub.dir.join("agent.log"))?))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", args.binaries.agent_binary.display()))?;
    let agent_pid = agent.id().context("the agent exited at once")?;
    let agents: Api<Agent> = Api::namespaced(client.clone(), NAMESPACE);
    wait_for("the agent Ready and Connected", Duration::from_secs(60), || async {
        let agent = agents.get(AGENT).await?;
        Ok(has_condition(&agent, "Ready") && has_condition(&agent, "Connected"))
    })
    .await?;

    // A workload instance on the device, for port-forward to reach the device port through.
    agents
        .patch(
            AGENT,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"bench": "tunnel"}}})),
        )
        .await?;
    let deploy = [
        "deploy",
        "holder",
        "--process",
        "/bin/sleep",
        "--selector",
        "bench=tunnel",
        "--",
        "86400",
    ];
    plugin(&args.binaries.plugin_binary, &fleet, &deploy, Path::new("")).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let pod = std::sync::Mutex::new(String::new());
    wait_for("the workload's pod Running", Duration::from_secs(60), || async {
        let list = pods.list(&ListParams::default()).await?;
        let running = list
            .items
            .iter()
            .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"));
        if let Some(name) = running.and_then(|p| p.metadata.name.clone()) {
            *pod.lock().unwrap_or_else(|e| e.into_inner()) = name;
            return Ok(true);
        }
        Ok(false)
    })
    .await?;
    let pod = pod.into_inner().unwrap_or_else(|e| e.into_inner());

    let target = Target::from_kubeconfig(&hub.kubeconfig())?;
    let proxy_base = format!(
        "https://{}/clusters/root:fleet/apis/edge.faros.sh/v1alpha1/namespaces/{NAMESPACE}/agents/{AGENT}/proxy/{device_port}",
        target.authority()
    );
    let mut routes = vec![
        Route {
            name: "direct".into(),
            way: Way::Http1 { port: device_port },
            kubectl: None,
        },
        Route {
            name: "proxy (HTTP/2 through the hub)".into(),
            way: Way::Proxy {
                target,
                base: proxy_base,
            },
            kubectl: None,
        },
    ];
    for version in &args.kubectl {
        let Some(binary) = faros_testkit::kubectl::binary(version) else {
            eprintln!("skipped: kubectl.{version} is not installed");
            continue;
        };
        let (child, port) = port_forward(&binary, &fleet, &pod, device_port).await?;
        routes.push(Route {
            name: format!("port-forward (kubectl {version})"),
            way: Way::Http1 { port },
            kubectl: Some(child),
        });
    }

    println!(
        "\n{} sequential requests, {} concurrent clients, {} downloads of {} MiB per route",
        args.requests,
        args.concurrency,
        args.rounds,
        args.bytes >> 20
    );
    let mut results = Vec::new();
    for route in &routes {
        let latency = route.latency(args.requests).await?;
        let rate = route.rate(args.concurrency, args.requests).await?;
        results.push(Figures {
            latency,
            rate,
            mib_per_s: Vec::new(),
            cpu: [Duration::ZERO; 3],
            carried: 0,
        });
    }
    // Downloads interleaved round by round, so a slow moment of the machine spreads over
    // every route instead of landing on one.
    for _ in 0..args.rounds {
        for (route, figures) in routes.iter().zip(results.iter_mut()) {
            let pids = [
                Some(hub.pid),
                Some(agent_pid),
                route.kubectl.as_ref().and_then(|c| c.id()),
            ];
            let before = pids.map(|p| p.and_then(cpu_time).unwrap_or_default());
            let began = Instant::now();
            let got = route.connect().await?.get(&format!("/bytes/{}", args.bytes)).await?;
            let elapsed = began.elapsed();
            ensure!(got == args.bytes, "{}: {got} bytes of {}", route.name, args.bytes);
            let after = pids.map(|p| p.and_then(cpu_time).unwrap_or_default());
            for i in 0..3 {
                figures.cpu[i] += after[i].saturating_sub(before[i]);
            }
            figures.carried += got;
            figures
                .mib_per_s
                .push(got as f64 / (1u64 << 20) as f64 / elapsed.as_secs_f64());
        }
    }

    println!(
        "\n| route | latency p50 / p99 (ms) | requests/s at {} clients | download MiB/s, median (min–max) | CPU s per GiB: hub / agent / kubectl |",
        args.concurrency
    );
    println!("|---|---|---|---|---|");
    for (route, f) in routes.iter().zip(&results) {
        let mut speeds = f.mib_per_s.clone();
        speeds.sort_by(f64::total_cmp);
        let gib = f.carried as f64 / (1u64 << 30) as f64;
        let per_gib = |d: Duration| format!("{:.2}", d.as_secs_f64() / gib);
        let cpu = if route.name == "direct" {
            "–".to_string()
        } else {
            format!(
                "{} / {} / {}",
                per_gib(f.cpu[0]),
                per_gib(f.cpu[1]),
                if route.kubectl.is_some() {
                    per_gib(f.cpu[2])
                } else {
                    "–".into()
                }
            )
        };
        println!(
            "| {} | {} / {} | {:.0} | {:.0} ({:.0}–{:.0}) | {cpu} |",
            route.name,
            ms(f.latency.p50),
            ms(f.latency.p99),
            f.rate,
            speeds[speeds.len() / 2],
            speeds[0],
            speeds[speeds.len() - 1],
        );
    }
    let findings = hub.log_findings();
    if !findings.is_empty() {
        println!("\nhub warnings and errors:\n{}", findings.join("\n"));
    }
    Ok(())
}

/// Runs the plugin against the fleet workspace; `out`, when not empty, is appended.
async fn plugin(binary: &Path, kubeconfig: &Path, args: &[&str], out: &Path) -> anyhow::Result<()> {
    let mut cmd = tokio::process::Command::new(binary);
    cmd.args(args).env("KUBECONFIG", kubeconfig).stdin(Stdio::null());
    if !out.as_os_str().is_empty() {
        cmd.arg(out);
    }
    let output = cmd
        .output()
        .await
        .with_context(|| format!("running {}", binary.display()))?;
    ensure!(
        output.status.success(),
        "kubectl-faros {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// Starts `kubectl port-forward POD :PORT` and returns it with the local port it opened.
async fn port_forward(
    kubectl: &Path,
    kubeconfig: &Path,
    pod: &str,
    port: u16,
) -> anyhow::Result<(tokio::process::Child, u16)> {
    let mut child = tokio::process::Command::new(kubectl)
        .args(["port-forward", &format!("pod/{pod}"), &format!(":{port}")])
        .env("KUBECONFIG", kubeconfig)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", kubectl.display()))?;
    let stdout = child.stdout.take().context("kubectl's stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    // "Forwarding from 127.0.0.1:43127 -> 8080"
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .context("kubectl port-forward did not start in time")??
        .context("kubectl port-forward exited")?;
    let local = first
        .split_whitespace()
        .nth(2)
        .and_then(|a| a.rsplit_once(':'))
        .and_then(|(_, p)| p.parse().ok())
        .with_context(|| format!("unexpected port-forward output: {first}"))?;
    // Later lines ("Handling connection for ...") must not fill the pipe and block kubectl.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, local))
}

struct Route {
    name: String,
    way: Way,
    /// The kubectl process carrying a port-forward route.
    kubectl: Option<tokio::process::Child>,
}

enum Way {
    /// Plain HTTP/1.1 to a loopback port (the device's own, or kubectl's forwarded one).
    Http1 { port: u16 },
    /// HTTPS and HTTP/2 to the hub's proxy; `base` ends just before the device path.
    Proxy { target: Target, base: String },
}

struct Figures {
    latency: Summary,
    rate: f64,
    mib_per_s: Vec<f64>,
    /// CPU time of hub, agent and kubectl over the downloads.
    cpu: [Duration; 3],
    carried: u64,
}

impl Route {
    async fn connect(&self) -> anyhow::Result<Conn> {
        match &self.way {
            Way::Http1 { port } => {
                let tcp = TcpStream::connect(("127.0.0.1", *port)).await?;
                tcp.set_nodelay(true)?;
                let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
                tokio::spawn(conn);
                Ok(Conn::Http1(send))
            }
            Way::Proxy { target, base } => Ok(Conn::Http2 {
                send: target.connect().await?,
                base: base.clone(),
            }),
        }
    }

    /// `n` clients: their own connections for HTTP/1.1, streams of one connection for the
    /// proxy.
    async fn clients(&self, n: usize) -> anyhow::Result<Vec<Conn>> {
        let mut conns = Vec::with_capacity(n);
        match self.connect().await? {
            Conn::Http2 { send, base } => {
                for _ in 0..n {
                    conns.push(Conn::Http2 {
                        send: send.clone(),
                        base: base.clone(),
                    });
                }
            }
            first => {
                conns.push(first);
                for _ in 1..n {
                    conns.push(self.connect().await?);
                }
            }
        }
        Ok(conns)
    }

    async fn latency(&self, requests: usize) -> anyhow::Result<Summary> {
        let mut conn = self.connect().await?;
        let path = format!("/bytes/{SMALL}");
        for _ in 0..WARM_UP {
            conn.get(&path).await?;
        }
        let mut samples = Vec::with_capacity(requests);
        for _ in 0..requests {
            let began = Instant::now();
            let got = conn.get(&path).await?;
            samples.push(began.elapsed());
            ensure!(got == SMALL, "{}: {got} bytes of {SMALL}", self.name);
        }
        Ok(Summary::of_durations(&samples))
    }

    /// Requests per second with `clients` working at once, `requests` in all.
    async fn rate(&self, clients: usize, requests: usize) -> anyhow::Result<f64> {
        let path = format!("/bytes/{SMALL}");
        let mut conns = self.clients(clients).await?;
        for conn in &mut conns {
            conn.get(&path).await?;
        }
        let each = requests.div_ceil(clients);
        let began = Instant::now();
        let tasks: Vec<_> = conns
            .into_iter()
            .map(|mut conn| {
                let path = path.clone();
                tokio::spawn(async move {
                    for _ in 0..each {
                        conn.get(&path).await?;
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        for task in tasks {
            task.await??;
        }
        Ok((each * clients) as f64 / began.elapsed().as_secs_f64())
    }
}

enum Conn {
    Http1(hyper::client::conn::http1::SendRequest<Empty<Bytes>>),
    Http2 {
        send: hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
        base: String,
    },
}

impl Conn {
    /// GETs `path` from the device and returns how many body bytes came.
    async fn get(&mut self, path: &str) -> anyhow::Result<u64> {
        let response = match self {
            Conn::Http1(send) => {
                send.ready().await?;
                let request = Request::get(path)
                    .header(http::header::HOST, "device")
                    .body(Empty::new())?;
                send.send_request(request).await?
            }
            Conn::Http2 { send, base } => {
                send.ready().await?;
                send.send_request(Request::get(format!("{base}{path}")).body(Empty::new())?)
                    .await?
            }
        };
        if response.status() != StatusCode::OK {
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            bail!("GET {path}: {status}: {}", String::from_utf8_lossy(&body));
        }
        let mut body = response.into_body();
        let mut got = 0;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                got += data.len() as u64;
            }
        }
        Ok(got)
    }
}

/// The device's HTTP server: `GET /bytes/N` answers N bytes.
async fn device_server() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), hyper::service::service_fn(device_answer)),
            );
        }
    });
    Ok(port)
}

static CHUNK: [u8; 64 * 1024] = [b'.'; 64 * 1024];

async fn device_answer(request: Request<Incoming>) -> Result<Response<BoxBody<Bytes, Infallible>>, Infallible> {
    let size = request
        .uri()
        .path()
        .strip_prefix("/bytes/")
        .and_then(|n| n.parse::<u64>().ok());
    let Some(size) = size else {
        let body = Empty::new().boxed();
        let mut response = Response::new(body);
        *response.status_mut() = StatusCode::NOT_FOUND;
        return Ok(response);
    };
    let chunk = CHUNK.len() as u64;
    let chunks = (0..size.div_ceil(chunk)).map(move |i| {
        let len = (size - i * chunk).min(chunk) as usize;
        Ok(Frame::data(Bytes::from_static(&CHUNK[..len])))
    });
    let mut response = Response::new(StreamBody::new(futures::stream::iter(chunks)).boxed());
    response
        .headers_mut()
        .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(size));
    Ok(response)
}
