//! Authentication, authorization and audit.
//!
//! **Who is calling** ([`Authenticator`]), tried in the order kube-apiserver uses: a client
//! certificate verified during the TLS handshake (CN = user, O = groups; it arrives as a
//! request extension), then a bearer token — a static token from `--token-auth-file`, a
//! ServiceAccount JWT signed by the hub ([`serviceaccount`]), or an OIDC ID token
//! ([`oidc`]). A request without credentials is anonymous and reaches only the public
//! endpoints; a request with a credential that does not verify is 401, never anonymous.
//!
//! **What they may do** ([`rbac::Authorizer`]): RBAC evaluated per logical cluster from the
//! Roles and bindings stored there; entering a workspace at all needs a binding there.
//! [`impersonation`] switches identity for callers granted `impersonate`; [`agents`] narrows
//! what an edge agent's own credential may read of Placements, where RBAC cannot.
//!
//! **What happened** ([`audit`]): one JSON line per request, written off the request path.

pub(crate) mod agents;
pub mod audit;
pub mod impersonation;
pub mod jwt;
pub mod oidc;
pub mod rbac;
pub mod serviceaccount;
pub mod tokenfile;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use axum::extract::Request;

pub use rbac::Authorizer;

use faros_storage::Cache;
use serde_json::Value;

/// The user-info extra naming the logical cluster a ServiceAccount belongs to (as kcp).
pub const CLUSTER_EXTRA: &str = "authentication.kcp.io/cluster-name";
/// The group every authenticated request carries.
pub const AUTHENTICATED: &str = "system:authenticated";
/// The group of requests without credentials.
pub const UNAUTHENTICATED: &str = "system:unauthenticated";
/// The group that bypasses authorization.
pub const MASTERS: &str = "system:masters";

/// An authenticated identity, as Kubernetes' `user.Info`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
    pub uid: String,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl User {
    /// How a Workspace records this user as its creator ([`faros_api::tenancy::OWNER_ANNOTATION`]).
    pub fn owner_annotation(&self) -> String {
        serde_json::json!({"username": self.name, "uid": self.uid, "groups": self.groups}).to_string()
    }

    /// A user with `system:authenticated` added to its groups.
    pub fn authenticated(name: impl Into<String>, mut groups: Vec<String>, uid: impl Into<String>) -> User {
        if !groups.iter().any(|g| g == AUTHENTICATED) {
            groups.push(AUTHENTICATED.into());
        }
        User {
            name: name.into(),
            groups,
            uid: uid.into(),
            extra: BTreeMap::new(),
        }
    }

    pub fn is_master(&self) -> bool {
        self.groups.iter().any(|g| g == MASTERS)
    }

    /// The logical cluster this identity is confined to (ServiceAccounts), if any.
    pub fn home_cluster(&self) -> Option<&str> {
        self.extra.get(CLUSTER_EXTRA)?.first().map(String::as_str)
    }
}

/// The verified client-certificate identity of a connection, if it presented one: its user
/// name and groups, shared by every request on the connection.
#[derive(Debug, Clone, Default)]
pub struct PeerIdentity(pub Option<Arc<(String, Vec<String>)>>);

impl PeerIdentity {
    /// The identity of the hub's own in-process callers, as a client certificate would carry it.
    pub(crate) fn of(user: &str, groups: &[&str]) -> PeerIdentity {
        PeerIdentity(Some(Arc::new((
            user.to_string(),
            groups.iter().map(|g| g.to_string()).collect(),
        ))))
    }
}

/// Transport and authentication options of `hub-api start`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AuthOptions {
    /// PEM certificate (chain) to serve instead of the generated one.
    #[arg(long)]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of --tls-cert-file.
    #[arg(long)]
    pub tls_private_key_file: Option<PathBuf>,
    /// PEM bundle of additional CAs whose client certificates are accepted (CN = user, O = groups).
    #[arg(long)]
    pub client_ca_file: Option<PathBuf>,
    /// Static bearer tokens, Kubernetes CSV format: token,user,uid,"group1,group2".
    #[arg(long)]
    pub token_auth_file: Option<PathBuf>,
    /// PEM private key (PKCS#8 ECDSA P-256, or RSA) that signs ServiceAccount tokens
    /// (default: one created in the data directory).
    #[arg(long)]
    pub service_account_key_file: Option<PathBuf>,
    /// The `iss` of ServiceAccount tokens (default: the one recorded in the PKI directory by
    /// `hub-api init` or the first start, there the hub's external URL then).
    #[arg(long)]
    pub service_account_issuer: Option<String>,
    /// Audiences the API accepts in ServiceAccount tokens (default: the issuer).
    #[arg(long = "api-audiences", value_delimiter = ',')]
    pub api_audiences: Vec<String>,
    /// OIDC issuer URL; enables OIDC authentication together with --oidc-client-id.
    #[arg(long)]
    pub oidc_issuer_url: Option<String>,
    /// The audience ID tokens must carry.
    #[arg(long)]
    pub oidc_client_id: Option<String>,
    /// The claim holding the user name.
    #[arg(long, default_value = "sub")]
    pub oidc_username_claim: String,
    /// The claim holding the groups (a string or a list of strings).
    #[arg(long)]
    pub oidc_groups_claim: Option<String>,
    /// Prefix for user names ("-" for none; default: "<issuer>#" unless the claim is email).
    #[arg(long)]
    pub oidc_username_prefix: Option<String>,
    /// Prefix for group names.
    #[arg(long)]
    pub oidc_groups_prefix: Option<String>,
    /// The issuer's keys as a JWKS document (no network needed). Without it the keys are
    /// found through the issuer's discovery document and fetched again as they rotate.
    #[arg(long)]
    pub oidc_jwks_file: Option<PathBuf>,
    /// PEM CAs to trust when fetching the issuer's keys (default: the system's).
    #[arg(long)]
    pub oidc_ca_file: Option<PathBuf>,
    /// Accepted signing algorithms (asymmetric only).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "RS256,RS384,RS512,PS256,PS384,PS512,ES256,ES384"
    )]
    pub oidc_signing_algs: Vec<String>,
    /// Write one JSON line per request to this file.
    #[arg(long)]
    pub audit_log_path: Option<PathBuf>,
}

/// Serves `--tls-cert-file`/`--tls-private-key-file` instead of the generated certificate.
/// Returns the PEM bundle clients should trust: the hub CA, plus the given chain (so a file
/// holding the certificate and its issuing CA yields working kubeconfigs).
pub fn apply_serving_cert(pki: &mut crate::pki::Pki, opts: &AuthOptions) -> anyhow::Result<String> {
    let mut trust = pki.ca_cert_pem.clone();
    match (&opts.tls_cert_file, &opts.tls_private_key_file) {
        (None, None) => {}
        (Some(cert), Some(key)) => {
            let cert_pem = std::fs::read_to_string(cert).with_context(|| format!("reading {}", cert.display()))?;
            let key_pem = std::fs::read_to_string(key).with_context(|| format!("reading {}", key.display()))?;
            pki.serving_cert_pem = cert_pem.clone();
            pki.serving_key_pem = key_pem;
            if !trust.ends_with('\n') {
                trust.push('\n');
            }
            trust.push_str(&cert_pem);
        }
        _ => anyhow::bail!("--tls-cert-file and --tls-private-key-file must be given together"),
    }
    Ok(trust)
}

/// What authentication made of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No credentials at all.
    Anonymous,
    Authenticated(User),
    /// Credentials were presented and did not verify.
    Invalid,
}

/// The bearer token of a request, if it carries one.
pub(crate) fn bearer(request: &Request) -> Option<&str> {
    request
        .headers()
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()
        .and_then(|h| {
            let (scheme, rest) = h.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(rest)
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Identifies callers.
#[derive(Default)]
pub struct Authenticator {
    tokens: Option<tokenfile::TokenFile>,
    service_accounts: Option<Arc<serviceaccount::ServiceAccounts>>,
    oidc: Option<oidc::Oidc>,
}

impl Authenticator {
    pub fn with(
        tokens: Option<tokenfile::TokenFile>,
        service_accounts: Option<Arc<serviceaccount::ServiceAccounts>>,
        oidc: Option<oidc::Oidc>,
    ) -> Self {
        jwt::install_provider();
        Authenticator {
            tokens,
            service_accounts,
            oidc,
        }
    }

    /// Builds every configured authenticator from the start options. `external_url` is the
    /// default ServiceAccount issuer; `ca_pem` goes into legacy token Secrets.
    pub fn from_options(
        opts: &AuthOptions,
        pki_dir: &Path,
        external_url: &str,
        ca_pem: &str,
    ) -> anyhow::Result<Authenticator> {
        let tokens = match &opts.token_auth_file {
            Some(path) => Some(tokenfile::TokenFile::load(path)?),
            None => None,
        };
        let issuer = match &opts.service_account_issuer {
            Some(issuer) => issuer.clone(),
            // Recorded with the rest of the identity the first time: replicas sharing the PKI
            // directory agree on it whatever their own addresses, and a hub that later moves
            // to another address keeps accepting the tokens it issued.
            None => match serviceaccount::ensure_issuer_file(pki_dir, external_url) {
                Ok(issuer) => issuer,
                // A read-only PKI directory made before issuers were recorded.
                Err(e) => {
                    tracing::warn!(
                        error = %format!("{e:#}"),
                        issuer = external_url,
                        "cannot record the ServiceAccount issuer in the PKI directory; using this hub's \
                         URL, so replicas at other addresses reject its tokens (run `hub-api init` on the \
                         directory, or give every replica the same --service-account-issuer)"
                    );
                    external_url.to_string()
                }
            },
        };
        let audiences = if opts.api_audiences.is_empty() {
            vec![issuer.clone()]
        } else {
            opts.api_audiences.clone()
        };
        let service_accounts = serviceaccount::ServiceAccounts::load_or_create(
            pki_dir,
            opts.service_account_key_file.as_deref(),
            issuer,
            audiences,
            external_url,
            ca_pem,
        )
        .context("preparing the ServiceAccount token key")?;
        let oidc = oidc::Oidc::from_options(opts)?;
        Ok(Authenticator::with(tokens, Some(service_accounts), oidc))
    }

    /// Keeps the OIDC issuer's discovered keys fresh until `shutdown` flips (see
    /// [`oidc::Oidc::keep_keys_fresh`]).
    pub async fn keep_keys_fresh(&self, shutdown: tokio::sync::watch::Receiver<bool>) {
        if let Some(oidc) = &self.oidc {
            oidc.keep_keys_fresh(shutdown).await;
        }
    }

    /// For a bearer token that did not verify: whether it named an OIDC key
    /// the hub did not hold and fetching the issuer's keys again was worth it.
    pub async fn refresh_keys_for(&self, token: &str) -> bool {
        match &self.oidc {
            Some(oidc) => oidc.refresh_for(token).await,
            None => false,
        }
    }

    pub fn service_accounts(&self) -> Option<&Arc<serviceaccount::ServiceAccounts>> {
        self.service_accounts.as_ref()
    }

    /// The caller's identity. `cache` backs the checks that make ServiceAccount tokens die
    /// with their ServiceAccount, Secret or bound object.
    pub fn authenticate(&self, request: &Request, cache: &Cache) -> Outcome {
        if let Some(PeerIdentity(Some(peer))) = request.extensions().get::<PeerIdentity>() {
            let (name, groups) = &**peer;
            return Outcome::Authenticated(User::authenticated(name.clone(), groups.clone(), ""));
        }
        if !request.headers().contains_key(http::header::AUTHORIZATION) {
            return Outcome::Anonymous;
        }
        let Some(token) = bearer(request) else {
            return Outcome::Invalid;
        };
        match self.authenticate_token(token, cache) {
            Some(user) => Outcome::Authenticated(user),
            None => Outcome::Invalid,
        }
    }

    /// A TokenReview: the token's identity and the audiences it is good for among
    /// `requested` (the hub's own when none are named), or None.
    ///
    /// Bound ServiceAccount tokens carry their audiences and are checked against the
    /// requested ones. Every other credential is meant for the hub only, so it is accepted
    /// only where the request names one of the hub's audiences, as kube-apiserver does.
    pub fn review(&self, token: &str, requested: &[String], cache: &Cache) -> Option<(User, Vec<String>)> {
        let hub_audiences = self
            .service_accounts
            .as_ref()
            .map(|s| s.audiences().to_vec())
            .unwrap_or_default();
        let wanted = if requested.is_empty() {
            &hub_audiences[..]
        } else {
            requested
        };
        if let Some(sa) = &self.service_accounts
            && let Some(payload) = jwt::unverified_payload(token)
            && payload["iss"].as_str().is_some_and(|iss| sa.issues_bound(iss))
        {
            let user = sa.authenticate_for(token, wanted, cache)?;
            let aud = match &payload["aud"] {
                Value::String(one) => vec![one.clone()],
                many => many
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a.as_str().map(str::to_string))
                    .collect(),
            };
            return Some((user, wanted.iter().filter(|w| aud.contains(w)).cloned().collect()));
        }
        let user = self.authenticate_token(token, cache)?;
        if requested.is_empty() {
            return Some((user, hub_audiences));
        }
        let good_for: Vec<String> = requested
            .iter()
            .filter(|r| hub_audiences.contains(r))
            .cloned()
            .collect();
        (!good_for.is_empty()).then_some((user, good_for))
    }

    /// A bearer token's identity, or None when no authenticator accepts it.
    pub fn authenticate_token(&self, token: &str, cache: &Cache) -> Option<User> {
        if let Some(user) = self.tokens.as_ref().and_then(|t| t.lookup(token)) {
            return Some(user);
        }
        // JWTs go to the authenticator of their issuer; the payload is read unverified only
        // to pick it.
        let payload = jwt::unverified_payload(token)?;
        let iss = payload["iss"].as_str()?;
        if let Some(sa) = &self.service_accounts
            && sa.issues(iss)
        {
            return sa.authenticate(token, cache);
        }
        if let Some(oidc) = &self.oidc
            && oidc.issuer() == iss
        {
            return oidc.authenticate(token);
        }
        None
    }
}
