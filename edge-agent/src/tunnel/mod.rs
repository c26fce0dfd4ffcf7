//! The device end of the tunnel: the agent dials the hub, asks for its Agent's `tunnel`
//! subresource with `Upgrade: faros-tunnel.v1`, and after the 101 serves HTTP/2 on the
//! connection it opened — the hub is the client (see `docs/tunnel.md`). HTTP/2 PINGs detect
//! a dead hub; the agent then dials again with its usual capped, jittered backoff.
//!
//! The tunnel uses the agent's own server, CA and credential (the token file is read at
//! every dial, so rotation applies to the next session) on a connection of its own that
//! offers only HTTP/1.1 in ALPN: an HTTP/1.1 Upgrade does not exist on HTTP/2.

mod instance;
mod live;
mod serve;

use std::sync::Arc;
use std::time::Duration;

use crate::client::Credential;
use anyhow::{Context, anyhow, bail};
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::watch;

use crate::backoff::{Backoff, spread};
pub use serve::{ExecPolicy, Handler, PortPolicy};

/// How long connecting, TLS and the upgrade may take together.
const DIAL_TIMEOUT: Duration = Duration::from_secs(15);
/// A session that lasted this long was healthy: the next dial starts the backoff afresh.
const HEALTHY_SESSION: Duration = Duration::from_secs(30);
/// How many hub requests one session serves at once.
const MAX_STREAMS: u32 = 256;
/// Receive windows, as on the hub: small, so an idle session costs little.
const STREAM_WINDOW: u32 = 256 * 1024;
const CONNECTION_WINDOW: u32 = 1024 * 1024;
/// The most of a refusal's body the agent reads to log it.
const MAX_REFUSAL: usize = 4096;

/// Where and as whom the agent dials.
pub(crate) struct Dialer {
    config: kube::Config,
    credential: Credential,
    tls: Arc<rustls::ClientConfig>,
    /// `/clusters/<ws>/apis/edge.faros.sh/v1alpha1/namespaces/<ns>/agents/<name>/tunnel`.
    path: String,
    agent: String,
}

impl Dialer {
    pub(crate) fn new(config: kube::Config, namespace: &str, name: &str) -> anyhow::Result<Dialer> {
        let mut tls = crate::client::tls_config(&config).context("the tunnel's TLS configuration")?;
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let base = config.cluster_url.path().trim_end_matches('/');
        let path = format!(
            "{base}/apis/{}/{}/namespaces/{namespace}/agents/{name}/{}",
            faros_api::EDGE_GROUP,
            faros_api::EDGE_VERSION,
            faros_tunnel::TUNNEL_SUBRESOURCE
        );
        Ok(Dialer {
            credential: Credential::of(&config)?,
            config,
            tls: Arc::new(tls),
            path,
            agent: name.to_string(),
        })
    }

    /// Opens a connection to the hub and upgrades it to a tunnel.
    async fn dial(&self) -> anyhow::Result<hyper::upgrade::Upgraded> {
        let url = &self.config.cluster_url;
        let host = url.host().ok_or_else(|| anyhow!("the server URL {url} has no host"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = url.port_u16().unwrap_or(443);
        let tcp = tokio::net::TcpStream::connect((host, port))
            .await
            .with_context(|| format!("connecting to {host}:{port}"))?;
        let _ = tcp.set_nodelay(true);
        let name = self.config.tls_server_name.as_deref().unwrap_or(host).to_string();
        let server_name =
            rustls::pki_types::ServerName::try_from(name).map_err(|e| anyhow!("the hub's name {host:?}: {e}"))?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(server_name, tcp)
            .await
            .context("TLS handshake with the hub")?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            let _ = connection.with_upgrades().await;
        });
        let authority = match url.port_u16() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        let mut request = Request::get(&self.path)
            .header(header::HOST, authority)
            .header(header::CONNECTION, "Upgrade")
            .header(header::UPGRADE, faros_tunnel::UPGRADE_PROTOCOL)
            .header(
                header::USER_AGENT,
                format!("edge-agent/{}", crate::facts::AGENT_VERSION),
            )
            .body(Empty::<bytes::Bytes>::new())?;
        let sent = self.credential.header().await?;
        if let Some(value) = &sent {
            request.headers_mut().insert(header::AUTHORIZATION, value.clone());
        }
        let response = sender
            .send_request(request)
            .await
            .context("asking the hub for the tunnel")?;
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            let code = response.status();
            if code == StatusCode::UNAUTHORIZED {
                self.credential.refused(sent.as_ref()).await;
            }
            let body = http_body_util::Limited::new(response.into_body(), MAX_REFUSAL)
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            let message = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|s| s["message"].as_str().map(str::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            bail!("the hub refused the tunnel: {code}: {message}");
        }
        Ok(hyper::upgrade::on(response).await?)
    }
}

/// Serves one tunnel session on `io` until it ends: the agent's side of HTTP/2, whatever
/// carries it (the upgraded hub connection; a local socket in tests).
pub async fn serve<I>(io: I, handler: Arc<Handler>) -> Result<(), hyper::Error>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| handler.clone().handle(request));
    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(faros_tunnel::KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(faros_tunnel::KEEP_ALIVE_TIMEOUT)
        .max_concurrent_streams(MAX_STREAMS)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .serve_connection(io, service)
        .await
}

/// Keeps the tunnel up until `shutdown` flips: dials, serves, and dials again.
pub(crate) async fn run(dialer: Dialer, handler: Handler, mut shutdown: watch::Receiver<bool>) {
    let handler = Arc::new(handler);
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    let mut failures = 0u32;
    loop {
        let session = async {
            let io = tokio::time::timeout(DIAL_TIMEOUT, dialer.dial())
                .await
                .map_err(|_| anyhow!("the hub did not complete the tunnel within {DIAL_TIMEOUT:?}"))??;
            tracing::info!(agent = %dialer.agent, "tunnel connected");
            let started = tokio::time::Instant::now();
            let result = serve(io, handler.clone()).await;
            Ok::<_, anyhow::Error>((started.elapsed(), result))
        };
        let delay = tokio::select! {
            outcome = session => match outcome {
                Ok((lasted, result)) => {
                    match result {
                        Ok(()) => tracing::info!(agent = %dialer.agent, "the hub closed the tunnel"),
                        Err(e) => tracing::warn!(agent = %dialer.agent, error = %e, "the tunnel broke"),
                    }
                    failures = 0;
                    if lasted >= HEALTHY_SESSION {
                        backoff.reset();
                    }
                    // Spread the reconnects of a fleet whose hub just restarted.
                    backoff.next_delay().max(spread(Duration::from_secs(1)))
                }
                Err(e) => {
                    failures += 1;
                    let delay = backoff.next_delay();
                    if failures == 1 || failures.is_power_of_two() {
                        tracing::warn!(agent = %dialer.agent, error = %format!("{e:#}"), failures, retry_in_ms = delay.as_millis() as u64, "cannot open the tunnel; retrying");
                    }
                    delay
                }
            },
            _ = stopped(&mut shutdown) => return,
        };
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stopped(&mut shutdown) => return,
        }
    }
}

async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}
