//! End to end: the real hub, the real `edge-agent` binary and real kubectl.
//!
//! `edge-agent` comes from `CARGO_BIN_EXE_edge-agent`, built fresh for this test target. The
//! hub runs from the `hub-api` library in a child process (`faros-testkit`), so
//! `cargo test --workspace` (or `-p edge-agent`) works on a fresh clone.
//!
//! What depends on issue 5 (ServiceAccount tokens, TokenRequest, RBAC) is marked where it is
//! asserted: `registration_flow_end_to_end` needs the hub to issue registration tokens and
//! bound tokens, and its isolation assertions need RBAC enforcement.
//! `agent_lifecycle_with_an_admin_kubeconfig` needs none of it.

mod cli;
mod fleet;
mod ha;
mod packaging;
mod tunnel;
mod workloads;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use faros_testkit::kubectl;
use kube::config::Kubeconfig;
use serde_json::Value;

const HUB_ENV: &str = "FAROS_E2E_HUB";
const HUB_ARGS_ENV: &str = "FAROS_E2E_HUB_ARGS";
const AGENT: &str = env!("CARGO_BIN_EXE_edge-agent");
/// The hub's `--agent-monitor-grace-period` in these tests.
const GRACE: &str = "3s";

/// Not a test of its own: the body of the hub child process.
#[test]
#[ignore = "runs the hub for the other tests (only when FAROS_E2E_HUB is set)"]
fn hub_process() {
    faros_testkit::child_main(HUB_ENV, HUB_ARGS_ENV);
}

/// The hub of a test, with the test's files beside its data directory.
struct Hub {
    dir: PathBuf,
    hub: faros_testkit::Hub,
    /// A load balancer in front of the hub's replicas, that clients use instead of this
    /// replica's own URL: its URL and an admin kubeconfig naming it.
    front: Option<(String, PathBuf)>,
}

impl Hub {
    fn start() -> Hub {
        Self::start_with(&[])
    }

    /// A hub with `hub-api start` flags added to the usual ones.
    fn start_with(extra: &[&str]) -> Hub {
        Self::start_with_grace(GRACE, extra)
    }

    /// The same with another `--agent-monitor-grace-period`.
    fn start_with_grace(grace: &str, extra: &[&str]) -> Hub {
        let dir = std::env::temp_dir().join(format!("faros-e2e-{}-{}", std::process::id(), nanos()));
        std::fs::create_dir_all(&dir).unwrap();
        let launcher = faros_testkit::Launcher::ThisTest {
            dir_env: HUB_ENV,
            args_env: HUB_ARGS_ENV,
        };
        // The hub's log (RUST_LOG from HUB_LOG) is kept beside its data for post-mortems.
        let audit = dir.join("audit.log");
        let hub = faros_testkit::Hub::start_in(
            launcher,
            dir.join("hub"),
            true,
            &[
                "--agent-monitor-grace-period",
                grace,
                "--audit-log-path",
                audit.to_str().unwrap(),
            ]
            .into_iter()
            .chain(extra.iter().copied())
            .collect::<Vec<_>>(),
            Some(dir.join("hub.log")),
        );
        Hub { dir, hub, front: None }
    }

    /// From now on, kubeconfigs this makes name `url` (a load balancer in front of this
    /// replica and its peers) instead of the replica itself.
    fn behind(&mut self, url: &str) {
        let admin = self.hub.admin_kubeconfig_at(url, "front-admin.kubeconfig");
        self.front = Some((url.to_string(), admin));
    }

    /// SIGTERM, wait, start again on the same port and data.
    fn restart(&mut self) {
        self.hub.stop();
        // The agents see the hub gone for a moment.
        std::thread::sleep(Duration::from_secs(2));
        self.hub.resume();
    }

    fn admin(&self) -> PathBuf {
        match &self.front {
            Some((_, admin)) => admin.clone(),
            None => self.hub.kubeconfig(),
        }
    }

    /// The URL clients use: the load balancer's, or this replica's.
    fn base_url(&self) -> String {
        match &self.front {
            Some((url, _)) => url.clone(),
            None => self.hub.url(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/clusters/{path}", self.base_url())
    }

    fn admin_kubeconfig(&self) -> Kubeconfig {
        Kubeconfig::read_from(self.admin()).unwrap()
    }

    /// A copy of the admin kubeconfig pointing at workspace `path`.
    fn workspace_kubeconfig(&self, path: &str) -> PathBuf {
        let mut kubeconfig = self.admin_kubeconfig();
        let base = self.base_url();
        let server = self.url(path);
        assert!(server.contains(&base));
        for cluster in kubeconfig.clusters.iter_mut().filter_map(|c| c.cluster.as_mut()) {
            cluster.server = Some(server.clone());
        }
        let out = self.dir.join(format!("{}.kubeconfig", path.replace(':', "_")));
        faros_kubeconfig::write(&out, &kubeconfig).unwrap();
        out
    }

    /// The hub CA from the admin kubeconfig (base64).
    fn ca_data(&self) -> String {
        self.admin_kubeconfig().clusters[0]
            .cluster
            .as_ref()
            .and_then(|c| c.certificate_authority_data.clone())
            .unwrap()
    }

    /// Writes `file`: a kubeconfig like `kubectl faros agent generate` writes, for workspace
    /// `root:tenant1` with `token`, in namespace `default`, its entries named `names`
    /// (cluster, user, context).
    fn registration_kubeconfig_at(&self, file: &Path, names: (&str, &str, &str), token: &str) {
        let (cluster, user, context) = names;
        let kubeconfig = faros_kubeconfig::one_context(
            context,
            kube::config::Context {
                cluster: cluster.into(),
                user: Some(user.into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            kube::config::Cluster {
                server: Some(self.url("root:tenant1")),
                certificate_authority_data: Some(self.ca_data()),
                ..Default::default()
            },
            Some(faros_kubeconfig::Credential::Token(token).into()),
        );
        faros_kubeconfig::write(file, &kubeconfig).unwrap();
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

fn kubectl_v(version: &str, kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    kubectl::run(version, kubeconfig, &std::env::temp_dir(), args, stdin)
}

fn kubectl(kubeconfig: &Path, args: &[&str]) -> Output {
    kubectl_v("1.32", kubeconfig, args, None)
}

fn kubectl_ok(kubeconfig: &Path, args: &[&str]) -> String {
    faros_testkit::succeeded(&format!("kubectl {args:?}"), &kubectl(kubeconfig, args))
}

fn create(kubeconfig: &Path, yaml: &str) {
    let out = kubectl_v("1.32", kubeconfig, &["create", "-f", "-"], Some(yaml));
    assert!(
        out.status.success(),
        "kubectl create failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn get_json(kubeconfig: &Path, args: &[&str]) -> Value {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&kubectl_ok(kubeconfig, &all)).unwrap()
}

fn eventually(what: &str, timeout: Duration, check: impl FnMut() -> bool) {
    assert!(
        faros_testkit::eventually(timeout, check),
        "timed out after {timeout:?} waiting for {what}"
    );
}

fn ready_of(agent: &Value) -> (String, String) {
    agent["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready")
        .map(|c| {
            (
                c["status"].as_str().unwrap_or_default().to_string(),
                c["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .unwrap_or_default()
}

fn agent_ready(kubeconfig: &Path, name: &str) -> (String, String) {
    let out = kubectl(kubeconfig, &["get", "agent", name, "-o", "json"]);
    if !out.status.success() {
        return Default::default();
    }
    ready_of(&serde_json::from_slice(&out.stdout).unwrap())
}

fn lease_renew_time(kubeconfig: &Path, agent: &str) -> String {
    let out = kubectl(
        kubeconfig,
        &[
            "get",
            "lease",
            &format!("agent-{agent}"),
            "-o",
            "jsonpath={.spec.renewTime}",
        ],
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A running edge-agent process.
struct AgentProcess {
    child: Child,
    log: PathBuf,
}

impl AgentProcess {
    fn start(dir: &Path, kubeconfig: &Path, name: &str, state: &Path) -> AgentProcess {
        Self::start_with(dir, kubeconfig, name, state, &[])
    }

    fn start_with(dir: &Path, kubeconfig: &Path, name: &str, state: &Path, args: &[&str]) -> AgentProcess {
        Self::start_env(dir, kubeconfig, name, state, args, Vec::new())
    }

    /// With `env` added to the agent's environment (podman's configuration).
    fn start_env(
        dir: &Path,
        kubeconfig: &Path,
        name: &str,
        state: &Path,
        args: &[&str],
        env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
    ) -> AgentProcess {
        let log = dir.join(format!("{name}-{}.log", nanos()));
        let child = Command::new(AGENT)
            .arg("--state-dir")
            .arg(state)
            .args(args)
            .envs(env)
            .env("KUBECONFIG", kubeconfig)
            .env("FAROS_AGENT_NAME", name)
            .env("FAROS_AGENT_NAMESPACE", "default")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start edge-agent");
        AgentProcess { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits for the process to exit; returns its exit code.
    fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "edge-agent did not exit:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A child process killed when the test ends, however it ends.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Workspace `root:tenant1` of type `faros` with a Registration `devices`: the tenant's
/// admin kubeconfig and the registration kubeconfig devices join with.
fn devices_workspace(hub: &Hub) -> (PathBuf, PathBuf) {
    create_workspace(&hub.admin(), "tenant1", "faros");
    let tenant = hub.workspace_kubeconfig("root:tenant1");
    create(
        &tenant,
        "apiVersion: edge.faros.sh/v1alpha1\nkind: Registration\nmetadata:\n  name: devices\n  namespace: default\nspec: {}\n",
    );
    let join = registration_kubeconfig(hub, &tenant, "devices");
    (tenant, join)
}

fn create_workspace(admin: &Path, name: &str, type_name: &str) {
    create(
        admin,
        &format!(
            "apiVersion: tenancy.kcp.io/v1alpha1\nkind: Workspace\nmetadata:\n  name: {name}\nspec:\n  type:\n    name: {type_name}\n"
        ),
    );
    kubectl_ok(
        admin,
        &[
            "wait",
            "--for=jsonpath={.status.phase}=Ready",
            &format!("workspace/{name}"),
            "--timeout=60s",
        ],
    );
}

/// Checks what every agent test checks once its agent is up: readiness as kubectl sees it
/// (`kubectl wait`, with two kubectl versions), device facts and the printer columns.
/// `kubectl wait` fails at once on an object that does not exist yet.
fn wait_exists(tenant: &Path, name: &str) {
    eventually("the agent to create its Agent", Duration::from_secs(30), || {
        kubectl(tenant, &["get", "agent", name]).status.success()
    });
}

fn assert_reporting(tenant: &Path, name: &str) {
    wait_exists(tenant, name);
    for version in ["1.32", "1.27"].into_iter().filter(|v| kubectl::installed(v)) {
        let out = kubectl_v(
            version,
            tenant,
            &[
                "wait",
                "--for=condition=Ready",
                &format!("agent/{name}"),
                "--timeout=60s",
            ],
            None,
        );
        assert!(
            out.status.success(),
            "kubectl {version} wait: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let agent = get_json(tenant, &["agent", name]);
    let device = &agent["status"]["device"];
    assert!(!device["hostname"].as_str().unwrap_or_default().is_empty(), "{agent}");
    assert_eq!(device["os"], "linux");
    assert!(!device["kernelVersion"].as_str().unwrap_or_default().is_empty());
    assert!(!device["architecture"].as_str().unwrap_or_default().is_empty());
    assert!(device["cpus"].as_i64().unwrap_or_default() >= 1);
    assert!(device["memoryBytes"].as_i64().unwrap_or_default() > 0);
    assert!(!device["bootTime"].as_str().unwrap_or_default().is_empty());
    assert_eq!(device["agentVersion"], env!("CARGO_PKG_VERSION"));
    assert!(agent["status"]["lastHeartbeatTime"].is_string());
    assert_eq!(agent["status"]["observedGeneration"], agent["metadata"]["generation"]);
    let table = kubectl_ok(tenant, &["get", "agents"]);
    let header = table.lines().next().unwrap();
    for column in ["NAME", "READY", "VERSION", "LAST HEARTBEAT", "AGE"] {
        assert!(header.contains(column), "{table}");
    }
    assert!(
        table.lines().any(|l| l.starts_with(name) && l.contains("True")),
        "{table}"
    );
    let wide = kubectl_ok(tenant, &["get", "agents", "-o", "wide"]);
    for column in ["HOSTNAME", "OS", "ARCH"] {
        assert!(wide.lines().next().unwrap().contains(column), "{wide}");
    }
}

/// A spec change is applied and reported with the new observedGeneration.
fn change_spec(tenant: &Path, name: &str) {
    kubectl_ok(
        tenant,
        &[
            "patch",
            "agent",
            name,
            "--type=merge",
            "-p",
            r#"{"spec":{"heartbeatIntervalSeconds":1,"labels":{"zone":"north"},"config":{"mode":"eco"}}}"#,
        ],
    );
    let generation = get_json(tenant, &["agent", name])["metadata"]["generation"].clone();
    assert_eq!(generation, 2);
    eventually("the spec change to be reported", Duration::from_secs(30), || {
        let status = &get_json(tenant, &["agent", name])["status"];
        status["observedGeneration"] == generation
            && status["labels"]["zone"] == "north"
            && status["config"]["mode"] == "eco"
            && status["heartbeatIntervalSeconds"] == 1
    });
    // Heartbeats follow the new interval at once, not after the wait the old one scheduled
    // (10 s, past the hub's grace period for an agent reporting a 1 s interval).
    for _ in 0..2 {
        let before = lease_renew_time(tenant, name);
        eventually("a heartbeat on the new interval", Duration::from_secs(3), || {
            lease_renew_time(tenant, name) != before
        });
    }
    assert_eq!(agent_ready(tenant, name).0, "True");
    // Paused: reported, and later changes wait.
    kubectl_ok(
        tenant,
        &[
            "patch",
            "agent",
            name,
            "--type=merge",
            "-p",
            r#"{"spec":{"paused":true}}"#,
        ],
    );
    eventually("the pause to be reported", Duration::from_secs(30), || {
        let agent = get_json(tenant, &["agent", name]);
        agent["status"]["paused"] == true && ready_of(&agent).1 == "AgentPaused"
    });
    kubectl_ok(
        tenant,
        &[
            "patch",
            "agent",
            name,
            "--type=merge",
            "-p",
            r#"{"spec":{"labels":{"zone":"south"}}}"#,
        ],
    );
    std::thread::sleep(Duration::from_secs(2));
    let agent = get_json(tenant, &["agent", name]);
    assert_eq!(
        agent["status"]["labels"]["zone"], "north",
        "nothing applied while paused"
    );
    assert_eq!(agent["status"]["observedGeneration"], 3);
    kubectl_ok(
        tenant,
        &[
            "patch",
            "agent",
            name,
            "--type=merge",
            "-p",
            r#"{"spec":{"paused":false}}"#,
        ],
    );
    eventually("the unpaused spec to be applied", Duration::from_secs(30), || {
        let status = &get_json(tenant, &["agent", name])["status"];
        status["observedGeneration"] == 5 && status["labels"]["zone"] == "south" && status["paused"].is_null()
    });
}

/// SIGKILL: Unknown after the grace period; started again: Ready again; SIGTERM: stopped.
fn kill_restart_stop(
    hub_dir: &Path,
    tenant: &Path,
    kubeconfig: &Path,
    name: &str,
    state: &Path,
    agent: &mut AgentProcess,
) {
    signal(&agent.child, "KILL");
    agent.wait_exit(Duration::from_secs(10));
    let killed = Instant::now();
    eventually("Ready=Unknown after the grace period", Duration::from_secs(30), || {
        agent_ready(tenant, name) == ("Unknown".into(), "AgentStatusUnknown".into())
    });
    assert!(
        killed.elapsed() >= Duration::from_secs(2),
        "marked Unknown before the grace period passed"
    );
    // It stays Unknown (no flapping) while the agent is away.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(agent_ready(tenant, name).0, "Unknown");

    // Started again, logging JSON.
    *agent = AgentProcess::start_with(hub_dir, kubeconfig, name, state, &["--log-format", "json"]);
    eventually("Ready=True again after a restart", Duration::from_secs(30), || {
        agent_ready(tenant, name) == ("True".into(), "AgentReady".into())
    });
    // And stays so: the lifecycle controller does not fight the agent.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(agent_ready(tenant, name).0, "True", "{}", agent.log());

    signal(&agent.child, "TERM");
    assert_eq!(agent.wait_exit(Duration::from_secs(15)), Some(0), "{}", agent.log());
    let log = agent.log();
    assert!(!log.contains('\u{1b}'), "escape codes in the log:\n{log}");
    for line in log.lines() {
        let line: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(line["level"].is_string() && line["timestamp"].is_string(), "{line}");
    }
    assert!(log.contains(r#""message":"stopping""#), "{log}");
    assert_eq!(agent_ready(tenant, name), ("False".into(), "AgentStopped".into()));
    // A cleanly stopped agent keeps its precise answer past the grace period.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(agent_ready(tenant, name).1, "AgentStopped");
}

/// The agent rides out a hub restart: it stays up, reconnects, heartbeats and follows spec.
fn survive_hub_restart(hub: &mut Hub, tenant: &Path, name: &str, agent: &mut AgentProcess) {
    let before = lease_renew_time(tenant, name);
    hub.restart();
    assert!(
        agent.running(),
        "edge-agent exited when the hub went away:\n{}",
        agent.log()
    );
    eventually("heartbeats after the hub restart", Duration::from_secs(60), || {
        let now = lease_renew_time(tenant, name);
        !now.is_empty() && now != before
    });
    kubectl_ok(
        tenant,
        &[
            "patch",
            "agent",
            name,
            "--type=merge",
            "-p",
            r#"{"spec":{"config":{"after":"restart"}}}"#,
        ],
    );
    eventually("a spec change after the hub restart", Duration::from_secs(60), || {
        get_json(tenant, &["agent", name])["status"]["config"]["after"] == "restart"
    });
    assert_eq!(agent_ready(tenant, name).0, "True");
    assert!(agent.running(), "{}", agent.log());
    assert!(!agent.log().contains("panicked"), "{}", agent.log());
}

/// The issue's flow with registration credentials: needs the hub to issue ServiceAccount
/// tokens (issue 5). Isolation assertions need RBAC enforcement (issue 5).
#[test]
fn registration_flow_end_to_end() {
    let mut hub = Hub::start();
    let admin = hub.admin();
    create_workspace(&admin, "tenant1", "faros");
    let tenant = hub.workspace_kubeconfig("root:tenant1");

    create(
        &tenant,
        "apiVersion: edge.faros.sh/v1alpha1\nkind: Registration\nmetadata:\n  name: reg1\n  namespace: default\nspec: {}\n",
    );
    // The controller's objects, owned by the Registration.
    let uid = get_json(&tenant, &["registration", "reg1"])["metadata"]["uid"].clone();
    eventually("the registration's objects", Duration::from_secs(30), || {
        ["serviceaccount", "role", "rolebinding", "secret"].iter().all(|kind| {
            let name = if *kind == "secret" {
                "faros-reg-reg1-token"
            } else {
                "faros-reg-reg1"
            };
            let out = kubectl(&tenant, &["get", kind, name, "-o", "json"]);
            out.status.success()
                && serde_json::from_slice::<Value>(&out.stdout).unwrap()["metadata"]["ownerReferences"][0]["uid"] == uid
        })
    });
    let role = get_json(&tenant, &["role", "faros-reg-reg1"]);
    assert_eq!(
        role["rules"].as_array().unwrap().len(),
        1,
        "only `create agents` before anyone joined: {role}"
    );
    assert_eq!(role["rules"][0]["verbs"], serde_json::json!(["create"]));

    // Issue 5: the token controller fills the Secret, and the Registration turns Ready.
    kubectl_ok(
        &tenant,
        &["wait", "--for=condition=Ready", "registration/reg1", "--timeout=60s"],
    );
    let reg = get_json(&tenant, &["registration", "reg1"]);
    assert_eq!(reg["status"]["tokenSecretRef"]["name"], "faros-reg-reg1-token");
    assert_eq!(reg["status"]["serviceAccountName"], "faros-reg-reg1");
    assert!(!reg.to_string().contains("\"token\":"), "no token in status: {reg}");
    let secret = get_json(&tenant, &["secret", "faros-reg-reg1-token"]);
    let token_b64 = secret["data"]["token"].as_str().unwrap();
    let token = String::from_utf8(decode_b64(token_b64)).unwrap();

    // The kubeconfig `kubectl faros agent generate` writes.
    let reg_kubeconfig = hub.dir.join("agent1.kubeconfig");
    hub.registration_kubeconfig_at(&reg_kubeconfig, ("tenant1", "reg1", "agent1"), &token);

    let state1 = hub.dir.join("state-agent1");
    let mut agent1 = AgentProcess::start(&hub.dir, &reg_kubeconfig, "agent1", &state1);
    assert_reporting(&tenant, "agent1");
    let agent = get_json(&tenant, &["agent", "agent1"]);
    assert_eq!(agent["metadata"]["labels"]["edge.faros.sh/registration"], "reg1");

    // Its own credential, private, in the state directory.
    let own = state1.join("agent.kubeconfig");
    for file in [&own, &state1.join("token")] {
        let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
    }
    kubectl_ok(&own, &["get", "agent", "agent1"]);
    let sa = get_json(&tenant, &["serviceaccount", "faros-agent-agent1"]);
    assert_eq!(sa["metadata"]["ownerReferences"][0]["kind"], "Agent");
    // Joined and reported: the registration no longer mints tokens for it.
    eventually(
        "the registration's token rule to drop agent1",
        Duration::from_secs(30),
        || {
            !get_json(&tenant, &["role", "faros-reg-reg1"])
                .to_string()
                .contains("faros-agent-agent1")
        },
    );

    change_spec(&tenant, "agent1");

    let state2 = hub.dir.join("state-agent2");
    // agent2 rotates its token every 2 s: each new token is minted with its own credential.
    let mut agent2 = AgentProcess::start_with(
        &hub.dir,
        &reg_kubeconfig,
        "agent2",
        &state2,
        &["--rotate-every-seconds", "2"],
    );
    wait_exists(&tenant, "agent2");
    kubectl_ok(
        &tenant,
        &["wait", "--for=condition=Ready", "agent/agent2", "--timeout=60s"],
    );
    let first = std::fs::read_to_string(state2.join("token")).unwrap();
    eventually("agent2's token to be rotated", Duration::from_secs(30), || {
        std::fs::read_to_string(state2.join("token")).unwrap() != first
    });
    // The token file is written before the line saying so: wait for the line too.
    eventually("agent2's rotation logged", Duration::from_secs(10), || {
        agent2.log().contains("rotated the agent credential")
    });
    kubectl_ok(&state2.join("agent.kubeconfig"), &["get", "agent", "agent2"]);

    // Issue 5 (RBAC): one device's credential can never touch another device.
    let denied = |args: &[&str]| {
        let out = kubectl(&own, args);
        assert!(
            !out.status.success(),
            "agent1's credential could run {args:?}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    };
    denied(&["get", "agent", "agent2"]);
    denied(&[
        "patch",
        "agent",
        "agent2",
        "--type=merge",
        "-p",
        r#"{"spec":{"paused":true}}"#,
    ]);
    denied(&[
        "patch",
        "agent",
        "agent2",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"paused":true}}"#,
    ]);
    denied(&["delete", "agent", "agent2"]);
    denied(&["get", "agents"]);
    denied(&["get", "lease", "agent-agent2"]);
    denied(&["create", "token", "faros-agent-agent2"]);
    denied(&["get", "secrets"]);
    // The registration credential cannot read agents either.
    let out = kubectl(&reg_kubeconfig, &["get", "agent", "agent1"]);
    assert!(!out.status.success(), "the registration credential could read agent1");

    survive_hub_restart(&mut hub, &tenant, "agent1", &mut agent1);
    assert!(agent2.running(), "{}", agent2.log());

    // Revoking the registration stops new joins at once; joined agents keep working.
    kubectl_ok(&tenant, &["delete", "registration", "reg1", "--timeout=30s"]);
    for (kind, name) in [("secret", "faros-reg-reg1-token"), ("serviceaccount", "faros-reg-reg1")] {
        let out = kubectl(&tenant, &["get", kind, name]);
        assert!(!out.status.success(), "{kind}/{name} survived the revocation");
    }
    let mut agent3 = AgentProcess::start(&hub.dir, &reg_kubeconfig, "agent3", &hub.dir.join("state-agent3"));
    let code = agent3.wait_exit(Duration::from_secs(60));
    assert_ne!(code, Some(0), "{}", agent3.log());
    assert!(agent3.log().contains("401"), "a clear error: {}", agent3.log());
    assert!(!kubectl(&tenant, &["get", "agent", "agent3"]).status.success());
    let before = lease_renew_time(&tenant, "agent2");
    eventually(
        "agent2 heartbeating after the revocation",
        Duration::from_secs(30),
        || lease_renew_time(&tenant, "agent2") != before,
    );
    kubectl_ok(&own, &["get", "agent", "agent1"]);

    // A device without a stored credential cannot take over an Agent that already joined,
    // even with a valid registration token: it stops with a clear error.
    create(
        &tenant,
        "apiVersion: edge.faros.sh/v1alpha1\nkind: Registration\nmetadata:\n  name: reg2\n  namespace: default\nspec: {}\n",
    );
    let reg2 = registration_kubeconfig(&hub, &tenant, "reg2");
    let mut thief = AgentProcess::start(&hub.dir, &reg2, "agent2", &hub.dir.join("state-thief"));
    assert_ne!(thief.wait_exit(Duration::from_secs(90)), Some(0));
    assert!(thief.log().contains("already exists"), "{}", thief.log());
    assert!(!hub.dir.join("state-thief/token").exists());

    kill_restart_stop(&hub.dir, &tenant, &reg_kubeconfig, "agent1", &state1, &mut agent1);
    assert!(
        agent1.log().contains("using the stored agent credential"),
        "the restarted agent used its own credential: {}",
        agent1.log()
    );
    signal(&agent2.child, "TERM");
    assert_eq!(agent2.wait_exit(Duration::from_secs(15)), Some(0));
}

/// A device whose kubeconfig gets its token from an exec credential plugin (one that unseals
/// it from a TPM, say), as client-go's plugins work: the agent runs the plugin, joins with
/// the token it prints, and reports.
#[test]
fn agent_joins_with_an_exec_credential_plugin() {
    let hub = Hub::start();
    let admin = hub.admin();
    create_workspace(&admin, "tenant1", "faros");
    let tenant = hub.workspace_kubeconfig("root:tenant1");
    create(
        &tenant,
        "apiVersion: edge.faros.sh/v1alpha1\nkind: Registration\nmetadata:\n  name: reg1\n  namespace: default\nspec: {}\n",
    );
    let with_token = registration_kubeconfig(&hub, &tenant, "reg1");
    let mut kubeconfig = faros_kubeconfig::read_from(&with_token).unwrap();
    let user = kubeconfig.auth_infos[0].auth_info.as_mut().unwrap();
    let token = user.token.take().expect("a registration token");
    let runs = hub.dir.join("plugin-runs");
    let plugin = hub.dir.join("token-plugin.sh");
    std::fs::write(
        &plugin,
        format!(
            "echo \"$KUBERNETES_EXEC_INFO\" >> {runs}\n\
             printf '{{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"%s\"}}}}' '{token}'\n",
            runs = runs.display(),
            token = secrecy::ExposeSecret::expose_secret(&token),
        ),
    )
    .unwrap();
    user.exec = Some(
        serde_json::from_value(serde_json::json!({
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": "/bin/sh",
            "args": [plugin],
            "interactiveMode": "Never",
        }))
        .unwrap(),
    );
    let with_plugin = hub.dir.join("agent1-exec.kubeconfig");
    faros_kubeconfig::write(&with_plugin, &kubeconfig).unwrap();
    assert!(!std::fs::read_to_string(&with_plugin).unwrap().contains("token:"));

    let _agent = AgentProcess::start(&hub.dir, &with_plugin, "agent1", &hub.dir.join("state-agent1"));
    assert_reporting(&tenant, "agent1");
    let info = std::fs::read_to_string(&runs).expect("the plugin ran");
    assert!(info.contains("\"kind\":\"ExecCredential\""), "{info}");
    assert!(info.contains("\"interactive\":false"), "{info}");
}

/// The agent's lifecycle with an administrator's kubeconfig (no registration): none of it
/// depends on issue 5. Also binds the edge API with `config/samples/binding.yaml` in a
/// universal workspace, and runs the simulator.
#[test]
fn agent_lifecycle_with_an_admin_kubeconfig() {
    let mut hub = Hub::start();
    let admin = hub.admin();
    create_workspace(&admin, "plain", "universal");
    let tenant = hub.workspace_kubeconfig("root:plain");
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/samples");
    kubectl_ok(
        &tenant,
        &["create", "-f", samples.join("binding.yaml").to_str().unwrap()],
    );
    kubectl_ok(
        &tenant,
        &[
            "wait",
            "--for=jsonpath={.status.phase}=Bound",
            "apibinding/edge.faros.sh",
            "--timeout=60s",
        ],
    );
    eventually("agents served in the workspace", Duration::from_secs(30), || {
        kubectl(&tenant, &["get", "agents"]).status.success()
    });
    // The sample Agent is valid and is picked up by an agent of that name.
    kubectl_ok(&tenant, &["create", "-f", samples.join("agent.yaml").to_str().unwrap()]);
    let sample = get_json(&tenant, &["agent", "edge-1"]);
    assert_eq!(sample["spec"]["heartbeatIntervalSeconds"], 10);

    let state = hub.dir.join("state-admin");
    let mut agent = AgentProcess::start(&hub.dir, &tenant, "edge-1", &state);
    assert_reporting(&tenant, "edge-1");
    let status = get_json(&tenant, &["agent", "edge-1"])["status"].clone();
    assert_eq!(
        status["labels"]["site"], "plant-7",
        "the sample's labels are applied: {status}"
    );
    let applied: Value = serde_json::from_str(&std::fs::read_to_string(state.join("applied.json")).unwrap()).unwrap();
    assert_eq!(applied["labels"]["site"], "plant-7");
    kubectl_ok(
        &tenant,
        &[
            "patch",
            "agent",
            "edge-1",
            "--type=merge",
            "-p",
            r#"{"spec":{"heartbeatIntervalSeconds":1}}"#,
        ],
    );
    eventually("the new interval", Duration::from_secs(30), || {
        get_json(&tenant, &["agent", "edge-1"])["status"]["heartbeatIntervalSeconds"] == 1
    });
    survive_hub_restart(&mut hub, &tenant, "edge-1", &mut agent);
    kill_restart_stop(&hub.dir, &tenant, &tenant, "edge-1", &state, &mut agent);

    // The simulator: N agents through the same code, one process.
    let mut sim = KillOnDrop(
        Command::new(AGENT)
            .args([
                "simulate",
                "--count",
                "20",
                "--prefix",
                "sim-",
                "--heartbeat-interval-seconds",
                "2",
                "--tunnels",
            ])
            .env("KUBECONFIG", &tenant)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    eventually("20 simulated agents Ready", Duration::from_secs(60), || {
        let list = get_json(&tenant, &["agents", "-l", "edge.faros.sh/simulated=true"]);
        let items = list["items"].as_array().cloned().unwrap_or_default();
        items.len() == 20 && items.iter().all(|a| ready_of(a).0 == "True")
    });
    kubectl_ok(
        &tenant,
        &[
            "patch",
            "agent",
            "sim-7",
            "--type=merge",
            "-p",
            r#"{"spec":{"labels":{"x":"y"}}}"#,
        ],
    );
    eventually("a simulated agent applying its spec", Duration::from_secs(30), || {
        get_json(&tenant, &["agent", "sim-7"])["status"]["labels"]["x"] == "y"
    });
    // Simulated agents run placements on the fake runtime: reported Running at once.
    create(
        &tenant,
        "apiVersion: edge.faros.sh/v1alpha1\nkind: Placement\nmetadata:\n  name: web-sim-3\n  namespace: default\nspec:\n  workload: web\n  agent: sim-3\n  templateHash: h1\n  template:\n    containers: [{name: web, image: localhost/demo:1, resources: {requests: {cpu: 100m}}}]\n",
    );
    eventually(
        "a simulated agent running its placement",
        Duration::from_secs(30),
        || {
            let status = get_json(&tenant, &["placement", "web-sim-3"])["status"].clone();
            status["phase"] == "Running" && status["ready"] == true && status["runtime"] == "podman"
        },
    );
    eventually("the simulated agent's summary", Duration::from_secs(30), || {
        let status = get_json(&tenant, &["agent", "sim-3"])["status"].clone();
        status["workloadCount"] == 1 && status["allocated"]["cpu"] == "100m"
    });
    // With --tunnels each simulated device keeps a real session: connected, and answering.
    eventually("20 simulated tunnels", Duration::from_secs(60), || {
        let list = get_json(&tenant, &["agents", "-l", "edge.faros.sh/simulated=true"]);
        let items = list["items"].as_array().cloned().unwrap_or_default();
        items
            .iter()
            .filter(|a| {
                a["status"]["conditions"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c["type"] == "Connected" && c["status"] == "True"))
            })
            .count()
            == 20
    });
    let live = kubectl_ok(
        &tenant,
        &[
            "get",
            "--raw",
            "/clusters/root:plain/apis/edge.faros.sh/v1alpha1/namespaces/default/agents/sim-3/live",
        ],
    );
    assert!(live.contains("web-sim-3"), "{live}");
    signal(&sim.0, "TERM");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = sim.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the simulator did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success());
    let list = get_json(&tenant, &["agents", "-l", "edge.faros.sh/simulated=true"]);
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| ready_of(a).1 == "AgentStopped"),
        "{list}"
    );
}

/// Waits for Registration `name` to be Ready and writes the kubeconfig `kubectl faros agent
/// generate` would: the workspace URL, the hub CA, the namespace and the registration token.
fn registration_kubeconfig(hub: &Hub, tenant: &Path, name: &str) -> PathBuf {
    kubectl_ok(
        tenant,
        &[
            "wait",
            "--for=condition=Ready",
            &format!("registration/{name}"),
            "--timeout=60s",
        ],
    );
    let reg = get_json(tenant, &["registration", name]);
    let secret_name = reg["status"]["tokenSecretRef"]["name"].as_str().unwrap().to_string();
    let secret = get_json(tenant, &["secret", &secret_name]);
    let token = String::from_utf8(decode_b64(secret["data"]["token"].as_str().unwrap())).unwrap();
    let path = hub.dir.join(format!("{name}.kubeconfig"));
    hub.registration_kubeconfig_at(&path, ("hub", name, name), &token);
    path
}

fn decode_b64(text: &str) -> Vec<u8> {
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.bytes().filter(|c| *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {text}"),
        };
        bits = (bits << 6) | u32::from(v);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out
}

/// The offline-autonomy contract (docs/workloads.md) with the real binary, the real hub and
/// real podman: a placement runs; with the hub stopped a killed container is restarted, an
/// agent restarted meanwhile re-adopts the container without restarting it and keeps
/// supervising it; once the hub is back nothing restarts and the statuses catch up.
#[test]
fn offline_autonomy_with_a_real_hub() {
    let sandbox = faros_testkit::podman::Sandbox::new();
    sandbox.build_image("localhost/demo:1", "one");
    let mut hub = Hub::start();
    let (tenant, kubeconfig) = devices_workspace(&hub);
    let state = hub.dir.join("state-dev1");
    let args = [
        "--poll-interval-ms",
        "300",
        "--stop-grace-seconds",
        "1",
        "--reserved-cpu",
        "500m",
    ];
    let start = || AgentProcess::start_env(&hub.dir, &kubeconfig, "dev1", &state, &args, sandbox.env());
    let mut agent = start();
    assert_reporting(&tenant, "dev1");
    let status = get_json(&tenant, &["agent", "dev1"])["status"].clone();
    assert_eq!(status["runtimes"], serde_json::json!(["podman", "process"]), "{status}");
    let cpus = status["device"]["cpus"].as_i64().unwrap();
    assert_eq!(status["capacity"]["cpu"], (cpus).to_string());
    assert_eq!(status["allocatable"]["cpu"], format!("{}m", cpus * 1000 - 500));

    // Assigned as the scheduler would: one Placement for dev1.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let template = format!(
        "    containers:\n    - name: web\n      image: localhost/demo:1\n      command: [/bin/httpd]\n      args: [-f, -p, '8080', -h, /www]\n      ports: [{{containerPort: 8080, hostPort: {port}}}]\n      resources: {{requests: {{cpu: 250m, memory: 64Mi}}}}\n"
    );
    create(
        &tenant,
        &format!(
            "apiVersion: edge.faros.sh/v1alpha1\nkind: Placement\nmetadata:\n  name: web-dev1\n  namespace: default\nspec:\n  workload: web\n  agent: dev1\n  templateHash: h1\n  template:\n{template}"
        ),
    );
    let placement = |tenant: &Path| get_json(tenant, &["placement", "web-dev1"])["status"].clone();
    eventually("the placement running", Duration::from_secs(60), || {
        let s = placement(&tenant);
        s["phase"] == "Running" && s["ready"] == true
    });
    let status = placement(&tenant);
    let id = status["containers"][0]["containerId"].as_str().unwrap().to_string();
    assert_eq!(status["endpoints"][0]["port"], port);
    assert_eq!(status["templateHash"], "h1");
    assert_eq!(status["restartCount"], 0);
    let started = |sandbox: &faros_testkit::podman::Sandbox| {
        sandbox
            .inspect(&id, "{{.State.Running}} {{.State.StartedAt}}")
            .unwrap_or_default()
    };
    eventually("the agent's summary", Duration::from_secs(30), || {
        let s = get_json(&tenant, &["agent", "dev1"])["status"].clone();
        s["workloadCount"] == 1 && s["allocated"]["cpu"] == "250m" && s["workloads"][0]["phase"] == "Running"
    });

    // The hub goes away; a container killed meanwhile is restarted by the agent.
    hub.hub.stop();
    let before = started(&sandbox);
    sandbox.podman_ok(&["kill", &id]);
    eventually("a restart without the hub", Duration::from_secs(30), || {
        let now = started(&sandbox);
        now.starts_with("true") && now != before
    });

    // The agent restarts while the hub is still away: the container keeps running, same id.
    signal(&agent.child, "TERM");
    agent.wait_exit(Duration::from_secs(30));
    let running = started(&sandbox);
    agent = start();
    eventually("the new agent to start", Duration::from_secs(30), || {
        agent.log().contains("workload runtimes")
    });
    // Time for a wrong restart to happen: the agent checks every 300 ms.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        started(&sandbox),
        running,
        "re-adopted, not restarted:\n{}",
        agent.log()
    );
    // ... and supervises it: killed again, restarted again.
    sandbox.podman_ok(&["kill", &id]);
    eventually(
        "a restart by the new agent without the hub",
        Duration::from_secs(30),
        || {
            let now = started(&sandbox);
            now.starts_with("true") && now != running
        },
    );
    let running = started(&sandbox);

    // The hub is back: nothing restarts, the status catches up with both restarts.
    hub.hub.resume();
    eventually("the status to catch up", Duration::from_secs(60), || {
        let s = placement(&tenant);
        s["phase"] == "Running" && s["ready"] == true && s["restartCount"] == 2
    });
    assert_eq!(placement(&tenant)["containers"][0]["containerId"], id.as_str());
    // Time for a wrong restart after the hub's list of placements arrived.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(started(&sandbox), running, "nothing restarted on reconnecting");
    assert!(agent.running(), "{}", agent.log());
    assert!(!agent.log().contains("panicked"), "{}", agent.log());

    // Unassigned: stopped and removed.
    kubectl_ok(&tenant, &["delete", "placement", "web-dev1"]);
    eventually("the container removed", Duration::from_secs(30), || {
        sandbox.inspect(&id, "{{.Id}}").is_none()
    });
    eventually("the summary emptied", Duration::from_secs(30), || {
        get_json(&tenant, &["agent", "dev1"])["status"]["workloadCount"] == 0
    });
}
