//! RBAC through the real kubectl, with tokens of ServiceAccounts holding different Roles:
//! what `kubectl auth can-i` answers matches what requests actually do, resourceNames are
//! honoured on get, update, list and watch, status subresources, aggregated ClusterRoles,
//! escalation attempts are refused unless `escalate`/`bind` is granted, and impersonation.

use std::path::{Path, PathBuf};

use crate::auth_support::*;
use crate::common::{HUB, TestHub, sample};
use serde_json::Value;

const WS: &str = "root:team";

/// A ServiceAccount in `default` of the team workspace and a kubeconfig with its token.
fn account(hub: &TestHub, admin: &Path, name: &str) -> PathBuf {
    kubectl_ok(admin, &["create", "serviceaccount", name]);
    let token = create_token(admin, "default", name, &[]);
    hub.token_kubeconfig(name, &hub.workspace_url(WS), &token, Some("default"))
}

/// kubectl's `auth can-i` answer.
fn can_i(kubeconfig: &Path, verb: &str, what: &str) -> bool {
    let out = kubectl(kubeconfig, &["auth", "can-i", verb, what]);
    let answer = stdout(&out).trim().to_string();
    assert!(
        answer == "yes" || answer == "no",
        "auth can-i {verb} {what}: {answer} / {}",
        stderr(&out)
    );
    answer == "yes"
}

/// Whether the real request went through (a NotFound still means it was allowed).
fn really_can(kubeconfig: &Path, args: &[&str]) -> bool {
    let out = kubectl(kubeconfig, args);
    if out.status.success() {
        return true;
    }
    let err = stderr(&out);
    assert!(
        err.contains("forbidden") || err.contains("NotFound") || err.contains("not found"),
        "kubectl {args:?}: unexpected failure: {err}"
    );
    !err.contains("forbidden")
}

#[tokio::test]
async fn service_accounts_get_what_their_roles_say() {
    let hub = TestHub::start(HUB);
    create_workspace(&hub, "team").await;
    let admin = admin_kubeconfig_for(&hub, WS);
    kubectl_ok(&admin, &["create", "configmap", "allowed", "--from-literal=k=v"]);
    kubectl_ok(&admin, &["create", "configmap", "other", "--from-literal=k=v"]);
    kubectl_ok(&admin, &["create", "secret", "generic", "s", "--from-literal=k=v"]);

    // reader: read configmaps. writer: the aggregated `edit`. named: one configmap only.
    let reader = account(&hub, &admin, "reader");
    kubectl_ok(
        &admin,
        &[
            "create",
            "role",
            "cm-reader",
            "--verb=get,list,watch",
            "--resource=configmaps",
        ],
    );
    kubectl_ok(
        &admin,
        &[
            "create",
            "rolebinding",
            "reader",
            "--role=cm-reader",
            "--serviceaccount=default:reader",
        ],
    );
    let writer = account(&hub, &admin, "writer");
    kubectl_ok(
        &admin,
        &[
            "create",
            "rolebinding",
            "writer",
            "--clusterrole=edit",
            "--serviceaccount=default:writer",
        ],
    );
    let named = account(&hub, &admin, "named");
    kubectl_ok(
        &admin,
        &[
            "create",
            "role",
            "one-cm",
            "--verb=get,list,watch,update,patch",
            "--resource=configmaps",
            "--resource-name=allowed",
        ],
    );
    kubectl_ok(
        &admin,
        &[
            "create",
            "rolebinding",
            "named",
            "--role=one-cm",
            "--serviceaccount=default:named",
        ],
    );
    let nobody = account(&hub, &admin, "nobody");

    // Basic expectations.
    assert!(kubectl_ok(&reader, &["get", "configmaps"]).contains("allowed"));
    let err = kubectl_forbidden(&reader, &["create", "configmap", "x"]);
    assert!(
        err.contains(r#"User "system:serviceaccount:default:reader" cannot create resource "configmaps" in API group "" in the namespace "default""#),
        "{err}"
    );
    kubectl_forbidden(&reader, &["get", "secrets"]);
    kubectl_forbidden(&nobody, &["get", "configmaps"]);
    kubectl_ok(&writer, &["create", "configmap", "by-writer"]);
    kubectl_ok(
        &writer,
        &["create", "secret", "generic", "by-writer", "--from-literal=a=b"],
    );
    assert!(kubectl_ok(&writer, &["get", "secrets"]).contains("by-writer"));
    kubectl_forbidden(&writer, &["create", "role", "r", "--verb=get", "--resource=configmaps"]);
    kubectl_forbidden(&writer, &["get", "namespaces"]);

    // whoami and --list.
    let whoami = kubectl_ok(&reader, &["auth", "whoami"]);
    assert!(whoami.contains("system:serviceaccount:default:reader"), "{whoami}");
    assert!(whoami.contains("system:serviceaccounts:default"), "{whoami}");
    let list = kubectl_ok(&reader, &["auth", "can-i", "--list"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("configmaps") && l.contains("[get list watch]")),
        "{list}"
    );
    assert!(!list.contains("secrets"), "{list}");
    let named_list = kubectl_ok(&named, &["auth", "can-i", "--list"]);
    assert!(
        named_list
            .lines()
            .any(|l| l.starts_with("configmaps") && l.contains("[allowed]")),
        "{named_list}"
    );

    // can-i agrees with reality, for every account and request.
    for (who, kubeconfig) in [
        ("reader", &reader),
        ("writer", &writer),
        ("named", &named),
        ("nobody", &nobody),
    ] {
        kubectl_ok(&admin, &["create", "configmap", &format!("victim-{who}")]);
        let victim = format!("victim-{who}");
        let checks: Vec<(&str, String, Vec<String>)> = vec![
            (
                "get",
                "configmaps/allowed".into(),
                vec!["get".into(), "configmap".into(), "allowed".into()],
            ),
            (
                "get",
                "configmaps/other".into(),
                vec!["get".into(), "configmap".into(), "other".into()],
            ),
            ("list", "configmaps".into(), vec!["get".into(), "configmaps".into()]),
            (
                "create",
                "configmaps".into(),
                vec!["create".into(), "configmap".into(), format!("new-{who}")],
            ),
            (
                "patch",
                "configmaps/allowed".into(),
                vec![
                    "label".into(),
                    "configmap".into(),
                    "allowed".into(),
                    format!("by={who}"),
                    "--overwrite".into(),
                ],
            ),
            (
                "delete",
                format!("configmaps/{victim}"),
                vec!["delete".into(), "configmap".into(), victim.clone()],
            ),
            ("list", "secrets".into(), vec!["get".into(), "secrets".into()]),
            (
                "get",
                "secrets/s".into(),
                vec!["get".into(), "secret".into(), "s".into()],
            ),
            (
                "create",
                "serviceaccounts".into(),
                vec!["create".into(), "serviceaccount".into(), format!("sa-{who}")],
            ),
            (
                "list",
                "serviceaccounts".into(),
                vec!["get".into(), "serviceaccounts".into()],
            ),
            ("list", "roles".into(), vec!["get".into(), "roles".into()]),
        ];
        for (verb, what, action) in checks {
            let expected = can_i(kubeconfig, verb, &what);
            let args: Vec<&str> = action.iter().map(String::as_str).collect();
            let actual = really_can(kubeconfig, &args);
            assert_eq!(
                expected, actual,
                "{who}: auth can-i {verb} {what} said {expected}, the request did {actual}"
            );
        }
    }

    // resourceNames: get, update (replace and patch), list and watch pinned to the name.
    kubectl_ok(&named, &["get", "configmap", "allowed"]);
    kubectl_forbidden(&named, &["get", "configmap", "other"]);
    kubectl_forbidden(&named, &["get", "configmaps"]);
    assert!(
        kubectl_ok(
            &named,
            &["get", "configmaps", "--field-selector", "metadata.name=allowed"]
        )
        .contains("allowed")
    );
    kubectl_forbidden(
        &named,
        &["get", "configmaps", "--field-selector", "metadata.name=other"],
    );
    let yaml = kubectl_ok(&named, &["get", "configmap", "allowed", "-o", "yaml"]);
    kubectl_stdin_ok(&named, &["replace", "-f", "-"], &yaml.replace("k: v", "k: replaced"));
    let other_yaml = kubectl_ok(&admin, &["get", "configmap", "other", "-o", "yaml"]);
    let out = kubectl_stdin(
        &named,
        &["replace", "-f", "-"],
        &other_yaml.replace("k: v", "k: replaced"),
    );
    assert!(
        !out.status.success() && stderr(&out).contains("forbidden"),
        "{}",
        stderr(&out)
    );
    kubectl_forbidden(&named, &["label", "configmap", "other", "x=y"]);
    let token = create_token(&admin, "default", "named", &[]);
    let client = client_with_token(&hub, Some(&token)).await;
    let base = format!("/clusters/{WS}/api/v1/namespaces/default/configmaps");
    let (status, body) = send(
        &client,
        "GET",
        &format!("{base}?watch=1&fieldSelector=metadata.name%3Dallowed&timeoutSeconds=1"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"ADDED\"") && body.contains("\"allowed\""), "{body}");
    assert!(!body.contains("\"other\""), "{body}");
    // The old path form, the name in the path: authorized for that name, so it streams
    // that object alone.
    let (status, body) = send(
        &client,
        "GET",
        &format!("/clusters/{WS}/api/v1/watch/namespaces/default/configmaps/allowed?timeoutSeconds=1"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"allowed\""), "{body}");
    assert!(!body.contains("\"other\""), "{body}");
    let (status, body) = send(
        &client,
        "GET",
        &format!("{base}/allowed?watch=1&timeoutSeconds=1"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"allowed\"") && !body.contains("\"other\""), "{body}");
    for path in [
        format!("{base}?watch=1&timeoutSeconds=1"),
        format!("{base}?watch=1&fieldSelector=metadata.name%3Dother&timeoutSeconds=1"),
    ] {
        let (status, body) = send(&client, "GET", &path, None).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert!(!body.contains("\"data\""), "{body}");
    }
    assert!(can_i(&named, "watch", "configmaps/allowed"));
    assert!(!can_i(&named, "watch", "configmaps"));
}

#[tokio::test]
async fn status_subresources_and_aggregation() {
    let hub = TestHub::start(HUB);
    create_workspace(&hub, "team").await;
    let admin = admin_kubeconfig_for(&hub, WS);
    kubectl_ok(&admin, &["create", "-f", &sample("widget-crd.yaml")]);
    kubectl_ok(
        &admin,
        &[
            "wait",
            "--for=condition=Established",
            "crd/widgets.example.faros.sh",
            "--timeout=30s",
        ],
    );
    kubectl_ok(&admin, &["create", "-f", &sample("widget.yaml")]);

    // Only the status of widgets.
    let reporter = account(&hub, &admin, "reporter");
    kubectl_ok(
        &admin,
        &[
            "create",
            "role",
            "widget-status",
            "--verb=get,patch,update",
            "--resource=widgets.example.faros.sh/status",
        ],
    );
    kubectl_ok(
        &admin,
        &[
            "create",
            "role",
            "widget-get",
            "--verb=get",
            "--resource=widgets.example.faros.sh",
        ],
    );
    kubectl_ok(
        &admin,
        &[
            "create",
            "rolebinding",
            "reporter",
            "--role=widget-status",
            "--serviceaccount=default:reporter",
        ],
    );
    kubectl_ok(
        &admin,
        &[
            "create",
            "rolebinding",
            "reporter-get",
            "--role=widget-get",
            "--serviceaccount=default:reporter",
        ],
    );
    let status_patch = r#"{"status":{"conditions":[{"type":"Ready","status":"True"}]}}"#;
    kubectl_ok(
        &reporter,
        &[
            "patch",
            "widget",
            "widget-1",
            "--subresource=status",
            "--type=merge",
            "-p",
            status_patch,
        ],
    );
    kubectl_forbidden(
        &reporter,
        &[
            "patch",
            "widget",
            "widget-1",
            "--type=merge",
            "-p",
            r#"{"spec":{"size":9}}"#,
        ],
    );
    let out = kubectl(
        &reporter,
        &[
            "auth",
            "can-i",
            "patch",
            "widgets.example.faros.sh",
            "--subresource=status",
        ],
    );
    assert_eq!(stdout(&out).trim(), "yes");
    let out = kubectl(&reporter, &["auth", "can-i", "patch", "widgets.example.faros.sh"]);
    assert_eq!(stdout(&out).trim(), "no");

    // `*/status` in any group.
    let any_status = account(&hub, &admin, "any-status");
    kubectl_stdin_ok(
        &admin,
        &["apply", "-f", "-"],
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: any-status}\nrules:\n- apiGroups: ['*']\n  resources: ['*/status']\n  verbs: [get, patch]\n",
    );
    kubectl_ok(
        &admin,
        &[
            "create",
            "rolebinding",
            "any-status",
            "--role=any-status",
            "--serviceaccount=default:any-status",
        ],
    );
    kubectl_ok(
        &any_status,
        &[
            "patch",
            "widget",
            "widget-1",
            "--subresource=status",
            "--type=merge",
            "-p",
            status_patch,
        ],
    );
    kubectl_forbidden(&any_status, &["get", "widget", "widget-1"]);

    // Aggregation: a ClusterRole labelled for `view` extends everyone bound to view, edit
    // and admin, at once.
    let viewer = account(&hub, &admin, "viewer");
    kubectl_ok(
        &admin,
        &[
            "create",
            "rolebinding",
            "viewer",
            "--clusterrole=view",
            "--serviceaccount=default:viewer",
        ],
    );
    kubectl_ok(&viewer, &["get", "configmaps"]);
    kubectl_forbidden(&viewer, &["get", "widgets"]);
    kubectl_stdin_ok(
        &admin,
        &["apply", "-f", "-"],
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: widget-viewer\n  labels: {rbac.authorization.k8s.io/aggregate-to-view: 'true'}\nrules:\n- apiGroups: [example.faros.sh]\n  resources: [widgets]\n  verbs: [get, list, watch]\n",
    );
    assert!(kubectl_ok(&viewer, &["get", "widgets"]).contains("widget-1"));
    let admin_sa = account(&hub, &admin, "ns-admin");
    kubectl_ok(
        &admin,
        &[
            "create",
            "rolebinding",
            "ns-admin",
            "--clusterrole=admin",
            "--serviceaccount=default:ns-admin",
        ],
    );
    assert!(kubectl_ok(&admin_sa, &["get", "widgets"]).contains("widget-1"));
    // admin (through edit) writes secrets, and manages Roles in its namespace.
    kubectl_ok(
        &admin_sa,
        &["create", "secret", "generic", "by-ns-admin", "--from-literal=a=b"],
    );
    kubectl_ok(
        &admin_sa,
        &["create", "role", "cm-get", "--verb=get", "--resource=configmaps"],
    );
    kubectl_forbidden(&admin_sa, &["get", "namespaces"]);
}

#[tokio::test]
async fn escalation_is_refused() {
    let hub = TestHub::start(HUB);
    create_workspace(&hub, "team").await;
    let admin = admin_kubeconfig_for(&hub, WS);
    let roler = account(&hub, &admin, "roler");
    let reader = account(&hub, &admin, "reader");
    kubectl_ok(&admin, &["create", "configmap", "c1"]);
    kubectl_stdin_ok(
        &admin,
        &["apply", "-f", "-"],
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: role-manager}\nrules:\n- apiGroups: [rbac.authorization.k8s.io]\n  resources: [roles, rolebindings]\n  verbs: [create, get, list, update, patch, delete]\n- apiGroups: ['']\n  resources: [configmaps]\n  verbs: [get, list]\n",
    );
    kubectl_ok(
        &admin,
        &[
            "create",
            "rolebinding",
            "roler",
            "--role=role-manager",
            "--serviceaccount=default:roler",
        ],
    );

    // (`*` as verb would include `escalate` and `bind`, as in Kubernetes.)
    // A Role granting only what roler holds is fine; more is not.
    kubectl_ok(
        &roler,
        &["create", "role", "cm-get", "--verb=get", "--resource=configmaps"],
    );
    let err = kubectl_forbidden(
        &roler,
        &["create", "role", "secrets-get", "--verb=get", "--resource=secrets"],
    );
    assert!(
        err.contains("attempting to grant RBAC permissions not currently held"),
        "{err}"
    );
    assert!(
        err.contains(r#"{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}"#),
        "{err}"
    );
    // Nor can an existing Role be widened.
    let yaml = kubectl_ok(&roler, &["get", "role", "cm-get", "-o", "yaml"]);
    let out = kubectl_stdin(
        &roler,
        &["replace", "-f", "-"],
        &yaml.replace("- configmaps", "- configmaps\n  - secrets"),
    );
    assert!(stderr(&out).contains("attempting to grant"), "{}", stderr(&out));
    // Binding a role roler holds entirely is fine; binding more is not.
    kubectl_ok(
        &roler,
        &[
            "create",
            "rolebinding",
            "reader-cm",
            "--role=cm-get",
            "--serviceaccount=default:reader",
        ],
    );
    kubectl_ok(&reader, &["get", "configmap", "c1"]);
    let err = kubectl_forbidden(
        &roler,
        &[
            "create",
            "rolebinding",
            "self-edit",
            "--clusterrole=edit",
            "--serviceaccount=default:roler",
        ],
    );
    assert!(
        err.contains("attempting to grant RBAC permissions not currently held"),
        "{err}"
    );
    let err = kubectl_forbidden(
        &roler,
        &[
            "create",
            "rolebinding",
            "self-admin",
            "--clusterrole=cluster-admin",
            "--serviceaccount=default:roler",
        ],
    );
    assert!(err.contains("attempting to grant"), "{err}");
    // ClusterRoles are out of reach altogether.
    kubectl_forbidden(
        &roler,
        &["create", "clusterrole", "cr", "--verb=get", "--resource=configmaps"],
    );

    // `bind` on the view ClusterRole lets roler hand out view without holding it.
    kubectl_stdin_ok(
        &admin,
        &["apply", "-f", "-"],
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: bind-view}\nrules:\n- apiGroups: [rbac.authorization.k8s.io]\n  resources: [clusterroles]\n  resourceNames: [view]\n  verbs: [bind]\n",
    );
    kubectl_ok(
        &admin,
        &[
            "create",
            "rolebinding",
            "roler-bind",
            "--role=bind-view",
            "--serviceaccount=default:roler",
        ],
    );
    kubectl_ok(
        &roler,
        &[
            "create",
            "rolebinding",
            "reader-view",
            "--clusterrole=view",
            "--serviceaccount=default:reader",
        ],
    );
    assert!(kubectl_ok(&reader, &["get", "serviceaccounts"]).contains("roler"));
    kubectl_forbidden(
        &roler,
        &[
            "create",
            "rolebinding",
            "reader-edit",
            "--clusterrole=edit",
            "--serviceaccount=default:reader",
        ],
    );

    // `escalate` on roles lets roler write any Role.
    kubectl_stdin_ok(
        &admin,
        &["apply", "-f", "-"],
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: escalate}\nrules:\n- apiGroups: [rbac.authorization.k8s.io]\n  resources: [roles]\n  verbs: [escalate]\n",
    );
    kubectl_ok(
        &admin,
        &[
            "create",
            "rolebinding",
            "roler-escalate",
            "--role=escalate",
            "--serviceaccount=default:roler",
        ],
    );
    kubectl_ok(
        &roler,
        &["create", "role", "secrets-get", "--verb=get", "--resource=secrets"],
    );
    // ... but binding it still needs the permissions or `bind`.
    kubectl_forbidden(
        &roler,
        &[
            "create",
            "rolebinding",
            "reader-secrets",
            "--role=secrets-get",
            "--serviceaccount=default:reader",
        ],
    );

    // Impersonation needs `impersonate`; with it on one ServiceAccount, only that one.
    kubectl_forbidden(
        &roler,
        &["get", "configmaps", "--as=system:serviceaccount:default:reader"],
    );
    kubectl_stdin_ok(
        &admin,
        &["apply", "-f", "-"],
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: impersonate-reader}\nrules:\n- apiGroups: ['']\n  resources: [serviceaccounts]\n  resourceNames: [reader]\n  verbs: [impersonate]\n",
    );
    kubectl_ok(
        &admin,
        &[
            "create",
            "rolebinding",
            "roler-impersonate",
            "--role=impersonate-reader",
            "--serviceaccount=default:roler",
        ],
    );
    let whoami = kubectl_ok(&roler, &["auth", "whoami", "--as=system:serviceaccount:default:reader"]);
    assert!(whoami.contains("system:serviceaccount:default:reader"), "{whoami}");
    assert!(
        kubectl_ok(
            &roler,
            &["get", "serviceaccounts", "--as=system:serviceaccount:default:reader"]
        )
        .contains("reader")
    );
    kubectl_forbidden(
        &roler,
        &["get", "configmaps", "--as=system:serviceaccount:default:writer"],
    );
    let err = kubectl_forbidden(&roler, &["get", "configmaps", "--as=alice"]);
    assert!(err.contains("cannot impersonate resource \"users\""), "{err}");
}

#[test]
fn kubectl_127_can_i_and_whoami() {
    let hub = TestHub::start(HUB);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(create_workspace(&hub, "team"));
    let admin = admin_kubeconfig_for(&hub, WS);
    let reader = account(&hub, &admin, "reader");
    kubectl_ok(
        &admin,
        &[
            "create",
            "role",
            "cm-reader",
            "--verb=get,list,watch",
            "--resource=configmaps",
        ],
    );
    kubectl_ok(
        &admin,
        &[
            "create",
            "rolebinding",
            "reader",
            "--role=cm-reader",
            "--serviceaccount=default:reader",
        ],
    );
    // The oldest kubectl when it is here: its `auth can-i` and discovery differ most.
    let old = ["1.27", V]
        .into_iter()
        .find(|v| faros_testkit::kubectl::installed(v))
        .unwrap_or(V);
    for (args, expected) in [
        (vec!["auth", "can-i", "list", "configmaps"], "yes"),
        (vec!["auth", "can-i", "create", "configmaps"], "no"),
        (vec!["auth", "can-i", "get", "secrets"], "no"),
    ] {
        let out = crate::common::kubectl_with(&reader, old, &args, None);
        assert_eq!(stdout(&out).trim(), expected, "{args:?}: {}", stderr(&out));
    }
    let out = crate::common::kubectl_with(&reader, old, &["get", "configmaps"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = crate::common::kubectl_with(&reader, old, &["get", "secrets"], None);
    assert!(stderr(&out).contains("forbidden"), "{}", stderr(&out));
    let parsed: Value = serde_json::from_str(&kubectl_ok(&admin, &["get", "sa", "reader", "-o", "json"])).unwrap();
    assert_eq!(parsed["metadata"]["name"], "reader");
}
