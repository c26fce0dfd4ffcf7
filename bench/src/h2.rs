//! A bare HTTP/2 connection to the hub with the admin kubeconfig's credentials, for watch
//! streams multiplexed many to a connection (the way client-go talks to an API server).
//! kube-rs speaks HTTP/1.1, so each of its watches holds a connection of its own.

use std::sync::Arc;

use anyhow::{Context, anyhow};
use base64::Engine;
use bytes::Bytes;
use http_body_util::Empty;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;

/// Where and how to connect: the kubeconfig's server, CA and client certificate.
#[derive(Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub tls: Arc<rustls::ClientConfig>,
}

impl Target {
    pub fn from_kubeconfig(path: &std::path::Path) -> anyhow::Result<Target> {
        let kubeconfig = kube::config::Kubeconfig::read_from(path)?;
        // Serialising exposes the key data, which the typed fields keep wrapped.
        let doc = serde_json::to_value(&kubeconfig)?;
        let cluster = &doc["clusters"][0]["cluster"];
        let user = &doc["users"][0]["user"];
        let decode = |v: &serde_json::Value, what: &str| -> anyhow::Result<Vec<u8>> {
            let s = v.as_str().with_context(|| format!("kubeconfig has no {what}"))?;
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .with_context(|| format!("decoding {what}"))
        };
        let ca = decode(&cluster["certificate-authority-data"], "certificate-authority-data")?;
        let cert = decode(&user["client-certificate-data"], "client-certificate-data")?;
        let key = decode(&user["client-key-data"], "client-key-data")?;
        let server: http::Uri = cluster["server"]
            .as_str()
            .context("kubeconfig has no server")?
            .parse()
            .context("parsing the server URL")?;
        let host = server
            .host()
            .context("server URL without host")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = server.port_u16().unwrap_or(443);

        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(&ca) {
            roots.add(c.context("parsing the CA")?)?;
        }
        let chain = CertificateDer::pem_slice_iter(&cert)
            .collect::<Result<Vec<_>, _>>()
            .context("parsing the client certificate")?;
        let key = PrivateKeyDer::from_pem_slice(&key).map_err(|e| anyhow!("parsing the client key: {e}"))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Target {
            host,
            port,
            tls: Arc::new(config),
        })
    }

    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The same target offering only HTTP/1.1 in ALPN, as kube-rs connects.
    pub fn http1(&self) -> Target {
        let mut tls = (*self.tls).clone();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Target {
            tls: Arc::new(tls),
            ..self.clone()
        }
    }

    /// Opens one TLS connection and checks the protocol the hub chose.
    pub async fn connect_tls(&self, alpn: &[u8]) -> anyhow::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port)).await?;
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from(self.host.clone())?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .context("TLS handshake")?;
        anyhow::ensure!(
            tls.get_ref().1.alpn_protocol() == Some(alpn),
            "the hub did not negotiate {}",
            String::from_utf8_lossy(alpn)
        );
        Ok(tls)
    }

    /// Opens one TLS connection speaking HTTP/2; the returned handle sends requests on it.
    pub async fn connect(&self) -> anyhow::Result<SendRequest<Empty<Bytes>>> {
        let tls = self.connect_tls(b"h2").await?;
        let (send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .handshake(TokioIo::new(tls))
            .await
            .context("HTTP/2 handshake")?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                eprintln!("HTTP/2 connection to the hub ended: {e}");
            }
        });
        Ok(send)
    }
}
