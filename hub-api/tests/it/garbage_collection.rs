//! Garbage collection of a chain owner → dependent → grand-dependent under each
//! propagation policy, through kube-rs against the real hub.

use std::time::Duration;

use crate::common::{HUB, TestHub};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, PostParams, PropagationPolicy};
use serde_json::json;

async fn create(api: &Api<ConfigMap>, name: &str, owner: Option<&ConfigMap>) -> ConfigMap {
    let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}});
    if let Some(owner) = owner {
        cm["metadata"]["ownerReferences"] = json!([{
            "apiVersion": "v1", "kind": "ConfigMap",
            "name": owner.metadata.name, "uid": owner.metadata.uid,
            "blockOwnerDeletion": true,
        }]);
    }
    api.create(&PostParams::default(), &serde_json::from_value(cm).unwrap())
        .await
        .unwrap()
}

async fn gone(api: &Api<ConfigMap>, name: &str) -> bool {
    api.get_opt(name).await.unwrap().is_none()
}

/// Polls until `check` holds (30 s at most).
async fn eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..300 {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

async fn chain(api: &Api<ConfigMap>, prefix: &str) -> (ConfigMap, ConfigMap, ConfigMap) {
    let owner = create(api, &format!("{prefix}-owner"), None).await;
    let dependent = create(api, &format!("{prefix}-dependent"), Some(&owner)).await;
    let grand = create(api, &format!("{prefix}-grand"), Some(&dependent)).await;
    (owner, dependent, grand)
}

#[tokio::test]
async fn background_deletes_the_whole_chain() {
    let hub = TestHub::start(HUB);
    let api: Api<ConfigMap> = Api::namespaced(hub.client().await, "default");
    chain(&api, "bg").await;
    api.delete("bg-owner", &DeleteParams::background()).await.unwrap();
    assert!(
        gone(&api, "bg-owner").await,
        "a background delete removes the owner at once"
    );
    assert!(eventually(|| gone(&api, "bg-dependent")).await);
    assert!(eventually(|| gone(&api, "bg-grand")).await);
}

#[tokio::test]
async fn foreground_deletes_dependents_before_the_owner() {
    let hub = TestHub::start(HUB);
    let api: Api<ConfigMap> = Api::namespaced(hub.client().await, "default");
    // A finalizer on the grand-dependent holds the whole chain, showing the order.
    let (_, _, grand) = chain(&api, "fg").await;
    let held = json!({"metadata": {"finalizers": ["example.faros.sh/hold"]}});
    api.patch(
        grand.metadata.name.as_deref().unwrap(),
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(held),
    )
    .await
    .unwrap();
    // A deletion left pending answers 200 with the object, as Kubernetes does.
    let (status, body) = crate::auth_support::send(
        &hub.client().await,
        "DELETE",
        "/api/v1/namespaces/default/configmaps/fg-owner",
        Some(&json!({"propagationPolicy": "Foreground"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"deletionTimestamp\""), "{body}");
    // The owner waits, marked with the foregroundDeletion finalizer, while dependents go.
    let owner = api.get("fg-owner").await.unwrap();
    assert!(owner.metadata.deletion_timestamp.is_some());
    assert!(
        owner
            .metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"foregroundDeletion".to_string())
    );
    assert!(
        eventually(|| async {
            api.get_opt("fg-grand")
                .await
                .unwrap()
                .is_some_and(|g| g.metadata.deletion_timestamp.is_some())
        })
        .await,
        "the grand-dependent is being deleted"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !gone(&api, "fg-owner").await,
        "the owner outlives its blocking dependents"
    );
    assert!(!gone(&api, "fg-dependent").await);
    let release = json!({"metadata": {"finalizers": null}});
    api.patch(
        "fg-grand",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(release),
    )
    .await
    .unwrap();
    assert!(eventually(|| gone(&api, "fg-grand")).await);
    assert!(eventually(|| gone(&api, "fg-dependent")).await);
    assert!(eventually(|| gone(&api, "fg-owner")).await);
}

#[tokio::test]
async fn orphan_keeps_dependents_and_drops_their_owner_reference() {
    let hub = TestHub::start(HUB);
    let api: Api<ConfigMap> = Api::namespaced(hub.client().await, "default");
    chain(&api, "or").await;
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Orphan),
        ..DeleteParams::default()
    };
    api.delete("or-owner", &params).await.unwrap();
    assert!(eventually(|| gone(&api, "or-owner")).await);
    let dependent = api.get("or-dependent").await.unwrap();
    assert!(dependent.metadata.owner_references.unwrap_or_default().is_empty());
    // Only the deleted owner's references go: the grand-dependent still points at its owner.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let grand = api.get("or-grand").await.unwrap();
    assert_eq!(grand.metadata.owner_references.unwrap().len(), 1);
}

#[tokio::test]
async fn a_pending_deletion_with_orphan_dependents_false_answers_202() {
    let hub = TestHub::start(HUB);
    let client = hub.client().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let held = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "held", "finalizers": ["example.faros.sh/hold"]}});
    api.create(&PostParams::default(), &serde_json::from_value(held).unwrap())
        .await
        .unwrap();
    // The deprecated `orphanDependents: false` is the one case Kubernetes answers 202.
    let path = "/api/v1/namespaces/default/configmaps/held";
    let (status, body) =
        crate::auth_support::send(&client, "DELETE", path, Some(&json!({"orphanDependents": false}))).await;
    assert_eq!(status, 202, "{body}");
    // Without it, deleting again while still pending answers 200.
    let (status, _) = crate::auth_support::send(&client, "DELETE", path, None).await;
    assert_eq!(status, 200);
    let release = json!({"metadata": {"finalizers": null}});
    api.patch(
        "held",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(release),
    )
    .await
    .unwrap();
    assert!(eventually(|| gone(&api, "held")).await);
}

/// The hub's own collector does not see writes that leave an object's metadata as it was (a
/// heartbeat's renewal), so the revision it last saw of a dependent can be behind: dropping an
/// owner's references must still reach dependents written since.
#[tokio::test]
async fn owner_references_drop_from_dependents_written_since_the_collector_saw_them() {
    let hub = TestHub::start(HUB);
    let api: Api<ConfigMap> = Api::namespaced(hub.client().await, "default");
    let first = create(&api, "two-first", None).await;
    let second = create(&api, "two-second", None).await;
    let mut both = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "two-dependent"}});
    both["metadata"]["ownerReferences"] = json!(
        [first, second]
            .iter()
            .map(|o| json!({"apiVersion": "v1", "kind": "ConfigMap", "name": o.metadata.name, "uid": o.metadata.uid}))
            .collect::<Vec<_>>()
    );
    api.create(&PostParams::default(), &serde_json::from_value(both).unwrap())
        .await
        .unwrap();
    let (owner, _, _) = chain(&api, "later").await;
    // Let the collector see them, then write their content only.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (name, round) in [
        ("two-dependent", 1),
        ("later-dependent", 1),
        ("two-dependent", 2),
        ("later-dependent", 2),
    ] {
        let patch = json!({"data": {"round": round.to_string()}});
        api.patch(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .unwrap();
    }

    // One of two owners goes: the dependent keeps the other.
    api.delete("two-first", &DeleteParams::background()).await.unwrap();
    let owners = |name: &'static str| {
        let api = api.clone();
        async move {
            let cm = api.get(name).await.unwrap();
            cm.metadata
                .owner_references
                .unwrap_or_default()
                .into_iter()
                .map(|o| o.name)
                .collect::<Vec<_>>()
        }
    };
    assert!(eventually(|| async { owners("two-dependent").await == ["two-second"] }).await);

    // An orphaning delete: the dependent stays, without its reference to the owner.
    let orphan = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Orphan),
        ..DeleteParams::default()
    };
    api.delete(owner.metadata.name.as_deref().unwrap(), &orphan)
        .await
        .unwrap();
    assert!(eventually(|| gone(&api, "later-owner")).await);
    assert!(owners("later-dependent").await.is_empty());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!gone(&api, "later-dependent").await, "an orphaned dependent is kept");
}
