//! The agent itself: given a client allowed to read and update its own Agent, it keeps the
//! device in line with `spec` and reports `status`, heartbeats with a Lease, and reports
//! `AgentStopped` on the way out. The same code runs once per process (`edge-agent`) or many
//! times over one client (`edge-agent simulate`).
//!
//! Writes are few: the heartbeat Lease every `heartbeatIntervalSeconds`, and Agent status
//! only when something changed, plus a report every five minutes (`lastHeartbeatTime` and
//! fresh device facts), as kubelets report node status since their heartbeats are Leases.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use faros_api::edge::{AGENT_LABEL, Agent, AgentStatus, AgentWorkload, DeviceInfo, MAX_REPORTED_WORKLOADS, reasons};
use faros_api::workloads::{ResourceList, Resources};
use faros_api::{Condition, conditions};
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use kube::api::{Api, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::workloads::WorkloadSummary;

/// How often the agent writes its status when nothing in it changed, to refresh
/// `lastHeartbeatTime` and the device facts (never more often than it heartbeats, and up to a
/// tenth sooner, at random). Liveness is
/// the Lease's: this report is a multi-kilobyte write that every Agent watcher receives, so at
/// a 10 s heartbeat it comes once per 30 renewals, as kubelets' node status does (5 min).
const STATUS_REPORT_PERIOD: Duration = Duration::from_secs(300);
/// How long the final `AgentStopped` report may take before the agent exits anyway.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Where device facts come from.
#[derive(Clone)]
pub enum Facts {
    /// This device (/proc, /etc).
    Device,
    /// A simulated device: this machine's facts under another host name.
    Simulated { hostname: String, machine: MachineFacts },
}

impl Facts {
    fn collect(&self) -> DeviceInfo {
        match self {
            Facts::Device => crate::facts::collect(),
            Facts::Simulated { hostname, machine } => {
                let mut facts = machine.get();
                facts.hostname = hostname.clone();
                facts
            }
        }
    }
}

/// This machine's facts, read at most every 10 s for all the agents a simulator runs:
/// thousands of them reading /proc for the same answer would cost the simulator more than
/// their heartbeats do.
#[derive(Clone, Default)]
pub struct MachineFacts(Arc<std::sync::Mutex<Option<(Instant, DeviceInfo)>>>);

impl MachineFacts {
    const FRESH_FOR: Duration = Duration::from_secs(10);

    fn get(&self) -> DeviceInfo {
        let mut cached = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match &*cached {
            Some((read, facts)) if read.elapsed() < Self::FRESH_FOR => facts.clone(),
            _ => {
                let facts = crate::facts::collect();
                *cached = Some((Instant::now(), facts.clone()));
                facts
            }
        }
    }
}

#[derive(Clone)]
pub struct AgentContext {
    pub client: Client,
    pub namespace: String,
    pub name: String,
    pub facts: Facts,
    /// Where the applied labels and configuration are written for the device's software.
    pub applied_file: Option<PathBuf>,
    /// What the agent reports about workloads (none: it runs none).
    pub workloads: Option<WorkloadReport>,
}

/// Where the workload part of the Agent's status comes from.
#[derive(Clone)]
pub struct WorkloadReport {
    /// Overrides of the device's capacity (from the facts otherwise).
    pub capacity: Capacity,
    /// What the device keeps for itself; allocatable is capacity less this.
    pub reserved: Resources,
    pub runtimes: Vec<String>,
    pub summary: watch::Receiver<WorkloadSummary>,
}

/// Capacity given on the command line, per resource; unset ones come from device facts.
#[derive(Clone, Copy, Debug, Default)]
pub struct Capacity {
    pub cpu_millis: Option<i64>,
    pub memory_bytes: Option<i64>,
}

/// The workload fields of an Agent's status, resolved.
#[derive(Clone, Debug, PartialEq)]
struct WorkloadView {
    capacity: Resources,
    allocatable: Resources,
    allocated: Resources,
    runtimes: Vec<String>,
    workloads: Vec<AgentWorkload>,
}

impl WorkloadReport {
    fn view(&self, facts: &DeviceInfo) -> WorkloadView {
        let capacity = Resources {
            cpu_millis: self.capacity.cpu_millis.unwrap_or(facts.cpus.saturating_mul(1000)),
            memory_bytes: self.capacity.memory_bytes.unwrap_or(facts.memory_bytes),
        };
        let summary = self.summary.borrow();
        WorkloadView {
            capacity,
            allocatable: capacity.minus(&self.reserved),
            allocated: summary.allocated,
            runtimes: self.runtimes.clone(),
            workloads: summary.workloads.clone(),
        }
    }
}

/// Resolves when the workload summary changes; never when there is none (or no more).
async fn summary_changed(report: &mut Option<watch::Receiver<WorkloadSummary>>) {
    let open = match report.as_mut() {
        Some(rx) => rx.changed().await.is_ok(),
        None => std::future::pending().await,
    };
    if !open {
        *report = None;
    }
}

/// Feeds `tx` with the Agent `name` as a watch on that one object sees it (`None` once it is
/// gone). The watcher relists after 410 and reconnects with capped, jittered backoff.
pub async fn watch_own(api: Api<Agent>, name: String, tx: watch::Sender<Option<Agent>>) {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = watcher::watcher(api, config).default_backoff().boxed();
    let mut seen_in_list = false;
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Init) => seen_in_list = false,
            Ok(Event::InitApply(agent)) | Ok(Event::Apply(agent)) => {
                seen_in_list = true;
                tx.send_replace(Some(without_managed_fields(agent)));
            }
            Ok(Event::InitDone) => {
                if !seen_in_list {
                    tx.send_replace(None);
                }
            }
            Ok(Event::Delete(_)) => {
                tx.send_replace(None);
            }
            Err(e) => tracing::debug!(agent = %name, error = %e, "watch failed; retrying"),
        }
        if tx.is_closed() {
            return;
        }
    }
}

/// What the agent has applied of its spec.
#[derive(Clone, Debug, Default, PartialEq)]
struct Applied {
    labels: BTreeMap<String, String>,
    config: BTreeMap<String, String>,
    interval_seconds: i64,
    paused: bool,
    generation: Option<i64>,
}

impl Applied {
    fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_seconds.clamp(1, 3600) as u64)
    }

    /// What a restarted agent had applied, from the status it reported.
    fn from_status(status: &AgentStatus) -> Applied {
        Applied {
            labels: status.labels.clone(),
            config: status.config.clone(),
            interval_seconds: status
                .heartbeat_interval_seconds
                .unwrap_or(faros_api::edge::DEFAULT_HEARTBEAT_INTERVAL_SECONDS),
            paused: status.paused,
            generation: status.observed_generation,
        }
    }

    /// Applies `agent.spec` unless the agent was already paused. Pausing applies the spec of
    /// the pausing generation; while paused nothing changes and `observedGeneration` stays.
    fn apply(&mut self, agent: &Agent) -> bool {
        if agent.spec.paused && self.paused {
            return false;
        }
        let next = Applied {
            labels: agent.spec.labels.clone(),
            config: agent.spec.config.clone(),
            interval_seconds: agent.spec.heartbeat_interval().as_secs() as i64,
            paused: agent.spec.paused,
            generation: agent.metadata.generation,
        };
        let changed = next != *self;
        *self = next;
        changed
    }
}

/// The status the agent reports: `current` with everything it owns replaced.
fn desired_status(
    current: Option<&AgentStatus>,
    applied: &Applied,
    facts: &DeviceInfo,
    workloads: Option<&WorkloadView>,
    now: &str,
) -> AgentStatus {
    let mut status = current.cloned().unwrap_or_default();
    let (reason, message) = if applied.paused {
        (
            reasons::AGENT_PAUSED,
            "the agent is paused: it reports but applies no spec changes",
        )
    } else {
        (reasons::AGENT_READY, "the agent applied its spec and is reporting")
    };
    let mut ready = Condition::new(reasons::READY, true, reason, message);
    ready.observed_generation = applied.generation;
    conditions::set_condition(&mut status.conditions, ready, now);
    status.observed_generation = applied.generation;
    status.device = Some(facts.clone());
    status.labels = applied.labels.clone();
    status.config = applied.config.clone();
    status.paused = applied.paused;
    status.heartbeat_interval_seconds = Some(applied.interval_seconds);
    if let Some(w) = workloads {
        status.capacity = ResourceList::of(w.capacity);
        status.allocatable = ResourceList::of(w.allocatable);
        status.allocated = ResourceList::of(w.allocated);
        status.runtimes = w.runtimes.clone();
        status.workload_count = Some(i32::try_from(w.workloads.len()).unwrap_or(i32::MAX));
        status.workloads = w.workloads.iter().take(MAX_REPORTED_WORKLOADS).cloned().collect();
    }
    status
}

fn now_rfc3339() -> String {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second()).unwrap_or(now).to_string()
}

fn resource_version(agent: &Agent) -> u64 {
    agent.resource_version().and_then(|rv| rv.parse().ok()).unwrap_or(0)
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// The heartbeat Lease, cached between renewals as kubelets cache theirs.
struct Heartbeat {
    api: Api<Lease>,
    name: String,
    agent: String,
    /// Without its managedFields (see [`without_managed_fields`]).
    cached: Option<Lease>,
}

/// `object` as the agent keeps it (its Lease, its Agent): without its managedFields. The agent
/// never reads them, and an update that carries none keeps the stored ones, so sending them
/// back with every write would only make each one larger to encode, send and decode, on the
/// device and on the hub.
pub(crate) fn without_managed_fields<K: kube::Resource>(mut object: K) -> K {
    object.meta_mut().managed_fields = None;
    object
}

impl Heartbeat {
    /// Renews the Lease, creating it (owned by the Agent with uid `owner`, so it goes with
    /// the Agent) if needed.
    async fn renew(&mut self, interval: Duration, owner: Option<String>) -> Result<(), kube::Error> {
        let now = MicroTime(jiff::Timestamp::now());
        let spec = |previous: Option<&LeaseSpec>| LeaseSpec {
            holder_identity: Some(self.agent.clone()),
            // Informational, as a node Lease's 40 s: the hub applies its own grace period.
            lease_duration_seconds: Some((interval.as_secs() * 4) as i32),
            acquire_time: previous.and_then(|p| p.acquire_time.clone()).or(Some(now.clone())),
            renew_time: Some(now.clone()),
            ..Default::default()
        };
        let lease = match self.cached.take() {
            Some(lease) => lease,
            None => match self.api.get_opt(&self.name).await? {
                Some(lease) => without_managed_fields(lease),
                None => {
                    let lease = Lease {
                        metadata: ObjectMeta {
                            name: Some(self.name.clone()),
                            labels: Some([(AGENT_LABEL.to_string(), self.agent.clone())].into()),
                            owner_references: owner.map(|uid| {
                                vec![OwnerReference {
                                    api_version: format!("{}/{}", faros_api::EDGE_GROUP, faros_api::EDGE_VERSION),
                                    kind: "Agent".into(),
                                    name: self.agent.clone(),
                                    uid,
                                    ..Default::default()
                                }]
                            }),
                            ..Default::default()
                        },
                        spec: Some(spec(None)),
                    };
                    match self.api.create(&PostParams::default(), &lease).await {
                        Ok(created) => {
                            self.cached = Some(without_managed_fields(created));
                            return Ok(());
                        }
                        Err(e) if is_conflict(&e) => without_managed_fields(self.api.get(&self.name).await?),
                        Err(e) => return Err(e),
                    }
                }
            },
        };
        let mut renewed = lease;
        renewed.spec = Some(spec(renewed.spec.as_ref()));
        renewed
            .metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(AGENT_LABEL.to_string(), self.agent.clone());
        match self.api.replace(&self.name, &PostParams::default(), &renewed).await {
            Ok(stored) => {
                self.cached = Some(without_managed_fields(stored));
                Ok(())
            }
            // Someone else wrote it, or it was deleted: the next renewal starts afresh.
            Err(e) if is_conflict(&e) || is_not_found(&e) => Err(e),
            Err(e) => {
                self.cached = Some(renewed);
                Err(e)
            }
        }
    }
}

/// Runs the agent until `shutdown` flips, then reports `AgentStopped`.
pub async fn run(
    ctx: AgentContext,
    mut objects: watch::Receiver<Option<Agent>>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let agents: Api<Agent> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let mut heartbeat = Heartbeat {
        api: Api::namespaced(ctx.client.clone(), &ctx.namespace),
        name: faros_api::edge::lease_name(&ctx.name),
        agent: ctx.name.clone(),
        cached: None,
    };
    let mut applied: Option<Applied> = None;
    let mut facts = ctx.facts.collect();
    // The newest copy of the Agent: from the watch, or from the agent's own last write.
    let mut written: Option<Box<Agent>> = None;
    let mut last_status_write: Option<Instant> = None;
    let mut retry_at: Option<Instant> = None;
    let mut status_backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    // Drawn again after every write: devices that started together (a site powering up, a
    // simulator) spread their periodic reports out rather than sending them all at once.
    let mut report_jitter = crate::backoff::spread(STATUS_REPORT_PERIOD / 10);
    let mut lease_failures = 0u32;
    let mut next_lease = Instant::now();
    let mut last_lease_attempt: Option<Instant> = None;
    let mut dirty = true;
    let mut missing_logged = false;
    let mut summary = ctx.workloads.as_ref().map(|w| w.summary.clone());
    loop {
        let interval = applied
            .as_ref()
            .map(Applied::interval)
            .unwrap_or_else(|| faros_api::edge::AgentSpec::default().heartbeat_interval());
        // A shorter interval applies to the renewal already scheduled: the status says the
        // new one, and the hub judges the heartbeats by it at once.
        next_lease = next_renewal(next_lease, last_lease_attempt, interval);
        let status_every = STATUS_REPORT_PERIOD.saturating_sub(report_jitter).max(interval);
        // A failed write waits out its backoff before the periodic write is due again.
        let next_status = retry_at.or_else(|| last_status_write.map(|t| t + status_every));
        // Nothing is written while the Agent is not there (not yet, or deleted): then only
        // its arrival wakes the loop.
        let known = objects.borrow().is_some();
        let wake = [known.then_some(next_lease), next_status.filter(|_| known)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            biased;
            _ = async { shutdown.wait_for(|stop| *stop).await.map(|_| ()) } => {
                let latest = newest(objects.borrow().as_ref(), written.as_deref()).cloned();
                let workloads = ctx.workloads.as_ref().map(|w| w.view(&facts));
                Box::pin(stop(&agents, &ctx.name, latest, applied.as_ref(), &facts, workloads.as_ref())).await;
                return Ok(());
            }
            changed = objects.changed() => {
                if changed.is_err() {
                    anyhow::bail!("the watch of agent {} ended", ctx.name);
                }
                dirty = true;
            }
            _ = summary_changed(&mut summary) => dirty = true,
            _ = tokio::time::sleep_until(wake) => {}
        }
        let now = Instant::now();
        // A heartbeat needs only to know the Agent is there (and its uid, to own a new
        // Lease): the Agent is copied only when its status is written, not every interval.
        let owner = newest(objects.borrow().as_ref(), written.as_deref()).map(|a| a.uid());
        if let Some(owner) = owner.clone().filter(|_| now >= next_lease) {
            // Renewed before status is written, so the hub never sees Ready=True with a
            // stale heartbeat.
            last_lease_attempt = Some(now);
            let limit = write_timeout(interval);
            // The requests are boxed, here and below: a future holds every request it may await
            // inline, and a simulator keeps a hundred thousand agents waiting between them.
            match tokio::time::timeout(limit, Box::pin(heartbeat.renew(interval, owner))).await {
                Ok(Ok(())) => {
                    if lease_failures > 2 {
                        tracing::info!(agent = %ctx.name, "heartbeat renewed again");
                    }
                    lease_failures = 0;
                    next_lease = now + interval;
                }
                Err(_) => {
                    lease_failures += 1;
                    tracing::warn!(agent = %ctx.name, failures = lease_failures, "the hub did not answer the heartbeat within {limit:?}; retrying");
                    next_lease = Instant::now().max(now + interval);
                }
                Ok(Err(e)) => {
                    lease_failures += 1;
                    // A Lease written meanwhile or gone (deleted, or collected) is read or
                    // created afresh at once; anything else waits its turn.
                    let transient = (is_conflict(&e) || is_not_found(&e)) && lease_failures < 3;
                    if transient {
                        tracing::debug!(agent = %ctx.name, error = %e, "heartbeat raced; retrying at once");
                    } else if lease_failures == 1 || lease_failures.is_power_of_two() {
                        tracing::warn!(agent = %ctx.name, error = %e, failures = lease_failures, "heartbeat failed; retrying");
                    }
                    next_lease = if transient { now } else { now + interval };
                }
            }
        }
        // Most wake-ups are heartbeats with no status due: the Agent, device facts and all,
        // is copied only to write its status.
        if newest(objects.borrow().as_ref(), written.as_deref()).is_none() {
            if !missing_logged && objects.borrow().is_none() && dirty {
                if written.is_some() || applied.is_some() {
                    tracing::warn!(agent = %ctx.name, "the Agent object is gone; waiting for it to come back");
                } else {
                    tracing::debug!(agent = %ctx.name, "waiting for the Agent object");
                }
                missing_logged = true;
            }
            continue;
        }
        missing_logged = false;
        let backing_off = retry_at.is_some_and(|t| now < t);
        let forced = !backing_off && last_status_write.is_none_or(|t| now >= t + status_every);
        let retry_due = retry_at.is_some_and(|t| now >= t);
        if !(dirty || forced || retry_due) {
            continue;
        }
        dirty = false;
        // Scoped so that only the Agent to write is held while the write is awaited.
        let updated = {
            let Some(agent) = newest(objects.borrow().as_ref(), written.as_deref()).cloned() else {
                continue;
            };
            let state = applied.get_or_insert_with(|| Applied::from_status(&agent.status.clone().unwrap_or_default()));
            if state.apply(&agent) {
                tracing::info!(
                    agent = %ctx.name,
                    generation = agent.metadata.generation.unwrap_or_default(),
                    paused = state.paused,
                    "applied the spec"
                );
                if let Some(path) = &ctx.applied_file {
                    write_applied(path, state);
                }
            }
            if forced {
                facts = ctx.facts.collect();
            }
            let stamp = now_rfc3339();
            let workloads = ctx.workloads.as_ref().map(|w| w.view(&facts));
            let mut status = desired_status(agent.status.as_ref(), state, &facts, workloads.as_ref(), &stamp);
            if !forced && agent.status.as_ref() == Some(&status) {
                retry_at = None;
                continue;
            }
            status.last_heartbeat_time = Some(stamp);
            let mut updated = without_managed_fields(agent);
            updated.status = Some(status);
            Box::new(updated)
        };
        let limit = write_timeout(interval);
        let written_status = match tokio::time::timeout(
            limit,
            Box::pin(agents.replace_status(&ctx.name, &PostParams::default(), &updated)),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => {
                let delay = status_backoff.next_delay();
                tracing::warn!(agent = %ctx.name, retry_in_ms = delay.as_millis() as u64, "the hub did not answer the status update within {limit:?}");
                retry_at = Some(Instant::now() + delay);
                continue;
            }
        };
        match written_status {
            Ok(stored) => {
                written = Some(Box::new(without_managed_fields(stored)));
                last_status_write = Some(now);
                report_jitter = crate::backoff::spread(STATUS_REPORT_PERIOD / 10);
                retry_at = None;
                status_backoff.reset();
            }
            Err(e) if is_conflict(&e) => {
                // A newer Agent is on its way through the watch; fetch it to be sure.
                if let Ok(fresh) = Box::pin(agents.get(&ctx.name)).await {
                    written = Some(Box::new(without_managed_fields(fresh)));
                }
                retry_at = Some(now + Duration::from_millis(50));
            }
            Err(e) => {
                let delay = status_backoff.next_delay();
                tracing::warn!(agent = %ctx.name, error = %e, retry_in_ms = delay.as_millis() as u64, "status update failed");
                retry_at = Some(now + delay);
            }
        }
    }
}

/// How long one heartbeat or status write may take before it counts as failed, so that a hub
/// (or its store) that hangs does not hold up the heartbeats behind it: twice the interval,
/// at least 5 s, at most 30 s.
fn write_timeout(interval: Duration) -> Duration {
    (interval * 2).clamp(Duration::from_secs(5), Duration::from_secs(30))
}

/// When the heartbeat Lease is renewed next: as `scheduled`, or sooner when `interval` (the
/// one applied now) is due earlier after the last attempt.
fn next_renewal(scheduled: Instant, last_attempt: Option<Instant>, interval: Duration) -> Instant {
    last_attempt.map_or(scheduled, |last| scheduled.min(last + interval))
}

/// The copy with the higher resourceVersion.
fn newest<'a>(watched: Option<&'a Agent>, written: Option<&'a Agent>) -> Option<&'a Agent> {
    match (watched, written) {
        (Some(a), Some(b)) if resource_version(b) > resource_version(a) && a.uid() == b.uid() => Some(b),
        (Some(a), _) => Some(a),
        // Deleted: what was written is gone with it.
        (None, _) => None,
    }
}

/// Reports `Ready=False` (`AgentStopped`), retrying conflicts, for at most STOP_TIMEOUT.
async fn stop(
    api: &Api<Agent>,
    name: &str,
    latest: Option<Agent>,
    applied: Option<&Applied>,
    facts: &DeviceInfo,
    workloads: Option<&WorkloadView>,
) {
    let report = async {
        let mut agent = match latest {
            Some(agent) => agent,
            None => api.get(name).await?,
        };
        loop {
            let stamp = now_rfc3339();
            let mut status = match applied {
                Some(applied) => desired_status(agent.status.as_ref(), applied, facts, workloads, &stamp),
                None => agent.status.clone().unwrap_or_default(),
            };
            let stopped = Condition::new(reasons::READY, false, reasons::AGENT_STOPPED, "the agent was stopped");
            conditions::set_condition(&mut status.conditions, stopped, &stamp);
            status.last_heartbeat_time = Some(stamp);
            agent.status = Some(status);
            match api.replace_status(name, &PostParams::default(), &agent).await {
                Ok(_) => return Ok::<(), kube::Error>(()),
                Err(e) if is_conflict(&e) => agent = api.get(name).await?,
                Err(e) => return Err(e),
            }
        }
    };
    match tokio::time::timeout(STOP_TIMEOUT, report).await {
        Ok(Ok(())) => tracing::info!(agent = %name, "reported AgentStopped"),
        Ok(Err(e)) => tracing::warn!(agent = %name, error = %e, "could not report AgentStopped"),
        Err(_) => tracing::warn!(agent = %name, "the hub did not answer; stopping without reporting"),
    }
}

/// Writes the applied labels and configuration where the device's software reads them.
fn write_applied(path: &PathBuf, applied: &Applied) {
    let body = serde_json::json!({
        "generation": applied.generation,
        "labels": applied.labels,
        "config": applied.config,
        "paused": applied.paused,
        "heartbeatIntervalSeconds": applied.interval_seconds,
    });
    let tmp = path.with_extension("tmp");
    let result = std::fs::write(&tmp, format!("{body:#}\n")).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = result {
        tracing::warn!(path = %path.display(), error = %e, "could not write the applied configuration");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faros_api::edge::AgentSpec;

    /// A simulator keeps one agent loop per simulated device waiting between heartbeats:
    /// its future is most of that device's state.
    #[test]
    fn a_waiting_agent_is_small() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _entered = runtime.enter();
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let ctx = AgentContext {
            client: Client::try_from(config).unwrap(),
            namespace: "default".into(),
            name: "a1".into(),
            facts: Facts::Simulated {
                hostname: "a1".into(),
                machine: MachineFacts::default(),
            },
            applied_file: None,
            workloads: None,
        };
        let (_agents, objects) = watch::channel(None);
        let (_stop, shutdown) = watch::channel(false);
        let agent = run(ctx, objects, shutdown);
        // 13 KiB when the requests it awaits were held inline (3.7 KiB without them).
        let size = std::mem::size_of_val(&agent);
        assert!(size < 6 * 1024, "the agent's future is {size} bytes");
    }

    fn agent(generation: i64, spec: AgentSpec) -> Agent {
        let mut agent = Agent::new("a1", spec);
        agent.metadata.generation = Some(generation);
        agent
    }

    #[test]
    fn pause_freezes_the_applied_spec() {
        let mut applied = Applied::default();
        let mut spec = AgentSpec {
            heartbeat_interval_seconds: Some(5),
            labels: [("zone".to_string(), "a".to_string())].into(),
            ..Default::default()
        };
        assert!(applied.apply(&agent(1, spec.clone())));
        assert_eq!(applied.generation, Some(1));
        assert_eq!(applied.interval(), Duration::from_secs(5));
        spec.paused = true;
        assert!(applied.apply(&agent(2, spec.clone())));
        assert_eq!((applied.generation, applied.paused), (Some(2), true));
        spec.labels.insert("zone".into(), "b".into());
        assert!(!applied.apply(&agent(3, spec.clone())));
        assert_eq!(applied.labels["zone"], "a");
        assert_eq!(applied.generation, Some(2));
        spec.paused = false;
        assert!(applied.apply(&agent(4, spec)));
        assert_eq!((applied.labels["zone"].as_str(), applied.generation), ("b", Some(4)));
    }

    #[test]
    fn workloads_are_reported_with_capacity_from_facts_or_flags() {
        let (tx, rx) = watch::channel(WorkloadSummary::default());
        let mut report = WorkloadReport {
            capacity: Capacity::default(),
            reserved: Resources {
                cpu_millis: 500,
                memory_bytes: 1024,
            },
            runtimes: vec!["podman".into(), "process".into()],
            summary: rx,
        };
        let facts = DeviceInfo {
            cpus: 4,
            memory_bytes: 8192,
            ..Default::default()
        };
        let workloads: Vec<AgentWorkload> = (0..MAX_REPORTED_WORKLOADS + 3)
            .map(|i| AgentWorkload {
                workload: format!("w{i}"),
                placement: format!("w{i}-dev1"),
                phase: "Running".into(),
                ready: true,
            })
            .collect();
        tx.send_replace(WorkloadSummary {
            allocated: Resources {
                cpu_millis: 250,
                memory_bytes: 64,
            },
            workloads,
        });
        let applied = Applied::default();
        let status = desired_status(None, &applied, &facts, Some(&report.view(&facts)), "t");
        assert_eq!(status.capacity.cpu.as_ref().unwrap().0, "4");
        assert_eq!(status.capacity.memory.as_ref().unwrap().0, "8192");
        assert_eq!(status.allocatable.cpu.as_ref().unwrap().0, "3500m");
        assert_eq!(status.allocatable.memory.as_ref().unwrap().0, "7168");
        assert_eq!(status.allocated.cpu.as_ref().unwrap().0, "250m");
        assert_eq!(status.runtimes, ["podman", "process"]);
        assert_eq!(status.workloads.len(), MAX_REPORTED_WORKLOADS);
        assert_eq!(status.workload_count, Some(MAX_REPORTED_WORKLOADS as i32 + 3));
        report.capacity = Capacity {
            cpu_millis: Some(2000),
            memory_bytes: None,
        };
        let status = desired_status(None, &applied, &facts, Some(&report.view(&facts)), "t");
        assert_eq!(status.capacity.cpu.as_ref().unwrap().0, "2");
        assert_eq!(status.allocatable.cpu.as_ref().unwrap().0, "1500m");
    }

    /// An agent told to heartbeat more often renews on the new interval from its last
    /// renewal, not after the old one it had already scheduled; a longer interval waits for
    /// the renewal already due.
    #[test]
    fn a_shorter_heartbeat_interval_applies_to_the_next_renewal() {
        let renewed = Instant::now();
        let scheduled = renewed + Duration::from_secs(10);
        assert_eq!(
            next_renewal(scheduled, Some(renewed), Duration::from_secs(1)),
            renewed + Duration::from_secs(1)
        );
        assert_eq!(
            next_renewal(scheduled, Some(renewed), Duration::from_secs(30)),
            scheduled
        );
        assert_eq!(next_renewal(renewed, None, Duration::from_secs(1)), renewed);
        // A failed renewal retried at once stays at once.
        assert_eq!(next_renewal(renewed, Some(renewed), Duration::from_secs(1)), renewed);
    }

    #[test]
    fn desired_status_is_stable() {
        let applied = Applied {
            interval_seconds: 10,
            generation: Some(3),
            ..Default::default()
        };
        let facts = DeviceInfo::default();
        let first = desired_status(None, &applied, &facts, None, "t1");
        let again = desired_status(Some(&first), &applied, &facts, None, "t2");
        assert_eq!(first, again, "nothing changed, nothing to write");
        let ready = conditions::find(&first.conditions, "Ready").unwrap();
        assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("True", "AgentReady"));
        assert_eq!(first.observed_generation, Some(3));
        // A hub-set Unknown is overwritten by the agent's own report.
        let mut unknown = first.clone();
        unknown.conditions = vec![Condition::unknown("Ready", "AgentStatusUnknown", "")];
        let back = desired_status(Some(&unknown), &applied, &facts, None, "t3");
        assert_eq!(conditions::find(&back.conditions, "Ready").unwrap().status, "True");
    }
}
