//! Workloads, `edge.faros.sh/v1alpha1`: `Workload` says what to run and on which agents;
//! the scheduler turns it into one `Placement` per (workload, agent) that carries the
//! assignment to that device and the device's report back.
//!
//! A Placement holds a copy of the workload's template, so an agent needs to read nothing
//! but its own Placements: it never sees the Workload, nor another device's assignments.

use std::collections::BTreeMap;
use std::fmt;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Condition;

/// The label naming the Workload a Placement belongs to.
pub const WORKLOAD_LABEL: &str = "edge.faros.sh/workload";
/// Set on a Placement (by deleting its Pod) to have the device restart its instance: each
/// new value is one restart.
pub const RESTART_ANNOTATION: &str = "edge.faros.sh/restarted-at";
/// The runtime of containers.
pub const RUNTIME_PODMAN: &str = "podman";
/// The runtime of supervised processes.
pub const RUNTIME_PROCESS: &str = "process";

/// Condition types and reasons of Workloads and Placements.
pub mod reasons {
    /// Workload: every wanted placement runs the current template and is ready.
    pub const AVAILABLE: &str = "Available";
    /// Workload: placements are being created, replaced or moved.
    pub const PROGRESSING: &str = "Progressing";
    /// Workload: some wanted placement could not be made or fails.
    pub const DEGRADED: &str = "Degraded";
    /// No agent matches the selector at all.
    pub const NO_MATCHING_AGENTS: &str = "NoMatchingAgents";
    /// Agents match, but some wanted placements fit on none of them.
    pub const UNSCHEDULABLE: &str = "Unschedulable";
    /// Placements exist but not all run the current template and are ready.
    pub const ROLLING_OUT: &str = "RollingOut";
    /// Placements report failure.
    pub const PLACEMENTS_FAILED: &str = "PlacementsFailed";
    /// Every wanted placement is ready.
    pub const ALL_READY: &str = "AllReady";
    /// Nothing to do: everything is in place.
    pub const UP_TO_DATE: &str = "UpToDate";
}

/// What to run on devices, and where.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "edge.faros.sh",
    version = "v1alpha1",
    kind = "Workload",
    plural = "workloads",
    shortname = "wl",
    namespaced,
    status = "WorkloadStatus",
    category = "faros",
    printcolumn = r#"{"name":"Desired","type":"integer","jsonPath":".status.desired"}"#,
    printcolumn = r#"{"name":"Ready","type":"integer","jsonPath":".status.ready"}"#,
    printcolumn = r#"{"name":"Up-to-date","type":"integer","jsonPath":".status.updated"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Strategy","type":"string","jsonPath":".spec.placement.strategy","priority":1}"#,
    printcolumn = r#"{"name":"Scheduled","type":"integer","jsonPath":".status.scheduled","priority":1}"#,
    printcolumn = r#"{"name":"Available","type":"string","jsonPath":".status.conditions[?(@.type==\"Available\")].status","priority":1}"#
)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSpec {
    /// Which agents may run it, by their labels (`kubectl label agent ...`). Unset selects
    /// every agent of the namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// How many of the selected agents run it, and how they are chosen.
    #[serde(default)]
    pub placement: PlacementPolicy,
    /// What each chosen agent runs.
    pub template: WorkloadTemplate,
}

/// A label selector, as `metav1.LabelSelector`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelectorRequirement {
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

impl LabelSelector {
    /// Whether `labels` satisfy the selector. An unknown operator matches nothing, so a
    /// selector the hub would have refused never widens a placement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| {
                let value = labels.get(&r.key);
                match r.operator.as_str() {
                    "In" => value.is_some_and(|v| r.values.contains(v)),
                    "NotIn" => value.is_none_or(|v| !r.values.contains(v)),
                    "Exists" => value.is_some(),
                    "DoesNotExist" => value.is_none(),
                    _ => false,
                }
            })
    }
}

impl fmt::Display for LabelSelector {
    /// The selector in `kubectl -l` syntax.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = self.match_labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        for r in &self.match_expressions {
            parts.push(match r.operator.as_str() {
                "In" => format!("{} in ({})", r.key, r.values.join(",")),
                "NotIn" => format!("{} notin ({})", r.key, r.values.join(",")),
                "Exists" => r.key.clone(),
                "DoesNotExist" => format!("!{}", r.key),
                other => format!("{} {other} ({})", r.key, r.values.join(",")),
            });
        }
        if parts.is_empty() {
            return f.write_str("<all agents>");
        }
        f.write_str(&parts.join(","))
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlacementPolicy {
    /// `All` (every selected agent, like a DaemonSet; the default), `Replicas` (`replicas`
    /// of them) or `Singleton` (exactly one).
    #[serde(default)]
    pub strategy: PlacementStrategy,
    /// How many agents run it with `Replicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100000))]
    pub replicas: Option<i32>,
    /// How `Replicas` and `Singleton` choose agents: `Spread` (round-robin over the agents
    /// running the fewest placements; the default) or `ResourceAware` (only agents whose
    /// reported allocatable cpu and memory fit the requests, least loaded first).
    #[serde(default)]
    pub scheduling: SchedulingPolicy,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PlacementStrategy {
    #[default]
    All,
    Replicas,
    Singleton,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SchedulingPolicy {
    #[default]
    Spread,
    ResourceAware,
}

impl PlacementPolicy {
    /// How many agents should run the workload, out of `selected` eligible ones.
    pub fn wanted(&self, selected: usize) -> usize {
        match self.strategy {
            PlacementStrategy::All => selected,
            PlacementStrategy::Replicas => self.replicas.unwrap_or(1).max(0) as usize,
            PlacementStrategy::Singleton => 1,
        }
    }
}

/// What runs on each device: containers (the `podman` runtime) or one supervised process
/// (the `process` runtime), never both.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadTemplate {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<Container>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<Process>,
    /// `Always` (the default), `OnFailure` or `Never`.
    #[serde(default)]
    pub restart_policy: RestartPolicy,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
}

impl WorkloadTemplate {
    /// The runtime this template needs on the device.
    pub fn runtime(&self) -> &'static str {
        if self.process.is_some() {
            RUNTIME_PROCESS
        } else {
            RUNTIME_PODMAN
        }
    }

    /// The cpu (millicores) and memory (bytes) the template requests in all.
    pub fn requests(&self) -> Resources {
        let each = self
            .containers
            .iter()
            .map(|c| c.resources.as_ref())
            .chain(self.process.iter().map(|p| p.resources.as_ref()));
        let mut total = Resources::default();
        for r in each.flatten() {
            total.add(&r.requested());
        }
        total
    }

    /// A stable digest of the template: equal templates have equal hashes across hub and
    /// agent builds (FNV-1a over the canonical JSON, whose field order is the struct's).
    pub fn hash(&self) -> String {
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        format!("{:016x}", fnv1a(&bytes))
    }
}

/// FNV-1a, 64 bits: tiny and fixed forever, unlike `DefaultHasher`.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RestartPolicy {
    #[default]
    Always,
    OnFailure,
    Never,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    /// Unique within the template; a DNS label.
    pub name: String,
    /// An image reference, e.g. `localhost/demo:1` or `registry.example/app@sha256:...`.
    pub image: String,
    /// Replaces the image's entrypoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Replaces the image's arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ContainerPort>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EnvVar {
    pub name: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The port the container listens on.
    #[schemars(range(min = 1, max = 65535))]
    pub container_port: i32,
    /// The device port it is published on; unset publishes it on a free port the agent
    /// reports in the Placement's endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub host_port: Option<i32>,
    /// `TCP` (the default) or `UDP`.
    #[serde(default)]
    pub protocol: Protocol,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub enum Protocol {
    #[default]
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        }
    }
}

/// cpu and memory requests and limits, as Kubernetes quantities (`250m`, `1`, `64Mi`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ResourceRequirements {
    #[serde(default, skip_serializing_if = "ResourceList::is_empty")]
    pub requests: ResourceList,
    #[serde(default, skip_serializing_if = "ResourceList::is_empty")]
    pub limits: ResourceList,
}

impl ResourceRequirements {
    /// What the scheduler reserves: the requests, or the limits where no request is given
    /// (as Kubernetes defaults requests to limits).
    pub fn requested(&self) -> Resources {
        let pick = |request: &Option<Quantity>, limit: &Option<Quantity>| request.clone().or_else(|| limit.clone());
        Resources {
            cpu_millis: pick(&self.requests.cpu, &self.limits.cpu)
                .and_then(|q| q.millis())
                .unwrap_or(0),
            memory_bytes: pick(&self.requests.memory, &self.limits.memory)
                .and_then(|q| q.value())
                .unwrap_or(0),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ResourceList {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Quantity>,
}

impl ResourceList {
    pub fn is_empty(&self) -> bool {
        self.cpu.is_none() && self.memory.is_none()
    }

    /// A list holding `resources` (cpu in millicores, memory in bytes).
    pub fn of(resources: Resources) -> ResourceList {
        ResourceList {
            cpu: Some(Quantity::from_millis(resources.cpu_millis)),
            memory: Some(Quantity(resources.memory_bytes.to_string())),
        }
    }

    pub fn resources(&self) -> Resources {
        Resources {
            cpu_millis: self.cpu.as_ref().and_then(|q| q.millis()).unwrap_or(0),
            memory_bytes: self.memory.as_ref().and_then(|q| q.value()).unwrap_or(0),
        }
    }
}

/// Amounts of cpu (millicores) and memory (bytes) to add and compare.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    pub cpu_millis: i64,
    pub memory_bytes: i64,
}

impl Resources {
    pub fn add(&mut self, other: &Resources) {
        self.cpu_millis = self.cpu_millis.saturating_add(other.cpu_millis);
        self.memory_bytes = self.memory_bytes.saturating_add(other.memory_bytes);
    }

    /// Whether `self` fits into `room` in both dimensions.
    pub fn fits(&self, room: &Resources) -> bool {
        self.cpu_millis <= room.cpu_millis && self.memory_bytes <= room.memory_bytes
    }

    pub fn minus(&self, other: &Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.saturating_sub(other.cpu_millis),
            memory_bytes: self.memory_bytes.saturating_sub(other.memory_bytes),
        }
    }
}

/// A Kubernetes resource quantity, kept as written (`500m`, `2`, `1.5Gi`, `128M`).
/// YAML and JSON may give it as a number; it is stored as a string.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Quantity(pub String);

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            S(String),
            I(i64),
            F(f64),
        }
        Ok(Quantity(match Raw::deserialize(d)? {
            Raw::S(s) => s,
            Raw::I(i) => i.to_string(),
            Raw::F(f) => f.to_string(),
        }))
    }
}

impl JsonSchema for Quantity {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Quantity".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "x-kubernetes-int-or-string": true,
            "pattern": QUANTITY_PATTERN,
        })
    }
}

/// What Kubernetes accepts as a quantity, less the exponent forms (`1e3`).
pub const QUANTITY_PATTERN: &str = r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$";

impl Quantity {
    pub fn from_millis(millis: i64) -> Quantity {
        if millis % 1000 == 0 {
            Quantity((millis / 1000).to_string())
        } else {
            Quantity(format!("{millis}m"))
        }
    }

    /// Number and multiplier (in thousandths: `m` is 1).
    fn parts(&self) -> Option<(f64, f64)> {
        let s = self.0.trim().trim_start_matches('+');
        let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
        let (number, suffix) = s.split_at(split);
        if number.is_empty() || number == "." {
            return None;
        }
        let n: f64 = number.parse().ok()?;
        let k = 1000.0_f64;
        let ki = 1024.0_f64;
        let scale = match suffix {
            "" => k,
            "m" => 1.0,
            "k" => k * k,
            "M" => k.powi(3),
            "G" => k.powi(4),
            "T" => k.powi(5),
            "P" => k.powi(6),
            "E" => k.powi(7),
            "Ki" => ki * k,
            "Mi" => ki.powi(2) * k,
            "Gi" => ki.powi(3) * k,
            "Ti" => ki.powi(4) * k,
            "Pi" => ki.powi(5) * k,
            "Ei" => ki.powi(6) * k,
            _ => return None,
        };
        Some((n, scale))
    }

    /// The quantity in thousandths (millicores for cpu), rounded up as Kubernetes does.
    pub fn millis(&self) -> Option<i64> {
        let (n, scale) = self.parts()?;
        let v = (n * scale).ceil();
        (v.is_finite() && v <= i64::MAX as f64).then_some(v as i64)
    }

    /// The quantity as a whole number (bytes for memory), rounded up.
    pub fn value(&self) -> Option<i64> {
        let (n, scale) = self.parts()?;
        let v = (n * scale / 1000.0).ceil();
        (v.is_finite() && v <= i64::MAX as f64).then_some(v as i64)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMount {
    /// The `volumes` entry to mount.
    pub name: String,
    pub mount_path: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

/// A volume: a directory of the device, or an empty directory that lives as long as the
/// placement.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<HostPathVolume>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_dir: Option<EmptyDirVolume>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HostPathVolume {
    pub path: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EmptyDirVolume {}

/// A supervised process, for devices without a container runtime.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Process {
    /// The executable: an absolute path on the device.
    pub path: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// An absolute path; default the placement's own directory under the agent's state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Ports the process listens on, reported as the placement's endpoints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ContainerPort>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Placements wanted (the selected agents for `All`, else the replicas).
    #[serde(default)]
    pub desired: i32,
    /// Placements that exist.
    #[serde(default)]
    pub scheduled: i32,
    /// Placements whose device reports them running and ready.
    #[serde(default)]
    pub ready: i32,
    /// Placements the device reports running the current template.
    #[serde(default)]
    pub updated: i32,
    /// The hash of the current template (`Placement.spec.templateHash`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub template_hash: String,
    /// `Available`, `Progressing`, `Degraded`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// The assignment of one Workload to one Agent, and the agent's report on it. Made and
/// removed by the scheduler; its status is written by that agent only.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "edge.faros.sh",
    version = "v1alpha1",
    kind = "Placement",
    plural = "placements",
    shortname = "pl",
    namespaced,
    selectable = ".spec.agent",
    selectable = ".spec.workload",
    status = "PlacementStatus",
    category = "faros",
    printcolumn = r#"{"name":"Workload","type":"string","jsonPath":".spec.workload"}"#,
    printcolumn = r#"{"name":"Agent","type":"string","jsonPath":".spec.agent"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Ready","type":"boolean","jsonPath":".status.ready"}"#,
    printcolumn = r#"{"name":"Restarts","type":"integer","jsonPath":".status.restartCount"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Endpoints","type":"string","jsonPath":".status.endpoints[*].url","priority":1}"#,
    printcolumn = r#"{"name":"Message","type":"string","jsonPath":".status.message","priority":1}"#
)]
#[serde(rename_all = "camelCase")]
pub struct PlacementSpec {
    pub workload: String,
    pub agent: String,
    pub template: WorkloadTemplate,
    /// `WorkloadTemplate::hash` of `template`.
    pub template_hash: String,
}

/// The name of the Placement of `workload` on `agent`: both names and a short hash of the
/// pair, so that `a-b` on `c` and `a` on `b-c` never meet, within the 253-character limit.
pub fn placement_name(workload: &str, agent: &str) -> String {
    let hash = fnv1a(format!("{workload}/{agent}").as_bytes());
    let suffix = format!("-{:06x}", hash & 0xff_ffff);
    let mut base = format!("{workload}-{agent}");
    base.truncate(253 - suffix.len());
    let base = base.trim_end_matches(['-', '.']);
    format!("{base}{suffix}")
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PlacementPhase {
    /// Assigned; the device has not started it yet.
    #[default]
    Pending,
    /// The device is fetching an image.
    Pulling,
    /// Created, not yet running.
    Starting,
    Running,
    /// Ran to completion (restart policy `Never` or `OnFailure`).
    Succeeded,
    /// Cannot run, or ended in failure and will not be restarted.
    Failed,
    /// The device has not reported for longer than the hub's grace period.
    Unknown,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlacementStatus {
    #[serde(default)]
    pub phase: PlacementPhase,
    /// Every container (or the process) running and not restarting.
    #[serde(default)]
    pub ready: bool,
    /// Why it is in this phase, machine-readable.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The `metadata.generation` the device last applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The template hash the device runs.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub template_hash: String,
    /// The runtime running it (`podman`, `process`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub runtime: String,
    /// Restarts of all containers together.
    #[serde(default)]
    pub restart_count: i32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<ContainerStatus>,
    /// Where it serves on the device.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<Endpoint>,
    /// When the device last changed this status (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatus {
    pub name: String,
    #[serde(default)]
    pub state: ContainerState,
    #[serde(default)]
    pub ready: bool,
    #[serde(default)]
    pub restart_count: i32,
    /// How the previous run ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_termination: Option<TerminatedState>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image_id: String,
    /// The runtime's id (container id, or process id).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub container_id: String,
}

/// One of `waiting`, `running`, `terminated`, as in a Pod's container status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<WaitingState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<RunningState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminated: Option<TerminatedState>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WaitingState {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunningState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TerminatedState {
    pub exit_code: i32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}

/// An address on the device where the placement serves.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The device address (its first reported address, else `127.0.0.1`).
    pub address: String,
    /// The device port.
    pub port: i32,
    pub container_port: i32,
    #[serde(default)]
    pub protocol: Protocol,
    /// `address:port` with the protocol, e.g. `tcp://10.0.0.7:8080`, for a glance in tables.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
}

/// One problem found in a Workload spec: the JSON path of the field (`spec.template...`),
/// whether the value is invalid, required, duplicated, unsupported, or too many, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldProblem {
    pub path: String,
    pub kind: ProblemKind,
    pub detail: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProblemKind {
    Invalid,
    Required,
    Duplicate,
    NotSupported,
    Forbidden,
}

/// Checks what the schema cannot: the shape of names, images and paths, uniqueness, the
/// choice between containers and a process, references between fields.
pub fn validate_spec(spec: &WorkloadSpec) -> Vec<FieldProblem> {
    let mut out = Vec::new();
    let mut problem = |path: String, kind: ProblemKind, detail: String| out.push(FieldProblem { path, kind, detail });
    let p = &spec.placement;
    match (p.strategy, p.replicas) {
        (PlacementStrategy::Replicas, None) => problem(
            "spec.placement.replicas".into(),
            ProblemKind::Required,
            "required with strategy Replicas".into(),
        ),
        (PlacementStrategy::All | PlacementStrategy::Singleton, Some(_)) => problem(
            "spec.placement.replicas".into(),
            ProblemKind::Forbidden,
            format!("only allowed with strategy Replicas, not {:?}", p.strategy),
        ),
        _ => {}
    }
    if let Some(selector) = &spec.selector {
        for (i, r) in selector.match_expressions.iter().enumerate() {
            let path = format!("spec.selector.matchExpressions[{i}]");
            match r.operator.as_str() {
                "In" | "NotIn" if r.values.is_empty() => problem(
                    format!("{path}.values"),
                    ProblemKind::Required,
                    format!("must be non-empty with operator {}", r.operator),
                ),
                "Exists" | "DoesNotExist" if !r.values.is_empty() => problem(
                    format!("{path}.values"),
                    ProblemKind::Forbidden,
                    format!("must be empty with operator {}", r.operator),
                ),
                "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
                other => problem(
                    format!("{path}.operator"),
                    ProblemKind::NotSupported,
                    format!("{other:?}: supported values: \"In\", \"NotIn\", \"Exists\", \"DoesNotExist\""),
                ),
            }
        }
    }
    let t = &spec.template;
    let base = "spec.template";
    match (t.containers.is_empty(), &t.process) {
        (true, None) => problem(
            format!("{base}.containers"),
            ProblemKind::Required,
            "give at least one container, or a process".into(),
        ),
        (false, Some(_)) => problem(
            format!("{base}.process"),
            ProblemKind::Forbidden,
            "a template runs either containers or a process, not both".into(),
        ),
        _ => {}
    }
    let mut volumes = std::collections::BTreeSet::new();
    for (i, v) in t.volumes.iter().enumerate() {
        let path = format!("{base}.volumes[{i}]");
        if !is_dns_label(&v.name) {
            problem(format!("{path}.name"), ProblemKind::Invalid, dns_label_detail(&v.name));
        } else if !volumes.insert(v.name.as_str()) {
            problem(format!("{path}.name"), ProblemKind::Duplicate, format!("{:?}", v.name));
        }
        match (&v.host_path, &v.empty_dir) {
            (Some(h), None) if !h.path.starts_with('/') => problem(
                format!("{path}.hostPath.path"),
                ProblemKind::Invalid,
                format!("{:?}: must be an absolute path", h.path),
            ),
            (Some(_), None) | (None, Some(_)) => {}
            _ => problem(
                path,
                ProblemKind::Invalid,
                "give exactly one of hostPath and emptyDir".into(),
            ),
        }
    }
    if t.process.is_some() && !t.volumes.is_empty() {
        problem(
            format!("{base}.volumes"),
            ProblemKind::Forbidden,
            "volumes are mounted into containers; a process uses device paths directly".into(),
        );
    }
    let mut names = std::collections::BTreeSet::new();
    let mut host_ports = std::collections::BTreeSet::new();
    for (i, c) in t.containers.iter().enumerate() {
        let path = format!("{base}.containers[{i}]");
        if !is_dns_label(&c.name) {
            problem(format!("{path}.name"), ProblemKind::Invalid, dns_label_detail(&c.name));
        } else if !names.insert(c.name.as_str()) {
            problem(format!("{path}.name"), ProblemKind::Duplicate, format!("{:?}", c.name));
        }
        if let Err(why) = check_image(&c.image) {
            problem(
                format!("{path}.image"),
                ProblemKind::Invalid,
                format!("{:?}: {why}", c.image),
            );
        }
        check_env(&c.env, &format!("{path}.env"), &mut problem);
        check_ports(&c.ports, &format!("{path}.ports"), &mut host_ports, &mut problem);
        check_resources(c.resources.as_ref(), &format!("{path}.resources"), &mut problem);
        for (j, m) in c.volume_mounts.iter().enumerate() {
            let mpath = format!("{path}.volumeMounts[{j}]");
            if !volumes.contains(m.name.as_str()) {
                problem(
                    format!("{mpath}.name"),
                    ProblemKind::NotSupported,
                    format!("{:?}: no volume of that name in spec.template.volumes", m.name),
                );
            }
            if !m.mount_path.starts_with('/') {
                problem(
                    format!("{mpath}.mountPath"),
                    ProblemKind::Invalid,
                    format!("{:?}: must be an absolute path", m.mount_path),
                );
            }
        }
    }
    if let Some(process) = &t.process {
        let path = format!("{base}.process");
        if !process.path.starts_with('/') {
            problem(
                format!("{path}.path"),
                ProblemKind::Invalid,
                format!("{:?}: must be an absolute path", process.path),
            );
        }
        if let Some(dir) = &process.working_dir
            && !dir.starts_with('/')
        {
            problem(
                format!("{path}.workingDir"),
                ProblemKind::Invalid,
                format!("{dir:?}: must be an absolute path"),
            );
        }
        check_env(&process.env, &format!("{path}.env"), &mut problem);
        check_ports(&process.ports, &format!("{path}.ports"), &mut host_ports, &mut problem);
        check_resources(process.resources.as_ref(), &format!("{path}.resources"), &mut problem);
    }
    out
}

fn check_env(env: &[EnvVar], path: &str, problem: &mut impl FnMut(String, ProblemKind, String)) {
    let mut seen = std::collections::BTreeSet::new();
    for (i, e) in env.iter().enumerate() {
        let valid = !e.name.is_empty()
            && !e.name.starts_with(|c: char| c.is_ascii_digit())
            && e.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
        if !valid {
            problem(
                format!("{path}[{i}].name"),
                ProblemKind::Invalid,
                format!(
                    "{:?}: an environment variable name is letters, digits, '_', '-' and '.', not starting with a digit",
                    e.name
                ),
            );
        } else if !seen.insert(e.name.as_str()) {
            problem(
                format!("{path}[{i}].name"),
                ProblemKind::Duplicate,
                format!("{:?}", e.name),
            );
        }
    }
}

fn check_ports(
    ports: &[ContainerPort],
    path: &str,
    host_ports: &mut std::collections::BTreeSet<(i32, Protocol)>,
    problem: &mut impl FnMut(String, ProblemKind, String),
) {
    for (i, port) in ports.iter().enumerate() {
        let p = format!("{path}[{i}]");
        if !(1..=65535).contains(&port.container_port) {
            problem(
                format!("{p}.containerPort"),
                ProblemKind::Invalid,
                format!("{}: must be between 1 and 65535, inclusive", port.container_port),
            );
        }
        if let Some(host) = port.host_port {
            if !(1..=65535).contains(&host) {
                problem(
                    format!("{p}.hostPort"),
                    ProblemKind::Invalid,
                    format!("{host}: must be between 1 and 65535, inclusive"),
                );
            } else if !host_ports.insert((host, port.protocol)) {
                problem(
                    format!("{p}.hostPort"),
                    ProblemKind::Duplicate,
                    format!("{host}/{}", port.protocol.as_str()),
                );
            }
        }
        if let Some(name) = &port.name
            && !is_dns_label(name)
        {
            problem(format!("{p}.name"), ProblemKind::Invalid, dns_label_detail(name));
        }
    }
}

fn check_resources(
    resources: Option<&ResourceRequirements>,
    path: &str,
    problem: &mut impl FnMut(String, ProblemKind, String),
) {
    let Some(r) = resources else { return };
    for (list, which) in [(&r.requests, "requests"), (&r.limits, "limits")] {
        for (q, name) in [(&list.cpu, "cpu"), (&list.memory, "memory")] {
            if let Some(q) = q
                && q.millis().is_none()
            {
                problem(
                    format!("{path}.{which}.{name}"),
                    ProblemKind::Invalid,
                    format!("{:?}: must be a quantity such as 250m, 2, 64Mi or 1G", q.0),
                );
            }
        }
    }
    let requested = (&r.requests, &r.limits);
    for (name, request, limit) in [
        ("cpu", requested.0.cpu.as_ref(), requested.1.cpu.as_ref()),
        ("memory", requested.0.memory.as_ref(), requested.1.memory.as_ref()),
    ] {
        if let (Some(rq), Some(lim)) = (request.and_then(|q| q.millis()), limit.and_then(|q| q.millis()))
            && rq > lim
        {
            problem(
                format!("{path}.requests.{name}"),
                ProblemKind::Invalid,
                format!("must be less than or equal to the {name} limit"),
            );
        }
    }
}

/// A DNS-1123 label: at most 63 lowercase letters, digits and '-', alphanumeric at both ends.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn dns_label_detail(s: &str) -> String {
    format!(
        "{s:?}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (at most 63 characters)"
    )
}

/// Checks an image reference the way container tools parse one:
/// `[host[:port]/]path[:tag][@algorithm:hex]`, lowercase path components.
pub fn check_image(image: &str) -> Result<(), &'static str> {
    if image.is_empty() {
        return Err("must not be empty");
    }
    if image.len() > 4096 || image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain whitespace");
    }
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    if let Some(d) = digest {
        let Some((algorithm, hex)) = d.split_once(':') else {
            return Err("a digest is algorithm:hex, e.g. sha256:...");
        };
        if algorithm.is_empty() || hex.len() < 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("a digest is algorithm:hex, e.g. sha256:...");
        }
    }
    // A tag follows the last ':' after the last '/'.
    let last_slash = name.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (repository, tag) = match name[last_slash..].rfind(':') {
        Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
        None => (name, None),
    };
    if let Some(tag) = tag {
        let ok = !tag.is_empty()
            && tag.len() <= 128
            && !tag.starts_with(['.', '-'])
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
        if !ok {
            return Err("a tag is up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'");
        }
    }
    let mut components: Vec<&str> = repository.split('/').collect();
    // A first component with '.', ':' or equal to localhost names a registry host.
    if components.len() > 1 {
        let host = components[0];
        if host.contains(['.', ':']) || host == "localhost" {
            let valid_host = host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b':')
                && !host.starts_with(['.', '-', ':']);
            if !valid_host {
                return Err("the registry host is not a valid host name");
            }
            components.remove(0);
        }
    }
    for component in components {
        let ok = !component.is_empty()
            && component
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_' || b == b'-')
            && component.starts_with(|c: char| c.is_ascii_alphanumeric())
            && component.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !ok {
            return Err(
                "repository path components are lowercase letters, digits and separators ('.', '_', '-'), alphanumeric at both ends",
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        let q = |s: &str| Quantity(s.into());
        assert_eq!(q("250m").millis(), Some(250));
        assert_eq!(q("2").millis(), Some(2000));
        assert_eq!(q("0.5").millis(), Some(500));
        assert_eq!(q("64Mi").value(), Some(64 * 1024 * 1024));
        assert_eq!(q("1G").value(), Some(1_000_000_000));
        assert_eq!(q("1.5Gi").value(), Some(1_610_612_736));
        assert_eq!(q("lots").millis(), None);
        assert_eq!(q("1Q").millis(), None);
        assert_eq!(q("").millis(), None);
        assert_eq!(Quantity::from_millis(1500).0, "1500m");
        assert_eq!(Quantity::from_millis(2000).0, "2");
        let parsed: Quantity = serde_json::from_str("2").unwrap();
        assert_eq!(parsed.0, "2");
    }

    #[test]
    fn images() {
        for good in [
            "busybox",
            "localhost/demo:1",
            "registry.example:5000/team/app:v1.2-rc",
            "docker.io/library/alpine@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(check_image(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "Demo:1",
            "demo:",
            "demo:-x",
            "a b",
            "demo@sha256:xyz",
            "/demo",
            "demo//x",
        ] {
            assert!(check_image(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn placement_names_are_distinct_and_bounded() {
        assert_ne!(placement_name("a-b", "c"), placement_name("a", "b-c"));
        assert!(placement_name("web", "dev1").starts_with("web-dev1-"));
        let long = "x".repeat(253);
        assert!(placement_name(&long, &long).len() <= 253);
    }

    #[test]
    fn validation_reports_field_paths() {
        let spec = WorkloadSpec {
            placement: PlacementPolicy {
                strategy: PlacementStrategy::Replicas,
                ..Default::default()
            },
            template: WorkloadTemplate {
                containers: vec![Container {
                    name: "Web".into(),
                    image: "Bad Image".into(),
                    ports: vec![ContainerPort {
                        container_port: 70000,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            },
            ..Default::default()
        };
        let paths: Vec<String> = validate_spec(&spec).into_iter().map(|p| p.path).collect();
        assert_eq!(
            paths,
            [
                "spec.placement.replicas",
                "spec.template.containers[0].name",
                "spec.template.containers[0].image",
                "spec.template.containers[0].ports[0].containerPort",
            ]
        );
    }

    #[test]
    fn selectors() {
        let labels: BTreeMap<String, String> = [("site".to_string(), "north".to_string())].into();
        let mut s = LabelSelector::default();
        assert!(s.matches(&labels));
        s.match_labels.insert("site".into(), "north".into());
        assert!(s.matches(&labels));
        s.match_expressions.push(LabelSelectorRequirement {
            key: "tier".into(),
            operator: "DoesNotExist".into(),
            values: vec![],
        });
        assert!(s.matches(&labels));
        assert_eq!(s.to_string(), "site=north,!tier");
        s.match_expressions[0].operator = "Bogus".into();
        assert!(!s.matches(&labels));
    }

    #[test]
    fn template_hash_is_stable() {
        let t = WorkloadTemplate {
            containers: vec![Container {
                name: "web".into(),
                image: "localhost/demo:1".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        // Fixed forever: agents and hubs of different builds compare these.
        assert_eq!(t.hash(), t.clone().hash());
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
