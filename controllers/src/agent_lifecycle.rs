//! Agent lifecycle: marks agents that stopped heartbeating `Ready=Unknown`.
//!
//! Heartbeats are Leases (`coordination.k8s.io/v1`, `agent-<name>` in the agent's
//! namespace), as kubelets heartbeat with node Leases: a renewal is a tiny write that no
//! Agent watcher sees. The controller watches Agents and agent Leases across all workspaces
//! and, like Kubernetes' node lifecycle controller, times heartbeats by its own clock: an
//! agent's heartbeat is fresh when the controller saw its Lease's `renewTime` (or the Agent's
//! `status.lastHeartbeatTime`) change within the grace period. Device clocks may be wrong,
//! and a restarted controller gives every agent a full grace period before judging it.
//!
//! The controller only ever writes `Ready=Unknown` (reason `AgentStatusUnknown`), and the
//! phase `Unknown` on the agent's running placements; the agent sets both again itself on its
//! next status writes, so the two never fight over them.
//! An agent that reported `AgentStopped` on a clean shutdown keeps that more precise answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faros_api::edge::{AGENT_LABEL, Agent, reasons};
use faros_api::workloads::{Placement, PlacementPhase};
use faros_api::{Condition, conditions};
use futures::StreamExt;
use futures::channel::mpsc;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ListParams, ObjectMeta, Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::errors::{is_conflict, is_not_found};
use crate::runtime::{AbortOnDrop, Clusters, Partial, cluster_of, slim_metadata};
use faros_api::meta::now_rfc3339;

type Key = (String, String, String);

fn key_of<K: Resource>(object: &K) -> Key {
    (
        cluster_of(object),
        object.meta().namespace.clone().unwrap_or_default(),
        object.meta().name.clone().unwrap_or_default(),
    )
}

/// What the controller keeps of an Agent.
struct AgentEntry {
    resource_version: String,
    interval: Duration,
    conditions: Vec<Condition>,
    last_heartbeat_time: Option<String>,
    /// When this controller saw `lastHeartbeatTime` change (or first saw the agent).
    observed: Instant,
    /// The `observed` of its Lease, kept here too so that a sweep of every agent reads one
    /// map (always equal to `Observed::leases[key].observed`).
    lease_observed: Option<Instant>,
}

impl AgentEntry {
    /// When this controller last saw the agent heartbeat, by its Lease or its status.
    fn last_heartbeat(&self) -> Instant {
        self.lease_observed.map_or(self.observed, |l| l.max(self.observed))
    }
}

/// A Lease's `renewTime` and when this controller saw it change.
struct LeaseEntry {
    renew_time: Option<jiff::Timestamp>,
    observed: Instant,
}

#[derive(Default)]
struct Observed {
    agents: HashMap<Key, AgentEntry>,
    /// By the key of the Agent the Lease is the heartbeat of.
    leases: HashMap<Key, LeaseEntry>,
    agents_synced: bool,
    leases_synced: bool,
    /// The resourceVersion each agent was marked Unknown at, and when that write was answered
    /// (None while it waits or is in flight): until the watch brings the marked Agent (or a
    /// later one), a sweep does not mark it again.
    marked: HashMap<Key, (String, Option<Instant>)>,
}

impl Observed {
    /// Copies every Lease's `observed` into its agent's entry (after a relist of either).
    fn link_leases(&mut self) {
        for (key, agent) in &mut self.agents {
            agent.lease_observed = self.leases.get(key).map(|l| l.observed);
        }
    }

    /// Records what the watch says of the agent at `key` now; a mark of it is settled.
    fn set_agent(&mut self, key: Key, mut agent: AgentEntry) {
        agent.lease_observed = self.leases.get(&key).map(|l| l.observed);
        self.marked.remove(&key);
        self.agents.insert(key, agent);
    }

    /// Whether `agent` is as it was judged: no heartbeat and no other change since.
    fn still_stale(&self, agent: &Stale) -> bool {
        self.agents
            .get(&agent.key)
            .is_some_and(|a| a.resource_version == agent.resource_version && a.last_heartbeat() == agent.last_heartbeat)
    }

    /// The write marking the agent at `key` was answered `at`, whatever it answered.
    fn answered(&mut self, key: &Key, at: Instant) {
        if let Some((_, answered)) = self.marked.get_mut(key) {
            *answered = Some(at);
        }
    }

    /// Records `lease` (or its deletion) as the heartbeat of the agent at `key`.
    fn set_lease(&mut self, key: Key, lease: Option<LeaseEntry>) {
        if let Some(agent) = self.agents.get_mut(&key) {
            agent.lease_observed = lease.as_ref().map(|l| l.observed);
        }
        match lease {
            Some(lease) => self.leases.insert(key, lease),
            None => self.leases.remove(&key),
        };
    }
}

/// How long after its write was answered a mark that did not show up on the watch waits
/// before it is written again (a write that failed, or a watch that fell behind).
const REMARK_AFTER: Duration = Duration::from_secs(5);

pub(crate) async fn run(clusters: Clusters, grace: Duration) {
    let state = Arc::new(Mutex::new(Observed::default()));
    // The watches end with this controller, as its other work does.
    let _agents = AbortOnDrop(tokio::spawn(watch_agents(clusters.clone(), state.clone())));
    let _leases = AbortOnDrop(tokio::spawn(watch_leases(clusters.clone(), state.clone())));
    // Sweeping, marking agents and marking their placements are three stages joined by
    // queues, so none waits for another's batch to finish: when a site goes dark, its agents
    // turn stale over a whole heartbeat interval and are marked as they do, where a sweep
    // that waited for the previous one's last write and its placements left the hub's
    // marks a second or more behind the expiring Leases.
    let (stale_tx, stale_rx) = mpsc::unbounded();
    let (marked_tx, marked_rx) = mpsc::unbounded();
    let _marks = AbortOnDrop(tokio::spawn(mark_stale(
        clusters.clone(),
        state.clone(),
        stale_rx,
        marked_tx,
    )));
    let _placements = AbortOnDrop(tokio::spawn(mark_placements(clusters, marked_rx)));
    // Look often enough that an agent turns Unknown within a small part of the grace period:
    // at most half a second late, however long the grace period. A sweep reads every agent's
    // entry but allocates only for the stale: about two milliseconds for 100,000 agents.
    let period = (grace / 8).clamp(Duration::from_millis(250), Duration::from_millis(500));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        for stale in stale_agents(&state, grace, Instant::now()) {
            // The queue closes only when the marking task ends, which it does with this one.
            let _ = stale_tx.unbounded_send(stale);
        }
    }
}

/// An agent judged stale, and what it was judged by.
struct Stale {
    key: Key,
    resource_version: String,
    conditions: Vec<Condition>,
    /// When its last heartbeat was seen.
    last_heartbeat: Instant,
}

/// Marks the agents the sweeps queue, [`MARKS_AT_ONCE`] at a time, and passes on those marked.
async fn mark_stale(
    clusters: Clusters,
    state: Arc<Mutex<Observed>>,
    stale: mpsc::UnboundedReceiver<Stale>,
    marked: mpsc::UnboundedSender<Key>,
) {
    stale
        .map(|agent| {
            let (clusters, state) = (&clusters, &state);
            async move {
                // The resourceVersion precondition does not see a heartbeat (a Lease write):
                // an agent that came back while its mark waited is not marked.
                let done = lock(state).still_stale(&agent)
                    && mark_unknown(clusters, &agent.key, agent.resource_version, agent.conditions).await;
                (agent.key, done)
            }
        })
        .buffer_unordered(MARKS_AT_ONCE)
        .for_each(|(key, done)| {
            lock(&state).answered(&key, Instant::now());
            if done {
                let _ = marked.unbounded_send(key);
            }
            std::future::ready(())
        })
        .await;
}

/// Marks the placements of the agents marked, a list of them per [`AGENTS_PER_LIST`] agents.
async fn mark_placements(clusters: Clusters, marked: mpsc::UnboundedReceiver<Key>) {
    // The agents marked while the last batch was handled, listed together by namespace.
    let mut batches = marked.ready_chunks(AGENTS_PER_LIST * 10);
    while let Some(agents) = batches.next().await {
        mark_placements_unknown(&clusters, agents).await;
    }
}

fn lock(state: &Mutex<Observed>) -> std::sync::MutexGuard<'_, Observed> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Agents' status writes in flight at once when agents go stale. When a whole site goes dark,
/// its thousands of agents turn stale within one heartbeat interval; one write at a time, the
/// last of 100,000 would be marked minutes after its grace period. With more in flight the hub
/// commits more of them with each fsync: at 32, marking 100,000 agents left a fifth of its two
/// cores idle.
const MARKS_AT_ONCE: usize = 128;

/// Placements' status writes in flight at once, beside the agents'. Together below the hub's
/// default cap of 200 mutating requests, which binds a controller not run as a master (a
/// refused agent mark is written again on a later sweep).
const PLACEMENT_MARKS_AT_ONCE: usize = 64;

/// Agents whose heartbeat is older than their grace period and that are not already marked.
fn stale_agents(state: &Mutex<Observed>, grace: Duration, now: Instant) -> Vec<Stale> {
    let mut guard = lock(state);
    let s = &mut *guard;
    if !s.agents_synced || !s.leases_synced {
        return Vec::new();
    }
    let mut out = Vec::new();
    // Every agent, every tick: nothing here looks anything up or allocates but for the
    // stale ones.
    for (key, agent) in &s.agents {
        let last = agent.last_heartbeat();
        // An agent told to heartbeat rarely is judged by its own interval.
        let allowed = grace.max(agent.interval * 3);
        if now.saturating_duration_since(last) <= allowed {
            continue;
        }
        match conditions::find(&agent.conditions, reasons::READY) {
            Some(c) if c.status == "Unknown" => continue,
            Some(c) if c.reason == reasons::AGENT_STOPPED || c.reason == reasons::NOT_ADMITTED => continue,
            _ => {}
        }
        // A mark still queued is never queued twice, however far behind the writes are.
        if s.marked.get(key).is_some_and(|(rv, answered)| {
            *rv == agent.resource_version && answered.is_none_or(|at| now.saturating_duration_since(at) < REMARK_AFTER)
        }) {
            continue;
        }
        s.marked.insert(key.clone(), (agent.resource_version.clone(), None));
        out.push(Stale {
            key: key.clone(),
            resource_version: agent.resource_version.clone(),
            conditions: agent.conditions.clone(),
            last_heartbeat: last,
        });
    }
    out
}

/// Marks one agent `Ready=Unknown`; true if it was marked.
async fn mark_unknown(clusters: &Clusters, key: &Key, resource_version: String, mut list: Vec<Condition>) -> bool {
    let (cluster, namespace, name) = key;
    let message = "the agent stopped posting heartbeats".to_string();
    conditions::set_condition(
        &mut list,
        Condition::unknown(reasons::READY, reasons::AGENT_STATUS_UNKNOWN, &message),
        &now_rfc3339(),
    );
    // The answer is read as the watch reads Agents: the device facts are skipped over.
    let api: Api<AgentHealth> = Api::namespaced(clusters.cluster(cluster), namespace);
    // Preconditioned on what was judged: an agent that just reported wins the race.
    let patch = json!({"metadata": {"resourceVersion": resource_version}, "status": {"conditions": list}});
    match api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        Ok(_) => {
            tracing::info!(%cluster, %namespace, agent = %name, "agent stopped heartbeating; Ready=Unknown");
            true
        }
        Err(e) if is_conflict(&e) || is_not_found(&e) => false,
        Err(e) => {
            tracing::warn!(%cluster, %namespace, agent = %name, error = %e, "marking agent Unknown failed");
            false
        }
    }
}

/// Agents whose placements one list reads (`edge.faros.sh/agent in (...)`): a site gone dark
/// costs a list per hundred agents, not one per agent.
const AGENTS_PER_LIST: usize = 100;

/// What agents that stopped reporting last said of their placements may no longer hold:
/// they are `Unknown` until their agent reports again (as a node's pods turn not-ready).
/// Finished placements keep their outcome.
async fn mark_placements_unknown(clusters: &Clusters, agents: Vec<Key>) {
    let mut by_namespace: HashMap<(String, String), Vec<String>> = HashMap::new();
    for (cluster, namespace, name) in agents {
        by_namespace.entry((cluster, namespace)).or_default().push(name);
    }
    let lists = by_namespace.into_iter().flat_map(|((cluster, namespace), mut names)| {
        names.sort();
        names
            .chunks(AGENTS_PER_LIST)
            .map(|chunk| (cluster.clone(), namespace.clone(), chunk.join(",")))
            .collect::<Vec<_>>()
    });
    for (cluster, namespace, names) in lists {
        let api: Api<Placement> = Api::namespaced(clusters.cluster(&cluster), &namespace);
        let selected = ListParams::default().labels(&format!("{AGENT_LABEL} in ({names})"));
        let placements = match api.list(&selected).await {
            Ok(list) => list.items,
            Err(e) => {
                tracing::warn!(%cluster, %namespace, agents = %names, error = %e, "listing the placements of unknown agents failed");
                continue;
            }
        };
        futures::stream::iter(placements)
            .for_each_concurrent(PLACEMENT_MARKS_AT_ONCE, |placement| {
                mark_placement_unknown(&api, placement)
            })
            .await;
    }
}

async fn mark_placement_unknown(api: &Api<Placement>, placement: Placement) {
    let status = placement.status.clone().unwrap_or_default();
    if matches!(
        status.phase,
        PlacementPhase::Unknown | PlacementPhase::Succeeded | PlacementPhase::Failed
    ) {
        return;
    }
    let agent = placement.labels().get(AGENT_LABEL).cloned().unwrap_or_default();
    let patch = json!({
        "metadata": {"resourceVersion": placement.resource_version()},
        "status": {
            "phase": PlacementPhase::Unknown,
            "ready": false,
            "reason": reasons::AGENT_STATUS_UNKNOWN,
            "message": format!("agent {agent} stopped posting heartbeats; last reported {:?}", status.phase),
        },
    });
    let name = placement.name_any();
    if let Err(e) = api
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        && !is_conflict(&e)
        && !is_not_found(&e)
    {
        let namespace = placement.namespace().unwrap_or_default();
        tracing::warn!(%namespace, placement = %name, error = %e, "marking a placement Unknown failed");
    }
}

/// An Agent as this controller reads it: its spec, and of its status only what says whether
/// it is heartbeating (its device facts and workloads are skipped over).
type AgentHealth = Partial<Agent, faros_api::edge::AgentSpec, AgentHealthStatus>;

#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct AgentHealthStatus {
    #[serde(default)]
    conditions: Vec<Condition>,
    last_heartbeat_time: Option<String>,
    heartbeat_interval_seconds: Option<i64>,
}

fn agent_entry(agent: AgentHealth, previous: Option<&AgentEntry>, now: Instant) -> AgentEntry {
    let status = agent.status.unwrap_or_default();
    let interval = status
        .heartbeat_interval_seconds
        .map(|s| Duration::from_secs(s.clamp(1, 3600) as u64))
        .unwrap_or_else(|| agent.spec.unwrap_or_default().heartbeat_interval());
    let observed = match previous {
        Some(p) if p.last_heartbeat_time == status.last_heartbeat_time => p.observed,
        _ => now,
    };
    AgentEntry {
        resource_version: agent.metadata.resource_version.unwrap_or_default(),
        interval,
        conditions: status.conditions,
        last_heartbeat_time: status.last_heartbeat_time,
        observed,
        lease_observed: None,
    }
}

async fn watch_agents(clusters: Clusters, state: Arc<Mutex<Observed>>) {
    let api: Api<AgentHealth> = Api::all(clusters.wildcard());
    let mut events = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut relist: Option<HashMap<Key, AgentEntry>> = None;
    while let Some(event) = events.next().await {
        let now = Instant::now();
        let mut s = lock(&state);
        match event {
            Ok(Event::Init) => relist = Some(HashMap::new()),
            Ok(Event::InitApply(agent)) => {
                let key = key_of(&agent);
                let entry = agent_entry(agent, s.agents.get(&key), now);
                relist.get_or_insert_with(HashMap::new).insert(key, entry);
            }
            Ok(Event::InitDone) => {
                s.agents = relist.take().unwrap_or_default();
                s.link_leases();
                s.agents_synced = true;
            }
            Ok(Event::Apply(agent)) => {
                let key = key_of(&agent);
                let entry = agent_entry(agent, s.agents.get(&key), now);
                s.set_agent(key, entry);
            }
            Ok(Event::Delete(agent)) => {
                let key = key_of(&agent);
                s.marked.remove(&key);
                s.agents.remove(&key);
            }
            Err(e) => tracing::debug!(error = %e, "agent watch failed; retrying"),
        }
    }
}

/// An agent's Lease as this controller reads it: the renewal time and what names the Lease.
/// One arrives for every heartbeat of the fleet, so nothing else of it is decoded.
#[derive(Clone, Debug, serde::Deserialize)]
struct Heartbeat {
    #[serde(default, deserialize_with = "slim_metadata")]
    metadata: ObjectMeta,
    spec: Option<HeartbeatSpec>,
}

#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct HeartbeatSpec {
    renew_time: Option<MicroTime>,
}

impl Resource for Heartbeat {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(dt: &()) -> std::borrow::Cow<'_, str> {
        Lease::kind(dt)
    }
    fn group(dt: &()) -> std::borrow::Cow<'_, str> {
        Lease::group(dt)
    }
    fn version(dt: &()) -> std::borrow::Cow<'_, str> {
        Lease::version(dt)
    }
    fn plural(dt: &()) -> std::borrow::Cow<'_, str> {
        Lease::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// The key of the Agent whose heartbeat `lease` is (named by [`faros_api::edge::lease_name`]).
fn agent_of_lease(lease: &impl Resource) -> Option<Key> {
    let (cluster, namespace, name) = key_of(lease);
    let agent = name.strip_prefix(faros_api::edge::LEASE_PREFIX)?;
    Some((cluster, namespace, agent.to_string()))
}

async fn watch_leases(clusters: Clusters, state: Arc<Mutex<Observed>>) {
    let api: Api<Heartbeat> = Api::all(clusters.wildcard());
    let config = watcher::Config::default().labels(AGENT_LABEL);
    let mut events = watcher::watcher(api, config).default_backoff().boxed();
    let mut relist: Option<HashMap<Key, LeaseEntry>> = None;
    let entry = |lease: &Heartbeat, previous: Option<&LeaseEntry>, now: Instant| {
        let renew_time = lease.spec.as_ref().and_then(|s| s.renew_time.as_ref()).map(|t| t.0);
        let observed = match previous {
            Some(p) if p.renew_time == renew_time => p.observed,
            _ => now,
        };
        LeaseEntry { renew_time, observed }
    };
    while let Some(event) = events.next().await {
        let now = Instant::now();
        let mut s = lock(&state);
        match event {
            Ok(Event::Init) => relist = Some(HashMap::new()),
            Ok(Event::InitApply(lease)) => {
                let Some(key) = agent_of_lease(&lease) else { continue };
                let e = entry(&lease, s.leases.get(&key), now);
                relist.get_or_insert_with(HashMap::new).insert(key, e);
            }
            Ok(Event::InitDone) => {
                s.leases = relist.take().unwrap_or_default();
                s.link_leases();
                s.leases_synced = true;
            }
            Ok(Event::Apply(lease)) => {
                let Some(key) = agent_of_lease(&lease) else { continue };
                let e = entry(&lease, s.leases.get(&key), now);
                s.set_lease(key, Some(e));
            }
            Ok(Event::Delete(lease)) => {
                if let Some(key) = agent_of_lease(&lease) {
                    s.set_lease(key, None);
                }
            }
            Err(e) => tracing::debug!(error = %e, "lease watch failed; retrying"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(observed: Instant, ready: Option<Condition>) -> AgentEntry {
        AgentEntry {
            resource_version: "1".into(),
            interval: Duration::from_secs(1),
            conditions: ready.into_iter().collect(),
            last_heartbeat_time: None,
            observed,
            lease_observed: None,
        }
    }

    #[test]
    fn stale_only_past_grace_and_never_twice() {
        let t0 = Instant::now();
        let grace = Duration::from_secs(3);
        let key = |n: &str| ("c".to_string(), "default".to_string(), n.to_string());
        let state = Mutex::new(Observed {
            agents_synced: true,
            leases_synced: true,
            ..Default::default()
        });
        {
            let mut s = state.lock().unwrap();
            s.agents.insert(
                key("fresh"),
                entry(t0, Some(Condition::new("Ready", true, "AgentReady", ""))),
            );
            s.agents.insert(
                key("old"),
                entry(t0, Some(Condition::new("Ready", true, "AgentReady", ""))),
            );
            s.agents.insert(
                key("marked"),
                entry(t0, Some(Condition::unknown("Ready", "AgentStatusUnknown", ""))),
            );
            s.agents.insert(
                key("stopped"),
                entry(t0, Some(Condition::new("Ready", false, "AgentStopped", ""))),
            );
            // "fresh" renewed its lease later.
            s.set_lease(
                key("fresh"),
                Some(LeaseEntry {
                    renew_time: Some(jiff::Timestamp::UNIX_EPOCH),
                    observed: t0 + Duration::from_secs(4),
                }),
            );
        }
        let stale = stale_agents(&state, grace, t0 + Duration::from_secs(5));
        let names: Vec<&str> = stale.iter().map(|s| s.key.2.as_str()).collect();
        assert_eq!(names, vec!["old"]);
        // Queued, and then in flight: never queued again, however long the write takes.
        assert!(stale_agents(&state, grace, t0 + Duration::from_secs(6)).is_empty());
        let later = stale_agents(&state, grace, t0 + Duration::from_secs(5) + REMARK_AFTER * 4);
        assert!(later.iter().all(|s| s.key.2 != "old"));
        // Answered, but the mark has not come back on the watch: written again only after a
        // while.
        let answered = t0 + Duration::from_secs(5) + REMARK_AFTER * 4;
        state.lock().unwrap().answered(&key("old"), answered);
        let soon = stale_agents(&state, grace, answered + Duration::from_secs(1));
        assert!(soon.iter().all(|s| s.key.2 != "old"));
        let again = stale_agents(&state, grace, answered + REMARK_AFTER);
        assert!(again.iter().any(|s| s.key.2 == "old"));
        // Nothing is judged before both watches listed.
        state.lock().unwrap().leases_synced = false;
        assert!(stale_agents(&state, grace, t0 + Duration::from_secs(60)).is_empty());
        // A heartbeat while the mark waits to be written: the write is not made.
        let old = &stale[0];
        assert!(state.lock().unwrap().still_stale(old));
        state.lock().unwrap().set_lease(
            key("old"),
            Some(LeaseEntry {
                renew_time: Some(jiff::Timestamp::UNIX_EPOCH),
                observed: t0 + Duration::from_secs(7),
            }),
        );
        assert!(!state.lock().unwrap().still_stale(old));
    }

    #[test]
    fn a_lease_counts_whichever_arrives_first_until_it_is_deleted() {
        let t0 = Instant::now();
        let grace = Duration::from_secs(3);
        let key = |n: &str| ("c".to_string(), "default".to_string(), n.to_string());
        let ready = || Some(Condition::new("Ready", true, "AgentReady", ""));
        let renewed = |at: Instant| LeaseEntry {
            renew_time: Some(jiff::Timestamp::UNIX_EPOCH),
            observed: at,
        };
        let state = Mutex::new(Observed {
            agents_synced: true,
            leases_synced: true,
            ..Default::default()
        });
        {
            let mut s = state.lock().unwrap();
            // A Lease seen before its Agent, and one after it.
            s.set_lease(key("lease-first"), Some(renewed(t0 + Duration::from_secs(4))));
            s.set_agent(key("lease-first"), entry(t0, ready()));
            s.set_agent(key("agent-first"), entry(t0, ready()));
            s.set_lease(key("agent-first"), Some(renewed(t0 + Duration::from_secs(4))));
            s.set_agent(key("gone"), entry(t0, ready()));
            s.set_lease(key("gone"), Some(renewed(t0 + Duration::from_secs(4))));
            s.set_lease(key("gone"), None);
        }
        let stale = stale_agents(&state, grace, t0 + Duration::from_secs(5));
        let names: Vec<&str> = stale.iter().map(|s| s.key.2.as_str()).collect();
        assert_eq!(names, vec!["gone"]);
        // A relist of the Agents starts from entries that know no Lease, and links them.
        {
            let mut s = state.lock().unwrap();
            s.agents = [(key("lease-first"), entry(t0, ready()))].into();
            s.link_leases();
        }
        assert!(stale_agents(&state, grace, t0 + Duration::from_secs(6)).is_empty());
        assert_eq!(stale_agents(&state, grace, t0 + Duration::from_secs(8)).len(), 1);
    }

    #[test]
    fn a_lease_counts_for_the_agent_it_is_named_for() {
        let lease = |name: &str| Lease {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: None,
        };
        let key = agent_of_lease(&lease("agent-dev-1")).unwrap();
        assert_eq!((key.1.as_str(), key.2.as_str()), ("default", "dev-1"));
        assert_eq!(agent_of_lease(&lease("other")), None);
    }

    #[test]
    fn an_agent_is_read_for_its_health_only() {
        let mut agent = Agent::new("dev-1", faros_api::edge::AgentSpec::default());
        agent.metadata.namespace = Some("default".into());
        agent.metadata.resource_version = Some("7".into());
        agent.metadata.annotations = Some(
            [(
                faros_api::tenancy::CLUSTER_ANNOTATION.to_string(),
                "root:fleet".to_string(),
            )]
            .into(),
        );
        agent.spec.heartbeat_interval_seconds = Some(30);
        agent.status = Some(faros_api::edge::AgentStatus {
            conditions: vec![Condition::new(reasons::READY, true, "AgentReady", "")],
            last_heartbeat_time: Some("2026-12-05T10:00:00Z".into()),
            runtimes: vec!["podman".into()],
            ..Default::default()
        });
        let read: AgentHealth = serde_json::from_value(serde_json::to_value(&agent).unwrap()).unwrap();
        assert_eq!(key_of(&read), ("root:fleet".into(), "default".into(), "dev-1".into()));
        let t0 = Instant::now();
        let entry = agent_entry(read, None, t0);
        assert_eq!(entry.resource_version, "7");
        // The spec's interval counts until the agent reports its own.
        assert_eq!(entry.interval, Duration::from_secs(30));
        assert_eq!(entry.last_heartbeat_time.as_deref(), Some("2026-12-05T10:00:00Z"));
        assert_eq!(entry.conditions, agent.status.as_ref().unwrap().conditions);

        agent.status.as_mut().unwrap().heartbeat_interval_seconds = Some(5);
        let read: AgentHealth = serde_json::from_value(serde_json::to_value(&agent).unwrap()).unwrap();
        let later = agent_entry(read, Some(&entry), t0 + Duration::from_secs(3));
        assert_eq!(later.interval, Duration::from_secs(5));
        // The same lastHeartbeatTime: still judged from when it was first seen.
        assert_eq!(later.observed, t0);

        // A null status or spec reads as none, rather than failing the watch.
        let mut value = serde_json::to_value(&agent).unwrap();
        value["status"] = serde_json::Value::Null;
        value["spec"] = serde_json::Value::Null;
        let read: AgentHealth = serde_json::from_value(value).unwrap();
        let bare = agent_entry(read, None, t0);
        assert!(bare.conditions.is_empty() && bare.last_heartbeat_time.is_none());
        assert_eq!(
            bare.interval,
            faros_api::edge::AgentSpec::default().heartbeat_interval()
        );
    }

    #[test]
    fn a_heartbeat_is_its_renewal_and_its_name() {
        let lease = json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": "agent-dev-1",
                "namespace": "default",
                "annotations": {(faros_api::tenancy::CLUSTER_ANNOTATION): "root:fleet"},
                "managedFields": [{"manager": "edge-agent", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]
            },
            "spec": {"holderIdentity": "dev-1", "renewTime": "2026-12-05T10:00:00.123456Z", "leaseDurationSeconds": 40}
        });
        let heartbeat: Heartbeat = serde_json::from_value(lease).unwrap();
        assert_eq!(
            agent_of_lease(&heartbeat),
            Some(("root:fleet".into(), "default".into(), "dev-1".into()))
        );
        let renewed: jiff::Timestamp = "2026-12-05T10:00:00.123456Z".parse().unwrap();
        assert_eq!(heartbeat.spec.and_then(|s| s.renew_time).map(|t| t.0), Some(renewed));
        assert!(heartbeat.metadata.managed_fields.is_none());
        // A Lease without a spec (absent or null) has no renewal, and does not fail the watch.
        for spec in [json!({}), json!({"spec": null})] {
            let mut lease = spec;
            lease["metadata"] = json!({"name": "agent-dev-1"});
            let bare: Heartbeat = serde_json::from_value(lease).unwrap();
            assert!(bare.spec.and_then(|s| s.renew_time).is_none());
        }
    }
}
