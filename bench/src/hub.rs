//! Starting and stopping the hub under test, and reading its memory use.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long the hub may take to print its "serving on" line.
const START_TIMEOUT: Duration = Duration::from_secs(60);

pub struct HubProcess {
    pub dir: PathBuf,
    pub port: u16,
    pub pid: u32,
    child: Option<Child>,
    keep_dir: bool,
}

/// When the hub became usable, measured from just before the process was spawned.
#[derive(Debug, Clone, Copy)]
pub struct Startup {
    /// Spawn → the "serving on" line on stdout.
    pub to_line: Duration,
    /// Spawn → `/readyz` answering 200 with the admin kubeconfig's credentials.
    pub to_ready: Duration,
}

pub struct SpawnOptions<'a> {
    pub binary: &'a Path,
    pub all_in_one: bool,
    pub log_level: &'a str,
    pub extra_args: &'a [String],
    pub keep_dir: bool,
}

impl HubProcess {
    /// Spawns the hub on a free port with a fresh data directory and waits until `/readyz`
    /// answers through the admin kubeconfig.
    pub async fn start(opts: &SpawnOptions<'_>) -> anyhow::Result<(HubProcess, Startup, kube::Client)> {
        let dir = std::env::temp_dir().join(format!("faros-bench-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut hub = HubProcess {
            dir,
            port: 0,
            pid: 0,
            child: None,
            keep_dir: opts.keep_dir,
        };
        let (startup, client) = hub.launch(opts).await?;
        Ok((hub, startup, client))
    }

    /// Stops the hub and starts it again on the same data (on a new port).
    pub async fn restart(&mut self, opts: &SpawnOptions<'_>) -> anyhow::Result<(Startup, kube::Client)> {
        self.stop().await?;
        self.launch(opts).await
    }

    async fn launch(&mut self, opts: &SpawnOptions<'_>) -> anyhow::Result<(Startup, kube::Client)> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .context("opening the hub log")?;
        let mut cmd = Command::new(opts.binary);
        cmd.arg("start")
            .arg("--data-dir")
            .arg(&self.dir)
            .arg("--secure-port")
            .arg("0")
            .env("RUST_LOG", opts.log_level)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        if opts.all_in_one {
            cmd.arg("--all-in-one");
        }
        cmd.args(opts.extra_args);

        let spawned = Instant::now();
        let mut child = cmd
            .spawn()
            .with_context(|| format!("spawning {}", opts.binary.display()))?;
        self.pid = child.id().context("the hub exited at once")?;
        let stdout = child.stdout.take().context("no stdout pipe")?;
        self.child = Some(child);
        let mut lines = BufReader::new(stdout).lines();
        let log_path = self.log_path();
        let line = tokio::time::timeout(START_TIMEOUT, async {
            loop {
                match lines.next_line().await? {
                    Some(line) if line.contains("serving on") => return anyhow::Ok(line),
                    Some(_) => continue,
                    None => bail!("hub-api exited before serving; see {}", log_path.display()),
                }
            }
        })
        .await
        .context("hub-api did not print its serving line in time")??;
        let to_line = spawned.elapsed();
        // Keep draining stdout so the hub never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.port = parse_port(&line).with_context(|| format!("no port in {line:?}"))?;

        let client = self.admin_client().await?;
        let deadline = spawned + START_TIMEOUT;
        loop {
            let request = http::Request::get("/readyz").body(Vec::new())?;
            match client.request_text(request).await {
                Ok(_) => break,
                Err(e) if Instant::now() > deadline => return Err(e).context("/readyz never answered 200"),
                Err(_) => tokio::time::sleep(Duration::from_millis(2)).await,
            }
        }
        let to_ready = spawned.elapsed();
        Ok((Startup { to_line, to_ready }, client))
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("admin.kubeconfig")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("hub.log")
    }

    pub async fn config(&self) -> anyhow::Result<kube::Config> {
        let kubeconfig =
            kube::config::Kubeconfig::read_from(self.kubeconfig()).context("reading the admin kubeconfig")?;
        kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .context("loading the admin kubeconfig")
    }

    pub async fn admin_client(&self) -> anyhow::Result<kube::Client> {
        Ok(kube::Client::try_from(self.config().await?)?)
    }

    /// Resident set size and its peak, from /proc/PID/status.
    pub fn memory(&self) -> anyhow::Result<Memory> {
        memory_of(self.pid)
    }

    /// Total size of the database files (hub.db and its WAL).
    pub fn db_bytes(&self) -> u64 {
        ["hub.db", "hub.db-wal", "hub.db-shm"]
            .iter()
            .filter_map(|f| std::fs::metadata(self.dir.join(f)).ok())
            .map(|m| m.len())
            .sum()
    }

    /// SIGTERM, then wait for exit; returns how long the graceful stop took.
    pub async fn stop(&mut self) -> anyhow::Result<Option<Duration>> {
        let Some(mut child) = self.child.take() else {
            return Ok(None);
        };
        let began = Instant::now();
        let signalled = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status()
            .await
            .map(|s| s.success())
            .unwrap_or(false);
        if signalled && let Ok(status) = tokio::time::timeout(Duration::from_secs(30), child.wait()).await {
            status?;
            return Ok(Some(began.elapsed()));
        }
        child.kill().await?;
        Ok(None)
    }

    /// Warning and error lines the hub logged so far, without terminal colours.
    pub fn log_findings(&self) -> Vec<String> {
        std::fs::read_to_string(self.log_path())
            .unwrap_or_default()
            .lines()
            .map(strip_ansi)
            .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("panicked"))
            .collect()
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        if !self.keep_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Memory {
    pub rss_kib: u64,
    pub hwm_kib: u64,
    pub threads: u64,
}

/// Resident set size and its peak of process `pid`, from /proc/PID/status.
pub fn memory_of(pid: u32) -> anyhow::Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("reading /proc/PID/status")?;
    let field = |name: &str| -> anyhow::Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse().ok())
            .with_context(|| format!("no {name} in /proc/{pid}/status"))
    };
    Ok(Memory {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
        threads: field("Threads:")?,
    })
}

/// CPU time (user + system) the process has used so far, from /proc/PID/stat.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name: state is the first, utime the 12th,
    // stime the 13th; both in USER_HZ ticks, which Linux fixes at 100 per second.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// CPU use of the hub and of this process over an interval, in cores.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUse {
    pub hub: f64,
    pub bench: f64,
}

pub struct CpuMeter {
    pid: u32,
    began: Instant,
    hub: Duration,
    bench: Duration,
}

impl CpuMeter {
    pub fn start(hub_pid: u32) -> CpuMeter {
        CpuMeter {
            pid: hub_pid,
            began: Instant::now(),
            hub: cpu_time(hub_pid).unwrap_or_default(),
            bench: cpu_time(std::process::id()).unwrap_or_default(),
        }
    }

    pub fn stop(&self) -> CpuUse {
        let wall = self.began.elapsed().as_secs_f64().max(1e-9);
        let hub = cpu_time(self.pid).unwrap_or_default().saturating_sub(self.hub);
        let bench = cpu_time(std::process::id())
            .unwrap_or_default()
            .saturating_sub(self.bench);
        CpuUse {
            hub: hub.as_secs_f64() / wall,
            bench: bench.as_secs_f64() / wall,
        }
    }
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-byte
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The port in `hub-api serving on https://127.0.0.1:PORT; admin kubeconfig: ...`.
pub fn parse_port(line: &str) -> Option<u16> {
    let url = line.split_whitespace().find(|w| w.starts_with("https://"))?;
    url.trim_end_matches(';').rsplit(':').next()?.parse().ok()
}

/// The hub's metrics (`/metrics`, read with `client`'s credentials), as `name{labels}` → value.
pub async fn scrape(client: &kube::Client) -> anyhow::Result<std::collections::BTreeMap<String, f64>> {
    let text = client
        .request_text(http::Request::get("/metrics").body(Vec::new())?)
        .await
        .context("scraping /metrics")?;
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::{cpu_time, parse_port, strip_ansi};

    #[test]
    fn port_from_serving_line() {
        assert_eq!(
            parse_port("hub-api serving on https://127.0.0.1:40123; admin kubeconfig: /tmp/x/admin.kubeconfig"),
            Some(40123)
        );
        assert_eq!(parse_port("hub-api serving on https://[::1]:6443; admin"), Some(6443));
        assert_eq!(parse_port("nothing here"), None);
    }

    #[test]
    fn colours_are_stripped() {
        assert_eq!(
            strip_ansi("\u{1b}[2mtime\u{1b}[0m \u{1b}[31mERROR\u{1b}[0m x"),
            "time ERROR x"
        );
    }

    #[test]
    fn own_cpu_time_is_readable() {
        assert!(cpu_time(std::process::id()).is_some());
    }
}
