//! WATCH: a chunked stream of JSON lines from the cache, filtered by selectors, with
//! synthetic initial events, bookmarks, timeouts, and 410 when a client falls too far
//! behind. Each event's JSON is encoded once and shared by all watchers that send it as is.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderValue, StatusCode, header};
use serde_json::json;
use tokio::sync::mpsc;

use super::body::Representation;
use super::query::ResourceVersionMatch;
use super::store::{ClusterSet, Ctx, Filter, Scope, ViewAccess};
use crate::registry::ResourceKind;
use crate::tenancy::ClusterScope;
use crate::tenancy::export_view::bindings_prefix;
use faros_machinery::status::{ApiError, ApiResult};
use faros_machinery::table;
use faros_storage::FeedEnded;
use faros_storage::Key;
use faros_storage::{EventKind, Object, WatchEvent, WatchStartError, encode_event, event_line};

/// How often a watch that asked for bookmarks gets one.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(15);

/// Default watch lifetime without `timeoutSeconds` (kube-apiserver uses 30–60 minutes).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// Marks the requests of an in-process client for controllers that read objects' metadata
/// alone (the garbage collector): their watches leave out updates that changed nothing in
/// the metadata besides `resourceVersion` and `managedFields`, such as every heartbeat's
/// Lease renewal. Only this process can set it (it is a request extension, not a header),
/// and bookmarks still carry the revision the cache reached, so such a watch resumes inside
/// the window as any other does.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MetadataWatch;

pub async fn serve(ctx: Ctx) -> Response {
    match start(ctx) {
        Ok(response) => response,
        Err(e) => super::response::error(e),
    }
}

struct Encoder {
    kind: Arc<ResourceKind>,
    representation: Representation,
    include: table::IncludeObject,
    sent_columns: bool,
}

impl Encoder {
    fn event(&mut self, event_type: &str, object: &Object) -> Bytes {
        let projected = self.kind.strategy.project(object);
        if self.representation == Representation::Object && projected.is_none() {
            // The common case: the cached JSON, copied once into the line.
            return event_line(event_type, object.json());
        }
        let obj = &projected.unwrap_or_else(|| object.value());
        match self.representation {
            Representation::Table => {
                let with_columns = !self.sent_columns;
                self.sent_columns = true;
                let t = self.kind.table_convertor().table(
                    std::iter::once(obj),
                    self.include,
                    json!({"resourceVersion": obj["metadata"]["resourceVersion"]}),
                    with_columns,
                    jiff::Timestamp::now(),
                );
                encode_event(event_type, &t)
            }
            Representation::Metadata => encode_event(event_type, &super::store::partial_metadata(obj)),
            Representation::Object => encode_event(event_type, obj),
        }
    }

    fn bookmark(&self, revision: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": revision.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj = json!({"kind": self.kind.kind, "apiVersion": self.kind.api_version(), "metadata": meta});
        encode_event("BOOKMARK", &obj)
    }
}

fn start(ctx: Ctx) -> ApiResult<Response> {
    let filter = Filter::for_request(&ctx)?;
    let include = table::IncludeObject::parse(ctx.query.include_object.as_deref()).map_err(ApiError::bad_request)?;
    let prefix = ctx
        .kind
        .collection_prefix(ctx.cluster.one().map(|c| c.name.as_str()), ctx.req.namespace.as_deref());
    let requested = ctx.query.revision()?;
    let send_initial = match ctx.query.send_initial_events {
        Some(true) => {
            if ctx.query.resource_version_match != Some(ResourceVersionMatch::NotOlderThan) {
                return Err(ApiError::invalid(
                    "ListOptions",
                    "meta.k8s.io",
                    "",
                    vec![faros_machinery::status::FieldError::forbidden(
                        "resourceVersionMatch",
                        "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                    )],
                ));
            }
            if !ctx.query.allow_watch_bookmarks {
                return Err(ApiError::invalid(
                    "ListOptions",
                    "meta.k8s.io",
                    "",
                    vec![faros_machinery::status::FieldError::forbidden(
                        "allowWatchBookmarks",
                        "sendInitialEvents requires setting allowWatchBookmarks to true",
                    )],
                ));
            }
            true
        }
        Some(false) => false,
        // Legacy semantics: no resourceVersion (or "0") means "start with what exists".
        None => requested.is_none(),
    };
    let cache = ctx.hub.cache.clone();
    // Through an export's view, what the watch may see depends on the bindings, which change
    // while it runs: it follows every key (bindings included). Otherwise a watch pinned to
    // one name follows that key alone (an agent watching its own Agent wakes for nothing
    // else), and any other watch its collection's prefix.
    let access = match &ctx.scope {
        Scope::Export(access) => Some(access.clone()),
        Scope::Direct => None,
    };
    let target = match filter.exact_name() {
        _ if access.is_some() => "/".to_string(),
        Some(name) if ctx.cluster != ClusterScope::All && (ctx.req.namespace.is_some() || !ctx.kind.namespaced) => {
            format!("{prefix}{name}")
        }
        _ => prefix.clone(),
    };
    if let Some(rv) = requested
        && rv > cache.revision()
    {
        return Err(ApiError::new(
            faros_machinery::status::Reason::Timeout,
            format!("Too large resource version: {rv}"),
        ));
    }
    let (mut initial, start) = if send_initial {
        let (items, revision, _) = cache.list(&prefix, None, 0, |o| filter.matches(o));
        match cache.watch(&target, Some(revision)) {
            Ok(start) => (items, start),
            Err(e) => return Ok(expired_stream(e)),
        }
    } else {
        match cache.watch(&target, requested) {
            Ok(start) => (Vec::new(), start),
            Err(e) => return Ok(expired_stream(e)),
        }
    };
    // Across clusters through a view: the clusters sharing the kind when the live feed
    // starts; binding changes after that arrive on the feed.
    let mut follow = match (&access, &ctx.cluster) {
        (Some(access), ClusterScope::All) => Follow::Across(access.clusters(&cache, Some(start.revision))),
        (Some(_), ClusterScope::One(cluster)) => Follow::One(cluster.name.to_string()),
        (None, _) => Follow::Nothing,
    };
    if let Follow::Across(set) = &follow {
        initial.retain(|o| set.admits(&o.key));
    }

    let timeout = ctx
        .query
        .timeout_seconds
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TIMEOUT);
    let bookmarks = ctx.query.allow_watch_bookmarks;
    let metadata_only = ctx.metadata_watch;
    let explicit_initial_events = ctx.query.send_initial_events == Some(true);
    let mut encoder = Encoder {
        kind: ctx.kind.clone(),
        representation: ctx.representation,
        include,
        sent_columns: false,
    };
    let mut shutdown = ctx.hub.shutdown.clone();
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let mut last_revision = start.revision;
        for object in &initial {
            if tx.send(encoder.event("ADDED", object)).await.is_err() {
                return;
            }
        }
        if explicit_initial_events && tx.send(encoder.bookmark(last_revision, true)).await.is_err() {
            return;
        }
        for event in &start.backlog {
            if !event.object.key.starts_with(prefix.as_str()) || !follow.admits(&event.object.key) {
                continue;
            }
            if let Some(bytes) = render(&mut encoder, &filter, metadata_only, event)
                && tx.send(bytes).await.is_err()
            {
                return;
            }
            last_revision = last_revision.max(event.revision);
        }
        let mut live = start.live;
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval(BOOKMARK_INTERVAL);
        ticker.tick().await;
        // Built once: every event of the feed is tested against it.
        let bindings = bindings_prefix();
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = crate::stopped(&mut shutdown) => return,
                _ = tx.closed() => return,
                _ = ticker.tick(), if bookmarks => {
                    // A bookmark carries the cache's revision, not just that of the last event
                    // sent, so a watch that saw nothing for a while resumes from a revision
                    // still in the window rather than re-listing. The cache hands every event
                    // to the feeds before it publishes the revision, so with the feed empty,
                    // this watch has passed on everything up to that revision.
                    let published = cache.revision();
                    if live.is_empty() {
                        last_revision = last_revision.max(published);
                    }
                    if tx.send(encoder.bookmark(last_revision, false)).await.is_err() {
                        return;
                    }
                }
                received = live.recv() => match received {
                    Ok(event) => {
                        if event.revision <= last_revision {
                            continue;
                        }
                        if let Some(access) = &access
                            && event.object.key.starts_with(bindings.as_str())
                        {
                            last_revision = event.revision;
                            match follow_binding(&cache, access, &mut follow, &prefix, &event, &mut encoder, &filter) {
                                Ok(lines) => {
                                    for bytes in lines {
                                        if tx.send(bytes).await.is_err() {
                                            return;
                                        }
                                    }
                                }
                                Err(ended) => {
                                    let _ = tx.send(ended).await;
                                    return;
                                }
                            }
                        }
                        if !event.object.key.starts_with(prefix.as_str()) || !follow.admits(&event.object.key) {
                            continue;
                        }
                        last_revision = event.revision;
                        if let Some(bytes) = render(&mut encoder, &filter, metadata_only, &event)
                            && tx.send(bytes).await.is_err()
                        {
                            return;
                        }
                    }
                    Err(FeedEnded::Lagged) => {
                        // The client fell further behind than the buffer: end with 410 so it
                        // re-lists, as kube-apiserver does.
                        let status = ApiError::expired("the watch fell too far behind; please restart it").to_status();
                        let _ = tx.send(encode_event("ERROR", &status)).await;
                        return;
                    }
                    Err(FeedEnded::Expired) => {
                        // The cache reloaded from storage (etcd compacted what it had to
                        // follow): the client re-lists, as after any 410.
                        let status = ApiError::expired("the watch cache was reloaded from storage; please restart the watch").to_status();
                        let _ = tx.send(encode_event("ERROR", &status)).await;
                        return;
                    }
                    Err(FeedEnded::Closed) => return,
                },
            }
        }
    });
    let stream = tokio_stream_from(rx).map(Ok::<_, std::convert::Infallible>);
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = StatusCode::OK;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, private"));
    Ok(response)
}

fn tokio_stream_from(mut rx: mpsc::Receiver<Bytes>) -> impl futures::Stream<Item = Bytes> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// A watch from a revision the hub no longer remembers: like kube-apiserver, a 200 stream
/// carrying one ERROR event with the 410 Status, which every client turns into a relist.
fn expired_stream(e: WatchStartError) -> Response {
    let status = too_old(e).to_status();
    let mut response = Response::new(Body::from(encode_event("ERROR", &status)));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn too_old(e: WatchStartError) -> ApiError {
    match e {
        WatchStartError::TooOld { oldest } => {
            ApiError::expired(format!("too old resource version: the oldest available is {oldest}"))
        }
    }
}

/// How a watch through an export's view follows the bindings deciding what it may see.
enum Follow {
    /// Not through a view.
    Nothing,
    /// Across clusters: the clusters sharing the kind now.
    Across(ClusterSet),
    /// In one cluster, which must keep sharing the kind.
    One(String),
}

impl Follow {
    fn admits(&self, key: &str) -> bool {
        match self {
            Follow::Across(set) => set.admits(key),
            Follow::Nothing | Follow::One(_) => true,
        }
    }
}

/// A binding changed in some cluster. Across clusters, when that makes the cluster start or
/// stop sharing the kind, the cluster's objects (as of the binding's revision) enter the
/// watch as ADDED or leave it as DELETED, the way objects cross a selector. In one cluster
/// that stopped sharing it, the watch ends (Err: its last line, a 403 ERROR event).
fn follow_binding(
    cache: &faros_storage::Cache,
    access: &ViewAccess,
    follow: &mut Follow,
    prefix: &str,
    event: &WatchEvent,
    encoder: &mut Encoder,
    filter: &Filter,
) -> Result<Vec<Bytes>, Bytes> {
    let cluster = Key::parse(&event.object.key).map(|k| k.cluster).unwrap_or_default();
    let set = match follow {
        Follow::Nothing => return Ok(Vec::new()),
        Follow::One(watched) if watched == cluster => {
            if access.shared_in(cache, cluster, Some(event.revision)) {
                return Ok(Vec::new());
            }
            let status =
                ApiError::forbidden("this workspace no longer shares the resource with the APIExport").to_status();
            return Err(encode_event("ERROR", &status));
        }
        Follow::One(_) => return Ok(Vec::new()),
        Follow::Across(set) => set,
    };
    let now = access.shared_in(cache, cluster, Some(event.revision));
    if now == set.clusters.contains(cluster) {
        return Ok(Vec::new());
    }
    let event_type = if now {
        set.clusters.insert(cluster.to_string());
        "ADDED"
    } else {
        set.clusters.remove(cluster);
        "DELETED"
    };
    let cluster_prefix = format!("{prefix}{cluster}/");
    let matching = |o: &faros_storage::Object| filter.matches(o);
    let objects = match cache.list_at(&cluster_prefix, None, 0, event.revision, matching) {
        Ok((objects, _, _)) => objects,
        Err(_) => cache.list(&cluster_prefix, None, 0, matching).0,
    };
    Ok(objects.iter().map(|o| encoder.event(event_type, o)).collect())
}

/// The line to send for one cache event, applying selector transitions: an object that
/// starts matching arrives as ADDED, one that stops matching as DELETED. `metadata_only`:
/// nothing for an update that left the metadata as it was (see [`MetadataWatch`]), unless
/// it moved the object into or out of the selectors (a field selector on its status).
fn render(encoder: &mut Encoder, filter: &Filter, metadata_only: bool, event: &WatchEvent) -> Option<Bytes> {
    let kind = if filter.is_everything() {
        event.kind
    } else {
        let now = filter.matches(&event.object);
        let before = event.prev.as_ref().is_some_and(|p| filter.matches(p));
        match event.kind {
            EventKind::Deleted if before => EventKind::Deleted,
            EventKind::Deleted => return None,
            _ if now && before => EventKind::Modified,
            _ if now => EventKind::Added,
            _ if before => EventKind::Deleted,
            _ => return None,
        }
    };
    if metadata_only
        && kind == EventKind::Modified
        && event
            .prev
            .as_ref()
            .is_some_and(|prev| prev.same_metadata(&event.object))
    {
        return None;
    }
    Some(encoder.event(kind.as_str(), &event.object))
}

#[cfg(test)]
mod tests {
    use http::{Method, StatusCode};
    use http_body_util::BodyExt;
    use serde_json::{Value, json};

    use crate::testing::InProcessHub;

    const ADMIN: (&str, &[&str]) = ("admin", &["system:masters"]);

    /// The next JSON line of a watch stream.
    async fn next_line<B>(body: &mut B, buffer: &mut Vec<u8>) -> Value
    where
        B: http_body::Body<Data = bytes::Bytes> + Unpin,
        B::Error: std::fmt::Debug,
    {
        loop {
            if let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                return serde_json::from_slice(&line).expect("a JSON line");
            }
            let frame = body.frame().await.expect("the watch goes on").expect("a frame");
            if let Ok(data) = frame.into_data() {
                buffer.extend_from_slice(&data);
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn bookmarks_carry_the_revision_the_cache_reached() {
        let hub = InProcessHub::start().await;
        let configmaps = "/clusters/root/api/v1/namespaces/default/configmaps";
        let (code, listed) = hub.admin(Method::GET, configmaps, None).await;
        assert_eq!(code, StatusCode::OK);
        let from = listed["metadata"]["resourceVersion"].as_str().unwrap().to_string();
        let response = crate::apiserver::send(
            &hub.hub,
            ADMIN,
            Method::GET,
            &format!("{configmaps}?watch=1&allowWatchBookmarks=true&resourceVersion={from}"),
            None,
        )
        .await
        .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let mut body = response.into_body();
        // A write this watch does not see (another namespace) moves the store on.
        let (code, created) = hub
            .admin(
                Method::POST,
                "/clusters/root/api/v1/namespaces/kube-system/configmaps",
                Some(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "elsewhere"}})),
            )
            .await;
        assert_eq!(code, StatusCode::CREATED, "{created}");
        let written: u64 = created["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let mut buffer = Vec::new();
        let bookmark = next_line(&mut body, &mut buffer).await;
        assert_eq!(bookmark["type"], "BOOKMARK", "{bookmark}");
        let at: u64 = bookmark["object"]["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(at >= written, "bookmark at {at}, the store is at {written}");
        // A watch resumed from the bookmark gets what follows, and nothing before it.
        let (code, cm) = hub
            .admin(
                Method::POST,
                configmaps,
                Some(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "here"}})),
            )
            .await;
        assert_eq!(code, StatusCode::CREATED, "{cm}");
        let added = next_line(&mut body, &mut buffer).await;
        assert_eq!(
            (added["type"].as_str(), added["object"]["metadata"]["name"].as_str()),
            (Some("ADDED"), Some("here"))
        );
    }

    #[tokio::test]
    async fn a_metadata_watch_passes_over_updates_that_keep_the_metadata() {
        let hub = InProcessHub::start().await;
        let configmaps = "/clusters/root/api/v1/namespaces/default/configmaps";
        let (code, created) = hub
            .admin(
                Method::POST,
                configmaps,
                Some(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "1"}})),
            )
            .await;
        assert_eq!(code, StatusCode::CREATED, "{created}");
        let from = created["metadata"]["resourceVersion"].as_str().unwrap();
        let watch = |client: kube::Client| {
            // A watch that ends after a while: a line that never comes fails the test.
            let path = format!("{configmaps}?watch=1&timeoutSeconds=10&resourceVersion={from}");
            async move {
                let request = http::Request::get(path).body(kube::client::Body::empty()).unwrap();
                let response = client.send(request).await.unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                response.into_body()
            }
        };
        let mut every = watch(crate::apiserver::in_process_client(hub.hub.clone(), ADMIN.0, ADMIN.1)).await;
        let mut metadata = watch(crate::apiserver::in_process_metadata_client(
            hub.hub.clone(),
            ADMIN.0,
            ADMIN.1,
        ))
        .await;
        let a = format!("{configmaps}/a");
        // Content alone, as a heartbeat's renewal; then a label.
        for patch in [json!({"data": {"k": "2"}}), json!({"metadata": {"labels": {"l": "v"}}})] {
            let (code, patched) = hub.admin(Method::PATCH, &a, Some(patch)).await;
            assert_eq!(code, StatusCode::OK, "{patched}");
        }
        let seen = |event: &Value| {
            (
                event["type"].as_str().map(str::to_string),
                event["object"]["data"]["k"].as_str().map(str::to_string),
                event["object"]["metadata"]["labels"]["l"].as_str().map(str::to_string),
            )
        };
        let modified = |k: &str, label: Option<&str>| {
            (
                Some("MODIFIED".to_string()),
                Some(k.to_string()),
                label.map(str::to_string),
            )
        };
        let (mut buffer, mut metadata_buffer) = (Vec::new(), Vec::new());
        assert_eq!(seen(&next_line(&mut every, &mut buffer).await), modified("2", None));
        assert_eq!(
            seen(&next_line(&mut every, &mut buffer).await),
            modified("2", Some("v"))
        );
        assert_eq!(
            seen(&next_line(&mut metadata, &mut metadata_buffer).await),
            modified("2", Some("v")),
            "the content-only update is left out, the label's comes"
        );

        // An update of content alone that takes the object out of a field selector is still
        // the DELETED it is to that watch.
        let events = "/clusters/root/api/v1/namespaces/default/events";
        let (code, event) = hub
            .admin(
                Method::POST,
                events,
                Some(json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"},
                    "involvedObject": {"kind": "ConfigMap", "name": "a", "namespace": "default"},
                    "reason": "Started", "message": "m", "type": "Normal"})),
            )
            .await;
        assert_eq!(code, StatusCode::CREATED, "{event}");
        let from = event["metadata"]["resourceVersion"].as_str().unwrap();
        let request = http::Request::get(format!(
            "{events}?watch=1&timeoutSeconds=10&fieldSelector=reason%3DStarted&resourceVersion={from}"
        ))
        .body(kube::client::Body::empty())
        .unwrap();
        let client = crate::apiserver::in_process_metadata_client(hub.hub.clone(), ADMIN.0, ADMIN.1);
        let mut selected = client.send(request).await.unwrap().into_body();
        let (code, patched) = hub
            .admin(
                Method::PATCH,
                &format!("{events}/e"),
                Some(json!({"reason": "Stopped"})),
            )
            .await;
        assert_eq!(code, StatusCode::OK, "{patched}");
        let left = next_line(&mut selected, &mut Vec::new()).await;
        assert_eq!(
            (left["type"].as_str(), left["object"]["reason"].as_str()),
            (Some("DELETED"), Some("Stopped"))
        );
    }
}
