//! One hub process per test: started from the `hub-api` binary or from the test binary
//! itself (see [`crate::child_main`]), on a fresh data directory, stopped, crashed and
//! restarted on the same port and data, and driven with kubectl and kube-rs.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::kubectl;

/// How a test starts its hub.
#[derive(Debug, Clone, Copy)]
pub enum Launcher {
    /// The built `hub-api` binary (`env!("CARGO_BIN_EXE_hub-api")` in the hub's own tests).
    Binary(&'static str),
    /// This test binary again, running its `hub_process` test: for the other crates' tests,
    /// where Cargo builds no `hub-api` binary.
    ThisTest {
        dir_env: &'static str,
        args_env: &'static str,
    },
}

pub struct Hub {
    /// The data directory: PKI, database, `admin.kubeconfig`.
    pub dir: PathBuf,
    pub port: u16,
    launcher: Launcher,
    all_in_one: bool,
    /// Extra `hub-api start` arguments, kept across restarts.
    args: Vec<String>,
    /// Where the hub's log goes (appended across restarts); stderr when None.
    log: Option<PathBuf>,
    child: Option<Child>,
}

impl Hub {
    /// A hub with its controllers (`--all-in-one`).
    pub fn start(launcher: Launcher) -> Hub {
        Self::start_with(launcher, true)
    }

    pub fn start_with(launcher: Launcher, all_in_one: bool) -> Hub {
        Self::start_with_args(launcher, all_in_one, &[])
    }

    /// A hub with extra `hub-api start` arguments.
    pub fn start_with_args(launcher: Launcher, all_in_one: bool, args: &[&str]) -> Hub {
        let dir = std::env::temp_dir().join(format!("faros-hub-{}", uuid::Uuid::new_v4()));
        Self::start_in(launcher, dir, all_in_one, args, None)
    }

    /// A hub on the data directory `dir` (created), its log appended to `log` if given.
    pub fn start_in(launcher: Launcher, dir: PathBuf, all_in_one: bool, args: &[&str], log: Option<PathBuf>) -> Hub {
        std::fs::create_dir_all(&dir).expect("create the hub's data directory");
        if matches!(launcher, Launcher::ThisTest { .. }) {
            assert!(all_in_one, "a hub run from a test binary always runs its controllers");
        }
        let mut hub = Hub {
            dir,
            port: 0,
            launcher,
            all_in_one,
            args: args.iter().map(|a| a.to_string()).collect(),
            log,
            child: None,
        };
        hub.resume();
        hub
    }

    /// Starts the hub process again (on the same port, once it had one) after a stop.
    pub fn resume(&mut self) {
        let stderr = match &self.log {
            Some(path) => std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .expect("open the hub log")
                .into(),
            None => Stdio::inherit(),
        };
        let port = self.port.to_string();
        let command = match self.launcher {
            Launcher::Binary(binary) => {
                let mut command = Command::new(binary);
                command
                    .arg("start")
                    .arg("--data-dir")
                    .arg(&self.dir)
                    .args(["--secure-port", &port])
                    .args(&self.args)
                    .stderr(stderr);
                if self.all_in_one {
                    command.arg("--all-in-one");
                }
                command
            }
            Launcher::ThisTest { dir_env, args_env } => {
                let mut args = vec!["--secure-port".to_string(), port];
                args.extend(self.args.iter().cloned());
                return self.attach(crate::spawn(dir_env, args_env, &self.dir, &args.join(" "), stderr));
            }
        };
        let started = crate::start(command);
        self.attach(started);
    }

    fn attach(&mut self, started: crate::ChildHub) {
        self.port = started
            .url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("the hub's URL names its port");
        self.child = Some(started.child);
    }

    /// Graceful stop (SIGTERM), then start again on the same port and data.
    pub fn restart(&mut self) {
        self.stop();
        self.resume();
    }

    /// `kill -9`, then start again.
    pub fn crash_and_restart(&mut self) {
        self.kill();
        self.resume();
    }

    /// `kill -9`: the process ends without a goodbye (its Leases stay until they expire).
    /// [`Hub::resume`] starts it again.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill the hub");
            child.wait().expect("reap the hub");
        }
    }

    /// Whether the hub process runs (it was neither stopped nor killed, nor did it exit).
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// SIGTERM and wait (killing it after 30 s); returns the exit status code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("poll the hub") {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The admin kubeconfig the hub wrote (`system:masters`).
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("admin.kubeconfig")
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The URL of a workspace, e.g. `root:acme`.
    pub fn workspace_url(&self, path: &str) -> String {
        format!("{}/clusters/{path}", self.url())
    }

    fn admin_kubeconfig(&self) -> kube::config::Kubeconfig {
        kube::config::Kubeconfig::read_from(self.kubeconfig()).expect("the admin kubeconfig")
    }

    /// The CA bundle (PEM) the admin kubeconfig trusts.
    pub fn ca_pem(&self) -> String {
        use base64::Engine;
        let admin = self.admin_kubeconfig();
        let data = admin.clusters[0]
            .cluster
            .as_ref()
            .and_then(|c| c.certificate_authority_data.as_deref())
            .expect("the admin kubeconfig has certificate-authority-data");
        let data = base64::engine::general_purpose::STANDARD
            .decode(data)
            .expect("base64 CA data");
        String::from_utf8(data).expect("a PEM CA")
    }

    /// Writes `file` (in the hub's directory): a copy of the admin kubeconfig pointing at
    /// `server` (the hub URL or a workspace URL).
    pub fn admin_kubeconfig_at(&self, server: &str, file: &str) -> PathBuf {
        let mut admin = self.admin_kubeconfig();
        for cluster in admin.clusters.iter_mut().filter_map(|c| c.cluster.as_mut()) {
            cluster.server = Some(server.to_string());
        }
        let path = self.dir.join(file);
        faros_kubeconfig::write(&path, &admin).expect("write a kubeconfig");
        path
    }

    /// Writes a kubeconfig named `name` that authenticates with a bearer `token` against
    /// `server` (the hub URL or a workspace URL), with an optional default namespace.
    pub fn token_kubeconfig(&self, name: &str, server: &str, token: &str, namespace: Option<&str>) -> PathBuf {
        let path = self.dir.join(format!("{}.kubeconfig", name.replace([':', '/'], "_")));
        let kubeconfig = faros_kubeconfig::all_named(
            "hub",
            server,
            &self.ca_pem(),
            faros_kubeconfig::Credential::Token(token),
            namespace,
        );
        faros_kubeconfig::write(&path, &kubeconfig).expect("write a kubeconfig");
        path
    }

    /// Runs kubectl `version` with the admin kubeconfig.
    pub fn kubectl(&self, version: &str, args: &[&str]) -> Output {
        kubectl::run(version, &self.kubeconfig(), &std::env::temp_dir(), args, None)
    }

    /// Runs kubectl and asserts success; returns stdout.
    pub fn kubectl_ok(&self, version: &str, args: &[&str]) -> String {
        crate::succeeded(&format!("kubectl {version} {args:?}"), &self.kubectl(version, args))
    }

    /// Runs kubectl with `stdin` fed in.
    pub fn kubectl_stdin(&self, version: &str, args: &[&str], stdin: &str) -> Output {
        kubectl::run(version, &self.kubeconfig(), &std::env::temp_dir(), args, Some(stdin))
    }

    /// A kube-rs client with the admin kubeconfig.
    pub async fn client(&self) -> kube::Client {
        let config = kube::Config::from_custom_kubeconfig(self.admin_kubeconfig(), &Default::default())
            .await
            .expect("a kube-rs config");
        kube::Client::try_from(config).expect("a kube-rs client")
    }

    /// A client that trusts the hub's CA but presents no credential at all.
    pub async fn anonymous_client(&self) -> kube::Client {
        let mut config = kube::Config::from_custom_kubeconfig(self.admin_kubeconfig(), &Default::default())
            .await
            .expect("a kube-rs config");
        config.auth_info = kube::config::AuthInfo::default();
        kube::Client::try_from(config).expect("a kube-rs client")
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("hub data and log kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
