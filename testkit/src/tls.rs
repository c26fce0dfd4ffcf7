//! TLS for tests that speak HTTP to the hub by hand (upgrades, raw streams).

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// A client configuration offering HTTP/1.1 that trusts the CA certificates in `ca_pem` and
/// presents no client certificate.
pub fn http1_client_trusting(ca_pem: &[u8]) -> Arc<rustls::ClientConfig> {
    client_trusting(ca_pem, b"http/1.1")
}

/// The same, offering `alpn` (`h2` for a test that speaks HTTP/2 frames by hand).
pub fn client_trusting(ca_pem: &[u8], alpn: &[u8]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.expect("a PEM certificate")).expect("a CA certificate");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    Arc::new(config)
}
