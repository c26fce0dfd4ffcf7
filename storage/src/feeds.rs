//! Live event feeds of watches, indexed by what each watch follows, so that a write reaches
//! only the watches it concerns.
//!
//! A watch follows a key prefix ending in `/` (a resource across all logical clusters, one
//! cluster, or one namespace) or one exact key (a watch pinned to a name, as an edge agent
//! watching its own Agent). Delivering an event looks up each `/`-terminated prefix of its
//! key and the key itself: a handful of hash lookups, however many watches exist. With one
//! shared channel instead, every watch would wake for every write — 100,000 agent watches
//! times every heartbeat.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use tokio::sync::mpsc;

use crate::cache::WatchEvent;

/// How many events one watch may fall behind before it is cut off (then answered with 410,
/// so its client re-lists). Channel memory grows only with the actual backlog.
const FEED_CAPACITY: usize = 65_536;

/// Whether a watch following `target` (a prefix ending in `/`, or an exact key) sees `key`.
pub(crate) fn follows(target: &str, key: &str) -> bool {
    if target.ends_with('/') {
        key.starts_with(target)
    } else {
        key == target
    }
}

struct Sender {
    id: u64,
    tx: mpsc::Sender<Arc<WatchEvent>>,
    /// Why the cache ended the feed, if it did (the feed ends when its sender is dropped).
    ended: Arc<OnceLock<FeedEnded>>,
}

#[derive(Default)]
struct Index {
    by_target: HashMap<Box<str>, Vec<Sender>>,
    next_id: u64,
}

/// Every live feed. Shared with the feeds themselves, which leave it when dropped.
#[derive(Clone)]
pub(crate) struct Feeds {
    index: Arc<Mutex<Index>>,
    capacity: usize,
}

impl Default for Feeds {
    fn default() -> Feeds {
        Feeds::with_capacity(FEED_CAPACITY)
    }
}

impl Feeds {
    /// Feeds that may each fall `capacity` events behind.
    pub(crate) fn with_capacity(capacity: usize) -> Feeds {
        Feeds {
            index: Arc::default(),
            capacity: capacity.max(1),
        }
    }

    /// A new feed of the events under `target`.
    pub(crate) fn subscribe(&self, target: &str) -> Feed {
        let (tx, rx) = mpsc::channel(self.capacity);
        let ended = Arc::new(OnceLock::new());
        let mut index = self.index.lock().unwrap_or_else(|e| e.into_inner());
        let id = index.next_id;
        index.next_id += 1;
        index.by_target.entry(target.into()).or_default().push(Sender {
            id,
            tx,
            ended: ended.clone(),
        });
        Feed {
            rx,
            ended,
            index: Arc::downgrade(&self.index),
            target: target.into(),
            id,
        }
    }

    /// Hands `event` to every feed following its key. Never blocks: a feed that is full is
    /// cut off and marked lagged.
    pub(crate) fn deliver(&self, event: &Arc<WatchEvent>) {
        let key: &str = &event.object.key;
        let mut index = self.index.lock().unwrap_or_else(|e| e.into_inner());
        if index.by_target.is_empty() {
            return;
        }
        for (i, _) in key.match_indices('/') {
            deliver_to(&mut index, &key[..=i], event);
        }
        deliver_to(&mut index, key, event);
    }

    /// Ends every feed, for `why`, after the events each already holds.
    pub(crate) fn end_all(&self, why: FeedEnded) {
        let mut index = self.index.lock().unwrap_or_else(|e| e.into_inner());
        for sender in index.by_target.drain().flat_map(|(_, senders)| senders) {
            let _ = sender.ended.set(why);
        }
    }

    /// Number of live feeds (for tests and metrics).
    pub(crate) fn len(&self) -> usize {
        let index = self.index.lock().unwrap_or_else(|e| e.into_inner());
        index.by_target.values().map(Vec::len).sum()
    }
}

fn deliver_to(index: &mut Index, target: &str, event: &Arc<WatchEvent>) {
    let Some(senders) = index.by_target.get_mut(target) else {
        return;
    };
    senders.retain(|s| match s.tx.try_send(event.clone()) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Full(_)) => {
            let _ = s.ended.set(FeedEnded::Lagged);
            false
        }
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    });
    if senders.is_empty() {
        index.by_target.remove(target);
    }
}

/// Why a feed ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedEnded {
    /// The watch fell too far behind and was cut off: its client must re-list.
    Lagged,
    /// The cache lost the store's history and loaded everything again (a shared store
    /// compacted what the cache still had to follow): its client must re-list.
    Expired,
    /// The cache is gone (the hub is stopping).
    Closed,
}

/// One watch's live events, in revision order.
pub struct Feed {
    rx: mpsc::Receiver<Arc<WatchEvent>>,
    ended: Arc<OnceLock<FeedEnded>>,
    index: Weak<Mutex<Index>>,
    target: Box<str>,
    id: u64,
}

impl Feed {
    pub async fn recv(&mut self) -> Result<Arc<WatchEvent>, FeedEnded> {
        self.rx.recv().await.ok_or_else(|| self.ended())
    }

    /// Whether no event is waiting.
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Result<Option<Arc<WatchEvent>>, FeedEnded> {
        match self.rx.try_recv() {
            Ok(event) => Ok(Some(event)),
            Err(mpsc::error::TryRecvError::Empty) => Ok(None),
            Err(mpsc::error::TryRecvError::Disconnected) => Err(self.ended()),
        }
    }

    fn ended(&self) -> FeedEnded {
        self.ended.get().copied().unwrap_or(FeedEnded::Closed)
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        let Some(index) = self.index.upgrade() else { return };
        let mut index = index.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(senders) = index.by_target.get_mut(&*self.target) {
            senders.retain(|s| s.id != self.id);
            if senders.is_empty() {
                index.by_target.remove(&*self.target);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_exact_keys() {
        assert!(follows("/core/configmaps/", "/core/configmaps/c1/ns/a"));
        assert!(follows("/core/configmaps/c1/ns/", "/core/configmaps/c1/ns/a"));
        assert!(!follows("/core/configmaps/c1/ns/", "/core/configmaps/c1/ns2/a"));
        assert!(follows("/core/configmaps/c1/ns/a", "/core/configmaps/c1/ns/a"));
        assert!(!follows("/core/configmaps/c1/ns/a", "/core/configmaps/c1/ns/ab"));
    }

    fn event(key: &str, revision: u64) -> Arc<WatchEvent> {
        Arc::new(WatchEvent::added(key, revision))
    }

    #[tokio::test]
    async fn a_feed_that_falls_behind_is_cut_off_after_what_it_holds() {
        let feeds = Feeds::with_capacity(2);
        let mut slow = feeds.subscribe("/k/");
        let mut pinned = feeds.subscribe("/k/x");
        for revision in 1..=3 {
            feeds.deliver(&event("/k/a", revision));
        }
        feeds.deliver(&event("/k/x", 4));
        assert_eq!(slow.recv().await.unwrap().revision, 1);
        assert_eq!(slow.recv().await.unwrap().revision, 2);
        assert_eq!(slow.recv().await.unwrap_err(), FeedEnded::Lagged);
        // The lagging feed left the index; the other one is unaffected.
        assert_eq!(feeds.len(), 1);
        assert_eq!(pinned.recv().await.unwrap().revision, 4);
        drop(pinned);
        assert_eq!(feeds.len(), 0);
    }

    #[tokio::test]
    async fn ending_every_feed_says_why_after_what_each_holds() {
        let feeds = Feeds::with_capacity(8);
        let mut a = feeds.subscribe("/k/");
        let mut b = feeds.subscribe("/k/x");
        feeds.deliver(&event("/k/x", 1));
        feeds.end_all(FeedEnded::Expired);
        assert_eq!(feeds.len(), 0);
        assert_eq!(a.recv().await.unwrap().revision, 1);
        assert_eq!(a.recv().await.unwrap_err(), FeedEnded::Expired);
        assert_eq!(b.recv().await.unwrap().revision, 1);
        assert_eq!(b.try_recv().unwrap_err(), FeedEnded::Expired);
    }
}
