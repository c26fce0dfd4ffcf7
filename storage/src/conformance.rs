//! The behaviour every [`Backend`] must have, as one suite each implementation runs.

use std::sync::Arc;

use bytes::Bytes;

use crate::backend::{Backend, StorageError, WriteOp};

pub(crate) fn put(key: &str, value: &str) -> WriteOp {
    WriteOp::Create {
        key: key.into(),
        value: Bytes::from(value.to_string()),
    }
}

pub(crate) fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("faros-storage-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs every check, each on a fresh backend from `open`.
pub(crate) async fn run<B: Backend>(open: impl Fn() -> B) {
    revisions_are_global(open()).await;
    preconditions_are_enforced(open()).await;
    snapshots_are_consistent_and_followed(open()).await;
    concurrent_writes_stream_in_order(Arc::new(open())).await;
}

async fn revisions_are_global(backend: impl Backend) {
    let a = backend.write(put("/a", "1")).await.unwrap();
    let b = backend.write(put("/b", "2")).await.unwrap();
    assert_eq!((a.revision, b.revision), (1, 2));
    let up = backend
        .write(WriteOp::Update {
            key: "/a".into(),
            value: Bytes::from_static(b"3"),
            expected: 1,
        })
        .await
        .unwrap();
    assert_eq!(up.revision, 3);
    assert_eq!(up.kv.unwrap().create_revision, 1);
    let del = backend
        .write(WriteOp::Delete {
            key: "/b".into(),
            expected: 2,
        })
        .await
        .unwrap();
    assert_eq!((del.revision, del.kv), (4, None));
}

async fn preconditions_are_enforced(backend: impl Backend) {
    backend.write(put("/a", "1")).await.unwrap();
    assert_eq!(
        backend.write(put("/a", "1")).await.unwrap_err(),
        StorageError::AlreadyExists
    );
    let stale = WriteOp::Update {
        key: "/a".into(),
        value: Bytes::from_static(b"2"),
        expected: 7,
    };
    assert_eq!(backend.write(stale).await.unwrap_err(), StorageError::Conflict);
    let stale_delete = WriteOp::Delete {
        key: "/a".into(),
        expected: 7,
    };
    assert_eq!(backend.write(stale_delete).await.unwrap_err(), StorageError::Conflict);
    let missing = WriteOp::Delete {
        key: "/zz".into(),
        expected: 1,
    };
    assert_eq!(backend.write(missing).await.unwrap_err(), StorageError::NotFound);
    // Refused writes take no revision.
    assert_eq!(backend.write(put("/b", "1")).await.unwrap().revision, 2);
}

async fn snapshots_are_consistent_and_followed(backend: impl Backend) {
    backend.write(put("/b", "1")).await.unwrap();
    backend.write(put("/a", "2")).await.unwrap();
    let mut snap = backend.snapshot().await.unwrap();
    assert_eq!(snap.revision, 2);
    let keys: Vec<&str> = snap.items.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/a", "/b"], "snapshot items come in key order");
    let del = WriteOp::Delete {
        key: "/a".into(),
        expected: 2,
    };
    backend.write(del).await.unwrap();
    let events = snap.events.recv().await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].revision(), 3);
    assert!(matches!(&events[0], crate::StoreEvent::Delete { prev, .. } if prev.key == "/a" && prev.mod_revision == 2));
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
    assert_eq!(revisions, (1..=200).collect::<Vec<_>>());
    let mut seen = Vec::new();
    while seen.len() < 200 {
        for e in snap.events.recv().await.unwrap() {
            seen.push(e.revision());
        }
    }
    assert_eq!(seen, (1..=200).collect::<Vec<_>>());
}
