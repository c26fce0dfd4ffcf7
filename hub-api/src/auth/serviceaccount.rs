//! ServiceAccount tokens: JWTs the hub signs with its own key and verifies itself.
//!
//! Two shapes, as in Kubernetes:
//!
//! - **Bound tokens** (TokenRequest, `kubectl create token`): `iss`, `sub`, `aud`, `exp`,
//!   `iat`, `nbf`, `jti` and a `kubernetes.io` claim with the namespace, the ServiceAccount
//!   (name and uid), the object the token is bound to (a Secret), and — as kcp does — the
//!   logical cluster (`kubernetes.io.clusterName`).
//! - **Legacy tokens** in Secrets of type `kubernetes.io/service-account-token`, filled by the
//!   token controller: issuer `kubernetes/serviceaccount`, flat `kubernetes.io/serviceaccount/*`
//!   claims, no expiry.
//!
//! Every authentication re-checks the hub's cache: the ServiceAccount must still exist with
//! the uid in the token, a legacy token's Secret must still exist with its uid and still hold
//! this very token, and a bound token's object must still exist with its uid. Deleting any of
//! them revokes the token at once. A token names its logical cluster; the identity it yields
//! carries it (`authentication.kcp.io/cluster-name`) and may enter no other workspace.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use base64::Engine as _;
use jsonwebtoken::Validation;
use serde_json::{Value, json};

use super::jwt::SigningKey;
use super::{CLUSTER_EXTRA, User};
use faros_api::meta::{SA_NAME_ANNOTATION, TOKEN_SECRET_TYPE};
use faros_machinery::object;
use faros_storage::{Cache, Key, Prefix};

/// The issuer of legacy Secret-based tokens.
pub const LEGACY_ISSUER: &str = "kubernetes/serviceaccount";
/// File (inside `<data dir>/pki`) holding the generated signing key.
pub const KEY_FILE: &str = "service-account.key";
/// Default and minimum lifetime of requested tokens, as kube-apiserver.
pub const DEFAULT_EXPIRATION: i64 = 3600;
pub const MIN_EXPIRATION: i64 = 600;

const LEGACY_PREFIX: &str = "kubernetes.io/serviceaccount/";
/// Claim (inside `kubernetes.io`) naming a bound object other than a Secret.
const BOUND_CLAIM: &str = "faros.sh/boundObject";

pub struct ServiceAccounts {
    issuer: String,
    audiences: Vec<String>,
    key: Arc<SigningKey>,
    external_url: String,
    ca_pem: String,
    bound: Validation,
    legacy: Validation,
    verified: super::jwt::VerifiedTokens,
}

/// What a requested token is for.
pub struct TokenSpec<'a> {
    pub cluster: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    pub uid: &'a str,
    pub audiences: Vec<String>,
    pub expiration_seconds: i64,
    /// The object the token is bound to, if any.
    pub bound: Option<BoundObject>,
}

/// The object a bound token dies with: a Secret (as in Kubernetes), or any other object of
/// the workspace (a Faros extension, e.g. an edge Agent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundObject {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
    /// Where the object is stored (checked at every authentication).
    pub key: String,
}

pub fn username(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// (namespace, name) of a ServiceAccount user name.
pub fn split_username(user: &str) -> Option<(&str, &str)> {
    let rest = user.strip_prefix("system:serviceaccount:")?;
    let (ns, name) = rest.split_once(':')?;
    (!ns.is_empty() && !name.is_empty() && !name.contains(':')).then_some((ns, name))
}

/// The identity of a ServiceAccount of `cluster`.
pub fn user(cluster: &str, namespace: &str, name: &str, uid: &str) -> User {
    let mut user = User::authenticated(
        username(namespace, name),
        vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{namespace}"),
        ],
        uid,
    );
    user.extra.insert(CLUSTER_EXTRA.into(), vec![cluster.to_string()]);
    user
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// File (inside the PKI directory) naming the issuer of ServiceAccount tokens, so that every
/// replica sharing the directory signs and accepts the same `iss` (and default audience),
/// whatever its own address.
pub const ISSUER_FILE: &str = "service-account-issuer";

/// The issuer recorded in `pki_dir`; when there is none yet, records `default` (the first
/// writer wins when several processes start at once) and returns what was recorded.
pub(crate) fn ensure_issuer_file(pki_dir: &Path, default: &str) -> anyhow::Result<String> {
    let path = pki_dir.join(ISSUER_FILE);
    if let Some(issuer) = read_issuer(&path)? {
        return Ok(issuer);
    }
    std::fs::create_dir_all(pki_dir).with_context(|| format!("creating {}", pki_dir.display()))?;
    // Written whole under a temporary name, then linked into place: the link fails if
    // another process recorded an issuer meanwhile, and then that one is used.
    let temporary = pki_dir.join(format!(".{ISSUER_FILE}.{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&temporary, format!("{default}\n")).with_context(|| format!("writing {}", temporary.display()))?;
    let linked = std::fs::hard_link(&temporary, &path);
    let _ = std::fs::remove_file(&temporary);
    match linked {
        Ok(()) => Ok(default.to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read_issuer(&path)?.with_context(|| format!("{} is empty", path.display()))
        }
        Err(e) => Err(e).with_context(|| format!("writing {}", path.display())),
    }
}

/// The issuer in `path`, if the file exists.
fn read_issuer(path: &Path) -> anyhow::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let issuer = text.trim();
            anyhow::ensure!(!issuer.is_empty(), "{} is empty", path.display());
            Ok(Some(issuer.to_string()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The signing key's file in `pki_dir`, generated if it is not there yet.
pub(crate) fn ensure_key_file(pki_dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    let path = pki_dir.join(KEY_FILE);
    if !path.exists() {
        std::fs::create_dir_all(pki_dir)?;
        faros_kubeconfig::write_private(&path, SigningKey::generate_pem()?.as_bytes())?;
    }
    Ok(path)
}

impl ServiceAccounts {
    /// Loads the signing key from `key_file`, or from (or newly into) the PKI directory.
    pub fn load_or_create(
        pki_dir: &Path,
        key_file: Option<&Path>,
        issuer: String,
        audiences: Vec<String>,
        external_url: &str,
        ca_pem: &str,
    ) -> anyhow::Result<Arc<ServiceAccounts>> {
        let pem = match key_file {
            Some(path) => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
            None => {
                let path = ensure_key_file(pki_dir)?;
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?
            }
        };
        let key = SigningKey::from_pem(&pem)?;
        Ok(Arc::new(Self::new(key, issuer, audiences, external_url, ca_pem)))
    }

    pub fn new(
        key: Arc<SigningKey>,
        issuer: String,
        audiences: Vec<String>,
        external_url: &str,
        ca_pem: &str,
    ) -> ServiceAccounts {
        super::jwt::install_provider();
        let mut bound = Validation::new(key.alg);
        bound.set_issuer(&[&issuer]);
        bound.set_audience(&audiences);
        bound.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        bound.validate_nbf = true;
        let mut legacy = Validation::new(key.alg);
        legacy.set_issuer(&[LEGACY_ISSUER]);
        legacy.set_required_spec_claims(&["iss", "sub"]);
        legacy.validate_exp = false;
        legacy.validate_aud = false;
        ServiceAccounts {
            issuer,
            audiences,
            key,
            external_url: external_url.to_string(),
            ca_pem: ca_pem.to_string(),
            bound,
            legacy,
            verified: Default::default(),
        }
    }

    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }

    /// The CA bundle clients of the hub trust (written into legacy token Secrets).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Whether tokens with this `iss` are the hub's own.
    pub fn issues(&self, iss: &str) -> bool {
        iss == self.issuer || iss == LEGACY_ISSUER
    }

    /// `/.well-known/openid-configuration`
    pub fn discovery_document(&self) -> Value {
        json!({
            "issuer": self.issuer,
            "jwks_uri": format!("{}/openid/v1/jwks", self.external_url),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [format!("{:?}", self.key.alg)],
        })
    }

    /// `/openid/v1/jwks`
    pub fn jwks(&self) -> Value {
        json!({"keys": [self.key.jwk]})
    }

    /// Signs a bound token; returns it and its expiry (Unix seconds).
    pub fn issue(&self, spec: &TokenSpec) -> anyhow::Result<(String, i64)> {
        let now = now();
        let exp = now + spec.expiration_seconds;
        let mut k8s = json!({
            "namespace": spec.namespace,
            "serviceaccount": {"name": spec.name, "uid": spec.uid},
            "clusterName": spec.cluster,
        });
        match &spec.bound {
            Some(b) if b.kind == "Secret" && b.api_version == "v1" => {
                k8s["secret"] = json!({"name": b.name, "uid": b.uid});
            }
            Some(b) => {
                k8s[BOUND_CLAIM] =
                    json!({"apiVersion": b.api_version, "kind": b.kind, "name": b.name, "uid": b.uid, "key": b.key});
            }
            None => {}
        }
        let audiences = if spec.audiences.is_empty() {
            self.audiences.clone()
        } else {
            spec.audiences.clone()
        };
        let claims = json!({
            "iss": self.issuer,
            "sub": username(spec.namespace, spec.name),
            "aud": audiences,
            "exp": exp,
            "iat": now,
            "nbf": now,
            "jti": uuid::Uuid::new_v4().to_string(),
            "kubernetes.io": k8s,
        });
        Ok((self.key.sign(&claims)?, exp))
    }

    /// Signs a legacy token for a token Secret.
    pub fn issue_legacy(
        &self,
        cluster: &str,
        namespace: &str,
        sa: (&str, &str),
        secret: (&str, &str),
    ) -> anyhow::Result<String> {
        let claims = json!({
            "iss": LEGACY_ISSUER,
            "sub": username(namespace, sa.0),
            "kubernetes.io/serviceaccount/namespace": namespace,
            "kubernetes.io/serviceaccount/secret.name": secret.0,
            "kubernetes.io/serviceaccount/secret.uid": secret.1,
            "kubernetes.io/serviceaccount/service-account.name": sa.0,
            "kubernetes.io/serviceaccount/service-account.uid": sa.1,
            "kubernetes.io/serviceaccount/clusterName": cluster,
        });
        self.key.sign(&claims)
    }

    /// Verifies one of the hub's tokens and checks that what it names still exists.
    pub fn authenticate(&self, token: &str, cache: &Cache) -> Option<User> {
        let claims = self.verified.get_or_verify(token, || {
            let iss = super::jwt::unverified_payload(token)?["iss"].as_str()?.to_string();
            let validation = if iss == LEGACY_ISSUER {
                &self.legacy
            } else {
                &self.bound
            };
            self.verify(token, validation)
        })?;
        self.user_of(token, &claims, cache)
    }

    /// As [`Self::authenticate`], for a bound token meant for `audiences` rather than the
    /// hub's (a TokenReview naming its own). Not cached: reviews are rare.
    pub fn authenticate_for(&self, token: &str, audiences: &[String], cache: &Cache) -> Option<User> {
        let mut validation = self.bound.clone();
        validation.set_audience(audiences);
        let claims = self.verify(token, &validation)?;
        self.user_of(token, &claims, cache)
    }

    /// Whether `iss` is that of bound (audience-scoped) tokens rather than legacy ones.
    pub fn issues_bound(&self, iss: &str) -> bool {
        iss == self.issuer
    }

    fn verify(&self, token: &str, validation: &Validation) -> Option<Value> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if header.kid.as_deref().is_some_and(|kid| kid != self.key.kid) {
            return None;
        }
        Some(
            jsonwebtoken::decode::<Value>(token, &self.key.decoding, validation)
                .ok()?
                .claims,
        )
    }

    /// The identity verified `claims` stand for, while what they name still exists.
    fn user_of(&self, token: &str, claims: &Value, cache: &Cache) -> Option<User> {
        if claims["iss"] == LEGACY_ISSUER {
            return self.check_legacy(token, claims, cache);
        }
        let k8s = &claims["kubernetes.io"];
        let cluster = k8s["clusterName"].as_str().filter(|c| !c.is_empty())?;
        let namespace = k8s["namespace"].as_str()?;
        let name = k8s["serviceaccount"]["name"].as_str()?;
        let uid = k8s["serviceaccount"]["uid"].as_str()?;
        if claims["sub"].as_str()? != username(namespace, name) {
            return None;
        }
        live(
            cache,
            &Prefix::resource("", "serviceaccounts")
                .cluster(cluster)
                .namespace(namespace)
                .name(name),
            uid,
        )?;
        if let Some(secret) = k8s.get("secret").filter(|s| !s.is_null()) {
            live(
                cache,
                &Prefix::resource("", "secrets")
                    .cluster(cluster)
                    .namespace(namespace)
                    .name(secret["name"].as_str()?),
                secret["uid"].as_str()?,
            )?;
        }
        if let Some(bound) = k8s.get(BOUND_CLAIM).filter(|b| !b.is_null()) {
            let key = bound["key"].as_str()?;
            // Only objects of the token's own workspace.
            if Key::parse(key).is_none_or(|k| k.cluster != cluster) {
                return None;
            }
            live(cache, key, bound["uid"].as_str()?)?;
        }
        let mut user = user(cluster, namespace, name, uid);
        if let Some(jti) = claims["jti"].as_str() {
            user.extra.insert(
                "authentication.kubernetes.io/credential-id".into(),
                vec![format!("JTI={jti}")],
            );
        }
        Some(user)
    }

    fn check_legacy(&self, token: &str, claims: &Value, cache: &Cache) -> Option<User> {
        let claim = |name: &str| {
            claims[format!("{LEGACY_PREFIX}{name}")]
                .as_str()
                .filter(|v| !v.is_empty())
        };
        let cluster = claim("clusterName")?;
        let namespace = claim("namespace")?;
        let sa_name = claim("service-account.name")?;
        let sa_uid = claim("service-account.uid")?;
        let secret_name = claim("secret.name")?;
        if claims["sub"].as_str()? != username(namespace, sa_name) {
            return None;
        }
        live(
            cache,
            &Prefix::resource("", "serviceaccounts")
                .cluster(cluster)
                .namespace(namespace)
                .name(sa_name),
            sa_uid,
        )?;
        let secret = cache.get(
            &Prefix::resource("", "secrets")
                .cluster(cluster)
                .namespace(namespace)
                .name(secret_name),
        )?;
        let secret = secret.value();
        if object::is_deleting(&secret)
            || claim("secret.uid").is_some_and(|uid| uid != object::uid(&secret))
            || secret["type"] != TOKEN_SECRET_TYPE
            || secret["metadata"]["annotations"][SA_NAME_ANNOTATION] != sa_name
        {
            return None;
        }
        // The Secret must still hold this very token: a re-created Secret of the same name
        // holds a new one.
        let stored = secret["data"]["token"].as_str()?;
        if stored != base64::engine::general_purpose::STANDARD.encode(token) {
            return None;
        }
        let mut user = user(cluster, namespace, sa_name, sa_uid);
        user.extra.insert(
            "authentication.kubernetes.io/credential-id".into(),
            vec![format!("Secret={secret_name}")],
        );
        Some(user)
    }
}

/// The object at `key` exists, is not being deleted and has `uid`. Every request with a
/// bound token asks this of its ServiceAccount: only the two fields are decoded.
fn live(cache: &Cache, key: &str, uid: &str) -> Option<()> {
    #[derive(serde::Deserialize)]
    struct Object {
        metadata: Metadata,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Metadata {
        #[serde(default)]
        uid: String,
        #[serde(default)]
        deletion_timestamp: Option<serde::de::IgnoredAny>,
    }
    let meta = cache.get(key)?.decode::<Object>().ok()?.metadata;
    (meta.uid == uid && meta.deletion_timestamp.is_none()).then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert_eq!(username("ns", "sa"), "system:serviceaccount:ns:sa");
        assert_eq!(split_username("system:serviceaccount:ns:sa"), Some(("ns", "sa")));
        assert_eq!(split_username("system:serviceaccount:ns"), None);
        assert_eq!(split_username("alice"), None);
        let u = user("c1", "ns", "sa", "u1");
        assert_eq!(u.home_cluster(), Some("c1"));
        assert!(u.groups.contains(&"system:serviceaccounts:ns".to_string()));
    }

    /// Replicas at different addresses sharing one PKI directory agree on one issuer: the
    /// first recorded, even when they start at the same moment.
    #[test]
    fn the_issuer_is_recorded_once_for_every_replica() {
        let dir = std::env::temp_dir().join(format!("faros-issuer-{}", uuid::Uuid::new_v4()));
        let replicas: Vec<String> = (0..8).map(|i| format!("https://10.0.0.{i}:6443")).collect();
        let chosen: Vec<String> = std::thread::scope(|scope| {
            let started: Vec<_> = replicas
                .iter()
                .map(|url| scope.spawn(|| ensure_issuer_file(&dir, url).unwrap()))
                .collect();
            started.into_iter().map(|t| t.join().unwrap()).collect()
        });
        assert!(replicas.contains(&chosen[0]));
        assert!(chosen.iter().all(|c| *c == chosen[0]), "{chosen:?}");
        // Later starts, from any address, keep it; nothing else is left in the directory.
        assert_eq!(ensure_issuer_file(&dir, "https://elsewhere:6443").unwrap(), chosen[0]);
        let files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(files, [ISSUER_FILE]);
        std::fs::write(dir.join(ISSUER_FILE), "\n").unwrap();
        assert!(
            ensure_issuer_file(&dir, "https://elsewhere:6443").is_err(),
            "an empty record is an error"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
