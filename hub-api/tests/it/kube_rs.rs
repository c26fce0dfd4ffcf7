//! The hub driven by kube-rs: the runtime watcher on a custom resource (list-watch and
//! streaming lists) across graceful restarts and crashes, server-side apply with field
//! managers, list pagination, and the status subresource.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::common::{HUB, TestHub, install_widget_crd};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, watcher as watch_stream};
use kube::{CustomResource, ResourceExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "example.faros.sh",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus",
    schema = "disabled"
)]
pub struct WidgetSpec {
    pub size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct WidgetStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Value>,
}

fn widget(name: &str, size: i64) -> Widget {
    Widget::new(
        name,
        WidgetSpec {
            size,
            color: None,
            tags: None,
        },
    )
}

fn size_patch(size: i64) -> Patch<Value> {
    Patch::Merge(json!({"spec": {"size": size}}))
}

fn describe(event: &Event<Widget>) -> String {
    let obj = |w: &Widget| {
        format!(
            "{} size={} rv={}",
            w.name_any(),
            w.spec.size,
            w.resource_version().unwrap_or_default()
        )
    };
    match event {
        Event::Apply(w) => format!("Apply({})", obj(w)),
        Event::Delete(w) => format!("Delete({})", obj(w)),
        Event::Init => "Init".into(),
        Event::InitApply(w) => format!("InitApply({})", obj(w)),
        Event::InitDone => "InitDone".into(),
    }
}

/// Follows a kube-runtime watcher (with the default backoff, as a controller would run it)
/// and keeps a store the way a reflector does.
struct Observer {
    rx: mpsc::UnboundedReceiver<Result<Event<Widget>, String>>,
    task: tokio::task::JoinHandle<()>,
    store: BTreeMap<String, Widget>,
    buffer: Option<BTreeMap<String, Widget>>,
    /// How many times the watcher (re)started with a full list.
    inits: usize,
    log: Vec<String>,
}

impl Observer {
    fn start(api: Api<Widget>, config: watcher::Config) -> Observer {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut stream = watch_stream(api, config).default_backoff().boxed();
            while let Some(item) = stream.next().await {
                if tx.send(item.map_err(|e| e.to_string())).is_err() {
                    break;
                }
            }
        });
        Observer {
            rx,
            task,
            store: BTreeMap::new(),
            buffer: None,
            inits: 0,
            log: Vec::new(),
        }
    }

    fn apply(&mut self, event: &Event<Widget>) {
        match event {
            Event::Init => {
                self.inits += 1;
                self.buffer = Some(BTreeMap::new());
            }
            Event::InitApply(w) => {
                self.buffer
                    .get_or_insert_with(BTreeMap::new)
                    .insert(w.name_any(), w.clone());
            }
            Event::InitDone => self.store = self.buffer.take().unwrap_or_default(),
            Event::Apply(w) => {
                self.store.insert(w.name_any(), w.clone());
            }
            Event::Delete(w) => {
                self.store.remove(&w.name_any());
            }
        }
    }

    /// Consumes events until `done` accepts one (checked after the store is updated).
    async fn wait(&mut self, what: &str, mut done: impl FnMut(&Observer, &Event<Widget>) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
        loop {
            let item = match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(item)) => item,
                Ok(None) => panic!(
                    "the watcher stream ended while waiting for {what}; log: {:#?}",
                    self.log
                ),
                Err(_) => panic!(
                    "timed out waiting for {what}; store: {:?}; log (last 40): {:#?}",
                    self.store.keys().collect::<Vec<_>>(),
                    &self.log[self.log.len().saturating_sub(40)..]
                ),
            };
            match item {
                Ok(event) => {
                    self.log.push(describe(&event));
                    self.apply(&event);
                    if done(self, &event) {
                        return;
                    }
                }
                Err(e) => self.log.push(format!("error: {e}")),
            }
        }
    }

    /// Waits for `Apply` of `name` with the given size.
    async fn wait_apply(&mut self, name: &str, size: i64) {
        self.wait(
            &format!("Apply({name} size={size})"),
            |_, e| matches!(e, Event::Apply(w) if w.name_any() == name && w.spec.size == size),
        )
        .await;
    }

    async fn wait_delete(&mut self, name: &str) {
        self.wait(
            &format!("Delete({name})"),
            |_, e| matches!(e, Event::Delete(w) if w.name_any() == name),
        )
        .await;
        assert!(!self.store.contains_key(name));
    }

    /// Waits until the store holds exactly `expected` (name, size) pairs.
    async fn wait_store(&mut self, expected: &[(&str, i64)]) {
        let want: BTreeMap<String, i64> = expected.iter().map(|(n, s)| (n.to_string(), *s)).collect();
        let have =
            |o: &Observer| -> BTreeMap<String, i64> { o.store.iter().map(|(n, w)| (n.clone(), w.spec.size)).collect() };
        if have(self) == want {
            return;
        }
        self.wait(&format!("the store to hold {want:?}"), |o, _| have(o) == want)
            .await;
    }

    fn names(&self) -> BTreeSet<String> {
        self.store.keys().cloned().collect()
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn names_on_server(api: &Api<Widget>) -> BTreeSet<String> {
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect()
}

/// Moves the hub's global revision past the watcher's: the watcher's last resourceVersion
/// is then older than anything a restarted hub remembers, so resuming it must get 410 and
/// the watcher must relist.
async fn write_elsewhere(client: &kube::Client, name: &str) {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some(name.into());
    cms.create(&PostParams::default(), &cm).await.unwrap();
}

async fn watcher_survives_restarts(config: watcher::Config) {
    let mut hub = TestHub::start(HUB);
    let client = hub.client().await;
    install_widget_crd(&client).await;
    let api: Api<Widget> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();
    api.create(&pp, &widget("pre", 1)).await.unwrap();

    let mut obs = Observer::start(api.clone(), config);
    obs.wait("the initial list", |_, e| matches!(e, Event::InitDone)).await;
    assert_eq!(obs.names(), BTreeSet::from(["pre".to_string()]), "{:#?}", obs.log);
    assert_eq!(obs.store["pre"].spec.color.as_deref(), Some("blue"), "schema default");

    // Creates, updates and deletes arrive as Apply / Delete.
    api.create(&pp, &widget("w1", 1)).await.unwrap();
    obs.wait_apply("w1", 1).await;
    api.patch("w1", &PatchParams::default(), &size_patch(2)).await.unwrap();
    obs.wait_apply("w1", 2).await;
    api.delete("w1", &DeleteParams::default()).await.unwrap();
    obs.wait_delete("w1").await;

    // Graceful restart: the watch ends, resuming from the old resourceVersion answers 410,
    // the watcher relists and then follows new changes.
    write_elsewhere(&client, "before-restart").await;
    let inits = obs.inits;
    tokio::task::block_in_place(|| hub.restart());
    let client = hub.client().await;
    let api: Api<Widget> = Api::namespaced(client.clone(), "default");
    // A deletion the watcher can only learn about from the relist.
    api.delete("pre", &DeleteParams::default()).await.unwrap();
    api.create(&pp, &widget("w2", 3)).await.unwrap();
    // w2 arrives as Apply or in the relist, depending on timing; the store converges.
    obs.wait_store(&[("w2", 3)]).await;
    api.patch("w2", &PatchParams::default(), &size_patch(4)).await.unwrap();
    obs.wait_apply("w2", 4).await;
    assert!(
        obs.inits > inits,
        "the watcher did not relist after the restart: {:#?}",
        obs.log
    );
    assert_eq!(obs.names(), names_on_server(&api).await, "{:#?}", obs.log);
    assert_eq!(obs.names(), BTreeSet::from(["w2".to_string()]));

    // kill -9: the same again.
    write_elsewhere(&client, "before-crash").await;
    let inits = obs.inits;
    tokio::task::block_in_place(|| hub.crash_and_restart());
    let client = hub.client().await;
    let api: Api<Widget> = Api::namespaced(client.clone(), "default");
    api.create(&pp, &widget("w3", 5)).await.unwrap();
    obs.wait_store(&[("w2", 4), ("w3", 5)]).await;
    api.delete("w2", &DeleteParams::default()).await.unwrap();
    obs.wait_delete("w2").await;
    assert!(
        obs.inits > inits,
        "the watcher did not relist after the crash: {:#?}",
        obs.log
    );
    assert_eq!(obs.names(), names_on_server(&api).await, "{:#?}", obs.log);
    assert_eq!(obs.names(), BTreeSet::from(["w3".to_string()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_list_watch_survives_restart_and_crash() {
    watcher_survives_restarts(watcher::Config::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_streaming_list_survives_restart_and_crash() {
    watcher_survives_restarts(watcher::Config::default().streaming_lists()).await;
}

fn api_error(result: Result<impl std::fmt::Debug, kube::Error>) -> Box<kube::core::Status> {
    match result {
        Err(kube::Error::Api(status)) => status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// managedFields as (manager, operation, fieldsV1 as JSON text), in order.
fn managed(w: &Widget) -> Vec<(String, String, String)> {
    w.managed_fields()
        .iter()
        .map(|e| {
            (
                e.manager.clone().unwrap_or_default(),
                e.operation.clone().unwrap_or_default(),
                serde_json::to_string(&e.fields_v1.as_ref().map(|f| &f.0)).unwrap(),
            )
        })
        .collect()
}

/// Whether `manager`'s entry with `operation` lists the field (e.g. `f:size`).
fn owns(w: &Widget, manager: &str, operation: &str, field: &str) -> bool {
    managed(w)
        .iter()
        .any(|(m, op, fields)| m == manager && op == operation && fields.contains(&format!("\"{field}\"")))
}

#[tokio::test]
async fn server_side_apply_with_field_managers() {
    let hub = TestHub::start(HUB);
    let client = hub.client().await;
    install_widget_crd(&client).await;
    let api: Api<Widget> = Api::namespaced(client, "default");
    let a = PatchParams::apply("manager-a");
    let b = PatchParams::apply("manager-b");
    let config = |size: i64, color: &str| {
        json!({
            "apiVersion": "example.faros.sh/v1",
            "kind": "Widget",
            "metadata": {"name": "ssa", "labels": {"owner": "a"}},
            "spec": {"size": size, "color": color},
        })
    };

    // Apply creates; the applier owns every field of its configuration.
    let created = api.patch("ssa", &a, &Patch::Apply(config(3, "red"))).await.unwrap();
    assert_eq!(created.spec.size, 3);
    assert_eq!(created.spec.color.as_deref(), Some("red"));
    assert_eq!(created.labels()["owner"], "a");
    assert_eq!(created.metadata.generation, Some(1));
    let entries = managed(&created);
    assert_eq!(entries.len(), 1, "{entries:?}");
    for field in ["f:size", "f:color", "f:owner"] {
        assert!(owns(&created, "manager-a", "Apply", field), "{field}: {entries:?}");
    }

    // Apply again with a change updates; ownership stays with the Apply entry (an apply
    // never records an Update operation for its own manager).
    let updated = api.patch("ssa", &a, &Patch::Apply(config(4, "red"))).await.unwrap();
    assert_eq!(updated.spec.size, 4);
    assert_eq!(updated.uid(), created.uid());
    assert_eq!(updated.metadata.generation, Some(2));
    assert_eq!(
        managed(&updated)
            .iter()
            .map(|(m, op, _)| (m.as_str(), op.as_str()))
            .collect::<Vec<_>>(),
        vec![("manager-a", "Apply")],
        "{:?}",
        managed(&updated)
    );
    assert!(
        owns(&updated, "manager-a", "Apply", "f:size"),
        "{:?}",
        managed(&updated)
    );
    // The same configuration again is a no-op.
    let same = api.patch("ssa", &a, &Patch::Apply(config(4, "red"))).await.unwrap();
    assert_eq!(same.resource_version(), updated.resource_version());

    // A second manager setting a field manager-a owns to a different value conflicts.
    let other = json!({
        "apiVersion": "example.faros.sh/v1",
        "kind": "Widget",
        "metadata": {"name": "ssa"},
        "spec": {"size": 7},
    });
    let status = api_error(api.patch("ssa", &b, &Patch::Apply(other.clone())).await);
    assert_eq!(status.code, 409, "{status:?}");
    assert_eq!(status.reason, "Conflict", "{status:?}");
    assert!(
        status.message.contains("manager-a") && status.message.contains("spec.size"),
        "the conflict names the owner and the field: {status:?}"
    );
    assert_eq!(api.get("ssa").await.unwrap().spec.size, 4, "a conflict changes nothing");

    // Agreeing on the value is not a conflict: both then own it.
    let shared = json!({
        "apiVersion": "example.faros.sh/v1",
        "kind": "Widget",
        "metadata": {"name": "ssa"},
        "spec": {"size": 4, "tags": ["x"]},
    });
    let both = api.patch("ssa", &b, &Patch::Apply(shared)).await.unwrap();
    assert_eq!(both.spec.tags, Some(vec!["x".to_string()]));
    assert!(owns(&both, "manager-b", "Apply", "f:size"), "{:?}", managed(&both));
    assert!(owns(&both, "manager-b", "Apply", "f:tags"), "{:?}", managed(&both));
    assert!(owns(&both, "manager-a", "Apply", "f:size"), "{:?}", managed(&both));

    // force takes the field over.
    let forced = api
        .patch("ssa", &b.clone().force(), &Patch::Apply(other))
        .await
        .unwrap();
    assert_eq!(forced.spec.size, 7);
    assert_eq!(forced.spec.color.as_deref(), Some("red"), "manager-a's color stays");
    let entries = managed(&forced);
    assert!(owns(&forced, "manager-b", "Apply", "f:size"), "{entries:?}");
    assert!(!owns(&forced, "manager-a", "Apply", "f:size"), "{entries:?}");
    assert!(owns(&forced, "manager-a", "Apply", "f:color"), "{entries:?}");
    // manager-b no longer applies tags, and nobody else owns them: they are removed.
    assert_eq!(forced.spec.tags, None, "{entries:?}");

    // manager-a, no longer owning size, gets a conflict when it applies its old value.
    let status = api_error(api.patch("ssa", &a, &Patch::Apply(config(4, "red"))).await);
    assert_eq!(status.code, 409, "{status:?}");

    // Apply without a field manager is refused.
    let status = api_error(
        api.patch("ssa", &PatchParams::default(), &Patch::Apply(config(4, "red")))
            .await,
    );
    assert_eq!(status.code, 400, "{status:?}");
}

#[tokio::test]
async fn list_pagination_with_limit_and_continue() {
    let hub = TestHub::start(HUB);
    let client = hub.client().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut ns = Namespace::default();
    ns.metadata.name = Some("paging".into());
    namespaces.create(&PostParams::default(), &ns).await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "paging");
    let names = ["cm-a", "cm-b", "cm-c", "cm-d", "cm-e"];
    for name in names {
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some(name.into());
        cm.data = Some(BTreeMap::from([("k".to_string(), name.to_string())]));
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    // Something in another namespace that must not leak into the pages.
    write_elsewhere(&client, "cm-zz-default").await;

    let mut pages = Vec::new();
    let mut params = ListParams::default().limit(2);
    loop {
        let page = cms.list(&params).await.unwrap();
        assert!(page.items.len() <= 2, "a page is at most `limit` long");
        assert!(
            page.metadata
                .resource_version
                .as_deref()
                .is_some_and(|rv| !rv.is_empty())
        );
        pages.push(page.items.iter().map(ResourceExt::name_any).collect::<Vec<_>>());
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = ListParams::default().limit(2).continue_token(&token),
            None => break,
        }
        assert!(pages.len() < 10, "pagination does not end: {pages:?}");
    }
    assert_eq!(
        pages,
        vec![vec!["cm-a", "cm-b"], vec!["cm-c", "cm-d"], vec!["cm-e"]],
        "pages in name order, each object exactly once"
    );

    // A limit that divides the collection exactly still ends without an empty page
    // carrying a continue token that leads nowhere.
    let all = cms.list(&ListParams::default().limit(5)).await.unwrap();
    assert_eq!(all.items.len(), 5);
    assert!(all.metadata.continue_.unwrap_or_default().is_empty());

    // Across namespaces too.
    let everything: Api<ConfigMap> = Api::all(client.clone());
    let first = everything.list(&ListParams::default().limit(1)).await.unwrap();
    assert_eq!(first.items.len(), 1);
    assert!(first.metadata.continue_.is_some_and(|c| !c.is_empty()));

    // A garbage continue token is a 400, not a crash.
    let status = api_error(
        cms.list(&ListParams::default().limit(2).continue_token("not-a-token"))
            .await,
    );
    assert_eq!(status.code, 400, "{status:?}");
}

/// Kubernetes serves every page of a paginated list from the snapshot of the first page:
/// the continued pages carry the first page's resourceVersion, and objects created or
/// deleted after the first page do not show up in (or vanish from) later pages.
#[tokio::test]
async fn continued_pages_come_from_the_first_pages_snapshot() {
    let hub = TestHub::start(HUB);
    let client = hub.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let create = |name: &'static str| {
        let cms = cms.clone();
        async move {
            let mut cm = ConfigMap::default();
            cm.metadata.name = Some(name.into());
            cms.create(&PostParams::default(), &cm).await.unwrap();
        }
    };
    for name in ["p-a", "p-b", "p-d", "p-e"] {
        create(name).await;
    }
    let first = cms.list(&ListParams::default().limit(2)).await.unwrap();
    let names: Vec<String> = first.items.iter().map(ResourceExt::name_any).collect();
    assert_eq!(names, ["p-a", "p-b"]);
    let token = first.metadata.continue_.clone().expect("a continue token");
    // Changes after the first page: one new object after the page boundary, one deleted.
    create("p-c").await;
    cms.delete("p-e", &DeleteParams::default()).await.unwrap();
    // Either the page comes from the first page's snapshot, or the server says it can no
    // longer serve that snapshot (410 Expired), as kube-apiserver does for old tokens.
    match cms.list(&ListParams::default().limit(10).continue_token(&token)).await {
        Ok(second) => {
            let names: Vec<String> = second.items.iter().map(ResourceExt::name_any).collect();
            assert_eq!(
                (second.metadata.resource_version, names),
                (
                    first.metadata.resource_version,
                    vec!["p-d".to_string(), "p-e".to_string()]
                ),
                "a continued page must come from the first page's snapshot (its resourceVersion, \
                 without p-c created and with p-e deleted after the first page), or be 410 Expired"
            );
        }
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 410, "{status:?}"),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn status_subresource_and_generation() {
    let hub = TestHub::start(HUB);
    let client = hub.client().await;
    install_widget_crd(&client).await;
    let api: Api<Widget> = Api::namespaced(client, "default");

    // Status in a create is dropped: the status subresource owns it.
    let mut w = widget("st", 2);
    w.status = Some(WidgetStatus {
        conditions: vec![json!({"type": "Ready", "status": "True"})],
    });
    let created = api.create(&PostParams::default(), &w).await.unwrap();
    assert_eq!(created.status, None, "{created:?}");
    assert_eq!(created.metadata.generation, Some(1));

    // patch_status changes status, not spec, and does not bump the generation.
    let patched = api
        .patch_status(
            "st",
            &PatchParams::default(),
            &Patch::Merge(json!({
                "spec": {"size": 99},
                "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Built"}]},
            })),
        )
        .await
        .unwrap();
    assert_eq!(patched.spec.size, 2, "spec is ignored by the status subresource");
    let conditions = &patched.status.as_ref().expect("status set").conditions;
    assert_eq!(conditions[0]["reason"], "Built");
    assert_eq!(patched.metadata.generation, Some(1));
    let stored = api.get("st").await.unwrap();
    assert_eq!(stored.spec.size, 2);
    assert_eq!(stored.status, patched.status);
    assert_ne!(stored.resource_version(), created.resource_version());

    // A main-resource patch ignores status and bumps the generation for the spec change.
    let main = api
        .patch(
            "st",
            &PatchParams::default(),
            &Patch::Merge(json!({
                "spec": {"size": 5},
                "status": {"conditions": [{"type": "Ready", "status": "False"}]},
            })),
        )
        .await
        .unwrap();
    assert_eq!(main.spec.size, 5);
    assert_eq!(main.status, patched.status, "status is unchanged by the main resource");
    assert_eq!(main.metadata.generation, Some(2));

    // Metadata-only changes do not bump the generation.
    let labelled = api
        .patch(
            "st",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"tier": "gold"}}})),
        )
        .await
        .unwrap();
    assert_eq!(labelled.labels()["tier"], "gold");
    assert_eq!(labelled.metadata.generation, Some(2));

    // A status-only main-resource patch is a no-op.
    let noop = api
        .patch(
            "st",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": []}})),
        )
        .await
        .unwrap();
    assert_eq!(noop.status, patched.status);
    assert_eq!(noop.resource_version(), labelled.resource_version());

    // replace_status likewise keeps the spec and the generation.
    let mut current = api.get_status("st").await.unwrap();
    current.spec.size = 50;
    current.status = Some(WidgetStatus {
        conditions: vec![json!({"type": "Ready", "status": "False", "reason": "Rebuilding"})],
    });
    let replaced = api
        .replace_status("st", &PostParams::default(), &current)
        .await
        .unwrap();
    assert_eq!(replaced.spec.size, 5);
    assert_eq!(replaced.status.unwrap().conditions[0]["reason"], "Rebuilding");
    assert_eq!(replaced.metadata.generation, Some(2));

    // A second spec change bumps the generation again.
    let again = api.patch("st", &PatchParams::default(), &size_patch(6)).await.unwrap();
    assert_eq!(again.metadata.generation, Some(3));
}

#[tokio::test]
async fn metadata_only_reads_for_metadata_clients() {
    let hub = TestHub::start(HUB);
    let client = hub.client().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "meta", "labels": {"app": "x"}}, "data": {"secret-ish": "value"}
    }))
    .unwrap();
    api.create(&PostParams::default(), &cm).await.unwrap();

    // kube-rs decodes these as PartialObjectMetadata(List), as client-go's metadata client does.
    let one = api.get_metadata("meta").await.unwrap();
    let types = one.types.clone().expect("type meta");
    assert_eq!(
        (types.api_version.as_str(), types.kind.as_str()),
        ("meta.k8s.io/v1", "PartialObjectMetadata")
    );
    assert_eq!(one.labels().get("app").map(String::as_str), Some("x"));
    let list = api.list_metadata(&ListParams::default()).await.unwrap();
    let types = list.types.clone();
    assert_eq!(
        (types.api_version.as_str(), types.kind.as_str()),
        ("meta.k8s.io/v1", "PartialObjectMetadataList")
    );
    assert!(list.items.iter().any(|i| i.name_any() == "meta"));
    // Only metadata travels: the data stays behind.
    let raw = client
        .request_text(
            http::Request::get("/api/v1/namespaces/default/configmaps/meta")
                .header("accept", "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1")
                .body(Vec::new())
                .unwrap(),
        )
        .await
        .unwrap();
    let raw: Value = serde_json::from_str(&raw).unwrap();
    assert!(raw.get("data").is_none() && raw["metadata"]["name"] == "meta", "{raw}");

    // And a metadata watcher follows changes.
    let metadata: Api<kube::core::PartialObjectMeta<ConfigMap>> = Api::namespaced(client.clone(), "default");
    let mut events = watch_stream(metadata, watcher::Config::default())
        .applied_objects()
        .boxed();
    let first = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("a first event")
        .unwrap()
        .unwrap();
    assert_eq!(first.name_any(), "meta");
    api.patch(
        "meta",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "y"}}})),
    )
    .await
    .unwrap();
    let changed = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("a change")
        .unwrap()
        .unwrap();
    assert_eq!(changed.labels().get("app").map(String::as_str), Some("y"));

    // Writes answer in the representation asked for too, at the revision they wrote.
    let labelled = api
        .patch_metadata(
            "meta",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"app": "w"}}})),
        )
        .await
        .unwrap();
    let stored = api.get("meta").await.unwrap();
    assert_eq!(labelled.labels().get("app").map(String::as_str), Some("w"));
    assert_eq!(labelled.resource_version(), stored.resource_version());
    assert_eq!(labelled.metadata.managed_fields, stored.metadata.managed_fields);
    let created = client
        .request_text(
            http::Request::post("/api/v1/namespaces/default/configmaps")
                .header("accept", "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1")
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&json!({"metadata": {"name": "meta-2"}, "data": {"k": "v"}})).unwrap())
                .unwrap(),
        )
        .await
        .unwrap();
    let created: Value = serde_json::from_str(&created).unwrap();
    let stored = api.get("meta-2").await.unwrap();
    assert_eq!(created["kind"], "PartialObjectMetadata", "{created}");
    assert!(created.get("data").is_none(), "{created}");
    assert_eq!(
        created["metadata"]["resourceVersion"].as_str(),
        stored.resource_version().as_deref()
    );
    assert_eq!(created["metadata"]["uid"].as_str(), stored.uid().as_deref());
}
