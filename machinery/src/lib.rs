//! Faros machinery: the semantics of the Kubernetes API, with no server around them.
//!
//! Everything here is a pure function of its input: how a `Status` error looks, how label
//! and field selectors parse and match, how JSONPath evaluates, how a structural schema
//! prunes, defaults and validates, how strategic merge patches apply, how `kubectl get`
//! tables render, how request bodies (JSON, YAML, protobuf) decode and JSON and merge patches
//! apply, how Go durations read and print, and how object metadata is read and stamped. It
//! knows nothing of HTTP routing, storage, authentication or workspaces.

pub mod decode;
pub mod duration;
// Entry points for the fuzzers in `fuzz/` and the corpus replay test; not an API.
#[doc(hidden)]
pub mod fuzzing;
pub mod jsonpath;
pub mod object;
pub mod protobuf;
pub mod schema;
pub mod selector;
pub mod status;
pub mod strategic_merge;
pub mod table;
pub mod validation;
