//! The assignments the agent keeps in its state directory, so that it runs, restarts and
//! re-adopts its workloads without the hub: each placement as the hub last gave it, and the
//! restart counts and last terminations of its units (podman keeps no restart count for
//! containers the agent restarts itself, and a process has no one else to count).

use std::collections::BTreeMap;
use std::path::PathBuf;

use faros_api::workloads::{PlacementSpec, TerminatedState};
use serde::{Deserialize, Serialize};

const VERSION: u32 = 1;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Saved {
    #[serde(default)]
    pub(crate) version: u32,
    #[serde(default)]
    pub(crate) placements: BTreeMap<String, SavedPlacement>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SavedPlacement {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) restart: Option<String>,
    pub(crate) spec: PlacementSpec,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) units: BTreeMap<String, SavedUnit>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SavedUnit {
    /// The unit hash the counts belong to: a replaced unit starts from zero.
    pub(crate) hash: String,
    #[serde(default)]
    pub(crate) restart_count: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) last_termination: Option<TerminatedState>,
}

/// Where [`Saved`] lives; `None` keeps it in memory only (the simulator).
#[derive(Clone, Debug)]
pub(crate) struct Store {
    path: Option<PathBuf>,
}

/// What loading found.
pub(crate) enum Loaded {
    /// The file as written last.
    Found(Saved),
    /// No file: a first start, or the state directory was wiped.
    Absent,
    /// A file that cannot be read: nothing in it is trusted, nothing removed for its sake.
    Unreadable(String),
}

impl Store {
    pub(crate) fn new(path: Option<PathBuf>) -> Store {
        Store { path }
    }

    pub(crate) fn load(&self) -> Loaded {
        let Some(path) = &self.path else {
            return Loaded::Absent;
        };
        match std::fs::read(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Loaded::Absent,
            Err(e) => Loaded::Unreadable(format!("reading {}: {e}", path.display())),
            Ok(bytes) => match serde_json::from_slice::<Saved>(&bytes) {
                Ok(saved) if saved.version <= VERSION => Loaded::Found(saved),
                Ok(saved) => Loaded::Unreadable(format!(
                    "{} has version {}, newer than this agent's {VERSION}",
                    path.display(),
                    saved.version
                )),
                Err(e) => Loaded::Unreadable(format!("parsing {}: {e}", path.display())),
            },
        }
    }

    /// Replaces the file atomically; private, as templates may carry secrets in `env`.
    pub(crate) fn save(&self, saved: &Saved) -> anyhow::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut saved = saved.clone();
        saved.version = VERSION;
        let body = serde_json::to_vec_pretty(&saved)?;
        faros_kubeconfig::write_private(path, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_what_it_cannot_trust() {
        let dir = std::env::temp_dir().join(format!("faros-agent-state-{}", std::process::id()));
        let path = dir.join("workloads/assignments.json");
        let store = Store::new(Some(path.clone()));
        assert!(matches!(store.load(), Loaded::Absent));
        let mut saved = Saved::default();
        saved.placements.insert(
            "p".into(),
            SavedPlacement {
                generation: Some(2),
                units: [(
                    "web".to_string(),
                    SavedUnit {
                        hash: "h".into(),
                        restart_count: 3,
                        last_termination: None,
                    },
                )]
                .into(),
                ..Default::default()
            },
        );
        store.save(&saved).unwrap();
        let Loaded::Found(back) = store.load() else {
            panic!("saved state reads back")
        };
        assert_eq!(back.placements, saved.placements);
        std::fs::write(&path, b"{not json").unwrap();
        assert!(matches!(store.load(), Loaded::Unreadable(_)));
        std::fs::write(&path, br#"{"version": 99}"#).unwrap();
        assert!(matches!(store.load(), Loaded::Unreadable(_)));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(Store::new(None).load(), Loaded::Absent));
    }
}
