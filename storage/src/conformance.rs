//! The behaviour every [`Backend`] must have, as one suite each implementation runs.
//!
//! Revisions are compared with each other, never with absolute numbers: etcd's first write
//! of a new prefix is not revision 1. Each backend under test must be the store's only writer
//! while the suite runs, so that "one write, one revision" can be checked.

use std::sync::Arc;

use bytes::Bytes;

use crate::backend::{Backend, Change, Revision, StorageError, StoreEvent, WriteOp};

pub(crate) fn put(key: &str, value: &str) -> WriteOp {
    WriteOp::Create {
        key: key.into(),
        value: Bytes::from(value.to_string()),
    }
}

/// A fresh directory under the system's temporary directory, removed when dropped.
pub(crate) fn tempdir() -> TempDir {
    let dir = std::env::temp_dir().join(format!("faros-storage-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

pub(crate) struct TempDir(std::path::PathBuf);

impl std::ops::Deref for TempDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The next events of a snapshot's changes, skipping batches that only move the revision.
pub(crate) async fn next_events(changes: &mut tokio::sync::mpsc::UnboundedReceiver<Change>) -> Vec<StoreEvent> {
    loop {
        match changes.recv().await.expect("the backend keeps its stream open") {
            Change::Batch { events, revision } if !events.is_empty() => {
                assert_eq!(Some(revision), events.last().map(StoreEvent::revision));
                return events;
            }
            Change::Batch { .. } => continue,
            Change::Lost { reason } => panic!("the stream was lost: {reason}"),
        }
    }
}

/// Runs every check, each on a fresh backend from `open`.
pub(crate) async fn run<B: Backend, F: Future<Output = B>>(open: impl Fn() -> F) {
    revisions_are_global(open().await).await;
    preconditions_are_enforced(open().await).await;
    snapshots_are_consistent_and_followed(open().await).await;
    snapshots_hold_everything_in_key_order(open().await).await;
    concurrent_writes_stream_in_order(Arc::new(open().await)).await;
    the_current_revision_covers_every_write(open().await).await;
}

async fn revisions_are_global(backend: impl Backend) {
    let a = backend.write(put("/a", "1")).await.unwrap();
    let b = backend.write(put("/b", "2")).await.unwrap();
    assert_eq!(b.revision, a.revision + 1);
    let up = backend
        .write(WriteOp::Update {
            key: "/a".into(),
            value: Bytes::from_static(b"3"),
            expected: a.revision,
        })
        .await
        .unwrap();
    assert_eq!(up.revision, b.revision + 1);
    let kv = up.kv.unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision), (a.revision, up.revision));
    let del = backend
        .write(WriteOp::Delete {
            key: "/b".into(),
            expected: b.revision,
        })
        .await
        .unwrap();
    assert_eq!((del.revision, del.kv), (up.revision + 1, None));
}

async fn preconditions_are_enforced(backend: impl Backend) {
    let first = backend.write(put("/a", "1")).await.unwrap().revision;
    assert_eq!(
        backend.write(put("/a", "1")).await.unwrap_err(),
        StorageError::AlreadyExists
    );
    let stale = WriteOp::Update {
        key: "/a".into(),
        value: Bytes::from_static(b"2"),
        expected: first + 1000,
    };
    assert_eq!(backend.write(stale).await.unwrap_err(), StorageError::Conflict);
    let stale_delete = WriteOp::Delete {
        key: "/a".into(),
        expected: first + 1000,
    };
    assert_eq!(backend.write(stale_delete).await.unwrap_err(), StorageError::Conflict);
    let missing = WriteOp::Delete {
        key: "/zz".into(),
        expected: first,
    };
    assert_eq!(backend.write(missing).await.unwrap_err(), StorageError::NotFound);
    // A missing key has no revision, not revision 0: this is no way to create it.
    let missing_update = WriteOp::Update {
        key: "/zz".into(),
        value: Bytes::from_static(b"1"),
        expected: 0,
    };
    assert_eq!(backend.write(missing_update).await.unwrap_err(), StorageError::NotFound);
    // Refused writes take no revision.
    assert_eq!(backend.write(put("/b", "1")).await.unwrap().revision, first + 1);
}

async fn snapshots_are_consistent_and_followed(backend: impl Backend) {
    backend.write(put("/b", "1")).await.unwrap();
    let a = backend.write(put("/a", "2")).await.unwrap().revision;
    let mut snap = backend.snapshot().await.unwrap();
    assert!(snap.revision >= a);
    let keys: Vec<&str> = snap.items.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/a", "/b"], "snapshot items come in key order");
    let del = WriteOp::Delete {
        key: "/a".into(),
        expected: a,
    };
    let deleted = backend.write(del).await.unwrap().revision;
    let events = next_events(&mut snap.changes).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].revision(), deleted);
    assert!(matches!(&events[0], StoreEvent::Delete { prev, .. } if prev.key == "/a" && prev.mod_revision == a));
}

async fn snapshots_hold_everything_in_key_order(backend: impl Backend) {
    // More keys than a page of etcd's snapshot in the tests.
    let mut written: Vec<String> = (0..25).map(|i| format!("/k/{:02}", (i * 7) % 25)).collect();
    for key in &written {
        backend.write(put(key, "x")).await.unwrap();
    }
    written.sort();
    let snap = backend.snapshot().await.unwrap();
    let keys: Vec<&str> = snap.items.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, written);
    let newest = snap.items.iter().map(|kv| kv.mod_revision).max().unwrap();
    assert!(snap.revision >= newest);
}

async fn concurrent_writes_stream_in_order<B: Backend>(backend: Arc<B>) {
    let mut snap = backend.snapshot().await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let backend = backend.clone();
        tasks.push(tokio::spawn(async move {
            backend.write(put(&format!("/k{i}"), "x")).await.unwrap().revision
        }));
    }
    let mut revisions = Vec::new();
    for t in tasks {
        revisions.push(t.await.unwrap());
    }
    revisions.sort();
    let first = revisions[0];
    assert!(first > snap.revision);
    assert_eq!(revisions, (first..first + 200).collect::<Vec<Revision>>());
    let mut seen = Vec::new();
    while seen.len() < 200 {
        for e in next_events(&mut snap.changes).await {
            seen.push(e.revision());
        }
    }
    assert_eq!(seen, revisions);
}

async fn the_current_revision_covers_every_write(backend: impl Backend) {
    let written = backend.write(put("/a", "1")).await.unwrap().revision;
    assert!(backend.current_revision().await.unwrap() >= written);
}
