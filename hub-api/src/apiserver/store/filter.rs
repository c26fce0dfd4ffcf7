//! Label and field selectors of lists and watches, and the continue tokens of paged lists.

use std::sync::Arc;

use base64::Engine;
use serde_json::{Value, json};

use super::context::Ctx;
use crate::apiserver::query::Query;
use crate::registry::ResourceKind;
use crate::tenancy::ClusterScope;
use faros_machinery::selector::{FieldSelector, LabelSelector};
use faros_machinery::status::{ApiError, ApiResult};
use faros_storage::Object;

/// Compiled label and field selectors of a list or watch.
pub struct Filter {
    labels: LabelSelector,
    fields: FieldSelector,
    kind: Arc<ResourceKind>,
    field_paths: Vec<(String, faros_machinery::jsonpath::JsonPath)>,
    /// A namespace the key prefix does not already pin (the `*` view keys start with the
    /// logical cluster, so its namespace is checked per object).
    namespace: Option<String>,
    /// The name in the path of a watch (`.../configmaps/<name>?watch=1`): the request was
    /// authorized for that name only.
    name: Option<String>,
}

impl Filter {
    /// The filter of a list or watch request: its selectors, and its namespace when the
    /// request spans every logical cluster.
    pub fn for_request(ctx: &Ctx) -> ApiResult<Filter> {
        let mut filter = Filter::new(&ctx.kind, &ctx.query)?;
        if ctx.cluster == ClusterScope::All {
            filter.namespace = ctx.req.namespace.clone();
        }
        filter.name = ctx.req.name.clone();
        Ok(filter)
    }

    pub fn new(kind: &Arc<ResourceKind>, query: &Query) -> ApiResult<Filter> {
        let labels = match &query.label_selector {
            Some(s) => LabelSelector::parse(s)
                .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?,
            None => LabelSelector::everything(),
        };
        let fields = match &query.field_selector {
            Some(s) => {
                FieldSelector::parse(s).map_err(|e| ApiError::bad_request(format!("invalid field selector: {e}")))?
            }
            None => FieldSelector::everything(),
        };
        let mut field_paths = Vec::new();
        for requirement in fields.requirements() {
            let field = requirement.field.as_str();
            let known = matches!(field, "metadata.name" | "metadata.namespace")
                || kind.strategy.selectable_fields().contains(&field);
            if known {
                continue;
            }
            if kind.crd_selectable_fields.iter().any(|f| f == field) {
                let path = faros_machinery::jsonpath::JsonPath::parse(field)
                    .map_err(|e| ApiError::bad_request(format!("field label not supported: {field}: {e}")))?;
                field_paths.push((field.to_string(), path));
                continue;
            }
            return Err(ApiError::bad_request(format!("field label not supported: {field}")));
        }
        Ok(Filter {
            labels,
            fields,
            kind: kind.clone(),
            field_paths,
            namespace: None,
            name: None,
        })
    }

    pub fn is_everything(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty() && self.namespace.is_none() && self.name.is_none()
    }

    /// Exact `metadata.name=` pin, which turns a list into a point lookup.
    pub fn exact_name(&self) -> Option<&str> {
        self.name.as_deref().or_else(|| self.fields.exact("metadata.name"))
    }

    /// Whether a cached object passes: labels, name and namespace are read without decoding
    /// it; a field selector on any other field decodes it once.
    pub fn matches(&self, obj: &Object) -> bool {
        if let Some(ns) = &self.namespace
            && obj.namespace() != ns
        {
            return false;
        }
        if let Some(name) = &self.name
            && obj.name() != name
        {
            return false;
        }
        if !self.labels.matches_lookup(|key| obj.label(key)) {
            return false;
        }
        if self.fields.is_empty() {
            return true;
        }
        let mut decoded: Option<Value> = None;
        self.fields.matches(|field| match field {
            "metadata.name" => Some(obj.name().to_string()),
            "metadata.namespace" => Some(obj.namespace().to_string()),
            other => {
                let obj = decoded.get_or_insert_with(|| obj.value());
                if let Some((_, path)) = self.field_paths.iter().find(|(f, _)| f == other) {
                    return path.find(obj).first().map(|v| match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    });
                }
                self.kind.strategy.field_value(obj, other)
            }
        })
    }
}

/// The continue token: where the next page starts and the revision of the first page.
pub(super) fn encode_continue(revision: u64, last_key: &str, prefix: &str) -> String {
    let token = json!({"rv": revision, "start": last_key.strip_prefix(prefix).unwrap_or(last_key)});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token.to_string())
}

pub(super) fn decode_continue(token: &str, prefix: &str) -> ApiResult<(u64, String)> {
    let invalid = || ApiError::bad_request("continue key is not valid: malformed token");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| invalid())?;
    let value: Value = serde_json::from_slice(&raw).map_err(|_| invalid())?;
    let rv = value["rv"].as_u64().ok_or_else(invalid)?;
    let start = value["start"].as_str().ok_or_else(invalid)?;
    if start.contains("..") {
        return Err(invalid());
    }
    Ok((rv, format!("{prefix}{start}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use faros_storage::KeyValue;

    fn cached(key: &str, value: Value) -> Object {
        Object::from_stored(&KeyValue {
            key: key.into(),
            value: Bytes::from(serde_json::to_vec(&value).unwrap()),
            create_revision: 3,
            mod_revision: 4,
        })
        .unwrap()
    }

    fn filter(resource: &str, labels: Option<&str>, fields: Option<&str>) -> Filter {
        let kind = crate::registry::builtin::kinds()
            .into_iter()
            .find(|k| k.group.is_empty() && k.resource == resource)
            .unwrap();
        let query = Query {
            label_selector: labels.map(str::to_string),
            field_selector: fields.map(str::to_string),
            ..Query::default()
        };
        Filter::new(&kind, &query).unwrap()
    }

    #[test]
    fn selectors_read_the_cached_labels_and_key() {
        let secret = cached(
            "/core/secrets/c1/ns1/s1",
            json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": "s1", "namespace": "ns1", "labels": {"tier": "web", "n": "7"}}}),
        );
        let matches = |labels, fields| filter("secrets", labels, fields).matches(&secret);
        assert!(matches(Some("tier=web"), None));
        assert!(matches(Some("tier in (db,web),!missing,n>5"), None));
        assert!(!matches(Some("tier!=web"), None));
        assert!(!matches(Some("n<5"), None));
        assert!(matches(None, Some("metadata.name=s1,metadata.namespace=ns1")));
        assert!(!matches(None, Some("metadata.namespace!=ns1")));
        // A kind's own field decodes the object.
        assert!(matches(Some("tier"), Some("type=Opaque")));
        assert!(!matches(None, Some("type=kubernetes.io/tls")));
    }

    #[test]
    fn event_fields_select_through_the_decoded_object() {
        let event = cached(
            "/core/events/c1/ns1/e1",
            json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e1", "namespace": "ns1"},
                "involvedObject": {"kind": "Agent", "name": "agent1"}, "reason": "Started", "type": "Normal"}),
        );
        assert!(
            filter(
                "events",
                None,
                Some("involvedObject.name=agent1,involvedObject.kind=Agent")
            )
            .matches(&event)
        );
        assert!(!filter("events", None, Some("involvedObject.name=agent2")).matches(&event));
    }
}
