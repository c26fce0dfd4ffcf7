//! Create, update, get and list throughput and latency, driven through kube-rs.
//!
//! Each "client" is its own `kube::Client` (its own connection pool, so its own TLS
//! connection) running operations back to back. A phase runs a fixed number of operations
//! split evenly across the clients; throughput is successful operations over the phase's wall
//! time, from the moment all clients are released to the moment the last one finishes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ListParams, ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::Barrier;

use faros_bench::hub::{CpuMeter, CpuUse};
use faros_bench::stats::Summary;

#[derive(Debug, Clone)]
pub struct PhaseResult {
    pub op: &'static str,
    pub clients: usize,
    pub ops: usize,
    pub ok: usize,
    pub wall: Duration,
    pub latency: Summary,
    /// Failures by class ("409 Conflict", "transport", ...) with one example message each.
    pub errors: BTreeMap<String, (usize, String)>,
    /// CPU the hub and the bench used during the phase, in cores.
    pub cpu: CpuUse,
}

impl PhaseResult {
    pub fn throughput(&self) -> f64 {
        self.ok as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    pub fn error_count(&self) -> usize {
        self.errors.values().map(|(n, _)| n).sum()
    }
}

/// What one worker did in one phase.
struct WorkerOutcome {
    latencies: Vec<Duration>,
    errors: Vec<(String, String)>,
    /// The objects the worker owns afterwards, with their latest resourceVersion.
    owned: Vec<(String, String)>,
}

pub fn config_map(name: &str, resource_version: Option<String>, seq: usize, value_bytes: usize) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            resource_version,
            labels: Some([("app".to_string(), "faros-bench".to_string())].into()),
            ..Default::default()
        },
        data: Some(
            [
                ("seq".to_string(), seq.to_string()),
                ("payload".to_string(), "x".repeat(value_bytes)),
            ]
            .into(),
        ),
        ..Default::default()
    }
}

fn classify(e: &kube::Error) -> (String, String) {
    match e {
        kube::Error::Api(status) => (format!("{} {}", status.code, status.reason), status.message.clone()),
        other => {
            let mut msg = other.to_string();
            msg.truncate(300);
            ("transport".to_string(), msg)
        }
    }
}

/// Sends `request` and reads its answer to the end without keeping it: the bytes read, or
/// the failure as [`classify`] names it (a status other than 200 by its code).
async fn drain(client: &Client, request: http::Request<Vec<u8>>) -> Result<usize, (String, String)> {
    use http_body_util::BodyExt;
    let transport = |e: &dyn std::fmt::Display| ("transport".to_string(), e.to_string());
    let response = client
        .send(request.map(kube::client::Body::from))
        .await
        .map_err(|e| classify(&e))?;
    if response.status() != http::StatusCode::OK {
        return Err((response.status().to_string(), String::new()));
    }
    let mut body = response.into_body();
    let mut read = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| transport(&e))?;
        read += frame.data_ref().map_or(0, |data| data.len());
    }
    Ok(read)
}

/// Splits `total` operations over `clients` workers as evenly as possible.
pub fn split(total: usize, clients: usize) -> Vec<usize> {
    (0..clients)
        .map(|w| total / clients + usize::from(w < total % clients))
        .collect()
}

pub struct Level {
    pub clients: Vec<Client>,
    pub hub_pid: u32,
    pub namespace: String,
    pub list_namespace: String,
    pub list_size: usize,
    pub value_bytes: usize,
    /// Per worker: the objects it created and their current resourceVersions.
    owned: Vec<Vec<(String, String)>>,
}

impl Level {
    pub async fn new(
        config: &kube::Config,
        hub_pid: u32,
        clients: usize,
        namespace: &str,
        list_namespace: &str,
        list_size: usize,
        value_bytes: usize,
    ) -> anyhow::Result<Level> {
        let mut all = Vec::with_capacity(clients);
        for _ in 0..clients {
            all.push(Client::try_from(config.clone())?);
        }
        // Open every client's connection before anything is timed.
        let warm = all.iter().map(|c| {
            let api: Api<ConfigMap> = Api::namespaced(c.clone(), namespace);
            async move { api.list(&ListParams::default().limit(1)).await }
        });
        for r in futures::future::join_all(warm).await {
            r.context("warming up a client")?;
        }
        Ok(Level {
            owned: vec![Vec::new(); all.len()],
            clients: all,
            hub_pid,
            namespace: namespace.to_string(),
            list_namespace: list_namespace.to_string(),
            list_size,
            value_bytes,
        })
    }

    pub async fn create(&mut self, ops: usize) -> anyhow::Result<PhaseResult> {
        let n = self.clients.len();
        let value_bytes = self.value_bytes;
        self.run("create", ops, move |w, api, count, _owned| async move {
            let mut out = WorkerOutcome::new(count);
            let pp = PostParams::default();
            for i in 0..count {
                let name = format!("c{n}-w{w}-{i}");
                let cm = config_map(&name, None, i, value_bytes);
                let began = Instant::now();
                match api.create(&pp, &cm).await {
                    Ok(created) => {
                        out.latencies.push(began.elapsed());
                        out.owned
                            .push((name, created.metadata.resource_version.unwrap_or_default()));
                    }
                    Err(e) => out.errors.push(classify(&e)),
                }
            }
            out
        })
        .await
    }

    pub async fn update(&mut self, ops: usize) -> anyhow::Result<PhaseResult> {
        let value_bytes = self.value_bytes;
        self.run("update", ops, move |_w, api, count, mut owned| async move {
            let mut out = WorkerOutcome::new(count);
            let pp = PostParams::default();
            if owned.is_empty() {
                out.owned = owned;
                return out;
            }
            for i in 0..count {
                let slot = i % owned.len();
                let (name, rv) = owned[slot].clone();
                let cm = config_map(&name, Some(rv), i + 1, value_bytes);
                let began = Instant::now();
                match api.replace(&name, &pp, &cm).await {
                    Ok(updated) => {
                        out.latencies.push(began.elapsed());
                        owned[slot].1 = updated.metadata.resource_version.unwrap_or_default();
                    }
                    Err(e) => out.errors.push(classify(&e)),
                }
            }
            out.owned = owned;
            out
        })
        .await
    }

    pub async fn get(&mut self, ops: usize) -> anyhow::Result<PhaseResult> {
        self.run("get", ops, move |_w, api, count, owned| async move {
            let mut out = WorkerOutcome::new(count);
            if !owned.is_empty() {
                for i in 0..count {
                    let name = &owned[i % owned.len()].0;
                    let began = Instant::now();
                    match api.get(name).await {
                        Ok(_) => out.latencies.push(began.elapsed()),
                        Err(e) => out.errors.push(classify(&e)),
                    }
                }
            }
            out.owned = owned;
            out
        })
        .await
    }

    /// Lists of the whole list namespace. The responses are read to their last byte but
    /// neither kept nor decoded (except the first, which checks the item count), so that the
    /// client's copies and JSON decoding do not compete with the hub for the same cores.
    pub async fn list(&mut self, ops: usize) -> anyhow::Result<PhaseResult> {
        let path = format!("/api/v1/namespaces/{}/configmaps", self.list_namespace);
        let check: Api<ConfigMap> = Api::namespaced(self.clients[0].clone(), &self.list_namespace);
        let items = check.list(&ListParams::default()).await?.items.len();
        anyhow::ensure!(
            items == self.list_size,
            "the list namespace holds {items} ConfigMaps, expected {}",
            self.list_size
        );
        self.run("list", ops, move |_w, api, count, owned| {
            let path = path.clone();
            async move {
                let mut out = WorkerOutcome::new(count);
                let client: Client = api.into_client();
                for _ in 0..count {
                    let began = Instant::now();
                    let request = http::Request::get(&path).body(Vec::new()).expect("valid request");
                    match drain(&client, request).await {
                        Ok(read) if read > 2 => out.latencies.push(began.elapsed()),
                        Ok(_) => out.errors.push(("empty body".into(), String::new())),
                        Err(e) => out.errors.push(e),
                    }
                }
                out.owned = owned;
                out
            }
        })
        .await
    }

    async fn run<F, Fut>(&mut self, op: &'static str, ops: usize, work: F) -> anyhow::Result<PhaseResult>
    where
        F: Fn(usize, Api<ConfigMap>, usize, Vec<(String, String)>) -> Fut,
        Fut: std::future::Future<Output = WorkerOutcome> + Send + 'static,
    {
        let counts = split(ops, self.clients.len());
        let barrier = Arc::new(Barrier::new(self.clients.len() + 1));
        let mut handles = Vec::with_capacity(self.clients.len());
        for (w, client) in self.clients.iter().enumerate() {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), &self.namespace);
            let fut = work(w, api, counts[w], std::mem::take(&mut self.owned[w]));
            let barrier = barrier.clone();
            handles.push(tokio::spawn(async move {
                barrier.wait().await;
                fut.await
            }));
        }
        barrier.wait().await;
        let began = Instant::now();
        let meter = CpuMeter::start(self.hub_pid);
        let outcomes = futures::future::join_all(handles).await;
        let wall = began.elapsed();
        let cpu = meter.stop();

        let mut latencies = Vec::with_capacity(ops);
        let mut errors: BTreeMap<String, (usize, String)> = BTreeMap::new();
        for (w, outcome) in outcomes.into_iter().enumerate() {
            let outcome = outcome.context("a worker panicked")?;
            latencies.extend(outcome.latencies);
            for (class, msg) in outcome.errors {
                let entry = errors.entry(class).or_insert((0, msg));
                entry.0 += 1;
            }
            self.owned[w] = outcome.owned;
        }
        Ok(PhaseResult {
            op,
            clients: self.clients.len(),
            ops,
            ok: latencies.len(),
            wall,
            latency: Summary::of_durations(&latencies),
            errors,
            cpu,
        })
    }
}

impl WorkerOutcome {
    fn new(count: usize) -> WorkerOutcome {
        WorkerOutcome {
            latencies: Vec::with_capacity(count),
            errors: Vec::new(),
            owned: Vec::new(),
        }
    }
}

/// Creates `count` ConfigMaps named `prefix-N` in `namespace` with `parallel` concurrent
/// requests; not timed.
pub async fn populate(
    client: &Client,
    namespace: &str,
    prefix: &str,
    count: usize,
    parallel: usize,
    value_bytes: usize,
) -> anyhow::Result<()> {
    use futures::StreamExt;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let pp = PostParams::default();
    let results: Vec<_> = futures::stream::iter(0..count)
        .map(|i| {
            let api = api.clone();
            let pp = pp.clone();
            async move {
                api.create(&pp, &config_map(&format!("{prefix}-{i}"), None, i, value_bytes))
                    .await
            }
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    for r in results {
        r.with_context(|| format!("populating {namespace}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn even_split() {
        assert_eq!(split(10, 3), vec![4, 3, 3]);
        assert_eq!(split(5000, 64).iter().sum::<usize>(), 5000);
        assert_eq!(split(2, 4), vec![1, 1, 0, 0]);
    }
}
