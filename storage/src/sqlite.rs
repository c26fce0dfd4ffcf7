//! The embedded backend: one SQLite database in WAL mode, written by a single thread that
//! commits writes in groups. Concurrent writers share one transaction and one fsync, which
//! is what keeps heartbeat-heavy workloads cheap; every write is acknowledged only after its
//! group committed with `synchronous=FULL`, so it survives `kill -9` and power loss.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

use crate::backend::{Backend, Change, KeyValue, Revision, Snapshot, StorageError, StoreEvent, WriteOp, WriteOutcome};
use crate::observe::{Commit, CommitObserver, ObserverSlot};

/// Most writes folded into one transaction; bounds the latency one group adds to the next.
const MAX_GROUP: usize = 512;

enum Command {
    Write(WriteOp, oneshot::Sender<Result<WriteOutcome, StorageError>>),
    Snapshot(oneshot::Sender<Result<Snapshot, StorageError>>),
    Compact(oneshot::Sender<Result<(), StorageError>>),
    /// Answered by the writer thread between groups: it is alive and not stuck.
    Ping(oneshot::Sender<Result<(), StorageError>>),
}

pub struct SqliteBackend {
    commands: mpsc::Sender<Command>,
    /// The revision of the last committed group, kept by the writer.
    committed: Arc<AtomicU64>,
    observer: ObserverSlot,
}

impl SqliteBackend {
    /// Opens (creating if needed) the database at `path` and starts its writer thread.
    pub fn open(path: &Path) -> Result<SqliteBackend, StorageError> {
        let writer = Writer::open(path)?;
        let (tx, rx) = mpsc::channel(4096);
        let committed = writer.committed.clone();
        let observer = writer.observer.clone();
        thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StorageError::Unavailable(e.to_string()))?;
        Ok(SqliteBackend {
            commands: tx,
            committed,
            observer,
        })
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StorageError>>) -> Command,
    ) -> Result<T, StorageError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| StorageError::Unavailable("storage writer stopped".into()))?;
        rx.await
            .map_err(|_| StorageError::Unavailable("storage writer stopped".into()))?
    }
}

impl Backend for SqliteBackend {
    fn snapshot(&self) -> BoxFuture<'_, Result<Snapshot, StorageError>> {
        self.call(Command::Snapshot).boxed()
    }

    fn write(&self, op: WriteOp) -> BoxFuture<'_, Result<WriteOutcome, StorageError>> {
        self.call(|tx| Command::Write(op, tx)).boxed()
    }

    fn compact(&self) -> BoxFuture<'_, Result<(), StorageError>> {
        self.call(Command::Compact).boxed()
    }

    fn current_revision(&self) -> BoxFuture<'_, Result<Revision, StorageError>> {
        futures::future::ready(Ok(self.committed.load(Ordering::Acquire))).boxed()
    }

    fn check(&self) -> BoxFuture<'_, Result<(), StorageError>> {
        self.call(Command::Ping).boxed()
    }

    fn observe_commits(&self, observer: Arc<dyn CommitObserver>) {
        self.observer.set(observer);
    }
}

fn unavailable(e: rusqlite::Error) -> StorageError {
    StorageError::Unavailable(e.to_string())
}

/// The objects' table. A rowid table with its key in a separate index: a lookup searches
/// an index of keys alone, whatever the size of the values. Files written before kept the
/// rows in the key's own B-tree (`WITHOUT ROWID`), where interior pages hold whole rows and
/// every comparison on the way down to a multi-kilobyte Agent read its overflow pages; those
/// are rewritten into this shape once, in one transaction, when they are opened.
fn create_kv(conn: &Connection) -> rusqlite::Result<()> {
    const COLUMNS: &str = "key TEXT PRIMARY KEY NOT NULL,
                           value BLOB NOT NULL,
                           create_revision INTEGER NOT NULL,
                           mod_revision INTEGER NOT NULL";
    let existing: Option<String> = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'kv'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    match existing {
        None => conn.execute_batch(&format!("CREATE TABLE kv ({COLUMNS});")),
        Some(sql) if sql.to_ascii_uppercase().contains("WITHOUT ROWID") => {
            tracing::info!("rewriting the objects' table as a rowid table (once)");
            conn.execute_batch(&format!(
                "BEGIN IMMEDIATE;
                 CREATE TABLE kv_rowid ({COLUMNS});
                 INSERT INTO kv_rowid (key, value, create_revision, mod_revision)
                     SELECT key, value, create_revision, mod_revision FROM kv;
                 DROP TABLE kv;
                 ALTER TABLE kv_rowid RENAME TO kv;
                 COMMIT;"
            ))
        }
        Some(_) => Ok(()),
    }
}

/// Where each key's row is, so that an update reaches it by rowid: one descent of the
/// table's B-tree, where finding it by key first descends the key's index (about a seventh
/// of the writer's work in a fleet's heartbeats). Kept by a hash of the key, 8 bytes rather
/// than the key again. A stale or colliding entry costs only a second try: every statement
/// still checks the row's key, and one that applies to no row by rowid is tried again by key.
#[derive(Default)]
struct RowIds {
    hasher: RandomState,
    rows: HashMap<u64, i64>,
}

impl RowIds {
    fn get(&self, key: &str) -> Option<i64> {
        self.rows.get(&self.hasher.hash_one(key)).copied()
    }

    fn insert(&mut self, key: &str, row: i64) {
        self.rows.insert(self.hasher.hash_one(key), row);
    }

    fn remove(&mut self, key: &str) {
        self.rows.remove(&self.hasher.hash_one(key));
    }
}

/// Why a conditional write to `key` applied to no row: the key is missing, or it is at
/// another revision than the write expected.
fn missed(tx: &rusqlite::Transaction<'_>, key: &str) -> rusqlite::Result<StorageError> {
    let exists = tx
        .prepare_cached("SELECT 1 FROM kv WHERE key = ?1")?
        .query_row(params![key], |_| Ok(()))
        .optional()?;
    Ok(match exists {
        Some(()) => StorageError::Conflict,
        None => StorageError::NotFound,
    })
}

struct Writer {
    conn: Connection,
    rows: RowIds,
    revision: Revision,
    committed: Arc<AtomicU64>,
    subscribers: Vec<mpsc::UnboundedSender<Change>>,
    observer: ObserverSlot,
}

type Pending = (WriteOp, oneshot::Sender<Result<WriteOutcome, StorageError>>);
/// One write of a group: its answer, and the event it produced if it changed anything.
type Applied = (Result<WriteOutcome, StorageError>, Option<StoreEvent>);

impl Writer {
    /// Opens (creating if needed) the database at `path`, ready to write.
    fn open(path: &Path) -> Result<Writer, StorageError> {
        let conn = Connection::open(path).map_err(unavailable)?;
        // A previous writer of the same file (a hub that is still shutting down) may hold a
        // lock for its final checkpoint: wait for it instead of failing.
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(unavailable)?;
        // auto_vacuum must be chosen before the first table exists; it lets compaction
        // hand freed pages back to the file system.
        conn.execute_batch(
            "PRAGMA auto_vacuum = INCREMENTAL;
             PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             -- A write looks up its key's B-tree path: with the default 2 MiB page cache,
             -- a fleet's heartbeats read most of those pages back from the file.
             PRAGMA cache_size = -32768;
             -- Heartbeats rewrite the same pages again and again; a longer WAL between
             -- checkpoints copies each of them to the database file once, not many times.
             PRAGMA wal_autocheckpoint = 8192;
             PRAGMA journal_size_limit = 67108864;
             CREATE TABLE IF NOT EXISTS meta (
                 name TEXT PRIMARY KEY NOT NULL,
                 value INTEGER NOT NULL
             );
             INSERT OR IGNORE INTO meta (name, value) VALUES ('revision', 0);",
        )
        .map_err(unavailable)?;
        create_kv(&conn).map_err(unavailable)?;
        let revision: i64 = conn
            .query_row("SELECT value FROM meta WHERE name = 'revision'", [], |r| r.get(0))
            .map_err(unavailable)?;
        Ok(Writer {
            conn,
            rows: RowIds::default(),
            revision: revision as Revision,
            committed: Arc::new(AtomicU64::new(revision as Revision)),
            subscribers: Vec::new(),
            observer: ObserverSlot::default(),
        })
    }

    fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut group: Vec<Pending> = Vec::with_capacity(MAX_GROUP);
        while let Some(first) = rx.blocking_recv() {
            let mut next = Some(first);
            // Drain whatever else is already queued: those writes ride in the same commit.
            while let Some(command) = next.take() {
                match command {
                    Command::Write(op, reply) => group.push((op, reply)),
                    Command::Snapshot(reply) => {
                        self.flush(&mut group);
                        let _ = reply.send(self.snapshot());
                    }
                    Command::Compact(reply) => {
                        self.flush(&mut group);
                        let _ = reply.send(self.compact());
                    }
                    Command::Ping(reply) => {
                        let _ = reply.send(Ok(()));
                    }
                }
                if group.len() < MAX_GROUP {
                    next = rx.try_recv().ok();
                }
            }
            self.flush(&mut group);
        }
        // Every sender is gone: the hub is shutting down and all acknowledged writes are
        // committed. Fold the WAL back so the next start opens quickly.
        let _ = self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
    }

    fn snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT key, value, create_revision, mod_revision, rowid FROM kv ORDER BY key")
            .map_err(unavailable)?;
        let mut rows = RowIds::default();
        let items = stmt
            .query_map([], |row| {
                let key: String = row.get(0)?;
                rows.insert(&key, row.get(4)?);
                Ok(KeyValue {
                    key,
                    value: Bytes::from(row.get::<_, Vec<u8>>(1)?),
                    create_revision: row.get::<_, i64>(2)? as Revision,
                    mod_revision: row.get::<_, i64>(3)? as Revision,
                })
            })
            .map_err(unavailable)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(unavailable)?;
        drop(stmt);
        self.rows = rows;
        let (tx, rx) = mpsc::unbounded_channel();
        self.subscribers.push(tx);
        Ok(Snapshot {
            items,
            revision: self.revision,
            changes: rx,
        })
    }

    fn compact(&mut self) -> Result<(), StorageError> {
        // The table holds only live objects (history lives in the cache's window), so
        // compaction is about the files: fold the WAL and release free pages.
        self.conn
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA incremental_vacuum;")
            .map_err(unavailable)
    }

    /// Applies a group of writes in one transaction and acknowledges them after the commit.
    fn flush(&mut self, group: &mut Vec<Pending>) {
        if group.is_empty() {
            return;
        }
        let start_revision = self.revision;
        let started = Instant::now();
        let outcomes = match self.apply_group(group) {
            Ok((outcomes, sync)) => {
                self.observer.report(Commit {
                    writes: group.len(),
                    duration: started.elapsed(),
                    sync: Some(sync),
                    failed: false,
                });
                outcomes
            }
            Err(e) => {
                self.observer.report(Commit {
                    writes: group.len(),
                    duration: started.elapsed(),
                    sync: None,
                    failed: true,
                });
                self.revision = start_revision;
                let err = unavailable(e);
                for (_, reply) in group.drain(..) {
                    let _ = reply.send(Err(err.clone()));
                }
                return;
            }
        };
        let mut events = Vec::with_capacity(outcomes.len());
        for ((_, reply), (outcome, event)) in group.drain(..).zip(outcomes) {
            if let Some(event) = event {
                events.push(event);
            }
            let _ = reply.send(outcome);
        }
        if !events.is_empty() {
            let revision = self.revision;
            self.subscribers.retain(|s| {
                s.send(Change::Batch {
                    events: events.clone(),
                    revision,
                })
                .is_ok()
            });
        }
    }

    /// Runs a group's writes in one transaction; returns each write's outcome and event, and
    /// how long the COMMIT (the WAL append and its fsync) took.
    fn apply_group(&mut self, group: &[Pending]) -> rusqlite::Result<(Vec<Applied>, Duration)> {
        // IMMEDIATE takes the write lock before reading, waiting (busy_timeout) for a previous
        // writer of the file that is still checkpointing; a deferred transaction would read
        // first and then fail at once on upgrading, its snapshot outdated by that checkpoint.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut revision = self.revision;
        let mut results = Vec::with_capacity(group.len());
        for (op, _) in group {
            // Each write is one statement, conditional on the row's state, and one lookup of
            // its key; the stored value is read back only by a delete, which reports it.
            // The row's state is looked at separately only when the write did not apply.
            let next = revision + 1;
            let result = match op {
                WriteOp::Create { key, value } => {
                    let inserted: Option<i64> = tx
                        .prepare_cached(
                            "INSERT INTO kv (key, value, create_revision, mod_revision) VALUES (?1, ?2, ?3, ?3)
                             ON CONFLICT (key) DO NOTHING RETURNING rowid",
                        )?
                        .query_row(params![key, value.as_ref(), next as i64], |r| r.get(0))
                        .optional()?;
                    match inserted {
                        None => Err(StorageError::AlreadyExists),
                        Some(row) => {
                            self.rows.insert(key, row);
                            Ok((
                                KeyValue {
                                    key: key.clone(),
                                    value: value.clone(),
                                    create_revision: next,
                                    mod_revision: next,
                                },
                                None,
                            ))
                        }
                    }
                }
                WriteOp::Update { key, value, expected } => {
                    let by_row = match self.rows.get(key) {
                        Some(row) => tx
                            .prepare_cached(
                                "UPDATE kv SET value = ?2, mod_revision = ?3
                                 WHERE rowid = ?5 AND key = ?1 AND mod_revision = ?4 RETURNING create_revision",
                            )?
                            .query_row(params![key, value.as_ref(), next as i64, *expected as i64, row], |r| {
                                r.get(0)
                            })
                            .optional()?,
                        None => None,
                    };
                    let created: Option<i64> = match by_row {
                        Some(created) => Some(created),
                        None => {
                            let updated: Option<(i64, i64)> = tx
                                .prepare_cached(
                                    "UPDATE kv SET value = ?2, mod_revision = ?3 WHERE key = ?1 AND mod_revision = ?4
                                     RETURNING create_revision, rowid",
                                )?
                                .query_row(params![key, value.as_ref(), next as i64, *expected as i64], |r| {
                                    Ok((r.get(0)?, r.get(1)?))
                                })
                                .optional()?;
                            updated.map(|(created, row)| {
                                self.rows.insert(key, row);
                                created
                            })
                        }
                    };
                    match created {
                        Some(created) => Ok((
                            KeyValue {
                                key: key.clone(),
                                value: value.clone(),
                                create_revision: created as Revision,
                                mod_revision: next,
                            },
                            None,
                        )),
                        None => Err(missed(&tx, key)?),
                    }
                }
                WriteOp::Delete { key, expected } => {
                    let deleted: Option<(Vec<u8>, i64)> = tx
                        .prepare_cached(
                            "DELETE FROM kv WHERE key = ?1 AND mod_revision = ?2 RETURNING value, create_revision",
                        )?
                        .query_row(params![key, *expected as i64], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()?;
                    match deleted {
                        Some((old, created)) => {
                            self.rows.remove(key);
                            Ok((
                                KeyValue {
                                    key: key.clone(),
                                    value: Bytes::from(old),
                                    create_revision: created as Revision,
                                    mod_revision: *expected,
                                },
                                Some(next),
                            ))
                        }
                        None => Err(missed(&tx, key)?),
                    }
                }
            };
            if result.is_ok() {
                revision = next;
            }
            results.push(match result {
                Ok((kv, None)) => (
                    Ok(WriteOutcome {
                        revision: kv.mod_revision,
                        kv: Some(kv.clone()),
                    }),
                    Some(StoreEvent::Put(kv)),
                ),
                Ok((prev, Some(deleted_at))) => (
                    Ok(WriteOutcome {
                        revision: deleted_at,
                        kv: None,
                    }),
                    Some(StoreEvent::Delete {
                        prev,
                        revision: deleted_at,
                    }),
                ),
                Err(e) => (Err(e), None),
            });
        }
        if revision != self.revision {
            tx.prepare_cached("UPDATE meta SET value = ?1 WHERE name = 'revision'")?
                .execute(params![revision as i64])?;
        }
        let syncing = Instant::now();
        tx.commit()?;
        let sync = syncing.elapsed();
        self.revision = revision;
        self.committed.store(revision, Ordering::Release);
        Ok((results, sync))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::{put, tempdir};

    /// Writes one op through the writer as its own group; its outcome.
    fn write_one(writer: &mut Writer, op: WriteOp) -> Result<WriteOutcome, StorageError> {
        let (reply, mut answer) = oneshot::channel();
        writer.flush(&mut vec![(op, reply)]);
        answer.try_recv().expect("answered")
    }

    fn update(key: &str, value: &str, expected: Revision) -> WriteOp {
        WriteOp::Update {
            key: key.into(),
            value: Bytes::from(value.to_string()),
            expected,
        }
    }

    fn stored(writer: &Writer, key: &str) -> Option<(String, i64)> {
        writer
            .conn
            .query_row(
                "SELECT CAST(value AS TEXT), mod_revision FROM kv WHERE key = ?1",
                [key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .unwrap()
    }

    /// Updates find their row by rowid, and a wrong or missing rowid only sends them the
    /// long way: the right row is written, never another.
    #[test]
    fn updates_reach_their_row_whatever_the_row_map_says() {
        let dir = tempdir();
        let mut writer = Writer::open(&dir.join("db")).unwrap();
        let a = write_one(&mut writer, put("/a", "a1")).unwrap().revision;
        let b = write_one(&mut writer, put("/b", "b1")).unwrap().revision;
        let row_of = |w: &Writer, key: &str| -> i64 {
            w.conn
                .query_row("SELECT rowid FROM kv WHERE key = ?1", [key], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(writer.rows.get("/a"), Some(row_of(&writer, "/a")));

        // The map points /a at /b's row: /a is written, /b is left alone.
        writer.rows.insert("/a", row_of(&writer, "/b"));
        let a = write_one(&mut writer, update("/a", "a2", a)).unwrap().revision;
        assert_eq!(stored(&writer, "/a"), Some(("a2".into(), a as i64)));
        assert_eq!(stored(&writer, "/b"), Some(("b1".into(), b as i64)));
        assert_eq!(writer.rows.get("/a"), Some(row_of(&writer, "/a")));

        // No entry at all (a store written before this process's snapshot).
        writer.rows.remove("/b");
        let b = write_one(&mut writer, update("/b", "b2", b)).unwrap().revision;
        assert_eq!(stored(&writer, "/b"), Some(("b2".into(), b as i64)));

        // A stale revision is still a conflict, by rowid as by key, and a missing key is
        // still not found.
        assert!(matches!(
            write_one(&mut writer, update("/a", "a3", a - 1)),
            Err(StorageError::Conflict)
        ));
        assert!(matches!(
            write_one(&mut writer, update("/c", "c1", 1)),
            Err(StorageError::NotFound)
        ));

        // Deleted and created again, /a lives in a new row, which the map follows.
        write_one(
            &mut writer,
            WriteOp::Delete {
                key: "/a".into(),
                expected: a,
            },
        )
        .unwrap();
        assert_eq!(writer.rows.get("/a"), None);
        let a = write_one(&mut writer, put("/a", "a4")).unwrap().revision;
        let a = write_one(&mut writer, update("/a", "a5", a)).unwrap().revision;
        assert_eq!(stored(&writer, "/a"), Some(("a5".into(), a as i64)));
        assert_eq!(writer.rows.get("/a"), Some(row_of(&writer, "/a")));

        // A snapshot (what a hub takes at start) fills the map from the table.
        writer.rows = RowIds::default();
        writer.snapshot().unwrap();
        assert_eq!(writer.rows.get("/a"), Some(row_of(&writer, "/a")));
        assert_eq!(writer.rows.get("/b"), Some(row_of(&writer, "/b")));
    }

    #[tokio::test]
    async fn revisions_survive_reopen() {
        let dir = tempdir();
        let path = dir.join("db.sqlite");
        {
            let backend = SqliteBackend::open(&path).unwrap();
            backend.write(put("/a", "1")).await.unwrap();
            backend.write(put("/b", "2")).await.unwrap();
            let up = WriteOp::Update {
                key: "/a".into(),
                value: Bytes::from_static(b"3"),
                expected: 1,
            };
            backend.write(up).await.unwrap();
        }
        let backend = SqliteBackend::open(&path).unwrap();
        let snap = backend.snapshot().await.unwrap();
        assert_eq!(snap.revision, 3);
        assert_eq!(snap.items.len(), 2);
        let a = snap.items.iter().find(|kv| kv.key == "/a").unwrap();
        assert_eq!(a.value, Bytes::from_static(b"3"));
        // A delete still advances the revision after a restart.
        let del = backend
            .write(WriteOp::Delete {
                key: "/b".into(),
                expected: 2,
            })
            .await
            .unwrap();
        assert_eq!(del.revision, 4);
    }

    /// A file written with the earlier schema (rows kept in the key's own B-tree) opens
    /// with every object, its revisions and the store's revision, rewritten as a rowid
    /// table, and takes conditional writes as before.
    #[tokio::test]
    async fn a_file_with_the_earlier_table_is_rewritten_and_keeps_everything() {
        let dir = tempdir();
        let path = dir.join("db.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "PRAGMA journal_mode = WAL;
                 CREATE TABLE kv (
                     key TEXT PRIMARY KEY NOT NULL,
                     value BLOB NOT NULL,
                     create_revision INTEGER NOT NULL,
                     mod_revision INTEGER NOT NULL
                 ) WITHOUT ROWID;
                 CREATE TABLE meta (name TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL);
                 INSERT INTO meta (name, value) VALUES ('revision', 7);
                 INSERT INTO kv VALUES ('/a', x'31', 2, 5), ('/b', x'32', 7, 7);",
            )
            .unwrap();
        }
        let backend = SqliteBackend::open(&path).unwrap();
        let snap = backend.snapshot().await.unwrap();
        assert_eq!(snap.revision, 7);
        let mut items: Vec<_> = snap
            .items
            .iter()
            .map(|kv| (kv.key.as_str(), kv.value.clone(), kv.create_revision, kv.mod_revision))
            .collect();
        items.sort();
        assert_eq!(
            items,
            vec![
                ("/a", Bytes::from_static(b"1"), 2, 5),
                ("/b", Bytes::from_static(b"2"), 7, 7)
            ]
        );
        let stale = WriteOp::Update {
            key: "/a".into(),
            value: Bytes::from_static(b"3"),
            expected: 4,
        };
        assert!(matches!(backend.write(stale).await, Err(StorageError::Conflict)));
        let up = WriteOp::Update {
            key: "/a".into(),
            value: Bytes::from_static(b"3"),
            expected: 5,
        };
        assert_eq!(backend.write(up).await.unwrap().revision, 8);
        assert!(matches!(
            backend.write(put("/b", "again")).await,
            Err(StorageError::AlreadyExists)
        ));
        drop(backend);
        let conn = Connection::open(&path).unwrap();
        let sql: String = conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'kv'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(!sql.to_ascii_uppercase().contains("WITHOUT ROWID"), "{sql}");
    }

    /// Concurrent writes share commits, and every commit is reported with its size and its
    /// sync time; the writer answers health checks.
    #[tokio::test]
    async fn commits_are_reported() {
        #[derive(Default)]
        struct Seen(std::sync::Mutex<Vec<Commit>>);
        impl CommitObserver for Seen {
            fn commit(&self, commit: &Commit) {
                self.0.lock().unwrap().push(*commit);
            }
        }
        let dir = tempdir();
        let backend = Arc::new(SqliteBackend::open(&dir.join("db.sqlite")).unwrap());
        let seen = Arc::new(Seen::default());
        backend.observe_commits(seen.clone());
        let writes = (0..50).map(|i| {
            let backend = backend.clone();
            async move { backend.write(put(&format!("/k{i}"), "v")).await.unwrap() }
        });
        futures::future::join_all(writes).await;
        backend.check().await.unwrap();
        let commits = seen.0.lock().unwrap().clone();
        assert_eq!(commits.iter().map(|c| c.writes).sum::<usize>(), 50);
        for commit in &commits {
            assert!(!commit.failed);
            assert!(commit.sync.is_some_and(|sync| sync <= commit.duration), "{commit:?}");
        }
    }

    #[tokio::test]
    async fn conforms() {
        let dir = tempdir();
        crate::conformance::run(|| {
            let path = dir.join(format!("{}.sqlite", uuid::Uuid::new_v4()));
            async move { SqliteBackend::open(&path).unwrap() }
        })
        .await;
    }
}
