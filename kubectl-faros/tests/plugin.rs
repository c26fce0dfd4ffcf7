//! End-to-end tests of `kubectl faros`: the real plugin binary, the real hub, real kubectl.
//!
//! The plugin binary comes from `CARGO_BIN_EXE_kubectl-faros`, which cargo builds fresh for
//! this test target. Each test gets its own hub, run from the `hub-api` library in a child
//! process on a free port with its own data directory (`faros-testkit`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use faros_testkit::{eventually, kubectl};
use serde_norway::Value;

const HUB_ENV: &str = "FAROS_PLUGIN_TEST_HUB";
const HUB_ARGS_ENV: &str = "FAROS_PLUGIN_TEST_HUB_ARGS";
const PLUGIN: &str = env!("CARGO_BIN_EXE_kubectl-faros");
const COMPLETER: &str = env!("CARGO_BIN_EXE_kubectl_complete-faros");

/// Not a test of its own: the body of the hub child process the tests start.
#[test]
#[ignore = "runs the hub for the other tests (only when FAROS_PLUGIN_TEST_HUB is set)"]
fn hub_process() {
    faros_testkit::child_main(HUB_ENV, HUB_ARGS_ENV);
}

/// A hub in a child process, a kubeconfig of our own (a copy of the admin kubeconfig, so
/// the plugin's edits never touch the hub's), and helpers to run the plugin and kubectl.
struct Env {
    dir: PathBuf,
    hub: faros_testkit::Hub,
    kubeconfig: PathBuf,
}

impl Env {
    fn start() -> Env {
        let dir = std::env::temp_dir().join(format!("kubectl-faros-test-{}", uuid::Uuid::new_v4()));
        let launcher = faros_testkit::Launcher::ThisTest {
            dir_env: HUB_ENV,
            args_env: HUB_ARGS_ENV,
        };
        let hub = faros_testkit::Hub::start_in(launcher, dir.join("hub"), true, &[], None);
        let kubeconfig = dir.join("config");
        std::fs::copy(hub.kubeconfig(), &kubeconfig).unwrap();
        Env { dir, hub, kubeconfig }
    }

    fn url(&self, path: &str) -> String {
        self.hub.workspace_url(path)
    }

    /// Runs the plugin with `KUBECONFIG` pointing at our kubeconfig.
    fn faros(&self, args: &[&str]) -> Output {
        Command::new(PLUGIN)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", &self.dir)
            .stdin(Stdio::null())
            .output()
            .expect("run kubectl-faros")
    }

    /// Runs the plugin, asserts success and returns stdout.
    fn faros_ok(&self, args: &[&str]) -> String {
        faros_testkit::succeeded(&format!("kubectl faros {args:?}"), &self.faros(args))
    }

    /// Runs the plugin, asserts failure (exit code 1) and returns stderr.
    fn faros_err(&self, args: &[&str]) -> String {
        let out = self.faros(args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "kubectl faros {args:?} should have failed:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        stderr
    }

    fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        kubectl_with(&self.kubeconfig, &self.dir, "1.32", args, stdin)
    }

    fn kubectl_ok(&self, args: &[&str]) -> String {
        faros_testkit::succeeded(&format!("kubectl {args:?}"), &self.kubectl(args, None))
    }

    fn kubectl_ok_stdin(&self, args: &[&str], stdin: &str) -> String {
        faros_testkit::succeeded(&format!("kubectl {args:?}"), &self.kubectl(args, Some(stdin)))
    }

    fn kubeconfig_doc(&self) -> Value {
        serde_norway::from_str(&std::fs::read_to_string(&self.kubeconfig).unwrap()).unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn kubectl_binary(version: &str) -> PathBuf {
    kubectl::binary(version).unwrap_or_else(|| panic!("kubectl.{version} is not installed here"))
}

fn kubectl_with(kubeconfig: &Path, home: &Path, version: &str, args: &[&str], stdin: Option<&str>) -> Output {
    kubectl::run(version, kubeconfig, home, args, stdin)
}

/// The server URL of a context in a kubeconfig document.
fn server_of(doc: &Value, context: &str) -> String {
    let find = |list: &str, name: &str| -> Value {
        doc[list]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|e| e["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no {list} entry {name:?}"))
            .clone()
    };
    let ctx = find("contexts", context);
    let cluster = find("clusters", ctx["context"]["cluster"].as_str().unwrap());
    cluster["cluster"]["server"].as_str().unwrap().to_string()
}

#[test]
fn workspaces_create_use_list_and_tree() {
    let env = Env::start();
    assert_eq!(
        env.faros_ok(&["workspace", "current"]),
        "Current workspace is 'root'.\n"
    );

    // Two tenants with the plugin, one with kubectl create -f.
    let out = env.faros_ok(&["workspace", "create", "tenant-a"]);
    assert_eq!(
        out,
        "Workspace \"tenant-a\" (type root:universal) created. Waiting for it to be ready...\n\
         Workspace \"tenant-a\" (type root:universal) is ready to use.\n"
    );
    let out = env.faros_ok(&["ws", "create", "tenant-b", "--type", "faros"]);
    assert!(
        out.ends_with("Workspace \"tenant-b\" (type root:faros) is ready to use.\n"),
        "{out}"
    );
    let manifest = "apiVersion: tenancy.kcp.io/v1alpha1\nkind: Workspace\nmetadata:\n  name: tenant-c\n";
    let out = env.kubectl(&["create", "-f", "-"], Some(manifest));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        eventually(Duration::from_secs(30), || {
            env.kubectl_ok(&["get", "workspace", "tenant-c", "-o", "jsonpath={.status.phase}"]) == "Ready"
        }),
        "tenant-c became Ready"
    );
    // The plugin did not switch anywhere yet.
    assert_eq!(env.faros_ok(&["ws", "current", "--short"]), "root\n");

    let list = env.faros_ok(&["workspace", "list"]);
    let lines: Vec<&str> = list.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{list}");
    for (line, (name, type_)) in lines[1..].iter().zip([
        ("faros-system", "universal"),
        ("tenant-a", "universal"),
        ("tenant-b", "faros"),
        ("tenant-c", "universal"),
    ]) {
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells[..3], [name, type_, "Ready"], "{list}");
        assert_eq!(cells[3], env.url(&format!("root:{name}")), "{list}");
    }
    assert_eq!(lines.len(), 5, "{list}");

    // use NAME, then kubectl works there and sees only that workspace.
    assert_eq!(
        env.faros_ok(&["workspace", "use", "tenant-a"]),
        "Current workspace is 'root:tenant-a' (type root:universal).\n"
    );
    env.kubectl_ok(&["create", "configmap", "same-name", "--from-literal=tenant=a"]);
    assert_eq!(
        env.faros_ok(&["ws", "current"]),
        "Current workspace is 'root:tenant-a'.\n"
    );
    // Absolute path; the same ConfigMap name in another tenant does not collide.
    assert_eq!(
        env.faros_ok(&["ws", "use", "root:tenant-c"]),
        "Current workspace is 'root:tenant-c' (type root:universal).\n"
    );
    env.kubectl_ok(&["create", "configmap", "same-name", "--from-literal=tenant=c"]);
    assert_eq!(
        env.kubectl_ok(&["get", "configmap", "same-name", "-o", "jsonpath={.data.tenant}"]),
        "c"
    );

    // The kubeconfig is edited like kcp's plugin does it.
    let doc = env.kubeconfig_doc();
    assert_eq!(doc["current-context"].as_str(), Some("workspace.kcp.io/current"));
    assert_eq!(server_of(&doc, "workspace.kcp.io/current"), env.url("root:tenant-c"));
    assert_eq!(server_of(&doc, "workspace.kcp.io/previous"), env.url("root:tenant-a"));
    assert_eq!(
        server_of(&doc, "root"),
        env.hub.url(),
        "the original context is untouched"
    );

    // .. and - (twice: - toggles).
    assert_eq!(
        env.faros_ok(&["ws", "use", ".."]),
        "Current workspace is 'root' (type root).\n"
    );
    assert_eq!(
        env.faros_ok(&["ws", "use", "-"]),
        "Current workspace is 'root:tenant-c'.\n"
    );
    assert_eq!(env.faros_ok(&["ws", "-"]), "Current workspace is 'root'.\n");
    assert_eq!(
        env.faros_ok(&["ws", "tenant-b"]),
        "Current workspace is 'root:tenant-b' (type root:faros).\n"
    );
    assert_eq!(
        env.faros_ok(&["ws", "use", "~"]),
        "Current workspace is 'root' (type root).\n"
    );
    assert_eq!(env.faros_ok(&["ws", "use", "tenant-a", "--short"]), "root:tenant-a\n");
    assert_eq!(
        env.faros_ok(&["ws", "use", "../tenant-b"]),
        "Current workspace is 'root:tenant-b' (type root:faros).\n"
    );
    env.faros_ok(&["ws", "use", "~"]);

    assert_eq!(
        env.faros_ok(&["workspace", "tree"]),
        ".\n└── root\n    ├── faros-system\n    ├── tenant-a\n    ├── tenant-b\n    └── tenant-c\n"
    );

    // Errors are for humans and exit non-zero.
    let err = env.faros_err(&["ws", "use", "nope"]);
    assert!(err.contains("workspace \"root:nope\" not found"), "{err}");
    let err = env.faros_err(&["ws", "use", "root:nope:deeper"]);
    assert!(err.contains("does not exist or you may not access it"), "{err}");
    let err = env.faros_err(&["ws", "create", "tenant-a"]);
    assert!(err.contains("already exists"), "{err}");
    let out = env.faros_ok(&["ws", "create", "tenant-a", "--ignore-existing"]);
    assert!(
        out.contains("already exists") && out.contains("is ready to use"),
        "{out}"
    );
    // A workspace still being deleted is reported at once, not waited on.
    env.faros_ok(&["ws", "create", "going", "--enter"]);
    let held =
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: held, namespace: default, finalizers: [example.com/hold]}\n";
    let out = env.kubectl(&["create", "-f", "-"], Some(held));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    env.faros_ok(&["ws", "use", "root"]);
    env.kubectl_ok(&["delete", "ws", "going", "--wait=false"]);
    let err = env.faros_err(&["ws", "create", "going", "--ignore-existing", "--timeout", "60s"]);
    assert!(err.contains("workspace \"going\" in root is being deleted"), "{err}");
    let err = env.faros_err(&["ws", "create", "Bad_Name"]);
    assert!(err.contains("not a valid workspace name"), "{err}");
    let err = env.faros_err(&["ws", "create", "typo", "--type", "no-such-type"]);
    assert!(
        err.contains("WorkspaceType root:no-such-type does not exist") && err.contains("built-in types"),
        "{err}"
    );
    let err = env.faros_err(&["ws", "use", ".."]);
    assert!(err.contains("cannot go up from root"), "{err}");
    // Failed commands leave the kubeconfig alone.
    assert_eq!(env.faros_ok(&["ws", "current", "--short"]), "root\n");
}

#[test]
fn nested_workspaces_and_deleting_a_subtree() {
    let env = Env::start();
    env.faros_ok(&["ws", "create", "l1", "--enter"]);
    env.faros_ok(&["ws", "create", "l2", "--enter"]);
    let out = env.faros_ok(&["ws", "create", "l3", "--enter"]);
    assert!(
        out.ends_with("Current workspace is 'root:l1:l2:l3' (type root:universal).\n"),
        "{out}"
    );
    env.kubectl_ok(&["create", "configmap", "deep"]);
    env.faros_ok(&["ws", "use", "~"]);
    assert_eq!(
        env.faros_ok(&["ws", "tree"]),
        ".\n└── root\n    ├── faros-system\n    └── l1\n        └── l2\n            └── l3\n"
    );
    env.faros_ok(&["ws", "use", "l1"]);
    assert_eq!(
        env.faros_ok(&["ws", "tree", "--full"]),
        ".\n└── root:l1\n    └── root:l1:l2\n        └── root:l1:l2:l3\n"
    );

    let out = env.faros_ok(&["workspace", "delete", "l2"]);
    assert_eq!(
        out,
        "Deleting workspace \"root:l1:l2\" and everything inside it...\nWorkspace \"root:l1:l2\" deleted.\n"
    );
    for path in ["root:l1:l2", "root:l1:l2:l3"] {
        let server = format!("--server={}", env.url(path));
        let out = env.kubectl(&[&server, "get", "configmaps"], None);
        assert!(!out.status.success(), "{path} still resolves");
        assert!(String::from_utf8_lossy(&out.stderr).contains("Forbidden"));
        // kubectl shows the hub's message for a plain request (its discovery errors hide it).
        // (`--raw` takes the path from the host, not from the server URL.)
        let raw = format!("/clusters/{path}/api/v1/namespaces");
        let out = env.kubectl(&["get", "--raw", &raw], None);
        assert!(!out.status.success(), "{path} still resolves");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("Error from server (Forbidden): workspace access not permitted"),
            "{path}: {stderr}"
        );
    }
    assert_eq!(env.faros_ok(&["ws", "tree"]), ".\n└── l1\n");
    let err = env.faros_err(&["ws", "use", "l2"]);
    assert!(err.contains("workspace \"root:l1:l2\" not found"), "{err}");
    let err = env.faros_err(&["ws", "delete", "l2"]);
    assert!(err.contains("workspace \"l2\" not found in root:l1"), "{err}");
    // The name is free again, and the new workspace starts empty.
    env.faros_ok(&["ws", "create", "l2", "--enter"]);
    assert_eq!(env.faros_ok(&["ws", "list"]), "");
    assert!(!env.kubectl_ok(&["get", "configmaps"]).contains("deep"));
    let err = env.faros_err(&["ws", "delete", "root"]);
    assert!(err.contains("cannot be deleted"), "{err}");
}

#[test]
fn bind_makes_the_edge_api_available() {
    let env = Env::start();
    env.faros_ok(&["ws", "create", "plain", "--enter"]);
    let out = env.kubectl(&["get", "agents"], None);
    assert!(!out.status.success(), "agents are not served before binding");

    let out = env.faros_ok(&["bind"]);
    assert!(
        out.starts_with(
            "APIBinding \"edge.faros.sh\" created in root:plain. Waiting for it to bind...\n\
             APIBinding \"edge.faros.sh\" is bound: agents.edge.faros.sh, placements.edge.faros.sh, registrations.edge.faros.sh, workloads.edge.faros.sh now served in root:plain.\n"
        ),
        "{out}"
    );
    // Like config/samples/binding.yaml, the edge export's claims are accepted (and said so).
    assert!(out.contains("Accepted the export's permission claims on "), "{out}");
    assert!(out.contains("secrets, serviceaccounts"), "{out}");
    let states = env.kubectl_ok(&[
        "get",
        "apibinding",
        "edge.faros.sh",
        "-o",
        "jsonpath={.spec.permissionClaims[*].state}",
    ]);
    assert!(
        !states.is_empty() && states.split(' ').all(|s| s == "Accepted"),
        "{states}"
    );
    let out = env.kubectl(&["get", "agents"], None);
    assert!(
        out.status.success(),
        "kubectl get agents after binding: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("No resources found"));
    assert_eq!(
        env.kubectl_ok(&[
            "get",
            "apibinding",
            "edge.faros.sh",
            "-o",
            "jsonpath={.spec.reference.export.path}"
        ]),
        "root:faros-system"
    );

    // Binding again is harmless.
    let out = env.faros_ok(&["bind", "root:faros-system:edge.faros.sh"]);
    assert!(
        out.starts_with("APIBinding \"edge.faros.sh\" already exists in root:plain.\n"),
        "{out}"
    );

    // A missing export: the binding's conditions explain why it is not bound.
    let err = env.faros_err(&["bind", "root:faros-system:no-such-export", "--timeout", "2s"]);
    assert!(err.contains("did not become Bound within 2s"), "{err}");
    assert!(err.contains("APIExportValid=False (APIExportNotFound)"), "{err}");
    let err = env.faros_err(&["bind", "just-a-name"]);
    assert!(err.contains("not an export reference"), "{err}");
}

#[test]
fn bind_answers_the_claims_of_other_exports() {
    let env = Env::start();
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/samples/export.yaml");
    env.faros_ok(&["ws", "create", "provider", "--enter"]);
    env.kubectl_ok(&["create", "-f", sample]);
    let export = "root:provider:gadgets.example.faros.sh";

    // Without an answer, the claims stay unanswered and the plugin says so.
    env.faros_ok(&["ws", "use", "root"]);
    env.faros_ok(&["ws", "create", "quiet", "--enter"]);
    let out = env.faros_ok(&["bind", export]);
    assert!(
        out.contains("The export also claims configmaps: its owner may act on them here only once accepted"),
        "{out}"
    );
    assert_eq!(
        env.kubectl_ok(&[
            "get",
            "apibinding",
            "gadgets.example.faros.sh",
            "-o",
            "jsonpath={.spec.permissionClaims}"
        ]),
        ""
    );

    // One claim accepted by name: in force once the binding's status says so.
    env.faros_ok(&["ws", "use", "root"]);
    env.faros_ok(&["ws", "create", "sharing", "--enter"]);
    let out = env.faros_ok(&["bind", export, "--accept-permission-claim", "configmaps"]);
    assert!(
        out.contains(
            "Accepted the export's permission claims on configmaps: its owner may manage them in root:sharing."
        ),
        "{out}"
    );
    assert!(eventually(Duration::from_secs(10), || {
        env.kubectl_ok(&[
            "get",
            "apibinding",
            "gadgets.example.faros.sh",
            "-o",
            "jsonpath={.status.appliedPermissionClaims[*].resource}",
        ]) == "configmaps"
    }));

    // A claim the export does not make is an error that names what it does claim.
    env.faros_ok(&["ws", "use", "root"]);
    env.faros_ok(&["ws", "create", "wrong", "--enter"]);
    let err = env.faros_err(&["bind", export, "--accept-permission-claim", "secrets"]);
    assert!(
        err.contains("the export makes no permission claim on secrets; it claims: configmaps"),
        "{err}"
    );
    // The binding it made for that is gone again: the right flags start afresh.
    assert!(err.contains("removed again"), "{err}");
    let out = env.kubectl(&["get", "apibindings", "-o", "name"], None);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "",
        "a binding was left behind"
    );
    env.faros_ok(&["bind", export, "--accept-permission-claim", "configmaps"]);
    let err = env.faros_err(&[
        "bind",
        export,
        "--accept-all-permission-claims",
        "--accept-permission-claim",
        "configmaps",
    ]);
    assert!(err.contains("not both"), "{err}");
}

#[test]
fn the_plugin_runs_through_real_kubectl() {
    let env = Env::start();
    let plugin_dir = Path::new(PLUGIN).parent().unwrap();
    let path = std::env::join_paths(
        std::iter::once(plugin_dir.to_path_buf())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )
    .unwrap();
    let kubectl = |version: &str, args: &[&str]| {
        let out = Command::new(kubectl_binary(version))
            .args(args)
            .env("PATH", &path)
            .env("KUBECONFIG", &env.kubeconfig)
            .env("HOME", &env.dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl.{version} {args:?}:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(
        kubectl("1.32", &["faros", "workspace", "current"]),
        "Current workspace is 'root'.\n"
    );
    let out = kubectl(
        "1.32",
        &["faros", "ws", "create", "via-kubectl", "--type", "faros", "--enter"],
    );
    assert!(
        out.ends_with("Current workspace is 'root:via-kubectl' (type root:faros).\n"),
        "{out}"
    );
    if kubectl::installed("1.27") {
        assert_eq!(
            kubectl("1.27", &["faros", "ws", "current", "--short"]),
            "root:via-kubectl\n"
        );
    }
    // kubectl itself follows the switch, and the faros type came with the edge API bound.
    assert!(kubectl("1.32", &["get", "apibindings"]).contains("edge.faros.sh"));
    kubectl("1.32", &["get", "agents"]);
    assert!(kubectl("1.32", &["faros", "--help"]).contains("kubectl faros"));
}

#[test]
fn kubeconfig_flags_and_multiple_files() {
    let env = Env::start();
    // A second file first in KUBECONFIG: it sets current-context (to a context defined in
    // the admin file) and holds a context of its own and fields we do not know.
    let first = env.dir.join("first.yaml");
    let first_text = "apiVersion: v1\nkind: Config\nclusters:\n- name: elsewhere\n  cluster:\n    server: https://127.0.0.1:1\n\
                      contexts:\n- name: elsewhere\n  context:\n    cluster: elsewhere\n    user: nobody\n\
                      current-context: root\nx-team-setting:\n  keep: [1, 2]\n";
    std::fs::write(&first, first_text).unwrap();
    let admin_before = std::fs::read_to_string(&env.kubeconfig).unwrap();
    let joined = std::env::join_paths([&first, &env.dir.join("missing.yaml"), &env.kubeconfig]).unwrap();
    let run = |args: &[&str]| {
        Command::new(PLUGIN)
            .args(args)
            .env("KUBECONFIG", &joined)
            .env("HOME", &env.dir)
            .output()
            .unwrap()
    };
    let out = run(&["ws", "create", "multi", "--enter"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // current-context changed in the first file (which set it); the new cluster and contexts
    // went to the admin file (which defines the context and cluster they derive from).
    let first_doc: Value = serde_norway::from_str(&std::fs::read_to_string(&first).unwrap()).unwrap();
    assert_eq!(first_doc["current-context"].as_str(), Some("workspace.kcp.io/current"));
    assert_eq!(first_doc["x-team-setting"]["keep"][1].as_i64(), Some(2));
    assert_eq!(first_doc["contexts"].as_sequence().unwrap().len(), 1);
    let admin = env.kubeconfig_doc();
    assert_eq!(server_of(&admin, "workspace.kcp.io/current"), env.url("root:multi"));
    assert_ne!(admin_before, std::fs::read_to_string(&env.kubeconfig).unwrap());
    assert!(!env.dir.join("missing.yaml").exists(), "missing files are not created");

    // Real kubectl agrees about where we are.
    let home = env.dir.clone();
    let kubectl = |args: &[&str]| {
        let out = Command::new(kubectl_binary("1.32"))
            .args(args)
            .env("KUBECONFIG", &joined)
            .env("HOME", &home)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(kubectl(&["config", "current-context"]), "workspace.kcp.io/current\n");
    assert_eq!(
        kubectl(&[
            "config",
            "view",
            "--minify",
            "-o",
            "jsonpath={.clusters[0].cluster.server}"
        ]),
        env.url("root:multi")
    );
    kubectl(&["get", "namespaces"]);

    // --context picks another context without changing current-context (for reading).
    let out = run(&["--context", "root", "ws", "current"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Current workspace is 'root'.\n");
    // --kubeconfig uses that file alone.
    let kc = env.kubeconfig.to_string_lossy().into_owned();
    let out = Command::new(PLUGIN)
        .args(["--kubeconfig", &kc, "ws", "current", "--short"])
        .env_remove("KUBECONFIG")
        .env("HOME", &env.dir)
        .output()
        .unwrap();
    // The admin file's own current-context is still `root`: only the first file had the one
    // kubectl uses.
    assert_eq!(String::from_utf8_lossy(&out.stdout), "root\n");
    // Unknown contexts and unreachable hubs are reported, not panicked on.
    let out = run(&["--context", "nope", "ws", "current"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("context \"nope\" is not defined"));
    let out = run(&["--context", "elsewhere", "ws", "list"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("user \"nobody\""), "{stderr}");
}

#[test]
fn agent_generate_reports_clear_errors() {
    let env = Env::start();
    // The admin kubeconfig points at the hub itself, not at a workspace.
    let err = env.faros_err(&["agent", "generate", "agent1"]);
    assert!(err.contains("does not point at a workspace"), "{err}");
    assert!(err.contains("kubectl faros workspace use"), "{err}");
    // A universal workspace does not have the edge API bound.
    env.faros_ok(&["ws", "create", "plain", "--enter"]);
    let err = env.faros_err(&["agent", "generate", "agent1"]);
    assert!(
        err.contains("the Faros edge API is not bound in workspace root:plain; run `kubectl faros bind`"),
        "{err}"
    );
    let err = env.faros_err(&["agent", "list"]);
    assert!(err.contains("not bound"), "{err}");
    let err = env.faros_err(&["agent", "generate", "Not_Valid"]);
    assert!(err.contains("not a valid agent name"), "{err}");
    env.faros_ok(&["bind"]);
    let err = env.faros_err(&["agent", "generate", "agent1", "-n", "no-such-namespace"]);
    assert!(err.contains("namespace \"no-such-namespace\" does not exist"), "{err}");
    let err = env.faros_err(&["agent", "revoke", "never-made"]);
    assert!(err.contains("there is no Registration \"never-made\""), "{err}");

    // A binding that rejects the edge API's claims: the plugin says what to do.
    env.faros_ok(&["ws", "use", "root"]);
    env.faros_ok(&["ws", "create", "guarded", "--enter"]);
    env.faros_ok(&["bind", "--accept-all-permission-claims=false"]);
    let rejected = [
        ("", "serviceaccounts"),
        ("", "secrets"),
        ("rbac.authorization.k8s.io", "roles"),
        ("rbac.authorization.k8s.io", "rolebindings"),
        ("coordination.k8s.io", "leases"),
    ]
    .iter()
    .map(|(group, resource)| format!(r#"{{"group":"{group}","resource":"{resource}","state":"Rejected"}}"#))
    .collect::<Vec<_>>()
    .join(",");
    env.kubectl_ok(&[
        "patch",
        "apibinding",
        "edge.faros.sh",
        "--type=merge",
        "-p",
        &format!(r#"{{"spec":{{"permissionClaims":[{rejected}]}}}}"#),
    ]);
    let err = env.faros_err(&["agent", "generate", "agent1", "--timeout", "20s"]);
    assert!(
        err.contains("may not issue credentials in workspace root:guarded"),
        "{err}"
    );
    assert!(
        err.contains("kubectl faros bind --accept-all-permission-claims"),
        "{err}"
    );
    env.faros_ok(&["bind", "--accept-all-permission-claims"]);
    env.faros_ok(&["agent", "generate", "agent1", "-o", "/dev/null"]);
}

#[test]
fn agent_list_shows_agents() {
    let env = Env::start();
    env.faros_ok(&["ws", "create", "fleet", "--type", "faros", "--enter"]);
    let out = env.faros(&["agent", "list"]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("No agents found in namespace default of workspace root:fleet")
    );
    let agent = "apiVersion: edge.faros.sh/v1alpha1\nkind: Agent\nmetadata:\n  name: agent1\nspec: {}\n";
    let out = env.kubectl(&["create", "-f", "-"], Some(agent));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let list = env.faros_ok(&["agent", "list"]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["NAME", "READY", "VERSION", "LAST-HEARTBEAT", "AGE"]
    );
    let cells: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(cells[..4], ["agent1", "Unknown", "<none>", "<never>"], "{list}");
    // What an agent reports shows up.
    let now = env.kubectl_ok(&["get", "agent", "agent1", "-o", "jsonpath={.metadata.creationTimestamp}"]);
    let status = format!(
        r#"{{"status":{{"conditions":[{{"type":"Ready","status":"True","reason":"AgentReady","lastTransitionTime":"{now}"}}],"lastHeartbeatTime":"{now}","device":{{"agentVersion":"9.8.7","hostname":"h","os":"linux","kernelVersion":"6.1","architecture":"x86_64","cpus":1,"memoryBytes":1}}}}}}"#
    );
    env.kubectl_ok(&[
        "patch",
        "agent",
        "agent1",
        "--subresource=status",
        "--type=merge",
        "-p",
        &status,
    ]);
    let list = env.faros_ok(&["agent", "list"]);
    let cells: Vec<&str> = list.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(cells[..3], ["agent1", "True", "9.8.7"], "{list}");
    assert!(cells[3].ends_with('s'), "an age: {list}");
    let all = env.faros_ok(&["agent", "list", "-A"]);
    assert!(all.starts_with("NAMESPACE"), "{all}");
    assert!(all.contains("default"), "{all}");
}

/// Needs the hub's registration controller (Registration → ServiceAccount, Role,
/// RoleBinding and token Secret, then Ready).
#[test]
fn agent_generate_writes_a_kubeconfig_and_revoke_deletes_the_registration() {
    let env = Env::start();
    env.faros_ok(&["ws", "create", "fleet", "--type", "faros", "--enter"]);
    let file = env.dir.join("agent1.kubeconfig");
    let file_arg = file.to_string_lossy().into_owned();
    let out = env.faros_ok(&["agent", "generate", "agent1", "-o", &file_arg]);
    assert!(
        out.starts_with("Registration \"agent1\" created in namespace default of workspace root:fleet (expires at "),
        "{out}"
    );
    assert!(out.contains(&format!("Wrote {file_arg}")), "{out}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);

    let generated: Value = serde_norway::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let admin = env.kubeconfig_doc();
    let ctx = generated["current-context"].as_str().unwrap();
    assert_eq!(server_of(&generated, ctx), env.url("root:fleet"));
    let context = &generated["contexts"][0]["context"];
    assert_eq!(context["namespace"].as_str(), Some("default"));
    assert_eq!(
        generated["clusters"][0]["cluster"]["certificate-authority-data"],
        admin["clusters"][0]["cluster"]["certificate-authority-data"],
        "the hub CA is carried over"
    );
    let token = generated["users"][0]["user"]["token"].as_str().unwrap().to_string();
    assert!(!token.is_empty());

    // The kubeconfig works: with the registration token the device may create its Agent.
    let agent = "apiVersion: edge.faros.sh/v1alpha1\nkind: Agent\nmetadata:\n  name: agent1\nspec: {}\n";
    let out = kubectl_with(&file, &env.dir, "1.32", &["create", "-f", "-"], Some(agent));
    assert!(
        out.status.success(),
        "creating the Agent with the generated kubeconfig: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // That credential may do little else: the plugin says so instead of failing obscurely.
    let out = Command::new(PLUGIN)
        .args(["agent", "generate", "agent2"])
        .env("KUBECONFIG", &file)
        .env("HOME", &env.dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("you are not allowed to read Registrations in namespace default of workspace root:fleet"),
        "{stderr}"
    );

    // The Registration admits the agent and points at the Secret holding that token.
    assert_eq!(
        env.kubectl_ok(&["get", "registration", "agent1", "-o", "jsonpath={.spec.agentNames[0]}"]),
        "agent1"
    );
    let secret = env.kubectl_ok(&[
        "get",
        "registration",
        "agent1",
        "-o",
        "jsonpath={.status.tokenSecretRef.name}",
    ]);
    let encoded = env.kubectl_ok(&["get", "secret", &secret, "-o", "jsonpath={.data.token}"]);
    let out = Command::new("base64")
        .arg("-d")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = out;
    out.stdin.take().unwrap().write_all(encoded.as_bytes()).unwrap();
    let decoded = out.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&decoded.stdout).trim(), token);

    // Again, to stdout: the existing Registration is reused; progress goes to stderr.
    let out = env.faros(&["agent", "generate", "agent1", "-o", "-"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let again: Value = serde_norway::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap();
    assert_eq!(again["users"][0]["user"]["token"].as_str(), Some(token.as_str()));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Using Registration \"agent1\""));
    // A registration for another agent does not admit this one.
    let err = env.faros_err(&["agent", "generate", "agent2", "--registration", "agent1", "-o", "-"]);
    assert!(err.contains("does not admit agent \"agent2\""), "{err}");

    let out = env.faros_ok(&["agent", "revoke", "agent1"]);
    assert!(
        out.starts_with("Registration \"agent1\" deleted from namespace default of workspace root:fleet"),
        "{out}"
    );
    let gone = env.kubectl(&["get", "registration", "agent1"], None);
    assert!(!gone.status.success());
    assert!(
        eventually(Duration::from_secs(30), || !env
            .kubectl(&["get", "secret", &secret], None)
            .status
            .success()),
        "the token Secret goes with the Registration"
    );
}

/// `kubectl faros <TAB>` through a real kubectl (`kubectl __complete`, what the shell scripts
/// of `kubectl completion` call), which runs `kubectl_complete-faros` from `PATH`: commands,
/// flags, and names from the hub; nothing (and no error) when the hub is away.
#[test]
fn kubectl_completes_commands_and_names_from_the_hub() {
    let env = Env::start();
    env.faros_ok(&["ws", "create", "fleet", "--type", "faros", "--enter"]);
    env.faros_ok(&["ws", "create", "plant-a", "--type", "faros"]);
    for name in ["dev-a", "dev-b"] {
        let agent = format!("apiVersion: edge.faros.sh/v1alpha1\nkind: Agent\nmetadata:\n  name: {name}\nspec: {{}}\n");
        env.kubectl_ok_stdin(&["create", "-f", "-"], &agent);
    }
    env.kubectl_ok(&["create", "namespace", "plant-7"]);
    let other =
        "apiVersion: edge.faros.sh/v1alpha1\nkind: Agent\nmetadata:\n  name: dev-c\n  namespace: plant-7\nspec: {}\n";
    env.kubectl_ok_stdin(&["create", "-f", "-"], other);
    let registration = "apiVersion: edge.faros.sh/v1alpha1\nkind: Registration\nmetadata:\n  name: batch-1\nspec: {}\n";
    env.kubectl_ok_stdin(&["create", "-f", "-"], registration);

    // A directory on PATH holding the two executables, as an installation has them.
    let bin = env.dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(PLUGIN, bin.join("kubectl-faros")).unwrap();
    std::os::unix::fs::symlink(COMPLETER, bin.join("kubectl_complete-faros")).unwrap();
    let path = std::env::join_paths(
        std::iter::once(bin.clone()).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )
    .unwrap();
    let complete = |kubeconfig: &Path, words: &[&str]| -> (Vec<String>, String) {
        let out = Command::new(kubectl_binary("1.32"))
            .arg("__complete")
            .arg("faros")
            .args(words)
            .env("PATH", &path)
            .env("KUBECONFIG", kubeconfig)
            .env("HOME", &env.dir)
            .output()
            .unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
        let mut lines: Vec<String> = stdout.lines().map(str::to_string).collect();
        let directive = lines.pop().unwrap_or_default();
        let names = lines
            .iter()
            .map(|l| l.split('\t').next().unwrap().to_string())
            .collect();
        (names, directive)
    };
    let kc = env.kubeconfig.clone();
    let (names, directive) = complete(&kc, &[""]);
    for command in ["workspace", "agent", "deploy", "logs", "version", "completion"] {
        assert!(names.contains(&command.to_string()), "{names:?}");
    }
    assert_eq!(directive, ":4", "no file names where commands go");
    assert_eq!(complete(&kc, &["ag"]).0, ["agent"]);
    assert_eq!(complete(&kc, &["agent", "gen"]).0, ["generate"]);
    assert_eq!(
        complete(&kc, &["agent", "generate", "--print"]).0,
        ["--print-join-command"]
    );
    // Names from the hub, in the current workspace and namespace, or the one given.
    assert_eq!(complete(&kc, &["agent", "cordon", ""]).0, ["dev-a", "dev-b"]);
    assert_eq!(complete(&kc, &["agent", "top", "dev-b"]).0, ["dev-b"]);
    assert_eq!(complete(&kc, &["agent", "-n", "plant-7", "drain", ""]).0, ["dev-c"]);
    assert_eq!(complete(&kc, &["logs", "dev"]).0, ["dev-a", "dev-b"]);
    assert_eq!(
        complete(&kc, &["workload", "list", "--agent", ""]).0,
        ["dev-a", "dev-b"]
    );
    assert_eq!(complete(&kc, &["agent", "revoke", ""]).0, ["batch-1"]);
    assert!(
        complete(&kc, &["agent", "list", "-n", ""])
            .0
            .contains(&"plant-7".to_string())
    );
    let (names, _) = complete(&kc, &["ws", "use", "p"]);
    assert_eq!(names, ["plant-a"]);
    // A file goes where a file is asked for.
    assert_eq!(complete(&kc, &["agent", "generate", "x", "-o", ""]).1, ":0");
    // The hub away: no names, no error.
    let away = env.dir.join("away.kubeconfig");
    let text = std::fs::read_to_string(&kc).unwrap();
    let url = env.hub.url();
    std::fs::write(&away, text.replace(&url, "https://127.0.0.1:9")).unwrap();
    let (names, directive) = complete(&away, &["agent", "cordon", ""]);
    assert!(names.is_empty(), "{names:?}");
    assert_eq!(directive, ":4");
}

#[test]
fn version_prints_the_plugin_and_the_hub() {
    let env = Env::start();
    let out = env.faros_ok(&["version"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let client = lines[0].strip_prefix("Client Version: ").unwrap();
    let server = lines[1].strip_prefix("Server Version: ").unwrap();
    assert!(client.starts_with(env!("CARGO_PKG_VERSION")), "{out}");
    assert!(
        server.starts_with(&format!("v1.32.0+faros-{}", env!("CARGO_PKG_VERSION"))),
        "{out}"
    );
    // Plugin and hub were built from this one tree: the same commit.
    let commit = |line: &str| {
        line.split("(commit ")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(commit(client), commit(server));
    assert_eq!(env.faros_ok(&["version", "--client"]), format!("{}\n", lines[0]));
}
