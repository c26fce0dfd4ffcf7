//! Prometheus on loopback for tests, from the machine's `prometheus` binary (Debian's
//! package): it scrapes one HTTPS target every second with a bearer token, keeps its data in a
//! temporary directory, and is killed on drop. Queries go through its HTTP API.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a GET of the process's own endpoints may take.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Prometheus {
    pub dir: PathBuf,
    port: u16,
    child: Child,
}

/// What Prometheus scrapes.
pub struct Target<'a> {
    /// `host:port` of an HTTPS endpoint serving `/metrics`.
    pub address: &'a str,
    /// The CA bundle (PEM) its serving certificate chains to.
    pub ca_pem: &'a str,
    /// Sent as `Authorization: Bearer`.
    pub token: &'a str,
}

impl Prometheus {
    /// Starts Prometheus scraping `target` every second, and waits until it is ready.
    pub fn start(target: Target) -> Prometheus {
        let dir = std::env::temp_dir().join(format!("faros-prometheus-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("create Prometheus' directory");
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).expect("write a Prometheus file");
            path
        };
        let ca = write("ca.pem", target.ca_pem);
        let token = write("token", target.token);
        let config = write(
            "prometheus.yml",
            &format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: faros-hub\n    scheme: https\n\
                 \x20   authorization:\n      credentials_file: {token}\n\
                 \x20   tls_config:\n      ca_file: {ca}\n\
                 \x20   static_configs:\n      - targets: ['{address}']\n",
                token = token.display(),
                ca = ca.display(),
                address = target.address,
            ),
        );
        let port = crate::etcd::free_port();
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("create Prometheus' log");
        let child = Command::new(binary())
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus (Debian package `prometheus`)");
        let prometheus = Prometheus { dir, port, child };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !crate::http::get(port, "/-/ready", READ_TIMEOUT).starts_with("HTTP/1.0 200") {
            assert!(
                Instant::now() < deadline,
                "Prometheus did not become ready; its log:\n{}",
                prometheus.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        prometheus
    }

    /// The body of `/api/v1/query?query=<expr>` (JSON), evaluated now.
    pub fn query(&self, expr: &str) -> String {
        let query: String = form_urlencoded(expr);
        let response = crate::http::get(self.port, &format!("/api/v1/query?query={query}"), READ_TIMEOUT);
        response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
            .unwrap_or_default()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn binary() -> PathBuf {
    let debian = Path::new("/usr/bin/prometheus");
    if debian.exists() {
        debian.to_path_buf()
    } else {
        PathBuf::from("prometheus")
    }
}

/// Percent-encodes a query parameter's value.
fn form_urlencoded(value: &str) -> String {
    let mut out = String::new();
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
