//! Copies of a store: a consistent snapshot of the embedded database taken while the hub
//! runs, its restore into a new data directory, and the copy of every key from one backend
//! into another (`hub-api migrate`).

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::backend::{Backend, Revision, StorageError, WriteOp};

/// What a snapshot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The store's revision when the snapshot was taken.
    pub revision: Revision,
    /// How many keys it holds.
    pub keys: u64,
}

/// Writes a consistent copy of the SQLite database `db` to `out`, which must not exist.
///
/// `VACUUM INTO` reads inside one transaction, so the copy is the database as of one commit
/// however busy the hub's writer is, and it does not block that writer (WAL mode). The copy
/// is compacted and self-contained (no WAL file beside it).
pub fn sqlite_snapshot(db: &Path, out: &Path) -> Result<SnapshotInfo, StorageError> {
    if out.exists() {
        return Err(StorageError::Unavailable(format!(
            "{} already exists; choose a new file",
            out.display()
        )));
    }
    let conn = open_existing(db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(unavailable)?;
    let target = out
        .to_str()
        .ok_or_else(|| StorageError::Unavailable(format!("{} is not valid UTF-8", out.display())))?;
    conn.execute("VACUUM INTO ?1", [target]).map_err(unavailable)?;
    describe(&open_existing(out, OpenFlags::SQLITE_OPEN_READ_ONLY)?)
}

/// Checks that `snapshot` is a whole, readable Faros database and installs it as `db`, which
/// must not exist yet (a restore goes into a new data directory, never over a live one).
pub fn sqlite_restore(snapshot: &Path, db: &Path) -> Result<SnapshotInfo, StorageError> {
    if db.exists() {
        return Err(StorageError::Unavailable(format!(
            "{} already exists; restore into a new data directory",
            db.display()
        )));
    }
    let info = {
        let conn = open_existing(snapshot, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(unavailable)?;
        if check != "ok" {
            return Err(StorageError::Unavailable(format!(
                "{} is damaged: {check}",
                snapshot.display()
            )));
        }
        describe(&conn)?
    };
    // Copied beside the target first and renamed, so a failed copy never leaves a partial
    // database where the hub would open it.
    let partial = db.with_extension("db.restoring");
    std::fs::copy(snapshot, &partial).map_err(|e| StorageError::Unavailable(format!("copying: {e}")))?;
    std::fs::File::open(&partial)
        .and_then(|f| f.sync_all())
        .map_err(|e| StorageError::Unavailable(format!("syncing: {e}")))?;
    std::fs::rename(&partial, db).map_err(|e| StorageError::Unavailable(format!("installing: {e}")))?;
    Ok(info)
}

/// Copies every key of `from` into `to`, which must hold none of them. Each key is created
/// anew, so it gets `to`'s next revision: resourceVersions change, and clients re-list.
/// Returns how many keys were copied.
pub async fn copy_all(from: &dyn Backend, to: &dyn Backend) -> Result<u64, StorageError> {
    let snapshot = from.snapshot().await?;
    let mut copied = 0;
    for kv in snapshot.items {
        to.write(WriteOp::Create {
            key: kv.key,
            value: kv.value,
        })
        .await?;
        copied += 1;
    }
    Ok(copied)
}

fn open_existing(path: &Path, flags: OpenFlags) -> Result<Connection, StorageError> {
    if !path.is_file() {
        return Err(StorageError::Unavailable(format!("{} does not exist", path.display())));
    }
    Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX).map_err(unavailable)
}

fn describe(conn: &Connection) -> Result<SnapshotInfo, StorageError> {
    let not_faros = |e: rusqlite::Error| StorageError::Unavailable(format!("not a Faros database: {e}"));
    let revision: i64 = conn
        .query_row("SELECT value FROM meta WHERE name = 'revision'", [], |r| r.get(0))
        .map_err(not_faros)?;
    let keys: i64 = conn
        .query_row("SELECT count(*) FROM kv", [], |r| r.get(0))
        .map_err(not_faros)?;
    Ok(SnapshotInfo {
        revision: revision as Revision,
        keys: keys as u64,
    })
}

fn unavailable(e: rusqlite::Error) -> StorageError {
    StorageError::Unavailable(e.to_string())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::conformance::{put, tempdir};
    use crate::{MemoryBackend, SqliteBackend};

    #[tokio::test]
    async fn a_snapshot_taken_under_writes_restores_to_one_consistent_revision() {
        let dir = tempdir();
        let db = dir.join("hub.db");
        let backend = Arc::new(SqliteBackend::open(&db).unwrap());
        for i in 0..100 {
            backend.write(put(&format!("/k{i:03}"), "v")).await.unwrap();
        }
        // Writes keep coming while the snapshot is taken.
        let writer = {
            let backend = backend.clone();
            tokio::spawn(async move {
                for i in 100..400 {
                    backend.write(put(&format!("/k{i:03}"), "v")).await.unwrap();
                }
            })
        };
        let out = dir.join("snap.db");
        let info = tokio::task::spawn_blocking({
            let (db, out) = (db.clone(), out.clone());
            move || sqlite_snapshot(&db, &out)
        })
        .await
        .unwrap()
        .unwrap();
        writer.await.unwrap();
        // One key per revision here, so a consistent copy has exactly `revision` keys.
        assert!(info.revision >= 100, "{info:?}");
        assert_eq!(info.keys, info.revision, "{info:?}");

        let restored_dir = dir.join("restored");
        std::fs::create_dir_all(&restored_dir).unwrap();
        let restored_db = restored_dir.join("hub.db");
        assert_eq!(sqlite_restore(&out, &restored_db).unwrap(), info);
        let restored = SqliteBackend::open(&restored_db).unwrap();
        let snapshot = restored.snapshot().await.unwrap();
        assert_eq!(snapshot.revision, info.revision);
        assert_eq!(snapshot.items.len() as u64, info.keys);
        // The restored store goes on from the snapshot's revision.
        let next = restored.write(put("/after", "v")).await.unwrap();
        assert_eq!(next.revision, info.revision + 1);
    }

    #[test]
    fn refuses_to_overwrite_and_rejects_what_is_not_a_database() {
        let dir = tempdir();
        let db = dir.join("hub.db");
        drop(SqliteBackend::open(&db).unwrap());
        let out = dir.join("snap.db");
        sqlite_snapshot(&db, &out).unwrap();
        let again = sqlite_snapshot(&db, &out).unwrap_err();
        assert!(again.to_string().contains("already exists"), "{again}");
        let over = sqlite_restore(&out, &db).unwrap_err();
        assert!(over.to_string().contains("new data directory"), "{over}");

        let garbage = dir.join("garbage.db");
        std::fs::write(&garbage, b"not a database at all, just some bytes").unwrap();
        let err = sqlite_restore(&garbage, &dir.join("other.db")).unwrap_err();
        assert!(!dir.join("other.db").exists());
        assert!(!err.to_string().is_empty());
        let missing = sqlite_snapshot(&dir.join("missing.db"), &dir.join("x.db")).unwrap_err();
        assert!(missing.to_string().contains("does not exist"), "{missing}");
    }

    #[tokio::test]
    async fn copy_all_moves_every_key_between_backends() {
        let from = MemoryBackend::new();
        for i in 0..50 {
            from.write(put(&format!("/k{i}"), &format!("{i}"))).await.unwrap();
        }
        from.write(WriteOp::Delete {
            key: "/k7".into(),
            expected: 8,
        })
        .await
        .unwrap();
        let dir = tempdir();
        let to = SqliteBackend::open(&dir.join("hub.db")).unwrap();
        assert_eq!(copy_all(&from, &to).await.unwrap(), 49);
        let copied = to.snapshot().await.unwrap();
        assert_eq!(copied.items.len(), 49);
        let k3 = copied.items.iter().find(|kv| kv.key == "/k3").unwrap();
        assert_eq!(k3.value, Bytes::from_static(b"3"));
        // A second copy into the same store fails on the first key instead of duplicating.
        assert_eq!(
            copy_all(&from, &to).await.unwrap_err(),
            crate::StorageError::AlreadyExists
        );
    }
}
