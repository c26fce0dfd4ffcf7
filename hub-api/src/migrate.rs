//! `hub-api migrate --from sqlite:DIR --to etcd:URL` (and back): moves a stopped hub's every
//! object, in every workspace, from one backend to another, and checks the copy.
//!
//! Keys are the same in both backends (the workspace is part of each key), so the copy is
//! key by key. Every object is created anew in the destination and gets its next revision:
//! resourceVersions change, so clients re-list once they reach the moved hub, as after a
//! restore. The source is only read; the destination must be empty, so a migration can be
//! repeated from scratch but never merges two stores.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, bail, ensure};
use faros_storage::Backend;

use crate::start::{DATABASE_FILE, EtcdFlags, StorageKind, StorageOptions};

#[derive(Debug, Clone, clap::Args)]
pub struct MigrateOptions {
    /// The store to copy from: `sqlite:DATA_DIR` or `etcd:URL[,URL...]`. Stop the hub first.
    #[arg(long)]
    pub from: String,
    /// The store to copy to (empty): `sqlite:DATA_DIR` or `etcd:URL[,URL...]`.
    #[arg(long)]
    pub to: String,
    #[command(flatten)]
    pub etcd: EtcdFlags,
}

/// One side of a migration, parsed from `sqlite:DIR` or `etcd:URLS`.
enum Store {
    Sqlite(PathBuf),
    Etcd(Vec<String>),
}

impl Store {
    fn parse(text: &str) -> anyhow::Result<Store> {
        match text.split_once(':') {
            Some(("sqlite", dir)) if !dir.is_empty() => Ok(Store::Sqlite(PathBuf::from(dir))),
            Some(("etcd", urls)) if !urls.is_empty() => Ok(Store::Etcd(urls.split(',').map(str::to_string).collect())),
            _ => bail!("{text:?} names no store; use sqlite:DATA_DIR or etcd:URL[,URL...]"),
        }
    }

    /// Opens the store; `destination` says whether it is written to (it must then be new
    /// or empty) or read (it must exist).
    async fn open(&self, opts: &MigrateOptions, destination: bool) -> anyhow::Result<Arc<dyn Backend>> {
        let storage = match self {
            Store::Sqlite(dir) => {
                let db = dir.join(DATABASE_FILE);
                if destination {
                    ensure!(
                        !db.exists(),
                        "{} already holds a database; migrate into a new data directory",
                        dir.display()
                    );
                    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
                } else {
                    ensure!(db.is_file(), "{} has no database ({DATABASE_FILE})", dir.display());
                }
                StorageOptions {
                    kind: StorageKind::Sqlite,
                    etcd_servers: Vec::new(),
                    etcd: EtcdFlags {
                        etcd_cafile: None,
                        etcd_certfile: None,
                        etcd_keyfile: None,
                        etcd_prefix: opts.etcd.etcd_prefix.clone(),
                    },
                    etcd_compaction_interval: std::time::Duration::ZERO,
                }
            }
            Store::Etcd(urls) => StorageOptions {
                kind: StorageKind::Etcd,
                etcd_servers: urls.clone(),
                etcd: opts.etcd.clone(),
                etcd_compaction_interval: std::time::Duration::ZERO,
            },
        };
        let dir = match self {
            Store::Sqlite(dir) => dir.clone(),
            Store::Etcd(_) => PathBuf::new(),
        };
        Ok(crate::start::open_storage(&storage, &dir).await?.0)
    }
}

pub async fn run(opts: MigrateOptions) -> anyhow::Result<()> {
    let (from, to) = (Store::parse(&opts.from)?, Store::parse(&opts.to)?);
    let source = from.open(&opts, false).await.context("opening the source")?;
    let destination = to.open(&opts, true).await.context("opening the destination")?;
    let already = destination
        .snapshot()
        .await
        .context("reading the destination")?
        .items
        .len();
    ensure!(
        already == 0,
        "the destination already holds {already} keys; migrate into an empty store"
    );
    let copied = faros_storage::copy_all(source.as_ref(), destination.as_ref())
        .await
        .context("copying")?;
    // The check reads both stores afresh and compares every key and value.
    let contents = |snapshot: faros_storage::Snapshot| -> BTreeMap<String, bytes::Bytes> {
        snapshot.items.into_iter().map(|kv| (kv.key, kv.value)).collect()
    };
    let before = contents(source.snapshot().await?);
    let after = contents(destination.snapshot().await?);
    ensure!(
        before == after,
        "the copy differs from the source ({} keys there, {} here); was the source hub still running?",
        before.len(),
        after.len()
    );
    println!(
        "copied {copied} objects from {} to {}; both hold {} keys",
        opts.from,
        opts.to,
        after.len()
    );
    Ok(())
}
