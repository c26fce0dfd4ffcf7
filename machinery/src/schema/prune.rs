//! Pruning.

use serde_json::Value;

use super::path::Path;
use super::{Additional, Node, OBJECT_META_FIELDS, StructuralSchema, is_meta_field};

impl StructuralSchema {
    /// Removes fields the schema does not declare and returns their paths,
    /// sorted, in the form `.spec.unknownField` / `.spec.list[0].x`.
    ///
    /// Nodes with `x-kubernetes-preserve-unknown-fields: true` keep unknown
    /// fields (declared ones are still pruned below them); `additionalProperties`
    /// keeps every key. At the root `apiVersion`, `kind` and `metadata` are kept
    /// untouched; in `x-kubernetes-embedded-resource` objects they are kept too
    /// and the embedded `metadata` is reduced to the fields of `ObjectMeta`.
    pub fn prune(&self, obj: &mut Value) -> Vec<String> {
        let mut removed = Vec::new();
        prune_value(obj, Some(&self.node), true, &Path::ROOT, &mut removed);
        removed.sort();
        removed
    }
}

fn record(path: &Path, key: &str, out: &mut Vec<String>) {
    out.push(format!(".{}", path.prop(key).render(false)));
}

/// Structural pruning. `resource_root` marks the object root (whose apiVersion,
/// kind and metadata are never touched).
pub(super) fn prune_value(v: &mut Value, s: Option<&Node>, resource_root: bool, path: &Path, out: &mut Vec<String>) {
    if let Some(s) = s
        && s.preserve_unknown
    {
        skip_prune(v, s, resource_root, path, out);
        return;
    }
    match v {
        Value::Object(map) => {
            let Some(s) = s else {
                for key in map.keys() {
                    record(path, key, out);
                }
                map.clear();
                return;
            };
            let keep_meta = resource_root || s.embedded;
            map.retain(|key, val| {
                if keep_meta && is_meta_field(key) {
                    if !resource_root && key == "metadata" {
                        coerce_object_meta(val, &path.prop(key), out);
                    }
                    return true;
                }
                if let Some(prop) = s.properties.get(key) {
                    prune_value(val, Some(&prop.node), false, &path.prop(key), out);
                    true
                } else if let Some(additional) = &s.additional {
                    prune_value(val, additional_node(additional), false, &path.prop(key), out);
                    true
                } else {
                    record(path, key, out);
                    false
                }
            });
        }
        Value::Array(items) => {
            let item_schema = s.and_then(|s| s.items.as_ref()).map(|i| &*i.node);
            for (i, item) in items.iter_mut().enumerate() {
                if item.is_object() || item.is_array() {
                    prune_value(item, item_schema, false, &path.index(i), out);
                }
            }
        }
        _ => {}
    }
}

pub(super) fn additional_node(a: &Additional) -> Option<&Node> {
    match a {
        Additional::Schema(s) => Some(&s.node),
        Additional::Bool(_) => None,
    }
}

/// Pruning below `x-kubernetes-preserve-unknown-fields: true`: unknown fields
/// stay, declared ones are pruned by their schema.
fn skip_prune(v: &mut Value, s: &Node, resource_root: bool, path: &Path, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            let keep_meta = resource_root || s.embedded;
            for (key, val) in map.iter_mut() {
                if keep_meta && is_meta_field(key) {
                    if !resource_root && key == "metadata" {
                        coerce_object_meta(val, &path.prop(key), out);
                    }
                    continue;
                }
                if let Some(prop) = s.properties.get(key) {
                    prune_value(val, Some(&prop.node), false, &path.prop(key), out);
                } else if let Some(additional) = &s.additional {
                    prune_value(val, additional_node(additional), false, &path.prop(key), out);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = &s.items {
                for (i, item) in items.iter_mut().enumerate() {
                    prune_value(item, Some(&item_schema.node), false, &path.index(i), out);
                }
            }
        }
        _ => {}
    }
}

/// The `metadata` of an embedded resource keeps only `ObjectMeta` fields.
fn coerce_object_meta(v: &mut Value, path: &Path, out: &mut Vec<String>) {
    if let Value::Object(map) = v {
        map.retain(|key, _| {
            let known = OBJECT_META_FIELDS.contains(&key.as_str());
            if !known {
                record(path, key, out);
            }
            known
        });
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::schema::test_support::*;

    #[test]
    fn prune_drops_unknown_fields_and_reports_them() {
        let s = prune_schema();
        let mut obj = json!({
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "metadata": {"name": "w", "whatever": 1},
            "spec": {"name": "n", "unknownField": 1, "items": [{"a": "x"}, {"a": "y", "bogus": true}]},
            "extra": {"deep": 1}
        });
        let removed = s.prune(&mut obj);
        assert_eq!(removed, vec![".extra", ".spec.items[1].bogus", ".spec.unknownField"]);
        assert_eq!(
            obj,
            json!({
                "apiVersion": "example.com/v1",
                "kind": "Widget",
                "metadata": {"name": "w", "whatever": 1},
                "spec": {"name": "n", "items": [{"a": "x"}, {"a": "y"}]}
            })
        );
    }

    #[test]
    fn prune_respects_preserve_unknown_fields_and_additional_properties() {
        let s = prune_schema();
        let mut obj = json!({"spec": {
            "labels": {"k1": {"v": "1", "junk": 2}},
            "free": {"anything": {"goes": [1, 2]}, "strict": {"ok": true, "nope": 1}},
            "loose": {"k": {"nested": 1}, "s": "kept"},
            "word": {"not": "a string"}
        }});
        let removed = s.prune(&mut obj);
        assert_eq!(
            removed,
            vec![
                ".spec.free.strict.nope",
                ".spec.labels.k1.junk",
                ".spec.loose.k.nested",
                ".spec.word.not",
            ]
        );
        assert_eq!(
            obj,
            json!({"spec": {
                "labels": {"k1": {"v": "1"}},
                "free": {"anything": {"goes": [1, 2]}, "strict": {"ok": true}},
                "loose": {"k": {}, "s": "kept"},
                "word": {}
            }})
        );
    }

    #[test]
    fn prune_keeps_type_and_object_meta_of_embedded_resources() {
        let s = prune_schema();
        let mut obj = json!({"spec": {"template": {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "labels": {"a": "b"}, "bogus": true},
            "spec": {"x": "y", "z": 1},
            "status": {}
        }}});
        let removed = s.prune(&mut obj);
        assert_eq!(
            removed,
            vec![
                ".spec.template.metadata.bogus",
                ".spec.template.spec.z",
                ".spec.template.status",
            ]
        );
        assert_eq!(
            obj["spec"]["template"],
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}}, "spec": {"x": "y"}})
        );
    }

    #[test]
    fn prune_embedded_resource_with_preserve_unknown_fields() {
        let s = obj_schema(json!({"type": "object", "properties": {
            "raw": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true}
        }}));
        let mut obj = json!({"spec": {"raw": {"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "b"}, "metadata": {"x": 1, "name": "n"}}}});
        let removed = s.prune(&mut obj);
        assert_eq!(removed, vec![".spec.raw.metadata.x"]);
        assert_eq!(obj["spec"]["raw"]["data"], json!({"a": "b"}));
    }
}
