//! PEM and DER: certificates between the two encodings, and the subject of a client
//! certificate re-encoded.

use anyhow::{Result, anyhow, bail};
use base64::Engine as _;
use rcgen::{KeyPair, SigningKey as _};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

// DER tags and attribute OIDs used when encoding subject names by hand.
pub(super) const TAG_SEQUENCE: u8 = 0x30;
const TAG_SET: u8 = 0x31;
const TAG_OID: u8 = 0x06;
const TAG_UTF8_STRING: u8 = 0x0c;
const TAG_BIT_STRING: u8 = 0x03;
const TAG_VERSION: u8 = 0xa0;
const OID_COMMON_NAME: [u8; 3] = [0x55, 0x04, 0x03];
const OID_ORGANIZATION: [u8; 3] = [0x55, 0x04, 0x0a];

/// The first certificate in `pem`.
pub(super) fn pem_to_cert_der(pem: &str) -> Result<CertificateDer<'static>> {
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| anyhow!("reading PEM certificate: {e}"))
}

/// Every certificate in `pem`.
pub(super) fn pem_to_cert_ders(pem: &str) -> Result<Vec<CertificateDer<'static>>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("reading PEM certificates: {e}"))
}

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

pub(super) fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    der_push(&mut out, tag, content);
    out
}

/// One DER element: its tag, its whole encoding and its content.
pub(super) struct Tlv<'a> {
    tag: u8,
    raw: &'a [u8],
    pub(super) content: &'a [u8],
}

/// Splits the first DER element off `input`; returns it and the rest.
pub(super) fn der_next(input: &[u8]) -> Result<(Tlv<'_>, &[u8])> {
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
pub(super) fn encode_subject(user: &str, groups: &[&str]) -> Vec<u8> {
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
pub(super) fn replace_subject(cert: &[u8], subject: &[u8], signer: &KeyPair) -> Result<Vec<u8>> {
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
