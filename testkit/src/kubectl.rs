//! The real kubectl binaries (`kubectl.1.27` … `kubectl.1.33`, shipped beside the machine's
//! `kubectl` dispatcher), found and run the same way by every crate's tests.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
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

/// `kubectl get <resource> --watch --output-watch-events` running in the background, its
/// output read line by line; killed on drop.
pub struct Watch {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Every line read so far.
    seen: Vec<String>,
    /// Lines before this one were passed by [`Watch::expect`].
    next: usize,
}

impl Watch {
    /// Starts kubectl `version` watching `resource` (`configmaps`, say, plus any further
    /// arguments in `args`) against `kubeconfig`.
    pub fn start(version: &str, kubeconfig: &Path, resource: &str, args: &[&str]) -> Watch {
        let binary = binary(version).unwrap_or_else(|| panic!("kubectl.{version} is not installed here"));
        let mut child = Command::new(binary)
            .args([
                "get",
                resource,
                "--watch",
                "--output-watch-events",
                "--request-timeout=300s",
            ])
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start kubectl get --watch");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Watch {
            child,
            lines,
            seen: Vec::new(),
            next: 0,
        }
    }

    /// Waits up to `timeout` for a line whose first columns are `event` (`ADDED`, ...) and
    /// `name`, after the line the previous call found; panics with what the watch printed if
    /// none comes.
    pub fn expect(&mut self, event: &str, name: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let matches = |line: &str| {
            let mut columns = line.split_whitespace();
            columns.next() == Some(event) && columns.next() == Some(name)
        };
        if let Some(at) = self.seen[self.next..].iter().position(|line| matches(line)) {
            self.next += at + 1;
            return;
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = matches(&line);
                    self.seen.push(line);
                    if found {
                        self.next = self.seen.len();
                        return;
                    }
                }
                Err(_) => {
                    let state = match self.child.try_wait() {
                        Ok(Some(status)) => format!("kubectl exited ({status})"),
                        _ => "kubectl still runs".to_string(),
                    };
                    panic!(
                        "no {event} {name} in the watch within {timeout:?} ({state}); it printed:\n{}",
                        self.seen.join("\n")
                    );
                }
            }
        }
    }

    /// Whether kubectl still runs (a watch whose server went away ends).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
