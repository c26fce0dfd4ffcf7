//! The hub driven by real kubectl binaries: the everyday commands against built-in kinds and
//! custom resources, watches, finalizers, and persistence across restarts and crashes.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{HUB, TestHub, eventually, kubectl_binary, sample};
use serde_json::Value;

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn install_widgets(hub: &TestHub, v: &str) {
    hub.kubectl_ok(v, &["create", "-f", &sample("widget-crd.yaml")]);
    hub.kubectl_ok(
        v,
        &[
            "wait",
            "--for=condition=Established",
            "crd/widgets.example.faros.sh",
            "--timeout=30s",
        ],
    );
}

fn everyday_commands(v: &str) {
    if !faros_testkit::kubectl::installed(v) {
        return;
    }
    let hub = TestHub::start(HUB);

    let resources = hub.kubectl_ok(v, &["api-resources"]);
    for expected in [
        "configmaps",
        "namespaces",
        "secrets",
        "serviceaccounts",
        "leases",
        "clusterroles",
        "customresourcedefinitions",
    ] {
        assert!(
            resources.contains(expected),
            "api-resources lacks {expected}:\n{resources}"
        );
    }
    let namespaces = hub.kubectl_ok(v, &["get", "ns"]);
    assert!(
        namespaces.contains("default") && namespaces.contains("Active"),
        "{namespaces}"
    );

    install_widgets(&hub, v);
    let resources = hub.kubectl_ok(v, &["api-resources", "--api-group=example.faros.sh"]);
    assert!(resources.contains("widgets") && resources.contains("wg"), "{resources}");

    // create -f, defaulting from the schema, printer columns.
    hub.kubectl_ok(v, &["create", "-f", &sample("widget.yaml")]);
    let table = hub.kubectl_ok(v, &["get", "widgets"]);
    let header = table.lines().next().unwrap();
    for column in ["NAME", "SIZE", "COLOR", "READY", "AGE"] {
        assert!(header.contains(column), "missing column {column}: {table}");
    }
    assert!(table.contains("widget-1") && table.contains("blue"), "{table}");
    let yaml = hub.kubectl_ok(v, &["get", "widget", "widget-1", "-o", "yaml"]);
    assert!(yaml.contains("color: blue") && yaml.contains("size: 3"), "{yaml}");
    let obj = json(&hub.kubectl_ok(v, &["get", "wg", "widget-1", "-o", "json"]));
    assert_eq!(obj["metadata"]["generation"], 1);
    assert!(obj["metadata"]["uid"].as_str().is_some_and(|u| !u.is_empty()));

    // Schema validation refuses bad objects with a clear message.
    let bad = hub.kubectl_stdin(
        v,
        &["create", "-f", "-"],
        "apiVersion: example.faros.sh/v1\nkind: Widget\nmetadata: {name: bad}\nspec: {size: 500, color: purple}\n",
    );
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("spec.size") && err.contains("spec.color"), "{err}");

    // More widgets for selectors and paging.
    for (name, app) in [("widget-2", "demo"), ("widget-3", "other"), ("widget-4", "demo")] {
        let manifest = format!(
            "apiVersion: example.faros.sh/v1\nkind: Widget\nmetadata: {{name: {name}, labels: {{app: {app}}}}}\nspec: {{size: 2}}\n"
        );
        let out = hub.kubectl_stdin(v, &["create", "-f", "-"], &manifest);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let demo = hub.kubectl_ok(v, &["get", "widgets", "-l", "app=demo", "-o", "name"]);
    assert_eq!(demo.lines().count(), 3, "{demo}");
    let not_demo = hub.kubectl_ok(v, &["get", "widgets", "-l", "app notin (demo)", "-o", "name"]);
    assert_eq!(not_demo.trim(), "widget.example.faros.sh/widget-3");
    let by_name = hub.kubectl_ok(
        v,
        &[
            "get",
            "widgets",
            "--field-selector",
            "metadata.name=widget-2",
            "-o",
            "name",
        ],
    );
    assert_eq!(by_name.trim(), "widget.example.faros.sh/widget-2");
    let all_ns = hub.kubectl_ok(v, &["get", "widgets", "-A"]);
    assert!(
        all_ns.lines().next().unwrap().contains("NAMESPACE") && all_ns.contains("default"),
        "{all_ns}"
    );
    let paged = hub.kubectl_ok(v, &["get", "widgets", "--chunk-size=1", "-o", "name"]);
    assert_eq!(paged.lines().count(), 4, "{paged}");
    let bad_selector = hub.kubectl(v, &["get", "widgets", "--field-selector", "spec.size=2"]);
    assert!(!bad_selector.status.success());

    // apply (client-side) twice with a change: merge patch for custom resources.
    let applied = "apiVersion: example.faros.sh/v1\nkind: Widget\nmetadata: {name: applied}\nspec: {size: 5, color: red, tags: [a]}\n";
    let out = hub.kubectl_stdin(v, &["apply", "-f", "-"], applied);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let changed =
        "apiVersion: example.faros.sh/v1\nkind: Widget\nmetadata: {name: applied}\nspec: {size: 6, color: green}\n";
    let out = hub.kubectl_stdin(v, &["apply", "-f", "-"], changed);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("configured"));
    let obj = json(&hub.kubectl_ok(v, &["get", "widget", "applied", "-o", "json"]));
    assert_eq!(obj["spec"]["size"], 6);
    assert_eq!(obj["spec"]["color"], "green");
    assert!(
        obj["spec"].get("tags").is_none(),
        "tags dropped by the second apply: {obj}"
    );
    assert_eq!(obj["metadata"]["generation"], 2);

    // label, annotate, patch.
    hub.kubectl_ok(v, &["label", "widget", "applied", "tier=gold"]);
    hub.kubectl_ok(v, &["annotate", "widget", "applied", "note=hello"]);
    hub.kubectl_ok(
        v,
        &[
            "patch",
            "widget",
            "applied",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"size":9}}"#,
        ],
    );
    hub.kubectl_ok(
        v,
        &[
            "patch",
            "widget",
            "applied",
            "--type",
            "json",
            "-p",
            r#"[{"op":"replace","path":"/spec/color","value":"red"}]"#,
        ],
    );
    let obj = json(&hub.kubectl_ok(v, &["get", "widget", "applied", "-o", "json"]));
    assert_eq!(obj["metadata"]["labels"]["tier"], "gold");
    assert_eq!(obj["metadata"]["annotations"]["note"], "hello");
    assert_eq!(obj["spec"]["size"], 9);
    assert_eq!(obj["spec"]["color"], "red");
    // Labels on a built-in kind go through strategic merge patch.
    hub.kubectl_ok(v, &["label", "ns", "default", "team=edge"]);
    let ns = json(&hub.kubectl_ok(v, &["get", "ns", "default", "-o", "json"]));
    assert_eq!(ns["metadata"]["labels"]["team"], "edge");

    // A finalizer holds the object until it is removed.
    hub.kubectl_ok(
        v,
        &[
            "patch",
            "widget",
            "widget-4",
            "--type",
            "merge",
            "-p",
            r#"{"metadata":{"finalizers":["example.faros.sh/hold"]}}"#,
        ],
    );
    hub.kubectl_ok(v, &["delete", "widget", "widget-4", "--wait=false"]);
    let held = json(&hub.kubectl_ok(v, &["get", "widget", "widget-4", "-o", "json"]));
    assert!(held["metadata"]["deletionTimestamp"].is_string(), "{held}");
    hub.kubectl_ok(
        v,
        &[
            "patch",
            "widget",
            "widget-4",
            "--type",
            "json",
            "-p",
            r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
        ],
    );
    let gone = hub.kubectl(v, &["get", "widget", "widget-4"]);
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("NotFound"));

    // explain reads the published OpenAPI v3 schema.
    let explain = hub.kubectl_ok(v, &["explain", "widget.spec.size"]);
    assert!(explain.contains("How big the widget is"), "{explain}");

    // ConfigMaps and Secrets round-trip through create -f and get.
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {mode: fast, level: '3'}\n";
    let out = hub.kubectl_stdin(v, &["create", "-f", "-"], cm);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = hub.kubectl_ok(v, &["get", "configmap", "settings"]);
    assert!(table.contains("DATA") && table.contains(" 2 "), "{table}");
    // As in Kubernetes a ConfigMap has no generation, whichever encoding kubectl sent it in
    // (JSON for `create -f`, protobuf for `create configmap`).
    hub.kubectl_ok(v, &["create", "configmap", "literal", "--from-literal=k=v"]);
    for name in ["settings", "literal"] {
        let obj = json(&hub.kubectl_ok(v, &["get", "configmap", name, "-o", "json"]));
        assert!(obj["metadata"].get("generation").is_none(), "{obj}");
    }
}

#[test]
fn everyday_commands_kubectl_1_32() {
    everyday_commands("1.32");
}

#[test]
fn everyday_commands_kubectl_1_27() {
    everyday_commands("1.27");
}

#[test]
fn get_watch_sees_added_modified_deleted() {
    let v = "1.32";
    let hub = TestHub::start(HUB);
    install_widgets(&hub, v);
    let mut watch = Command::new(kubectl_binary(v))
        .args([
            "get",
            "widgets",
            "--watch",
            "--output-watch-events",
            "--request-timeout=60s",
        ])
        .env("KUBECONFIG", hub.kubeconfig())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Give the watch time to be established before changing things.
    std::thread::sleep(Duration::from_millis(1500));
    hub.kubectl_ok(v, &["create", "-f", &sample("widget.yaml")]);
    hub.kubectl_ok(
        v,
        &[
            "patch",
            "widget",
            "widget-1",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"size":4}}"#,
        ],
    );
    hub.kubectl_ok(v, &["delete", "widget", "widget-1"]);
    std::thread::sleep(Duration::from_millis(1500));
    watch.kill().unwrap();
    let out = watch.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // A table watch: a header once, then one row per event, EVENT first.
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("EVENT") && lines[0].contains("SIZE"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<(&str, &str)> = lines[1..]
        .iter()
        .map(|l| {
            let mut cols = l.split_whitespace();
            (cols.next().unwrap(), cols.next().unwrap())
        })
        .collect();
    assert_eq!(
        events,
        vec![("ADDED", "widget-1"), ("MODIFIED", "widget-1"), ("DELETED", "widget-1")],
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn create_configmap(hub: &TestHub, name: &str) {
    let manifest = format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{k: v}}\n");
    let out = hub.kubectl_stdin("1.32", &["create", "-f", "-"], &manifest);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn data_survives_restart_and_kill_9() {
    let v = "1.32";
    let mut hub = TestHub::start(HUB);
    install_widgets(&hub, v);
    hub.kubectl_ok(v, &["create", "-f", &sample("widget.yaml")]);
    create_configmap(&hub, "before-restart");
    let before = json(&hub.kubectl_ok(v, &["get", "widget", "widget-1", "-o", "json"]));

    assert_eq!(hub.stop(), Some(0), "SIGTERM must exit 0");
    hub.restart();
    let after = json(&hub.kubectl_ok(v, &["get", "widget", "widget-1", "-o", "json"]));
    assert_eq!(before["metadata"]["uid"], after["metadata"]["uid"]);
    assert_eq!(
        before["metadata"]["resourceVersion"],
        after["metadata"]["resourceVersion"]
    );
    hub.kubectl_ok(v, &["get", "configmap", "before-restart"]);

    // Every acknowledged write survives kill -9, and revisions keep increasing.
    create_configmap(&hub, "before-crash");
    let rv_before: u64 =
        json(&hub.kubectl_ok(v, &["get", "configmap", "before-crash", "-o", "json"]))["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
    hub.crash_and_restart();
    hub.kubectl_ok(v, &["get", "configmap", "before-crash"]);
    create_configmap(&hub, "after-crash");
    let rv_after: u64 =
        json(&hub.kubectl_ok(v, &["get", "configmap", "after-crash", "-o", "json"]))["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
    assert!(rv_after > rv_before);
    assert!(eventually(Duration::from_secs(5), || hub
        .kubectl(v, &["get", "widgets"])
        .status
        .success()));
}
