//! Remote commands (`pods/exec` and `pods/attach`): one session shape over SPDY and WebSocket.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;

use crate::negotiate::{EXEC_V4, EXEC_V5, Transport};
use crate::pipe::{ChunkReader, ChunkWriter, Closer, Framing};
use crate::spdy::{self, Limits, session::SpdyFraming};
use crate::status::ExecOutcome;
use crate::status::Refusal;
use crate::ws;

/// How long the client has to open every stream its query announced (the kubelet's default
/// stream creation timeout).
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a finished session waits for the client to hang up before closing itself.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// The query of an exec or attach request (`PodExecOptions`/`PodAttachOptions`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecOptions {
    /// argv, one `command` parameter per element; empty for attach.
    pub command: Vec<String>,
    pub container: Option<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl ExecOptions {
    /// Parses the query string; the error is a message for a 400 refusal. Booleans accept
    /// `true` and `1` (kubectl sends the former, the kubelet's own parser the latter).
    pub fn from_query(query: Option<&str>) -> Result<ExecOptions, String> {
        let mut options = ExecOptions::default();
        for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let flag = || match value.as_ref() {
                "true" | "1" | "True" | "TRUE" => Ok(true),
                "false" | "0" | "False" | "FALSE" | "" => Ok(false),
                other => Err(format!("invalid value {other:?} for {name}: want true or false")),
            };
            match name.as_ref() {
                "command" => options.command.push(value.into_owned()),
                "container" => options.container = Some(value.into_owned()).filter(|c| !c.is_empty()),
                "stdin" => options.stdin = flag()?,
                "stdout" => options.stdout = flag()?,
                "stderr" => options.stderr = flag()?,
                "tty" => options.tty = flag()?,
                _ => {}
            }
        }
        if !(options.stdin || options.stdout || options.stderr) {
            return Err("you must specify at least 1 of stdin, stdout, stderr".to_owned());
        }
        Ok(options)
    }

    /// With a terminal, stderr is merged into stdout and has no stream of its own.
    fn wants_stderr(&self) -> bool {
        self.stderr && !self.tty
    }
}

/// A terminal size change from the client (`TerminalSize` in client-go, keys capitalised).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub struct TerminalSize {
    #[serde(rename = "Width")]
    pub width: u16,
    #[serde(rename = "Height")]
    pub height: u16,
}

/// An accepted exec or attach request, before the upgrade.
#[derive(Debug)]
pub struct ExecUpgrade {
    transport: Transport,
}

impl ExecUpgrade {
    /// Chooses WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`) or SPDY/3.1 (v5, v4) from the
    /// request's headers. A refusal is a Status response to send as is; kubectl retries a refused
    /// WebSocket attempt over SPDY.
    pub fn negotiate<B>(req: &Request<B>) -> Result<ExecUpgrade, Refusal> {
        let transport = Transport::negotiate(req, &[EXEC_V5, EXEC_V4], &[EXEC_V5, EXEC_V4])?;
        Ok(ExecUpgrade { transport })
    }

    /// The `101 Switching Protocols` response to send before taking over the connection.
    pub fn response(&self) -> Response<()> {
        self.transport.response()
    }

    /// Runs the protocol on the upgraded connection until the client has opened what `options`
    /// announced, and returns the session.
    pub async fn accept<IO>(self, io: IO, options: &ExecOptions) -> Result<ExecSession, AcceptError>
    where
        IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        match self.transport {
            Transport::Spdy { .. } => accept_spdy(io, options).await,
            Transport::WebSocket { protocol, .. } => Ok(ws::accept_exec(io, options, protocol == EXEC_V5).await),
        }
    }
}

/// Why an upgraded exec connection produced no session.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error("the client did not open the {0} stream in time")]
    Timeout(&'static str),
    #[error("the client closed the connection before opening its streams")]
    Closed,
}

/// One remote command, whatever the protocol: take the pieces the options asked for, run the
/// command, then [`finish`](ExecSession::finish) with its outcome.
pub struct ExecSession {
    pub(crate) stdin: Option<Stdin>,
    pub(crate) stdout: Option<Output>,
    pub(crate) stderr: Option<Output>,
    pub(crate) resizes: Option<Resizes>,
    /// Taken by [`ExecSession::finish`]; a session dropped without it ends with a failure.
    pub(crate) finisher: Option<Finisher>,
    /// Changes to true once the client's side of the connection has ended.
    pub(crate) client_done: watch::Receiver<bool>,
}

impl ExecSession {
    /// The client's stdin (if it asked for one); EOF when the client closes it.
    pub fn take_stdin(&mut self) -> Option<Stdin> {
        self.stdin.take()
    }

    pub fn take_stdout(&mut self) -> Option<Output> {
        self.stdout.take()
    }

    /// None with a terminal: the terminal's output is all on stdout.
    pub fn take_stderr(&mut self) -> Option<Output> {
        self.stderr.take()
    }

    /// Terminal size changes (only with a tty).
    pub fn take_resizes(&mut self) -> Option<Resizes> {
        self.resizes.take()
    }

    /// Resolves once the client has gone (hung up, or broke the protocol), so the caller can stop
    /// the command instead of running it for nobody. Independent of the session's lifetime.
    pub fn disconnected(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut done = self.client_done.clone();
        async move {
            // A dropped sender means the reader is gone too.
            let _ = done.wait_for(|done| *done).await;
        }
    }

    /// Ends the session: writes `outcome` as a Status on the error channel after everything
    /// written so far, ends every stream (further writes fail) and closes the connection the way
    /// the client expects (WebSocket Close 1000; SPDY FIN on every stream, then GOAWAY).
    ///
    /// An error means the client is already gone. Dropping the session without finishing it
    /// reports a failure to the client, so kubectl never mistakes a lost command for success.
    pub async fn finish(mut self, outcome: ExecOutcome) -> io::Result<()> {
        match self.finisher.take() {
            Some(finisher) => finisher.end(outcome),
            None => Ok(()),
        }
    }
}

impl Drop for ExecSession {
    fn drop(&mut self) {
        if let Some(finisher) = self.finisher.take() {
            let _ = finisher.end(ExecOutcome::Failed("the command ended without an exit status".into()));
        }
    }
}

/// The client's stdin.
pub struct Stdin(pub(crate) ChunkReader);

impl AsyncRead for Stdin {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

/// stdout or stderr towards the client. Shutting it down (or dropping it) ends that stream.
pub struct Output(pub(crate) Box<dyn AsyncWrite + Send + Unpin>);

impl AsyncWrite for Output {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Terminal size changes; only the latest matters, so a slow consumer skips stale ones.
pub struct Resizes(pub(crate) watch::Receiver<Option<TerminalSize>>);

impl Resizes {
    /// The next size the client reported; None once the client stops sending them.
    pub async fn next(&mut self) -> Option<TerminalSize> {
        loop {
            self.0.changed().await.ok()?;
            if let Some(size) = *self.0.borrow_and_update() {
                return Some(size);
            }
        }
    }
}

/// Something that can end a stream on the session's behalf.
pub(crate) trait Close: Send {
    fn close(&self);
}

impl<F: Framing + Send> Close for Closer<F>
where
    F::Item: Send,
{
    fn close(&self) {
        Closer::close(self)
    }
}

pub(crate) enum Finisher {
    Spdy {
        session: spdy::Session,
        error: ChunkWriter<SpdyFraming>,
        /// The server halves of stdin and resize, kept open until the end as the kubelet does.
        idle: Vec<ChunkWriter<SpdyFraming>>,
        outputs: Vec<Box<dyn Close>>,
    },
    WebSocket(ws::ExecFinisher),
}

impl Finisher {
    /// Queues the status and the end of every stream behind whatever was written before; the
    /// writer task sends them. Synchronous, so that dropping a session can still end it properly.
    fn end(self, outcome: ExecOutcome) -> io::Result<()> {
        let sent = match self {
            Finisher::Spdy {
                session,
                error,
                idle,
                outputs,
            } => {
                // stdout and stderr end before the status, which the client reads last.
                for output in &outputs {
                    output.close();
                }
                let sent = error.send_final(outcome.status_json().into());
                drop(error);
                drop(idle);
                spawn_if_in_runtime(session.close(CLOSE_GRACE));
                sent
            }
            Finisher::WebSocket(finisher) => finisher.end(outcome, CLOSE_GRACE),
        };
        if sent {
            Ok(())
        } else {
            Err(io::ErrorKind::BrokenPipe.into())
        }
    }
}

/// Runs `task` if there is a runtime to run it on; a session dropped outside one (at process
/// exit) has nobody left to tell.
pub(crate) fn spawn_if_in_runtime(task: impl Future<Output = ()> + Send + 'static) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(task);
    }
}

/// Feeds newline-separated TerminalSize JSON objects from a stream into `sizes`.
pub(crate) async fn read_resizes(mut reader: ChunkReader, sizes: watch::Sender<Option<TerminalSize>>) {
    const MAX_PENDING: usize = 4096;
    let mut pending = Vec::new();
    while let Some(chunk) = reader.next_chunk().await {
        pending.extend_from_slice(&chunk);
        let mut objects = serde_json::Deserializer::from_slice(&pending).into_iter::<TerminalSize>();
        let mut consumed = 0;
        while let Some(size) = objects.next() {
            match size {
                Ok(size) => {
                    consumed = objects.byte_offset();
                    sizes.send_replace(Some(size));
                }
                Err(e) if e.is_eof() => break,
                // Not a size: the client is broken; stop listening rather than guess.
                Err(_) => return,
            }
        }
        pending.drain(..consumed);
        if pending.len() > MAX_PENDING {
            return;
        }
    }
}

async fn accept_spdy<IO>(io: IO, options: &ExecOptions) -> Result<ExecSession, AcceptError>
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (session, mut incoming) = spdy::Session::start(io, Limits::default());
    let wanted = [
        ("error", true),
        ("stdin", options.stdin),
        ("stdout", options.stdout),
        ("stderr", options.wants_stderr()),
        ("resize", options.tty),
    ];
    let mut streams: [Option<spdy::Stream>; 5] = Default::default();
    let collect = async {
        while let Some(stream) = incoming.recv().await {
            let slot = wanted
                .iter()
                .position(|(kind, _)| stream.header("streamtype") == Some(kind));
            // Streams of unknown types, or twice the same type, end at once (dropping FINs them).
            if let Some(slot) = slot
                && streams[slot].is_none()
            {
                streams[slot] = Some(stream);
            }
            if wanted
                .iter()
                .zip(&streams)
                .all(|((_, wanted), got)| !wanted || got.is_some())
            {
                return Ok(());
            }
        }
        Err(AcceptError::Closed)
    };
    match tokio::time::timeout(STREAM_CREATION_TIMEOUT, collect).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e),
        Err(_) => {
            let missing = wanted
                .iter()
                .zip(&streams)
                .find(|((_, wanted), got)| *wanted && got.is_none());
            return Err(AcceptError::Timeout(missing.map_or("error", |((kind, _), _)| kind)));
        }
    }
    let [error, stdin, stdout, stderr, resize] = streams;
    let Some(error) = error else {
        return Err(AcceptError::Closed);
    };
    let mut idle = Vec::new();
    let mut outputs: Vec<Box<dyn Close>> = Vec::new();
    let stdin = stdin.map(|s| {
        idle.push(s.writer);
        Stdin(s.reader)
    });
    let mut output = |s: spdy::Stream| {
        outputs.push(Box::new(s.writer.closer()));
        Output(Box::new(s.writer))
    };
    let stdout = stdout.map(&mut output);
    let stderr = stderr.map(&mut output);
    let resizes = resize.map(|s| {
        idle.push(s.writer);
        let (tx, rx) = watch::channel(None);
        tokio::spawn(read_resizes(s.reader, tx));
        Resizes(rx)
    });
    Ok(ExecSession {
        client_done: session.client_done(),
        stdin,
        stdout,
        stderr,
        resizes,
        finisher: Some(Finisher::Spdy {
            session,
            error: error.writer,
            idle,
            outputs,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubectls_query() {
        let options = ExecOptions::from_query(Some(
            "command=sh&command=-c&command=echo+hi&container=c1&stderr=true&stdin=true&stdout=true",
        ))
        .unwrap();
        assert_eq!(options.command, ["sh", "-c", "echo hi"]);
        assert_eq!(options.container.as_deref(), Some("c1"));
        assert!(options.stdin && options.stdout && options.stderr && !options.tty);
        let tty = ExecOptions::from_query(Some("command=sh&stdin=1&stdout=1&tty=1")).unwrap();
        assert!(tty.tty && !tty.wants_stderr());
        assert!(ExecOptions::from_query(Some("command=sh")).is_err());
        assert!(ExecOptions::from_query(Some("stdout=maybe")).is_err());
    }
}
