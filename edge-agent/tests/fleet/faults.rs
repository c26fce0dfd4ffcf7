//! Reaching instances when things go wrong or get busy: a hub restart in the middle of
//! `kubectl logs -f`, a hundred exec sessions at once, a reader that stops reading next to
//! other sessions of the same device.

use std::io::BufRead as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{faros_ok, placements, running, start_device};
use crate::{Hub, eventually, kubectl, kubectl_ok};

fn kubectl_command(tenant: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(faros_testkit::kubectl::binary("1.32").unwrap());
    command.args(args).env("KUBECONFIG", tenant).stdin(Stdio::null());
    command
}

fn connected(tenant: &Path, agent: &str) -> bool {
    let out = kubectl(
        tenant,
        &[
            "get",
            "agent",
            agent,
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Connected\")].status}",
        ],
    );
    String::from_utf8_lossy(&out.stdout) == "True"
}

#[test]
fn instances_under_faults_and_load() {
    let mut hub = Hub::start();
    let (tenant, join) = crate::devices_workspace(&hub);
    // A device without containers that lets commands run on it.
    let _dev = start_device(&hub, &join, "dev1", false, &["--allow-exec", "all"]);
    eventually("dev1 connected", Duration::from_secs(60), || connected(&tenant, "dev1"));
    kubectl_ok(&tenant, &["label", "agent", "dev1", "site=lab"]);
    faros_ok(
        &tenant,
        &[
            "deploy",
            "clock",
            "--process",
            "/bin/sh",
            "--selector",
            "site=lab",
            "--",
            "-c",
            "while true; do echo tick; sleep 0.2; done",
        ],
    );
    eventually("clock running", Duration::from_secs(60), || {
        placements(&tenant, "clock").first().is_some_and(|(_, p)| running(p))
    });
    let pod = placements(&tenant, "clock").remove(0).1["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();

    // A hundred commands at once on one device, each with its own answer.
    let sessions: Vec<_> = (0..100)
        .map(|i| {
            kubectl_command(&tenant, &["exec", &pod, "--", "/bin/echo", &format!("session-{i}")])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, session) in sessions.into_iter().enumerate() {
        let out = session.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "session {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("session-{i}\n"),
            "session {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // A reader that stops reading: its command is held back by flow control, the device's
    // other sessions are not.
    let mut stalled = kubectl_command(
        &tenant,
        &["exec", &pod, "--", "/bin/sh", "-c", "yes flood | head -c 50000000"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    for i in 0..5 {
        let out = kubectl(&tenant, &["exec", &pod, "--", "/bin/echo", &format!("beside-{i}")]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("beside-{i}\n"));
    }
    let _ = stalled.kill();
    let _ = stalled.wait();

    // The hub restarts under a following `kubectl logs -f`: kubectl ends instead of hanging,
    // the agent comes back, and new requests work.
    let mut follow = kubectl_command(&tenant, &["logs", "-f", &pod, "--tail", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(follow.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().and_then(Result::ok).as_deref(), Some("tick"));
    hub.restart();
    // Whatever was still in flight, the stream ends.
    for _ in lines.by_ref() {}
    eventually("kubectl logs -f ended", Duration::from_secs(30), || {
        follow.try_wait().unwrap().is_some()
    });
    eventually("dev1 connected again", Duration::from_secs(60), || {
        connected(&tenant, "dev1")
    });
    eventually("logs again after the restart", Duration::from_secs(30), || {
        let out = kubectl(&tenant, &["logs", &pod, "--tail", "1"]);
        String::from_utf8_lossy(&out.stdout) == "tick\n"
    });
}
