//! The device tunnel end to end: real agents dial the real hub; stock kubectl reaches a
//! device-local HTTP server through `agents/<name>/proxy` and the device's live state
//! through `agents/<name>/live`; `Connected` follows the session through an agent kill, an
//! agent restart and a hub restart; one device's credential reaches nothing of another's;
//! garbage on a tunnel does not hurt the hub.

mod replicas;

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{AgentProcess, Hub, assert_reporting, eventually, get_json, kubectl, kubectl_ok, wait_exists};

const AGENTS: &str = "/clusters/root:tenant1/apis/edge.faros.sh/v1alpha1/namespaces/default/agents";

/// A device-local HTTP server on 127.0.0.1 that answers every request with its request line.
fn device_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 64 * 1024 {
                    match stream.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let text = String::from_utf8_lossy(&head);
                let line = text.lines().next().unwrap_or_default();
                let body = format!("device says: {line}\n");
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    port
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn connected(kubeconfig: &Path, name: &str) -> (String, String) {
    let out = kubectl(kubeconfig, &["get", "agent", name, "-o", "json"]);
    if !out.status.success() {
        return Default::default();
    }
    let agent: Value = serde_json::from_slice(&out.stdout).unwrap();
    agent["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Connected")
        .map(|c| {
            let field = |k: &str| c[k].as_str().unwrap_or_default().to_string();
            (field("status"), field("reason"))
        })
        .unwrap_or_default()
}

fn raw(kubeconfig: &Path, path: &str) -> (bool, String, String) {
    let out = kubectl(kubeconfig, &["get", "--raw", path]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn refused(kubeconfig: &Path, path: &str, expect: &[&str]) {
    let (ok, stdout, stderr) = raw(kubeconfig, path);
    assert!(!ok, "{path} succeeded: {stdout}");
    for e in expect {
        assert!(stderr.contains(e), "{path}: expected {e:?} in: {stderr}");
    }
}

fn kubectl_faros(kubeconfig: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(faros_testkit::workspace_binary("kubectl-faros"))
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .expect("run kubectl-faros")
}

/// Opens a TLS connection to the hub as `token` and starts a tunnel stream of `agent`
/// (`query`: "" for the control stream, `?session=<n>` for an accepted one) over HTTP/1.1
/// with a chunked body; returns the status line and the still-open connection.
fn tunnel_stream(
    hub: &Hub,
    agent: &str,
    query: &str,
    token: &str,
) -> (
    String,
    rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>,
) {
    let config = faros_testkit::tls::http1_client_trusting(&super::decode_b64(&hub.ca_data()));
    let url: http::Uri = hub.hub.url().parse().unwrap();
    let host = url.host().unwrap().to_string();
    let port = url.port_u16().unwrap();
    let tcp = std::net::TcpStream::connect((host.as_str(), port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let name = rustls::pki_types::ServerName::try_from(host.clone()).unwrap();
    let connection = rustls::ClientConnection::new(config, name).unwrap();
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    // A refused (or oversized) request may be cut off while it is written.
    let _ = write!(
        tls,
        "POST {AGENTS}/{agent}/tunnel{query} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n\
         faros-tunnel: v2\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let _ = tls.flush();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tls.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    let status = String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    (status, tls)
}

#[test]
fn device_tunnel_proxy_live_and_connected() {
    let mut hub = Hub::start();
    let (tenant, join) = crate::devices_workspace(&hub);
    let web = device_server();
    let closed = closed_port();
    let allow = format!("{web},{closed}");
    let state1 = hub.dir.join("state-dev1");
    let state2 = hub.dir.join("state-dev2");
    let dev1_args = ["--runtimes", "process", "--allow-ports", allow.as_str()];
    let mut dev1 = AgentProcess::start_with(&hub.dir, &join, "dev1", &state1, &dev1_args);
    let _dev2 = AgentProcess::start_with(&hub.dir, &join, "dev2", &state2, &["--runtimes", "process"]);
    assert_reporting(&tenant, "dev1");
    wait_exists(&tenant, "dev2");
    for name in ["dev1", "dev2"] {
        eventually(&format!("{name} Connected"), Duration::from_secs(30), || {
            connected(&tenant, name) == ("True".into(), "TunnelConnected".into())
        });
    }

    // The device-local server through the hub, with its path and query.
    let (ok, body, stderr) = raw(&tenant, &format!("{AGENTS}/dev1/proxy/{web}/hello/there?x=1"));
    assert!(ok, "{stderr}\n{}", dev1.log());
    assert_eq!(body.trim(), "device says: GET /hello/there?x=1 HTTP/1.1");
    let (ok, body, _) = raw(&tenant, &format!("{AGENTS}/dev1/proxy/{web}/"));
    assert!(ok && body.contains("GET / HTTP/1.1"), "{body}");
    // A port the device does not open, a closed port, a port that is not one.
    refused(
        &tenant,
        &format!("{AGENTS}/dev2/proxy/{web}/"),
        &["Forbidden", "not open to the proxy"],
    );
    refused(
        &tenant,
        &format!("{AGENTS}/dev1/proxy/{closed}/"),
        &["ServiceUnavailable", "cannot reach"],
    );
    refused(
        &tenant,
        &format!("{AGENTS}/dev1/proxy/http/"),
        &["BadRequest", "device port"],
    );
    refused(&tenant, &format!("{AGENTS}/nobody/live"), &["NotFound"]);

    // Live state, from the device now.
    let (ok, body, stderr) = raw(&tenant, &format!("{AGENTS}/dev1/live"));
    assert!(ok, "{stderr}");
    let live: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(live["kind"], "AgentLiveState", "{live}");
    assert!(live["cpu"]["cpus"].as_u64().unwrap() >= 1, "{live}");
    assert!(live["memory"]["totalBytes"].as_u64().unwrap() > 0, "{live}");
    assert!(live["uptimeSeconds"].as_u64().unwrap() > 0, "{live}");
    assert!(!live["disks"].as_array().unwrap().is_empty(), "{live}");
    assert!(!live["network"].as_array().unwrap().is_empty(), "{live}");
    let top = kubectl_faros(&tenant, &["agent", "top", "dev1"]);
    let text = String::from_utf8_lossy(&top.stdout);
    assert!(top.status.success(), "{}", String::from_utf8_lossy(&top.stderr));
    for word in ["CPU", "MEMORY", "DISK", "INTERFACE"] {
        assert!(text.contains(word), "{text}");
    }
    let top = kubectl_faros(&tenant, &["agent", "top", "dev1", "-o", "json"]);
    let json: Value = serde_json::from_slice(&top.stdout).unwrap();
    assert_eq!(json["kind"], "AgentLiveState");

    // The agent's own status writes keep the hub's condition.
    kubectl_ok(
        &tenant,
        &[
            "patch",
            "agent",
            "dev1",
            "--type=merge",
            "-p",
            r#"{"spec":{"labels":{"zone":"a"}}}"#,
        ],
    );
    eventually("dev1 reports the spec change", Duration::from_secs(30), || {
        get_json(&tenant, &["agent", "dev1"])["status"]["labels"]["zone"] == "a"
    });
    assert_eq!(connected(&tenant, "dev1").0, "True");

    // One device's credential opens no other device's tunnel, proxy or live state.
    let dev2_credential = state2.join("agent.kubeconfig");
    for path in [
        format!("{AGENTS}/dev1/proxy/{web}/"),
        format!("{AGENTS}/dev1/live"),
        format!("{AGENTS}/dev1/tunnel"),
    ] {
        refused(&dev2_credential, &path, &["Forbidden"]);
    }
    let dev2_token = std::fs::read_to_string(state2.join("token")).unwrap();
    let (status, _) = tunnel_stream(&hub, "dev1", "", dev2_token.trim());
    assert!(status.contains(" 403 "), "{status}");
    // A tunnel request that is not of the protocol is a clear 400.
    refused(
        &tenant,
        &format!("{AGENTS}/dev1/tunnel"),
        &["BadRequest", "faros-tunnel: v2"],
    );

    // Streams that take up no waiting request, by number or by garbage: refused.
    let dev1_token = std::fs::read_to_string(state1.join("token")).unwrap();
    let (status, _) = tunnel_stream(&hub, "dev1", "?session=987654321", dev1_token.trim());
    assert!(status.contains(" 404 "), "{status}");
    let (status, _) = tunnel_stream(&hub, "dev1", "?session=x", dev1_token.trim());
    assert!(status.contains(" 400 "), "{status}");
    // Garbage on a control stream (with dev1's own token, which replaces its session): the
    // hub drops it, keeps serving, and the agent comes back.
    let (status, mut tls) = tunnel_stream(&hub, "dev1", "", dev1_token.trim());
    assert!(status.contains(" 200 "), "{status}");
    let _ = tls.write_all(&[0xffu8; 16 * 1024]);
    let _ = tls.flush();
    drop(tls);
    // An oversized request head: refused, nothing else happens.
    let (status, _) = tunnel_stream(&hub, &"x".repeat(600_000), "", dev1_token.trim());
    assert!(!status.contains(" 200 "), "{status}");
    eventually("dev1 reconnected after the garbage", Duration::from_secs(30), || {
        raw(&tenant, &format!("{AGENTS}/dev1/proxy/{web}/again")).0
    });

    // Killed: Connected=False within seconds, and requests fail fast with a clear Status.
    dev1.child.kill().unwrap();
    dev1.child.wait().unwrap();
    let killed = Instant::now();
    eventually("dev1 Connected=False", Duration::from_secs(15), || {
        connected(&tenant, "dev1") == ("False".into(), "TunnelDisconnected".into())
    });
    eprintln!("Connected=False {:?} after the kill", killed.elapsed());
    refused(
        &tenant,
        &format!("{AGENTS}/dev1/proxy/{web}/"),
        &["ServiceUnavailable", "default/dev1 is not connected"],
    );
    refused(
        &tenant,
        &format!("{AGENTS}/dev1/live"),
        &["ServiceUnavailable", "default/dev1 is not connected"],
    );

    // Restarted: connected again.
    let mut dev1 = AgentProcess::start_with(&hub.dir, &join, "dev1", &state1, &dev1_args);
    eventually("dev1 Connected again", Duration::from_secs(30), || {
        connected(&tenant, "dev1").0 == "True"
    });
    assert!(raw(&tenant, &format!("{AGENTS}/dev1/live")).0);

    // The hub restarts: both agents reconnect, and the device is reachable again.
    hub.restart();
    eventually("dev1 reachable after the hub restart", Duration::from_secs(60), || {
        raw(&tenant, &format!("{AGENTS}/dev1/proxy/{web}/back")).0
    });
    assert_eq!(connected(&tenant, "dev1").0, "True");
    eventually("dev2 reachable after the hub restart", Duration::from_secs(60), || {
        raw(&tenant, &format!("{AGENTS}/dev2/live")).0
    });
    assert!(dev1.running(), "{}", dev1.log());
    assert!(!dev1.log().contains("panicked"), "{}", dev1.log());
}
