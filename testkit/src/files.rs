//! A test's own directory under the system's temporary one.

use std::path::{Path, PathBuf};

/// A test's own files (token files, audit logs, PKI, the data of a hub it runs itself):
/// removed when the test passes, kept for a post-mortem when it fails.
pub struct TestDir(PathBuf);

impl TestDir {
    /// A new, empty directory named after `name` and unique to this call.
    pub fn new(name: &str) -> TestDir {
        let dir = std::env::temp_dir().join(format!("faros-{name}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        TestDir(dir)
    }
}

impl std::ops::Deref for TestDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test files kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
