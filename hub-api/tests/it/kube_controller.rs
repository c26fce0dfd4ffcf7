//! A kube-runtime `Controller` reconciling a custom resource against the real hub: it adds a
//! finalizer, writes status with server-side apply, handles deletion, and keeps working
//! across a hub restart in the middle.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{HUB, TestHub, sample};
use futures::StreamExt;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;

const FINALIZER: &str = "example.faros.sh/cleanup";

fn widgets() -> ApiResource {
    ApiResource {
        group: "example.faros.sh".into(),
        version: "v1".into(),
        api_version: "example.faros.sh/v1".into(),
        kind: "Widget".into(),
        plural: "widgets".into(),
    }
}

struct Ctx {
    client: Client,
    cleaned: Mutex<HashSet<String>>,
}

#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct Error(#[from] kube::Error);

async fn reconcile(obj: Arc<DynamicObject>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), "default", &widgets());
    let name = obj.name_any();
    if obj.metadata.deletion_timestamp.is_some() {
        if obj.finalizers().iter().any(|f| f == FINALIZER) {
            ctx.cleaned.lock().unwrap().insert(name.clone());
            let kept: Vec<&String> = obj.finalizers().iter().filter(|f| *f != FINALIZER).collect();
            let patch = json!({"metadata": {"finalizers": kept, "resourceVersion": obj.resource_version()}});
            api.patch(&name, &PatchParams::default(), &Patch::Merge(patch)).await?;
        }
        return Ok(Action::await_change());
    }
    if !obj.finalizers().iter().any(|f| f == FINALIZER) {
        let mut finalizers = obj.finalizers().to_vec();
        finalizers.push(FINALIZER.into());
        let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": obj.resource_version()}});
        api.patch(&name, &PatchParams::default(), &Patch::Merge(patch)).await?;
        return Ok(Action::await_change());
    }
    let status = json!({
        "apiVersion": "example.faros.sh/v1",
        "kind": "Widget",
        "status": {"conditions": [{
            "type": "Ready", "status": "True", "reason": "Reconciled",
            "message": format!("generation {}", obj.metadata.generation.unwrap_or_default()),
        }]},
    });
    api.patch_status(
        &name,
        &PatchParams::apply("widget-controller").force(),
        &Patch::Apply(status),
    )
    .await?;
    Ok(Action::await_change())
}

fn error_policy(_obj: Arc<DynamicObject>, _error: &Error, _ctx: Arc<Ctx>) -> Action {
    Action::requeue(Duration::from_millis(500))
}

fn ready_message(obj: &DynamicObject) -> Option<String> {
    obj.data["status"]["conditions"][0]["message"]
        .as_str()
        .map(str::to_string)
}

async fn wait_for(api: &Api<DynamicObject>, name: &str, check: impl Fn(Option<&DynamicObject>) -> bool) -> bool {
    for _ in 0..300 {
        if let Ok(found) = api.get_opt(name).await
            && check(found.as_ref())
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn controller_reconciles_finalizes_and_survives_a_restart() {
    let mut hub = TestHub::start(HUB);
    hub.kubectl_ok("1.32", &["create", "-f", &sample("widget-crd.yaml")]);
    hub.kubectl_ok(
        "1.32",
        &["wait", "--for=condition=Established", "crd/widgets.example.faros.sh"],
    );
    let client = hub.client().await;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &widgets());
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        cleaned: Mutex::new(HashSet::new()),
    });
    let controller = tokio::spawn(
        Controller::new_with(api.clone(), watcher::Config::default(), widgets())
            .run(reconcile, error_policy, ctx.clone())
            .for_each(|_| async {}),
    );

    let widget = |name: &str, size: i64| -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "example.faros.sh/v1", "kind": "Widget",
            "metadata": {"name": name}, "spec": {"size": size},
        }))
        .unwrap()
    };
    api.create(&PostParams::default(), &widget("w1", 1)).await.unwrap();
    assert!(
        wait_for(&api, "w1", |o| o.is_some_and(|o| {
            o.finalizers().contains(&FINALIZER.to_string()) && ready_message(o).as_deref() == Some("generation 1")
        }))
        .await,
        "w1 was not reconciled"
    );
    // The status belongs to the controller's field manager, written by server-side apply.
    let w1 = api.get("w1").await.unwrap();
    let managers: Vec<String> = w1
        .metadata
        .managed_fields
        .unwrap_or_default()
        .iter()
        .filter(|m| m.operation.as_deref() == Some("Apply"))
        .filter_map(|m| m.manager.clone())
        .collect();
    assert_eq!(managers, vec!["widget-controller".to_string()]);

    // The hub goes away and comes back; the controller's watches recover on their own.
    hub.restart();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &widgets());
    api.create(&PostParams::default(), &widget("w2", 2)).await.unwrap();
    api.patch(
        "w1",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"size": 5}})),
    )
    .await
    .unwrap();
    assert!(
        wait_for(&api, "w2", |o| o.and_then(ready_message).as_deref()
            == Some("generation 1"))
        .await,
        "w2 was not reconciled after the restart"
    );
    assert!(
        wait_for(&api, "w1", |o| o.and_then(ready_message).as_deref()
            == Some("generation 2"))
        .await,
        "w1's spec change was not reconciled after the restart"
    );

    // Deletion runs the controller's cleanup, then the object goes.
    api.delete("w1", &DeleteParams::default()).await.unwrap();
    assert!(wait_for(&api, "w1", |o| o.is_none()).await, "w1 was not finalized");
    assert!(ctx.cleaned.lock().unwrap().contains("w1"));
    controller.abort();
}
