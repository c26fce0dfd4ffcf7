//! Test harness: starts the real `hub-api` binary on a free port with a temporary data
//! directory, and runs the real kubectl binaries against it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct TestHub {
    pub dir: PathBuf,
    pub port: u16,
    child: Option<Child>,
    all_in_one: bool,
    /// Extra arguments passed to `hub-api start` (e.g. `--watch-cache-events 5`).
    extra_args: Vec<String>,
}

impl TestHub {
    /// Starts a hub with controllers (`--all-in-one`).
    pub fn start() -> TestHub {
        Self::start_with(true)
    }

    pub fn start_with(all_in_one: bool) -> TestHub {
        Self::start_with_args(all_in_one, &[])
    }

    /// Starts a hub with extra `hub-api start` arguments, kept across restarts.
    pub fn start_with_args(all_in_one: bool, extra_args: &[&str]) -> TestHub {
        let dir = std::env::temp_dir().join(format!("faros-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut hub = TestHub {
            dir,
            port: 0,
            child: None,
            all_in_one,
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
        };
        hub.spawn();
        hub
    }

    fn spawn(&mut self) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hub-api"));
        command
            .arg("start")
            .arg("--data-dir")
            .arg(&self.dir)
            .arg("--secure-port")
            .arg(self.port.to_string())
            .stderr(Stdio::inherit());
        if self.all_in_one {
            command.arg("--all-in-one");
        }
        command.args(&self.extra_args);
        let hub = faros_testkit::start(command);
        self.port = hub.url.rsplit(':').next().unwrap().parse().unwrap();
        self.child = Some(hub.child);
    }

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

    /// The CA bundle (PEM) the admin kubeconfig trusts.
    pub fn ca_pem(&self) -> String {
        use base64::Engine;
        let admin = kube::config::Kubeconfig::read_from(self.kubeconfig()).unwrap();
        let data = admin.clusters[0]
            .cluster
            .as_ref()
            .and_then(|c| c.certificate_authority_data.as_deref())
            .expect("the admin kubeconfig has certificate-authority-data");
        let data = base64::engine::general_purpose::STANDARD.decode(data).unwrap();
        String::from_utf8(data).unwrap()
    }

    /// Writes `file` (in the hub's directory): a copy of the admin kubeconfig pointing at
    /// `server` (the hub URL or a workspace URL).
    pub fn admin_kubeconfig_at(&self, server: &str, file: &str) -> PathBuf {
        let mut admin = kube::config::Kubeconfig::read_from(self.kubeconfig()).unwrap();
        for cluster in admin.clusters.iter_mut().filter_map(|c| c.cluster.as_mut()) {
            cluster.server = Some(server.to_string());
        }
        let path = self.dir.join(file);
        faros_kubeconfig::write(&path, &admin).unwrap();
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
        faros_kubeconfig::write(&path, &kubeconfig).unwrap();
        path
    }

    /// Graceful stop (SIGTERM), then start again on the same port and data.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// `kill -9`, then start again.
    pub fn crash_and_restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        self.spawn();
    }

    /// SIGTERM and wait; returns the exit status code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                child.kill().unwrap();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kubectl(&self, version: &str, args: &[&str]) -> Output {
        kubectl_with(&self.kubeconfig(), version, args, None)
    }

    /// Runs kubectl and asserts success; returns stdout.
    pub fn kubectl_ok(&self, version: &str, args: &[&str]) -> String {
        faros_testkit::succeeded(&format!("kubectl {version} {args:?}"), &self.kubectl(version, args))
    }

    /// Runs kubectl with `stdin` fed in.
    pub fn kubectl_stdin(&self, version: &str, args: &[&str], stdin: &str) -> Output {
        kubectl_with(&self.kubeconfig(), version, args, Some(stdin))
    }

    pub async fn client(&self) -> kube::Client {
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(self.kubeconfig()).unwrap(),
            &Default::default(),
        )
        .await
        .unwrap();
        kube::Client::try_from(config).unwrap()
    }

    /// A client that trusts the hub's CA but presents no credential at all.
    pub async fn anonymous_client(&self) -> kube::Client {
        let mut config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(self.kubeconfig()).unwrap(),
            &Default::default(),
        )
        .await
        .unwrap();
        config.auth_info = kube::config::AuthInfo::default();
        kube::Client::try_from(config).unwrap()
    }
}

/// Creates the Widget CRD from `config/samples/widget-crd.yaml` through the API and waits
/// until it is Established.
pub async fn install_widget_crd(client: &kube::Client) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let text = std::fs::read_to_string(sample("widget-crd.yaml")).unwrap();
    let crd: CustomResourceDefinition = serde_norway::from_str(&text).unwrap();
    let api: kube::Api<CustomResourceDefinition> = kube::Api::all(client.clone());
    api.create(&Default::default(), &crd)
        .await
        .expect("create the Widget CRD");
    let established = kube::runtime::wait::await_condition(
        api,
        "widgets.example.faros.sh",
        kube::runtime::wait::conditions::is_crd_established(),
    );
    tokio::time::timeout(Duration::from_secs(30), established)
        .await
        .expect("the Widget CRD became Established in time")
        .unwrap();
}

impl Drop for TestHub {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The path of the real kubectl for a minor version, e.g. "1.32".
pub fn kubectl_binary(version: &str) -> PathBuf {
    faros_testkit::kubectl::binary(version).unwrap_or_else(|| panic!("kubectl.{version} is not installed here"))
}

pub fn kubectl_with(kubeconfig: &Path, version: &str, args: &[&str], stdin: Option<&str>) -> Output {
    faros_testkit::kubectl::run(version, kubeconfig, &std::env::temp_dir(), args, stdin)
}

pub use faros_testkit::eventually;

pub fn sample(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config/samples")
        .join(name)
        .to_string_lossy()
        .into_owned()
}
