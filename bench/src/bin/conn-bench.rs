//! `conn-bench`: what an open client connection costs the hub, and whether the memory comes
//! back when the clients leave.
//!
//! For each kind of connection a fresh release hub is started; the benchmark then opens
//! `--connections` TLS connections to it (admin client certificate), makes one request on
//! each, keeps them open and idle, and reads the hub's RSS before, with them open, and a few
//! seconds after closing them all, and how many HTTP/1.1 connections the hub counted idle
//! (held without their HTTP buffers) when it read them open. With `--hold`, the connections
//! stay open and idle that long before the client closes them, and the benchmark reads how
//! many the hub still has open then, and its RSS: the hub closes connections idle for 90 s.
//! Kinds:
//!
//! - `h1`: HTTP/1.1 (how kube-rs connects), one `GET /version`, then an idle keep-alive
//!   connection;
//! - `h1-watch`: HTTP/1.1 holding one watch of an empty namespace (a kube-rs watcher);
//! - `h2`: HTTP/2 (how client-go and kubectl connect), one `GET /version`, then idle;
//! - `h2-watch`: HTTP/2 holding one watch stream.
//!
//! Usage: `conn-bench --hub-binary target/release/hub-api --connections 5000`

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use faros_bench::h2::Target;
use faros_bench::hub::{HubProcess, SpawnOptions, memory_of, scrape};
use faros_bench::machine::Machine;
use futures::StreamExt;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};

#[derive(Parser)]
#[command(name = "conn-bench")]
struct Args {
    /// The hub binary.
    #[arg(long, default_value = "target/release/hub-api")]
    hub_binary: PathBuf,
    /// Connections held open at once.
    #[arg(long, default_value_t = 5000)]
    connections: usize,
    /// Connections being opened at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Kinds of connection to measure, each against a fresh hub.
    #[arg(long, value_delimiter = ',', default_value = "h1,h1-watch,h2,h2-watch")]
    kinds: Vec<Kind>,
    /// Extra hub flags.
    #[arg(long, allow_hyphen_values = true)]
    hub_arg: Vec<String>,
    /// How long to let the hub settle before each reading.
    #[arg(long, default_value = "3", value_parser = parse_seconds)]
    settle: Duration,
    /// How long the connections stay open and idle, from when the last one was opened,
    /// before the client closes them; 0 closes them after the first reading.
    #[arg(long, default_value = "0", value_parser = parse_seconds)]
    hold: Duration,
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    s.parse::<f64>().map(Duration::from_secs_f64).map_err(|e| e.to_string())
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
enum Kind {
    H1,
    H1Watch,
    H2,
    H2Watch,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::H1 => "HTTP/1.1, idle",
            Kind::H1Watch => "HTTP/1.1, one watch",
            Kind::H2 => "HTTP/2, idle",
            Kind::H2Watch => "HTTP/2, one watch",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Kind::H1 | Kind::H2 => "/version",
            Kind::H1Watch | Kind::H2Watch => "/api/v1/namespaces/default/configmaps?watch=1",
        }
    }
}

/// What keeps one connection open: its request handle, and the watch's body when there is one.
/// Dropping both closes the connection.
struct Held {
    _send: Box<dyn std::any::Any + Send>,
    _watch: Option<Incoming>,
}

async fn open(target: &Target, kind: Kind) -> anyhow::Result<Held> {
    let watch = matches!(kind, Kind::H1Watch | Kind::H2Watch);
    let keep = |response: http::Response<Incoming>| async move {
        anyhow::ensure!(response.status().is_success(), "answered {}", response.status());
        if watch {
            Ok(Some(response.into_body()))
        } else {
            response.into_body().collect().await?;
            Ok(None)
        }
    };
    match kind {
        Kind::H1 | Kind::H1Watch => {
            let tls = target.http1().connect_tls(b"http/1.1").await?;
            let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
            tokio::spawn(conn);
            let request = http::Request::get(kind.path())
                .header(http::header::HOST, target.authority())
                .body(Empty::<Bytes>::new())?;
            let body = keep(send.send_request(request).await?).await?;
            Ok(Held {
                _send: Box::new(send),
                _watch: body,
            })
        }
        Kind::H2 | Kind::H2Watch => {
            let tls = target.connect_tls(b"h2").await?;
            let (mut send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
                .handshake(TokioIo::new(tls))
                .await?;
            tokio::spawn(conn);
            let uri = format!("https://{}{}", target.authority(), kind.path());
            let request = http::Request::get(uri).body(Empty::<Bytes>::new())?;
            let body = keep(send.send_request(request).await?).await?;
            Ok(Held {
                _send: Box::new(send),
                _watch: body,
            })
        }
    }
}

struct Reading {
    before_kib: u64,
    open_kib: u64,
    /// HTTP/1.1 connections the hub counted idle (without their HTTP buffers) when the open
    /// reading was taken; none from a hub that does not count them.
    idle: Option<f64>,
    /// With `--hold`: the connections the hub still had open, and its RSS, at the end of it.
    held: Option<(f64, u64)>,
    closed_kib: u64,
}

/// The client connections the hub counts open, but for the scrape's own.
fn open_connections(metrics: &std::collections::BTreeMap<String, f64>) -> f64 {
    let all: f64 = metrics
        .iter()
        .filter(|(series, _)| series.starts_with("faros_http_connections{"))
        .map(|(_, n)| n)
        .sum();
    all - 1.0
}

async fn measure(args: &Args, kind: Kind) -> anyhow::Result<Reading> {
    let (hub, _, _) = HubProcess::start(&SpawnOptions {
        binary: &args.hub_binary,
        all_in_one: true,
        log_level: "warn",
        extra_args: &args.hub_arg,
        keep_dir: false,
    })
    .await?;
    let target = Target::from_kubeconfig(&hub.kubeconfig())?;
    tokio::time::sleep(args.settle).await;
    let before_kib = memory_of(hub.pid)?.rss_kib;

    let held: Vec<Held> = futures::stream::iter(0..args.connections)
        .map(|_| open(&target, kind))
        .buffer_unordered(args.concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()
        .with_context(|| format!("opening {} connections", kind.name()))?;
    let opened = tokio::time::Instant::now();
    tokio::time::sleep(args.settle).await;
    let open_kib = memory_of(hub.pid)?.rss_kib;
    // Read after the RSS: the scrape's own connection adds to what the hub holds.
    let metrics = scrape(&hub.admin_client().await?).await?;
    let idle = metrics
        .get(r#"faros_http_connections{protocol="HTTP/1.1",state="idle"}"#)
        .copied();
    let held_then = if args.hold > args.settle {
        tokio::time::sleep_until(opened + args.hold).await;
        let rss = memory_of(hub.pid)?.rss_kib;
        let metrics = scrape(&hub.admin_client().await?).await?;
        Some((open_connections(&metrics), rss))
    } else {
        None
    };

    drop(held);
    tokio::time::sleep(args.settle * 2).await;
    let closed_kib = memory_of(hub.pid)?.rss_kib;
    Ok(Reading {
        before_kib,
        open_kib,
        idle,
        held: held_then,
        closed_kib,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let machine = Machine::probe();
    println!(
        "# conn-bench: {} connections per kind; {}, {} cores, load average {}\n",
        args.connections, machine.cpu_model, machine.cores, machine.load_average
    );
    let hold = args.hold.as_secs_f64();
    println!(
        "| connection | hub RSS before | with them open | per connection | HTTP/1.1 idle then | open after {hold:.0} s, hub RSS | after they closed |"
    );
    println!("|---|---|---|---|---|---|---|");
    for &kind in &args.kinds {
        let r = measure(&args, kind).await?;
        let per = (r.open_kib.saturating_sub(r.before_kib)) as f64 / args.connections as f64;
        println!(
            "| {} | {:.1} MiB | {:.1} MiB | {per:.1} KiB | {} | {} | {:.1} MiB |",
            kind.name(),
            r.before_kib as f64 / 1024.0,
            r.open_kib as f64 / 1024.0,
            r.idle.map_or("–".to_string(), |n| n.to_string()),
            r.held.map_or("–".to_string(), |(open, rss)| format!(
                "{open}, {:.1} MiB",
                rss as f64 / 1024.0
            )),
            r.closed_kib as f64 / 1024.0,
        );
    }
    Ok(())
}
