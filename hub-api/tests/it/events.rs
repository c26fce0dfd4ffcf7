//! Events through both APIs: kube-rs's event `Recorder` writes events.k8s.io/v1, kubectl and
//! core/v1 clients read the same objects, and the other way round.

use k8s_openapi::api::core::v1::{ConfigMap, Event as CoreEvent, ObjectReference};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::events::{Event as Record, EventType, Recorder, Reporter};
use serde_json::{Value, json};

use crate::common::{HUB, TestHub};

#[tokio::test]
async fn recorder_events_are_core_events_and_back() {
    let hub = TestHub::start(HUB);
    let client = hub.client().await;
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "subject"}})).unwrap();
    let cm = configmaps.create(&PostParams::default(), &cm).await.unwrap();
    let reference = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("ConfigMap".into()),
        name: cm.metadata.name.clone(),
        namespace: Some("default".into()),
        uid: cm.metadata.uid.clone(),
        ..Default::default()
    };

    // The second identical event becomes a series: a merge patch through events.k8s.io/v1.
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "example.com/ctl".into(),
            instance: Some("ctl-0".into()),
        },
    );
    let record = Record {
        type_: EventType::Warning,
        reason: "Checked".into(),
        note: Some("looked at it".into()),
        action: "Check".into(),
        secondary: None,
    };
    recorder.publish(&record, &reference).await.unwrap();
    recorder.publish(&record, &reference).await.unwrap();

    let core: Api<CoreEvent> = Api::namespaced(client.clone(), "default");
    let params = ListParams::default().fields("involvedObject.name=subject");
    let listed = core.list(&params).await.unwrap().items;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let event = &listed[0];
    assert_eq!(event.message.as_deref(), Some("looked at it"));
    assert_eq!(event.reporting_component.as_deref(), Some("example.com/ctl"));
    assert_eq!(event.reporting_instance.as_deref(), Some("ctl-0"));
    assert_eq!(event.involved_object.uid, cm.metadata.uid);
    assert_eq!(event.series.as_ref().and_then(|s| s.count), Some(2));
    let name = event.metadata.name.clone().unwrap();

    let newer: Api<Event> = Api::namespaced(client.clone(), "default");
    let same = newer.get(&name).await.unwrap();
    assert_eq!(same.note.as_deref(), Some("looked at it"));
    assert_eq!(same.regarding.as_ref().and_then(|r| r.name.as_deref()), Some("subject"));
    assert_eq!(same.metadata.resource_version, event.metadata.resource_version);
    let selected = newer
        .list(&ListParams::default().fields("regarding.name=subject,reportingController=example.com/ctl"))
        .await
        .unwrap();
    assert_eq!(selected.items.len(), 1);

    // kubectl reads it through either API.
    let v = "1.32";
    let table = hub.kubectl_ok(v, &["get", "events", "-n", "default"]);
    assert!(table.contains("Checked") && table.contains("looked at it"), "{table}");
    let newer_json = hub.kubectl_ok(v, &["get", "events.events.k8s.io", "-n", "default", "-o", "json"]);
    let newer_json: Value = serde_json::from_str(&newer_json).unwrap();
    assert_eq!(newer_json["items"][0]["note"], "looked at it", "{newer_json}");
    assert_eq!(newer_json["items"][0]["apiVersion"], "events.k8s.io/v1");

    // A core/v1 Event shows in the newer shape, its old-style fields as the deprecated ones.
    let old_style: CoreEvent = serde_json::from_value(json!({
        "metadata": {"name": "old-style"},
        "involvedObject": {"kind": "ConfigMap", "name": "subject", "namespace": "default"},
        "reason": "Seen", "message": "by an old client", "type": "Normal", "count": 3,
        "source": {"component": "legacy"},
        "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:01:00Z",
    }))
    .unwrap();
    core.create(&PostParams::default(), &old_style).await.unwrap();
    let shown = newer.get("old-style").await.unwrap();
    assert_eq!(shown.note.as_deref(), Some("by an old client"));
    assert_eq!(shown.deprecated_count, Some(3));
    assert_eq!(
        shown.deprecated_source.and_then(|s| s.component).as_deref(),
        Some("legacy")
    );

    // The newer API requires what its shape promises.
    let incomplete: Event = serde_json::from_value(json!({
        "metadata": {"name": "incomplete"}, "reason": "R", "note": "no time, no reporter",
    }))
    .unwrap();
    let err = newer.create(&PostParams::default(), &incomplete).await.unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("{err:?}")
    };
    assert_eq!(status.code, 422, "{status:?}");
    assert!(status.message.contains("eventTime"), "{status:?}");

    // Deleting through one API removes it from both.
    newer.delete(&name, &Default::default()).await.unwrap();
    assert!(core.get_opt(&name).await.unwrap().is_none());
}
