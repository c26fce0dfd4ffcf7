//! PEM and DER: certificates between the two encodings, and a client certificate's subject
//! re-encoded.

use anyhow::{Result, anyhow};
use base64::Engine as _;
use rcgen::{KeyPair, SigningKey as _};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use x509_cert::Certificate;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::der::asn1::{BitString, SetOfVec, Utf8StringRef};
use x509_cert::der::oid::db::rfc4519;
use x509_cert::der::{self, Decode as _, Encode as _};
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};

/// The first certificate in `pem`.
pub(super) fn pem_to_cert_der(pem: &str) -> Result<CertificateDer<'static>> {
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| anyhow!("reading PEM certificate: {e}"))
}

/// Every certificate in `pem`.
pub(crate) fn pem_to_cert_ders(pem: &str) -> Result<Vec<CertificateDer<'static>>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("reading PEM certificates: {e}"))
}

/// PEM of the certificate `der`.
pub(super) fn cert_der_to_pem(der: &[u8]) -> String {
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

/// Replaces the subject of certificate `cert` (DER) with `O=<group>…, CN=<user>` (the order
/// Go's `pkix.Name` uses, every value a UTF8String in its own RDN) and signs it again with
/// `signer`, the certificate's issuer key. Everything else stays as it was.
pub(super) fn with_subject(cert: &[u8], user: &str, groups: &[&str], signer: &KeyPair) -> Result<Vec<u8>> {
    let mut cert = Certificate::from_der(cert).map_err(|e| anyhow!("not a DER certificate: {e}"))?;
    cert.tbs_certificate.subject = subject(user, groups).map_err(|e| anyhow!("encoding the subject: {e}"))?;
    let tbs = cert
        .tbs_certificate
        .to_der()
        .map_err(|e| anyhow!("encoding the certificate: {e}"))?;
    let signature = signer.sign(&tbs).map_err(|e| anyhow!("signing the certificate: {e}"))?;
    cert.signature = BitString::from_bytes(&signature).map_err(|e| anyhow!("encoding the signature: {e}"))?;
    cert.to_der().map_err(|e| anyhow!("encoding the certificate: {e}"))
}

fn subject(user: &str, groups: &[&str]) -> der::Result<Name> {
    let rdn = |oid, value: &str| -> der::Result<RelativeDistinguishedName> {
        let value = Utf8StringRef::new(value)?.into();
        Ok(RelativeDistinguishedName(SetOfVec::try_from(vec![
            AttributeTypeAndValue { oid, value },
        ])?))
    };
    let mut rdns = groups
        .iter()
        .map(|group| rdn(rfc4519::O, group))
        .collect::<der::Result<Vec<_>>>()?;
    rdns.push(rdn(rfc4519::CN, user)?);
    Ok(RdnSequence(rdns))
}
