//! The hub's public-key infrastructure.
//!
//! On first start the hub creates a private certificate authority under
//! `<data dir>/pki/` and uses it to issue
//!
//! * the TLS serving certificate of the API server, and
//! * client certificates for users and agents (`CN` = user name, one `O` per
//!   group, which is how Kubernetes reads identities out of X.509 client
//!   certificates).
//!
//! Later starts reuse the CA. The serving certificate is re-issued whenever it
//! no longer fits: a requested subject alternative name is missing, it expires
//! within [`SERVING_RENEW_BEFORE`], it no longer chains to the CA, or its key
//! file does not match it.
//!
//! All keys are ECDSA P-256. Key files are written with mode `0600`, and every
//! file is written atomically (temporary file in the same directory, then
//! rename).
//!
//! The CA and what it issues are in `ca`, the PKI directory in `files`, and
//! the PEM and DER encodings in `der`.

mod ca;
mod der;
mod files;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use rcgen::KeyPair;
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

pub use ca::client_cert_identity;

pub(crate) use der::pem_to_cert_ders;

/// Common name of the hub's certificate authority.
pub const CA_COMMON_NAME: &str = "faros-hub-ca";
/// Common name of the API server's serving certificate.
pub const SERVING_COMMON_NAME: &str = "faros-hub";
/// File name (inside `<dir>/pki`) of the CA certificate.
pub const CA_CERT_FILE: &str = "ca.crt";
/// File name (inside `<dir>/pki`) of the CA private key.
pub const CA_KEY_FILE: &str = "ca.key";
/// File name (inside `<dir>/pki`) of the serving certificate.
pub const SERVING_CERT_FILE: &str = "serving.crt";
/// File name (inside `<dir>/pki`) of the serving private key.
pub const SERVING_KEY_FILE: &str = "serving.key";

const DAY: Duration = Duration::from_secs(24 * 60 * 60);
/// Lifetime of a newly created CA.
pub const CA_VALIDITY: Duration = Duration::from_secs(3650 * DAY.as_secs());
/// Lifetime of a newly issued serving certificate.
pub const SERVING_VALIDITY: Duration = Duration::from_secs(365 * DAY.as_secs());
/// A serving certificate expiring sooner than this is re-issued on start.
pub const SERVING_RENEW_BEFORE: Duration = Duration::from_secs(30 * DAY.as_secs());

/// ALPN protocols offered by the API server, most preferred first.
const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The hub's CA plus its current serving certificate.
pub struct Pki {
    /// PEM of the CA certificate (what clients trust).
    pub ca_cert_pem: String,
    ca_key: KeyPair,
    /// PEM of the API server's serving certificate.
    pub serving_cert_pem: String,
    /// PEM (PKCS#8) of the serving certificate's private key.
    pub serving_key_pem: String,
    /// The directory holding the PKI files (`<dir>/pki`).
    pub pki_dir: PathBuf,
    /// Whether this call created a new CA (first start).
    pub ca_created: bool,
    /// Whether this call issued a new serving certificate.
    pub serving_issued: bool,
    ca_cert_der: CertificateDer<'static>,
    /// The CA's `notAfter`, in seconds since the Unix epoch.
    ca_not_after: i64,
}

impl fmt::Debug for Pki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pki")
            .field("pki_dir", &self.pki_dir)
            .field("ca_created", &self.ca_created)
            .field("serving_issued", &self.serving_issued)
            .field("ca_not_after", &self.ca_not_after)
            .finish_non_exhaustive()
    }
}

impl Pki {
    /// Path of the CA certificate file.
    pub fn ca_cert_path(&self) -> PathBuf {
        self.pki_dir.join(CA_CERT_FILE)
    }

    /// DER of the CA certificate.
    pub fn ca_cert_der(&self) -> &CertificateDer<'static> {
        &self.ca_cert_der
    }

    /// A rustls server configuration presenting the serving certificate.
    ///
    /// TLS 1.3 and 1.2, ALPN `h2` then `http/1.1`, and optional client
    /// authentication: certificates are requested but not required, and
    /// those presented must chain to the hub CA or to a certificate in
    /// `extra_client_ca_pem` (a PEM bundle, e.g. from `--client-ca-file`).
    /// Uses the ring provider explicitly, so no process-wide default provider
    /// has to be installed.
    pub fn server_config(&self, extra_client_ca_pem: Option<&str>) -> Result<rustls::ServerConfig> {
        let provider = ring_provider();
        let mut roots = RootCertStore::empty();
        roots
            .add(self.ca_cert_der.clone())
            .context("adding the hub CA to the client CA store")?;
        if let Some(bundle) = extra_client_ca_pem {
            let certs = pem_to_cert_ders(bundle).context("parsing the extra client CA bundle")?;
            if certs.is_empty() {
                bail!("the extra client CA bundle holds no certificate");
            }
            for (i, cert) in certs.into_iter().enumerate() {
                roots
                    .add(cert)
                    .with_context(|| format!("adding certificate #{} of the extra client CA bundle", i + 1))?;
            }
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .allow_unauthenticated()
            .build()
            .context("building the client certificate verifier")?;

        let chain = pem_to_cert_ders(&self.serving_cert_pem)?;
        let key = PrivateKeyDer::from_pem_slice(self.serving_key_pem.as_bytes())
            .map_err(|e| anyhow!("parsing the serving key: {e}"))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .context("selecting TLS versions")?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .context("loading the serving certificate")?;
        config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
        Ok(config)
    }
}

/// The one TLS crypto provider the hub uses, given explicitly to every rustls config.
pub(crate) fn ring_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
