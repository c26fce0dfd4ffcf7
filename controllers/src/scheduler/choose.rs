//! Placement decisions, with no I/O: given a Workload, the Agents of its namespace and every
//! Placement there, which placements stay, which are made, which go, and why the agents that
//! do not run it do not.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use faros_api::edge::{Agent, reasons as edge_reasons};
use faros_api::workloads::{
    Placement, PlacementPhase, PlacementStrategy, Quantity, ResourceList, Resources, SchedulingPolicy, Workload,
};
use faros_api::{Condition, conditions};

use crate::runtime::Partial;

/// Why an agent the selector picks does not get a new placement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Unfit {
    /// The device does not offer the runtime the template needs.
    NoRuntime(&'static str),
    Cordoned,
    /// `Ready` is not `True` (the status it has, or `None` when it never reported).
    NotReady(Option<String>),
    Deleting,
    /// ResourceAware: the device reports no allocatable resources to fit requests into.
    NoCapacityReported,
    /// ResourceAware: the requests do not fit what is left of its allocatable resources.
    Insufficient {
        requests: Resources,
        free: Resources,
    },
}

impl fmt::Display for Unfit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unfit::NoRuntime(runtime) => write!(f, "no {runtime} runtime"),
            Unfit::Cordoned => f.write_str("cordoned"),
            Unfit::NotReady(Some(status)) => write!(f, "not ready (Ready={status})"),
            Unfit::NotReady(None) => f.write_str("not ready (never reported)"),
            Unfit::Deleting => f.write_str("being deleted"),
            Unfit::NoCapacityReported => f.write_str("reports no allocatable cpu and memory"),
            Unfit::Insufficient { requests, free } => {
                let mut short = Vec::new();
                if requests.cpu_millis > free.cpu_millis {
                    short.push(format!(
                        "cpu (requests {}, free {})",
                        Quantity::from_millis(requests.cpu_millis),
                        Quantity::from_millis(free.cpu_millis.max(0))
                    ));
                }
                if requests.memory_bytes > free.memory_bytes {
                    short.push(format!(
                        "memory (requests {}, free {})",
                        bytes(requests.memory_bytes),
                        bytes(free.memory_bytes.max(0))
                    ));
                }
                write!(f, "insufficient {}", short.join(", "))
            }
        }
    }
}

/// Bytes in the largest binary unit that divides them evenly (`8Gi`, `1536Mi`, `100`).
pub(crate) fn bytes(n: i64) -> String {
    for (unit, size) in [("Ti", 1_i64 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
        if n != 0 && n % size == 0 {
            return format!("{}{unit}", n / size);
        }
    }
    n.to_string()
}

/// Why an existing placement is removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Removal {
    /// The agent is gone (or going), or its labels no longer match the selector (the
    /// scheduler may be given only the agents that match).
    NotSelected,
    /// The template now needs a runtime the device lacks.
    NoRuntime(&'static str),
    /// Replicas/Singleton: the agent has not been ready for longer than the eviction timeout.
    Evicted,
    /// More placements than wanted.
    ScaledDown,
    /// A second placement of the workload on the same agent.
    Duplicate,
}

/// What the scheduler does for one Workload.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Agents whose existing placement stays, with the placement's name.
    pub(crate) keep: Vec<(String, String)>,
    /// Agents that get a new placement.
    pub(crate) create: Vec<String>,
    /// Placements to delete: (placement, agent, why).
    pub(crate) remove: Vec<(String, String, Removal)>,
    /// Agents whose labels match the selector.
    pub(crate) matching: usize,
    /// How many placements the workload should have.
    pub(crate) desired: usize,
    /// Selected agents that neither keep nor get a placement and could not, with why.
    pub(crate) unfit: Vec<(String, Unfit)>,
    /// When to look again without any event: the next agent to pass the eviction timeout.
    pub(crate) recheck: Option<Duration>,
}

/// An agent's `Ready` condition: whether it is `True`, else its status and since when.
fn readiness(agent: &Agent) -> Result<(), (Option<String>, Option<jiff::Timestamp>)> {
    let ready = agent
        .status
        .as_ref()
        .and_then(|s| conditions::find(&s.conditions, edge_reasons::READY));
    match ready {
        Some(c) if c.is_true() => Ok(()),
        Some(c) => Err((
            Some(c.status.clone()),
            c.last_transition_time.as_deref().and_then(|t| t.parse().ok()),
        )),
        None => Err((None, None)),
    }
}

/// An Agent as the scheduler's watch decodes it: what [`plan`] reads of an agent (labels,
/// deletion, cordon, the `Ready` condition, allocatable resources, runtimes) and nothing of
/// the device facts and reports that make up most of its status.
pub(crate) type AgentInputs = Partial<Agent, InputSpec, InputStatus, BTreeMap<String, String>>;

#[derive(Clone, Debug, serde::Deserialize)]
pub(crate) struct InputSpec {
    #[serde(default)]
    unschedulable: bool,
}

#[derive(Clone, Debug, serde::Deserialize)]
pub(crate) struct InputStatus {
    #[serde(default)]
    conditions: Vec<Condition>,
    #[serde(default)]
    allocatable: ResourceList,
    #[serde(default)]
    runtimes: Vec<String>,
}

/// A hash of what [`plan`] reads of an agent. An agent's status reports mostly change none
/// of it (the time of a report, device facts, what it runs), and a report that leaves it as
/// it was need not make the scheduler look at the namespace's workloads again.
pub(crate) fn fingerprint(agent: &AgentInputs) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    agent.metadata.labels.hash(&mut hasher);
    agent.metadata.deletion_timestamp.is_some().hash(&mut hasher);
    agent.spec.as_ref().is_some_and(|s| s.unschedulable).hash(&mut hasher);
    if let Some(status) = &agent.status {
        conditions::find(&status.conditions, edge_reasons::READY)
            .map(|c| (&c.status, &c.last_transition_time))
            .hash(&mut hasher);
        [&status.allocatable.cpu, &status.allocatable.memory]
            .map(|q| q.as_ref().map(|q| &q.0))
            .hash(&mut hasher);
        status.runtimes.hash(&mut hasher);
    }
    hasher.finish()
}

fn allocatable(agent: &Agent) -> Option<Resources> {
    agent
        .status
        .as_ref()
        .map(|s| &s.allocatable)
        .filter(|a| !a.is_empty())
        .map(|a| a.resources())
}

/// What the placements already on one agent take.
#[derive(Clone, Copy, Debug, Default)]
struct Load {
    count: usize,
    used: Resources,
}

/// The smallest share of an agent's allocatable cpu and memory still free (1.0 when it
/// reports none: nothing is known to be taken).
fn free_fraction(allocatable: Option<Resources>, used: Resources) -> f64 {
    let Some(a) = allocatable else { return 1.0 };
    let share = |total: i64, used: i64| {
        if total <= 0 {
            1.0
        } else {
            (total.saturating_sub(used)) as f64 / total as f64
        }
    };
    share(a.cpu_millis, used.cpu_millis).min(share(a.memory_bytes, used.memory_bytes))
}

/// Decides the placements of `workload` among `agents` (its namespace's), knowing every
/// Placement of the namespace (`placements`), at `now`.
pub(crate) fn plan(
    workload: &Workload,
    agents: &[Agent],
    placements: &[Placement],
    now: jiff::Timestamp,
    eviction_timeout: Duration,
) -> Plan {
    let name = workload.metadata.name.as_deref().unwrap_or_default();
    let spec = &workload.spec;
    let runtime = spec.template.runtime();
    let requests = spec.template.requests();
    let strategy = spec.placement.strategy;
    let resource_aware = spec.placement.scheduling == SchedulingPolicy::ResourceAware;
    let selector = spec.selector.clone().unwrap_or_default();

    // Load per agent, counted from the placements themselves (all workloads, the ones
    // being deleted too: they run until the device removes them) rather than from what
    // the agent reports, which lags behind.
    let mut load: BTreeMap<&str, Load> = BTreeMap::new();
    for p in placements {
        let l = load.entry(p.spec.agent.as_str()).or_default();
        l.count += 1;
        l.used.add(&p.spec.template.requests());
    }

    let by_name: BTreeMap<&str, &Agent> = agents
        .iter()
        .filter_map(|a| a.metadata.name.as_deref().map(|n| (n, a)))
        .collect();
    let mut out = Plan::default();

    // This workload's live placements, one per agent; a second one on the same agent (only
    // possible if made by hand) goes.
    let mut existing: BTreeMap<&str, &Placement> = BTreeMap::new();
    let mut own: Vec<&Placement> = placements
        .iter()
        .filter(|p| p.spec.workload == name && p.metadata.deletion_timestamp.is_none())
        .collect();
    // The canonically named one wins.
    own.sort_by_key(|p| {
        let n = p.metadata.name.clone().unwrap_or_default();
        (n != faros_api::workloads::placement_name(name, &p.spec.agent), n)
    });
    for p in own {
        let pname = p.metadata.name.clone().unwrap_or_default();
        if existing.contains_key(p.spec.agent.as_str()) {
            out.remove.push((pname, p.spec.agent.clone(), Removal::Duplicate));
        } else {
            existing.insert(p.spec.agent.as_str(), p);
        }
    }

    // Placements that stay, before counting.
    let mut kept: Vec<(&str, &Placement)> = Vec::new();
    let evicts = strategy != PlacementStrategy::All;
    for (&agent_name, &p) in &existing {
        let pname = p.metadata.name.clone().unwrap_or_default();
        let gone = |why| (pname.clone(), agent_name.to_string(), why);
        let Some(agent) = by_name
            .get(agent_name)
            .filter(|a| a.metadata.deletion_timestamp.is_none())
        else {
            out.remove.push(gone(Removal::NotSelected));
            continue;
        };
        if !selector.matches(labels(agent)) {
            out.remove.push(gone(Removal::NotSelected));
            continue;
        }
        if !has_runtime(agent, runtime) {
            out.remove.push(gone(Removal::NoRuntime(runtime)));
            continue;
        }
        if evicts && let Err((_, Some(since))) = readiness(agent) {
            let down = now.duration_since(since).unsigned_abs();
            if down >= eviction_timeout {
                out.remove.push(gone(Removal::Evicted));
                continue;
            }
            let left = eviction_timeout - down;
            out.recheck = Some(out.recheck.map_or(left, |r| r.min(left)));
        }
        kept.push((agent_name, p));
    }

    // Every selected agent without a placement: a candidate, or unfit and why.
    let placed: BTreeSet<&str> = kept.iter().map(|(a, _)| *a).collect();
    let mut candidates: Vec<(&str, Load, Option<Resources>)> = Vec::new();
    for (&agent_name, &agent) in &by_name {
        if !selector.matches(labels(agent)) {
            continue;
        }
        out.matching += 1;
        if placed.contains(agent_name) {
            continue;
        }
        let l = load.get(agent_name).copied().unwrap_or_default();
        let room = allocatable(agent);
        let unfit = if agent.metadata.deletion_timestamp.is_some() {
            Some(Unfit::Deleting)
        } else if !has_runtime(agent, runtime) {
            Some(Unfit::NoRuntime(runtime))
        } else if agent.spec.unschedulable {
            Some(Unfit::Cordoned)
        } else if let Err((status, _)) = readiness(agent) {
            Some(Unfit::NotReady(status))
        } else if resource_aware && requests != Resources::default() {
            match room {
                None => Some(Unfit::NoCapacityReported),
                Some(room) => {
                    let free = room.minus(&l.used);
                    (!requests.fits(&free)).then_some(Unfit::Insufficient { requests, free })
                }
            }
        } else {
            None
        };
        match unfit {
            Some(why) => out.unfit.push((agent_name.to_string(), why)),
            None => candidates.push((agent_name, l, room)),
        }
    }

    match strategy {
        PlacementStrategy::All => {
            out.create = candidates.iter().map(|(a, _, _)| a.to_string()).collect();
            // Agents that could never run it (no runtime, going away) are not wanted; the
            // others are, until cordoned or placed.
            let wanted_unfit = out
                .unfit
                .iter()
                .filter(|(_, why)| matches!(why, Unfit::Insufficient { .. } | Unfit::NoCapacityReported))
                .count();
            out.desired = kept.len() + out.create.len() + wanted_unfit;
            out.keep = kept.iter().map(|(a, p)| (a.to_string(), pname(p))).collect();
        }
        PlacementStrategy::Replicas | PlacementStrategy::Singleton => {
            let wanted = spec.placement.wanted(0);
            out.desired = wanted;
            if kept.len() > wanted {
                // Scale down: drop the not ready first, then the most loaded.
                kept.sort_by(|(a, p), (b, q)| {
                    let (la, lb) = (
                        load.get(a).copied().unwrap_or_default(),
                        load.get(b).copied().unwrap_or_default(),
                    );
                    let (fa, fb) = (
                        free_fraction(by_name.get(a).and_then(|x| allocatable(x)), la.used),
                        free_fraction(by_name.get(b).and_then(|x| allocatable(x)), lb.used),
                    );
                    placement_ready(p)
                        .cmp(&placement_ready(q))
                        .then(lb.count.cmp(&la.count))
                        .then(fa.total_cmp(&fb))
                        .then(b.cmp(a))
                });
                for (agent, p) in kept.drain(..kept.len() - wanted) {
                    out.remove.push((pname(p), agent.to_string(), Removal::ScaledDown));
                }
            } else {
                if resource_aware {
                    // Least loaded first: the largest free share after placing this one.
                    candidates.sort_by(|(a, la, ra), (b, lb, rb)| {
                        let mut after_a = la.used;
                        after_a.add(&requests);
                        let mut after_b = lb.used;
                        after_b.add(&requests);
                        free_fraction(*rb, after_b)
                            .total_cmp(&free_fraction(*ra, after_a))
                            .then(a.cmp(b))
                    });
                } else {
                    // Round-robin: the agents running the fewest placements first.
                    candidates.sort_by(|(a, la, _), (b, lb, _)| la.count.cmp(&lb.count).then(a.cmp(b)));
                }
                let room = wanted - kept.len();
                out.create = candidates.iter().take(room).map(|(a, _, _)| a.to_string()).collect();
            }
            out.keep = kept.iter().map(|(a, p)| (a.to_string(), pname(p))).collect();
            out.keep.sort();
        }
    }
    out
}

fn pname(p: &Placement) -> String {
    p.metadata.name.clone().unwrap_or_default()
}

fn labels(agent: &Agent) -> &BTreeMap<String, String> {
    static NONE: BTreeMap<String, String> = BTreeMap::new();
    agent.metadata.labels.as_ref().unwrap_or(&NONE)
}

fn has_runtime(agent: &Agent, runtime: &str) -> bool {
    agent
        .status
        .as_ref()
        .is_some_and(|s| s.runtimes.iter().any(|r| r == runtime))
}

/// Whether the device reports the placement running and ready (whatever template).
pub(crate) fn placement_ready(p: &Placement) -> bool {
    p.status
        .as_ref()
        .is_some_and(|s| s.ready && s.phase == PlacementPhase::Running)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use faros_api::Condition;
    use faros_api::edge::{AgentSpec, AgentStatus};
    use faros_api::workloads::{
        Container, LabelSelector, PlacementPolicy, PlacementSpec, PlacementStatus, ResourceList, ResourceRequirements,
        WorkloadSpec, WorkloadTemplate, placement_name,
    };

    pub(crate) const NOW: &str = "2030-01-01T00:10:00Z";

    pub(crate) fn now() -> jiff::Timestamp {
        NOW.parse().unwrap()
    }

    pub(crate) fn agent(name: &str, site: &str, runtimes: &[&str], cpu: &str, memory: &str) -> Agent {
        let mut a = Agent::new(name, AgentSpec::default());
        a.metadata.labels = Some([("site".to_string(), site.to_string())].into());
        a.status = Some(AgentStatus {
            conditions: vec![Condition {
                last_transition_time: Some("2030-01-01T00:00:00Z".into()),
                ..Condition::new("Ready", true, "AgentReady", "")
            }],
            runtimes: runtimes.iter().map(|r| r.to_string()).collect(),
            allocatable: ResourceList {
                cpu: Some(Quantity(cpu.into())),
                memory: Some(Quantity(memory.into())),
            },
            ..Default::default()
        });
        a
    }

    /// Status reports that change nothing `plan` reads keep an agent's fingerprint; a change
    /// to any of its inputs changes it.
    #[test]
    fn the_fingerprint_follows_what_plan_reads() {
        let print = |a: &Agent| fingerprint(&serde_json::from_value(serde_json::to_value(a).unwrap()).unwrap());
        let base = agent("dev1", "north", &["podman"], "1", "1Gi");
        let mut reported = base.clone();
        let status = reported.status.as_mut().unwrap();
        status.last_heartbeat_time = Some("2030-01-01T00:09:00Z".into());
        status.workload_count = Some(3);
        status.capacity.cpu = Some(Quantity("4".into()));
        status.labels.insert("arch".into(), "arm64".into());
        status.conditions[0].message = "still here".into();
        status
            .conditions
            .push(Condition::new("Connected", true, "TunnelConnected", ""));
        assert_eq!(print(&reported), print(&base));

        let changes: [fn(&mut Agent); 7] = [
            |a| {
                a.metadata
                    .labels
                    .as_mut()
                    .unwrap()
                    .insert("site".into(), "south".into());
            },
            |a| {
                a.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    NOW.parse().unwrap(),
                ))
            },
            |a| a.spec.unschedulable = true,
            |a| set_ready(a, "Unknown", "2030-01-01T00:05:00Z"),
            |a| set_ready(a, "True", "2030-01-01T00:05:00Z"),
            |a| a.status.as_mut().unwrap().allocatable.memory = Some(Quantity("2Gi".into())),
            |a| a.status.as_mut().unwrap().runtimes.push("process".into()),
        ];
        for (i, change) in changes.iter().enumerate() {
            let mut changed = base.clone();
            change(&mut changed);
            assert_ne!(print(&changed), print(&base), "change {i}");
        }
    }

    pub(crate) fn set_ready(a: &mut Agent, status: &str, since: &str) {
        let c = &mut a.status.as_mut().unwrap().conditions[0];
        c.status = status.into();
        c.last_transition_time = Some(since.into());
    }

    pub(crate) fn workload(
        strategy: PlacementStrategy,
        replicas: Option<i32>,
        scheduling: SchedulingPolicy,
    ) -> Workload {
        let mut w = Workload::new(
            "web",
            WorkloadSpec {
                selector: Some(LabelSelector {
                    match_labels: [("site".to_string(), "north".to_string())].into(),
                    ..Default::default()
                }),
                placement: PlacementPolicy {
                    strategy,
                    replicas,
                    scheduling,
                },
                template: WorkloadTemplate {
                    containers: vec![Container {
                        name: "web".into(),
                        image: "localhost/demo:1".into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            },
        );
        w.metadata.namespace = Some("default".into());
        w
    }

    pub(crate) fn with_requests(mut w: Workload, cpu: &str, memory: &str) -> Workload {
        w.spec.template.containers[0].resources = Some(ResourceRequirements {
            requests: ResourceList {
                cpu: Some(Quantity(cpu.into())),
                memory: Some(Quantity(memory.into())),
            },
            ..Default::default()
        });
        w
    }

    pub(crate) fn placement(w: &Workload, agent: &str, ready: bool) -> Placement {
        let wname = w.metadata.name.clone().unwrap();
        let mut p = Placement::new(
            &placement_name(&wname, agent),
            PlacementSpec {
                workload: wname,
                agent: agent.into(),
                template: w.spec.template.clone(),
                template_hash: w.spec.template.hash(),
            },
        );
        if ready {
            p.status = Some(PlacementStatus {
                phase: PlacementPhase::Running,
                ready: true,
                template_hash: w.spec.template.hash(),
                ..Default::default()
            });
        }
        p
    }

    fn fleet() -> Vec<Agent> {
        vec![
            agent("dev1", "north", &["podman", "process"], "2", "4Gi"),
            agent("dev2", "north", &["podman"], "4", "8Gi"),
            agent("dev3", "south", &["podman"], "4", "8Gi"),
        ]
    }

    fn run(w: &Workload, agents: &[Agent], placements: &[Placement]) -> Plan {
        plan(w, agents, placements, now(), Duration::from_secs(300))
    }

    #[test]
    fn all_places_on_every_selected_agent() {
        let w = workload(PlacementStrategy::All, None, SchedulingPolicy::Spread);
        let p = run(&w, &fleet(), &[]);
        assert_eq!(p.create, ["dev1", "dev2"]);
        assert_eq!((p.matching, p.desired), (2, 2));
        // Idempotent once made.
        let made = [placement(&w, "dev1", true), placement(&w, "dev2", false)];
        let p = run(&w, &fleet(), &made);
        assert!(p.create.is_empty() && p.remove.is_empty());
        assert_eq!(p.keep.len(), 2);
    }

    #[test]
    fn cordon_and_readiness_block_only_new_placements() {
        let w = workload(PlacementStrategy::All, None, SchedulingPolicy::Spread);
        let mut agents = fleet();
        agents[0].spec.unschedulable = true;
        set_ready(&mut agents[1], "Unknown", "2030-01-01T00:00:00Z");
        let p = run(&w, &agents, &[]);
        assert!(p.create.is_empty());
        assert_eq!(
            p.unfit,
            [
                ("dev1".to_string(), Unfit::Cordoned),
                ("dev2".to_string(), Unfit::NotReady(Some("Unknown".into())))
            ]
        );
        // What already runs there stays, and All is never evicted.
        let made = [placement(&w, "dev1", true), placement(&w, "dev2", true)];
        let p = run(&w, &agents, &made);
        assert!(p.remove.is_empty() && p.create.is_empty());
        assert_eq!(p.recheck, None);
    }

    #[test]
    fn runtime_must_be_offered() {
        let mut w = workload(PlacementStrategy::All, None, SchedulingPolicy::Spread);
        w.spec.template.containers.clear();
        w.spec.template.process = Some(Default::default());
        let p = run(&w, &fleet(), &[]);
        assert_eq!(p.create, ["dev1"]);
        assert_eq!(p.unfit, [("dev2".to_string(), Unfit::NoRuntime("process"))]);
        assert_eq!(Unfit::NoRuntime("process").to_string(), "no process runtime");
    }

    #[test]
    fn resource_aware_lands_where_it_fits_least_loaded_first() {
        let w = with_requests(
            workload(PlacementStrategy::Replicas, Some(1), SchedulingPolicy::ResourceAware),
            "1",
            "6Gi",
        );
        let p = run(&w, &fleet(), &[]);
        assert_eq!(p.create, ["dev2"]);
        assert_eq!(p.unfit[0].1.to_string(), "insufficient memory (requests 6Gi, free 4Gi)");
        // dev2 busy with another workload's 4Gi: nothing fits any more.
        let other = with_requests(
            {
                let mut o = workload(PlacementStrategy::All, None, SchedulingPolicy::Spread);
                o.metadata.name = Some("db".into());
                o
            },
            "3500m",
            "4Gi",
        );
        let p = run(&w, &fleet(), &[placement(&other, "dev2", true)]);
        assert!(p.create.is_empty());
        assert_eq!(
            p.unfit[1],
            (
                "dev2".to_string(),
                Unfit::Insufficient {
                    requests: Resources {
                        cpu_millis: 1000,
                        memory_bytes: 6 << 30
                    },
                    free: Resources {
                        cpu_millis: 500,
                        memory_bytes: 4 << 30
                    }
                }
            )
        );
        assert_eq!(
            p.unfit[1].1.to_string(),
            "insufficient cpu (requests 1, free 500m), memory (requests 6Gi, free 4Gi)"
        );
        // Both fit: the least loaded wins even against name order.
        let small = with_requests(
            workload(PlacementStrategy::Replicas, Some(1), SchedulingPolicy::ResourceAware),
            "100m",
            "128Mi",
        );
        assert_eq!(run(&small, &fleet(), &[]).create, ["dev2"]);
    }

    #[test]
    fn spread_round_robins_by_placement_count() {
        let w = workload(PlacementStrategy::Replicas, Some(1), SchedulingPolicy::Spread);
        assert_eq!(run(&w, &fleet(), &[]).create, ["dev1"]);
        let mut other = workload(PlacementStrategy::All, None, SchedulingPolicy::Spread);
        other.metadata.name = Some("db".into());
        let p = run(&w, &fleet(), &[placement(&other, "dev1", true)]);
        assert_eq!(p.create, ["dev2"]);
    }

    #[test]
    fn replicas_keep_then_scale_down_the_unready_first() {
        let mut w = workload(PlacementStrategy::Replicas, Some(2), SchedulingPolicy::Spread);
        let mut agents = fleet();
        agents[2].metadata.labels = Some([("site".to_string(), "north".to_string())].into());
        let made = [placement(&w, "dev1", true), placement(&w, "dev3", false)];
        let p = run(&w, &agents, &made);
        assert!(p.create.is_empty() && p.remove.is_empty());
        w.spec.placement.replicas = Some(1);
        let p = run(&w, &agents, &made);
        assert_eq!(p.keep, [("dev1".to_string(), placement_name("web", "dev1"))]);
        assert_eq!(
            p.remove,
            [(placement_name("web", "dev3"), "dev3".to_string(), Removal::ScaledDown)]
        );
    }

    #[test]
    fn replicas_move_off_agents_down_past_the_eviction_timeout() {
        let w = workload(PlacementStrategy::Replicas, Some(1), SchedulingPolicy::Spread);
        let mut agents = fleet();
        let made = [placement(&w, "dev1", true)];
        set_ready(&mut agents[0], "Unknown", "2030-01-01T00:08:00Z");
        let p = run(&w, &agents, &made);
        assert!(p.remove.is_empty());
        assert_eq!(p.recheck, Some(Duration::from_secs(180)));
        set_ready(&mut agents[0], "Unknown", "2030-01-01T00:04:00Z");
        let p = run(&w, &agents, &made);
        assert_eq!(p.remove[0].2, Removal::Evicted);
        assert_eq!(p.create, ["dev2"]);
    }

    #[test]
    fn placements_go_when_agents_go_or_stop_matching() {
        let w = workload(PlacementStrategy::All, None, SchedulingPolicy::Spread);
        let mut agents = fleet();
        agents[1].metadata.labels = None;
        agents.remove(0);
        let made = [placement(&w, "dev1", true), placement(&w, "dev2", true)];
        let p = run(&w, &agents, &made);
        let why: Vec<&Removal> = p.remove.iter().map(|r| &r.2).collect();
        assert_eq!(why, [&Removal::NotSelected, &Removal::NotSelected]);
        assert_eq!(p.matching, 0);
    }

    #[test]
    fn byte_amounts_read_like_quantities() {
        assert_eq!(bytes(8 << 30), "8Gi");
        assert_eq!(bytes(1536 << 20), "1536Mi");
        assert_eq!(bytes(100), "100");
        assert_eq!(bytes(0), "0");
    }
}
