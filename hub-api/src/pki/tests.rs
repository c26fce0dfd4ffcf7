use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::KeyPair;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::ca::*;
use super::der::*;
use super::*;

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("faros-pki-test-{}-{tag}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn parse(pem: &str) -> (CertificateDer<'static>, i64, i64, Vec<San>) {
    let der = pem_to_cert_der(pem).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let v = cert.validity();
    let (nb, na) = (v.not_before.timestamp(), v.not_after.timestamp());
    let sans = cert_sans(&cert).unwrap();
    (der.clone(), nb, na, sans)
}

fn sans(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn create_then_reload_keeps_ca_and_serving_cert() {
    let dir = TempDir::new("reload");
    let first = Pki::load_or_create(&dir.0, &sans(&["hub.example.com"])).unwrap();
    assert!(first.ca_created);
    assert!(first.serving_issued);
    let pki_dir = dir.0.join("pki");
    for file in [CA_CERT_FILE, CA_KEY_FILE, SERVING_CERT_FILE, SERVING_KEY_FILE] {
        assert!(pki_dir.join(file).is_file(), "{file} missing");
    }
    assert_eq!(mode_of(&pki_dir.join(CA_KEY_FILE)), 0o600);
    assert_eq!(mode_of(&pki_dir.join(SERVING_KEY_FILE)), 0o600);
    assert_eq!(mode_of(&pki_dir), 0o700);
    assert_eq!(first.ca_cert_path(), pki_dir.join(CA_CERT_FILE));
    // No temporary files are left behind.
    let names: Vec<String> = fs::read_dir(&pki_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");

    let second = Pki::load_or_create(&dir.0, &sans(&["hub.example.com"])).unwrap();
    assert!(!second.ca_created);
    assert!(!second.serving_issued);
    assert_eq!(first.ca_cert_pem, second.ca_cert_pem);
    assert_eq!(first.ca_key.serialize_pem(), second.ca_key.serialize_pem());
    assert_eq!(first.serving_cert_pem, second.serving_cert_pem);
    assert_eq!(first.serving_key_pem, second.serving_key_pem);
    assert_eq!(
        fs::read_to_string(pki_dir.join(CA_CERT_FILE)).unwrap(),
        first.ca_cert_pem
    );
}

#[test]
fn ca_certificate_properties() {
    let dir = TempDir::new("ca");
    let pki = Pki::load_or_create(&dir.0, &[]).unwrap();
    let der = pki.ca_cert_der();
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    assert!(cert.is_ca());
    let cn = cert.subject().iter_common_name().next().unwrap();
    assert_eq!(cn.as_str().unwrap(), CA_COMMON_NAME);
    assert_eq!(cert.subject(), cert.issuer());
    let now = unix_now();
    let not_after = cert.validity().not_after.timestamp();
    let ten_years = secs(CA_VALIDITY);
    assert!((not_after - now - ten_years).abs() < 3600, "CA lifetime");
    assert_eq!(
        cert.public_key().algorithm.algorithm,
        x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY
    );
    assert_eq!(pki.ca_key.algorithm(), &rcgen::PKCS_ECDSA_P256_SHA256);
}

#[test]
fn serving_cert_has_default_and_requested_sans() {
    let dir = TempDir::new("sans");
    let pki = Pki::load_or_create(
        &dir.0,
        &sans(&["Hub.Example.com.", "10.1.2.3", "[fd00::7]", " ", "localhost"]),
    )
    .unwrap();
    let (der, not_before, not_after, present) = parse(&pki.serving_cert_pem);
    let expected = vec![
        San::Dns("localhost".into()),
        San::Ip("127.0.0.1".parse().unwrap()),
        San::Ip("::1".parse().unwrap()),
        San::Dns("hub.example.com".into()),
        San::Ip("10.1.2.3".parse().unwrap()),
        San::Ip("fd00::7".parse().unwrap()),
    ];
    assert_eq!(present, expected);
    let now = unix_now();
    assert!(not_before <= now);
    assert!((not_after - now - secs(SERVING_VALIDITY)).abs() < 3600);
    assert!(pki.chains_to_ca(&der));
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert!(!cert.is_ca());
    let cn = cert.subject().iter_common_name().next().unwrap();
    assert_eq!(cn.as_str().unwrap(), SERVING_COMMON_NAME);
}

#[test]
fn invalid_san_is_rejected() {
    let dir = TempDir::new("badsan");
    let err = Pki::load_or_create(&dir.0, &sans(&["not a name"])).unwrap_err();
    assert!(err.to_string().contains("not a name"), "{err:#}");
}

#[test]
fn san_change_reissues_serving_cert_but_keeps_ca() {
    let dir = TempDir::new("sanchange");
    let first = Pki::load_or_create(&dir.0, &sans(&["a.example.com"])).unwrap();

    // Same names in another spelling, or a subset: nothing changes.
    let same = Pki::load_or_create(&dir.0, &sans(&["A.EXAMPLE.COM", "::1"])).unwrap();
    assert!(!same.serving_issued);
    assert_eq!(same.serving_cert_pem, first.serving_cert_pem);
    let fewer = Pki::load_or_create(&dir.0, &[]).unwrap();
    assert!(!fewer.serving_issued);

    let changed = Pki::load_or_create(&dir.0, &sans(&["a.example.com", "192.168.7.7"])).unwrap();
    assert!(changed.serving_issued);
    assert!(!changed.ca_created);
    assert_eq!(changed.ca_cert_pem, first.ca_cert_pem);
    assert_ne!(changed.serving_cert_pem, first.serving_cert_pem);
    assert_ne!(changed.serving_key_pem, first.serving_key_pem);
    let (der, _, _, present) = parse(&changed.serving_cert_pem);
    assert!(present.contains(&San::Ip("192.168.7.7".parse().unwrap())));
    assert!(present.contains(&San::Dns("a.example.com".into())));
    assert!(changed.chains_to_ca(&der));
    assert_eq!(
        fs::read_to_string(dir.0.join("pki").join(SERVING_CERT_FILE)).unwrap(),
        changed.serving_cert_pem
    );
}

#[test]
fn serving_cert_expiring_soon_is_reissued() {
    let dir = TempDir::new("expiry");
    let mut pki = Pki::load_or_create(&dir.0, &[]).unwrap();
    let wanted = requested_sans(&[]).unwrap();
    // Replace the serving certificate with one that expires in 10 days.
    fs::remove_file(dir.0.join("pki").join(SERVING_CERT_FILE)).unwrap();
    pki.ensure_serving_cert(&wanted, 10 * DAY).unwrap();
    let (_, _, short_not_after, _) = parse(&pki.serving_cert_pem);
    assert!(short_not_after < unix_now() + secs(11 * DAY));

    let reloaded = Pki::load_or_create(&dir.0, &[]).unwrap();
    assert!(reloaded.serving_issued);
    let (_, _, not_after, _) = parse(&reloaded.serving_cert_pem);
    assert!(not_after > unix_now() + secs(300 * DAY));
    // And a fresh one is kept.
    assert!(!Pki::load_or_create(&dir.0, &[]).unwrap().serving_issued);
}

#[test]
fn broken_or_foreign_serving_cert_is_reissued() {
    let dir = TempDir::new("broken");
    let pki_dir = dir.0.join("pki");
    let first = Pki::load_or_create(&dir.0, &[]).unwrap();

    // A key that does not match the certificate.
    let other_key = new_key().unwrap().serialize_pem();
    fs::write(pki_dir.join(SERVING_KEY_FILE), other_key).unwrap();
    let second = Pki::load_or_create(&dir.0, &[]).unwrap();
    assert!(second.serving_issued);

    // Garbage in the certificate file.
    fs::write(pki_dir.join(SERVING_CERT_FILE), "garbage").unwrap();
    assert!(Pki::load_or_create(&dir.0, &[]).unwrap().serving_issued);

    // A new CA (old one removed): the old serving cert no longer chains.
    let serving_before = fs::read_to_string(pki_dir.join(SERVING_CERT_FILE)).unwrap();
    fs::remove_file(pki_dir.join(CA_CERT_FILE)).unwrap();
    fs::remove_file(pki_dir.join(CA_KEY_FILE)).unwrap();
    let third = Pki::load_or_create(&dir.0, &[]).unwrap();
    assert!(third.ca_created);
    assert!(third.serving_issued);
    assert_ne!(third.ca_cert_pem, first.ca_cert_pem);
    assert_ne!(third.serving_cert_pem, serving_before);
    let (der, ..) = parse(&third.serving_cert_pem);
    assert!(third.chains_to_ca(&der));
}

#[test]
fn half_present_ca_is_an_error() {
    let dir = TempDir::new("halfca");
    Pki::load_or_create(&dir.0, &[]).unwrap();
    fs::remove_file(dir.0.join("pki").join(CA_KEY_FILE)).unwrap();
    let err = Pki::load_or_create(&dir.0, &[]).unwrap_err();
    assert!(err.to_string().contains(CA_KEY_FILE), "{err:#}");
}

#[test]
fn mismatched_ca_key_is_an_error() {
    let dir = TempDir::new("badcakey");
    Pki::load_or_create(&dir.0, &[]).unwrap();
    let other = new_key().unwrap().serialize_pem();
    fs::write(dir.0.join("pki").join(CA_KEY_FILE), other).unwrap();
    let err = Pki::load_or_create(&dir.0, &[]).unwrap_err();
    assert!(format!("{err:#}").contains("does not belong"), "{err:#}");
}

#[test]
fn loose_key_permissions_are_tightened() {
    let dir = TempDir::new("perms");
    Pki::load_or_create(&dir.0, &[]).unwrap();
    let key = dir.0.join("pki").join(CA_KEY_FILE);
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    Pki::load_or_create(&dir.0, &[]).unwrap();
    assert_eq!(mode_of(&key), 0o600);
}

#[test]
fn client_cert_carries_user_and_groups() {
    let dir = TempDir::new("client");
    let pki = Pki::load_or_create(&dir.0, &[]).unwrap();
    let (cert_pem, key_pem) = pki
        .issue_client_cert(
            "alice",
            &["system:masters", "", "faros:edge", "ünïcode"],
            Duration::from_secs(3600),
        )
        .unwrap();
    let der = pem_to_cert_der(&cert_pem).unwrap();
    assert_eq!(
        client_cert_identity(&der),
        Some((
            "alice".to_string(),
            vec![
                "system:masters".to_string(),
                "faros:edge".to_string(),
                "ünïcode".to_string()
            ]
        ))
    );
    // The key belongs to the certificate, and the issuer is the CA.
    let key = KeyPair::from_pem(&key_pem).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert_eq!(cert.public_key().subject_public_key.data.as_ref(), key.public_key_raw());
    let (_, ca) = x509_parser::parse_x509_certificate(pki.ca_cert_der()).unwrap();
    assert_eq!(cert.issuer(), ca.subject());
    assert!(!cert.is_ca());
    let lifetime = cert.validity().not_after.timestamp() - unix_now();
    assert!((3500..=3600).contains(&lifetime), "{lifetime}");

    let (plain, _) = pki.issue_client_cert("bob", &[], Duration::from_secs(60)).unwrap();
    let der = pem_to_cert_der(&plain).unwrap();
    assert_eq!(client_cert_identity(&der), Some(("bob".to_string(), vec![])));
}

#[test]
fn client_cert_validity_is_capped_at_ca_and_checked() {
    let dir = TempDir::new("clientvalidity");
    let pki = Pki::load_or_create(&dir.0, &[]).unwrap();
    let (pem, _) = pki
        .issue_client_cert("carol", &["g"], Duration::from_secs(50 * 365 * 86400))
        .unwrap();
    let (_, _, not_after, _) = parse(&pem);
    assert_eq!(not_after, pki.ca_not_after);
    assert!(pki.issue_client_cert("carol", &[], Duration::ZERO).is_err());
    assert!(pki.issue_client_cert("", &[], Duration::from_secs(60)).is_err());
}

#[test]
fn client_cert_identity_rejects_garbage() {
    assert_eq!(client_cert_identity(b"not a certificate"), None);
    assert_eq!(client_cert_identity(&[]), None);
}

#[test]
fn client_cert_subject_is_encoded_as_go_does() {
    let dir = TempDir::new("subject");
    let pki = Pki::load_or_create(&dir.0, &[]).unwrap();
    let (pem, _) = pki.issue_client_cert("u", &["g"], Duration::from_secs(60)).unwrap();
    let der = pem_to_cert_der(&pem).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    // SEQUENCE { SET { SEQUENCE { O, UTF8String "g" } }, SET { SEQUENCE { CN, UTF8String "u" } } }
    let expected = [
        0x30, 0x18, 0x31, 0x0a, 0x30, 0x08, 0x06, 0x03, 0x55, 0x04, 0x0a, 0x0c, 0x01, b'g', 0x31, 0x0a, 0x30, 0x08,
        0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x01, b'u',
    ];
    assert_eq!(cert.subject().as_raw(), &expected[..]);
    // The CA signed what it issued.
    let (_, ca) = x509_parser::parse_x509_certificate(pki.ca_cert_der()).unwrap();
    cert.verify_signature(Some(ca.public_key())).unwrap();
}

#[test]
fn certificates_survive_decoding_and_encoding_unchanged() {
    use x509_cert::der::{Decode as _, Encode as _};
    // What `with_subject` relies on: every field it does not replace is written back as
    // rcgen wrote it.
    let dir = TempDir::new("roundtrip");
    let pki = Pki::load_or_create(&dir.0, &[]).unwrap();
    let (client, _) = pki
        .issue_client_cert("alice", &["a", "b"], Duration::from_secs(60))
        .unwrap();
    for pem in [&pki.ca_cert_pem, &pki.serving_cert_pem, &client] {
        let der = pem_to_cert_der(pem).unwrap();
        let decoded = x509_cert::Certificate::from_der(&der).unwrap();
        assert_eq!(decoded.to_der().unwrap(), der.to_vec());
    }
}

#[test]
fn server_config_builds() {
    let dir = TempDir::new("config");
    let pki = Pki::load_or_create(&dir.0, &[]).unwrap();
    let config = pki.server_config(None).unwrap();
    assert_eq!(config.alpn_protocols, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
    let other_dir = TempDir::new("config-other");
    let other = Pki::load_or_create(&other_dir.0, &[]).unwrap();
    let bundle = format!("{}{}", other.ca_cert_pem, pki.ca_cert_pem);
    pki.server_config(Some(&bundle)).unwrap();
    assert!(pki.server_config(Some("no pem here")).is_err());
}

enum ClientAuth<'a> {
    None,
    Cert(&'a str, &'a str),
}

struct Outcome {
    server: std::io::Result<Option<(String, Vec<String>)>>,
    alpn: Option<Vec<u8>>,
    version: Option<rustls::ProtocolVersion>,
}

/// Runs one handshake over an in-memory pipe and, when the server
/// accepts, exchanges a message both ways.
async fn handshake(
    server_config: rustls::ServerConfig,
    ca_pem: &str,
    auth: ClientAuth<'_>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Outcome {
    let mut roots = RootCertStore::empty();
    roots.add(pem_to_cert_der(ca_pem).unwrap()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(ring_provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    let mut client_config = match auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Cert(cert, key) => builder
            .with_client_auth_cert(
                vec![pem_to_cert_der(cert).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
    };
    client_config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let acceptor = TlsAcceptor::from(Arc::new(server_config));
    let connector = TlsConnector::from(Arc::new(client_config));

    let server = async move {
        let mut tls = acceptor.accept(server_io).await?;
        let (_, conn) = tls.get_ref();
        let identity = conn
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|leaf| client_cert_identity(leaf).expect("identity in peer certificate"));
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"ping");
        tls.write_all(b"pong").await?;
        tls.flush().await?;
        Ok(identity)
    };
    let client = async move {
        let name = ServerName::try_from("localhost").unwrap();
        let mut tls = connector.connect(name, client_io).await?;
        let (_, conn) = tls.get_ref();
        let alpn = conn.alpn_protocol().map(<[u8]>::to_vec);
        let version = conn.protocol_version();
        tls.write_all(b"ping").await?;
        tls.flush().await?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"pong");
        std::io::Result::Ok((alpn, version))
    };
    let (server, client) = tokio::join!(server, client);
    let (alpn, version) = match (&server, client) {
        (Ok(_), Ok(info)) => info,
        (Ok(_), Err(e)) => panic!("server accepted but client failed: {e}"),
        (Err(_), _) => (None, None),
    };
    Outcome { server, alpn, version }
}

#[tokio::test]
async fn handshake_with_client_cert_exposes_identity() {
    let dir = TempDir::new("tls-cert");
    let pki = Pki::load_or_create(&dir.0, &[]).unwrap();
    let (cert, key) = pki
        .issue_client_cert("alice", &["devs", "ops"], Duration::from_secs(600))
        .unwrap();
    let outcome = handshake(
        pki.server_config(None).unwrap(),
        &pki.ca_cert_pem,
        ClientAuth::Cert(&cert, &key),
        &[&rustls::version::TLS13],
    )
    .await;
    assert_eq!(
        outcome.server.unwrap(),
        Some(("alice".to_string(), vec!["devs".to_string(), "ops".to_string()]))
    );
    assert_eq!(outcome.alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(outcome.version, Some(rustls::ProtocolVersion::TLSv1_3));
}

#[tokio::test]
async fn handshake_without_client_cert_is_allowed() {
    let dir = TempDir::new("tls-anon");
    let pki = Pki::load_or_create(&dir.0, &[]).unwrap();
    let outcome = handshake(
        pki.server_config(None).unwrap(),
        &pki.ca_cert_pem,
        ClientAuth::None,
        &[&rustls::version::TLS13],
    )
    .await;
    assert_eq!(outcome.server.unwrap(), None);
}

#[tokio::test]
async fn handshake_over_tls12_works() {
    let dir = TempDir::new("tls12");
    let pki = Pki::load_or_create(&dir.0, &[]).unwrap();
    let (cert, key) = pki
        .issue_client_cert("dave", &["g1"], Duration::from_secs(600))
        .unwrap();
    let outcome = handshake(
        pki.server_config(None).unwrap(),
        &pki.ca_cert_pem,
        ClientAuth::Cert(&cert, &key),
        &[&rustls::version::TLS12],
    )
    .await;
    assert_eq!(
        outcome.server.unwrap(),
        Some(("dave".to_string(), vec!["g1".to_string()]))
    );
    assert_eq!(outcome.version, Some(rustls::ProtocolVersion::TLSv1_2));
}

#[tokio::test]
async fn foreign_client_cert_needs_extra_client_ca() {
    let dir = TempDir::new("tls-foreign");
    let pki = Pki::load_or_create(&dir.0, &[]).unwrap();
    let other_dir = TempDir::new("tls-foreign-other");
    let other = Pki::load_or_create(&other_dir.0, &[]).unwrap();
    let (cert, key) = other
        .issue_client_cert("mallory", &["system:masters"], Duration::from_secs(600))
        .unwrap();

    let rejected = handshake(
        pki.server_config(None).unwrap(),
        &pki.ca_cert_pem,
        ClientAuth::Cert(&cert, &key),
        &[&rustls::version::TLS13],
    )
    .await;
    assert!(rejected.server.is_err(), "foreign client cert was accepted");

    let accepted = handshake(
        pki.server_config(Some(&other.ca_cert_pem)).unwrap(),
        &pki.ca_cert_pem,
        ClientAuth::Cert(&cert, &key),
        &[&rustls::version::TLS13],
    )
    .await;
    assert_eq!(
        accepted.server.unwrap(),
        Some(("mallory".to_string(), vec!["system:masters".to_string()]))
    );
}
