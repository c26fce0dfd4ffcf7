//! Trusting a hub by the hash of its CA, as kubeadm's `--discovery-token-ca-cert-hash` does.
//!
//! A pin is `sha256:` and the lowercase hex SHA-256 of a CA certificate's
//! SubjectPublicKeyInfo (DER). `kubectl faros agent generate --print-join-command` computes
//! the pins of the CA bundle in the user's kubeconfig; `edge-agent join` fetches the hub's
//! bundle over an unverified connection and keeps only the certificates a pin names. A pin
//! names a key, not a certificate: the CA may be re-issued with the same key.

use anyhow::{anyhow, bail};
use base64::Engine as _;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use x509_cert::Certificate;
use x509_cert::der::{Decode as _, Encode as _};
use x509_cert::ext::pkix::BasicConstraints;

const PREFIX: &str = "sha256:";

/// One certificate of a PEM bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedCert {
    /// The certificate alone, as PEM.
    pub pem: String,
    /// Its pin, `sha256:<hex>`.
    pub pin: String,
    /// Whether it may sign certificates (basicConstraints `cA`).
    pub is_ca: bool,
}

/// Every certificate of `bundle` (PEM) with its pin.
pub fn certificates(bundle: &str) -> anyhow::Result<Vec<PinnedCert>> {
    let mut out = Vec::new();
    for (i, der) in CertificateDer::pem_slice_iter(bundle.as_bytes()).enumerate() {
        let der = der.map_err(|e| anyhow!("certificate #{} of the CA bundle is not PEM: {e:?}", i + 1))?;
        let cert = Certificate::from_der(&der)
            .map_err(|e| anyhow!("certificate #{} of the CA bundle does not decode: {e}", i + 1))?;
        let spki = cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| anyhow!("encoding the public key of certificate #{}: {e}", i + 1))?;
        let digest = ring::digest::digest(&ring::digest::SHA256, &spki);
        let pin = format!("{PREFIX}{}", hex(digest.as_ref()));
        let is_ca = cert
            .tbs_certificate
            .get::<BasicConstraints>()
            .ok()
            .flatten()
            .is_some_and(|(_, constraints)| constraints.ca);
        out.push(PinnedCert {
            pem: pem(&der),
            pin,
            is_ca,
        });
    }
    if out.is_empty() {
        bail!("the CA bundle holds no certificate");
    }
    Ok(out)
}

/// The pins a device should be given for `bundle`: its CA certificates' (every
/// certificate's, when none says it is a CA).
pub fn pins(bundle: &str) -> anyhow::Result<Vec<String>> {
    let certs = certificates(bundle)?;
    let any_ca = certs.iter().any(|c| c.is_ca);
    Ok(certs
        .into_iter()
        .filter(|c| c.is_ca || !any_ca)
        .map(|c| c.pin)
        .collect())
}

/// Checks that `pin` is `sha256:` and 64 hex digits; returns it in lowercase.
pub fn parse_pin(pin: &str) -> anyhow::Result<String> {
    let lower = pin.trim().to_ascii_lowercase();
    match lower.strip_prefix(PREFIX) {
        Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => Ok(lower),
        _ => bail!("{pin:?} is not a CA hash: expected sha256: and 64 hex digits"),
    }
}

/// The certificates of `bundle` that one of `pins` names, as one PEM bundle; an error naming
/// the bundle's own pins when none matches.
pub fn pinned(bundle: &str, pins: &[String]) -> anyhow::Result<String> {
    let certs = certificates(bundle)?;
    let kept: String = certs
        .iter()
        .filter(|c| pins.contains(&c.pin))
        .map(|c| c.pem.as_str())
        .collect();
    if kept.is_empty() {
        let found: Vec<&str> = certs.iter().map(|c| c.pin.as_str()).collect();
        bail!(
            "the hub's CA does not match the CA hash given: it presents {}, not {}",
            found.join(", "),
            pins.join(", ")
        );
    }
    Ok(kept)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn pem(der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CA (cA=true) and a leaf it signed, made once for these tests with openssl.
    const CA: &str = include_str!("testdata/ca.pem");
    const LEAF: &str = include_str!("testdata/leaf.pem");
    /// `openssl x509 -in ca.pem -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum`
    const CA_PIN: &str = include_str!("testdata/ca.pin");

    #[test]
    fn pins_are_the_sha256_of_the_public_key_as_openssl_computes_it() {
        let bundle = format!("{CA}{LEAF}");
        let certs = certificates(&bundle).unwrap();
        assert_eq!(certs.len(), 2);
        assert_eq!(certs[0].pin, CA_PIN.trim());
        assert!(certs[0].is_ca && !certs[1].is_ca);
        assert_eq!(pins(&bundle).unwrap(), [CA_PIN.trim()]);
        // A leaf alone (no CA in the bundle) is pinned itself.
        assert_eq!(pins(LEAF).unwrap(), [certs[1].pin.clone()]);
        // What is kept is the pinned certificate, re-encoded but the same.
        let kept = pinned(&bundle, &[CA_PIN.trim().to_string()]).unwrap();
        assert_eq!(certificates(&kept).unwrap(), certs[..1]);
    }

    #[test]
    fn a_bundle_without_the_pinned_key_is_refused_naming_what_it_has() {
        let wrong = format!("sha256:{}", "0".repeat(64));
        let e = pinned(CA, std::slice::from_ref(&wrong)).unwrap_err().to_string();
        assert!(e.contains(CA_PIN.trim()) && e.contains(&wrong), "{e}");
        assert!(certificates("no pem").is_err());
    }

    #[test]
    fn pins_are_checked_for_shape() {
        let upper = format!("SHA256:{}", "AB".repeat(32));
        assert_eq!(parse_pin(&upper).unwrap(), format!("sha256:{}", "ab".repeat(32)));
        for bad in ["abc", "sha256:", "md5:00", &format!("sha256:{}", "g".repeat(64))] {
            assert!(parse_pin(bad).is_err(), "{bad}");
        }
    }
}
