//! OIDC keys found through the issuer's discovery document and fetched again as they rotate:
//! a real HTTPS issuer, served by this test, rotates its signing key while the hub runs.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};

use crate::auth_support::{EcKey, now};
use crate::common::{HUB, TestHub};

/// The issuer: its discovery document and its current JWKS, counting the JWKS fetches.
struct Issuer {
    url: String,
    jwks: Mutex<Value>,
    jwks_fetches: AtomicUsize,
}

/// Serves the issuer over HTTPS on a loopback port; returns it and its CA (PEM).
async fn start_issuer(first_key: &EcKey) -> (Arc<Issuer>, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let cert_pem = certified.cert.pem();
    let chain = vec![CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(certified.signing_key.serialize_pem().as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = Arc::new(Issuer {
        url: format!("https://127.0.0.1:{}", listener.local_addr().unwrap().port()),
        jwks: Mutex::new(json!({"keys": [first_key.jwk()]})),
        jwks_fetches: AtomicUsize::new(0),
    });
    let serving = issuer.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (acceptor, issuer) = (acceptor.clone(), serving.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let issuer = issuer.clone();
                    async move {
                        let body = match request.uri().path() {
                            "/.well-known/openid-configuration" => {
                                json!({"issuer": issuer.url, "jwks_uri": format!("{}/keys", issuer.url)})
                            }
                            "/keys" => {
                                issuer.jwks_fetches.fetch_add(1, Ordering::SeqCst);
                                issuer.jwks.lock().unwrap().clone()
                            }
                            _ => {
                                let mut missing = hyper::Response::new(Full::new(Bytes::new()));
                                *missing.status_mut() = http::StatusCode::NOT_FOUND;
                                return Ok::<_, Infallible>(missing);
                            }
                        };
                        Ok(hyper::Response::new(Full::new(Bytes::from(body.to_string()))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (issuer, cert_pem)
}

fn token(key: &EcKey, issuer: &str, user: &str) -> String {
    key.sign(&json!({
        "iss": issuer, "aud": "faros", "sub": user, "exp": now() + 600, "iat": now(),
        "jti": uuid::Uuid::new_v4().to_string(),
    }))
}

/// Who the hub says the bearer of `token` is, or kubectl's error.
fn whoami(hub: &TestHub, token: &str) -> Result<String, String> {
    let kubeconfig = hub.token_kubeconfig(&format!("oidc-{}", &token[token.len() - 8..]), &hub.url(), token, None);
    let out = crate::auth_support::kubectl(
        &kubeconfig,
        &["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"],
    );
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_discovered_and_follow_rotation() {
    let first = EcKey::generate("key-1");
    let (issuer, ca_pem) = start_issuer(&first).await;
    let files = std::env::temp_dir().join(format!("faros-oidc-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&files).unwrap();
    let ca_file = files.join("issuer-ca.pem");
    std::fs::write(&ca_file, &ca_pem).unwrap();
    let hub = TestHub::start_with_args(
        HUB,
        false,
        &[
            "--oidc-issuer-url",
            &issuer.url,
            "--oidc-client-id",
            "faros",
            "--oidc-ca-file",
            ca_file.to_str().unwrap(),
            "--oidc-username-prefix",
            "sso:",
        ],
    );

    // Entering the workspace needs a binding that names the user.
    hub.kubectl_ok(
        "1.32",
        &[
            "create",
            "clusterrolebinding",
            "sso-users",
            "--clusterrole=system:basic-user",
            "--user=sso:alice",
            "--user=sso:bob",
        ],
    );

    // The key published at start verifies tokens.
    assert_eq!(
        whoami(&hub, &token(&first, &issuer.url, "alice")).as_deref(),
        Ok("sso:alice")
    );
    let fetched = issuer.jwks_fetches.load(Ordering::SeqCst);
    assert!(fetched >= 1);

    // The issuer rotates: the first token naming the new key makes the hub fetch again.
    let second = EcKey::generate("key-2");
    *issuer.jwks.lock().unwrap() = json!({"keys": [second.jwk()]});
    assert_eq!(
        whoami(&hub, &token(&second, &issuer.url, "bob")).as_deref(),
        Ok("sso:bob")
    );
    assert_eq!(issuer.jwks_fetches.load(Ordering::SeqCst), fetched + 1);

    // The retired key no longer verifies new tokens, and unknown keys right after a fetch do
    // not cause another one.
    let err = whoami(&hub, &token(&first, &issuer.url, "alice")).unwrap_err();
    assert!(err.contains("Unauthorized"), "{err}");
    let err = whoami(&hub, &token(&EcKey::generate("made-up"), &issuer.url, "mallory")).unwrap_err();
    assert!(err.contains("Unauthorized"), "{err}");
    assert_eq!(issuer.jwks_fetches.load(Ordering::SeqCst), fetched + 1);

    // Tokens of other issuers never make the hub fetch.
    let err = whoami(&hub, &token(&second, "https://elsewhere.example", "eve")).unwrap_err();
    assert!(err.contains("Unauthorized"), "{err}");
    assert_eq!(issuer.jwks_fetches.load(Ordering::SeqCst), fetched + 1);
    std::fs::remove_dir_all(&files).ok();
}
