//! The hub's side of workloads: Workload specs checked with field paths, Placements labelled
//! from their spec and kept on their agent, and an agent's own credential reading and
//! reporting on its own placements only (the scheduler and the device side have their own
//! tests).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::{HUB, TestHub, eventually, get_json, kubectl_with, ready_workspace, reconciles};

const KUBECTL: &str = "1.32";

fn kubectl(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let out = kubectl_with(kubeconfig, KUBECTL, args, stdin);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let (success, stdout, stderr) = kubectl(kubeconfig, args, stdin);
    assert!(success, "kubectl {args:?}: {stderr}");
    stdout
}

/// Agents `names` joined through one Registration, each with its own identity; returns a
/// kubeconfig per agent holding a token of that identity.
fn agents(hub: &TestHub, tenant: &Path, names: &[&str]) -> Vec<PathBuf> {
    let reg =
        "apiVersion: edge.faros.sh/v1alpha1\nkind: Registration\nmetadata: {name: r1, namespace: default}\nspec: {}\n";
    ok(tenant, &["create", "-f", "-"], Some(reg));
    names
        .iter()
        .map(|name| {
            let agent = format!(
                "apiVersion: edge.faros.sh/v1alpha1\nkind: Agent\nmetadata:\n  name: {name}\n  namespace: default\n  labels: {{edge.faros.sh/registration: r1}}\nspec: {{}}\n"
            );
            ok(tenant, &["create", "-f", "-"], Some(&agent));
            let account = format!("faros-agent-{name}");
            assert!(
                eventually(Duration::from_secs(30), || {
                    get_json(tenant, &["rolebinding", &account]).is_some()
                }),
                "agent {name} got its identity"
            );
            let token = ok(tenant, &["create", "token", &account], None);
            hub.token_kubeconfig(name, &hub.workspace_url("root:plant"), token.trim(), Some("default"))
        })
        .collect()
}

const PLACEMENT: &str = "apiVersion: edge.faros.sh/v1alpha1
kind: Placement
metadata:
  name: web-a1
  namespace: default
  labels: {edge.faros.sh/agent: a2}
spec:
  workload: web
  agent: a1
  templateHash: h1
  template:
    containers: [{name: web, image: localhost/demo:1, env: [{name: SECRET, value: only-for-a1}]}]
";

#[test]
fn agents_read_and_report_on_their_own_placements_only() {
    let hub = TestHub::start(HUB);
    let tenant = ready_workspace(&hub, "plant", "faros");
    let kubeconfigs = agents(&hub, &tenant, &["a1", "a2"]);
    let (a1, a2) = (&kubeconfigs[0], &kubeconfigs[1]);

    // Created with a forged label: the hub labels it from its spec.
    ok(&tenant, &["create", "-f", "-"], Some(PLACEMENT));
    let placement = get_json(&tenant, &["placement", "web-a1"]).unwrap();
    assert_eq!(placement["metadata"]["labels"]["edge.faros.sh/agent"], "a1");
    assert_eq!(placement["metadata"]["labels"]["edge.faros.sh/workload"], "web");
    // Selectable by the fields too, as `spec.nodeName` is for pods.
    for selector in ["spec.agent=a1", "spec.workload=web"] {
        let listed = ok(
            &tenant,
            &["get", "placements", "--field-selector", selector, "-o", "name"],
            None,
        );
        assert_eq!(listed.trim(), "placement.edge.faros.sh/web-a1", "{selector}");
    }
    let listed = ok(
        &tenant,
        &["get", "placements", "--field-selector", "spec.agent=a2", "-o", "name"],
        None,
    );
    assert!(listed.trim().is_empty(), "{listed}");

    // a1 sees it through the selector naming itself; every other way of listing is refused.
    let own = ok(
        a1,
        &["get", "placements", "-l", "edge.faros.sh/agent=a1", "-o", "name"],
        None,
    );
    assert_eq!(own.trim(), "placement.edge.faros.sh/web-a1");
    let own = ok(
        a1,
        &[
            "get",
            "placement",
            "web-a1",
            "-o",
            "jsonpath={.spec.template.containers[0].env[0].value}",
        ],
        None,
    );
    assert_eq!(own, "only-for-a1");
    for selector in [
        None,
        Some("edge.faros.sh/agent=a2"),
        Some("edge.faros.sh/agent!=a2"),
        Some("edge.faros.sh/workload=web"),
    ] {
        let mut args = vec!["get", "placements"];
        if let Some(s) = selector {
            args.extend(["-l", s]);
        }
        let (success, stdout, stderr) = kubectl(a1, &args, None);
        assert!(!success && stdout.is_empty(), "{selector:?}: {stdout}");
        assert!(
            stderr.contains("Forbidden") || stderr.contains("forbidden"),
            "{selector:?}: {stderr}"
        );
    }
    let (success, _, stderr) = kubectl(a1, &["get", "placements"], None);
    assert!(
        !success && stderr.contains("select them with the label selector edge.faros.sh/agent=a1"),
        "{stderr}"
    );
    // a2 cannot read it in any way: not listed under its own name, not by name, not watched.
    let theirs = ok(
        a2,
        &["get", "placements", "-l", "edge.faros.sh/agent=a2", "-o", "name"],
        None,
    );
    assert!(theirs.trim().is_empty(), "{theirs}");
    for args in [
        vec!["get", "placement", "web-a1"],
        vec!["get", "placement", "web-a1", "--subresource=status"],
        // Not even whether a name exists: a missing placement is refused alike.
        vec!["get", "placement", "no-such-placement"],
        vec!["get", "placements", "-l", "edge.faros.sh/agent=a1"],
        vec!["get", "placements", "--field-selector", "metadata.name=web-a1"],
        vec!["get", "placements", "--field-selector", "spec.agent=a1"],
        vec!["get", "placements", "--watch", "--request-timeout=2s"],
    ] {
        let (success, stdout, stderr) = kubectl(a2, &args, None);
        assert!(!success && !stdout.contains("only-for-a1"), "{args:?}: {stdout}");
        assert!(!stderr.contains("only-for-a1"), "{args:?}: {stderr}");
    }

    let (_, _, stderr) = kubectl(a2, &["get", "placement", "no-such-placement"], None);
    assert!(stderr.contains("Forbidden") && !stderr.contains("NotFound"), "{stderr}");

    // Reports: a2's status write to a1's placement is refused, a1's goes through.
    let report = r#"{"status":{"phase":"Running","ready":true}}"#;
    let patch = [
        "patch",
        "placement",
        "web-a1",
        "--subresource=status",
        "--type=merge",
        "-p",
        report,
    ];
    let (success, stdout, stderr) = kubectl(a2, &patch, None);
    assert!(!success, "{stdout}");
    assert!(
        stderr.contains("may read and report on its own placements only"),
        "{stderr}"
    );
    assert!(!stderr.contains("only-for-a1"), "{stderr}");
    ok(a1, &patch, None);
    let placement = get_json(&tenant, &["placement", "web-a1"]).unwrap();
    assert_eq!(placement["status"]["phase"], "Running");
    // Neither can change what it is assigned.
    for agent in [a1, a2] {
        let (success, _, _) = kubectl(
            agent,
            &[
                "patch",
                "placement",
                "web-a1",
                "--type=merge",
                "-p",
                r#"{"spec":{"templateHash":"x"}}"#,
            ],
            None,
        );
        assert!(!success);
    }

    // Not even an admin moves a placement to another agent or relabels it.
    let (success, _, stderr) = kubectl(
        &tenant,
        &[
            "patch",
            "placement",
            "web-a1",
            "--type=merge",
            "-p",
            r#"{"spec":{"agent":"a2"}}"#,
        ],
        None,
    );
    assert!(
        !success && stderr.contains("spec.agent: Invalid value") && stderr.contains("field is immutable"),
        "{stderr}"
    );
    let (success, _, stderr) = kubectl(
        &tenant,
        &["label", "placement", "web-a1", "--overwrite", "edge.faros.sh/agent=a2"],
        None,
    );
    assert!(!success && stderr.contains("must equal spec.agent"), "{stderr}");
}

#[test]
fn workload_specs_are_checked_with_field_paths() {
    let hub = TestHub::start(HUB);
    let tenant = ready_workspace(&hub, "plant", "faros");
    let workload = |spec: &str| {
        format!(
            "apiVersion: edge.faros.sh/v1alpha1\nkind: Workload\nmetadata: {{name: web, namespace: default}}\nspec:\n{spec}"
        )
    };
    let refused = [
        // The schema's own checks.
        (
            "  template:\n    containers: [{name: web, image: localhost/demo:1, ports: [{containerPort: 70000}]}]\n",
            "spec.template.containers[0].ports[0].containerPort",
        ),
        (
            "  placement: {strategy: Everywhere}\n  template:\n    containers: [{name: web, image: localhost/demo:1}]\n",
            "spec.placement.strategy",
        ),
        (
            "  template:\n    containers: [{name: web, image: localhost/demo:1, resources: {requests: {memory: lots}}}]\n",
            "spec.template.containers[0].resources.requests.memory",
        ),
        // Admission's.
        (
            "  template:\n    containers: [{name: web, image: 'Not An Image'}]\n",
            "spec.template.containers[0].image: Invalid value",
        ),
        (
            "  placement: {strategy: Replicas}\n  template:\n    containers: [{name: web, image: localhost/demo:1}]\n",
            "spec.placement.replicas: Required value",
        ),
        ("  template: {}\n", "spec.template.containers: Required value"),
        (
            "  template:\n    containers: [{name: a, image: one}, {name: a, image: two}]\n",
            "spec.template.containers[1].name: Duplicate value",
        ),
        (
            "  template:\n    process: {path: bin/app}\n",
            "spec.template.process.path: Invalid value",
        ),
        (
            "  template:\n    containers: [{name: web, image: x, volumeMounts: [{name: data, mountPath: /data}]}]\n",
            "spec.template.containers[0].volumeMounts[0].name: Unsupported value",
        ),
    ];
    for (spec, expected) in refused {
        let (success, _, stderr) = kubectl(&tenant, &["apply", "-f", "-"], Some(&workload(spec)));
        assert!(!success, "accepted:\n{spec}");
        assert!(stderr.contains("is invalid"), "{spec}: {stderr}");
        assert!(stderr.contains(expected), "{spec}: wanted {expected:?} in {stderr}");
    }
    assert!(get_json(&tenant, &["workload", "web"]).is_none());
    // A valid one, with quantities given as numbers and strings.
    let good = "  selector: {matchLabels: {site: north}}\n  placement: {strategy: Replicas, replicas: 2, scheduling: ResourceAware}\n  template:\n    containers: [{name: web, image: localhost/demo:1, ports: [{containerPort: 8080, hostPort: 8080}], resources: {requests: {cpu: 1, memory: 64Mi}}}]\n";
    ok(&tenant, &["apply", "-f", "-"], Some(&workload(good)));
    let stored = get_json(&tenant, &["workload", "web"]).unwrap();
    assert_eq!(
        stored["spec"]["template"]["containers"][0]["resources"]["requests"]["cpu"],
        1
    );
    assert_eq!(stored["spec"]["template"]["restartPolicy"], "Always");
}

#[test]
fn placements_of_a_silent_agent_turn_unknown() {
    let hub = TestHub::start_with_args(HUB, true, &["--agent-monitor-grace-period", "2s"]);
    let tenant = ready_workspace(&hub, "plant", "faros");
    ok(
        &tenant,
        &["create", "-f", "-"],
        Some(
            "apiVersion: edge.faros.sh/v1alpha1\nkind: Agent\nmetadata: {name: a1, namespace: default}\nspec: {heartbeatIntervalSeconds: 1}\n",
        ),
    );
    ok(&tenant, &["create", "-f", "-"], Some(PLACEMENT));
    let running = r#"{"status":{"phase":"Running","ready":true}}"#;
    ok(
        &tenant,
        &[
            "patch",
            "placement",
            "web-a1",
            "--subresource=status",
            "--type=merge",
            "-p",
            running,
        ],
        None,
    );
    let mut finished = PLACEMENT
        .replace("web-a1", "job-a1")
        .replace("workload: web", "workload: job");
    finished.push('\n');
    ok(&tenant, &["create", "-f", "-"], Some(&finished));
    let done = r#"{"status":{"phase":"Succeeded"}}"#;
    ok(
        &tenant,
        &[
            "patch",
            "placement",
            "job-a1",
            "--subresource=status",
            "--type=merge",
            "-p",
            done,
        ],
        None,
    );

    // a1 never heartbeats: past the grace period it is Unknown, and so is what it runs.
    assert!(
        eventually(Duration::from_secs(30), || {
            get_json(&tenant, &["placement", "web-a1"]).is_some_and(|p| p["status"]["phase"] == "Unknown")
        }),
        "the placement of a silent agent turns Unknown"
    );
    let placement = get_json(&tenant, &["placement", "web-a1"]).unwrap();
    assert_eq!(placement["status"]["ready"], false);
    assert_eq!(placement["status"]["reason"], "AgentStatusUnknown");
    assert!(
        placement["status"]["message"].as_str().unwrap().contains("Running"),
        "{placement}"
    );
    // What finished keeps its outcome.
    assert_eq!(
        get_json(&tenant, &["placement", "job-a1"]).unwrap()["status"]["phase"],
        "Succeeded"
    );
}

#[test]
fn pod_streams_are_authorized_each_on_its_own() {
    let hub = TestHub::start(HUB);
    let tenant = ready_workspace(&hub, "plant", "faros");
    ok(
        &tenant,
        &["create", "-f", "-"],
        Some("apiVersion: edge.faros.sh/v1alpha1\nkind: Agent\nmetadata: {name: a1, namespace: default}\nspec: {}\n"),
    );
    ok(&tenant, &["create", "-f", "-"], Some(PLACEMENT));
    let running = r#"{"status":{"phase":"Running","ready":true}}"#;
    ok(
        &tenant,
        &[
            "patch",
            "placement",
            "web-a1",
            "--subresource=status",
            "--type=merge",
            "-p",
            running,
        ],
        None,
    );
    // A user who may read pods and their logs, nothing else.
    ok(
        &tenant,
        &["create", "-f", "-"],
        Some(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: log-reader, namespace: default}\nrules:\n- apiGroups: ['']\n  resources: [pods, pods/log]\n  verbs: [get, list]\n",
        ),
    );
    ok(
        &tenant,
        &[
            "create",
            "rolebinding",
            "log-reader",
            "--role=log-reader",
            "--user=viewer",
        ],
        None,
    );

    // Logs pass authorization and meet the absent device: a clear 503, no hang.
    let (success, _, stderr) = kubectl(&tenant, &["logs", "web-a1", "--as=viewer"], None);
    assert!(
        !success && stderr.contains("agent default/a1 is not connected"),
        "{stderr}"
    );
    // exec and port-forward are `create` on their own subresources: refused before anything
    // reaches a device, whatever the method kubectl uses.
    for version in ["1.27", "1.32"] {
        let out = kubectl_with(&tenant, version, &["exec", "web-a1", "--as=viewer", "--", "true"], None);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains("pods/exec"),
            "{version}: {stderr}"
        );
        assert!(
            stderr.contains("forbidden") || stderr.contains("Forbidden"),
            "{version}: {stderr}"
        );
    }
    let (success, _, stderr) = kubectl(&tenant, &["port-forward", "web-a1", "18080:8080", "--as=viewer"], None);
    assert!(!success && stderr.contains("pods/portforward"), "{stderr}");
    // The admin gets as far as the device.
    let (success, _, stderr) = kubectl(&tenant, &["exec", "web-a1", "--", "true"], None);
    assert!(!success && stderr.contains("is not connected"), "{stderr}");
    // Bad input is the caller's: an unknown container, a pod that is not there.
    let (success, _, stderr) = kubectl(&tenant, &["logs", "web-a1", "-c", "nope"], None);
    assert!(
        !success && stderr.contains("container nope is not valid for pod web-a1"),
        "{stderr}"
    );
    let (success, _, stderr) = kubectl(&tenant, &["logs", "nothing"], None);
    assert!(!success && stderr.contains("not found"), "{stderr}");
    // Another workspace sees no pods of this one.
    let other = ready_workspace(&hub, "elsewhere", "faros");
    let listed = ok(&other, &["get", "pods", "-o", "name"], None);
    assert!(listed.trim().is_empty(), "{listed}");
}

/// The scheduler's passes over its workloads, from the hub's metrics.
fn scheduler_passes(hub: &TestHub) -> u64 {
    reconciles(&ok(&hub.kubeconfig(), &["get", "--raw", "/metrics"], None), "scheduler").unwrap_or(0)
}

/// An agent's status reports that change nothing the scheduler places by (the report's time,
/// a condition's message, device facts) do not make it look at the namespace's workloads
/// again; a new label does, once.
#[test]
fn the_scheduler_looks_again_only_when_what_it_places_by_changes() {
    let hub = TestHub::start(HUB);
    let tenant = ready_workspace(&hub, "plant", "faros");
    ok(
        &tenant,
        &["create", "-f", "-"],
        Some(
            "apiVersion: edge.faros.sh/v1alpha1\nkind: Agent\nmetadata: {name: a1, namespace: default, labels: {site: north}}\nspec: {}\n",
        ),
    );
    let report = |at: &str, message: &str| {
        let status = serde_json::json!({"status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "AgentReady", "message": message,
                            "lastTransitionTime": "2030-01-01T00:00:00Z"}],
            "lastHeartbeatTime": at,
            "runtimes": ["podman"],
            "device": {"hostname": format!("a1-{message}")},
        }});
        ok(
            &tenant,
            &[
                "patch",
                "agent",
                "a1",
                "--subresource=status",
                "--type=merge",
                "-p",
                &status.to_string(),
            ],
            None,
        );
    };
    report("2030-01-01T00:00:00Z", "first");
    ok(
        &tenant,
        &["create", "-f", "-"],
        Some(
            "apiVersion: edge.faros.sh/v1alpha1\nkind: Workload\nmetadata: {name: web, namespace: default}\nspec:\n  selector: {matchLabels: {site: north}}\n  template:\n    containers: [{name: web, image: localhost/demo:1}]\n",
        ),
    );
    assert!(
        eventually(Duration::from_secs(30), || {
            !ok(&tenant, &["get", "placements", "-o", "name"], None)
                .trim()
                .is_empty()
        }),
        "the workload is placed on a1"
    );
    // Settled: no pass for a while.
    let mut settled = scheduler_passes(&hub);
    assert!(
        eventually(Duration::from_secs(30), || {
            std::thread::sleep(Duration::from_millis(1500));
            let now = scheduler_passes(&hub);
            std::mem::replace(&mut settled, now) == now
        }),
        "the scheduler settled"
    );
    assert!(settled > 0, "the scheduler's passes are counted");

    // Five reports, apart enough that each would have been a pass of its own.
    for i in 1..=5 {
        report(&format!("2030-01-01T00:0{i}:00Z"), &format!("report-{i}"));
        std::thread::sleep(Duration::from_millis(300));
    }
    // A label the selector does not read is still an input: one pass, after the reports
    // (the watch delivers them in order).
    ok(&tenant, &["label", "agent", "a1", "note=x"], None);
    assert!(
        eventually(Duration::from_secs(30), || scheduler_passes(&hub) > settled),
        "the label requeued the workload"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        scheduler_passes(&hub),
        settled + 1,
        "one pass for the label, none for the five reports"
    );
}
