//! The certificate authority: the CA certificate, the serving and client certificates it
//! issues, and the identities and names they carry.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, anyhow, bail};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::time::ASN1Time;

use super::der::{cert_der_to_pem, pem_to_cert_der, with_subject};
use super::{CA_COMMON_NAME, CA_VALIDITY, Pki, SERVING_COMMON_NAME, SERVING_RENEW_BEFORE, ring_provider};

/// Backdating of `notBefore`, to tolerate clocks that are slightly behind.
const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// Names every serving certificate carries, in addition to the requested ones.
const DEFAULT_SANS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

impl Pki {
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
        // Kubernetes wants one O per group: swap in the full subject and
        // sign the certificate again.
        let groups: Vec<&str> = groups.iter().copied().filter(|g| !g.is_empty()).collect();
        let der = with_subject(cert.der(), user, &groups, &self.ca_key)
            .context("re-signing client certificate with its full subject")?;
        Ok((cert_der_to_pem(&der), key.serialize_pem()))
    }

    /// Whether an existing serving certificate can be kept: it chains to the
    /// CA, matches its key, carries every wanted SAN and does not expire
    /// within [`SERVING_RENEW_BEFORE`]. Anything unreadable does not fit.
    pub(super) fn serving_cert_fits(&self, cert_pem: &str, key_pem: &str, wanted: &[San]) -> bool {
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
    pub(super) fn chains_to_ca(&self, der: &CertificateDer<'static>) -> bool {
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

    pub(super) fn issue_serving_cert(&self, sans: &[San], validity: Duration) -> Result<(String, String)> {
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
pub(super) enum San {
    /// Lower-case DNS name without a trailing dot.
    Dns(String),
    Ip(IpAddr),
}

/// The default SANs plus `extra`, normalised and de-duplicated.
pub(super) fn requested_sans(extra: &[String]) -> Result<Vec<San>> {
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
pub(super) fn cert_sans(cert: &X509Certificate<'_>) -> Option<Vec<San>> {
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
pub(super) fn create_ca() -> Result<(String, KeyPair)> {
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
pub(super) fn check_ca(der: &[u8], key: &KeyPair) -> Result<i64> {
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

pub(super) fn new_key() -> Result<KeyPair> {
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

pub(super) fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(secs).unwrap_or(0)
}

pub(super) fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

fn asn1_time(unix_secs: i64) -> Result<ASN1Time> {
    ASN1Time::from_timestamp(unix_secs).map_err(|e| anyhow!("invalid certificate time: {e}"))
}
