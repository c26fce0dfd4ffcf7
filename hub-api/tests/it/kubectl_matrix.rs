//! The same everyday scenario with every real kubectl on the machine, 1.27 through 1.33:
//! protobuf-bodied creates, client- and server-side apply, diff, edit, every patch type,
//! wait, propagation policies, namespace deletion, watch tables, server dry-run, describe.

use std::time::Duration;

use crate::common::{HUB, TestHub, eventually, sample};
use serde_json::Value;

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A ConfigMap as applied first, then as applied again with a field dropped and one added.
const CM_V1: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: applied, namespace: matrix}\ndata: {keep: x, drop: dropped}\n";
const CM_V2: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: applied, namespace: matrix}\ndata: {keep: z, added: w}\n";
/// The first version of the scenario's Widget.
const WIDGET_V1: &str = "apiVersion: example.faros.sh/v1\nkind: Widget\nmetadata: {name: w, namespace: matrix}\nspec: {size: 1, tags: [a]}\n";

fn scenario(v: &str) {
    if !faros_testkit::kubectl::installed(v) {
        return;
    }
    let hub = TestHub::start(HUB);
    imperative_creates(&hub, v);
    client_side_apply(&hub, v);
    server_side_apply(&hub, v);
    diff_and_edit(&hub, v);
    every_patch_type(&hub, v);
    wait_for_conditions_and_deletion(&hub, v);
    propagation_policies(&hub, v);
    dry_run_and_describe(&hub, v);
    namespace_deletion(&hub, v);
}

/// Runs kubectl `v` with `input` on stdin and asserts success; returns stdout.
fn stdin_ok(hub: &TestHub, v: &str, args: &[&str], input: &str) -> String {
    faros_testkit::succeeded(&format!("kubectl {v} {args:?}"), &hub.kubectl_stdin(v, args, input))
}

fn imperative_creates(hub: &TestHub, v: &str) {
    // Imperative creates (protobuf bodies from kubectl 1.32 on).
    hub.kubectl_ok(v, &["create", "namespace", "matrix"]);
    hub.kubectl_ok(
        v,
        &[
            "create",
            "configmap",
            "literal",
            "-n",
            "matrix",
            "--from-literal=a=1",
            "--from-literal=b=2",
        ],
    );
    hub.kubectl_ok(
        v,
        &[
            "create",
            "secret",
            "generic",
            "creds",
            "-n",
            "matrix",
            "--from-literal=user=admin",
        ],
    );
    let secret = json(&hub.kubectl_ok(v, &["get", "secret", "creds", "-n", "matrix", "-o", "json"]));
    assert_eq!(secret["data"]["user"], "YWRtaW4=");
    assert_eq!(secret["type"], "Opaque");
    let cm = json(&hub.kubectl_ok(v, &["get", "cm", "literal", "-n", "matrix", "-o", "json"]));
    assert_eq!(cm["data"]["b"], "2");
}

fn client_side_apply(hub: &TestHub, v: &str) {
    // Client-side apply twice: strategic merge for a ConfigMap, merge patch for a CR.
    stdin_ok(hub, v, &["apply", "-f", "-"], CM_V1);
    assert!(stdin_ok(hub, v, &["apply", "-f", "-"], CM_V2).contains("configured"));
    let applied = json(&hub.kubectl_ok(v, &["get", "cm", "applied", "-n", "matrix", "-o", "json"]));
    assert_eq!(applied["data"], serde_json::json!({"keep": "z", "added": "w"}));

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
    let w2 = "apiVersion: example.faros.sh/v1\nkind: Widget\nmetadata: {name: w, namespace: matrix}\nspec: {size: 2}\n";
    stdin_ok(hub, v, &["apply", "-f", "-"], WIDGET_V1);
    stdin_ok(hub, v, &["apply", "-f", "-"], w2);
    let w = json(&hub.kubectl_ok(v, &["get", "widget", "w", "-n", "matrix", "-o", "json"]));
    assert_eq!(w["spec"]["size"], 2);
    assert!(w["spec"].get("tags").is_none());
}

fn server_side_apply(hub: &TestHub, v: &str) {
    // Server-side apply: a second manager conflicts, then forces.
    let ssa = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa, namespace: matrix}\ndata: {owner: first}\n";
    stdin_ok(
        hub,
        v,
        &["apply", "--server-side", "--field-manager=first", "-f", "-"],
        ssa,
    );
    let other = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa, namespace: matrix}\ndata: {owner: second}\n";
    let out = hub.kubectl_stdin(
        v,
        &["apply", "--server-side", "--field-manager=second", "-f", "-"],
        other,
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("conflict"), "{}", stderr(&out));
    stdin_ok(
        hub,
        v,
        &[
            "apply",
            "--server-side",
            "--field-manager=second",
            "--force-conflicts",
            "-f",
            "-",
        ],
        other,
    );
    let ssa_obj = json(&hub.kubectl_ok(
        v,
        &[
            "get",
            "cm",
            "ssa",
            "-n",
            "matrix",
            "-o",
            "json",
            "--show-managed-fields",
        ],
    ));
    assert_eq!(ssa_obj["data"]["owner"], "second");
    let managers: Vec<&str> = ssa_obj["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manager"].as_str().unwrap())
        .collect();
    assert!(managers.contains(&"second"), "{managers:?}");
}

fn diff_and_edit(hub: &TestHub, v: &str) {
    // A second server-side apply of a client-side-applied object works too.
    stdin_ok(hub, v, &["apply", "--server-side", "-f", "-"], CM_V2);

    // diff: exit 1 and a diff when something would change, 0 when nothing would.
    let out = hub.kubectl_stdin(v, &["diff", "-f", "-"], CM_V1);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("drop"));

    // edit with a scripted editor.
    let editor = hub.dir.join("editor.sh");
    std::fs::write(&editor, "#!/bin/sh\nsed -i 's/keep: z/keep: edited/' \"$1\"\n").unwrap();
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = std::process::Command::new(crate::common::kubectl_binary(v))
        .args(["edit", "cm", "applied", "-n", "matrix"])
        .env("KUBECONFIG", hub.kubeconfig())
        .env("EDITOR", &editor)
        .env("KUBE_EDITOR", &editor)
        .output()
        .unwrap();
    assert!(out.status.success(), "edit: {}", stderr(&out));
    assert_eq!(
        json(&hub.kubectl_ok(v, &["get", "cm", "applied", "-n", "matrix", "-o", "json"]))["data"]["keep"],
        "edited"
    );
}

fn every_patch_type(hub: &TestHub, v: &str) {
    // Every patch type; strategic on a custom resource is refused with 415.
    hub.kubectl_ok(
        v,
        &[
            "patch",
            "cm",
            "literal",
            "-n",
            "matrix",
            "--type",
            "strategic",
            "-p",
            r#"{"data":{"c":"3"}}"#,
        ],
    );
    hub.kubectl_ok(
        v,
        &[
            "patch",
            "cm",
            "literal",
            "-n",
            "matrix",
            "--type",
            "merge",
            "-p",
            r#"{"data":{"a":null}}"#,
        ],
    );
    hub.kubectl_ok(
        v,
        &[
            "patch",
            "cm",
            "literal",
            "-n",
            "matrix",
            "--type",
            "json",
            "-p",
            r#"[{"op":"add","path":"/data/d","value":"4"}]"#,
        ],
    );
    let patched = json(&hub.kubectl_ok(v, &["get", "cm", "literal", "-n", "matrix", "-o", "json"]));
    assert_eq!(patched["data"], serde_json::json!({"b": "2", "c": "3", "d": "4"}));
    let out = hub.kubectl(
        v,
        &[
            "patch",
            "widget",
            "w",
            "-n",
            "matrix",
            "--type",
            "strategic",
            "-p",
            r#"{"spec":{"size":3}}"#,
        ],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("UnsupportedMediaType") || err.contains("unknown format") || err.contains("415"),
        "{err}"
    );
}

fn wait_for_conditions_and_deletion(hub: &TestHub, v: &str) {
    // wait: a condition set through the status subresource, and deletion.
    let waiter = std::process::Command::new(crate::common::kubectl_binary(v))
        .args([
            "wait",
            "--for=condition=Ready",
            "widget/w",
            "-n",
            "matrix",
            "--timeout=60s",
        ])
        .env("KUBECONFIG", hub.kubeconfig())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    hub.kubectl_ok(
        v,
        &[
            "patch",
            "widget",
            "w",
            "-n",
            "matrix",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"conditions":[{"type":"Ready","status":"True","reason":"Done"}]}}"#,
        ],
    );
    let out = waiter.wait_with_output().unwrap();
    assert!(out.status.success(), "wait --for=condition: {}", stderr(&out));
    hub.kubectl_ok(v, &["delete", "widget", "w", "-n", "matrix", "--wait=false"]);
    hub.kubectl_ok(
        v,
        &["wait", "--for=delete", "widget/w", "-n", "matrix", "--timeout=30s"],
    );
}

fn propagation_policies(hub: &TestHub, v: &str) {
    // Propagation policies on an owner with a dependent.
    for (policy, dependent_survives) in [("background", false), ("foreground", false), ("orphan", true)] {
        let owner = json(&stdin_ok(
            hub,
            v,
            &["create", "-o", "json", "-f", "-"],
            &format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: owner-{policy}, namespace: matrix}}\n"),
        ));
        let uid = owner["metadata"]["uid"].as_str().unwrap();
        stdin_ok(
            hub,
            v,
            &["create", "-f", "-"],
            &format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dep-{policy}\n  namespace: matrix\n  ownerReferences:\n  - {{apiVersion: v1, kind: ConfigMap, name: owner-{policy}, uid: {uid}, blockOwnerDeletion: true}}\n"
            ),
        );
        hub.kubectl_ok(
            v,
            &[
                "delete",
                "cm",
                &format!("owner-{policy}"),
                "-n",
                "matrix",
                &format!("--cascade={policy}"),
                "--timeout=60s",
            ],
        );
        let dep = format!("dep-{policy}");
        if dependent_survives {
            let survivor = json(&hub.kubectl_ok(v, &["get", "cm", &dep, "-n", "matrix", "-o", "json"]));
            assert!(
                survivor["metadata"]
                    .get("ownerReferences")
                    .is_none_or(|r| r.as_array().unwrap().is_empty())
            );
        } else {
            assert!(
                eventually(Duration::from_secs(30), || !hub
                    .kubectl(v, &["get", "cm", &dep, "-n", "matrix"])
                    .status
                    .success()),
                "dependent of a {policy} delete survived"
            );
        }
    }
}

fn dry_run_and_describe(hub: &TestHub, v: &str) {
    // Server-side dry run stores nothing.
    hub.kubectl_ok(v, &["create", "configmap", "dry", "-n", "matrix", "--dry-run=server"]);
    assert!(!hub.kubectl(v, &["get", "cm", "dry", "-n", "matrix"]).status.success());

    // describe of a built-in and of a custom resource, with its events.
    stdin_ok(hub, v, &["create", "-f", "-"], WIDGET_V1);
    let widget = json(&hub.kubectl_ok(v, &["get", "widget", "w", "-n", "matrix", "-o", "json"]));
    let event = format!(
        "apiVersion: v1\nkind: Event\nmetadata: {{name: w-event, namespace: matrix}}\ninvolvedObject: {{apiVersion: example.faros.sh/v1, kind: Widget, name: w, namespace: matrix, uid: {}}}\nreason: Polished\nmessage: the widget shines\ntype: Normal\nfirstTimestamp: \"2026-01-01T00:00:00Z\"\nlastTimestamp: \"2026-01-01T00:00:00Z\"\ncount: 1\nsource: {{component: matrix-test}}\n",
        widget["metadata"]["uid"].as_str().unwrap()
    );
    stdin_ok(hub, v, &["create", "-f", "-"], &event);
    let described = hub.kubectl_ok(v, &["describe", "widget", "w", "-n", "matrix"]);
    assert!(
        described.contains("Polished") && described.contains("the widget shines"),
        "{described}"
    );
    let described = hub.kubectl_ok(v, &["describe", "cm", "literal", "-n", "matrix"]);
    assert!(
        described.contains("Name:") && described.contains("literal"),
        "{described}"
    );
}

fn namespace_deletion(hub: &TestHub, v: &str) {
    // Deleting a namespace that holds objects empties it (honouring their finalizers), then
    // removes it.
    stdin_ok(
        hub,
        v,
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: held, namespace: matrix, finalizers: [example.faros.sh/hold]}\n",
    );
    hub.kubectl_ok(v, &["delete", "ns", "matrix", "--wait=false"]);
    let ns = json(&hub.kubectl_ok(v, &["get", "ns", "matrix", "-o", "json"]));
    assert_eq!(ns["status"]["phase"], "Terminating");
    let refused = hub.kubectl_stdin(
        v,
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: late, namespace: matrix}\n",
    );
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("being terminated"), "{}", stderr(&refused));
    assert!(
        eventually(Duration::from_secs(30), || {
            let left = hub.kubectl(v, &["get", "cm", "-n", "matrix", "-o", "name"]);
            String::from_utf8_lossy(&left.stdout).trim() == "configmap/held"
        }),
        "namespace content was not deleted"
    );
    let held = json(&hub.kubectl_ok(v, &["get", "ns", "matrix", "-o", "json"]));
    assert_eq!(held["status"]["phase"], "Terminating");
    hub.kubectl_ok(
        v,
        &[
            "patch",
            "cm",
            "held",
            "-n",
            "matrix",
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":null}}"#,
        ],
    );
    hub.kubectl_ok(v, &["wait", "--for=delete", "ns/matrix", "--timeout=60s"]);
    assert_eq!(hub.kubectl_ok(v, &["get", "widgets", "-A", "-o", "name"]).trim(), "");
}

#[test]
fn kubectl_1_27() {
    scenario("1.27");
}

#[test]
fn kubectl_1_28() {
    scenario("1.28");
}

#[test]
fn kubectl_1_29() {
    scenario("1.29");
}

#[test]
fn kubectl_1_30() {
    scenario("1.30");
}

#[test]
fn kubectl_1_31() {
    scenario("1.31");
}

#[test]
fn kubectl_1_32() {
    scenario("1.32");
}

#[test]
fn kubectl_1_33() {
    scenario("1.33");
}
