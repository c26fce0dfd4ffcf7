//! What the backends report about their commits. This crate only measures: the process that
//! runs a backend decides where the numbers go (the hub exports them as Prometheus metrics).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// One commit: writes made durable together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Commit {
    /// How many writes it carried: SQLite folds concurrent writes into one transaction, etcd
    /// commits one per transaction.
    pub writes: usize,
    /// From the start of the transaction until the store answered.
    pub duration: Duration,
    /// The part of `duration` spent making it durable: SQLite's COMMIT, which appends the
    /// group to the write-ahead log and fsyncs it. None where the store syncs out of sight
    /// (etcd's members).
    pub sync: Option<Duration>,
    /// The store could not commit (every write in it failed as unavailable).
    pub failed: bool,
}

/// Receives a report of every commit a backend makes.
pub trait CommitObserver: Send + Sync + 'static {
    fn commit(&self, commit: &Commit);
}

/// A backend's observer, set at most once after it opened and read by its writer.
#[derive(Clone, Default)]
pub(crate) struct ObserverSlot(Arc<OnceLock<Arc<dyn CommitObserver>>>);

impl ObserverSlot {
    pub(crate) fn set(&self, observer: Arc<dyn CommitObserver>) {
        let _ = self.0.set(observer);
    }

    pub(crate) fn report(&self, commit: Commit) {
        if let Some(observer) = self.0.get() {
            observer.commit(&commit);
        }
    }
}
