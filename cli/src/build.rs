//! What this binary was built from, recorded by the crate's build script.

/// The release version (the workspace's).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit built, or `unknown` (a source archive built without `FAROS_GIT_COMMIT`).
pub const GIT_COMMIT: &str = env!("FAROS_BUILD_COMMIT");
/// When this commit was built (RFC 3339, UTC; `SOURCE_DATE_EPOCH` when set).
pub const BUILD_DATE: &str = env!("FAROS_BUILD_DATE");
/// `--version` of every Faros binary: `0.1.0 (commit <sha>, built <date>)`.
pub const VERSION_LINE: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("FAROS_BUILD_COMMIT"),
    ", built ",
    env!("FAROS_BUILD_DATE"),
    ")"
);
