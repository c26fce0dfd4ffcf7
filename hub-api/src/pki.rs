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

use std::fmt;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, anyhow, bail};
use base64::Engine as _;
use faros_kubeconfig::{write_atomic, write_private};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber, SigningKey as _,
};
use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier as _;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::time::ASN1Time;

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
/// Backdating of `notBefore`, to tolerate clocks that are slightly behind.
const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// Names every serving certificate carries, in addition to the requested ones.
const DEFAULT_SANS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// ALPN protocols offered by the API server, most preferred first.
const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

// DER tags and attribute OIDs used when encoding subject names by hand.
const TAG_SEQUENCE: u8 = 0x30;
const TAG_SET: u8 = 0x31;
const TAG_OID: u8 = 0x06;
const TAG_UTF8_STRING: u8 = 0x0c;
const TAG_BIT_STRING: u8 = 0x03;
const TAG_VERSION: u8 = 0xa0;
const OID_COMMON_NAME: [u8; 3] = [0x55, 0x04, 0x03];
const OID_ORGANIZATION: [u8; 3] = [0x55, 0x04, 0x0a];

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
    /// Loads the PKI from `dir/pki`, creating whatever is missing.
    ///
    /// First start creates `ca.crt`/`ca.key` (ECDSA P-256, CN `faros-hub-ca`,
    /// 10 years) and `serving.crt`/`serving.key` (1 year; SANs `localhost`,
    /// `127.0.0.1`, `::1` plus every entry of `sans`: IP addresses become IP
    /// SANs, everything else DNS SANs). Later starts reuse the CA; the serving
    /// certificate is re-issued when it lacks a requested SAN, expires within
    /// 30 days, does not chain to the CA or does not match its key file.
    ///
    /// A CA with only one of its two files present, or one that cannot be
    /// read, is an error rather than being silently replaced: replacing it
    /// would invalidate every kubeconfig handed out so far.
    pub fn load_or_create(dir: &Path, sans: &[String]) -> Result<Pki> {
        let pki_dir = dir.join("pki");
        create_private_dir(&pki_dir)?;
        let wanted = requested_sans(sans)?;

        let ca_cert_path = pki_dir.join(CA_CERT_FILE);
        let ca_key_path = pki_dir.join(CA_KEY_FILE);
        let (ca_cert_pem, ca_key, ca_created) = match (ca_cert_path.exists(), ca_key_path.exists()) {
            (true, true) => {
                let cert_pem = read_to_string(&ca_cert_path)?;
                let key_pem = read_to_string(&ca_key_path)?;
                tighten_key_permissions(&ca_key_path)?;
                let key = KeyPair::from_pem(&key_pem)
                    .map_err(|e| anyhow!("parsing CA key {}: {e}", ca_key_path.display()))?;
                (cert_pem, key, false)
            }
            (false, false) => {
                let (cert_pem, key) = create_ca()?;
                // The key goes first: a crash in between leaves a key without
                // a certificate, which is reported instead of silently
                // replaced.
                write_private(&ca_key_path, key.serialize_pem().as_bytes())?;
                write_atomic(&ca_cert_path, cert_pem.as_bytes(), 0o644)?;
                (cert_pem, key, true)
            }
            (cert, _) => {
                let (present, missing) = if cert {
                    (&ca_cert_path, &ca_key_path)
                } else {
                    (&ca_key_path, &ca_cert_path)
                };
                bail!(
                    "{} exists but {} is missing; restore it, or remove {} to create a new CA \
                     (which invalidates every issued kubeconfig)",
                    present.display(),
                    missing.display(),
                    pki_dir.display()
                );
            }
        };

        let ca_cert_der = pem_to_cert_der(&ca_cert_pem)
            .with_context(|| format!("reading CA certificate {}", ca_cert_path.display()))?;
        let ca_not_after = check_ca(&ca_cert_der, &ca_key)
            .with_context(|| format!("checking CA certificate {}", ca_cert_path.display()))?;

        let mut pki = Pki {
            ca_cert_pem,
            ca_key,
            serving_cert_pem: String::new(),
            serving_key_pem: String::new(),
            pki_dir,
            ca_created,
            serving_issued: false,
            ca_cert_der,
            ca_not_after,
        };
        pki.ensure_serving_cert(&wanted, SERVING_VALIDITY)?;
        Ok(pki)
    }

    /// Path of the CA certificate file.
    pub fn ca_cert_path(&self) -> PathBuf {
        self.pki_dir.join(CA_CERT_FILE)
    }

    /// DER of the CA certificate.
    pub fn ca_cert_der(&self) -> &CertificateDer<'static> {
        &self.ca_cert_der
    }

    /// Issues a client certificate signed by the CA: `CN` = `user`, one `O`
    /// per entry of `groups` (empty entries are skipped). Returns
    /// `(cert_pem, key_pem)`; the key is a fresh ECDSA P-256 key in PKCS#8.
    ///
    /// The validity is capped at the CA's own expiry.
    pub fn issue_client_cert(&self, user: &str, groups: &[&str], validity: Duration) -> Result<(String, String)> {
        if user.is_empty() {
            bail!("client certificate needs a non-empty user name");
        }
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, user);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial()?);
        self.set_validity(&mut params, validity)?;

        let key = new_key()?;
        let issuer = self.issuer()?;
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(|e| anyhow!("signing client certificate for {user:?}: {e}"))?;
        // rcgen keeps at most one value per attribute type in a subject, but
        // Kubernetes wants one O per group: swap in a subject encoded here and
        // sign the certificate again.
        let groups: Vec<&str> = groups.iter().copied().filter(|g| !g.is_empty()).collect();
        let subject = encode_subject(user, &groups);
        let der = replace_subject(cert.der(), &subject, &self.ca_key)
            .context("re-signing client certificate with its full subject")?;
        Ok((cert_der_to_pem(&der), key.serialize_pem()))
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

    /// Keeps the serving certificate on disk if it still fits, or issues a
    /// new one valid for `validity`.
    fn ensure_serving_cert(&mut self, wanted: &[San], validity: Duration) -> Result<()> {
        let cert_path = self.pki_dir.join(SERVING_CERT_FILE);
        let key_path = self.pki_dir.join(SERVING_KEY_FILE);
        if cert_path.exists() && key_path.exists() {
            let cert_pem = read_to_string(&cert_path)?;
            let key_pem = read_to_string(&key_path)?;
            if self.serving_cert_fits(&cert_pem, &key_pem, wanted) {
                tighten_key_permissions(&key_path)?;
                self.serving_cert_pem = cert_pem;
                self.serving_key_pem = key_pem;
                return Ok(());
            }
        }
        let (cert_pem, key_pem) = self.issue_serving_cert(wanted, validity)?;
        write_private(&key_path, key_pem.as_bytes())?;
        write_atomic(&cert_path, cert_pem.as_bytes(), 0o644)?;
        self.serving_cert_pem = cert_pem;
        self.serving_key_pem = key_pem;
        self.serving_issued = true;
        Ok(())
    }

    /// Whether an existing serving certificate can be kept: it chains to the
    /// CA, matches its key, carries every wanted SAN and does not expire
    /// within [`SERVING_RENEW_BEFORE`]. Anything unreadable does not fit.
    fn serving_cert_fits(&self, cert_pem: &str, key_pem: &str, wanted: &[San]) -> bool {
        let Ok(der) = pem_to_cert_der(cert_pem) else {
            return false;
        };
        let Ok(key) = KeyPair::from_pem(key_pem) else {
            return false;
        };
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(&der) else {
            return false;
        };
        if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return false;
        }
        let renew_at = unix_now().saturating_add(secs(SERVING_RENEW_BEFORE));
        if cert.validity().not_after.timestamp() <= renew_at {
            return false;
        }
        let Some(present) = cert_sans(&cert) else {
            return false;
        };
        if !wanted.iter().all(|san| present.contains(san)) {
            return false;
        }
        self.chains_to_ca(&der)
    }

    /// Whether `der` is a currently valid server certificate for `localhost`
    /// issued by the hub CA.
    fn chains_to_ca(&self, der: &CertificateDer<'static>) -> bool {
        let mut roots = RootCertStore::empty();
        if roots.add(self.ca_cert_der.clone()).is_err() {
            return false;
        }
        let Ok(verifier) = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), ring_provider()).build() else {
            return false;
        };
        let name = ServerName::try_from("localhost").expect("static name is valid");
        verifier
            .verify_server_cert(der, &[], &name, &[], UnixTime::now())
            .is_ok()
    }

    fn issue_serving_cert(&self, sans: &[San], validity: Duration) -> Result<(String, String)> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, SERVING_COMMON_NAME);
        params.subject_alt_names = sans
            .iter()
            .map(|san| {
                Ok(match san {
                    San::Ip(ip) => SanType::IpAddress(*ip),
                    San::Dns(name) => SanType::DnsName(
                        name.as_str()
                            .try_into()
                            .map_err(|e| anyhow!("invalid DNS name {name:?}: {e}"))?,
                    ),
                })
            })
            .collect::<Result<_>>()?;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial()?);
        self.set_validity(&mut params, validity)?;

        let key = new_key()?;
        let cert = params
            .signed_by(&key, &self.issuer()?)
            .map_err(|e| anyhow!("signing the serving certificate: {e}"))?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    fn issuer(&self) -> Result<Issuer<'static, &KeyPair>> {
        Issuer::from_ca_cert_der(&self.ca_cert_der, &self.ca_key).map_err(|e| anyhow!("loading the CA as issuer: {e}"))
    }

    /// Sets `notBefore` slightly in the past and `notAfter` to `validity`
    /// from now, capped at the CA's own expiry.
    fn set_validity(&self, params: &mut CertificateParams, validity: Duration) -> Result<()> {
        if validity.is_zero() {
            bail!("certificate validity must be positive");
        }
        let now = unix_now();
        let not_after = now.saturating_add(secs(validity)).min(self.ca_not_after);
        if not_after <= now {
            bail!("the hub CA has expired");
        }
        params.not_before = asn1_time(now - secs(CLOCK_SKEW))?.to_datetime();
        params.not_after = asn1_time(not_after)?.to_datetime();
        Ok(())
    }
}

/// The identity in a (verified) client certificate: its `CN` and every `O`.
///
/// Returns `None` for input that is not a DER certificate, and for
/// certificates without exactly one non-empty `CN`.
pub fn client_cert_identity(cert_der: &[u8]) -> Option<(String, Vec<String>)> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    let subject = cert.subject();
    let mut common_names = subject.iter_common_name();
    let user = common_names.next()?.as_str().ok()?;
    if user.is_empty() || common_names.next().is_some() {
        return None;
    }
    let groups = subject
        .iter_organization()
        .map(|o| o.as_str().map(str::to_owned))
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    Some((user.to_owned(), groups))
}

/// A subject alternative name, normalised for comparison.
#[derive(Clone, Debug, PartialEq, Eq)]
enum San {
    /// Lower-case DNS name without a trailing dot.
    Dns(String),
    Ip(IpAddr),
}

/// The default SANs plus `extra`, normalised and de-duplicated.
fn requested_sans(extra: &[String]) -> Result<Vec<San>> {
    let mut out: Vec<San> = Vec::new();
    for raw in DEFAULT_SANS.iter().copied().chain(extra.iter().map(String::as_str)) {
        let entry = raw.trim();
        if entry.is_empty() {
            continue;
        }
        let unbracketed = entry
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
            .unwrap_or(entry);
        let san = match unbracketed.parse::<IpAddr>() {
            Ok(ip) => San::Ip(ip),
            Err(_) => {
                let name = entry.strip_suffix('.').unwrap_or(entry).to_ascii_lowercase();
                let valid = !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'*'));
                if !valid {
                    bail!("invalid subject alternative name {raw:?}: not an IP address or DNS name");
                }
                San::Dns(name)
            }
        };
        if !out.contains(&san) {
            out.push(san);
        }
    }
    Ok(out)
}

/// The DNS and IP SANs of `cert`, normalised like [`requested_sans`];
/// `None` if the extension cannot be parsed.
fn cert_sans(cert: &X509Certificate<'_>) -> Option<Vec<San>> {
    let ext = cert.subject_alternative_name().ok()?;
    let Some(ext) = ext else {
        return Some(Vec::new());
    };
    let mut out = Vec::new();
    for name in &ext.value.general_names {
        match name {
            GeneralName::DNSName(dns) => {
                let dns = dns.strip_suffix('.').unwrap_or(dns);
                out.push(San::Dns(dns.to_ascii_lowercase()));
            }
            GeneralName::IPAddress(bytes) => {
                if let Ok(v4) = <[u8; 4]>::try_from(*bytes) {
                    out.push(San::Ip(IpAddr::V4(Ipv4Addr::from(v4))));
                } else if let Ok(v6) = <[u8; 16]>::try_from(*bytes) {
                    out.push(San::Ip(IpAddr::V6(Ipv6Addr::from(v6))));
                }
            }
            _ => {}
        }
    }
    Some(out)
}

/// Creates a self-signed CA: ECDSA P-256, CN [`CA_COMMON_NAME`],
/// valid for [`CA_VALIDITY`]. Returns the certificate PEM and the key.
fn create_ca() -> Result<(String, KeyPair)> {
    let key = new_key()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, CA_COMMON_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(random_serial()?);
    let now = unix_now();
    params.not_before = asn1_time(now - secs(CLOCK_SKEW))?.to_datetime();
    params.not_after = asn1_time(now.saturating_add(secs(CA_VALIDITY)))?.to_datetime();
    let cert = params
        .self_signed(&key)
        .map_err(|e| anyhow!("self-signing the CA certificate: {e}"))?;
    Ok((cert.pem(), key))
}

/// Checks that `der` is an unexpired CA certificate for `key`; returns its
/// `notAfter` as Unix seconds.
fn check_ca(der: &[u8], key: &KeyPair) -> Result<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| anyhow!("invalid certificate: {e}"))?;
    if !cert.is_ca() {
        bail!("not a CA certificate");
    }
    if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        bail!("the CA key does not belong to the CA certificate");
    }
    let not_after = cert.validity().not_after.timestamp();
    if not_after <= unix_now() {
        bail!("the CA certificate has expired; remove the pki directory to create a new CA");
    }
    Ok(not_after)
}

fn ring_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn new_key() -> Result<KeyPair> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| anyhow!("generating an ECDSA P-256 key: {e}"))
}

/// A random positive 128-bit serial number.
fn random_serial() -> Result<SerialNumber> {
    let mut bytes = [0u8; 16];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| anyhow!("the system random number generator failed"))?;
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(secs).unwrap_or(0)
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

fn asn1_time(unix_secs: i64) -> Result<ASN1Time> {
    ASN1Time::from_timestamp(unix_secs).map_err(|e| anyhow!("invalid certificate time: {e}"))
}

// ---------------------------------------------------------------------------
// PEM and DER helpers
// ---------------------------------------------------------------------------

/// The first certificate in `pem`.
fn pem_to_cert_der(pem: &str) -> Result<CertificateDer<'static>> {
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| anyhow!("reading PEM certificate: {e}"))
}

/// Every certificate in `pem`.
fn pem_to_cert_ders(pem: &str) -> Result<Vec<CertificateDer<'static>>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("reading PEM certificates: {e}"))
}

fn cert_der_to_pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 64);
    out.push_str("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// Appends a DER tag-length-value to `out`.
fn der_push(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    der_push(&mut out, tag, content);
    out
}

/// One DER element: its tag, its whole encoding and its content.
struct Tlv<'a> {
    tag: u8,
    raw: &'a [u8],
    content: &'a [u8],
}

/// Splits the first DER element off `input`; returns it and the rest.
fn der_next(input: &[u8]) -> Result<(Tlv<'_>, &[u8])> {
    let short = || anyhow!("truncated DER");
    let tag = *input.first().ok_or_else(short)?;
    if tag & 0x1f == 0x1f {
        bail!("unsupported multi-byte DER tag");
    }
    let first = *input.get(1).ok_or_else(short)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            bail!("unsupported DER length encoding");
        }
        let bytes = input.get(2..2 + n).ok_or_else(short)?;
        let len = bytes.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, 2 + n)
    };
    let end = header.checked_add(len).ok_or_else(short)?;
    if input.len() < end {
        return Err(short());
    }
    Ok((
        Tlv {
            tag,
            raw: &input[..end],
            content: &input[header..end],
        },
        &input[end..],
    ))
}

/// All DER elements in `input`.
fn der_children(mut input: &[u8]) -> Result<Vec<Tlv<'_>>> {
    let mut out = Vec::new();
    while !input.is_empty() {
        let (tlv, rest) = der_next(input)?;
        out.push(tlv);
        input = rest;
    }
    Ok(out)
}

/// DER of the X.501 name `O=<group>…, CN=<user>` (the order Go's
/// `pkix.Name` uses), every value a UTF8String in its own RDN.
fn encode_subject(user: &str, groups: &[&str]) -> Vec<u8> {
    let rdn = |oid: &[u8], value: &str| {
        let mut attr = der(TAG_OID, oid);
        der_push(&mut attr, TAG_UTF8_STRING, value.as_bytes());
        der(TAG_SET, &der(TAG_SEQUENCE, &attr))
    };
    let mut rdns = Vec::new();
    for group in groups {
        rdns.extend(rdn(&OID_ORGANIZATION, group));
    }
    rdns.extend(rdn(&OID_COMMON_NAME, user));
    der(TAG_SEQUENCE, &rdns)
}

/// Replaces the subject of certificate `cert` with the DER name `subject`
/// and signs the result again with `signer` (the certificate's issuer key).
fn replace_subject(cert: &[u8], subject: &[u8], signer: &KeyPair) -> Result<Vec<u8>> {
    let (outer, rest) = der_next(cert)?;
    if outer.tag != TAG_SEQUENCE || !rest.is_empty() {
        bail!("not a DER certificate");
    }
    let parts = der_children(outer.content)?;
    let [tbs, signature_algorithm, _signature] = parts.as_slice() else {
        bail!("certificate does not have three parts");
    };
    if tbs.tag != TAG_SEQUENCE {
        bail!("malformed TBSCertificate");
    }
    let mut fields = der_children(tbs.content)?;
    // version [0], serialNumber, signature, issuer, validity, subject, …
    const SUBJECT: usize = 5;
    if fields.first().map(|f| f.tag) != Some(TAG_VERSION) || fields.get(SUBJECT).map(|f| f.tag) != Some(TAG_SEQUENCE) {
        bail!("unexpected TBSCertificate layout");
    }
    fields[SUBJECT] = Tlv {
        tag: TAG_SEQUENCE,
        raw: subject,
        content: &[],
    };
    let new_tbs = der(
        TAG_SEQUENCE,
        &fields.iter().flat_map(|f| f.raw).copied().collect::<Vec<u8>>(),
    );
    let signature = signer
        .sign(&new_tbs)
        .map_err(|e| anyhow!("signing the certificate: {e}"))?;
    let mut bits = Vec::with_capacity(signature.len() + 1);
    bits.push(0); // no unused bits
    bits.extend_from_slice(&signature);

    let mut body = new_tbs;
    body.extend_from_slice(signature_algorithm.raw);
    der_push(&mut body, TAG_BIT_STRING, &bits);
    Ok(der(TAG_SEQUENCE, &body))
}

// ---------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------

fn read_to_string(path: &Path) -> Result<String> {
    fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Creates `dir` (and missing parents) with mode `0700`; existing
/// directories are left as they are.
fn create_private_dir(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating directory {}", dir.display()))
}

/// Restricts an existing key file to its owner (`0600`) if it is readable
/// by anyone else.
fn tighten_key_permissions(path: &Path) -> Result<()> {
    let meta = fs::metadata(path).with_context(|| format!("inspecting {}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .with_context(|| format!("restricting permissions of {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio_rustls::{TlsAcceptor, TlsConnector};

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
    fn der_helpers_round_trip_long_lengths() {
        let long = vec![7u8; 70_000];
        let encoded = der(TAG_SEQUENCE, &long);
        assert_eq!(&encoded[..5], &[0x30, 0x83, 0x01, 0x11, 0x70]);
        let (tlv, rest) = der_next(&encoded).unwrap();
        assert!(rest.is_empty());
        assert_eq!(tlv.content.len(), 70_000);
        assert!(der_next(&encoded[..100]).is_err());
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
}
