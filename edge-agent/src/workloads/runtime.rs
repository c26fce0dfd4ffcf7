//! The runtime contract: what the reconciler asks of podman, of supervised processes and of
//! the simulator's fake, and the units it asks for.
//!
//! A runtime only creates, observes and removes *units*: one container of a placement, or
//! the one process of a process-form placement. It labels (or records) each with the agent,
//! the placement, the unit name and the unit's hash, so that [`Runtime::list`] finds
//! everything the agent started — also before a crash of the agent — and nothing else.
//! Restart policy, backoff, restart counts and status are the reconciler's, the same for
//! every runtime.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use faros_api::workloads::{
    Container, ContainerPort, PlacementSpec, Process, RUNTIME_PODMAN, RUNTIME_PROCESS, WorkloadSpec, fnv1a,
    validate_spec,
};
use serde::Serialize;
use tokio::sync::Notify;

use super::{Layout, fake::Fake, podman::Podman, process::Processes};

/// Why a runtime could not do something: a machine-readable reason for the waiting state
/// (`ErrImagePull`, `StartError`, `RuntimeError`) and the runtime's own words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeError {
    pub reason: &'static str,
    pub message: String,
}

impl RuntimeError {
    pub fn new(reason: &'static str, message: impl Into<String>) -> RuntimeError {
        RuntimeError {
            reason,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason, self.message)
    }
}

/// One thing to run for a placement.
#[derive(Clone, Debug, PartialEq)]
pub struct UnitSpec {
    pub placement: String,
    /// The container's name, or `process`.
    pub unit: String,
    /// Everything that, changed, means replacing the unit (not the restart policy).
    pub hash: String,
    /// The placement's `spec.templateHash`.
    pub template_hash: String,
    pub kind: UnitKind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum UnitKind {
    Container { container: Container, mounts: Vec<Mount> },
    Process { process: Process, working_dir: PathBuf },
}

/// A volume resolved to a device path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Mount {
    pub source: PathBuf,
    pub target: String,
    pub read_only: bool,
    /// An emptyDir: the agent creates the directory before starting the unit.
    pub create: bool,
}

/// The unit name of a process-form placement.
pub const PROCESS_UNIT: &str = "process";

impl UnitSpec {
    /// The image a container unit runs.
    pub fn image(&self) -> Option<&str> {
        match &self.kind {
            UnitKind::Container { container, .. } => Some(&container.image),
            UnitKind::Process { .. } => None,
        }
    }

    /// The ports the unit serves.
    pub fn ports(&self) -> &[ContainerPort] {
        match &self.kind {
            UnitKind::Container { container, .. } => &container.ports,
            UnitKind::Process { process, .. } => &process.ports,
        }
    }
}

/// Why a placement cannot run at all (its status says `Failed` with this reason).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unrunnable {
    pub reason: &'static str,
    pub message: String,
}

/// The units of placement `name`, or why it cannot run: the template is checked with the
/// hub's own validation, so an object that slipped past admission never crashes the agent.
/// A `restart` stamp (set by deleting the placement's Pod) is part of every unit's hash, so
/// a new stamp replaces what runs.
pub fn units_of(
    name: &str,
    spec: &PlacementSpec,
    restart: Option<&str>,
    layout: &Layout,
) -> Result<Vec<UnitSpec>, Unrunnable> {
    if !super::valid_placement_name(name) {
        return Err(Unrunnable {
            reason: "InvalidName",
            message: format!("{name:?} is not a DNS subdomain"),
        });
    }
    let workload = WorkloadSpec {
        template: spec.template.clone(),
        ..Default::default()
    };
    let problems = validate_spec(&workload);
    if !problems.is_empty() {
        let message = problems
            .iter()
            .map(|p| format!("{}: {}", p.path, p.detail))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(Unrunnable {
            reason: "InvalidSpec",
            message,
        });
    }
    let template = &spec.template;
    if let Some(process) = &template.process {
        let working_dir = process
            .working_dir
            .as_ref()
            .map(PathBuf::from)
            .unwrap_or_else(|| layout.placement_dir(name));
        let hash = unit_hash(&(process, &working_dir), restart);
        return Ok(vec![UnitSpec {
            placement: name.to_string(),
            unit: PROCESS_UNIT.to_string(),
            hash,
            template_hash: spec.template_hash.clone(),
            kind: UnitKind::Process {
                process: process.clone(),
                working_dir,
            },
        }]);
    }
    let volumes: BTreeMap<&str, _> = template.volumes.iter().map(|v| (v.name.as_str(), v)).collect();
    let mut units = Vec::new();
    for container in &template.containers {
        let mut mounts = Vec::new();
        for m in &container.volume_mounts {
            // Validation guarantees the volume exists and is one of the two kinds.
            let Some(volume) = volumes.get(m.name.as_str()) else {
                continue;
            };
            let (source, create) = match &volume.host_path {
                Some(host) => (PathBuf::from(&host.path), false),
                None => (layout.empty_dir(name, &volume.name), true),
            };
            mounts.push(Mount {
                source,
                target: m.mount_path.clone(),
                read_only: m.read_only,
                create,
            });
        }
        units.push(UnitSpec {
            placement: name.to_string(),
            unit: container.name.clone(),
            hash: unit_hash(&(container, &mounts), restart),
            template_hash: spec.template_hash.clone(),
            kind: UnitKind::Container {
                container: container.clone(),
                mounts,
            },
        });
    }
    Ok(units)
}

/// The unit's hash; without a restart stamp it is what it was before stamps existed, so
/// upgrading the agent replaces nothing.
fn unit_hash(value: &impl Serialize, restart: Option<&str>) -> String {
    let mut bytes = serde_json::to_vec(value).unwrap_or_default();
    if let Some(stamp) = restart {
        bytes.push(b'/');
        bytes.extend_from_slice(stamp.as_bytes());
    }
    format!("{:016x}", fnv1a(&bytes))
}

/// What a runtime sees of one unit.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    pub placement: String,
    pub unit: String,
    pub hash: String,
    /// Container id, or process id.
    pub id: String,
    pub state: RunState,
    pub image: String,
    pub image_id: String,
    /// Where the unit's ports are published on the device.
    pub ports: Vec<PortBinding>,
    /// Something the status should mention although the unit runs (limits not enforced).
    pub warning: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortBinding {
    pub container_port: i32,
    pub host_port: i32,
    pub protocol: faros_api::workloads::Protocol,
}

impl PortBinding {
    /// A port as the template declares it, for runtimes that publish nothing themselves:
    /// without a host port, the device port is the container's.
    pub fn declared(port: &faros_api::workloads::ContainerPort) -> PortBinding {
        PortBinding {
            container_port: port.container_port,
            host_port: port.host_port.unwrap_or(port.container_port),
            protocol: port.protocol,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunState {
    /// Created, never started.
    Created,
    Running {
        started_at: Option<String>,
    },
    Exited {
        /// None when the runtime cannot know (a re-adopted process that ended while the
        /// agent was not its parent).
        exit_code: Option<i32>,
        started_at: Option<String>,
        finished_at: Option<String>,
    },
}

/// Whether a unit can start now, or first needs its image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Prepared {
    Ready,
    NeedsPull(String),
}

/// A way to run units. The methods are `async`; the set of runtimes is closed, so the
/// reconciler holds them as the enum [`AnyRuntime`] (static dispatch, no boxed futures, no
/// extra crate) rather than as trait objects, which async methods cannot be without boxing.
pub trait Runtime: Send + Sync {
    /// The name placements and Agents use (`podman`, `process`).
    fn name(&self) -> &'static str;

    /// Whether this device can use the runtime; `Err` says why not.
    fn probe(&self) -> impl Future<Output = Result<(), String>> + Send;

    /// Every unit this agent started with this runtime, running or not.
    fn list(&self) -> impl Future<Output = Result<Vec<Observed>, RuntimeError>> + Send;

    /// Whether `unit` can start at once or needs a pull first.
    fn prepare(&self, unit: &UnitSpec) -> impl Future<Output = Result<Prepared, RuntimeError>> + Send;

    /// Fetches an image (`ErrImagePull` on failure).
    fn pull(&self, image: &str) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// Creates and starts a fresh instance of `unit`, replacing any leftover of the same
    /// name; returns its id.
    fn start(&self, unit: &UnitSpec) -> impl Future<Output = Result<String, RuntimeError>> + Send;

    /// Starts an ended instance again.
    fn restart(&self, unit: &UnitSpec, current: &Observed) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// Stops (gracefully, then forcibly) and deletes an instance.
    fn remove(&self, current: &Observed) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// How often [`Runtime::list`] must be called to notice a unit ending; `None` when the
    /// runtime says so itself through the wake-up it was given.
    fn poll_interval(&self) -> Option<Duration>;
}

/// The runtimes there are.
pub enum AnyRuntime {
    Podman(Podman),
    Process(Processes),
    Fake(Fake),
}

macro_rules! dispatch {
    ($self:ident, $r:ident => $call:expr) => {
        match $self {
            AnyRuntime::Podman($r) => $call,
            AnyRuntime::Process($r) => $call,
            AnyRuntime::Fake($r) => $call,
        }
    };
}

impl Runtime for AnyRuntime {
    fn name(&self) -> &'static str {
        dispatch!(self, r => r.name())
    }

    async fn probe(&self) -> Result<(), String> {
        dispatch!(self, r => r.probe().await)
    }

    async fn list(&self) -> Result<Vec<Observed>, RuntimeError> {
        dispatch!(self, r => r.list().await)
    }

    async fn prepare(&self, unit: &UnitSpec) -> Result<Prepared, RuntimeError> {
        dispatch!(self, r => r.prepare(unit).await)
    }

    async fn pull(&self, image: &str) -> Result<(), RuntimeError> {
        dispatch!(self, r => r.pull(image).await)
    }

    async fn start(&self, unit: &UnitSpec) -> Result<String, RuntimeError> {
        dispatch!(self, r => r.start(unit).await)
    }

    async fn restart(&self, unit: &UnitSpec, current: &Observed) -> Result<(), RuntimeError> {
        dispatch!(self, r => r.restart(unit, current).await)
    }

    async fn remove(&self, current: &Observed) -> Result<(), RuntimeError> {
        dispatch!(self, r => r.remove(current).await)
    }

    fn poll_interval(&self) -> Option<Duration> {
        dispatch!(self, r => r.poll_interval())
    }
}

/// The runtimes an agent offers, and why the others are missing.
pub struct RuntimeSet {
    available: BTreeMap<&'static str, Arc<AnyRuntime>>,
    missing: BTreeMap<String, String>,
    wake: Arc<Notify>,
}

impl RuntimeSet {
    /// Probes `candidates` and keeps those that work and that `enabled` (if given) names.
    /// `wake` must be the one the candidates were built with: the reconciler waits on it.
    pub async fn detect(candidates: Vec<AnyRuntime>, enabled: Option<&[String]>, wake: Arc<Notify>) -> RuntimeSet {
        let mut set = RuntimeSet {
            available: BTreeMap::new(),
            missing: BTreeMap::new(),
            wake,
        };
        for runtime in candidates {
            let name = runtime.name();
            if let Some(enabled) = enabled
                && !enabled.iter().any(|e| e == name)
            {
                set.missing.insert(
                    name.to_string(),
                    format!("the {name} runtime is not enabled on this agent (--runtimes)"),
                );
                continue;
            }
            match runtime.probe().await {
                Ok(()) => {
                    set.available.insert(name, Arc::new(runtime));
                }
                Err(why) => {
                    tracing::warn!(runtime = name, reason = %why, "runtime unavailable");
                    set.missing.insert(name.to_string(), why);
                }
            }
        }
        for known in [RUNTIME_PODMAN, RUNTIME_PROCESS] {
            if !set.available.contains_key(known) && !set.missing.contains_key(known) {
                set.missing.insert(
                    known.to_string(),
                    format!("the {known} runtime is not enabled on this agent"),
                );
            }
        }
        set
    }

    /// The names of the runtimes available, for `Agent.status.runtimes`.
    pub fn names(&self) -> Vec<String> {
        self.available.keys().map(|n| n.to_string()).collect()
    }

    pub fn get(&self, name: &str) -> Result<&Arc<AnyRuntime>, String> {
        self.available.get(name).ok_or_else(|| {
            self.missing
                .get(name)
                .cloned()
                .unwrap_or_else(|| format!("{name:?} is not a runtime this agent knows"))
        })
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<AnyRuntime>> {
        self.available.values()
    }

    pub fn wake(&self) -> Arc<Notify> {
        self.wake.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faros_api::workloads::{EmptyDirVolume, HostPathVolume, Volume, VolumeMount, WorkloadTemplate};

    fn spec(template: WorkloadTemplate) -> PlacementSpec {
        PlacementSpec {
            workload: "web".into(),
            agent: "dev1".into(),
            template_hash: template.hash(),
            template,
        }
    }

    fn web(image: &str) -> Container {
        Container {
            name: "web".into(),
            image: image.into(),
            volume_mounts: vec![VolumeMount {
                name: "scratch".into(),
                mount_path: "/data".into(),
                read_only: false,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn units_resolve_volumes_and_hash_what_matters() {
        let layout = Layout::new(std::path::Path::new("/state"));
        let template = WorkloadTemplate {
            containers: vec![web("localhost/demo:1")],
            volumes: vec![Volume {
                name: "scratch".into(),
                empty_dir: Some(EmptyDirVolume {}),
                host_path: None,
            }],
            ..Default::default()
        };
        let units = units_of("p1", &spec(template.clone()), None, &layout).unwrap();
        let UnitKind::Container { mounts, .. } = &units[0].kind else {
            panic!("a container unit")
        };
        assert_eq!(mounts[0].source, layout.empty_dir("p1", "scratch"));
        assert!(mounts[0].create);
        // The restart policy changes nothing that runs; the image does.
        let mut policy = template.clone();
        policy.restart_policy = faros_api::workloads::RestartPolicy::Never;
        assert_eq!(
            units_of("p1", &spec(policy), None, &layout).unwrap()[0].hash,
            units[0].hash
        );
        let mut image = template.clone();
        image.containers[0].image = "localhost/demo:2".into();
        assert_ne!(
            units_of("p1", &spec(image), None, &layout).unwrap()[0].hash,
            units[0].hash
        );
        // A restart stamp replaces the unit; the same stamp again does not.
        let stamped = units_of("p1", &spec(template.clone()), Some("1"), &layout).unwrap();
        assert_ne!(stamped[0].hash, units[0].hash);
        assert_eq!(
            units_of("p1", &spec(template.clone()), Some("1"), &layout).unwrap()[0].hash,
            stamped[0].hash
        );
        let mut host = template;
        host.volumes[0] = Volume {
            name: "scratch".into(),
            host_path: Some(HostPathVolume { path: "/srv".into() }),
            empty_dir: None,
        };
        let UnitKind::Container { mounts, .. } = &units_of("p1", &spec(host), None, &layout).unwrap()[0].kind else {
            panic!("a container unit")
        };
        assert_eq!(
            (mounts[0].source.as_path(), mounts[0].create),
            (std::path::Path::new("/srv"), false)
        );
    }

    #[test]
    fn malformed_placements_are_unrunnable_not_fatal() {
        let layout = Layout::new(std::path::Path::new("/state"));
        let empty = units_of("p1", &spec(WorkloadTemplate::default()), None, &layout).unwrap_err();
        assert_eq!(empty.reason, "InvalidSpec");
        assert!(empty.message.contains("spec.template.containers"), "{}", empty.message);
        let bad_image = WorkloadTemplate {
            containers: vec![Container {
                name: "web".into(),
                image: "Not An Image".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(
            units_of("p1", &spec(bad_image), None, &layout).unwrap_err().reason,
            "InvalidSpec"
        );
        let ok = WorkloadTemplate {
            process: Some(Process {
                path: "/bin/true".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            units_of("../etc", &spec(ok.clone()), None, &layout).unwrap_err().reason,
            "InvalidName"
        );
        let units = units_of("p2", &spec(ok), None, &layout).unwrap();
        assert_eq!(units[0].unit, PROCESS_UNIT);
        let UnitKind::Process { working_dir, .. } = &units[0].kind else {
            panic!("a process unit")
        };
        assert_eq!(working_dir, &layout.placement_dir("p2"));
    }
}
