//! What multi-workspace controllers are built on.
//!
//! [`Clusters`] turns one kube-rs client into clients scoped to a logical cluster (or to the
//! `*` wildcard view) by prefixing request paths with `/clusters/<name>`, sharing one
//! connection pool. [`run`] is a small controller loop keyed by (cluster, namespace, name):
//! kube-runtime's Controller keys objects by namespace and name only, which would merge
//! same-named objects of different workspaces.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use http::{Request, Response, Uri};
use kube::api::Api;
use kube::client::Body;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::ControllerObserver;
use faros_api::tenancy::CLUSTER_ANNOTATION;

/// Prefixes every request path with `/clusters/<name>` before handing it to the base client.
#[derive(Clone)]
struct ClusterScoped {
    base: Client,
    prefix: Arc<str>,
}

impl tower::Service<Request<Body>> for ClusterScoped {
    type Response = Response<Body>;
    type Error = kube::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, kube::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let path_and_query = request.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let rewritten = format!("{}{path_and_query}", self.prefix);
        match rewritten.parse::<Uri>() {
            Ok(uri) => *request.uri_mut() = uri,
            Err(e) => return Box::pin(async move { Err(kube::Error::Service(Box::new(e))) }),
        }
        let base = self.base.clone();
        Box::pin(async move { base.send(request).await })
    }
}

/// Clients for individual logical clusters, all sharing one connection pool.
#[derive(Clone)]
pub struct Clusters {
    base: Client,
    /// Prepended to `/clusters/<name>`: empty, or an APIExport view's path.
    view: Arc<str>,
    /// Told about the queues and reconciles of the controllers built on these clients.
    observer: Option<Arc<dyn ControllerObserver>>,
}

impl Clusters {
    pub fn new(base: Client, observer: Option<Arc<dyn ControllerObserver>>) -> Clusters {
        Clusters {
            base,
            view: Arc::from(""),
            observer,
        }
    }

    /// Clients that reach workspaces only through APIExport `export` of `workspace`: the
    /// export's resources and the permission claims each workspace accepted, nothing else.
    pub fn through_export(&self, workspace: &str, export: &str) -> Clusters {
        Clusters {
            base: self.base.clone(),
            view: Arc::from(format!("{}{workspace}/{export}", faros_api::apis::VIEW_PATH_PREFIX)),
            observer: self.observer.clone(),
        }
    }

    /// A client for the logical cluster (or workspace path) `cluster`. Made afresh each time
    /// rather than kept per workspace: it is only a path prefix over the shared pool, while a
    /// kept client holds a request queue and its task for every workspace ever reconciled.
    pub fn cluster(&self, cluster: &str) -> Client {
        Client::new(
            ClusterScoped {
                base: self.base.clone(),
                prefix: Arc::from(format!("{}/clusters/{cluster}", self.view)),
            },
            "default",
        )
    }

    /// A client for the `/clusters/*` view: list and watch across every workspace.
    pub fn wildcard(&self) -> Client {
        self.cluster("*")
    }
}

/// The logical cluster an object was served from.
pub fn cluster_of<K: Resource>(object: &K) -> String {
    cluster_name(object).to_owned()
}

/// [`cluster_of`], borrowed from the object.
pub(crate) fn cluster_name<K: Resource>(object: &K) -> &str {
    object
        .meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(CLUSTER_ANNOTATION))
        .map_or("", String::as_str)
}

/// Decodes an object's `metadata` for a controller that watches every object of a kind (each
/// heartbeat's Lease among them): what identifies the object, its revision, deletion, finalizers
/// and owners, and of its annotations only the workspace's. The rest, managedFields above all,
/// is skipped over rather than decoded into trees.
pub(crate) fn slim_metadata<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<kube::api::ObjectMeta, D::Error> {
    slim_metadata_with::<D, serde::de::IgnoredAny>(deserializer)
}

/// What [`slim_metadata_with`] keeps of an object's labels: nothing ([`serde::de::IgnoredAny`],
/// skipped over) or all of them (a map), for the few controllers that select by label.
pub trait KeptLabels: for<'de> serde::Deserialize<'de> {
    fn kept(self) -> Option<std::collections::BTreeMap<String, String>>;
}

impl KeptLabels for serde::de::IgnoredAny {
    fn kept(self) -> Option<std::collections::BTreeMap<String, String>> {
        None
    }
}

impl KeptLabels for std::collections::BTreeMap<String, String> {
    fn kept(self) -> Option<std::collections::BTreeMap<String, String>> {
        Some(self)
    }
}

/// [`slim_metadata`], keeping the labels when `L` says so.
pub(crate) fn slim_metadata_with<'de, D: serde::Deserializer<'de>, L: KeptLabels>(
    deserializer: D,
) -> Result<kube::api::ObjectMeta, D::Error> {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};

    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase", bound = "L: KeptLabels")]
    struct Slim<L> {
        name: Option<String>,
        namespace: Option<String>,
        uid: Option<String>,
        resource_version: Option<String>,
        deletion_timestamp: Option<Time>,
        finalizers: Option<Vec<String>>,
        owner_references: Option<Vec<OwnerReference>>,
        labels: Option<L>,
        annotations: Option<std::collections::BTreeMap<String, String>>,
    }

    let meta = <Slim<L> as serde::Deserialize>::deserialize(deserializer)?;
    let annotations = meta.annotations.map(|mut all| {
        all.retain(|key, _| key == CLUSTER_ANNOTATION);
        all
    });
    Ok(kube::api::ObjectMeta {
        name: meta.name,
        namespace: meta.namespace,
        uid: meta.uid,
        resource_version: meta.resource_version,
        deletion_timestamp: meta.deletion_timestamp,
        finalizers: meta.finalizers,
        owner_references: meta.owner_references,
        labels: meta.labels.and_then(KeptLabels::kept),
        annotations,
        ..Default::default()
    })
}

/// An object of kind `R` as a controller that watches every object of it reads it: the
/// metadata [`slim_metadata`] keeps (with the labels when `Labels` is a map), and of the rest
/// only the parts of its spec and status the controller names (`Spec`, `Status`; skipped over
/// by default). An Agent's status, its device facts, is most of it, and a fleet's status writes
/// reach every such watch.
#[derive(Debug, serde::Deserialize)]
#[serde(bound(deserialize = "Spec: serde::Deserialize<'de>, Status: serde::Deserialize<'de>, Labels: KeptLabels"))]
pub struct Partial<R, Spec = serde::de::IgnoredAny, Status = serde::de::IgnoredAny, Labels = serde::de::IgnoredAny> {
    #[serde(default, deserialize_with = "slim_metadata_with::<_, Labels>")]
    pub metadata: kube::api::ObjectMeta,
    // Options, not defaults: an explicit `null` must read as absent, not fail the watch.
    #[serde(default)]
    pub spec: Option<Spec>,
    #[serde(default)]
    pub status: Option<Status>,
    #[serde(skip)]
    kind: std::marker::PhantomData<fn() -> (R, Labels)>,
}

impl<R, Spec: Clone, Status: Clone, Labels> Clone for Partial<R, Spec, Status, Labels> {
    fn clone(&self) -> Self {
        Partial {
            metadata: self.metadata.clone(),
            spec: self.spec.clone(),
            status: self.status.clone(),
            kind: std::marker::PhantomData,
        }
    }
}

impl<R: Resource<DynamicType = ()>, Spec, Status, Labels> Resource for Partial<R, Spec, Status, Labels> {
    type DynamicType = ();
    type Scope = R::Scope;

    fn kind(dt: &()) -> std::borrow::Cow<'_, str> {
        R::kind(dt)
    }
    fn group(dt: &()) -> std::borrow::Cow<'_, str> {
        R::group(dt)
    }
    fn version(dt: &()) -> std::borrow::Cow<'_, str> {
        R::version(dt)
    }
    fn plural(dt: &()) -> std::borrow::Cow<'_, str> {
        R::plural(dt)
    }
    fn meta(&self) -> &kube::api::ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut kube::api::ObjectMeta {
        &mut self.metadata
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub cluster: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl Key {
    fn of<K: Resource>(object: &K) -> Key {
        Key {
            cluster: cluster_of(object),
            namespace: object.meta().namespace.clone(),
            name: object.meta().name.clone().unwrap_or_default(),
        }
    }
}

/// What a reconcile asks for next.
pub enum Next {
    /// Nothing until the object changes.
    Done,
    /// Look again after this long even if nothing changes.
    After(Duration),
}

/// Which objects a controller keeps between reconciles.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keep {
    /// Every object: a related change may concern any of them.
    All,
    /// Only objects waiting to be reconciled or being reconciled (again, later): the watch
    /// brings each change anyway, so a controller over every Agent, Secret or Registration of
    /// the fleet does not hold a decoded copy of each between their changes.
    Pending,
}

struct State<K> {
    store: HashMap<Key, Arc<K>>,
    queued: HashSet<Key>,
    running: HashSet<Key>,
    /// Changed while being reconciled: run again once the current run ends.
    dirty: HashSet<Key>,
    failures: HashMap<Key, u32>,
}

/// Watches `K` in every workspace and reconciles each object with a client scoped to its
/// logical cluster. Runs until the task is dropped.
pub async fn run<K, F, Fut, E>(name: &'static str, clusters: Clusters, reconcile: F)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    F: Fn(Arc<K>, Client) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Next, E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    drive(name, clusters, reconcile, Vec::new(), Keep::Pending, |_| false).await
}

/// [`run`] for a controller that has nothing to do for objects `settled` picks until they
/// change (a Ready workspace, a namespace not being deleted): those are neither reconciled
/// nor kept, so a controller over every workspace holds only the objects in flux.
pub async fn run_unsettled<K, F, Fut, E>(name: &'static str, clusters: Clusters, settled: fn(&K) -> bool, reconcile: F)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    F: Fn(Arc<K>, Client) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Next, E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    drive(name, clusters, reconcile, Vec::new(), Keep::Pending, settled).await
}

impl<K> State<K> {
    /// Queues `key` once, or marks it to run again when it is running now; true when it
    /// joined the queue.
    fn enqueue(&mut self, key: Key, tx: &mpsc::UnboundedSender<Key>) -> bool {
        if self.running.contains(&key) {
            self.dirty.insert(key);
            false
        } else if self.queued.insert(key.clone()) {
            let _ = tx.send(key);
            true
        } else {
            false
        }
    }
}

/// Requeues the stored objects of a controller that some other object concerns.
pub struct Requeue<K> {
    state: Arc<Mutex<State<K>>>,
    enqueue: Arc<dyn Fn(Key) + Send + Sync>,
}

impl<K> Requeue<K> {
    fn matching(&self, concerned: impl Fn(&K) -> bool) {
        let keys: Vec<Key> = {
            let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            s.store
                .iter()
                .filter(|(_, object)| concerned(object))
                .map(|(key, _)| key.clone())
                .collect()
        };
        for key in keys {
            (self.enqueue)(key);
        }
    }
}

/// Another kind whose changes concern a controller's objects: started by [`run_with`].
pub type Related<K> = Box<dyn FnOnce(Client, Requeue<K>) -> BoxFuture<'static, ()> + Send>;

/// Watches `R` in every workspace; each change or deletion requeues the controller's objects
/// that `concerns(r, k)` picks (objects are reconciled at start anyway, so the initial list
/// requeues nothing).
pub fn related<K, R>(concerns: impl Fn(&R, &K) -> bool + Send + Sync + 'static) -> Related<K>
where
    K: Send + Sync + 'static,
    R: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + 'static,
{
    watch_related(concerns, None)
}

/// [`related`] for a kind most of whose writes change nothing the controller decides on (an
/// Agent's status reports, to the scheduler): `fingerprint` hashes what it does decide on,
/// and a change that leaves the fingerprint as it was requeues nothing. Deletions requeue
/// as in [`related`]; after a relist, when deletions may have gone unseen, every object is
/// requeued.
pub fn related_by<K, R>(
    fingerprint: fn(&R) -> u64,
    concerns: impl Fn(&R, &K) -> bool + Send + Sync + 'static,
) -> Related<K>
where
    K: Send + Sync + 'static,
    R: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + 'static,
{
    watch_related(concerns, Some(fingerprint))
}

fn watch_related<K, R>(
    concerns: impl Fn(&R, &K) -> bool + Send + Sync + 'static,
    fingerprint: Option<fn(&R) -> u64>,
) -> Related<K>
where
    K: Send + Sync + 'static,
    R: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + 'static,
{
    Box::new(move |wildcard: Client, requeue: Requeue<K>| {
        Box::pin(async move {
            let api: Api<R> = Api::all(wildcard);
            let mut events = watcher::watcher(api, watcher::Config::default())
                .default_backoff()
                .boxed();
            let mut listed = false;
            // The last fingerprint of each object, when there is a fingerprint.
            let mut seen: HashMap<Key, u64> = HashMap::new();
            while let Some(event) = events.next().await {
                match event {
                    Ok(Event::Apply(r)) => {
                        if remember(&mut seen, fingerprint, &r) {
                            requeue.matching(|k| concerns(&r, k));
                        }
                    }
                    Ok(Event::Delete(r)) => {
                        seen.remove(&Key::of(&r));
                        requeue.matching(|k| concerns(&r, k));
                    }
                    Ok(Event::Init) => seen.clear(),
                    Ok(Event::InitApply(r)) => {
                        remember(&mut seen, fingerprint, &r);
                        if listed && fingerprint.is_none() {
                            requeue.matching(|k| concerns(&r, k));
                        }
                    }
                    Ok(Event::InitDone) => {
                        if listed && fingerprint.is_some() {
                            requeue.matching(|_| true);
                        }
                        listed = true;
                    }
                    Err(_) => {}
                }
            }
        })
    })
}

/// Records `r`'s fingerprint in `seen`; true when it is new or changed (always, without one).
fn remember<R: Resource>(seen: &mut HashMap<Key, u64>, fingerprint: Option<fn(&R) -> u64>, r: &R) -> bool {
    let Some(fingerprint) = fingerprint else {
        return true;
    };
    let print = fingerprint(r);
    seen.insert(Key::of(r), print) != Some(print)
}

/// [`run`], also requeueing objects when the `related` kinds change.
pub async fn run_with<K, F, Fut, E>(name: &'static str, clusters: Clusters, reconcile: F, related: Vec<Related<K>>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    F: Fn(Arc<K>, Client) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Next, E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    drive(name, clusters, reconcile, related, Keep::All, |_| false).await
}

async fn drive<K, F, Fut, E>(
    name: &'static str,
    clusters: Clusters,
    reconcile: F,
    related: Vec<Related<K>>,
    keep: Keep,
    settled: fn(&K) -> bool,
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    F: Fn(Arc<K>, Client) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Next, E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let state = Arc::new(Mutex::new(State::<K> {
        store: HashMap::new(),
        queued: HashSet::new(),
        running: HashSet::new(),
        dirty: HashSet::new(),
        failures: HashMap::new(),
    }));
    let (tx, mut rx) = mpsc::unbounded_channel::<Key>();
    let observer = clusters.observer.clone();
    let queue_depth = {
        let observer = observer.clone();
        move |depth: usize| {
            if let Some(observer) = &observer {
                observer.queue_depth(name, depth);
            }
        }
    };
    let enqueue = {
        let state = state.clone();
        let tx = tx.clone();
        let queue_depth = queue_depth.clone();
        move |key: Key| {
            let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
            if s.enqueue(key, &tx) {
                queue_depth(s.queued.len());
            }
        }
    };
    let api: Api<K> = Api::all(clusters.wildcard());
    let watch = {
        let state = state.clone();
        let tx = tx.clone();
        let queue_depth = queue_depth.clone();
        async move {
            let mut events = watcher::watcher(api, watcher::Config::default())
                .default_backoff()
                .boxed();
            while let Some(event) = events.next().await {
                tracing::debug!(controller = name, ok = event.is_ok(), "watch event");
                match event {
                    Ok(Event::Apply(obj) | Event::InitApply(obj)) if settled(&obj) => {
                        let key = Key::of(&obj);
                        state.lock().unwrap_or_else(|e| e.into_inner()).store.remove(&key);
                    }
                    Ok(Event::Apply(obj) | Event::InitApply(obj)) => {
                        // Stored and queued under one lock: a run ending in between would
                        // otherwise drop the new object before its turn.
                        let key = Key::of(&obj);
                        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
                        s.store.insert(key.clone(), Arc::new(obj));
                        if s.enqueue(key, &tx) {
                            queue_depth(s.queued.len());
                        }
                    }
                    Ok(Event::Delete(obj)) => {
                        let key = Key::of(&obj);
                        state.lock().unwrap_or_else(|e| e.into_inner()).store.remove(&key);
                    }
                    Ok(Event::Init | Event::InitDone) => {}
                    Err(e) => tracing::debug!(controller = name, error = %e, "watch error; retrying"),
                }
            }
        }
    };
    // Ends with this controller: dropping `run` (on shutdown) stops its watches too.
    let _watch = AbortOnDrop(tokio::spawn(watch));
    let enqueue_shared: Arc<dyn Fn(Key) + Send + Sync> = Arc::new(enqueue.clone());
    let _related: Vec<AbortOnDrop<()>> = related
        .into_iter()
        .map(|start| {
            let requeue = Requeue {
                state: state.clone(),
                enqueue: enqueue_shared.clone(),
            };
            AbortOnDrop(tokio::spawn(start(clusters.wildcard(), requeue)))
        })
        .collect();
    let reconcile = Arc::new(reconcile);
    let workers = Arc::new(tokio::sync::Semaphore::new(8));
    // Reconciles, and the waits before a requeue, belong to this controller: they end with
    // it, so a stopped controller sends no more requests.
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let key = tokio::select! {
            key = rx.recv() => match key {
                Some(key) => key,
                None => break,
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        let object = {
            let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
            s.queued.remove(&key);
            queue_depth(s.queued.len());
            match s.store.get(&key).cloned() {
                Some(object) => {
                    s.running.insert(key.clone());
                    object
                }
                None => continue,
            }
        };
        let Ok(permit) = workers.clone().acquire_owned().await else {
            break;
        };
        tracing::debug!(controller = name, cluster = %key.cluster, name = %key.name, "reconciling");
        let client = clusters.cluster(&key.cluster);
        let reconcile = reconcile.clone();
        let state = state.clone();
        let enqueue = enqueue.clone();
        let observer = observer.clone();
        tasks.spawn(async move {
            let started = std::time::Instant::now();
            let result = reconcile(object, client).await;
            drop(permit);
            if let Some(observer) = &observer {
                observer.reconciled(name, started.elapsed(), result.is_err());
            }
            let (again, delay) = {
                let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
                s.running.remove(&key);
                let dirty = s.dirty.remove(&key);
                let decision = match result {
                    Ok(Next::Done) => {
                        s.failures.remove(&key);
                        (dirty, None)
                    }
                    Ok(Next::After(d)) => {
                        s.failures.remove(&key);
                        (true, Some(d).filter(|_| !dirty))
                    }
                    Err(e) => {
                        let attempts = s.failures.entry(key.clone()).or_insert(0);
                        *attempts += 1;
                        tracing::warn!(controller = name, cluster = %key.cluster, name = %key.name, error = %e, "reconcile failed");
                        (true, Some(backoff(*attempts)))
                    }
                };
                // A change during the run marked the key dirty (and stored the new object),
                // so an object dropped here has nothing pending; its next change brings it back.
                if !decision.0 && keep == Keep::Pending {
                    s.store.remove(&key);
                }
                decision
            };
            if again {
                if let Some(delay) = delay {
                    tokio::time::sleep(delay).await;
                }
                enqueue(key);
            }
        });
    }
}

/// Aborts a spawned task when dropped, tying its lifetime to its owner's.
pub struct AbortOnDrop<T>(pub tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How long to wait after the `attempts`-th failure in a row: from 200 ms, doubling, at most
/// 10 s, so a hub restart or a transient error slows a controller down but never ends it.
pub(crate) fn backoff(attempts: u32) -> Duration {
    let base = Duration::from_millis(200) * 2u32.saturating_pow(attempts.saturating_sub(1).min(6));
    base.min(Duration::from_secs(10))
}

/// A merge patch setting an object's status to `new`, including clearing the fields `old`
/// had and `new` leaves out (empty lists and unset options are not serialized, and a merge
/// patch keeps whatever it does not mention).
pub fn status_patch<S: serde::Serialize>(old: Option<&S>, new: &S) -> Value {
    let mut body = serde_json::to_value(new).unwrap_or_default();
    if let (Some(old), Some(fields)) = (old.map(serde_json::to_value), body.as_object_mut())
        && let Ok(Value::Object(old)) = old
    {
        for key in old.keys() {
            fields.entry(key.clone()).or_insert(Value::Null);
        }
    }
    serde_json::json!({ "status": body })
}

#[cfg(test)]
mod tests {
    use super::*;
    use faros_api::apis::{APIBindingStatus, PermissionClaim};

    #[test]
    fn a_partial_object_is_served_as_its_kind() {
        use faros_api::edge::Agent;
        assert_eq!(Partial::<Agent>::plural(&()), "agents");
        assert_eq!(Partial::<Agent>::api_version(&()), Agent::api_version(&()));
        let url = Partial::<Agent>::url_path(&(), Some("default"));
        assert_eq!(url, Agent::url_path(&(), Some("default")));
        let agent = serde_json::json!({
            "apiVersion": "edge.faros.sh/v1alpha1",
            "kind": "Agent",
            "metadata": {"name": "dev-1", "namespace": "default", "labels": {"site": "a"}},
            "status": {"device": {"hostname": "dev-1"}}
        });
        let read: Partial<Agent> = serde_json::from_value(agent).unwrap();
        assert_eq!(read.meta().name.as_deref(), Some("dev-1"));
        assert_eq!(read.meta().namespace.as_deref(), Some("default"));
        assert!(read.meta().labels.is_none(), "labels are kept only when asked for");
    }

    #[test]
    fn backoff_doubles_up_to_ten_seconds() {
        let waits: Vec<u64> = (1..=9).map(|n| backoff(n).as_millis() as u64).collect();
        assert_eq!(waits, [200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000]);
        assert_eq!(backoff(u32::MAX), Duration::from_secs(10));
    }

    #[test]
    fn status_patches_clear_what_is_no_longer_set() {
        let old = APIBindingStatus {
            phase: "Bound".into(),
            applied_permission_claims: vec![PermissionClaim {
                resource: "configmaps".into(),
                state: "Accepted".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let new = APIBindingStatus {
            phase: "Bound".into(),
            ..Default::default()
        };
        assert_eq!(
            status_patch(Some(&old), &new),
            serde_json::json!({"status": {"phase": "Bound", "appliedPermissionClaims": null}})
        );
        assert_eq!(
            status_patch(None, &new),
            serde_json::json!({"status": {"phase": "Bound"}})
        );
    }
}
