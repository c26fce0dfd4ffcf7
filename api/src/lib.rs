//! Rust types of the non-core APIs the Faros hub serves.

/// The API group of the edge API (`Agent`, `Registration`).
pub const EDGE_GROUP: &str = "edge.faros.sh";
/// The served version of the edge API.
pub const EDGE_VERSION: &str = "v1alpha1";
