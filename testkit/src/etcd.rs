//! etcd on loopback for tests: one member ([`Etcd::start`]) or a cluster of several
//! ([`Etcd::start_cluster`]), from the machine's `etcd` binary (Debian's `etcd-server`), each
//! member on free ports with its data in a temporary directory. Members can be killed with
//! SIGKILL or stopped cleanly, and started again on the same ports and data; everything is
//! killed on drop.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a GET of the process's own endpoints may take.
const READ_TIMEOUT: Duration = Duration::from_secs(2);

/// Where Debian installs etcd; `PATH` is searched too.
const BINARY: &str = "etcd";

/// One etcd cluster of this test.
pub struct Etcd {
    /// Data directories and logs of every member.
    pub dir: PathBuf,
    members: Vec<Member>,
    tls: Option<Tls>,
}

struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    /// Serves `/health` over plain HTTP whatever the client URLs' scheme.
    metrics_port: u16,
    child: Option<Child>,
}

/// TLS for the client URLs: PEM files the members serve and check clients with.
#[derive(Debug, Clone)]
pub struct Tls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// The CA that client certificates must chain to.
    pub client_ca_file: PathBuf,
}

impl Etcd {
    /// One member, ready to serve.
    pub fn start() -> Etcd {
        Self::launch(1, None)
    }

    /// `size` members forming one cluster, ready to serve (a leader is elected).
    pub fn start_cluster(size: usize) -> Etcd {
        Self::launch(size, None)
    }

    /// One member whose client URL is HTTPS and requires a client certificate.
    pub fn start_tls(tls: Tls) -> Etcd {
        Self::launch(1, Some(tls))
    }

    fn launch(size: usize, tls: Option<Tls>) -> Etcd {
        assert!(
            installed(),
            "the tests need etcd (`apt-get install etcd-server`; scripts/test.sh installs it)"
        );
        // A port found free may be taken by someone else before etcd binds it (other tests
        // open connections all the time): a member that exits at start is retried on new ports.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let dir = std::env::temp_dir().join(format!("faros-etcd-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&dir).expect("create the etcd directory");
            let members: Vec<Member> = (0..size)
                .map(|i| Member {
                    name: format!("m{i}"),
                    client_port: free_port(),
                    peer_port: free_port(),
                    metrics_port: free_port(),
                    child: None,
                })
                .collect();
            let mut etcd = Etcd {
                dir,
                members,
                tls: tls.clone(),
            };
            let cluster = etcd.initial_cluster();
            for i in 0..size {
                let child = etcd.spawn(i, &cluster);
                etcd.members[i].child = Some(child);
            }
            let started = (0..size).try_for_each(|i| etcd.healthy_or_exited(i));
            match started {
                Ok(()) => return etcd,
                Err(exited) if attempts < 3 => eprintln!("{exited}; trying again on other ports"),
                Err(exited) => panic!("{exited}"),
            }
        }
    }

    fn initial_cluster(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    fn spawn(&self, i: usize, cluster: &str) -> Child {
        let member = &self.members[i];
        let client_url = format!("{}://127.0.0.1:{}", self.scheme(), member.client_port);
        let peer_url = format!("http://127.0.0.1:{}", member.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{}.log", member.name)))
            .expect("open the etcd log");
        let mut command = Command::new(binary());
        command
            .arg("--name")
            .arg(&member.name)
            .arg("--data-dir")
            .arg(self.dir.join(&member.name))
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args([
                "--listen-metrics-urls",
                &format!("http://127.0.0.1:{}", member.metrics_port),
            ])
            .args(["--initial-cluster", cluster])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", &self.dir.to_string_lossy()])
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(tls) = &self.tls {
            command
                .arg("--cert-file")
                .arg(&tls.cert_file)
                .arg("--key-file")
                .arg(&tls.key_file)
                .arg("--trusted-ca-file")
                .arg(&tls.client_ca_file)
                .arg("--client-cert-auth");
        }
        // etcd refuses to start on architectures other than amd64 unless told to.
        if std::env::consts::ARCH != "x86_64" {
            let arch = match std::env::consts::ARCH {
                "aarch64" => "arm64",
                other => other,
            };
            command.env("ETCD_UNSUPPORTED_ARCH", arch);
        }
        command.spawn().expect("start etcd")
    }

    /// Waits until member `i` says it is healthy (it has a leader), for up to 30 s.
    fn wait_healthy(&mut self, i: usize) {
        if let Err(exited) = self.healthy_or_exited(i) {
            panic!("{exited}");
        }
    }

    /// Like [`Etcd::wait_healthy`], but a member that exits is an error rather than a panic.
    fn healthy_or_exited(&mut self, i: usize) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if health(self.members[i].metrics_port) {
                return Ok(());
            }
            if let Some(child) = self.members[i].child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!(
                    "etcd member {i} exited ({status}); its log is in {}",
                    self.dir.display()
                ));
            }
            assert!(
                Instant::now() < deadline,
                "etcd member {i} did not become healthy; its log is in {}",
                self.dir.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The `hub-api start` flags of a hub on these members under `prefix`, with the shared
    /// identity in `pki_dir` if given (as replicas of one hub have).
    pub fn hub_args(&self, prefix: &str, pki_dir: Option<&std::path::Path>) -> Vec<String> {
        let mut args = vec![
            "--storage".to_string(),
            "etcd".to_string(),
            "--etcd-servers".to_string(),
            self.endpoints().join(","),
            "--etcd-prefix".to_string(),
            prefix.to_string(),
        ];
        if let Some(dir) = pki_dir {
            args.push("--pki-dir".to_string());
            args.push(dir.to_string_lossy().into_owned());
        }
        args
    }

    /// The client URLs of every member.
    pub fn endpoints(&self) -> Vec<String> {
        (0..self.members.len()).map(|i| self.endpoint(i)).collect()
    }

    /// The client URL of member `i`.
    pub fn endpoint(&self, i: usize) -> String {
        format!("{}://127.0.0.1:{}", self.scheme(), self.members[i].client_port)
    }

    /// Kills member `i` with SIGKILL.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops member `i` cleanly (SIGTERM; SIGKILL after 30 s) and waits for it to exit.
    pub fn stop(&mut self, i: usize) {
        let Some(mut child) = self.members[i].child.take() else {
            return;
        };
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while matches!(child.try_wait(), Ok(None)) {
            if Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.wait();
    }

    /// Whether member `i` runs (it was neither killed nor stopped).
    pub fn running(&self, i: usize) -> bool {
        self.members[i].child.is_some()
    }

    /// Starts every member that is not running (killed or stopped) on its ports and data, all
    /// at once, and waits until every member is healthy: after the whole cluster was stopped,
    /// no member has a leader until a quorum is back.
    pub fn start_stopped(&mut self) {
        let cluster = self.initial_cluster();
        for i in 0..self.members.len() {
            if self.members[i].child.is_none() {
                let child = self.spawn(i, &cluster);
                self.members[i].child = Some(child);
            }
        }
        for i in 0..self.members.len() {
            self.wait_healthy(i);
        }
    }

    /// The member that is the cluster's leader now, if a running member says it is.
    pub fn leader(&self) -> Option<usize> {
        (0..self.members.len())
            .filter(|&i| self.running(i))
            .find(|&i| is_leader(self.members[i].metrics_port))
    }

    /// Starts member `i` again on its ports and data (after [`Etcd::kill`]) and waits until it
    /// is healthy.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        let cluster = self.initial_cluster();
        let child = self.spawn(i, &cluster);
        self.members[i].child = Some(child);
        self.wait_healthy(i);
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
        if std::thread::panicking() {
            eprintln!("etcd data and logs kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Whether the etcd binary is on this machine.
pub fn installed() -> bool {
    Command::new(binary())
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn binary() -> PathBuf {
    let debian = Path::new("/usr/bin").join(BINARY);
    if debian.exists() { debian } else { PathBuf::from(BINARY) }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// `GET /health` on the metrics port says `"health":"true"`.
fn health(port: u16) -> bool {
    crate::http::get(port, "/health", READ_TIMEOUT).contains("\"health\":\"true\"")
}

/// The member's metrics say it leads.
fn is_leader(port: u16) -> bool {
    crate::http::get(port, "/metrics", READ_TIMEOUT)
        .lines()
        .any(|line| line.trim() == "etcd_server_is_leader 1")
}
