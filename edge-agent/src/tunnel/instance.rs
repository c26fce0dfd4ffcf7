//! The requests of `kubectl logs`, `exec` and `port-forward` on one workload instance (a
//! placement), as the hub sends them on the tunnel (`faros_tunnel::instance`).
//!
//! Which runtime runs a placement is the agent's own knowledge: the runtime in its status on
//! the board, else the process runtime's record in the placement directory. A placement the
//! agent does not run is a 404, so the hub never learns more than "not here".
//!
//! What `exec` means differs by runtime. For a container it is `podman exec` in it. A process
//! workload has no sandbox to enter: the command runs on the device itself, as the agent's
//! user, in the directory the workload's process works in; who may do that is decided by the
//! hub's RBAC on `pods/exec`.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use faros_api::workloads::{PlacementStatus, Protocol, RUNTIME_PODMAN, RUNTIME_PROCESS};
use faros_tunnel::frames;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::serve::{ExecPolicy, Handler, TunnelBody, refused};
use crate::workloads::logs::{self, LogOptions, LogSource};
use crate::workloads::podman::container_name;
use crate::workloads::process;

/// Chunks (or frames) in flight towards the hub per stream: with [`READ_CHUNK`], what one
/// slow reader can make the agent hold.
const IN_FLIGHT: usize = 16;
/// The most read from a child or a socket at once; below [`frames::MAX_PAYLOAD`].
const READ_CHUNK: usize = 32 * 1024;
/// How long connecting to an instance's port may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a terminal session waits for the first size before starting the command, so
/// that what it draws first fits (kubectl sends the size right away).
const FIRST_SIZE_WAIT: Duration = Duration::from_millis(300);
/// How long `podman inspect` may take.
const INSPECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The end-of-file character of a terminal in canonical mode: what closing stdin is on a tty.
const EOT: u8 = 0x04;

/// How a placement runs on this device.
enum Runs {
    Podman(PlacementStatus),
    Process,
}

/// Why the agent does not serve a request (kept small; it becomes a response at the end).
struct Refusal(StatusCode, String);

impl Handler {
    /// Which runtime runs `placement`, or the 404 for a placement this agent does not run.
    fn runs(&self, placement: &str) -> Result<Runs, Refusal> {
        let status = self.board.get(placement);
        let runtime = status.as_ref().map(|s| s.runtime.as_str()).unwrap_or_default();
        let is_process = runtime == RUNTIME_PROCESS
            || (runtime.is_empty() && process::is_process_placement(&self.layout, placement));
        match status {
            _ if is_process => Ok(Runs::Process),
            Some(status) if runtime == RUNTIME_PODMAN || !status.containers.is_empty() => Ok(Runs::Podman(status)),
            // Assigned, but no runtime has taken it yet (pulling, waiting for room).
            Some(status) => Err(Refusal(
                StatusCode::BAD_REQUEST,
                format!(
                    "placement {placement:?} has not started on this device yet ({:?})",
                    status.phase
                ),
            )),
            None => Err(Refusal(
                StatusCode::NOT_FOUND,
                format!("placement {placement:?} does not run on this device"),
            )),
        }
    }

    /// Like [`Handler::runs`], checking that a container placement has `container`. A process
    /// placement has one process, whatever its container is called.
    fn runs_container(&self, placement: &str, container: &str) -> Result<Runs, Refusal> {
        let runs = self.runs(placement)?;
        if let Runs::Podman(status) = &runs
            && !status.containers.iter().any(|c| c.name == container)
        {
            return Err(Refusal(
                StatusCode::NOT_FOUND,
                format!("container {container:?} is not valid for placement {placement:?}"),
            ));
        }
        Ok(runs)
    }

    pub(super) async fn log(
        &self,
        placement: &str,
        container: &str,
        request: &Request<TunnelBody>,
    ) -> Response<TunnelBody> {
        let runs = match self.runs_container(placement, container) {
            Ok(runs) => runs,
            Err(Refusal(code, message)) => return refused(code, message),
        };
        let opts = match LogOptions::parse(request.uri().query().unwrap_or_default()) {
            Ok(opts) => opts,
            Err(message) => return refused(StatusCode::BAD_REQUEST, message),
        };
        let source = match runs {
            Runs::Podman(_) => LogSource::Podman {
                config: &self.podman,
                placement,
                container,
            },
            Runs::Process => LogSource::Process {
                dir: self.layout.placement_dir(placement),
            },
        };
        match logs::open(source, &opts) {
            Ok(chunks) => streamed(chunks, "text/plain; charset=utf-8"),
            Err(e) if e.bad_request => refused(StatusCode::BAD_REQUEST, e.message),
            Err(e) => refused(StatusCode::INTERNAL_SERVER_ERROR, e.message),
        }
    }

    pub(super) async fn exec(
        &self,
        placement: &str,
        container: &str,
        request: Request<TunnelBody>,
    ) -> Response<TunnelBody> {
        let runs = match self.runs_container(placement, container) {
            Ok(runs) => runs,
            Err(Refusal(code, message)) => return refused(code, message),
        };
        let allowed = match (self.exec, &runs) {
            (ExecPolicy::All, _) | (ExecPolicy::Containers, Runs::Podman(_)) => true,
            (ExecPolicy::None, _) | (ExecPolicy::Containers, Runs::Process) => false,
        };
        if !allowed {
            let what = match runs {
                Runs::Podman(_) => "commands in containers",
                Runs::Process => "commands on the device itself (a process workload has no container)",
            };
            return refused(
                StatusCode::FORBIDDEN,
                format!(
                    "this device does not allow {what}: see the agent's --allow-exec ({:?})",
                    self.exec
                ),
            );
        }
        let opts = match ExecOptions::parse(request.uri().query().unwrap_or_default()) {
            Ok(opts) => opts,
            Err(message) => return refused(StatusCode::BAD_REQUEST, message),
        };
        let (program, args, dir) = match runs {
            Runs::Podman(_) => {
                let mut args = vec!["exec".to_string()];
                if opts.stdin {
                    args.push("-i".into());
                }
                if opts.tty {
                    args.push("-t".into());
                }
                args.push(container_name(placement, container));
                args.extend(opts.command.iter().cloned());
                (self.podman.binary.clone(), args, None)
            }
            Runs::Process => {
                let Some((first, rest)) = opts.command.split_first() else {
                    return refused(StatusCode::BAD_REQUEST, "command: a command to run is required".into());
                };
                (
                    PathBuf::from(first),
                    rest.to_vec(),
                    Some(process::working_dir(&self.layout, placement)),
                )
            }
        };
        let mut command = if opts.tty {
            // `setsid --ctty` makes the terminal the command's controlling terminal, so a
            // resize reaches it as SIGWINCH (and podman relays it into the container), with
            // no unsafe pre-exec code of our own. `--wait` keeps its exit status.
            let mut command = tokio::process::Command::new("setsid");
            command.args(["--ctty", "--wait"]).arg(&program).args(&args);
            command
        } else {
            let mut command = tokio::process::Command::new(&program);
            command.args(&args);
            command
        };
        match dir {
            // A process placement: the device's own environment, in the process's directory.
            Some(dir) => command.current_dir(dir),
            None => command.envs(self.podman.env.iter().map(|(k, v)| (k, v))),
        };
        // The stream ending (the hub or kubectl gone) drops the child: it is killed.
        command.kill_on_drop(true);
        let (tx, rx) = mpsc::channel(IN_FLIGHT);
        let body = request.into_body();
        tokio::spawn(async move {
            let outcome = run_exec(command, opts, body, tx.clone()).await;
            let exit = match outcome {
                Ok(Some(code)) => serde_json::json!({ "exitCode": code }),
                Ok(None) => return,
                Err(message) => serde_json::json!({ "error": message }),
            };
            let _ = tx.send(frames::encode(frames::EXIT, exit.to_string().as_bytes())).await;
        });
        streamed(rx, "application/octet-stream")
    }

    pub(super) async fn port_forward(
        &self,
        placement: &str,
        port: u16,
        request: Request<TunnelBody>,
    ) -> Response<TunnelBody> {
        let runs = match self.runs(placement) {
            Ok(runs) => runs,
            Err(Refusal(code, message)) => return refused(code, message),
        };
        let address = match runs {
            // A process listens on the device itself: only the ports workloads publish, or
            // that `--allow-ports` opens, may be reached, as through the proxy; anything else
            // on the device's loopback is not the pod's to offer.
            Runs::Process if !self.allows(port) => {
                return refused(
                    StatusCode::FORBIDDEN,
                    format!(
                        "port {port} is neither published by a workload on this device nor in the agent's --allow-ports"
                    ),
                );
            }
            Runs::Process => format!("127.0.0.1:{port}"),
            Runs::Podman(status) => match self.container_address(placement, &status, port).await {
                Ok(address) => address,
                Err(message) => return refused(StatusCode::SERVICE_UNAVAILABLE, message),
            },
        };
        let tcp = match tokio::time::timeout(DIAL_TIMEOUT, tokio::net::TcpStream::connect(&address)).await {
            Ok(Ok(tcp)) => tcp,
            // Worded as kubelet words it, which kubectl users know.
            Ok(Err(e)) => {
                return refused(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("dial tcp {address}: {}", dial_error(&e)),
                );
            }
            Err(_) => {
                return refused(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("dial tcp {address}: i/o timeout"),
                );
            }
        };
        let _ = tcp.set_nodelay(true);
        let (mut read, write) = tcp.into_split();
        let (tx, rx) = mpsc::channel(IN_FLIGHT);
        let body = request.into_body();
        tokio::spawn(async move {
            // The hub's bytes go in; its end half-closes the socket, so a server still
            // answers what it was sent; the socket's end (or the stream's) ends it all.
            let upstream = async move {
                let _ = copy_body(body, write).await;
                std::future::pending::<()>().await
            };
            let downstream = async {
                let mut buf = vec![0u8; READ_CHUNK];
                loop {
                    match read.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            };
            tokio::select! {
                _ = upstream => {}
                _ = downstream => {}
                _ = tx.closed() => {}
            }
        });
        streamed(rx, "application/octet-stream")
    }

    /// Where a container placement serves `port`: the device port it is published on, else
    /// the container's own address (rootful podman's bridge network reaches it from the host).
    async fn container_address(&self, placement: &str, status: &PlacementStatus, port: u16) -> Result<String, String> {
        if let Some(published) = status
            .endpoints
            .iter()
            .find(|e| e.container_port == i32::from(port) && e.protocol == Protocol::Tcp && e.port > 0)
        {
            return Ok(format!("127.0.0.1:{}", published.port));
        }
        for container in &status.containers {
            let name = container_name(placement, &container.name);
            let mut command = tokio::process::Command::new(&self.podman.binary);
            command
                .args([
                    "inspect",
                    "--type",
                    "container",
                    "--format",
                    "{{.NetworkSettings.IPAddress}}",
                ])
                .arg(&name)
                .envs(self.podman.env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .kill_on_drop(true);
            let Ok(Ok(out)) = tokio::time::timeout(INSPECT_TIMEOUT, command.output()).await else {
                continue;
            };
            let ip = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if out.status.success() && ip.parse::<std::net::IpAddr>().is_ok() {
                return Ok(format!("{ip}:{port}"));
            }
        }
        Err(format!(
            "port {port} of placement {placement:?} is neither published on the device nor reachable at a container address"
        ))
    }
}

/// Go's words for the usual dial errors (what kubelet would say), else the system's.
fn dial_error(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connect: connection refused".into(),
        _ => format!("connect: {e}"),
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A streamed body out of a channel of chunks.
fn streamed(mut chunks: mpsc::Receiver<Bytes>, content_type: &'static str) -> Response<TunnelBody> {
    let stream = futures::stream::poll_fn(move |cx| {
        chunks
            .poll_recv(cx)
            .map(|chunk| chunk.map(|bytes| Ok::<_, BoxError>(Frame::data(bytes))))
    });
    let mut response = Response::new(StreamBody::new(stream).boxed());
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Writes the request body into `to` until it ends, then half-closes `to`.
async fn copy_body(mut body: TunnelBody, mut to: impl AsyncWrite + Unpin) -> io::Result<()> {
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Ok(data) = frame.into_data() {
            to.write_all(&data).await?;
        }
    }
    to.shutdown().await
}

/// What `kubectl exec` asked for (the `PodExecOptions` query).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ExecOptions {
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl ExecOptions {
    pub(crate) fn parse(query: &str) -> Result<ExecOptions, String> {
        let mut opts = ExecOptions::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let flag = matches!(value.as_ref(), "true" | "1");
            match key.as_ref() {
                "command" => opts.command.push(value.into_owned()),
                "stdin" => opts.stdin = flag,
                "stdout" => opts.stdout = flag,
                "stderr" => opts.stderr = flag,
                "tty" => opts.tty = flag,
                _ => {}
            }
        }
        if opts.command.first().is_none_or(|c| c.is_empty()) {
            return Err("command: a command to run is required".into());
        }
        if opts.tty {
            // A terminal has one output; kubectl asks for no stderr with -t.
            opts.stderr = false;
        }
        Ok(opts)
    }
}

/// Runs the command to its end: the exit code, `None` when the stream went away first (the
/// child is then killed), or the error to report.
async fn run_exec(
    mut command: tokio::process::Command,
    opts: ExecOptions,
    mut body: TunnelBody,
    tx: mpsc::Sender<Bytes>,
) -> Result<Option<i32>, String> {
    let mut decoder = frames::Decoder::default();
    let pty = if opts.tty {
        let (master, slave) = open_pty().map_err(|e| format!("allocating a terminal: {e}"))?;
        if let Some((width, height)) = first_size(&mut body, &mut decoder).await {
            let _ = set_size(&master, width, height);
        }
        let stdio = || {
            slave
                .try_clone()
                .map(Stdio::from)
                .map_err(|e| format!("allocating a terminal: {e}"))
        };
        command.stdin(stdio()?).stdout(stdio()?).stderr(stdio()?);
        // Deprecated as unsound for fds that their owner may close while registered; the
        // master is owned by the AsyncFd and closed only when it is dropped.
        #[allow(deprecated)]
        let master = AsyncFd::new(master).map_err(|e| format!("allocating a terminal: {e}"))?;
        Some(Arc::new(master))
    } else {
        let pipe = |wanted: bool| if wanted { Stdio::piped() } else { Stdio::null() };
        command
            .stdin(pipe(opts.stdin))
            .stdout(pipe(opts.stdout))
            .stderr(pipe(opts.stderr));
        None
    };
    let program = opts.command.first().cloned().unwrap_or_default();
    let mut child = command.spawn().map_err(|e| format!("starting {program:?}: {e}"))?;
    // The child holds its own copies of the terminal; ours would keep the master from
    // seeing the end of the session. (They were moved into `command`, dropped with it.)
    drop(command);
    let (input, output) = match pty {
        None => {
            let (stdin, stdout, stderr) = (child.stdin.take(), child.stdout.take(), child.stderr.take());
            let stdin = stdin.map(|s| Box::new(s) as Box<dyn AsyncWrite + Send + Unpin>);
            (
                futures::future::Either::Left(feed(body, decoder, Input::Pipe(stdin))),
                futures::future::Either::Left(async {
                    tokio::join!(pump(stdout, frames::STDOUT, &tx), pump(stderr, frames::STDERR, &tx));
                }),
            )
        }
        Some(master) => (
            futures::future::Either::Right(feed(body, decoder, Input::Pty(master.clone()))),
            futures::future::Either::Right(pump_pty(master, &tx)),
        ),
    };
    let ended = async {
        output.await;
        child.wait().await
    };
    tokio::pin!(input, ended);
    let mut input_done = false;
    let outcome = loop {
        tokio::select! {
            status = &mut ended => break match status {
                Ok(status) => Ok(Some(status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))),
                Err(e) => Err(format!("waiting for the command: {e}")),
            },
            result = &mut input, if !input_done => {
                input_done = true;
                if let Err(message) = result {
                    break Err(message);
                }
            }
            _ = tx.closed() => break Ok(None),
        }
    };
    // Leaving drops the child (killed unless it ended) and with it the session.
    outcome
}

/// Where the hub's stdin goes.
enum Input {
    Pipe(Option<Box<dyn AsyncWrite + Send + Unpin>>),
    Pty(Arc<AsyncFd<OwnedFd>>),
}

/// Applies the hub's frames (stdin, resize, close) until its body ends; an error for a
/// broken stream.
async fn feed(mut body: TunnelBody, mut decoder: frames::Decoder, mut input: Input) -> Result<(), String> {
    loop {
        while let Some((channel, payload)) = decoder.next_frame()? {
            match (channel, &mut input) {
                (frames::STDIN, Input::Pipe(Some(stdin))) => {
                    if stdin.write_all(&payload).await.is_err() {
                        // The command closed its stdin: what else arrives is dropped.
                        input = Input::Pipe(None);
                    }
                }
                (frames::STDIN, Input::Pty(master)) => {
                    write_pty(master, &payload)
                        .await
                        .map_err(|e| format!("writing to the terminal: {e}"))?;
                }
                (frames::RESIZE, Input::Pty(master)) => {
                    if let Some((width, height)) = parse_size(&payload) {
                        let _ = set_size(master.get_ref(), width, height);
                    }
                }
                (frames::CLOSE_STDIN, Input::Pipe(stdin)) => {
                    if let Some(mut stdin) = stdin.take() {
                        let _ = stdin.shutdown().await;
                    }
                }
                (frames::CLOSE_STDIN, Input::Pty(master)) => {
                    let _ = write_pty(master, &[EOT]).await;
                }
                // Stdin nobody asked for, a resize without a terminal: nothing to do.
                (frames::STDIN | frames::RESIZE, _) => {}
                (other, _) => return Err(format!("exec frame channel {other} is not one the hub sends")),
            }
        }
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    decoder.push(&data);
                }
            }
            // The hub's half ended: the session goes on until the command's output ends.
            Some(Err(_)) | None => {
                if let Input::Pipe(stdin) = &mut input {
                    stdin.take();
                }
                return Ok(());
            }
        }
    }
}

/// Waits briefly for the session's first frame: a size is applied before the command
/// starts; anything else is left to [`feed`] in `decoder`.
async fn first_size(body: &mut TunnelBody, decoder: &mut frames::Decoder) -> Option<(u16, u16)> {
    let deadline = tokio::time::Instant::now() + FIRST_SIZE_WAIT;
    let mut pending = Vec::new();
    let size = loop {
        if pending.len() >= 5 {
            let len = u32::from_be_bytes([pending[1], pending[2], pending[3], pending[4]]) as usize;
            if pending[0] != frames::RESIZE || len > frames::MAX_PAYLOAD {
                break None;
            }
            if pending.len() >= 5 + len {
                let size = parse_size(&pending[5..5 + len]);
                pending.drain(..5 + len);
                break size;
            }
        }
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    pending.extend_from_slice(&data);
                }
            }
            _ => break None,
        }
    };
    decoder.push(&pending);
    size
}

fn parse_size(payload: &[u8]) -> Option<(u16, u16)> {
    let size: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let dim = |k: &str| size[k].as_u64().and_then(|v| u16::try_from(v).ok());
    Some((dim("width")?, dim("height")?))
}

fn set_size(master: &OwnedFd, width: u16, height: u16) -> io::Result<()> {
    let size = rustix::termios::Winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    rustix::termios::tcsetwinsize(master, size).map_err(io::Error::from)
}

/// A new pseudo-terminal: the master (non-blocking, for the agent) and the slave (for the
/// command). Neither is inherited by other children of the agent.
fn open_pty() -> io::Result<(OwnedFd, OwnedFd)> {
    use rustix::fs::{Mode, OFlags};
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let name = ptsname(&master, Vec::new())?;
    let slave = rustix::fs::open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let flags = rustix::fs::fcntl_getfl(&master)?;
    rustix::fs::fcntl_setfl(&master, flags | OFlags::NONBLOCK)?;
    Ok((master, slave))
}

async fn write_pty(master: &AsyncFd<OwnedFd>, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        let mut guard = master.writable().await?;
        match guard.try_io(|fd| rustix::io::write(fd.get_ref(), bytes).map_err(io::Error::from)) {
            Ok(Ok(n)) => bytes = &bytes[n..],
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => {}
        }
    }
    Ok(())
}

/// The terminal's output as stdout frames, until every holder of the slave has closed it
/// (Linux then answers EIO).
async fn pump_pty(master: Arc<AsyncFd<OwnedFd>>, tx: &mpsc::Sender<Bytes>) {
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let Ok(mut guard) = master.readable().await else { return };
        match guard.try_io(|fd| rustix::io::read(fd.get_ref(), &mut buf[..]).map_err(io::Error::from)) {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(n)) => {
                if tx.send(frames::encode(frames::STDOUT, &buf[..n])).await.is_err() {
                    return;
                }
            }
            Err(_would_block) => {}
        }
    }
}

/// One of the command's pipes as frames on `channel`, until it ends.
async fn pump(from: Option<impl AsyncRead + Unpin>, channel: u8, tx: &mpsc::Sender<Bytes>) {
    let Some(mut from) = from else { return };
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if tx.send(frames::encode(channel, &buf[..n])).await.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_queries() {
        let o = ExecOptions::parse("command=sh&command=-c&command=echo+hi&stdin=true&stdout=1&tty=false").unwrap();
        assert_eq!(o.command, ["sh", "-c", "echo hi"]);
        assert!(o.stdin && o.stdout && !o.stderr && !o.tty);
        let o = ExecOptions::parse("command=sh&stdout=true&stderr=true&tty=true").unwrap();
        assert!(o.tty && !o.stderr, "a terminal has one output");
        assert!(ExecOptions::parse("stdout=true").is_err());
        assert!(ExecOptions::parse("command=").is_err());
        assert_eq!(parse_size(br#"{"width":80,"height":24}"#), Some((80, 24)));
        assert_eq!(parse_size(br#"{"width":-1,"height":24}"#), None);
        assert_eq!(parse_size(b"garbage"), None);
    }
}
