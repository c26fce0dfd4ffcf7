//! What an operator watches: `/metrics` scraped by a real Prometheus, who may read it, the
//! named health checks, and the log of a clean shutdown (no warnings, no colour codes, JSON
//! that parses) while `/readyz` fails and a request in flight still finishes; and the metrics
//! and health checks of `hub-api controllers` run apart.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::auth_support::*;
use crate::common::{HUB, TestDir, TestHub, eventually, ready_workspace, reconciles};
use faros_testkit::prometheus::{Prometheus, Target};

/// A monitoring system's token, an ordinary user's and an administrator's.
const TOKENS: &str = "monitor-token,prometheus,2001,system:monitoring\n\
                      alice-token,alice,2002,\n\
                      ops-token,ops,2003,system:masters\n";

fn files(name: &str) -> TestDir {
    let dir = TestDir::new(name);
    std::fs::write(dir.join("tokens.csv"), TOKENS).unwrap();
    dir
}

/// Checks that the metrics `text` has each of `lines`, exactly.
fn assert_lines(text: &str, lines: &[&str]) {
    for line in lines {
        assert!(text.lines().any(|l| l == *line), "no {line:?} in:\n{text}");
    }
}

fn hub_with_tokens(dir: &Path) -> TestHub {
    let tokens = dir.join("tokens.csv");
    TestHub::start_with_args(HUB, true, &["--token-auth-file", tokens.to_str().unwrap()])
}

// Prometheus is queried with blocking calls while a task lists ConfigMaps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_request_rates() {
    let dir = files("metrics");
    let hub = hub_with_tokens(&dir);

    // `/metrics` needs `get` on it: `system:monitoring` has it, other users do not.
    let alice = hub.token_kubeconfig("alice", &hub.url(), "alice-token", None);
    let refused = kubectl_forbidden(&alice, &["get", "--raw", "/metrics"]);
    assert!(refused.contains("/metrics"), "{refused}");
    let (status, _) = send(&client_with_token(&hub, None).await, "GET", "/metrics", None).await;
    assert_eq!(status, 401);
    let monitor = hub.token_kubeconfig("monitor", &hub.url(), "monitor-token", None);
    let text = kubectl_ok(&monitor, &["get", "--raw", "/metrics"]);
    for family in [
        "# TYPE apiserver_request_total counter",
        "# TYPE apiserver_request_duration_seconds histogram",
        "# TYPE apiserver_current_inflight_requests gauge",
        "# TYPE apiserver_storage_objects gauge",
        "# TYPE faros_storage_commit_duration_seconds histogram",
        "# TYPE faros_storage_fsync_duration_seconds histogram",
        "# TYPE faros_storage_write_group_size histogram",
        "# TYPE faros_cache_objects gauge",
        "# TYPE faros_workspaces gauge",
        "faros_agents{ready=\"True\"}",
        "faros_controllers_running 1",
        "faros_controller_queue_depth{controller=",
    ] {
        assert!(text.contains(family), "no {family:?} in:\n{text}");
    }
    // Agents are counted by their Ready condition, in every workspace.
    let edge = ready_workspace(&hub, "edge", "faros");
    let agent = "apiVersion: edge.faros.sh/v1alpha1\nkind: Agent\nmetadata:\n  name: a1\n  namespace: default\n\
                 spec:\n  heartbeatIntervalSeconds: 10\n";
    let out = kubectl_stdin(&edge, &["create", "-f", "-"], agent);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = kubectl_ok(&monitor, &["get", "--raw", "/metrics"]);
    assert_lines(
        &text,
        &[
            "faros_agents{ready=\"Unknown\"} 1",
            "faros_agents{ready=\"True\"} 0",
            "faros_workspaces 3",
            "apiserver_storage_objects{resource=\"agents.edge.faros.sh\"} 1",
        ],
    );
    // A scrape reads again only the Agents written since the last one: a new status is
    // counted, and a deleted Agent is no longer.
    let stopped = r#"{"status":{"conditions":[{"type":"Ready","status":"False","reason":"AgentStopped","message":"stopped","lastTransitionTime":"2026-12-06T00:00:00Z"}]}}"#;
    kubectl_ok(
        &edge,
        &[
            "patch",
            "agent",
            "a1",
            "-n",
            "default",
            "--subresource=status",
            "--type=merge",
            "-p",
            stopped,
        ],
    );
    let text = kubectl_ok(&monitor, &["get", "--raw", "/metrics"]);
    assert_lines(
        &text,
        &["faros_agents{ready=\"False\"} 1", "faros_agents{ready=\"Unknown\"} 0"],
    );
    kubectl_ok(&edge, &["delete", "agent", "a1", "-n", "default"]);
    let text = kubectl_ok(&monitor, &["get", "--raw", "/metrics"]);
    assert_lines(
        &text,
        &[
            "faros_agents{ready=\"False\"} 0",
            "faros_agents{ready=\"Unknown\"} 0",
            "faros_agents{ready=\"True\"} 0",
        ],
    );
    // Nothing about one workspace: its metrics are the hub's, not a tenant's.
    let admin = hub.client().await;
    let (status, _) = send(&admin, "GET", "/clusters/root/metrics", None).await;
    assert_eq!(status, 404);

    let admin_kubeconfig = hub.kubeconfig();
    kubectl_ok(&admin_kubeconfig, &["create", "namespace", "scraped"]);
    for name in ["a", "b", "c"] {
        kubectl_ok(
            &admin_kubeconfig,
            &["create", "configmap", name, "-n", "scraped", "--from-literal=k=v"],
        );
    }
    let prometheus = Prometheus::start(Target {
        address: &format!("127.0.0.1:{}", hub.port),
        ca_pem: &hub.ca_pem(),
        token: "monitor-token",
    });
    // Clients list ConfigMaps while Prometheus scrapes every second.
    let lists = {
        let client = admin.clone();
        tokio::spawn(async move {
            let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> = kube::Api::namespaced(client, "scraped");
            loop {
                api.list(&Default::default()).await.expect("list ConfigMaps");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let query = |expr: &str| serde_json::from_str::<Value>(&prometheus.query(expr)).unwrap_or(Value::Null);
    let rate = r#"sum by (verb, resource, scope, code) (rate(apiserver_request_total{resource="configmaps",verb="LIST",scope="namespace"}[10s]))"#;
    let mut answer = Value::Null;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        answer = query(rate);
        let value = answer["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok());
        if value.is_some_and(|v| v > 0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    lists.abort();
    let result = &answer["data"]["result"];
    assert_eq!(
        result.as_array().map(Vec::len),
        Some(1),
        "Prometheus saw no LIST rate: {answer}\nits log:\n{}",
        prometheus.log()
    );
    assert_eq!(
        result[0]["metric"],
        json!({"verb": "LIST", "resource": "configmaps", "scope": "namespace", "code": "200"}),
        "{answer}"
    );
    let rate: f64 = result[0]["value"][1].as_str().unwrap().parse().unwrap();
    // At most one list every 50 ms, plus the controllers' own.
    assert!(rate > 0.0 && rate < 100.0, "{answer}");
    let up = query(r#"up{job="faros-hub"}"#);
    assert_eq!(up["data"]["result"][0]["value"][1], "1", "{up}");
    let stored = query(r#"apiserver_storage_objects{resource="configmaps"}"#);
    let stored: f64 = stored["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_default();
    assert!(stored >= 3.0, "{stored}");
}

#[tokio::test]
async fn named_health_checks() {
    let dir = files("health");
    let hub = hub_with_tokens(&dir);
    let anonymous = client_with_token(&hub, None).await;

    // Anyone may ask for the lists, with every check named.
    let (status, text) = send(&anonymous, "GET", "/readyz?verbose", None).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        text,
        "[+]ping ok\n[+]storage ok\n[+]cache-synced ok\n[+]bootstrap-done ok\n[+]controllers-started ok\n\
         [+]shutdown ok\nreadyz check passed\n"
    );
    let (_, text) = send(&anonymous, "GET", "/livez?verbose", None).await;
    assert_eq!(text, "[+]ping ok\n[+]storage ok\nlivez check passed\n");
    let (status, text) = send(&anonymous, "GET", "/healthz?verbose&exclude=storage", None).await;
    assert_eq!(status, 200);
    assert!(text.contains("[+]storage excluded: ok\n"), "{text}");
    assert!(!text.contains("shutdown"), "{text}");
    assert_eq!(send(&anonymous, "GET", "/livez", None).await, (200, "ok".to_string()));

    // A single check tells its reason, so it takes the permission `system:monitoring` has.
    let (status, _) = send(&anonymous, "GET", "/readyz/shutdown", None).await;
    assert_eq!(status, 401);
    let alice = client_with_token(&hub, Some("alice-token")).await;
    let (status, _) = send(&alice, "GET", "/livez/storage", None).await;
    assert_eq!(status, 403);
    let monitor = hub.token_kubeconfig("monitor", &hub.url(), "monitor-token", None);
    for path in [
        "/readyz/shutdown",
        "/livez/storage",
        "/healthz/cache-synced",
        "/readyz/controllers-started/",
    ] {
        assert_eq!(kubectl_ok(&monitor, &["get", "--raw", path]), "ok", "{path}");
    }
    let monitor = client_with_token(&hub, Some("monitor-token")).await;
    let (status, _) = send(&monitor, "GET", "/readyz/no-such-check", None).await;
    assert_eq!(status, 404);
    let (status, _) = send(&monitor, "GET", "/livez/shutdown", None).await;
    assert_eq!(status, 404, "shutdown is a readiness check only");

    // Inside a workspace, its members see the list and nothing more.
    let (status, text) = send(&hub.client().await, "GET", "/clusters/root/readyz?verbose", None).await;
    assert_eq!(status, 200);
    assert!(text.ends_with("readyz check passed\n"), "{text}");
    let (status, _) = send(&hub.client().await, "GET", "/clusters/root/readyz/ping", None).await;
    assert_eq!(status, 404);
}

/// A `hub-api` process run here (`start --all-in-one`, or `controllers`), so that the test
/// owns its log level and signals.
struct HubProcess {
    child: Child,
    /// The port it serves on.
    port: u16,
    log: PathBuf,
}

impl HubProcess {
    fn start(dir: &Path, args: &[&str]) -> HubProcess {
        let log = dir.join("hub.log");
        let tokens = dir.join("tokens.csv");
        let mut child = Command::new(env!("CARGO_BIN_EXE_hub-api"))
            .args(["start", "--all-in-one", "--secure-port", "0", "--data-dir"])
            .arg(dir)
            .arg("--token-auth-file")
            .arg(&tokens)
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start hub-api");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let serving = lines
            .by_ref()
            .map_while(Result::ok)
            .find(|line| line.contains("serving on"))
            .expect("the hub serves");
        std::thread::spawn(move || for _ in lines {});
        let port = serving
            .split_whitespace()
            .find_map(|w| w.strip_prefix("https://127.0.0.1:"))
            .and_then(|p| p.trim_end_matches(';').parse().ok())
            .expect("the serving line names the port");
        HubProcess { child, port, log }
    }

    /// Creates objects that keep the controllers busy: an edge workspace, with a
    /// Registration (its ServiceAccount, Role, binding and token) and an Agent in it, and
    /// namespaces and ConfigMaps.
    fn work(&self, dir: &Path) {
        let kubeconfig = dir.join("admin.kubeconfig");
        let workspace = "apiVersion: tenancy.kcp.io/v1alpha1\nkind: Workspace\nmetadata:\n  name: busy\n\
                         spec:\n  type:\n    name: faros\n";
        let out = kubectl_stdin(&kubeconfig, &["create", "-f", "-"], workspace);
        assert!(out.status.success(), "{}", stderr(&out));
        kubectl_ok(
            &kubeconfig,
            &[
                "wait",
                "--for=jsonpath={.status.phase}=Ready",
                "workspace/busy",
                "--timeout=60s",
            ],
        );
        let busy = format!("https://127.0.0.1:{}/clusters/root:busy", self.port);
        let edge = "apiVersion: edge.faros.sh/v1alpha1\nkind: Registration\nmetadata:\n  name: r1\n  \
                    namespace: default\nspec:\n  agentNames: [a1]\n---\napiVersion: edge.faros.sh/v1alpha1\n\
                    kind: Agent\nmetadata:\n  name: a1\n  namespace: default\nspec:\n  heartbeatIntervalSeconds: 10\n";
        let out = kubectl_stdin(&kubeconfig, &["--server", &busy, "create", "-f", "-"], edge);
        assert!(out.status.success(), "{}", stderr(&out));
        for i in 0..3 {
            kubectl_ok(&kubeconfig, &["create", "namespace", &format!("busy-{i}")]);
            kubectl_ok(
                &kubeconfig,
                &[
                    "create",
                    "configmap",
                    "c",
                    "-n",
                    &format!("busy-{i}"),
                    "--from-literal=k=v",
                ],
            );
        }
    }

    fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; its exit code.
    fn wait(&mut self) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("hub-api did not exit after SIGTERM; its log:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap()).into_owned()
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>;

/// A TLS connection to the hub that trusts its CA.
fn connect(port: u16, ca_pem: &str) -> std::io::Result<Tls> {
    let config = faros_testkit::tls::http1_client_trusting(ca_pem.as_bytes());
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let connection = rustls::ClientConnection::new(config, name).unwrap();
    Ok(rustls::StreamOwned::new(connection, tcp))
}

/// A ConfigMap POSTed over HTTP/1.1 with half its body sent: the request stays in flight
/// until [`HalfSent::finish`].
struct HalfSent {
    tls: Tls,
    rest: String,
}

impl HalfSent {
    fn configmap(port: u16, ca_pem: &str, name: &str, token: &str) -> HalfSent {
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
            "data": {"k": "v".repeat(2000)}})
        .to_string();
        let (first, rest) = body.split_at(body.len() / 2);
        let mut tls = connect(port, ca_pem).unwrap();
        write!(
            tls,
            "POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Authorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{first}",
            body.len()
        )
        .unwrap();
        tls.flush().unwrap();
        HalfSent {
            tls,
            rest: rest.to_string(),
        }
    }

    /// Sends the rest; the start of the status line answered (`HTTP/1.1 201`).
    fn finish(mut self) -> String {
        self.tls.write_all(self.rest.as_bytes()).unwrap();
        self.tls.flush().unwrap();
        let mut head = [0u8; 12];
        self.tls.read_exact(&mut head).unwrap();
        String::from_utf8_lossy(&head).into_owned()
    }
}

/// The status code of `GET path` on a new connection (None when none can be made).
fn status_of(port: u16, ca_pem: &str, path: &str) -> Option<u16> {
    let response = exchange(
        port,
        ca_pem,
        &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
    )?;
    response.split_whitespace().nth(1)?.parse().ok()
}

/// Sends `request` (as written on the wire) on a connection of its own and reads the whole
/// response; None when no connection can be made.
fn exchange(port: u16, ca_pem: &str, request: &str) -> Option<String> {
    let mut tls = connect(port, ca_pem).ok()?;
    tls.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    let _ = tls.read_to_string(&mut response);
    Some(response)
}

fn ca_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("pki").join("ca.crt")).expect("the hub's CA")
}

/// A raw request on a connection of its own: the status line's code, the `Retry-After`
/// header and the body (the connection closes after it).
fn raw_request(
    port: u16,
    ca_pem: &str,
    method: &str,
    path: &str,
    token: &str,
    body: &str,
) -> (u16, Option<String>, String) {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let response = exchange(port, ca_pem, &request).expect("a connection to the hub");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let code = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let retry_after = head.lines().find_map(|l| {
        l.to_ascii_lowercase()
            .strip_prefix("retry-after:")
            .map(|v| v.trim().to_string())
    });
    (code, retry_after, body.to_string())
}

/// `--max-mutating-requests-inflight`: while as many writes as allowed are being served,
/// another is refused at once with 429, `Retry-After` and a `TooManyRequests` Status, and
/// counted in `/metrics`; reads, and `system:masters`, are not held back; and kubectl, told
/// to come back, does so and succeeds once a place is free.
#[test]
fn a_full_hub_answers_429_and_clients_come_back() {
    let dir = files("inflight");
    let hub = HubProcess::start(&dir, &["--max-mutating-requests-inflight", "1"]);
    let ca = ca_of(&dir);
    let admin = dir.join("admin.kubeconfig");
    let role = "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: configmaps\n  namespace: default\n\
                rules:\n- apiGroups: ['']\n  resources: [configmaps]\n  verbs: [get, list, watch, create]\n";
    kubectl_stdin_ok(&admin, &["apply", "-f", "-"], role);
    kubectl_ok(
        &admin,
        &[
            "create",
            "rolebinding",
            "alice",
            "-n",
            "default",
            "--role=configmaps",
            "--user=alice",
        ],
    );
    let alice = {
        let server = format!("https://127.0.0.1:{}", hub.port);
        let path = dir.join("alice.kubeconfig");
        let kubeconfig = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: hub\n  cluster:\n    server: {server}\n    \
             certificate-authority: {}\nusers:\n- name: alice\n  user:\n    token: alice-token\n\
             contexts:\n- name: alice\n  context: {{cluster: hub, user: alice}}\ncurrent-context: alice\n",
            dir.join("pki").join("ca.crt").display()
        );
        std::fs::write(&path, kubeconfig).unwrap();
        path
    };

    // Alice's ConfigMap, half sent: its request holds the one place for writes until the rest
    // of the body arrives.
    let slow = HalfSent::configmap(hub.port, &ca, "slow", "alice-token");

    // Another write of hers (a review, which stores nothing) is refused once that one holds
    // the place, at once, with a Status saying when to come back.
    let review = r#"{"apiVersion":"authorization.k8s.io/v1","kind":"SelfSubjectAccessReview","spec":{"resourceAttributes":{"verb":"get","resource":"configmaps"}}}"#;
    let mut refused = None;
    assert!(
        eventually(Duration::from_secs(10), || {
            let answer = raw_request(
                hub.port,
                &ca,
                "POST",
                "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                "alice-token",
                review,
            );
            let full = answer.0 == 429;
            refused = Some(answer);
            full
        }),
        "no write was refused while the only place was held: {refused:?}"
    );
    let (_, retry_after, status) = refused.unwrap();
    assert_eq!(retry_after.as_deref(), Some("1"));
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "TooManyRequests");
    assert_eq!(status["code"], 429);
    assert_eq!(status["details"]["retryAfterSeconds"], 1);

    // Reads have their own cap, and an administrator is never held back.
    assert!(kubectl_ok(&alice, &["get", "configmaps", "-n", "default", "-o", "name"]).is_empty());
    kubectl_ok(
        &admin,
        &["create", "configmap", "by-admin", "-n", "default", "--from-literal=k=v"],
    );

    // kubectl, refused, waits as told and tries again; it succeeds once the slow write ends.
    let dropped_writes = || {
        let metrics = kubectl_ok(&admin, &["get", "--raw", "/metrics"]);
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("apiserver_dropped_requests_total{request_kind=\"mutating\"} "))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_default()
    };
    let dropped_before = dropped_writes();
    assert!(dropped_before >= 1, "the refused review was not counted");
    let kubectl = Command::new(crate::common::kubectl_binary("1.32"))
        .args(["--kubeconfig"])
        .arg(&alice)
        .args([
            "create",
            "configmap",
            "by-alice",
            "-n",
            "default",
            "--from-literal=k=v",
            "-v=6",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        eventually(Duration::from_secs(30), || dropped_writes() > dropped_before),
        "kubectl's write was not refused"
    );
    assert_eq!(slow.finish(), "HTTP/1.1 201");
    let out = kubectl.wait_with_output().unwrap();
    let log = stderr(&out);
    assert!(out.status.success(), "kubectl gave up:\n{log}");
    assert!(log.contains(" 429 "), "kubectl was never refused:\n{log}");
    let names = kubectl_ok(&admin, &["get", "configmaps", "-n", "default", "-o", "name"]);
    for name in ["slow", "by-admin", "by-alice"] {
        assert!(names.contains(&format!("configmap/{name}")), "{names}");
    }

    let metrics = kubectl_ok(&admin, &["get", "--raw", "/metrics"]);
    assert!(
        !metrics.contains("apiserver_dropped_requests_total{request_kind=\"readOnly\"}"),
        "a read was refused"
    );
}

/// SIGTERM: `/readyz` fails at once while the hub still serves (for the shutdown delay),
/// a request in flight finishes after the listener closed, and the log of it all has no
/// warning or error, every line of it JSON.
/// An HTTP/2 client that goes silent (a device whose network dropped without a word): the
/// hub PINGs its connection and, with no answer, closes it, which ends whatever it carried
/// (a device's tunnel session among them).
#[test]
fn a_silent_http2_connection_is_pinged_then_closed() {
    let dir = files("silent-h2");
    let mut hub = HubProcess::start(&dir, &[]);
    let config = faros_testkit::tls::client_trusting(ca_of(&dir).as_bytes(), b"h2");
    let tcp = std::net::TcpStream::connect(("127.0.0.1", hub.port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(90))).unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = rustls::StreamOwned::new(rustls::ClientConnection::new(config, name).unwrap(), tcp);
    // The connection preface and empty SETTINGS; then nothing, not even acknowledgements.
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .unwrap();
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"h2"[..]));
    const PING: u8 = 0x6;
    let mut frames = Vec::new();
    let mut header = [0u8; 9];
    // Frames until the hub closes the connection: EOF, or a TLS error for the missing
    // close_notify; a read that times out means it never did.
    let closed = loop {
        let read = tls.read_exact(&mut header).and_then(|()| {
            let length = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
            tls.read_exact(&mut vec![0u8; length])
        });
        match read {
            Ok(()) => frames.push(header[3]),
            Err(e) => break e,
        }
    };
    assert!(
        !matches!(
            closed.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "the silent connection stayed open: {closed}"
    );
    assert!(frames.contains(&PING), "frame types from the hub: {frames:?}");
    assert!(hub.child.try_wait().unwrap().is_none(), "the hub lives on");
}

#[test]
fn clean_shutdown_with_json_logs() {
    let dir = files("shutdown");
    let mut hub = HubProcess::start(&dir, &["--log-format", "json", "--shutdown-delay-duration", "2s"]);
    let ca = ca_of(&dir);
    hub.work(&dir);
    assert_eq!(status_of(hub.port, &ca, "/readyz"), Some(200));

    // A ConfigMap whose body is still on its way when the signal comes.
    let in_flight = HalfSent::configmap(hub.port, &ca, "late", "ops-token");

    hub.sigterm();
    assert!(
        eventually(Duration::from_secs(2), || status_of(hub.port, &ca, "/readyz")
            == Some(503)),
        "/readyz did not fail once shutdown began"
    );
    assert_eq!(
        status_of(hub.port, &ca, "/livez"),
        Some(200),
        "the hub lives on while it drains"
    );
    // After the delay the listener closes...
    assert!(
        eventually(Duration::from_secs(10), || connect(hub.port, &ca).is_err()),
        "the listener stayed open"
    );
    // ...and the request in flight still completes.
    assert_eq!(in_flight.finish(), "HTTP/1.1 201");
    assert_eq!(hub.wait(), Some(0));

    let log = hub.log_text();
    assert!(!log.contains('\u{1b}'), "escape codes in the log:\n{log}");
    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "shutting down" && l["level"] == "INFO"),
        "{log}"
    );
    let bad: Vec<&Value> = lines
        .iter()
        .filter(|l| l["level"] == "WARN" || l["level"] == "ERROR")
        .collect();
    assert!(bad.is_empty(), "a clean shutdown logged warnings or errors:\n{log}");
}

/// The text log, written to a file, has no colour codes and no warning or error either.
#[test]
fn clean_shutdown_with_text_logs() {
    let dir = files("shutdown-text");
    let mut hub = HubProcess::start(&dir, &[]);
    hub.work(&dir);
    hub.sigterm();
    assert_eq!(hub.wait(), Some(0));
    let log = hub.log_text();
    assert!(!log.contains('\u{1b}'), "escape codes in the log:\n{log}");
    assert!(log.contains("INFO hub_api::start: shutting down"), "{log}");
    for line in log.lines() {
        assert!(
            !line.contains(" WARN ") && !line.contains(" ERROR "),
            "a clean shutdown logged a warning or an error:\n{log}"
        );
    }
}

/// `hub-api controllers --metrics-bind-address` beside a hub without `--all-in-one`: once
/// its controllers reconciled a workspace, its own `/metrics` (plain HTTP) has their reconcile
/// count and queue depths under the hub's names, in a text promtool accepts; its health
/// checks pass, leader election among them; SIGTERM stops it cleanly.
#[test]
fn controllers_apart_serve_their_metrics_and_health() {
    let hub = TestHub::start_with(HUB, false);
    let port = faros_testkit::etcd::free_port();
    let log = hub.dir.join("controllers.log");
    let mut controllers = HubProcess {
        child: Command::new(env!("CARGO_BIN_EXE_hub-api"))
            .arg("controllers")
            .arg("--kubeconfig")
            .arg(hub.kubeconfig())
            .args(["--metrics-bind-address", &format!("127.0.0.1:{port}")])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start hub-api controllers"),
        port,
        log,
    };
    let get = |path: &str| {
        let response = faros_testkit::http::get(port, path, Duration::from_secs(5));
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        (status, body.to_string())
    };
    assert!(
        eventually(Duration::from_secs(30), || get("/readyz").0 == 200),
        "the controllers became ready: {:?}\nits log:\n{}",
        get("/readyz?verbose"),
        controllers.log_text()
    );

    // The workspace controller makes a workspace Ready: a reconcile, counted.
    ready_workspace(&hub, "reconciled", "universal");
    let (status, text) = get("/metrics");
    assert_eq!(status, 200, "{text}");
    assert!(
        reconciles(&text, "workspace").is_some_and(|n| n > 0),
        "no workspace reconciles in:\n{text}"
    );
    for series in [
        "faros_controllers_running 1",
        "faros_controller_queue_depth{controller=\"workspace\"} ",
        "# TYPE faros_controller_reconcile_duration_seconds histogram",
    ] {
        assert!(text.lines().any(|l| l.starts_with(series)), "no {series:?} in:\n{text}");
    }
    assert!(
        !text.contains("apiserver_"),
        "the hub's own metrics are not here:\n{text}"
    );
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package `prometheus`)");
    promtool.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    assert_eq!(get("/healthz"), (200, "ok".to_string()));
    assert_eq!(
        get("/readyz?verbose").1,
        "[+]ping ok\n[+]controllers-started ok\n[+]leader-election ok\n[+]shutdown ok\nreadyz check passed\n"
    );
    assert_eq!(
        get("/livez?verbose").1,
        "[+]ping ok\n[+]leader-election ok\nlivez check passed\n"
    );
    assert_eq!(get("/readyz/leader-election"), (200, "ok".to_string()));
    assert_eq!(
        get("/readyz/storage").0,
        404,
        "the hub's checks are not the controllers'"
    );
    assert_eq!(get("/apis").0, 404);

    controllers.sigterm();
    assert_eq!(controllers.wait(), Some(0));
    let log = controllers.log_text();
    assert!(
        !log.lines().any(|l| l.contains("ERROR") || l.contains("WARN")),
        "a clean stop logs no warning:\n{log}"
    );
    assert_eq!(get("/healthz").0, 0, "the endpoint closed with the process");
}
