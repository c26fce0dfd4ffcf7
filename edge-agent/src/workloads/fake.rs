//! The simulator's runtime: every unit runs the moment it is started, and nothing runs at
//! all, so `edge-agent simulate` can take placements for thousands of agents in one process.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::now_rfc3339;
use super::runtime::{Observed, PortBinding, Prepared, RunState, Runtime, RuntimeError, UnitSpec};

pub struct Fake {
    name: &'static str,
    units: Mutex<BTreeMap<(String, String), Observed>>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Fake {
    /// A fake that answers to the runtime name `name` (`podman` or `process`).
    pub fn new(name: &'static str) -> Fake {
        Fake {
            name,
            units: Mutex::default(),
        }
    }
}

impl Runtime for Fake {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn probe(&self) -> Result<(), String> {
        Ok(())
    }

    async fn list(&self) -> Result<Vec<Observed>, RuntimeError> {
        Ok(self
            .units
            .lock()
            .map(|u| u.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn prepare(&self, _unit: &UnitSpec) -> Result<Prepared, RuntimeError> {
        Ok(Prepared::Ready)
    }

    async fn pull(&self, _image: &str) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn start(&self, unit: &UnitSpec) -> Result<String, RuntimeError> {
        let id = format!("fake-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed));
        let observed = Observed {
            placement: unit.placement.clone(),
            unit: unit.unit.clone(),
            hash: unit.hash.clone(),
            id: id.clone(),
            state: RunState::Running {
                started_at: Some(now_rfc3339()),
            },
            image: unit.image().unwrap_or_default().to_string(),
            image_id: String::new(),
            ports: unit.ports().iter().map(PortBinding::declared).collect(),
            warning: None,
        };
        if let Ok(mut units) = self.units.lock() {
            units.insert((unit.placement.clone(), unit.unit.clone()), observed);
        }
        Ok(id)
    }

    async fn restart(&self, unit: &UnitSpec, _current: &Observed) -> Result<(), RuntimeError> {
        self.start(unit).await.map(|_| ())
    }

    async fn remove(&self, current: &Observed) -> Result<(), RuntimeError> {
        if let Ok(mut units) = self.units.lock() {
            units.remove(&(current.placement.clone(), current.unit.clone()));
        }
        Ok(())
    }

    fn poll_interval(&self) -> Option<Duration> {
        // Nothing it runs ever ends by itself.
        None
    }
}
