//! ServiceAccount tokens end to end: TokenRequest (`kubectl create token`) with its default
//! and minimum lifetimes, audiences and bound objects; legacy token Secrets filled by the
//! token controller; the published verification keys.

use crate::auth_support::*;
use crate::common::{HUB, TestHub};
use base64::Engine;
use serde_json::{Value, json};

fn payload(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

async fn token_request(hub: &TestHub, sa: &str, spec: Value) -> (u16, Value) {
    let client = admin(hub).await;
    let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec});
    let (status, text) = send(
        &client,
        "POST",
        &format!("/clusters/root:svc/api/v1/namespaces/default/serviceaccounts/{sa}/token"),
        Some(&body),
    )
    .await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn status_with(hub: &TestHub, token: &str) -> u16 {
    let client = client_with_token(hub, Some(token)).await;
    send(
        &client,
        "GET",
        "/clusters/root:svc/api/v1/namespaces/default/configmaps",
        None,
    )
    .await
    .0
}

#[tokio::test]
async fn token_requests_and_legacy_tokens() {
    let hub = TestHub::start(HUB);
    create_workspace(&hub, "svc").await;
    let ws: Value = admin_ok(&hub, "GET", "/apis/tenancy.kcp.io/v1alpha1/workspaces/svc", None).await;
    let cluster = ws["spec"]["cluster"].as_str().unwrap().to_string();
    let admin_kc = admin_kubeconfig_for(&hub, "root:svc");
    kubectl_ok(&admin_kc, &["create", "serviceaccount", "bot"]);
    kubectl_ok(
        &admin_kc,
        &[
            "create",
            "rolebinding",
            "bot",
            "--clusterrole=view",
            "--serviceaccount=default:bot",
        ],
    );
    let sa_uid = kubectl_ok(&admin_kc, &["get", "sa", "bot", "-o", "jsonpath={.metadata.uid}"]);

    // Defaults: one hour, the API audience, the Kubernetes claims plus the workspace.
    let (status, answer) = token_request(&hub, "bot", json!({})).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["kind"], "TokenRequest");
    assert_eq!(answer["spec"]["expirationSeconds"], 3600);
    let token = answer["status"]["token"].as_str().unwrap();
    let claims = payload(token);
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 3600);
    assert_eq!(claims["iss"], hub.url());
    assert_eq!(claims["aud"], json!([hub.url()]));
    assert_eq!(claims["sub"], "system:serviceaccount:default:bot");
    assert_eq!(claims["kubernetes.io"]["namespace"], "default");
    assert_eq!(claims["kubernetes.io"]["serviceaccount"]["name"], "bot");
    assert_eq!(claims["kubernetes.io"]["serviceaccount"]["uid"], sa_uid.as_str());
    assert_eq!(claims["kubernetes.io"]["clusterName"], cluster.as_str());
    assert!(
        answer["status"]["expirationTimestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert_eq!(status_with(&hub, token).await, 200);

    // The published keys verify it.
    let anonymous = client_with_token(&hub, None).await;
    let (_, discovery) = send(&anonymous, "GET", "/.well-known/openid-configuration", None).await;
    let discovery: Value = serde_json::from_str(&discovery).unwrap();
    assert_eq!(discovery["issuer"], hub.url());
    assert_eq!(discovery["jwks_uri"], format!("{}/openid/v1/jwks", hub.url()));
    let (_, jwks) = send(&anonymous, "GET", "/openid/v1/jwks", None).await;
    let jwk = serde_json::from_str::<Value>(&jwks).unwrap()["keys"][0].clone();
    let decode = |s: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.as_str().unwrap())
            .unwrap()
    };
    let mut point = vec![4u8];
    point.extend(decode(&jwk["x"]));
    point.extend(decode(&jwk["y"]));
    let (message, signature) = token.rsplit_once('.').unwrap();
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, &point)
        .verify(
            message.as_bytes(),
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(signature)
                .unwrap(),
        )
        .expect("the JWKS verifies the hub's tokens");

    // Lifetimes: at least ten minutes; kubectl's --duration is honoured.
    let (status, answer) = token_request(&hub, "bot", json!({"expirationSeconds": 60})).await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("less than 10 minutes"),
        "{answer}"
    );
    let token = create_token(&admin_kc, "default", "bot", &["--duration=20m"]);
    let claims = payload(&token);
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 1200);
    // Audiences: a token for someone else is not accepted by the hub.
    let token = create_token(&admin_kc, "default", "bot", &["--audience=vault", "--audience=nats"]);
    assert_eq!(payload(&token)["aud"], json!(["vault", "nats"]));
    assert_eq!(status_with(&hub, &token).await, 401);
    // Unknown account: 404.
    let (status, _) = token_request(&hub, "ghost", json!({})).await;
    assert_eq!(status, 404);

    // Bound to a Secret (kubectl's --bound-object-*): dies with it.
    kubectl_ok(
        &admin_kc,
        &["create", "secret", "generic", "session", "--from-literal=a=b"],
    );
    let token = create_token(
        &admin_kc,
        "default",
        "bot",
        &["--bound-object-kind=Secret", "--bound-object-name=session"],
    );
    assert_eq!(payload(&token)["kubernetes.io"]["secret"]["name"], "session");
    assert_eq!(status_with(&hub, &token).await, 200);
    kubectl_ok(&admin_kc, &["delete", "secret", "session"]);
    assert_eq!(status_with(&hub, &token).await, 401);
    // Bound to any object of the workspace (here a ConfigMap); a wrong uid is a conflict.
    kubectl_ok(&admin_kc, &["create", "configmap", "lease-holder"]);
    let cm_uid = kubectl_ok(
        &admin_kc,
        &["get", "cm", "lease-holder", "-o", "jsonpath={.metadata.uid}"],
    );
    let (status, answer) = token_request(
        &hub,
        "bot",
        json!({"boundObjectRef": {"kind": "ConfigMap", "apiVersion": "v1", "name": "lease-holder", "uid": "wrong"}}),
    )
    .await;
    assert_eq!(status, 409, "{answer}");
    let (status, answer) = token_request(
        &hub,
        "bot",
        json!({"boundObjectRef": {"kind": "ConfigMap", "apiVersion": "v1", "name": "lease-holder"}}),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["spec"]["boundObjectRef"]["uid"], cm_uid.as_str());
    let token = answer["status"]["token"].as_str().unwrap().to_string();
    assert_eq!(status_with(&hub, &token).await, 200);
    kubectl_ok(&admin_kc, &["delete", "configmap", "lease-holder"]);
    assert_eq!(status_with(&hub, &token).await, 401);
    let (status, _) = token_request(
        &hub,
        "bot",
        json!({"boundObjectRef": {"kind": "ConfigMap", "apiVersion": "v1", "name": "absent"}}),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = token_request(
        &hub,
        "bot",
        json!({"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p"}}),
    )
    .await;
    assert_eq!(status, 422);
    // A token dies with its ServiceAccount, even re-created under the same name.
    let token = create_token(&admin_kc, "default", "bot", &[]);
    kubectl_ok(&admin_kc, &["delete", "serviceaccount", "bot"]);
    kubectl_ok(&admin_kc, &["create", "serviceaccount", "bot"]);
    assert_eq!(status_with(&hub, &token).await, 401);

    // Minting tokens is itself authorized: `create` on serviceaccounts/token, per name.
    kubectl_ok(&admin_kc, &["create", "serviceaccount", "minter"]);
    kubectl_ok(&admin_kc, &["create", "serviceaccount", "other"]);
    kubectl_ok(
        &admin_kc,
        &[
            "create",
            "role",
            "mint-self",
            "--verb=create",
            "--resource=serviceaccounts/token",
            "--resource-name=minter",
        ],
    );
    kubectl_ok(
        &admin_kc,
        &[
            "create",
            "rolebinding",
            "minter",
            "--role=mint-self",
            "--serviceaccount=default:minter",
        ],
    );
    let minter = hub.token_kubeconfig(
        "minter",
        &hub.workspace_url("root:svc"),
        &create_token(&admin_kc, "default", "minter", &[]),
        Some("default"),
    );
    let renewed = kubectl_ok(&minter, &["create", "token", "minter"]);
    assert_eq!(payload(renewed.trim())["sub"], "system:serviceaccount:default:minter");
    kubectl_forbidden(&minter, &["create", "token", "other"]);

    // Legacy token Secrets: filled by the controller with token, CA and namespace.
    kubectl_ok(&admin_kc, &["create", "serviceaccount", "legacy"]);
    kubectl_stdin_ok(
        &admin_kc,
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: legacy-token\n  annotations: {kubernetes.io/service-account.name: legacy}\ntype: kubernetes.io/service-account-token\n",
    );
    let token = wait_legacy_token(&admin_kc, "default", "legacy-token");
    let secret: Value =
        serde_json::from_str(&kubectl_ok(&admin_kc, &["get", "secret", "legacy-token", "-o", "json"])).unwrap();
    let data = |k: &str| {
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(secret["data"][k].as_str().unwrap())
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(data("namespace"), "default");
    assert_eq!(data("ca.crt"), hub.ca_pem());
    let legacy_uid = kubectl_ok(&admin_kc, &["get", "sa", "legacy", "-o", "jsonpath={.metadata.uid}"]);
    assert_eq!(
        secret["metadata"]["annotations"]["kubernetes.io/service-account.uid"],
        legacy_uid.as_str()
    );
    let claims = payload(&token);
    assert_eq!(claims["iss"], "kubernetes/serviceaccount");
    assert!(claims.get("exp").is_none());
    let legacy = hub.token_kubeconfig("legacy", &hub.workspace_url("root:svc"), &token, Some("default"));
    assert!(kubectl_ok(&legacy, &["auth", "whoami"]).contains("system:serviceaccount:default:legacy"));
    // A token Secret for an account that does not exist is removed, as in Kubernetes.
    kubectl_stdin_ok(
        &admin_kc,
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: orphan-token\n  annotations: {kubernetes.io/service-account.name: nobody}\ntype: kubernetes.io/service-account-token\n",
    );
    assert!(
        crate::common::eventually(std::time::Duration::from_secs(20), || {
            !kubectl(&admin_kc, &["get", "secret", "orphan-token"]).status.success()
        }),
        "the orphaned token Secret was not removed"
    );
}
