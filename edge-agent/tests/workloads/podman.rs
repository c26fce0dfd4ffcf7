//! Containers: started with what the template says, restarted when they die, replaced when
//! the template changes, removed when unassigned, re-adopted by a restarted agent.

use std::time::Duration;

use edge_agent::workloads::Assignment;
use edge_agent::workloads::podman::container_name;
use faros_api::workloads::{
    Container, ContainerPort, EmptyDirVolume, EnvVar, PlacementPhase, Process, Quantity, ResourceList,
    ResourceRequirements, Volume, VolumeMount, WorkloadTemplate,
};
use faros_testkit::podman::Sandbox;

use super::{Agent, StateDir, With, http_get, placement, running, until};

fn web(image: &str, host_port: Option<i32>) -> WorkloadTemplate {
    WorkloadTemplate {
        containers: vec![Container {
            name: "web".into(),
            image: image.into(),
            command: vec!["/bin/httpd".into()],
            args: vec!["-f".into(), "-p".into(), "8080".into(), "-h".into(), "/www".into()],
            env: vec![EnvVar {
                name: "GREETING".into(),
                value: "hello".into(),
            }],
            ports: vec![ContainerPort {
                name: Some("http".into()),
                container_port: 8080,
                host_port,
                ..Default::default()
            }],
            volume_mounts: vec![VolumeMount {
                name: "scratch".into(),
                mount_path: "/scratch".into(),
                read_only: false,
            }],
            ..Default::default()
        }],
        volumes: vec![Volume {
            name: "scratch".into(),
            empty_dir: Some(EmptyDirVolume {}),
            host_path: None,
        }],
        ..Default::default()
    }
}

fn container_ids(sandbox: &Sandbox) -> Vec<String> {
    sandbox
        .podman_ok(&[
            "ps",
            "--all",
            "--quiet",
            "--no-trunc",
            "--filter",
            "label=edge.faros.sh/agent=default/dev1",
        ])
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_runs_restarts_replaces_and_removes_containers() {
    let sandbox = Sandbox::new();
    sandbox.build_image("localhost/demo:1", "one");
    sandbox.build_image("localhost/demo:2", "two");
    let state = StateDir::new("podman");
    let env = sandbox.env();
    let agent = Agent::start(&state.0, With::Podman(&env)).await;
    let name = "web-dev1-000001";
    agent
        .send(Assignment::Snapshot(vec![placement(
            name,
            1,
            web("localhost/demo:1", None),
        )]))
        .await;
    let status = agent.wait_for(name, "the container running", running).await;
    assert_eq!(status.runtime, "podman");
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(status.template_hash, web("localhost/demo:1", None).hash());
    // No host port asked: podman picked one, and the status says which.
    let endpoint = &status.endpoints[0];
    assert_eq!(
        (endpoint.container_port, endpoint.name.as_deref()),
        (8080, Some("http"))
    );
    assert_eq!(endpoint.url, format!("tcp://127.0.0.1:{}", endpoint.port));
    let mut body = None;
    assert!(
        until(Duration::from_secs(20), || {
            body = http_get(endpoint.port);
            body.is_some()
        })
        .await
    );
    assert_eq!(body.as_deref(), Some("one\n"));

    // Named and labelled so the agent finds it again.
    let container = container_name(name, "web");
    let labels = sandbox.inspect(&container, "{{json .Config.Labels}}").unwrap();
    for expected in [
        "\"edge.faros.sh/agent\":\"default/dev1\"",
        &format!("\"edge.faros.sh/placement\":\"{name}\""),
        "\"edge.faros.sh/container\":\"web\"",
    ] {
        assert!(labels.contains(expected), "{labels}");
    }
    assert!(
        sandbox
            .inspect(&container, "{{json .Config.Env}}")
            .unwrap()
            .contains("GREETING=hello")
    );
    let id = status.containers[0].container_id.clone();
    assert!(
        state
            .0
            .join("workloads/placements")
            .join(name)
            .join("volumes/scratch")
            .is_dir()
    );

    // Killed from outside: restarted by the agent, counted.
    sandbox.podman_ok(&["kill", &container]);
    let status = agent
        .wait_for(name, "a restart after the kill", |s| running(s) && s.restart_count == 1)
        .await;
    let web_status = &status.containers[0];
    assert_eq!(web_status.restart_count, 1);
    assert_eq!(web_status.last_termination.as_ref().unwrap().exit_code, 137);
    assert_eq!(web_status.container_id, id, "restarted, not recreated");

    // A new image (and limits): replaced, counts start over.
    let mut v2 = web("localhost/demo:2", None);
    v2.containers[0].resources = Some(ResourceRequirements {
        limits: ResourceList {
            cpu: Some(Quantity("500m".into())),
            memory: Some(Quantity("64Mi".into())),
        },
        ..Default::default()
    });
    agent
        .send(Assignment::Apply(Box::new(placement(name, 2, v2.clone()))))
        .await;
    let status = agent
        .wait_for(name, "the new image running", |s| {
            running(s) && s.template_hash == v2.hash() && s.observed_generation == Some(2)
        })
        .await;
    assert_ne!(status.containers[0].container_id, id);
    assert_eq!(status.restart_count, 0);
    assert_eq!(container_ids(&sandbox).len(), 1, "the old container is gone");
    let port = status.endpoints[0].port;
    assert!(until(Duration::from_secs(20), || http_get(port).as_deref() == Some("two\n")).await);
    let limits = sandbox
        .inspect(&container, "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}}")
        .unwrap();
    assert_eq!(limits, "67108864 500000000");

    // Unassigned: removed, with its emptyDir.
    agent.send(Assignment::Delete(Box::new(placement(name, 2, v2)))).await;
    assert!(until(Duration::from_secs(30), || container_ids(&sandbox).is_empty()).await);
    assert!(
        until(Duration::from_secs(10), || !state
            .0
            .join("workloads/placements")
            .join(name)
            .exists())
        .await
    );
    assert!(until(Duration::from_secs(10), || agent.summary.borrow().workloads.is_empty()).await);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_reports_what_cannot_run() {
    let sandbox = Sandbox::new();
    let state = StateDir::new("podman-bad");
    let env = sandbox.env();
    let agent = Agent::start(&state.0, With::Podman(&env)).await;
    let missing = "missing-dev1-000001";
    let unavailable = "proc-dev1-000001";
    let invalid = "bad-dev1-000001";
    let process = WorkloadTemplate {
        process: Some(Process {
            path: "/bin/sleep".into(),
            args: vec!["100".into()],
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut bad = web("localhost/demo:1", Some(70000));
    bad.containers[0].name = "Web".into();
    agent
        .send(Assignment::Snapshot(vec![
            placement(missing, 1, web("localhost/missing:1", None)),
            placement(unavailable, 1, process),
            placement(invalid, 1, bad),
        ]))
        .await;
    let status = agent
        .wait_for(missing, "a failed pull", |s| {
            s.reason == "ErrImagePull" || s.reason == "ImagePullBackOff"
        })
        .await;
    assert_eq!(status.phase, PlacementPhase::Pending);
    assert!(status.message.contains("localhost/missing:1"), "{}", status.message);
    let status = agent
        .wait_for(unavailable, "RuntimeUnavailable", |s| s.phase == PlacementPhase::Failed)
        .await;
    assert_eq!(status.reason, "RuntimeUnavailable");
    assert!(status.message.contains("process"), "{}", status.message);
    let status = agent
        .wait_for(invalid, "InvalidSpec", |s| s.phase == PlacementPhase::Failed)
        .await;
    assert_eq!(status.reason, "InvalidSpec");
    assert!(
        status.message.contains("spec.template.containers[0].name"),
        "{}",
        status.message
    );
    assert!(status.message.contains("hostPort"), "{}", status.message);
    assert!(container_ids(&sandbox).is_empty());
    agent.stop().await;
}

/// Offline autonomy with podman: with no hub at all, a restarted agent re-adopts the running
/// container from its state file without restarting it, still restarts it when it dies,
/// and a hub list with the same spec afterwards restarts nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_containers_are_readopted_after_an_agent_restart() {
    let sandbox = Sandbox::new();
    sandbox.build_image("localhost/demo:1", "one");
    let state = StateDir::new("podman-adopt");
    let env = sandbox.env();
    let port = super::free_port();
    let name = "web-dev1-000002";
    let template = web("localhost/demo:1", Some(port));
    let first = Agent::start(&state.0, With::Podman(&env)).await;
    first
        .send(Assignment::Snapshot(vec![placement(name, 1, template.clone())]))
        .await;
    let status = first.wait_for(name, "the container running", running).await;
    let id = status.containers[0].container_id.clone();
    let started = sandbox.inspect(&id, "{{.State.StartedAt}}").unwrap();
    assert_eq!(status.endpoints[0].port, port);
    sandbox.podman_ok(&["kill", &id]);
    first
        .wait_for(name, "a restart", |s| running(s) && s.restart_count == 1)
        .await;
    let started = {
        let after = sandbox.inspect(&id, "{{.State.StartedAt}}").unwrap();
        assert_ne!(after, started);
        after
    };
    first.stop().await;

    // The agent comes back without a hub: nothing is sent to it.
    let second = Agent::start(&state.0, With::Podman(&env)).await;
    let status = second.wait_for(name, "the container re-adopted", running).await;
    assert_eq!(status.containers[0].container_id, id);
    assert_eq!(status.restart_count, 1, "the restart count survives the agent");
    assert_eq!(
        sandbox.inspect(&id, "{{.State.StartedAt}}").unwrap(),
        started,
        "not restarted"
    );
    assert!(until(Duration::from_secs(10), || http_get(port).as_deref() == Some("one\n")).await);

    // Still offline: it dies, it is restarted.
    sandbox.podman_ok(&["kill", &id]);
    second
        .wait_for(name, "a restart while offline", |s| running(s) && s.restart_count == 2)
        .await;
    let started = sandbox.inspect(&id, "{{.State.StartedAt}}").unwrap();

    // The hub is back and lists the same placement: nothing restarts.
    second
        .send(Assignment::Snapshot(vec![placement(name, 1, template)]))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status = second.status(name).unwrap();
    assert!(running(&status));
    assert_eq!(
        (status.containers[0].container_id.as_str(), status.restart_count),
        (id.as_str(), 2)
    );
    assert_eq!(
        sandbox.inspect(&id, "{{.State.StartedAt}}").unwrap(),
        started,
        "not restarted"
    );

    // And a hub list without it removes it.
    second.send(Assignment::Snapshot(vec![])).await;
    assert!(until(Duration::from_secs(30), || container_ids(&sandbox).is_empty()).await);
    second.stop().await;
}

/// Where podman cannot apply cpu and memory limits (no cgroup controllers for them), the
/// container runs without them and the status says so, instead of never running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_runs_without_limits_it_cannot_apply() {
    let sandbox = Sandbox::new();
    sandbox.build_image("localhost/demo:1", "one");
    let state = StateDir::new("podman-limits");
    // Podman as on such a device: it refuses any memory limit.
    let wrapper = state.0.join("podman-without-cgroups");
    std::fs::write(
        &wrapper,
        "#!/bin/sh\nfor a in \"$@\"; do case \"$a\" in --memory=*) echo 'Error: crun: opening file `memory.max` for writing: No such file or directory: OCI runtime attempted to invoke a command that was not found: cgroup' >&2; exit 126;; esac; done\nexec podman \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let env = sandbox.env();
    let agent = Agent::start(&state.0, With::PodmanAt(&wrapper, &env)).await;
    let name = "limited-dev1-000001";
    let mut template = web("localhost/demo:1", None);
    template.containers[0].resources = Some(ResourceRequirements {
        limits: ResourceList {
            cpu: None,
            memory: Some(Quantity("64Mi".into())),
        },
        ..Default::default()
    });
    agent
        .send(Assignment::Snapshot(vec![placement(name, 1, template)]))
        .await;
    let status = agent.wait_for(name, "the container running", running).await;
    assert!(status.message.contains("limits are not enforced"), "{}", status.message);
    let id = &status.containers[0].container_id;
    assert_eq!(sandbox.inspect(id, "{{.HostConfig.Memory}}").unwrap(), "0");
    agent.send(Assignment::Snapshot(vec![])).await;
    assert!(until(Duration::from_secs(30), || container_ids(&sandbox).is_empty()).await);
    agent.stop().await;
}

/// `kubectl logs` of a container: its output, the last lines asked for, cut at a byte
/// limit, and followed as it grows.
#[tokio::test]
async fn container_logs() {
    use edge_agent::workloads::logs::{LogOptions, LogSource, open};
    use edge_agent::workloads::podman::PodmanConfig;
    let sandbox = Sandbox::new();
    sandbox.build_image("localhost/demo:1", "one");
    let name = container_name("logs-p1", "app");
    sandbox.podman_ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "localhost/demo:1",
        "/bin/sh",
        "-c",
        "echo a; echo b; echo c; while true; do sleep 1; echo tick; done",
    ]);
    let config = PodmanConfig {
        binary: "podman".into(),
        env: sandbox.env(),
        agent: super::agent_ref(),
        stop_grace: Duration::from_secs(1),
        poll_interval: Duration::from_millis(300),
    };
    let source = || LogSource::Podman {
        config: &config,
        placement: "logs-p1",
        container: "app",
    };
    async fn text(mut rx: tokio::sync::mpsc::Receiver<bytes::Bytes>) -> String {
        let mut out = Vec::new();
        while let Some(chunk) = rx.recv().await {
            out.extend_from_slice(&chunk);
        }
        String::from_utf8(out).unwrap()
    }
    let all = text(open(source(), &LogOptions::default()).unwrap()).await;
    assert!(all.starts_with("a\nb\nc\n"), "{all:?}");
    let limited = LogOptions {
        limit_bytes: Some(3),
        ..Default::default()
    };
    assert_eq!(text(open(source(), &limited).unwrap()).await, "a\nb");
    let stamped = LogOptions {
        timestamps: true,
        tail_lines: Some(1),
        ..Default::default()
    };
    let line = text(open(source(), &stamped).unwrap()).await;
    let (stamp, rest) = line.split_once(' ').unwrap();
    assert!(stamp.parse::<jiff::Timestamp>().is_ok(), "{line:?}");
    assert!(rest.starts_with("c") || rest.starts_with("tick"), "{line:?}");
    // Followed: new lines keep arriving.
    let follow = LogOptions {
        follow: true,
        tail_lines: Some(0),
        ..Default::default()
    };
    let mut rx = open(source(), &follow).unwrap();
    let chunk = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&chunk).contains("tick"), "{chunk:?}");
    // Asked of the process runtime's options only a container has: said so.
    let previous = LogOptions {
        previous: true,
        ..Default::default()
    };
    assert!(open(source(), &previous).unwrap_err().bad_request);
}
