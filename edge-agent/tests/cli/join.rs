//! The one-line device join: `kubectl faros agent generate --print-join-command` on the
//! operator's side, the printed `edge-agent join ...` on the device (here without systemd),
//! then the agent started as join says, Ready on the real hub; `edge-agent reset` undoes it.
//! A wrong CA hash and an expired Registration are refused, and nothing is written.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use super::super::{AGENT, Hub, KillOnDrop, create_workspace, eventually, get_json, kubectl, kubectl_ok};

/// `kubectl faros ARGS` with the tenant's kubeconfig.
fn faros(tenant: &Path, args: &[&str]) -> Output {
    Command::new(faros_testkit::workspace_binary("kubectl-faros"))
        .args(args)
        .env("KUBECONFIG", tenant)
        .output()
        .expect("run kubectl-faros")
}

/// The words of the join command printed for each agent, checked for shape.
fn join_commands(tenant: &Path, args: &[&str]) -> Vec<Vec<String>> {
    let mut all = vec!["agent", "generate"];
    all.extend_from_slice(args);
    all.push("--print-join-command");
    let out = faros_testkit::succeeded(&format!("kubectl faros {all:?}"), &faros(tenant, &all));
    out.lines()
        .map(|line| {
            let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
            assert_eq!(words[..3], ["edge-agent", "join", "--server"], "{line}");
            words
        })
        .collect()
}

/// The value after `flag` in a join command.
fn flag<'a>(words: &'a [String], flag: &str) -> &'a str {
    let at = words
        .iter()
        .position(|w| w == flag)
        .unwrap_or_else(|| panic!("{flag} in {words:?}"));
    &words[at + 1]
}

/// Runs `edge-agent` with `args`, with none of the agent's variables from the test's own
/// environment.
fn edge_agent(args: &[&str]) -> Output {
    Command::new(AGENT)
        .args(args)
        .env_remove("KUBECONFIG")
        .env_remove("FAROS_AGENT_NAME")
        .env_remove("FAROS_AGENT_NAMESPACE")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run edge-agent")
}

fn text(out: &Output) -> String {
    format!(
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_device_joins_with_the_printed_command_and_reset_undoes_it() {
    let hub = Hub::start();
    create_workspace(&hub.admin(), "fleet", "faros");
    let tenant = hub.workspace_kubeconfig("root:fleet");
    let commands = join_commands(&tenant, &["dev1"]);
    assert_eq!(commands.len(), 1);
    let words = &commands[0];
    assert_eq!(flag(words, "--server"), hub.url("root:fleet"));
    assert_eq!(flag(words, "--name"), "dev1");
    assert_eq!(flag(words, "--namespace"), "default");
    let ca = String::from_utf8(decode(&hub.ca_data())).unwrap();
    assert_eq!(
        flag(words, "--ca-cert-hash"),
        faros_kubeconfig::ca_pin::pins(&ca).unwrap()[0],
        "the pin of the hub's CA"
    );
    // The Registration admits the agent for a day by default.
    let registration = get_json(&tenant, &["registration", "dev1"]);
    let expires: jiff::Timestamp = registration["spec"]["expirationTime"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let left = expires.duration_since(jiff::Timestamp::now()).as_secs();
    assert!((23 * 3600..=24 * 3600).contains(&left), "{registration}");

    // A hash that is not the hub's CA: refused, saying which CA the hub has; nothing written.
    let config_dir = hub.dir.join("device/etc");
    let state_dir = hub.dir.join("device/state");
    let mut wrong = words[2..].to_vec();
    let at = wrong.iter().position(|w| w == "--ca-cert-hash").unwrap();
    wrong[at + 1] = format!("sha256:{}", "ab".repeat(32));
    let local = [
        "--config-dir",
        config_dir.to_str().unwrap(),
        "--state-dir",
        state_dir.to_str().unwrap(),
        "--no-systemd",
    ];
    let run_join = |words: &[String]| {
        let mut args: Vec<&str> = vec!["join"];
        args.extend(words.iter().map(String::as_str));
        args.extend(local);
        edge_agent(&args)
    };
    let out = run_join(&wrong);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refusing to trust the hub")
            && stderr.contains("does not match")
            && stderr.contains(flag(words, "--ca-cert-hash")),
        "{stderr}"
    );
    assert!(!hub.dir.join("device").exists(), "nothing may be written");

    // The printed command, as printed.
    let out = run_join(&words[2..]);
    assert!(out.status.success(), "{}", text(&out));
    let config = config_dir.join("config.yaml");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("edge-agent --config {}", config.display())),
        "{stdout}"
    );
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&config_dir.join("bootstrap.kubeconfig")), 0o600);
    // Again: it says the device joined already.
    let out = run_join(&words[2..]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("run `edge-agent reset` first"),
        "{}",
        text(&out)
    );

    // Started as join says, the agent joins and reports Ready.
    let log = hub.dir.join("dev1.log");
    let agent = Command::new(AGENT)
        .args(["--config", config.to_str().unwrap()])
        .env_remove("KUBECONFIG")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut agent = KillOnDrop(agent);
    eventually("the joined agent to report Ready", Duration::from_secs(30), || {
        let out = kubectl(&tenant, &["get", "agent", "dev1", "-o", "json"]);
        out.status.success() && super::super::ready_of(&serde_json::from_slice(&out.stdout).unwrap()).0 == "True"
    });
    assert!(
        state_dir.join("agent.kubeconfig").exists(),
        "its own credential is in --state-dir"
    );
    let _ = Command::new("kill").arg(agent.0.id().to_string()).status();
    let _ = agent.0.wait();

    let out = edge_agent(&["reset", "--config-dir", config_dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("kubectl delete agent dev1 -n default"), "{stdout}");
    assert!(!config_dir.exists() && !state_dir.exists(), "{stdout}");
    let out = edge_agent(&[
        "reset",
        "--config-dir",
        config_dir.to_str().unwrap(),
        "--state-dir",
        state_dir.to_str().unwrap(),
    ]);
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("Nothing to reset"),
        "{}",
        text(&out)
    );
}

#[test]
fn an_expired_registration_is_refused_and_batches_get_one_line_per_device() {
    let hub = Hub::start();
    create_workspace(&hub.admin(), "fleet", "faros");
    let tenant = hub.workspace_kubeconfig("root:fleet");

    // Three devices, one Registration admitting each by name, with the same token.
    let commands = join_commands(&tenant, &["line-a", "--count", "3", "--ttl", "2h"]);
    let names: Vec<&str> = commands.iter().map(|w| flag(w, "--name")).collect();
    assert_eq!(names, ["line-a-1", "line-a-2", "line-a-3"]);
    assert!(
        commands
            .iter()
            .all(|w| flag(w, "--token") == flag(&commands[0], "--token"))
    );
    let registration = get_json(&tenant, &["registration", "line-a"]);
    assert_eq!(registration["spec"]["agentNames"], serde_json::json!(names));
    let expires: jiff::Timestamp = registration["spec"]["expirationTime"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let left = expires.duration_since(jiff::Timestamp::now()).as_secs();
    assert!((3600..=7200).contains(&left), "{registration}");
    // Or as kubeconfigs, one file each, through the same Registration.
    let dir = hub.dir.join("batch");
    let out = faros(
        &tenant,
        &[
            "agent",
            "generate",
            "line-a",
            "--count",
            "3",
            "-o",
            dir.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    for name in &names {
        let kubeconfig = kube::config::Kubeconfig::read_from(dir.join(format!("{name}.kubeconfig"))).unwrap();
        assert_eq!(kubeconfig.current_context.as_deref(), Some(*name));
    }

    // Past its expiration time, the hub refuses the token, saying why; join writes nothing.
    kubectl_ok(
        &tenant,
        &[
            "patch",
            "registration",
            "line-a",
            "--type=merge",
            "-p",
            r#"{"spec":{"expirationTime":"2020-01-01T00:00:00Z"}}"#,
        ],
    );
    let config_dir = hub.dir.join("expired");
    let mut args: Vec<&str> = vec!["join"];
    args.extend(commands[0][2..].iter().map(String::as_str));
    args.extend(["--config-dir", config_dir.to_str().unwrap(), "--no-systemd"]);
    let out = edge_agent(&args);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refuses the token")
            && stderr.contains("Registration \"line-a\" in namespace \"default\" has expired"),
        "{stderr}"
    );
    assert!(!config_dir.exists(), "nothing may be written");
    // So does kubectl with that token: a 403 that says so.
    let token = flag(&commands[0], "--token");
    let file = hub.dir.join("expired.kubeconfig");
    let registration_kubeconfig = faros_kubeconfig::all_named(
        "expired",
        &hub.url("root:fleet"),
        &String::from_utf8(decode(&hub.ca_data())).unwrap(),
        faros_kubeconfig::Credential::Token(token),
        Some("default"),
    );
    faros_kubeconfig::write(&file, &registration_kubeconfig).unwrap();
    let out = kubectl(&file, &["get", "agents"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("has expired"), "{stderr}");
    // And generating for it again says it expired.
    let out = faros(
        &tenant,
        &["agent", "generate", "line-a", "--count", "3", "--print-join-command"],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("has expired"),
        "{}",
        text(&out)
    );
}

fn decode(b64: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(b64).unwrap()
}
