//! Faros storage: a small key-value [`Backend`] with one global, monotonic revision (the
//! `resourceVersion` clients see), its implementations (SQLite, etcd, memory), and the in-memory [`Cache`] above it
//! that serves every read and watch.
//!
//! This crate knows nothing of HTTP, authentication or tenancy: it stores bytes under
//! [`Key`]s and streams their changes.

mod backend;
mod backup;
mod cache;
mod etcd;
mod feeds;
mod key;
mod memory;
mod object;
mod observe;
mod sqlite;

#[cfg(test)]
mod conformance;

pub use backend::{Backend, Change, KeyValue, Revision, Snapshot, StorageError, StoreEvent, WriteOp, WriteOutcome};
pub use backup::{SnapshotInfo, copy_all, sqlite_restore, sqlite_snapshot};
pub use cache::{Cache, EventKind, Object, WatchEvent, WatchStart, WatchStartError, Window, encode_event, event_line};
pub use etcd::{EtcdBackend, EtcdOptions};
pub use feeds::{Feed, FeedEnded};
pub use key::{Key, Prefix};
pub use memory::MemoryBackend;
pub use observe::{Commit, CommitObserver};
pub use sqlite::SqliteBackend;
