//! Containers through the `podman` command line.
//!
//! The CLI rather than podman's REST socket: the socket is a service someone must run and
//! keep running (`podman system service`, a systemd socket unit), while the CLI needs
//! nothing but the binary; each container keeps running under its own `conmon` whatever
//! happens to the agent; and `--format json` output (`ps`, `inspect`, `version`) has been
//! stable across podman 4, the version Debian 12 ships. A call costs a fork and some tens of
//! milliseconds, which the reconciler's rate of calls (one `ps` per poll) easily affords.
//!
//! Containers are run with `--restart=no`: the agent restarts them itself, so restart policy,
//! backoff and counts are the same as for processes and survive the agent.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use faros_api::workloads::{Protocol, fnv1a};
use serde_json::Value;

use super::labels;
use super::runtime::{Observed, PortBinding, Prepared, RunState, Runtime, RuntimeError, UnitKind, UnitSpec};
use super::{AgentRef, unix_to_rfc3339};

/// How a [`Podman`] runtime calls podman.
#[derive(Clone, Debug)]
pub struct PodmanConfig {
    /// The binary (`--podman`; default `podman` on the PATH).
    pub binary: PathBuf,
    /// Extra environment for every call (`CONTAINERS_CONF`, `CONTAINERS_STORAGE_CONF`).
    pub env: Vec<(OsString, OsString)>,
    pub agent: AgentRef,
    /// How long a container may take to stop on SIGTERM before it is killed.
    pub stop_grace: Duration,
    /// How often containers are listed to notice one ending.
    pub poll_interval: Duration,
}

pub struct Podman {
    config: PodmanConfig,
}

/// Longest a podman call other than a pull may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);
const PULL_TIMEOUT: Duration = Duration::from_secs(1800);
/// Podman accepts long names, but `ps` output and humans do not: longer names are cut and
/// made unique with a hash.
const MAX_NAME: usize = 100;

/// The container of `unit` in placement `placement`: `faros-<placement>-<unit>`.
pub fn container_name(placement: &str, unit: &str) -> String {
    let name = format!("faros-{placement}-{unit}");
    if name.len() <= MAX_NAME {
        return name;
    }
    let suffix = format!("-{:08x}", fnv1a(name.as_bytes()) & 0xffff_ffff);
    let mut short = name;
    short.truncate(MAX_NAME - suffix.len());
    format!("{}{suffix}", short.trim_end_matches(['-', '.']))
}

impl Podman {
    pub fn new(config: PodmanConfig) -> Podman {
        Podman { config }
    }

    /// Runs podman with `args`; its stdout, or its stderr (last lines) as the error.
    async fn call(&self, args: &[String], timeout: Duration) -> Result<Output, String> {
        let mut command = tokio::process::Command::new(&self.config.binary);
        command
            .args(args)
            .envs(self.config.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let run = command.output();
        let out = match tokio::time::timeout(timeout, run).await {
            Err(_) => return Err(format!("podman {} did not finish within {timeout:?}", args[0])),
            Ok(Err(e)) => return Err(format!("running {}: {e}", self.config.binary.display())),
            Ok(Ok(out)) => out,
        };
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if out.status.success() {
            Ok(Output { stdout, stderr })
        } else {
            Err(last_error(&stderr, out.status.code()))
        }
    }

    fn run_args(&self, unit: &UnitSpec, with_limits: bool) -> Vec<String> {
        let UnitKind::Container { container, mounts } = &unit.kind else {
            return Vec::new();
        };
        let mut args: Vec<String> = vec![
            "run".into(),
            "--detach".into(),
            "--replace".into(),
            // The agent pulls explicitly (phase Pulling) and restarts per policy itself.
            "--pull=never".into(),
            "--restart=no".into(),
            "--name".into(),
            container_name(&unit.placement, &unit.unit),
        ];
        let mut label = |k: &str, v: &str| {
            args.push("--label".into());
            args.push(format!("{k}={v}"));
        };
        label(labels::AGENT, &self.config.agent.label_value());
        label(labels::PLACEMENT, &unit.placement);
        label(labels::CONTAINER, &unit.unit);
        label(labels::HASH, &unit.hash);
        label(labels::TEMPLATE_HASH, &unit.template_hash);
        if !with_limits {
            label(labels::LIMITS_DROPPED, "true");
        }
        for e in &container.env {
            args.push("--env".into());
            args.push(format!("{}={}", e.name, e.value));
        }
        for p in &container.ports {
            let proto = match p.protocol {
                Protocol::Tcp => "tcp",
                Protocol::Udp => "udp",
            };
            args.push("--publish".into());
            args.push(match p.host_port {
                Some(host) => format!("{host}:{}/{proto}", p.container_port),
                // Podman picks a free port; `ps` reports it.
                None => format!("{}/{proto}", p.container_port),
            });
        }
        for m in mounts {
            args.push("--volume".into());
            let mut spec = format!("{}:{}", m.source.display(), m.target);
            if m.read_only {
                spec.push_str(":ro");
            }
            args.push(spec);
        }
        if with_limits && let Some(limits) = container.resources.as_ref().map(|r| &r.limits) {
            if let Some(bytes) = limits.memory.as_ref().and_then(|q| q.value()) {
                args.push(format!("--memory={bytes}"));
            }
            if let Some(millis) = limits.cpu.as_ref().and_then(|q| q.millis()) {
                args.push(format!("--cpus={}.{:03}", millis / 1000, millis % 1000));
            }
        }
        if !container.command.is_empty() {
            // A JSON array, so that arguments with spaces stay whole.
            args.push(format!(
                "--entrypoint={}",
                serde_json::to_string(&container.command).unwrap_or_default()
            ));
        }
        args.push(container.image.clone());
        args.extend(container.args.iter().cloned());
        args
    }

    fn has_limits(unit: &UnitSpec) -> bool {
        matches!(&unit.kind, UnitKind::Container { container, .. }
            if container.resources.as_ref().is_some_and(|r| !r.limits.is_empty()))
    }
}

struct Output {
    stdout: String,
    stderr: String,
}

/// The part of podman's stderr worth reporting: its `Error:` line, else the last line.
fn last_error(stderr: &str, code: Option<i32>) -> String {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("Error:"))
        .or_else(|| stderr.lines().last())
        .unwrap_or_default()
        .trim_start_matches("Error:")
        .trim();
    if line.is_empty() {
        format!("podman exited with {code:?}")
    } else {
        line.to_string()
    }
}

/// Whether podman refused a container because of its cpu or memory limits (no cgroup
/// controllers for them, as in some sandboxes and rootless setups).
fn limits_refused(error: &str) -> bool {
    let e = error.to_ascii_lowercase();
    e.contains("cgroup") || e.contains("memory limit") || e.contains("cpu") && e.contains("limit")
}

/// The containers of `ps --format json` that carry the agent's labels.
pub(crate) fn parse_ps(json: &str) -> Result<Vec<Observed>, String> {
    let entries: Vec<Value> = serde_json::from_str(if json.trim().is_empty() { "[]" } else { json })
        .map_err(|e| format!("podman ps printed something that is not JSON: {e}"))?;
    let mut out = Vec::new();
    for e in entries {
        let labels = &e["Labels"];
        let label = |k: &str| labels[k].as_str().map(str::to_string);
        let (Some(placement), Some(unit)) = (label(labels::PLACEMENT), label(labels::CONTAINER)) else {
            continue;
        };
        let time = |k: &str| e[k].as_i64().and_then(unix_to_rfc3339);
        let state = match e["State"].as_str().unwrap_or_default() {
            "running" | "paused" | "stopping" => RunState::Running {
                started_at: time("StartedAt"),
            },
            "exited" | "stopped" | "removing" => RunState::Exited {
                exit_code: e["ExitCode"].as_i64().map(|c| c as i32),
                started_at: time("StartedAt"),
                finished_at: time("ExitedAt"),
            },
            _ => RunState::Created,
        };
        let ports = e["Ports"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|p| {
                let container = p["container_port"].as_i64().unwrap_or_default() as i32;
                let host = p["host_port"].as_i64().unwrap_or_default() as i32;
                let range = p["range"].as_i64().unwrap_or(1).max(1) as i32;
                let protocol = match p["protocol"].as_str() {
                    Some("udp") => Protocol::Udp,
                    _ => Protocol::Tcp,
                };
                (0..range).map(move |i| PortBinding {
                    container_port: container + i,
                    host_port: host + i,
                    protocol,
                })
            })
            .collect();
        out.push(Observed {
            placement,
            unit,
            hash: label(labels::HASH).unwrap_or_default(),
            id: e["Id"].as_str().unwrap_or_default().to_string(),
            state,
            image: e["Image"].as_str().unwrap_or_default().to_string(),
            image_id: e["ImageID"].as_str().unwrap_or_default().to_string(),
            ports,
            warning: label(labels::LIMITS_DROPPED)
                .map(|_| "cpu and memory limits are not enforced: this device's podman cannot apply them".to_string()),
        });
    }
    Ok(out)
}

impl Runtime for Podman {
    fn name(&self) -> &'static str {
        faros_api::workloads::RUNTIME_PODMAN
    }

    async fn probe(&self) -> Result<(), String> {
        self.call(&["version".into(), "--format".into(), "json".into()], CALL_TIMEOUT)
            .await
            .map(|_| ())
            .map_err(|e| format!("`{} version` failed: {e}", self.config.binary.display()))
    }

    async fn list(&self) -> Result<Vec<Observed>, RuntimeError> {
        let args = [
            "ps",
            "--all",
            "--no-trunc",
            "--format",
            "json",
            "--filter",
            &format!("label={}={}", labels::AGENT, self.config.agent.label_value()),
        ]
        .map(String::from);
        let out = self
            .call(&args, CALL_TIMEOUT)
            .await
            .map_err(|e| RuntimeError::new("RuntimeError", e))?;
        parse_ps(&out.stdout).map_err(|e| RuntimeError::new("RuntimeError", e))
    }

    async fn prepare(&self, unit: &UnitSpec) -> Result<Prepared, RuntimeError> {
        let Some(image) = unit.image() else {
            return Err(RuntimeError::new(
                "RuntimeError",
                "podman runs containers, not processes",
            ));
        };
        let args = ["image", "exists", image].map(String::from);
        match self.call(&args, CALL_TIMEOUT).await {
            Ok(_) => Ok(Prepared::Ready),
            Err(_) => Ok(Prepared::NeedsPull(image.to_string())),
        }
    }

    async fn pull(&self, image: &str) -> Result<(), RuntimeError> {
        let args = ["pull", "--quiet", image].map(String::from);
        self.call(&args, PULL_TIMEOUT)
            .await
            .map(|_| ())
            .map_err(|e| RuntimeError::new("ErrImagePull", e))
    }

    async fn start(&self, unit: &UnitSpec) -> Result<String, RuntimeError> {
        if let UnitKind::Container { mounts, .. } = &unit.kind {
            for m in mounts.iter().filter(|m| m.create) {
                std::fs::create_dir_all(&m.source)
                    .map_err(|e| RuntimeError::new("StartError", format!("creating {}: {e}", m.source.display())))?;
            }
        }
        let out = match self.call(&self.run_args(unit, true), CALL_TIMEOUT).await {
            Ok(out) => out,
            Err(e) if Self::has_limits(unit) && limits_refused(&e) => {
                tracing::warn!(placement = %unit.placement, container = %unit.unit, error = %e,
                    "podman cannot apply cpu/memory limits here; running the container without them");
                self.call(&self.run_args(unit, false), CALL_TIMEOUT)
                    .await
                    .map_err(|e| RuntimeError::new("StartError", e))?
            }
            Err(e) => return Err(RuntimeError::new("StartError", e)),
        };
        if !out.stderr.is_empty() {
            tracing::debug!(placement = %unit.placement, container = %unit.unit, stderr = %out.stderr, "podman run");
        }
        Ok(out.stdout.trim().to_string())
    }

    async fn restart(&self, _unit: &UnitSpec, current: &Observed) -> Result<(), RuntimeError> {
        let args = ["start".to_string(), current.id.clone()];
        self.call(&args, CALL_TIMEOUT)
            .await
            .map(|_| ())
            .map_err(|e| RuntimeError::new("StartError", e))
    }

    async fn remove(&self, current: &Observed) -> Result<(), RuntimeError> {
        let args = [
            "rm".to_string(),
            "--force".into(),
            "--ignore".into(),
            format!("--time={}", self.config.stop_grace.as_secs()),
            current.id.clone(),
        ];
        self.call(&args, CALL_TIMEOUT + self.config.stop_grace)
            .await
            .map(|_| ())
            .map_err(|e| RuntimeError::new("RuntimeError", e))
    }

    fn poll_interval(&self) -> Option<Duration> {
        Some(self.config.poll_interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_deterministic_and_bounded() {
        assert_eq!(container_name("web-dev1-abc123", "web"), "faros-web-dev1-abc123-web");
        let long = "p".repeat(253);
        let a = container_name(&long, "web");
        let b = container_name(&long, "db");
        assert!(a.len() <= MAX_NAME && b.len() <= MAX_NAME);
        assert_ne!(a, b);
        assert_eq!(a, container_name(&long, "web"));
    }

    #[test]
    fn reads_ps_output() {
        let json = r#"[{"Id":"abc","Labels":{"edge.faros.sh/placement":"p","edge.faros.sh/container":"web","edge.faros.sh/hash":"h"},
            "State":"exited","ExitCode":137,"StartedAt":1700000000,"ExitedAt":1700000060,"Image":"localhost/demo:1","ImageID":"sha",
            "Ports":[{"container_port":8080,"host_port":18080,"range":1,"protocol":"tcp"}]},
            {"Id":"other","Labels":{"unrelated":"x"},"State":"running"}]"#;
        let seen = parse_ps(json).unwrap();
        assert_eq!(seen.len(), 1, "containers without the agent's labels are not its own");
        assert_eq!(
            seen[0].state,
            RunState::Exited {
                exit_code: Some(137),
                started_at: Some("2023-11-14T22:13:20Z".into()),
                finished_at: Some("2023-11-14T22:14:20Z".into()),
            }
        );
        assert_eq!(seen[0].ports[0].host_port, 18080);
        assert!(parse_ps("").unwrap().is_empty());
        assert!(parse_ps("garbage").is_err());
        assert_eq!(last_error("warn\nError: no such image\n", Some(125)), "no such image");
        assert!(limits_refused(
            "crun: opening file `memory.max` for writing: cgroup not found"
        ));
        assert!(!limits_refused("port 80 already in use"));
    }
}
