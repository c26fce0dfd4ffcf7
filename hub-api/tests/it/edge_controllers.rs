//! `hub-api controllers --kubeconfig`: the controllers out of process, against a hub started
//! without `--all-in-one`, doing the edge controllers' work (the end-to-end flow with the
//! agent is in edge-agent/tests/e2e.rs).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::{HUB, TestHub, eventually, get_json, ready_workspace};

struct Controllers(Child);

impl Drop for Controllers {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The Registration's Ready condition as (status, reason), if it has one.
fn registration_ready(kubeconfig: &std::path::Path, name: &str) -> Option<(String, String)> {
    let reg = get_json(kubeconfig, &["registration", name])?;
    let ready = reg["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")?
        .clone();
    Some((
        ready["status"].as_str().unwrap_or_default().to_string(),
        ready["reason"].as_str().unwrap_or_default().to_string(),
    ))
}

#[test]
fn controllers_subcommand_runs_the_edge_controllers() {
    let hub = TestHub::start_with(HUB, false);
    let controllers = Controllers(
        Command::new(env!("CARGO_BIN_EXE_hub-api"))
            .arg("controllers")
            .arg("--kubeconfig")
            .arg(hub.kubeconfig())
            .args(["--agent-monitor-grace-period", "2s"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start hub-api controllers"),
    );

    // The workspace controller, out of process, initialises a faros workspace.
    let tenant = ready_workspace(&hub, "edge", "faros");

    // The registration controller makes the registration's credential objects.
    let reg = "apiVersion: edge.faros.sh/v1alpha1\nkind: Registration\nmetadata:\n  name: r1\n  namespace: default\nspec:\n  agentNames: [a1]\n";
    let out = crate::common::kubectl_with(&tenant, "1.32", &["create", "-f", "-"], Some(reg));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        eventually(Duration::from_secs(30), || {
            ["serviceaccount", "role", "rolebinding"]
                .iter()
                .all(|kind| get_json(&tenant, &[kind, "faros-reg-r1"]).is_some())
                && get_json(&tenant, &["secret", "faros-reg-r1-token"]).is_some()
        }),
        "the registration controller created the registration's objects"
    );
    let registration = get_json(&tenant, &["registration", "r1"]).unwrap();
    assert!(
        registration["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f == "edge.faros.sh/revoke-token")),
        "{registration}"
    );

    // An Agent joining through r1 but not admitted by it gets no identity.
    let agent = "apiVersion: edge.faros.sh/v1alpha1\nkind: Agent\nmetadata:\n  name: intruder\n  namespace: default\n  labels:\n    edge.faros.sh/registration: r1\nspec:\n  heartbeatIntervalSeconds: 1\n";
    let out = crate::common::kubectl_with(&tenant, "1.32", &["create", "-f", "-"], Some(agent));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        eventually(Duration::from_secs(30), || {
            get_json(&tenant, &["agent", "intruder"]).is_some_and(|a| {
                a["status"]["conditions"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c["reason"] == "NotAdmitted"))
            })
        }),
        "a name the registration does not admit is reported"
    );
    assert!(get_json(&tenant, &["serviceaccount", "faros-agent-intruder"]).is_none());

    // An admitted one gets its own identity, owned by the Agent, and the registration may
    // mint its first token (and only its).
    let agent = agent.replace("intruder", "a1");
    let out = crate::common::kubectl_with(&tenant, "1.32", &["create", "-f", "-"], Some(&agent));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        eventually(Duration::from_secs(30), || {
            get_json(&tenant, &["role", "faros-reg-r1"]).is_some_and(|r| {
                r["rules"].as_array().is_some_and(|rules| {
                    rules
                        .iter()
                        .any(|rule| rule["resourceNames"] == serde_json::json!(["faros-agent-a1"]))
                })
            })
        }),
        "the registration's Role lets it mint a1's first token"
    );
    let role = get_json(&tenant, &["role", "faros-agent-a1"]).unwrap();
    assert_eq!(role["metadata"]["ownerReferences"][0]["kind"], "Agent");
    // Rules naming no object: creating its Lease, and its placements, which the hub narrows
    // to its own (hub-api/tests/it/workloads.rs).
    assert!(role["rules"].as_array().unwrap().iter().all(|rule| {
        let unnamed = [
            (serde_json::json!(["leases"]), serde_json::json!(["create"])),
            (
                serde_json::json!(["placements"]),
                serde_json::json!(["get", "list", "watch"]),
            ),
            (
                serde_json::json!(["placements/status"]),
                serde_json::json!(["get", "update", "patch"]),
            ),
        ];
        unnamed
            .iter()
            .any(|(resources, verbs)| rule["resources"] == *resources && rule["verbs"] == *verbs)
            || rule["resourceNames"].as_array().is_some_and(|n| !n.is_empty())
    }));

    // The lifecycle controller: no heartbeat within the grace period → Unknown.
    assert!(
        eventually(Duration::from_secs(30), || {
            get_json(&tenant, &["agent", "a1"]).is_some_and(|a| {
                a["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter().any(|c| {
                        c["type"] == "Ready" && c["status"] == "Unknown" && c["reason"] == "AgentStatusUnknown"
                    })
                })
            })
        }),
        "an agent that never heartbeats is marked Unknown"
    );

    // Deleting the registration revokes its credential objects at once.
    let out = crate::common::kubectl_with(
        &tenant,
        "1.32",
        &["delete", "registration", "r1", "--timeout=30s"],
        None,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(get_json(&tenant, &["secret", "faros-reg-r1-token"]).is_none());
    assert!(get_json(&tenant, &["serviceaccount", "faros-reg-r1"]).is_none());
    // The joined agent keeps its identity.
    assert!(get_json(&tenant, &["serviceaccount", "faros-agent-a1"]).is_some());
    drop(controllers);
}

/// A workspace that binds the edge API but rejects its permission claims gets no
/// credentials: the edge controllers reach it only through the export's view, and the
/// Registration says why it is not Ready. Accepting the claims lets it proceed.
#[test]
fn registrations_wait_for_accepted_permission_claims() {
    let hub = TestHub::start(HUB);
    let tenant = ready_workspace(&hub, "plain", "universal");

    let rejected = std::fs::read_to_string(crate::common::sample("binding.yaml"))
        .unwrap()
        .replace("state: Accepted", "state: Rejected");
    let out = crate::common::kubectl_with(&tenant, "1.32", &["create", "-f", "-"], Some(&rejected));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    crate::common::kubectl_with(
        &tenant,
        "1.32",
        &[
            "wait",
            "--for=jsonpath={.status.phase}=Bound",
            "apibinding/edge.faros.sh",
            "--timeout=30s",
        ],
        None,
    );
    let reg = "apiVersion: edge.faros.sh/v1alpha1\nkind: Registration\nmetadata:\n  name: r1\n  namespace: default\nspec:\n  agentNames: [a1]\n";
    let out = crate::common::kubectl_with(&tenant, "1.32", &["create", "-f", "-"], Some(reg));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        eventually(Duration::from_secs(30), || {
            registration_ready(&tenant, "r1").is_some_and(|(_, reason)| reason == "PermissionClaimsNotAccepted")
        }),
        "{:?}",
        get_json(&tenant, &["registration", "r1"])
    );
    assert!(get_json(&tenant, &["serviceaccount", "faros-reg-r1"]).is_none());

    let accepted = std::fs::read_to_string(crate::common::sample("binding.yaml")).unwrap();
    let out = crate::common::kubectl_with(&tenant, "1.32", &["apply", "-f", "-"], Some(&accepted));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        eventually(Duration::from_secs(30), || {
            registration_ready(&tenant, "r1").is_some_and(|(status, _)| status == "True")
        }),
        "{:?}",
        get_json(&tenant, &["registration", "r1"])
    );
    assert!(get_json(&tenant, &["serviceaccount", "faros-reg-r1"]).is_some());

    // Rejecting the claims again does not wedge the Registration's deletion: what the
    // controllers can no longer reach goes with the garbage collector.
    let out = crate::common::kubectl_with(&tenant, "1.32", &["apply", "-f", "-"], Some(&rejected));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = crate::common::kubectl_with(
        &tenant,
        "1.32",
        &["delete", "registration", "r1", "--timeout=30s"],
        None,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        eventually(Duration::from_secs(30), || get_json(
            &tenant,
            &["serviceaccount", "faros-reg-r1"]
        )
        .is_none()),
        "the Registration's ServiceAccount outlived it"
    );
}
