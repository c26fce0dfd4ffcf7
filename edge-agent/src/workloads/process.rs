//! Supervised processes, for devices without a container runtime.
//!
//! Each process runs in its own process group (so signals to the agent's group, and the
//! agent's own exit, leave it alone) with stdout and stderr appended straight to files in
//! its placement's directory: no pipe ties it to the agent, so it keeps running while the
//! agent restarts. The agent records the pid *and* the process's start time (field 22 of
//! `/proc/<pid>/stat`) and re-adopts a running process only if both still match, so a
//! recycled pid is never taken for the workload.
//!
//! While the agent is the parent it waits for the process and records its exit code. A
//! process that ends while adopted by a restarted agent (its parent is then init) leaves no
//! exit status the agent could read: it is reported with exit code -1 and reason `Unknown`,
//! and counts as a failure for the restart policy.
//!
//! Logs are capped by copy-and-truncate: once a file passes the cap it is copied to
//! `<file>.1` (replacing the previous one) and truncated; the process, writing in append
//! mode, carries on at the start. The check runs at every poll, so a file may pass the cap
//! by what the process writes in one poll interval, and lines written between the copy and
//! the truncation are lost.
//!
//! Signals go through kill(1): the workspace forbids unsafe code, and one call to stop a
//! process group does not justify a dependency.

use std::collections::HashMap;
use std::os::unix::fs::OpenOptionsExt as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faros_api::workloads::ContainerPort;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::runtime::{Observed, PortBinding, Prepared, RunState, Runtime, RuntimeError, UnitKind, UnitSpec};
use super::{Layout, now_rfc3339};

/// The PATH a process starts with unless its template sets one.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const RECORD: &str = "process.json";
const EXIT: &str = "exit.json";
pub const STDOUT: &str = "stdout.log";
pub const STDERR: &str = "stderr.log";

#[derive(Clone, Debug)]
pub struct ProcessConfig {
    pub layout: Layout,
    /// Largest size of each log file before it is rotated.
    pub log_max_bytes: u64,
    /// How long a process may take to exit on SIGTERM before its group is killed.
    pub stop_grace: Duration,
    /// How often processes are checked (re-adopted ones, logs).
    pub poll_interval: Duration,
}

/// What the agent knows of a process it started, in `process.json` beside its logs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    unit: String,
    hash: String,
    pid: u32,
    /// Clock ticks after boot at which the process started (`/proc/<pid>/stat` field 22).
    start_ticks: u64,
    started_at: String,
    path: String,
    #[serde(default)]
    ports: Vec<ContainerPort>,
}

/// How it ended, written by the agent that was its parent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Exit {
    pid: u32,
    start_ticks: u64,
    exit_code: i32,
    finished_at: String,
}

pub struct Processes {
    config: ProcessConfig,
    wake: Arc<Notify>,
    /// Processes this agent is the parent of and still waits for, by placement.
    waiting: Arc<Mutex<HashMap<String, u32>>>,
}

impl Processes {
    /// `wake` is notified whenever a child of the agent exits.
    pub fn new(config: ProcessConfig, wake: Arc<Notify>) -> Processes {
        Processes {
            config,
            wake,
            waiting: Default::default(),
        }
    }

    fn dir(&self, placement: &str) -> PathBuf {
        self.config.layout.placement_dir(placement)
    }

    fn observe(&self, placement: &str, dir: &Path) -> Option<Observed> {
        let record: Record = read_json(&dir.join(RECORD))?;
        let waited = self.waiting.lock().ok()?.get(placement) == Some(&record.pid);
        let state = match proc_stat(record.pid) {
            Some((state, ticks)) if ticks == record.start_ticks && (state != 'Z' || waited) => RunState::Running {
                started_at: Some(record.started_at.clone()),
            },
            // Ended; the waiting task is about to record how.
            _ if waited => RunState::Running {
                started_at: Some(record.started_at.clone()),
            },
            _ => {
                let exit: Option<Exit> = read_json(&dir.join(EXIT));
                let exit = exit.filter(|e| e.pid == record.pid && e.start_ticks == record.start_ticks);
                RunState::Exited {
                    exit_code: exit.as_ref().map(|e| e.exit_code),
                    started_at: Some(record.started_at.clone()),
                    finished_at: exit.map(|e| e.finished_at),
                }
            }
        };
        if matches!(state, RunState::Running { .. }) {
            for log in [STDOUT, STDERR] {
                if let Err(e) = rotate(&dir.join(log), self.config.log_max_bytes) {
                    tracing::warn!(%placement, error = %e, "could not rotate a process log");
                }
            }
        }
        Some(Observed {
            placement: placement.to_string(),
            unit: record.unit,
            hash: record.hash,
            id: record.pid.to_string(),
            state,
            image: record.path,
            image_id: String::new(),
            ports: record.ports.iter().map(PortBinding::declared).collect(),
            warning: None,
        })
    }

    /// Sends `signal` to the process group of `pid` (the process is its group's leader).
    async fn signal_group(pid: u32, signal: &str) {
        let _ = tokio::process::Command::new("kill")
            .args([format!("-{signal}"), "--".into(), format!("-{pid}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    faros_kubeconfig::write_atomic(path, &serde_json::to_vec_pretty(value)?, 0o600)
}

/// Whether placement `placement` is (or was last) run by the process runtime: its record is
/// in the placement directory.
pub(crate) fn is_process_placement(layout: &Layout, placement: &str) -> bool {
    layout.placement_dir(placement).join(RECORD).is_file()
}

/// Where the process of `placement` works now: the working directory of the recorded
/// process as the kernel knows it (its spec may name another than the placement
/// directory, and the agent keeps no spec here), else the placement directory.
pub(crate) fn working_dir(layout: &Layout, placement: &str) -> PathBuf {
    let dir = layout.placement_dir(placement);
    read_json::<Record>(&dir.join(RECORD))
        // The pid must still be the recorded process, not a reuse of its number.
        .filter(|r| proc_stat(r.pid).is_some_and(|(_, ticks)| ticks == r.start_ticks))
        .and_then(|r| std::fs::read_link(format!("/proc/{}/cwd", r.pid)).ok())
        .unwrap_or(dir)
}

/// State and start time of process `pid`, from `/proc/<pid>/stat`. The command name (field
/// 2) may hold spaces and parentheses, so fields are counted after its last `)`.
pub(crate) fn proc_stat(pid: u32) -> Option<(char, u64)> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn parse_stat(stat: &str) -> Option<(char, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: field 3 (state) is index 0, field 22 (starttime) is index 19.
    let state = fields.first()?.chars().next()?;
    let ticks = fields.get(19)?.parse().ok()?;
    Some((state, ticks))
}

/// Copy-truncate rotation of `path` once it is larger than `max`.
fn rotate(path: &Path, max: u64) -> std::io::Result<bool> {
    let size = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if size <= max {
        return Ok(false);
    }
    let mut previous = path.as_os_str().to_owned();
    previous.push(".1");
    std::fs::copy(path, &previous)?;
    std::fs::OpenOptions::new().write(true).open(path)?.set_len(0)?;
    Ok(true)
}

fn open_log(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// 128 + the signal for a process killed by one, as shells and container runtimes report.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(-1)
}

impl Runtime for Processes {
    fn name(&self) -> &'static str {
        faros_api::workloads::RUNTIME_PROCESS
    }

    async fn probe(&self) -> Result<(), String> {
        // Needs /proc to re-adopt processes safely.
        proc_stat(std::process::id())
            .map(|_| ())
            .ok_or_else(|| "/proc is not readable: processes could not be re-adopted safely".to_string())
    }

    async fn list(&self) -> Result<Vec<Observed>, RuntimeError> {
        let root = self.config.layout.placements_dir();
        let entries = match std::fs::read_dir(&root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(RuntimeError::new(
                    "RuntimeError",
                    format!("reading {}: {e}", root.display()),
                ));
            }
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(seen) = self.observe(&name, &entry.path()) {
                out.push(seen);
            }
        }
        Ok(out)
    }

    async fn prepare(&self, unit: &UnitSpec) -> Result<Prepared, RuntimeError> {
        match &unit.kind {
            UnitKind::Process { .. } => Ok(Prepared::Ready),
            UnitKind::Container { .. } => Err(RuntimeError::new(
                "RuntimeError",
                "the process runtime runs processes, not containers",
            )),
        }
    }

    async fn pull(&self, _image: &str) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn start(&self, unit: &UnitSpec) -> Result<String, RuntimeError> {
        let UnitKind::Process { process, working_dir } = &unit.kind else {
            return Err(RuntimeError::new("RuntimeError", "not a process"));
        };
        let start_error = |what: String| RuntimeError::new("StartError", what);
        let dir = self.dir(&unit.placement);
        std::fs::create_dir_all(&dir).map_err(|e| start_error(format!("creating {}: {e}", dir.display())))?;
        std::fs::create_dir_all(working_dir)
            .map_err(|e| start_error(format!("creating {}: {e}", working_dir.display())))?;
        let stdout = open_log(&dir.join(STDOUT)).map_err(|e| start_error(format!("opening the log: {e}")))?;
        let stderr = open_log(&dir.join(STDERR)).map_err(|e| start_error(format!("opening the log: {e}")))?;
        let mut command = tokio::process::Command::new(&process.path);
        // A clean environment: the agent's own (credentials' paths, proxies) is not the
        // workload's business.
        command
            .args(&process.args)
            .env_clear()
            .env("PATH", DEFAULT_PATH)
            .envs(process.env.iter().map(|e| (&e.name, &e.value)))
            .current_dir(working_dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            // Its own group: it outlives the agent and is stopped as a whole.
            .process_group(0)
            .kill_on_drop(false);
        let mut child = command
            .spawn()
            .map_err(|e| start_error(format!("starting {}: {e}", process.path)))?;
        let Some(pid) = child.id() else {
            return Err(start_error(format!("{} exited at once", process.path)));
        };
        let start_ticks = proc_stat(pid).map(|(_, t)| t).unwrap_or_default();
        let record = Record {
            unit: unit.unit.clone(),
            hash: unit.hash.clone(),
            pid,
            start_ticks,
            started_at: now_rfc3339(),
            path: process.path.clone(),
            ports: process.ports.clone(),
        };
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.insert(unit.placement.clone(), pid);
        }
        if let Err(e) = write_json(&dir.join(RECORD), &record) {
            // Without its record it could not be found again: do not leave it running.
            let _ = child.start_kill();
            return Err(start_error(format!("recording the process: {e:#}")));
        }
        let waiting = self.waiting.clone();
        let wake = self.wake.clone();
        let placement = unit.placement.clone();
        tokio::spawn(async move {
            let code = match child.wait().await {
                Ok(status) => exit_code(status),
                Err(_) => -1,
            };
            let exit = Exit {
                pid,
                start_ticks,
                exit_code: code,
                finished_at: now_rfc3339(),
            };
            if dir.exists()
                && let Err(e) = write_json(&dir.join(EXIT), &exit)
            {
                tracing::warn!(%placement, error = %e, "could not record a process's exit");
            }
            if let Ok(mut waiting) = waiting.lock()
                && waiting.get(&placement) == Some(&pid)
            {
                waiting.remove(&placement);
            }
            wake.notify_one();
        });
        Ok(pid.to_string())
    }

    async fn restart(&self, unit: &UnitSpec, _current: &Observed) -> Result<(), RuntimeError> {
        self.start(unit).await.map(|_| ())
    }

    async fn remove(&self, current: &Observed) -> Result<(), RuntimeError> {
        let dir = self.dir(&current.placement);
        let Some(record) = read_json::<Record>(&dir.join(RECORD)) else {
            return Ok(());
        };
        let alive = || proc_stat(record.pid).is_some_and(|(state, t)| t == record.start_ticks && state != 'Z');
        if alive() {
            Self::signal_group(record.pid, "TERM").await;
            let deadline = Instant::now() + self.config.stop_grace;
            while alive() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if alive() {
                Self::signal_group(record.pid, "KILL").await;
            }
        }
        for file in [RECORD, EXIT] {
            let _ = std::fs::remove_file(dir.join(file));
        }
        Ok(())
    }

    fn poll_interval(&self) -> Option<Duration> {
        Some(self.config.poll_interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_name() {
        let stat = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_stat(stat), Some(('S', 987654)));
        assert_eq!(parse_stat("garbage"), None);
        let (state, ticks) = proc_stat(std::process::id()).unwrap();
        assert!(state == 'R' || state == 'S', "{state}");
        assert!(ticks > 0);
    }

    #[test]
    fn rotation_keeps_one_previous_file() {
        let dir = std::env::temp_dir().join(format!("faros-rotate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("stdout.log");
        std::fs::write(&log, b"0123456789").unwrap();
        assert!(!rotate(&log, 10).unwrap());
        std::fs::write(&log, b"0123456789abc").unwrap();
        assert!(rotate(&log, 10).unwrap());
        assert_eq!(std::fs::read(&log).unwrap().len(), 0);
        assert_eq!(std::fs::read(dir.join("stdout.log.1")).unwrap(), b"0123456789abc");
        assert!(!rotate(&dir.join("missing.log"), 10).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn exit_codes_of_signals() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(exit_code(std::process::ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(std::process::ExitStatus::from_raw(9)), 137);
    }
}
