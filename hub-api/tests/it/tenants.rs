//! Tenants: whoever creates a workspace is its admin and can do anything in it, and nothing
//! in a neighbour's; sharing a workspace is a binding away, and revoking it is immediate.

use std::path::PathBuf;

use crate::auth_support::*;
use crate::common::{HUB, TestHub, sample};
use serde_json::{Value, json};

fn token_file(hub_files: &std::path::Path) -> PathBuf {
    let path = hub_files.join("tokens.csv");
    std::fs::write(&path, "alice-token,alice,1001,tenants\nbob-token,bob,1002,tenants\n").unwrap();
    path
}

#[tokio::test]
async fn tenant_admins_own_their_workspace_and_nothing_else() {
    let files = std::env::temp_dir().join(format!("faros-tenants-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&files).unwrap();
    let tokens = token_file(&files);
    let hub = TestHub::start_with_args(HUB, true, &["--token-auth-file", tokens.to_str().unwrap()]);

    // Without any binding in root, alice cannot even look.
    let alice_root = hub.token_kubeconfig("alice-root", &hub.url(), "alice-token", None);
    // (kubectl reports a refused discovery request as "Forbidden: unknown"; the message
    // itself is checked on the raw response.)
    kubectl_forbidden(&alice_root, &["get", "namespaces"]);
    let alice = client_with_token(&hub, Some("alice-token")).await;
    let (status, text) = send(&alice, "GET", "/api/v1/namespaces", None).await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("workspace access not permitted"), "{text}");

    // The platform admin lets tenants create workspaces in root.
    let_group_create_workspaces(&hub, "tenants");

    // Each tenant creates a workspace through the API; a forged owner is overwritten.
    let bob = client_with_token(&hub, Some("bob-token")).await;
    let forged = json!({"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace",
        "metadata": {"name": "alice-ws", "annotations": {"tenancy.kcp.io/owner": "{\"username\":\"bob\"}"}}});
    let (status, text) = send(
        &alice,
        "POST",
        "/apis/tenancy.kcp.io/v1alpha1/workspaces",
        Some(&forged),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    wait_ready(&alice, "alice-ws").await;
    create_workspace_as(&bob, "bob-ws").await;
    let ws: Value = admin_ok(&hub, "GET", "/apis/tenancy.kcp.io/v1alpha1/workspaces/alice-ws", None).await;
    let owner: Value =
        serde_json::from_str(ws["metadata"]["annotations"]["tenancy.kcp.io/owner"].as_str().unwrap()).unwrap();
    assert_eq!(owner["username"], "alice");

    // In her workspace alice can do anything.
    let a = hub.token_kubeconfig(
        "alice-ws",
        &hub.workspace_url("root:alice-ws"),
        "alice-token",
        Some("default"),
    );
    assert_eq!(kubectl_ok(&a, &["auth", "can-i", "*", "*"]).trim(), "yes");
    kubectl_ok(&a, &["create", "namespace", "apps"]);
    kubectl_ok(&a, &["create", "configmap", "cm", "-n", "apps", "--from-literal=a=b"]);
    kubectl_ok(&a, &["create", "secret", "generic", "s", "--from-literal=a=b"]);
    kubectl_ok(&a, &["create", "serviceaccount", "robot"]);
    kubectl_ok(&a, &["create", "clusterrole", "anything", "--verb=*", "--resource=*"]);
    kubectl_ok(
        &a,
        &[
            "create",
            "clusterrolebinding",
            "robot",
            "--clusterrole=edit",
            "--serviceaccount=default:robot",
        ],
    );
    kubectl_ok(&a, &["create", "-f", &sample("widget-crd.yaml")]);
    kubectl_ok(
        &a,
        &[
            "wait",
            "--for=condition=Established",
            "crd/widgets.example.faros.sh",
            "--timeout=30s",
        ],
    );
    kubectl_ok(&a, &["create", "-f", &sample("widget.yaml")]);
    assert!(kubectl_ok(&a, &["get", "widgets"]).contains("widget-1"));
    assert!(kubectl_ok(&a, &["get", "secrets"]).contains("s"));
    // ... including nested workspaces, which she then owns too.
    let alice_ws = client_with_token(&hub, Some("alice-token")).await;
    let inner = json!({"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace", "metadata": {"name": "inner"}});
    let (status, text) = send(
        &alice_ws,
        "POST",
        "/clusters/root:alice-ws/apis/tenancy.kcp.io/v1alpha1/workspaces",
        Some(&inner),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    let inner_kc = hub.token_kubeconfig("inner", &hub.workspace_url("root:alice-ws:inner"), "alice-token", None);
    let mut ready = false;
    for _ in 0..200 {
        let out = kubectl(&a, &["get", "workspace", "inner", "-o", "jsonpath={.status.phase}"]);
        if stdout(&out) == "Ready" {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ready, "the nested workspace never became Ready");
    kubectl_ok(&inner_kc, &["create", "configmap", "deep"]);
    // Her workspace's ServiceAccount tokens work there.
    let robot_token = create_token(&a, "default", "robot", &[]);
    let robot = hub.token_kubeconfig(
        "robot",
        &hub.workspace_url("root:alice-ws"),
        &robot_token,
        Some("default"),
    );
    kubectl_ok(&robot, &["get", "configmaps"]);

    // Nothing in bob's workspace, and bob's looks exactly like one that does not exist.
    let alice_in_bob = hub.token_kubeconfig(
        "alice-in-bob",
        &hub.workspace_url("root:bob-ws"),
        "alice-token",
        Some("default"),
    );
    for args in [
        vec!["get", "namespaces"],
        vec!["get", "secrets"],
        vec!["create", "configmap", "x"],
        vec!["auth", "can-i", "get", "pods"],
    ] {
        kubectl_forbidden(&alice_in_bob, &args);
    }
    for (client, token) in [(&alice, "alice"), (&bob, "bob")] {
        let (s1, known) = send(client, "GET", "/clusters/root:bob-ws/api/v1/namespaces", None).await;
        let (s2, unknown) = send(client, "GET", "/clusters/root:nope/api/v1/namespaces", None).await;
        if token == "alice" {
            assert_eq!(
                (s1, &known),
                (s2, &unknown),
                "existence of a neighbour's workspace leaks"
            );
        }
        assert_eq!(s2, 403);
        assert!(unknown.contains("workspace access not permitted"), "{unknown}");
    }
    let (status, _) = send(&alice, "GET", "/clusters/root:bob-ws:anything/api/v1/namespaces", None).await;
    assert_eq!(status, 403);
    // The robot's token works nowhere else either.
    let robot_in_bob = hub.token_kubeconfig(
        "robot-in-bob",
        &hub.workspace_url("root:bob-ws"),
        &robot_token,
        Some("default"),
    );
    kubectl_forbidden(&robot_in_bob, &["get", "configmaps"]);
    let robot_client = client_with_token(&hub, Some(&robot_token)).await;
    let (status, text) = send(
        &robot_client,
        "GET",
        "/clusters/root:bob-ws/api/v1/namespaces/default/configmaps",
        None,
    )
    .await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("workspace access not permitted"), "{text}");
    // Bob is as locked out of alice's workspace.
    let bob_in_alice = hub.token_kubeconfig(
        "bob-in-alice",
        &hub.workspace_url("root:alice-ws"),
        "bob-token",
        Some("default"),
    );
    kubectl_forbidden(&bob_in_alice, &["get", "secrets"]);

    // In root, alice may create workspaces and nothing more.
    let err = kubectl_forbidden(&alice_root, &["get", "secrets", "-n", "default"]);
    assert!(err.contains(r#"User "alice" cannot list resource "secrets""#), "{err}");
    kubectl_forbidden(
        &alice_root,
        &[
            "create",
            "clusterrolebinding",
            "me",
            "--clusterrole=cluster-admin",
            "--user=alice",
        ],
    );
    // Workspace admins cannot step out by impersonating the masters group.
    let err = kubectl_forbidden(&a, &["get", "namespaces", "--as=alice", "--as-group=system:masters"]);
    assert!(err.contains("cannot impersonate"), "{err}");
    // ... but may impersonate their workspace's identities (the impersonated identity must
    // itself be allowed into the workspace).
    let whoami = kubectl_ok(&a, &["auth", "whoami", "--as=system:serviceaccount:default:robot"]);
    assert!(whoami.contains("system:serviceaccount:default:robot"), "{whoami}");
    assert!(
        !kubectl(&a, &["auth", "whoami", "--as=someone", "--as-group=tenants"])
            .status
            .success()
    );

    // Sharing: a binding in alice's workspace lets bob in, at once; removing it shuts him out.
    kubectl_ok(
        &a,
        &[
            "create",
            "rolebinding",
            "bob-view",
            "--clusterrole=view",
            "--user=bob",
            "-n",
            "apps",
        ],
    );
    assert!(kubectl_ok(&bob_in_alice, &["get", "configmaps", "-n", "apps"]).contains("cm"));
    kubectl_forbidden(&bob_in_alice, &["get", "secrets", "-n", "apps"]);
    kubectl_forbidden(&bob_in_alice, &["get", "configmaps", "-n", "default"]);
    kubectl_ok(&a, &["delete", "rolebinding", "bob-view", "-n", "apps"]);
    kubectl_forbidden(&bob_in_alice, &["get", "configmaps", "-n", "apps"]);
    let (status, text) = send(
        &bob,
        "GET",
        "/clusters/root:alice-ws/api/v1/namespaces/apps/configmaps",
        None,
    )
    .await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("workspace access not permitted"), "{text}");

    // Deleting alice's ownership binding revokes her admin rights too.
    let admin_a = admin_kubeconfig_for(&hub, "root:alice-ws");
    kubectl_ok(&admin_a, &["delete", "clusterrolebinding", "workspace-admin"]);
    kubectl_forbidden(&a, &["get", "configmaps"]);
    let _ = std::fs::remove_dir_all(&files);
}

/// The default policy (`admin`, `edit`, `view`, the `system:*` roles and bindings) is the
/// hub's, shared by every workspace rather than copied into it: a workspace lists only its own
/// RBAC objects, yet binding the defaults works; a workspace's own ClusterRole of the same name
/// wins there, and deleting it brings the default back; the defaults cannot be deleted.
#[tokio::test]
async fn the_default_policy_is_shared_not_copied() {
    let files = std::env::temp_dir().join(format!("faros-tenants-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&files).unwrap();
    let tokens = token_file(&files);
    let hub = TestHub::start_with_args(HUB, true, &["--token-auth-file", tokens.to_str().unwrap()]);
    let_group_create_workspaces(&hub, "tenants");
    let alice = client_with_token(&hub, Some("alice-token")).await;
    create_workspace_as(&alice, "shared-policy").await;
    let url = hub.workspace_url("root:shared-policy");
    let a = hub.token_kubeconfig("alice-sp", &url, "alice-token", Some("default"));
    let b = hub.token_kubeconfig("bob-sp", &url, "bob-token", Some("default"));

    // Stored in the workspace: the creator's binding, and no copy of the defaults.
    assert_eq!(kubectl_ok(&a, &["get", "clusterroles", "-o", "name"]).trim(), "");
    assert_eq!(
        kubectl_ok(&a, &["get", "clusterrolebindings", "-o", "name"]).trim(),
        "clusterrolebinding.rbac.authorization.k8s.io/workspace-admin"
    );
    let can_i = |kubeconfig: &std::path::Path, verb: &str, resource: &str| {
        let out = kubectl(kubeconfig, &["auth", "can-i", verb, resource, "-n", "default"]);
        stdout(&out).trim().to_string()
    };

    // Binding the shared `view` lets bob in, with exactly what `view` grants.
    kubectl_forbidden(&b, &["get", "configmaps"]);
    kubectl_ok(
        &a,
        &["create", "rolebinding", "bob-view", "--clusterrole=view", "--user=bob"],
    );
    kubectl_ok(&a, &["create", "configmap", "cm", "--from-literal=a=b"]);
    assert!(kubectl_ok(&b, &["get", "configmaps"]).contains("cm"));
    assert_eq!(can_i(&b, "list", "configmaps"), "yes");
    assert_eq!(can_i(&b, "create", "configmaps"), "no");
    assert_eq!(can_i(&b, "list", "secrets"), "no");
    // The shared bindings still give discovery and self-review to everyone who may enter.
    let rules = kubectl_ok(&b, &["auth", "can-i", "--list", "-n", "default"]);
    assert!(
        rules.contains("selfsubjectaccessreviews.authorization.k8s.io") && rules.contains("[/apis/*]"),
        "{rules}"
    );

    // Her own `view` overrides the shared one in her workspace only.
    kubectl_ok(
        &a,
        &["create", "clusterrole", "view", "--verb=list", "--resource=secrets"],
    );
    assert_eq!(can_i(&b, "list", "secrets"), "yes");
    assert_eq!(can_i(&b, "list", "configmaps"), "no");
    assert!(kubectl_ok(&a, &["get", "clusterrole", "view", "-o", "yaml"]).contains("secrets"));
    kubectl_ok(&a, &["delete", "clusterrole", "view"]);
    assert_eq!(can_i(&b, "list", "configmaps"), "yes");
    assert_eq!(can_i(&b, "list", "secrets"), "no");

    // The shared policy is nobody's to delete or edit from a workspace.
    let out = kubectl(&a, &["delete", "clusterrole", "admin"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("NotFound"), "{}", stderr(&out));

    // A tenant naming a taken logical cluster gets a fresh one: only masters choose.
    let path = "/apis/tenancy.kcp.io/v1alpha1/workspaces";
    let taken = admin_ok(&hub, "GET", &format!("{path}/shared-policy"), None).await["spec"]["cluster"].clone();
    let stealing = json!({"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace",
        "metadata": {"name": "stealing"}, "spec": {"cluster": taken}});
    let (status, text) = send(&alice, "POST", path, Some(&stealing)).await;
    assert_eq!(status, 201, "{text}");
    let created: Value = serde_json::from_str(&text).unwrap();
    assert!(
        created["spec"]["cluster"]
            .as_str()
            .is_some_and(|c| c.len() == 16 && *c != taken)
    );
    let _ = std::fs::remove_dir_all(&files);
}
