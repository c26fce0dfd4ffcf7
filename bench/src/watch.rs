//! Watch fan-out: many concurrent watches on one namespace, then writes one at a time. For
//! each write, the time from the writer receiving its acknowledgement to each watcher
//! receiving the event, and to the last of them receiving it.
//!
//! Writes are sequential and each waits until every watcher has its event, so the numbers
//! are per-event fan-out latency, not queueing behind earlier events.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use http_body_util::{BodyExt, Empty};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ListParams, PostParams, WatchEvent, WatchParams};
use kube::{Api, Client};
use serde::Deserialize;
use tokio::sync::{Notify, mpsc, watch};

use crate::crud::config_map;
use faros_bench::h2;
use faros_bench::hub::{CpuMeter, CpuUse};
use faros_bench::stats::{Summary, signed_micros};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Raw watch streams, many per HTTP/2 connection (like client-go).
    H2,
    /// `kube::Api::watch` (kube-rs speaks HTTP/1.1: one connection per watch).
    Kube,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::H2 => "HTTP/2 streams",
            Transport::Kube => "kube-rs Api::watch (HTTP/1.1)",
        }
    }

    pub fn prefix(self) -> &'static str {
        match self {
            Transport::H2 => "h2",
            Transport::Kube => "kube",
        }
    }
}

impl std::str::FromStr for Transport {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Transport> {
        match s {
            "h2" => Ok(Transport::H2),
            "kube" => Ok(Transport::Kube),
            other => anyhow::bail!("unknown watch transport {other:?} (h2 or kube)"),
        }
    }
}

pub struct WatchOptions {
    pub watchers: usize,
    /// HTTP/2 connections (h2) or kube::Client instances (kube).
    pub connections: usize,
    pub writes: usize,
    pub warmup: usize,
    pub namespace: String,
    pub value_bytes: usize,
    pub hub_pid: u32,
}

#[derive(Debug, Clone)]
pub struct WatchResult {
    pub transport: Transport,
    pub watchers: usize,
    pub connections: usize,
    pub writes: usize,
    /// Spawning the watches → every watch's response headers received.
    pub setup: Duration,
    /// Send → acknowledgement of the measured writes.
    pub write: Summary,
    /// Acknowledgement → delivery, over every (write, watcher) pair.
    pub delivery: Summary,
    /// Acknowledgement → the last watcher receiving it, per write.
    pub all: Summary,
    /// Send → the last watcher receiving it, per write.
    pub send_all: Summary,
    /// CPU the hub and the bench used while the writes were delivered, in cores.
    pub cpu: CpuUse,
    pub delivered: usize,
    pub expected: usize,
    pub errors: Vec<String>,
}

struct Shared {
    prefix: String,
    watchers: usize,
    counts: Vec<AtomicUsize>,
    notify: Notify,
    established: mpsc::Sender<Result<(), String>>,
    errors: Mutex<Vec<String>>,
}

impl Shared {
    /// Records one delivered event; wakes the writer when the last watcher has it.
    fn delivered(&self, name: &str, at: Instant, log: &mut Vec<(u32, Instant)>) {
        let Some(seq) = name
            .strip_prefix(self.prefix.as_str())
            .and_then(|rest| rest.parse::<u32>().ok())
        else {
            return;
        };
        log.push((seq, at));
        if let Some(count) = self.counts.get(seq as usize)
            && count.fetch_add(1, Ordering::AcqRel) + 1 == self.watchers
        {
            self.notify.notify_one();
        }
    }

    fn error(&self, msg: String) {
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        if errors.len() < 1000 {
            errors.push(msg);
        }
    }
}

/// The parts of a watch event line the bench needs.
#[derive(Deserialize)]
struct WireEvent {
    #[serde(rename = "type")]
    kind: String,
    object: WireObject,
}

#[derive(Deserialize)]
struct WireObject {
    #[serde(default)]
    metadata: WireMeta,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize, Default)]
struct WireMeta {
    #[serde(default)]
    name: String,
}

pub async fn run(
    config: &kube::Config,
    kubeconfig: &std::path::Path,
    transport: Transport,
    opts: &WatchOptions,
) -> anyhow::Result<WatchResult> {
    let writer = Client::try_from(config.clone())?;
    let api: Api<ConfigMap> = Api::namespaced(writer.clone(), &opts.namespace);
    let from = api
        .list(&ListParams::default().limit(1))
        .await?
        .metadata
        .resource_version
        .context("list without resourceVersion")?;

    let total_writes = 1 + opts.warmup + opts.writes;
    let (established_tx, mut established_rx) = mpsc::channel(opts.watchers.max(1));
    let shared = Arc::new(Shared {
        prefix: format!("{}-", transport.prefix()),
        watchers: opts.watchers,
        counts: (0..total_writes).map(|_| AtomicUsize::new(0)).collect(),
        notify: Notify::new(),
        established: established_tx,
        errors: Mutex::new(Vec::new()),
    });
    let (stop_tx, stop_rx) = watch::channel(false);

    let setup_began = Instant::now();
    let per_connection = crate::crud::split(opts.watchers, opts.connections.max(1));
    let mut handles = Vec::with_capacity(opts.watchers);
    match transport {
        Transport::H2 => {
            let target = h2::Target::from_kubeconfig(kubeconfig)?;
            let path = format!(
                "https://{}/api/v1/namespaces/{}/configmaps?watch=true&resourceVersion={from}",
                target.authority(),
                opts.namespace
            );
            for &n in &per_connection {
                let send = target.connect().await?;
                for _ in 0..n {
                    handles.push(tokio::spawn(h2_watcher(
                        send.clone(),
                        path.clone(),
                        shared.clone(),
                        stop_rx.clone(),
                        total_writes,
                    )));
                }
            }
        }
        Transport::Kube => {
            for &n in &per_connection {
                let client = Client::try_from(config.clone())?;
                for _ in 0..n {
                    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &opts.namespace);
                    handles.push(tokio::spawn(kube_watcher(
                        api,
                        from.clone(),
                        shared.clone(),
                        stop_rx.clone(),
                        total_writes,
                    )));
                }
            }
        }
    }
    for _ in 0..opts.watchers {
        match tokio::time::timeout(Duration::from_secs(120), established_rx.recv()).await {
            Ok(Some(Ok(()))) => {}
            Ok(Some(Err(e))) => {
                let _ = stop_tx.send(true);
                anyhow::bail!("a watch failed to start: {e}");
            }
            Ok(None) | Err(_) => {
                let _ = stop_tx.send(true);
                anyhow::bail!("the watches did not all start within 120 s");
            }
        }
    }
    let setup = setup_began.elapsed();

    let pp = PostParams::default();
    let mut sends = Vec::with_capacity(total_writes);
    let mut acks = Vec::with_capacity(total_writes);
    let mut meter = None;
    let mut write_latency = Vec::with_capacity(opts.writes);
    for seq in 0..total_writes {
        let name = format!("{}{seq}", shared.prefix);
        let cm = config_map(&name, None, seq, opts.value_bytes);
        if seq == opts.warmup + 1 {
            meter = Some(CpuMeter::start(opts.hub_pid));
        }
        let sent = Instant::now();
        sends.push(sent);
        api.create(&pp, &cm)
            .await
            .with_context(|| format!("watch write {seq}"))?;
        let ack = Instant::now();
        acks.push(ack);
        if seq > opts.warmup {
            write_latency.push(ack - sent);
        }
        // The first write also proves that every watch is live; allow it more time.
        let wait = if seq == 0 {
            Duration::from_secs(60)
        } else {
            Duration::from_secs(30)
        };
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = shared.notify.notified();
            if shared.counts[seq].load(Ordering::Acquire) >= opts.watchers {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                shared.error(format!(
                    "write {seq}: only {} of {} watchers got the event within {wait:?}",
                    shared.counts[seq].load(Ordering::Acquire),
                    opts.watchers
                ));
                break;
            }
        }
    }
    let cpu = meter.map(|m| m.stop()).unwrap_or_default();
    let _ = stop_tx.send(true);

    let mut delivery = Vec::with_capacity(opts.watchers * opts.writes);
    let mut last: Vec<Option<Instant>> = vec![None; total_writes];
    for handle in handles {
        let log = handle.await.context("a watcher panicked")?;
        for (seq, at) in log {
            let seq = seq as usize;
            if seq <= opts.warmup || seq >= total_writes {
                continue;
            }
            delivery.push(signed_micros(at, acks[seq]));
            last[seq] = Some(last[seq].map_or(at, |l| l.max(at)));
        }
    }
    let all: Vec<i64> = (opts.warmup + 1..total_writes)
        .filter_map(|seq| last[seq].map(|at| signed_micros(at, acks[seq])))
        .collect();
    let send_all: Vec<i64> = (opts.warmup + 1..total_writes)
        .filter_map(|seq| last[seq].map(|at| signed_micros(at, sends[seq])))
        .collect();
    let errors = std::mem::take(&mut *shared.errors.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(WatchResult {
        transport,
        watchers: opts.watchers,
        connections: match transport {
            Transport::H2 => per_connection.len(),
            Transport::Kube => opts.watchers,
        },
        writes: opts.writes,
        setup,
        write: Summary::of_durations(&write_latency),
        delivered: delivery.len(),
        expected: opts.watchers * opts.writes,
        delivery: Summary::of(delivery),
        all: Summary::of(all),
        send_all: Summary::of(send_all),
        cpu,
        errors,
    })
}

async fn h2_watcher(
    mut send: hyper::client::conn::http2::SendRequest<Empty<bytes::Bytes>>,
    uri: String,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    capacity: usize,
) -> Vec<(u32, Instant)> {
    let mut log = Vec::with_capacity(capacity);
    let started = async {
        send.ready().await.map_err(|e| format!("connection not ready: {e}"))?;
        let request = http::Request::get(uri.as_str())
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let response = send.send_request(request).await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("watch answered {}", response.status()));
        }
        Ok(response.into_body())
    }
    .await;
    let mut body = match started {
        Ok(body) => {
            let _ = shared.established.send(Ok(())).await;
            body
        }
        Err(e) => {
            let _ = shared.established.send(Err(e)).await;
            return log;
        }
    };
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        let frame = tokio::select! {
            biased;
            _ = stop.changed() => break,
            frame = body.frame() => frame,
        };
        let at = Instant::now();
        let data = match frame {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                Err(_) => continue,
            },
            Some(Err(e)) => {
                shared.error(format!("watch stream error: {e}"));
                break;
            }
            None => {
                if !*stop.borrow() {
                    shared.error("watch stream ended early".to_string());
                }
                break;
            }
        };
        buf.extend_from_slice(&data);
        while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<WireEvent>(&line) {
                Ok(ev) if ev.kind == "ERROR" => {
                    shared.error(format!("watch ERROR event: {}", ev.object.message.unwrap_or_default()))
                }
                Ok(ev) => shared.delivered(&ev.object.metadata.name, at, &mut log),
                Err(e) => shared.error(format!("undecodable watch line: {e}")),
            }
        }
    }
    log
}

async fn kube_watcher(
    api: Api<ConfigMap>,
    from: String,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    capacity: usize,
) -> Vec<(u32, Instant)> {
    let mut log = Vec::with_capacity(capacity);
    let stream = match api.watch(&WatchParams::default().timeout(290), &from).await {
        Ok(stream) => {
            let _ = shared.established.send(Ok(())).await;
            stream
        }
        Err(e) => {
            let _ = shared.established.send(Err(e.to_string())).await;
            return log;
        }
    };
    let mut stream = std::pin::pin!(stream);
    loop {
        let event = tokio::select! {
            biased;
            _ = stop.changed() => break,
            event = stream.next() => event,
        };
        let at = Instant::now();
        match event {
            Some(Ok(WatchEvent::Added(cm) | WatchEvent::Modified(cm))) => {
                shared.delivered(cm.metadata.name.as_deref().unwrap_or_default(), at, &mut log)
            }
            Some(Ok(WatchEvent::Error(status))) => shared.error(format!("watch ERROR event: {}", status.message)),
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                shared.error(format!("watch stream error: {e}"));
                break;
            }
            None => {
                if !*stop.borrow() {
                    shared.error("watch stream ended early".to_string());
                }
                break;
            }
        }
    }
    log
}

/// Watches that stay open on a namespace nobody writes to, while other phases run: what
/// unrelated watches cost the hub's write and read paths.
pub struct IdleWatches {
    stop: watch::Sender<bool>,
    handles: Vec<tokio::task::JoinHandle<usize>>,
}

impl IdleWatches {
    pub async fn open(
        kubeconfig: &std::path::Path,
        namespace: &str,
        from: &str,
        watchers: usize,
        connections: usize,
    ) -> anyhow::Result<IdleWatches> {
        let target = h2::Target::from_kubeconfig(kubeconfig)?;
        let uri = format!(
            "https://{}/api/v1/namespaces/{namespace}/configmaps?watch=true&resourceVersion={from}",
            target.authority()
        );
        let (stop, stop_rx) = watch::channel(false);
        let mut handles = Vec::with_capacity(watchers);
        let (ready_tx, mut ready_rx) = mpsc::channel::<Result<(), String>>(watchers.max(1));
        for n in crate::crud::split(watchers, connections.max(1)) {
            let send = target.connect().await?;
            for _ in 0..n {
                let mut send = send.clone();
                let uri = uri.clone();
                let ready = ready_tx.clone();
                let mut stop = stop_rx.clone();
                handles.push(tokio::spawn(async move {
                    let started = async {
                        send.ready().await.map_err(|e| e.to_string())?;
                        let request = http::Request::get(uri.as_str())
                            .body(Empty::new())
                            .map_err(|e| e.to_string())?;
                        let response = send.send_request(request).await.map_err(|e| e.to_string())?;
                        if !response.status().is_success() {
                            return Err(format!("watch answered {}", response.status()));
                        }
                        Ok(response.into_body())
                    }
                    .await;
                    let mut body = match started {
                        Ok(body) => {
                            let _ = ready.send(Ok(())).await;
                            body
                        }
                        Err(e) => {
                            let _ = ready.send(Err(e)).await;
                            return 0;
                        }
                    };
                    let mut bytes = 0;
                    loop {
                        tokio::select! {
                            _ = stop.changed() => break,
                            frame = body.frame() => match frame {
                                Some(Ok(frame)) => bytes += frame.data_ref().map_or(0, |d| d.len()),
                                _ => break,
                            },
                        }
                    }
                    bytes
                }));
            }
        }
        for _ in 0..watchers {
            match tokio::time::timeout(Duration::from_secs(120), ready_rx.recv()).await {
                Ok(Some(Ok(()))) => {}
                Ok(Some(Err(e))) => anyhow::bail!("an idle watch failed to start: {e}"),
                _ => anyhow::bail!("the idle watches did not all start within 120 s"),
            }
        }
        Ok(IdleWatches { stop, handles })
    }

    /// Closes the watches; returns how many bytes they received in all (expected: none).
    pub async fn close(self) -> usize {
        let _ = self.stop.send(true);
        let mut total = 0;
        for h in self.handles {
            total += h.await.unwrap_or(0);
        }
        total
    }
}
