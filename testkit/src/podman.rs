//! Podman for tests: a private configuration and storage per test, and a tiny image built
//! from the machine's static busybox (images cannot be pulled here).
//!
//! Podman works in these sandboxes only with the `runc` runtime, `cgroupfs` and lowered
//! default ulimits; that configuration is written to a `containers.conf` the test points
//! `CONTAINERS_CONF` at — the machine's own configuration is never touched. A
//! `storage.conf` named by `CONTAINERS_STORAGE_CONF` gives each [`Sandbox`] its own image
//! and container store, so tests never see each other's containers.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The static busybox Debian's `busybox-static` installs.
pub const BUSYBOX: &str = "/bin/busybox";

/// One test's podman: configuration, storage and run state under one directory, removed
/// (with every container in it) on drop.
pub struct Sandbox {
    pub dir: PathBuf,
}

impl Sandbox {
    /// A fresh sandbox. Panics with what to install when podman or busybox is missing: the
    /// tests that use it assert real containers, there is nothing to skip to.
    pub fn new() -> Sandbox {
        assert!(
            Command::new("podman")
                .arg("--version")
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success()),
            "podman is required (apt-get install podman runc busybox-static)"
        );
        assert!(
            Path::new(BUSYBOX).exists(),
            "{BUSYBOX} is required (apt-get install busybox-static)"
        );
        // Short: podman's sockets live under it and socket paths are limited to 108 bytes.
        let id = uuid::Uuid::new_v4().simple().to_string();
        let dir = std::env::temp_dir().join(format!("fp-{}", &id[..10]));
        std::fs::create_dir_all(&dir).expect("create the podman sandbox");
        let d = dir.display();
        std::fs::write(
            dir.join("containers.conf"),
            format!(
                "[containers]\n\
                 default_ulimits = [\"nproc=1024:1024\", \"nofile=1024:1024\"]\n\
                 [engine]\n\
                 runtime = \"runc\"\n\
                 cgroup_manager = \"cgroupfs\"\n\
                 events_logger = \"file\"\n\
                 tmp_dir = \"{d}/tmp\"\n\
                 volume_path = \"{d}/volumes\"\n"
            ),
        )
        .expect("write containers.conf");
        std::fs::write(
            dir.join("storage.conf"),
            format!("[storage]\ndriver = \"overlay\"\ngraphroot = \"{d}/graph\"\nrunroot = \"{d}/run\"\n"),
        )
        .expect("write storage.conf");
        Sandbox { dir }
    }

    /// The environment that points podman at this sandbox.
    pub fn env(&self) -> Vec<(OsString, OsString)> {
        vec![
            ("CONTAINERS_CONF".into(), self.dir.join("containers.conf").into()),
            ("CONTAINERS_STORAGE_CONF".into(), self.dir.join("storage.conf").into()),
        ]
    }

    /// Runs `podman args` in the sandbox.
    pub fn podman(&self, args: &[&str]) -> Output {
        Command::new("podman")
            .args(args)
            .envs(self.env())
            .stdin(Stdio::null())
            .output()
            .expect("run podman")
    }

    /// Runs `podman args` and asserts success; returns stdout.
    pub fn podman_ok(&self, args: &[&str]) -> String {
        crate::succeeded(&format!("podman {args:?}"), &self.podman(args))
    }

    /// Builds image `tag` (e.g. `localhost/demo:1`): busybox with its applets `sh`, `httpd`,
    /// `sleep`, `cat`, `echo`, `env`, `ls`, and a page in `/www/index.html` saying `page`.
    pub fn build_image(&self, tag: &str, page: &str) {
        let root = self.dir.join(format!("rootfs-{}", tag.replace(['/', ':'], "_")));
        let _ = std::fs::remove_dir_all(&root);
        for d in ["bin", "www", "tmp"] {
            std::fs::create_dir_all(root.join(d)).expect("create the image's root");
        }
        std::fs::copy(BUSYBOX, root.join("bin/busybox")).expect("copy busybox");
        for applet in ["sh", "httpd", "sleep", "cat", "echo", "env", "ls", "wget", "kill"] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).expect("link an applet");
        }
        std::fs::write(root.join("www/index.html"), format!("{page}\n")).expect("write the page");
        let tar = self.dir.join("image.tar");
        let out = Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .output()
            .expect("run tar");
        crate::succeeded("tar", &out);
        self.podman_ok(&["import", "--quiet", tar.to_str().expect("a UTF-8 path"), tag]);
        let _ = std::fs::remove_dir_all(&root);
        let _ = std::fs::remove_file(&tar);
    }

    /// `podman inspect` of one container, as JSON text (`{{json .}}` of its first entry).
    pub fn inspect(&self, name: &str, format: &str) -> Option<String> {
        let out = self.podman(&["inspect", "--type", "container", "--format", format, name]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.podman(&["rm", "--all", "--force", "--time", "0"]);
        let _ = self.podman(&["rmi", "--all", "--force"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
