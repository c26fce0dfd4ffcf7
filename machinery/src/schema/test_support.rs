//! Fixtures shared by the tests of the schema modules.

use serde_json::{Value, json};

use super::StructuralSchema;
use crate::status::FieldError;

pub(super) const PREFIX: &str = "spec.versions[0].schema.openAPIV3Schema";

pub(super) fn schema(v: Value) -> StructuralSchema {
    match StructuralSchema::parse(&v, PREFIX) {
        Ok(s) => s,
        Err(errs) => panic!("schema rejected: {:#?}", messages(&errs)),
    }
}

pub(super) fn rejected(v: Value) -> Vec<String> {
    match StructuralSchema::parse(&v, PREFIX) {
        Ok(_) => panic!("schema accepted: {v}"),
        Err(errs) => messages(&errs),
    }
}

pub(super) fn messages(errs: &[FieldError]) -> Vec<String> {
    errs.iter().map(FieldError::to_message).collect()
}

pub(super) fn obj_schema(spec: Value) -> StructuralSchema {
    schema(json!({"type": "object", "properties": {"spec": spec}}))
}

pub(super) fn validate_spec(spec_schema: Value, spec: Value) -> Vec<String> {
    messages(&obj_schema(spec_schema).validate(&json!({"spec": spec}), None))
}

pub(super) fn prune_schema() -> StructuralSchema {
    schema(json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "items": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}}}},
                    "labels": {"type": "object", "additionalProperties": {"type": "object", "properties": {"v": {"type": "string"}}}},
                    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                             "properties": {"strict": {"type": "object", "properties": {"ok": {"type": "boolean"}}}}},
                    "loose": {"type": "object", "additionalProperties": true},
                    "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                                 "properties": {"spec": {"type": "object", "properties": {"x": {"type": "string"}}}}},
                    "word": {"type": "string"}
                }
            }
        }
    }))
}
