//! The workload flow end to end, as an operator drives it: three real agents (two with
//! podman, each its own container store, one with only the process runtime), the real hub
//! with its scheduler, stock kubectl and the `kubectl faros` plugin.

mod faults;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use faros_testkit::podman::Sandbox;
use serde_json::Value;

use super::{AgentProcess, Hub, assert_reporting, create, eventually, get_json, kubectl, kubectl_ok};

/// `kubectl faros ARGS` with the tenant's kubeconfig.
fn faros(tenant: &Path, args: &[&str]) -> Output {
    std::process::Command::new(faros_testkit::workspace_binary("kubectl-faros"))
        .args(args)
        .env("KUBECONFIG", tenant)
        .output()
        .expect("run kubectl-faros")
}

fn faros_ok(tenant: &Path, args: &[&str]) -> String {
    faros_testkit::succeeded(&format!("kubectl faros {args:?}"), &faros(tenant, args))
}

/// The placements of `workload`, by agent.
fn placements(tenant: &Path, workload: &str) -> Vec<(String, Value)> {
    let list = get_json(
        tenant,
        &["placements", "-l", &format!("edge.faros.sh/workload={workload}")],
    );
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| (p["spec"]["agent"].as_str().unwrap_or_default().to_string(), p.clone()))
        .collect()
}

fn placement_on(tenant: &Path, workload: &str, agent: &str) -> Option<Value> {
    placements(tenant, workload)
        .into_iter()
        .find(|(a, _)| a == agent)
        .map(|(_, p)| p)
}

fn agents_of(tenant: &Path, workload: &str) -> Vec<String> {
    let mut agents: Vec<String> = placements(tenant, workload).into_iter().map(|(a, _)| a).collect();
    agents.sort();
    agents
}

fn condition(object: &Value, type_: &str) -> (String, String, String) {
    object["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == type_)
        .map(|c| {
            let field = |k: &str| c[k].as_str().unwrap_or_default().to_string();
            (field("status"), field("reason"), field("message"))
        })
        .unwrap_or_default()
}

fn running(placement: &Value) -> bool {
    placement["status"]["phase"] == "Running" && placement["status"]["ready"] == true
}

/// What the device serves on the placement's first endpoint (a plain HTTP/1.0 GET).
fn fetch(placement: &Value) -> Option<String> {
    use std::io::{Read as _, Write as _};
    let port = placement["status"]["endpoints"][0]["port"].as_u64()?;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", u16::try_from(port).ok()?)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.lines().next()?.contains(" 200 ").then(|| body.trim().to_string())
}

struct Device {
    name: &'static str,
    state: PathBuf,
    sandbox: Option<Sandbox>,
    _agent: AgentProcess,
}

fn start_device(hub: &Hub, kubeconfig: &Path, name: &'static str, podman: bool, args: &[&str]) -> Device {
    let state = hub.dir.join(format!("state-{name}"));
    let mut all = vec!["--poll-interval-ms", "300", "--stop-grace-seconds", "1"];
    all.extend_from_slice(args);
    let sandbox = podman.then(|| {
        let sandbox = Sandbox::new();
        sandbox.build_image("localhost/demo:1", "one");
        sandbox.build_image("localhost/demo:2", "two");
        sandbox
    });
    if !podman {
        all.extend(["--runtimes", "process"]);
    }
    let env = sandbox.as_ref().map(Sandbox::env).unwrap_or_default();
    let agent = AgentProcess::start_env(&hub.dir, kubeconfig, name, &state, &all, env);
    Device {
        name,
        state,
        sandbox,
        _agent: agent,
    }
}

#[test]
fn workloads_on_three_devices() {
    let hub = Hub::start();
    let (tenant, join) = super::devices_workspace(&hub);
    // dev1 has little memory for workloads, dev2 plenty; dev3 runs processes only.
    let dev1 = start_device(&hub, &join, "dev1", true, &["--capacity-memory", "1Gi"]);
    let dev2 = start_device(&hub, &join, "dev2", true, &["--capacity-memory", "8Gi"]);
    let dev3 = start_device(&hub, &join, "dev3", false, &[]);
    for device in [&dev1, &dev2, &dev3] {
        assert_reporting(&tenant, device.name);
    }
    let status = get_json(&tenant, &["agent", "dev3"])["status"].clone();
    assert_eq!(status["runtimes"], serde_json::json!(["process"]), "{status}");
    kubectl_ok(&tenant, &["label", "agent", "dev1", "dev2", "site=north"]);
    kubectl_ok(&tenant, &["label", "agent", "dev3", "site=south"]);

    // The one-line deploy onto the two northern devices, each publishing a free port.
    let deploy = [
        "deploy",
        "web",
        "--image",
        "localhost/demo:1",
        "--port",
        ":8080",
        "--selector",
        "site=north",
        "--",
        "/bin/httpd",
        "-f",
        "-p",
        "8080",
        "-h",
        "/www",
    ];
    faros_ok(&tenant, &deploy);
    eventually("web Available", Duration::from_secs(90), || {
        condition(&get_json(&tenant, &["workload", "web"]), "Available").0 == "True"
    });
    assert_eq!(agents_of(&tenant, "web"), ["dev1", "dev2"]);
    for device in ["dev1", "dev2"] {
        let p = placement_on(&tenant, "web", device).unwrap();
        assert!(running(&p), "{p}");
        eventually(
            &format!("{device} serving the container"),
            Duration::from_secs(10),
            || fetch(&p).as_deref() == Some("one"),
        );
    }
    let table = kubectl_ok(&tenant, &["get", "workloads"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "DESIRED", "READY", "UP-TO-DATE", "AGE"]);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[..4], ["web", "2", "2", "2"], "{table}");
    // The per-device view and the agent's own report.
    let listed = faros_ok(&tenant, &["workload", "list", "--agent", "dev1"]);
    assert!(
        listed
            .lines()
            .any(|l| l.contains("web") && l.contains("dev1") && l.contains("Running")),
        "{listed}"
    );
    assert!(!listed.contains("dev2"), "{listed}");
    eventually("dev1 reports what it runs", Duration::from_secs(30), || {
        let s = get_json(&tenant, &["agent", "dev1"])["status"].clone();
        s["workloadCount"] == 1 && s["workloads"][0]["workload"] == "web" && s["capacity"]["memory"].is_string()
    });

    // Killed from outside: restarted by the agent, and counted.
    let p1 = placement_on(&tenant, "web", "dev1").unwrap();
    let id = p1["status"]["containers"][0]["containerId"]
        .as_str()
        .unwrap()
        .to_string();
    dev1.sandbox.as_ref().unwrap().podman_ok(&["kill", &id]);
    eventually("the restart counted", Duration::from_secs(60), || {
        placement_on(&tenant, "web", "dev1").is_some_and(|p| running(&p) && p["status"]["restartCount"] == 1)
    });

    // A new image (and env) replaces what runs, on both devices.
    let mut update = deploy.to_vec();
    update[3] = "localhost/demo:2";
    update.splice(4..4, ["--env", "GREETING=hi"]);
    faros_ok(&tenant, &update);
    eventually("web updated everywhere", Duration::from_secs(90), || {
        let w = get_json(&tenant, &["workload", "web"]);
        w["status"]["updated"] == 2 && w["status"]["ready"] == 2
    });
    let p1 = placement_on(&tenant, "web", "dev1").unwrap();
    assert_ne!(
        p1["status"]["containers"][0]["containerId"],
        id.as_str(),
        "replaced: {p1}"
    );
    eventually("the new image serving", Duration::from_secs(10), || {
        fetch(&p1).as_deref() == Some("two")
    });
    let new_id = p1["status"]["containers"][0]["containerId"]
        .as_str()
        .unwrap()
        .to_string();
    let env = dev1
        .sandbox
        .as_ref()
        .unwrap()
        .inspect(&new_id, "{{.Config.Env}}")
        .unwrap();
    assert!(env.contains("GREETING=hi"), "{env}");

    // The same instances as Pods, for the tools that think in Pods.
    let wide = kubectl_ok(&tenant, &["get", "pods", "-o", "wide"]);
    let header: Vec<&str> = wide.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header[..7],
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"],
        "{wide}"
    );
    for device in ["dev1", "dev2"] {
        assert!(
            wide.lines().any(|l| {
                let cells: Vec<&str> = l.split_whitespace().collect();
                cells.len() > 6 && cells[1] == "1/1" && cells[2] == "Running" && cells[6] == device
            }),
            "{device}: {wide}"
        );
    }
    let on_dev1 = kubectl_ok(
        &tenant,
        &["get", "pods", "--field-selector", "spec.nodeName=dev1", "-o", "name"],
    );
    let pod = on_dev1.trim().strip_prefix("pod/").unwrap().to_string();
    assert_eq!(pod, p1["metadata"]["name"].as_str().unwrap(), "{on_dev1}");
    let before = get_json(&tenant, &["pod", &pod]);
    assert_eq!(before["spec"]["nodeName"], "dev1");
    assert_eq!(
        before["status"]["containerStatuses"][0]["containerID"],
        format!("podman://{new_id}")
    );
    // Pods come from Workloads: not made by hand.
    let out = kubectl(&tenant, &["run", "stray", "--image", "localhost/demo:1"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("change the Workload"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Deleting one restarts its instance: kubectl sees a new pod, the device a new container.
    kubectl_ok(&tenant, &["delete", "pod", &pod, "--timeout=60s"]);
    let after = get_json(&tenant, &["pod", &pod]);
    assert_ne!(after["metadata"]["uid"], before["metadata"]["uid"]);
    eventually("the instance restarted", Duration::from_secs(60), || {
        placement_on(&tenant, "web", "dev1")
            .is_some_and(|p| running(&p) && p["status"]["containers"][0]["containerId"] != new_id.as_str())
    });
    assert_eq!(
        placement_on(&tenant, "web", "dev2").unwrap()["status"]["containers"][0]["restartCount"],
        0
    );

    // Reached through the hub with stock kubectl: logs, exec and port-forward, by old
    // (SPDY) and new (WebSocket) kubectl alike, and by device name through the plugin.
    reach_instances(&tenant, &hub.dir.join("audit.log"));

    // A process on the device without a container runtime; a container workload for it
    // says why it cannot go there.
    faros_ok(
        &tenant,
        &[
            "deploy",
            "ticker",
            "--process",
            "/bin/sleep",
            "--selector",
            "site=south",
            "--",
            "3600",
        ],
    );
    eventually("the process running on dev3", Duration::from_secs(60), || {
        placement_on(&tenant, "ticker", "dev3").is_some_and(|p| running(&p) && p["status"]["runtime"] == "process")
    });
    faros_ok(
        &tenant,
        &[
            "deploy",
            "boxed",
            "--image",
            "localhost/demo:1",
            "--selector",
            "site=south",
            "--",
            "/bin/sleep",
            "3600",
        ],
    );
    eventually("boxed Unschedulable", Duration::from_secs(30), || {
        let (status, reason, message) = condition(&get_json(&tenant, &["workload", "boxed"]), "Degraded");
        status == "True" && reason == "Unschedulable" && message.contains("dev3") && message.contains("podman")
    });
    assert!(placements(&tenant, "boxed").is_empty());

    // Resource-aware: 2Gi fits only on dev2.
    let sized = "apiVersion: edge.faros.sh/v1alpha1\nkind: Workload\nmetadata: {name: sized, namespace: default}\nspec:\n  selector: {matchLabels: {site: north}}\n  placement: {strategy: Replicas, replicas: 1, scheduling: ResourceAware}\n  template:\n    containers: [{name: app, image: localhost/demo:1, command: [/bin/sleep, '3600'], resources: {requests: {memory: 2Gi}}}]\n";
    create(&tenant, sized);
    eventually("sized placed", Duration::from_secs(30), || {
        agents_of(&tenant, "sized") == ["dev2"]
    });

    // Cordon: nothing moves, nothing new lands.
    faros_ok(&tenant, &["agent", "cordon", "dev2"]);
    faros_ok(
        &tenant,
        &[
            "deploy",
            "pair",
            "--image",
            "localhost/demo:1",
            "--selector",
            "site=north",
            "--replicas",
            "2",
            "--",
            "/bin/sleep",
            "3600",
        ],
    );
    eventually("pair placed on dev1 only", Duration::from_secs(30), || {
        let w = get_json(&tenant, &["workload", "pair"]);
        agents_of(&tenant, "pair") == ["dev1"] && condition(&w, "Degraded").2.contains("dev2")
    });
    assert_eq!(agents_of(&tenant, "sized"), ["dev2"], "cordon moves nothing");
    assert_eq!(agents_of(&tenant, "web"), ["dev1", "dev2"]);
    faros_ok(&tenant, &["agent", "uncordon", "dev2"]);
    eventually("pair complete after uncordon", Duration::from_secs(30), || {
        agents_of(&tenant, "pair") == ["dev1", "dev2"]
    });

    // Drain moves Replicas workloads away, leaves All ones.
    faros_ok(
        &tenant,
        &[
            "deploy",
            "mover",
            "--image",
            "localhost/demo:1",
            "--selector",
            "site=north",
            "--replicas",
            "1",
            "--",
            "/bin/sleep",
            "3600",
        ],
    );
    eventually("mover placed", Duration::from_secs(30), || {
        agents_of(&tenant, "mover").len() == 1
    });
    let from = agents_of(&tenant, "mover").remove(0);
    let to = if from == "dev1" { "dev2" } else { "dev1" };
    faros_ok(&tenant, &["agent", "drain", &from]);
    eventually("mover moved", Duration::from_secs(60), || {
        agents_of(&tenant, "mover") == [to]
    });
    assert_eq!(
        agents_of(&tenant, "web"),
        ["dev1", "dev2"],
        "All workloads stay on a drained agent"
    );
    faros_ok(&tenant, &["agent", "uncordon", &from]);

    // One device's credential reaches none of another's assignments.
    let dev2_credential = dev2.state.join("agent.kubeconfig");
    let p1_name = placement_on(&tenant, "web", "dev1").unwrap()["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    for args in [
        vec!["get", "placements", "-l", "edge.faros.sh/agent=dev1"],
        vec!["get", "placements"],
        vec!["get", "placement", &p1_name],
        vec![
            "patch",
            "placement",
            &p1_name,
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"phase":"Failed"}}"#,
        ],
    ] {
        let out = kubectl(&dev2_credential, &args);
        assert!(!out.status.success(), "dev2 could {args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Forbidden"),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let own = kubectl_ok(
        &dev2_credential,
        &["get", "placements", "-l", "edge.faros.sh/agent=dev2", "-o", "name"],
    );
    assert!(own.lines().count() >= 2, "dev2 reads its own: {own}");

    // Deleted: stopped and removed on every device.
    let ids: Vec<(&Device, String)> = [&dev1, &dev2]
        .into_iter()
        .map(|d| {
            let p = placement_on(&tenant, "web", d.name).unwrap();
            (
                d,
                p["status"]["containers"][0]["containerId"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    kubectl_ok(&tenant, &["delete", "workload", "web"]);
    eventually("web's containers removed", Duration::from_secs(60), || {
        ids.iter()
            .all(|(d, id)| d.sandbox.as_ref().unwrap().inspect(id, "{{.Id}}").is_none())
    });
    eventually("web's placements gone", Duration::from_secs(30), || {
        placements(&tenant, "web").is_empty()
    });
}

/// `kubectl logs`, `exec` and `port-forward` on the instances of a workload on dev1.
fn reach_instances(tenant: &Path, audit: &Path) {
    faros_ok(
        tenant,
        &[
            "deploy",
            "talker",
            "--image",
            "localhost/demo:1",
            "--selector",
            "site=north",
            "--replicas",
            "1",
            "--port",
            ":8080",
            "--",
            "/bin/sh",
            "-c",
            "echo started; /bin/httpd -p 8080 -h /www; while true; do echo tick; sleep 1; done",
        ],
    );
    eventually("talker running", Duration::from_secs(60), || {
        placements(tenant, "talker").first().is_some_and(|(_, p)| running(p))
    });
    let (agent, placement) = placements(tenant, "talker").remove(0);
    let pod = placement["metadata"]["name"].as_str().unwrap().to_string();
    eventually("talker ticking", Duration::from_secs(30), || {
        let out = kubectl(tenant, &["logs", &pod, "--tail", "1"]);
        String::from_utf8_lossy(&out.stdout).contains("tick")
    });
    for version in ["1.27", "1.32"] {
        let run = |args: &[&str], stdin: Option<&str>| super::kubectl_v(version, tenant, args, stdin);
        let head = run(&["logs", &pod, "--limit-bytes", "8"], None);
        assert_eq!(
            String::from_utf8_lossy(&head.stdout),
            "started\n",
            "{version}: {}",
            String::from_utf8_lossy(&head.stderr)
        );
        // Exit codes and separate streams.
        let out = run(
            &["exec", &pod, "--", "sh", "-c", "echo out; echo err >&2; exit 3"],
            None,
        );
        assert_eq!(
            out.status.code(),
            Some(3),
            "{version}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
        assert!(String::from_utf8_lossy(&out.stderr).contains("err"), "{version}");
        // stdin, to its end.
        let out = run(&["exec", "-i", &pod, "--", "cat"], Some("typed\n"));
        assert!(
            out.status.success(),
            "{version}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "typed\n");
        // A local port forwarded to the container's.
        let served = port_forward(version, tenant, &pod, 8080);
        assert_eq!(served.as_deref(), Some("one"), "{version}");
    }
    // Following: lines written after the request arrive as they are written.
    {
        use std::io::BufRead as _;
        let mut follow = std::process::Command::new(faros_testkit::kubectl::binary("1.32").unwrap())
            .args(["logs", "-f", &pod, "--tail", "0"])
            .env("KUBECONFIG", tenant)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(follow.stdout.take().unwrap()).lines();
        let new_ticks = (0..2)
            .filter_map(|_| lines.next()?.ok())
            .filter(|l| l == "tick")
            .count();
        let _ = follow.kill();
        let _ = follow.wait();
        assert_eq!(new_ticks, 2, "logs -f sees new lines");
    }
    // By device: the plugin finds the instance and hands over to kubectl.
    let kubectl_path = faros_testkit::kubectl::binary("1.32").unwrap();
    let plugin = |args: &[&str]| {
        std::process::Command::new(faros_testkit::workspace_binary("kubectl-faros"))
            .args(args)
            .env("KUBECONFIG", tenant)
            .env("KUBECTL_PLUGINS_CALLER", &kubectl_path)
            .output()
            .unwrap()
    };
    let out = plugin(&["exec", &agent, "talker", "--", "echo", "via-plugin"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "via-plugin\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = plugin(&["logs", &agent, "talker", "--limit-bytes", "8"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "started\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = plugin(&["logs", &agent, "nothing-here"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not run there"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Each session is in the audit log when it ends: who, which device, what command, how
    // long and how many bytes; never what was typed or printed.
    eventually("exec sessions audited", Duration::from_secs(10), || {
        let log = std::fs::read_to_string(audit).unwrap_or_default();
        let sessions: Vec<Value> = log
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["stage"] == "SessionEnded")
            .collect();
        let cat = sessions
            .iter()
            .find(|s| s["subresource"] == "exec" && s["command"] == serde_json::json!(["cat"]));
        let forwarded = sessions
            .iter()
            .any(|s| s["subresource"] == "portforward" && s["command"] == serde_json::json!(["port 8080"]));
        !log.contains("typed")
            && forwarded
            && cat.is_some_and(|s| {
                s["bytesIn"] == 6
                    && s["bytesOut"] == 6
                    && s["outcome"] == "exit code 0"
                    && s["device"] == format!("default/{agent}")
            })
    });
    kubectl_ok(tenant, &["delete", "workload", "talker"]);
}

/// Runs `kubectl port-forward POD :PORT`, fetches `/` through the local port it picked,
/// and stops it.
fn port_forward(version: &str, tenant: &Path, pod: &str, port: u16) -> Option<String> {
    use std::io::{BufRead as _, Read as _, Write as _};
    let mut child = std::process::Command::new(faros_testkit::kubectl::binary(version).unwrap())
        .args(["port-forward", pod, &format!(":{port}")])
        .env("KUBECONFIG", tenant)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let result = (|| {
        // "Forwarding from 127.0.0.1:43127 -> 8080"
        let local = lines.next()?.ok()?.split_whitespace().nth(2)?.to_string();
        let mut stream = std::net::TcpStream::connect(&local).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        stream.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
        let mut response = String::new();
        // To the end: the device closing its side must close kubectl's local connection.
        stream.read_to_string(&mut response).ok()?;
        let (head, body) = response.split_once("\r\n\r\n")?;
        head.lines().next()?.contains(" 200 ").then(|| body.trim().to_string())
    })();
    let _ = child.kill();
    if result.is_none() {
        let mut err = String::new();
        let _ = child.stderr.take().unwrap().read_to_string(&mut err);
        eprintln!("kubectl {version} port-forward: {err}");
    }
    let _ = child.wait();
    result
}
