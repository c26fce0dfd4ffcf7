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
    resolve_reading(cache, target, &mut Vec::new())
}

/// [`resolve`], noting in `read` the key and revision of every object it read.
fn resolve_reading(cache: &Cache, target: &str, read: &mut Vec<(String, u64)>) -> Option<LogicalClusterRef> {
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
        let key = logical_cluster_key(target);
        let marker = cache.get(&key)?;
        read.push((key, marker.mod_revision));
        #[derive(serde::Deserialize)]
        struct Marker {
            #[serde(default)]
            metadata: Metadata,
        }
        #[derive(Default, serde::Deserialize)]
        struct Metadata {
            #[serde(default)]
            annotations: std::collections::HashMap<String, String>,
        }
        let path = marker
            .decode::<Marker>()
            .ok()
            .and_then(|mut m| m.metadata.annotations.remove(faros_api::tenancy::PATH_ANNOTATION))
            .unwrap_or_else(|| target.to_string());
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
        let key = workspaces_prefix().cluster(&cluster).name(segment);
        let ws = cache.get(&key)?;
        read.push((key, ws.mod_revision));
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

/// Workspace paths resolved before, each with the objects it was read from. Every request
/// names its workspace, and a fleet's requests name the same few again and again: an entry
/// answers as long as each object it was read from is still at the revision it was read at,
/// which costs a cache lookup per segment instead of decoding the Workspace objects.
#[derive(Default)]
pub struct ResolvedPaths {
    entries: std::sync::RwLock<std::collections::HashMap<Box<str>, Resolved>>,
}

struct Resolved {
    read: Vec<(String, u64)>,
    cluster: LogicalClusterRef,
}

/// Entries kept; all are dropped when there would be more. Only paths that resolved are
/// kept, so this bounds what many workspaces, not bad input, can hold.
const MAX_RESOLVED: usize = 4096;

impl ResolvedPaths {
    /// [`resolve`], from an entry while it still holds.
    pub fn resolve(&self, cache: &Cache, target: &str) -> Option<LogicalClusterRef> {
        {
            let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
            if let Some(hit) = entries.get(target)
                && hit
                    .read
                    .iter()
                    .all(|(key, revision)| cache.get(key).is_some_and(|o| o.mod_revision == *revision))
            {
                return Some(hit.cluster.clone());
            }
        }
        let mut read = Vec::new();
        let cluster = resolve_reading(cache, target, &mut read)?;
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_RESOLVED {
            entries.clear();
        }
        entries.insert(
            target.into(),
            Resolved {
                read,
                cluster: cluster.clone(),
            },
        );
        Some(cluster)
    }
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use faros_storage::{MemoryBackend, Window, WriteOp};
    use serde_json::{Value, json};

    use super::*;

    /// Writes `value` at `key` (None: deletes it) as the cache's next revision.
    async fn put(cache: &Cache, key: &str, value: Option<Value>) {
        let current = cache.get(key);
        let op = match (value, current) {
            (Some(value), None) => WriteOp::Create {
                key: key.into(),
                value: serde_json::to_vec(&value).unwrap().into(),
            },
            (Some(value), Some(current)) => WriteOp::Update {
                key: key.into(),
                value: serde_json::to_vec(&value).unwrap().into(),
                expected: current.mod_revision,
            },
            (None, Some(current)) => WriteOp::Delete {
                key: key.into(),
                expected: current.mod_revision,
            },
            (None, None) => return,
        };
        cache.write(op).await.unwrap();
    }

    fn workspace(name: &str, cluster: &str) -> Value {
        json!({"metadata": {"name": name}, "spec": {"cluster": cluster}})
    }

    #[tokio::test]
    async fn a_remembered_path_follows_the_workspaces_it_was_read_from() {
        let cache = Cache::start(Arc::new(MemoryBackend::new()), Window::events(100))
            .await
            .unwrap();
        let paths = ResolvedPaths::default();
        let acme = workspaces_prefix().cluster(ROOT).name("acme");
        let plant = workspaces_prefix().cluster("c-acme").name("plant");
        put(&cache, &acme, Some(workspace("acme", "c-acme"))).await;
        put(&cache, &plant, Some(workspace("plant", "c-plant"))).await;
        let cluster = |paths: &ResolvedPaths| paths.resolve(&cache, "root:acme:plant").map(|c| c.name.to_string());

        assert_eq!(cluster(&paths).as_deref(), Some("c-plant"));
        // Answered from the entry, and the same as resolving afresh.
        assert_eq!(cluster(&paths).as_deref(), Some("c-plant"));
        assert_eq!(resolve(&cache, "root:acme:plant").unwrap().path, "root:acme:plant");

        // The child workspace re-created on another cluster: the entry no longer holds.
        put(&cache, &plant, None).await;
        assert_eq!(cluster(&paths), None);
        put(&cache, &plant, Some(workspace("plant", "c-plant-2"))).await;
        assert_eq!(cluster(&paths).as_deref(), Some("c-plant-2"));

        // A change to a parent on the way invalidates it too.
        put(&cache, &acme, Some(workspace("acme", "c-elsewhere"))).await;
        assert_eq!(cluster(&paths), None);
        put(&cache, &acme, Some(workspace("acme", "c-acme"))).await;
        assert_eq!(cluster(&paths).as_deref(), Some("c-plant-2"));

        // A logical cluster's own name reads its LogicalCluster's path annotation.
        let marker = logical_cluster_key("c-plant-2");
        put(
            &cache,
            &marker,
            Some(json!({"metadata": {"name": "cluster", "annotations": {(faros_api::tenancy::PATH_ANNOTATION): "root:acme:plant"}}})),
        )
        .await;
        let by_name = paths.resolve(&cache, "c-plant-2").unwrap();
        assert_eq!(
            (by_name.name.as_str(), by_name.path.as_str()),
            ("c-plant-2", "root:acme:plant")
        );
        put(&cache, &marker, None).await;
        assert_eq!(paths.resolve(&cache, "c-plant-2"), None);
        assert_eq!(paths.resolve(&cache, "root:nowhere"), None);
    }
}
