//! Workspaces as tenants see them: isolated logical clusters with their own namespaces,
//! CRDs and discovery; nesting and deletion of subtrees; API bindings; the wildcard view.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::{HUB, TestHub, eventually, sample};
use serde_json::Value;

const V: &str = "1.32";

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// The condition of type `type_` in an object's `status` (as JSON), if any.
fn condition<'a>(status: &'a Value, type_: &str) -> Option<&'a Value> {
    status["conditions"].as_array()?.iter().find(|c| c["type"] == type_)
}

/// A Workspace manifest; `spec` is its spec as inline YAML.
fn workspace_manifest(name: &str, spec: &str) -> String {
    format!("apiVersion: tenancy.kcp.io/v1alpha1\nkind: Workspace\nmetadata: {{name: {name}}}\nspec: {spec}\n")
}

/// Creates a Workspace with kubectl in the workspace `parent_kubeconfig` points at and waits
/// until it is Ready; returns a kubeconfig for the new workspace.
fn create_workspace(hub: &TestHub, parent_kubeconfig: &Path, name: &str, ws_type: &str) -> PathBuf {
    let manifest = workspace_manifest(name, &format!("{{type: {{name: {ws_type}}}}}"));
    let out = crate::common::kubectl_with(parent_kubeconfig, V, &["create", "-f", "-"], Some(&manifest));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut url = String::new();
    assert!(
        eventually(Duration::from_secs(20), || {
            let out = crate::common::kubectl_with(parent_kubeconfig, V, &["get", "ws", name, "-o", "json"], None);
            if !out.status.success() {
                return false;
            }
            let ws = json(&String::from_utf8_lossy(&out.stdout));
            url = ws["spec"]["URL"].as_str().unwrap_or_default().to_string();
            ws["status"]["phase"] == "Ready"
        }),
        "workspace {name} never became Ready"
    );
    kubeconfig_for(hub, &url, name)
}

/// A copy of the admin kubeconfig pointing at `url`.
fn kubeconfig_for(hub: &TestHub, url: &str, name: &str) -> PathBuf {
    hub.admin_kubeconfig_at(url, &format!("{}.kubeconfig", name.replace(':', "_")))
}

fn k(kubeconfig: &Path, args: &[&str]) -> std::process::Output {
    crate::common::kubectl_with(kubeconfig, V, args, None)
}

fn k_ok(kubeconfig: &Path, args: &[&str]) -> String {
    let out = k(kubeconfig, args);
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn k_stdin(kubeconfig: &Path, args: &[&str], stdin: &str) -> String {
    let out = crate::common::kubectl_with(kubeconfig, V, args, Some(stdin));
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn tenants_are_isolated() {
    let hub = TestHub::start(HUB);
    let root = hub.kubeconfig();
    let a = create_workspace(&hub, &root, "tenant-a", "universal");
    let b = create_workspace(&hub, &root, "tenant-b", "universal");

    // Each workspace starts like a fresh cluster.
    for kc in [&a, &b] {
        let ns = k_ok(kc, &["get", "ns", "-o", "name"]);
        assert_eq!(ns.trim(), "namespace/default", "{ns}");
    }

    // The same names in both, without interference.
    for (kc, value) in [(&a, "from-a"), (&b, "from-b")] {
        k_stdin(
            kc,
            &["create", "-f", "-"],
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: shared}\n",
        );
        let cm = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cfg, namespace: shared}}\ndata: {{who: {value}}}\n"
        );
        k_stdin(kc, &["create", "-f", "-"], &cm);
    }
    let cm_a = json(&k_ok(&a, &["get", "cm", "cfg", "-n", "shared", "-o", "json"]));
    let cm_b = json(&k_ok(&b, &["get", "cm", "cfg", "-n", "shared", "-o", "json"]));
    assert_eq!(cm_a["data"]["who"], "from-a");
    assert_eq!(cm_b["data"]["who"], "from-b");
    assert_ne!(cm_a["metadata"]["uid"], cm_b["metadata"]["uid"]);
    assert_ne!(
        cm_a["metadata"]["annotations"]["kcp.io/cluster"],
        cm_b["metadata"]["annotations"]["kcp.io/cluster"]
    );
    // Nothing of the tenants shows up in root.
    let root_cms = k_ok(&root, &["get", "cm", "-A", "-o", "name"]);
    assert!(!root_cms.contains("cfg"), "{root_cms}");

    // A CRD in A is absent from B's discovery and OpenAPI.
    k_ok(&a, &["create", "-f", &sample("widget-crd.yaml")]);
    k_ok(
        &a,
        &["wait", "--for=condition=Established", "crd/widgets.example.faros.sh"],
    );
    k_ok(&a, &["create", "-f", &sample("widget.yaml")]);
    assert!(k_ok(&a, &["api-resources"]).contains("widgets"));
    assert!(!k_ok(&b, &["api-resources"]).contains("widgets"));
    assert!(!k(&b, &["get", "widgets"]).status.success());
    let openapi_b = k_ok(&b, &["get", "--raw", "/clusters/root:tenant-b/openapi/v3"]);
    assert!(!openapi_b.contains("example.faros.sh"), "{openapi_b}");
    // The same CRD name can exist in B independently.
    k_ok(&b, &["create", "-f", &sample("widget-crd.yaml")]);
    k_ok(
        &b,
        &["wait", "--for=condition=Established", "crd/widgets.example.faros.sh"],
    );
    assert_eq!(k_ok(&b, &["get", "widgets", "-A", "-o", "name"]).trim(), "");

    // Deleting in one leaves the other alone.
    k_ok(&a, &["delete", "cm", "cfg", "-n", "shared"]);
    k_ok(&b, &["get", "cm", "cfg", "-n", "shared"]);

    // Unknown workspaces are refused the same way as forbidden ones.
    let unknown = kubeconfig_for(&hub, &format!("{}/clusters/root:does-not-exist", hub.url()), "unknown");
    // (--raw with the full path: kubectl's discovery client does not print the message of a
    // failed discovery, and a raw path replaces the server URL's path.)
    let out = k(
        &unknown,
        &["get", "--raw", "/clusters/root:does-not-exist/api/v1/namespaces"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("workspace access not permitted"));
    let dotted = kubeconfig_for(&hub, &format!("{}/clusters/root:tenant-a:..", hub.url()), "dotted");
    assert!(!k(&dotted, &["get", "ns"]).status.success());
}

#[test]
fn nested_workspaces_and_subtree_deletion() {
    let hub = TestHub::start(HUB);
    let root = hub.kubeconfig();
    let top = create_workspace(&hub, &root, "org", "universal");
    let middle = create_workspace(&hub, &top, "team", "universal");
    let leaf = create_workspace(&hub, &middle, "plant-7", "universal");
    k_stdin(
        &leaf,
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: deep, finalizers: [example.com/hold]}\n",
    );
    let ws = json(&k_ok(&middle, &["get", "ws", "plant-7", "-o", "json"]));
    assert!(
        ws["spec"]["URL"]
            .as_str()
            .unwrap()
            .ends_with("/clusters/root:org:team:plant-7")
    );
    let lc = json(&k_ok(&leaf, &["get", "logicalclusters", "cluster", "-o", "json"]));
    assert_eq!(lc["metadata"]["annotations"]["kcp.io/path"], "root:org:team:plant-7");

    // Deleting the middle workspace removes its whole subtree and frees its name, once the
    // finalizers in it have run: until then the leaf says what holds it.
    k_ok(&top, &["delete", "ws", "team", "--wait=false"]);
    let mut last = Value::Null;
    assert!(
        eventually(Duration::from_secs(30), || {
            last = json(&k_ok(&middle, &["get", "ws", "plant-7", "-o", "json"]));
            last["status"]["phase"] == "Terminating"
                && condition(&last["status"], "WorkspaceContentDeleted").is_some_and(|c| {
                    c["message"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("held by finalizers: example.com/hold on configmaps (1)")
                })
        }),
        "the leaf never reported what holds it: {last}"
    );
    assert_eq!(
        json(&k_ok(&top, &["get", "ws", "team", "-o", "json"]))["status"]["phase"],
        "Terminating"
    );
    k_ok(
        &leaf,
        &[
            "patch",
            "configmap",
            "deep",
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":null}}"#,
        ],
    );
    assert!(
        eventually(Duration::from_secs(30), || !k(&top, &["get", "ws", "team"])
            .status
            .success()),
        "middle workspace never went away"
    );
    let out = k(
        &leaf,
        &["get", "--raw", "/clusters/root:org:team:plant-7/api/v1/configmaps"],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("workspace access not permitted"));
    let again = create_workspace(&hub, &top, "team", "universal");
    assert_eq!(k_ok(&again, &["get", "ws", "-o", "name"]).trim(), "");
}

#[test]
fn edge_api_bound_by_type_and_wildcard_watch_sees_all_workspaces() {
    let hub = TestHub::start(HUB);
    let root = hub.kubeconfig();
    let one = create_workspace(&hub, &root, "fleet-1", "faros");
    let two = create_workspace(&hub, &root, "fleet-2", "faros");
    let plain = create_workspace(&hub, &root, "plain", "universal");
    for kc in [&one, &two] {
        let bindings = json(&k_ok(kc, &["get", "apibindings", "-o", "json"]));
        assert_eq!(bindings["items"][0]["status"]["phase"], "Bound", "{bindings}");
        assert!(k_ok(kc, &["api-resources"]).contains("agents"));
    }
    assert!(!k_ok(&plain, &["api-resources"]).contains("agents"));

    let agent = |name: &str| {
        format!(
            "apiVersion: edge.faros.sh/v1alpha1\nkind: Agent\nmetadata: {{name: {name}}}\nspec: {{heartbeatIntervalSeconds: 5}}\n"
        )
    };
    k_stdin(&one, &["create", "-f", "-"], &agent("device-1"));
    k_stdin(&two, &["create", "-f", "-"], &agent("device-2"));

    // The admin's wildcard view lists and watches agents of both workspaces, each carrying
    // its logical cluster.
    let list = json(&k_ok(
        &root,
        &["get", "--raw", "/clusters/*/apis/edge.faros.sh/v1alpha1/agents"],
    ));
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{list}");
    let clusters: std::collections::HashSet<&str> = items
        .iter()
        .map(|i| i["metadata"]["annotations"]["kcp.io/cluster"].as_str().unwrap())
        .collect();
    assert_eq!(clusters.len(), 2);
    let watch = k_ok(
        &root,
        &[
            "get",
            "--raw",
            "/clusters/*/apis/edge.faros.sh/v1alpha1/agents?watch=true&timeoutSeconds=1",
        ],
    );
    let events: Vec<Value> = watch.lines().map(json).collect();
    assert_eq!(events.len(), 2, "{watch}");
    assert!(
        events
            .iter()
            .all(|e| e["type"] == "ADDED" && e["object"]["metadata"]["annotations"]["kcp.io/cluster"].is_string())
    );
    // Writes through the wildcard are refused.
    let out = crate::common::kubectl_with(
        &root,
        V,
        &[
            "create",
            "--raw",
            "/clusters/*/apis/edge.faros.sh/v1alpha1/namespaces/default/agents",
            "-f",
            "-",
        ],
        Some(&agent("nope")),
    );
    assert!(!out.status.success());
}

#[test]
fn deleting_a_binding_deletes_its_objects() {
    let hub = TestHub::start(HUB);
    let root = hub.kubeconfig();
    let shop = create_workspace(&hub, &root, "shop", "universal");
    let other = create_workspace(&hub, &root, "other", "faros");
    let binding = sample("binding.yaml");
    k_ok(&shop, &["create", "-f", &binding]);
    assert!(
        eventually(Duration::from_secs(20), || k(&shop, &["api-resources"])
            .status
            .success()
            && k_ok(&shop, &["api-resources"]).contains("agents")),
        "the edge API never appeared in the workspace"
    );
    let agent = |name: &str, namespace: &str, finalizer: bool| {
        format!(
            "apiVersion: edge.faros.sh/v1alpha1\nkind: Agent\nmetadata: {{name: {name}, namespace: {namespace}{}}}\nspec: {{}}\n",
            if finalizer {
                ", finalizers: [example.com/hold]"
            } else {
                ""
            }
        )
    };
    k_ok(&shop, &["create", "namespace", "site-b"]);
    k_stdin(&shop, &["create", "-f", "-"], &agent("free", "default", false));
    k_stdin(&shop, &["create", "-f", "-"], &agent("held", "site-b", true));
    k_stdin(&other, &["create", "-f", "-"], &agent("elsewhere", "default", false));
    // A Registration carries the edge controllers' revoke finalizer once it is Ready.
    k_ok(&shop, &["create", "-f", &sample("registration.yaml")]);
    assert!(
        eventually(Duration::from_secs(20), || {
            let reg = json(&k_ok(&shop, &["get", "registration", "plant-7", "-o", "json"]));
            condition(&reg["status"], "Ready").is_some_and(|c| c["status"] == "True")
        }),
        "the Registration never became Ready"
    );
    k_ok(&shop, &["get", "secret", "faros-reg-plant-7-token"]);

    // The binding stays while an object of its resources is held by a finalizer, and says so.
    k_ok(&shop, &["delete", "apibinding", "edge.faros.sh", "--wait=false"]);
    let mut last = Value::Null;
    assert!(
        eventually(Duration::from_secs(20), || {
            last = json(&k_ok(&shop, &["get", "apibinding", "edge.faros.sh", "-o", "json"]));
            condition(&last["status"], "BindingResourceDeleteSuccess").is_some_and(|c| {
                c["status"] == "False"
                    && c["message"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("agents.edge.faros.sh has 1 objects")
            })
        }),
        "no BindingResourceDeleteSuccess condition: {last}"
    );
    let out = k(&shop, &["get", "agent", "free", "-n", "default"]);
    assert!(!out.status.success(), "the unheld agent is still there");
    let held = json(&k_ok(&shop, &["get", "agent", "held", "-n", "site-b", "-o", "json"]));
    assert!(held["metadata"]["deletionTimestamp"].is_string(), "{held}");

    // Releasing it lets the binding go, and the kind with it.
    k_ok(
        &shop,
        &[
            "patch",
            "agent",
            "held",
            "-n",
            "site-b",
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":null}}"#,
        ],
    );
    assert!(
        eventually(Duration::from_secs(20), || {
            !k(&shop, &["get", "apibinding", "edge.faros.sh"]).status.success()
        }),
        "the binding was never deleted"
    );
    assert!(
        eventually(Duration::from_secs(10), || !k_ok(&shop, &["api-resources"])
            .contains("agents")),
        "agents are still served after the binding went"
    );
    // The edge controllers revoked the Registration's credentials on the way.
    assert!(!k(&shop, &["get", "secret", "faros-reg-plant-7-token"]).status.success());
    // Another workspace's objects of the same export are untouched.
    k_ok(&other, &["get", "agent", "elsewhere", "-n", "default"]);
    // Binding again starts from nothing: no object of the old binding comes back.
    k_ok(&shop, &["create", "-f", &binding]);
    assert!(
        eventually(Duration::from_secs(20), || k(&shop, &["get", "agents", "-A"])
            .status
            .success()),
        "the edge API never came back"
    );
    let list = json(&k_ok(&shop, &["get", "agents", "-A", "-o", "json"]));
    assert_eq!(list["items"], serde_json::json!([]), "{list}");
}

/// Runs kubectl expecting failure; returns its stderr.
fn k_err(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let out = crate::common::kubectl_with(kubeconfig, V, args, stdin);
    assert!(!out.status.success(), "kubectl {args:?} should have failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn workspaces_refuse_unknown_types_and_taken_logical_clusters() {
    let hub = TestHub::start(HUB);
    let root = hub.kubeconfig();
    let tenant = create_workspace(&hub, &root, "tenant", "universal");
    k_ok(&tenant, &["create", "configmap", "precious", "--from-literal=k=v"]);
    let taken = json(&k_ok(&root, &["get", "ws", "tenant", "-o", "json"]))["spec"]["cluster"]
        .as_str()
        .unwrap()
        .to_string();
    let workspace = workspace_manifest;
    let cases = [
        (
            workspace("typo", "{type: {name: nosuchtype}}"),
            "WorkspaceType root:nosuchtype does not exist",
        ),
        (
            workspace("bad-path", "{type: {name: universal, path: \"root:::\"}}"),
            "WorkspaceType root::::universal does not exist",
        ),
        (
            workspace("rooted", "{type: {name: root}}"),
            "the root WorkspaceType is for the root workspace only",
        ),
        (workspace("stringly", "{type: faros}"), "spec.type"),
        (
            workspace("steal", &format!("{{cluster: {taken}}}")),
            "already belongs to another workspace",
        ),
        (workspace("escape", "{cluster: \"ROOT/../x\"}"), "spec.cluster"),
        (workspace("everything", "{cluster: \"*\"}"), "spec.cluster"),
    ];
    for (manifest, expected) in &cases {
        let err = k_err(&root, &["create", "-f", "-"], Some(manifest));
        assert!(
            err.contains("is invalid") && err.contains(expected),
            "{manifest}: {err}"
        );
    }
    let names = k_ok(&root, &["get", "ws", "-o", "name"]);
    assert!(!names.contains("steal") && !names.contains("typo"), "{names}");
    // The tenant's workspace is untouched.
    k_ok(&tenant, &["get", "configmap", "precious"]);
    // A fresh logical cluster chosen by a master is fine, and so is a type from another path.
    let own = workspace("chosen", "{cluster: chosen-cluster, type: {name: faros, path: root}}");
    k_stdin(&root, &["create", "-f", "-"], &own);
    assert!(
        eventually(Duration::from_secs(20), || {
            let ws = json(&k_ok(&root, &["get", "ws", "chosen", "-o", "json"]));
            ws["status"]["phase"] == "Ready" && ws["spec"]["cluster"] == "chosen-cluster"
        }),
        "the workspace with a chosen cluster never became Ready"
    );
}

#[test]
fn bindings_follow_their_export() {
    let hub = TestHub::start(HUB);
    let root = hub.kubeconfig();
    let provider = create_workspace(&hub, &root, "provider", "universal");
    let consumer = create_workspace(&hub, &root, "consumer", "universal");
    let export = sample("export.yaml");
    k_ok(&provider, &["create", "-f", &export]);
    let binding = "apiVersion: apis.kcp.io/v1alpha1\nkind: APIBinding\nmetadata: {name: gadgets}\nspec:\n  reference: {export: {path: \"root:provider\", name: gadgets.example.faros.sh}}\n  permissionClaims: [{group: \"\", resource: configmaps, state: Accepted}]\n";
    k_stdin(&consumer, &["create", "-f", "-"], binding);
    let status = |want: &dyn Fn(&Value) -> bool| -> Value {
        let mut last = Value::Null;
        let ok = eventually(Duration::from_secs(20), || {
            last = json(&k_ok(&consumer, &["get", "apibinding", "gadgets", "-o", "json"]))["status"].clone();
            want(&last)
        });
        assert!(ok, "binding status never matched: {last}");
        last
    };
    let bound =
        status(&|s| s["phase"] == "Bound" && s["appliedPermissionClaims"].as_array().is_some_and(|a| a.len() == 1));
    let identity = bound["boundResources"][0]["schema"]["identityHash"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(identity.len(), 64, "{bound}");
    k_stdin(
        &consumer,
        &["create", "-f", "-"],
        "apiVersion: example.faros.sh/v1\nkind: Gadget\nmetadata: {name: g1, namespace: default}\nspec: {model: m1}\n",
    );

    // A CRD may not take the name of the bound resource.
    let crd = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: gadgets.example.faros.sh}\nspec:\n  group: example.faros.sh\n  scope: Namespaced\n  names: {plural: gadgets, singular: gadget, kind: Gadget}\n  versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}]\n";
    let err = k_err(&consumer, &["create", "-f", "-"], Some(crd));
    assert!(
        err.contains("Forbidden") && err.contains("already served in this workspace through APIBinding \"gadgets\""),
        "{err}"
    );

    // A claim answered twice is refused.
    let err = k_err(
        &consumer,
        &[
            "patch",
            "apibinding",
            "gadgets",
            "--type=merge",
            "-p",
            r#"{"spec":{"permissionClaims":[{"group":"","resource":"configmaps","state":"Accepted"},{"group":"","resource":"configmaps","state":"Rejected"}]}}"#,
        ],
        None,
    );
    assert!(
        err.contains("spec.permissionClaims[1]") && err.contains("Duplicate value"),
        "{err}"
    );

    // Withdrawing the claim takes it out of force.
    k_ok(
        &consumer,
        &[
            "patch",
            "apibinding",
            "gadgets",
            "--type=merge",
            "-p",
            r#"{"spec":{"permissionClaims":[{"group":"","resource":"configmaps","state":"Rejected"}]}}"#,
        ],
    );
    status(&|s| s["appliedPermissionClaims"].is_null());

    // A claim added to the export shows up in the binding without touching it.
    k_ok(
        &provider,
        &[
            "patch",
            "apiexport",
            "gadgets.example.faros.sh",
            "--type=json",
            "-p",
            r#"[{"op":"add","path":"/spec/permissionClaims/-","value":{"group":"","resource":"secrets"}}]"#,
        ],
    );
    status(&|s| s["exportPermissionClaims"].as_array().is_some_and(|c| c.len() == 2));

    // Deleting the export is reported; creating it again restores it, with the same
    // identity, so the consumer's gadgets are still there.
    k_ok(&provider, &["delete", "apiexport", "gadgets.example.faros.sh"]);
    status(&|s| {
        condition(s, "APIExportValid").is_some_and(|c| c["status"] == "False" && c["reason"] == "APIExportNotFound")
            && condition(s, "InitialBindingCompleted").is_some_and(|c| c["status"] == "True")
    });
    // What it bound is still served meanwhile.
    k_ok(&consumer, &["get", "gadget", "g1", "-n", "default"]);
    let out = k(&provider, &["create", "-f", &export]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("AlreadyExists"),
        "only the schema should remain: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recreated = json(&k_ok(
        &provider,
        &["get", "apiexport", "gadgets.example.faros.sh", "-o", "json"],
    ));
    assert_eq!(recreated["status"]["identityHash"], identity.as_str());
    status(&|s| condition(s, "APIExportValid").is_some_and(|c| c["status"] == "True"));
    k_ok(&consumer, &["get", "gadget", "g1", "-n", "default"]);

    // A schema a binding serves outlives its deletion until no binding serves it: the
    // consumer keeps its gadgets, and unbinding deletes them, then the schema goes.
    k_ok(
        &provider,
        &[
            "delete",
            "apiresourceschema",
            "v1.gadgets.example.faros.sh",
            "--wait=false",
        ],
    );
    let schema = json(&k_ok(
        &provider,
        &["get", "apiresourceschema", "v1.gadgets.example.faros.sh", "-o", "json"],
    ));
    assert!(schema["metadata"]["deletionTimestamp"].is_string(), "{schema}");
    k_ok(&consumer, &["get", "gadget", "g1", "-n", "default"]);
    k_ok(&consumer, &["delete", "apibinding", "gadgets"]);
    assert!(
        eventually(Duration::from_secs(20), || !k(
            &provider,
            &["get", "apiresourceschema", "v1.gadgets.example.faros.sh"]
        )
        .status
        .success()),
        "the schema outlived its last binding"
    );
}

#[test]
fn api_resource_schemas_must_make_valid_resources() {
    let hub = TestHub::start(HUB);
    let root = hub.kubeconfig();
    let schema = |name: &str, group: &str, scope: &str, versions: &str| {
        format!(
            "apiVersion: apis.kcp.io/v1alpha1\nkind: APIResourceSchema\nmetadata: {{name: {name}}}\nspec:\n  group: {group}\n  scope: {scope}\n  names: {{plural: things, singular: thing, kind: Thing, listKind: ThingList}}\n  versions: {versions}\n"
        )
    };
    let one = "[{name: v1, served: true, storage: true, schema: {type: object}}]";
    let cases = [
        (schema("v1.things.example.io", "example.io", "Bogus", one), "spec.scope"),
        (
            schema(
                "v1.things.example.io",
                "example.io",
                "Namespaced",
                "[{name: v1, served: true, storage: false, schema: {type: object}}]",
            ),
            "exactly one version marked as storage version",
        ),
        (
            schema("v1.things.bad_group", "bad_group", "Namespaced", one),
            "spec.group",
        ),
        (schema("v1.things", "\"\"", "Namespaced", one), "spec.group"),
        (
            schema(
                "v1.things.example.io",
                "example.io",
                "Namespaced",
                "[{name: V1!, served: true, storage: true, schema: {type: object}}]",
            ),
            "spec.versions[0].name",
        ),
        (
            schema(
                "v1.things.example.io",
                "example.io",
                "Namespaced",
                "[{name: v1, served: true, storage: true, schema: {type: foo}}]",
            ),
            "spec.versions[0].schema",
        ),
        (
            schema("things.example.io", "example.io", "Namespaced", one),
            "metadata.name",
        ),
        (
            schema("v1.others.example.io", "example.io", "Namespaced", one),
            "metadata.name",
        ),
    ];
    for (manifest, field) in &cases {
        let err = k_err(&root, &["create", "-f", "-"], Some(manifest));
        assert!(err.contains("is invalid") && err.contains(field), "{manifest}: {err}");
    }
    k_stdin(
        &root,
        &["create", "-f", "-"],
        &schema("v1.things.example.io", "example.io", "Namespaced", one),
    );
}

#[test]
fn workspace_types_limit_parents_and_children_and_extend_others() {
    let hub = TestHub::start(HUB);
    let root = hub.kubeconfig();
    let types = r#"
apiVersion: tenancy.kcp.io/v1alpha1
kind: WorkspaceType
metadata: {name: org}
spec:
  defaultChildWorkspaceType: {name: team, path: root}
  limitAllowedChildren: {types: [{name: team, path: root}]}
---
apiVersion: tenancy.kcp.io/v1alpha1
kind: WorkspaceType
metadata: {name: team}
spec:
  extend: {with: [{name: faros, path: root}]}
  limitAllowedParents: {types: [{name: org, path: root}]}
---
apiVersion: tenancy.kcp.io/v1alpha1
kind: WorkspaceType
metadata: {name: leaf}
spec:
  limitAllowedChildren: {none: true}
"#;
    k_stdin(&root, &["create", "-f", "-"], types);
    let org = create_workspace(&hub, &root, "acme", "org");
    let workspace = |name: &str, ws_type: &str| workspace_manifest(name, &format!("{{type: {{name: {ws_type}}}}}"));
    let err = k_err(&org, &["create", "-f", "-"], Some(&workspace("plain", "universal")));
    assert!(
        err.contains("workspaces of type root:org only allow child workspaces of types root:team"),
        "{err}"
    );
    let err = k_err(&root, &["create", "-f", "-"], Some(&workspace("stray", "team")));
    assert!(
        err.contains("workspaces of type root:team may only be created in workspaces of types root:org"),
        "{err}"
    );
    // A team extends faros: it is allowed under an org and comes with the edge API.
    let team = create_workspace(&hub, &org, "team-1", "team");
    let bindings = json(&k_ok(&team, &["get", "apibindings", "-o", "json"]));
    assert_eq!(bindings["items"][0]["metadata"]["name"], "edge.faros.sh", "{bindings}");
    // Under an org, a workspace that names no type gets the org's default child type.
    k_stdin(
        &org,
        &["create", "-f", "-"],
        "apiVersion: tenancy.kcp.io/v1alpha1\nkind: Workspace\nmetadata: {name: team-2}\n",
    );
    let team2 = json(&k_ok(&org, &["get", "ws", "team-2", "-o", "json"]));
    assert_eq!(team2["spec"]["type"]["name"], "team", "{team2}");

    let leaf = create_workspace(&hub, &root, "leaf-1", "leaf");
    let err = k_err(&leaf, &["create", "-f", "-"], Some(&workspace("child", "universal")));
    assert!(
        err.contains("workspaces of type root:leaf may not have child workspaces"),
        "{err}"
    );
}

#[test]
fn workspace_types_resolve_locally_refuse_cycles_and_stay_private() {
    let hub = TestHub::start(HUB);
    let root = hub.kubeconfig();
    let provider = create_workspace(&hub, &root, "provider", "universal");
    let tenant = create_workspace(&hub, &root, "tenant", "universal");
    let wt = |name: &str, spec: &str| {
        format!("apiVersion: tenancy.kcp.io/v1alpha1\nkind: WorkspaceType\nmetadata: {{name: {name}}}\nspec: {spec}\n")
    };
    k_stdin(&provider, &["create", "-f", "-"], &wt("internal", "{}"));
    for (name, spec) in [
        ("cyc-a", "{extend: {with: [{name: cyc-b, path: \"root:tenant\"}]}}"),
        ("cyc-b", "{extend: {with: [{name: cyc-a, path: \"root:tenant\"}]}}"),
        ("orphan", "{extend: {with: [{name: nope}]}}"),
        ("local", "{extend: {with: [{name: universal, path: root}]}}"),
        // References without a path inside a type mean types of the same workspace.
        (
            "derived",
            "{extend: {with: [{name: local}]}, limitAllowedChildren: {types: [{name: local}]}}",
        ),
    ] {
        k_stdin(&tenant, &["create", "-f", "-"], &wt(name, spec));
    }
    let workspace = |name: &str, ws_type: &str| workspace_manifest(name, &format!("{{type: {ws_type}}}"));
    let err = k_err(&tenant, &["create", "-f", "-"], Some(&workspace("c", "{name: cyc-a}")));
    assert!(
        err.contains("WorkspaceType root:tenant:cyc-a extends itself (root:tenant:cyc-a -> root:tenant:cyc-b -> root:tenant:cyc-a)"),
        "{err}"
    );
    let err = k_err(&tenant, &["create", "-f", "-"], Some(&workspace("o", "{name: orphan}")));
    assert!(
        err.contains("WorkspaceType root:tenant:orphan extends WorkspaceType root:tenant:nope, which does not exist"),
        "{err}"
    );
    // A type named without a path is found in this workspace first.
    let local = create_workspace(&hub, &tenant, "uses-local", "local");
    k_ok(&local, &["get", "namespace", "default"]);
    let ws = json(&k_ok(&tenant, &["get", "ws", "uses-local", "-o", "json"]));
    assert_eq!(
        ws["spec"]["type"],
        serde_json::json!({"name": "local", "path": "root:tenant"})
    );
    let derived = create_workspace(&hub, &tenant, "uses-derived", "derived");
    let err = k_err(
        &derived,
        &["create", "-f", "-"],
        Some(&workspace("u", "{name: universal}")),
    );
    assert!(
        err.contains("workspaces of type root:tenant:derived only allow child workspaces of types root:tenant:local"),
        "{err}"
    );
    create_workspace(&hub, &derived, "l", "local");

    // A tenant's own admin (not a master) can use its own and root's types, but another
    // tenant's types can be neither used nor told apart from missing ones.
    k_ok(&tenant, &["create", "serviceaccount", "admin", "-n", "default"]);
    k_ok(
        &tenant,
        &[
            "create",
            "clusterrolebinding",
            "admin",
            "--clusterrole=cluster-admin",
            "--serviceaccount=default:admin",
        ],
    );
    let token = k_ok(&tenant, &["create", "token", "admin", "-n", "default"]);
    let url = json(&k_ok(&root, &["get", "ws", "tenant", "-o", "json"]))["spec"]["URL"]
        .as_str()
        .unwrap()
        .to_string();
    let admin = hub.token_kubeconfig("tenant-admin", &url, token.trim(), None);
    create_workspace(&hub, &admin, "own-type", "local");
    create_workspace(&hub, &admin, "root-type", "universal");
    let foreign = k_err(
        &admin,
        &["create", "-f", "-"],
        Some(&workspace("x", "{name: internal, path: \"root:provider\"}")),
    );
    let missing = k_err(
        &admin,
        &["create", "-f", "-"],
        Some(&workspace("x", "{name: missing, path: \"root:provider\"}")),
    );
    assert!(foreign.contains("does not exist or may not be used here"), "{foreign}");
    assert_eq!(
        foreign.replace("internal", "NAME"),
        missing.replace("missing", "NAME"),
        "a private type and a missing one must look alike"
    );

    // The workspace's LogicalCluster is the hub's: its admin may read it, not change it.
    k_ok(&admin, &["get", "logicalcluster", "cluster"]);
    for args in [
        &["delete", "logicalcluster", "cluster"][..],
        &[
            "annotate",
            "logicalcluster",
            "cluster",
            "kcp.io/path=root:provider",
            "--overwrite",
        ][..],
    ] {
        let err = k_err(&admin, args, None);
        assert!(
            err.contains("Forbidden") || err.contains("forbidden"),
            "{args:?}: {err}"
        );
    }
    k_ok(&admin, &["get", "namespace", "default"]);

    // Nor may it let a schema go that bindings might serve: only the hub drops that finalizer.
    k_ok(&admin, &["create", "-f", &sample("export.yaml")]);
    let err = k_err(
        &admin,
        &[
            "patch",
            "apiresourceschema",
            "v1.gadgets.example.faros.sh",
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
        ],
        None,
    );
    assert!(
        err.contains("the hub removes the apis.kcp.io/apiresourceschema-in-use finalizer"),
        "{err}"
    );
}

#[test]
fn owners_keep_access_to_their_terminating_workspace() {
    let tokens = std::env::temp_dir().join(format!("faros-owner-tokens-{}.csv", std::process::id()));
    std::fs::write(&tokens, "alice-token,alice,3001,tenants\n").unwrap();
    let hub = TestHub::start_with_args(HUB, true, &["--token-auth-file", tokens.to_str().unwrap()]);
    crate::auth_support::let_group_create_workspaces(&hub, "tenants");
    let alice_root = hub.token_kubeconfig("alice-root", &hub.url(), "alice-token", None);
    create_workspace(&hub, &alice_root, "alice-ws", "universal");
    let alice = hub.token_kubeconfig("alice-ws", &hub.workspace_url("root:alice-ws"), "alice-token", None);
    k_stdin(
        &alice,
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: held, namespace: default, finalizers: [example.com/hold]}\n",
    );
    let root = hub.kubeconfig();
    k_ok(&root, &["delete", "ws", "alice-ws", "--wait=false"]);
    assert!(
        eventually(Duration::from_secs(20), || {
            let ws = json(&k_ok(&root, &["get", "ws", "alice-ws", "-o", "json"]));
            condition(&ws["status"], "WorkspaceContentDeleted").is_some_and(|c| c["status"] == "False")
        }),
        "the workspace never reported its held content"
    );
    // Her admin binding outlives the content, so she can release what holds it.
    k_ok(
        &alice,
        &[
            "patch",
            "configmap",
            "held",
            "-n",
            "default",
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":null}}"#,
        ],
    );
    assert!(
        eventually(Duration::from_secs(20), || !k(&root, &["get", "ws", "alice-ws"])
            .status
            .success()),
        "the workspace was never deleted"
    );
    let _ = std::fs::remove_file(&tokens);
}
