//! Supervised processes: restart policies and exit codes, capped logs, and re-adoption by a
//! restarted agent that never mistakes a recycled pid for its process.

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::time::Duration;

use edge_agent::workloads::Assignment;
use faros_api::workloads::{ContainerPort, PlacementPhase, Process, RestartPolicy, WorkloadTemplate};
use faros_testkit::podman::BUSYBOX;

use super::{Agent, StateDir, With, alive, free_port, http_get, pid_of, placement, running, until};

const LOG_CAP: u64 = 4096;

fn process(args: &[&str], policy: RestartPolicy) -> WorkloadTemplate {
    WorkloadTemplate {
        process: Some(Process {
            path: BUSYBOX.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            ..Default::default()
        }),
        restart_policy: policy,
        ..Default::default()
    }
}

fn kill(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn httpd(port: i32, www: &Path) -> WorkloadTemplate {
    let mut t = process(
        &[
            "httpd",
            "-f",
            "-p",
            &format!("127.0.0.1:{port}"),
            "-h",
            www.to_str().unwrap(),
        ],
        RestartPolicy::Always,
    );
    if let Some(p) = t.process.as_mut() {
        p.ports = vec![ContainerPort {
            container_port: port,
            ..Default::default()
        }];
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_follow_their_restart_policy() {
    let state = StateDir::new("proc");
    let www = state.0.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "served\n").unwrap();
    let agent = Agent::start(&state.0, With::Processes { log_max_bytes: LOG_CAP }).await;
    let port = free_port();
    let (always, on_failure, succeeds, never) = (
        "always-dev1-000001",
        "onfailure-dev1-000001",
        "succeeds-dev1-000001",
        "never-dev1-000001",
    );
    agent
        .send(Assignment::Snapshot(vec![
            placement(always, 1, httpd(port, &www)),
            placement(
                on_failure,
                1,
                process(&["sh", "-c", "sleep 0.2; exit 3"], RestartPolicy::OnFailure),
            ),
            placement(succeeds, 1, process(&["sh", "-c", "exit 0"], RestartPolicy::OnFailure)),
            placement(never, 1, process(&["sh", "-c", "exit 3"], RestartPolicy::Never)),
        ]))
        .await;

    let status = agent.wait_for(always, "httpd running", running).await;
    assert_eq!((status.runtime.as_str(), status.endpoints[0].port), ("process", port));
    assert!(
        until(Duration::from_secs(20), || http_get(port).as_deref()
            == Some("served\n"))
        .await
    );
    let pid = pid_of(&status);
    kill(pid, "KILL");
    let status = agent
        .wait_for(always, "httpd restarted", |s| running(s) && s.restart_count == 1)
        .await;
    assert_ne!(pid_of(&status), pid);
    assert_eq!(status.containers[0].last_termination.as_ref().unwrap().exit_code, 137);
    assert!(
        until(Duration::from_secs(20), || http_get(port).as_deref()
            == Some("served\n"))
        .await
    );

    // OnFailure, failing: restarted again and again, with the exit code reported.
    let status = agent
        .wait_for(on_failure, "restarts of a failing process", |s| s.restart_count >= 2)
        .await;
    let last = status.containers[0].last_termination.clone().unwrap();
    assert_eq!((last.exit_code, last.reason.as_str()), (3, "Error"));

    // OnFailure, succeeding: done.
    let status = agent
        .wait_for(succeeds, "success", |s| s.phase == PlacementPhase::Succeeded)
        .await;
    assert_eq!(status.restart_count, 0);
    assert_eq!(status.containers[0].state.terminated.as_ref().unwrap().exit_code, 0);

    // Never: failed, with its exit code, never restarted.
    let status = agent
        .wait_for(never, "failure", |s| s.phase == PlacementPhase::Failed)
        .await;
    assert_eq!(status.message, "process exited with code 3");
    assert_eq!(status.containers[0].state.terminated.as_ref().unwrap().exit_code, 3);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(agent.status(never).unwrap().restart_count, 0);
    assert_eq!(agent.status(succeeds).unwrap().restart_count, 0);

    // Unassigned: stopped, its directory and logs gone.
    let pid = pid_of(&agent.status(always).unwrap());
    agent.send(Assignment::Snapshot(vec![])).await;
    assert!(
        until(Duration::from_secs(20), || !alive(pid)).await,
        "the process is stopped"
    );
    assert!(
        until(Duration::from_secs(20), || !state
            .0
            .join("workloads/placements")
            .join(always)
            .exists())
        .await
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_logs_are_capped() {
    let state = StateDir::new("proc-logs");
    let agent = Agent::start(&state.0, With::Processes { log_max_bytes: LOG_CAP }).await;
    let name = "chatty-dev1-000001";
    // About 1 KiB every 50 ms, on stdout and stderr.
    let line = "x".repeat(1000);
    let script = format!("while true; do echo {line}; echo {line} >&2; sleep 0.05; done");
    agent
        .send(Assignment::Snapshot(vec![placement(
            name,
            1,
            process(&["sh", "-c", &script], RestartPolicy::Always),
        )]))
        .await;
    agent.wait_for(name, "the writer running", running).await;
    let dir = state.0.join("workloads/placements").join(name);
    let size = |file: &str| std::fs::metadata(dir.join(file)).map(|m| m.len()).unwrap_or(0);
    assert!(
        until(Duration::from_secs(30), || size("stdout.log.1") > LOG_CAP
            && size("stderr.log.1") > LOG_CAP)
        .await,
        "both logs were rotated"
    );
    // Ten seconds of output is some 200 KiB per stream; what is kept stays near the cap:
    // the file, one previous file, and what one poll (200 ms) lets through.
    let slack = 8 * 1024;
    let mut checks = 0;
    while checks < 20 {
        for file in ["stdout.log", "stdout.log.1", "stderr.log", "stderr.log.1"] {
            assert!(size(file) <= LOG_CAP + slack, "{file} is {} bytes", size(file));
        }
        checks += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let kept = std::fs::read_to_string(dir.join("stdout.log.1")).unwrap();
    assert!(
        kept.lines().all(|l| l.is_empty() || l.chars().all(|c| c == 'x')),
        "only the process's output"
    );
    assert_eq!(agent.status(name).unwrap().restart_count, 0);
    agent.send(Assignment::Snapshot(vec![])).await;
    assert!(until(Duration::from_secs(20), || !dir.exists()).await);
    agent.stop().await;
}

/// Offline autonomy with processes: a restarted agent (no hub) re-adopts the running
/// process by pid and start time without restarting it, supervises it as before, and never
/// takes another process that got the pid for its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_are_readopted_after_an_agent_restart() {
    let state = StateDir::new("proc-adopt");
    let name = "sleeper-dev1-000001";
    let template = process(&["sleep", "1000"], RestartPolicy::Always);
    let first = Agent::start(&state.0, With::Processes { log_max_bytes: LOG_CAP }).await;
    first
        .send(Assignment::Snapshot(vec![placement(name, 1, template.clone())]))
        .await;
    let pid = pid_of(&first.wait_for(name, "the process running", running).await);
    first.stop().await;
    assert!(alive(pid), "stopping the agent leaves the process running");

    let second = Agent::start(&state.0, With::Processes { log_max_bytes: LOG_CAP }).await;
    let status = second.wait_for(name, "the process re-adopted", running).await;
    assert_eq!(
        (pid_of(&status), status.restart_count),
        (pid, 0),
        "adopted, not restarted"
    );
    // Supervised as before: it dies, it is restarted.
    kill(pid, "TERM");
    let status = second
        .wait_for(name, "a restart of the adopted process", |s| {
            running(s) && s.restart_count == 1
        })
        .await;
    let pid = pid_of(&status);
    second.stop().await;

    // While the agent is down its process ends and the pid goes to someone else: the record
    // is pointed at an unrelated process to stand for that.
    let mut stranger = std::process::Command::new(BUSYBOX)
        .args(["sleep", "1000"])
        .process_group(0)
        .spawn()
        .unwrap();
    kill(pid, "KILL");
    assert!(until(Duration::from_secs(10), || !alive(pid)).await);
    let record = state.0.join("workloads/placements").join(name).join("process.json");
    let mut value: serde_json::Value = serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    value["pid"] = stranger.id().into();
    std::fs::write(&record, serde_json::to_vec(&value).unwrap()).unwrap();

    let third = Agent::start(&state.0, With::Processes { log_max_bytes: LOG_CAP }).await;
    let status = third
        .wait_for(name, "a new process instead of the stranger", |s| {
            running(s) && pid_of(s) != stranger.id()
        })
        .await;
    assert_eq!(status.restart_count, 2);
    assert!(alive(stranger.id()), "the process that got the pid is left alone");
    // The hub lists the same placement again: nothing restarts.
    let pid = pid_of(&status);
    third
        .send(Assignment::Snapshot(vec![placement(name, 1, template)]))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let status = third.status(name).unwrap();
    assert_eq!((pid_of(&status), status.restart_count), (pid, 2));
    third.send(Assignment::Snapshot(vec![])).await;
    assert!(until(Duration::from_secs(20), || !alive(pid)).await);
    third.stop().await;
    let _ = stranger.kill();
    let _ = stranger.wait();
}
