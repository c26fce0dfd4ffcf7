//! The placement reconciler: converges what runs on the device to the assignments.
//!
//! Each pass lists what the runtimes run for this agent, then for every assigned placement
//! starts what is missing (pulling its image first), restarts what ended (per restart policy,
//! after the backoff of [`super::restart`]), replaces what runs an outdated unit hash, and
//! removes what is not assigned. Running units with the right hash are left alone — so an
//! agent that restarts, or a hub that comes back, restarts nothing.
//!
//! Removal needs authority: a watch Delete, or a complete list from the hub (or the state
//! file written from one) that lacks the placement. A hub that cannot be reached removes
//! nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use faros_api::edge::{AGENT_LABEL, AgentWorkload};
use faros_api::workloads::{
    Placement, PlacementSpec, RESTART_ANNOTATION, Resources, RestartPolicy, TerminatedState, WaitingState,
};
use kube::ResourceExt;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::report::StatusBoard;
use super::restart::{RestartBackoff, should_restart};
use super::runtime::{AnyRuntime, Observed, Prepared, RunState, Runtime, RuntimeSet, UnitSpec, units_of};
use super::state::{Loaded, Saved, SavedPlacement, SavedUnit, Store};
use super::status::{self, Header, UnitView, waiting};
use super::{AgentRef, Assignment, Layout};

pub struct ReconcilerOptions {
    pub agent: AgentRef,
    pub layout: Layout,
    /// Keep the assignments in the state directory (the simulator keeps them in memory).
    pub persist: bool,
    /// The device address endpoints are reported on.
    pub address: String,
}

/// What the Agent's status says about workloads.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkloadSummary {
    /// The requests of every assigned placement together.
    pub allocated: Resources,
    /// One line per assigned placement, by name.
    pub workloads: Vec<AgentWorkload>,
}

/// The least time between two summaries, so a flapping container does not rewrite the Agent.
const SUMMARY_INTERVAL: Duration = Duration::from_secs(1);

pub struct Reconciler {
    opts: ReconcilerOptions,
    runtimes: RuntimeSet,
    store: Store,
    board: StatusBoard,
    summary: watch::Sender<WorkloadSummary>,
    assigned: BTreeMap<String, Assigned>,
    /// Whether the assignments are authoritative: from the state file or a complete list.
    known: bool,
    /// Deleted by the hub; their units go even before the assignments are known.
    deleted: BTreeSet<String>,
    pulls: HashMap<(&'static str, String), Pull>,
    pulled_tx: mpsc::UnboundedSender<PullDone>,
    pulled_rx: mpsc::UnboundedReceiver<PullDone>,
    save_pending: bool,
    /// Something was done; list again at once to report what came of it.
    again: bool,
    last_summary: Option<Instant>,
    summary_due: Option<Instant>,
    list_failures: u32,
}

struct Assigned {
    uid: Option<String>,
    generation: Option<i64>,
    /// The placement's restart stamp (set by deleting its Pod): a new one replaces every
    /// unit, as a new Pod would start afresh.
    restart: Option<String>,
    spec: PlacementSpec,
    units: BTreeMap<String, Track>,
}

/// The reconciler's memory of one unit.
#[derive(Default)]
struct Track {
    hash: String,
    restart_count: i32,
    last_termination: Option<TerminatedState>,
    backoff: RestartBackoff,
    restart_at: Option<Instant>,
    /// The run whose end is recorded, so that each end counts once.
    recorded_end: Option<String>,
    error: Option<WaitingState>,
    ever_started: bool,
}

impl Track {
    fn new(hash: &str) -> Track {
        Track {
            hash: hash.to_string(),
            ..Default::default()
        }
    }
}

/// An image being fetched, or that could not be; the backoff spaces out retries.
enum Pull {
    InFlight {
        /// Why the attempt before failed.
        previous: Option<String>,
        backoff: RestartBackoff,
    },
    Failed {
        message: String,
        retry_at: Instant,
        backoff: RestartBackoff,
    },
}

impl Pull {
    fn waiting(&self, image: &str) -> Option<WaitingState> {
        match self {
            Pull::InFlight { previous: None, .. } => waiting_state(waiting::PULLING, format!("pulling {image}")),
            Pull::InFlight {
                previous: Some(message),
                ..
            } => waiting_state(waiting::IMAGE_PULL_BACKOFF, message.clone()),
            Pull::Failed { message, .. } => waiting_state(waiting::ERR_IMAGE_PULL, message.clone()),
        }
    }
}

struct PullDone {
    runtime: &'static str,
    image: String,
    result: Result<(), String>,
}

impl Reconciler {
    /// A reconciler starting from the assignments in the state directory. The summary
    /// receiver feeds the Agent's status.
    pub fn new(
        opts: ReconcilerOptions,
        runtimes: RuntimeSet,
        board: StatusBoard,
    ) -> (Reconciler, watch::Receiver<WorkloadSummary>) {
        let store = Store::new(opts.persist.then(|| opts.layout.assignments_file()));
        let (summary, summary_rx) = watch::channel(WorkloadSummary::default());
        let (pulled_tx, pulled_rx) = mpsc::unbounded_channel();
        let mut reconciler = Reconciler {
            opts,
            runtimes,
            store,
            board,
            summary,
            assigned: BTreeMap::new(),
            known: false,
            deleted: BTreeSet::new(),
            pulls: HashMap::new(),
            pulled_tx,
            pulled_rx,
            save_pending: false,
            again: false,
            last_summary: None,
            summary_due: None,
            list_failures: 0,
        };
        reconciler.load();
        (reconciler, summary_rx)
    }

    fn load(&mut self) {
        match self.store.load() {
            Loaded::Found(saved) => {
                self.known = true;
                for (name, p) in saved.placements {
                    let units = p
                        .units
                        .into_iter()
                        .map(|(unit, s)| {
                            let track = Track {
                                hash: s.hash,
                                restart_count: s.restart_count,
                                last_termination: s.last_termination,
                                ever_started: true,
                                ..Default::default()
                            };
                            (unit, track)
                        })
                        .collect();
                    self.assigned.insert(
                        name,
                        Assigned {
                            uid: p.uid,
                            generation: p.generation,
                            restart: p.restart,
                            spec: p.spec,
                            units,
                        },
                    );
                }
                tracing::info!(placements = self.assigned.len(), "loaded the workload assignments");
            }
            Loaded::Absent => {}
            Loaded::Unreadable(why) => {
                tracing::warn!(reason = %why, "ignoring the saved workload assignments; waiting for the hub's")
            }
        }
    }

    fn save(&mut self) {
        if !self.save_pending {
            return;
        }
        self.save_pending = false;
        let saved = Saved {
            version: 0,
            placements: self
                .assigned
                .iter()
                .map(|(name, a)| {
                    let units = a
                        .units
                        .iter()
                        .map(|(unit, t)| {
                            let saved = SavedUnit {
                                hash: t.hash.clone(),
                                restart_count: t.restart_count,
                                last_termination: t.last_termination.clone(),
                            };
                            (unit.clone(), saved)
                        })
                        .collect();
                    let saved = SavedPlacement {
                        uid: a.uid.clone(),
                        generation: a.generation,
                        restart: a.restart.clone(),
                        spec: a.spec.clone(),
                        units,
                    };
                    (name.clone(), saved)
                })
                .collect(),
        };
        if let Err(e) = self.store.save(&saved) {
            tracing::warn!(error = %format!("{e:#}"), "could not save the workload assignments");
            self.save_pending = true;
        }
    }

    /// Runs until `shutdown` flips or `assignments` closes. What runs stays running.
    pub async fn run(mut self, mut assignments: mpsc::Receiver<Assignment>, mut shutdown: watch::Receiver<bool>) {
        let wake = self.runtimes.wake();
        let mut open = true;
        loop {
            // Boxed: what converging awaits (runtimes, pulls) would otherwise be held in this
            // future while it waits, and a simulator keeps one per simulated device.
            Box::pin(self.converge()).await;
            let next = self.next_wake();
            tokio::select! {
                biased;
                _ = shutdown.wait_for(|s| *s) => return,
                event = assignments.recv(), if open => match event {
                    Some(event) => {
                        self.assign(event);
                        while let Ok(more) = assignments.try_recv() {
                            self.assign(more);
                        }
                    }
                    // No hub feed any more (tests): keep running what is assigned.
                    None => open = false,
                },
                Some(done) = self.pulled_rx.recv() => self.pulled(done),
                _ = wake.notified() => {}
                _ = sleep_until(next) => {}
            }
        }
    }

    fn next_wake(&self) -> Option<Instant> {
        let now = Instant::now();
        if self.again {
            return Some(now);
        }
        let busy = !self.assigned.is_empty() || !self.deleted.is_empty();
        let poll = busy
            .then(|| self.runtimes.all().filter_map(|r| r.poll_interval()).min())
            .flatten()
            .map(|d| now + d);
        let restarts = self
            .assigned
            .values()
            .flat_map(|a| a.units.values())
            .filter_map(|t| t.restart_at);
        let pulls = self.pulls.values().filter_map(|p| match p {
            Pull::Failed { retry_at, .. } => Some(*retry_at),
            Pull::InFlight { .. } => None,
        });
        poll.into_iter()
            .chain(restarts)
            .chain(pulls)
            .chain(self.summary_due)
            .min()
    }

    /// Takes in a change from the hub.
    pub(crate) fn assign(&mut self, event: Assignment) {
        match event {
            Assignment::Snapshot(list) => {
                let mut names = BTreeSet::new();
                for p in list {
                    if let Some(name) = self.accept(p) {
                        names.insert(name);
                    }
                }
                let gone: Vec<String> = self.assigned.keys().filter(|n| !names.contains(*n)).cloned().collect();
                for name in gone {
                    tracing::info!(placement = %name, "no longer assigned");
                    self.assigned.remove(&name);
                    self.board.remove(&name);
                    self.save_pending = true;
                }
                if !self.known {
                    tracing::info!(placements = names.len(), "the hub listed this agent's placements");
                }
                self.known = true;
            }
            Assignment::Apply(p) => {
                self.accept(*p);
            }
            Assignment::Delete(p) => {
                let name = p.name_any();
                if self.assigned.remove(&name).is_some() {
                    tracing::info!(placement = %name, "deleted by the hub");
                    self.save_pending = true;
                }
                self.board.remove(&name);
                self.deleted.insert(name);
            }
        }
    }

    /// Records one placement from the hub; returns its name if it is this agent's and live.
    fn accept(&mut self, p: Placement) -> Option<String> {
        let name = p.name_any();
        let ours = p.spec.agent == self.opts.agent.name
            && p.labels().get(AGENT_LABEL).is_none_or(|a| *a == self.opts.agent.name);
        if !ours {
            tracing::warn!(placement = %name, agent = %p.spec.agent, "ignoring a placement for another agent");
            return None;
        }
        if p.metadata.deletion_timestamp.is_some() {
            if self.assigned.remove(&name).is_some() {
                self.save_pending = true;
            }
            self.board.remove(&name);
            self.deleted.insert(name);
            return None;
        }
        self.board.seen_remote(&name, p.status.as_ref());
        self.deleted.remove(&name);
        let uid = p.uid();
        let generation = p.metadata.generation;
        let restart = p.annotations().get(RESTART_ANNOTATION).cloned();
        match self.assigned.get_mut(&name) {
            Some(a) if a.spec == p.spec && a.uid == uid && a.generation == generation && a.restart == restart => {}
            Some(a) => {
                if a.spec != p.spec {
                    tracing::info!(placement = %name, template = %p.spec.template_hash, "assignment changed");
                }
                if a.restart != restart {
                    tracing::info!(placement = %name, "restart asked for");
                }
                a.spec = p.spec;
                a.uid = uid;
                a.generation = generation;
                a.restart = restart;
                self.save_pending = true;
            }
            None => {
                tracing::info!(placement = %name, workload = %p.spec.workload, "assigned");
                self.assigned.insert(
                    name.clone(),
                    Assigned {
                        uid,
                        generation,
                        restart,
                        spec: p.spec,
                        units: BTreeMap::new(),
                    },
                );
                self.save_pending = true;
            }
        }
        Some(name)
    }

    fn pulled(&mut self, done: PullDone) {
        let key = (done.runtime, done.image.clone());
        match done.result {
            Ok(()) => {
                tracing::info!(image = %done.image, "pulled");
                self.pulls.remove(&key);
            }
            Err(message) => {
                let mut backoff = match self.pulls.remove(&key) {
                    Some(Pull::InFlight { backoff, .. } | Pull::Failed { backoff, .. }) => backoff,
                    None => RestartBackoff::default(),
                };
                tracing::warn!(image = %done.image, error = %message, "pull failed");
                let retry_at = Instant::now() + backoff.delay();
                backoff.restarted();
                self.pulls.insert(
                    key,
                    Pull::Failed {
                        message,
                        retry_at,
                        backoff,
                    },
                );
            }
        }
    }

    /// One pass: observe, then act on every placement and on what is no longer assigned.
    async fn converge(&mut self) {
        self.again = false;
        let now = Instant::now();
        let mut by_placement: BTreeMap<String, Vec<(&'static str, Observed)>> = BTreeMap::new();
        let mut unlisted: BTreeSet<&'static str> = BTreeSet::new();
        let runtimes: Vec<Arc<AnyRuntime>> = self.runtimes.all().cloned().collect();
        for runtime in &runtimes {
            match runtime.list().await {
                Ok(units) => {
                    for o in units {
                        by_placement
                            .entry(o.placement.clone())
                            .or_default()
                            .push((runtime.name(), o));
                    }
                }
                Err(e) => {
                    self.list_failures += 1;
                    if self.list_failures == 1 || self.list_failures.is_power_of_two() {
                        tracing::warn!(runtime = runtime.name(), error = %e, "cannot list what runs");
                    }
                    unlisted.insert(runtime.name());
                }
            }
        }
        if unlisted.is_empty() {
            self.list_failures = 0;
        }

        let names: Vec<String> = self.assigned.keys().cloned().collect();
        for name in &names {
            let mine = by_placement.remove(name).unwrap_or_default();
            self.reconcile_placement(name, mine, &unlisted, now).await;
        }

        // Not assigned (any more): removed, when that is known for sure.
        for (name, units) in by_placement {
            if !(self.known || self.deleted.contains(&name)) {
                continue;
            }
            for (runtime, o) in units {
                if let Ok(rt) = self.runtimes.get(runtime).cloned() {
                    tracing::info!(placement = %name, unit = %o.unit, id = %o.id, "removing what is no longer assigned");
                    match rt.remove(&o).await {
                        // Looked at again at once, to clean up after it.
                        Ok(()) => self.again = true,
                        // Tried again at the next poll.
                        Err(e) => tracing::warn!(placement = %name, error = %e, "could not remove"),
                    }
                }
            }
        }
        if unlisted.is_empty() && (self.known || !self.deleted.is_empty()) {
            self.clean_directories();
        }
        self.save();
        self.publish_summary(now);
    }

    /// Removes the directories (emptyDirs, logs) of placements that are gone.
    fn clean_directories(&mut self) {
        let root = self.opts.layout.placements_dir();
        let Ok(entries) = std::fs::read_dir(&root) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if self.assigned.contains_key(&name) || !(self.known || self.deleted.contains(&name)) {
                continue;
            }
            if let Err(e) = std::fs::remove_dir_all(entry.path()) {
                tracing::warn!(placement = %name, error = %e, "could not remove the placement's directory");
            }
        }
        if self.known {
            self.deleted.clear();
        }
    }

    async fn reconcile_placement(
        &mut self,
        name: &str,
        mine: Vec<(&'static str, Observed)>,
        unlisted: &BTreeSet<&'static str>,
        now: Instant,
    ) {
        let Some(a) = self.assigned.get(name) else {
            return;
        };
        let wanted_runtime = a.spec.template.runtime();
        let units = units_of(name, &a.spec, a.restart.as_deref(), &self.opts.layout);
        let runtime = self.runtimes.get(wanted_runtime).cloned();
        let header = Header {
            generation: a.generation,
            template_hash: &a.spec.template_hash,
            runtime: wanted_runtime,
            address: &self.opts.address,
        };
        // Units on another runtime than the one wanted (the template switched form), or of
        // a placement that cannot run at all, go.
        let keep_runtime = match (&units, &runtime) {
            (Ok(_), Ok(_)) => Some(wanted_runtime),
            _ => None,
        };
        let mut on_runtime = Vec::new();
        for (rt_name, o) in mine {
            if Some(rt_name) == keep_runtime {
                on_runtime.push(o);
            } else if let Ok(rt) = self.runtimes.get(rt_name) {
                tracing::info!(placement = %name, unit = %o.unit, "removing what this placement no longer runs");
                match rt.remove(&o).await {
                    Ok(()) => self.again = true,
                    Err(e) => tracing::warn!(placement = %name, error = %e, "could not remove"),
                }
            }
        }
        let (units, runtime) = match (units, runtime) {
            (Err(why), _) => {
                let status = status::unrunnable(&header, why.reason, &why.message);
                self.board.set(name, status);
                return;
            }
            (Ok(_), Err(why)) => {
                let status = status::unrunnable(&header, "RuntimeUnavailable", &why);
                self.board.set(name, status);
                return;
            }
            (Ok(units), Ok(runtime)) => (units, runtime),
        };
        if unlisted.contains(wanted_runtime) {
            // Blind: do nothing rather than start a second copy.
            return;
        }
        let policy = a.spec.template.restart_policy;
        let template_hash = a.spec.template_hash.clone();
        let generation = a.generation;
        let Some(a) = self.assigned.get_mut(name) else {
            return;
        };
        let mut ctx = UnitCtx {
            runtime,
            policy,
            now,
            pulls: &mut self.pulls,
            pulled_tx: &self.pulled_tx,
            acted: false,
            counts_changed: false,
        };
        let outcomes = reconcile_units(&mut ctx, &units, on_runtime, &mut a.units).await;
        let (acted, counts_changed) = (ctx.acted, ctx.counts_changed);
        if counts_changed {
            self.save_pending = true;
        }
        if acted {
            // Report once the runtime has been looked at again.
            self.again = true;
            return;
        }
        let all_current = outcomes
            .iter()
            .all(|o| o.observed.as_ref().is_some_and(|seen| seen.hash == o.spec.hash));
        let previous = self.board.get(name).map(|s| s.template_hash).unwrap_or_default();
        let header = Header {
            generation,
            template_hash: if all_current { &template_hash } else { &previous },
            runtime: wanted_runtime,
            address: &self.opts.address,
        };
        let views: Vec<UnitView<'_>> = outcomes
            .iter()
            .map(|o| {
                let track = a.units.get(&o.spec.unit);
                UnitView {
                    spec: o.spec,
                    observed: o.observed.as_ref(),
                    waiting: o.waiting.clone(),
                    restart_count: track.map(|t| t.restart_count).unwrap_or_default(),
                    last_termination: track.and_then(|t| t.last_termination.clone()),
                    done: o.done,
                }
            })
            .collect();
        let status = status::placement_status(&header, &views);
        self.board.set(name, status);
    }

    fn publish_summary(&mut self, now: Instant) {
        let mut summary = WorkloadSummary::default();
        for (name, a) in &self.assigned {
            summary.allocated.add(&a.spec.template.requests());
            let status = self.board.get(name);
            summary.workloads.push(AgentWorkload {
                workload: a.spec.workload.clone(),
                placement: name.clone(),
                phase: status
                    .as_ref()
                    .map(|s| format!("{:?}", s.phase))
                    .unwrap_or_else(|| "Pending".into()),
                ready: status.is_some_and(|s| s.ready),
            });
        }
        if *self.summary.borrow() == summary {
            self.summary_due = None;
            return;
        }
        if let Some(last) = self.last_summary
            && now < last + SUMMARY_INTERVAL
        {
            self.summary_due = Some(last + SUMMARY_INTERVAL);
            return;
        }
        self.summary_due = None;
        self.last_summary = Some(now);
        self.summary.send_replace(summary);
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

struct UnitCtx<'a> {
    runtime: Arc<AnyRuntime>,
    policy: RestartPolicy,
    now: Instant,
    pulls: &'a mut HashMap<(&'static str, String), Pull>,
    pulled_tx: &'a mpsc::UnboundedSender<PullDone>,
    /// Something was started, restarted or removed.
    acted: bool,
    /// Restart counts or terminations changed (to be saved).
    counts_changed: bool,
}

struct Outcome<'a> {
    spec: &'a UnitSpec,
    observed: Option<Observed>,
    waiting: Option<WaitingState>,
    done: bool,
}

fn waiting_state(reason: &str, message: String) -> Option<WaitingState> {
    Some(WaitingState {
        reason: reason.to_string(),
        message,
    })
}

async fn reconcile_units<'a>(
    ctx: &mut UnitCtx<'_>,
    units: &'a [UnitSpec],
    mut observed: Vec<Observed>,
    tracks: &mut BTreeMap<String, Track>,
) -> Vec<Outcome<'a>> {
    tracks.retain(|unit, _| units.iter().any(|u| u.unit == *unit));
    // Units the template no longer has, and duplicates (the newest running copy is kept).
    observed.sort_by_key(|o| !matches!(o.state, RunState::Running { .. }));
    let mut seen = BTreeSet::new();
    let mut current: BTreeMap<String, Observed> = BTreeMap::new();
    for o in observed {
        if units.iter().any(|u| u.unit == o.unit) && seen.insert(o.unit.clone()) {
            current.insert(o.unit.clone(), o);
        } else {
            tracing::info!(placement = %o.placement, unit = %o.unit, id = %o.id, "removing a unit the template does not have");
            match ctx.runtime.remove(&o).await {
                Ok(()) => ctx.acted = true,
                Err(e) => tracing::warn!(placement = %o.placement, error = %e, "could not remove"),
            }
        }
    }
    let mut out = Vec::new();
    for spec in units {
        let track = tracks
            .entry(spec.unit.clone())
            .or_insert_with(|| Track::new(&spec.hash));
        if track.hash != spec.hash {
            // A replaced unit starts its counts over, as a new Pod's containers do.
            *track = Track::new(&spec.hash);
            ctx.counts_changed = true;
        }
        let mut outcome = Outcome {
            spec,
            observed: current.remove(&spec.unit),
            waiting: None,
            done: false,
        };
        if let Some(o) = outcome.observed.take_if(|o| o.hash != spec.hash) {
            tracing::info!(placement = %spec.placement, unit = %spec.unit, "replacing: its spec changed");
            if let Err(e) = ctx.runtime.remove(&o).await {
                outcome.waiting = waiting_state(e.reason, e.message);
                outcome.observed = Some(o);
                out.push(outcome);
                continue;
            }
            ctx.acted = true;
        }
        match outcome.observed.clone() {
            None => start_missing(ctx, spec, track, &mut outcome).await,
            Some(o) => match &o.state {
                RunState::Running { started_at } => {
                    track.ever_started = true;
                    track.error = None;
                    track.restart_at = None;
                    if let Some(ran) = started_at.as_deref().and_then(running_for) {
                        track.backoff.running_for(ran);
                    }
                }
                RunState::Created => {
                    // Started with the same backoff as a restart, so a unit that will not
                    // leave `created` is not started in a tight loop.
                    let due = *track.restart_at.get_or_insert(ctx.now);
                    if ctx.now >= due {
                        track.restart_at = Some(ctx.now + track.backoff.delay());
                        track.backoff.restarted();
                        match ctx.runtime.restart(spec, &o).await {
                            Ok(()) => ctx.acted = true,
                            Err(e) => outcome.waiting = waiting_state(e.reason, e.message),
                        }
                    }
                }
                RunState::Exited {
                    exit_code,
                    started_at,
                    finished_at,
                } => {
                    let run = format!("{}@{}", o.id, started_at.as_deref().unwrap_or_default());
                    let restart = should_restart(ctx.policy, *exit_code);
                    if track.recorded_end.as_deref() != Some(run.as_str()) {
                        let ended = status::terminated(*exit_code, started_at.clone(), finished_at.clone());
                        tracing::info!(placement = %spec.placement, unit = %spec.unit, exit_code = ended.exit_code,
                            restart, "unit ended");
                        track.last_termination = Some(ended);
                        track.recorded_end = Some(run);
                        ctx.counts_changed = true;
                        if restart {
                            track.restart_at = Some(ctx.now + track.backoff.delay());
                        }
                    }
                    if !restart {
                        outcome.done = true;
                    } else {
                        let due = *track.restart_at.get_or_insert(ctx.now);
                        if ctx.now >= due {
                            match ctx.runtime.restart(spec, &o).await {
                                Ok(()) => {
                                    track.restart_count += 1;
                                    track.backoff.restarted();
                                    track.restart_at = None;
                                    track.error = None;
                                    ctx.acted = true;
                                    ctx.counts_changed = true;
                                    tracing::info!(placement = %spec.placement, unit = %spec.unit,
                                        restarts = track.restart_count, "restarted");
                                }
                                Err(e) => {
                                    track.restart_at = Some(ctx.now + track.backoff.delay());
                                    track.backoff.restarted();
                                    outcome.waiting = waiting_state(e.reason, e.message);
                                }
                            }
                        } else {
                            let wait = due.saturating_duration_since(ctx.now);
                            outcome.waiting = waiting_state(
                                waiting::CRASH_LOOP_BACKOFF,
                                format!(
                                    "back-off {}s restarting it after it ended",
                                    wait.as_secs_f64().ceil() as u64
                                ),
                            );
                        }
                    }
                }
            },
        }
        out.push(outcome);
    }
    out
}

/// Starts a unit that does not exist: pulls first if needed, then waits out the backoff of
/// a failed start.
async fn start_missing(ctx: &mut UnitCtx<'_>, spec: &UnitSpec, track: &mut Track, outcome: &mut Outcome<'_>) {
    if let Some(at) = track.restart_at
        && ctx.now < at
    {
        outcome.waiting = track
            .error
            .clone()
            .or_else(|| waiting_state(waiting::CRASH_LOOP_BACKOFF, "back-off before starting it again".into()));
        return;
    }
    match ctx.runtime.prepare(spec).await {
        Err(e) => outcome.waiting = waiting_state(e.reason, e.message),
        Ok(Prepared::NeedsPull(image)) => {
            let key = (ctx.runtime.name(), image.clone());
            let (previous, backoff) = match ctx.pulls.remove(&key) {
                Some(pull @ Pull::InFlight { .. }) => {
                    outcome.waiting = pull.waiting(&image);
                    ctx.pulls.insert(key, pull);
                    return;
                }
                Some(pull @ Pull::Failed { retry_at, .. }) if ctx.now < retry_at => {
                    outcome.waiting = pull.waiting(&image);
                    ctx.pulls.insert(key, pull);
                    return;
                }
                Some(Pull::Failed { message, backoff, .. }) => (Some(message), backoff),
                None => (None, RestartBackoff::default()),
            };
            let pull = Pull::InFlight { previous, backoff };
            outcome.waiting = pull.waiting(&image);
            ctx.pulls.insert(key, pull);
            tracing::info!(placement = %spec.placement, %image, "pulling");
            let runtime = ctx.runtime.clone();
            let tx = ctx.pulled_tx.clone();
            tokio::spawn(async move {
                let result = runtime.pull(&image).await.map_err(|e| e.message);
                let _ = tx.send(PullDone {
                    runtime: runtime.name(),
                    image,
                    result,
                });
            });
        }
        Ok(Prepared::Ready) => match ctx.runtime.start(spec).await {
            Ok(id) => {
                if track.ever_started {
                    track.restart_count += 1;
                    track.backoff.restarted();
                }
                track.ever_started = true;
                track.error = None;
                track.restart_at = None;
                ctx.acted = true;
                ctx.counts_changed = true;
                tracing::info!(placement = %spec.placement, unit = %spec.unit, %id, "started");
            }
            Err(e) => {
                tracing::warn!(placement = %spec.placement, unit = %spec.unit, error = %e, "could not start");
                track.error = waiting_state(e.reason, e.message);
                track.restart_at = Some(ctx.now + track.backoff.delay());
                track.backoff.restarted();
                outcome.waiting = track.error.clone();
            }
        },
    }
}

/// How long ago an RFC 3339 time was.
fn running_for(started_at: &str) -> Option<Duration> {
    let started: jiff::Timestamp = started_at.parse().ok()?;
    let ran = jiff::Timestamp::now().duration_since(started);
    Duration::try_from(ran).ok()
}
