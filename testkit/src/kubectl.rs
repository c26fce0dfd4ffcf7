//! The real kubectl binaries (`kubectl.1.27` … `kubectl.1.33`, shipped beside the machine's
//! `kubectl` dispatcher), found and run the same way by every crate's tests.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The kubectl every suite speaks by default.
pub const BASELINE: &str = "1.32";

/// The real kubectl of a minor version (`"1.32"`), if it is installed.
pub fn binary(version: &str) -> Option<PathBuf> {
    let name = format!("kubectl.{version}");
    let mut dirs: Vec<PathBuf> = ["/usr/lib/google-cloud-sdk/bin", "/usr/local/bin", "/usr/bin"]
        .iter()
        .map(PathBuf::from)
        .collect();
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs.into_iter().map(|d| d.join(&name)).find(|p| p.exists())
}

/// Whether kubectl `version` is installed; when it is not, says on stderr that the caller
/// skips it, so a machine with fewer kubectl versions runs the rest instead of failing. The
/// [`BASELINE`] version is never optional: without it the suites would test nothing.
pub fn installed(version: &str) -> bool {
    let found = binary(version).is_some();
    assert!(
        found || version != BASELINE,
        "kubectl.{BASELINE} is required (`dpkg -L kubectl | grep kubectl.1.` lists what is installed)"
    );
    if !found {
        eprintln!("skipped: kubectl.{version} is not installed here (`dpkg -L kubectl | grep kubectl.1.` lists them)");
    }
    found
}

/// Runs kubectl `version` with `args` against `kubeconfig`, `HOME` set to `home` (where the
/// plugin keeps its state), feeding `stdin` if given.
pub fn run(version: &str, kubeconfig: &Path, home: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let binary = binary(version).unwrap_or_else(|| {
        panic!("kubectl.{version} is not installed here (`dpkg -L kubectl | grep kubectl.1.` lists them)")
    });
    let mut child = Command::new(binary)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", home)
        .env_remove("KUBECTL_EXTERNAL_DIFF")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kubectl");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(input.as_bytes())
            .expect("write kubectl's stdin");
    }
    child.wait_with_output().expect("wait for kubectl")
}

/// Polls `check` every 100 ms until it returns true (then true) or `timeout` passes (false).
pub fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}
