//! Workspaces: kcp's `tenancy.kcp.io/v1alpha1` Workspace and WorkspaceType, and
//! `core.kcp.io/v1alpha1` LogicalCluster (the object named `cluster` inside every workspace).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Condition;

pub const GROUP: &str = "tenancy.kcp.io";
pub const CORE_GROUP: &str = "core.kcp.io";

/// The annotation on a LogicalCluster naming its workspace path (kcp's `kcp.io/path`).
pub const PATH_ANNOTATION: &str = "kcp.io/path";
/// The annotation that names an object's logical cluster in cross-cluster views.
pub const CLUSTER_ANNOTATION: &str = "kcp.io/cluster";
/// Annotation on a Workspace naming who created it (JSON: username, uid, groups).
pub const OWNER_ANNOTATION: &str = "tenancy.kcp.io/owner";
/// The logical cluster every path starts from.
pub const ROOT: &str = "root";
/// Finalizer on a Workspace until its logical cluster has been emptied.
pub const WORKSPACE_FINALIZER: &str = "tenancy.kcp.io/workspace-content";
/// Name of the LogicalCluster object inside every logical cluster.
pub const LOGICAL_CLUSTER_NAME: &str = "cluster";

/// Where a workspace type is defined: its name and the path of the workspace holding it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WorkspaceTypeReference {
    /// Name of the WorkspaceType (lowercase).
    pub name: String,
    /// Path of the workspace the type lives in, e.g. `root`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
}

/// A child workspace: an isolated logical cluster with its own namespaces, RBAC, CRDs and
/// API bindings, reachable at `spec.URL`.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "tenancy.kcp.io",
    version = "v1alpha1",
    kind = "Workspace",
    plural = "workspaces",
    shortname = "ws",
    status = "WorkspaceStatus",
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.type.name"}"#,
    printcolumn = r#"{"name":"Region","type":"string","jsonPath":".metadata.labels['region']","priority":1}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".spec.URL"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
pub struct WorkspaceSpec {
    /// The type of the workspace; defaulted from the parent's `defaultChildWorkspaceType`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<WorkspaceTypeReference>,
    /// The logical cluster backing this workspace (set by the hub).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    /// The URL to reach the workspace: `<hub>/clusters/<path>` (set by the hub).
    #[serde(default, rename = "URL", skip_serializing_if = "String::is_empty")]
    pub url: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WorkspaceStatus {
    /// Scheduling, Initializing, Ready or Terminating.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub phase: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Initializers that still have to finish before the workspace is Ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub initializers: Vec<String>,
}

/// A binding a workspace of some type gets when it is created.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct APIExportReference {
    /// Path of the workspace holding the export.
    pub path: String,
    /// Name of the APIExport.
    pub export: String,
}

/// Defines a kind of workspace: what its children default to and which APIs it comes with.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "tenancy.kcp.io",
    version = "v1alpha1",
    kind = "WorkspaceType",
    plural = "workspacetypes",
    status = "WorkspaceTypeStatus",
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceTypeSpec {
    /// Types this one extends: it counts as each of them where types are limited, and its
    /// workspaces also get their default API bindings.
    #[serde(default, skip_serializing_if = "WorkspaceTypeExtension::is_empty")]
    pub extend: WorkspaceTypeExtension,
    /// The type children of a workspace of this type get when they name none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_child_workspace_type: Option<WorkspaceTypeReference>,
    /// Which types children of a workspace of this type may have (unset: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_allowed_children: Option<WorkspaceTypeSelector>,
    /// Which types the parent of a workspace of this type may have (unset: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_allowed_parents: Option<WorkspaceTypeSelector>,
    /// APIs bound into every new workspace of this type.
    #[serde(default, rename = "defaultAPIBindings", skip_serializing_if = "Vec::is_empty")]
    pub default_api_bindings: Vec<APIExportReference>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WorkspaceTypeExtension {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub with: Vec<WorkspaceTypeReference>,
}

impl WorkspaceTypeExtension {
    pub fn is_empty(&self) -> bool {
        self.with.is_empty()
    }
}

/// A set of workspace types: `none`, or any of `types` (or a type extending one of them).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WorkspaceTypeSelector {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub none: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<WorkspaceTypeReference>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WorkspaceTypeStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// The object named `cluster` in every logical cluster: its identity and lifecycle.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "core.kcp.io",
    version = "v1alpha1",
    kind = "LogicalCluster",
    plural = "logicalclusters",
    status = "LogicalClusterStatus",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".status.URL"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct LogicalClusterSpec {
    /// The workspace that owns this logical cluster (`<parent path>` and name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<LogicalClusterOwner>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LogicalClusterOwner {
    /// Logical cluster of the parent workspace.
    pub cluster: String,
    /// Name of the Workspace object in the parent.
    pub name: String,
    /// UID of that Workspace object.
    #[serde(default)]
    pub uid: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LogicalClusterStatus {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub phase: String,
    #[serde(default, rename = "URL", skip_serializing_if = "String::is_empty")]
    pub url: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
