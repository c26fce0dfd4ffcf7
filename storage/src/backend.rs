//! The persistence contract: a key-value store with one global, monotonic revision.

use bytes::Bytes;
use futures::future::BoxFuture;
use tokio::sync::mpsc;

/// The store-wide revision; every write gets the next one.
pub type Revision = u64;

/// One stored object as the backend knows it: opaque bytes (JSON) plus revisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Bytes,
    pub create_revision: Revision,
    pub mod_revision: Revision,
}

/// A conditional write. Every write is a compare-and-swap, so handlers can read from the
/// cache, compute, and write without holding a lock.
#[derive(Debug, Clone)]
pub enum WriteOp {
    /// Fails with [`StorageError::AlreadyExists`] when the key is present.
    Create { key: String, value: Bytes },
    /// Fails with [`StorageError::Conflict`] unless the key's current `mod_revision` is `expected`.
    Update {
        key: String,
        value: Bytes,
        expected: Revision,
    },
    /// Fails with [`StorageError::Conflict`] unless the key's current `mod_revision` is `expected`.
    Delete { key: String, expected: Revision },
}

impl WriteOp {
    pub fn key(&self) -> &str {
        match self {
            WriteOp::Create { key, .. } | WriteOp::Update { key, .. } | WriteOp::Delete { key, .. } => key,
        }
    }
}

/// What a successful write produced.
#[derive(Debug, Clone)]
pub struct WriteOutcome {
    /// The revision the write was stored at.
    pub revision: Revision,
    /// The new value (None for a delete).
    pub kv: Option<KeyValue>,
}

/// A change to the store, in revision order.
#[derive(Debug, Clone)]
pub enum StoreEvent {
    Put(KeyValue),
    /// The key was removed at `revision`; `prev` is the value it had.
    Delete {
        prev: KeyValue,
        revision: Revision,
    },
}

impl StoreEvent {
    pub fn revision(&self) -> Revision {
        match self {
            StoreEvent::Put(kv) => kv.mod_revision,
            StoreEvent::Delete { revision, .. } => *revision,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    #[error("key already exists")]
    AlreadyExists,
    #[error("key not found")]
    NotFound,
    #[error("revision mismatch")]
    Conflict,
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

/// What a backend reports after a snapshot, in revision order.
#[derive(Debug)]
pub enum Change {
    /// Events with revisions above everything reported before, and the revision the store is
    /// known to have reached with them: the last event's, or higher when the store's revision
    /// moved on without a change to the backend's keys (writes elsewhere in a shared store).
    /// A batch without events only moves the revision forward.
    Batch {
        events: Vec<StoreEvent>,
        revision: Revision,
    },
    /// The backend cannot go on without a gap (the history it needed to resume was compacted):
    /// the subscriber must take a new snapshot. Nothing follows on this channel.
    Lost { reason: String },
}

/// A consistent snapshot of the whole store plus every change after it.
pub struct Snapshot {
    /// Every object, in key order.
    pub items: Vec<KeyValue>,
    pub revision: Revision,
    /// The changes after `revision`, in order.
    pub changes: mpsc::UnboundedReceiver<Change>,
}

/// The persistence layer. Implementations: [`crate::SqliteBackend`] (embedded),
/// [`crate::EtcdBackend`] (shared by several hub processes) and [`crate::MemoryBackend`] (tests).
pub trait Backend: Send + Sync + 'static {
    /// Loads everything and subscribes to later changes, atomically (no gap, no overlap).
    fn snapshot(&self) -> BoxFuture<'_, Result<Snapshot, StorageError>>;
    /// Applies one conditional write once it is durable.
    fn write(&self, op: WriteOp) -> BoxFuture<'_, Result<WriteOutcome, StorageError>>;
    /// Reclaims space held by history the hub no longer needs.
    fn compact(&self) -> BoxFuture<'_, Result<(), StorageError>>;
    /// The store's revision now, including every write acknowledged to anyone before the call
    /// (for etcd, a quorum read). The subscriber of a snapshot reaches it through events or
    /// revision-only batches.
    fn current_revision(&self) -> BoxFuture<'_, Result<Revision, StorageError>>;
    /// Whether processes other than this one write the store. When none does, a write is
    /// acknowledged only once the cache has it, so the cache already holds every write a
    /// reader can know of and reads need not ask [`Backend::current_revision`] first.
    fn shared(&self) -> bool {
        false
    }
    /// Whether the store answers: a cheap round trip through whatever serves writes (the
    /// health checks call it).
    fn check(&self) -> BoxFuture<'_, Result<(), StorageError>> {
        Box::pin(async move { self.current_revision().await.map(|_| ()) })
    }
    /// Reports every later commit to `observer`. Only the first call counts; backends that
    /// measure nothing ignore it.
    fn observe_commits(&self, observer: std::sync::Arc<dyn crate::CommitObserver>) {
        let _ = observer;
    }
}
