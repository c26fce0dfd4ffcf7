//! A backend that keeps everything in memory: the same contract as SQLite without files or
//! fsyncs, for tests and in-process harnesses. Nothing survives the process.

use std::collections::BTreeMap;
use std::sync::Mutex;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::mpsc;

use crate::backend::{Backend, Change, KeyValue, Revision, Snapshot, StorageError, StoreEvent, WriteOp, WriteOutcome};

#[derive(Default)]
pub struct MemoryBackend {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    items: BTreeMap<String, KeyValue>,
    revision: Revision,
    subscribers: Vec<mpsc::UnboundedSender<Change>>,
}

impl MemoryBackend {
    pub fn new() -> MemoryBackend {
        MemoryBackend::default()
    }

    fn apply(&self, op: WriteOp) -> Result<WriteOutcome, StorageError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let revision = state.revision + 1;
        let current = state.items.get(op.key());
        let (outcome, event) = match (op, current) {
            (WriteOp::Create { .. }, Some(_)) => return Err(StorageError::AlreadyExists),
            (WriteOp::Update { .. } | WriteOp::Delete { .. }, None) => return Err(StorageError::NotFound),
            (WriteOp::Update { expected, .. } | WriteOp::Delete { expected, .. }, Some(kv))
                if kv.mod_revision != expected =>
            {
                return Err(StorageError::Conflict);
            }
            (WriteOp::Create { key, value }, None) => {
                let kv = KeyValue {
                    key,
                    value,
                    create_revision: revision,
                    mod_revision: revision,
                };
                put(&mut state, kv)
            }
            (WriteOp::Update { key, value, .. }, Some(kv)) => {
                let kv = KeyValue {
                    key,
                    value,
                    create_revision: kv.create_revision,
                    mod_revision: revision,
                };
                put(&mut state, kv)
            }
            (WriteOp::Delete { key, .. }, Some(_)) => {
                let prev = state.items.remove(&key).expect("the key was just read");
                let outcome = WriteOutcome { revision, kv: None };
                (outcome, StoreEvent::Delete { prev, revision })
            }
        };
        state.revision = revision;
        // Sent under the lock, so subscribers see writes in revision order.
        state.subscribers.retain(|s| {
            s.send(Change::Batch {
                events: vec![event.clone()],
                revision,
            })
            .is_ok()
        });
        Ok(outcome)
    }

    /// Tells every subscriber that its stream is lost, as a shared store does when the
    /// history a subscriber needs was compacted.
    #[cfg(test)]
    pub(crate) fn lose_subscribers(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for subscriber in state.subscribers.drain(..) {
            let _ = subscriber.send(Change::Lost {
                reason: "lost for a test".into(),
            });
        }
    }
}

fn put(state: &mut State, kv: KeyValue) -> (WriteOutcome, StoreEvent) {
    state.items.insert(kv.key.clone(), kv.clone());
    let outcome = WriteOutcome {
        revision: kv.mod_revision,
        kv: Some(kv.clone()),
    };
    (outcome, StoreEvent::Put(kv))
}

impl Backend for MemoryBackend {
    fn snapshot(&self) -> BoxFuture<'_, Result<Snapshot, StorageError>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (tx, rx) = mpsc::unbounded_channel();
        state.subscribers.push(tx);
        let snapshot = Snapshot {
            items: state.items.values().cloned().collect(),
            revision: state.revision,
            changes: rx,
        };
        futures::future::ready(Ok(snapshot)).boxed()
    }

    fn write(&self, op: WriteOp) -> BoxFuture<'_, Result<WriteOutcome, StorageError>> {
        futures::future::ready(self.apply(op)).boxed()
    }

    fn compact(&self) -> BoxFuture<'_, Result<(), StorageError>> {
        futures::future::ready(Ok(())).boxed()
    }

    fn current_revision(&self) -> BoxFuture<'_, Result<Revision, StorageError>> {
        let revision = self.state.lock().unwrap_or_else(|e| e.into_inner()).revision;
        futures::future::ready(Ok(revision)).boxed()
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn conforms() {
        crate::conformance::run(|| async { super::MemoryBackend::new() }).await;
    }
}
