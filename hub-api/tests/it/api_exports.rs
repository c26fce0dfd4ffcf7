//! APIExports seen by their owner: a provider exports a resource with permission claims;
//! consumers bind it (accepting some claims, rejecting others, or not binding at all). The
//! provider, with no rights of its own in any consumer workspace, reaches exactly what the
//! bindings share through the export's view — with kube-rs and kubectl — and nothing else.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::auth_support::*;
use crate::common::{HUB, TestDir, TestHub};
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use serde_json::{Value, json};

const EXPORT: &str = "widgets.acme.io";

fn widget_resource() -> ApiResource {
    ApiResource {
        group: "acme.io".into(),
        version: "v1".into(),
        api_version: "acme.io/v1".into(),
        kind: "Widget".into(),
        plural: "widgets".into(),
    }
}

fn configmap_resource() -> ApiResource {
    ApiResource {
        group: String::new(),
        version: "v1".into(),
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        plural: "configmaps".into(),
    }
}

/// A kube client authenticating with `token` against `url` (a workspace or view URL).
async fn client_at(hub: &TestHub, url: &str, token: &str) -> kube::Client {
    let mut config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(hub.kubeconfig()).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    config.cluster_url = url.parse().unwrap();
    config.auth_info = kube::config::AuthInfo::default();
    config.auth_info.token = Some(token.to_string().into());
    kube::Client::try_from(config).unwrap()
}

async fn admin_at(hub: &TestHub, workspace: &str) -> kube::Client {
    let mut config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(hub.kubeconfig()).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    config.cluster_url = hub.workspace_url(workspace).parse().unwrap();
    kube::Client::try_from(config).unwrap()
}

fn binding(claims: &[(&str, &str, &str)]) -> Value {
    let claims: Vec<Value> = claims
        .iter()
        .map(|(group, resource, state)| json!({"group": group, "resource": resource, "state": state}))
        .collect();
    json!({
        "apiVersion": "apis.kcp.io/v1alpha1", "kind": "APIBinding",
        "metadata": {"name": "widgets"},
        "spec": {"reference": {"export": {"path": "root:provider", "name": EXPORT}}, "permissionClaims": claims},
    })
}

async fn wait_bound(client: &kube::Client) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, text) = send(client, "GET", "/apis/apis.kcp.io/v1alpha1/apibindings/widgets", None).await;
        if status == 200 {
            let binding: Value = serde_json::from_str(&text).unwrap();
            if binding["status"]["phase"] == "Bound" {
                return binding;
            }
        }
        assert!(std::time::Instant::now() < deadline, "binding never Bound: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sets the answer of the binding in `client`'s workspace to the ConfigMap claim.
async fn answer_claim(client: &kube::Client, state: &str) {
    let bindings: Api<DynamicObject> = Api::all_with(client.clone(), &binding_resource());
    let claims = json!({"spec": {"permissionClaims": [{"group": "", "resource": "configmaps", "state": state}]}});
    bindings
        .patch("widgets", &PatchParams::default(), &Patch::Merge(claims))
        .await
        .unwrap();
}

fn binding_resource() -> ApiResource {
    ApiResource {
        group: "apis.kcp.io".into(),
        version: "v1alpha1".into(),
        api_version: "apis.kcp.io/v1alpha1".into(),
        kind: "APIBinding".into(),
        plural: "apibindings".into(),
    }
}

fn cluster_of(obj: &DynamicObject) -> String {
    obj.metadata.annotations.as_ref().unwrap()["kcp.io/cluster"].clone()
}

fn names(list: &[DynamicObject]) -> BTreeSet<String> {
    list.iter().map(|o| o.metadata.name.clone().unwrap()).collect()
}

/// Next watch event of `name`-labelled objects, or None after `wait`.
async fn next_event(
    stream: &mut (impl futures::Stream<Item = kube::Result<WatchEvent<DynamicObject>>> + Unpin),
    wait: Duration,
) -> Option<(String, String)> {
    loop {
        match tokio::time::timeout(wait, stream.next()).await {
            Ok(Some(Ok(WatchEvent::Added(o)))) => return Some(("ADDED".into(), o.metadata.name.unwrap())),
            Ok(Some(Ok(WatchEvent::Modified(o)))) => return Some(("MODIFIED".into(), o.metadata.name.unwrap())),
            Ok(Some(Ok(WatchEvent::Deleted(o)))) => return Some(("DELETED".into(), o.metadata.name.unwrap())),
            Ok(Some(Ok(WatchEvent::Bookmark(_)))) => continue,
            Ok(other) => panic!("watch ended: {other:?}"),
            Err(_) => return None,
        }
    }
}

/// The names of the next `count` events, which must all be of type `kind`.
async fn next_names(
    stream: &mut (impl futures::Stream<Item = kube::Result<WatchEvent<DynamicObject>>> + Unpin),
    count: usize,
    kind: &str,
) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for _ in 0..count {
        let (got, name) = next_event(stream, Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("{count} {kind} events expected"));
        assert_eq!(got, kind, "{name}");
        names.insert(name);
    }
    names
}

/// A ConfigMap labelled `app=demo`, as the scenario's watches select them.
fn demo_configmap(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"app": "demo"}}})
}

/// Everything the export scenario works with: a provider exporting widgets and claiming
/// ConfigMaps, Roles and RoleBindings; consumers c1 (accepts the claims), c2 (rejects them)
/// and c3 (does not bind), each with content; bob, a tenant of his own.
struct Scene {
    hub: TestHub,
    /// Dropped after the hub that writes into it.
    _files: TestDir,
    audit: std::path::PathBuf,
    provider_cluster: String,
    view_url: String,
    bob_ws: kube::Client,
    c1: kube::Client,
    c2: kube::Client,
    cluster1: String,
    cluster2: String,
}

impl Scene {
    async fn build() -> Scene {
        let files = TestDir::new("exports");
        let tokens = files.join("tokens.csv");
        std::fs::write(
            &tokens,
            "provider-token,provider,2001,tenants\nbob-token,bob,2002,tenants\n",
        )
        .unwrap();
        let audit = files.join("audit.log");
        let hub = TestHub::start_with_args(
            HUB,
            true,
            &[
                "--token-auth-file",
                tokens.to_str().unwrap(),
                "--audit-log-path",
                audit.to_str().unwrap(),
            ],
        );

        // The provider may create workspaces in root and owns the one it creates.
        let_group_create_workspaces(&hub, "tenants");
        let provider_root = client_with_token(&hub, Some("provider-token")).await;
        create_workspace_as(&provider_root, "provider").await;
        for name in ["c1", "c2", "c3"] {
            create_workspace(&hub, name).await;
        }

        // The provider exports widgets and claims ConfigMaps and Roles in binding workspaces.
        let provider = client_at(&hub, &hub.workspace_url("root:provider"), "provider-token").await;
        let schema = json!({
            "apiVersion": "apis.kcp.io/v1alpha1", "kind": "APIResourceSchema",
            "metadata": {"name": "v1.widgets.acme.io"},
            "spec": {"group": "acme.io", "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "subresources": {"status": {}},
                    "schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "properties": {"size": {"type": "integer"}}},
                        "status": {"type": "object", "properties": {"seen": {"type": "boolean"}}}}}}]},
        });
        let (status, text) = send(
            &provider,
            "POST",
            "/apis/apis.kcp.io/v1alpha1/apiresourceschemas",
            Some(&schema),
        )
        .await;
        assert_eq!(status, 201, "{text}");
        let export = json!({
            "apiVersion": "apis.kcp.io/v1alpha1", "kind": "APIExport",
            "metadata": {"name": EXPORT},
            "spec": {"latestResourceSchemas": ["v1.widgets.acme.io"], "permissionClaims": [
                {"group": "", "resource": "configmaps"},
                {"group": "rbac.authorization.k8s.io", "resource": "roles"},
                {"group": "rbac.authorization.k8s.io", "resource": "rolebindings"},
            ]},
        });
        let (status, text) = send(
            &provider,
            "POST",
            "/apis/apis.kcp.io/v1alpha1/apiexports",
            Some(&export),
        )
        .await;
        assert_eq!(status, 201, "{text}");
        let export: Value = serde_json::from_str(&text).unwrap();
        let provider_cluster = export["metadata"]["annotations"]["kcp.io/cluster"]
            .as_str()
            .unwrap()
            .to_string();
        let view_url = export["status"]["virtualWorkspaces"][0]["url"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            view_url,
            format!("{}/services/apiexport/{provider_cluster}/{EXPORT}", hub.url())
        );
        // bob, a tenant with a workspace of his own and nothing in root:provider.
        let bob = client_with_token(&hub, Some("bob-token")).await;
        create_workspace_as(&bob, "bob-ws").await;
        let bob_ws = client_at(&hub, &hub.workspace_url("root:bob-ws"), "bob-token").await;

        // c1 accepts both claims, c2 rejects them, c3 does not bind.
        let c1 = admin_at(&hub, "root:c1").await;
        let c2 = admin_at(&hub, "root:c2").await;
        let c3 = admin_at(&hub, "root:c3").await;
        let accepted = binding(&[
            ("", "configmaps", "Accepted"),
            ("rbac.authorization.k8s.io", "roles", "Accepted"),
            ("rbac.authorization.k8s.io", "rolebindings", "Accepted"),
        ]);
        let rejected = binding(&[
            ("", "configmaps", "Rejected"),
            ("rbac.authorization.k8s.io", "roles", "Rejected"),
        ]);
        let (status, text) = send(&c1, "POST", "/apis/apis.kcp.io/v1alpha1/apibindings", Some(&accepted)).await;
        assert_eq!(status, 201, "{text}");
        let (status, text) = send(&c2, "POST", "/apis/apis.kcp.io/v1alpha1/apibindings", Some(&rejected)).await;
        assert_eq!(status, 201, "{text}");
        let bound1 = wait_bound(&c1).await;
        let bound2 = wait_bound(&c2).await;
        assert_eq!(
            bound1["status"]["appliedPermissionClaims"].as_array().unwrap().len(),
            3,
            "{bound1}"
        );
        assert!(bound2["status"]["appliedPermissionClaims"].is_null(), "{bound2}");
        let invalid = binding(&[("", "configmaps", "Maybe")]);
        let (status, text) = send(&c3, "POST", "/apis/apis.kcp.io/v1alpha1/apibindings", Some(&invalid)).await;
        assert_eq!(status, 422, "{text}");
        assert!(text.contains("spec.permissionClaims[0].state"), "{text}");

        let cluster1 = bound1["metadata"]["annotations"]["kcp.io/cluster"]
            .as_str()
            .unwrap()
            .to_string();
        let cluster2 = bound2["metadata"]["annotations"]["kcp.io/cluster"]
            .as_str()
            .unwrap()
            .to_string();

        // Content in every consumer.
        for (client, n) in [(&c1, "1"), (&c2, "2"), (&c3, "3")] {
            let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": format!("cm{n}"), "labels": {"app": "demo"}}, "data": {"n": n}});
            let (status, text) = send(client, "POST", "/api/v1/namespaces/default/configmaps", Some(&cm)).await;
            assert_eq!(status, 201, "{text}");
            let secret =
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"k": "v"}});
            let (status, text) = send(client, "POST", "/api/v1/namespaces/default/secrets", Some(&secret)).await;
            assert_eq!(status, 201, "{text}");
        }
        for (client, n) in [(&c1, "1"), (&c2, "2")] {
            let widget = json!({"apiVersion": "acme.io/v1", "kind": "Widget",
                "metadata": {"name": format!("w{n}")}, "spec": {"size": 1}});
            let (status, text) = send(
                client,
                "POST",
                "/apis/acme.io/v1/namespaces/default/widgets",
                Some(&widget),
            )
            .await;
            assert_eq!(status, 201, "{text}");
        }
        Scene {
            hub,
            _files: files,
            audit,
            provider_cluster,
            view_url,
            bob_ws,
            c1,
            c2,
            cluster1,
            cluster2,
        }
    }
}

/// The provider's view reaches, in each workspace and across them, exactly what the
/// bindings share; the scenario's steps run in order on one hub, each building on the last.
#[tokio::test]
async fn export_owner_reaches_exactly_what_bindings_share() {
    let scene = Scene::build().await;
    binding_needs_bind_on_the_export(&scene).await;
    across_workspaces_the_view_lists_and_watches_what_is_shared(&scene).await;
    in_one_workspace_every_rest_verb_on_what_is_shared(&scene).await;
    other_workspaces_and_strangers_are_out_of_reach(&scene).await;
    kubectl_and_kube_rs_see_only_what_is_shared(&scene).await;
    a_binding_status_is_the_hubs(&scene).await;
    access_ends_when_sharing_ends(&scene).await;
    view_requests_are_audited(&scene).await;
}

/// Binding needs `bind` on the export, also through a workspace type's default bindings.
async fn binding_needs_bind_on_the_export(scene: &Scene) {
    let Scene { bob_ws, .. } = scene;
    // Binding needs `bind` on the export: bob has none, the platform admin may.
    let (status, text) = send(
        bob_ws,
        "POST",
        "/apis/apis.kcp.io/v1alpha1/apibindings",
        Some(&binding(&[])),
    )
    .await;
    assert_eq!(status, 403, "{text}");
    assert!(
        text.contains("no permission to bind to APIExport root:provider:widgets.acme.io"),
        "{text}"
    );
    // Nor through a workspace type of his own: its default bindings are made as him.
    let sneaky = json!({"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "WorkspaceType", "metadata": {"name": "sneaky"},
        "spec": {"defaultAPIBindings": [{"path": "root:provider", "export": EXPORT}]}});
    let (status, text) = send(
        bob_ws,
        "POST",
        "/apis/tenancy.kcp.io/v1alpha1/workspacetypes",
        Some(&sneaky),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    let inner = json!({"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace", "metadata": {"name": "inner"},
        "spec": {"type": {"name": "sneaky", "path": "root:bob-ws"}}});
    let (status, text) = send(bob_ws, "POST", "/apis/tenancy.kcp.io/v1alpha1/workspaces", Some(&inner)).await;
    assert_eq!(status, 201, "{text}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, text) = send(bob_ws, "GET", "/apis/tenancy.kcp.io/v1alpha1/workspaces/inner", None).await;
        if text.contains("APIBindingForbidden") {
            let ws: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(ws["status"]["phase"], "Initializing", "{text}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Across all consumers: lists, namespaces, pages, and watches that follow the claims.
async fn across_workspaces_the_view_lists_and_watches_what_is_shared(scene: &Scene) {
    let Scene {
        hub,
        view_url,
        c1,
        c2,
        cluster1,
        cluster2,
        ..
    } = scene;
    // Across all consumers: every widget; ConfigMaps only where the claim is accepted.
    let everywhere = client_at(hub, &format!("{view_url}/clusters/*"), "provider-token").await;
    let widgets: Api<DynamicObject> = Api::all_with(everywhere.clone(), &widget_resource());
    let list = widgets.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(names(&list), BTreeSet::from(["w1".to_string(), "w2".to_string()]));
    let clusters: BTreeSet<String> = list.iter().map(cluster_of).collect();
    assert_eq!(clusters, BTreeSet::from([cluster1.clone(), cluster2.clone()]));
    let configmaps: Api<DynamicObject> = Api::all_with(everywhere.clone(), &configmap_resource());
    let demo = ListParams::default().labels("app=demo");
    let list = configmaps.list(&demo).await.unwrap();
    assert_eq!(names(&list.items), BTreeSet::from(["cm1".to_string()]));
    // A namespace narrows the cross-workspace list.
    let in_default: Api<DynamicObject> = Api::namespaced_with(everywhere.clone(), "default", &configmap_resource());
    assert_eq!(
        names(&in_default.list(&demo).await.unwrap().items),
        BTreeSet::from(["cm1".to_string()])
    );
    let elsewhere: Api<DynamicObject> = Api::namespaced_with(everywhere.clone(), "kube-system", &configmap_resource());
    assert!(elsewhere.list(&demo).await.unwrap().items.is_empty());
    // Paged, the same answer.
    let page = configmaps.list(&ListParams::default().limit(1)).await.unwrap();
    assert!(
        page.items.iter().all(|o| cluster_of(o) == *cluster1),
        "{:?}",
        page.items
    );
    // Not shared, not there; and the view is read-only across workspaces.
    let (status, text) = send(&everywhere, "GET", "/api/v1/secrets", None).await;
    assert_eq!(status, 404, "{text}");
    let (status, _) = send(&everywhere, "GET", "/api/v1/namespaces", None).await;
    assert_eq!(status, 404);
    let (status, text) = send(
        &everywhere,
        "POST",
        "/apis/acme.io/v1/namespaces/default/widgets",
        Some(&json!({"apiVersion": "acme.io/v1", "kind": "Widget", "metadata": {"name": "x"}})),
    )
    .await;
    assert_eq!(status, 405, "{text}");

    // A watch of ConfigMaps follows the claim: c2 accepting it brings c2's ConfigMaps in.
    let rv = list.metadata.resource_version.clone().unwrap();
    let mut events = configmaps
        .watch(&WatchParams::default().labels("app=demo"), &rv)
        .await
        .unwrap()
        .boxed();
    let quiet = Duration::from_millis(700);
    let (status, _) = send(
        c2,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        Some(&demo_configmap("late2")),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = send(
        c1,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        Some(&demo_configmap("late1")),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(
        next_event(&mut events, Duration::from_secs(10)).await,
        Some(("ADDED".into(), "late1".into()))
    );
    assert_eq!(next_event(&mut events, quiet).await, None, "nothing of c2 yet");
    answer_claim(c2, "Accepted").await;
    assert_eq!(
        next_names(&mut events, 2, "ADDED").await,
        BTreeSet::from(["cm2".to_string(), "late2".to_string()])
    );
    // ... and rejecting it again takes them out.
    answer_claim(c2, "Rejected").await;
    assert_eq!(
        next_names(&mut events, 2, "DELETED").await,
        BTreeSet::from(["cm2".to_string(), "late2".to_string()])
    );
    drop(events);
}

/// In one consumer: every REST verb on what is shared there, and RBAC bounded by it.
async fn in_one_workspace_every_rest_verb_on_what_is_shared(scene: &Scene) {
    let Scene {
        hub,
        view_url,
        c2,
        cluster1,
        cluster2,
        ..
    } = scene;
    // In one consumer: every verb on what is shared there, nothing else.
    let in_c2 = client_at(hub, &format!("{view_url}/clusters/{cluster2}"), "provider-token").await;
    let widgets2: Api<DynamicObject> = Api::namespaced_with(in_c2.clone(), "default", &widget_resource());
    widgets2
        .patch_status(
            "w2",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"seen": true}})),
        )
        .await
        .unwrap();
    let seen = Api::<DynamicObject>::namespaced_with(c2.clone(), "default", &widget_resource())
        .get("w2")
        .await
        .unwrap();
    assert_eq!(seen.data["status"]["seen"], true);
    let mut made = DynamicObject::new("from-provider", &widget_resource());
    made.data = json!({"spec": {"size": 3}});
    widgets2.create(&PostParams::default(), &made).await.unwrap();
    let (status, text) = send(
        &in_c2,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        Some(&demo_configmap("nope")),
    )
    .await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("has not accepted the permission claim"), "{text}");
    let (status, _) = send(&in_c2, "GET", "/api/v1/namespaces/default/secrets/s", None).await;
    assert_eq!(status, 404);

    // Roles in c1: only what the binding shares may be granted.
    let in_c1 = client_at(hub, &format!("{view_url}/clusters/{cluster1}"), "provider-token").await;
    let role = |name: &str, resource: &str| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": name},
            "rules": [{"apiGroups": [""], "resources": [resource], "verbs": ["get"]}]})
    };
    let (status, text) = send(
        &in_c1,
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles",
        Some(&role("cm-reader", "configmaps")),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    let (status, text) = send(
        &in_c1,
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles",
        Some(&role("secret-reader", "secrets")),
    )
    .await;
    assert_eq!(status, 403, "{text}");
    assert!(
        text.contains("attempting to grant RBAC permissions not currently held"),
        "{text}"
    );
    // The view's verbs are the REST ones: no `escalate`, `bind` or `impersonate` to hand out.
    let escalator = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "escalator"},
        "rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["escalate", "bind"]}]});
    let (status, text) = send(
        &in_c1,
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles",
        Some(&escalator),
    )
    .await;
    assert_eq!(status, 403, "{text}");
    // Bindings written through the view name ServiceAccounts, never people.
    let role_binding = |name: &str, subject: Value| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm-reader"},
            "subjects": [subject]})
    };
    let bindings_path = "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings";
    let to_user = role_binding(
        "to-provider",
        json!({"kind": "User", "name": "provider", "apiGroup": "rbac.authorization.k8s.io"}),
    );
    let (status, text) = send(&in_c1, "POST", bindings_path, Some(&to_user)).await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("may name ServiceAccounts only"), "{text}");
    let to_sa = role_binding(
        "to-worker",
        json!({"kind": "ServiceAccount", "name": "worker", "namespace": "default"}),
    );
    let (status, text) = send(&in_c1, "POST", bindings_path, Some(&to_sa)).await;
    assert_eq!(status, 201, "{text}");
}

/// Unbound and unknown workspaces, other users and unknown exports answer alike.
async fn other_workspaces_and_strangers_are_out_of_reach(scene: &Scene) {
    let Scene {
        hub,
        provider_cluster,
        view_url,
        ..
    } = scene;
    // A workspace that does not bind the export, or does not exist, is out of reach alike.
    for target in ["root:c3", "nosuchcluster", "root:nope"] {
        let other = client_at(hub, &format!("{view_url}/clusters/{target}"), "provider-token").await;
        let (status, text) = send(&other, "GET", "/api/v1/namespaces/default/configmaps", None).await;
        assert_eq!(status, 403, "{target}: {text}");
        assert!(text.contains("workspace access not permitted"), "{text}");
        assert!(!text.contains("cm3"), "{text}");
    }

    // Only the export's owner gets in: bob, a tenant with nothing in root:provider, does not;
    // nor does anyone through an export that does not exist.
    for (token, export) in [("bob-token", EXPORT), ("provider-token", "nosuch.acme.io")] {
        let url = format!(
            "{}/services/apiexport/{provider_cluster}/{export}/clusters/*",
            hub.url()
        );
        let stranger = client_at(hub, &url, token).await;
        let (status, text) = send(&stranger, "GET", "/apis/acme.io/v1/widgets", None).await;
        assert_eq!(status, 403, "{text}");
        assert!(text.contains("workspace access not permitted"), "{text}");
        let (status, _) = send(&stranger, "GET", "/api", None).await;
        assert_eq!(status, 403);
    }
}

/// kubectl's discovery and kube-rs' watcher through the view.
async fn kubectl_and_kube_rs_see_only_what_is_shared(scene: &Scene) {
    let Scene {
        hub,
        view_url,
        cluster1,
        cluster2,
        ..
    } = scene;
    // kubectl through the view: discovery shows only what is shared.
    let view_c1 = hub.token_kubeconfig(
        "view-c1",
        &format!("{view_url}/clusters/{cluster1}"),
        "provider-token",
        None,
    );
    let resources = kubectl_ok(&view_c1, &["api-resources", "-o", "name"]);
    let listed: BTreeSet<&str> = resources.lines().collect();
    assert_eq!(
        listed,
        BTreeSet::from([
            "configmaps",
            "rolebindings.rbac.authorization.k8s.io",
            "roles.rbac.authorization.k8s.io",
            "widgets.acme.io"
        ]),
        "{resources}"
    );
    // c2 rejected every claim: its view serves the exported resource only.
    let view_c2 = hub.token_kubeconfig(
        "view-c2",
        &format!("{view_url}/clusters/{cluster2}"),
        "provider-token",
        None,
    );
    assert_eq!(
        kubectl_ok(&view_c2, &["api-resources", "-o", "name"]).trim(),
        "widgets.acme.io"
    );
    let out = kubectl_ok(
        &view_c1,
        &["get", "configmaps", "-n", "default", "-l", "app=demo", "-o", "name"],
    );
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["configmap/cm1", "configmap/late1"]
    );
    let view_all = hub.token_kubeconfig("view-all", &format!("{view_url}/clusters/*"), "provider-token", None);
    let out = kubectl_ok(&view_all, &["get", "widgets", "-A", "-o", "name"]);
    let mut got: Vec<&str> = out.split_whitespace().collect();
    got.sort();
    assert_eq!(
        got,
        ["widget.acme.io/from-provider", "widget.acme.io/w1", "widget.acme.io/w2"]
    );
    let out = kubectl(&view_c1, &["get", "secrets", "-n", "default"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("the server doesn't have a resource type \"secrets\""),
        "{}",
        stderr(&out)
    );

    // kube-rs' watcher (paged initial list, then watch) over the view sees every widget.
    let everywhere = client_at(hub, &format!("{view_url}/clusters/*"), "provider-token").await;
    let widgets: Api<DynamicObject> = Api::all_with(everywhere, &widget_resource());
    let mut stream = kube::runtime::watcher(widgets, kube::runtime::watcher::Config::default()).boxed();
    let mut initial = BTreeSet::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.try_next()).await {
            Ok(Ok(Some(kube::runtime::watcher::Event::InitApply(o)))) => {
                initial.insert(o.metadata.name.unwrap());
            }
            Ok(Ok(Some(kube::runtime::watcher::Event::InitDone))) => break,
            Ok(Ok(Some(_))) => {}
            other => panic!("watcher failed: {other:?}"),
        }
    }
    assert_eq!(
        initial,
        BTreeSet::from(["from-provider".to_string(), "w1".to_string(), "w2".to_string()])
    );
}

/// A workspace admin cannot forge a binding's status.
async fn a_binding_status_is_the_hubs(scene: &Scene) {
    let Scene {
        provider_cluster,
        bob_ws,
        ..
    } = scene;
    // A binding's status is the hub's: a workspace admin cannot forge one.
    let ghost = json!({"apiVersion": "apis.kcp.io/v1alpha1", "kind": "APIBinding", "metadata": {"name": "ghost"},
        "spec": {"reference": {"export": {"name": "ghost"}}}});
    let (status, text) = send(bob_ws, "POST", "/apis/apis.kcp.io/v1alpha1/apibindings", Some(&ghost)).await;
    assert_eq!(status, 201, "{text}");
    let bindings: Api<DynamicObject> = Api::all_with(bob_ws.clone(), &binding_resource());
    let forged = json!({"status": {"phase": "Bound", "apiExportClusterName": provider_cluster,
        "boundResources": [{"group": "acme.io", "resource": "widgets", "schema": {"name": "v1.widgets.acme.io", "UID": "u", "identityHash": "x"}}]}});
    let err = bindings
        .patch_status("ghost", &PatchParams::default(), &Patch::Merge(forged))
        .await
        .unwrap_err();
    assert!(matches!(&err, kube::Error::Api(s) if s.code == 403), "{err}");
}

/// Withdrawn claims end watches; a deleted binding takes its workspace out of the view.
async fn access_ends_when_sharing_ends(scene: &Scene) {
    let Scene {
        hub,
        view_url,
        c1,
        c2,
        cluster1,
        cluster2,
        ..
    } = scene;
    // Access ends when a workspace stops sharing: an open watch in c1 ends when c1 withdraws
    // the ConfigMap claim, and c2's widgets leave the cross-workspace view with its binding.
    let in_c1 = client_at(hub, &format!("{view_url}/clusters/{cluster1}"), "provider-token").await;
    let in_c2 = client_at(hub, &format!("{view_url}/clusters/{cluster2}"), "provider-token").await;
    let everywhere = client_at(hub, &format!("{view_url}/clusters/*"), "provider-token").await;
    let configmaps1: Api<DynamicObject> = Api::namespaced_with(in_c1.clone(), "default", &configmap_resource());
    let rv = configmaps1
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut events = configmaps1.watch(&WatchParams::default(), &rv).await.unwrap().boxed();
    let withdraw = json!({"spec": {"permissionClaims": [
        {"group": "", "resource": "configmaps", "state": "Rejected"},
        {"group": "rbac.authorization.k8s.io", "resource": "roles", "state": "Accepted"},
        {"group": "rbac.authorization.k8s.io", "resource": "rolebindings", "state": "Accepted"}]}});
    Api::<DynamicObject>::all_with(c1.clone(), &binding_resource())
        .patch("widgets", &PatchParams::default(), &Patch::Merge(withdraw))
        .await
        .unwrap();
    match tokio::time::timeout(Duration::from_secs(10), events.next()).await {
        Ok(Some(Ok(WatchEvent::Error(e)))) => assert_eq!(e.code, 403, "{e:?}"),
        other => panic!("the watch should end with a 403 ERROR event: {other:?}"),
    }
    let (status, _) = send(&in_c1, "GET", "/api/v1/namespaces/default/configmaps", None).await;
    assert_eq!(status, 403);
    // Deleting a binding deletes its objects, then the binding: the workspace drops out of
    // the view once it is gone.
    let (status, _) = send(c2, "DELETE", "/apis/apis.kcp.io/v1alpha1/apibindings/widgets", None).await;
    assert_eq!(status, 200);
    let everywhere_widgets: Api<DynamicObject> = Api::all_with(everywhere.clone(), &widget_resource());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = send(&in_c2, "GET", "/apis/acme.io/v1/namespaces/default/widgets", None).await;
        if status == 403 {
            break;
        }
        assert_eq!(
            status, 200,
            "the view answered {status} while the binding was being deleted"
        );
        assert!(std::time::Instant::now() < deadline, "the deleted binding still shares");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let list = everywhere_widgets.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(names(&list), BTreeSet::from(["w1".to_string()]));
}

/// Audit records of view requests name the export.
async fn view_requests_are_audited(scene: &Scene) {
    let Scene {
        audit,
        provider_cluster,
        ..
    } = scene;
    // The audit log names the export whose owner's access authorized each view request.
    let expected = format!("\"apiExport\":\"{provider_cluster}:{EXPORT}\"");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let log = std::fs::read_to_string(audit).unwrap_or_default();
        if log
            .lines()
            .any(|l| l.contains(&expected) && l.contains("\"user\":\"provider\""))
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no audit line with {expected}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A claim on a resource of another export names it by that export's identity: the claiming
/// export's owner then reaches exactly that export's objects in the workspaces that accept.
#[tokio::test]
async fn a_claim_on_another_exports_resource_follows_its_identity() {
    let hub = TestHub::start(HUB);
    for name in ["maker", "observer", "site"] {
        create_workspace(&hub, name).await;
    }
    let maker = admin_at(&hub, "root:maker").await;
    let observer = admin_at(&hub, "root:observer").await;
    let site = admin_at(&hub, "root:site").await;
    let schema = json!({
        "apiVersion": "apis.kcp.io/v1alpha1", "kind": "APIResourceSchema",
        "metadata": {"name": "v1.widgets.acme.io"},
        "spec": {"group": "acme.io", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}]},
    });
    let (status, text) = send(
        &maker,
        "POST",
        "/apis/apis.kcp.io/v1alpha1/apiresourceschemas",
        Some(&schema),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    let export = json!({"apiVersion": "apis.kcp.io/v1alpha1", "kind": "APIExport", "metadata": {"name": EXPORT},
        "spec": {"latestResourceSchemas": ["v1.widgets.acme.io"]}});
    let (status, text) = send(&maker, "POST", "/apis/apis.kcp.io/v1alpha1/apiexports", Some(&export)).await;
    assert_eq!(status, 201, "{text}");
    let identity = serde_json::from_str::<Value>(&text).unwrap()["status"]["identityHash"]
        .as_str()
        .unwrap()
        .to_string();

    // The observer exports nothing of its own; it claims the maker's widgets.
    let claim = json!({"group": "acme.io", "resource": "widgets", "identityHash": identity});
    let observing = json!({"apiVersion": "apis.kcp.io/v1alpha1", "kind": "APIExport", "metadata": {"name": "observing"},
        "spec": {"permissionClaims": [claim]}});
    let (status, text) = send(
        &observer,
        "POST",
        "/apis/apis.kcp.io/v1alpha1/apiexports",
        Some(&observing),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    let view_url = serde_json::from_str::<Value>(&text).unwrap()["status"]["virtualWorkspaces"][0]["url"]
        .as_str()
        .unwrap()
        .to_string();

    // The site binds both and accepts the observer's claim.
    let widgets = json!({"apiVersion": "apis.kcp.io/v1alpha1", "kind": "APIBinding", "metadata": {"name": "widgets"},
        "spec": {"reference": {"export": {"path": "root:maker", "name": EXPORT}}}});
    let (status, text) = send(&site, "POST", "/apis/apis.kcp.io/v1alpha1/apibindings", Some(&widgets)).await;
    assert_eq!(status, 201, "{text}");
    wait_bound(&site).await;
    let mut accepted = claim.clone();
    accepted["state"] = "Accepted".into();
    let observed = json!({"apiVersion": "apis.kcp.io/v1alpha1", "kind": "APIBinding", "metadata": {"name": "observing"},
        "spec": {"reference": {"export": {"path": "root:observer", "name": "observing"}}, "permissionClaims": [accepted]}});
    let (status, text) = send(&site, "POST", "/apis/apis.kcp.io/v1alpha1/apibindings", Some(&observed)).await;
    assert_eq!(status, 201, "{text}");
    let w = json!({"apiVersion": "acme.io/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}});
    let (status, text) = send(&site, "POST", "/apis/acme.io/v1/namespaces/default/widgets", Some(&w)).await;
    assert_eq!(status, 201, "{text}");

    let everywhere = admin(&hub).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let path = format!(
        "{}/clusters/*/apis/acme.io/v1/widgets",
        view_url.strip_prefix(&hub.url()).unwrap()
    );
    loop {
        let (status, text) = send(&everywhere, "GET", &path, None).await;
        if status == 200 {
            let list: Value = serde_json::from_str(&text).unwrap();
            let items = list["items"].as_array().unwrap();
            if items.len() == 1 {
                assert_eq!(items[0]["metadata"]["name"], "w");
                break;
            }
        }
        assert!(std::time::Instant::now() < deadline, "{status} {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A same-named resource of another export is not what the claim names.
    let (status, text) = send(
        &observer,
        "POST",
        "/apis/apis.kcp.io/v1alpha1/apiresourceschemas",
        Some(&schema),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    let lookalike = json!({"apiVersion": "apis.kcp.io/v1alpha1", "kind": "APIExport", "metadata": {"name": "lookalike"},
        "spec": {"latestResourceSchemas": ["v1.widgets.acme.io"]}});
    let (status, text) = send(
        &observer,
        "POST",
        "/apis/apis.kcp.io/v1alpha1/apiexports",
        Some(&lookalike),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    let (_, text) = send(&everywhere, "GET", &path, None).await;
    let list: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "{text}");
}
