//! The edge API, `edge.faros.sh/v1alpha1`: `Registration` (how devices join a namespace) and
//! `Agent` (one device: desired state in spec, observed state in status).

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Condition;
use crate::workloads::ResourceList;

/// Default heartbeat interval of an agent, in seconds.
/// The logical cluster (and workspace name under root) that exports the edge API.
pub const SYSTEM_CLUSTER: &str = "faros-system";
/// The workspace path of the edge API export.
pub const SYSTEM_PATH: &str = "root:faros-system";
/// The APIExport of the edge API.
pub const EDGE_EXPORT: &str = "edge.faros.sh";
pub const DEFAULT_HEARTBEAT_INTERVAL_SECONDS: i64 = 10;
/// The label every object the registration controller creates carries.
pub const REGISTRATION_LABEL: &str = "edge.faros.sh/registration";
/// The label naming the agent a per-agent credential belongs to.
pub const AGENT_LABEL: &str = "edge.faros.sh/agent";
/// Prefix of the Lease an agent renews as its heartbeat (`agent-<name>`).
pub const LEASE_PREFIX: &str = "agent-";
/// Prefix of the ServiceAccount, Role and RoleBinding backing a Registration.
pub const REGISTRATION_ACCOUNT_PREFIX: &str = "faros-reg-";
/// Prefix of the ServiceAccount, Role and RoleBinding of one agent's own identity.
pub const AGENT_ACCOUNT_PREFIX: &str = "faros-agent-";
/// Finalizer the registration controller puts on a Registration so that deleting it revokes
/// its token before the object goes, however busy the garbage collector is.
pub const REVOKE_FINALIZER: &str = "edge.faros.sh/revoke-token";

/// Condition types and reasons of the edge API.
pub mod reasons {
    /// The condition every Agent and Registration carries.
    pub const READY: &str = "Ready";
    /// Agent: running, applied its spec and reporting.
    pub const AGENT_READY: &str = "AgentReady";
    /// Agent: running and reporting, but applying no spec changes.
    pub const AGENT_PAUSED: &str = "AgentPaused";
    /// Agent: stopped cleanly (SIGTERM).
    pub const AGENT_STOPPED: &str = "AgentStopped";
    /// Agent: no heartbeat within the hub's grace period.
    pub const AGENT_STATUS_UNKNOWN: &str = "AgentStatusUnknown";
    /// Agent: the Registration it names does not admit it.
    pub const NOT_ADMITTED: &str = "NotAdmitted";
    /// Registration: its token is issued and it admits agents.
    pub const TOKEN_ISSUED: &str = "TokenIssued";
    /// Registration: waiting for the hub to fill the token Secret.
    pub const TOKEN_PENDING: &str = "TokenPending";
    /// Registration: past `spec.expirationTime`; it admits no new agents.
    pub const EXPIRED: &str = "Expired";
    /// Agent: whether the hub holds the device's tunnel (written by the hub only).
    pub const CONNECTED: &str = "Connected";
    /// Agent, `Connected=True`: the device's tunnel is up.
    pub const TUNNEL_CONNECTED: &str = "TunnelConnected";
    /// Agent, `Connected=False`: the device's tunnel is down.
    pub const TUNNEL_DISCONNECTED: &str = "TunnelDisconnected";
}

/// Name of the ServiceAccount (and Role, RoleBinding) backing Registration `registration`.
pub fn registration_account(registration: &str) -> String {
    format!("{REGISTRATION_ACCOUNT_PREFIX}{registration}")
}

/// Name of the legacy token Secret of Registration `registration`.
pub fn registration_token_secret(registration: &str) -> String {
    format!("{REGISTRATION_ACCOUNT_PREFIX}{registration}-token")
}

/// Name of the ServiceAccount (and Role, RoleBinding) that is agent `agent`'s own identity.
pub fn agent_account(agent: &str) -> String {
    format!("{AGENT_ACCOUNT_PREFIX}{agent}")
}

/// Name of the heartbeat Lease of agent `agent`.
pub fn lease_name(agent: &str) -> String {
    format!("{LEASE_PREFIX}{agent}")
}

/// Admits agents into this namespace. The hub backs it with a ServiceAccount, a Role that
/// allows only registration, a RoleBinding and a token Secret, all owned by it: deleting the
/// Registration revokes its token at once.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "edge.faros.sh",
    version = "v1alpha1",
    kind = "Registration",
    plural = "registrations",
    shortname = "reg",
    namespaced,
    status = "RegistrationStatus",
    category = "faros",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Agents","type":"string","jsonPath":".spec.agentNames"}"#,
    printcolumn = r#"{"name":"Expires","type":"string","jsonPath":".spec.expirationTime"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationSpec {
    /// Names of the agents this registration admits; empty admits any name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agent_names: Vec<String>,
    /// After this time (RFC 3339) the registration admits no new agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_time: Option<String>,
}

impl RegistrationSpec {
    /// Whether the registration has expired at `now` (an unparsable time counts as expired,
    /// so a typo never admits agents forever).
    pub fn expired(&self, now: jiff::Timestamp) -> bool {
        match &self.expiration_time {
            None => false,
            Some(t) => t.parse::<jiff::Timestamp>().map(|t| t <= now).unwrap_or(true),
        }
    }

    /// Whether an agent called `name` may join through this registration at `now`.
    pub fn admits(&self, name: &str, now: jiff::Timestamp) -> bool {
        !self.expired(now) && (self.agent_names.is_empty() || self.agent_names.iter().any(|n| n == name))
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The Secret holding the registration token (never the token itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<LocalObjectReference>,
    /// The ServiceAccount registering agents act as.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_account_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LocalObjectReference {
    pub name: String,
}

/// One edge device. `spec` is what the device should be; `status` is what it reports.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "edge.faros.sh",
    version = "v1alpha1",
    kind = "Agent",
    plural = "agents",
    shortname = "ag",
    namespaced,
    status = "AgentStatus",
    category = "faros",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Version","type":"string","jsonPath":".status.device.agentVersion"}"#,
    printcolumn = r#"{"name":"Last Heartbeat","type":"date","jsonPath":".status.lastHeartbeatTime"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Hostname","type":"string","jsonPath":".status.device.hostname","priority":1}"#,
    printcolumn = r#"{"name":"OS","type":"string","jsonPath":".status.device.os","priority":1}"#,
    printcolumn = r#"{"name":"Arch","type":"string","jsonPath":".status.device.architecture","priority":1}"#,
    printcolumn = r#"{"name":"Workloads","type":"integer","jsonPath":".status.workloadCount","priority":1}"#,
    printcolumn = r#"{"name":"Unschedulable","type":"boolean","jsonPath":".spec.unschedulable","priority":1}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AgentSpec {
    /// How often the agent renews its heartbeat, in seconds (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub heartbeat_interval_seconds: Option<i64>,
    /// Labels the agent applies to itself and reports back in status.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Configuration the agent applies and reports back in status.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// A paused agent keeps heartbeating but applies no spec changes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
    /// A cordoned agent gets no new placements; what it runs stays
    /// (`kubectl faros agent cordon|uncordon|drain`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unschedulable: bool,
}

impl AgentSpec {
    /// The heartbeat interval the spec asks for, defaulted and clamped to 1 s … 1 h.
    pub fn heartbeat_interval(&self) -> std::time::Duration {
        let seconds = self
            .heartbeat_interval_seconds
            .unwrap_or(DEFAULT_HEARTBEAT_INTERVAL_SECONDS)
            .clamp(1, 3600);
        std::time::Duration::from_secs(seconds as u64)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentStatus {
    /// `Ready` (with reason and message) and others.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// When the agent last reported (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat_time: Option<String>,
    /// The spec generation the agent last applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Facts about the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceInfo>,
    /// The labels the agent applied.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The configuration the agent applied.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// Whether the agent is currently paused.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
    /// The effective heartbeat interval, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_interval_seconds: Option<i64>,
    /// What the device has in all.
    #[serde(default, skip_serializing_if = "ResourceList::is_empty")]
    pub capacity: ResourceList,
    /// What workloads may use: the capacity less what the device keeps for itself.
    #[serde(default, skip_serializing_if = "ResourceList::is_empty")]
    pub allocatable: ResourceList,
    /// What the placements assigned to the device request.
    #[serde(default, skip_serializing_if = "ResourceList::is_empty")]
    pub allocated: ResourceList,
    /// The workload runtimes the device offers (`podman`, `process`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runtimes: Vec<String>,
    /// What runs on the device, one line per placement (at most
    /// [`MAX_REPORTED_WORKLOADS`]; `workloadCount` counts them all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workloads: Vec<AgentWorkload>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_count: Option<i32>,
}

/// How many placements an Agent's status lists by name; the rest are counted only, so the
/// object stays small however much a device runs.
pub const MAX_REPORTED_WORKLOADS: usize = 64;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentWorkload {
    pub workload: String,
    pub placement: String,
    /// The placement's phase as the device sees it.
    pub phase: String,
    #[serde(default)]
    pub ready: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceInfo {
    #[serde(default)]
    pub hostname: String,
    /// Operating system family, e.g. `linux`.
    #[serde(default)]
    pub os: String,
    /// Distribution name and version, e.g. `Debian GNU/Linux 12 (bookworm)`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub os_image: String,
    #[serde(default)]
    pub kernel_version: String,
    /// CPU architecture, e.g. `x86_64`, `aarch64`.
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub cpus: i64,
    #[serde(default)]
    pub memory_bytes: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    #[serde(default)]
    pub agent_version: String,
    /// When the device booted (RFC 3339).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub boot_time: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_by_name_and_expiry() {
        let now: jiff::Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
        let any = RegistrationSpec::default();
        assert!(any.admits("a", now));
        let named = RegistrationSpec {
            agent_names: vec!["a".into()],
            expiration_time: Some("2030-01-02T00:00:00Z".into()),
        };
        assert!(named.admits("a", now));
        assert!(!named.admits("b", now));
        assert!(!named.admits("a", "2030-01-03T00:00:00Z".parse().unwrap()));
        let garbled = RegistrationSpec {
            expiration_time: Some("tomorrow".into()),
            ..Default::default()
        };
        assert!(!garbled.admits("a", now));
    }

    #[test]
    fn names() {
        assert_eq!(registration_account("r"), "faros-reg-r");
        assert_eq!(registration_token_secret("r"), "faros-reg-r-token");
        assert_eq!(agent_account("a"), "faros-agent-a");
        assert_eq!(lease_name("a"), "agent-a");
    }
}

/// What `agents/<name>/live` answers: the device's state as its agent samples it at the
/// moment of the request (not stored anywhere). Byte counts are totals since boot.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveState {
    /// `edge.faros.sh/v1alpha1`.
    pub api_version: String,
    /// `AgentLiveState`.
    pub kind: String,
    /// When the device sampled it (RFC 3339, the device's clock).
    pub time: String,
    pub hostname: String,
    pub uptime_seconds: u64,
    /// The 1, 5 and 15 minute load averages.
    pub load_average: [f64; 3],
    pub cpu: LiveCpu,
    pub memory: LiveMemory,
    /// The agent's state directory and `/`.
    pub disks: Vec<LiveDisk>,
    pub network: Vec<LiveInterface>,
    /// What the agent runs, as its reconciler sees it now.
    pub workloads: Vec<AgentWorkload>,
}

/// The kind of [`LiveState`].
pub const LIVE_STATE_KIND: &str = "AgentLiveState";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveCpu {
    pub cpus: u32,
    /// Busy share of all cpus over the sample, 0 to 100.
    pub usage_percent: f64,
    pub sample_millis: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveMemory {
    pub total_bytes: u64,
    pub available_bytes: u64,
    /// Total less available.
    pub used_bytes: u64,
    pub swap_total_bytes: u64,
    pub swap_free_bytes: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveDisk {
    pub path: String,
    pub total_bytes: u64,
    /// What an unprivileged writer may still use.
    pub available_bytes: u64,
    pub used_bytes: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveInterface {
    pub name: String,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
}
