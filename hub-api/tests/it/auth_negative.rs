//! The negative matrix against the real hub: every kind of bad credential × a set of
//! requests answers 401 or 403 and carries no object data; plus the positive controls that
//! show the same requests do work with good credentials, and the audit log of it all.

use std::time::Duration;

use crate::auth_support::*;
use crate::common::{HUB, TestDir, TestHub};
use serde_json::{Value, json};

const SENTINEL: &str = "TOP-SECRET-SENTINEL-4711";
const OIDC_ISSUER: &str = "https://sso.example.test";
const OIDC_CLIENT: &str = "faros";

struct Fixture {
    hub: TestHub,
    _files: TestDir,
    oidc_key: EcKey,
    /// Logical cluster of root:ws-a.
    cluster_a: String,
    /// A valid bound token of ServiceAccount ws-a/default/bot.
    bot_token: String,
    bot_uid: String,
    /// A legacy token whose Secret was deleted, and one whose ServiceAccount was deleted.
    revoked_by_secret: String,
    revoked_by_account: String,
    /// A token for the wrong audience.
    vault_token: String,
}

async fn setup() -> Fixture {
    let files = TestDir::new("auth");
    let oidc_key = EcKey::generate("sso-key-1");
    let jwks = files.join("jwks.json");
    std::fs::write(&jwks, json!({"keys": [oidc_key.jwk()]}).to_string()).unwrap();
    let tokens = files.join("tokens.csv");
    std::fs::write(&tokens, "static-alice-token,alice,1001,\"team,ops\"\n").unwrap();
    let audit = files.join("audit.log");
    let hub = TestHub::start_with_args(
        HUB,
        true,
        &[
            "--oidc-issuer-url",
            OIDC_ISSUER,
            "--oidc-client-id",
            OIDC_CLIENT,
            "--oidc-jwks-file",
            jwks.to_str().unwrap(),
            "--oidc-username-prefix",
            "sso:",
            "--oidc-groups-claim",
            "groups",
            "--oidc-groups-prefix",
            "sso:",
            "--token-auth-file",
            tokens.to_str().unwrap(),
            "--audit-log-path",
            audit.to_str().unwrap(),
        ],
    );
    for ws in ["ws-a", "ws-b"] {
        create_workspace(&hub, ws).await;
    }
    let ws_a: Value = admin_ok(&hub, "GET", "/apis/tenancy.kcp.io/v1alpha1/workspaces/ws-a", None).await;
    let cluster_a = ws_a["spec"]["cluster"].as_str().unwrap().to_string();

    // A secret worth stealing in every workspace.
    for base in ["", "/clusters/root:ws-a", "/clusters/root:ws-b"] {
        admin_ok(
            &hub,
            "POST",
            &format!("{base}/api/v1/namespaces/default/secrets"),
            Some(
                &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sentinel"},
                "stringData": {"value": SENTINEL}}),
            ),
        )
        .await;
        admin_ok(
            &hub,
            "POST",
            &format!("{base}/api/v1/namespaces/default/configmaps"),
            Some(
                &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "sentinel"},
                "data": {"value": SENTINEL}}),
            ),
        )
        .await;
    }

    // ws-a: the bot may read configmaps; carol (OIDC) and alice (static token) may read all.
    let a = admin_kubeconfig_for(&hub, "root:ws-a");
    kubectl_ok(&a, &["create", "serviceaccount", "bot"]);
    kubectl_ok(
        &a,
        &[
            "create",
            "role",
            "cm-reader",
            "--verb=get,list,watch",
            "--resource=configmaps",
        ],
    );
    kubectl_ok(
        &a,
        &[
            "create",
            "rolebinding",
            "bot",
            "--role=cm-reader",
            "--serviceaccount=default:bot",
        ],
    );
    kubectl_ok(
        &a,
        &[
            "create",
            "role",
            "everything",
            "--verb=*",
            "--resource=secrets,configmaps",
        ],
    );
    kubectl_ok(
        &a,
        &[
            "create",
            "rolebinding",
            "people",
            "--role=everything",
            "--user=sso:carol",
            "--user=alice",
        ],
    );
    let bot_token = create_token(&a, "default", "bot", &[]);
    let bot_uid = kubectl_ok(&a, &["get", "sa", "bot", "-o", "jsonpath={.metadata.uid}"]);
    let vault_token = create_token(&a, "default", "bot", &["--audience", "vault"]);

    // Legacy tokens, then revoked: one by deleting its Secret, one by deleting its account.
    let mut revoked = Vec::new();
    for (sa, secret) in [("legacy-1", "legacy-1-token"), ("legacy-2", "legacy-2-token")] {
        kubectl_ok(&a, &["create", "serviceaccount", sa]);
        kubectl_ok(
            &a,
            &[
                "create",
                "rolebinding",
                sa,
                "--role=cm-reader",
                &format!("--serviceaccount=default:{sa}"),
            ],
        );
        let manifest = format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {secret}\n  annotations:\n    kubernetes.io/service-account.name: {sa}\ntype: kubernetes.io/service-account-token\n"
        );
        kubectl_stdin_ok(&a, &["create", "-f", "-"], &manifest);
        let token = wait_legacy_token(&a, "default", secret);
        // It works while everything exists.
        let client = client_with_token(&hub, Some(&token)).await;
        let (status, text) = send(
            &client,
            "GET",
            "/clusters/root:ws-a/api/v1/namespaces/default/configmaps",
            None,
        )
        .await;
        assert_eq!(status, 200, "legacy token before revocation: {text}");
        revoked.push(token);
    }
    kubectl_ok(&a, &["delete", "secret", "legacy-1-token"]);
    kubectl_ok(&a, &["delete", "serviceaccount", "legacy-2"]);

    Fixture {
        hub,
        _files: files,
        oidc_key,
        cluster_a,
        bot_token,
        bot_uid: bot_uid.trim().to_string(),
        revoked_by_secret: revoked[0].clone(),
        revoked_by_account: revoked[1].clone(),
        vault_token,
    }
}

/// The requests every bad credential is tried against.
fn requests() -> Vec<(&'static str, &'static str, Option<Value>)> {
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "intruder"}});
    vec![
        ("GET", "/api/v1/namespaces/default/secrets/sentinel", None),
        ("GET", "/api/v1/namespaces/default/configmaps", None),
        (
            "GET",
            "/clusters/root:ws-a/api/v1/namespaces/default/secrets/sentinel",
            None,
        ),
        (
            "GET",
            "/clusters/root:ws-a/api/v1/namespaces/default/configmaps/sentinel",
            None,
        ),
        ("GET", "/clusters/root:ws-b/api/v1/secrets", None),
        (
            "GET",
            "/clusters/root:ws-b/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1",
            None,
        ),
        (
            "POST",
            "/clusters/root:ws-a/api/v1/namespaces/default/configmaps",
            Some(cm),
        ),
        (
            "DELETE",
            "/clusters/root:ws-a/api/v1/namespaces/default/configmaps/sentinel",
            None,
        ),
        ("GET", "/clusters/root:nonexistent/api/v1/namespaces", None),
        ("GET", "/clusters/*/api/v1/secrets", None),
        ("GET", "/apis", None),
        ("GET", "/clusters/root:ws-a/openapi/v3", None),
        (
            "GET",
            "/clusters/root:ws-a/apis/tenancy.kcp.io/v1alpha1/workspaces",
            None,
        ),
    ]
}

/// The response is a failure Status with `code` and nothing of any object.
fn assert_refused(what: &str, method: &str, path: &str, status: u16, body: &str, code: u16) {
    assert_eq!(status, code, "{what}: {method} {path} answered {status}: {body}");
    assert!(
        !body.contains(SENTINEL) && !body.contains(&b64(SENTINEL)),
        "{what}: {method} {path} leaked data: {body}"
    );
    let status_obj: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {body}"));
    assert_eq!(status_obj["kind"], "Status", "{what}: {body}");
    assert_eq!(status_obj["code"], code, "{what}: {body}");
    assert!(
        status_obj.get("items").is_none() && status_obj.get("data").is_none(),
        "{what}: {body}"
    );
}

#[tokio::test]
async fn bad_credentials_get_nothing() {
    let f = setup().await;
    let hub = &f.hub;
    let issuer = hub.url();
    let hub_key = EcKey::hub_key(hub);
    let exp = now() + 3600;
    let good_claims = sa_claims(&issuer, &f.cluster_a, "default", "bot", &f.bot_uid, exp);

    // Positive controls: the same kind of tokens, done right, work.
    let forged_but_valid = hub_key.sign(&good_claims);
    let client = client_with_token(hub, Some(&forged_but_valid)).await;
    let (status, text) = send(
        &client,
        "GET",
        "/clusters/root:ws-a/api/v1/namespaces/default/configmaps",
        None,
    )
    .await;
    assert_eq!(
        status, 200,
        "a correctly signed token for an existing account works: {text}"
    );
    let carol = f.oidc_key.sign(&json!({
        "iss": OIDC_ISSUER, "aud": OIDC_CLIENT, "sub": "carol", "groups": ["devs"],
        "exp": exp, "iat": now(), "nbf": now() - 10,
    }));
    let client = client_with_token(hub, Some(&carol)).await;
    let (status, text) = send(
        &client,
        "GET",
        "/clusters/root:ws-a/api/v1/namespaces/default/secrets/sentinel",
        None,
    )
    .await;
    assert_eq!(status, 200, "a valid OIDC token works: {text}");
    let client = client_with_token(hub, Some(&f.bot_token)).await;
    let (status, text) = send(
        &client,
        "GET",
        "/clusters/root:ws-a/api/v1/namespaces/default/configmaps",
        None,
    )
    .await;
    assert_eq!(status, 200, "the bot's token works in its workspace: {text}");
    let client = client_with_token(hub, Some("static-alice-token")).await;
    let (status, text) = send(
        &client,
        "GET",
        "/clusters/root:ws-a/api/v1/namespaces/default/secrets",
        None,
    )
    .await;
    assert_eq!(status, 200, "the static token works: {text}");

    let oidc_claims = |f: &dyn Fn(&mut Value)| {
        let mut c = json!({"iss": OIDC_ISSUER, "aud": OIDC_CLIENT, "sub": "carol", "exp": exp, "iat": now()});
        f(&mut c);
        c
    };
    let public_jwk = hub_key.jwk().to_string();
    let mut x = hub_key.point();
    x.truncate(33);
    let mut credentials: Vec<(&str, Option<String>)> = vec![
        ("no credentials", None),
        ("garbage", Some("not-a-token".into())),
        ("garbage JWT", Some("aaa.bbb.ccc".into())),
        (
            "expired ServiceAccount token",
            Some(hub_key.sign(&sa_claims(
                &issuer,
                &f.cluster_a,
                "default",
                "bot",
                &f.bot_uid,
                now() - 3600,
            ))),
        ),
        (
            "wrong signature",
            Some(EcKey::generate(&hub_key.kid).sign(&good_claims)),
        ),
        ("alg none", Some(unsigned(&good_claims))),
        (
            "HS256 keyed with the public JWK",
            Some(hs256(
                &json!({"alg": "HS256", "typ": "JWT", "kid": hub_key.kid}),
                &good_claims,
                public_jwk.as_bytes(),
            )),
        ),
        (
            "HS256 keyed with the public key point",
            Some(hs256(
                &json!({"alg": "HS256", "typ": "JWT"}),
                &good_claims,
                &hub_key.point(),
            )),
        ),
        (
            "wrong issuer",
            Some(hub_key.sign(&{
                let mut c = good_claims.clone();
                c["iss"] = "https://evil.example".into();
                c
            })),
        ),
        (
            "legacy issuer with bound claims",
            Some(hub_key.sign(&{
                let mut c = good_claims.clone();
                c["iss"] = "kubernetes/serviceaccount".into();
                c
            })),
        ),
        (
            "wrong audience (forged)",
            Some(hub_key.sign(&{
                let mut c = good_claims.clone();
                c["aud"] = json!(["vault"]);
                c
            })),
        ),
        ("wrong audience (TokenRequest)", Some(f.vault_token.clone())),
        (
            "account uid mismatch",
            Some(hub_key.sign(&sa_claims(&issuer, &f.cluster_a, "default", "bot", "not-the-uid", exp))),
        ),
        (
            "revoked legacy token (Secret deleted)",
            Some(f.revoked_by_secret.clone()),
        ),
        (
            "revoked legacy token (ServiceAccount deleted)",
            Some(f.revoked_by_account.clone()),
        ),
        (
            "OIDC expired",
            Some(f.oidc_key.sign(&oidc_claims(&|c| c["exp"] = json!(now() - 3600)))),
        ),
        (
            "OIDC not yet valid",
            Some(f.oidc_key.sign(&oidc_claims(&|c| c["nbf"] = json!(now() + 3600)))),
        ),
        (
            "OIDC wrong audience",
            Some(f.oidc_key.sign(&oidc_claims(&|c| c["aud"] = json!("someone-else")))),
        ),
        (
            "OIDC wrong issuer",
            Some(
                f.oidc_key
                    .sign(&oidc_claims(&|c| c["iss"] = json!("https://other.example"))),
            ),
        ),
        (
            "OIDC wrong signature",
            Some(EcKey::generate("sso-key-1").sign(&oidc_claims(&|_| {}))),
        ),
        ("OIDC alg none", Some(unsigned(&oidc_claims(&|_| {})))),
        (
            "OIDC HS256 keyed with the public JWK",
            Some(hs256(
                &json!({"alg": "HS256", "typ": "JWT", "kid": "sso-key-1"}),
                &oidc_claims(&|_| {}),
                f.oidc_key.jwk().to_string().as_bytes(),
            )),
        ),
        (
            "OIDC without expiry",
            Some(f.oidc_key.sign(&oidc_claims(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }))),
        ),
    ];
    // A valid OIDC user claiming system:masters: the groups prefix turns the claim into the
    // harmless `sso:system:masters`, so this is a user without any binding: 403, not 401.
    credentials.push((
        "OIDC group system:masters",
        Some(f.oidc_key.sign(&oidc_claims(&|c| {
            c["sub"] = json!("mallory");
            c["groups"] = json!(["system:masters"]);
        }))),
    ));

    for (what, token) in &credentials {
        let client = client_with_token(hub, token.as_deref()).await;
        let expected = if *what == "OIDC group system:masters" { 403 } else { 401 };
        for (method, path, body) in requests() {
            let (status, text) = send(&client, method, path, body.as_ref()).await;
            assert_refused(what, method, path, status, &text, expected);
        }
    }

    // A valid token of another workspace: authenticated, but no workspace but its own
    // exists for it; unknown and forbidden workspaces answer alike.
    let client = client_with_token(hub, Some(&f.bot_token)).await;
    let mut bodies = Vec::new();
    for (method, path, body) in requests() {
        if path.contains("root:ws-a") || path == "/apis" {
            continue;
        }
        let (status, text) = send(&client, method, path, body.as_ref()).await;
        assert_refused("another workspace's token", method, path, status, &text, 403);
        bodies.push(text);
    }
    let (_, unknown) = send(&client, "GET", "/clusters/root:nonexistent/api/v1/namespaces", None).await;
    let (_, forbidden) = send(&client, "GET", "/clusters/root:ws-b/api/v1/namespaces", None).await;
    assert_eq!(
        unknown, forbidden,
        "unknown and forbidden workspaces must look the same"
    );
    // Even addressed by its logical cluster name.
    let ws_b: Value = admin_ok(hub, "GET", "/apis/tenancy.kcp.io/v1alpha1/workspaces/ws-b", None).await;
    let cluster_b = ws_b["spec"]["cluster"].as_str().unwrap();
    let (status, text) = send(
        &client,
        "GET",
        &format!("/clusters/{cluster_b}/api/v1/namespaces/default/secrets"),
        None,
    )
    .await;
    assert_refused(
        "another workspace's token by cluster name",
        "GET",
        "",
        status,
        &text,
        403,
    );
    // And the bot has no rights beyond its role inside its own workspace.
    let (status, text) = send(
        &client,
        "GET",
        "/clusters/root:ws-a/api/v1/namespaces/default/secrets/sentinel",
        None,
    )
    .await;
    assert_refused("the bot reading secrets", "GET", "", status, &text, 403);
    assert!(text.contains("cannot get resource \\\"secrets\\\""), "{text}");

    // The anonymous public endpoints stay public.
    let anonymous = client_with_token(hub, None).await;
    for path in [
        "/livez",
        "/readyz",
        "/healthz",
        "/version",
        "/.well-known/openid-configuration",
        "/openid/v1/jwks",
    ] {
        let (status, text) = send(&anonymous, "GET", path, None).await;
        assert_eq!(status, 200, "{path}: {text}");
    }
    let (_, jwks) = send(&anonymous, "GET", "/openid/v1/jwks", None).await;
    let jwks: Value = serde_json::from_str(&jwks).unwrap();
    assert_eq!(jwks["keys"][0]["kid"], hub_key.kid);
    assert!(
        jwks["keys"][0].get("d").is_none(),
        "the JWKS must not hold the private key"
    );

    // Audit: every one of those requests is a line, none carries the secret.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log = std::fs::read_to_string(f._files.join("audit.log")).unwrap();
    assert!(
        !log.contains(SENTINEL) && !log.contains(&b64(SENTINEL)),
        "the audit log holds secret data"
    );
    assert!(!log.contains(&f.bot_token), "the audit log holds a token");
    let lines: Vec<Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.len() > credentials.len() * requests().len());
    for field in [
        "time",
        "user",
        "groups",
        "workspace",
        "verb",
        "resource",
        "namespace",
        "name",
        "code",
        "latencyMs",
    ] {
        assert!(lines.iter().all(|l| l.get(field).is_some()), "audit lines lack {field}");
    }
    assert!(lines.iter().any(|l| l["code"] == 401));
    // What a request asked is audited even when the workspace gate refuses it.
    assert!(
        lines
            .iter()
            .any(|l| l["code"] == 403 && l["workspace"] == "" && l["resource"] != ""),
        "requests refused at the workspace gate are audited with what they asked"
    );
    let denied = lines
        .iter()
        .find(|l| {
            l["code"] == 403
                && l["user"] == "system:serviceaccount:default:bot"
                && l["resource"] == "secrets"
                && l["workspace"] == "root:ws-a"
        })
        .expect("the bot's forbidden secret read is audited");
    assert_eq!(denied["verb"], "get");
    assert_eq!(denied["name"], "sentinel");
    assert!(
        lines
            .iter()
            .any(|l| l["code"] == 201 && l["subresource"] == "token" && l["user"] == "faros-admin"),
        "TokenRequests are audited"
    );
}
