//! `core/v1` Pods in a workspace that binds the edge API: each Placement shown as the Pod
//! of its workload on its device, so `kubectl get pods -o wide`, `kubectl describe pod` and
//! the tools built for Pods see what runs where. Nothing is stored as a Pod: the kind reads
//! the Placements' storage and projects each one on the way out.
//!
//! Pods here cannot be created, updated or patched (they come from Workloads); deleting one
//! restarts its instance on the device, as deleting a Deployment's pod gives a fresh one:
//! the Placement is stamped with the restart time, the agent replaces what runs, and the
//! Pod's UID changes so `kubectl delete` sees the old one gone.

use std::sync::Arc;

use faros_api::workloads::RESTART_ANNOTATION;
use faros_machinery::table::{CellSource, PrinterColumn};
use serde_json::{Map, Value, json};

use super::{ResourceKind, Strategy, Subresource};

/// The Pods kind over the Placements kind bound in a workspace.
pub(crate) fn kind(placements: &ResourceKind) -> Arc<ResourceKind> {
    let mut kind = ResourceKind::builder("", "v1", "pods", "Pod")
        .namespaced()
        .short_names(&["po"])
        .subresource(Subresource::STATUS)
        .subresource(stream("log", &["get"]))
        .subresource(stream("exec", &["create", "get"]))
        .subresource(stream("attach", &["create", "get"]))
        .subresource(stream("portforward", &["create", "get"]))
        .columns(columns())
        .strategy(Arc::new(PodProjection))
        .build();
    let kind_mut = Arc::get_mut(&mut kind).expect("a kind just built has one owner");
    kind_mut.storage_group = placements.storage_group.clone();
    kind_mut.storage_resource = placements.storage_resource.clone();
    kind_mut.categories = vec!["all".into()];
    kind
}

/// A subresource answered by the hub's Pod streams (`apiserver/pod_streams.rs`).
fn stream(name: &'static str, verbs: &'static [&'static str]) -> Subresource {
    Subresource {
        name,
        verbs,
        rest: None,
    }
}

fn columns() -> Vec<PrinterColumn> {
    let name = PrinterColumn {
        format: "name".into(),
        description: "Name must be unique within a namespace.".into(),
        ..PrinterColumn::path("Name", "string", ".metadata.name", 0)
    };
    let computed = |name: &str, type_: &str, priority: i64, f: fn(&Value) -> Value| PrinterColumn {
        source: CellSource::Computed(f),
        ..PrinterColumn::path(name, type_, "", priority)
    };
    vec![
        name,
        computed("Ready", "string", 0, ready_cell),
        computed("Status", "string", 0, status_cell),
        computed("Restarts", "string", 0, restarts_cell),
        PrinterColumn::age(),
        PrinterColumn::path("IP", "string", ".status.podIP", 1),
        PrinterColumn::path("Node", "string", ".spec.nodeName", 1),
        computed("Nominated Node", "string", 1, |_| Value::String("<none>".into())),
        computed("Readiness Gates", "string", 1, |_| Value::String("<none>".into())),
    ]
}

fn container_statuses(pod: &Value) -> &[Value] {
    pod["status"]["containerStatuses"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// `1/2`: ready containers of all.
fn ready_cell(pod: &Value) -> Value {
    let total = pod["spec"]["containers"].as_array().map(Vec::len).unwrap_or(0);
    let ready = container_statuses(pod).iter().filter(|c| c["ready"] == true).count();
    Value::String(format!("{ready}/{total}"))
}

/// The phase, or what a container waits for or ended with, as kubectl prints pods.
fn status_cell(pod: &Value) -> Value {
    let reason = container_statuses(pod).iter().find_map(|c| {
        let state = &c["state"];
        state["waiting"]["reason"]
            .as_str()
            .or_else(|| state["terminated"]["reason"].as_str())
            .filter(|r| !r.is_empty())
    });
    let phase = pod["status"]["phase"].as_str().unwrap_or("Pending");
    Value::String(match (phase, reason) {
        ("Running", _) | (_, None) => phase.to_string(),
        (_, Some(reason)) => reason.to_string(),
    })
}

fn restarts_cell(pod: &Value) -> Value {
    let restarts: i64 = container_statuses(pod)
        .iter()
        .map(|c| c["restartCount"].as_i64().unwrap_or(0))
        .sum();
    Value::String(restarts.to_string())
}

struct PodProjection;

impl Strategy for PodProjection {
    fn project(&self, stored: &faros_storage::Object) -> Option<Value> {
        Some(pod_of(&stored.value()))
    }

    fn writes_refused(&self) -> Option<&'static str> {
        Some(
            "pods in this workspace show the Placements of Workloads: change the Workload (kubectl faros deploy, kubectl apply) instead; deleting a pod restarts it",
        )
    }

    fn delete_as_update(&self, stored: &Value) -> Option<Value> {
        let mut restarted = stored.clone();
        let metadata = faros_machinery::object::meta_mut(&mut restarted);
        let annotations = metadata
            .entry("annotations")
            .or_insert_with(|| Value::Object(Map::new()));
        if !annotations.is_object() {
            *annotations = Value::Object(Map::new());
        }
        annotations[RESTART_ANNOTATION] = Value::String(restart_stamp());
        Some(restarted)
    }

    fn field_value(&self, obj: &Value, field: &str) -> Option<String> {
        match field {
            "spec.nodeName" => obj["spec"]["agent"].as_str().map(str::to_string),
            "status.phase" => Some(phase(&obj["status"]).to_string()),
            _ => None,
        }
    }

    fn selectable_fields(&self) -> &[&'static str] {
        &["spec.nodeName", "status.phase"]
    }
}

/// Nanoseconds since the epoch: distinct for every deletion, even two in one second.
fn restart_stamp() -> String {
    let now = jiff::Timestamp::now();
    now.as_nanosecond().to_string()
}

/// The Pod phase of a Placement status: the device's in-between phases are Pending.
fn phase(status: &Value) -> &'static str {
    match status["phase"].as_str().unwrap_or_default() {
        "Running" => "Running",
        "Succeeded" => "Succeeded",
        "Failed" => "Failed",
        "Unknown" => "Unknown",
        _ => "Pending",
    }
}

/// The Pod of one Placement. Its UID follows the Placement's and each restart, so a pod
/// deleted (restarted) comes back as a new one.
pub(crate) fn pod_of(placement: &Value) -> Value {
    let meta = &placement["metadata"];
    let spec = &placement["spec"];
    let status = &placement["status"];
    let template = &spec["template"];
    let restart = meta["annotations"][RESTART_ANNOTATION].as_str().unwrap_or_default();
    let uid = derived_uid(meta["uid"].as_str().unwrap_or_default(), restart);

    let process = template["process"].is_object();
    let containers: Vec<Value> = if process {
        let p = &template["process"];
        vec![json!({
            "name": "process",
            "image": p["path"],
            "command": [p["path"]],
            "args": p["args"].as_array().cloned().unwrap_or_default(),
            "env": p["env"].as_array().cloned().unwrap_or_default(),
            "ports": ports(&p["ports"]),
            "resources": p["resources"].as_object().cloned().unwrap_or_default(),
        })]
    } else {
        template["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                let mut container = json!({
                    "name": c["name"],
                    "image": c["image"],
                    "ports": ports(&c["ports"]),
                    "resources": c["resources"].as_object().cloned().unwrap_or_default(),
                });
                for field in ["command", "args", "env", "volumeMounts"] {
                    if let Some(v) = c[field].as_array() {
                        container[field] = Value::Array(v.clone());
                    }
                }
                container
            })
            .collect()
    };
    let first = containers.first().map(|c| c["name"].clone()).unwrap_or(Value::Null);

    let mut annotations = meta["annotations"].as_object().cloned().unwrap_or_default();
    annotations.insert("kubectl.kubernetes.io/default-container".into(), first);
    annotations.insert("edge.faros.sh/placement".into(), meta["name"].clone());
    let mut metadata = json!({
        "name": meta["name"],
        "namespace": meta["namespace"],
        "uid": uid,
        "resourceVersion": meta["resourceVersion"],
        "creationTimestamp": meta["creationTimestamp"],
        "labels": meta["labels"].as_object().cloned().unwrap_or_default(),
        "annotations": annotations,
    });
    for field in ["ownerReferences", "deletionTimestamp", "generation"] {
        if !meta[field].is_null() {
            metadata[field] = meta[field].clone();
        }
    }

    let phase = phase(status);
    let address = status["endpoints"][0]["address"].clone();
    let ready = status["ready"] == true && phase == "Running";
    let transition = status["lastUpdateTime"].clone();
    let statuses: Vec<Value> = status["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let mut s = json!({
                "name": c["name"],
                "ready": c["ready"] == true,
                "restartCount": c["restartCount"].as_i64().unwrap_or(0),
                "image": c["image"],
                "imageID": c["imageId"].as_str().unwrap_or_default(),
                "started": !c["state"]["running"].is_null(),
                "state": c["state"].as_object().cloned().unwrap_or_default(),
            });
            if let Some(id) = c["containerId"].as_str().filter(|id| !id.is_empty()) {
                let runtime = status["runtime"].as_str().unwrap_or("podman");
                s["containerID"] = Value::String(format!("{runtime}://{id}"));
            }
            if c["lastTermination"].is_object() {
                s["lastState"] = json!({"terminated": c["lastTermination"]});
            }
            s
        })
        .collect();
    let mut pod_status = json!({
        "phase": phase,
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": meta["creationTimestamp"]},
            {"type": "Ready", "status": if ready { "True" } else { "False" }, "lastTransitionTime": transition},
            {"type": "ContainersReady", "status": if ready { "True" } else { "False" }, "lastTransitionTime": transition},
        ],
        "containerStatuses": statuses,
    });
    if !address.is_null() {
        pod_status["hostIP"] = address.clone();
        pod_status["podIP"] = address.clone();
        pod_status["podIPs"] = json!([{"ip": address}]);
        pod_status["hostIPs"] = json!([{"ip": address}]);
    }
    for (from, to) in [("reason", "reason"), ("message", "message")] {
        if let Some(v) = status[from].as_str().filter(|v| !v.is_empty()) {
            pod_status[to] = Value::String(v.to_string());
        }
    }
    if let Some(started) = status["containers"][0]["state"]["running"]["startedAt"].as_str() {
        pod_status["startTime"] = Value::String(started.to_string());
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "nodeName": spec["agent"],
            "restartPolicy": template["restartPolicy"].as_str().unwrap_or("Always"),
            "containers": containers,
        },
        "status": pod_status,
    })
}

fn ports(ports: &Value) -> Vec<Value> {
    ports
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let mut port = json!({
                "containerPort": p["containerPort"],
                "protocol": p["protocol"].as_str().unwrap_or("TCP"),
            });
            for field in ["hostPort", "name"] {
                if !p[field].is_null() {
                    port[field] = p[field].clone();
                }
            }
            port
        })
        .collect()
}

/// A UUID-shaped identity from the placement's UID and its latest restart: stable while
/// nothing restarts it, new after each deletion of the pod.
fn derived_uid(placement_uid: &str, restart: &str) -> String {
    if restart.is_empty() {
        return placement_uid.to_string();
    }
    let a = faros_api::workloads::fnv1a(format!("{placement_uid}/{restart}").as_bytes());
    let b = faros_api::workloads::fnv1a(format!("{restart}/{placement_uid}").as_bytes());
    let hex = format!("{a:016x}{b:016x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placement() -> Value {
        json!({
            "metadata": {"name": "web-dev1-abc", "namespace": "default", "uid": "u1", "resourceVersion": "7",
                         "creationTimestamp": "2026-01-01T00:00:00Z", "labels": {"edge.faros.sh/agent": "dev1"}},
            "spec": {"agent": "dev1", "workload": "web", "templateHash": "h",
                     "template": {"containers": [{"name": "web", "image": "localhost/demo:1", "ports": [{"containerPort": 8080}]}]}},
            "status": {"phase": "Running", "ready": true, "runtime": "podman",
                       "endpoints": [{"address": "10.0.0.7", "port": 8080, "containerPort": 8080}],
                       "containers": [{"name": "web", "ready": true, "restartCount": 2, "containerId": "abc",
                                       "state": {"running": {"startedAt": "2026-01-01T00:00:01Z"}}}]},
        })
    }

    #[test]
    fn a_placement_as_a_pod() {
        let pod = pod_of(&placement());
        assert_eq!(pod["kind"], "Pod");
        assert_eq!(pod["spec"]["nodeName"], "dev1");
        assert_eq!(pod["metadata"]["uid"], "u1");
        assert_eq!(
            pod["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"],
            "web"
        );
        assert_eq!(pod["status"]["phase"], "Running");
        assert_eq!(pod["status"]["podIP"], "10.0.0.7");
        assert_eq!(pod["status"]["containerStatuses"][0]["containerID"], "podman://abc");
        assert_eq!(ready_cell(&pod), "1/1");
        assert_eq!(restarts_cell(&pod), "2");
        assert_eq!(status_cell(&pod), "Running");
    }

    #[test]
    fn deleting_restarts_with_a_new_uid() {
        let restarted = PodProjection.delete_as_update(&placement()).unwrap();
        let stamp = restarted["metadata"]["annotations"][RESTART_ANNOTATION]
            .as_str()
            .unwrap();
        assert!(!stamp.is_empty());
        let pod = pod_of(&restarted);
        assert_ne!(pod["metadata"]["uid"], "u1");
        assert_eq!(pod["metadata"]["uid"].as_str().unwrap().len(), 36);
    }

    #[test]
    fn waiting_reasons_show_in_status() {
        let mut p = placement();
        p["status"]["phase"] = json!("Pending");
        p["status"]["containers"][0]["state"] = json!({"waiting": {"reason": "ImagePullBackOff"}});
        assert_eq!(status_cell(&pod_of(&p)), "ImagePullBackOff");
    }
}
