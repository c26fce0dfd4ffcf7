//! The generic store through the real router, in process (see `crate::testing`): verbs,
//! preconditions and the Status of every refusal, without TLS or a hub process.

use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::testing::InProcessHub;

const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";

fn configmap(name: &str, data: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": data}})
}

fn reason(status: &Value) -> &str {
    assert_eq!(status["kind"], "Status", "{status}");
    status["reason"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn create_get_update_delete_with_their_refusals() {
    let hub = InProcessHub::start().await;
    let (code, created) = hub.admin(Method::POST, CONFIGMAPS, Some(configmap("a", "1"))).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let (code, again) = hub.admin(Method::POST, CONFIGMAPS, Some(configmap("a", "1"))).await;
    assert_eq!((code, reason(&again)), (StatusCode::CONFLICT, "AlreadyExists"));

    // A stale resourceVersion is a conflict; a current one wins.
    let mut stale = created.clone();
    stale["metadata"]["resourceVersion"] = "1".into();
    stale["data"]["k"] = "2".into();
    let (code, status) = hub.admin(Method::PUT, &format!("{CONFIGMAPS}/a"), Some(stale)).await;
    assert_eq!((code, reason(&status)), (StatusCode::CONFLICT, "Conflict"));
    assert!(
        status["message"].as_str().unwrap().contains("has been modified"),
        "{status}"
    );
    let mut fresh = created.clone();
    fresh["data"]["k"] = "2".into();
    let (code, updated) = hub.admin(Method::PUT, &format!("{CONFIGMAPS}/a"), Some(fresh)).await;
    assert_eq!(code, StatusCode::OK, "{updated}");
    assert_ne!(
        updated["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );
    // The answer is the object as stored, what a GET returns next: the new data, the new
    // revision, and the managedFields the write recorded.
    let (code, read) = hub.admin(Method::GET, &format!("{CONFIGMAPS}/a"), None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(updated, read);
    assert_eq!(updated["data"]["k"], "2");
    assert!(updated["metadata"]["managedFields"].is_array(), "{updated}");

    // A patch without a precondition applies to whatever is current.
    let (code, patched) = hub
        .admin(
            Method::PATCH,
            &format!("{CONFIGMAPS}/a"),
            Some(json!({"data": {"k": "3"}})),
        )
        .await;
    assert_eq!((code, &patched["data"]["k"]), (StatusCode::OK, &json!("3")));

    // Preconditions on delete are the client's: refused, never retried.
    let wrong_uid = json!({"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": "nope"}});
    let (code, status) = hub
        .admin(Method::DELETE, &format!("{CONFIGMAPS}/a"), Some(wrong_uid))
        .await;
    assert_eq!((code, reason(&status)), (StatusCode::CONFLICT, "Conflict"));
    assert!(
        status["message"].as_str().unwrap().contains("Precondition failed"),
        "{status}"
    );
    let (code, _) = hub.admin(Method::DELETE, &format!("{CONFIGMAPS}/a"), None).await;
    assert_eq!(code, StatusCode::OK);
    let (code, status) = hub.admin(Method::GET, &format!("{CONFIGMAPS}/a"), None).await;
    assert_eq!((code, reason(&status)), (StatusCode::NOT_FOUND, "NotFound"));
}

#[tokio::test]
async fn across_all_workspaces_only_list_and_watch_are_served() {
    let hub = InProcessHub::start().await;
    let (code, list) = hub.admin(Method::GET, "/clusters/*/api/v1/namespaces", None).await;
    assert_eq!(code, StatusCode::OK, "{list}");
    let annotated = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|ns| ns["metadata"]["annotations"]["kcp.io/cluster"].is_string());
    assert!(annotated, "{list}");
    let path = "/clusters/*/api/v1/namespaces/default/configmaps";
    let (code, status) = hub.admin(Method::POST, path, Some(configmap("x", "1"))).await;
    assert_eq!(
        (code, reason(&status)),
        (StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed")
    );
}

#[tokio::test]
async fn reviews_are_created_not_stored() {
    let hub = InProcessHub::start().await;
    let path = "/apis/authentication.k8s.io/v1/selfsubjectreviews";
    let review = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"});
    // Only users who may enter a workspace reach its reviews.
    let (code, status) = hub
        .call(("alice", &["devs"]), Method::POST, path, Some(review.clone()))
        .await;
    assert_eq!((code, reason(&status)), (StatusCode::FORBIDDEN, "Forbidden"));
    let alice = ("alice", &["devs", "system:masters"][..]);
    let (code, answer) = hub.call(alice, Method::POST, path, Some(review)).await;
    assert_eq!(code, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["status"]["userInfo"]["username"], "alice");
    assert!(
        answer["status"]["userInfo"]["groups"]
            .as_array()
            .unwrap()
            .contains(&json!("devs"))
    );
    let (code, status) = hub.admin(Method::GET, path, None).await;
    assert_eq!(
        (code, reason(&status)),
        (StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed")
    );
}

#[tokio::test]
async fn a_namespace_terminates_until_it_is_finalized() {
    let hub = InProcessHub::start().await;
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "doomed"}});
    let (code, _) = hub.admin(Method::POST, "/api/v1/namespaces", Some(ns)).await;
    assert_eq!(code, StatusCode::CREATED);
    let (code, deleting) = hub.admin(Method::DELETE, "/api/v1/namespaces/doomed", None).await;
    assert_eq!(code, StatusCode::OK, "{deleting}");
    assert_eq!(deleting["status"]["phase"], "Terminating");
    // Its spec finalizer holds it (no namespace controller runs here), and it takes no
    // new content.
    let (code, status) = hub
        .admin(
            Method::POST,
            "/api/v1/namespaces/doomed/configmaps",
            Some(configmap("late", "1")),
        )
        .await;
    assert_eq!((code, reason(&status)), (StatusCode::FORBIDDEN, "Forbidden"));
    let mut finalized = deleting.clone();
    finalized["spec"]["finalizers"] = json!([]);
    let (code, _) = hub
        .admin(Method::PUT, "/api/v1/namespaces/doomed/finalize", Some(finalized))
        .await;
    assert_eq!(code, StatusCode::OK);
    let (code, _) = hub.admin(Method::GET, "/api/v1/namespaces/doomed", None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

#[test]
fn objects_are_stored_without_their_resource_version_and_otherwise_unchanged() {
    let obj = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "a", "resourceVersion": "42", "labels": {"resourceVersion": "kept"}},
        "data": {"resourceVersion": "kept too"},
    });
    let mut expected = obj.clone();
    expected["metadata"].as_object_mut().unwrap().remove("resourceVersion");
    assert_eq!(
        super::encode_for_storage(&obj, 0),
        serde_json::to_vec(&expected).unwrap()
    );
    // Anything that is not an object, or has no metadata object, is written as it is.
    for other in [serde_json::json!([1]), serde_json::json!({"metadata": "x"})] {
        assert_eq!(
            super::encode_for_storage(&other, 0),
            serde_json::to_vec(&other).unwrap()
        );
    }
}

/// An update answers with, and stores, the object's managedFields, renewed (their time) or
/// regrouped, whether it is written, refused as a no-op or only tried (dry run).
#[tokio::test]
async fn updates_keep_managed_fields_in_every_answer() {
    let hub = InProcessHub::start().await;
    let (code, created) = hub
        .admin(
            Method::POST,
            &format!("{CONFIGMAPS}?fieldManager=one"),
            Some(configmap("m", "1")),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let entries = |obj: &Value| -> Vec<(String, Value)> {
        let list = obj["metadata"]["managedFields"].as_array().cloned().unwrap_or_default();
        list.iter()
            .map(|e| {
                (
                    e["manager"].as_str().unwrap_or_default().to_string(),
                    e["fieldsV1"].clone(),
                )
            })
            .collect()
    };
    let put = |body: Value, query: &'static str| {
        let hub = &hub;
        async move {
            hub.admin(Method::PUT, &format!("{CONFIGMAPS}/m{query}"), Some(body))
                .await
        }
    };
    let mut body = created.clone();
    body["metadata"].as_object_mut().unwrap().remove("managedFields");
    for (query, value) in [
        ("?fieldManager=one", "2"),
        ("?fieldManager=one&dryRun=All", "3"),
        ("?fieldManager=two", "4"),
        ("?fieldManager=two", "4"),
    ] {
        let (_, current) = hub.admin(Method::GET, &format!("{CONFIGMAPS}/m"), None).await;
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
        body["data"]["k"] = value.into();
        let (code, answer) = put(body.clone(), query).await;
        assert_eq!(code, StatusCode::OK, "{query}: {answer}");
        let manager = if query.contains("two") { "two" } else { "one" };
        assert_eq!(
            entries(&answer),
            vec![(manager.to_string(), json!({"f:data": {"f:k": {}}}))],
            "{query}: {answer}"
        );
        let (_, stored) = hub.admin(Method::GET, &format!("{CONFIGMAPS}/m"), None).await;
        if query.contains("dryRun") {
            assert_eq!(
                stored["metadata"]["resourceVersion"],
                current["metadata"]["resourceVersion"]
            );
        } else {
            assert_eq!(stored, answer, "{query}: what is stored is what was answered");
        }
    }
}

/// As in Kubernetes, `metadata.generation` belongs to custom resources and CRDs: a
/// ConfigMap or a Lease gets none, whatever is written (a Lease renewal is no new
/// generation), and marking one for deletion gives it none either; a client's own value is
/// kept as given and cannot be changed by an update.
#[tokio::test]
async fn only_kinds_that_track_a_generation_have_one() {
    let hub = InProcessHub::start().await;
    let (code, created) = hub.admin(Method::POST, CONFIGMAPS, Some(configmap("g", "1"))).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    assert!(created["metadata"].get("generation").is_none(), "{created}");
    let mut changed = created.clone();
    changed["data"]["k"] = "2".into();
    changed["metadata"]["finalizers"] = json!(["example.com/hold"]);
    let (code, updated) = hub.admin(Method::PUT, &format!("{CONFIGMAPS}/g"), Some(changed)).await;
    assert_eq!(code, StatusCode::OK, "{updated}");
    assert!(updated["metadata"].get("generation").is_none(), "{updated}");
    let (code, marked) = hub.admin(Method::DELETE, &format!("{CONFIGMAPS}/g"), None).await;
    assert_eq!(code, StatusCode::OK, "{marked}");
    assert!(marked["metadata"]["deletionTimestamp"].is_string(), "{marked}");
    assert!(marked["metadata"].get("generation").is_none(), "{marked}");

    let leases = "/apis/coordination.k8s.io/v1/namespaces/default/leases";
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l"},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 40, "renewTime": "2026-12-06T10:00:00.000000Z"}});
    let (code, created) = hub.admin(Method::POST, leases, Some(lease)).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let mut renewed = created.clone();
    renewed["spec"]["renewTime"] = "2026-12-06T10:00:10.000000Z".into();
    let (code, renewed) = hub.admin(Method::PUT, &format!("{leases}/l"), Some(renewed)).await;
    assert_eq!(code, StatusCode::OK, "{renewed}");
    assert_eq!(renewed["spec"]["renewTime"], "2026-12-06T10:00:10.000000Z");
    assert!(renewed["metadata"].get("generation").is_none(), "{renewed}");

    // A zero generation, which protobuf bodies carry, is no generation.
    let mut zero = configmap("zero", "1");
    zero["metadata"]["generation"] = 0.into();
    let (code, created) = hub.admin(Method::POST, CONFIGMAPS, Some(zero)).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    assert!(created["metadata"].get("generation").is_none(), "{created}");

    // A generation a client gives stays as given.
    let mut given = configmap("given", "1");
    given["metadata"]["generation"] = 7.into();
    let (code, created) = hub.admin(Method::POST, CONFIGMAPS, Some(given)).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    assert_eq!(created["metadata"]["generation"], 7);
    let mut changed = created.clone();
    changed["metadata"]["generation"] = 9.into();
    changed["data"]["k"] = "2".into();
    let (code, updated) = hub
        .admin(Method::PUT, &format!("{CONFIGMAPS}/given"), Some(changed))
        .await;
    assert_eq!(code, StatusCode::OK, "{updated}");
    assert_eq!(updated["metadata"]["generation"], 7);
}
