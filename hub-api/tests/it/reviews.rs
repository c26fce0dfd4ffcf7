//! TokenReview and SubjectAccessReview, as webhook authenticators and authorizers call them:
//! through kubectl and the Python `kubernetes` client, for ServiceAccount tokens of the hub's
//! own and other audiences, for users with and without RBAC grants, and only for callers
//! allowed to ask.

use serde_json::Value;

use crate::common::{HUB, TestHub};

const V: &str = "1.32";

fn create(kubeconfig: &std::path::Path, yaml: &str) -> Result<Value, String> {
    let out = faros_testkit::kubectl::run(
        V,
        kubeconfig,
        &std::env::temp_dir(),
        &["create", "-f", "-", "-o", "json"],
        Some(yaml),
    );
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).expect("JSON"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn token_review(token: &str, audiences: &[&str]) -> String {
    let audiences = if audiences.is_empty() {
        String::new()
    } else {
        format!("  audiences: {audiences:?}\n")
    };
    format!("apiVersion: authentication.k8s.io/v1\nkind: TokenReview\nspec:\n  token: {token}\n{audiences}")
}

fn access_review(who: &str, verb: &str, resource: &str) -> String {
    format!(
        "apiVersion: authorization.k8s.io/v1\nkind: SubjectAccessReview\nspec:\n  {who}\n  resourceAttributes:\n    namespace: default\n    verb: {verb}\n    resource: {resource}\n"
    )
}

#[tokio::test]
async fn token_and_subject_access_reviews() {
    let hub = TestHub::start(HUB);
    let admin = hub.kubeconfig();
    hub.kubectl_ok(V, &["create", "serviceaccount", "webhook", "-n", "default"]);
    let token = hub.kubectl_ok(V, &["create", "token", "webhook", "-n", "default"]);
    let token = token.trim();
    let vault_token = hub.kubectl_ok(
        V,
        &["create", "token", "webhook", "-n", "default", "--audience", "vault"],
    );
    let vault_token = vault_token.trim();

    // The hub's own token, for the hub's audiences.
    let review = create(&admin, &token_review(token, &[])).unwrap();
    let status = &review["status"];
    assert_eq!(status["authenticated"], true, "{review}");
    assert_eq!(status["user"]["username"], "system:serviceaccount:default:webhook");
    let groups = status["user"]["groups"].as_array().unwrap();
    assert!(groups.iter().any(|g| g == "system:serviceaccounts:default"), "{review}");
    assert!(
        status["audiences"].as_array().is_some_and(|a| !a.is_empty()),
        "{review}"
    );

    // A token for another audience is good for that audience only.
    let review = create(&admin, &token_review(vault_token, &["vault", "other"])).unwrap();
    assert_eq!(review["status"]["authenticated"], true, "{review}");
    assert_eq!(review["status"]["audiences"], serde_json::json!(["vault"]));
    let review = create(&admin, &token_review(vault_token, &[])).unwrap();
    assert_ne!(review["status"]["authenticated"], true, "{review}");
    let review = create(&admin, &token_review(token, &["vault"])).unwrap();
    assert_ne!(review["status"]["authenticated"], true, "{review}");
    let review = create(&admin, &token_review("not-a-token", &[])).unwrap();
    assert_ne!(review["status"]["authenticated"], true, "{review}");
    assert!(
        review["status"]["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{review}"
    );
    let err = create(
        &admin,
        "apiVersion: authentication.k8s.io/v1\nkind: TokenReview\nspec: {}\n",
    )
    .unwrap_err();
    assert!(err.contains("token is required"), "{err}");

    // Whether a user may do something follows the workspace's RBAC.
    let allowed = |review: &Value| review["status"]["allowed"] == true;
    let review = create(&admin, &access_review("user: alice", "update", "configmaps")).unwrap();
    assert!(!allowed(&review), "{review}");
    hub.kubectl_ok(
        V,
        &[
            "create",
            "rolebinding",
            "alice-edit",
            "--clusterrole=edit",
            "--user=alice",
            "-n",
            "default",
        ],
    );
    let review = create(&admin, &access_review("user: alice", "update", "configmaps")).unwrap();
    assert!(allowed(&review), "{review}");
    let review = create(&admin, &access_review("user: alice", "update", "roles")).unwrap();
    assert!(!allowed(&review), "{review}");
    let review = create(&admin, &access_review("groups: [system:masters]", "delete", "secrets")).unwrap();
    assert!(allowed(&review), "{review}");
    let err = create(&admin, &access_review("uid: x", "get", "pods")).unwrap_err();
    assert!(err.contains("at least one of user or group"), "{err}");

    // Asking needs create on the review kinds: system:auth-delegator grants it.
    let as_webhook = hub.token_kubeconfig("webhook", &hub.url(), token, Some("default"));
    let err = create(&as_webhook, &token_review(token, &[])).unwrap_err();
    assert!(err.contains("forbidden"), "{err}");
    let err = create(&as_webhook, &access_review("user: alice", "get", "configmaps")).unwrap_err();
    assert!(err.contains("forbidden"), "{err}");
    hub.kubectl_ok(
        V,
        &[
            "create",
            "clusterrolebinding",
            "webhook-delegator",
            "--clusterrole=system:auth-delegator",
            "--serviceaccount=default:webhook",
        ],
    );
    let review = create(&as_webhook, &token_review(token, &[])).unwrap();
    assert_eq!(review["status"]["authenticated"], true, "{review}");
    let review = create(&as_webhook, &access_review("user: alice", "get", "configmaps")).unwrap();
    assert!(allowed(&review), "{review}");
    // kubectl finds the kinds through discovery.
    let resources = hub.kubectl_ok(V, &["api-resources", "--verbs=create", "-o", "name"]);
    for kind in [
        "tokenreviews.authentication.k8s.io",
        "subjectaccessreviews.authorization.k8s.io",
        "localsubjectaccessreviews.authorization.k8s.io",
    ] {
        assert!(resources.lines().any(|l| l == kind), "{kind} missing:\n{resources}");
    }

    // The Python client's typed APIs.
    crate::python_client::require_python_kubernetes();
    let script = r#"
import json, sys
from kubernetes import client, config
config.load_kube_config(config_file=sys.argv[1])
authn = client.AuthenticationV1Api()
authz = client.AuthorizationV1Api()
tr = authn.create_token_review(client.V1TokenReview(spec=client.V1TokenReviewSpec(token=sys.argv[2])))
attrs = client.V1ResourceAttributes(namespace="default", verb="update", resource="configmaps")
sar = authz.create_subject_access_review(client.V1SubjectAccessReview(
    spec=client.V1SubjectAccessReviewSpec(user="alice", resource_attributes=attrs)))
local = authz.create_namespaced_local_subject_access_review("default", client.V1LocalSubjectAccessReview(
    metadata=client.V1ObjectMeta(namespace="default"),
    spec=client.V1SubjectAccessReviewSpec(user="bob", resource_attributes=attrs)))
print(json.dumps({"user": tr.status.user.username, "authenticated": tr.status.authenticated,
    "alice": sar.status.allowed, "bob": local.status.allowed}))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&admin)
        .arg(token)
        .env("HOME", std::env::temp_dir())
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answers: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        answers,
        serde_json::json!({"user": "system:serviceaccount:default:webhook", "authenticated": true,
            "alice": true, "bob": false})
    );
}
