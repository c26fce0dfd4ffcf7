//! Workloads end to end on the hub's side: the real hub with its scheduler, the real plugin,
//! real kubectl. Devices are simulated by writing, as the admin, what an agent would report:
//! the Agent's status (Ready, runtimes, allocatable) and its Placements' status.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use faros_testkit::{eventually, kubectl};
use serde_json::{Value, json};

const HUB_ENV: &str = "FAROS_WORKLOAD_TEST_HUB";
const HUB_ARGS_ENV: &str = "FAROS_WORKLOAD_TEST_HUB_ARGS";
const PLUGIN: &str = env!("CARGO_BIN_EXE_kubectl-faros");
const WAIT: Duration = Duration::from_secs(30);

/// Not a test of its own: the body of the hub child process the tests start.
#[test]
#[ignore = "runs the hub for the other tests (only when FAROS_WORKLOAD_TEST_HUB is set)"]
fn hub_process() {
    faros_testkit::child_main(HUB_ENV, HUB_ARGS_ENV);
}

struct Env {
    dir: PathBuf,
    hub: faros_testkit::Hub,
    kubeconfig: PathBuf,
}

impl Env {
    /// A hub whose scheduler evicts after 2 s, and whose agent lifecycle controller leaves
    /// the simulated agents (which never heartbeat) alone.
    fn start() -> Env {
        let dir = std::env::temp_dir().join(format!("faros-workloads-test-{}", uuid::Uuid::new_v4()));
        let launcher = faros_testkit::Launcher::ThisTest {
            dir_env: HUB_ENV,
            args_env: HUB_ARGS_ENV,
        };
        let args = [
            "--workload-eviction-timeout",
            "2s",
            "--agent-monitor-grace-period",
            "1h",
        ];
        let hub = faros_testkit::Hub::start_in(launcher, dir.join("hub"), true, &args, None);
        let kubeconfig = dir.join("config");
        std::fs::copy(hub.kubeconfig(), &kubeconfig).unwrap();
        Env { dir, hub, kubeconfig }
    }

    fn faros_with(&self, kubeconfig: &std::path::Path, args: &[&str]) -> Output {
        Command::new(PLUGIN)
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("HOME", &self.dir)
            .stdin(Stdio::null())
            .output()
            .expect("run kubectl-faros")
    }

    fn faros_ok(&self, args: &[&str]) -> String {
        faros_testkit::succeeded(
            &format!("kubectl faros {args:?}"),
            &self.faros_with(&self.kubeconfig, args),
        )
    }

    /// Runs the plugin, asserts it failed cleanly, returns stderr.
    fn faros_err_with(&self, kubeconfig: &std::path::Path, args: &[&str]) -> String {
        let out = self.faros_with(kubeconfig, args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(1),
            "kubectl faros {args:?} should fail: {stderr}"
        );
        assert!(
            stderr.starts_with("error: ") && !stderr.contains("panicked"),
            "{stderr}"
        );
        stderr
    }

    fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        kubectl::run("1.32", &self.kubeconfig, &self.dir, args, stdin)
    }

    fn kubectl_ok(&self, args: &[&str]) -> String {
        faros_testkit::succeeded(&format!("kubectl {args:?}"), &self.kubectl(args, None))
    }

    fn get(&self, args: &[&str]) -> Value {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", "json"]);
        serde_json::from_str(&self.kubectl_ok(&all)).unwrap()
    }

    /// (agent, templateHash) of the placements of `workload`, sorted by agent.
    fn placements(&self, workload: &str) -> Vec<(String, String)> {
        let list = self.get(&["placements", "-l", &format!("edge.faros.sh/workload={workload}")]);
        let mut out: Vec<(String, String)> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .map(|p| {
                (
                    p["spec"]["agent"].as_str().unwrap().to_string(),
                    p["spec"]["templateHash"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        out.sort();
        out
    }

    fn agents_of(&self, workload: &str) -> Vec<String> {
        self.placements(workload).into_iter().map(|(a, _)| a).collect()
    }

    /// Waits until `workload` is placed on exactly `agents`.
    fn wait_placed(&self, workload: &str, agents: &[&str]) {
        let mut last = Vec::new();
        let done = eventually(WAIT, || {
            last = self.agents_of(workload);
            last == agents
        });
        assert!(done, "{workload} should be placed on {agents:?}, is on {last:?}");
    }

    fn condition(&self, workload: &str, type_: &str) -> (String, String, String) {
        let w = self.get(&["workload", workload]);
        let c = w["status"]["conditions"]
            .as_array()
            .and_then(|l| l.iter().find(|c| c["type"] == type_).cloned())
            .unwrap_or_default();
        let text = |k: &str| c[k].as_str().unwrap_or_default().to_string();
        (text("status"), text("reason"), text("message"))
    }

    fn wait_condition(&self, workload: &str, type_: &str, status: &str, reason: &str) -> String {
        let mut last = Default::default();
        let done = eventually(WAIT, || {
            last = self.condition(workload, type_);
            last.0 == status && last.1 == reason
        });
        assert!(done, "{workload}: {type_} should be {status}/{reason}, is {last:?}");
        last.2
    }

    /// Creates agent `name` and reports its status as its device would.
    fn agent(&self, name: &str, site: &str, runtimes: &[&str], cpu: &str, memory: &str) {
        let agent = format!(
            "apiVersion: edge.faros.sh/v1alpha1\nkind: Agent\nmetadata: {{name: {name}, namespace: default}}\nspec: {{}}\n"
        );
        let out = self.kubectl(&["create", "-f", "-"], Some(&agent));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        self.kubectl_ok(&["label", "agent", name, &format!("site={site}")]);
        self.report(
            name,
            "True",
            json!({"runtimes": runtimes, "allocatable": {"cpu": cpu, "memory": memory}}),
        );
    }

    /// Writes the agent's Ready condition (and `extra` status fields).
    fn report(&self, name: &str, ready: &str, mut extra: Value) {
        let now = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second()).unwrap();
        extra["conditions"] = json!([{
            "type": "Ready", "status": ready, "reason": "Simulated", "lastTransitionTime": now.to_string()
        }]);
        let patch = json!({ "status": extra }).to_string();
        self.kubectl_ok(&[
            "patch",
            "agent",
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            &patch,
        ]);
    }

    /// Reports every placement of `workload` running and ready with its current template.
    fn run_placements(&self, workload: &str) {
        let list = self.get(&["placements", "-l", &format!("edge.faros.sh/workload={workload}")]);
        for p in list["items"].as_array().unwrap() {
            let agent = p["spec"]["agent"].as_str().unwrap();
            let status = json!({"status": {
                "phase": "Running", "ready": true, "restartCount": 1,
                "templateHash": p["spec"]["templateHash"],
                "endpoints": [{"address": "10.0.0.1", "port": 8080, "containerPort": 8080, "url": format!("tcp://{agent}:8080")}],
            }});
            self.kubectl_ok(&[
                "patch",
                "placement",
                p["metadata"]["name"].as_str().unwrap(),
                "--subresource=status",
                "--type=merge",
                "-p",
                &status.to_string(),
            ]);
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[test]
fn scheduler_places_updates_moves_and_removes_workloads() {
    let env = Env::start();
    env.faros_ok(&["workspace", "create", "plant", "--type", "faros", "--enter"]);
    env.agent("dev1", "north", &["podman", "process"], "2", "2Gi");
    env.agent("dev2", "north", &["podman"], "4", "8Gi");
    env.agent("dev3", "south", &["podman"], "4", "8Gi");

    // All, selecting two of three agents.
    let out = env.faros_ok(&[
        "deploy",
        "web",
        "--image",
        "localhost/demo:1",
        "--port",
        "8080",
        "--selector",
        "site=north",
    ]);
    assert!(out.starts_with("workload.edge.faros.sh/web created\n"), "{out}");
    assert!(
        out.contains("2 agent(s) match the selector site=north: dev1, dev2"),
        "{out}"
    );
    env.wait_placed("web", &["dev1", "dev2"]);
    let on_dev1 = env.get(&["placements", "-l", "edge.faros.sh/agent=dev1"]);
    let p = &on_dev1["items"][0];
    assert_eq!(p["metadata"]["labels"]["edge.faros.sh/workload"], "web");
    assert_eq!(p["metadata"]["labels"]["edge.faros.sh/agent"], "dev1");
    assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "Workload");
    assert_eq!(p["metadata"]["ownerReferences"][0]["controller"], true);
    assert_eq!(p["spec"]["template"]["containers"][0]["ports"][0]["hostPort"], 8080);
    env.wait_condition("web", "Progressing", "True", "RollingOut");

    // The devices report it running: Available, and the table kubectl prints says so.
    env.run_placements("web");
    env.wait_condition("web", "Available", "True", "AllReady");
    let table = env.kubectl_ok(&["get", "workloads"]);
    let lines: Vec<Vec<&str>> = table.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines[0], ["NAME", "DESIRED", "READY", "UP-TO-DATE", "AGE"], "{table}");
    assert_eq!(lines[1][..4], ["web", "2", "2", "2"], "{table}");
    let list = env.faros_ok(&["workload", "list", "--agent", "dev1"]);
    let rows: Vec<Vec<&str>> = list.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        rows[0],
        ["WORKLOAD", "AGENT", "PHASE", "READY", "RESTARTS", "ENDPOINTS", "AGE"],
        "{list}"
    );
    assert_eq!(
        rows[1][..6],
        ["web", "dev1", "Running", "1/1", "1", "tcp://dev1:8080"],
        "{list}"
    );
    assert_eq!(rows.len(), 2, "{list}");

    // A new template replaces the placements' in place.
    let before = env.placements("web");
    let out = env.faros_ok(&[
        "deploy",
        "web",
        "--image",
        "localhost/demo:2",
        "--port",
        "8080",
        "--selector",
        "site=north",
    ]);
    assert!(out.starts_with("workload.edge.faros.sh/web configured\n"), "{out}");
    let mut now = Vec::new();
    assert!(
        eventually(WAIT, || {
            now = env.placements("web");
            now.len() == 2 && now.iter().zip(&before).all(|(a, b)| a.0 == b.0 && a.1 != b.1)
        }),
        "templates updated: {before:?} -> {now:?}"
    );
    let p = env.get(&["placements", "-l", "edge.faros.sh/agent=dev2"]);
    assert_eq!(
        p["items"][0]["spec"]["template"]["containers"][0]["image"],
        "localhost/demo:2"
    );
    env.wait_condition("web", "Available", "False", "RollingOut");
    env.run_placements("web");
    env.wait_condition("web", "Available", "True", "AllReady");

    // ResourceAware: 4Gi fits only dev2.
    env.faros_ok(&[
        "deploy",
        "big",
        "--image",
        "localhost/demo:1",
        "--selector",
        "site=north",
        "--replicas",
        "1",
        "--scheduling",
        "resource-aware",
        "--memory",
        "4Gi",
    ]);
    env.wait_placed("big", &["dev2"]);
    // Above every device: Degraded, naming each device and why.
    env.faros_ok(&[
        "deploy",
        "huge",
        "--image",
        "localhost/demo:1",
        "--selector",
        "site=north",
        "--replicas",
        "1",
        "--scheduling",
        "resource-aware",
        "--memory",
        "64Gi",
    ]);
    let message = env.wait_condition("huge", "Degraded", "True", "Unschedulable");
    assert_eq!(
        message,
        "0 of 1 wanted placements could be made: dev1: insufficient memory (requests 64Gi, free 2Gi); \
         dev2: insufficient memory (requests 64Gi, free 4Gi)"
    );
    assert!(env.agents_of("huge").is_empty());
    let described = env.faros_ok(&["workload", "describe", "big"]);
    assert!(
        described.contains("Placement:    Replicas 1 (ResourceAware)"),
        "{described}"
    );
    assert!(described.contains("requests memory=4Gi"), "{described}");
    assert!(described.contains("\n  dev2 "), "{described}");

    // Cordon: new placements stay off dev2, nothing moves.
    assert_eq!(env.faros_ok(&["agent", "cordon", "dev2"]), "agent/dev2 cordoned\n");
    env.faros_ok(&[
        "deploy",
        "late",
        "--image",
        "localhost/demo:1",
        "--selector",
        "site=north",
    ]);
    env.wait_placed("late", &["dev1"]);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(env.agents_of("big"), ["dev2"]);
    assert_eq!(env.agents_of("web"), ["dev1", "dev2"]);
    assert_eq!(env.faros_ok(&["agent", "uncordon", "dev2"]), "agent/dev2 uncordoned\n");
    env.wait_placed("late", &["dev1", "dev2"]);

    // Drain moves a Replicas workload away; All workloads stay.
    env.faros_ok(&[
        "deploy",
        "mover",
        "--image",
        "localhost/demo:1",
        "--selector",
        "site=north",
        "--replicas",
        "1",
    ]);
    let mut from = Vec::new();
    assert!(eventually(WAIT, || {
        from = env.agents_of("mover");
        from.len() == 1
    }));
    let (from, to) = if from[0] == "dev1" {
        ("dev1", "dev2")
    } else {
        ("dev2", "dev1")
    };
    let out = env.faros_ok(&["agent", "drain", from]);
    assert!(out.contains(&format!("agent/{from}: workload mover moved")), "{out}");
    assert!(out.contains(&format!("agent/{from}: workload web stays")), "{out}");
    env.wait_placed("mover", &[to]);
    assert_eq!(env.agents_of("web"), ["dev1", "dev2"]);
    env.faros_ok(&["agent", "uncordon", from]);

    // The agent running it stops reporting: past the eviction timeout the Replicas
    // placement moves, the All one stays.
    env.report(to, "Unknown", json!({}));
    env.wait_placed("mover", &[from]);
    assert_eq!(env.agents_of("web"), ["dev1", "dev2"]);

    // Deleting the workload removes its placements (the garbage collector).
    env.kubectl_ok(&["delete", "workload", "web"]);
    env.wait_placed("web", &[]);
    assert_eq!(env.agents_of("late"), ["dev1", "dev2"]);
}

#[test]
fn deploy_and_list_explain_what_is_wrong() {
    let env = Env::start();
    env.faros_ok(&["workspace", "create", "plant", "--type", "faros"]);
    // No edge API bound: say so and how to bind it.
    env.faros_ok(&["workspace", "create", "bare", "--enter"]);
    let err = env.faros_err_with(&env.kubeconfig, &["workload", "list"]);
    assert!(
        err.contains("not bound in workspace root:bare") && err.contains("kubectl faros bind"),
        "{err}"
    );

    env.faros_ok(&["workspace", "use", "root:plant"]);
    env.agent("dev1", "north", &["process"], "1", "1Gi");
    // A selector matching nothing is refused, unless asked for.
    let err = env.faros_err_with(
        &env.kubeconfig,
        &[
            "deploy",
            "web",
            "--image",
            "localhost/demo:1",
            "--selector",
            "site=nowhere",
        ],
    );
    assert!(err.contains("matches the selector site=nowhere"), "{err}");
    assert!(err.contains("--allow-no-match"), "{err}");
    let out = env.faros_with(
        &env.kubeconfig,
        &[
            "deploy",
            "web",
            "--image",
            "localhost/demo:1",
            "--selector",
            "site=nowhere",
            "--allow-no-match",
        ],
    );
    assert!(out.status.success());
    let message = env.wait_condition("web", "Degraded", "True", "NoMatchingAgents");
    assert_eq!(
        message,
        "no agent in namespace default matches the selector site=nowhere"
    );
    // Invalid input never reaches the hub.
    let err = env.faros_err_with(
        &env.kubeconfig,
        &["deploy", "bad", "--image", "Bad Image", "--allow-no-match"],
    );
    assert!(err.contains("spec.template.containers[0].image"), "{err}");
    // A container workload on a process-only device: placed nowhere, and why.
    let out = env.faros_with(&env.kubeconfig, &["deploy", "box", "--image", "localhost/demo:1"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("none reports the podman runtime"),
        "{out:?}"
    );
    let message = env.wait_condition("box", "Degraded", "True", "Unschedulable");
    assert_eq!(message, "no selected agent can run it: dev1: no podman runtime");
    // The process form runs there.
    env.faros_ok(&["deploy", "probe", "--process", "/bin/sleep", "--", "1000"]);
    env.wait_placed("probe", &["dev1"]);
    let empty = env.faros_with(&env.kubeconfig, &["workload", "list", "--agent", "dev9"]);
    assert!(String::from_utf8_lossy(&empty.stderr).contains("Nothing is placed on agent dev9"));

    // No rights: which verb on which resource.
    env.kubectl_ok(&["create", "serviceaccount", "nobody"]);
    let token = env.kubectl_ok(&["create", "token", "nobody"]);
    let nobody = env.hub.token_kubeconfig(
        "nobody",
        &env.hub.workspace_url("root:plant"),
        token.trim(),
        Some("default"),
    );
    let err = env.faros_err_with(&nobody, &["workload", "list"]);
    assert!(err.contains("not allowed to list Placements"), "{err}");
}
