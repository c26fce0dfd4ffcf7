//! `hub-api snapshot save|restore`: backups of the embedded (SQLite) store.
//!
//! A snapshot holds the database only. The PKI directory (`<data-dir>/pki`: the CA, the
//! serving certificate and the ServiceAccount signing key) changes only when certificates
//! are issued; back it up with the snapshot, as files, or tokens and kubeconfigs issued before
//! the backup stop working after a restore.

use std::path::PathBuf;

use anyhow::Context as _;

#[derive(Debug, clap::Subcommand)]
pub enum SnapshotCommand {
    /// Writes a consistent copy of a hub's database to FILE while the hub keeps running.
    Save {
        /// Where to write the snapshot (must not exist).
        file: PathBuf,
        /// The hub's data directory.
        #[arg(long, default_value = ".faros")]
        data_dir: PathBuf,
    },
    /// Makes a new data directory from a snapshot; start the hub on it afterwards.
    Restore {
        /// The snapshot to restore.
        file: PathBuf,
        /// The data directory to create the database in (it must not hold one yet). Copy
        /// the `pki` directory of the backup into it to keep the hub's identity.
        #[arg(long)]
        data_dir: PathBuf,
    },
}

pub fn run(command: SnapshotCommand) -> anyhow::Result<()> {
    match command {
        SnapshotCommand::Save { file, data_dir } => {
            let info = faros_storage::sqlite_snapshot(&data_dir.join(crate::start::DATABASE_FILE), &file)
                .with_context(|| format!("saving a snapshot of {}", data_dir.display()))?;
            println!(
                "saved {} keys at revision {} to {}",
                info.keys,
                info.revision,
                file.display()
            );
        }
        SnapshotCommand::Restore { file, data_dir } => {
            std::fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
            let info = faros_storage::sqlite_restore(&file, &data_dir.join(crate::start::DATABASE_FILE))
                .with_context(|| format!("restoring {}", file.display()))?;
            println!(
                "restored {} keys at revision {} into {}",
                info.keys,
                info.revision,
                data_dir.display()
            );
        }
    }
    Ok(())
}
