//! The watch cache: every current object, decoded once, plus a bounded window of recent
//! events. GET, LIST and WATCH never touch the backend; writes go through to the backend and
//! return only once the cache has seen their revision, so a client reads its own writes.
//!
//! The cache follows its backend's changes. When the backend reports the stream lost (a
//! shared store compacted the history the cache still had to read), the cache takes a new
//! snapshot, replaces everything it holds with it, empties its event window and ends every
//! live feed with [`FeedEnded::Expired`]: watch clients get `410 Expired` and re-list, as they
//! do after falling behind. Events in the gap are never made up from a diff: a client's
//! re-list is the one way back to a consistent view, the same for every backend.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use crate::backend::{Backend, Change, KeyValue, Revision, Snapshot, StorageError, StoreEvent, WriteOp, WriteOutcome};
use crate::feeds::{Feed, FeedEnded, Feeds, follows};
use crate::key::resource_prefix;
pub use crate::object::Object;

/// How long a read waits for the cache to reach the store's current revision.
const SYNC_TIMEOUT: Duration = Duration::from_secs(10);

/// What an event costs besides the objects it refers to: its `Arc`, its place in the window.
const EVENT_OVERHEAD: usize = 96;

/// How often the window lets go of events older than its age limit when no write comes.
const TRIM_INTERVAL: Duration = Duration::from_secs(5);

/// How much history the cache keeps for watches to resume from and continued lists to read:
/// whichever limit is reached first. A watch that asks for an older revision gets `410 Gone`
/// and its client re-lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// At most this many events.
    pub events: usize,
    /// At most about this many bytes kept alive by the events alone: the objects writes
    /// replaced, deletions' last states, the events themselves.
    pub bytes: usize,
    /// No event older than this.
    pub age: Duration,
}

impl Window {
    /// A window bounded by its number of events alone.
    pub fn events(events: usize) -> Window {
        Window {
            events,
            bytes: usize::MAX,
            age: Duration::MAX,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Added,
    Modified,
    Deleted,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Added => "ADDED",
            EventKind::Modified => "MODIFIED",
            EventKind::Deleted => "DELETED",
        }
    }
}

/// One change, shared by every watcher that receives it.
#[derive(Debug)]
pub struct WatchEvent {
    pub revision: Revision,
    pub kind: EventKind,
    /// The object after the change; for a delete, its last state stamped with the
    /// deletion revision (as Kubernetes sends it).
    pub object: Arc<Object>,
    /// The object before the change, so a selector-filtered watch can tell an object
    /// that stopped matching (sent as DELETED) from one that never matched.
    pub prev: Option<Arc<Object>>,
    /// When the cache applied it, for the window's age limit.
    at: Instant,
}

impl WatchEvent {
    /// An ADDED event of an empty object.
    #[cfg(test)]
    pub(crate) fn added(key: &str, revision: Revision) -> WatchEvent {
        let object = Object::build(key.into(), b"{\"metadata\":{}}", revision, revision).expect("an object");
        WatchEvent {
            revision,
            kind: EventKind::Added,
            object: Arc::new(object),
            prev: None,
            at: Instant::now(),
        }
    }

    /// What the window is charged for keeping this event: what it alone keeps alive. The
    /// object a write made is the cache's current one until a later write replaces it, and is
    /// charged then, as that event's previous object; a deletion's last state and the object
    /// a write replaced live only in the window.
    fn size(&self) -> usize {
        let own = match self.kind {
            EventKind::Deleted => self.object.size(),
            EventKind::Added | EventKind::Modified => 0,
        };
        EVENT_OVERHEAD + own + self.prev.as_ref().map_or(0, |p| p.size())
    }

    /// `{"type":"ADDED","object":{...}}\n` around the object's shared JSON.
    pub fn line(&self) -> Bytes {
        event_line(self.kind.as_str(), self.object.json())
    }
}

/// A watch line around an object's JSON as the cache keeps it: one copy, nothing encoded.
pub fn event_line(kind: &str, json: &[u8]) -> Bytes {
    let mut line = Vec::with_capacity(json.len() + kind.len() + 24);
    line.extend_from_slice(b"{\"type\":\"");
    line.extend_from_slice(kind.as_bytes());
    line.extend_from_slice(b"\",\"object\":");
    line.extend_from_slice(json);
    line.extend_from_slice(b"}\n");
    Bytes::from(line)
}

/// A watch line around a value (a Status, a bookmark, a table row).
pub fn encode_event(kind: &str, object: &Value) -> Bytes {
    // Serialising a Value into a Vec cannot fail.
    event_line(kind, &serde_json::to_vec(object).unwrap_or_default())
}

/// The current objects: in key order for lists and their pages, and hashed for the point
/// reads that every request for one object makes. Among a fleet's keys a B-tree lookup walks
/// some twenty nodes, each a likely cache miss and a comparison of long keys that differ
/// only at their end; every heartbeat looks its Lease up for the update, for the answer and
/// as the cache applies the write.
///
/// Both indexes name a slot rather than hold the object, and a key keeps its slot while it
/// exists: a write that replaces an object (every heartbeat) finds its slot through the hash
/// index and swaps the slot's content; only creations and deletions walk the ordered index.
#[derive(Default)]
struct Objects {
    slots: Vec<Option<Arc<Object>>>,
    /// Slots left empty by deletions, taken again first.
    free: Vec<usize>,
    ordered: BTreeMap<Arc<str>, usize>,
    by_key: HashMap<Arc<str>, usize>,
    /// How many objects each resource has, by the key's `/<group>/<resource>/` prefix, so
    /// that counting them (every metrics scrape) does not walk a fleet's objects.
    per_resource: HashMap<Box<str>, usize>,
}

impl Objects {
    fn get(&self, key: &str) -> Option<&Arc<Object>> {
        self.by_key.get(key).and_then(|&slot| self.slots[slot].as_ref())
    }

    /// Keeps `object` under its key; returns the object it replaces.
    fn insert(&mut self, object: Arc<Object>) -> Option<Arc<Object>> {
        if let Some(&slot) = self.by_key.get(&*object.key) {
            return self.slots[slot].replace(object);
        }
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        };
        self.ordered.insert(object.key.clone(), slot);
        self.by_key.insert(object.key.clone(), slot);
        if let Some(prefix) = resource_prefix(&object.key) {
            match self.per_resource.get_mut(prefix) {
                Some(count) => *count += 1,
                None => {
                    self.per_resource.insert(prefix.into(), 1);
                }
            }
        }
        self.slots[slot] = Some(object);
        None
    }

    fn remove(&mut self, key: &str) -> Option<Arc<Object>> {
        let slot = self.by_key.remove(key)?;
        self.ordered.remove(key);
        self.free.push(slot);
        if let Some(prefix) = resource_prefix(key)
            && let Some(count) = self.per_resource.get_mut(prefix)
        {
            *count -= 1;
            if *count == 0 {
                self.per_resource.remove(prefix);
            }
        }
        self.slots[slot].take()
    }

    /// Objects from `lower` on, in key order.
    fn starting_at(&self, lower: Bound<&str>) -> impl Iterator<Item = (&Arc<str>, &Arc<Object>)> {
        self.ordered
            .range::<str, _>((lower, Bound::Unbounded))
            .filter_map(|(key, &slot)| Some((key, self.slots[slot].as_ref()?)))
    }

    fn len(&self) -> usize {
        self.by_key.len()
    }

    /// What they take together, by [`Object::size`].
    fn size(&self) -> usize {
        self.slots.iter().flatten().map(|o| o.size()).sum()
    }
}

impl FromIterator<Arc<Object>> for Objects {
    fn from_iter<I: IntoIterator<Item = Arc<Object>>>(objects: I) -> Objects {
        let mut all = Objects::default();
        for object in objects {
            all.insert(object);
        }
        all
    }
}

struct State {
    objects: Objects,
    /// What the current objects take together, by [`Object::size`].
    objects_bytes: usize,
    revision: Revision,
    /// Recent events, oldest first, within `limits`.
    window: VecDeque<Arc<WatchEvent>>,
    /// What the window's events are charged, together.
    window_bytes: usize,
    /// Watches may start from any revision >= this one.
    oldest_watchable: Revision,
}

pub struct Cache {
    backend: Arc<dyn Backend>,
    state: RwLock<State>,
    limits: Window,
    revision_tx: watch::Sender<Revision>,
    feeds: Feeds,
}

/// Why a watch could not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchStartError {
    /// The requested revision has left the window (`410 Gone`).
    TooOld { oldest: Revision },
}

/// A started watch: the events since the requested revision, then a live feed.
pub struct WatchStart {
    pub backlog: Vec<Arc<WatchEvent>>,
    pub live: Feed,
    /// The cache revision at the moment the watch started.
    pub revision: Revision,
}

impl Cache {
    /// Loads the backend's snapshot and keeps following its changes.
    pub async fn start(backend: Arc<dyn Backend>, limits: Window) -> Result<Arc<Cache>, StorageError> {
        let snapshot = backend.snapshot().await?;
        let objects = decode_all(snapshot.items);
        let (revision_tx, _) = watch::channel(snapshot.revision);
        let cache = Arc::new(Cache {
            backend,
            state: RwLock::new(State {
                objects_bytes: objects.size(),
                objects,
                revision: snapshot.revision,
                window: VecDeque::new(),
                window_bytes: 0,
                oldest_watchable: snapshot.revision,
            }),
            limits: Window {
                events: limits.events.max(1),
                ..limits
            },
            revision_tx,
            feeds: Feeds::default(),
        });
        tokio::spawn(follow(Arc::downgrade(&cache), snapshot.changes));
        Ok(cache)
    }

    /// Applies a batch of events, then moves the revision to `revision` if that is higher.
    fn apply(&self, batch: Vec<StoreEvent>, revision: Revision) {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        // Compared with the revision before the batch, so that several events of one
        // revision (one transaction of another writer) all apply.
        let before = state.revision;
        let now = Instant::now();
        for event in batch {
            let revision = event.revision();
            if revision <= before {
                continue;
            }
            let watch_event = match event {
                StoreEvent::Put(kv) => {
                    // The new state shares its key with the old one.
                    let key = state
                        .objects
                        .get(kv.key.as_str())
                        .map_or_else(|| Arc::from(kv.key.as_str()), |p| p.key.clone());
                    let object = match Object::build(key, &kv.value, kv.create_revision, kv.mod_revision) {
                        Ok(object) => Arc::new(object),
                        Err(e) => {
                            tracing::error!(key = %kv.key, error = %e, "skipping undecodable stored object");
                            continue;
                        }
                    };
                    let prev = state.objects.insert(object.clone());
                    state.objects_bytes += object.size();
                    state.objects_bytes -= prev.as_ref().map_or(0, |p| p.size());
                    let kind = if prev.is_some() {
                        EventKind::Modified
                    } else {
                        EventKind::Added
                    };
                    WatchEvent {
                        revision,
                        kind,
                        object,
                        prev,
                        at: now,
                    }
                }
                StoreEvent::Delete { prev, revision } => {
                    let Some(prev_object) = state.objects.remove(prev.key.as_str()) else {
                        continue;
                    };
                    state.objects_bytes -= prev_object.size();
                    WatchEvent {
                        revision,
                        kind: EventKind::Deleted,
                        object: Arc::new(prev_object.deleted_at(revision)),
                        prev: Some(prev_object),
                        at: now,
                    }
                }
            };
            let watch_event = Arc::new(watch_event);
            state.window_bytes += watch_event.size();
            state.window.push_back(watch_event.clone());
            self.trim(&mut state, now);
            // Delivered under the lock so a watch that subscribes under the same lock sees
            // each event exactly once: either in its backlog or live.
            self.feeds.deliver(&watch_event);
            state.revision = revision;
        }
        state.revision = state.revision.max(revision);
        let last = state.revision;
        drop(state);
        self.revision_tx.send_if_modified(|current| {
            if last > *current {
                *current = last;
                true
            } else {
                false
            }
        });
    }

    /// Drops the window's oldest events while it is over a limit. The newest event always
    /// stays, so a watch from the current revision can start.
    fn trim(&self, state: &mut State, now: Instant) {
        while state.window.len() > 1
            && let Some(oldest) = state.window.front()
            && (state.window.len() > self.limits.events
                || state.window_bytes > self.limits.bytes
                || now.saturating_duration_since(oldest.at) > self.limits.age)
        {
            let Some(dropped) = state.window.pop_front() else { break };
            state.window_bytes -= dropped.size();
            state.oldest_watchable = dropped.revision;
        }
    }

    /// Lets go of events past the age limit while no writes come to do it.
    fn trim_aged(&self) {
        let now = Instant::now();
        let expired = {
            let state = self.state.read().unwrap_or_else(|e| e.into_inner());
            state.window.front().is_some_and(|oldest| {
                state.window.len() > 1 && now.saturating_duration_since(oldest.at) > self.limits.age
            })
        };
        if expired {
            let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
            self.trim(&mut state, now);
        }
    }

    /// Replaces everything with a new snapshot after the backend lost its stream, and ends
    /// every live feed (see the module's documentation). Returns the snapshot's changes.
    fn replace(&self, snapshot: Snapshot) -> mpsc::UnboundedReceiver<Change> {
        let objects = decode_all(snapshot.items);
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        if snapshot.revision < state.revision {
            // A linearizable snapshot taken after the loss cannot be older than what the cache
            // saw; the revision clients were given stays where it was.
            tracing::error!(
                snapshot = snapshot.revision,
                cache = state.revision,
                "the new storage snapshot is older than the cache"
            );
        }
        state.objects_bytes = objects.size();
        state.objects = objects;
        state.window.clear();
        state.window_bytes = 0;
        state.revision = snapshot.revision;
        state.oldest_watchable = snapshot.revision;
        // Under the lock, so a watch starts either before (and is ended) or after the swap.
        self.feeds.end_all(FeedEnded::Expired);
        drop(state);
        self.revision_tx.send_if_modified(|current| {
            if snapshot.revision > *current {
                *current = snapshot.revision;
                true
            } else {
                false
            }
        });
        tracing::info!(
            revision = snapshot.revision,
            "storage reloaded; open watches were ended"
        );
        snapshot.changes
    }

    pub fn revision(&self) -> Revision {
        *self.revision_tx.borrow()
    }

    /// Waits until the cache holds every write the store acknowledged before this call,
    /// whichever process made it, and returns the cache's revision then. Reads that must be
    /// current ("most recent" GET and LIST) call this first. Free when this process is the
    /// store's only writer: its own writes are acknowledged only once the cache has them.
    pub async fn sync(&self) -> Result<Revision, StorageError> {
        if !self.backend.shared() {
            return Ok(self.revision());
        }
        let target = self.backend.current_revision().await?;
        if self.wait_for(target, SYNC_TIMEOUT).await {
            Ok(self.revision())
        } else {
            Err(StorageError::Unavailable(format!(
                "the watch cache did not reach the store's revision {target} within {}s",
                SYNC_TIMEOUT.as_secs()
            )))
        }
    }

    /// Waits until the cache has applied `revision`; false on timeout.
    pub async fn wait_for(&self, revision: Revision, timeout: Duration) -> bool {
        let mut rx = self.revision_tx.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|r| *r >= revision))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    pub fn get(&self, key: &str) -> Option<Arc<Object>> {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .objects
            .get(key)
            .cloned()
    }

    /// Objects under `prefix` in key order, after `start_after` if given, keeping those
    /// `filter` accepts, at most `limit` (0 = no limit). Returns them, the revision they are
    /// consistent with, and whether more matching objects follow.
    pub fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        mut filter: impl FnMut(&Object) -> bool,
    ) -> (Vec<Arc<Object>>, Revision, bool) {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let lower = match start_after {
            Some(key) if key.starts_with(prefix) => Bound::Excluded(key),
            _ => Bound::Included(prefix),
        };
        let mut items = Vec::new();
        let mut more = false;
        for (key, object) in state.objects.starting_at(lower) {
            if !key.starts_with(prefix) {
                break;
            }
            if !filter(object) {
                continue;
            }
            if limit > 0 && items.len() == limit {
                more = true;
                break;
            }
            items.push(object.clone());
        }
        (items, state.revision, more)
    }

    /// Like [`Cache::list`], but as the store was at `revision`: the current objects with the
    /// window's events after `revision` rolled back. This is how continued pages of a list
    /// come from the first page's snapshot. Errors when `revision` left the window.
    pub fn list_at(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        revision: Revision,
        mut filter: impl FnMut(&Object) -> bool,
    ) -> Result<(Vec<Arc<Object>>, Revision, bool), WatchStartError> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        if revision >= state.revision {
            drop(state);
            return Ok(self.list(prefix, start_after, limit, filter));
        }
        if revision < state.oldest_watchable {
            return Err(WatchStartError::TooOld {
                oldest: state.oldest_watchable,
            });
        }
        // Newest first, so the last write per key is the state just after `revision`.
        let mut rolled_back: BTreeMap<Arc<str>, Option<Arc<Object>>> = BTreeMap::new();
        for event in state.window.iter().rev().take_while(|e| e.revision > revision) {
            if event.object.key.starts_with(prefix) {
                rolled_back.insert(event.object.key.clone(), event.prev.clone());
            }
        }
        let lower = match start_after {
            Some(key) if key.starts_with(prefix) => Bound::Excluded(key),
            _ => Bound::Included(prefix),
        };
        let mut current = state
            .objects
            .starting_at(lower)
            .take_while(|(k, _)| k.starts_with(prefix))
            .peekable();
        let mut past = rolled_back.range::<str, _>((lower, Bound::Unbounded)).peekable();
        let mut items = Vec::new();
        let mut more = false;
        loop {
            // Merge the two key-ordered sequences; a rolled-back key replaces the current one.
            let next = match (current.peek(), past.peek()) {
                (None, None) => break,
                (Some((ck, _)), Some((pk, _))) if ck == pk => {
                    current.next();
                    past.next().and_then(|(_, v)| v.clone())
                }
                (Some((ck, _)), Some((pk, _))) if pk < ck => past.next().and_then(|(_, v)| v.clone()),
                (Some(_), _) => current.next().map(|(_, v)| v.clone()),
                (None, Some(_)) => past.next().and_then(|(_, v)| v.clone()),
            };
            let Some(object) = next else { continue };
            if !filter(&object) {
                continue;
            }
            if limit > 0 && items.len() == limit {
                more = true;
                break;
            }
            items.push(object);
        }
        Ok((items, revision, more))
    }

    /// Starts a watch from `from` (exclusive; `None` means "now") on the keys under `target`,
    /// a prefix ending in `/`, or on the one key `target`.
    pub fn watch(&self, target: &str, from: Option<Revision>) -> Result<WatchStart, WatchStartError> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let from = from.unwrap_or(state.revision);
        if from < state.oldest_watchable {
            return Err(WatchStartError::TooOld {
                oldest: state.oldest_watchable,
            });
        }
        let skip = state.window.partition_point(|e| e.revision <= from);
        let backlog = state
            .window
            .iter()
            .skip(skip)
            .filter(|e| follows(target, &e.object.key))
            .cloned()
            .collect();
        Ok(WatchStart {
            backlog,
            live: self.feeds.subscribe(target),
            revision: state.revision,
        })
    }

    /// Writes through to the backend and waits until the cache reflects the write.
    pub async fn write(&self, op: WriteOp) -> Result<WriteOutcome, StorageError> {
        let outcome = self.backend.write(op).await?;
        if !self.wait_for(outcome.revision, Duration::from_secs(30)).await {
            return Err(StorageError::Unavailable(
                "timed out waiting for the cache to catch up".into(),
            ));
        }
        Ok(outcome)
    }

    pub async fn compact(&self) -> Result<(), StorageError> {
        self.backend.compact().await
    }

    /// Number of objects held (for metrics and benchmarks).
    pub fn len(&self) -> usize {
        self.state.read().unwrap_or_else(|e| e.into_inner()).objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The event window: how many events it holds and what they are charged.
    pub fn window_size(&self) -> (usize, usize) {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        (state.window.len(), state.window_bytes)
    }

    /// How many objects each resource has: (group, empty for the core group; resource as
    /// stored; count), in no particular order.
    pub fn count_by_resource(&self) -> Vec<(String, String, usize)> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        state
            .objects
            .per_resource
            .iter()
            .filter_map(|(prefix, &count)| {
                let (group, resource) = crate::key::parse_resource_prefix(prefix)?;
                Some((group.to_string(), resource.to_string(), count))
            })
            .collect()
    }

    /// What the current objects take, by [`Object::size`].
    pub fn objects_size(&self) -> usize {
        self.state.read().unwrap_or_else(|e| e.into_inner()).objects_bytes
    }

    /// Number of live watch feeds.
    pub fn watch_count(&self) -> usize {
        self.feeds.len()
    }
}

/// Follows a backend's changes into the cache until either is gone; takes a new snapshot
/// whenever the backend reports its stream lost.
async fn follow(cache: Weak<Cache>, mut changes: mpsc::UnboundedReceiver<Change>) {
    let mut trim = tokio::time::interval(TRIM_INTERVAL);
    trim.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let change = tokio::select! {
            change = changes.recv() => change,
            _ = trim.tick() => {
                let Some(this) = cache.upgrade() else { return };
                this.trim_aged();
                continue;
            }
        };
        let Some(change) = change else { return };
        let Some(this) = cache.upgrade() else { return };
        match change {
            Change::Batch { events, revision } => this.apply(events, revision),
            Change::Lost { reason } => {
                tracing::warn!(%reason, "the storage change stream was lost; loading everything again");
                drop(this);
                match reload(&cache).await {
                    Some(next) => changes = next,
                    None => return,
                }
            }
        }
    }
}

/// Takes snapshots, backing off between failures, until one loads into the cache; returns
/// its changes, or None once the cache is gone.
async fn reload(cache: &Weak<Cache>) -> Option<mpsc::UnboundedReceiver<Change>> {
    let mut delay = Duration::from_millis(100);
    loop {
        let this = cache.upgrade()?;
        match this.backend.snapshot().await {
            Ok(snapshot) => return Some(this.replace(snapshot)),
            Err(e) => tracing::warn!(error = %e, "reloading storage failed; retrying"),
        }
        drop(this);
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

fn decode_all(items: Vec<KeyValue>) -> Objects {
    items
        .iter()
        .filter_map(|kv| match Object::from_stored(kv) {
            Ok(object) => Some(Arc::new(object)),
            Err(e) => {
                tracing::error!(key = %kv.key, error = %e, "skipping undecodable stored object");
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryBackend;
    use serde_json::json;

    async fn cache(window: usize) -> Arc<Cache> {
        Cache::start(Arc::new(MemoryBackend::new()), Window::events(window))
            .await
            .unwrap()
    }

    fn create(key: &str) -> WriteOp {
        WriteOp::Create {
            key: key.into(),
            value: Bytes::from(serde_json::to_vec(&json!({"metadata": {"name": key}})).unwrap()),
        }
    }

    #[tokio::test]
    async fn writes_are_visible_at_once_with_resource_version() {
        let cache = cache(100).await;
        let out = cache.write(create("/core/configmaps/root/default/a")).await.unwrap();
        let obj = cache.get("/core/configmaps/root/default/a").unwrap();
        assert_eq!(obj.mod_revision, out.revision);
        assert_eq!(obj.value()["metadata"]["resourceVersion"], out.revision.to_string());
        assert_eq!(cache.objects_size(), obj.size());
    }

    /// Point reads (hashed) and lists (in key order) see every write alike.
    #[tokio::test]
    async fn reads_by_key_and_lists_agree_after_updates_and_deletes() {
        let cache = cache(100).await;
        let key = |name: &str| format!("/core/configmaps/root/ns/{name}");
        let mut revisions = BTreeMap::new();
        for name in ["c", "a", "b"] {
            revisions.insert(name, cache.write(create(&key(name))).await.unwrap().revision);
        }
        let updated = cache
            .write(WriteOp::Update {
                key: key("b"),
                value: Bytes::from_static(br#"{"metadata":{"name":"b","labels":{"x":"y"}}}"#),
                expected: revisions["b"],
            })
            .await
            .unwrap()
            .revision;
        cache
            .write(WriteOp::Delete {
                key: key("a"),
                expected: revisions["a"],
            })
            .await
            .unwrap();
        assert!(cache.get(&key("a")).is_none());
        let b = cache.get(&key("b")).unwrap();
        assert_eq!((b.mod_revision, b.label("x")), (updated, Some("y")));
        let (all, _, more) = cache.list("/core/configmaps/", None, 0, |_| true);
        let listed: Vec<(&str, Revision)> = all.iter().map(|o| (&*o.key, o.mod_revision)).collect();
        assert_eq!(
            listed,
            vec![(key("b").as_str(), updated), (key("c").as_str(), revisions["c"])]
        );
        assert!(!more);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.objects_size(), all.iter().map(|o| o.size()).sum::<usize>());
        // A new key takes the deleted one's place in storage, and its own in key order.
        let first = cache.write(create(&key("0"))).await.unwrap().revision;
        assert_eq!(cache.get(&key("0")).map(|o| o.mod_revision), Some(first));
        assert!(cache.get(&key("a")).is_none());
        let (all, _, _) = cache.list("/core/configmaps/", None, 0, |_| true);
        let listed: Vec<&str> = all.iter().map(|o| &*o.key).collect();
        assert_eq!(listed, vec![key("0").as_str(), key("b").as_str(), key("c").as_str()]);
        assert_eq!(cache.len(), 3);
        {
            let state = cache.state.read().unwrap();
            assert_eq!((state.objects.slots.len(), state.objects.free.len()), (3, 0));
        }
        cache.write(create("/core/secrets/root/ns/s")).await.unwrap();
        // Counted by resource, and only what is an object's key.
        cache.write(create("/not/an-object")).await.unwrap();
        assert_eq!(cache.len(), 5);
        let mut counts = cache.count_by_resource();
        counts.sort();
        assert_eq!(
            counts,
            vec![
                (String::new(), "configmaps".to_string(), 3),
                (String::new(), "secrets".to_string(), 1)
            ]
        );
    }

    #[tokio::test]
    async fn list_pages_by_prefix() {
        let cache = cache(100).await;
        for name in ["a", "b", "c"] {
            cache
                .write(create(&format!("/core/configmaps/root/ns/{name}")))
                .await
                .unwrap();
        }
        cache.write(create("/core/secrets/root/ns/x")).await.unwrap();
        let (page, _, more) = cache.list("/core/configmaps/", None, 2, |_| true);
        assert_eq!(page.len(), 2);
        assert!(more);
        let (rest, _, more) = cache.list("/core/configmaps/", Some(&page[1].key), 2, |_| true);
        assert_eq!(rest.len(), 1);
        assert!(!more);
        assert_eq!(&*rest[0].key, "/core/configmaps/root/ns/c");
    }

    #[tokio::test]
    async fn lists_at_an_older_revision_roll_back_later_changes() {
        let cache = cache(100).await;
        let a = cache.write(create("/k/a")).await.unwrap().revision;
        let snapshot = cache.write(create("/k/c")).await.unwrap().revision;
        cache.write(create("/k/b")).await.unwrap();
        cache
            .write(WriteOp::Delete {
                key: "/k/a".into(),
                expected: a,
            })
            .await
            .unwrap();
        let (items, revision, _) = cache.list_at("/k/", None, 0, snapshot, |_| true).unwrap();
        let keys: Vec<&str> = items.iter().map(|o| &*o.key).collect();
        assert_eq!((keys, revision), (vec!["/k/a", "/k/c"], snapshot));
        let (now, _, _) = cache.list("/k/", None, 0, |_| true);
        assert_eq!(now.iter().map(|o| &*o.key).collect::<Vec<_>>(), vec!["/k/b", "/k/c"]);
    }

    #[tokio::test]
    async fn watch_replays_from_revision_and_expires_old_ones() {
        let cache = cache(3).await;
        let mut revs = Vec::new();
        for i in 0..5 {
            revs.push(cache.write(create(&format!("/k/{i}"))).await.unwrap().revision);
        }
        // Window holds the last three events (revisions 3, 4, 5): a watch from 2 works,
        // from 1 is too old.
        let start = cache.watch("/k/", Some(revs[1])).unwrap();
        assert_eq!(
            start.backlog.iter().map(|e| e.revision).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
        assert!(matches!(
            cache.watch("/k/", Some(revs[0])),
            Err(WatchStartError::TooOld { .. })
        ));
        let mut live = cache.watch("/k/", None).unwrap().live;
        let del = cache
            .write(WriteOp::Delete {
                key: "/k/0".into(),
                expected: revs[0],
            })
            .await
            .unwrap();
        let event = live.recv().await.unwrap();
        assert_eq!(event.kind, EventKind::Deleted);
        assert_eq!(
            event.object.value()["metadata"]["resourceVersion"],
            del.revision.to_string()
        );
        assert!(event.line().starts_with(b"{\"type\":\"DELETED\""));
    }

    fn update(key: &str, expected: Revision, n: usize) -> WriteOp {
        WriteOp::Update {
            key: key.into(),
            value: Bytes::from(serde_json::to_vec(&json!({"metadata": {"name": key}, "data": {"n": n}})).unwrap()),
            expected,
        }
    }

    #[tokio::test]
    async fn the_window_keeps_at_most_its_bytes() {
        // What one update is charged: the object it replaced and the event.
        let probe = cache(100).await;
        let rev = probe.write(create("/k/a")).await.unwrap().revision;
        let created = probe.window_size().1;
        probe.write(update("/k/a", rev, 0)).await.unwrap();
        let one = probe.window_size().1 - created;
        assert!(
            one > created,
            "an update costs its replaced object, a create almost nothing"
        );

        let limits = Window {
            events: 100,
            bytes: 3 * one + one / 2,
            age: Duration::MAX,
        };
        let cache = Cache::start(Arc::new(MemoryBackend::new()), limits).await.unwrap();
        let mut revisions = vec![cache.write(create("/k/a")).await.unwrap().revision];
        for n in 0..10 {
            let last = *revisions.last().unwrap();
            revisions.push(cache.write(update("/k/a", last, n)).await.unwrap().revision);
        }
        let (events, bytes) = cache.window_size();
        assert_eq!(events, 3);
        assert!(bytes <= limits.bytes, "{bytes} > {}", limits.bytes);
        assert_eq!(cache.watch("/k/", Some(revisions[7])).unwrap().backlog.len(), 3);
        assert!(matches!(
            cache.watch("/k/", Some(revisions[6])),
            Err(WatchStartError::TooOld { .. })
        ));
        // Creates keep nothing alive but themselves: ten fit where three updates did.
        for i in 0..10 {
            cache.write(create(&format!("/k/new-{i}"))).await.unwrap();
        }
        assert!(cache.window_size().0 >= 10, "{:?}", cache.window_size());
        assert!(cache.window_size().1 <= limits.bytes);
    }

    #[tokio::test]
    async fn the_window_lets_old_events_go_but_keeps_the_newest() {
        let limits = Window {
            age: Duration::from_millis(50),
            ..Window::events(100)
        };
        let cache = Cache::start(Arc::new(MemoryBackend::new()), limits).await.unwrap();
        let first = cache.write(create("/k/a")).await.unwrap().revision;
        let last = cache.write(create("/k/b")).await.unwrap().revision;
        assert_eq!(cache.window_size().0, 2);
        tokio::time::sleep(Duration::from_millis(100)).await;
        cache.trim_aged();
        assert_eq!(cache.window_size().0, 1);
        assert!(matches!(
            cache.watch("/k/", Some(first - 1)),
            Err(WatchStartError::TooOld { .. })
        ));
        assert_eq!(cache.watch("/k/", Some(first)).unwrap().backlog.len(), 1);
        assert_eq!(cache.watch("/k/", Some(last)).unwrap().backlog.len(), 0);
    }

    #[tokio::test]
    async fn a_lost_stream_reloads_everything_and_expires_watches() {
        let backend = Arc::new(MemoryBackend::new());
        let cache = Cache::start(backend.clone(), Window::events(100)).await.unwrap();
        let a = cache.write(create("/k/a")).await.unwrap().revision;
        let mut live = cache.watch("/k/", None).unwrap().live;
        backend.lose_subscribers();
        // Written while the cache reloads: either in the new snapshot or after it.
        backend.write(create("/k/b")).await.unwrap();
        assert_eq!(live.recv().await.unwrap_err(), FeedEnded::Expired);
        let c = cache.write(create("/k/c")).await.unwrap().revision;
        let (items, revision, _) = cache.list("/k/", None, 0, |_| true);
        let keys: Vec<&str> = items.iter().map(|o| &*o.key).collect();
        assert_eq!((keys, revision), (vec!["/k/a", "/k/b", "/k/c"], c));
        // History from before the reload is gone; watches from after it work.
        assert!(matches!(
            cache.watch("/k/", Some(a)),
            Err(WatchStartError::TooOld { .. })
        ));
        assert_eq!(cache.watch("/k/", Some(c)).unwrap().backlog.len(), 0);
        assert_eq!(cache.sync().await.unwrap(), c);
    }

    #[tokio::test]
    async fn watches_get_only_the_events_they_follow() {
        let cache = cache(100).await;
        let mut all = cache.watch("/k/", None).unwrap().live;
        let mut one = cache.watch("/k/a", None).unwrap().live;
        let mut other = cache.watch("/j/", None).unwrap().live;
        assert_eq!(cache.watch_count(), 3);
        for key in ["/k/ab", "/k/a", "/k/b"] {
            cache.write(create(key)).await.unwrap();
        }
        let mut seen = Vec::new();
        while let Ok(Some(event)) = all.try_recv() {
            seen.push(event.object.key.to_string());
        }
        assert_eq!(seen, vec!["/k/ab", "/k/a", "/k/b"]);
        assert_eq!(&*one.try_recv().unwrap().unwrap().object.key, "/k/a");
        assert_eq!(one.try_recv().unwrap().map(|e| e.revision), None);
        assert_eq!(other.try_recv().unwrap().map(|e| e.revision), None);
        // A watch that ends leaves the index.
        drop(other);
        assert_eq!(cache.watch_count(), 2);
        // An exact watch's backlog holds only its key.
        let start = cache.watch("/k/b", Some(0)).unwrap();
        assert_eq!(start.backlog.len(), 1);
    }
}
