//! Helpers of the authentication and authorization tests: raw HTTP requests with any bearer
//! token, hand-made JWTs (ring), workspaces created through the API, kubectl with a token.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use base64::Engine;
use http_body_util::BodyExt;
use ring::signature::{self, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};

use crate::common::{self, TestHub, eventually};

pub const V: &str = "1.32";

pub fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A kube client trusting the hub, authenticating with `token` (or nothing).
pub async fn client_with_token(hub: &TestHub, token: Option<&str>) -> kube::Client {
    let mut config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(hub.kubeconfig()).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    config.auth_info = kube::config::AuthInfo::default();
    if let Some(token) = token {
        config.auth_info.token = Some(token.to_string().into());
    }
    kube::Client::try_from(config).unwrap()
}

/// Sends one request; returns the status code and the body as text.
pub async fn send(client: &kube::Client, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
    let bytes = body.map(|b| serde_json::to_vec(b).unwrap()).unwrap_or_default();
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(kube::client::Body::from(bytes))
        .unwrap();
    let response = client.send(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

pub async fn admin(hub: &TestHub) -> kube::Client {
    hub.client().await
}

/// Sends as the admin and asserts a 2xx (or 409 for creates of existing objects).
pub async fn admin_ok(hub: &TestHub, method: &str, path: &str, body: Option<&Value>) -> Value {
    let client = admin(hub).await;
    let (status, text) = send(&client, method, path, body).await;
    assert!(
        (200..300).contains(&status),
        "{method} {path} as admin: {status} {text}"
    );
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Creates a Workspace under root through the API with `client` and waits until it is Ready.
pub async fn create_workspace_as(client: &kube::Client, name: &str) {
    let ws = json!({"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace", "metadata": {"name": name}});
    let (status, text) = send(client, "POST", "/apis/tenancy.kcp.io/v1alpha1/workspaces", Some(&ws)).await;
    assert_eq!(status, 201, "creating workspace {name}: {text}");
    wait_ready(client, name).await;
}

pub async fn wait_ready(client: &kube::Client, name: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, text) = send(
            client,
            "GET",
            &format!("/apis/tenancy.kcp.io/v1alpha1/workspaces/{name}"),
            None,
        )
        .await;
        if status == 200 {
            let ws: Value = serde_json::from_str(&text).unwrap();
            if ws["status"]["phase"] == "Ready" {
                return;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "workspace {name} never became Ready: {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// As the platform admin, lets members of `group` create workspaces in root (each then owns
/// the workspace it creates).
pub fn let_group_create_workspaces(hub: &TestHub, group: &str) {
    let root_admin = hub.kubeconfig();
    kubectl_stdin_ok(
        &root_admin,
        &["apply", "-f", "-"],
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: workspace-creator}\nrules:\n- apiGroups: [tenancy.kcp.io]\n  resources: [workspaces]\n  verbs: [create, get, list, watch]\n",
    );
    kubectl_ok(
        &root_admin,
        &[
            "create",
            "clusterrolebinding",
            &format!("{group}-create-workspaces"),
            "--clusterrole=workspace-creator",
            &format!("--group={group}"),
        ],
    );
}

pub async fn create_workspace(hub: &TestHub, name: &str) {
    create_workspace_as(&admin(hub).await, name).await;
}

/// A copy of the admin kubeconfig pointing at a workspace.
pub fn admin_kubeconfig_for(hub: &TestHub, workspace: &str) -> PathBuf {
    hub.admin_kubeconfig_at(
        &hub.workspace_url(workspace),
        &format!("admin-{}.kubeconfig", workspace.replace(':', "_")),
    )
}

pub fn kubectl(kubeconfig: &Path, args: &[&str]) -> Output {
    common::kubectl_with(kubeconfig, V, args, None)
}

pub fn kubectl_stdin(kubeconfig: &Path, args: &[&str], stdin: &str) -> Output {
    common::kubectl_with(kubeconfig, V, args, Some(stdin))
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn kubectl_ok(kubeconfig: &Path, args: &[&str]) -> String {
    let out = kubectl(kubeconfig, args);
    assert!(
        out.status.success(),
        "kubectl {args:?} failed:\nstdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

pub fn kubectl_stdin_ok(kubeconfig: &Path, args: &[&str], stdin: &str) -> String {
    let out = kubectl_stdin(kubeconfig, args, stdin);
    assert!(
        out.status.success(),
        "kubectl {args:?} failed:\nstdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// Asserts kubectl failed because the request was forbidden; returns stderr.
pub fn kubectl_forbidden(kubeconfig: &Path, args: &[&str]) -> String {
    let out = kubectl(kubeconfig, args);
    let err = stderr(&out);
    assert!(
        !out.status.success()
            && (err.contains("forbidden")
                || err.contains("Forbidden")
                || err.contains("workspace access not permitted")),
        "kubectl {args:?} should have been forbidden:\nstdout: {}\nstderr: {err}",
        stdout(&out)
    );
    err
}

/// `kubectl create token` as `admin_kubeconfig`; returns the token.
pub fn create_token(admin_kubeconfig: &Path, namespace: &str, sa: &str, extra: &[&str]) -> String {
    let mut args = vec!["create", "token", sa, "-n", namespace];
    args.extend_from_slice(extra);
    kubectl_ok(admin_kubeconfig, &args).trim().to_string()
}

/// Waits until a legacy token Secret holds its token; returns it (decoded).
pub fn wait_legacy_token(admin_kubeconfig: &Path, namespace: &str, secret: &str) -> String {
    let mut token = String::new();
    assert!(
        eventually(Duration::from_secs(20), || {
            let out = kubectl(
                admin_kubeconfig,
                &["get", "secret", secret, "-n", namespace, "-o", "jsonpath={.data.token}"],
            );
            let data = stdout(&out);
            if !out.status.success() || data.trim().is_empty() {
                return false;
            }
            token = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(data.trim()).unwrap()).unwrap();
            true
        }),
        "the token controller never filled {namespace}/{secret}"
    );
    token
}

/// A compact JWT with the given header and claims, signed by `sign`.
pub fn jwt(header: &Value, claims: &Value, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
    let msg = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let signature = sign(msg.as_bytes());
    format!("{msg}.{}", b64url(&signature))
}

/// An ECDSA P-256 key (PKCS#8) for signing test tokens.
pub struct EcKey {
    pub pkcs8: Vec<u8>,
    pub kid: String,
}

impl EcKey {
    pub fn generate(kid: &str) -> EcKey {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        EcKey {
            pkcs8: pkcs8.as_ref().to_vec(),
            kid: kid.into(),
        }
    }

    /// The hub's own ServiceAccount signing key, read from its data directory.
    pub fn hub_key(hub: &TestHub) -> EcKey {
        use rustls::pki_types::PrivateKeyDer;
        use rustls::pki_types::pem::PemObject;
        let pem = std::fs::read(hub.dir.join("pki").join("service-account.key")).unwrap();
        let der = match PrivateKeyDer::from_pem_slice(&pem).unwrap() {
            PrivateKeyDer::Pkcs8(der) => der.secret_pkcs8_der().to_vec(),
            other => panic!("unexpected key type {other:?}"),
        };
        let mut key = EcKey {
            pkcs8: der,
            kid: String::new(),
        };
        key.kid = key.jwk()["kid"].as_str().unwrap().to_string();
        key
    }

    fn pair(&self) -> EcdsaKeyPair {
        EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &self.pkcs8,
            &ring::rand::SystemRandom::new(),
        )
        .unwrap()
    }

    pub fn point(&self) -> Vec<u8> {
        self.pair().public_key().as_ref().to_vec()
    }

    /// The public JWK, with the RFC 7638 thumbprint as kid when none was given.
    pub fn jwk(&self) -> Value {
        let point = self.point();
        let (x, y) = (b64url(&point[1..33]), b64url(&point[33..]));
        let kid = if self.kid.is_empty() {
            let input = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
            b64url(ring::digest::digest(&ring::digest::SHA256, input.as_bytes()).as_ref())
        } else {
            self.kid.clone()
        };
        json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "use": "sig", "alg": "ES256"})
    }

    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
        self.sign_with_header(&header, claims)
    }

    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let pair = self.pair();
        jwt(header, claims, |msg| {
            pair.sign(&ring::rand::SystemRandom::new(), msg)
                .unwrap()
                .as_ref()
                .to_vec()
        })
    }
}

/// HS256 over the token with `secret` as the key.
pub fn hs256(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    jwt(header, claims, |msg| ring::hmac::sign(&key, msg).as_ref().to_vec())
}

/// `alg: none`, no signature.
pub fn unsigned(claims: &Value) -> String {
    format!(
        "{}.{}.",
        b64url(br#"{"alg":"none","typ":"JWT"}"#),
        b64url(claims.to_string().as_bytes())
    )
}

/// Claims shaped like the hub's bound ServiceAccount tokens.
pub fn sa_claims(issuer: &str, cluster: &str, namespace: &str, name: &str, uid: &str, exp: i64) -> Value {
    json!({
        "iss": issuer,
        "sub": format!("system:serviceaccount:{namespace}:{name}"),
        "aud": [issuer],
        "exp": exp,
        "iat": exp - 3600,
        "nbf": exp - 3600,
        "kubernetes.io": {
            "namespace": namespace,
            "serviceaccount": {"name": name, "uid": uid},
            "clusterName": cluster,
        },
    })
}
