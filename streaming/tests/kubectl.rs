//! The real kubectl binaries against a minimal API server whose exec and port-forward
//! endpoints are this crate: every protocol kubectl 1.27 … 1.33 picks by default, the SPDY
//! fallback of the newer ones, exit codes, stderr, port-forward round trips and refusals, and
//! garbage on the wire.

use std::convert::Infallible;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use faros_streaming::{ExecOptions, ExecOutcome, ExecUpgrade, PortForwardUpgrade, TerminalSize, status_response};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

/// What the server saw, for assertions on which transport each kubectl used.
#[derive(Default)]
struct Seen {
    upgrades: Vec<String>,
    resizes: Vec<TerminalSize>,
    /// Commands stopped because their client went away.
    abandoned: usize,
}

struct Server {
    addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    dir: PathBuf,
    runtime: tokio::runtime::Runtime,
}

impl Server {
    fn start() -> Server {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let state = seen.clone();
        runtime.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let state = state.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| route(req, state.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        let dir = std::env::temp_dir().join(format!("faros-streaming-{}-{}", std::process::id(), addr.port()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("kubeconfig"),
            format!(
                "apiVersion: v1\nkind: Config\nclusters: [{{name: t, cluster: {{server: \"http://{addr}\"}}}}]\n\
                 users: [{{name: u, user: {{token: t}}}}]\n\
                 contexts: [{{name: c, context: {{cluster: t, user: u, namespace: default}}}}]\ncurrent-context: c\n"
            ),
        )
        .unwrap();
        Server {
            addr,
            seen,
            dir,
            runtime,
        }
    }

    fn kubectl(&self, version: &str, env: &[(&str, &str)], args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = self
            .command(version, env, args)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .spawn()
            .unwrap();
        if let Some(input) = stdin {
            child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        }
        child.wait_with_output().unwrap()
    }

    fn command(&self, version: &str, env: &[(&str, &str)], args: &[&str]) -> Command {
        let binary =
            faros_testkit::kubectl::binary(version).unwrap_or_else(|| panic!("kubectl.{version} is installed"));
        let mut command = Command::new(binary);
        command
            .args(args)
            .env("KUBECONFIG", self.dir.join("kubeconfig"))
            .env("HOME", &self.dir)
            .env_remove("KUBECTL_REMOTE_COMMAND_WEBSOCKETS")
            .env_remove("KUBECTL_PORT_FORWARD_WEBSOCKETS")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    fn take_upgrades(&self) -> Vec<String> {
        std::mem::take(&mut self.seen.lock().unwrap().upgrades)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

type Body = Full<Bytes>;

fn json(code: StatusCode, value: serde_json::Value) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = code;
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    response
}

fn pod() -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p1", "namespace": "default", "uid": "u1", "resourceVersion": "1",
                     "creationTimestamp": "2024-01-01T00:00:00Z"},
        "spec": {"nodeName": "device1", "containers": [{"name": "c1", "image": "busybox"}]},
        "status": {"phase": "Running"}
    })
}

async fn route(req: Request<Incoming>, seen: Arc<Mutex<Seen>>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    let response = match (req.method(), path.as_str()) {
        (&Method::GET, "/api") => json(
            StatusCode::OK,
            serde_json::json!({"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
        ),
        (&Method::GET, "/apis") => json(
            StatusCode::OK,
            serde_json::json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []}),
        ),
        (&Method::GET, "/api/v1") => json(
            StatusCode::OK,
            serde_json::json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
            {"name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod", "verbs": ["get", "list"], "shortNames": ["po"]},
            {"name": "pods/attach", "singularName": "", "namespaced": true, "kind": "PodAttachOptions", "verbs": ["create", "get"]},
            {"name": "pods/exec", "singularName": "", "namespaced": true, "kind": "PodExecOptions", "verbs": ["create", "get"]},
            {"name": "pods/portforward", "singularName": "", "namespaced": true, "kind": "PodPortForwardOptions", "verbs": ["create", "get"]}]}),
        ),
        (&Method::GET, "/api/v1/namespaces/default/pods/p1") => json(StatusCode::OK, pod()),
        (_, "/api/v1/namespaces/default/pods/p1/exec" | "/api/v1/namespaces/default/pods/p1/attach") => exec(req, seen),
        (_, "/api/v1/namespaces/default/pods/p1/portforward") => port_forward(req, seen),
        _ => refusal(status_response(StatusCode::NOT_FOUND, "not found")),
    };
    Ok(response)
}

fn refusal(response: Response<String>) -> Response<Body> {
    response.map(|body| Full::new(Bytes::from(body)))
}

fn upgraded(response: Response<()>) -> Response<Body> {
    response.map(|()| Full::new(Bytes::new()))
}

fn transport(req: &Request<Incoming>) -> String {
    let upgrade = req.headers().get("upgrade").and_then(|v| v.to_str().ok()).unwrap_or("");
    upgrade.to_ascii_lowercase()
}

fn exec(mut req: Request<Incoming>, seen: Arc<Mutex<Seen>>) -> Response<Body> {
    let options = match ExecOptions::from_query(req.uri().query()) {
        Ok(options) => options,
        Err(message) => return refusal(status_response(StatusCode::BAD_REQUEST, &message)),
    };
    if options.container.as_deref().is_some_and(|c| c != "c1") {
        let message = format!(
            "container {} is not valid for pod p1",
            options.container.unwrap_or_default()
        );
        return refusal(status_response(StatusCode::BAD_REQUEST, &message));
    }
    let upgrade = match ExecUpgrade::negotiate(&req) {
        Ok(upgrade) => upgrade,
        Err(refused) => return refusal(refused.into_response()),
    };
    seen.lock().unwrap().upgrades.push(format!("exec {}", transport(&req)));
    let response = upgraded(upgrade.response());
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(io) = on_upgrade.await else { return };
        let Ok(mut session) = upgrade.accept(TokioIo::new(io), &options).await else {
            return;
        };
        if options.command == ["drop-session"] {
            return;
        }
        let outcome = run(&mut session, &options, &seen).await;
        let _ = session.finish(outcome).await;
    });
    response
}

/// Runs the command as a local process, or, for `resize-probe`, reports terminal sizes.
async fn run(session: &mut faros_streaming::ExecSession, options: &ExecOptions, seen: &Mutex<Seen>) -> ExecOutcome {
    if options.command.first().map(String::as_str) == Some("resize-probe") {
        let (Some(mut resizes), Some(mut stdout)) = (session.take_resizes(), session.take_stdout()) else {
            return ExecOutcome::Failed("resize-probe needs a tty".into());
        };
        let Some(size) = resizes.next().await else {
            return ExecOutcome::Exited(9);
        };
        seen.lock().unwrap().resizes.push(size);
        let _ = stdout
            .write_all(format!("size {}x{}\r\n", size.width, size.height).as_bytes())
            .await;
        return ExecOutcome::Exited(0);
    }
    let Some((program, args)) = options.command.split_first() else {
        // attach: there is no process here to attach to, so say so and end.
        if let Some(mut stdout) = session.take_stdout() {
            let _ = stdout.write_all(b"attached to c1\n").await;
        }
        return ExecOutcome::Exited(0);
    };
    let mut child = match tokio::process::Command::new(program)
        .args(args)
        .stdin(if options.stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(child) => child,
        Err(e) => return ExecOutcome::Failed(format!("cannot run {program}: {e}")),
    };
    let stdin_copy = match (session.take_stdin(), child.stdin.take()) {
        (Some(mut from), Some(mut to)) => Some(tokio::spawn(async move {
            let _ = tokio::io::copy(&mut from, &mut to).await;
        })),
        _ => None,
    };
    let copy = |out: Option<faros_streaming::Output>, mut from: Box<dyn tokio::io::AsyncRead + Send + Unpin>| async move {
        match out {
            Some(mut to) => {
                let _ = tokio::io::copy(&mut from, &mut to).await;
            }
            None => {
                let _ = tokio::io::copy(&mut from, &mut tokio::io::sink()).await;
            }
        }
    };
    let stdout = copy(session.take_stdout(), Box::new(child.stdout.take().unwrap()));
    let stderr = copy(session.take_stderr(), Box::new(child.stderr.take().unwrap()));
    let completed = async move {
        tokio::join!(stdout, stderr);
        child.wait().await
    };
    let status = tokio::select! {
        status = completed => status,
        () = session.disconnected() => {
            // Dropping `completed` kills the process.
            seen.lock().unwrap().abandoned += 1;
            return ExecOutcome::Failed("the client went away".into());
        }
    };
    if let Some(task) = stdin_copy {
        task.abort();
    }
    match status {
        Ok(status) => ExecOutcome::Exited(status.code().unwrap_or(128)),
        Err(e) => ExecOutcome::Failed(e.to_string()),
    }
}

fn port_forward(mut req: Request<Incoming>, seen: Arc<Mutex<Seen>>) -> Response<Body> {
    let upgrade = match PortForwardUpgrade::negotiate(&req) {
        Ok(upgrade) => upgrade,
        Err(refused) => return refusal(refused.into_response()),
    };
    seen.lock()
        .unwrap()
        .upgrades
        .push(format!("portforward {}", transport(&req)));
    let response = upgraded(upgrade.response());
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(io) = on_upgrade.await else { return };
        upgrade
            .serve(TokioIo::new(io), |port| async move {
                TcpStream::connect(("127.0.0.1", port))
                    .await
                    .map_err(|e| format!("error forwarding port {port} to pod p1, uid u1: {e}"))
            })
            .await;
    });
    response
}

/// A TCP echo server on an ephemeral port.
fn echo_server(runtime: &tokio::runtime::Runtime) -> u16 {
    let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let port = listener.local_addr().unwrap().port();
    runtime.spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = tcp.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    port
}

fn installed(versions: &[&'static str]) -> Vec<&'static str> {
    versions
        .iter()
        .copied()
        .filter(|v| faros_testkit::kubectl::installed(v))
        .collect()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Environment variables for kubectl.
type Env = &'static [(&'static str, &'static str)];

/// `(version, env, transport the exec is expected to use)`
const EXEC_MATRIX: &[(&str, Env, &str)] = &[
    ("1.27", &[], "spdy/3.1"),
    ("1.28", &[], "spdy/3.1"),
    ("1.29", &[], "spdy/3.1"),
    ("1.29", &[("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "true")], "websocket"),
    ("1.30", &[("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")], "spdy/3.1"),
    ("1.31", &[], "websocket"),
    ("1.32", &[], "websocket"),
    ("1.33", &[], "websocket"),
];

#[test]
fn exec_stdin_exit_codes_and_stderr() {
    let server = Server::start();
    for &(version, env, transport) in EXEC_MATRIX {
        if installed(&[version]).is_empty() {
            continue;
        }
        let out = server.kubectl(version, env, &["exec", "-i", "p1", "--", "cat"], Some("hi\n"));
        assert!(out.status.success(), "kubectl {version}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "hi\n", "kubectl {version}");
        assert_eq!(
            server.take_upgrades(),
            [format!("exec {transport}")],
            "kubectl {version}"
        );

        let out = server.kubectl(version, env, &["exec", "p1", "--", "sh", "-c", "exit 3"], None);
        assert_eq!(out.status.code(), Some(3), "kubectl {version}: {}", text(&out.stderr));

        let out = server.kubectl(
            version,
            env,
            &["exec", "p1", "--", "sh", "-c", "echo out; echo err >&2"],
            None,
        );
        assert!(out.status.success(), "kubectl {version}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "out\n", "kubectl {version}");
        assert!(
            text(&out.stderr).ends_with("err\n"),
            "kubectl {version}: {}",
            text(&out.stderr)
        );
        server.take_upgrades();
    }
}

#[test]
fn attach_over_every_default_transport() {
    let server = Server::start();
    for version in installed(&["1.27", "1.32"]) {
        let out = server.kubectl(version, &[], &["attach", "p1"], None);
        assert!(out.status.success(), "kubectl {version}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "attached to c1\n", "kubectl {version}");
    }
}

#[test]
fn a_client_that_leaves_is_noticed() {
    let server = Server::start();
    for (i, version) in installed(&["1.27", "1.32"]).into_iter().enumerate() {
        let mut kubectl = server
            .command(version, &[], &["exec", "p1", "--", "sleep", "60"])
            .spawn()
            .unwrap();
        assert!(
            faros_testkit::kubectl::eventually(Duration::from_secs(10), || !server
                .seen
                .lock()
                .unwrap()
                .upgrades
                .is_empty()),
            "kubectl {version} never upgraded"
        );
        std::thread::sleep(Duration::from_millis(300));
        kubectl.kill().unwrap();
        kubectl.wait().unwrap();
        assert!(
            faros_testkit::kubectl::eventually(Duration::from_secs(10), || server.seen.lock().unwrap().abandoned
                == i + 1),
            "kubectl {version}: the server did not notice the client leave"
        );
        server.take_upgrades();
    }
}

#[test]
fn a_session_dropped_without_finishing_is_a_failure() {
    let server = Server::start();
    for version in installed(&["1.27", "1.32"]) {
        let out = server.kubectl(version, &[], &["exec", "p1", "--", "drop-session"], None);
        assert_eq!(out.status.code(), Some(1), "kubectl {version}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("the command ended without an exit status"),
            "kubectl {version}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn exec_larger_than_the_send_window() {
    // 1 MiB each way: SPDY's 64 KiB initial window must not be enforced (kubectl never opens it).
    let server = Server::start();
    let input: String = (0..1024 * 1024 / 16).map(|i| format!("{i:015}\n")).collect();
    for version in installed(&["1.27", "1.32"]) {
        let out = server.kubectl(version, &[], &["exec", "-i", "p1", "--", "cat"], Some(&input));
        assert!(out.status.success(), "kubectl {version}: {}", text(&out.stderr));
        assert!(
            out.stdout == input.as_bytes(),
            "kubectl {version}: {} bytes back",
            out.stdout.len()
        );
    }
}

#[test]
fn exec_with_a_terminal_passes_resizes() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: no script(1) to give kubectl a terminal");
        return;
    }
    let server = Server::start();
    for version in installed(&["1.27", "1.32"]) {
        let binary = faros_testkit::kubectl::binary(version).unwrap();
        let inner = format!(
            "stty cols 101 rows 31; {} exec -it p1 -- resize-probe",
            binary.display()
        );
        let out = Command::new("script")
            .args(["-qec", &inner, "/dev/null"])
            .env("KUBECONFIG", server.dir.join("kubeconfig"))
            .env("HOME", &server.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert!(
            text(&out.stdout).contains("size 101x31"),
            "kubectl {version}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert!(out.status.success(), "kubectl {version}");
        let resizes = std::mem::take(&mut server.seen.lock().unwrap().resizes);
        assert_eq!(resizes, [TerminalSize { width: 101, height: 31 }]);
    }
}

/// A running `kubectl port-forward`, ended on drop.
struct Forward(Child, u16);

impl Drop for Forward {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn port_forward_to(server: &Server, version: &str, env: &[(&str, &str)], remote: u16) -> Forward {
    let mut child = server
        .command(version, env, &["port-forward", "p1", &format!(":{remote}")])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    // "Forwarding from 127.0.0.1:NNNN -> REMOTE"
    let local = line
        .split_once("127.0.0.1:")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("kubectl {version} said {line:?}"));
    Forward(child, local)
}

fn round_trip(local: u16, message: &[u8]) -> Vec<u8> {
    let mut tcp = StdTcpStream::connect(("127.0.0.1", local)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(message).unwrap();
    tcp.shutdown(std::net::Shutdown::Write).unwrap();
    let mut back = Vec::new();
    tcp.read_to_end(&mut back).unwrap();
    back
}

/// `(version, env, transport the port-forward is expected to use)`
const PORT_FORWARD_MATRIX: &[(&str, Env, &str)] = &[
    ("1.27", &[], "spdy/3.1"),
    ("1.28", &[], "spdy/3.1"),
    ("1.29", &[], "spdy/3.1"),
    ("1.30", &[], "spdy/3.1"),
    ("1.30", &[("KUBECTL_PORT_FORWARD_WEBSOCKETS", "true")], "websocket"),
    ("1.31", &[], "websocket"),
    ("1.32", &[], "websocket"),
    ("1.33", &[], "websocket"),
    ("1.33", &[("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false")], "spdy/3.1"),
];

#[test]
fn port_forward_round_trips() {
    let server = Server::start();
    let echo = echo_server(&server.runtime);
    for &(version, env, transport) in PORT_FORWARD_MATRIX {
        if installed(&[version]).is_empty() {
            continue;
        }
        let forward = port_forward_to(&server, version, env, echo);
        assert_eq!(round_trip(forward.1, b"ping\n"), b"ping\n", "kubectl {version}");
        // Several connections over one session, one larger than a SPDY window.
        let big: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
        assert!(round_trip(forward.1, &big) == big, "kubectl {version}");
        assert_eq!(round_trip(forward.1, b"again"), b"again", "kubectl {version}");
        drop(forward);
        assert_eq!(
            server.take_upgrades(),
            [format!("portforward {transport}")],
            "kubectl {version} {env:?}"
        );
    }
}

#[test]
fn port_forward_to_a_closed_port_fails_clearly() {
    let server = Server::start();
    // A port nothing listens on: bind one, note it, close it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for version in installed(&["1.27", "1.32"]) {
        let mut forward = port_forward_to(&server, version, &[], closed);
        let mut tcp = StdTcpStream::connect(("127.0.0.1", forward.1)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut back = Vec::new();
        let _ = tcp.read_to_end(&mut back);
        assert!(back.is_empty());
        // kubectl prints the error and ends the whole port-forward (client-go portforward.go).
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = forward.0.try_wait().unwrap() {
                break status;
            }
            assert!(std::time::Instant::now() < deadline, "kubectl {version} kept running");
            std::thread::sleep(Duration::from_millis(100));
        };
        let mut stderr = String::new();
        forward.0.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        assert!(
            stderr.contains(&format!("error forwarding port {closed} to pod p1, uid u1")),
            "kubectl {version}: {stderr}"
        );
        assert!(
            stderr.contains("connection refused") || stderr.contains("Connection refused"),
            "kubectl {version}: {stderr}"
        );
        // What kubectl does against a real kubelet too: it ends the whole port-forward.
        assert!(
            stderr.contains("error: lost connection to pod"),
            "kubectl {version}: {stderr}"
        );
        assert_eq!(status.code(), Some(1), "kubectl {version}: {stderr}");
    }
}

/// Sends a raw SPDY upgrade for port-forward, then `frames`; returns what the server sent back
/// after the 101 until it closed the connection.
fn raw_spdy(addr: SocketAddr, frames: &[u8]) -> Vec<u8> {
    let mut tcp = StdTcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(
        b"POST /api/v1/namespaces/default/pods/p1/portforward HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n\
          Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: portforward.k8s.io\r\nContent-Length: 0\r\n\r\n",
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", text(&head));
    let _ = tcp.write_all(frames);
    let mut rest = Vec::new();
    tcp.read_to_end(&mut rest).expect("the server closes the connection");
    rest
}

#[test]
fn garbage_and_oversized_frames_drop_only_that_connection() {
    let server = Server::start();
    let goaway_protocol_error = [0x80, 3, 0, 7, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1];
    // A 16 MiB data frame header.
    assert_eq!(
        raw_spdy(server.addr, &[0, 0, 0, 1, 0, 0xff, 0xff, 0xff]),
        goaway_protocol_error
    );
    // A SYN_STREAM whose header block is not zlib.
    let mut syn = vec![0x80, 3, 0, 1, 0, 0, 0, 20, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    syn.extend_from_slice(b"notzlib!\0\0");
    assert_eq!(raw_spdy(server.addr, &syn), goaway_protocol_error);
    // Wrong version.
    assert_eq!(
        raw_spdy(server.addr, &[0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1]),
        goaway_protocol_error
    );
    // A truncated frame, then the client hangs up: no answer, no panic.
    let mut truncated = StdTcpStream::connect(server.addr).unwrap();
    let _ = truncated.write_all(b"GET /api HTTP/1.1\r\nHost: x\r\n\r\n");
    drop(truncated);
    // And the server still serves kubectl.
    let version = faros_testkit::kubectl::BASELINE;
    assert!(faros_testkit::kubectl::installed(version));
    let out = server.kubectl(version, &[], &["exec", "-i", "p1", "--", "cat"], Some("still here\n"));
    assert_eq!(text(&out.stdout), "still here\n", "{}", text(&out.stderr));
}

#[test]
fn refusals_are_status_objects_kubectl_prints() {
    let server = Server::start();
    for version in installed(&["1.27", "1.32"]) {
        let out = server.kubectl(version, &[], &["exec", "p1", "-c", "nope", "--", "true"], None);
        assert_eq!(out.status.code(), Some(1), "kubectl {version}");
        assert!(
            text(&out.stderr).contains("Error from server (BadRequest): container nope is not valid for pod p1"),
            "kubectl {version}: {}",
            text(&out.stderr)
        );
    }
}

/// Opens a WebSocket-tunnelled port-forward, sends `message`, and returns the binary payloads
/// received until the server closed, and whether it closed with Close 1000.
async fn ws_tunnel(addr: SocketAddr, message: Message) -> (Vec<u8>, bool) {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{addr}/api/v1/namespaces/default/pods/p1/portforward")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "SPDY/3.1+portforward.k8s.io".parse().unwrap());
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut ws, response) = tokio_tungstenite::client_async(request, tcp).await.unwrap();
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        "SPDY/3.1+portforward.k8s.io"
    );
    let _ = ws.send(message).await;
    let (mut received, mut clean) = (Vec::new(), false);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while let Ok(Some(Ok(message))) = tokio::time::timeout_at(deadline, ws.next()).await {
        match message {
            Message::Binary(data) => received.extend_from_slice(&data),
            Message::Close(frame) => clean = frame.is_some_and(|f| u16::from(f.code) == 1000),
            _ => {}
        }
    }
    (received, clean)
}

#[test]
fn garbage_in_the_websocket_tunnel_drops_only_that_connection() {
    let server = Server::start();
    let goaway_protocol_error = [0x80, 3, 0, 7, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1];
    let oversized_frame = Message::Binary(Bytes::from_static(&[0, 0, 0, 1, 0, 0xff, 0xff, 0xff]));
    let (received, clean) = server.runtime.block_on(ws_tunnel(server.addr, oversized_frame));
    assert_eq!(received, goaway_protocol_error);
    assert!(clean, "the tunnel ends with Close 1000");
    // A message over the WebSocket limit ends the connection without a reply.
    let huge = Message::Binary(Bytes::from(vec![0u8; 2 << 20]));
    let (received, _) = server.runtime.block_on(ws_tunnel(server.addr, huge));
    assert!(received.is_empty());
    let version = faros_testkit::kubectl::BASELINE;
    let echo = echo_server(&server.runtime);
    let forward = port_forward_to(&server, version, &[], echo);
    assert_eq!(round_trip(forward.1, b"still here"), b"still here");
}

/// Runs a WebSocket exec with `protocol`, sends `messages`, and returns every binary message
/// received and the close code.
async fn ws_exec(addr: SocketAddr, query: &str, protocol: &str, messages: Vec<Vec<u8>>) -> (Vec<Vec<u8>>, Option<u16>) {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!("ws://{addr}/api/v1/namespaces/default/pods/p1/exec?{query}");
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", protocol.parse().unwrap());
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut ws, response) = tokio_tungstenite::client_async(request, tcp).await.unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], protocol);
    for message in messages {
        ws.send(Message::Binary(message.into())).await.unwrap();
    }
    let (mut received, mut close) = (Vec::new(), None);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while let Ok(Some(Ok(message))) = tokio::time::timeout_at(deadline, ws.next()).await {
        match message {
            Message::Binary(data) => received.push(data.to_vec()),
            Message::Close(frame) => close = frame.map(|f| u16::from(f.code)),
            _ => {}
        }
    }
    (received, close)
}

#[test]
fn websocket_exec_channels_on_the_wire() {
    let server = Server::start();
    // v5: stdin, then the close signal for channel 0 is stdin's EOF.
    let (received, close) = server.runtime.block_on(ws_exec(
        server.addr,
        "command=cat&stdin=true&stdout=true",
        "v5.channel.k8s.io",
        vec![b"\x00typed\n".to_vec(), vec![255, 0]],
    ));
    let success = [&[3u8][..], br#"{"metadata":{},"status":"Success"}"#].concat();
    assert_eq!(received, [b"\x01typed\n".to_vec(), success]);
    assert_eq!(close, Some(1000));
    // v4 (kube-rs offers it): no close signal, so a command without stdin.
    let (received, close) = server.runtime.block_on(ws_exec(
        server.addr,
        "command=sh&command=-c&command=echo+out%3B+echo+err+%3E%262%3B+exit+3&stdout=true&stderr=true",
        "v4.channel.k8s.io",
        vec![],
    ));
    let status = br#"{"details":{"causes":[{"message":"3","reason":"ExitCode"}]},"message":"command terminated with non-zero exit code: 3","metadata":{},"reason":"NonZeroExitCode","status":"Failure"}"#;
    assert!(received.contains(&b"\x01out\n".to_vec()), "{received:?}");
    assert!(received.contains(&b"\x02err\n".to_vec()), "{received:?}");
    assert_eq!(received.last().map(|m| &m[1..]), Some(&status[..]));
    assert_eq!(close, Some(1000));
}
