//! The instance requests of the tunnel (log, exec, port-forward) answered by the agent's own
//! tunnel service, driven as the hub drives it: an HTTP/2 client on the other end of an
//! in-memory connection, one stream per request, against real processes and containers.

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use edge_agent::tunnel::{ExecPolicy, Handler, PortPolicy};
use edge_agent::workloads::Assignment;
use edge_agent::workloads::Layout;
use edge_agent::workloads::podman::PodmanConfig;
use faros_api::workloads::{Container, ContainerPort, Process, WorkloadTemplate};
use faros_testkit::podman::{BUSYBOX, Sandbox};
use faros_tunnel::frames;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::mpsc;

use super::{Agent, KillOnDrop, StateDir, With, agent_ref, alive, pid_of, placement, running, until};

type Body = BoxBody<Bytes, std::convert::Infallible>;

/// The hub's end of a tunnel to an agent whose workloads are `agent`'s.
struct Hub {
    send: hyper::client::conn::http2::SendRequest<Body>,
}

impl Hub {
    async fn connect(agent: &Agent, state: &Path, podman_env: &[(std::ffi::OsString, std::ffi::OsString)]) -> Hub {
        Hub::connect_with(agent, state, podman_env, ExecPolicy::All).await
    }

    async fn connect_with(
        agent: &Agent,
        state: &Path,
        podman_env: &[(std::ffi::OsString, std::ffi::OsString)],
        exec: ExecPolicy,
    ) -> Hub {
        Hub::connect_with_ports(agent, state, podman_env, exec, PortPolicy::Listed(Default::default())).await
    }

    async fn connect_with_ports(
        agent: &Agent,
        state: &Path,
        podman_env: &[(std::ffi::OsString, std::ffi::OsString)],
        exec: ExecPolicy,
        ports: PortPolicy,
    ) -> Hub {
        let handler = Handler {
            ports,
            exec,
            state_dir: state.to_path_buf(),
            board: agent.board.clone(),
            summary: agent.summary.clone(),
            podman: PodmanConfig {
                binary: "podman".into(),
                env: podman_env.to_vec(),
                agent: agent_ref(),
                stop_grace: Duration::from_secs(1),
                poll_interval: Duration::from_millis(300),
            },
            layout: Layout::new(state),
        };
        // Each request on its own HTTP/2 stream, as the tunnel's accepted streams carry them.
        let (agent_io, hub_io) = tokio::io::duplex(256 * 1024);
        let handler = Arc::new(handler);
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            handler
                .clone()
                .handle(request.map(|body| body.map_err(Into::into).boxed()))
        });
        tokio::spawn(
            hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(agent_io), service),
        );
        let (send, connection) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(hub_io))
            .await
            .unwrap();
        tokio::spawn(connection);
        Hub { send }
    }

    /// Opens a stream; the sender feeds its request body, dropping it ends the body.
    async fn open(&self, method: &str, path: &str) -> (mpsc::Sender<Bytes>, Response<Incoming>) {
        let (tx, mut rx) = mpsc::channel::<Bytes>(16);
        let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b)))));
        let request = Request::builder()
            .method(method)
            .uri(format!("http://agent{path}"))
            .body(StreamBody::new(stream).boxed())
            .unwrap();
        let mut send = self.send.clone();
        send.ready().await.unwrap();
        let response = tokio::time::timeout(Duration::from_secs(30), send.send_request(request))
            .await
            .expect("an answer in time")
            .unwrap();
        (tx, response)
    }

    /// A whole answer: status, whether the agent refused it, body.
    async fn get(&self, path: &str) -> (StatusCode, bool, String) {
        let (_tx, response) = self.open("GET", path).await;
        let (status, refused) = (
            response.status(),
            response.headers().contains_key(faros_tunnel::REFUSED_HEADER),
        );
        let body = tokio::time::timeout(Duration::from_secs(30), response.into_body().collect())
            .await
            .expect("the whole body in time")
            .unwrap()
            .to_bytes();
        (status, refused, String::from_utf8_lossy(&body).into_owned())
    }

    /// Runs `command` with exec, sending `input` frames first and `then` after its first
    /// output; what came out on stdout and stderr and the exit frame's JSON.
    async fn exec(
        &self,
        placement: &str,
        container: &str,
        command: &[&str],
        tty: bool,
        input: &[Bytes],
        then: &[Bytes],
    ) -> Exec {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for arg in command {
            query.append_pair("command", arg);
        }
        query.append_pair("stdin", "true").append_pair("stdout", "true");
        query.append_pair("stderr", if tty { "false" } else { "true" });
        query.append_pair("tty", if tty { "true" } else { "false" });
        let path = faros_tunnel::exec_path(placement, container, Some(&query.finish()));
        let (tx, response) = self.open("POST", &path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        for frame in input {
            tx.send(frame.clone()).await.unwrap();
        }
        let mut body = response.into_body();
        let mut decoder = frames::Decoder::default();
        let mut out = Exec::default();
        // The request body stays open: the session ends by the command's end, not the hub's.
        let read = async {
            while let Some(frame) = body.frame().await {
                let Ok(data) = frame.unwrap().into_data() else { continue };
                decoder.push(&data);
                while let Some((channel, payload)) = decoder.next_frame().unwrap() {
                    let text = String::from_utf8_lossy(&payload).into_owned();
                    if channel == frames::STDOUT && out.stdout.is_empty() {
                        for frame in then {
                            tx.send(frame.clone()).await.unwrap();
                        }
                    }
                    match channel {
                        frames::STDOUT => out.stdout.push_str(&text),
                        frames::STDERR => out.stderr.push_str(&text),
                        frames::EXIT => out.exit = serde_json::from_str(&text).unwrap(),
                        other => panic!("channel {other} from the agent"),
                    }
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(30), read)
            .await
            .expect("the command to end");
        drop(tx);
        out
    }
}

#[derive(Debug, Default)]
struct Exec {
    stdout: String,
    stderr: String,
    exit: serde_json::Value,
}

fn stdin(bytes: &[u8]) -> Bytes {
    frames::encode(frames::STDIN, bytes)
}

fn close_stdin() -> Bytes {
    frames::encode(frames::CLOSE_STDIN, b"")
}

fn resize(width: u16, height: u16) -> Bytes {
    frames::encode(
        frames::RESIZE,
        format!(r#"{{"width":{width},"height":{height}}}"#).as_bytes(),
    )
}

/// A TCP server on 127.0.0.1 that sends back what it gets, until its client half-closes.
fn echo_server() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 1024];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 || stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// Port-forwards to `port` of `placement`: sends `send`, half-closes, returns the answer.
async fn forward(hub: &Hub, placement: &str, port: u16, send: &[u8]) -> (StatusCode, bool, String) {
    let (tx, response) = hub.open("POST", &faros_tunnel::portforward_path(placement, port)).await;
    let status = response.status();
    let refused = response.headers().contains_key(faros_tunnel::REFUSED_HEADER);
    // A refused stream has stopped reading its body already.
    let _ = tx.send(Bytes::copy_from_slice(send)).await;
    drop(tx);
    let body = tokio::time::timeout(Duration::from_secs(30), response.into_body().collect())
        .await
        .expect("the connection to end")
        .unwrap()
        .to_bytes();
    (status, refused, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_placement_answers_log_exec_and_port_forward() {
    let state = StateDir::new("streams-process");
    let agent = Agent::start(&state.0, With::Processes { log_max_bytes: 1 << 20 }).await;
    let name = "web-dev1-000001";
    // Prints two lines, then a third whenever the test drops a `go` file in its directory.
    let script = "echo one; echo two; while true; do if [ -f go ]; then echo three; rm go; fi; sleep 0.1; done";
    let template = WorkloadTemplate {
        process: Some(Process {
            path: BUSYBOX.into(),
            args: vec!["sh".into(), "-c".into(), script.into()],
            ..Default::default()
        }),
        ..Default::default()
    };
    agent
        .send(Assignment::Snapshot(vec![placement(name, 1, template)]))
        .await;
    agent.wait_for(name, "the process running", running).await;
    let process = KillOnDrop(pid_of(&agent.status(name).unwrap()));
    let dir = Layout::new(&state.0).placement_dir(name);
    // By default a device runs commands in containers only: a process has none, so a
    // command for it would run on the device itself.
    let careful = Hub::connect_with(&agent, &state.0, &[], ExecPolicy::Containers).await;
    let query = "command=true&stdout=true";
    let (tx, response) = careful
        .open("POST", &faros_tunnel::exec_path(name, "process", Some(query)))
        .await;
    drop(tx);
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.headers().contains_key(faros_tunnel::REFUSED_HEADER));
    let hub = Hub::connect(&agent, &state.0, &[]).await;

    // Log: the tail, then following sees what is written after the request.
    let (status, _, body) = hub
        .get(&faros_tunnel::log_path(name, "process", Some("tailLines=1")))
        .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "two\n"));
    let (_tx, response) = hub
        .open(
            "GET",
            &faros_tunnel::log_path(name, "process", Some("follow=true&tailLines=1")),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut seen = String::new();
    std::fs::write(dir.join("go"), "").unwrap();
    let followed = tokio::time::timeout(Duration::from_secs(20), async {
        while !seen.contains("three") {
            let Some(frame) = body.frame().await else { break };
            if let Ok(data) = frame.unwrap().into_data() {
                seen.push_str(&String::from_utf8_lossy(&data));
            }
        }
    })
    .await;
    assert!(followed.is_ok(), "following saw only {seen:?}");
    assert_eq!(seen, "two\nthree\n");
    drop(body);
    let (status, refused, body) = hub
        .get(&faros_tunnel::log_path(name, "process", Some("tailLines=x")))
        .await;
    assert_eq!((status, refused), (StatusCode::BAD_REQUEST, true), "{body}");
    assert!(body.starts_with("tailLines"), "{body}");

    // Exec runs on the device, in the process's working directory.
    let out = hub
        .exec(
            name,
            "process",
            &["sh", "-c", "cat; pwd"],
            false,
            &[stdin(b"hi\n"), close_stdin()],
            &[],
        )
        .await;
    assert_eq!(out.stdout, format!("hi\n{}\n", dir.display()));
    assert_eq!(out.exit, serde_json::json!({"exitCode": 0}));
    let out = hub
        .exec(name, "process", &["sh", "-c", "exit 3"], false, &[], &[])
        .await;
    assert_eq!(out.exit, serde_json::json!({"exitCode": 3}));
    let out = hub
        .exec(
            name,
            "process",
            &["sh", "-c", "echo out; echo err >&2"],
            false,
            &[],
            &[],
        )
        .await;
    assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("out\n", "err\n"));
    let out = hub
        .exec(name, "process", &["sh", "-c", "kill -TERM $$"], false, &[], &[])
        .await;
    assert_eq!(out.exit, serde_json::json!({"exitCode": 143}), "128 + SIGTERM");
    let out = hub.exec(name, "process", &["/no/such/binary"], false, &[], &[]).await;
    assert!(
        out.exit["error"]
            .as_str()
            .is_some_and(|e| e.contains("/no/such/binary")),
        "{out:?}"
    );
    // A terminal: the size sent is the size the command sees, before and after a resize.
    let out = hub
        .exec(
            name,
            "process",
            &["sh", "-c", "stty size; read line; stty size"],
            true,
            &[resize(100, 30)],
            &[resize(120, 40), stdin(b"go\n")],
        )
        .await;
    assert!(out.stdout.contains("30 100"), "{out:?}");
    assert!(out.stdout.contains("40 120"), "{out:?}");
    assert_eq!(out.exit, serde_json::json!({"exitCode": 0}));

    // A broken stream (a frame over the limit) ends the session with an error.
    let mut oversized = vec![frames::STDIN];
    oversized.extend_from_slice(&u32::MAX.to_be_bytes());
    let out = hub
        .exec(
            name,
            "process",
            &["sleep", "1000"],
            false,
            &[Bytes::from(oversized)],
            &[],
        )
        .await;
    assert!(
        out.exit["error"].as_str().is_some_and(|e| e.contains("limit")),
        "{out:?}"
    );

    // The hub gone (its stream dropped) kills the command.
    let query = "command=sh&command=-c&command=echo+%24%24%3B+exec+sleep+1000&stdout=true";
    let (tx, response) = hub
        .open("POST", &faros_tunnel::exec_path(name, "process", Some(query)))
        .await;
    let mut body = response.into_body();
    let mut decoder = frames::Decoder::default();
    let pid: u32 = loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        decoder.push(&frame.into_data().unwrap());
        if let Some((frames::STDOUT, payload)) = decoder.next_frame().unwrap() {
            break String::from_utf8_lossy(&payload).trim().parse().unwrap();
        }
    };
    drop((tx, body));
    let gone = until(Duration::from_secs(10), || !alive(pid)).await;
    assert!(gone, "exec's command {pid} outlived its stream");

    // Port-forward: 127.0.0.1 of the device, for ports the device lets be reached (published
    // by a workload, or in --allow-ports); anything else on its loopback is refused; a closed
    // port is refused with Go's words.
    let port = echo_server();
    let (status, refused, _) = forward(&hub, name, port, b"ping").await;
    assert_eq!((status, refused), (StatusCode::FORBIDDEN, true));
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let open = Hub::connect_with_ports(
        &agent,
        &state.0,
        &[],
        ExecPolicy::All,
        PortPolicy::Listed([port, closed].into()),
    )
    .await;
    let (status, _, echoed) = forward(&open, name, port, b"ping").await;
    assert_eq!((status, echoed.as_str()), (StatusCode::OK, "ping"));
    let (status, refused, body) = forward(&open, name, closed, b"").await;
    assert_eq!((status, refused), (StatusCode::SERVICE_UNAVAILABLE, true));
    assert_eq!(
        body,
        format!("dial tcp 127.0.0.1:{closed}: connect: connection refused")
    );

    // What this agent does not run is not found, on every path.
    for (method, path) in [
        ("GET", faros_tunnel::log_path("web-dev1-999999", "process", None)),
        (
            "POST",
            faros_tunnel::exec_path("web-dev1-999999", "process", Some("command=sh")),
        ),
        ("POST", faros_tunnel::portforward_path("web-dev1-999999", port)),
    ] {
        let (tx, response) = hub.open(method, &path).await;
        drop(tx);
        let refused = response.headers().contains_key(faros_tunnel::REFUSED_HEADER);
        assert_eq!((response.status(), refused), (StatusCode::NOT_FOUND, true), "{path}");
    }
    let (tx, response) = hub.open("GET", &faros_tunnel::exec_path(name, "process", None)).await;
    drop(tx);
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let (status, refused, body) = hub
        .get(&faros_tunnel::log_path("web-dev1-999999", "process", None))
        .await;
    assert_eq!((status, refused), (StatusCode::NOT_FOUND, true));
    assert!(body.contains("does not run on this device"), "{body}");

    // A stopped agent leaves its processes running, so the test unassigns its own first.
    agent.send(Assignment::Snapshot(vec![])).await;
    assert!(
        until(Duration::from_secs(20), || !alive(process.0)).await,
        "the process is stopped"
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_placement_answers_log_exec_and_port_forward() {
    let sandbox = Sandbox::new();
    sandbox.build_image("localhost/demo:1", "page one");
    let state = StateDir::new("streams-podman");
    let env = sandbox.env();
    let agent = Agent::start(&state.0, With::Podman(&env)).await;
    let name = "web-dev1-000002";
    // httpd on 8080 (published) and, in the background, on 8081 (not published).
    let template = WorkloadTemplate {
        containers: vec![Container {
            name: "web".into(),
            image: "localhost/demo:1".into(),
            command: vec!["/bin/sh".into()],
            args: vec![
                "-c".into(),
                "echo one; echo two; httpd -p 8081 -h /www; exec httpd -f -p 8080 -h /www".into(),
            ],
            ports: vec![ContainerPort {
                container_port: 8080,
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    agent
        .send(Assignment::Snapshot(vec![placement(name, 1, template)]))
        .await;
    agent.wait_for(name, "the container running", running).await;
    let hub = Hub::connect(&agent, &state.0, &env).await;

    let (status, _, body) = hub.get(&faros_tunnel::log_path(name, "web", Some("tailLines=1"))).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "two\n"));
    let (status, refused, _) = hub.get(&faros_tunnel::log_path(name, "nope", None)).await;
    assert_eq!((status, refused), (StatusCode::NOT_FOUND, true));

    let out = hub
        .exec(
            name,
            "web",
            &["sh", "-c", "cat"],
            false,
            &[stdin(b"hi\n"), close_stdin()],
            &[],
        )
        .await;
    assert_eq!(out.stdout, "hi\n");
    assert_eq!(out.exit, serde_json::json!({"exitCode": 0}));
    let out = hub.exec(name, "web", &["sh", "-c", "exit 3"], false, &[], &[]).await;
    assert_eq!(out.exit, serde_json::json!({"exitCode": 3}));
    let out = hub
        .exec(name, "web", &["sh", "-c", "echo out; echo err >&2"], false, &[], &[])
        .await;
    assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("out\n", "err\n"));
    let out = hub
        .exec(
            name,
            "web",
            &["/bin/busybox", "stty", "size"],
            true,
            &[resize(100, 30)],
            &[],
        )
        .await;
    assert!(out.stdout.contains("30 100"), "{out:?}");
    assert_eq!(out.exit, serde_json::json!({"exitCode": 0}));

    // Following the log sees a line the container writes later.
    let (_tx, response) = hub
        .open(
            "GET",
            &faros_tunnel::log_path(name, "web", Some("follow=true&tailLines=0")),
        )
        .await;
    let mut body = response.into_body();
    // `podman logs` attaches a moment after it starts: lines are written until one arrives.
    let mut seen = String::new();
    for _ in 0..20 {
        let out = hub
            .exec(name, "web", &["sh", "-c", "echo three > /proc/1/fd/1"], false, &[], &[])
            .await;
        assert_eq!(out.exit, serde_json::json!({"exitCode": 0}));
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while !seen.contains("three") {
                let Some(Ok(frame)) = body.frame().await else { break };
                if let Ok(data) = frame.into_data() {
                    seen.push_str(&String::from_utf8_lossy(&data));
                }
            }
        })
        .await;
        if seen.contains("three") {
            break;
        }
    }
    assert!(seen.starts_with("three\n"), "following saw {seen:?}");
    assert!(seen.lines().all(|l| l == "three"), "following saw {seen:?}");
    drop(body);

    // The published port, then the container's own address for one it does not publish.
    let request = b"GET / HTTP/1.0\r\nHost: test\r\n\r\n";
    let (status, _, answer) = forward(&hub, name, 8080, request).await;
    assert_eq!(status, StatusCode::OK);
    assert!(answer.ends_with("page one\n"), "{answer}");
    let (status, _, answer) = forward(&hub, name, 8081, request).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(answer.ends_with("page one\n"), "{answer}");
    let (status, refused, body) = forward(&hub, name, 8082, request).await;
    assert_eq!((status, refused), (StatusCode::SERVICE_UNAVAILABLE, true), "{body}");
    assert!(body.contains(":8082: connect: connection refused"), "{body}");
    agent.stop().await;
}
