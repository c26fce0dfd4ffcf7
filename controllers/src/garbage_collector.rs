//! The garbage collector: deletes dependents whose owners (matched by uid within the same
//! logical cluster) are gone, removes dangling owner references, and carries out Foreground
//! and Orphan deletion of owners.
//!
//! It keeps an owner graph in memory, fed by watches: built-in and system kinds through the
//! `/clusters/*` view (one watch per kind for every workspace), custom resources per
//! workspace that defines them, and exported resources per export identity. A change only
//! queues the objects it can affect (the object itself, or the dependents of a deleted
//! owner), so the work follows the rate of change, not the number of objects.
//!
//! The graph holds every object of the hub, so what it keeps per object is small: most
//! objects have no owners and are not being deleted with the collector's help, and for those
//! it keeps only their key (the workspace's name shared, the uid in 16 bytes), which is all
//! it needs to tell that someone's owner exists. The rest keep a [`Node`].

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ObjectMeta, Patch, PatchParams};
use kube::discovery::{Discovery, Scope, verbs};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::json;
use tokio::sync::mpsc;

use crate::errors::{is_conflict, is_not_found};
use crate::runtime::{Clusters, cluster_name, cluster_of, slim_metadata};
use faros_api::meta::{FOREGROUND_FINALIZER, ORPHAN_FINALIZER};

/// Groups served identically in every workspace, watched once through `/clusters/*`.
const STATIC_GROUPS: &[&str] = &[
    "",
    "coordination.k8s.io",
    "rbac.authorization.k8s.io",
    "apiextensions.k8s.io",
    "tenancy.kcp.io",
    "core.kcp.io",
    "apis.kcp.io",
];

/// (logical cluster, uid). The cluster's name is shared by every key of the workspace.
type Uid = (Arc<str>, ObjectUid);

/// An object's uid as the graph keeps it: a UUID as the hub writes them in 16 bytes, anything
/// else (an owner reference may name any string) as given.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum ObjectUid {
    Uuid([u8; 16]),
    Other(Box<str>),
}

impl ObjectUid {
    fn new(uid: &str) -> ObjectUid {
        // Only the canonical spelling is packed, so that two spellings of one UUID stay two
        // uids, as Kubernetes compares them.
        match uuid::Uuid::try_parse(uid) {
            Ok(parsed) if uid.len() == 36 && !uid.bytes().any(|b| b.is_ascii_uppercase()) => {
                ObjectUid::Uuid(parsed.into_bytes())
            }
            _ => ObjectUid::Other(uid.into()),
        }
    }
}

impl fmt::Display for ObjectUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectUid::Uuid(bytes) => uuid::Uuid::from_bytes(*bytes).hyphenated().fmt(f),
            ObjectUid::Other(uid) => f.write_str(uid),
        }
    }
}

/// An object of any kind as the collector reads it off its watches: only the metadata it
/// uses is decoded, the rest of the JSON is skipped over. (kube-rs' `DynamicObject` and
/// `PartialObjectMeta` flatten, which makes serde buffer the whole object first; and a full
/// `ObjectMeta` would decode every event's managedFields into trees, each heartbeat's too.)
#[derive(Clone, Debug, serde::Deserialize)]
struct Watched {
    #[serde(default, deserialize_with = "slim_metadata")]
    metadata: ObjectMeta,
}

impl kube::Resource for Watched {
    type DynamicType = ApiResource;
    type Scope = kube::core::DynamicResourceScope;

    fn group(dt: &ApiResource) -> std::borrow::Cow<'_, str> {
        dt.group.as_str().into()
    }
    fn version(dt: &ApiResource) -> std::borrow::Cow<'_, str> {
        dt.version.as_str().into()
    }
    fn kind(dt: &ApiResource) -> std::borrow::Cow<'_, str> {
        dt.kind.as_str().into()
    }
    fn api_version(dt: &ApiResource) -> std::borrow::Cow<'_, str> {
        dt.api_version.as_str().into()
    }
    fn plural(dt: &ApiResource) -> std::borrow::Cow<'_, str> {
        dt.plural.as_str().into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// A dependent (its API and name) to drop an owner's references from.
type OwnerUpdate = (Api<DynamicObject>, String);

/// An object the collector may act on: one with owners, or one being deleted in foreground
/// or orphan mode.
struct Node {
    /// Shared by every node of the kind.
    resource: Arc<ApiResource>,
    namespaced: bool,
    namespace: Option<String>,
    name: String,
    owners: Vec<OwnerReference>,
    deleting: bool,
    finalizers: Vec<String>,
}

#[derive(Default)]
struct Graph {
    /// Objects with nothing for the collector to do: only their existence matters.
    plain: HashSet<Uid>,
    nodes: HashMap<Uid, Node>,
    dependents: HashMap<Uid, HashSet<Uid>>,
    /// The name of every workspace an object is known in, shared by their keys.
    clusters: HashSet<Arc<str>>,
    /// Kinds whose watch finished its initial list, as (cluster or "*", group, kind). An
    /// owner is judged gone only when its kind is in here: until then it may simply not be
    /// loaded yet.
    synced: HashSet<(String, String, String)>,
}

impl Graph {
    fn kind_synced(&self, cluster: &str, api_version: &str, kind: &str) -> bool {
        let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
        self.synced
            .contains(&("*".to_string(), group.to_string(), kind.to_string()))
            || self
                .synced
                .contains(&(cluster.to_string(), group.to_string(), kind.to_string()))
    }
}

impl Graph {
    /// The shared name of `cluster`, kept from now on.
    fn cluster(&mut self, cluster: &str) -> Arc<str> {
        if let Some(known) = self.clusters.get(cluster) {
            return known.clone();
        }
        let name: Arc<str> = Arc::from(cluster);
        self.clusters.insert(name.clone());
        name
    }

    /// The key of an object the graph may know, without keeping anything new.
    fn known_key(&self, cluster: &str, uid: &str) -> Option<Uid> {
        Some((self.clusters.get(cluster)?.clone(), ObjectUid::new(uid)))
    }

    fn exists(&self, key: &Uid) -> bool {
        self.plain.contains(key) || self.nodes.contains_key(key)
    }

    /// Records an object the collector has nothing to do for; returns the node it replaces.
    fn upsert_plain(&mut self, key: Uid) -> Option<Node> {
        let replaced = self.remove(&key);
        self.plain.insert(key);
        replaced
    }

    /// Records an object the collector may act on; returns the node it replaces.
    fn upsert(&mut self, key: Uid, node: Node) -> Option<Node> {
        self.plain.remove(&key);
        let replaced = self.remove(&key);
        for owner in &node.owners {
            self.dependents
                .entry((key.0.clone(), ObjectUid::new(&owner.uid)))
                .or_default()
                .insert(key.clone());
        }
        self.nodes.insert(key, node);
        replaced
    }

    /// Those of `owners` (in `cluster`) that are being deleted: in foreground deletion they
    /// wait for their dependents, so any change of a dependent concerns them.
    fn deleting_owners(&self, cluster: &Arc<str>, owners: &[OwnerReference]) -> Vec<Uid> {
        owners
            .iter()
            .map(|o| (cluster.clone(), ObjectUid::new(&o.uid)))
            .filter(|o| self.nodes.get(o).is_some_and(|n| n.deleting))
            .collect()
    }

    /// Forgets an object, and its workspace's name once no key uses it. (A key of the
    /// workspace still queued at that moment keeps the name until the process ends: a few
    /// bytes per workspace, against looking again later.)
    fn forget(&mut self, key: &Uid) -> Option<Node> {
        self.plain.remove(key);
        let node = self.remove(key);
        // Held here, by `key`, and by nothing else: the workspace has no object left.
        if Arc::strong_count(&key.0) == 2 {
            self.clusters.remove(&key.0);
        }
        node
    }

    fn remove(&mut self, key: &Uid) -> Option<Node> {
        let node = self.nodes.remove(key)?;
        for owner in &node.owners {
            let owner_key = (key.0.clone(), ObjectUid::new(&owner.uid));
            if let Some(set) = self.dependents.get_mut(&owner_key) {
                set.remove(key);
                if set.is_empty() {
                    self.dependents.remove(&owner_key);
                }
            }
        }
        Some(node)
    }
}

struct Collector {
    clusters: Clusters,
    graph: Mutex<Graph>,
    queue: mpsc::UnboundedSender<Uid>,
    /// Resources already being watched, by (cluster or "*", group, plural).
    watched: Mutex<HashSet<(String, String, String)>>,
    /// Resource and scope of every watched kind, by (group, kind), to look owners up.
    kinds: Mutex<HashMap<(String, String), (ApiResource, bool)>>,
    /// Every task the collector spawned, aborted when `run` ends.
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

/// Aborts the collector's tasks when `run` is dropped (they hold the collector themselves).
struct StopTasks(Arc<Collector>);

impl Drop for StopTasks {
    fn drop(&mut self) {
        for task in self.0.tasks.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            task.abort();
        }
    }
}

pub async fn run(clusters: Clusters) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let collector = Arc::new(Collector {
        clusters: clusters.clone(),
        graph: Mutex::new(Graph::default()),
        queue: tx,
        watched: Mutex::new(HashSet::new()),
        kinds: Mutex::new(HashMap::new()),
        tasks: Mutex::new(Vec::new()),
    });
    let _stop = StopTasks(collector.clone());
    // Static kinds, discovered once from root (they are the same everywhere).
    let mut failures = 0;
    let discovery = loop {
        match Discovery::new(clusters.cluster(faros_api::tenancy::ROOT)).run().await {
            Ok(d) => break d,
            Err(e) => {
                tracing::warn!(error = %e, "garbage collector discovery failed; retrying");
                failures += 1;
                tokio::time::sleep(crate::runtime::backoff(failures)).await;
            }
        }
    };
    for group in discovery.groups() {
        if !STATIC_GROUPS.contains(&group.name()) {
            continue;
        }
        for (resource, caps) in group.recommended_resources() {
            if caps.supports_operation(verbs::WATCH) && caps.supports_operation(verbs::DELETE) {
                collector.watch("*", resource, caps.scope == Scope::Namespaced);
            }
        }
    }
    // Custom resources appear with their CRDs, per workspace.
    collector.spawn(collector.clone().follow_crds());
    collector.spawn(collector.clone().follow_exports());
    while let Some(key) = rx.recv().await {
        if let Err(e) = collector.process(&key).await {
            tracing::debug!(cluster = %key.0, uid = %key.1, error = %e, "garbage collection step failed; retrying");
            let tx = collector.queue.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let _ = tx.send(key);
            });
        }
    }
}

impl Collector {
    /// Starts a watch of `resource` in `cluster` ("*" for every workspace), once.
    fn watch(self: &Arc<Self>, cluster: &str, resource: ApiResource, namespaced: bool) {
        let id = (cluster.to_string(), resource.group.clone(), resource.plural.clone());
        if !self.watched.lock().unwrap_or_else(|e| e.into_inner()).insert(id) {
            return;
        }
        self.kinds.lock().unwrap_or_else(|e| e.into_inner()).insert(
            (resource.group.clone(), resource.kind.clone()),
            (resource.clone(), namespaced),
        );
        // The whole objects come down the watch, but only their metadata is decoded: the
        // collector needs nothing else, and it sees every write of every kind (each
        // heartbeat's Lease among them).
        let api: Api<Watched> = Api::all_with(self.clusters.cluster(cluster), &resource);
        let resource = Arc::new(resource);
        let this = self.clone();
        let cluster = cluster.to_string();
        self.spawn(async move {
            let mut synced = false;
            let mut stream = watcher::watcher(api, watcher::Config::default())
                .default_backoff()
                .boxed();
            while let Some(event) = stream.next().await {
                match event {
                    Ok(Event::Apply(obj)) => this.observe(&resource, namespaced, obj, false),
                    // A relist looks at every object again: what changed in a watch gap
                    // (an owner created and deleted unseen) is caught up with here.
                    Ok(Event::InitApply(obj)) => this.observe(&resource, namespaced, obj, true),
                    Ok(Event::Delete(obj)) => this.forget(&obj),
                    Ok(Event::InitDone) if !synced => {
                        synced = true;
                        let id = (cluster.clone(), resource.group.clone(), resource.kind.clone());
                        this.graph.lock().unwrap_or_else(|e| e.into_inner()).synced.insert(id);
                        this.requeue_all();
                    }
                    Ok(_) => {}
                    Err(e) => tracing::debug!(resource = %resource.plural, error = %e, "gc watch error; retrying"),
                }
            }
        });
    }

    fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(task).abort_handle();
        self.tasks.lock().unwrap_or_else(|e| e.into_inner()).push(handle);
    }

    fn observe(&self, resource: &Arc<ApiResource>, namespaced: bool, obj: Watched, relisted: bool) {
        let Some(uid) = obj.metadata.uid.as_deref() else { return };
        let deleting = obj.metadata.deletion_timestamp.is_some();
        let interesting = !obj.owner_references().is_empty()
            || (deleting
                && obj
                    .finalizers()
                    .iter()
                    .any(|f| f == ORPHAN_FINALIZER || f == FOREGROUND_FINALIZER));
        let mut graph = self.graph.lock().unwrap_or_else(|e| e.into_inner());
        let key = (graph.cluster(cluster_name(&obj)), ObjectUid::new(uid));
        if !interesting {
            // A dependent that dropped all its owners: those deleting in foreground look again.
            let replaced = graph.upsert_plain(key.clone());
            let waiting = replaced.map_or_else(Vec::new, |old| graph.deleting_owners(&key.0, &old.owners));
            drop(graph);
            for owner in waiting {
                let _ = self.queue.send(owner);
            }
            return;
        }
        // A write that leaves the owners, the deletion and the finalizers as they were (a
        // status report) changes nothing the collector acts on, as Kubernetes' collector
        // judges updates: queue nothing.
        if !relisted
            && let Some(known) = graph.nodes.get(&key)
            && known.deleting == deleting
            && known.owners.as_slice() == obj.owner_references()
            && known.finalizers.as_slice() == obj.finalizers()
        {
            return;
        }
        let node = Node {
            resource: resource.clone(),
            namespaced,
            namespace: obj.namespace(),
            name: obj.name_any(),
            owners: obj.owner_references().to_vec(),
            deleting,
            finalizers: obj.finalizers().to_vec(),
        };
        let replaced = graph.upsert(key.clone(), node);
        // Owners under foreground deletion wait for their dependents: those it has, and those
        // it just dropped.
        let mut owners = graph.deleting_owners(&key.0, &graph.nodes[&key].owners);
        if let Some(old) = replaced {
            owners.extend(graph.deleting_owners(&key.0, &old.owners));
        }
        drop(graph);
        let _ = self.queue.send(key);
        for owner in owners {
            let _ = self.queue.send(owner);
        }
    }

    fn forget(&self, obj: &Watched) {
        let Some(uid) = obj.metadata.uid.as_deref() else { return };
        let mut graph = self.graph.lock().unwrap_or_else(|e| e.into_inner());
        let Some(key) = graph.known_key(cluster_name(obj), uid) else {
            return;
        };
        let removed = graph.forget(&key);
        let dependents: Vec<Uid> = graph
            .dependents
            .get(&key)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        drop(graph);
        for d in dependents {
            let _ = self.queue.send(d);
        }
        // Owners waiting in foreground deletion for this dependent look again.
        if let Some(node) = removed {
            for owner in node.owners {
                let _ = self.queue.send((key.0.clone(), ObjectUid::new(&owner.uid)));
            }
        }
    }

    fn requeue_all(&self) {
        let graph = self.graph.lock().unwrap_or_else(|e| e.into_inner());
        for key in graph.nodes.keys() {
            let _ = self.queue.send(key.clone());
        }
    }

    fn api(&self, cluster: &str, node: &Node) -> Api<DynamicObject> {
        let client = self.clusters.cluster(cluster);
        let resource = in_cluster(&node.resource);
        match (node.namespaced, &node.namespace) {
            (true, Some(ns)) => Api::namespaced_with(client, ns, &resource),
            _ => Api::all_with(client, &resource),
        }
    }

    async fn process(&self, key: &Uid) -> Result<(), kube::Error> {
        enum Step {
            Delete(Api<DynamicObject>, String, Vec<OwnerReference>, Option<String>),
            /// The object, and the UIDs of its owners that are gone.
            DropOwners(Api<DynamicObject>, String, Vec<String>),
            Orphan(Vec<OwnerUpdate>, Api<DynamicObject>, String, Vec<String>),
            Foreground(
                Vec<(Api<DynamicObject>, String)>,
                Api<DynamicObject>,
                String,
                Vec<String>,
            ),
        }
        let step = {
            let graph = self.graph.lock().unwrap_or_else(|e| e.into_inner());
            let Some(node) = graph.nodes.get(key) else {
                return Ok(());
            };
            let api = self.api(&key.0, node);
            let dependents: Vec<&Uid> = graph
                .dependents
                .get(key)
                .map(|s| s.iter().collect())
                .unwrap_or_default();
            if node.deleting && node.finalizers.iter().any(|f| f == ORPHAN_FINALIZER) {
                let updates = dependents
                    .iter()
                    .filter_map(|d| graph.nodes.get(*d).map(|n| (self.api(&d.0, n), n.name.clone())))
                    .collect();
                let finalizers = node
                    .finalizers
                    .iter()
                    .filter(|f| *f != ORPHAN_FINALIZER)
                    .cloned()
                    .collect();
                Step::Orphan(updates, api, node.name.clone(), finalizers)
            } else if node.deleting && node.finalizers.iter().any(|f| f == FOREGROUND_FINALIZER) {
                let pending = dependents
                    .iter()
                    .filter_map(|d| graph.nodes.get(*d).map(|n| (*d, n)))
                    .filter(|(_, n)| !n.deleting)
                    .map(|(d, n)| (self.api(&d.0, n), n.name.clone()))
                    .collect::<Vec<_>>();
                if !dependents.is_empty() && pending.is_empty() {
                    // Dependents are on their way out; their deletion events requeue us.
                    return Ok(());
                }
                let finalizers = node
                    .finalizers
                    .iter()
                    .filter(|f| *f != FOREGROUND_FINALIZER)
                    .cloned()
                    .collect();
                Step::Foreground(pending, api, node.name.clone(), finalizers)
            } else if !node.owners.is_empty() && !node.deleting {
                let present = |o: &OwnerReference| graph.exists(&(key.0.clone(), ObjectUid::new(&o.uid)));
                // An owner of a kind not loaded yet might exist: decide nothing until it is.
                if node
                    .owners
                    .iter()
                    .any(|o| !present(o) && !graph.kind_synced(&key.0, &o.api_version, &o.kind))
                {
                    return Ok(());
                }
                let gone: Vec<String> = node
                    .owners
                    .iter()
                    .filter(|o| !present(o))
                    .map(|o| o.uid.clone())
                    .collect();
                if gone.len() == node.owners.len() {
                    Step::Delete(api, node.name.clone(), node.owners.clone(), node.namespace.clone())
                } else if !gone.is_empty() {
                    Step::DropOwners(api, node.name.clone(), gone)
                } else {
                    return Ok(());
                }
            } else {
                return Ok(());
            }
        };
        match step {
            Step::Delete(api, name, owners, namespace) => {
                // Watches of different kinds deliver at different times: an owner created
                // just before its dependent may not be in the graph yet. Ask the API.
                for owner in &owners {
                    if self.owner_exists(&key.0, namespace.as_deref(), owner).await? {
                        return Ok(());
                    }
                }
                ignore_gone(api.delete(&name, &DeleteParams::background()).await)
            }
            Step::DropOwners(api, name, gone) => drop_owner_references(&api, &name, &gone).await,
            Step::Orphan(updates, api, name, finalizers) => {
                let owner = [key.1.to_string()];
                for (dep_api, dep_name) in updates {
                    drop_owner_references(&dep_api, &dep_name, &owner).await?;
                }
                let patch = json!({"metadata": {"finalizers": finalizers}});
                ignore_gone(api.patch(&name, &PatchParams::default(), &Patch::Merge(patch)).await)
            }
            Step::Foreground(pending, api, name, finalizers) => {
                if pending.is_empty() {
                    let patch = json!({"metadata": {"finalizers": finalizers}});
                    return ignore_gone(api.patch(&name, &PatchParams::default(), &Patch::Merge(patch)).await);
                }
                for (dep_api, dep_name) in pending {
                    ignore_gone(dep_api.delete(&dep_name, &DeleteParams::foreground()).await)?;
                }
                Ok(())
            }
        }
    }

    /// Whether `owner` exists (with its uid) in `cluster`, asked of the API directly.
    async fn owner_exists(
        &self,
        cluster: &str,
        namespace: Option<&str>,
        owner: &OwnerReference,
    ) -> Result<bool, kube::Error> {
        let group = owner
            .api_version
            .rsplit_once('/')
            .map(|(g, _)| g)
            .unwrap_or("")
            .to_string();
        let known = self
            .kinds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(group, owner.kind.clone()))
            .cloned();
        let Some((resource, namespaced)) = known else {
            // Not a kind we know: never delete on its account.
            return Ok(true);
        };
        let resource = in_cluster(&resource);
        let client = self.clusters.cluster(cluster);
        let api: Api<DynamicObject> = match (namespaced, namespace) {
            (true, Some(ns)) => Api::namespaced_with(client, ns, &resource),
            _ => Api::all_with(client, &resource),
        };
        match api.get_opt(&owner.name).await {
            Ok(found) => Ok(found.is_some_and(|o| o.uid().as_deref() == Some(owner.uid.as_str()))),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Watches each CRD's resource in the workspace that defines it.
    async fn follow_crds(self: Arc<Self>) {
        let api: Api<CustomResourceDefinition> = Api::all(self.clusters.wildcard());
        let mut stream = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(event) = stream.next().await {
            if let Ok(Event::Apply(crd) | Event::InitApply(crd)) = event {
                let Some(version) = crd.spec.versions.iter().find(|v| v.served) else {
                    continue;
                };
                let resource = ApiResource {
                    group: crd.spec.group.clone(),
                    version: version.name.clone(),
                    api_version: format!("{}/{}", crd.spec.group, version.name),
                    kind: crd.spec.names.kind.clone(),
                    plural: crd.spec.names.plural.clone(),
                };
                self.watch(&cluster_of(&crd), resource, crd.spec.scope == "Namespaced");
            }
        }
    }

    /// Watches every exported resource across all binding workspaces, by identity.
    async fn follow_exports(self: Arc<Self>) {
        let api: Api<faros_api::apis::APIExport> = Api::all(self.clusters.wildcard());
        let mut stream = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(event) = stream.next().await {
            let Ok(Event::Apply(export) | Event::InitApply(export)) = event else {
                continue;
            };
            let Some(identity) = export
                .status
                .as_ref()
                .map(|s| s.identity_hash.clone())
                .filter(|i| !i.is_empty())
            else {
                continue;
            };
            let schemas: Api<faros_api::apis::APIResourceSchema> =
                Api::all(self.clusters.cluster(&cluster_of(&export)));
            for name in &export.spec.latest_resource_schemas {
                // A failed read is retried: skipping the schema would leave its kind
                // unwatched for good, and dependents of it (or owned by it) never collected.
                let mut failures = 0;
                let schema = loop {
                    match schemas.get_opt(name).await {
                        Ok(found) => break found,
                        Err(e) => {
                            failures += 1;
                            tracing::debug!(schema = %name, error = %e, "reading an exported schema failed; retrying");
                            tokio::time::sleep(crate::runtime::backoff(failures)).await;
                        }
                    }
                };
                let Some(schema) = schema else {
                    continue;
                };
                let Some(version) = schema.spec.versions.iter().find(|v| v.served) else {
                    continue;
                };
                let resource = ApiResource {
                    group: schema.spec.group.clone(),
                    version: version.name.clone(),
                    api_version: format!("{}/{}", schema.spec.group, version.name),
                    kind: schema.spec.names.kind.clone(),
                    plural: format!("{}:{identity}", schema.spec.names.plural),
                };
                self.watch("*", resource, schema.spec.scope == "Namespaced");
            }
        }
    }
}

/// `resource` as one workspace names it: exported resources are watched across workspaces
/// as `<plural>:<identity>`, but a single workspace serves them by their plain plural (the
/// identity-qualified path answers 404, which would look like "already gone").
fn in_cluster(resource: &ApiResource) -> ApiResource {
    let mut resource = resource.clone();
    if let Some((plural, _)) = resource.plural.split_once(':') {
        resource.plural = plural.to_string();
    }
    resource
}

/// Removes from `name`'s ownerReferences those to the owners with UIDs `gone`, as the API has
/// them just before, conditional on that read's resourceVersion (another write in between
/// makes it read again). Not conditional on the revision this collector last saw: its
/// watches may leave out updates that kept the metadata (a heartbeat's), so that revision
/// can be behind although nothing it reads changed.
async fn drop_owner_references(api: &Api<DynamicObject>, name: &str, gone: &[String]) -> Result<(), kube::Error> {
    let mut attempts = 0;
    loop {
        let Some(current) = api.get_opt(name).await? else {
            return Ok(());
        };
        let owners = current.metadata.owner_references.unwrap_or_default();
        let kept: Vec<&OwnerReference> = owners.iter().filter(|o| !gone.contains(&o.uid)).collect();
        if kept.len() == owners.len() {
            return Ok(());
        }
        let patch = json!({"metadata": {
            "ownerReferences": kept,
            "resourceVersion": current.metadata.resource_version,
        }});
        match api.patch(name, &PatchParams::default(), &Patch::Merge(patch)).await {
            // Written meanwhile: read it again, a few times, then leave it to the retry.
            Err(e) if is_conflict(&e) && attempts < 4 => attempts += 1,
            Err(e) if is_not_found(&e) => return Ok(()),
            result => return result.map(drop),
        }
    }
}

/// A 404 or 409 means the object changed meanwhile; its next event brings it back.
fn ignore_gone<T>(result: Result<T, kube::Error>) -> Result<(), kube::Error> {
    match result {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) || is_conflict(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNER: &str = "0b7f5a52-7c1e-4a51-9d0e-0d8a3e6f1c2b";
    const DEPENDENT: &str = "5d0c3a8e-1b2f-4c6d-8e9a-7f1b2c3d4e5f";

    fn node(owners: &[&str]) -> Node {
        Node {
            resource: Arc::new(ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&())),
            namespaced: true,
            namespace: Some("default".into()),
            name: "cm".into(),
            owners: owners
                .iter()
                .map(|uid| OwnerReference {
                    uid: (*uid).to_string(),
                    ..OwnerReference::default()
                })
                .collect(),
            deleting: false,
            finalizers: Vec::new(),
        }
    }

    #[test]
    fn watch_events_keep_only_the_metadata_controllers_read() {
        let event = serde_json::json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": "dev1",
                "namespace": "default",
                "uid": OWNER,
                "resourceVersion": "42",
                "deletionTimestamp": "2026-01-01T00:00:00Z",
                "finalizers": ["foregroundDeletion"],
                "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "cm", "uid": DEPENDENT}],
                "labels": {"a": "b"},
                "annotations": {(faros_api::tenancy::CLUSTER_ANNOTATION): "root:a", "note": "dropped"},
                "managedFields": [{"manager": "agent", "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]
            },
            "spec": {"holderIdentity": "dev1"}
        });
        let watched: Watched = serde_json::from_value(event).unwrap();
        assert_eq!(cluster_name(&watched), "root:a");
        let meta = &watched.metadata;
        assert_eq!(meta.annotations.as_ref().map(|a| a.len()), Some(1));
        assert_eq!(meta.name.as_deref(), Some("dev1"));
        assert_eq!(meta.namespace.as_deref(), Some("default"));
        assert_eq!(meta.uid.as_deref(), Some(OWNER));
        assert_eq!(meta.resource_version.as_deref(), Some("42"));
        assert!(meta.deletion_timestamp.is_some());
        assert_eq!(
            meta.finalizers.as_deref(),
            Some(&[FOREGROUND_FINALIZER.to_string()][..])
        );
        assert_eq!(
            meta.owner_references.as_ref().map(|o| o[0].uid.as_str()),
            Some(DEPENDENT)
        );
        assert!(meta.managed_fields.is_none() && meta.labels.is_none());
        // An object without metadata still decodes.
        let bare: Watched = serde_json::from_value(serde_json::json!({"kind": "Lease"})).unwrap();
        assert!(bare.metadata.uid.is_none());
    }

    #[test]
    fn uids_are_packed_only_in_their_canonical_spelling() {
        assert_eq!(
            ObjectUid::new(OWNER),
            ObjectUid::Uuid(uuid::Uuid::parse_str(OWNER).unwrap().into_bytes())
        );
        assert_eq!(ObjectUid::new(OWNER).to_string(), OWNER);
        // The same UUID spelled otherwise is another uid, as Kubernetes compares them.
        let upper = OWNER.to_uppercase();
        assert_eq!(ObjectUid::new(&upper), ObjectUid::Other(upper.clone().into()));
        assert_ne!(ObjectUid::new(&upper), ObjectUid::new(OWNER));
        let simple = OWNER.replace('-', "");
        assert_eq!(ObjectUid::new(&simple).to_string(), simple);
        assert_eq!(ObjectUid::new("not-a-uuid").to_string(), "not-a-uuid");
    }

    #[test]
    fn plain_objects_keep_only_their_key() {
        let mut graph = Graph::default();
        let owner = (graph.cluster("root:a"), ObjectUid::new(OWNER));
        let dependent = (graph.cluster("root:a"), ObjectUid::new(DEPENDENT));
        assert!(Arc::ptr_eq(&owner.0, &dependent.0), "one workspace, one shared name");

        graph.upsert_plain(owner.clone());
        graph.upsert(dependent.clone(), node(&[OWNER]));
        assert!(graph.exists(&owner) && graph.exists(&dependent));
        assert!(graph.plain.contains(&owner) && !graph.nodes.contains_key(&owner));
        assert_eq!(graph.dependents[&owner], HashSet::from([dependent.clone()]));
        // The same uid in another workspace is another object.
        let elsewhere = (graph.cluster("root:b"), ObjectUid::new(OWNER));
        assert!(!graph.exists(&elsewhere));

        // A dependent whose owners were all removed becomes plain, and leaves the index.
        graph.upsert_plain(dependent.clone());
        assert!(graph.plain.contains(&dependent) && !graph.nodes.contains_key(&dependent));
        assert!(graph.dependents.is_empty());
        // And back.
        graph.upsert(dependent.clone(), node(&[OWNER]));
        assert!(graph.nodes.contains_key(&dependent) && !graph.plain.contains(&dependent));
    }

    #[test]
    fn owners_being_deleted_hear_of_dependents_that_leave() {
        let mut graph = Graph::default();
        let owner = (graph.cluster("root:a"), ObjectUid::new(OWNER));
        let dependent = (graph.cluster("root:a"), ObjectUid::new(DEPENDENT));
        let deleting = Node {
            deleting: true,
            finalizers: vec![FOREGROUND_FINALIZER.into()],
            ..node(&[])
        };
        assert!(graph.upsert(owner.clone(), deleting).is_none());
        assert!(graph.upsert(dependent.clone(), node(&[OWNER])).is_none());
        let dropped = graph.upsert_plain(dependent.clone()).expect("the node it replaced");
        assert_eq!(
            graph.deleting_owners(&dependent.0, &dropped.owners),
            vec![owner.clone()]
        );
        // An owner that is not being deleted waits for nothing.
        graph.upsert_plain(owner.clone());
        assert!(graph.deleting_owners(&dependent.0, &dropped.owners).is_empty());
    }

    #[test]
    fn a_workspace_name_is_dropped_with_its_last_object() {
        let mut graph = Graph::default();
        let first = (graph.cluster("root:a"), ObjectUid::new(OWNER));
        let second = (graph.cluster("root:a"), ObjectUid::new(DEPENDENT));
        graph.upsert_plain(first);
        graph.upsert(second, node(&[OWNER]));

        let first = graph.known_key("root:a", OWNER).unwrap();
        assert!(graph.forget(&first).is_none());
        drop(first);
        assert!(graph.known_key("root:a", DEPENDENT).is_some(), "one object is left");

        let second = graph.known_key("root:a", DEPENDENT).unwrap();
        assert!(graph.forget(&second).is_some());
        drop(second);
        assert!(graph.known_key("root:a", DEPENDENT).is_none());
        assert!(graph.clusters.is_empty() && graph.plain.is_empty() && graph.nodes.is_empty());
        assert!(graph.dependents.is_empty());
    }
}
