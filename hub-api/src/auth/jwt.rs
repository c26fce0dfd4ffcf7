//! JSON Web Tokens on `ring`: a `jsonwebtoken` crypto provider (so no second crypto library
//! enters the build), the hub's signing key, and JWK helpers.
//!
//! Only asymmetric algorithms exist here: the provider refuses every HMAC algorithm, so a
//! token signed with HS256 using a public key as the "secret" (key confusion) can never
//! verify, whatever a validation asks for. `alg: none` does not even parse as a header.

use std::sync::Arc;

use anyhow::{Context as _, anyhow, bail};
use base64::Engine as _;
use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::signature;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::rand::SystemRandom;
use ring::signature::{self as sig, KeyPair as _};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject as _;
use serde_json::{Value, json};

/// Every algorithm the hub can verify. HMAC and `none` are never among them.
pub const ASYMMETRIC: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

pub fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Installs the ring-backed provider for `jsonwebtoken` (once per process).
pub fn install_provider() {
    static PROVIDER: CryptoProvider = CryptoProvider {
        signer_factory: new_signer,
        verifier_factory: new_verifier,
        key_utils: KeyUtils::new_unimplemented(),
    };
    // Fails only when already installed, which is fine.
    let _ = PROVIDER.install_default();
}

fn key_error() -> jsonwebtoken::errors::Error {
    jsonwebtoken::errors::ErrorKind::InvalidKeyFormat.into()
}

struct RingSigner {
    alg: Algorithm,
    der: Vec<u8>,
}

impl signature::Signer<Vec<u8>> for RingSigner {
    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        let rng = SystemRandom::new();
        match self.alg {
            Algorithm::ES256 | Algorithm::ES384 => {
                let alg = if self.alg == Algorithm::ES256 {
                    &sig::ECDSA_P256_SHA256_FIXED_SIGNING
                } else {
                    &sig::ECDSA_P384_SHA384_FIXED_SIGNING
                };
                let key = sig::EcdsaKeyPair::from_pkcs8(alg, &self.der, &rng)
                    .map_err(|e| signature::Error::from_source(e.to_string()))?;
                let signature = key
                    .sign(&rng, msg)
                    .map_err(|e| signature::Error::from_source(e.to_string()))?;
                Ok(signature.as_ref().to_vec())
            }
            Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 => {
                let key = rsa_key_pair(&self.der).map_err(|e| signature::Error::from_source(e.to_string()))?;
                let padding: &'static dyn sig::RsaEncoding = match self.alg {
                    Algorithm::RS256 => &sig::RSA_PKCS1_SHA256,
                    Algorithm::RS384 => &sig::RSA_PKCS1_SHA384,
                    _ => &sig::RSA_PKCS1_SHA512,
                };
                let mut out = vec![0; key.public().modulus_len()];
                key.sign(padding, &rng, msg, &mut out)
                    .map_err(|e| signature::Error::from_source(e.to_string()))?;
                Ok(out)
            }
            _ => Err(signature::Error::new()),
        }
    }
}

impl JwtSigner for RingSigner {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

fn rsa_key_pair(der: &[u8]) -> anyhow::Result<sig::RsaKeyPair> {
    sig::RsaKeyPair::from_pkcs8(der)
        .or_else(|_| sig::RsaKeyPair::from_der(der))
        .map_err(|e| anyhow!("not an RSA private key: {e}"))
}

fn new_signer(alg: &Algorithm, key: &EncodingKey) -> jsonwebtoken::errors::Result<Box<dyn JwtSigner>> {
    match alg {
        Algorithm::ES256 | Algorithm::ES384 | Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 => {
            Ok(Box::new(RingSigner {
                alg: *alg,
                der: key.as_bytes().to_vec(),
            }))
        }
        _ => Err(jsonwebtoken::errors::ErrorKind::InvalidAlgorithm.into()),
    }
}

/// How a verification key is held: an encoded public key for `ring`, or RSA components.
enum PublicKey {
    Bytes(Vec<u8>),
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

struct RingVerifier {
    alg: Algorithm,
    key: PublicKey,
}

impl RingVerifier {
    fn rsa_params(&self) -> Option<&'static sig::RsaParameters> {
        Some(match self.alg {
            Algorithm::RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
            Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
            Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
            Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
            Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
            Algorithm::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
            _ => return None,
        })
    }
}

impl signature::Verifier<Vec<u8>> for RingVerifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        let fail = |_| signature::Error::new();
        if let Some(params) = self.rsa_params() {
            return match &self.key {
                PublicKey::Rsa { n, e } => sig::RsaPublicKeyComponents { n, e }
                    .verify(params, msg, signature)
                    .map_err(fail),
                PublicKey::Bytes(der) => sig::UnparsedPublicKey::new(params, der)
                    .verify(msg, signature)
                    .map_err(fail),
            };
        }
        let alg: &'static dyn sig::VerificationAlgorithm = match self.alg {
            Algorithm::ES256 => &sig::ECDSA_P256_SHA256_FIXED,
            Algorithm::ES384 => &sig::ECDSA_P384_SHA384_FIXED,
            Algorithm::EdDSA => &sig::ED25519,
            _ => return Err(signature::Error::new()),
        };
        match &self.key {
            PublicKey::Bytes(bytes) => sig::UnparsedPublicKey::new(alg, bytes)
                .verify(msg, signature)
                .map_err(fail),
            PublicKey::Rsa { .. } => Err(signature::Error::new()),
        }
    }
}

impl JwtVerifier for RingVerifier {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

fn new_verifier(alg: &Algorithm, key: &DecodingKey) -> jsonwebtoken::errors::Result<Box<dyn JwtVerifier>> {
    // The key's family must match the algorithm's: an RSA key never verifies an EC
    // signature, and nothing ever verifies HMAC.
    if !ASYMMETRIC.contains(alg) || key.family() != alg.family() || key.family() == AlgorithmFamily::Hmac {
        return Err(jsonwebtoken::errors::ErrorKind::InvalidAlgorithm.into());
    }
    let public = match key.kind() {
        DecodingKeyKind::SecretOrDer(bytes) => PublicKey::Bytes(bytes.clone()),
        DecodingKeyKind::RsaModulusExponent { n, e } => PublicKey::Rsa {
            n: n.clone(),
            e: e.clone(),
        },
    };
    if matches!(public, PublicKey::Bytes(ref b) if b.is_empty()) {
        return Err(key_error());
    }
    Ok(Box::new(RingVerifier { alg: *alg, key: public }))
}

/// The hub's token signing key: algorithm, key id, the encoding key for `jsonwebtoken`,
/// the matching decoding key (parsed once) and its public JWK.
pub struct SigningKey {
    pub alg: Algorithm,
    pub kid: String,
    pub encoding: EncodingKey,
    pub decoding: DecodingKey,
    pub jwk: Value,
}

impl SigningKey {
    /// Reads a PEM private key: PKCS#8 ECDSA P-256 (ES256) or RSA (RS256, PKCS#8 or PKCS#1).
    pub fn from_pem(pem: &[u8]) -> anyhow::Result<Arc<SigningKey>> {
        let key = PrivateKeyDer::from_pem_slice(pem).map_err(|e| anyhow!("reading the PEM private key: {e}"))?;
        let rng = SystemRandom::new();
        match key {
            PrivateKeyDer::Pkcs8(der) => {
                let der = der.secret_pkcs8_der();
                if let Ok(ec) = sig::EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng) {
                    return Ok(Arc::new(Self::ec(der, ec.public_key().as_ref())?));
                }
                let rsa = rsa_key_pair(der).context("the key is neither ECDSA P-256 nor RSA")?;
                Ok(Arc::new(Self::rsa(der, &rsa)?))
            }
            PrivateKeyDer::Pkcs1(der) => {
                let der = der.secret_pkcs1_der();
                let rsa = rsa_key_pair(der)?;
                Ok(Arc::new(Self::rsa(der, &rsa)?))
            }
            PrivateKeyDer::Sec1(_) => bail!(
                "SEC1 (\"EC PRIVATE KEY\") keys are not supported; convert it with `openssl pkcs8 -topk8 -nocrypt`"
            ),
            _ => bail!("unsupported private key format"),
        }
    }

    /// A new ECDSA P-256 key as PKCS#8 PEM.
    pub fn generate_pem() -> anyhow::Result<String> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| anyhow!("generating an ECDSA P-256 key: {e}"))?;
        Ok(key.serialize_pem())
    }

    fn ec(pkcs8: &[u8], point: &[u8]) -> anyhow::Result<SigningKey> {
        if point.len() != 65 || point[0] != 4 {
            bail!("unexpected EC public key encoding");
        }
        let (x, y) = point[1..].split_at(32);
        let thumbprint_input = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            b64url(x),
            b64url(y)
        );
        let kid = b64url(ring::digest::digest(&ring::digest::SHA256, thumbprint_input.as_bytes()).as_ref());
        let jwk = json!({"use": "sig", "kty": "EC", "kid": kid, "crv": "P-256", "alg": "ES256", "x": b64url(x), "y": b64url(y)});
        Ok(SigningKey {
            alg: Algorithm::ES256,
            kid,
            encoding: EncodingKey::from_ec_der(pkcs8),
            decoding: DecodingKey::from_ec_der(point),
            jwk,
        })
    }

    fn rsa(der: &[u8], key: &sig::RsaKeyPair) -> anyhow::Result<SigningKey> {
        let components: sig::RsaPublicKeyComponents<Vec<u8>> = key.public().into();
        let (n, e) = (b64url(&components.n), b64url(&components.e));
        let thumbprint_input = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
        let kid = b64url(ring::digest::digest(&ring::digest::SHA256, thumbprint_input.as_bytes()).as_ref());
        let jwk = json!({"use": "sig", "kty": "RSA", "kid": kid, "alg": "RS256", "n": n, "e": e});
        Ok(SigningKey {
            alg: Algorithm::RS256,
            kid,
            encoding: EncodingKey::from_rsa_der(der),
            decoding: DecodingKey::from_rsa_raw_components(&components.n, &components.e),
            jwk,
        })
    }

    /// Signs `claims` into a compact JWT with this key's algorithm and key id.
    pub fn sign(&self, claims: &Value) -> anyhow::Result<String> {
        install_provider();
        let mut header = jsonwebtoken::Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(|e| anyhow!("signing a token: {e}"))
    }
}

/// Seconds of clock skew tolerated on `exp` and `nbf` (jsonwebtoken's default).
pub const LEEWAY: i64 = 60;

/// Claims of tokens whose signature and claims were verified, keyed by a hash of the token,
/// so a client presenting the same token again costs a hash and a lookup instead of a
/// signature verification. Entries expire with their token's `exp`; the checks that revoke a
/// token (its ServiceAccount or bound object being gone) are not cached and run every time.
#[derive(Default)]
pub struct VerifiedTokens {
    entries: std::sync::Mutex<std::collections::HashMap<[u8; 32], Arc<Value>>>,
}

/// Most verified tokens remembered; beyond, the cache starts over.
const MAX_VERIFIED: usize = 16_384;

impl VerifiedTokens {
    /// The verified claims of `token`: from the cache while unexpired, else from `verify`.
    pub fn get_or_verify(&self, token: &str, verify: impl FnOnce() -> Option<Value>) -> Option<Arc<Value>> {
        let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(digest.as_ref());
        let now = jiff::Timestamp::now().as_second();
        let unexpired = |claims: &Value| claims["exp"].as_i64().is_none_or(|exp| exp + LEEWAY >= now);
        {
            let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(claims) = entries.get(&key)
                && unexpired(claims)
            {
                return Some(claims.clone());
            }
        }
        let claims = Arc::new(verify()?);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_VERIFIED {
            entries.retain(|_, c| unexpired(c));
            if entries.len() >= MAX_VERIFIED {
                entries.clear();
            }
        }
        entries.insert(key, claims.clone());
        Some(claims)
    }
}

/// The payload of a compact JWT, decoded without verification: only to route a token to
/// the authenticator that can verify it (by its issuer). Never trusted otherwise.
pub fn unverified_payload(token: &str) -> Option<Value> {
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || payload.len() > 64 * 1024 {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn es256_round_trip_and_refusals() {
        install_provider();
        let pem = SigningKey::generate_pem().unwrap();
        let key = SigningKey::from_pem(pem.as_bytes()).unwrap();
        let token = key.sign(&json!({"sub": "x", "exp": 4_000_000_000u64})).unwrap();
        let mut validation = jsonwebtoken::Validation::new(Algorithm::ES256);
        validation.validate_aud = false;
        let data = jsonwebtoken::decode::<Value>(&token, &key.decoding, &validation).unwrap();
        assert_eq!(data.claims["sub"], "x");
        assert_eq!(data.header.kid.as_deref(), Some(key.kid.as_str()));

        // Another key's signature does not verify.
        let other = SigningKey::from_pem(SigningKey::generate_pem().unwrap().as_bytes()).unwrap();
        assert!(jsonwebtoken::decode::<Value>(&token, &other.decoding, &validation).is_err());

        // HS256 "signed" with the public key never verifies: HMAC has no verifier here.
        let hs_header = b64url(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = b64url(br#"{"sub":"x","exp":4000000000}"#);
        let msg = format!("{hs_header}.{payload}");
        let secret = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.jwk.to_string().as_bytes());
        let mac = b64url(ring::hmac::sign(&secret, msg.as_bytes()).as_ref());
        let forged = format!("{msg}.{mac}");
        let hmac_key = DecodingKey::from_secret(key.jwk.to_string().as_bytes());
        let mut hs = jsonwebtoken::Validation::new(Algorithm::HS256);
        hs.validate_aud = false;
        assert!(jsonwebtoken::decode::<Value>(&forged, &hmac_key, &hs).is_err());
        assert!(jsonwebtoken::decode::<Value>(&forged, &key.decoding, &validation).is_err());

        // alg none does not parse.
        let none = format!("{}.{payload}.", b64url(br#"{"alg":"none"}"#));
        assert!(jsonwebtoken::decode::<Value>(&none, &key.decoding, &validation).is_err());
    }

    #[test]
    fn rsa_keys_sign_rs256() {
        install_provider();
        // A throwaway test key (PKCS#1): ring cannot generate RSA keys.
        let key = SigningKey::from_pem(include_bytes!("testdata/rsa-2048.key")).unwrap();
        assert_eq!(key.alg, Algorithm::RS256);
        assert_eq!(key.jwk["kty"], "RSA");
        let token = key.sign(&json!({"sub": "x", "exp": 4_000_000_000u64})).unwrap();
        let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
        validation.validate_aud = false;
        assert!(jsonwebtoken::decode::<Value>(&token, &key.decoding, &validation).is_ok());
        // The published JWK verifies it too.
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.jwk.clone()).unwrap();
        let from_jwk = DecodingKey::from_jwk(&jwk).unwrap();
        assert!(jsonwebtoken::decode::<Value>(&token, &from_jwk, &validation).is_ok());
        // An RSA key never verifies an EC algorithm.
        let mut es = jsonwebtoken::Validation::new(Algorithm::ES256);
        es.validate_aud = false;
        assert!(jsonwebtoken::decode::<Value>(&token, &key.decoding, &es).is_err());
        assert!(
            SigningKey::from_pem(b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n").is_err()
        );
    }

    #[test]
    fn unverified_payload_reads_claims() {
        let token = format!("{}.{}.sig", b64url(b"{}"), b64url(br#"{"iss":"a"}"#));
        assert_eq!(unverified_payload(&token).unwrap()["iss"], "a");
        assert!(unverified_payload("garbage").is_none());
    }
}
