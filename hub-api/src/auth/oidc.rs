//! OIDC ID tokens from an external issuer, verified against the issuer's keys: read once from
//! `--oidc-jwks-file` (no network access needed), or found through the issuer's discovery
//! document (`<issuer>/.well-known/openid-configuration`, its `jwks_uri`) and fetched again
//! as keys rotate — periodically, and when a token names a key the hub does not hold (at most
//! once per [`MIN_REFETCH`], so made-up key ids cannot make the hub hammer the issuer).
//!
//! A token is accepted when its header names an algorithm from the allow-list (asymmetric
//! only: `none` and every HMAC algorithm are refused, so a token "signed" with a public key
//! as an HMAC secret never verifies), a key of the matching type (by `kid` when given)
//! verifies its signature, `iss` is the issuer, `aud` contains the client id, and `exp`/`nbf`
//! hold. User names and groups get their prefixes; names in the reserved `system:` space are
//! refused, so an issuer cannot assert `system:masters`.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use http_body_util::BodyExt as _;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rustls::pki_types::ServerName;
use serde_json::Value;

use super::{AuthOptions, User};

/// How often discovered keys are fetched again, whatever tokens arrive.
const REFRESH_EVERY: Duration = Duration::from_secs(3600);
/// The least time between two fetches caused by tokens naming unknown keys.
pub const MIN_REFETCH: Duration = Duration::from_secs(10);
/// How long one fetch from the issuer may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest discovery or JWKS document accepted.
const MAX_DOCUMENT: usize = 1 << 20;

/// Where the issuer's keys come from.
pub enum KeySource<'a> {
    /// A JWKS document, read once.
    Jwks(&'a str),
    /// The issuer's discovery document, over TLS trusting these roots.
    Discover(Arc<rustls::ClientConfig>),
}

/// Fetching keys from the issuer.
struct Remote {
    tls: Arc<rustls::ClientConfig>,
    /// When a token naming an unknown key last caused a fetch.
    last_on_demand: Mutex<Option<Instant>>,
    /// One fetch at a time.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Clone)]
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
    keys: RwLock<Arc<Vec<Key>>>,
    remote: Option<Remote>,
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
        let jwks = match &opts.oidc_jwks_file {
            Some(path) => Some(std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?),
            None => None,
        };
        let keys = match &jwks {
            Some(jwks) => KeySource::Jwks(jwks),
            None => KeySource::Discover(issuer_tls(opts.oidc_ca_file.as_deref())?),
        };
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
            keys,
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
        keys: KeySource,
        allowed: Vec<Algorithm>,
        username_claim: String,
        username_prefix: String,
        groups_claim: Option<String>,
        groups_prefix: String,
    ) -> anyhow::Result<Oidc> {
        super::jwt::install_provider();
        let (keys, remote) = match keys {
            KeySource::Jwks(jwks) => (parse_keys(jwks, &allowed)?, None),
            // Fetched by `keep_keys_fresh` (or a first token) once the hub runs.
            KeySource::Discover(tls) => (
                Vec::new(),
                Some(Remote {
                    tls,
                    last_on_demand: Mutex::new(None),
                    fetching: tokio::sync::Mutex::new(()),
                }),
            ),
        };
        Ok(Oidc {
            issuer,
            client_id,
            username_claim,
            username_prefix,
            groups_claim,
            groups_prefix,
            keys: RwLock::new(Arc::new(keys)),
            remote,
            allowed,
            verified: Default::default(),
        })
    }

    fn keys(&self) -> Arc<Vec<Key>> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// For keys found through discovery: fetches them now and again every [`REFRESH_EVERY`]
    /// (sooner while fetching fails) until `shutdown` flips.
    pub async fn keep_keys_fresh(&self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        if self.remote.is_none() {
            return;
        }
        loop {
            let wait = match self.fetch().await {
                Ok(()) => REFRESH_EVERY,
                Err(e) => {
                    tracing::warn!(issuer = %self.issuer, error = %format!("{e:#}"), "cannot fetch the OIDC issuer's keys");
                    MIN_REFETCH
                }
            };
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// For a token of this issuer that names a key the hub does not hold: fetches the keys
    /// again, unless that was done less than [`MIN_REFETCH`] ago. True when the keys changed
    /// hands, so the token is worth verifying again.
    pub async fn refresh_for(&self, token: &str) -> bool {
        let Some(remote) = &self.remote else { return false };
        let Ok(header) = jsonwebtoken::decode_header(token) else {
            return false;
        };
        if super::jwt::unverified_payload(token).is_none_or(|p| p["iss"] != self.issuer.as_str()) {
            return false;
        }
        if let Some(kid) = &header.kid
            && self.keys().iter().any(|k| k.kid.as_ref() == Some(kid))
        {
            return false;
        }
        {
            let mut last = remote.last_on_demand.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|t| t.elapsed() < MIN_REFETCH) {
                return false;
            }
            *last = Some(Instant::now());
        }
        match self.fetch().await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(issuer = %self.issuer, error = %format!("{e:#}"), "cannot fetch the OIDC issuer's keys");
                false
            }
        }
    }

    /// Reads the discovery document, then the JWKS it points to, and takes its keys.
    async fn fetch(&self) -> anyhow::Result<()> {
        let Some(remote) = &self.remote else { return Ok(()) };
        let _one_at_a_time = remote.fetching.lock().await;
        let discovery_url = format!("{}/.well-known/openid-configuration", self.issuer.trim_end_matches('/'));
        let discovery = get_json(&remote.tls, &discovery_url).await?;
        // The document must be the issuer's own (OpenID Connect Discovery, section 4.3).
        if discovery["issuer"] != self.issuer.as_str() {
            bail!(
                "the discovery document at {discovery_url} names issuer {}, not {}",
                discovery["issuer"],
                self.issuer
            );
        }
        let jwks_uri = discovery["jwks_uri"]
            .as_str()
            .with_context(|| format!("the discovery document at {discovery_url} has no jwks_uri"))?;
        let jwks = get_json(&remote.tls, jwks_uri).await?;
        let keys = parse_keys(&jwks.to_string(), &self.allowed).with_context(|| format!("reading {jwks_uri}"))?;
        tracing::info!(issuer = %self.issuer, keys = keys.len(), "fetched the OIDC issuer's keys");
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
        Ok(())
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
            .keys()
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

/// The keys of a JWKS document that may verify tokens: public keys only, each limited to the
/// allowed algorithms of its type (and to its own `alg` when it names one).
fn parse_keys(jwks: &str, allowed: &[Algorithm]) -> anyhow::Result<Vec<Key>> {
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
    Ok(keys)
}

/// TLS to the issuer: trusting `--oidc-ca-file` when given, else the system's roots.
fn issuer_tls(ca_file: Option<&std::path::Path>) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let read = || format!("reading {}", path.display());
            let pem = std::fs::read_to_string(path).with_context(read)?;
            for cert in crate::pki::pem_to_cert_ders(&pem).with_context(read)? {
                roots.add(cert)?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
    }
    if roots.is_empty() {
        bail!("no CA to trust for the OIDC issuer (give --oidc-ca-file or --oidc-jwks-file)");
    }
    let tls = rustls::ClientConfig::builder_with_provider(crate::pki::ring_provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(tls))
}

/// GETs a JSON document over HTTPS.
async fn get_json(tls: &Arc<rustls::ClientConfig>, url: &str) -> anyhow::Result<Value> {
    let fetch = async {
        let uri: http::Uri = url.parse().with_context(|| format!("{url} is not a URL"))?;
        anyhow::ensure!(uri.scheme_str() == Some("https"), "{url} is not an https URL");
        let host = uri.host().with_context(|| format!("{url} has no host"))?;
        let port = uri.port_u16().unwrap_or(443);
        let name = ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']').to_string())?;
        let tcp = tokio::net::TcpStream::connect((host.trim_start_matches('[').trim_end_matches(']'), port)).await?;
        let tls = tokio_rustls::TlsConnector::from(tls.clone()).connect(name, tcp).await?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake::<_, http_body_util::Empty<bytes::Bytes>>(
            hyper_util::rt::TokioIo::new(tls),
        )
        .await?;
        tokio::spawn(connection);
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or(host).to_string();
        let request = http::Request::get(uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
            .header(http::header::HOST, authority)
            .header(http::header::ACCEPT, "application/json")
            .body(http_body_util::Empty::new())?;
        let response = sender.send_request(request).await?;
        anyhow::ensure!(response.status().is_success(), "{url} answered {}", response.status());
        let body = http_body_util::Limited::new(response.into_body(), MAX_DOCUMENT)
            .collect()
            .await
            .map_err(|e| anyhow!("reading {url}: {e}"))?
            .to_bytes();
        serde_json::from_slice(&body).with_context(|| format!("{url} did not answer JSON"))
    };
    tokio::time::timeout(FETCH_TIMEOUT, fetch)
        .await
        .map_err(|_| anyhow!("fetching {url} timed out"))?
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
            KeySource::Jwks(&jwks),
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
                KeySource::Jwks(&jwks),
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
