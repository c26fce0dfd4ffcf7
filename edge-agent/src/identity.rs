//! Who the agent is to the hub.
//!
//! A device starts with a *registration* kubeconfig (the token of a Registration's
//! ServiceAccount, which may only create Agents and mint first tokens). Joining:
//!
//! 1. create the Agent, labelled with the Registration it joins through;
//! 2. wait until the hub has made the agent's own ServiceAccount `faros-agent-<name>` and
//!    POST a TokenRequest for it, bound to the Agent;
//! 3. store server, CA and token in the state directory (mode 0600) and use only that from
//!    then on, minting the next token with the agent's own credential before this one expires.
//!
//! A kubeconfig that is not a registration credential (an administrator's, or `simulate`)
//! is used as it is.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use faros_api::edge::{self, Agent, AgentSpec, REGISTRATION_ACCOUNT_PREFIX, REGISTRATION_LABEL};
use faros_kubeconfig::write_private;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, SelfSubjectReview, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, ResourceExt};
use serde::{Deserialize, Serialize};

use crate::backoff::Backoff;

const CREDENTIAL_KUBECONFIG: &str = "agent.kubeconfig";
const TOKEN_FILE: &str = "token";
const CREDENTIAL_META: &str = "credential.json";
/// A token is renewed once this fraction of its lifetime has passed.
const ROTATE_AT: f64 = 0.8;
/// How long a device whose Agent already existed waits for a token before giving up.
const EXISTING_AGENT_WAIT: Duration = Duration::from_secs(30);

/// What the agent knows about the kubeconfig it was started with.
pub struct Bootstrap {
    pub kubeconfig: Kubeconfig,
    pub context: Option<String>,
    pub config: kube::Config,
}

impl Bootstrap {
    pub async fn load(path: Option<&Path>, context: Option<String>) -> anyhow::Result<Bootstrap> {
        let kubeconfig = match path {
            Some(path) => faros_kubeconfig::read_from(path)?,
            None => faros_kubeconfig::read().context("reading the kubeconfig (set KUBECONFIG or --kubeconfig)")?,
        };
        let options = KubeConfigOptions {
            context: context.clone(),
            ..Default::default()
        };
        let config = kube::Config::from_custom_kubeconfig(kubeconfig.clone(), &options)
            .await
            .context("loading the kubeconfig")?;
        Ok(Bootstrap {
            kubeconfig,
            context,
            config,
        })
    }

    /// The namespace of the kubeconfig's context, if it names one.
    pub fn namespace(&self) -> Option<String> {
        let name = self.context.clone().or(self.kubeconfig.current_context.clone())?;
        self.kubeconfig
            .contexts
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.context.as_ref())
            .and_then(|c| c.namespace.clone())
    }

    fn token(&self) -> Option<String> {
        use kube::config::AuthInfo;
        let name = self.context.clone().or(self.kubeconfig.current_context.clone())?;
        let user = self
            .kubeconfig
            .contexts
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.context.as_ref())
            .map(|c| c.user.clone())?;
        let auth: &AuthInfo = self
            .kubeconfig
            .auth_infos
            .iter()
            .find(|a| Some(&a.name) == user.as_ref())
            .and_then(|a| a.auth_info.as_ref())?;
        // AuthInfo serialises its secrets as they were read.
        let fields = serde_json::to_value(auth).ok()?;
        if let Some(token) = fields["token"].as_str() {
            return Some(token.to_string());
        }
        auth.token_file
            .as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .map(|t| t.trim().to_string())
    }

    /// The hub's CA as base64 PEM, for the stored credential.
    fn ca_data(&self) -> anyhow::Result<Option<String>> {
        match &self.config.root_cert {
            Some(certs) if !certs.is_empty() => {
                let mut pem = String::new();
                for der in certs {
                    pem.push_str("-----BEGIN CERTIFICATE-----\n");
                    let b64 = b64_encode(der);
                    for chunk in b64.as_bytes().chunks(64) {
                        pem.push_str(std::str::from_utf8(chunk).unwrap_or_default());
                        pem.push('\n');
                    }
                    pem.push_str("-----END CERTIFICATE-----\n");
                }
                Ok(Some(b64_encode(pem.as_bytes())))
            }
            _ => Ok(None),
        }
    }
}

/// The stored credential's metadata.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct CredentialMeta {
    pub server: String,
    pub namespace: String,
    pub agent: String,
    pub service_account: String,
    /// RFC 3339.
    pub expiration_timestamp: String,
    /// Lifetime asked for, in seconds.
    pub expiration_seconds: i64,
}

/// The agent's own credential in the state directory.
pub struct StoredCredential {
    pub dir: PathBuf,
    pub meta: CredentialMeta,
}

impl StoredCredential {
    pub fn kubeconfig_path(dir: &Path) -> PathBuf {
        dir.join(CREDENTIAL_KUBECONFIG)
    }

    /// The credential stored for this server, namespace and agent, if any.
    pub fn load(dir: &Path, server: &str, namespace: &str, agent: &str) -> Option<StoredCredential> {
        let text = std::fs::read_to_string(dir.join(CREDENTIAL_META)).ok()?;
        let meta: CredentialMeta = serde_json::from_str(&text).ok()?;
        if meta.server != server || meta.namespace != namespace || meta.agent != agent {
            tracing::warn!(
                state = %dir.display(),
                stored_agent = %meta.agent,
                stored_namespace = %meta.namespace,
                "the state directory holds a credential of another agent or hub; ignoring it"
            );
            return None;
        }
        if !dir.join(TOKEN_FILE).exists() || !Self::kubeconfig_path(dir).exists() {
            return None;
        }
        Some(StoredCredential {
            dir: dir.to_path_buf(),
            meta,
        })
    }

    /// The client configuration of the stored credential (its token is read from the
    /// token file on every use, so rotation needs no restart).
    pub async fn config(&self) -> anyhow::Result<kube::Config> {
        let path = Self::kubeconfig_path(&self.dir);
        let kubeconfig = faros_kubeconfig::read_from(&path)?;
        Ok(kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?)
    }

    /// When the token should be renewed.
    pub fn renew_at(&self) -> jiff::Timestamp {
        let expires: jiff::Timestamp = self
            .meta
            .expiration_timestamp
            .parse()
            .unwrap_or_else(|_| jiff::Timestamp::now());
        let lifetime = self.meta.expiration_seconds.max(60) as f64;
        let early = jiff::SignedDuration::from_secs_f64(lifetime * (1.0 - ROTATE_AT));
        expires - early
    }
}

/// Stores a freshly minted token (and, the first time, the kubeconfig around it).
fn store(
    dir: &Path,
    bootstrap_ca: Option<&str>,
    insecure: bool,
    meta: &CredentialMeta,
    token: &str,
) -> anyhow::Result<StoredCredential> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    let dir = std::fs::canonicalize(dir)?;
    write_private(&dir.join(TOKEN_FILE), token.as_bytes())?;
    let token_file = dir.join(TOKEN_FILE).to_string_lossy().into_owned();
    let cluster = kube::config::Cluster {
        server: Some(meta.server.clone()),
        certificate_authority_data: bootstrap_ca.map(str::to_string),
        insecure_skip_tls_verify: (bootstrap_ca.is_none() && insecure).then_some(true),
        ..Default::default()
    };
    let context = kube::config::Context {
        cluster: "faros".into(),
        user: Some(meta.service_account.clone()),
        namespace: Some(meta.namespace.clone()),
        ..Default::default()
    };
    let kubeconfig = faros_kubeconfig::one_context(
        &meta.service_account,
        context,
        cluster,
        Some(faros_kubeconfig::Credential::TokenFile(&token_file).into()),
    );
    let kubeconfig = format!(
        "# The credential of Faros agent {}, written by edge-agent; the token is rotated in place.\n{}",
        meta.agent,
        faros_kubeconfig::to_yaml(&kubeconfig)?
    );
    write_private(&dir.join(CREDENTIAL_KUBECONFIG), kubeconfig.as_bytes())?;
    write_private(
        &dir.join(CREDENTIAL_META),
        serde_json::to_string_pretty(meta)?.as_bytes(),
    )?;
    Ok(StoredCredential {
        dir,
        meta: meta.clone(),
    })
}

fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// The Registration a bootstrap credential belongs to: from SelfSubjectReview (`kubectl
/// auth whoami`), else from the token's own claims.
async fn registration_of(bootstrap: &Bootstrap, client: &Client, namespace: &str) -> Option<String> {
    let from_user = |user: &str| {
        let rest = user.strip_prefix("system:serviceaccount:")?;
        let (ns, account) = rest.split_once(':')?;
        (ns == namespace)
            .then(|| account.strip_prefix(REGISTRATION_ACCOUNT_PREFIX))
            .flatten()
            .map(str::to_string)
    };
    let review: Api<SelfSubjectReview> = Api::all(client.clone());
    if let Ok(answer) = review
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
    {
        let user = answer
            .status
            .and_then(|s| s.user_info)
            .and_then(|u| u.username)
            .unwrap_or_default();
        if let Some(reg) = from_user(&user) {
            return Some(reg);
        }
        if !user.is_empty() {
            return None;
        }
    }
    let token = bootstrap.token()?;
    let claims = jwt_claims(&token)?;
    claims["sub"].as_str().and_then(from_user)
}

/// The claims of a JWT, unverified (only to learn which account it names).
fn jwt_claims(token: &str) -> Option<serde_json::Value> {
    let payload = token.split('.').nth(1)?;
    serde_json::from_slice(&b64url_decode(payload)?).ok()
}

fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for c in text.bytes().filter(|c| *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(v);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    Some(out)
}

fn b64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The outcome of establishing the agent's identity.
pub struct Identity {
    pub client: Client,
    /// The tunnel's streams, on the client's connection.
    pub(crate) streams: crate::client::Streams,
    /// Set when the agent runs on its own rotating credential.
    pub stored: Option<StoredCredential>,
}

pub struct JoinOptions<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub state_dir: &'a Path,
    pub registration: Option<String>,
    pub token_seconds: i64,
}

/// Uses the stored credential when there is one that works; otherwise joins.
pub async fn establish(bootstrap: &Bootstrap, opts: &JoinOptions<'_>) -> anyhow::Result<Identity> {
    let server = bootstrap.config.cluster_url.to_string();
    if let Some(stored) = StoredCredential::load(opts.state_dir, &server, opts.namespace, opts.name) {
        let config = stored.config().await?;
        let (client, streams) = crate::client::connect(&config)?;
        let agents: Api<Agent> = Api::namespaced(client.clone(), opts.namespace);
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        loop {
            match agents.get(opts.name).await {
                Ok(_) => {
                    tracing::info!(state = %stored.dir.display(), "using the stored agent credential");
                    return Ok(Identity {
                        client,
                        streams,
                        stored: Some(stored),
                    });
                }
                Err(e) if api_code(&e) == Some(401) => {
                    tracing::warn!(
                        "the hub no longer accepts the stored credential (expired or revoked); joining again"
                    );
                    break;
                }
                Err(e) if api_code(&e) == Some(404) => {
                    tracing::warn!("the Agent is gone; joining again");
                    break;
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "cannot reach the hub; retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
    join(bootstrap, opts).await
}

async fn join(bootstrap: &Bootstrap, opts: &JoinOptions<'_>) -> anyhow::Result<Identity> {
    let (client, streams) = crate::client::connect(&bootstrap.config)?;
    let agents: Api<Agent> = Api::namespaced(client.clone(), opts.namespace);
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    let registration = match &opts.registration {
        Some(r) => Some(r.clone()),
        // Fails only when the hub is unreachable, which the create below reports.
        None => registration_of(bootstrap, &client, opts.namespace).await,
    };
    let mut agent = Agent::new(opts.name, AgentSpec::default());
    if let Some(reg) = &registration {
        agent.labels_mut().insert(REGISTRATION_LABEL.to_string(), reg.clone());
    }
    let created = loop {
        match agents.create(&PostParams::default(), &agent).await {
            Ok(created) => {
                tracing::info!(agent = %opts.name, namespace = %opts.namespace, registration = ?registration, "created the Agent");
                break Some(created);
            }
            Err(e) if api_code(&e) == Some(409) => break None,
            Err(e) if api_code(&e) == Some(401) => bail!(
                "the hub rejected this kubeconfig's credential (401 Unauthorized): the registration was revoked or has expired, or the kubeconfig is not for this hub"
            ),
            Err(e) if api_code(&e) == Some(403) => bail!(
                "this kubeconfig's credential may not create Agent {} in namespace {} (403 Forbidden): check FAROS_AGENT_NAMESPACE and the Registration: {e}",
                opts.name,
                opts.namespace
            ),
            Err(e) if api_code(&e) == Some(404) => bail!(
                "the hub does not serve agents in this workspace (404): bind the Faros API (workspace type faros or config/samples/binding.yaml): {e}"
            ),
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "cannot reach the hub; retrying");
                tokio::time::sleep(delay).await;
            }
        }
    };
    let Some(reg) = registration else {
        if created.is_none() {
            // Only a credential that can read the Agent may take it over.
            agents.get(opts.name).await.map_err(|e| {
                anyhow::anyhow!(
                    "Agent {} already exists in namespace {} and this device holds no credential for it ({e})",
                    opts.name,
                    opts.namespace
                )
            })?;
        }
        tracing::warn!(
            "the kubeconfig is not a registration credential: running with it as it is (no per-agent identity)"
        );
        return Ok(Identity {
            client,
            streams,
            stored: None,
        });
    };
    // Exchange the registration credential for the agent's own.
    let account = edge::agent_account(opts.name);
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), opts.namespace);
    let started = std::time::Instant::now();
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    // An existing Agent's uid is not readable with the registration credential: the
    // reference then names the Agent without it.
    let uid = created.as_ref().and_then(|a| a.uid());
    let mut waits = 0u32;
    let mut bind = true;
    loop {
        let request = token_request(opts.name, uid.clone(), opts.token_seconds, bind);
        match accounts
            .create_token_request(&account, &PostParams::default(), &request)
            .await
        {
            Ok(answer) => {
                let stored = save(bootstrap, opts, &account, answer)?;
                tracing::info!(agent = %opts.name, state = %stored.dir.display(), "joined; using the agent's own credential from now on");
                let config = stored.config().await?;
                let (client, streams) = crate::client::connect(&config)?;
                return Ok(Identity {
                    client,
                    streams,
                    stored: Some(stored),
                });
            }
            Err(e) if api_code(&e) == Some(401) => {
                bail!(
                    "the hub rejected the registration credential (401 Unauthorized): Registration {reg} was revoked or has expired"
                )
            }
            Err(e) if matches!(api_code(&e), Some(403 | 404)) => {
                if created.is_none() && started.elapsed() > EXISTING_AGENT_WAIT {
                    bail!(
                        "Agent {} already exists in namespace {} and this device holds no credential for it; \
                         Registration {reg} does not let it mint one (the agent already joined, or the registration does not admit it). \
                         Delete the Agent to register this device again, or use another FAROS_AGENT_NAME",
                        opts.name,
                        opts.namespace
                    );
                }
                waits += 1;
                if waits == 10 || waits.is_multiple_of(50) {
                    tracing::info!(agent = %opts.name, registration = %reg, error = %e, "waiting for the hub to admit the agent");
                }
            }
            Err(e) if bind && binding_unsupported(&e) => {
                tracing::info!("the hub does not bind tokens to Agents; asking for an unbound token");
                bind = false;
                continue;
            }
            Err(e) => tracing::warn!(error = %e, "token request failed; retrying"),
        }
        backoff.wait().await;
    }
}

/// Whether the hub refused to bind a token to an Agent (it may bind only to the kinds it
/// knows, as Kubernetes binds only to Pods, Secrets and Nodes): then the agent asks for an
/// unbound token of its own ServiceAccount, which the Agent owns anyway.
fn binding_unsupported(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 422 && s.message.contains("boundObjectRef"))
}

fn token_request(agent: &str, uid: Option<String>, seconds: i64, bind: bool) -> TokenRequest {
    TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(seconds),
            bound_object_ref: bind.then(|| BoundObjectReference {
                api_version: Some(format!("{}/{}", faros_api::EDGE_GROUP, faros_api::EDGE_VERSION)),
                kind: Some("Agent".into()),
                name: Some(agent.into()),
                uid,
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn save(
    bootstrap: &Bootstrap,
    opts: &JoinOptions<'_>,
    account: &str,
    answer: TokenRequest,
) -> anyhow::Result<StoredCredential> {
    let status = answer.status.context("the TokenRequest answer has no status")?;
    let Some(token) = status.token.clone().filter(|t| !t.is_empty()) else {
        bail!("the hub answered the TokenRequest without a token");
    };
    let meta = CredentialMeta {
        server: bootstrap.config.cluster_url.to_string(),
        namespace: opts.namespace.to_string(),
        agent: opts.name.to_string(),
        service_account: account.to_string(),
        expiration_timestamp: expiry(&status, opts.token_seconds),
        expiration_seconds: opts.token_seconds,
    };
    store(
        opts.state_dir,
        bootstrap.ca_data()?.as_deref(),
        bootstrap.config.accept_invalid_certs,
        &meta,
        &token,
    )
}

/// When a token expires: as the hub says, else as asked.
fn expiry(status: &k8s_openapi::api::authentication::v1::TokenRequestStatus, seconds: i64) -> String {
    match &status.expiration_timestamp {
        Some(t) => t.0.to_string(),
        None => (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(seconds)).to_string(),
    }
}

/// Renews the stored token with the agent's own credential before it expires; never ends.
/// `rotate_every` overrides when to renew (tests).
pub async fn rotate(
    client: Client,
    mut stored: StoredCredential,
    agent_uid: impl Fn() -> Option<String>,
    rotate_every: Option<Duration>,
) {
    let accounts: Api<ServiceAccount> = Api::namespaced(client, &stored.meta.namespace);
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    let mut bind = true;
    loop {
        match rotate_every {
            Some(every) => tokio::time::sleep(every).await,
            None => {
                let wait = stored.renew_at().duration_since(jiff::Timestamp::now());
                if wait.is_positive() {
                    tokio::time::sleep(wait.unsigned_abs()).await;
                }
            }
        }
        let request = token_request(&stored.meta.agent, agent_uid(), stored.meta.expiration_seconds, bind);
        let result = accounts
            .create_token_request(&stored.meta.service_account, &PostParams::default(), &request)
            .await;
        match result {
            Ok(answer) => match answer.status {
                Some(status) if status.token.as_deref().is_some_and(|t| !t.is_empty()) => {
                    stored.meta.expiration_timestamp = expiry(&status, stored.meta.expiration_seconds);
                    let token = status.token.unwrap_or_default();
                    let written = write_private(&stored.dir.join(TOKEN_FILE), token.as_bytes()).and_then(|()| {
                        write_private(
                            &stored.dir.join(CREDENTIAL_META),
                            serde_json::to_string_pretty(&stored.meta)?.as_bytes(),
                        )
                    });
                    match written {
                        Ok(()) => {
                            backoff.reset();
                            tracing::info!(expires = %stored.meta.expiration_timestamp, "rotated the agent credential");
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "could not store the rotated credential");
                            backoff.wait().await;
                        }
                    }
                }
                _ => backoff.wait().await,
            },
            Err(e) if bind && binding_unsupported(&e) => bind = false,
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "credential rotation failed; retrying");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip_and_claims() {
        assert_eq!(b64_encode(b"hello"), "aGVsbG8=");
        assert_eq!(b64_encode(b"hi!"), "aGkh");
        assert_eq!(b64url_decode("aGVsbG8").unwrap(), b"hello");
        let payload = b64_encode(br#"{"sub":"system:serviceaccount:default:faros-reg-r1"}"#)
            .replace('+', "-")
            .replace('/', "_")
            .trim_end_matches('=')
            .to_string();
        let claims = jwt_claims(&format!("h.{payload}.s")).unwrap();
        assert_eq!(claims["sub"], "system:serviceaccount:default:faros-reg-r1");
    }

    #[test]
    fn stored_credential_is_private_and_matched() {
        let dir = std::env::temp_dir().join(format!("edge-agent-test-{}", std::process::id()));
        let meta = CredentialMeta {
            server: "https://hub:6443/clusters/root:t".into(),
            namespace: "default".into(),
            agent: "a1".into(),
            service_account: "faros-agent-a1".into(),
            expiration_timestamp: "2030-01-01T01:00:00Z".into(),
            expiration_seconds: 3600,
        };
        let stored = store(&dir, Some("Q0E="), false, &meta, "tok").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.join(TOKEN_FILE)), 0o600);
        assert_eq!(mode(&dir.join(CREDENTIAL_KUBECONFIG)), 0o600);
        let kubeconfig = faros_kubeconfig::read_from(dir.join(CREDENTIAL_KUBECONFIG)).unwrap();
        assert_eq!(kubeconfig.current_context.as_deref(), Some("faros-agent-a1"));
        assert_eq!(
            stored.renew_at(),
            "2030-01-01T00:48:00Z".parse::<jiff::Timestamp>().unwrap()
        );
        assert!(StoredCredential::load(&dir, &meta.server, "default", "a1").is_some());
        assert!(StoredCredential::load(&dir, &meta.server, "default", "a2").is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
