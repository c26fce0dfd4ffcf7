//! Transport options: a serving certificate of one's own (`--tls-cert-file`,
//! `--tls-private-key-file`), client certificates from another CA (`--client-ca-file`), and
//! TLS 1.2 as the floor.

use std::path::Path;
use std::process::Command;

use crate::auth_support::*;
use crate::common::{HUB, TestHub};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

fn ca(name: &str) -> (CertificateParams, KeyPair, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let cert = params.self_signed(&key).unwrap();
    (params, key, cert.pem())
}

fn write(dir: &Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.to_string_lossy().into_owned()
}

#[tokio::test]
async fn own_serving_certificate_and_client_ca() {
    let files = std::env::temp_dir().join(format!("faros-transport-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&files).unwrap();

    // A serving certificate from a CA of our own.
    let (serving_ca_params, serving_ca_key, serving_ca_pem) = ca("test serving CA");
    let serving_issuer = Issuer::new(serving_ca_params, serving_ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, "my-hub");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_pem = leaf.signed_by(&leaf_key, &serving_issuer).unwrap().pem();
    let chain = write(&files, "serving.crt", &format!("{leaf_pem}{serving_ca_pem}"));
    let key = write(&files, "serving.key", &leaf_key.serialize_pem());

    // Client certificates from another CA.
    let (client_ca_params, client_ca_key, client_ca_pem) = ca("partner CA");
    let client_issuer = Issuer::new(client_ca_params, client_ca_key);
    let carol_key = KeyPair::generate().unwrap();
    let mut carol = CertificateParams::new(Vec::<String>::new()).unwrap();
    carol.distinguished_name = DistinguishedName::new();
    carol.distinguished_name.push(DnType::CommonName, "carol");
    carol.distinguished_name.push(DnType::OrganizationName, "partners");
    carol.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let carol_pem = carol.signed_by(&carol_key, &client_issuer).unwrap().pem();
    let client_ca = write(&files, "client-ca.crt", &client_ca_pem);

    let hub = TestHub::start_with_args(
        HUB,
        true,
        &[
            "--tls-cert-file",
            &chain,
            "--tls-private-key-file",
            &key,
            "--client-ca-file",
            &client_ca,
        ],
    );
    // The admin kubeconfig trusts the new chain, and the controllers (over loopback) work.
    kubectl_ok(&hub.kubeconfig(), &["get", "namespaces"]);
    create_workspace(&hub, "after-tls").await;

    // A kubeconfig trusting only our serving CA reaches the hub: it serves our certificate.
    let kc = files.join("carol.kubeconfig");
    let carol_key_pem = carol_key.serialize_pem();
    let carol_kubeconfig = faros_kubeconfig::all_named(
        "hub",
        &hub.url(),
        &serving_ca_pem,
        faros_kubeconfig::Credential::ClientCert {
            cert_pem: &carol_pem,
            key_pem: &carol_key_pem,
        },
        None,
    );
    faros_kubeconfig::write(&kc, &carol_kubeconfig).unwrap();
    // carol is authenticated by the partner CA, but has no business in root yet.
    kubectl_forbidden(&kc, &["get", "namespaces"]);
    kubectl_ok(
        &hub.kubeconfig(),
        &[
            "create",
            "clusterrolebinding",
            "partners-view",
            "--clusterrole=view",
            "--group=partners",
        ],
    );
    let whoami = kubectl_ok(&kc, &["auth", "whoami"]);
    assert!(whoami.contains("carol") && whoami.contains("partners"), "{whoami}");
    kubectl_ok(&kc, &["get", "namespaces"]);
    kubectl_forbidden(&kc, &["create", "namespace", "x"]);

    // TLS below 1.2 is refused (when curl can even try).
    if let Ok(out) = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-k", "--tlsv1.0", "--tls-max", "1.1"])
        .arg(format!("{}/version", hub.url()))
        .output()
    {
        assert!(!out.status.success(), "a TLS 1.1 handshake succeeded");
    }
    if let Ok(out) = Command::new("curl")
        .args(["-s", "-k", "--tlsv1.2", "--tls-max", "1.2"])
        .arg(format!("{}/version", hub.url()))
        .output()
    {
        assert!(out.status.success(), "TLS 1.2 must work");
    }
    let _ = std::fs::remove_dir_all(&files);
}
