//! Files replaced in one step: keys, tokens and kubeconfigs (mode `0600`), certificates,
//! and kubeconfigs of the user's that keep the mode they have.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context as _, anyhow};

/// Writes `contents` to `path` as a file only its owner may read or write (mode `0600`),
/// atomically (see [`write_atomic`]).
pub fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    write_atomic(path, contents, 0o600)
}

/// Replaces `path` with `contents` so that readers see the old file or the new one, never a
/// part: the contents go into a temporary file in the same directory, which is flushed to
/// disk and renamed over `path`; the rename is then made durable too. The new file has
/// exactly `mode`, whatever the umask. The directory must exist.
///
/// A symbolic link keeps pointing where it did: the file it names is replaced. Something that
/// is not a file (`-o /dev/null`, a pipe) is written into as it is, never replaced.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    let resolved;
    let path = match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            // The link's target, which need not exist yet (a first write through the link).
            let target = fs::read_link(path).with_context(|| format!("resolving {}", path.display()))?;
            resolved = match path.parent() {
                Some(dir) if target.is_relative() => dir.join(target),
                _ => target,
            };
            resolved.as_path()
        }
        _ => path,
    };
    if let Ok(meta) = fs::metadata(path)
        && !meta.is_file()
        && !meta.is_dir()
    {
        return fs::OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|mut target| target.write_all(contents))
            .with_context(|| format!("writing {}", path.display()));
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| anyhow!("{} has no file name", path.display()))?;
    // One temporary file per call, so that two writers of the same file in one process
    // never write into each other's.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let tmp = parent.join(format!(
        ".{}.tmp-{}-{}",
        file_name.to_string_lossy(),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    // A leftover of a crashed process with the same id (pid 1 in every container) would
    // keep its old mode: start from scratch.
    let _ = fs::remove_file(&tmp);
    let written = (|| -> std::io::Result<()> {
        // Created private, so nobody else can open it before its mode is set.
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        // Set explicitly: the mode given at creation is reduced by the umask.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    // Not every filesystem can sync a directory; the file itself is safe either way.
    if let Ok(dir) = fs::File::open(parent) {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    use std::path::PathBuf;

    /// A fresh directory under the system temp dir, removed on drop.
    pub(crate) struct TempDir(pub(crate) PathBuf);

    impl TempDir {
        pub(crate) fn new(tag: &str) -> TempDir {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!("faros-kubeconfig-test-{}-{tag}-{n}", std::process::id()));
            let _ = fs::remove_dir_all(&path);
            fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    pub(crate) fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn private_file_replaces_a_loose_one_and_leaves_nothing_behind() {
        let dir = TempDir::new("private");
        let path = dir.0.join("key");
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&path, b"secret").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "secret");
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(fs::read_dir(&dir.0).unwrap().count(), 1);
    }

    #[test]
    fn atomic_file_gets_exactly_its_mode() {
        let dir = TempDir::new("mode");
        let path = dir.0.join("ca.crt");
        write_atomic(&path, b"cert", 0o644).unwrap();
        assert_eq!(mode_of(&path), 0o644);
        write_atomic(&path, b"cert", 0o640).unwrap();
        assert_eq!(mode_of(&path), 0o640);
    }

    #[test]
    fn links_are_followed_and_devices_written_into() {
        let dir = TempDir::new("links");
        let real = dir.0.join("config");
        fs::write(&real, "old").unwrap();
        let link = dir.0.join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        write_private(&link, b"new").unwrap();
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(fs::read_to_string(&real).unwrap(), "new");
        // A link to a file that does not exist yet: the file is created, the link kept.
        let dangling = dir.0.join("dangling");
        std::os::unix::fs::symlink("later", &dangling).unwrap();
        write_private(&dangling, b"first").unwrap();
        assert!(fs::symlink_metadata(&dangling).unwrap().file_type().is_symlink());
        assert_eq!(fs::read_to_string(dir.0.join("later")).unwrap(), "first");
        // Through a link, so a regression replaces the link and never the device itself.
        let null = dir.0.join("null");
        std::os::unix::fs::symlink("/dev/null", &null).unwrap();
        write_private(&null, b"discarded").unwrap();
        assert!(fs::symlink_metadata(&null).unwrap().file_type().is_symlink());
        assert!(!fs::metadata("/dev/null").unwrap().is_file());
    }

    #[test]
    fn failure_names_the_file_and_cleans_up() {
        let dir = TempDir::new("fail");
        let path = dir.0.join("missing").join("token");
        let err = write_private(&path, b"t").unwrap_err();
        assert!(format!("{err:#}").contains("missing/token"), "{err:#}");
        // The target is a directory: the rename fails after the temporary file was written.
        let target = dir.0.join("taken");
        fs::create_dir(&target).unwrap();
        assert!(write_private(&target, b"t").is_err());
        assert_eq!(fs::read_dir(&dir.0).unwrap().count(), 1);
    }
}
