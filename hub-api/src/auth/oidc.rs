//! OIDC ID tokens from an external issuer, verified against the issuer's keys read once from
//! `--oidc-jwks-file` (no network access needed).
//!
//! A token is accepted when its header names an algorithm from the allow-list (asymmetric
//! only: `none` and every HMAC algorithm are refused, so a token "signed" with a public key
//! as an HMAC secret never verifies), a key of the matching type (by `kid` when given)
//! verifies its signature, `iss` is the issuer, `aud` contains the client id, and `exp`/`nbf`
//! hold. User names and groups get their prefixes; names in the reserved `system:` space are
//! refused, so an issuer cannot assert `system:masters`.

use anyhow::{Context as _, anyhow, bail};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::{AuthOptions, User};

struct Key {
    kid: Option<String>,
    /// Algorithms this key may verify: the allow-list, restricted to the key's type and its
    /// own `alg` when the JWK names one.
    algorithms: Vec<Algorithm>,
    decoding: DecodingKey,
}

pub struct Oidc {
    issuer: String,
    client_id: String,
    username_claim: String,
    username_prefix: String,
    groups_claim: Option<String>,
    groups_prefix: String,
    keys: Vec<Key>,
    allowed: Vec<Algorithm>,
    verified: super::jwt::VerifiedTokens,
}

fn parse_alg(name: &str) -> anyhow::Result<Algorithm> {
    let alg: Algorithm = serde_json::from_value(Value::String(name.trim().to_string()))
        .map_err(|_| anyhow!("unknown signing algorithm {name:?}"))?;
    if !super::jwt::ASYMMETRIC.contains(&alg) {
        bail!("signing algorithm {name} is not allowed: only asymmetric algorithms are accepted");
    }
    Ok(alg)
}

impl Oidc {
    /// None when OIDC is not configured.
    pub fn from_options(opts: &AuthOptions) -> anyhow::Result<Option<Oidc>> {
        let Some(issuer) = opts.oidc_issuer_url.clone() else {
            return Ok(None);
        };
        let client_id = opts
            .oidc_client_id
            .clone()
            .context("--oidc-client-id is required with --oidc-issuer-url")?;
        let path = opts
            .oidc_jwks_file
            .as_ref()
            .context("--oidc-jwks-file is required with --oidc-issuer-url")?;
        let jwks = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let allowed = opts
            .oidc_signing_algs
            .iter()
            .map(|a| parse_alg(a))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let username_prefix = match opts.oidc_username_prefix.as_deref() {
            Some("-") => String::new(),
            Some(prefix) => prefix.to_string(),
            None if opts.oidc_username_claim == "email" => String::new(),
            None => format!("{issuer}#"),
        };
        Oidc::new(
            issuer,
            client_id,
            &jwks,
            allowed,
            opts.oidc_username_claim.clone(),
            username_prefix,
            opts.oidc_groups_claim.clone(),
            opts.oidc_groups_prefix.clone().unwrap_or_default(),
        )
        .map(Some)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn new(
        issuer: String,
        client_id: String,
        jwks: &str,
        allowed: Vec<Algorithm>,
        username_claim: String,
        username_prefix: String,
        groups_claim: Option<String>,
        groups_prefix: String,
    ) -> anyhow::Result<Oidc> {
        super::jwt::install_provider();
        let set: JwkSet = serde_json::from_str(jwks).context("the OIDC JWKS is not a JWK set")?;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            let decoding = DecodingKey::from_jwk(jwk).map_err(|e| anyhow!("an OIDC JWK cannot be used: {e}"))?;
            let family = decoding.family();
            if family == jsonwebtoken::AlgorithmFamily::Hmac {
                bail!("the OIDC JWKS holds a symmetric key; only public keys are accepted");
            }
            let own_alg = jwk
                .common
                .key_algorithm
                .as_ref()
                .and_then(|a| serde_json::to_value(a).ok())
                .and_then(|v| v.as_str().and_then(|s| parse_alg(s).ok()));
            let algorithms: Vec<Algorithm> = allowed
                .iter()
                .copied()
                .filter(|a| a.family() == family && own_alg.is_none_or(|own| own == *a))
                .collect();
            keys.push(Key {
                kid: jwk.common.key_id.clone(),
                algorithms,
                decoding,
            });
        }
        if keys.is_empty() {
            bail!("the OIDC JWKS holds no key");
        }
        Ok(Oidc {
            issuer,
            client_id,
            username_claim,
            username_prefix,
            groups_claim,
            groups_prefix,
            keys,
            allowed,
            verified: Default::default(),
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn authenticate(&self, token: &str) -> Option<User> {
        let claims = self.verified.get_or_verify(token, || self.verify(token))?;
        self.user(&claims)
    }

    fn verify(&self, token: &str) -> Option<Value> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if !self.allowed.contains(&header.alg) {
            return None;
        }
        let claims = self
            .keys
            .iter()
            .filter(|k| k.algorithms.contains(&header.alg))
            .filter(|k| match (&header.kid, &k.kid) {
                (Some(want), Some(have)) => want == have,
                _ => true,
            })
            .find_map(|k| {
                let mut validation = Validation::new(header.alg);
                validation.set_issuer(&[&self.issuer]);
                validation.set_audience(&[&self.client_id]);
                validation.set_required_spec_claims(&["exp", "iss", "aud"]);
                validation.validate_nbf = true;
                jsonwebtoken::decode::<Value>(token, &k.decoding, &validation).ok()
            })?
            .claims;
        Some(claims)
    }

    fn user(&self, claims: &Value) -> Option<User> {
        let raw = claims.get(&self.username_claim)?.as_str().filter(|s| !s.is_empty())?;
        if self.username_claim == "email" && claims.get("email_verified").is_some_and(|v| v != &Value::Bool(true)) {
            return None;
        }
        let name = format!("{}{raw}", self.username_prefix);
        let mut groups = Vec::new();
        if let Some(claim) = &self.groups_claim {
            match claims.get(claim) {
                Some(Value::String(g)) => groups.push(format!("{}{g}", self.groups_prefix)),
                Some(Value::Array(list)) => {
                    for g in list {
                        groups.push(format!("{}{}", self.groups_prefix, g.as_str()?));
                    }
                }
                None | Some(Value::Null) => {}
                Some(_) => return None,
            }
        }
        if name.starts_with("system:") || groups.iter().any(|g| g.starts_with("system:")) {
            return None;
        }
        Some(User::authenticated(name, groups, ""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::jwt::SigningKey;
    use serde_json::json;

    fn setup(prefix: &str, claim: &str) -> (Oidc, std::sync::Arc<SigningKey>) {
        let key = SigningKey::from_pem(SigningKey::generate_pem().unwrap().as_bytes()).unwrap();
        let jwks = json!({"keys": [key.jwk]}).to_string();
        let oidc = Oidc::new(
            "https://issuer".into(),
            "client".into(),
            &jwks,
            vec![Algorithm::ES256, Algorithm::RS256],
            claim.into(),
            prefix.into(),
            Some("groups".into()),
            String::new(),
        )
        .unwrap();
        (oidc, key)
    }

    fn claims(extra: Value) -> Value {
        let now = jiff::Timestamp::now().as_second();
        let mut c = json!({"iss": "https://issuer", "aud": ["client", "other"], "sub": "alice", "exp": now + 600});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    }

    #[test]
    fn valid_tokens_map_to_users() {
        let (oidc, key) = setup("sso:", "sub");
        let user = oidc
            .authenticate(&key.sign(&claims(json!({"groups": ["dev", "ops"]}))).unwrap())
            .unwrap();
        assert_eq!(user.name, "sso:alice");
        assert_eq!(user.groups, vec!["dev", "ops", "system:authenticated"]);
        let user = oidc
            .authenticate(&key.sign(&claims(json!({"groups": "dev"}))).unwrap())
            .unwrap();
        assert_eq!(user.groups, vec!["dev", "system:authenticated"]);
    }

    #[test]
    fn reserved_names_are_refused() {
        let (oidc, key) = setup("", "sub");
        assert!(
            oidc.authenticate(&key.sign(&claims(json!({"sub": "system:admin"}))).unwrap())
                .is_none()
        );
        assert!(
            oidc.authenticate(&key.sign(&claims(json!({"groups": ["system:masters"]}))).unwrap())
                .is_none()
        );
        assert!(oidc.authenticate(&key.sign(&claims(json!({}))).unwrap()).is_some());
    }

    #[test]
    fn unverified_email_is_refused() {
        let (oidc, key) = setup("", "email");
        let verified = claims(json!({"email": "a@example.com", "email_verified": true}));
        assert_eq!(
            oidc.authenticate(&key.sign(&verified).unwrap()).unwrap().name,
            "a@example.com"
        );
        let unverified = claims(json!({"email": "a@example.com", "email_verified": false}));
        assert!(oidc.authenticate(&key.sign(&unverified).unwrap()).is_none());
    }

    #[test]
    fn symmetric_keys_and_algorithms_are_refused() {
        let jwks = json!({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "x"}]}).to_string();
        assert!(
            Oidc::new(
                "i".into(),
                "c".into(),
                &jwks,
                vec![Algorithm::RS256],
                "sub".into(),
                String::new(),
                None,
                String::new()
            )
            .is_err()
        );
        assert!(parse_alg("HS256").is_err());
        assert!(parse_alg("none").is_err());
        assert!(parse_alg("ES256").is_ok());
    }
}
