//! The command line of the real `edge-agent` binary: where a flag's value comes from (flag,
//! then `FAROS_AGENT_*`, then the `--config` file, then the default), each level seen in the
//! Agent the started agent reports to a real hub; `--version` and the bash completion script.

mod join;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{AGENT, Hub, KillOnDrop, create, create_workspace, eventually, get_json, kubectl, nanos};

/// Starts `edge-agent ARGS` with `env` and the tenant's admin kubeconfig, waits until its
/// Agent `name` in `namespace` reports Ready, and stops it; returns the Agent.
fn run_until_ready(
    hub: &Hub,
    tenant: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    namespace: &str,
) -> serde_json::Value {
    let state = hub.dir.join(format!("state-{}", nanos()));
    let log = hub.dir.join(format!("agent-{}.log", nanos()));
    let child = Command::new(AGENT)
        .arg("--kubeconfig")
        .arg(tenant)
        .arg("--state-dir")
        .arg(&state)
        .args(args)
        .env_remove("FAROS_AGENT_NAMESPACE")
        .env_remove("FAROS_AGENT_CONFIG")
        .envs(env.iter().copied())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start edge-agent");
    let _child = KillOnDrop(child);
    let ready = faros_testkit::eventually(Duration::from_secs(30), || {
        let out = kubectl(tenant, &["get", "agent", "cfg", "-n", namespace, "-o", "json"]);
        out.status.success() && {
            let agent: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            super::ready_of(&agent).0 == "True"
        }
    });
    assert!(
        ready,
        "the agent started with {args:?} and {env:?} did not report Ready in namespace {namespace}:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    get_json(tenant, &["agent", "cfg", "-n", namespace])
}

#[test]
fn flags_win_over_the_environment_which_wins_over_the_config_file() {
    let hub = Hub::start();
    create_workspace(&hub.admin(), "cfg", "faros");
    let tenant = hub.workspace_kubeconfig("root:cfg");
    for ns in ["ns-file", "ns-env", "ns-flag"] {
        create(
            &tenant,
            &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"),
        );
    }
    eventually("agents served in the workspace", Duration::from_secs(30), || {
        kubectl(&tenant, &["get", "agents"]).status.success()
    });
    let config = hub.dir.join("agent.yaml");
    std::fs::write(
        &config,
        "name: cfg\nnamespace: ns-file\nruntimes: [process]\nreserved-cpu: 250m\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();

    // The file alone: its name, namespace, list of runtimes and quantity.
    let agent = run_until_ready(&hub, &tenant, &["--config", config], &[], "ns-file");
    assert_eq!(agent["status"]["runtimes"], serde_json::json!(["process"]), "{agent}");
    let capacity = agent["status"]["capacity"]["cpu"].as_str().unwrap().to_string();
    let allocatable = agent["status"]["allocatable"]["cpu"].as_str().unwrap().to_string();
    assert_ne!(
        capacity, allocatable,
        "reserved-cpu from the file is kept back: {agent}"
    );
    // The environment over the file, itself named in the environment.
    let env = [("FAROS_AGENT_CONFIG", config), ("FAROS_AGENT_NAMESPACE", "ns-env")];
    run_until_ready(&hub, &tenant, &[], &env, "ns-env");
    // The flag over both.
    run_until_ready(&hub, &tenant, &["--namespace", "ns-flag"], &env, "ns-flag");
    // Neither: the default (the kubeconfig names no namespace: `default`).
    run_until_ready(&hub, &tenant, &["--name", "cfg"], &[], "default");

    // An unknown key stops the agent before it starts, naming the key.
    let bad = hub.dir.join("bad.yaml");
    std::fs::write(&bad, "nmae: cfg\n").unwrap();
    let out = Command::new(AGENT).arg("--config").arg(&bad).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("unknown key \"nmae\": `edge-agent` has no flag --nmae"),
        "{stderr}"
    );
}

#[test]
fn version_and_bash_completion() {
    let out = Command::new(AGENT).arg("--version").output().unwrap();
    let line = String::from_utf8(out.stdout).unwrap();
    assert!(
        line.starts_with(&format!("edge-agent {} (commit ", env!("CARGO_PKG_VERSION"))) && line.contains(", built "),
        "{line}"
    );
    let script = Command::new(AGENT).args(["completion", "bash"]).output().unwrap();
    assert!(script.status.success());
    let file = std::env::temp_dir().join(format!("edge-agent-{}.bash", nanos()));
    std::fs::write(&file, &script.stdout).unwrap();
    let complete = |words: &[&str]| faros_testkit::bash_complete(&file, words);
    assert_eq!(complete(&["edge-agent", "--allow-e"]), ["--allow-exec"]);
    assert_eq!(complete(&["edge-agent", "simulate", "--tun"]), ["--tunnels"]);
    std::fs::remove_file(&file).unwrap();
}
