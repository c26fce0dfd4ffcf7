//! Defaulting.

use serde_json::Value;

use super::prune::additional_node;
use super::{Additional, Node, StructuralSchema};

impl StructuralSchema {
    /// Applies `default`s (after pruning): missing properties with a default get
    /// a copy of it, as do non-nullable properties, map values and array items
    /// that are `null`; other non-nullable `null` properties are dropped.
    /// The root `metadata` is left alone.
    pub fn apply_defaults(&self, obj: &mut Value) {
        default_value(obj, &self.node, true);
    }
}

fn field_schema<'n>(s: &'n Node, key: &str) -> Option<&'n Node> {
    match s.properties.get(key) {
        Some(p) => Some(&p.node),
        None => s.additional.as_ref().and_then(additional_node),
    }
}

fn default_value(v: &mut Value, s: &Node, resource_root: bool) {
    match v {
        Value::Object(map) => {
            let skip = |key: &str| resource_root && key == "metadata";
            // Non-nullable nulls without a default are dropped first.
            if map.values().any(Value::is_null) {
                map.retain(|key, val| {
                    if !val.is_null() || skip(key) {
                        return true;
                    }
                    match field_schema(s, key) {
                        Some(fs) => fs.nullable || fs.default.is_some(),
                        None => true,
                    }
                });
            }
            if s.has_property_defaults {
                for (key, prop) in &s.properties {
                    let Some(default) = &prop.node.default else {
                        continue;
                    };
                    if skip(key) {
                        continue;
                    }
                    match map.get_mut(key.as_str()) {
                        None => {
                            map.insert(key.clone(), default.clone());
                        }
                        Some(val) if val.is_null() && !prop.node.nullable => *val = default.clone(),
                        Some(_) => {}
                    }
                }
            }
            for (key, val) in map.iter_mut() {
                if skip(key) {
                    continue;
                }
                if let Some(prop) = s.properties.get(key) {
                    if val.is_object() || val.is_array() {
                        default_value(val, &prop.node, false);
                    }
                } else if let Some(Additional::Schema(add)) = &s.additional {
                    let an = &add.node;
                    if val.is_null()
                        && !an.nullable
                        && let Some(d) = &an.default
                    {
                        *val = d.clone();
                    }
                    if val.is_object() || val.is_array() {
                        default_value(val, an, false);
                    }
                }
            }
        }
        Value::Array(items) => {
            let Some(item_schema) = &s.items else { return };
            let it = &item_schema.node;
            for item in items.iter_mut() {
                if item.is_null()
                    && !it.nullable
                    && let Some(d) = &it.default
                {
                    *item = d.clone();
                }
                if item.is_object() || item.is_array() {
                    default_value(item, it, false);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::schema::test_support::*;

    #[test]
    fn defaults_fill_missing_fields_recursively() {
        let s = obj_schema(json!({
            "type": "object",
            "default": {},
            "properties": {
                "replicas": {"type": "integer", "default": 1},
                "strategy": {"type": "object", "default": {}, "properties": {
                    "type": {"type": "string", "default": "Rolling"},
                    "maxSurge": {"x-kubernetes-int-or-string": true, "default": "25%"}
                }},
                "containers": {"type": "array", "items": {"type": "object", "properties": {
                    "name": {"type": "string"},
                    "pull": {"type": "string", "default": "IfNotPresent"},
                    "ports": {"type": "array", "items": {"type": "object", "properties": {"proto": {"type": "string", "default": "TCP"}, "port": {"type": "integer"}}}}
                }}},
                "env": {"type": "object", "additionalProperties": {"type": "object", "properties": {"value": {"type": "string", "default": "unset"}}}}
            }
        }));
        let mut obj = json!({});
        s.apply_defaults(&mut obj);
        assert_eq!(
            obj,
            json!({"spec": {"replicas": 1, "strategy": {"type": "Rolling", "maxSurge": "25%"}}})
        );

        let mut obj = json!({"spec": {
            "replicas": 3,
            "strategy": {"type": "Recreate"},
            "containers": [{"name": "a", "ports": [{"port": 80}, {"port": 53, "proto": "UDP"}]}, {"name": "b", "pull": "Always"}],
            "env": {"A": {}, "B": {"value": "b"}}
        }});
        s.apply_defaults(&mut obj);
        assert_eq!(
            obj,
            json!({"spec": {
                "replicas": 3,
                "strategy": {"type": "Recreate", "maxSurge": "25%"},
                "containers": [
                    {"name": "a", "pull": "IfNotPresent", "ports": [{"port": 80, "proto": "TCP"}, {"port": 53, "proto": "UDP"}]},
                    {"name": "b", "pull": "Always"}
                ],
                "env": {"A": {"value": "unset"}, "B": {"value": "b"}}
            }})
        );
    }

    #[test]
    fn defaults_handle_nulls() {
        let s = obj_schema(json!({"type": "object", "properties": {
            "withDefault": {"type": "string", "default": "d"},
            "plain": {"type": "string"},
            "nullable": {"type": "string", "nullable": true},
            "nullableWithDefault": {"type": "string", "nullable": true, "default": "n"},
            "map": {"type": "object", "additionalProperties": {"type": "string", "default": "m"}},
            "list": {"type": "array", "items": {"type": "string", "default": "i"}},
            "plainList": {"type": "array", "items": {"type": "string"}}
        }}));
        let mut obj = json!({"spec": {
            "withDefault": null, "plain": null, "nullable": null, "nullableWithDefault": null,
            "map": {"a": null, "b": "x"}, "list": [null, "y"], "plainList": [null]
        }});
        s.apply_defaults(&mut obj);
        assert_eq!(
            obj,
            json!({"spec": {
                "withDefault": "d", "nullable": null, "nullableWithDefault": null,
                "map": {"a": "m", "b": "x"}, "list": ["i", "y"], "plainList": [null]
            }})
        );
    }

    #[test]
    fn defaults_leave_root_metadata_alone_and_copy_values() {
        let s = schema(json!({"type": "object", "properties": {
            "metadata": {"type": "object"},
            "spec": {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}, "default": ["a"]}}}
        }}));
        let mut obj = json!({"metadata": {"name": "x", "labels": null}, "spec": {}});
        s.apply_defaults(&mut obj);
        assert_eq!(
            obj,
            json!({"metadata": {"name": "x", "labels": null}, "spec": {"tags": ["a"]}})
        );
        obj["spec"]["tags"].as_array_mut().unwrap().push(json!("b"));
        let mut again = json!({"spec": {}});
        s.apply_defaults(&mut again);
        assert_eq!(again["spec"]["tags"], json!(["a"]));
    }
}
