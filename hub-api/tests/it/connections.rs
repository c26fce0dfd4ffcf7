//! What the hub does with its clients' connections between their requests: an HTTP/1.1
//! connection (kube-rs, the Python client) that stays idle gives its HTTP buffers back and is
//! served again, on the same connection, when the client's next request comes; a connection
//! of either protocol idle for 90 s is closed, and its client opens another.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};

use crate::common::{HUB, TestHub, kubectl_binary};

/// The value of `faros_http_connections` for `protocol` and `state`, read with kubectl,
/// whose own connection is HTTP/2.
fn connections(hub: &TestHub, protocol: &str, state: &str) -> i64 {
    let metrics = hub.kubectl_ok("1.33", &["get", "--raw", "/metrics"]);
    let series = format!("faros_http_connections{{protocol=\"{protocol}\",state=\"{state}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&series))
        .unwrap_or_else(|| panic!("no {series} in /metrics"))
        .trim()
        .parse()
        .unwrap()
}

/// HTTP/1.1 connections (active, idle).
fn http1(hub: &TestHub) -> (i64, i64) {
    (
        connections(hub, "HTTP/1.1", "active"),
        connections(hub, "HTTP/1.1", "idle"),
    )
}

#[tokio::test]
async fn an_idle_http1_connection_is_held_without_buffers_and_serves_the_next_request() {
    let hub = TestHub::start(HUB);
    // kubectl speaks HTTP/2: nothing else has an HTTP/1.1 connection open.
    assert_eq!(http1(&hub), (0, 0));
    let client = hub.client().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());

    // A watch open across several idle periods is in use the whole time.
    let mut watch = namespaces
        .watch(&WatchParams::default().timeout(60), "0")
        .await
        .unwrap()
        .boxed();
    let before = client.apiserver_version().await.unwrap();

    // kube-rs opened two connections. The one that served the version goes idle; the
    // watch's stays active.
    assert!(
        faros_testkit::kubectl::eventually(Duration::from_secs(20), || http1(&hub) == (1, 1)),
        "HTTP/1.1 connections (active, idle): {:?}",
        http1(&hub)
    );

    // The idle connection serves the next requests, and stays open for them: kube-rs opens
    // no other.
    for _ in 0..3 {
        assert_eq!(
            client.apiserver_version().await.unwrap().git_version,
            before.git_version
        );
    }
    let (active, idle) = http1(&hub);
    assert_eq!(
        active + idle,
        2,
        "HTTP/1.1 connections (active, idle): {:?}",
        (active, idle)
    );
    let created = namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": "after-idle"}})).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(created.metadata.name.as_deref(), Some("after-idle"));

    // The watch, quiet until now, sees the namespace.
    let seen = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(event) = watch.try_next().await.unwrap() {
            if let WatchEvent::Added(ns) = event
                && ns.metadata.name.as_deref() == Some("after-idle")
            {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(seen, Ok(true), "the watch delivered the new namespace");
}

/// Kills the process on drop.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn idle_connections_are_closed_and_their_clients_open_new_ones() {
    let hub = TestHub::start(HUB);
    // kube-rs, over HTTP/1.1.
    let client = hub.client().await;
    let version = client.apiserver_version().await.unwrap().git_version;
    // client-go, over HTTP/2: `kubectl proxy` keeps one connection to the hub for everything
    // it forwards.
    let port = faros_testkit::etcd::free_port();
    let _proxy = Killed(
        Command::new(kubectl_binary("1.33"))
            .args(["proxy", "--port", &port.to_string(), "--kubeconfig"])
            .arg(hub.kubeconfig())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("kubectl proxy starts"),
    );
    let through_proxy = || faros_testkit::http::get(port, "/version", Duration::from_secs(10));
    assert!(
        faros_testkit::kubectl::eventually(Duration::from_secs(20), || through_proxy().contains(&version)),
        "kubectl proxy answers"
    );
    // Open: kube-rs' connection, the proxy's, and the one of the kubectl that reads the
    // metrics.
    assert_eq!(connections(&hub, "HTTP/2", "active"), 2);
    let (active, idle) = http1(&hub);
    assert_eq!(active + idle, 1);

    // Both go quiet. Reading the metrics every few seconds, with a new kubectl each time,
    // keeps only that kubectl's own connection open.
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        let open = (http1(&hub), connections(&hub, "HTTP/2", "active"));
        if open == ((0, 0), 1) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still open (HTTP/1.1 active and idle, HTTP/2): {open:?}"
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
    }

    // Both clients carry on, on new connections.
    assert_eq!(client.apiserver_version().await.unwrap().git_version, version);
    assert!(through_proxy().contains(&version), "kubectl proxy answers again");
    assert_eq!(connections(&hub, "HTTP/2", "active"), 2);
}
