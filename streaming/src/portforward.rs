//! Port-forward (`portforward.k8s.io`): for each TCP connection kubectl accepts locally it opens
//! an `error` and a `data` stream sharing a `requestid`; the server connects the data stream to
//! the port and reports failures as text on the error stream, as the kubelet does.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, Response};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::negotiate::{PORT_FORWARD, PORT_FORWARD_TUNNEL, Transport};
use crate::spdy::{self, Limits};
use crate::status::Refusal;
use crate::ws;

/// How long the first stream of a pair waits for its partner (the kubelet's stream creation timeout).
const PAIR_TIMEOUT: Duration = Duration::from_secs(30);
/// Half-open pairs a connection may hold; kubectl opens both streams back to back.
const MAX_UNPAIRED: usize = 64;

/// An accepted port-forward request, before the upgrade.
#[derive(Debug)]
pub struct PortForwardUpgrade {
    transport: Transport,
}

impl PortForwardUpgrade {
    /// Chooses raw SPDY/3.1 or SPDY tunnelled in WebSocket from the request's headers. A refusal
    /// is a Status response to send as is.
    pub fn negotiate<B>(req: &Request<B>) -> Result<PortForwardUpgrade, Refusal> {
        let transport = Transport::negotiate(req, &[PORT_FORWARD], &[PORT_FORWARD_TUNNEL])?;
        Ok(PortForwardUpgrade { transport })
    }

    /// The `101 Switching Protocols` response to send before taking over the connection.
    pub fn response(&self) -> Response<()> {
        self.transport.response()
    }

    /// Serves forwarded connections until the client hangs up. For each one, `connect(port)`
    /// returns a connected byte stream to copy to and from, or an error text, which the client
    /// prints before it ends the whole port-forward (kubelet words it
    /// `error forwarding port {port} to pod {name}, uid {uid}: {cause}`).
    pub async fn serve<IO, C, Fut, D>(self, io: IO, connect: C)
    where
        IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
        C: Fn(u16) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<D, String>> + Send + 'static,
        D: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        match self.transport {
            Transport::Spdy { .. } => serve_spdy(io, connect).await,
            Transport::WebSocket { .. } => serve_spdy(ws::byte_tunnel(io).await, connect).await,
        }
    }
}

async fn serve_spdy<IO, C, Fut, D>(io: IO, connect: C)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
    C: Fn(u16) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<D, String>> + Send + 'static,
    D: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (session, mut incoming) = spdy::Session::start(io, Limits::default());
    let connect = Arc::new(connect);
    let mut unpaired: HashMap<String, (spdy::Stream, Instant)> = HashMap::new();
    let mut prune = tokio::time::interval(PAIR_TIMEOUT / 3);
    loop {
        tokio::select! {
            stream = incoming.recv() => {
                let Some(stream) = stream else { break };
                // Streams without a request id or of another type end at once (dropping FINs them).
                let (Some(id), Some(kind @ ("error" | "data"))) =
                    (stream.header("requestid"), stream.header("streamtype"))
                else {
                    continue;
                };
                let id = id.to_owned();
                let is_error = kind == "error";
                match unpaired.remove(&id) {
                    Some((other, _)) if (other.header("streamtype") == Some("error")) != is_error => {
                        let (error, data) = if is_error { (stream, other) } else { (other, stream) };
                        tokio::spawn(forward(error, data, connect.clone()));
                    }
                    // The same type twice for one id: the client is confused; drop both.
                    Some(_) => {}
                    None if unpaired.len() < MAX_UNPAIRED => {
                        unpaired.insert(id, (stream, Instant::now()));
                    }
                    None => {}
                }
            }
            _ = prune.tick() => unpaired.retain(|_, (_, since)| since.elapsed() < PAIR_TIMEOUT),
        }
    }
    drop(unpaired);
    session.close(Duration::ZERO).await;
}

/// How long a target may keep answering after the client's side of a forwarded connection
/// ended.
const CLIENT_GONE_GRACE: Duration = Duration::from_secs(10);

/// Connects one forwarded connection and copies until both sides are done.
async fn forward<C, Fut, D>(error: spdy::Stream, data: spdy::Stream, connect: Arc<C>)
where
    C: Fn(u16) -> Fut,
    Fut: Future<Output = Result<D, String>>,
    D: AsyncRead + AsyncWrite + Unpin,
{
    let mut error_writer = error.writer;
    let port = match data.header("port").map(str::parse::<u16>) {
        Some(Ok(port)) if port > 0 => Ok(port),
        Some(_) => Err(format!("invalid port {:?}", data.header("port").unwrap_or_default())),
        None => Err("missing port header".to_owned()),
    };
    let target = match port {
        Ok(port) => connect(port).await,
        Err(e) => Err(e),
    };
    match target {
        Ok(target) => {
            let (mut from_client, mut to_client) = (data.reader, data.writer);
            let (mut from_target, mut to_target) = tokio::io::split(target);
            // kubectl's end may stay open after the target is done (it waits for this side to
            // end the streams), so the forwarding ends with the target's output, as the
            // kubelet's does; the client's EOF only half-closes the target.
            let upstream = async {
                let _ = tokio::io::copy(&mut from_client, &mut to_target).await;
                let _ = to_target.shutdown().await;
                // The client is done; a target that neither answers nor closes must not hold
                // the connection (and what carries it) for ever.
                tokio::time::sleep(CLIENT_GONE_GRACE).await;
            };
            let downstream = async {
                let _ = tokio::io::copy(&mut from_target, &mut to_client).await;
                let _ = to_client.shutdown().await;
            };
            tokio::select! {
                () = downstream => {}
                () = upstream => {}
            }
        }
        Err(message) => {
            let _ = error_writer.write_all(message.as_bytes()).await;
        }
    }
    // Dropping the writers FINs both streams; kubectl waits for the error stream's end.
}
