//! Workspaces and API bindings, as kcp models them.
//!
//! A workspace path (`root:acme:plant-7`) names a logical cluster by walking Workspace
//! objects from `root`: each Workspace's `spec.cluster` is the logical cluster of that child.
//! A logical cluster can also be addressed by its own name. Every logical cluster holds a
//! LogicalCluster object named `cluster` recording its path.
//!
//! The tenancy and apis kinds themselves are declared in `registry::system`. Resources bound
//! through an APIBinding appear as kinds of the binding cluster, stored under the export's
//! identity; an export's owner reaches them through its view (`export_view`).

pub mod export_view;

use faros_api::tenancy::{LOGICAL_CLUSTER_NAME, ROOT};
use faros_machinery::validation::is_dns1123_label;
use faros_storage::{Cache, Prefix};

/// Longest workspace path accepted, in segments.
const MAX_DEPTH: usize = 32;

/// A logical cluster's name (kcp's `logicalcluster.Name`): what storage keys and RBAC are
/// scoped by, as opposed to the workspace path users type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClusterName(String);

impl ClusterName {
    pub fn new(name: impl Into<String>) -> ClusterName {
        ClusterName(name.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for ClusterName {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ClusterName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for ClusterName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for ClusterName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl From<ClusterName> for String {
    fn from(name: ClusterName) -> String {
        name.0
    }
}

/// A resolved workspace: its logical cluster name and its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogicalClusterRef {
    pub name: ClusterName,
    pub path: String,
}

/// The logical clusters one request addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterScope {
    /// One workspace's logical cluster.
    One(LogicalClusterRef),
    /// Every logical cluster: the `/clusters/*` view, for list and watch only.
    All,
}

impl ClusterScope {
    /// The cluster, unless the request spans all of them.
    pub fn one(&self) -> Option<&LogicalClusterRef> {
        match self {
            ClusterScope::One(cluster) => Some(cluster),
            ClusterScope::All => None,
        }
    }

    /// The workspace path, `*` across all.
    pub fn path(&self) -> &str {
        self.one().map_or("*", |c| c.path.as_str())
    }

    /// The logical cluster name, `*` across all (as kcp shows it).
    pub fn name(&self) -> &str {
        self.one().map_or("*", |c| c.name.as_str())
    }
}

/// Resolves a workspace path (or a logical cluster name) to a logical cluster.
pub fn resolve(cache: &Cache, target: &str) -> Option<LogicalClusterRef> {
    if target == ROOT {
        return Some(LogicalClusterRef {
            name: ClusterName::new(ROOT),
            path: ROOT.into(),
        });
    }
    if !target.contains(':') {
        // A logical cluster name: valid when its LogicalCluster object exists.
        if !is_dns1123_label(target).is_empty() {
            return None;
        }
        let marker = cache.get(&logical_cluster_key(target))?;
        let path = marker.value()["metadata"]["annotations"][faros_api::tenancy::PATH_ANNOTATION]
            .as_str()
            .unwrap_or(target)
            .to_string();
        return Some(LogicalClusterRef {
            name: ClusterName::new(target),
            path,
        });
    }
    let mut segments = target.split(':');
    if segments.next() != Some(ROOT) {
        return None;
    }
    let mut cluster = ROOT.to_string();
    for (depth, segment) in segments.enumerate() {
        if depth >= MAX_DEPTH || !is_dns1123_label(segment).is_empty() {
            return None;
        }
        let ws = cache.get(&workspaces_prefix().cluster(&cluster).name(segment))?;
        // Every request naming a workspace path reads this: decode the one field, not the tree.
        #[derive(serde::Deserialize)]
        struct Workspace {
            spec: Spec,
        }
        #[derive(serde::Deserialize)]
        struct Spec {
            #[serde(default)]
            cluster: String,
        }
        let child = ws.decode::<Workspace>().ok()?.spec.cluster;
        if child.is_empty() {
            return None;
        }
        cluster = child;
    }
    Some(LogicalClusterRef {
        name: ClusterName(cluster),
        path: target.into(),
    })
}

pub fn logical_cluster_key(cluster: &str) -> String {
    Prefix::resource("core.kcp.io", "logicalclusters")
        .cluster(cluster)
        .name(LOGICAL_CLUSTER_NAME)
}

/// Where every Workspace is stored, across logical clusters.
pub fn workspaces_prefix() -> Prefix {
    Prefix::resource("tenancy.kcp.io", "workspaces")
}
