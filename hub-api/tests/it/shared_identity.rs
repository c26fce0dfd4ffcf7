//! `hub-api init` and `--pki-dir`: hubs started on one identity are one hub to their clients —
//! the same CA, a serving certificate for the load balancer's name, and credentials issued by
//! one accepted by the other: client certificates, and ServiceAccount tokens of replicas on
//! one etcd.

use std::process::Command;

use faros_testkit::etcd::Etcd;

use crate::common::{HUB, TestHub, kubectl_with};

#[test]
fn replicas_started_on_one_pki_directory_share_their_identity() {
    let pki = std::env::temp_dir().join(format!("faros-pki-{}", uuid::Uuid::new_v4()));
    let pki_arg = pki.to_str().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hub-api"))
        .args(["init", "--pki-dir", pki_arg, "--tls-san", "hub.example.internal"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("created the hub's CA"));
    for file in [
        "ca.crt",
        "ca.key",
        "serving.crt",
        "serving.key",
        "service-account-issuer",
    ] {
        assert!(pki.join(file).exists(), "{file}");
    }
    // By default the ServiceAccount issuer names the first --tls-san.
    assert_eq!(
        std::fs::read_to_string(pki.join("service-account-issuer"))
            .unwrap()
            .trim(),
        "https://hub.example.internal:6443"
    );
    // Running it again keeps what is there.
    let ca = std::fs::read_to_string(pki.join("ca.crt")).unwrap();
    let again = Command::new(env!("CARGO_BIN_EXE_hub-api"))
        .args(["init", "--pki-dir", pki_arg])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&again.stdout).contains("kept the hub's CA"));
    assert_eq!(std::fs::read_to_string(pki.join("ca.crt")).unwrap(), ca);

    let args = ["--pki-dir", pki_arg, "--tls-san", "hub.example.internal"];
    let a = TestHub::start_with_args(HUB, false, &args);
    let b = TestHub::start_with_args(HUB, false, &args);
    assert_eq!(a.ca_pem(), ca);
    assert_eq!(b.ca_pem(), ca);

    // A's admin credentials work against B.
    let mut kubeconfig = kube::config::Kubeconfig::read_from(a.kubeconfig()).unwrap();
    for cluster in kubeconfig.clusters.iter_mut().filter_map(|c| c.cluster.as_mut()) {
        cluster.server = Some(b.url());
    }
    let a_on_b = a.dir.join("a-on-b.kubeconfig");
    faros_kubeconfig::write(&a_on_b, &kubeconfig).unwrap();
    let out = kubectl_with(&a_on_b, "1.32", &["get", "namespaces"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // The serving certificate names the load balancer: a client that reaches B under that
    // name verifies it (the name resolves through --tls-server-name here).
    let out = kubectl_with(
        &a_on_b,
        "1.32",
        &["get", "namespaces", "--tls-server-name", "hub.example.internal"],
        None,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = kubectl_with(
        &a_on_b,
        "1.32",
        &["get", "namespaces", "--tls-server-name", "other.example.internal"],
        None,
    );
    assert!(
        !out.status.success(),
        "a name the certificate does not carry is refused"
    );
    let _ = std::fs::remove_dir_all(&pki);
}

/// Replicas on one etcd at different addresses, sharing a PKI directory that the first one
/// created (no `hub-api init`): a ServiceAccount token one of them issued is accepted by the
/// other, since the issuer recorded in the directory, not each replica's own URL, is the one
/// they sign and check.
#[test]
fn a_token_issued_by_one_replica_is_valid_on_another() {
    let etcd = Etcd::start();
    let pki = std::env::temp_dir().join(format!("faros-pki-{}", uuid::Uuid::new_v4()));
    let args = etcd.hub_args("/tokens", Some(&pki));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let a = TestHub::start_with_args(HUB, false, &args);
    let b = TestHub::start_with_args(HUB, false, &args);
    assert_ne!(a.url(), b.url());
    let ok = |hub: &TestHub, args: &[&str]| {
        let out = kubectl_with(&hub.kubeconfig(), "1.32", args, None);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    ok(&a, &["create", "serviceaccount", "bot", "-n", "default"]);
    let token = ok(&a, &["create", "token", "bot", "-n", "default"]);
    for hub in [&a, &b] {
        let kubeconfig = hub.token_kubeconfig("bot", &hub.url(), token.trim(), Some("default"));
        let out = kubectl_with(
            &kubeconfig,
            "1.32",
            &["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"],
            None,
        );
        assert!(
            out.status.success(),
            "the token issued by {} on {}: {}",
            a.url(),
            hub.url(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "system:serviceaccount:default:bot"
        );
    }
    let issuer = std::fs::read_to_string(pki.join("service-account-issuer")).unwrap();
    assert_eq!(issuer.trim(), a.url(), "the first replica recorded its URL");
    let _ = std::fs::remove_dir_all(&pki);
}
