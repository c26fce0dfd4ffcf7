//! Two hub replicas on one etcd, one identity: a device's tunnel lands on replica A, and
//! replica B serves the device's live state, its proxy, a workload's logs and exec by
//! relaying to A. When A goes, B answers at once that the device is not connected.

use std::path::Path;
use std::time::{Duration, Instant};

use faros_testkit::etcd::Etcd;

use super::super::{AgentProcess, Hub, devices_workspace, eventually, get_json, kubectl, kubectl_ok, wait_exists};
use super::{AGENTS, connected, device_server, kubectl_faros, raw};

fn pod_of(tenant: &Path, workload: &str) -> Option<String> {
    let pods = get_json(tenant, &["pods", "-l", &format!("edge.faros.sh/workload={workload}")]);
    pods["items"]
        .as_array()?
        .iter()
        .find(|p| p["status"]["phase"] == "Running")?["metadata"]["name"]
        .as_str()
        .map(str::to_string)
}

#[test]
fn a_replica_without_the_tunnel_relays_to_the_one_with_it() {
    let etcd = Etcd::start();
    let pki = std::env::temp_dir().join(format!(
        "faros-relay-pki-{}-{}",
        std::process::id(),
        super::super::nanos()
    ));
    let mut args = etcd.hub_args("/relay", Some(&pki));
    args.extend(["--peer-advertise-address".to_string(), "127.0.0.1".to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut a = Hub::start_with(&args);
    let b = Hub::start_with(&args);

    let (tenant_a, join) = devices_workspace(&a);
    let tenant_b = b.workspace_kubeconfig("root:tenant1");
    let port = device_server();
    // The device's kubeconfig names replica A only: its tunnel lands there.
    let _agent = AgentProcess::start_with(
        &a.dir,
        &join,
        "dev1",
        &a.dir.join("state-dev1"),
        &[
            "--runtimes",
            "process",
            "--allow-exec",
            "all",
            "--allow-ports",
            &port.to_string(),
            "--poll-interval-ms",
            "300",
        ],
    );
    wait_exists(&tenant_a, "dev1");
    eventually("dev1 Connected, as replica B sees it", Duration::from_secs(30), || {
        connected(&tenant_b, "dev1").0 == "True"
    });

    // Live state and the device's HTTP port, through B.
    let (ok, live, err) = raw(&tenant_b, &format!("{AGENTS}/dev1/live"));
    assert!(ok, "live through replica B: {err}");
    let live: serde_json::Value = serde_json::from_str(&live).unwrap();
    assert!(live["uptimeSeconds"].as_u64().is_some(), "{live}");
    let (ok, body, err) = raw(&tenant_b, &format!("{AGENTS}/dev1/proxy/{port}/through-b?x=1"));
    assert!(ok, "proxy through replica B: {err}");
    assert!(body.contains("device says: GET /through-b?x=1"), "{body}");

    // A workload's logs and exec, through B, with stock kubectl.
    kubectl_ok(&tenant_a, &["label", "agent", "dev1", "site=relay"]);
    let out = kubectl_faros(
        &tenant_a,
        &[
            "deploy",
            "ticker",
            "--process",
            "/bin/sh",
            "--selector",
            "site=relay",
            "--",
            "-c",
            "i=0; while :; do echo tick $i; i=$((i+1)); sleep 1; done",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut pod = None;
    eventually("the ticker running", Duration::from_secs(60), || {
        pod = pod_of(&tenant_b, "ticker");
        pod.is_some()
    });
    let pod = pod.unwrap();
    eventually("ticks through replica B", Duration::from_secs(30), || {
        let out = kubectl(&tenant_b, &["logs", &pod, "--tail", "5"]);
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("tick")
    });
    let out = kubectl(
        &tenant_b,
        &["exec", &pod, "--", "/bin/sh", "-c", "echo relayed; exit 4"],
    );
    assert_eq!(out.status.code(), Some(4), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("relayed"));
    let out = faros_testkit::kubectl::run(
        faros_testkit::kubectl::BASELINE,
        &tenant_b,
        &b.dir,
        &["exec", "-i", &pod, "--", "cat"],
        Some("typed through B\n"),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "typed through B\n");

    // Replica A stops: B does not relay to a replica that is gone, and says so at once.
    a.hub.stop();
    let began = Instant::now();
    eventually(
        "B answering that dev1 is not connected",
        Duration::from_secs(20),
        || {
            let (ok, _, err) = raw(&tenant_b, &format!("{AGENTS}/dev1/live"));
            !ok && err.contains("not connected")
        },
    );
    let (_, _, err) = raw(&tenant_b, &format!("{AGENTS}/dev1/live"));
    assert!(began.elapsed() < Duration::from_secs(20), "{err}");
    let _ = std::fs::remove_dir_all(&pki);
}
