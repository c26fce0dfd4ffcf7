//! `events.k8s.io/v1` Events: the core/v1 Events shown in the newer shape, as kube-apiserver
//! serves them. One stored object (the core/v1 form, under the core key) answers both APIs;
//! the fields that were renamed are mapped on every read and write, and the rest is shared.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::{ResourceKind, Strategy};
use faros_machinery::status::FieldError;
use faros_machinery::table::PrinterColumn;
use k8s_openapi::api::events::v1 as events;

/// (events.k8s.io/v1 field, core/v1 field) for the fields whose name differs; the others
/// (`metadata`, `eventTime`, `series`, `related`, `reportingInstance`, `action`, `reason`,
/// `type`) have one name in both.
const RENAMED: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

const SHARED: &[&str] = &[
    "metadata",
    "eventTime",
    "series",
    "related",
    "reportingInstance",
    "action",
    "reason",
    "type",
];

/// Copies the fields of `from` into a new object of `api_version`, renaming with `rename`.
fn convert(from: &Value, api_version: &str, rename: impl Fn(&str) -> Option<&'static str>) -> Value {
    let mut out = Map::new();
    out.insert("kind".into(), "Event".into());
    out.insert("apiVersion".into(), api_version.into());
    for (field, value) in from.as_object().into_iter().flatten() {
        if value.is_null() {
            continue;
        }
        if let Some(to) = rename(field) {
            out.insert(to.into(), value.clone());
        } else if SHARED.contains(&field.as_str()) {
            out.insert(field.clone(), value.clone());
        }
    }
    Value::Object(out)
}

/// A stored core/v1 Event as events.k8s.io/v1 shows it.
pub(crate) fn to_events_v1(core: &Value) -> Value {
    let mut event = convert(core, "events.k8s.io/v1", |f| {
        RENAMED.iter().find(|(_, c)| *c == f).map(|(e, _)| *e)
    });
    // core/v1 writers often send an empty `source`; the newer shape leaves it out.
    if event
        .get("deprecatedSource")
        .is_some_and(|s| s.as_object().is_some_and(Map::is_empty))
    {
        event.as_object_mut().map(|m| m.remove("deprecatedSource"));
    }
    event
}

/// An events.k8s.io/v1 Event in the core/v1 form it is stored as.
pub(crate) fn to_core(event: &Value) -> Value {
    convert(event, "v1", |f| RENAMED.iter().find(|(e, _)| *e == f).map(|(_, c)| *c))
}

struct EventsV1;

impl Strategy for EventsV1 {
    fn normalize(&self, obj: &mut Value) -> Option<Result<Vec<String>, String>> {
        Some(super::builtin::typed_roundtrip::<events::Event>(obj))
    }

    /// What kube-apiserver requires of an Event written through events.k8s.io/v1: the fields
    /// of the newer shape that core/v1 left optional.
    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let missing = |field: &str| obj.get(field).and_then(Value::as_str).is_none_or(str::is_empty);
        if old.is_none() && obj.get("eventTime").is_none_or(Value::is_null) {
            errors.push(FieldError::required("eventTime", ""));
        }
        for field in ["reportingController", "reportingInstance", "action", "reason"] {
            if old.is_none() && missing(field) {
                errors.push(FieldError::required(field, ""));
            }
        }
        if let Some(t) = obj.get("type").and_then(Value::as_str)
            && t != "Normal"
            && t != "Warning"
        {
            errors.push(FieldError::not_supported(
                "type",
                format!("{t:?}: supported values: \"Normal\", \"Warning\""),
            ));
        }
        if obj["note"].as_str().is_some_and(|n| n.len() > 1024) {
            errors.push(FieldError::invalid("note", "may not be more than 1024 bytes"));
        }
        errors
    }

    fn project(&self, stored: &faros_storage::Object) -> Option<Value> {
        Some(to_events_v1(&stored.value()))
    }

    fn unproject(&self, served: &Value) -> Option<Value> {
        Some(to_core(served))
    }

    /// Field selectors name the newer fields; the stored object has the core names.
    fn field_value(&self, stored: &Value, field: &str) -> Option<String> {
        let core_field = match field.split_once('.') {
            Some(("regarding", rest)) => format!("involvedObject.{rest}"),
            _ => match field {
                "reportingController" => "reportingComponent".into(),
                "deprecatedSource" => "source".into(),
                "reason" | "type" => field.into(),
                _ => return None,
            },
        };
        super::builtin::EventStrategy.field_value(stored, &core_field)
    }

    fn selectable_fields(&self) -> &[&'static str] {
        &[
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "regarding.apiVersion",
            "regarding.resourceVersion",
            "regarding.fieldPath",
            "reason",
            "reportingController",
            "deprecatedSource",
            "type",
        ]
    }
}

/// The events.k8s.io/v1 kind, stored as core/v1 Events.
pub(crate) fn kind() -> Arc<ResourceKind> {
    ResourceKind::builder("events.k8s.io", "v1", "events", "Event")
        .namespaced()
        .short_names(&["ev"])
        .stored_as("", "events")
        .columns(vec![
            PrinterColumn::path("Last Seen", "date", ".deprecatedLastTimestamp", 0),
            PrinterColumn::path("Type", "string", ".type", 0),
            PrinterColumn::path("Reason", "string", ".reason", 0),
            PrinterColumn::path("Object", "string", ".regarding.name", 0),
            PrinterColumn::path("Message", "string", ".note", 0),
        ])
        .strategy(Arc::new(EventsV1))
        .build()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Every field survives the trip through the stored form, under its own name in each API.
    #[test]
    fn fields_map_both_ways() {
        let event = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "default"},
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "series": {"count": 2, "lastObservedTime": "2026-01-01T00:00:01.000000Z"},
            "reportingController": "example.com/ctl", "reportingInstance": "ctl-1",
            "action": "Reconcile", "reason": "Done", "type": "Normal", "note": "all good",
            "regarding": {"kind": "Pod", "name": "p", "namespace": "default"},
            "related": {"kind": "Node", "name": "n"},
            "deprecatedSource": {"component": "ctl"},
            "deprecatedFirstTimestamp": "2026-01-01T00:00:00Z",
            "deprecatedLastTimestamp": "2026-01-01T00:00:01Z",
            "deprecatedCount": 3,
        });
        let core = to_core(&event);
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["message"], "all good");
        assert_eq!(core["involvedObject"]["name"], "p");
        assert_eq!(core["reportingComponent"], "example.com/ctl");
        assert_eq!(core["source"]["component"], "ctl");
        assert_eq!(core["count"], 3);
        assert_eq!(core["lastTimestamp"], "2026-01-01T00:00:01Z");
        assert_eq!(core["series"]["count"], 2);
        assert!(core.get("note").is_none());
        assert_eq!(to_events_v1(&core), event);
    }
}
