//! `/metrics`: the hub's Prometheus metrics in the text exposition format.
//!
//! Requests are counted under kube-apiserver's names and labels, so its dashboards and alerts
//! apply; no label names a workspace, so the number of series stays bounded however many
//! tenants there are. The hub's own metrics start with `faros_`: storage commits (reported by
//! the backend through [`CommitObserver`]), the watch cache, workspaces, agents, and the
//! in-process controllers. Gauges of what the hub holds are counted from the cache when a
//! scrape asks for them. The controllers' metrics ([`ControllerMetrics`]) are the same in the
//! hub's registry and in the one `hub-api controllers` serves on its own.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Method;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::apiserver::Hub;
use crate::auth::audit::Record;
use faros_storage::{Cache, Commit, CommitObserver};

/// kube-apiserver's buckets for `apiserver_request_duration_seconds`.
const REQUEST_BUCKETS: [f64; 23] = [
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0, 30.0,
    45.0, 60.0,
];
/// Subresources that open a session rather than read or write an object: kube-apiserver
/// reports them as CONNECT.
const CONNECT_SUBRESOURCES: [&str; 5] = [
    "attach",
    "exec",
    "portforward",
    "proxy",
    faros_tunnel::TUNNEL_SUBRESOURCE,
];

/// What a request was, as kube-apiserver labels it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    verb: &'static str,
    group: String,
    version: String,
    resource: String,
    subresource: String,
    scope: &'static str,
    component: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    #[prometheus(flatten)]
    request: RequestLabels,
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    request_kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResourceLabels {
    resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReadyLabels {
    ready: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectionLabels {
    protocol: &'static str,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn request_histogram() -> Histogram {
    Histogram::new(REQUEST_BUCKETS)
}

/// From 1 ms to 16 s.
fn reconcile_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// Every metric of one hub process.
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<CodeLabels, Counter>,
    request_durations: HistogramFamily<RequestLabels>,
    inflight: Family<KindLabels, Gauge>,
    dropped: Family<KindLabels, Counter>,
    longrunning: Family<RequestLabels, Gauge>,
    storage_objects: Family<ResourceLabels, Gauge>,
    commit_durations: Histogram,
    fsync_durations: Histogram,
    write_group_sizes: Histogram,
    commit_failures: Counter,
    cache: CacheGauges,
    workspaces: Gauge,
    agents: Family<ReadyLabels, Gauge>,
    pub(crate) connections: ConnectionGauges,
    /// Filled by the in-process controllers (`--all-in-one`).
    pub(crate) controllers: ControllerMetrics,
    /// One scrape at a time: each resets the counted gauges before filling them, and reads
    /// what the one before it left of the Agents.
    scrape: Mutex<ReadySeen>,
}

/// The `Ready` status each Agent had at the revision the last scrape read: a scrape then
/// decodes only the Agents written since. Reading every Agent's conditions (skipping over its
/// device facts) cost 63 ms of the hub's CPU per scrape at 30,000 agents.
#[derive(Default)]
struct ReadySeen {
    /// In key order, as the cache lists them, so that a scrape walks both lists side by side
    /// instead of looking each agent up (hashing and comparing 100,000 keys a scrape).
    agents: Vec<Seen>,
}

struct Seen {
    /// The key as the cache holds it, the same allocation for as long as the object exists.
    key: Arc<str>,
    revision: faros_storage::Revision,
    slot: usize,
}

/// What the watch cache holds.
struct CacheGauges {
    objects: Gauge,
    object_bytes: Gauge,
    window_events: Gauge,
    window_bytes: Gauge,
    watches: Gauge,
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::default();
        registry.register(
            "apiserver_request",
            "Requests served, by verb, group, version, resource, subresource, scope, component and HTTP code",
            requests.clone(),
        );
        let request_durations: HistogramFamily<RequestLabels> = Family::new_with_constructor(request_histogram);
        registry.register_with_unit(
            "apiserver_request_duration",
            "Time until a request's response began (for WATCH and CONNECT: until the stream opened)",
            Unit::Seconds,
            request_durations.clone(),
        );
        let inflight = Family::default();
        registry.register(
            "apiserver_current_inflight_requests",
            "Requests being processed now, readOnly or mutating (open watches and sessions are not counted)",
            inflight.clone(),
        );
        let dropped = Family::default();
        registry.register(
            "apiserver_dropped_requests",
            "Requests refused with 429 because as many of their kind, readOnly or mutating, were being processed",
            dropped.clone(),
        );
        let longrunning = Family::default();
        registry.register(
            "apiserver_longrunning_requests",
            "Open watches and other long-running responses",
            longrunning.clone(),
        );
        let storage_objects = Family::default();
        registry.register(
            "apiserver_storage_objects",
            "Objects stored, by resource, across all workspaces",
            storage_objects.clone(),
        );
        let commit_durations = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        registry.register_with_unit(
            "faros_storage_commit_duration",
            "Time of one storage commit, from its transaction's start until the store answered",
            Unit::Seconds,
            commit_durations.clone(),
        );
        let fsync_durations = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        registry.register_with_unit(
            "faros_storage_fsync_duration",
            "Time of SQLite's COMMIT, which appends a write group to the write-ahead log and fsyncs it",
            Unit::Seconds,
            fsync_durations.clone(),
        );
        let write_group_sizes = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        registry.register(
            "faros_storage_write_group_size",
            "Writes committed together in one transaction",
            write_group_sizes.clone(),
        );
        let commit_failures = Counter::default();
        registry.register(
            "faros_storage_commit_failures",
            "Commits the store could not make",
            commit_failures.clone(),
        );
        let cache = CacheGauges {
            objects: Gauge::default(),
            object_bytes: Gauge::default(),
            window_events: Gauge::default(),
            window_bytes: Gauge::default(),
            watches: Gauge::default(),
        };
        registry.register(
            "faros_cache_objects",
            "Objects held by the watch cache",
            cache.objects.clone(),
        );
        registry.register_with_unit(
            "faros_cache_objects",
            "What the watch cache's current objects take: their JSON, keys and labels",
            Unit::Bytes,
            cache.object_bytes.clone(),
        );
        registry.register(
            "faros_cache_window_events",
            "Events in the watch cache's window, from which watches resume",
            cache.window_events.clone(),
        );
        registry.register_with_unit(
            "faros_cache_window",
            "What the events of the watch cache's window alone keep alive",
            Unit::Bytes,
            cache.window_bytes.clone(),
        );
        registry.register(
            "faros_cache_watches",
            "Watches the watch cache feeds",
            cache.watches.clone(),
        );
        let workspaces = Gauge::default();
        registry.register(
            "faros_workspaces",
            "Logical clusters, the root workspace included",
            workspaces.clone(),
        );
        let agents = Family::default();
        registry.register(
            "faros_agents",
            "Agents by the status of their Ready condition (Unknown when they have none)",
            agents.clone(),
        );
        let connections = Family::<ConnectionLabels, Gauge>::default();
        registry.register(
            "faros_http_connections",
            "Open client connections, by protocol and by whether they are serving or waiting idle for the next request",
            connections.clone(),
        );
        let connection = |protocol, state| connections.get_or_create_owned(&ConnectionLabels { protocol, state });
        let connections = ConnectionGauges {
            http1_active: connection("HTTP/1.1", "active"),
            http1_idle: connection("HTTP/1.1", "idle"),
            http2_active: connection("HTTP/2", "active"),
        };
        let controllers = ControllerMetrics::register(&mut registry);
        Metrics {
            registry,
            requests,
            request_durations,
            inflight,
            dropped,
            longrunning,
            storage_objects,
            commit_durations,
            fsync_durations,
            write_group_sizes,
            commit_failures,
            cache,
            workspaces,
            agents,
            connections,
            controllers,
            scrape: Mutex::new(ReadySeen::default()),
        }
    }

    /// Counts a request in flight until the returned guard drops.
    pub(crate) fn in_flight(&self, method: &Method) -> GaugeGuard {
        let request_kind = crate::apiserver::inflight::RequestKind::of(method).as_str();
        GaugeGuard::inc(self.inflight.get_or_create_owned(&KindLabels { request_kind }))
    }

    /// Counts a request refused because `kind`'s cap was reached.
    pub(crate) fn dropped(&self, kind: crate::apiserver::inflight::RequestKind) {
        self.dropped
            .get_or_create(&KindLabels {
                request_kind: kind.as_str(),
            })
            .inc();
    }

    /// Records a request whose response begins now; for a watch or session, returns a guard
    /// to keep for as long as its response streams.
    pub(crate) fn request(
        &self,
        record: &Record,
        content_type: Option<&str>,
        code: u16,
        took: Duration,
    ) -> Option<GaugeGuard> {
        let labels = request_labels(record, content_type);
        self.request_durations
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        let long_running = matches!(labels.verb, "WATCH" | "CONNECT") && code < 300;
        let guard = long_running.then(|| GaugeGuard::inc(self.longrunning.get_or_create_owned(&labels)));
        self.requests.get_or_create(&CodeLabels { request: labels, code }).inc();
        guard
    }

    /// The text exposition of every metric, the gauges counted afresh from `hub`'s cache.
    pub(crate) fn render(&self, hub: &Hub) -> String {
        let mut one_scrape = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        self.cache.objects.set(hub.cache.len() as i64);
        self.cache.object_bytes.set(hub.cache.objects_size() as i64);
        let (window_events, window_bytes) = hub.cache.window_size();
        self.cache.window_events.set(window_events as i64);
        self.cache.window_bytes.set(window_bytes as i64);
        self.cache.watches.set(hub.cache.watch_count() as i64);
        let objects = count_objects(&hub.cache);
        self.storage_objects.clear();
        for (resource, count) in &objects {
            self.storage_objects
                .get_or_create(&ResourceLabels {
                    resource: resource.clone(),
                })
                .set(*count);
        }
        self.workspaces.set(
            objects
                .get(&format!("logicalclusters.{}", faros_api::tenancy::CORE_GROUP))
                .copied()
                .unwrap_or_default(),
        );
        for (ready, count) in count_agents(hub, &mut one_scrape) {
            self.agents.get_or_create(&ReadyLabels { ready }).set(count);
        }
        text(&self.registry)
    }
}

/// The text exposition of every metric in `registry`.
pub(crate) fn text(registry: &Registry) -> String {
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, registry);
    text
}

/// What the controllers report, wherever they run.
pub(crate) struct ControllerMetrics {
    running: Gauge,
    queue_depth: Family<ControllerLabels, Gauge>,
    reconcile_durations: HistogramFamily<ControllerLabels>,
    reconcile_errors: Family<ControllerLabels, Counter>,
}

impl ControllerMetrics {
    /// The controllers' metrics, registered in `registry`.
    pub(crate) fn register(registry: &mut Registry) -> ControllerMetrics {
        let running = Gauge::default();
        registry.register(
            "faros_controllers_running",
            "1 while this process's controllers run (they wait while another replica leads)",
            running.clone(),
        );
        let queue_depth = Family::default();
        registry.register(
            "faros_controller_queue_depth",
            "Objects waiting in a controller's queue",
            queue_depth.clone(),
        );
        let reconcile_durations: HistogramFamily<ControllerLabels> = Family::new_with_constructor(reconcile_histogram);
        registry.register_with_unit(
            "faros_controller_reconcile_duration",
            "Time of one reconcile",
            Unit::Seconds,
            reconcile_durations.clone(),
        );
        let reconcile_errors = Family::default();
        registry.register(
            "faros_controller_reconcile_errors",
            "Reconciles that failed (they are retried with a backoff)",
            reconcile_errors.clone(),
        );
        ControllerMetrics {
            running,
            queue_depth,
            reconcile_durations,
            reconcile_errors,
        }
    }

    pub(crate) fn running(&self, running: bool) {
        self.running.set(i64::from(running));
    }

    pub(crate) fn queue_depth(&self, controller: &'static str, depth: usize) {
        self.queue_depth
            .get_or_create(&ControllerLabels { controller })
            .set(depth as i64);
    }

    pub(crate) fn reconciled(&self, controller: &'static str, took: Duration, failed: bool) {
        let labels = ControllerLabels { controller };
        self.reconcile_durations
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        if failed {
            self.reconcile_errors.get_or_create(&labels).inc();
        }
    }
}

/// The in-process backend reports its commits here.
impl CommitObserver for Metrics {
    fn commit(&self, commit: &Commit) {
        if commit.failed {
            self.commit_failures.inc();
            return;
        }
        self.commit_durations.observe(commit.duration.as_secs_f64());
        self.write_group_sizes.observe(commit.writes as f64);
        if let Some(sync) = commit.sync {
            self.fsync_durations.observe(sync.as_secs_f64());
        }
    }
}

/// The server's connections. An HTTP/1.1 connection is idle while it waits for its client's
/// next request without hyper's buffers; an HTTP/2 one is always active.
#[derive(Clone)]
pub(crate) struct ConnectionGauges {
    http1_active: Gauge,
    http1_idle: Gauge,
    http2_active: Gauge,
}

impl ConnectionGauges {
    pub(crate) fn http1_active(&self) -> GaugeGuard {
        GaugeGuard::inc(self.http1_active.clone())
    }

    pub(crate) fn http1_idle(&self) -> GaugeGuard {
        GaugeGuard::inc(self.http1_idle.clone())
    }

    pub(crate) fn http2_active(&self) -> GaugeGuard {
        GaugeGuard::inc(self.http2_active.clone())
    }

    /// HTTP/1.1 connections active and idle.
    #[cfg(test)]
    pub(crate) fn http1(&self) -> (i64, i64) {
        (self.http1_active.get(), self.http1_idle.get())
    }

    /// HTTP/2 connections open.
    #[cfg(test)]
    pub(crate) fn http2(&self) -> i64 {
        self.http2_active.get()
    }
}

/// Holds a gauge one higher until dropped.
pub(crate) struct GaugeGuard(Gauge);

impl GaugeGuard {
    fn inc(gauge: Gauge) -> GaugeGuard {
        gauge.inc();
        GaugeGuard(gauge)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// kube-apiserver's labels for a request, from what routing learned of it.
fn request_labels(record: &Record, content_type: Option<&str>) -> RequestLabels {
    let resource_request = !record.resource.is_empty();
    // kube-apiserver's scope: one object (or a create), a namespace, a whole cluster, or
    // nothing for a path that is not a resource.
    let scope = if !resource_request {
        ""
    } else if !record.name.is_empty() || record.verb == "create" {
        "resource"
    } else if !record.namespace.is_empty() {
        "namespace"
    } else {
        "cluster"
    };
    RequestLabels {
        verb: reported_verb(record, content_type),
        group: record.group.clone(),
        version: record.version.clone(),
        // A resource bound from an APIExport may be named with its export's identity.
        resource: record.resource.split(':').next().unwrap_or_default().to_string(),
        subresource: record.subresource.clone(),
        scope,
        component: "apiserver",
    }
}

/// The verb as kube-apiserver's metrics report it: LIST and WATCH for collection reads, APPLY
/// for server-side apply, CONNECT for sessions, else the HTTP method.
fn reported_verb(record: &Record, content_type: Option<&str>) -> &'static str {
    if CONNECT_SUBRESOURCES.contains(&record.subresource.as_str()) {
        return "CONNECT";
    }
    match record.verb.as_str() {
        "get" if !record.resource.is_empty() => "GET",
        "list" => "LIST",
        "watch" => "WATCH",
        "create" => "POST",
        "update" => "PUT",
        "patch" if content_type.is_some_and(|t| t.starts_with("application/apply-patch")) => "APPLY",
        "patch" => "PATCH",
        "delete" => "DELETE",
        "deletecollection" => "DELETECOLLECTION",
        _ => match record.method.as_str() {
            "GET" | "HEAD" => "GET",
            "POST" => "POST",
            "PUT" => "PUT",
            "PATCH" => "PATCH",
            "DELETE" => "DELETE",
            "OPTIONS" => "OPTIONS",
            _ => "OTHER",
        },
    }
}

/// `resource.group` (or `resource` in the core group) as kube-apiserver labels stored
/// objects; a resource bound from an APIExport is stored as `<resource>:<identity>`.
fn resource_label(group: &str, resource: &str) -> String {
    let resource = resource.split(':').next().unwrap_or(resource);
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

/// Objects in the cache by resource (resources bound under several identities count as one).
fn count_objects(cache: &Cache) -> BTreeMap<String, i64> {
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    for (group, resource, count) in cache.count_by_resource() {
        *counts.entry(resource_label(&group, &resource)).or_default() += count as i64;
    }
    counts
}

/// Agents in every workspace by the status of their `Ready` condition, decoding only those
/// written since the scrape `seen` remembers.
fn count_agents(hub: &Hub, seen: &mut ReadySeen) -> [(&'static str, i64); 3] {
    let mut counts = [("True", 0), ("False", 0), ("Unknown", 0)];
    let Some(kind) = hub
        .catalog
        .lookup_wildcard(faros_api::EDGE_GROUP, faros_api::EDGE_VERSION, "agents")
    else {
        return counts;
    };
    // Taken as they are, then read outside the cache's lock.
    let (agents, _, _) = hub.cache.list(kind.storage_prefix().as_str(), None, 0, |_| true);
    for (count, tallied) in counts.iter_mut().zip(seen.tally(&agents)) {
        count.1 = tallied;
    }
    counts
}

impl ReadySeen {
    /// How many of `agents` (in key order) count as True, False and Unknown; remembers them
    /// for the next tally.
    fn tally(&mut self, agents: &[Arc<faros_storage::Object>]) -> [i64; 3] {
        let mut counts = [0; 3];
        let mut previous = std::mem::take(&mut self.agents).into_iter().peekable();
        let mut next = Vec::with_capacity(agents.len());
        for agent in agents {
            let same = match previous.peek() {
                // The Agent the last tally read, written since or not (the cache keeps a
                // key's allocation across its writes): neither key need be read.
                Some(p) if Arc::ptr_eq(&p.key, &agent.key) => previous.next(),
                _ => {
                    // Entries before this key are of Agents since deleted.
                    while previous.next_if(|p| *p.key < *agent.key).is_some() {}
                    previous.next_if(|p| p.key == agent.key)
                }
            };
            let slot = match same {
                Some(p) if p.revision == agent.mod_revision => p.slot,
                _ => ready_slot(agent),
            };
            counts[slot] += 1;
            next.push(Seen {
                key: agent.key.clone(),
                revision: agent.mod_revision,
                slot,
            });
        }
        self.agents = next;
        counts
    }
}

/// Where an Agent counts in `faros_agents`: True, False, or Unknown (also without `Ready`).
fn ready_slot(agent: &faros_storage::Object) -> usize {
    match crate::apiserver::connected::condition_status(agent, faros_api::edge::reasons::READY).as_deref() {
        Some("True") => 0,
        Some("False") => 1,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(key: &Arc<str>, revision: u64, ready: &str) -> Arc<faros_storage::Object> {
        let value = serde_json::json!({
            "metadata": {"name": "a"},
            "status": {"conditions": [{"type": "Ready", "status": ready}]},
        });
        let mut object = faros_storage::Object::from_stored(&faros_storage::KeyValue {
            key: key.to_string(),
            value: serde_json::to_vec(&value).unwrap().into(),
            create_revision: 1,
            mod_revision: revision,
        })
        .unwrap();
        // As the cache does: one key allocation across an object's writes.
        object.key = key.clone();
        Arc::new(object)
    }

    #[test]
    fn agents_tallied_across_writes_creations_and_deletions() {
        let key = |name: &str| -> Arc<str> { Arc::from(format!("/edge.faros.sh/agents/c/default/{name}")) };
        let (b, d, f) = (key("b"), key("d"), key("f"));
        let mut seen = ReadySeen::default();
        let first = [agent(&b, 2, "True"), agent(&d, 3, "True"), agent(&f, 4, "False")];
        assert_eq!(seen.tally(&first), [2, 1, 0]);
        // At the revisions it read, an Agent is not read again: what it answered holds.
        let same_revisions = [agent(&b, 2, "False"), agent(&d, 3, "False"), agent(&f, 4, "False")];
        assert_eq!(seen.tally(&same_revisions), [2, 1, 0]);
        // "d" written (Unknown), "f" deleted, "a", "c" and "g" created around what stays, and
        // "b" deleted and created again under a new allocation of its key.
        let b2 = key("b");
        let second = [
            agent(&key("a"), 5, "Unknown"),
            agent(&b2, 6, "False"),
            agent(&key("c"), 7, "True"),
            agent(&d, 8, "Unknown"),
            agent(&key("g"), 9, "True"),
        ];
        assert_eq!(seen.tally(&second), [2, 1, 2]);
        // Everything gone.
        assert_eq!(seen.tally(&[]), [0, 0, 0]);
        assert!(seen.agents.is_empty());
    }

    fn record(method: &str, verb: &str, resource: &str, subresource: &str, namespace: &str, name: &str) -> Record {
        Record {
            method: method.into(),
            verb: verb.into(),
            resource: resource.into(),
            subresource: subresource.into(),
            namespace: namespace.into(),
            name: name.into(),
            ..Record::default()
        }
    }

    #[test]
    fn verbs_and_scopes_as_kube_apiserver_reports_them() {
        let cases = [
            (
                record("GET", "list", "configmaps", "", "default", ""),
                None,
                ("LIST", "namespace"),
            ),
            (
                record("GET", "list", "namespaces", "", "", ""),
                None,
                ("LIST", "cluster"),
            ),
            (
                record("GET", "get", "configmaps", "", "default", "a"),
                None,
                ("GET", "resource"),
            ),
            (
                record("GET", "watch", "configmaps", "", "", ""),
                None,
                ("WATCH", "cluster"),
            ),
            (
                record("POST", "create", "configmaps", "", "default", ""),
                None,
                ("POST", "resource"),
            ),
            (
                record("PUT", "update", "agents", "status", "default", "a"),
                None,
                ("PUT", "resource"),
            ),
            (
                record("PATCH", "patch", "configmaps", "", "default", "a"),
                Some("application/apply-patch+yaml"),
                ("APPLY", "resource"),
            ),
            (
                record("PATCH", "patch", "configmaps", "", "default", "a"),
                Some("application/merge-patch+json"),
                ("PATCH", "resource"),
            ),
            (
                record("DELETE", "deletecollection", "configmaps", "", "default", ""),
                None,
                ("DELETECOLLECTION", "namespace"),
            ),
            (
                record("POST", "create", "pods", "exec", "default", "p"),
                None,
                ("CONNECT", "resource"),
            ),
            (
                record("GET", "get", "agents", "proxy", "default", "a"),
                None,
                ("CONNECT", "resource"),
            ),
            (record("GET", "get", "", "", "", ""), None, ("GET", "")),
            (record("GET", "", "", "", "", ""), None, ("GET", "")),
        ];
        for (record, content_type, expected) in cases {
            let labels = request_labels(&record, content_type);
            assert_eq!((labels.verb, labels.scope), expected, "{record:?}");
        }
    }

    #[test]
    fn stored_resources_are_labelled_without_identity() {
        assert_eq!(resource_label("", "configmaps"), "configmaps");
        assert_eq!(resource_label("edge.faros.sh", "agents:abc123"), "agents.edge.faros.sh");
    }

    #[test]
    fn the_text_format_carries_kube_apiserver_names() {
        let metrics = Metrics::new();
        let record = record("GET", "list", "configmaps", "", "default", "");
        drop(metrics.request(&record, None, 200, Duration::from_millis(3)));
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &metrics.registry).unwrap();
        assert!(
            text.contains(r#"apiserver_request_total{verb="LIST",group="",version="",resource="configmaps",subresource="",scope="namespace",component="apiserver",code="200"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("# TYPE apiserver_request_duration_seconds histogram"),
            "{text}"
        );
        assert!(!text.contains("# EOF"), "not OpenMetrics: {text}");
    }
}
