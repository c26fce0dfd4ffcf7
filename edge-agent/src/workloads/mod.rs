//! Workloads on the device: the agent's side of `Placement`s.
//!
//! ```text
//!  hub ──watch (own label)──▶ source ──Assignment──▶ Reconciler ──▶ Runtime (podman | process | fake)
//!                                                        │  ▲ list / start / restart / remove
//!                                                        ▼
//!                                   StatusBoard ──▶ Reporter ──patch placements/status──▶ hub
//!                                   summary ──▶ Agent status (capacity, allocated, workloads)
//! ```
//!
//! The reconciler owns every decision (what to start, restart, replace and remove, restart
//! policy and backoff, restart counts); runtimes only create, observe and remove *units* — one
//! container, or the one process of a placement — and label them so they are found again.
//! The assignments live in the state directory, so the device keeps running, restarting and
//! re-adopting its workloads while the hub is away (the contract is in `docs/workloads.md`).

pub mod fake;
pub mod logs;
pub mod podman;
pub mod process;
mod reconcile;
mod report;
mod restart;
pub mod runtime;
mod source;
mod state;
mod status;

use std::path::{Path, PathBuf};

pub use reconcile::{Reconciler, ReconcilerOptions, WorkloadSummary};
pub use report::{Reporter, StatusBoard};
pub use runtime::{AnyRuntime, Observed, Prepared, RunState, Runtime, RuntimeError, RuntimeSet, UnitKind, UnitSpec};
pub use source::{demultiplex_placements, watch_placements};

use faros_api::workloads::Placement;

/// The agent a reconciler works for: what it labels its containers with, and what it
/// filters them by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentRef {
    pub namespace: String,
    pub name: String,
}

impl AgentRef {
    /// The value of [`labels::AGENT`] on what this agent starts: `<namespace>/<name>`.
    pub fn label_value(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// The labels the agent puts on what it starts, so that it finds them again after a crash.
pub mod labels {
    /// `<namespace>/<agent>`: whose it is.
    pub const AGENT: &str = "edge.faros.sh/agent";
    pub const PLACEMENT: &str = "edge.faros.sh/placement";
    /// The container's name in the template.
    pub const CONTAINER: &str = "edge.faros.sh/container";
    /// The hash of everything that, changed, means replacing the container.
    pub const HASH: &str = "edge.faros.sh/hash";
    /// The `spec.templateHash` of the Placement it was started for.
    pub const TEMPLATE_HASH: &str = "edge.faros.sh/template-hash";
    /// Set when the container was started without its resource limits (no usable cgroups).
    pub const LIMITS_DROPPED: &str = "edge.faros.sh/limits-dropped";
}

/// A change of the assignments, from the hub. The placements are boxed so that the channel
/// carrying these (the simulator keeps one per agent) stays small while idle: 4 KiB less per
/// simulated agent.
#[derive(Clone, Debug)]
pub enum Assignment {
    /// A complete list from the hub: whatever it lacks is no longer assigned.
    Snapshot(Vec<Placement>),
    /// One placement was created or changed.
    Apply(Box<Placement>),
    /// One placement was deleted.
    Delete(Box<Placement>),
}

/// Where the agent keeps workload state under its state directory:
///
/// ```text
/// <state>/workloads/assignments.json      what the hub assigned, restart counts
/// <state>/workloads/placements/<name>/    one placement: emptyDir volumes, process record,
///                                          stdout/stderr logs; removed with the placement
/// ```
#[derive(Clone, Debug)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// The layout under the agent's state directory.
    pub fn new(state_dir: &Path) -> Layout {
        Layout {
            root: state_dir.join("workloads"),
        }
    }

    pub fn assignments_file(&self) -> PathBuf {
        self.root.join("assignments.json")
    }

    pub fn placements_dir(&self) -> PathBuf {
        self.root.join("placements")
    }

    /// The directory of placement `name` (a DNS subdomain, checked by [`valid_placement_name`]).
    pub fn placement_dir(&self, name: &str) -> PathBuf {
        self.placements_dir().join(name)
    }

    pub fn empty_dir(&self, placement: &str, volume: &str) -> PathBuf {
        self.placement_dir(placement).join("volumes").join(volume)
    }
}

/// Placement names become directory and container names: only DNS subdomains are accepted
/// (the hub enforces that too; this keeps a malformed object from naming `..`).
pub fn valid_placement_name(name: &str) -> bool {
    faros_api::meta::is_dns_subdomain(name)
}

/// RFC 3339 at whole seconds, as Kubernetes timestamps are.
pub(crate) fn now_rfc3339() -> String {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second()).unwrap_or(now).to_string()
}

pub(crate) fn unix_to_rfc3339(seconds: i64) -> Option<String> {
    // Podman reports "never" as the zero time of Go, far before 1970.
    (seconds > 0)
        .then(|| jiff::Timestamp::from_second(seconds).ok())
        .flatten()
        .map(|t| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_names_are_checked_before_they_become_paths() {
        assert!(valid_placement_name("web-dev1-a1b2c3"));
        assert!(valid_placement_name("a.b"));
        for bad in ["", "..", ".", "a/b", "A", "-a", "a..b"] {
            assert!(!valid_placement_name(bad), "{bad}");
        }
        let layout = Layout::new(Path::new("/s"));
        assert_eq!(
            layout.empty_dir("p", "v"),
            Path::new("/s/workloads/placements/p/volumes/v")
        );
        assert_eq!(unix_to_rfc3339(-62135596800), None);
        assert_eq!(unix_to_rfc3339(1700000000).as_deref(), Some("2023-11-14T22:13:20Z"));
    }
}
