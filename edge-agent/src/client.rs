//! The agent's HTTPS client to the hub, built from a kubeconfig's client configuration.
//!
//! kube-rs builds such clients too, but its credential code carries every provider a
//! workstation might use, among them the legacy cloud `auth-provider` plugins (JSONPath
//! expressions, regular expressions) and a YAML parser for exec plugins' output: together
//! a sixth of the agent's binary. The agent assembles the same stack from kube-rs's public
//! parts (base URI, extra and impersonation headers, retries of 429/503) around its own TLS
//! set-up, and presents the credentials a device uses: a client certificate, a bearer token, a token
//! file (read on every request, so a rotated token needs no restart), basic auth, or an
//! exec plugin (for instance one that reads a token sealed in a TPM). `auth-provider`
//! entries, which kubectl itself dropped in 1.26, are refused with a clear message.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::task::{Context, Poll};

use anyhow::{Context as _, anyhow, bail};
use base64::Engine as _;
use bytes::Bytes;
use futures::future::BoxFuture;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_timeout::TimeoutConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kube::client::retry::RetryPolicy;
use kube::client::{Body, ConfigExt as _};
use kube::config::ExecConfig;
use secrecy::ExposeSecret as _;
use serde::Deserialize;
use tower::retry::RetryLayer;
use tower::{BoxError, Layer, Service, ServiceBuilder, ServiceExt as _};

/// Every request body the agent's transport sends: kube-rs's, or a tunnel stream's.
pub(crate) type TransportBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// The tunnel's streams to the hub, sent on the API client's connection (see [`connect`]).
#[derive(Clone)]
pub(crate) struct Streams(tower::util::BoxCloneSyncService<Request<TransportBody>, Response<Incoming>, BoxError>);

impl Streams {
    pub(crate) fn send(
        &self,
        request: Request<TransportBody>,
    ) -> BoxFuture<'static, Result<Response<Incoming>, BoxError>> {
        Box::pin(self.0.clone().oneshot(request))
    }
}

/// How long the connection may stay silent before the agent PINGs the hub, and how long the
/// answer may take before the connection is dropped: client-go's values for HTTP/2. A
/// connection that carries the agent's renewals is never silent that long; one to a hub
/// that vanished without closing it is noticed, and its requests fail instead of hanging.
const PING_AFTER: Duration = Duration::from_secs(30);
const PING_TIMEOUT: Duration = Duration::from_secs(15);
/// What the hub may send on one stream, and on the whole connection, before the agent reads
/// it: a tunnel stream the device is slow to take in holds back only itself, never the
/// agent's watches.
const STREAM_WINDOW: u32 = 256 * 1024;
const CONNECTION_WINDOW: u32 = 8 * 1024 * 1024;

/// The agent's connection to the hub as `config` describes it: a kube-rs client for the API,
/// and the tunnel's streams, both over one HTTP/2 connection, which carries the Lease
/// renewals, the watches, the status writes and the tunnel of the device, so a device costs
/// the hub one connection. HTTP/2 only, as the hub speaks it: a pool that could also speak
/// HTTP/1.1 opens a connection for each request sent while its first one is being set up,
/// and behind a balancer those may reach different replicas, while a tunnel stream must
/// reach the replica that holds the control stream. The simulator's agents share it too.
pub(crate) fn connect(config: &kube::Config) -> anyhow::Result<(kube::Client, Streams)> {
    build(config)
}

/// A client of the hub as `config` describes it (see [`connect`]).
pub(crate) fn client(config: &kube::Config) -> anyhow::Result<kube::Client> {
    Ok(connect(config)?.0)
}

fn build(config: &kube::Config) -> anyhow::Result<(kube::Client, Streams)> {
    let credential = Credential::of(config)?;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls_config(config)?)
        .https_or_http();
    let https = match &config.tls_server_name {
        Some(name) => {
            let name = ServerName::try_from(name.clone()).map_err(|e| anyhow!("tls-server-name {name:?}: {e}"))?;
            https.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
        }
        None => https,
    };
    let https = https.enable_http2().wrap_connector(http);
    let mut connector = TimeoutConnector::new(https);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    let transport = hyper_util::client::legacy::Builder::new(TokioExecutor::new())
        .http2_only(true)
        .timer(TokioTimer::new())
        .http2_keep_alive_interval(PING_AFTER)
        .http2_keep_alive_timeout(PING_TIMEOUT)
        .http2_initial_stream_window_size(STREAM_WINDOW)
        .http2_initial_connection_window_size(CONNECTION_WINDOW)
        .build::<_, TransportBody>(connector);
    let api = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(
            config
                .default_retry
                .then(|| RetryLayer::new(RetryPolicy::server_retry())),
        )
        .layer(AuthorizeLayer(credential.clone()))
        .layer(config.extra_headers_layer()?)
        .map_request(|request: Request<Body>| request.map(|body| body.map_err(BoxError::from).boxed_unsync()))
        .map_err(BoxError::from)
        .service(transport.clone());
    let streams = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .layer(AuthorizeLayer(credential))
        .layer(config.extra_headers_layer()?)
        .map_err(BoxError::from)
        .service(transport);
    Ok((
        kube::Client::new(api, config.default_namespace.clone()),
        Streams(tower::util::BoxCloneSyncService::new(streams)),
    ))
}

/// The TLS side of `config`: the hub's CA from the kubeconfig (the system's trust store when
/// it names none, or no verification with `insecure-skip-tls-verify`), and the client
/// certificate when the user has one.
pub(crate) fn tls_config(config: &kube::Config) -> anyhow::Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder =
        rustls::ClientConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
    let builder = if config.accept_invalid_certs {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified(provider)))
    } else if let Some(roots) = &config.root_cert {
        let mut store = rustls::RootCertStore::empty();
        for der in roots {
            store
                .add(CertificateDer::from(der.clone()))
                .context("the kubeconfig's certificate authority")?;
        }
        builder.with_root_certificates(store)
    } else {
        use rustls_platform_verifier::BuilderVerifierExt as _;
        builder
            .with_platform_verifier()
            .context("the system's trusted certificates")?
    };
    let auth = &config.auth_info;
    let cert = pem_data(
        auth.client_certificate_data.as_deref(),
        auth.client_certificate.as_deref(),
    )
    .context("the kubeconfig's client certificate")?;
    let key = pem_data(
        auth.client_key_data.as_ref().map(|k| k.expose_secret()),
        auth.client_key.as_deref(),
    )
    .context("the kubeconfig's client key")?;
    Ok(match (cert, key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_slice_iter(&cert)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| anyhow!("the kubeconfig's client certificate: {e}"))?;
            let key = PrivateKeyDer::from_pem_slice(&key).map_err(|e| anyhow!("the kubeconfig's client key: {e}"))?;
            builder.with_client_auth_cert(chain, key)?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => bail!("the kubeconfig's user has a client certificate without its key, or a key without its certificate"),
    })
}

/// A TLS configuration that accepts any server certificate (see [`Unverified`]).
pub(crate) fn unverified_tls() -> anyhow::Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Unverified(provider)))
        .with_no_client_auth())
}

/// PEM given inline (base64, as kubeconfigs carry it) or in a file.
fn pem_data(inline: Option<&str>, file: Option<&str>) -> anyhow::Result<Option<Vec<u8>>> {
    match (inline, file) {
        (Some(data), _) => Ok(Some(
            base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .context("not base64")?,
        )),
        (None, Some(file)) => Ok(Some(std::fs::read(file).with_context(|| format!("reading {file}"))?)),
        (None, None) => Ok(None),
    }
}

/// Accepts any certificate (the handshake's signatures are still checked, with the
/// certificate's own key): for `insecure-skip-tls-verify`, and for the one request of a join
/// whose answer is then checked against the CA pin.
#[derive(Debug)]
struct Unverified(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// What the agent presents as `Authorization` on each request.
#[derive(Clone)]
pub(crate) struct Credential(Arc<Source>);

enum Source {
    /// Nothing, or a client certificate, which the TLS connector presents.
    None,
    /// A token or basic auth fixed in the kubeconfig.
    Fixed(HeaderValue),
    /// A file holding the token, read for every request; the last token read stands in
    /// while the file cannot be read (as kube-rs and client-go do).
    TokenFile {
        path: String,
        last: Mutex<Option<HeaderValue>>,
    },
    /// An exec plugin's token, kept until it nearly expires or the hub refuses it. The lock
    /// is held while the plugin runs, so concurrent requests run it once.
    Exec {
        config: Box<ExecConfig>,
        current: tokio::sync::Mutex<Option<(HeaderValue, Option<jiff::Timestamp>)>>,
    },
}

/// An exec plugin's token is asked for again this long before it expires, so that no request
/// leaves with a token that expires on the way.
const EXPIRY_MARGIN: Duration = Duration::from_secs(10);

impl Credential {
    pub(crate) fn of(config: &kube::Config) -> anyhow::Result<Credential> {
        let auth = &config.auth_info;
        if auth.auth_provider.is_some() {
            bail!(
                "the kubeconfig's user has an auth-provider, which the agent does not support \
                 (kubectl dropped them in 1.26): use a token, a token file, a client certificate or an exec plugin"
            );
        }
        if let Some(proxy) = &config.proxy_url {
            bail!(
                "the kubeconfig names a proxy ({proxy}), which the agent does not support: it connects to the hub directly"
            );
        }
        // The same precedence as kube-rs when a user names several.
        let source = if let (Some(user), Some(password)) = (&auth.username, &auth.password) {
            let pair = format!("{user}:{}", password.expose_secret());
            let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
            Source::Fixed(sensitive(&format!("Basic {encoded}"))?)
        } else if let Some(token) = &auth.token {
            Source::Fixed(bearer(token.expose_secret())?)
        } else if let Some(file) = &auth.token_file {
            Source::TokenFile {
                path: file.clone(),
                last: Mutex::new(None),
            }
        } else if let Some(exec) = &auth.exec {
            Source::Exec {
                config: Box::new(exec.clone()),
                current: tokio::sync::Mutex::new(None),
            }
        } else {
            Source::None
        };
        Ok(Credential(Arc::new(source)))
    }

    /// The `Authorization` header to send now, if any.
    pub(crate) async fn header(&self) -> anyhow::Result<Option<HeaderValue>> {
        match &*self.0 {
            Source::None => Ok(None),
            Source::Fixed(value) => Ok(Some(value.clone())),
            Source::TokenFile { path, last } => {
                let read = match tokio::fs::read_to_string(path).await {
                    Ok(token) => bearer(&token),
                    Err(e) => Err(anyhow::Error::from(e).context(format!("reading the token file {path}"))),
                };
                let mut last = last.lock().expect("credential lock");
                match read {
                    Ok(value) => {
                        *last = Some(value.clone());
                        Ok(Some(value))
                    }
                    Err(e) => match last.as_ref() {
                        Some(value) => {
                            tracing::warn!(error = %format!("{e:#}"), "using the token read before");
                            Ok(Some(value.clone()))
                        }
                        None => Err(e),
                    },
                }
            }
            Source::Exec { config, current } => {
                let mut current = current.lock().await;
                let fresh_until = jiff::Timestamp::now() + EXPIRY_MARGIN;
                if let Some((value, expiry)) = current.as_ref()
                    && expiry.is_none_or(|at| at > fresh_until)
                {
                    return Ok(Some(value.clone()));
                }
                let issued = run_exec(config).await?;
                let value = issued.0.clone();
                *current = Some(issued);
                Ok(Some(value))
            }
        }
    }

    /// The hub refused `sent`: an exec plugin is asked for a new token next time, unless
    /// another request has fetched one meanwhile.
    pub(crate) async fn refused(&self, sent: Option<&HeaderValue>) {
        if let Source::Exec { current, .. } = &*self.0 {
            let mut current = current.lock().await;
            if current.as_ref().map(|(value, _)| value) == sent {
                *current = None;
            }
        }
    }
}

fn bearer(token: &str) -> anyhow::Result<HeaderValue> {
    sensitive(&format!("Bearer {}", token.trim()))
}

fn sensitive(value: &str) -> anyhow::Result<HeaderValue> {
    let mut value = HeaderValue::from_str(value).map_err(|_| anyhow!("the credential is not a valid header value"))?;
    value.set_sensitive(true);
    Ok(value)
}

/// The parts of client-go's `ExecCredential` the agent reads from a plugin.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExecCredential {
    status: Option<ExecStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExecStatus {
    token: Option<String>,
    expiration_timestamp: Option<jiff::Timestamp>,
    client_certificate_data: Option<String>,
}

/// Runs the exec plugin, non-interactively (the agent is a service), as client-go does:
/// `KUBERNETES_EXEC_INFO` describes the request, the plugin prints an `ExecCredential`.
async fn run_exec(config: &ExecConfig) -> anyhow::Result<(HeaderValue, Option<jiff::Timestamp>)> {
    let command = config
        .command
        .as_deref()
        .context("the kubeconfig's exec plugin names no command")?;
    let mut spec = serde_json::json!({"interactive": false});
    if config.provide_cluster_info {
        spec["cluster"] = serde_json::to_value(&config.cluster)?;
    }
    let info = serde_json::json!({
        "apiVersion": config.api_version,
        "kind": "ExecCredential",
        "spec": spec,
    });
    let mut cmd = tokio::process::Command::new(command);
    cmd.args(config.args.iter().flatten())
        .envs(
            config
                .env
                .iter()
                .flatten()
                .filter_map(|pair| Some((pair.get("name")?, pair.get("value")?))),
        )
        .env("KUBERNETES_EXEC_INFO", info.to_string())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    for name in config.drop_env.iter().flatten() {
        cmd.env_remove(name);
    }
    let out = cmd
        .output()
        .await
        .with_context(|| format!("running the exec credential plugin {command}"))?;
    if !out.status.success() {
        bail!(
            "the exec credential plugin {command} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let credential: ExecCredential = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("the exec credential plugin {command} printed no ExecCredential"))?;
    let status = credential
        .status
        .with_context(|| format!("the exec credential plugin {command} returned no status"))?;
    match (status.token, status.client_certificate_data) {
        (Some(token), _) => Ok((bearer(&token)?, status.expiration_timestamp)),
        (None, Some(_)) => bail!(
            "the exec credential plugin {command} returned a client certificate, which the agent does not \
             support: have it return a token"
        ),
        (None, None) => bail!("the exec credential plugin {command} returned no token"),
    }
}

/// Sets each request's `Authorization` from a [`Credential`].
#[derive(Clone)]
struct AuthorizeLayer(Credential);

impl<S> Layer<S> for AuthorizeLayer {
    type Service = Authorize<S>;

    fn layer(&self, inner: S) -> Authorize<S> {
        Authorize {
            credential: self.0.clone(),
            inner,
        }
    }
}

#[derive(Clone)]
struct Authorize<S> {
    credential: Credential,
    inner: S,
}

impl<S, ReqB, B> Service<Request<ReqB>> for Authorize<S>
where
    ReqB: Send + 'static,
    S: Service<Request<ReqB>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Send + 'static,
{
    type Response = Response<B>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Response<B>, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<ReqB>) -> Self::Future {
        // The ready service goes with this request; its clone waits for the next one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let credential = self.credential.clone();
        Box::pin(async move {
            let sent = credential.header().await?;
            if let Some(value) = &sent {
                request.headers_mut().insert(header::AUTHORIZATION, value.clone());
            }
            let response = inner.call(request).await.map_err(Into::into)?;
            if response.status() == StatusCode::UNAUTHORIZED {
                credential.refused(sent.as_ref()).await;
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use kube::config::{AuthInfo, Kubeconfig};

    fn config_with(auth: AuthInfo) -> kube::Config {
        let mut config = kube::Config::new("https://hub.example:6443".parse().unwrap());
        config.auth_info = auth;
        config
    }

    fn exec_plugin(dir: &std::path::Path, script: &str) -> ExecConfig {
        let path = dir.join("plugin.sh");
        std::fs::write(&path, format!("{script}\n")).unwrap();
        // Run through sh rather than executed itself: a test thread forking while another
        // writes its script would make the exec fail with "text file busy".
        let kubeconfig: Kubeconfig = serde_json::from_value(serde_json::json!({
            "users": [{"name": "u", "user": {"exec": {
                "apiVersion": "client.authentication.k8s.io/v1",
                "command": "/bin/sh",
                "args": [path, "one"],
                "env": [{"name": "FAROS_PLUGIN_GREETING", "value": "hi"}],
                "interactiveMode": "Never",
            }}}],
        }))
        .unwrap();
        kubeconfig.auth_infos[0].auth_info.clone().unwrap().exec.unwrap()
    }

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("faros-client-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[tokio::test]
    async fn tokens_token_files_and_basic_auth() {
        let token = config_with(AuthInfo {
            token: Some(" abc \n".to_string().into()),
            ..Default::default()
        });
        let header = Credential::of(&token).unwrap().header().await.unwrap().unwrap();
        assert_eq!(header, "Bearer abc");
        assert!(header.is_sensitive());

        let dir = temp_dir("token-file");
        let file = dir.join("token");
        std::fs::write(&file, "first\n").unwrap();
        let credential = Credential::of(&config_with(AuthInfo {
            token_file: Some(file.to_str().unwrap().to_string()),
            ..Default::default()
        }))
        .unwrap();
        assert_eq!(credential.header().await.unwrap().unwrap(), "Bearer first");
        std::fs::write(&file, "rotated\n").unwrap();
        assert_eq!(credential.header().await.unwrap().unwrap(), "Bearer rotated");
        // A file that cannot be read: the last token read stands in.
        std::fs::remove_file(&file).unwrap();
        assert_eq!(credential.header().await.unwrap().unwrap(), "Bearer rotated");
        let never_read = Credential::of(&config_with(AuthInfo {
            token_file: Some(file.to_str().unwrap().to_string()),
            ..Default::default()
        }))
        .unwrap();
        let error = never_read.header().await.unwrap_err();
        assert!(format!("{error:#}").contains("token file"), "{error:#}");

        let basic = Credential::of(&config_with(AuthInfo {
            username: Some("dev".into()),
            password: Some("pw".to_string().into()),
            ..Default::default()
        }))
        .unwrap();
        assert_eq!(basic.header().await.unwrap().unwrap(), "Basic ZGV2OnB3");
        assert!(
            Credential::of(&config_with(AuthInfo::default()))
                .unwrap()
                .header()
                .await
                .unwrap()
                .is_none()
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn exec_plugins_are_run_once_until_refused() {
        let dir = temp_dir("exec");
        let count = dir.join("count");
        // The plugin counts its runs and checks what it was given.
        let script = format!(
            "echo run >> {count}\n\
             [ \"$1\" = one ] && [ \"$FAROS_PLUGIN_GREETING\" = hi ] || exit 3\n\
             case \"$KUBERNETES_EXEC_INFO\" in *'\"interactive\":false'*) ;; *) exit 4;; esac\n\
             echo '{{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\
             \"status\":{{\"token\":\"from-plugin\"}}}}'",
            count = count.display()
        );
        let credential = Credential::of(&config_with(AuthInfo {
            exec: Some(exec_plugin(&dir, &script)),
            ..Default::default()
        }))
        .unwrap();
        let runs = || std::fs::read_to_string(&count).unwrap().lines().count();
        assert_eq!(credential.header().await.unwrap().unwrap(), "Bearer from-plugin");
        assert_eq!(credential.header().await.unwrap().unwrap(), "Bearer from-plugin");
        assert_eq!(runs(), 1);
        // A refusal of a token no longer current changes nothing.
        let stale = bearer("an older token").unwrap();
        credential.refused(Some(&stale)).await;
        credential.header().await.unwrap();
        assert_eq!(runs(), 1);
        let current = credential.header().await.unwrap();
        credential.refused(current.as_ref()).await;
        credential.header().await.unwrap();
        assert_eq!(runs(), 2);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn exec_plugin_failures_and_expired_tokens() {
        let dir = temp_dir("exec-fail");
        let failing = Credential::of(&config_with(AuthInfo {
            exec: Some(exec_plugin(&dir, "echo 'no credentials here' >&2; exit 1")),
            ..Default::default()
        }))
        .unwrap();
        let error = format!("{:#}", failing.header().await.unwrap_err());
        assert!(error.contains("no credentials here"), "{error}");

        let expired = Credential::of(&config_with(AuthInfo {
            exec: Some(exec_plugin(
                &dir,
                "echo run >> $0.count; echo '{\"status\":{\"token\":\"t\",\"expirationTimestamp\":\"2020-01-01T00:00:00Z\"}}'",
            )),
            ..Default::default()
        }))
        .unwrap();
        expired.header().await.unwrap();
        expired.header().await.unwrap();
        let runs = std::fs::read_to_string(dir.join("plugin.sh.count")).unwrap();
        assert_eq!(runs.lines().count(), 2, "an expired token is asked for again");

        let certificate = Credential::of(&config_with(AuthInfo {
            exec: Some(exec_plugin(
                &dir,
                "echo '{\"status\":{\"clientCertificateData\":\"x\"}}'",
            )),
            ..Default::default()
        }))
        .unwrap();
        let error = format!("{:#}", certificate.header().await.unwrap_err());
        assert!(error.contains("client certificate"), "{error}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn auth_providers_are_refused_by_name() {
        let config = config_with(AuthInfo {
            auth_provider: Some(serde_json::from_value(serde_json::json!({"name": "gcp", "config": {}})).unwrap()),
            ..Default::default()
        });
        let error = Credential::of(&config).err().expect("refused").to_string();
        assert!(error.contains("auth-provider"), "{error}");

        let mut proxied = config_with(AuthInfo::default());
        proxied.proxy_url = Some("http://proxy.example:3128".parse().unwrap());
        let error = Credential::of(&proxied).err().expect("refused").to_string();
        assert!(error.contains("proxy"), "{error}");
    }

    #[tokio::test]
    async fn exec_tokens_about_to_expire_are_asked_for_again() {
        let dir = temp_dir("exec-expiring");
        let soon = jiff::Timestamp::now() + Duration::from_secs(5);
        let credential = Credential::of(&config_with(AuthInfo {
            exec: Some(exec_plugin(
                &dir,
                &format!(
                    "echo run >> $0.count; echo '{{\"status\":{{\"token\":\"t\",\"expirationTimestamp\":\"{soon}\"}}}}'"
                ),
            )),
            ..Default::default()
        }))
        .unwrap();
        credential.header().await.unwrap();
        credential.header().await.unwrap();
        let runs = std::fs::read_to_string(dir.join("plugin.sh.count")).unwrap();
        assert_eq!(runs.lines().count(), 2, "a token 5 s from expiry is not used again");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
