//! Rust types of the non-core APIs the Faros hub serves: kcp-compatible tenancy
//! (`tenancy.kcp.io`, `core.kcp.io`), API exports and bindings (`apis.kcp.io`), and the edge
//! API (`edge.faros.sh`). The hub serves them from the CRDs these types generate, so the
//! published schema and the Rust types never drift apart (a test compares them with
//! `config/crds/`).

pub mod apis;
pub mod conditions;
pub mod edge;
pub mod meta;
pub mod policy;
pub mod tenancy;
pub mod workloads;

pub use conditions::Condition;

/// The API group of the edge API (`Agent`, `Registration`, `Workload`, `Placement`).
pub const EDGE_GROUP: &str = "edge.faros.sh";
/// The served version of the edge API.
pub const EDGE_VERSION: &str = "v1alpha1";
